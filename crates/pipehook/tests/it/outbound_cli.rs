//! The outbound-webhook client commands of the real binary (`pipehook hooks ...`, `pipehook deliveries ...`,
//! `pipehook events publish`) against the in-process server, delivering to a local receiver. Every output is
//! checked for the hook secret, which must never be printed.

use serde_json::{json, Value};
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

use crate::outbound::{status, Receiver};
use crate::support::{pipehook_cmd, TestServer, TOKEN};

const SECRET: &str = "cli-hook-secret-never-printed";

async fn server() -> TestServer {
    TestServer::builder()
        .env("PIPEHOOK_OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8")
        .env("PIPEHOOK_OUTBOUND_RETRY_SCHEDULE", "1,1,1")
        .env("PIPEHOOK_WORKER_POLL_MS", "50")
        .start()
        .await
        .expect("server")
}

/// The binary pointed at the server through the environment, as a user would configure it, with `env` added.
fn client(s: &TestServer, env: &[(&str, &str)], args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::from(pipehook_cmd());
    cmd.env("PIPEHOOK_SERVER", &s.url).env("PIPEHOOK_TOKEN", TOKEN).envs(env.iter().copied()).args(args);
    cmd
}

fn checked(args: &[&str], out: Output) -> Output {
    for (name, stream) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(stream);
        assert!(!text.contains(SECRET), "the secret was printed on {name} by {args:?}: {text}");
        assert!(!text.contains("panicked"), "{args:?} panicked: {text}");
    }
    out
}

/// Runs a client command asynchronously (the server it calls runs on this test's runtime).
async fn run(s: &TestServer, args: &[&str]) -> Output {
    run_env(s, &[], args).await
}

async fn run_env(s: &TestServer, env: &[(&str, &str)], args: &[&str]) -> Output {
    checked(args, client(s, env, args).output().await.expect("run pipehook"))
}

/// Runs a client command with `input` on its standard input.
async fn run_stdin(s: &TestServer, args: &[&str], input: &[u8]) -> Output {
    let mut cmd = client(s, &[], args);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn pipehook");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).await.unwrap();
    drop(stdin);
    checked(args, child.wait_with_output().await.unwrap())
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns standard output.
fn ok(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}: {}{}", o.status.code(), stdout(o), stderr(o));
    stdout(o)
}

fn ok_json(o: &Output) -> Value {
    let out = ok(o);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// Asserts a failure with `code`, reported as one line, and returns it.
fn failed(o: &Output, code: i32) -> String {
    assert_eq!(o.status.code(), Some(code), "stdout: {} stderr: {}", stdout(o), stderr(o));
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("pipehook: "), "{err}");
    assert!(stdout(o).is_empty(), "nothing on stdout: {}", stdout(o));
    err.trim().to_owned()
}

/// The rows of a table (header first), split on runs of two or more spaces.
fn rows(table: &str) -> Vec<Vec<String>> {
    table.lines().map(|l| l.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect()).collect()
}

async fn rest_get(s: &TestServer, path: &str) -> (u16, Value) {
    let (code, v) = s.get(&format!("/api{path}"), Some(TOKEN)).await;
    assert!(!v.to_string().contains(SECRET));
    (code, v)
}

#[tokio::test]
async fn hooks_are_managed_in_every_scope_from_flags_and_files() {
    let s = server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();

    // From flags, the secret read from the environment variable named by --secret-env.
    let out = ok(&run_env(
        &s,
        &[("ORG_HOOK_SECRET", SECRET)],
        &[
            "hooks",
            "create",
            "org-hook",
            "--url",
            "https://hooks.example.com/ci?task=build",
            "--display-name",
            "Org hook",
            "--secret-env",
            "ORG_HOOK_SECRET",
            "--filter",
            "build_succeeded",
            "--filter",
            "update_succeeded",
            "--group",
            "pipelines",
        ],
    )
    .await);
    assert_eq!(
        out.trim(),
        "created hook org-hook (organization default) -> https://hooks.example.com/ci?task=build",
        "{out}"
    );
    let (code, h) = rest_get(&s, "/orgs/default/hooks/org-hook").await;
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["hasSecret"], true);
    assert_eq!(h["displayName"], "Org hook");
    assert_eq!(h["active"], true);
    assert_eq!(h["filters"], json!(["build_succeeded", "update_succeeded"]));
    assert_eq!(h["groups"], json!(["pipelines"]));

    // The fewest flags: the display name defaults to the name; --inactive.
    ok(&run(&s, &["hooks", "create", "quiet", "--url", "https://hooks.example.com/q", "--inactive"]).await);
    let (_, q) = rest_get(&s, "/orgs/default/hooks/quiet").await;
    assert_eq!(
        (q["displayName"].as_str(), q["active"].as_bool(), q["hasSecret"].as_bool()),
        (Some("quiet"), Some(false), Some(false))
    );

    // From a file, in a stack's scope: projectName, stackName and organizationName are filled in.
    let stack_hook = json!({"name": "stack-hook", "displayName": "Stack", "payloadUrl": "https://hooks.example.com/stack",
        "active": true, "format": "pulumi_deployments", "secret": SECRET});
    std::fs::write(path("stack.json"), serde_json::to_vec_pretty(&stack_hook).unwrap()).unwrap();
    let out = ok(&run(&s, &["hooks", "create", "--file", &path("stack.json"), "--stack", "web/prod"]).await);
    assert_eq!(out.trim(), "created hook stack-hook (stack web/prod) -> https://hooks.example.com/stack");
    let (code, sh) = rest_get(&s, "/stacks/default/web/prod/hooks/stack-hook").await;
    assert_eq!(code, 200, "{sh}");
    assert_eq!((sh["projectName"].as_str(), sh["stackName"].as_str()), (Some("web"), Some("prod")));
    assert_eq!(sh["format"], "pulumi_deployments");
    assert_eq!(sh["hasSecret"], true);

    // From standard input, in an environment's scope, named on the command line.
    let env_hook = json!({"displayName": "Env", "payloadUrl": "https://hooks.example.com/env", "active": true,
        "format": "ms_teams"});
    let out = run_stdin(
        &s,
        &["hooks", "create", "env-hook", "--file", "-", "--env", "web/production"],
        &serde_json::to_vec(&env_hook).unwrap(),
    )
    .await;
    assert_eq!(ok(&out).trim(), "created hook env-hook (environment web/production) -> https://hooks.example.com/env");

    // Each scope lists its own hooks.
    let org_list = rows(&ok(&run(&s, &["hooks", "list"]).await));
    assert_eq!(org_list[0], ["NAME", "DISPLAY NAME", "ACTIVE", "FORMAT", "SECRET", "KINDS", "HEALTH", "URL"]);
    let names: Vec<&str> = org_list[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["org-hook", "quiet"], "{org_list:?}");
    let org_row = &org_list[1];
    assert_eq!(
        org_row[1..],
        [
            "Org hook",
            "yes",
            "raw",
            "yes",
            "build_succeeded,update_succeeded groups:pipelines",
            "-",
            "https://hooks.example.com/ci?task=build"
        ]
    );
    assert_eq!(org_list[2][2..6], ["no", "raw", "no", "all"]);
    let stack_list = rows(&ok(&run(&s, &["hooks", "list", "--stack", "web/prod"]).await));
    assert_eq!(stack_list.len(), 2, "{stack_list:?}");
    assert_eq!(stack_list[1][0], "stack-hook");
    assert_eq!(stack_list[1][3], "pulumi_deployments");
    assert_eq!(rows(&ok(&run(&s, &["hooks", "list", "--stack", "web/dev"]).await)).len(), 1, "header only");
    let env_list = ok_json(&run(&s, &["--output", "json", "hooks", "--env", "web/production", "list"]).await);
    assert_eq!(env_list.as_array().unwrap().len(), 1, "{env_list}");
    assert_eq!(env_list[0]["name"], "env-hook");
    assert_eq!(env_list[0]["envName"], "production");
    assert_eq!(env_list[0]["organizationName"], "default");

    // get: the table says a secret is set, never what it is; JSON is the server's (ciphertext only).
    let got = ok(&run(&s, &["hooks", "get", "org-hook"]).await);
    for want in [
        "Name:      org-hook",
        "Display:   Org hook",
        "Scope:     organization default",
        "URL:       https://hooks.example.com/ci?task=build",
        "Active:    yes",
        "Format:    raw",
        "Secret:    set (never shown)",
        "Kinds:     build_succeeded,update_succeeded groups:pipelines",
    ] {
        assert!(got.contains(want), "{want:?} in {got}");
    }
    let got = ok_json(&run(&s, &["hooks", "get", "stack-hook", "--stack", "web/prod", "--output", "json"]).await);
    assert_eq!(got["hasSecret"], true);
    assert!(!got["secretCiphertext"].as_str().unwrap().is_empty());

    // update: a partial body; the secret is kept.
    std::fs::write(path("patch.json"), br#"{"displayName": "Renamed", "active": false, "filters": []}"#).unwrap();
    let out = ok(&run(&s, &["hooks", "update", "org-hook", "--file", &path("patch.json")]).await);
    assert_eq!(out.trim(), "updated hook org-hook (organization default)");
    let (_, h) = rest_get(&s, "/orgs/default/hooks/org-hook").await;
    assert_eq!((h["displayName"].as_str(), h["active"].as_bool()), (Some("Renamed"), Some(false)));
    assert_eq!(h["filters"], json!([]));
    assert_eq!(h["hasSecret"], true, "an update without a secret keeps it");
    let got = ok(&run(&s, &["hooks", "get", "org-hook"]).await);
    assert!(got.contains("Active:    no") && got.contains("Kinds:     groups:pipelines"), "{got}");

    // delete, in its scope.
    let out = ok(&run(&s, &["hooks", "delete", "stack-hook", "--stack", "web/prod"]).await);
    assert_eq!(out.trim(), "deleted hook stack-hook (stack web/prod)");
    let err = failed(&run(&s, &["hooks", "get", "stack-hook", "--stack", "web/prod"]).await, 1);
    assert_eq!(err, "pipehook: 404 Webhook not found");
    let deleted = ok_json(&run(&s, &["hooks", "delete", "quiet", "--output", "json"]).await);
    assert_eq!(deleted, json!({"deleted": "quiet"}));
    s.stop().await.unwrap();
}

#[tokio::test]
async fn ping_publish_deliveries_and_redeliver() {
    let r = Receiver::start().await;
    let s = server().await;
    let secret_env = [("HOOK_SECRET", SECRET)];
    let p_url = format!("{}/p", r.url);
    ok(&run_env(&s, &secret_env, &["hooks", "create", "p", "--url", &p_url, "--secret-env", "HOOK_SECRET"]).await);
    let dev_url = format!("{}/dev", r.url);
    ok(&run(&s, &["hooks", "create", "dev", "--url", &dev_url, "--stack", "web/dev"]).await);

    // ping: straight to the URL, the answer shown.
    let out = ok(&run(&s, &["hooks", "ping", "p"]).await);
    assert!(out.starts_with(&format!("ping of hook p to {p_url}: response 200 in ")), "{out}");
    assert!(out.contains("(delivered; delivery "), "{out}");
    let got = r.wait("p", 1).await;
    assert_eq!(got[0].json()["kind"], "ping");
    assert!(got[0].header("pulumi-webhook-signature").is_some(), "the secret from --secret-env signs");
    // A failing receiver: the code and its body, and exit 1 with why.
    r.script("down", vec![status(500)]);
    let down_url = format!("{}/down", r.url);
    ok(&run(&s, &["hooks", "create", "down", "--url", &down_url]).await);
    let out = run(&s, &["hooks", "ping", "down"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stderr(&out).trim(), "pipehook: ping of hook down failed: HTTP 500 Internal Server Error");
    let out = stdout(&out);
    assert!(out.contains("response 500") && out.contains("FAILED"), "{out}");
    assert!(out.contains("receiver says hi"), "{out}");
    ok(&run(&s, &["hooks", "delete", "down"]).await);

    // publish: the id alone on stdout; the event reaches the organization's and the stack's hooks.
    let publish = [
        "events",
        "publish",
        "--kind",
        "update_succeeded",
        "--payload",
        r#"{"stackName": "dev", "result": "succeeded"}"#,
        "--project",
        "web",
        "--stack",
        "dev",
        "--idempotency-key",
        "job-42",
    ];
    let first = run(&s, &publish).await;
    let id = ok(&first).trim().to_owned();
    assert!(!id.is_empty() && !id.contains(char::is_whitespace), "{id:?}");
    assert_eq!(stderr(&first).trim(), "pipehook: 2 deliveries queued");
    let got = r.wait("p", 2).await;
    assert_eq!(got[1].json(), json!({"stackName": "dev", "result": "succeeded"}));
    assert_eq!(got[1].header("pulumi-webhook-kind").as_deref(), Some("update_succeeded"));
    let delivery_id = got[1].header("pulumi-webhook-id").unwrap();
    let dev_got = r.wait("dev", 1).await;
    assert_eq!(dev_got[0].header("pulumi-webhook-kind").as_deref(), Some("update_succeeded"));
    // The same idempotency key: the same id, nothing sent again.
    let again = run(&s, &publish).await;
    assert_eq!(ok(&again).trim(), id);
    assert!(stderr(&again).contains("already published"), "{}", stderr(&again));
    // From a file, as JSON.
    let dir = tempfile::tempdir().unwrap();
    let payload = dir.path().join("payload.json");
    std::fs::write(&payload, br#"{"app_name": "web", "build_num": 7}"#).unwrap();
    let published = ok_json(
        &run(
            &s,
            &[
                "events",
                "publish",
                "--kind",
                "build_succeeded",
                "--payload-file",
                payload.to_str().unwrap(),
                "--output",
                "json",
            ],
        )
        .await,
    );
    assert_eq!((published["deliveries"].as_i64(), published["duplicate"].as_bool()), (Some(1), Some(false)));
    let got = r.wait("p", 3).await;
    assert_eq!(got[2].json(), json!({"app_name": "web", "build_num": 7}));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(r.got("p").len(), 3, "the duplicate publish sent nothing");

    // deliveries list: newest first, once the worker has logged the attempts.
    let mut table = Vec::new();
    for _ in 0..100 {
        table = rows(&ok(&run(&s, &["deliveries", "list", "p"]).await));
        if table.len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(table[0], ["DELIVERY", "KIND", "STATUS", "ATTEMPT", "TIME", "RESPONSE", "NEXT RETRY", "ERROR"]);
    let kinds: Vec<&str> = table[1..].iter().map(|r| r[1].as_str()).collect();
    let mut sorted = kinds[..2].to_vec();
    sorted.sort();
    assert_eq!(sorted, ["build_succeeded", "update_succeeded"], "{table:?}");
    assert_eq!(kinds[2], "ping", "{table:?}");
    let update = table.iter().find(|r| r[1] == "update_succeeded").unwrap().clone();
    assert_eq!(update[0], delivery_id);
    assert!(update[4].ends_with('Z') && update[4].len() == 20, "RFC 3339 time: {update:?}");
    assert_eq!(update[2..4], ["succeeded", "1"], "{update:?}");
    assert_eq!(update[5..], ["200", "-", "-"], "{update:?}");
    assert_eq!(table[3][3], "1 (ping)");

    // deliveries get: the delivery, by its id, with its attempt in full.
    let detail = ok(&run(&s, &["deliveries", "get", "p", &delivery_id]).await);
    for want in [
        "Attempt:   1 (scheduled)".to_owned(),
        format!("Delivery:  {delivery_id}"),
        "Kind:      update_succeeded".to_owned(),
        format!("URL:       {p_url}"),
        "Response:  200".to_owned(),
        "pulumi-webhook-kind: update_succeeded".to_owned(),
        "\"stackName\": \"dev\"".to_owned(),
        "Response body:\n  receiver says hi".to_owned(),
    ] {
        assert!(detail.contains(&want), "{want:?} in {detail}");
    }
    let err = failed(&run(&s, &["deliveries", "get", "p", "no-such-delivery"]).await, 1);
    assert_eq!(err, "pipehook: 404 Delivery not found");

    // redeliver: the same event, the same id, now.
    let out = ok(&run(&s, &["deliveries", "redeliver", "p", &delivery_id]).await);
    assert!(out.starts_with(&format!("redelivery of hook p to {p_url}: response 200 in ")), "{out}");
    assert!(out.contains(&format!("delivery {delivery_id}")), "{out}");
    let got = r.wait("p", 4).await;
    assert_eq!(got[3].header("pulumi-webhook-id").unwrap(), delivery_id);
    assert_eq!(got[3].body, got[1].body);
    let err = failed(&run(&s, &["deliveries", "redeliver", "p", "no-such-delivery"]).await, 1);
    assert_eq!(err, "pipehook: 404 WebhookEvent not found");

    // Pages: --limit, the cursor on stderr, --before; JSON carries the cursor.
    let first_page = run(&s, &["deliveries", "list", "p", "--limit", "2"]).await;
    let page = rows(&ok(&first_page));
    assert_eq!(page.len(), 3, "{page:?}");
    assert_eq!(page[1][3], "2 (redeliver)");
    let hint = stderr(&first_page);
    let before = hint.trim().strip_prefix("pipehook: more attempts: add --before ").expect("a cursor").to_owned();
    assert!(before.parse::<i64>().is_ok(), "{before}");
    let rest = ok_json(&run(&s, &["deliveries", "list", "p", "--before", &before, "--output", "json"]).await);
    let rest_kinds: Vec<&str> =
        rest["deliveries"].as_array().unwrap().iter().map(|d| d["trigger"].as_str().unwrap()).collect();
    assert_eq!(rest_kinds.len(), 2, "{rest}");
    assert_eq!(rest_kinds[1], "ping");
    assert_eq!(rest["nextBefore"], Value::Null);
    let json_page = ok_json(&run(&s, &["--output", "json", "deliveries", "list", "p", "--limit", "1"]).await);
    assert_eq!(json_page["deliveries"].as_array().unwrap().len(), 1);
    assert!(json_page["nextBefore"].as_i64().is_some(), "{json_page}");
    for d in json_page["deliveries"].as_array().unwrap() {
        assert!(!d["requestHeaders"].as_str().unwrap().contains(SECRET));
    }

    // The stack hook's log, in its scope.
    let mut dev = Vec::new();
    for _ in 0..100 {
        dev = rows(&ok(&run(&s, &["deliveries", "list", "dev", "--stack", "web/dev"]).await));
        if dev.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dev.len(), 2, "{dev:?}");
    assert_eq!(dev[1][1], "update_succeeded");
    let err = failed(&run(&s, &["deliveries", "list", "dev"]).await, 1);
    assert_eq!(err, "pipehook: 404 Webhook not found", "not an organization hook");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn bad_input_exits_2_and_server_errors_exit_1() {
    let s = server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    std::fs::write(path("bad.json"), b"{\"name\": ").unwrap();
    std::fs::write(path("array.json"), b"[1, 2]").unwrap();
    std::fs::write(path("named.json"), br#"{"name": "in-file", "displayName": "x"}"#).unwrap();
    std::fs::write(path("payload-array.json"), b"[]").unwrap();

    let usage: Vec<(Vec<String>, String)> = vec![
        (vec!["hooks", "list", "--stack", "web"], "pipehook: --stack 'web': expected PROJECT/STACK, e.g. web/prod"),
        (vec!["hooks", "list", "--env", "web/prod/x"], "pipehook: --env 'web/prod/x': expected PROJECT/ENV, e.g. web/prod"),
        (vec!["hooks", "list", "--stack", "a/b", "--env", "c/d"], "pipehook: give --stack or --env, not both"),
        (
            vec!["hooks", "create", "x", "--url", "https://h.example/", "--secret-env", "PIPEHOOK_TEST_UNSET_VAR"],
            "pipehook: --secret-env PIPEHOOK_TEST_UNSET_VAR: the environment variable PIPEHOOK_TEST_UNSET_VAR is not set or empty",
        ),
        (vec!["hooks", "create"], "pipehook: give --file FILE (a Webhook JSON), or NAME --url URL to create a hook"),
        (vec!["hooks", "create", "--url", "https://h.example/"], "pipehook: give the hook's name: pipehook hooks create NAME --url URL"),
        (vec!["events", "publish", "--kind", "build_failed", "--payload", "{"], "pipehook: --payload is not valid JSON"),
        (vec!["events", "publish", "--kind", "build_failed", "--payload", "[1]"], "pipehook: --payload: the payload must be a JSON object"),
        (vec!["events", "publish", "--kind", "build_failed", "--stack", "dev"], "pipehook: --stack needs --project"),
        (
            vec!["events", "publish", "--kind", "build_failed", "--idempotency-key", "a b"],
            "pipehook: --idempotency-key: use visible ASCII characters, without spaces",
        ),
    ]
    .into_iter()
    .map(|(a, m)| (a.into_iter().map(str::to_owned).collect(), m.to_owned()))
    .collect();
    let files: Vec<(Vec<String>, String)> = vec![
        (vec!["hooks".into(), "create".into(), "--file".into(), path("missing.json")], "cannot read ".to_owned()),
        (vec!["hooks".into(), "create".into(), "--file".into(), path("bad.json")], "bad.json is not valid JSON".into()),
        (
            vec!["hooks".into(), "create".into(), "--file".into(), path("array.json")],
            "a Webhook must be a JSON object".into(),
        ),
        (
            vec!["hooks".into(), "create".into(), "other".into(), "--file".into(), path("named.json")],
            "the name other disagrees with the name in-file".into(),
        ),
        (
            vec!["hooks".into(), "update".into(), "x".into(), "--file".into(), path("array.json")],
            "a Webhook must be a JSON object".into(),
        ),
        (
            vec![
                "events".into(),
                "publish".into(),
                "--kind".into(),
                "x".into(),
                "--payload-file".into(),
                path("payload-array.json"),
            ],
            "the payload must be a JSON object".into(),
        ),
    ];
    for (args, want) in usage.into_iter().chain(files) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = failed(&run(&s, &args).await, 2);
        assert!(err.starts_with(&want) || err.contains(&want), "{args:?}: {err}");
    }
    // Without a token.
    let mut cmd = tokio::process::Command::from(pipehook_cmd());
    cmd.env("PIPEHOOK_SERVER", &s.url).args(["hooks", "list"]);
    let err = failed(&cmd.output().await.unwrap(), 2);
    assert!(err.contains("no API token"), "{err}");
    // clap's own usage errors also exit 2.
    for args in [
        &["deliveries", "list", "p", "--limit", "0"][..],
        &["hooks", "create", "x", "--file", "a.json", "--url", "https://h.example/"],
        &["deliveries", "get", "p", "d1", "--attempt", "not-a-number"],
        &["events", "publish", "--kind", "x", "--payload", "{}", "--payload-file", "p.json"],
        &["events", "publish"],
    ] {
        let out = run(&s, args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with("error: "), "{args:?}: {}", stderr(&out));
    }

    // Server errors: the server's message, exit 1.
    let server_errors: Vec<(Vec<&str>, &str)> = vec![
        (vec!["hooks", "create", "bad", "--url", "ftp://h.example/"], "pipehook: 400 invalid payload URL"),
        (vec!["hooks", "create", "bad name", "--url", "https://h.example/"], "pipehook: 400 invalid webhook name"),
        (
            vec!["hooks", "create", "x", "--url", "https://h.example/", "--filter", "made_up"],
            "pipehook: 400 invalid filter \"made_up\"",
        ),
        (
            vec!["hooks", "create", "x", "--url", "https://h.example/", "--format", "pulumi_deployments"],
            "pipehook: 400 'pulumi_deployments' format can only be used on stack or environment webhooks",
        ),
        (vec!["hooks", "get", "missing"], "pipehook: 404 Webhook not found"),
        (vec!["hooks", "ping", "missing", "--env", "web/prod"], "pipehook: 404 Webhook not found"),
        (vec!["events", "publish", "--kind", "nope"], "pipehook: 400 unknown event kind"),
    ];
    for (args, want) in server_errors {
        let err = failed(&run(&s, &args).await, 1);
        assert!(err.starts_with(want), "{args:?}: {err}");
    }
    ok(&run(&s, &["hooks", "create", "dup", "--url", "https://h.example/"]).await);
    let err = failed(&run(&s, &["hooks", "create", "dup", "--url", "https://h.example/"]).await, 1);
    assert_eq!(err, "pipehook: 409 Webhook with name dup already exists");
    // The body's stack must agree with --stack.
    std::fs::write(
        path("other-stack.json"),
        br#"{"name": "s", "displayName": "S", "payloadUrl": "https://h.example/",
        "active": true, "projectName": "web", "stackName": "dev"}"#,
    )
    .unwrap();
    let err =
        failed(&run(&s, &["hooks", "create", "--file", &path("other-stack.json"), "--stack", "web/prod"]).await, 1);
    assert_eq!(err, "pipehook: 400 Stack name from request body doesn't match URL");
    // An unreachable server.
    let err = failed(&run(&s, &["--server", "http://127.0.0.1:1", "hooks", "list"]).await, 1);
    assert!(err.starts_with("pipehook: cannot reach http://127.0.0.1:1/api/orgs/default/hooks"), "{err}");
    s.stop().await.unwrap();
}
