//! One request (or one flood of them) must never stop the server (issue 17, section 2): costly JSONPath rules
//! are refused at put time and bounded when they run, off the async runtime, and unauthenticated floods leave
//! the inbound log, and so the database, bounded.

use aws_sdk_codepipeline::error::ProvideErrorMetadata;
use aws_sdk_codepipeline::types::{
    WebhookAuthConfiguration, WebhookAuthenticationType, WebhookDefinition, WebhookFilterRule,
};
use serde_json::{json, Value};
use sha2::Digest;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{TestServer, TOKEN};
use crate::webhooks::{client, create_pipeline, github, hmac_config, post, sign, SECRET};

/// The rule of the report: five nested descendant filters, exponential in the payload's depth.
const PATHOLOGICAL: &str = "$..[?@..[?@..[?@..[?@..[?@..zz]]]]]";
/// Within the shape limits (two descendant segments), and still some N × depth node visits.
const SLOW: &str = "$..[?@..x]";

fn webhook(
    name: &str,
    json_path: &str,
    auth: WebhookAuthenticationType,
    cfg: WebhookAuthConfiguration,
) -> WebhookDefinition {
    webhook_matching(name, json_path, None, auth, cfg)
}

fn webhook_matching(
    name: &str,
    json_path: &str,
    match_equals: Option<&str>,
    auth: WebhookAuthenticationType,
    cfg: WebhookAuthConfiguration,
) -> WebhookDefinition {
    let rule = WebhookFilterRule::builder().json_path(json_path).set_match_equals(match_equals.map(str::to_owned));
    WebhookDefinition::builder()
        .name(name)
        .target_pipeline("app")
        .target_action("Source")
        .filters(rule.build().unwrap())
        .authentication(auth)
        .authentication_configuration(cfg)
        .build()
        .unwrap()
}

/// An unauthenticated webhook of pipeline `app` with `rules` times the rule `json_path`; its trigger URL.
async fn put_unauthenticated(s: &TestServer, name: &str, json_path: &str, rules: usize) -> String {
    let auth = WebhookAuthConfiguration::builder().build();
    let mut def = webhook(name, json_path, WebhookAuthenticationType::Unauthenticated, auth);
    def.filters = vec![def.filters[0].clone(); rules];
    client(s).put_webhook().webhook(def).send().await.unwrap().webhook.unwrap().url
}

async fn rest(s: &TestServer, method: reqwest::Method, path: &str, body: Option<Vec<u8>>) -> (u16, Value) {
    let mut req =
        s.client().request(method, format!("{}{path}", s.url)).header("authorization", format!("token {TOKEN}"));
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// `count` arrays nested `depth` deep side by side: for [`SLOW`], every node's filter walks its whole chain.
fn nested_chains(count: usize, depth: usize) -> Vec<u8> {
    let chain = format!("{}0{}", "[".repeat(depth), "]".repeat(depth));
    format!("[{}]", vec![chain; count].join(",")).into_bytes()
}

#[tokio::test]
async fn pathological_filters_are_refused_at_put_time() {
    let s = TestServer::start().await;
    let c = client(&s);
    create_pipeline(&c, "app", "main", "true").await;
    let unauth = || WebhookAuthConfiguration::builder().build();
    for path in [PATHOLOGICAL, "$..a..b..c", "$[?@[?@[?@[?@.a]]]]", "$[?count($..a) > 1]", "$[*,*,*,*,*][*,*,*,*]"] {
        let e = c
            .put_webhook()
            .webhook(webhook("w", path, WebhookAuthenticationType::Unauthenticated, unauth()))
            .send()
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("InvalidWebhookFilterPatternException"), "{path}: {e:?}");
        assert!(e.message().unwrap_or_default().contains("too costly to evaluate"), "{path}: {e:?}");
    }
    // The native REST API says the same.
    let def = json!({"targetPipeline": "app", "targetAction": "Source", "authentication": "UNAUTHENTICATED",
        "authenticationConfiguration": {}, "filters": [{"jsonPath": PATHOLOGICAL}]});
    let (status, body) =
        rest(&s, reqwest::Method::PUT, "/api/orgs/default/webhooks/w", Some(serde_json::to_vec(&def).unwrap())).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap_or_default().contains("too costly to evaluate"), "{body}");
    // What stays allowed: one or two descendant segments, filters, a `$` singular query in a filter.
    for path in [SLOW, "$..ref", "$.commits[?@.message == 'docs'].id", "$..[?$.ref == 'refs/heads/main']"] {
        c.put_webhook()
            .webhook(webhook("w", path, WebhookAuthenticationType::Unauthenticated, unauth()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e:?}"));
    }
    s.stop().await.unwrap();
}

/// The slowest answer to `/healthz`, asked every 100 ms, at least five times and until `stop` is set, from a
/// thread and runtime of its own: a prober on the server's runtime would stall with it and never see the stall.
fn healthz_prober(url: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Duration> {
    let url = format!("{url}/healthz");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let client = reqwest::Client::new();
            let mut worst = Duration::ZERO;
            let mut asked = 0;
            while asked < 5 || !stop.load(Ordering::SeqCst) {
                asked += 1;
                let started = Instant::now();
                let res = tokio::time::timeout(Duration::from_secs(60), client.get(&url).send())
                    .await
                    .expect("/healthz answers")
                    .unwrap();
                assert_eq!(res.status(), 200);
                worst = worst.max(started.elapsed());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            worst
        })
    })
}

async fn healthz_worst_while(s: &TestServer, work: impl std::future::Future) -> Duration {
    let stop = Arc::new(AtomicBool::new(false));
    let prober = healthz_prober(&s.url, stop.clone());
    work.await;
    stop.store(true, Ordering::SeqCst);
    tokio::task::spawn_blocking(move || prober.join().unwrap()).await.unwrap()
}

/// Two worker threads, as on the two-core machines of the report: evaluations on the runtime would take them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_rule_runs_out_of_time_and_the_server_keeps_answering() {
    // No cost bound to speak of, so the rule really runs; the time budget ends the wait for it.
    let s = TestServer::builder()
        .env("PIPEHOOK_INBOUND_RULE_MAX_COST", "1000000000000000000")
        .env("PIPEHOOK_INBOUND_RULE_TIMEOUT_MS", "200")
        .start()
        .await
        .unwrap();
    create_pipeline(&client(&s), "app", "main", "true").await;
    // Five rules (the most a webhook has), each about a second on this payload in a debug build.
    let url = put_unauthenticated(&s, "slow", SLOW, 5).await;
    let body = nested_chains(CHAINS, 120);
    let idle = healthz_worst_while(&s, async {}).await;
    // More requests at once than there are evaluation slots (2).
    let posts: Vec<_> = (0..3)
        .map(|i| {
            let (url, body) = (url.clone(), body.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let (status, out) = post(&url, &body, &github("push", &format!("slow-{i}"), None)).await;
                (status, out, started.elapsed())
            })
        })
        .collect();
    let mut results = Vec::new();
    let busy = healthz_worst_while(&s, async {
        for p in posts {
            results.push(p.await.unwrap());
        }
    })
    .await;
    let mut answered = Duration::ZERO;
    for (status, out, took) in results {
        answered = answered.max(took);
        assert_eq!((status, out["result"].as_str()), (200, Some("filtered")), "{out}");
        let reason = out["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("time budget of 200 ms"), "{out}");
    }
    eprintln!(
        "{} KB payload, rule {SLOW}: triggers answered within {answered:?}; /healthz worst {busy:?} during, {idle:?} idle",
        body.len() / 1000
    );
    assert!(busy < Duration::from_secs(2), "/healthz took {busy:?} while rules ran");
    assert!(answered < Duration::from_secs(10), "{answered:?}");

    // The log says which rule and why.
    let (_, list) =
        rest(&s, reqwest::Method::GET, "/api/orgs/default/inbound?webhook=slow&verdict=filtered", None).await;
    let requests = list["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 3, "{list}");
    for r in requests {
        let error = r["detail"]["failedRule"]["error"].as_str().unwrap_or_default();
        assert!(error.contains("time budget"), "{r}");
    }
    // Explain runs under the same bounds.
    let started = Instant::now();
    let (status, x) = rest(&s, reqwest::Method::POST, "/api/orgs/default/webhooks/slow/explain", Some(body)).await;
    assert_eq!(status, 200, "{x}");
    assert!(x["rules"][0]["error"].as_str().unwrap_or_default().contains("time budget"), "{x}");
    assert_eq!(x["verdict"], "would be filtered");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(healthz_worst_while(&s, async {}).await < Duration::from_secs(2));
    s.stop().await.unwrap();
}

/// Arrays nested 120 deep side by side in the slow rule's payload: 96,801 values (trigger bodies are read up to
/// 100,000), 190 KB.
const CHAINS: usize = 800;

/// Under a cost budget lower than its bound, the same rule on the same payload is not run at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_over_the_cost_budget_is_not_run() {
    let s = TestServer::builder().env("PIPEHOOK_INBOUND_RULE_MAX_COST", "1000000").start().await.unwrap();
    create_pipeline(&client(&s), "app", "main", "true").await;
    let url = put_unauthenticated(&s, "slow", SLOW, 1).await;
    let started = Instant::now();
    let (status, out) = post(&url, &nested_chains(CHAINS, 120), &github("push", "costly", None)).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("filtered")), "{out}");
    let reason = out["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("over the budget of 1000000"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    // A small payload is within it, and evaluated.
    let (status, out) = post(&url, br#"{"a": [{"x": 1}]}"#, &github("push", "cheap", None)).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("triggered")), "{out}");
    s.stop().await.unwrap();
}

/// pipehook.db and its WAL, in bytes.
fn database_bytes(s: &TestServer) -> u64 {
    ["pipehook.db", "pipehook.db-wal"]
        .iter()
        .map(|f| std::fs::metadata(s.data_dir.join(f)).map(|m| m.len()).unwrap_or(0))
        .sum()
}

async fn metric(s: &TestServer, line_start: &str) -> Option<u64> {
    let text = s.client().get(format!("{}/metrics", s.url)).send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(line_start)).and_then(|v| v.trim().parse().ok())
}

/// `n` posts of `body`, eight at a time; the statuses.
async fn flood(url: &str, body: &[u8], n: usize, signature: impl Fn(usize) -> Option<String>) -> Vec<u16> {
    let mut statuses = Vec::new();
    for batch in (0..n).collect::<Vec<_>>().chunks(8) {
        let posts: Vec<_> = batch
            .iter()
            .map(|&i| {
                let (url, body, headers) =
                    (url.to_owned(), body.to_vec(), github("push", &format!("d-{i}"), signature(i)));
                tokio::spawn(async move { post(&url, &body, &headers).await.0 })
            })
            .collect();
        for p in posts {
            statuses.push(p.await.unwrap());
        }
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_floods_leave_the_log_bounded() {
    const PER_MINUTE: usize = 10;
    const FLOOD: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let server = || {
        TestServer::builder()
            .data_dir(dir.path())
            .env("PIPEHOOK_INBOUND_UNAUTHENTICATED_LOG_PER_MINUTE", &PER_MINUTE.to_string())
    };
    let s = server().start().await.unwrap();
    let c = client(&s);
    create_pipeline(&c, "app", "main", "true").await;
    // Signed requests are filtered (they name another branch), so the flood starts nothing.
    let def = webhook_matching(
        "gh",
        "$.ref",
        Some("refs/heads/{Branch}"),
        WebhookAuthenticationType::GithubHmac,
        hmac_config(SECRET),
    );
    let url = c.put_webhook().webhook(def).send().await.unwrap().webhook.unwrap().url;
    // 60 KB, under the 64 KiB the log keeps of a body.
    let body = serde_json::to_vec(&json!({"ref": "refs/heads/feature", "padding": "x".repeat(60_000)})).unwrap();

    // A flood of bad signatures: every one answered 401, PER_MINUTE logged, the rest counted.
    let before = database_bytes(&s);
    let statuses = flood(&url, &body, FLOOD, |_| Some(sign("not the secret", b"x"))).await;
    assert!(statuses.iter().all(|&st| st == 401), "{statuses:?}");
    let grown = database_bytes(&s).saturating_sub(before);
    let (_, list) =
        rest(&s, reqwest::Method::GET, "/api/orgs/default/inbound?webhook=gh&verdict=unauthenticated&limit=500", None)
            .await;
    let logged = list["requests"].as_array().unwrap();
    assert_eq!(logged.len(), PER_MINUTE, "{list}");
    let dropped = metric(&s, "pipehook_inbound_dropped_total{reason=\"unauthenticated_rate\"} ").await;
    assert_eq!(dropped, Some((FLOOD - PER_MINUTE) as u64));
    // What one of them keeps: headers, the body's size and hash, no body.
    let id = logged[0]["id"].as_str().unwrap();
    let (_, r) = rest(&s, reqwest::Method::GET, &format!("/api/orgs/default/inbound/{id}"), None).await;
    assert!(r.get("body").is_none(), "{r}");
    assert_eq!(r["bodyOmitted"], "unauthenticated");
    assert_eq!(r["detail"]["bodyBytes"], body.len());
    assert_eq!(r["detail"]["bodySha256"], hex::encode(sha2::Sha256::digest(&body)));
    assert_eq!(r["headers"]["x-github-event"], "push");
    let (status, _) = rest(&s, reqwest::Method::POST, &format!("/api/orgs/default/inbound/{id}/replay"), None).await;
    assert_eq!(status, 409);

    // Signed requests are still logged in full: the same flood signed costs what bad signatures used to.
    let before_signed = database_bytes(&s);
    let statuses = flood(&url, &body, FLOOD, |_| Some(sign(SECRET, &body))).await;
    assert!(statuses.iter().all(|&st| st == 200), "{statuses:?}");
    let grown_signed = database_bytes(&s).saturating_sub(before_signed);
    let (_, list) =
        rest(&s, reqwest::Method::GET, "/api/orgs/default/inbound?webhook=gh&verdict=filtered&limit=1", None).await;
    let id = list["requests"][0]["id"].as_str().unwrap();
    let (_, r) = rest(&s, reqwest::Method::GET, &format!("/api/orgs/default/inbound/{id}"), None).await;
    assert_eq!(r["body"].as_str().map(str::as_bytes), Some(&body[..]), "the whole body");
    assert!(r.get("bodyOmitted").is_none());
    eprintln!(
        "{FLOOD} requests of {} KB: the database grew by {} KB with bad signatures, {} KB signed",
        body.len() / 1000,
        grown / 1000,
        grown_signed / 1000
    );
    assert!(grown < 1_000_000, "bad signatures grew the database by {grown} bytes");
    assert!(grown_signed > 5_000_000, "signed requests are logged with their bodies: {grown_signed} bytes");

    // The CodeBuild payload URL is bounded the same way.
    let cb = crate::codebuild::client(&s);
    crate::codebuild::create_repo_project(
        &cb,
        "web",
        aws_sdk_codebuild::types::SourceType::Github,
        "https://github.com/Codertocat/Hello-World",
        None,
    )
    .await;
    let hook = cb.create_webhook().project_name("web").manual_creation(true).send().await.unwrap().webhook.unwrap();
    let payload_url = hook.payload_url.unwrap();
    let statuses = flood(&payload_url, &body, 15, |_| Some(sign("not the secret", b"x"))).await;
    assert!(statuses.iter().all(|&st| st == 401), "{statuses:?}");
    let (_, list) =
        rest(&s, reqwest::Method::GET, "/api/orgs/default/inbound?webhook=project:web&limit=500", None).await;
    let logged = list["requests"].as_array().unwrap();
    assert_eq!(logged.len(), PER_MINUTE, "{list}");
    assert!(logged.iter().all(|r| r["bodyOmitted"] == "unauthenticated"), "{list}");
    let dropped = metric(&s, "pipehook_inbound_dropped_total{reason=\"unauthenticated_rate\"} ").await;
    assert_eq!(dropped, Some((FLOOD - PER_MINUTE + 15 - PER_MINUTE) as u64));
    s.stop().await.unwrap();

    // At shutdown, the minute not ended yet is summed up: one record per webhook with the count dropped.
    let s = server().start().await.unwrap();
    let (_, list) =
        rest(&s, reqwest::Method::GET, "/api/orgs/default/inbound?verdict=unauthenticated&limit=500", None).await;
    let mut summaries: Vec<(&str, u64)> = list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| Some((r["webhook"].as_str()?, r["detail"]["dropped"].as_u64()?)))
        .collect();
    summaries.sort();
    assert_eq!(summaries, [("gh", (FLOOD - PER_MINUTE) as u64), ("project:web", 5)], "{list}");
    s.stop().await.unwrap();
}
