//! Issue 17 against the real server: files and folders only pipehook's user may read, secrets given by
//! environment gone from the server's environment, workspace paths that no action name can move, and section 3's
//! defects (REDACTED secrets, revoking a rotated secret, hook scope names, NUL bytes on PostgreSQL, SSRF through
//! `::ffff:0:a.b.c.d`, query-string errors in the REST shape, commit ids that are commit ids, an unsigned
//! `X-Amz-Target`, replays into a re-created webhook). Each test fails on the code before the fix.

use aws_sdk_codepipeline::error::ProvideErrorMetadata;
use aws_sdk_codepipeline::types::{WebhookAuthConfiguration, WebhookAuthenticationType};
use reqwest::Method;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::codebuild::{git_repo_with, logs as build_log, wait_build};
use crate::support::{pipehook_cmd, Backend, TestServer, ACCESS_KEY_ID, ACCOUNT_ID, SECRET_ACCESS_KEY, TOKEN};
use crate::webhooks::{client, create_pipeline, definition, fixture, github, hmac_config, post, sign};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o7777
}

/// Calls `/api/orgs/{path}` with the test token; the status and the JSON body (`null` when empty).
async fn api(s: &TestServer, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = s.client().request(method, format!("{}/api/orgs/{path}", s.url));
    req = req.header("authorization", format!("token {TOKEN}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
}

/// Asserts the REST error shape `{"code": <status>, "message": ...}` and returns the message.
fn rest_error(status: u16, body: &Value) -> String {
    assert_eq!(body["code"], json!(status), "{body}");
    body["message"].as_str().unwrap_or_else(|| panic!("a message in {body}")).to_owned()
}

async fn wait_ended(s: &TestServer, pipeline: &str, id: &str) -> Value {
    for _ in 0..300 {
        let (status, e) = api(s, Method::GET, &format!("default/pipelines/{pipeline}/executions/{id}"), None).await;
        assert_eq!(status, 200, "{e}");
        if !matches!(e["status"].as_str(), Some("InProgress") | Some("Stopping")) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("execution {id} of {pipeline} did not end");
}

async fn action_log(s: &TestServer, pipeline: &str, id: &str, action: &str) -> String {
    let (status, logs) =
        api(s, Method::GET, &format!("default/pipelines/{pipeline}/executions/{id}/logs?action={action}"), None).await;
    assert_eq!(status, 200, "{logs}");
    logs["actions"][0]["log"].as_str().unwrap_or_default().to_owned()
}

fn source_action(name: &str, clone_url: &str, branch: &str) -> Value {
    json!({
        "name": name,
        "actionTypeId": {"category": "Source", "owner": "ThirdParty", "provider": "GitHub", "version": "1"},
        "configuration": {"Owner": "octo", "Repo": "app", "Branch": branch, "CloneUrl": clone_url},
        "runOrder": 1,
    })
}

fn pipeline_doc(name: &str, sources: Vec<Value>, command: &str) -> Value {
    json!({
        "name": name,
        "roleArn": "arn:aws:iam::123456789012:role/pipehook",
        "artifactStore": {"type": "S3", "location": "artifact-bucket"},
        "stages": [
            {"name": "Source", "actions": sources},
            {"name": "Build", "actions": [{
                "name": "Build",
                "actionTypeId": {"category": "Build", "owner": "Custom", "provider": "Command", "version": "1"},
                "configuration": {"Command": command},
                "runOrder": 1,
            }]},
        ],
        "executionMode": "PARALLEL",
    })
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

// ---------------------------------------------------------------------------------------------------------
// Section 1: file modes, workspace paths, secrets in the environment
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_data_folder_database_wal_key_workspaces_and_build_state_are_owner_only() {
    let s = TestServer::builder()
        .env("PIPEHOOK_RUNNER_KEEP_WORKSPACES", "true")
        .env("PIPEHOOK_WORKER_POLL_MS", "50")
        .start()
        .await
        .unwrap();
    let data = s.data_dir.clone();
    assert_eq!(mode(&data), 0o700, "data folder");
    for file in ["pipehook.db", "pipehook.db-wal", "pipehook.db-shm", "master.key"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    assert_eq!(mode(&data.join("workspaces")), 0o700, "workspaces root");

    // An execution's workspace (kept for the look) and what its command sees.
    let doc = pipeline_doc("modes", vec![], "stat -c 'workspace %a' .");
    let mut doc = doc;
    doc["stages"][0]["actions"] = json!([{
        "name": "Source",
        "actionTypeId": {"category": "Source", "owner": "ThirdParty", "provider": "GitHub", "version": "1"},
        "configuration": {"Owner": "octo", "Repo": "app", "Branch": "main"},
        "runOrder": 1,
    }]);
    let (status, body) = api(&s, Method::POST, "default/pipelines", Some(doc)).await;
    assert_eq!(status, 201, "{body}");
    let (status, started) = api(&s, Method::POST, "default/pipelines/modes/executions", Some(json!({}))).await;
    assert_eq!(status, 202, "{started}");
    let id = started["pipelineExecutionId"].as_str().unwrap().to_owned();
    let e = wait_ended(&s, "modes", &id).await;
    assert_eq!(e["status"], "Succeeded", "{e}");
    assert!(action_log(&s, "modes", &id, "Build").await.contains("workspace 700"));
    assert_eq!(mode(&data.join("workspaces").join(&id)), 0o700, "the execution's workspace");

    // A build's private state folder in the system temp folder, its scripts and saved state, and its source folder.
    let spec = r#"version: 0.2
phases:
  install:
    commands:
      - export EXPORTED_SECRET=s3cret
      - stat -c 'state-folder %a' "$__phk_state"
      - stat -c 'pwd-file %a' "$__phk_state/pwd"
      - stat -c 'script %a' "$__phk_state/install.sh"
      - stat -c 'source-folder %a' "$CODEBUILD_SRC_DIR"
  build:
    commands:
      - stat -c 'env-file %a' "$__phk_state/env"
"#;
    let cb = crate::codebuild::client(&s);
    cb.create_project()
        .name("modes")
        .source(
            aws_sdk_codebuild::types::ProjectSource::builder()
                .r#type(aws_sdk_codebuild::types::SourceType::NoSource)
                .buildspec(spec)
                .build()
                .unwrap(),
        )
        .artifacts(crate::codebuild::artifacts())
        .environment(crate::codebuild::environment(&[]))
        .service_role("arn:aws:iam::123456789012:role/codebuild")
        .send()
        .await
        .unwrap();
    let build = cb.start_build().project_name("modes").send().await.unwrap().build_value.unwrap();
    let build = wait_build(&cb, build.id.as_deref().unwrap()).await;
    let log = build_log(&s, &build).await;
    assert_eq!(build.build_status, Some(aws_sdk_codebuild::types::StatusType::Succeeded), "{log}");
    for line in ["state-folder 700", "pwd-file 600", "script 600", "source-folder 700", "env-file 600"] {
        assert!(log.contains(line), "{line} in:\n{log}");
    }
    s.stop().await.unwrap();
}

#[tokio::test]
async fn an_action_named_dot_dot_checks_out_inside_its_own_workspace() {
    let s = TestServer::builder()
        .env("PIPEHOOK_RUNNER_KEEP_WORKSPACES", "true")
        .env("PIPEHOOK_WORKER_POLL_MS", "50")
        .start()
        .await
        .unwrap();
    let repos = tempfile::tempdir().unwrap();
    let (app, escape) = (repos.path().join("app"), repos.path().join("escape"));
    std::fs::create_dir_all(&app).unwrap();
    std::fs::create_dir_all(&escape).unwrap();
    git_repo_with(&app, &[("app.txt", "app")]);
    git_repo_with(&escape, &[("escaped.txt", "planted for every later execution")]);
    // `..` is a valid action name by AWS's pattern.
    let sources = vec![
        source_action("Main", &app.display().to_string(), "master"),
        source_action("..", &escape.display().to_string(), "master"),
    ];
    let doc = pipeline_doc("dots", sources, "cat source-1/app.txt source-2/escaped.txt");
    let (status, body) = api(&s, Method::POST, "default/pipelines", Some(doc)).await;
    assert_eq!(status, 201, "{body}");
    let (_, started) = api(&s, Method::POST, "default/pipelines/dots/executions", Some(json!({}))).await;
    let id = started["pipelineExecutionId"].as_str().unwrap().to_owned();
    let e = wait_ended(&s, "dots", &id).await;
    let workspaces = s.data_dir.join("workspaces");
    assert!(!workspaces.join("escaped.txt").exists(), "the action named '..' checked out into the workspaces root");
    assert!(!workspaces.join(".git").exists());
    assert_eq!(e["status"], "Succeeded", "{e}");
    assert!(workspaces.join(&id).join("source-2").join("escaped.txt").is_file());
    assert!(action_log(&s, "dots", &id, "Build").await.contains("planted for every later execution"));
    s.stop().await.unwrap();
}

#[tokio::test]
async fn secrets_given_by_environment_leave_the_server_environment() {
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let master_key = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    };
    let database_url = format!("sqlite://{}/db-with-a-password-in-the-url.db", data.path().display());
    let mut child = pipehook_cmd()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("PIPEHOOK_DATA_DIR", data.path())
        .env("PIPEHOOK_DATABASE_URL", &database_url)
        .env("PIPEHOOK_MASTER_KEY", &master_key)
        .env("PIPEHOOK_BOOTSTRAP_TOKEN", TOKEN)
        .env("PIPEHOOK_BOOTSTRAP_ACCOUNT_ID", ACCOUNT_ID)
        .env("PIPEHOOK_BOOTSTRAP_AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("PIPEHOOK_BOOTSTRAP_AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if client.get(format!("{url}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let environ = std::fs::read(format!("/proc/{}/environ", child.id())).unwrap_or_default();
    // The token was read: it authenticates.
    let org =
        client.get(format!("{url}/api/orgs/default")).header("authorization", format!("token {TOKEN}")).send().await;
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(up, "the server did not start: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(org.unwrap().status(), 200);
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ.contains("PIPEHOOK_DATA_DIR="), "the environment was read: {environ}");
    for (name, secret) in [
        ("PIPEHOOK_BOOTSTRAP_TOKEN", TOKEN),
        ("PIPEHOOK_BOOTSTRAP_AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
        ("PIPEHOOK_MASTER_KEY", master_key.as_str()),
        ("PIPEHOOK_DATABASE_URL", database_url.as_str()),
    ] {
        assert!(!environ.contains(secret), "{name}'s value is still in /proc/<pid>/environ");
        assert!(!environ.contains(&format!("{name}=")), "{name} is still in /proc/<pid>/environ");
    }
    assert!(data.path().join("db-with-a-password-in-the-url.db").is_file(), "the database URL was used");
}

// ---------------------------------------------------------------------------------------------------------
// Section 3
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn put_webhook_with_the_redacted_placeholder_keeps_the_stored_secret() {
    let s = TestServer::start().await;
    let c = client(&s);
    create_pipeline(&c, "app", "master", "true").await;
    let put = definition("gh", "app", WebhookAuthenticationType::GithubHmac, hmac_config("the-real-secret"));
    c.put_webhook().webhook(put).send().await.unwrap();
    // List → edit → put, as a client round-trips a webhook: the secret shows as REDACTED.
    let listed = c.list_webhooks().send().await.unwrap().webhooks.unwrap_or_default();
    let listed = listed.into_iter().find(|w| w.definition.as_ref().is_some_and(|d| d.name == "gh")).unwrap();
    let def = listed.definition.unwrap();
    assert_eq!(def.authentication_configuration.as_ref().unwrap().secret_token.as_deref(), Some("REDACTED"));
    c.put_webhook().webhook(def.clone()).send().await.unwrap();
    let url = listed.url;

    let body = fixture("github/push-branch.json");
    let (status, answer) = post(&url, &body, &github("push", "d-real", Some(sign("the-real-secret", &body)))).await;
    assert_eq!(status, 200, "the stored secret still signs: {answer}");
    let (status, _) = post(&url, &body, &github("push", "d-public", Some(sign("REDACTED", &body)))).await;
    assert_eq!(status, 401, "REDACTED must not have become the HMAC key");

    // A webhook with no stored secret has nothing to keep: the AWS error.
    let mut fresh = def;
    fresh.name = "fresh".into();
    let e = c.put_webhook().webhook(fresh).send().await.unwrap_err();
    let e = e.into_service_error();
    assert_eq!(e.code(), Some("InvalidWebhookAuthenticationParametersException"), "{e:?}");
    assert!(e.message().unwrap_or_default().contains("no stored secret"), "{e:?}");
    s.stop().await.unwrap();
}

fn native_definition(secret: &str) -> Value {
    json!({
        "targetPipeline": "app",
        "targetAction": "Source",
        "filters": [{"jsonPath": "$.ref", "matchEquals": "refs/heads/{Branch}"}],
        "authentication": "GITHUB_HMAC",
        "authenticationConfiguration": {"SecretToken": secret},
    })
}

#[tokio::test]
async fn the_previous_secret_can_be_revoked_at_once_over_the_api_and_the_cli() {
    let s = TestServer::start().await;
    create_pipeline(&client(&s), "app", "master", "true").await;
    let (status, first) = api(&s, Method::PUT, "default/webhooks/rot", Some(native_definition("one"))).await;
    assert_eq!(status, 201, "{first}");
    assert!(first.get("previousSecretValidUntil").is_none(), "{first}");
    let (status, second) = api(&s, Method::PUT, "default/webhooks/rot", Some(native_definition("two"))).await;
    assert_eq!(status, 200, "{second}");
    // The overlap (24 h by default) is said in the answer.
    let until = second["previousSecretValidUntil"].as_i64().expect("previousSecretValidUntil");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!((until - now - 86_400_000).abs() < 60_000, "{until} vs {now}");
    let url = second["url"].as_str().unwrap().to_owned();
    let body = fixture("github/push-branch.json");
    let delivery = |n: u32| format!("delivery-{n}");
    let (status, _) = post(&url, &body, &github("push", &delivery(1), Some(sign("one", &body)))).await;
    assert_eq!(status, 200, "the previous secret is valid during the overlap");

    let out = s.cli_with(&[("PIPEHOOK_TOKEN", TOKEN)], &["webhooks", "revoke-previous-secret", "rot"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("only the current secret"), "{out:?}");
    let (status, _) = post(&url, &body, &github("push", &delivery(2), Some(sign("one", &body)))).await;
    assert_eq!(status, 401, "the previous secret was revoked");
    let (status, _) = post(&url, &body, &github("push", &delivery(3), Some(sign("two", &body)))).await;
    assert_eq!(status, 200);
    let (_, shown) = api(&s, Method::GET, "default/webhooks/rot", None).await;
    assert!(shown.get("previousSecretValidUntil").is_none(), "{shown}");
    // Nothing left to revoke is no error; an unknown webhook is 404.
    let (status, _) = api(&s, Method::POST, "default/webhooks/rot/revoke-previous-secret", None).await;
    assert_eq!(status, 200);
    let (status, body) = api(&s, Method::POST, "default/webhooks/nope/revoke-previous-secret", None).await;
    assert_eq!(status, 404);
    rest_error(404, &body);
    s.stop().await.unwrap();
}

/// A raw HTTP/1.1 request, for paths a URL library would normalize (`..`).
async fn raw_request(s: &TestServer, method: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: token {TOKEN}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn stack_and_environment_hook_routes_take_only_pulumi_names() {
    hook_scope_names(Backend::Sqlite).await;
}

#[tokio::test]
async fn stack_and_environment_hook_routes_take_only_pulumi_names_on_postgres() {
    hook_scope_names(Backend::Postgres).await;
}

async fn hook_scope_names(backend: Backend) {
    let Some(s) = TestServer::builder().backend(backend).start().await else { return };
    let long = "p".repeat(300);
    let bad = ["a%00b", "a%0D%0Ab", "a%2Fb", "..", long.as_str(), "with%20space"];
    let hook = |project: &str, stack: &str| {
        json!({"organizationName": "default", "projectName": project, "stackName": stack, "name": "h",
            "displayName": "h", "payloadUrl": "https://hooks.example.com/x", "active": true})
        .to_string()
    };
    for segment in bad {
        for (path, body) in [
            (format!("/api/stacks/default/{segment}/dev/hooks"), hook(segment, "dev")),
            (format!("/api/stacks/default/web/{segment}/hooks"), hook("web", segment)),
            (format!("/api/esc/environments/default/{segment}/prod/hooks"), "{}".to_owned()),
            (format!("/api/esc/environments/default/web/{segment}/hooks"), "{}".to_owned()),
        ] {
            for method in ["POST", "GET"] {
                let (status, answer) = raw_request(&s, method, &path, &body).await;
                assert_eq!(status, 400, "{method} {path}: {answer}");
                let answer: Value = serde_json::from_str(&answer).unwrap_or_else(|_| panic!("JSON: {answer}"));
                assert!(rest_error(400, &answer).contains("name"), "{answer}");
            }
        }
    }
    // Good names work, and the events API refuses bad ones too.
    let (status, answer) = raw_request(&s, "POST", "/api/stacks/default/web/dev/hooks", &hook("web", "dev")).await;
    assert_eq!(status, 201, "{answer}");
    let event = json!({"kind": "update_succeeded", "payload": {}, "projectName": "web", "stackName": "a\u{0}b"});
    let (status, answer) = api(&s, Method::POST, "default/events", Some(event)).await;
    assert_eq!(status, 400, "{answer}");
    rest_error(400, &answer);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn nul_bytes_in_trigger_bodies_get_the_same_verdicts_on_sqlite() {
    nul_bodies(Backend::Sqlite).await;
}

#[tokio::test]
async fn nul_bytes_in_trigger_bodies_get_the_same_verdicts_on_postgres() {
    nul_bodies(Backend::Postgres).await;
}

async fn nul_bodies(backend: Backend) {
    let Some(s) = TestServer::builder().backend(backend).start().await else { return };
    let c = client(&s);
    create_pipeline(&c, "app", "main", "true").await;
    let put = definition("gh", "app", WebhookAuthenticationType::GithubHmac, hmac_config("s3cret"));
    let url = c.put_webhook().webhook(put).send().await.unwrap().webhook.unwrap().url;

    let mut raw_nul = br#"{"ref":"refs/heads/main","after":"6113728f27ae82c7b1a177c8d03f9e96e0adf246"}"#.to_vec();
    raw_nul.push(0);
    let escaped = br#"{"ref":"refs/heads/main","head_commit":{"message":"a\u0000b"},"after":"6113728f27ae82c7b1a177c8d03f9e96e0adf246"}"#;
    let cases: [(&str, &[u8], &str, u16, &str); 4] = [
        ("signed, raw NUL", &raw_nul, "s3cret", 400, "rejected"),
        ("bad signature, raw NUL", &raw_nul, "wrong", 401, "unauthenticated"),
        ("signed, escaped NUL", escaped, "s3cret", 200, "triggered"),
        ("bad signature, escaped NUL", escaped, "wrong", 401, "unauthenticated"),
    ];
    for (i, (what, body, secret, want_status, want_result)) in cases.into_iter().enumerate() {
        let headers = github("push", &format!("nul-{i}"), Some(sign(secret, body)));
        let (status, answer) = post(&url, body, &headers).await;
        assert_eq!((status, answer["result"].as_str()), (want_status, Some(want_result)), "{what}: {answer}");
        // Recorded, with its verdict (unauthenticated requests may be sampled out of the log).
        if want_result != "unauthenticated" {
            let id = answer["requestId"].as_str().unwrap_or_else(|| panic!("{what}: {answer}"));
            let (status, logged) = api(&s, Method::GET, &format!("default/inbound/{id}"), None).await;
            assert_eq!(status, 200, "{what}: {logged}");
            assert_eq!(logged["verdict"], want_result, "{what}: {logged}");
        }
    }
    s.stop().await.unwrap();
}

#[tokio::test]
async fn deliveries_never_go_to_ipv4_translated_addresses() {
    let s = TestServer::start().await;
    let hook = json!({"organizationName": "default", "name": "siit", "displayName": "siit",
        "payloadUrl": "http://[::ffff:0:7f00:1]:9/x", "active": true});
    let (status, created) = api(&s, Method::POST, "default/hooks", Some(hook)).await;
    assert_eq!(status, 201, "{created}");
    let warning = created["warnings"][0].as_str().unwrap_or_else(|| panic!("a warning in {created}"));
    assert!(warning.contains("refused to connect") && warning.contains("loopback"), "{warning}");
    let (_, pinged) = api(&s, Method::POST, "default/hooks/siit/ping", None).await;
    assert!(pinged.to_string().contains("refused to connect"), "{pinged}");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn query_string_errors_are_json_errors() {
    let s = TestServer::start().await;
    for (method, path) in [
        (Method::GET, "/api/orgs/default/inbound?limit=many"),
        (Method::POST, "/api/orgs/default/webhooks/gh/explain?event=push&event=ping"),
        (Method::POST, "/trigger?t=one&t=two&v=1"),
        (Method::POST, "/webhooks?t=one&t=two&v=1"),
    ] {
        let res = s
            .client()
            .request(method.clone(), format!("{}{path}", s.url))
            .header("authorization", format!("token {TOKEN}"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{method} {path}");
        let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("application/json"), "{path}: {content_type}");
        let body: Value = res.json().await.unwrap();
        assert!(rest_error(400, &body).contains("query string"), "{path}: {body}");
    }
    s.stop().await.unwrap();
}

#[tokio::test]
async fn a_payload_ref_name_in_the_commit_field_never_chooses_the_checkout() {
    let s = TestServer::builder().env("PIPEHOOK_WORKER_POLL_MS", "50").start().await.unwrap();
    // The repository: main says "main"; the base repository also carries a fork's pull request head.
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(repo.path().join("marker.txt"), "from main\n").unwrap();
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "--quiet", "-m", "main"]);
    let main = git(repo.path(), &["rev-parse", "HEAD"]);
    git(repo.path(), &["checkout", "--quiet", "-b", "fork"]);
    std::fs::write(repo.path().join("marker.txt"), "from the fork\n").unwrap();
    git(repo.path(), &["commit", "--quiet", "-am", "fork"]);
    git(repo.path(), &["update-ref", "refs/pull/1/head", "HEAD"]);
    git(repo.path(), &["checkout", "--quiet", "main"]);
    git(repo.path(), &["branch", "--quiet", "-D", "fork"]);

    let doc = pipeline_doc(
        "app",
        vec![source_action("Source", &repo.path().display().to_string(), "main")],
        "cat marker.txt",
    );
    let (status, body) = api(&s, Method::POST, "default/pipelines", Some(doc)).await;
    assert_eq!(status, 201, "{body}");
    let def = json!({
        "targetPipeline": "app", "targetAction": "Source",
        "filters": [{"jsonPath": "$.ref", "matchEquals": "refs/heads/{Branch}"}],
        "authentication": "UNAUTHENTICATED", "authenticationConfiguration": {},
    });
    let (status, w) = api(&s, Method::PUT, "default/webhooks/open", Some(def)).await;
    assert_eq!(status, 201, "{w}");
    let url = w["url"].as_str().unwrap();
    let payload = json!({"ref": "refs/heads/main", "after": "refs/pull/1/head",
        "head_commit": {"id": "refs/pull/1/head", "message": "totally main"}});
    let body = serde_json::to_vec(&payload).unwrap();
    let (status, answer) = post(url, &body, &github("push", "fork-as-main", None)).await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("triggered")), "{answer}");
    let id = answer["pipelineExecutionId"].as_str().unwrap();
    let e = wait_ended(&s, "app", id).await;
    assert_eq!(e["status"], "Succeeded", "{e}");
    let log = action_log(&s, "app", id, "Build").await;
    assert!(log.contains("from main") && !log.contains("fork"), "{log}");
    let source = action_log(&s, "app", id, "Source").await;
    assert!(source.contains(&main), "checked out main's commit: {source}");
    // explain shows the event without a commit.
    let (_, explained) = api(&s, Method::POST, "default/webhooks/open/explain?event=push", Some(payload)).await;
    let event = &explained["event"];
    assert!(event["commit_id"].is_null() && event["commitId"].is_null(), "{explained}");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn aws_calls_must_sign_x_amz_target() {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    use aws_smithy_runtime_api::client::identity::Identity;

    let s = TestServer::start().await;
    let identity: Identity =
        aws_credential_types::Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None, None, "test").into();
    let call = |sign_target: bool| {
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("codepipeline")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let host = s.url.trim_start_matches("http://").to_owned();
        let mut signed = vec![("content-type", "application/x-amz-json-1.1".to_owned()), ("host", host)];
        if sign_target {
            signed.push(("x-amz-target", "CodePipeline_20150709.ListPipelines".to_owned()));
        }
        let uri = format!("{}/", s.url);
        let signable = SignableRequest::new(
            "POST",
            uri.clone(),
            signed.iter().map(|(k, v)| (*k, v.as_str())),
            SignableBody::Bytes(b"{}"),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut request = http::Request::builder().method("POST").uri(&uri).body(()).unwrap();
        for (k, v) in &signed {
            request.headers_mut().insert(*k, http::HeaderValue::from_str(v).unwrap());
        }
        instructions.apply_to_request_http1x(&mut request);
        // Sent either way; unsigned, it could have been swapped for any other operation.
        request
            .headers_mut()
            .insert("x-amz-target", http::HeaderValue::from_static("CodePipeline_20150709.ListPipelines"));
        let mut req = s.client().post(&uri).body("{}");
        for (k, v) in request.headers() {
            req = req.header(k.as_str(), v.to_str().unwrap());
        }
        req.send()
    };
    let res = call(true).await.unwrap();
    assert_eq!(res.status(), 200);
    let res = call(false).await.unwrap();
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["__type"], "IncompleteSignatureException", "{body}");
    assert!(body["message"].as_str().unwrap().contains("X-Amz-Target"), "{body}");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn a_request_is_replayed_only_into_the_webhook_that_received_it() {
    let s = TestServer::start().await;
    let c = client(&s);
    create_pipeline(&c, "app", "master", "true").await;
    let open = definition(
        "gh",
        "app",
        WebhookAuthenticationType::Unauthenticated,
        WebhookAuthConfiguration::builder().build(),
    );
    let url = c.put_webhook().webhook(open).send().await.unwrap().webhook.unwrap().url;
    let body = fixture("github/push-branch.json");
    let (status, answer) = post(&url, &body, &github("push", "unsigned-1", None)).await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("triggered")), "{answer}");
    let request = answer["requestId"].as_str().unwrap().to_owned();
    let replay = format!("default/inbound/{request}/replay");
    let (status, replayed) = api(&s, Method::POST, &replay, None).await;
    assert_eq!(status, 200, "into the same webhook: {replayed}");

    // Deleted, and put again under the same name with a secret: another webhook.
    c.delete_webhook().name("gh").send().await.unwrap();
    let signed = definition("gh", "app", WebhookAuthenticationType::GithubHmac, hmac_config("now-with-a-secret"));
    c.put_webhook().webhook(signed).send().await.unwrap();
    let (status, refused) = api(&s, Method::POST, &replay, None).await;
    assert_eq!(status, 409, "{refused}");
    assert!(rest_error(409, &refused).contains("created again"), "{refused}");
    s.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------------
// The same defects on CodeBuild payload URLs (`/webhooks`)
// ---------------------------------------------------------------------------------------------------------

/// A GitHub project on a local repository whose main branch says "from main" and whose `refs/pull/1/head` (a
/// fork's pull request, as GitHub keeps it in the base repository) says "from the fork", with a webhook for
/// pull requests; returns the CodeBuild client, the payload URL and its secret.
async fn pull_request_project(s: &TestServer, repo: &Path) -> (aws_sdk_codebuild::Client, String, String) {
    use aws_sdk_codebuild::types::{ProjectSource, SourceType, WebhookFilterType};
    git(repo, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(repo.join("marker.txt"), "from main\n").unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "--quiet", "-m", "main"]);
    git(repo, &["checkout", "--quiet", "-b", "fork"]);
    std::fs::write(repo.join("marker.txt"), "from the fork\n").unwrap();
    git(repo, &["commit", "--quiet", "-am", "fork"]);
    git(repo, &["update-ref", "refs/pull/1/head", "HEAD"]);
    git(repo, &["checkout", "--quiet", "main"]);
    git(repo, &["branch", "--quiet", "-D", "fork"]);
    let cb = crate::codebuild::client(s);
    let spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - cat marker.txt\n";
    cb.create_project()
        .name("prs")
        .source(
            ProjectSource::builder()
                .r#type(SourceType::Github)
                .location(repo.display().to_string())
                .buildspec(spec)
                .build()
                .unwrap(),
        )
        .artifacts(crate::codebuild::artifacts())
        .environment(crate::codebuild::environment(&[]))
        .service_role("r")
        .send()
        .await
        .unwrap();
    let w = cb
        .create_webhook()
        .project_name("prs")
        .filter_groups(vec![crate::codebuild::filter(WebhookFilterType::Event, "PULL_REQUEST_CREATED")])
        .manual_creation(true)
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap();
    (cb, w.payload_url.unwrap(), w.secret.unwrap())
}

#[tokio::test]
async fn a_webhook_build_never_checks_out_a_ref_name_from_the_payload() {
    let s = TestServer::builder().env("PIPEHOOK_WORKER_POLL_MS", "50").start().await.unwrap();
    let repo = tempfile::tempdir().unwrap();
    let (cb, url, secret) = pull_request_project(&s, repo.path()).await;
    let mut pr: Value = serde_json::from_slice(&fixture("github/pull_request-opened.json")).unwrap();
    pr["pull_request"]["head"]["sha"] = json!("refs/pull/1/head");
    let body = serde_json::to_vec(&pr).unwrap();
    let (status, out) = post(&url, &body, &github("pull_request", "pr-ref-name", Some(sign(&secret, &body)))).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("triggered")), "{out}");
    let b = wait_build(&cb, out["buildId"].as_str().unwrap()).await;
    let log = build_log(&s, &b).await;
    assert!(!log.contains("from the fork"), "a fork's code was built: {log}");
    assert_eq!(b.build_status, Some(aws_sdk_codebuild::types::StatusType::Failed), "{log}");
    assert!(log.contains("names no commit id"), "{log}");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn a_build_webhook_request_is_replayed_only_into_the_webhook_that_received_it() {
    let s = TestServer::builder().env("PIPEHOOK_WORKER_POLL_MS", "50").start().await.unwrap();
    let repo = tempfile::tempdir().unwrap();
    let (cb, url, secret) = pull_request_project(&s, repo.path()).await;
    let pr = fixture("github/pull_request-opened.json");
    let (status, out) = post(&url, &pr, &github("pull_request", "pr-1", Some(sign(&secret, &pr)))).await;
    assert_eq!(status, 200, "{out}");
    let replay = format!("default/inbound/{}/replay", out["requestId"].as_str().unwrap());
    let (status, replayed) = api(&s, Method::POST, &replay, None).await;
    assert_eq!(status, 200, "into the same webhook: {replayed}");
    cb.delete_webhook().project_name("prs").send().await.unwrap();
    cb.create_webhook().project_name("prs").manual_creation(true).send().await.unwrap();
    let (status, refused) = api(&s, Method::POST, &replay, None).await;
    assert_eq!(status, 409, "{refused}");
    assert!(rest_error(409, &refused).contains("created again"), "{refused}");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn nul_bytes_in_payload_url_bodies_get_the_same_verdicts_on_postgres() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(s) = TestServer::builder().backend(backend).start().await else { continue };
        let repo = tempfile::tempdir().unwrap();
        let (_, url, secret) = pull_request_project(&s, repo.path()).await;
        let mut body = fixture("github/pull_request-opened.json");
        body.push(0);
        let (status, out) = post(&url, &body, &github("pull_request", "nul-1", Some(sign(&secret, &body)))).await;
        assert_eq!((status, out["result"].as_str()), (400, Some("rejected")), "{backend:?}: {out}");
        let (status, logged) =
            api(&s, Method::GET, &format!("default/inbound/{}", out["requestId"].as_str().unwrap()), None).await;
        assert_eq!((status, logged["verdict"].as_str()), (200, Some("rejected")), "{backend:?}: {logged}");
        let (status, out) = post(&url, &body, &github("pull_request", "nul-2", Some(sign("wrong", &body)))).await;
        assert_eq!((status, out["result"].as_str()), (401, Some("unauthenticated")), "{backend:?}: {out}");
        s.stop().await.unwrap();
    }
}
