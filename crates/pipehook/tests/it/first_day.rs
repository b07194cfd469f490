//! Issue 12, what a new user hit on the first day: builds with a relative data folder, a writer that could be
//! wedged by cancelled writes (pushes then lost while `/readyz` said ready), GitHub's default form-encoded
//! deliveries, and what the server says about itself (readiness, metrics, request ids, `GET /`).

use aws_sdk_codepipeline::types::PipelineExecutionStatus;
use serde_json::{json, Value};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

use crate::support::{wait_done, Backend, TestServer, TOKEN};
use crate::webhooks::{create_pipeline, definition, fixture, github, hmac_config, post, sign, SECRET};
use aws_sdk_codepipeline::types::WebhookAuthenticationType;

/// Puts a GITHUB_HMAC webhook (secret [`SECRET`], `$.ref` = `refs/heads/{Branch}`) on `pipeline` and returns
/// its trigger URL.
async fn hmac_webhook(c: &aws_sdk_codepipeline::Client, name: &str, pipeline: &str) -> String {
    let definition = definition(name, pipeline, WebhookAuthenticationType::GithubHmac, hmac_config(SECRET));
    c.put_webhook().webhook(definition).send().await.unwrap().webhook.unwrap().url
}

/// `path` relative to the current folder (`../../tmp/x` for `/tmp/x`), so a test can hand the server a
/// relative data folder that still points into a temporary folder.
fn relative_to_cwd(path: &Path) -> PathBuf {
    let cwd = std::env::current_dir().unwrap();
    let depth = cwd.components().filter(|c| matches!(c, Component::Normal(_))).count();
    let mut rel = PathBuf::new();
    for _ in 0..depth {
        rel.push("..");
    }
    rel.join(path.strip_prefix("/").unwrap())
}

/// Every CodeBuild build failed with the README's relative `./pipehook-data`: the build's phases `cd` into
/// their source folder, where the relative path no longer resolved. Paths are made absolute at start.
#[tokio::test]
async fn a_build_runs_with_a_relative_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let relative = relative_to_cwd(&dir.path().join("pipehook-data"));
    assert!(relative.is_relative());
    let s = TestServer::builder().data_dir(&relative).start().await.unwrap();
    let c = crate::codebuild::client(&s);
    let repo = tempfile::tempdir().unwrap();
    let spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo \"built $(cat data.txt) in $(pwd)\"\n";
    crate::codebuild::git_repo_with(repo.path(), &[("buildspec.yml", spec), ("data.txt", "42")]);
    use aws_sdk_codebuild::types::{ProjectSource, SourceType};
    c.create_project()
        .name("rel")
        .source(
            ProjectSource::builder()
                .r#type(SourceType::Github)
                .location(repo.path().display().to_string())
                .build()
                .unwrap(),
        )
        .artifacts(crate::codebuild::artifacts())
        .environment(crate::codebuild::environment(&[]))
        .service_role("arn:aws:iam::123456789012:role/codebuild")
        .send()
        .await
        .unwrap();
    let b = c.start_build().project_name("rel").send().await.unwrap().build_value.unwrap();
    let b = crate::codebuild::wait_build(&c, b.id.as_deref().unwrap()).await;
    let log = crate::codebuild::logs(&s, &b).await;
    assert_eq!(b.build_status, Some(aws_sdk_codebuild::types::StatusType::Succeeded), "{log}");
    assert!(log.contains("built 42 in /"), "{log}");
    // The database and workspaces are where the relative path pointed.
    assert!(dir.path().join("pipehook-data/pipehook.db").exists());
    assert!(dir.path().join("pipehook-data/workspaces").exists());
}

/// A signed request sent whole, after which the client hangs up without reading the answer (as a git host
/// whose delivery timed out does). `after` is how long it waits before closing.
async fn post_and_hang_up(url: &str, headers: &[(&str, String)], body: &[u8], after: Duration) {
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap();
    let Ok(mut sock) = tokio::net::TcpStream::connect(host).await else { return };
    let mut req = format!("POST /{path} HTTP/1.1\r\nhost: {host}\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let _ = sock.write_all(req.as_bytes()).await;
    let _ = sock.write_all(body).await;
    tokio::time::sleep(after).await;
    drop(sock);
}

async fn logs_of(s: &TestServer, pipeline: &str, id: &str) -> String {
    let (status, body) =
        s.get(&format!("/api/orgs/default/pipelines/{pipeline}/executions/{id}/logs"), Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    body["actions"].as_array().unwrap().iter().map(|a| a["log"].as_str().unwrap_or_default().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_survive_many_short_runs_and_clients_that_hang_up() {
    stress(TestServer::builder().env("PIPEHOOK_WORKER_CONCURRENCY", "8").start().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_survive_many_short_runs_and_clients_that_hang_up_on_postgres() {
    let Some(s) =
        TestServer::builder().backend(Backend::Postgres).env("PIPEHOOK_WORKER_CONCURRENCY", "8").start().await
    else {
        return;
    };
    stress(s).await;
}

/// Many short runs that print while they run, pushes from clients that hang up at every point of the request,
/// and REST writes cut off the same way: afterwards the server still writes (readiness, a new push is
/// triggered and runs), every push it recorded as triggered has its execution, and every execution ends.
async fn stress(s: TestServer) {
    let c = crate::webhooks::client(&s);
    let command = "for i in $(seq 1 40); do echo \"line $i of $PIPEHOOK_EXECUTION_ID\"; sleep 0.01; done";
    create_pipeline(&c, "app", "master", command).await;
    let url = hmac_webhook(&c, "gh", "app").await;
    let push = fixture("github/push-branch.json");
    let signature = sign(SECRET, &push);

    let mut tasks = tokio::task::JoinSet::new();
    // Clients that wait for their answer.
    for i in 0..24 {
        let (url, push, signature) = (url.clone(), push.clone(), signature.clone());
        tasks.spawn(async move {
            let (status, body) = post(&url, &push, &github("push", &format!("ok-{i}"), Some(signature))).await;
            assert_eq!((status, body["result"].as_str()), (200, Some("triggered")), "{body}");
            Some(body["pipelineExecutionId"].as_str().unwrap().to_owned())
        });
    }
    // Clients that hang up after 0 to 7 ms, mid-write on the server.
    for i in 0..48u64 {
        let (url, push, signature) = (url.clone(), push.clone(), signature.clone());
        tasks.spawn(async move {
            let mut headers = github("push", &format!("hang-{i}"), Some(signature));
            headers.push(("content-type", "application/json".into()));
            post_and_hang_up(&url, &headers, &push, Duration::from_millis(i % 8)).await;
            None
        });
    }
    // REST writes cut off the same way (outbound hook creation).
    for i in 0..24u64 {
        let base = s.url.clone();
        tasks.spawn(async move {
            let body = json!({"organizationName": "default", "name": format!("h{i}"), "displayName": "h", "payloadUrl": "https://example.invalid/x", "active": false});
            let body = serde_json::to_vec(&body).unwrap();
            let headers = [("authorization", format!("token {TOKEN}")), ("content-type", "application/json".into())];
            post_and_hang_up(&format!("{base}/api/orgs/default/hooks"), &headers, &body, Duration::from_millis(i % 5))
                .await;
            None
        });
    }
    let mut answered = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Some(id) = r.unwrap() {
            answered.push(id);
        }
    }
    assert_eq!(answered.len(), 24);

    // The writer still works: ready, and a new push is triggered and runs with its log.
    let (status, body) = s.get("/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(&url, &push, &github("push", "after", Some(signature.clone()))).await;
    assert_eq!((status, body["result"].as_str()), (200, Some("triggered")), "{body}");
    let last = body["pipelineExecutionId"].as_str().unwrap().to_owned();
    answered.push(last.clone());

    // Every answered push ran to success, with the whole log of its command.
    for id in &answered {
        let e = wait_done(&c, "app", id).await;
        assert_eq!(e.status, Some(PipelineExecutionStatus::Succeeded), "{id}");
    }
    assert!(logs_of(&s, "app", &last).await.contains(&format!("line 40 of {last}")));

    // Every push recorded as triggered has its execution, and every execution was recorded as triggered by
    // exactly one push: nothing accepted was lost, nothing started twice.
    let mut triggered = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let q = before.as_ref().map(|b| format!("&cursor={b}")).unwrap_or_default();
        let (status, page) = s.get(&format!("/api/orgs/default/inbound?limit=100{q}"), Some(TOKEN)).await;
        assert_eq!(status, 200, "{page}");
        for r in page["requests"].as_array().unwrap() {
            if r["verdict"] == "triggered" {
                triggered.push(r["pipelineExecutionId"].as_str().unwrap().to_owned());
            }
        }
        match page["nextCursor"].as_str() {
            Some(n) => before = Some(n.to_owned()),
            None => break,
        }
    }
    let executions = c.list_pipeline_executions().pipeline_name("app").max_results(100).send().await.unwrap();
    let mut all: Vec<String> = executions
        .pipeline_execution_summaries()
        .iter()
        .map(|e| e.pipeline_execution_id().unwrap().to_owned())
        .collect();
    all.sort();
    triggered.sort();
    assert_eq!(triggered, all, "triggered requests and executions match one to one");
    assert!(answered.iter().all(|id| all.contains(id)));
    for id in &all {
        let e = wait_done(&c, "app", id).await;
        assert_eq!(e.status, Some(PipelineExecutionStatus::Succeeded), "{id}");
    }
    // REST writes still work too.
    let res = s
        .client()
        .post(format!("{}/api/orgs/default/hooks", s.url))
        .header("authorization", format!("token {TOKEN}"))
        .json(&json!({"organizationName": "default", "name": "after", "displayName": "after", "payloadUrl": "https://example.invalid/x", "active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
}

/// `/readyz` checks that a write can happen now, not only that the database answers: with another process
/// holding SQLite's write lock it says unavailable, and ready again once the lock is gone.
#[tokio::test]
async fn readyz_fails_while_writes_cannot_happen() {
    use sqlx::{Connection, Executor};
    let s = TestServer::start().await;
    assert_eq!(s.get("/readyz", None).await.0, 200);
    let mut other = sqlx::SqliteConnection::connect(&format!("sqlite://{}", s.data_dir.join("pipehook.db").display()))
        .await
        .unwrap();
    other.execute("BEGIN IMMEDIATE").await.unwrap();
    let (status, body) = s.get("/readyz", None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    other.execute("ROLLBACK").await.unwrap();
    drop(other);
    let mut ready = false;
    for _ in 0..100 {
        if s.get("/readyz", None).await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "ready again once the lock is released");
}

/// GitHub's default content type for a repository hook is `application/x-www-form-urlencoded` with the JSON
/// in `payload`; the signature is over the form body as sent. Both trigger URLs take it.
#[tokio::test]
async fn form_encoded_github_deliveries_are_accepted() {
    let s = TestServer::start().await;
    let c = crate::webhooks::client(&s);
    create_pipeline(&c, "app", "master", "echo \"form $PIPEHOOK_COMMIT_ID\"").await;
    let url = hmac_webhook(&c, "gh", "app").await;
    let push = fixture("github/push-branch.json");
    let form: String = url_encoded(&[("payload", std::str::from_utf8(&push).unwrap())]);
    let form = form.into_bytes();
    let send = |delivery: &str, body: Vec<u8>, signature: String| {
        let (url, delivery) = (url.clone(), delivery.to_owned());
        async move {
            let mut req = reqwest::Client::new()
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
            for (k, v) in github("push", &delivery, Some(signature)) {
                req = req.header(k, v);
            }
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = send("form-1", form.clone(), sign(SECRET, &form)).await;
    assert_eq!((status, body["result"].as_str()), (200, Some("triggered")), "{body}");
    let id = body["pipelineExecutionId"].as_str().unwrap().to_owned();
    let e = wait_done(&c, "app", &id).await;
    assert_eq!(e.status, Some(PipelineExecutionStatus::Succeeded));
    assert!(logs_of(&s, "app", &id).await.contains("form 6113728f27ae82c7b1a177c8d03f9e96e0adf246"));
    // Signed over the decoded JSON instead of the form body: refused.
    let (status, _) = send("form-2", form.clone(), sign(SECRET, &push)).await;
    assert_eq!(status, 401);
    // A form without `payload`: a clear 400.
    let bad = b"other=1".to_vec();
    let (status, body) = send("form-3", bad.clone(), sign(SECRET, &bad)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("payload"), "{body}");
    // The logged request replays (the log keeps the form body and its content type).
    let (_, page) = s.get("/api/orgs/default/inbound?limit=10", Some(TOKEN)).await;
    let items = page["requests"].as_array().unwrap();
    let first = items.iter().find(|r| r["pipelineExecutionId"] == json!(id)).expect("the form delivery is logged");
    let res = s
        .client()
        .post(format!("{}/api/orgs/default/inbound/{}/replay", s.url, first["id"].as_str().unwrap()))
        .header("authorization", format!("token {TOKEN}"))
        .send()
        .await
        .unwrap();
    let replayed: Value = res.json().await.unwrap();
    assert_eq!(replayed["verdict"].as_str(), Some("triggered"), "{replayed}");

    // The CodeBuild payload URL too.
    let cb = crate::codebuild::client(&s);
    let repo = tempfile::tempdir().unwrap();
    let commit = crate::codebuild::git_repo_with(repo.path(), &[("data.txt", "from the form")]);
    crate::codebuild::create_repo_project(
        &cb,
        "proj",
        aws_sdk_codebuild::types::SourceType::Github,
        &repo.path().display().to_string(),
        None,
    )
    .await;
    let hook = cb
        .create_webhook()
        .project_name("proj")
        .filter_groups(vec![crate::codebuild::filter(aws_sdk_codebuild::types::WebhookFilterType::Event, "PUSH")])
        .manual_creation(true)
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap();
    let mut push: Value = serde_json::from_slice(&push).unwrap();
    push["after"] = Value::from(commit.clone());
    push["head_commit"]["id"] = Value::from(commit.clone());
    let form = url_encoded(&[("payload", &push.to_string())]).into_bytes();
    let (payload_url, secret) = (hook.payload_url.unwrap(), hook.secret.unwrap());
    let mut req = reqwest::Client::new()
        .post(&payload_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.clone());
    for (k, v) in github("push", "form-cb", Some(sign(&secret, &form))) {
        req = req.header(k, v);
    }
    let res = req.send().await.unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["result"].as_str(), Some("triggered"), "{body}");
    let b = crate::codebuild::wait_build(&cb, body["buildId"].as_str().unwrap()).await;
    assert_eq!(b.build_status, Some(aws_sdk_codebuild::types::StatusType::Succeeded));
    assert_eq!(b.resolved_source_version.as_deref(), Some(commit.as_str()));
}

fn url_encoded(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let enc = |s: &str| {
                s.bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => (b as char).to_string(),
                        b' ' => "+".to_owned(),
                        _ => format!("%{b:02X}"),
                    })
                    .collect::<String>()
            };
            format!("{}={}", enc(k), enc(v))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `GET /` says what the server is and where to go, instead of an empty 405.
#[tokio::test]
async fn the_root_points_people_somewhere() {
    let s = TestServer::start().await;
    let res = s.client().get(format!("{}/", s.url)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(text.contains("pipehook") && text.contains("/api/orgs/") && text.contains("--endpoint-url"), "{text}");
    assert!(text.contains(&s.url), "names the server's own address: {text}");
}

async fn metrics(s: &TestServer) -> String {
    let res = s.client().get(format!("{}/metrics", s.url)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

/// What an operator watches: AWS calls by operation, triggers by result, executions by status, queue depth
/// and age, store errors and the process.
#[tokio::test]
async fn metrics_label_aws_calls_by_operation_and_count_what_operators_watch() {
    let s = TestServer::start().await;
    let c = crate::webhooks::client(&s);
    create_pipeline(&c, "app", "master", "true").await;
    c.list_pipelines().send().await.unwrap();
    let url = hmac_webhook(&c, "gh", "app").await;
    let push = fixture("github/push-branch.json");
    let (_, body) = post(&url, &push, &github("push", "m-1", Some(sign(SECRET, &push)))).await;
    wait_done(&c, "app", body["pipelineExecutionId"].as_str().unwrap()).await;
    post(&url, &push, &github("push", "m-2", Some("sha256=00".into()))).await;
    post(&format!("{}/trigger?t=nope", s.url), &push, &[]).await;

    let text = metrics(&s).await;
    for want in [
        r#"pipehook_http_requests_total{route="/",operation="codepipeline.CreatePipeline",method="POST",status="200"} 1"#,
        r#"pipehook_http_requests_total{route="/",operation="codepipeline.ListPipelines",method="POST",status="200"} 1"#,
        r#"pipehook_triggers_total{trigger="pipeline",result="triggered"} 1"#,
        r#"pipehook_triggers_total{trigger="pipeline",result="unauthenticated"} 1"#,
        r#"pipehook_triggers_total{trigger="pipeline",result="not_found"} 1"#,
        r#"pipehook_pipeline_executions{status="Succeeded"} 1"#,
        "pipehook_queue_up 1",
        "pipehook_store_errors_total ",
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
    ] {
        assert!(text.contains(want), "missing {want}\n{text}");
    }
    // A made-up operation does not become a label of its own.
    let (status, _) = crate::support::signed_post(&s.url, "CodePipeline_20150709.MadeUp", b"{}".to_vec()).await;
    assert_eq!(status, 400);
    let text = metrics(&s).await;
    assert!(text.contains(r#"operation="unknown""#) && !text.contains("MadeUp"), "{text}");
}

/// One id per request: in the `x-request-id` header, in error answers, in the trigger answer and the
/// inbound log record; a client's own `x-request-id` is not taken as ours.
#[tokio::test]
async fn one_request_id_in_headers_error_answers_and_the_inbound_log() {
    let s = TestServer::start().await;
    let res = s
        .client()
        .get(format!("{}/api/orgs/default/pipelines/nope", s.url))
        .header("authorization", format!("token {TOKEN}"))
        .header("x-request-id", "client-chosen")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let header = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(header, "client-chosen");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["requestId"], json!(header), "{body}");
    assert_eq!(body["code"], 404, "the Pulumi error shape is kept: {body}");
    // Unauthenticated REST calls too.
    let res = s.client().get(format!("{}/api/orgs/default/pipelines", s.url)).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let header = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(res.json::<Value>().await.unwrap()["requestId"], json!(header));

    // A trigger: the answer's requestId, its header and the inbound log record's id are one.
    let c = crate::webhooks::client(&s);
    create_pipeline(&c, "app", "master", "true").await;
    let url = hmac_webhook(&c, "gh", "app").await;
    let push = fixture("github/push-branch.json");
    let res = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", "rid-1")
        .header("x-hub-signature-256", "sha256=00")
        .body(push.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let header = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["requestId"], json!(header));
    let (status, record) = s.get(&format!("/api/orgs/default/inbound/{header}"), Some(TOKEN)).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["verdict"], "unauthenticated");
    // An unknown trigger token: 404 with the id as well.
    let res = reqwest::Client::new().post(format!("{}/trigger?t=nope", s.url)).body("{}").send().await.unwrap();
    let header = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(res.json::<Value>().await.unwrap()["requestId"], json!(header));
}

/// A worker-only node serves health, readiness and metrics (so it can be probed and scraped) and nothing
/// else.
#[tokio::test]
async fn a_worker_node_serves_health_and_metrics() {
    let s = TestServer::builder().env("PIPEHOOK_ROLE", "worker").start().await.unwrap();
    assert_eq!(s.get("/readyz", None).await.0, 200);
    assert!(metrics(&s).await.contains("pipehook_queue_up 1"));
    assert_eq!(s.get("/api/orgs/default/pipelines", Some(TOKEN)).await.0, 404);
    let res = s.client().post(format!("{}/", s.url)).body("{}").send().await.unwrap();
    assert_eq!(res.status(), 404);
}

/// Reads the real binary's log until `line` says the server is serving, and returns everything read.
async fn serve_log(envs: &[(&str, &str)], dir: &Path) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut cmd = tokio::process::Command::from(crate::support::pipehook_cmd());
    cmd.env("RUST_LOG", "info")
        .envs(envs.iter().copied())
        .args(["serve", "--data-dir"])
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let read = async {
        while let Ok(Some(line)) = lines.next_line().await {
            log.push_str(&line);
            log.push('\n');
            if line.contains("pipehook is serving") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read).await.expect("the server started");
    let _ = child.kill().await;
    log
}

/// Trigger URLs on a loopback or unspecified address cannot be reached by a git host: the server says so at
/// start, and how to fix it; with a public URL it does not.
#[tokio::test]
async fn the_server_warns_when_trigger_urls_are_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let log = serve_log(&[("PIPEHOOK_LISTEN", "127.0.0.1:0")], &dir.path().join("a")).await;
    assert!(log.contains("WARN") && log.contains("loopback") && log.contains("PIPEHOOK_PUBLIC_URL"), "{log}");
    let log = serve_log(&[("PIPEHOOK_LISTEN", "0.0.0.0:0")], &dir.path().join("b")).await;
    assert!(log.contains("unspecified") && log.contains("PIPEHOOK_PUBLIC_URL"), "{log}");
    let log = serve_log(
        &[("PIPEHOOK_LISTEN", "127.0.0.1:0"), ("PIPEHOOK_PUBLIC_URL", "https://ci.example.com")],
        &dir.path().join("c"),
    )
    .await;
    assert!(!log.contains("PIPEHOOK_PUBLIC_URL") && log.contains("https://ci.example.com"), "{log}");
}

/// Creating (or changing) an outbound hook to an address deliveries will refuse says so at once.
#[tokio::test]
async fn an_outbound_hook_to_a_local_address_is_warned_about() {
    let s = TestServer::start().await;
    let create = |name: &str, url: &str| {
        let body = json!({"organizationName": "default", "name": name, "displayName": name, "payloadUrl": url, "active": true});
        s.client()
            .post(format!("{}/api/orgs/default/hooks", s.url))
            .header("authorization", format!("token {TOKEN}"))
            .json(&body)
            .send()
    };
    let res = create("local", "http://127.0.0.1:9000/hook").await.unwrap();
    assert_eq!(res.status(), 201);
    let warning = res.headers().get("warning").map(|v| v.to_str().unwrap().to_owned()).expect("a Warning header");
    assert!(warning.starts_with("299 pipehook \"") && warning.contains("loopback"), "{warning}");
    let body: Value = res.json().await.unwrap();
    let text = body["warnings"][0].as_str().unwrap();
    assert!(text.contains("will be refused") && text.contains("PIPEHOOK_OUTBOUND_ALLOWED_NETWORKS"), "{body}");
    // A name that resolves to a private address too.
    let res = create("named", "http://localhost:9000/hook").await.unwrap();
    assert_eq!(res.status(), 201);
    assert!(res.json::<Value>().await.unwrap()["warnings"][0].as_str().is_some());
    // A public address: no warning.
    let res = create("public", "https://203.0.114.1/hook").await.unwrap();
    assert_eq!(res.status(), 201);
    assert!(res.headers().get("warning").is_none());
    assert!(res.json::<Value>().await.unwrap().get("warnings").is_none());
    // Changing a hook to a local address warns too.
    let res = s
        .client()
        .patch(format!("{}/api/orgs/default/hooks/public", s.url))
        .header("authorization", format!("token {TOKEN}"))
        .json(&json!({"payloadUrl": "http://10.1.2.3/hook"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("warning").is_some());
    // The CLI says it on stderr.
    let out =
        s.cli_with(&[("PIPEHOOK_TOKEN", TOKEN)], &["hooks", "create", "cli", "--url", "http://192.168.1.5/x"]).await;
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pipehook: warning: deliveries to this URL will be refused"), "{stderr}");
    // Where the operator allowed local networks, no warning.
    let s = TestServer::builder().env("PIPEHOOK_OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8").start().await.unwrap();
    let res = s
        .client()
        .post(format!("{}/api/orgs/default/hooks", s.url))
        .header("authorization", format!("token {TOKEN}"))
        .json(&json!({"organizationName": "default", "name": "ok", "displayName": "ok", "payloadUrl": "http://127.0.0.1:9000/x", "active": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert!(res.headers().get("warning").is_none());
}
