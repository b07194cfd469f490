//! The quickstart as a new user runs it: `examples/quickstart.sh` with the real binary on PATH and the files of
//! `examples/` as they are, against a real server, delivering to a local receiver. And the build-project examples
//! (`examples/buildproject.json`, `examples/project-webhook.json`) through the real CLI, judged by explain.

use hmac::Mac;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::outbound::Receiver;
use crate::support::{TestServer, ACCESS_KEY_ID, SECRET_ACCESS_KEY, TOKEN};
use crate::webhooks::fixture;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn example(name: &str) -> Value {
    let path = root().join("examples").join(name);
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A folder holding only a `pipehook` link to the built binary, to put first on PATH.
fn bin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_pipehook"), dir.path().join("pipehook")).unwrap();
    dir
}

/// Runs `examples/quickstart.sh` from an unrelated folder, as a user would, with `env` and no other PIPEHOOK_*.
async fn quickstart(bin: &Path, env: &[(&str, &str)]) -> Output {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg(root().join("examples/quickstart.sh")).current_dir(cwd.path());
    for (k, _) in std::env::vars() {
        if k.starts_with("PIPEHOOK_") || k == "RECEIVER_URL" {
            cmd.env_remove(k);
        }
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    cmd.env("PATH", path).env("RUST_LOG", "warn").envs(env.iter().copied());
    let out = cmd.output().await.expect("run examples/quickstart.sh");
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    out
}

/// The execution id from the trigger URL's answer, which the script prints as it is.
fn triggered_execution(out: &str) -> String {
    let answer = out.lines().find(|l| l.contains("\"result\"")).unwrap_or_else(|| panic!("no trigger answer: {out}"));
    let answer: Value = serde_json::from_str(answer).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(answer["result"], "triggered", "{answer}");
    answer["pipelineExecutionId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn quickstart_script_triggers_a_run_shows_its_log_and_delivers_its_events() {
    let receiver = Receiver::start().await;
    let s = TestServer::builder()
        .env("PIPEHOOK_OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8")
        .env("PIPEHOOK_WORKER_POLL_MS", "50")
        .start()
        .await
        .expect("server");
    let bin = bin_dir();
    let receiver_url = format!("{}/pipehook", receiver.url);
    let env = [("PIPEHOOK_SERVER", s.url.as_str()), ("PIPEHOOK_TOKEN", TOKEN), ("RECEIVER_URL", receiver_url.as_str())];
    let push = example("github-push.json");
    let commit = push["after"].as_str().unwrap().to_owned();
    let hook_secret = example("hook.json")["secret"].as_str().unwrap().to_owned();
    let webhook_secret =
        example("webhook.json")["webhook"]["authenticationConfiguration"]["SecretToken"].as_str().unwrap().to_owned();

    let out = quickstart(bin.path(), &env).await;
    let text = stdout(&out);
    assert!(out.status.success(), "exit {:?}\nstdout:\n{text}\nstderr:\n{}", out.status.code(), stderr(&out));
    for want in [
        "created pipeline hello (version 1)\n".to_owned(),
        "created webhook hello-github\n".to_owned(),
        format!("URL: {}/trigger?t=", s.url),
        "created hook quickstart (organization default) -> http://127.0.0.1:9000/pipehook\n".to_owned(),
        "updated hook quickstart (organization default)\n".to_owned(),
        // The command's output in the log: the commit and branch of the push, from the runner's environment.
        format!("hello from pipehook: commit {commit} on main of Codertocat/Hello-World\n"),
    ] {
        assert!(text.contains(&want), "{want:?} in:\n{text}");
    }
    assert!(text.lines().any(|l| l.starts_with("Status:") && l.ends_with("Succeeded")), "{text}");
    assert!(!text.contains(&webhook_secret) && !text.contains(&hook_secret), "a secret was printed:\n{text}");
    let execution = triggered_execution(&text);

    // The server agrees: the webhook started it, it succeeded, and the command's output is in its log.
    let (code, e) = s.get(&format!("/api/orgs/default/pipelines/hello/executions/{execution}"), Some(TOKEN)).await;
    assert_eq!(code, 200, "{e}");
    assert_eq!(e["status"], "Succeeded", "{e}");
    assert_eq!(e["trigger"]["type"], "Webhook", "{e}");
    assert!(e["trigger"]["detail"].as_str().unwrap().ends_with(":webhook:hello-github"), "{e}");
    let (code, logs) =
        s.get(&format!("/api/orgs/default/pipelines/hello/executions/{execution}/logs"), Some(TOKEN)).await;
    assert_eq!(code, 200, "{logs}");
    let hello = logs["actions"].as_array().unwrap().iter().find(|a| a["action"] == "Hello").expect("the Hello log");
    assert_eq!(
        hello["log"].as_str().unwrap(),
        format!("hello from pipehook: commit {commit} on main of Codertocat/Hello-World\n")
    );

    // The receiver got the run's events, each signed with the hook's secret (both signatures).
    let got = receiver.wait("pipehook", 4).await;
    let mut kinds: Vec<String> = got.iter().map(|r| r.header("pulumi-webhook-kind").unwrap()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["build_started", "build_succeeded", "pipeline_execution_started", "pipeline_execution_succeeded"],
        "the pipelines and builds groups of examples/hook.json"
    );
    let wh = standardwebhooks::Webhook::new(&pipehook_outbound::sign::whsec(hook_secret.as_bytes())).unwrap();
    for r in &got {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(hook_secret.as_bytes()).unwrap();
        mac.update(&r.body);
        assert_eq!(r.header("pulumi-webhook-signature").unwrap(), hex::encode(mac.finalize().into_bytes()));
        let mut headers = http::HeaderMap::new();
        for k in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            headers.insert(k, r.header(k).unwrap().parse().unwrap());
        }
        wh.verify(&r.body, &headers).expect("the Standard Webhooks signature verifies");
        let body = r.json();
        // Build events have Puppet Pipelines' shape, pipehook's own fields under `pipehook`.
        let ours = if body.get("pipehook").is_some() { &body["pipehook"] } else { &body };
        assert_eq!(ours["execution_id"], execution.as_str(), "{body}");
        assert_eq!(body["commit"]["commit_id"], commit.as_str(), "{body}");
        assert_eq!(body["commit"]["branch"], "main", "{body}");
    }
    let succeeded = got
        .iter()
        .find(|r| r.header("pulumi-webhook-kind").as_deref() == Some("pipeline_execution_succeeded"))
        .unwrap()
        .json();
    assert_eq!((succeeded["pipeline"].as_str(), succeeded["status"].as_str()), (Some("hello"), Some("Success")));
    // ... and the script listed the deliveries (the start event at least: it was sent long before the list).
    assert!(
        text.lines().any(|l| l.contains("pipeline_execution_started") && l.contains(" 200 ")),
        "the deliveries list, last in:\n{text}"
    );

    // Run again: everything is updated in place and a second run is triggered (a new delivery id).
    let out = quickstart(bin.path(), &env).await;
    let again = stdout(&out);
    assert!(out.status.success(), "exit {:?}\nstdout:\n{again}\nstderr:\n{}", out.status.code(), stderr(&out));
    for want in ["updated pipeline hello", "updated webhook hello-github", "updated hook quickstart"] {
        assert!(again.contains(want), "{want} in:\n{again}");
    }
    assert!(!again.contains("created "), "{again}");
    let second = triggered_execution(&again);
    assert_ne!(second, execution);
    assert!(again.contains(&format!("hello from pipehook: commit {commit} on main")), "{again}");

    // Without a token, the script says what is missing instead of running anything.
    let out = quickstart(bin.path(), &[("PIPEHOOK_SERVER", s.url.as_str())]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("set PIPEHOOK_TOKEN"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    s.stop().await.unwrap();
}

#[tokio::test]
async fn build_project_examples_are_created_by_the_cli_and_filter_as_documented() {
    let s = TestServer::start().await;
    let env = [
        ("PIPEHOOK_TOKEN", TOKEN),
        ("PIPEHOOK_AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
        ("PIPEHOOK_AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
    ];
    let file = |name: &str| root().join("examples").join(name).display().to_string();
    let run = |args: Vec<String>| {
        let s = &s;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = s.cli_with(&env, &args).await;
            assert!(out.status.success(), "{args:?}: exit {:?}: {}", out.status.code(), stderr(&out));
            stdout(&out)
        }
    };
    let project = example("buildproject.json");
    let name = project["name"].as_str().unwrap();
    assert_eq!(name, example("project-webhook.json")["projectName"], "the two files are about one project");
    let out = run(vec!["projects".into(), "create".into(), "--file".into(), file("buildproject.json")]).await;
    assert_eq!(out, format!("created project {name}\n"));
    let args =
        vec!["project-webhooks".into(), "create".into(), name.into(), "--file".into(), file("project-webhook.json")];
    let out = run(args).await;
    assert!(out.contains(&format!("Payload URL: {}/webhooks?t=", s.url)), "{out}");
    assert!(out.contains("Secret (shown only once): "), "{out}");

    // The filter groups: a push to main and an opened pull request would start a build; a push to master not.
    let explain = |payload: Vec<u8>, event: &'static str| {
        let s = &s;
        async move {
            let res = s
                .client()
                .post(format!("{}/api/orgs/default/projects/{name}/explain?event={event}", s.url))
                .header("authorization", format!("token {TOKEN}"))
                .body(payload)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        }
    };
    let push = std::fs::read(root().join("examples/github-push.json")).unwrap();
    let e = explain(push, "push").await;
    assert_eq!(e["verdict"], "would trigger", "{e}");
    assert_eq!(e["evaluation"]["groups"][0]["passed"], true, "{e}");
    let e = explain(fixture("github/pull_request-opened.json"), "pull_request").await;
    assert_eq!(e["verdict"], "would trigger", "{e}");
    let e = explain(fixture("github/push-branch.json"), "push").await;
    assert_eq!(e["verdict"], "would be filtered", "a push to master: {e}");
    s.stop().await.unwrap();
}
