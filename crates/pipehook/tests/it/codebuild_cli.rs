//! The CodeBuild client commands of the real binary (`projects`, `builds`, `project-webhooks`): signed AWS JSON
//! calls with the bootstrap access key, a real build run and followed, and the errors.

use serde_json::{json, Value};
use std::process::Output;

use crate::support::{TestServer, ACCESS_KEY_ID, SECRET_ACCESS_KEY, TOKEN};

const ENV: &[(&str, &str)] = &[
    ("PIPEHOOK_TOKEN", TOKEN),
    ("PIPEHOOK_AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
    ("PIPEHOOK_AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
];

async fn run(s: &TestServer, args: &[&str]) -> Output {
    s.cli_with(ENV, args).await
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), stderr(o));
    stdout(o)
}

/// Asserts a failure with `code`, reported as one line, and returns it.
fn failed(o: &Output, code: i32) -> String {
    assert_eq!(o.status.code(), Some(code), "stdout: {} stderr: {}", stdout(o), stderr(o));
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("pipehook: ") && !err.contains("panicked"), "{err}");
    err.trim().to_owned()
}

const BUILDSPEC: &str =
    "version: 0.2\nphases:\n  build:\n    commands:\n      - echo \"hello from $GREETING\"\n      - \
                         echo \"second line $EXTRA\"\n";

fn project(name: &str, source: Value) -> Value {
    json!({
        "name": name,
        "source": source,
        "artifacts": {"type": "NO_ARTIFACTS"},
        "environment": {
            "type": "LINUX_CONTAINER",
            "image": "aws/codebuild/standard:7.0",
            "computeType": "BUILD_GENERAL1_SMALL",
            "environmentVariables": [{"name": "GREETING", "value": "the project", "type": "PLAINTEXT"}],
        },
        "serviceRole": "arn:aws:iam::123456789012:role/codebuild",
    })
}

#[tokio::test]
async fn cli_projects_builds_and_project_webhooks() {
    let s = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();

    // Projects: create from CreateProject's input, list, get, update.
    let p = project("hello", json!({"type": "NO_SOURCE", "buildspec": BUILDSPEC}));
    std::fs::write(path("hello.json"), serde_json::to_vec_pretty(&p).unwrap()).unwrap();
    assert_eq!(ok(&run(&s, &["projects", "create", "--file", &path("hello.json")]).await), "created project hello\n");
    let err = failed(&run(&s, &["projects", "create", "--file", &path("hello.json")]).await, 1);
    assert!(err.starts_with("pipehook: ResourceAlreadyExistsException: "), "{err}");
    assert_eq!(ok(&run(&s, &["projects", "list"]).await), "NAME\nhello\n");
    let out = ok(&run(&s, &["projects", "get", "hello"]).await);
    assert!(out.contains("Name:         hello\n") && out.contains("NO_SOURCE"), "{out}");
    assert!(out.contains("echo \"hello from $GREETING\""), "the buildspec is shown: {out}");
    let json: Value =
        serde_json::from_str(&ok(&run(&s, &["--output", "json", "projects", "get", "hello"]).await)).unwrap();
    assert_eq!(json["arn"], "arn:aws:codebuild:us-east-1:123456789012:project/hello");
    let mut updated = p.clone();
    updated["description"] = json!("says hello");
    std::fs::write(path("update.json"), serde_json::to_vec(&updated).unwrap()).unwrap();
    assert_eq!(ok(&run(&s, &["projects", "update", "--file", &path("update.json")]).await), "updated project hello\n");
    let json: Value =
        serde_json::from_str(&ok(&run(&s, &["--output", "json", "projects", "get", "hello"]).await)).unwrap();
    assert_eq!(json["description"], "says hello");

    // A build, started with an override, followed to its end.
    let id = ok(&run(&s, &["builds", "start", "hello", "--env", "EXTRA=from the cli"]).await).trim().to_owned();
    assert!(id.starts_with("hello:"), "{id}");
    let log = ok(&run(&s, &["builds", "logs", &id, "--follow"]).await);
    assert!(log.contains("hello from the project\n"), "{log}");
    assert!(log.contains("second line from the cli\n"), "{log}");
    assert_eq!(log.matches("hello from the project").count(), 1, "the output once: {log}");
    assert_eq!(log.matches("Entering phase BUILD\n").count(), 1, "nothing printed twice: {log}");
    let out = ok(&run(&s, &["builds", "get", &id]).await);
    assert!(out.contains(&format!("Id:           {id}\n")) && out.contains("Status:       SUCCEEDED\n"), "{out}");
    assert!(out.contains("BUILD") && out.contains("SUCCEEDED"), "{out}");
    let out = ok(&run(&s, &["builds", "list", "--project", "hello"]).await);
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("ID"), "{out}");
    let row = lines.next().expect("the build");
    assert!(row.starts_with(&id) && row.contains("SUCCEEDED"), "{out}");
    let json: Value = serde_json::from_str(&ok(&run(&s, &["--output", "json", "builds", "list"]).await)).unwrap();
    assert_eq!(json["builds"][0]["id"], id.as_str());
    assert_eq!(json["builds"][0]["buildStatus"], "SUCCEEDED");

    // A long build with its own buildspec, stopped.
    std::fs::write(
        path("slow.yml"),
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo started\n      - sleep 30\n",
    )
    .unwrap();
    let slow =
        ok(&run(&s, &["builds", "start", "hello", "--buildspec-file", &path("slow.yml")]).await).trim().to_owned();
    let out = ok(&run(&s, &["builds", "stop", &slow]).await);
    assert!(out.starts_with(&format!("stopping build {slow} (")), "{out}");
    let mut status = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let b: Value =
            serde_json::from_str(&ok(&run(&s, &["--output", "json", "builds", "get", &slow]).await)).unwrap();
        status = b["buildStatus"].as_str().unwrap_or_default().to_owned();
        if status != "IN_PROGRESS" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "STOPPED");
    // Following a build that did not succeed prints its log and exits 1.
    let out = run(&s, &["builds", "logs", &slow, "--follow"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).starts_with(&format!("pipehook: build {slow} ended: STOPPED")), "{}", stderr(&out));
    let log = stdout(&out);
    assert!(!log.contains("hello from"), "the override replaced the buildspec: {log}");

    // A project webhook, created by hand (no repository hook): the payload URL and the secret, labelled.
    let gh =
        project("gh", json!({"type": "GITHUB", "location": "https://github.com/octo/app.git", "buildspec": BUILDSPEC}));
    std::fs::write(path("gh.json"), serde_json::to_vec(&gh).unwrap()).unwrap();
    ok(&run(&s, &["projects", "create", "--file", &path("gh.json")]).await);
    let out = ok(&run(
        &s,
        &["project-webhooks", "create", "gh", "--filter-group", "EVENT:PUSH,HEAD_REF:^refs/heads/main$", "--manual"],
    )
    .await);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("created the webhook of project gh"), "{out}");
    let url = lines.next().unwrap().strip_prefix("Payload URL: ").expect("the payload URL").to_owned();
    assert!(url.starts_with(&format!("{}/webhooks?t=", s.url)), "{url}");
    let secret = lines.next().unwrap().strip_prefix("Secret (shown only once): ").expect("the secret").to_owned();
    assert_eq!(secret.len(), 40, "{secret}");
    let json: Value =
        serde_json::from_str(&ok(&run(&s, &["--output", "json", "projects", "get", "gh"]).await)).unwrap();
    assert_eq!(json["webhook"]["payloadUrl"], url.as_str());
    assert_eq!(
        json["webhook"]["filterGroups"][0][1],
        json!({"type": "HEAD_REF", "pattern": "^refs/heads/main$", "excludeMatchedPattern": false})
    );
    let out = ok(&run(&s, &["project-webhooks", "update", "gh", "--rotate-secret"]).await);
    assert!(out.contains(&format!("Payload URL: {url}\n")), "the URL stays: {out}");
    assert!(!out.contains(&secret), "{out}");
    assert_eq!(ok(&run(&s, &["project-webhooks", "delete", "gh"]).await), "deleted the webhook of project gh\n");

    // Errors: AWS errors as one line, exit 1; bad local input, exit 2.
    let err = failed(&run(&s, &["builds", "start", "nope"]).await, 1);
    assert!(err.starts_with("pipehook: ResourceNotFoundException: "), "{err}");
    let err = failed(&run(&s, &["projects", "get", "nope"]).await, 1);
    assert_eq!(err, "pipehook: ResourceNotFoundException: Project cannot be found: nope");
    let err = failed(&run(&s, &["project-webhooks", "delete", "hello"]).await, 1);
    assert!(err.starts_with("pipehook: ResourceNotFoundException: "), "{err}");
    let err = failed(&run(&s, &["projects", "create", "--file", &path("missing.json")]).await, 2);
    assert!(err.contains("cannot read") && err.contains("missing.json"), "{err}");
    let err = failed(&run(&s, &["builds", "start", "hello", "--env", "NOEQUALS"]).await, 2);
    assert!(err.contains("--env: 'NOEQUALS' is not K=V"), "{err}");
    let err = failed(&run(&s, &["project-webhooks", "create", "gh", "--filter-group", "EVENT"]).await, 2);
    assert!(err.contains("is not TYPE:PATTERN"), "{err}");
    let err = failed(&s.cli_with(&[("PIPEHOOK_TOKEN", TOKEN)], &["projects", "list"]).await, 2);
    assert!(err.contains("PIPEHOOK_AWS_ACCESS_KEY_ID") && err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
    let wrong = [("PIPEHOOK_AWS_ACCESS_KEY_ID", ACCESS_KEY_ID), ("PIPEHOOK_AWS_SECRET_ACCESS_KEY", "wrong")];
    let err = failed(&s.cli_with(&wrong, &["projects", "list"]).await, 1);
    assert!(err.starts_with("pipehook: ") && err.contains("Signature"), "{err}");
    // The AWS_* fallback works, and `logs` needs the token.
    let aws = [("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID), ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)];
    assert_eq!(ok(&s.cli_with(&aws, &["projects", "list"]).await), "NAME\ngh\nhello\n");
    let err = failed(&s.cli_with(&aws, &["builds", "logs", &id]).await, 2);
    assert!(err.contains("PIPEHOOK_TOKEN"), "{err}");
    assert_eq!(ok(&run(&s, &["projects", "delete", "gh"]).await), "deleted project gh\n");
    assert_eq!(ok(&run(&s, &["projects", "list"]).await), "NAME\nhello\n");
}
