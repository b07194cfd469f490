//! Backup and move (issue 12): `pipehook backup` of a SQLite installation while the server writes, restored by
//! starting a server on the backup folder; `pipehook db copy` of a SQLite installation holding data of every
//! kind into PostgreSQL, read back through the API with its secrets still decrypting; and admin commands that
//! refuse to create an installation by accident.

use hmac::Mac;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::outbound::{status, Receiver};
use crate::support::{codepipeline, pipehook_cmd, TestServer, ACCESS_KEY_ID, SECRET_ACCESS_KEY, TOKEN};
use crate::webhooks::{fixture, github, post, sign};

const WEBHOOK_SECRET: &str = "pipeline-webhook-secret-for-the-move";
const HOOK_SECRET: &str = "outbound-hook-secret-for-the-move";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

async fn rest(s: &TestServer, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = s.client().request(method, format!("{}/api/orgs/default/{path}", s.url));
    req = req.header("authorization", format!("token {TOKEN}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let code = res.status().as_u16();
    let text = res.text().await.unwrap();
    (code, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
}

/// A pipeline whose source watches `master` of Codertocat/Hello-World (the fixtures' repository) and whose
/// build action runs `command`.
fn pipeline(name: &str, command: &str) -> Value {
    json!({
        "name": name,
        "roleArn": "arn:aws:iam::123456789012:role/pipehook",
        "artifactStore": {"type": "S3", "location": "artifact-bucket"},
        "stages": [
            {"name": "Source", "actions": [{
                "name": "Source",
                "actionTypeId": {"category": "Source", "owner": "ThirdParty", "provider": "GitHub", "version": "1"},
                "configuration": {"Owner": "Codertocat", "Repo": "Hello-World", "Branch": "master", "OAuthToken": "gh-oauth-token"},
                "runOrder": 1,
            }]},
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

/// Creates pipeline `name` and its GitHub-signed webhook `gh-<name>`; returns the trigger URL.
async fn pipeline_with_webhook(s: &TestServer, name: &str, command: &str) -> String {
    let (code, body) = rest(s, Method::POST, "pipelines", Some(pipeline(name, command))).await;
    assert_eq!(code, 201, "{body}");
    let definition = json!({
        "targetPipeline": name,
        "targetAction": "Source",
        "filters": [{"jsonPath": "$.ref", "matchEquals": "refs/heads/{Branch}"}],
        "authentication": "GITHUB_HMAC",
        "authenticationConfiguration": {"SecretToken": WEBHOOK_SECRET},
    });
    let (code, body) = rest(s, Method::PUT, &format!("webhooks/gh-{name}"), Some(definition)).await;
    assert_eq!(code, 201, "{body}");
    body["url"].as_str().unwrap().to_owned()
}

/// Posts the real GitHub push payload signed with `secret`; returns the status and the answer.
async fn push(url: &str, delivery: &str, secret: &str) -> (u16, Value) {
    let body = fixture("github/push-branch.json");
    post(url, &body, &github("push", delivery, Some(sign(secret, &body)))).await
}

async fn wait_ended(s: &TestServer, pipeline: &str, id: &str) -> Value {
    for _ in 0..300 {
        let (code, e) = rest(s, Method::GET, &format!("pipelines/{pipeline}/executions/{id}"), None).await;
        assert_eq!(code, 200, "{e}");
        if !matches!(e["status"].as_str(), Some("InProgress") | Some("Stopping")) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("execution {id} of {pipeline} did not end");
}

/// The URL `url` (made by `from`) pointed at `to`: trigger and payload URLs carry the server's address.
fn moved(url: &str, from: &TestServer, to: &TestServer) -> String {
    url.replacen(&from.url, &to.url, 1)
}

/// Creates an access key with the CLI; returns its id and secret.
async fn access_key(s: &TestServer) -> (String, String) {
    let out = s.cli(&["access-key", "create", "--org", "default"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let get = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).unwrap().to_owned();
    (get("AWS_ACCESS_KEY_ID="), get("AWS_SECRET_ACCESS_KEY="))
}

#[tokio::test]
async fn admin_commands_refuse_where_no_installation_exists() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("wrong-folder");
    let backup = parent.path().join("bk");
    let run = |args: &[&str]| pipehook_cmd().args(args).arg("--data-dir").arg(&dir).output().unwrap();
    let refusals: &[&[&str]] = &[
        &["org", "list"],
        &["org", "create", "acme"],
        &["token", "create", "--org", "default"],
        &["token", "list", "--org", "default"],
        &["access-key", "create", "--org", "default"],
        &["access-key", "revoke", "--org", "default", "AKIAAAAAAAAAAAAAAAAA"],
        &["backup", "--to", backup.to_str().unwrap()],
    ];
    for existing in [false, true] {
        if existing {
            std::fs::create_dir_all(&dir).unwrap(); // an empty folder is no installation either
        }
        for args in refusals {
            let out = run(args);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(err.contains(&format!("no pipehook installation at {}", dir.display())), "{args:?}: {err}");
            assert!(err.contains("pipehook migrate") && err.contains("--create"), "{err}");
            assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
            let created: Vec<_> = std::fs::read_dir(parent.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(dir.exists(), existing, "{args:?} created {created:?}");
            if existing {
                assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "{args:?} wrote into the folder");
            }
            assert!(!backup.exists());
        }
    }

    // --create makes the installation, as `migrate` would; then the commands work without it.
    let out = run(&["org", "create", "acme", "--create"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.join("pipehook.db").is_file());
    assert_eq!(mode(&dir.join("master.key")), 0o600);
    let key = std::fs::read_to_string(dir.join("master.key")).unwrap();
    let out = run(&["access-key", "create", "--org", "acme"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // An installation whose key file is gone: commands that need the key refuse, even with --create, and no
    // new key is made (it could not read the secrets stored); the others still work.
    std::fs::remove_file(dir.join("master.key")).unwrap();
    for args in [&["access-key", "create", "--org", "acme"][..], &["access-key", "create", "--org", "acme", "--create"]]
    {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains("master_key"), "{}", stderr(&out));
        assert!(!dir.join("master.key").exists(), "{args:?} generated a key");
    }
    let out = run(&["access-key", "list", "--org", "acme"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    std::fs::write(dir.join("master.key"), &key).unwrap();
    let out = run(&["token", "create", "--org", "acme"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // PostgreSQL: a database (schema) without pipehook's tables is no installation either.
    let Some(guard) = pipehook_store::testing::postgres_schema().await else { return };
    let pg = |args: &[&str]| {
        pipehook_cmd()
            .args(args)
            .arg("--data-dir")
            .arg(&dir)
            .env("PIPEHOOK_DATABASE_URL", &guard.url)
            .env("PIPEHOOK_POSTGRES_SCHEMA", &guard.schema)
            .output()
            .unwrap()
    };
    let out = pg(&["org", "list"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("(schema {})", guard.schema)), "{}", stderr(&out));
    assert!(pg(&["migrate"]).status.success());
    let out = pg(&["org", "create", "acme"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_while_the_server_writes_restores() {
    let s = TestServer::start().await;
    let url = pipeline_with_webhook(&s, "app", "echo built").await;
    let (key_id, key_secret) = access_key(&s).await;
    let (code, first) = push(&url, "before-0", WEBHOOK_SECRET).await;
    assert_eq!((code, first["result"].as_str()), (200, Some("triggered")), "{first}");
    let first_id = first["pipelineExecutionId"].as_str().unwrap().to_owned();
    assert_eq!(wait_ended(&s, "app", &first_id).await["status"], "Succeeded");

    // Triggers keep arriving (each a request, a verdict, an execution and its job in one commit, then the
    // runs' own writes) while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let triggered = Arc::new(AtomicUsize::new(1));
    let writer = {
        let (stop, triggered, url) = (stop.clone(), triggered.clone(), url.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let (code, body) = push(&url, &format!("during-{n}"), WEBHOOK_SECRET).await;
                assert_eq!((code, body["result"].as_str()), (200, Some("triggered")), "{body}");
                triggered.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    while triggered.load(Ordering::SeqCst) < 5 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let parent = tempfile::tempdir().unwrap();
    let bk = parent.path().join("backups").join("today");
    let before = triggered.load(Ordering::SeqCst);
    let started = Instant::now();
    let out = s.cli(&["backup", "--to", bk.to_str().unwrap()]).await;
    let took = started.elapsed();
    let during = triggered.load(Ordering::SeqCst) - before;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("restore"), "{}", stdout(&out));
    eprintln!("backup took {took:?} while {during} triggers were accepted; {}", stdout(&out).lines().next().unwrap());
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert_eq!(mode(&bk), 0o700);
    assert_eq!(mode(&bk.join("master.key")), 0o600);
    assert_eq!(mode(&bk.join("pipehook.db")), 0o600);
    assert_eq!(
        std::fs::read_to_string(bk.join("master.key")).unwrap(),
        std::fs::read_to_string(s.data_dir.join("master.key")).unwrap()
    );

    // An existing backup is kept unless --force; the live folder is never a target.
    let out = s.cli(&["backup", "--to", bk.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("already holds a backup"), "{}", stderr(&out));
    let out = s.cli(&["backup", "--to", s.data_dir.to_str().unwrap(), "--force"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("own folder"), "{}", stderr(&out));
    let forced = parent.path().join("forced");
    assert!(s.cli(&["backup", "--to", forced.to_str().unwrap()]).await.status.success());
    let out = s.cli(&["backup", "--to", forced.to_str().unwrap(), "--force"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let leftovers: Vec<_> = std::fs::read_dir(&forced).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "only pipehook.db and master.key: {leftovers:?}");

    // Restore: a server on (a copy of) the backup folder has everything committed before the backup began.
    let restored_dir = parent.path().join("restored");
    std::fs::create_dir(&restored_dir).unwrap();
    for f in ["pipehook.db", "master.key"] {
        std::fs::copy(bk.join(f), restored_dir.join(f)).unwrap();
    }
    let r = TestServer::builder().data_dir(&restored_dir).start().await.unwrap();
    let (code, p) = rest(&r, Method::GET, "pipelines/app", None).await;
    assert_eq!(code, 200, "{p}");
    let (code, e) = rest(&r, Method::GET, &format!("pipelines/app/executions/{first_id}"), None).await;
    assert_eq!((code, e["status"].as_str()), (200, Some("Succeeded")), "{e}");
    let (code, log) = r.get("/api/orgs/default/inbound?webhook=gh-app&limit=500", Some(TOKEN)).await;
    assert_eq!(code, 200, "{log}");
    let requests = log["requests"].as_array().unwrap();
    assert!(requests.len() >= before, "{} requests restored, {before} accepted before the backup", requests.len());
    // The snapshot is consistent: every request it holds has the execution committed with it.
    for req in requests {
        assert_eq!(req["verdict"], "triggered");
        let id = req["pipelineExecutionId"].as_str().unwrap();
        let (code, e) = rest(&r, Method::GET, &format!("pipelines/app/executions/{id}"), None).await;
        assert_eq!(code, 200, "execution {id} of a restored request: {e}");
    }
    // The stored secrets decrypt with the backed-up key: the webhook's secret still checks a signature (and
    // refuses a wrong one), and the access key made with the CLI still signs AWS requests.
    let (code, body) = push(&moved(&url, &s, &r), "after-restore", WEBHOOK_SECRET).await;
    assert_eq!((code, body["result"].as_str()), (200, Some("triggered")), "{body}");
    let id = body["pipelineExecutionId"].as_str().unwrap().to_owned();
    assert_eq!(wait_ended(&r, "app", &id).await["status"], "Succeeded");
    assert_eq!(push(&moved(&url, &s, &r), "wrong-secret", "not-the-secret").await.0, 401);
    let sdk = codepipeline(&r.url, &key_id, &key_secret, "us-east-1");
    let names: Vec<String> =
        sdk.list_pipelines().send().await.unwrap().pipelines().iter().filter_map(|p| p.name.clone()).collect();
    assert_eq!(names, ["app"]);
    r.stop().await.unwrap();
    s.stop().await.unwrap();
}

/// A build project and build, and a GitHub project with a webhook (secret kept by pipehook), through the SDK.
async fn codebuild_data(s: &TestServer) -> (String, String, String) {
    use aws_sdk_codebuild::types::{ProjectSource, SourceType, StatusType, WebhookFilterType};
    let c = crate::codebuild::client(s);
    let spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo moved-build-log\n";
    c.create_project()
        .name("nosrc")
        .source(ProjectSource::builder().r#type(SourceType::NoSource).buildspec(spec).build().unwrap())
        .artifacts(crate::codebuild::artifacts())
        .environment(crate::codebuild::environment(&[("V", "1")]))
        .service_role("arn:aws:iam::123456789012:role/codebuild")
        .send()
        .await
        .unwrap();
    let build = c.start_build().project_name("nosrc").send().await.unwrap().build_value.unwrap().id.unwrap();
    let b = crate::codebuild::wait_build(&c, &build).await;
    assert_eq!(b.build_status, Some(StatusType::Succeeded));
    let repo = tempfile::tempdir().unwrap();
    crate::codebuild::create_repo_project(
        &c,
        "gh-project",
        SourceType::Github,
        &repo.path().display().to_string(),
        Some("gh-oauth-token-of-project"),
    )
    .await;
    let w = c
        .create_webhook()
        .project_name("gh-project")
        .filter_groups(vec![
            crate::codebuild::filter(WebhookFilterType::Event, "PUSH"),
            crate::codebuild::filter(WebhookFilterType::HeadRef, "^refs/heads/never$"),
        ])
        .manual_creation(true)
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap();
    (build, w.payload_url.unwrap(), w.secret.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sqlite_installation_moves_to_postgres_with_every_table() {
    let Some(guard) = pipehook_store::testing::postgres_schema().await else { return };
    let receiver = Receiver::start().await;
    let sqlite_dir = tempfile::tempdir().unwrap(); // outlives the server
    let s = TestServer::builder()
        .data_dir(sqlite_dir.path())
        .env("PIPEHOOK_OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8")
        .env("PIPEHOOK_OUTBOUND_RETRY_SCHEDULE", "3600")
        .env("PIPEHOOK_WORKER_POLL_MS", "50")
        .start()
        .await
        .unwrap();

    // Data of every kind, through the API: a pipeline (updated: two versions, tagged), a signed webhook
    // trigger and its run, an outbound hook with a secret and a delivery, a failing hook whose retry waits in
    // the queue, a build and a build project with a webhook, an access key.
    let url = pipeline_with_webhook(&s, "app", "echo moved-run-log").await;
    let mut updated = pipeline("app", "echo moved-run-log");
    updated["stages"][1]["actions"][0]["configuration"]["Command"] = json!("echo moved-run-log; true");
    let (code, body) = rest(&s, Method::PUT, "pipelines/app", Some(updated)).await;
    assert_eq!(code, 200, "{body}");
    let sdk = codepipeline(&s.url, ACCESS_KEY_ID, SECRET_ACCESS_KEY, "us-east-1");
    let arn = "arn:aws:codepipeline:us-east-1:123456789012:app";
    let tag = aws_sdk_codepipeline::types::Tag::builder().key("team").value("infra").build().unwrap();
    sdk.tag_resource().resource_arn(arn).tags(tag).send().await.unwrap();
    let (code, body) = push(&url, "moved-delivery-1", WEBHOOK_SECRET).await;
    assert_eq!((code, body["result"].as_str()), (200, Some("triggered")), "{body}");
    let run = body["pipelineExecutionId"].as_str().unwrap().to_owned();
    assert_eq!(wait_ended(&s, "app", &run).await["status"], "Succeeded");
    let hook = json!({"organizationName": "default", "name": "ci", "displayName": "CI", "active": true,
        "payloadUrl": format!("{}/ci", receiver.url), "secret": HOOK_SECRET});
    assert_eq!(rest(&s, Method::POST, "hooks", Some(hook)).await.0, 201);
    receiver.script("failing", vec![status(500)]);
    let failing = json!({"organizationName": "default", "name": "failing", "displayName": "Failing",
        "active": true, "payloadUrl": format!("{}/failing", receiver.url), "filters": ["update_succeeded"]});
    assert_eq!(rest(&s, Method::POST, "hooks", Some(failing)).await.0, 201);
    let event = json!({"kind": "update_succeeded", "payload": {"stackName": "dev"}});
    assert_eq!(rest(&s, Method::POST, "events", Some(event)).await.0, 202);
    receiver.wait("ci", 1).await;
    receiver.wait("failing", 1).await;
    let (build, payload_url, build_secret) = codebuild_data(&s).await;
    let (key_id, key_secret) = access_key(&s).await;
    // Wait until every run event is relayed and delivered (the count of the hook's attempts stays put) and
    // the failed delivery is scheduled for its retry.
    let (mut last, mut stable_since) = (0, Instant::now());
    for _ in 0..300 {
        let (_, d) = rest(&s, Method::GET, "hooks/failing/deliveries", None).await;
        let (_, c) = rest(&s, Method::GET, "hooks/ci/deliveries", None).await;
        let n = c.as_array().map_or(0, Vec::len);
        if n != last {
            (last, stable_since) = (n, Instant::now());
        }
        if d.as_array().is_some_and(|a| !a.is_empty()) && n >= 2 && stable_since.elapsed() > Duration::from_secs(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, ci_before) = rest(&s, Method::GET, "hooks/ci/deliveries", None).await;
    let of_run = |id: &str| receiver.got("ci").iter().filter(|r| String::from_utf8_lossy(&r.body).contains(id)).count();
    let first_run_delivered = of_run(&run);
    assert!(first_run_delivered >= 2, "started and succeeded of the first run");
    let data_dir = s.data_dir.clone();
    let old = s.url.clone();
    s.stop().await.unwrap();

    // The move.
    let started = Instant::now();
    let out = pipehook_cmd()
        .args(["db", "copy", "--from"])
        .arg(&data_dir)
        .args(["--to", &guard.url, "--schema", &guard.schema])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    eprintln!("db copy took {:?}: {}", started.elapsed(), stdout(&out));
    assert!(stdout(&out).contains("PIPEHOOK_MASTER_KEY=$(cat "), "{}", stdout(&out));
    let sqlite_counts = pipehook_store::copy::sqlite_table_counts(&data_dir.join("pipehook.db")).await.unwrap();
    let pg_counts = pipehook_store::copy::postgres_table_counts(&guard.url, Some(&guard.schema)).await.unwrap();
    assert_eq!(sqlite_counts, pg_counts, "every table, the same number of rows");
    let empty: Vec<&String> = sqlite_counts.iter().filter(|(_, n)| **n == 0).map(|(t, _)| t).collect();
    assert!(empty.is_empty(), "the test leaves no table empty: {empty:?}");
    for (table, n) in &sqlite_counts {
        assert!(stdout(&out).lines().any(|l| l.split_whitespace().eq([table.as_str(), &n.to_string()])), "{table}");
    }
    let again = pipehook_cmd()
        .args(["db", "copy", "--from"])
        .arg(&data_dir)
        .args(["--to", &guard.url, "--schema", &guard.schema])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(stderr(&again).contains("already has data"), "{}", stderr(&again));

    // A server on PostgreSQL with the same master key (and a fresh data folder) reads it all back.
    let key = std::fs::read_to_string(data_dir.join("master.key")).unwrap();
    let pg = TestServer::builder()
        .schema(Arc::new(guard))
        .env("PIPEHOOK_MASTER_KEY", key.trim())
        .env("PIPEHOOK_OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8")
        .env("PIPEHOOK_WORKER_POLL_MS", "50")
        .start()
        .await
        .unwrap();
    let moved_url = |u: &str| u.replacen(&old, &pg.url, 1);
    let (code, p) = rest(&pg, Method::GET, "pipelines/app", None).await;
    assert_eq!((code, p["version"].as_i64()), (200, Some(2)), "{p}");
    let (code, e) = rest(&pg, Method::GET, &format!("pipelines/app/executions/{run}"), None).await;
    assert_eq!((code, e["status"].as_str()), (200, Some("Succeeded")), "{e}");
    let (_, logs) = rest(&pg, Method::GET, &format!("pipelines/app/executions/{run}/logs"), None).await;
    assert!(logs.to_string().contains("moved-run-log"), "{logs}");
    let tags = sdk_tags(&pg, arn).await;
    assert_eq!(tags, BTreeMap::from([("team".to_owned(), "infra".to_owned())]));
    let (code, log) = pg.get("/api/orgs/default/inbound?webhook=gh-app", Some(TOKEN)).await;
    assert_eq!(code, 200);
    assert_eq!(log["requests"][0]["deliveryId"], "moved-delivery-1", "{log}");

    // Secrets decrypt on PostgreSQL: the pipeline webhook's, and new rows get ids after the copied ones.
    let (code, body) = push(&moved_url(&url), "moved-delivery-2", WEBHOOK_SECRET).await;
    assert_eq!((code, body["result"].as_str()), (200, Some("triggered")), "{body}");
    let second = body["pipelineExecutionId"].as_str().unwrap().to_owned();
    assert_eq!(wait_ended(&pg, "app", &second).await["status"], "Succeeded");
    let (_, dup) = push(&moved_url(&url), "moved-delivery-1", WEBHOOK_SECRET).await;
    assert_eq!(dup["result"], "duplicate", "the dedupe record came along: {dup}");
    // The outbound hook's: a ping is signed with it.
    let (code, ping) = rest(&pg, Method::POST, "hooks/ci/ping", None).await;
    assert_eq!((code, ping["responseCode"].as_i64()), (200, Some(200)), "{ping}");
    let got = receiver.got("ci");
    let last = got.last().unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(&last.body);
    assert_eq!(last.header("pulumi-webhook-signature").unwrap(), hex::encode(mac.finalize().into_bytes()));
    // The relay goes on from where SQLite left off: the new run's events reach the hook, the old ones are not
    // sent again, and the attempts logged on SQLite are still listed.
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = receiver.got("ci").iter().map(|r| String::from_utf8_lossy(&r.body).into_owned()).collect();
        if seen.iter().any(|b| b.contains(&second) && b.contains("succeeded")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen.iter().any(|b| b.contains(&second) && b.contains("succeeded")), "{seen:#?}");
    assert_eq!(of_run(&run), first_run_delivered, "the first run's events are not sent again: {seen:#?}");
    let (_, ci_after) = rest(&pg, Method::GET, "hooks/ci/deliveries", None).await;
    assert!(ci_after.as_array().unwrap().len() > ci_before.as_array().unwrap().len(), "{ci_after}");
    // The build webhook's: a signed push is judged (filtered), a wrongly signed one refused.
    let body = fixture("github/push-branch.json");
    let (code, out) =
        post(&moved_url(&payload_url), &body, &github("push", "b-1", Some(sign(&build_secret, &body)))).await;
    assert_eq!((code, out["result"].as_str()), (200, Some("filtered")), "{out}");
    let (code, _) = post(&moved_url(&payload_url), &body, &github("push", "b-2", Some(sign("wrong", &body)))).await;
    assert_eq!(code, 401);
    // The builds and the access key made on SQLite.
    let c = crate::codebuild::client(&pg);
    let b = c.batch_get_builds().ids(&build).send().await.unwrap().builds.unwrap();
    assert_eq!(b[0].build_status, Some(aws_sdk_codebuild::types::StatusType::Succeeded));
    assert_eq!(b[0].build_number, Some(1));
    let projects = c.batch_get_projects().names("nosrc").names("gh-project").send().await.unwrap();
    assert_eq!(projects.projects.unwrap().len(), 2);
    let next = c.start_build().project_name("nosrc").send().await.unwrap().build_value.unwrap();
    assert_eq!(next.build_number, Some(2), "the project's build counter came along");
    let sdk = codepipeline(&pg.url, &key_id, &key_secret, "us-east-1");
    assert_eq!(sdk.list_pipelines().send().await.unwrap().pipelines().len(), 1);
    let out = pg.cli(&["org", "create", "acme"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    pg.stop().await.unwrap();
}

async fn sdk_tags(s: &TestServer, arn: &str) -> BTreeMap<String, String> {
    let sdk = codepipeline(&s.url, ACCESS_KEY_ID, SECRET_ACCESS_KEY, "us-east-1");
    let out = sdk.list_tags_for_resource().resource_arn(arn).send().await.unwrap();
    out.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect()
}
