//! Fair claims between organizations, on the real server: one organization's backlog does not hold back
//! another's execution, and `worker.max_running_per_org` caps what one organization runs at once.

use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

use crate::support::{TestServer, TOKEN};

async fn call(s: &TestServer, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = s
        .client()
        .request(method, format!("{}/api/orgs/{path}", s.url))
        .header("authorization", format!("token {token}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn pipeline(name: &str, command: &str) -> Value {
    json!({
        "name": name,
        "roleArn": "arn:aws:iam::123456789012:role/pipehook",
        "artifactStore": {"type": "S3", "location": "artifact-bucket"},
        "executionMode": "PARALLEL",
        "stages": [
            {"name": "Source", "actions": [{"name": "Source",
                "actionTypeId": {"category": "Source", "owner": "ThirdParty", "provider": "GitHub", "version": "1"},
                "configuration": {"Owner": "o", "Repo": "r", "Branch": "main", "OAuthToken": "t"}, "runOrder": 1}]},
            {"name": "Build", "actions": [{"name": "Build",
                "actionTypeId": {"category": "Build", "owner": "Custom", "provider": "Command", "version": "1"},
                "configuration": {"Command": command}, "runOrder": 1}]},
        ],
    })
}

async fn start(s: &TestServer, token: &str, org: &str, pipeline: &str) -> String {
    let (status, body) =
        call(s, token, Method::POST, &format!("{org}/pipelines/{pipeline}/executions"), Some(json!({}))).await;
    assert!((200..300).contains(&status), "{status} {body}");
    body["pipelineExecutionId"].as_str().unwrap().to_owned()
}

async fn statuses(s: &TestServer, token: &str, org: &str, pipeline: &str) -> Vec<String> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("{org}/pipelines/{pipeline}/executions?limit=100{cursor}");
        let (status, page) = call(s, token, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        all.extend(page["executions"].as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap().to_owned()));
        match page["nextCursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return all,
        }
    }
}

async fn second_org(s: &TestServer) -> String {
    let out = s.cli(&["org", "create", "acme", "--account-id", "210987654321"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = s.cli(&["token", "create", "--org", "acme"]).await;
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `default` queues 240 executions on a node that runs 2 at a time; `acme` then starts one. Acme's execution
/// ends within seconds, while most of default's backlog is still waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_organizations_backlog_does_not_hold_back_another() {
    let s = TestServer::builder()
        .env("PIPEHOOK_WORKER_CONCURRENCY", "2")
        .env("PIPEHOOK_WORKER_POLL_MS", "50")
        .start()
        .await
        .unwrap();
    let acme = second_org(&s).await;
    assert_eq!(call(&s, TOKEN, Method::POST, "default/pipelines", Some(pipeline("bulk", "sleep 0.05"))).await.0, 201);
    assert_eq!(call(&s, &acme, Method::POST, "acme/pipelines", Some(pipeline("one", "true"))).await.0, 201);
    const BACKLOG: usize = 240;
    for chunk in 0..BACKLOG / 20 {
        let starts = (0..20).map(|_| start(&s, TOKEN, "default", "bulk"));
        assert_eq!(futures::future::join_all(starts).await.len(), 20, "chunk {chunk}");
    }
    let asked = Instant::now();
    start(&s, &acme, "acme", "one").await;
    loop {
        let mine = statuses(&s, &acme, "acme", "one").await;
        if mine.iter().all(|st| st == "Succeeded") {
            break;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "acme's execution waited behind default's backlog: {mine:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let waited = asked.elapsed();
    let theirs = statuses(&s, TOKEN, "default", "bulk").await;
    let done = theirs.iter().filter(|st| *st == "Succeeded").count();
    eprintln!("fairness: acme's execution ended {waited:?} after it started, with {done} of default's {BACKLOG} done");
    assert!(done < BACKLOG / 2, "acme's execution ran before most of default's backlog ({done} of {BACKLOG} done)");
    s.stop().await.unwrap();
}

/// With `max_running_per_org = 1` and 4 worker slots, one organization's 4 executions run one at a time (their
/// commands never overlap) while another organization's execution runs beside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_organization_cap_holds_across_claims() {
    let marks = tempfile::tempdir().unwrap();
    let s = TestServer::builder()
        .env("PIPEHOOK_WORKER_CONCURRENCY", "4")
        .env("PIPEHOOK_WORKER_MAX_RUNNING_PER_ORG", "1")
        // The commands write their times to this test's folder, which a sandbox would not show them.
        .env("PIPEHOOK_RUNNER_EXECUTOR", "none")
        .env("PIPEHOOK_WORKER_POLL_MS", "50")
        .start()
        .await
        .unwrap();
    let acme = second_org(&s).await;
    let log = marks.path().join("default.log");
    let cmd = format!("echo start $(date +%s%N) >> {0}; sleep 0.4; echo end $(date +%s%N) >> {0}", log.display());
    assert_eq!(call(&s, TOKEN, Method::POST, "default/pipelines", Some(pipeline("capped", &cmd))).await.0, 201);
    let acme_log = marks.path().join("acme.log");
    let acme_cmd =
        format!("echo start $(date +%s%N) >> {0}; sleep 0.4; echo end $(date +%s%N) >> {0}", acme_log.display());
    assert_eq!(call(&s, &acme, Method::POST, "acme/pipelines", Some(pipeline("beside", &acme_cmd))).await.0, 201);
    for _ in 0..4 {
        start(&s, TOKEN, "default", "capped").await;
    }
    start(&s, &acme, "acme", "beside").await;
    let begun = Instant::now();
    loop {
        let (a, b) = (statuses(&s, TOKEN, "default", "capped").await, statuses(&s, &acme, "acme", "beside").await);
        if a.iter().chain(&b).all(|st| st == "Succeeded") {
            break;
        }
        assert!(begun.elapsed() < Duration::from_secs(30), "{a:?} {b:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = |path: &std::path::Path| -> Vec<(String, u128)> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let (what, at) = l.split_once(' ').unwrap();
                (what.to_owned(), at.parse().unwrap())
            })
            .collect()
    };
    let mut mine = events(&log);
    mine.sort_by_key(|e| e.1);
    let mut running = 0;
    for (what, _) in &mine {
        running += if what == "start" { 1 } else { -1 };
        assert!(running <= 1, "two of default's commands overlapped: {mine:?}");
    }
    assert_eq!(mine.len(), 8);
    // Acme's command ran while default's were still going (not after all four).
    let acme_start = events(&acme_log)[0].1;
    let last_default_end = mine.last().unwrap().1;
    assert!(acme_start < last_default_end, "acme's execution waited for default's capped ones");
    s.stop().await.unwrap();
}

/// With `max_queued_per_org = 2` and one worker slot busy, an organization may queue 2 executions; the next
/// start is refused on every front door (REST 429, AWS `ConcurrentPipelineExecutionsLimitExceededException`, a
/// trigger's 429 `rejected`, logged, its delivery id left unclaimed so the host's redelivery is judged again),
/// a repeated clientRequestToken still returns its execution, and another organization is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queued_cap_refuses_new_runs_on_every_front_door() {
    let s = TestServer::builder()
        .env("PIPEHOOK_WORKER_CONCURRENCY", "1")
        .env("PIPEHOOK_WORKER_MAX_QUEUED_PER_ORG", "2")
        .env("PIPEHOOK_WORKER_DRAIN_SECONDS", "1")
        .env("PIPEHOOK_WORKER_POLL_MS", "50")
        .start()
        .await
        .unwrap();
    let acme = second_org(&s).await;
    let mut busy = pipeline("busy", "sleep 30");
    busy["stages"][0]["actions"][0]["configuration"]["Branch"] = json!("master");
    assert_eq!(call(&s, TOKEN, Method::POST, "default/pipelines", Some(busy)).await.0, 201);
    assert_eq!(call(&s, &acme, Method::POST, "acme/pipelines", Some(pipeline("one", "true"))).await.0, 201);
    // One runs (the only slot); two wait.
    let running = start(&s, TOKEN, "default", "busy").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, e) = call(&s, TOKEN, Method::GET, &format!("default/pipelines/busy/executions/{running}"), None).await;
        if e["actions"].as_array().is_some_and(|a| a.iter().any(|a| a["action"] == "Build")) {
            break;
        }
        assert!(Instant::now() < deadline, "the first execution never ran: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, first) = call(
        &s,
        TOKEN,
        Method::POST,
        "default/pipelines/busy/executions",
        Some(json!({"clientRequestToken": "tok-1"})),
    )
    .await;
    assert_eq!(status, 202, "{first}");
    start(&s, TOKEN, "default", "busy").await;

    let (status, body) = call(&s, TOKEN, Method::POST, "default/pipelines/busy/executions", Some(json!({}))).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.to_string().contains("waiting to run"), "{body}");
    let (status, again) = call(
        &s,
        TOKEN,
        Method::POST,
        "default/pipelines/busy/executions",
        Some(json!({"clientRequestToken": "tok-1"})),
    )
    .await;
    assert_eq!((status, &again["pipelineExecutionId"]), (202, &first["pipelineExecutionId"]), "a repeated token");
    let aws = crate::support::codepipeline(
        &s.url,
        crate::support::ACCESS_KEY_ID,
        crate::support::SECRET_ACCESS_KEY,
        "us-east-1",
    );
    let err = aws.start_pipeline_execution().name("busy").send().await.unwrap_err();
    let code = aws_sdk_codepipeline::error::ProvideErrorMetadata::code(&err).map(str::to_owned);
    assert_eq!(code.as_deref(), Some("ConcurrentPipelineExecutionsLimitExceededException"), "{err:?}");

    // A trigger: refused, logged `rejected`, and its delivery id not claimed.
    let hook = json!({
        "targetPipeline": "busy", "targetAction": "Source",
        "filters": [{"jsonPath": "$.ref", "matchEquals": "refs/heads/{Branch}"}],
        "authentication": "UNAUTHENTICATED", "authenticationConfiguration": {},
    });
    let (status, w) = call(&s, TOKEN, Method::PUT, "default/webhooks/busy-gh", Some(hook)).await;
    assert_eq!(status, 201, "{w}");
    let url = w["url"].as_str().unwrap().to_owned();
    let push = json!({"ref": "refs/heads/master", "after": "0123456789abcdef0123456789abcdef01234567", "repository": {"full_name": "o/r"}});
    let send = || {
        s.client()
            .post(&url)
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", "cap-delivery-1")
            .body(push.to_string())
            .send()
    };
    let res = send().await.unwrap();
    assert_eq!(res.status().as_u16(), 429);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["result"], "rejected", "{body}");
    let (_, log) = call(&s, TOKEN, Method::GET, "default/inbound?limit=5", None).await;
    assert_eq!(log["requests"][0]["verdict"], "rejected", "{log}");
    let res = send().await.unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["result"], "rejected", "the redelivery is judged again, not a duplicate: {body}");

    // Another organization still starts.
    start(&s, &acme, "acme", "one").await;
    s.stop().await.unwrap();
}
