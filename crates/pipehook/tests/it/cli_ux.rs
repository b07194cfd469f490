//! How the real binary behaves for the person or script running it: exit codes of failed pings, followed and
//! awaited runs; output into a pipe closed early (`| head`); no colour codes in files and pipes; help without
//! server options and with examples; shell completions; a readable delivery log and hook health; executions with
//! their commit and what a queued one waits behind. Every command runs the real binary against a real server.

use serde_json::{json, Value};
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::outbound::{status, Receiver};
use crate::support::{codepipeline, pipehook_cmd, TestServer, ACCESS_KEY_ID, SECRET_ACCESS_KEY, TOKEN};

const ENV: &[(&str, &str)] = &[
    ("PIPEHOOK_TOKEN", TOKEN),
    ("PIPEHOOK_AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
    ("PIPEHOOK_AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
];

async fn run(s: &TestServer, args: &[&str]) -> Output {
    let out = s.cli_with(ENV, args).await;
    assert!(!stderr(&out).contains("panicked"), "{args:?} panicked: {}", stderr(&out));
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}: {}{}", o.status.code(), stdout(o), stderr(o));
    stdout(o)
}

/// Asserts exit code `code` and returns standard error, trimmed.
fn exits(o: &Output, code: i32) -> String {
    assert_eq!(o.status.code(), Some(code), "stdout: {} stderr: {}", stdout(o), stderr(o));
    stderr(o).trim().to_owned()
}

/// The rows of a table (header first), split on runs of two or more spaces.
fn rows(table: &str) -> Vec<Vec<String>> {
    table.lines().map(|l| l.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect()).collect()
}

/// The row whose first cell is `first`.
fn row<'a>(table: &'a [Vec<String>], first: &str) -> &'a [String] {
    table.iter().find(|r| r[0] == first).unwrap_or_else(|| panic!("no row {first} in {table:?}"))
}

/// A pipeline declaration: a GitHub source (no checkout) and one command action.
fn declaration(name: &str, command: &str, mode: &str) -> Value {
    json!({
        "name": name,
        "roleArn": "arn:aws:iam::123456789012:role/pipehook",
        "artifactStore": {"type": "S3", "location": "artifact-bucket"},
        "stages": [
            {"name": "Source", "actions": [{
                "name": "Source",
                "actionTypeId": {"category": "Source", "owner": "ThirdParty", "provider": "GitHub", "version": "1"},
                "configuration": {"Owner": "octo", "Repo": "app", "Branch": "main", "OAuthToken": "****"},
                "runOrder": 1,
            }]},
            {"name": "Build", "actions": [{
                "name": "Run",
                "actionTypeId": {"category": "Build", "owner": "Custom", "provider": "Command", "version": "1"},
                "configuration": {"Command": command},
                "runOrder": 1,
            }]},
        ],
        "executionMode": mode,
    })
}

async fn create_pipeline(s: &TestServer, dir: &std::path::Path, decl: Value) {
    let file = dir.join(format!("{}.json", decl["name"].as_str().unwrap()));
    std::fs::write(&file, serde_json::to_vec(&decl).unwrap()).unwrap();
    ok(&run(s, &["pipelines", "create", "--file", file.to_str().unwrap()]).await);
}

fn server() -> crate::support::Builder {
    TestServer::builder().env("PIPEHOOK_WORKER_POLL_MS", "50")
}

#[tokio::test]
async fn followed_and_awaited_runs_exit_1_unless_they_succeed() {
    let s = server().start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    create_pipeline(&s, dir.path(), declaration("fails", "echo before failing; exit 3", "PARALLEL")).await;
    create_pipeline(&s, dir.path(), declaration("works", "echo fine", "PARALLEL")).await;
    create_pipeline(&s, dir.path(), declaration("slow", "sleep 30", "PARALLEL")).await;

    // start --wait: the id alone on stdout, the end on stderr, exit 1 for a failure.
    let out = run(&s, &["executions", "start", "fails", "--wait"]).await;
    let err = exits(&out, 1);
    let id = stdout(&out).trim().to_owned();
    assert_eq!(id.len(), 36, "only the id on stdout: {id}");
    assert!(err.starts_with(&format!("pipehook: execution {id} ended: Failed (")), "{err}");
    // logs --follow of the failed execution: the log, and exit 1.
    let out = run(&s, &["logs", "fails", &id, "--follow"]).await;
    let err = exits(&out, 1);
    assert!(stdout(&out).contains("before failing"), "{}", stdout(&out));
    assert!(err.starts_with(&format!("pipehook: execution {id} ended: Failed")), "{err}");
    // Reading the log of a failed execution without --follow is no failure.
    assert!(ok(&run(&s, &["logs", "fails", &id]).await).contains("before failing"));
    // JSON: the execution as it ended.
    let out = run(&s, &["--output", "json", "executions", "start", "fails", "--wait"]).await;
    exits(&out, 1);
    let ended: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ended["status"], "Failed", "{ended}");

    // Success: exit 0, said on stderr.
    let out = run(&s, &["executions", "start", "works", "--wait"]).await;
    let id = ok(&out).trim().to_owned();
    assert_eq!(stderr(&out).trim(), format!("pipehook: execution {id} ended: Succeeded"));
    let out = run(&s, &["logs", "works", &id, "--follow"]).await;
    assert!(ok(&out).contains("fine"));

    // Stopped counts as a failure too.
    let id = ok(&run(&s, &["executions", "start", "slow"]).await).trim().to_owned();
    ok(&run(&s, &["executions", "stop", "slow", &id, "--abandon"]).await);
    let err = exits(&run(&s, &["logs", "slow", &id, "--follow"]).await, 1);
    assert!(err.starts_with(&format!("pipehook: execution {id} ended: Stopped")), "{err}");

    // Builds: the same rules with CodeBuild's statuses.
    for (name, command) in [("good", "echo built"), ("bad", "echo breaking; exit 2")] {
        let project = json!({
            "name": name,
            "source": {"type": "NO_SOURCE", "buildspec": format!("version: 0.2\nphases:\n  build:\n    commands:\n      - {command}\n")},
            "artifacts": {"type": "NO_ARTIFACTS"},
            "environment": {"type": "LINUX_CONTAINER", "image": "aws/codebuild/standard:7.0", "computeType": "BUILD_GENERAL1_SMALL"},
            "serviceRole": "arn:aws:iam::123456789012:role/codebuild",
        });
        let file = dir.path().join(format!("{name}-project.json"));
        std::fs::write(&file, serde_json::to_vec(&project).unwrap()).unwrap();
        ok(&run(&s, &["projects", "create", "--file", file.to_str().unwrap()]).await);
    }
    let out = run(&s, &["builds", "start", "bad", "--wait"]).await;
    let err = exits(&out, 1);
    let id = stdout(&out).trim().to_owned();
    assert!(id.starts_with("bad:"), "only the id on stdout: {id}");
    assert!(err.starts_with(&format!("pipehook: build {id} ended: FAILED")), "{err}");
    let out = run(&s, &["builds", "logs", &id, "--follow"]).await;
    let err = exits(&out, 1);
    assert!(stdout(&out).contains("breaking"), "{}", stdout(&out));
    assert!(err.starts_with(&format!("pipehook: build {id} ended: FAILED")), "{err}");
    assert!(ok(&run(&s, &["builds", "logs", &id]).await).contains("breaking"));
    let out = run(&s, &["builds", "start", "good", "--wait"]).await;
    let id = ok(&out).trim().to_owned();
    assert_eq!(stderr(&out).trim(), format!("pipehook: build {id} ended: SUCCEEDED"));
    assert!(ok(&run(&s, &["builds", "logs", &id, "--follow"]).await).contains("built"));
    let out = run(&s, &["--output", "json", "builds", "start", "good", "--wait"]).await;
    let ended: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(ended["buildStatus"], "SUCCEEDED", "{ended}");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn queued_executions_show_their_commit_and_what_they_wait_behind() {
    let s = server().start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    create_pipeline(&s, dir.path(), declaration("queue", "sleep 2", "QUEUED")).await;
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let first = codepipeline(&s.url, ACCESS_KEY_ID, SECRET_ACCESS_KEY, "us-east-1")
        .start_pipeline_execution()
        .name("queue")
        .source_revisions(
            aws_sdk_codepipeline::types::SourceRevisionOverride::builder()
                .action_name("Source")
                .revision_type(aws_sdk_codepipeline::types::SourceRevisionType::CommitId)
                .revision_value(sha)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .pipeline_execution_id
        .unwrap();
    let second = ok(&run(&s, &["executions", "start", "queue"]).await).trim().to_owned();

    let table = rows(&ok(&run(&s, &["executions", "list", "queue"]).await));
    assert_eq!(table[0], ["ID", "STATUS", "COMMIT", "VERSION", "TRIGGER", "STARTED", "UPDATED"]);
    assert_eq!(row(&table, &first)[1..3], ["InProgress", "0123456"], "{table:?}");
    assert_eq!(row(&table, &second)[1..3], [format!("waiting behind {first}"), "-".to_owned()], "{table:?}");
    let got = ok(&run(&s, &["executions", "get", "queue", &second]).await);
    assert!(got.contains(&format!("Status:    InProgress (waiting behind execution {first})")), "{got}");
    let got = ok(&run(&s, &["executions", "get", "queue", &first]).await);
    assert!(got.contains(&format!("Commit:    {sha}")) && !got.contains("waiting behind"), "{got}");
    let list: Value =
        serde_json::from_str(&ok(&run(&s, &["--output", "json", "executions", "list", "queue"]).await)).unwrap();
    let by_id = |id: &str| list["executions"].as_array().unwrap().iter().find(|e| e["id"] == id).unwrap().clone();
    assert_eq!(by_id(&second)["waitingFor"], first.as_str());
    assert_eq!(by_id(&first)["commitId"], sha);
    assert!(by_id(&first).get("waitingFor").is_none());

    // A third, awaited: it says once what it waits behind, then how it ended.
    let out = run(&s, &["executions", "start", "queue", "--wait"]).await;
    let third = ok(&out).trim().to_owned();
    let err = stderr(&out);
    assert_eq!(err.matches("is waiting behind execution").count(), 1, "{err}");
    assert!(err.trim_end().ends_with(&format!("pipehook: execution {third} ended: Succeeded")), "{err}");
    // Nothing waits once they have all run.
    let table = rows(&ok(&run(&s, &["executions", "list", "queue"]).await));
    assert!(table[1..].iter().all(|r| r[1] == "Succeeded"), "{table:?}");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn pings_and_the_delivery_log_say_what_happened() {
    let r = Receiver::start().await;
    let s = server()
        .env("PIPEHOOK_OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8")
        // One retry, a minute later: long enough to see a delivery waiting for it.
        .env("PIPEHOOK_OUTBOUND_RETRY_SCHEDULE", "60")
        .start()
        .await
        .unwrap();
    let ci_url = format!("{}/ci", r.url);
    ok(&run(&s, &["hooks", "create", "ci", "--url", &ci_url]).await);
    ok(&run(&s, &["hooks", "create", "gone", "--url", "http://127.0.0.1:1/hook"]).await);
    let table = rows(&ok(&run(&s, &["hooks", "list"]).await));
    assert_eq!(table[0], ["NAME", "DISPLAY NAME", "ACTIVE", "FORMAT", "SECRET", "KINDS", "HEALTH", "URL"]);
    assert_eq!(row(&table, "ci")[6], "-", "no attempts yet: {table:?}");

    // A ping the receiver refuses: the answer on stdout, why on stderr, exit 1; each ping is its own delivery,
    // so it is attempt 1.
    r.script("ci", vec![status(500)]);
    let out = run(&s, &["hooks", "ping", "ci"]).await;
    let err = exits(&out, 1);
    assert_eq!(err, "pipehook: ping of hook ci failed: HTTP 500 Internal Server Error");
    let said = stdout(&out);
    assert!(said.contains("response 500") && said.contains("FAILED") && said.contains(", attempt 1)"), "{said}");
    assert!(said.contains("receiver says hi"), "the body: {said}");
    let out = run(&s, &["hooks", "ping", "ci"]).await;
    assert!(ok(&out).contains("(delivered; delivery ") && stdout(&out).contains(", attempt 1)"), "{}", stdout(&out));
    // An unreachable receiver: exit 1 with the reason.
    let err = exits(&run(&s, &["hooks", "ping", "gone"]).await, 1);
    assert!(err.starts_with("pipehook: ping of hook gone failed: ") && err.contains("refused"), "{err}");

    // A published event whose first attempt fails waits for its retry.
    r.script("ci", vec![status(500)]);
    let publish = ["events", "publish", "--kind", "build_failed", "--payload", r#"{"n": 1}"#];
    ok(&run(&s, &publish).await);
    let got = r.wait("ci", 3).await;
    let delivery = got[2].header("pulumi-webhook-id").unwrap();
    let mut table = Vec::new();
    for _ in 0..100 {
        table = rows(&ok(&run(&s, &["deliveries", "list", "ci"]).await));
        if table.iter().any(|r| r[0] == delivery) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(table[0], ["DELIVERY", "KIND", "STATUS", "ATTEMPT", "TIME", "RESPONSE", "NEXT RETRY", "ERROR"]);
    let retrying = row(&table, &delivery);
    assert_eq!(retrying[1..4], ["build_failed", "retrying", "1"], "{table:?}");
    assert_eq!(retrying[5], "500");
    assert!(retrying[6].ends_with('Z') && retrying[6] > retrying[4], "next retry after the attempt: {retrying:?}");
    assert_eq!(retrying[7], "HTTP 500 Internal Server Error");
    let pings: Vec<&Vec<String>> = table.iter().filter(|r| r[1] == "ping").collect();
    assert_eq!(pings.len(), 2, "{table:?}");
    assert!(pings.iter().all(|p| p[3] == "1 (ping)"), "{table:?}");
    let statuses: Vec<&str> = pings.iter().map(|p| p[2].as_str()).collect();
    assert_eq!(statuses, ["succeeded", "failed"], "newest first: {table:?}");
    assert_eq!((pings[1][6].as_str(), pings[1][7].as_str()), ("-", "HTTP 500 Internal Server Error"));
    let json: Value =
        serde_json::from_str(&ok(&run(&s, &["--output", "json", "deliveries", "list", "ci"]).await)).unwrap();
    let first = &json["deliveries"][0];
    assert_eq!((first["id"].as_str(), first["deliveryStatus"].as_str()), (Some(delivery.as_str()), Some("retrying")));
    assert!(first["nextRetry"].as_i64().unwrap() > first["timestamp"].as_i64().unwrap(), "{first}");

    // get takes the delivery id, like redeliver.
    let got = ok(&run(&s, &["deliveries", "get", "ci", &delivery]).await);
    for want in [
        format!("Delivery:  {delivery}"),
        "Kind:      build_failed".to_owned(),
        "Status:    retrying (next attempt at ".to_owned(),
        "Attempt:   1 (scheduled)".to_owned(),
        "Error:     HTTP 500 Internal Server Error".to_owned(),
    ] {
        assert!(got.contains(&want), "{want:?} in {got}");
    }
    // Redelivered now: attempt 2 of the same delivery, which has succeeded.
    let out = ok(&run(&s, &["deliveries", "redeliver", "ci", &delivery]).await);
    assert!(out.contains(&format!("(delivered; delivery {delivery}, attempt 2)")), "{out}");
    let table = rows(&ok(&run(&s, &["deliveries", "list", "ci"]).await));
    assert_eq!(table[1][..4], [delivery.as_str(), "build_failed", "succeeded", "2 (redeliver)"], "{table:?}");
    assert_eq!(table[1][5..], ["200", "-", "-"], "{table:?}");
    let got = ok(&run(&s, &["deliveries", "get", "ci", &delivery]).await);
    assert!(got.contains("Status:    succeeded\n") && got.contains("Attempt:   2 (redeliver)"), "{got}");
    let got = ok(&run(&s, &["deliveries", "get", "ci", &delivery, "--attempt", "1"]).await);
    assert!(got.contains("Attempt:   1 (scheduled)") && got.contains("Response:  500"), "{got}");
    let err = exits(&run(&s, &["deliveries", "get", "ci", &delivery, "--attempt", "5"]).await, 1);
    assert_eq!(err, format!("pipehook: delivery {delivery} of hook ci has no attempt 5 (it has 2)"));
    for command in ["get", "redeliver"] {
        let err = exits(&run(&s, &["deliveries", command, "ci", "7"]).await, 2);
        assert!(err.contains("deliveries are named by their id"), "{err}");
    }
    // A redelivery the receiver refuses: exit 1, and the hook is failing.
    r.script("ci", vec![status(500)]);
    let out = run(&s, &["deliveries", "redeliver", "ci", &delivery]).await;
    let err = exits(&out, 1);
    assert_eq!(err, "pipehook: redelivery of hook ci failed: HTTP 500 Internal Server Error");
    assert!(stdout(&out).contains(", attempt 3)"), "{}", stdout(&out));

    // Another event: its own delivery, attempt 1, not a count across the hook.
    ok(&run(&s, &["events", "publish", "--kind", "build_succeeded"]).await);
    r.wait("ci", 6).await;
    let mut table = Vec::new();
    for _ in 0..100 {
        table = rows(&ok(&run(&s, &["deliveries", "list", "ci"]).await));
        if table[1][1] == "build_succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(table[1][1..4], ["build_succeeded", "succeeded", "1"], "{table:?}");

    // Hook health.
    let table = rows(&ok(&run(&s, &["hooks", "list"]).await));
    assert_eq!(row(&table, "ci")[6], "ok", "{table:?}");
    // The ping and the published events (each waiting for its retry) all failed to connect.
    assert!(row(&table, "gone")[6].starts_with("failing ("), "{table:?}");
    let got = ok(&run(&s, &["hooks", "get", "gone"]).await);
    assert!(got.contains("Health:    failing: ") && got.contains("Succeeded: never"), "{got}");
    let got = ok(&run(&s, &["hooks", "get", "ci"]).await);
    assert!(got.contains("Health:    ok (the last attempt succeeded)") && got.contains("Failed:    20"), "{got}");
    s.stop().await.unwrap();
}

/// Runs `args` with standard output a pipe whose reader is closed before anything is written, as `| head` does
/// once it has what it wants, and returns the outcome.
async fn into_closed_pipe(s: &TestServer, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::from(pipehook_cmd());
    cmd.envs(&s.env).env("PIPEHOOK_SERVER", &s.url).envs(ENV.iter().copied()).args(args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take());
    child.wait_with_output().await.unwrap()
}

#[tokio::test]
async fn output_into_a_closed_pipe_ends_quietly() {
    let s = server().start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3 {
        create_pipeline(&s, dir.path(), declaration(&format!("p{i}"), "echo hi", "PARALLEL")).await;
    }
    // Client commands: exit 0, the reader has what it wanted. The others (here a database command, written with
    // println!): 141, as if killed by SIGPIPE, since what they print may matter (serve's one-time credentials).
    for (args, code) in [
        (&["pipelines", "list"][..], 0),
        (&["--output", "json", "pipelines", "list"], 0),
        (&["executions", "list", "p0"], 0),
        (&["completions", "bash"], 0),
        (&["org", "list"], 141),
    ] {
        let out = into_closed_pipe(&s, args).await;
        let err = stderr(&out);
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    }
    s.stop().await.unwrap();
}

#[tokio::test]
async fn no_colour_codes_in_redirected_logs() {
    // The logs of a fresh installation's first start, to a pipe: plain text.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = pipehook_cmd()
        .env("RUST_LOG", "info")
        .args(["migrate", "--data-dir", data.to_str().unwrap()])
        .output()
        .expect("run pipehook");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("INFO"), "a log line: {err}");
    assert!(!err.contains('\x1b'), "no escape codes in a pipe: {err:?}");
    // On a terminal (script(1) gives it one) they are coloured, unless NO_COLOR is set.
    if std::process::Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: the terminal half of no_colour_codes_in_redirected_logs needs script(1)");
        return;
    }
    let on_terminal = |no_color: bool, data: &std::path::Path| {
        let bin = env!("CARGO_BIN_EXE_pipehook");
        let inner = format!("{bin} migrate --data-dir {}", data.display());
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-qec", &inner, "/dev/null"]).env("RUST_LOG", "info").env_remove("NO_COLOR");
        cmd.env_remove("PIPEHOOK_DATA_DIR").env_remove("PIPEHOOK_DATABASE_URL");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        String::from_utf8_lossy(&cmd.output().expect("run script").stdout).into_owned()
    };
    let coloured = on_terminal(false, &dir.path().join("tty"));
    assert!(coloured.contains("INFO") && coloured.contains('\x1b'), "coloured on a terminal: {coloured:?}");
    let plain = on_terminal(true, &dir.path().join("tty-no-color"));
    assert!(plain.contains("INFO") && !plain.contains('\x1b'), "NO_COLOR: {plain:?}");
}

/// The standard output of a command that must succeed without a server.
fn help(args: &[&str]) -> String {
    let out = pipehook_cmd().args(args).output().expect("run pipehook");
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn client_help_has_examples_and_no_server_options() {
    let server_only = ["--database-url", "--data-dir", "--log-format", "--config"];
    let groups = [
        "pipelines",
        "executions",
        "logs",
        "webhooks",
        "inbound",
        "hooks",
        "deliveries",
        "events",
        "projects",
        "builds",
        "project-webhooks",
        "completions",
    ];
    for group in groups {
        for flag in ["-h", "--help"] {
            let text = help(&[group, flag]);
            for option in server_only {
                assert!(!text.contains(option), "{group} {flag} shows {option}: {text}");
            }
            assert!(text.contains("Examples:\n") && text.contains(&format!("pipehook {group} ")), "{group}: {text}");
        }
    }
    let text = help(&["pipelines", "--help"]);
    assert!(text.contains("Exit codes:") && text.contains("--token"), "{text}");
    // Nested commands too.
    let text = help(&["deliveries", "list", "--help"]);
    assert!(!text.contains("--database-url") && text.contains("--limit"), "{text}");
    // The server commands keep their options, without the client's.
    let text = help(&["serve", "--help"]);
    assert!(text.contains("--data-dir") && text.contains("--database-url") && !text.contains("--token"), "{text}");
    let text = help(&["--help"]);
    assert!(text.contains("Exit codes:") && text.contains("--data-dir") && text.contains("--server"), "{text}");
    // The server options still work before and after the command.
    let dir = tempfile::tempdir().unwrap();
    for args in [["--data-dir", "", "migrate"], ["migrate", "--data-dir", ""]] {
        let data = dir.path().join(args.join("-"));
        let args: Vec<&str> = args.iter().map(|a| if a.is_empty() { data.to_str().unwrap() } else { a }).collect();
        let out = pipehook_cmd().args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(data.join("pipehook.db").exists(), "{args:?}");
    }
}

#[test]
fn shell_completions() {
    let bash = help(&["completions", "bash"]);
    assert!(bash.contains("complete -F") && bash.contains("pipelines") && bash.contains("deliveries"), "{bash}");
    assert!(help(&["completions", "zsh"]).starts_with("#compdef pipehook"));
    assert!(help(&["completions", "fish"]).contains("complete -c pipehook"));
    help(&["completions", "powershell"]);
    help(&["completions", "elvish"]);
    let out = pipehook_cmd().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
