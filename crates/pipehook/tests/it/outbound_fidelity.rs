//! Outbound wire fidelity, end to end through the real API and a local receiver: `raw` bodies are the published
//! payload's text byte for byte (numbers no float holds included) and are signed as received; an attempt has one
//! number everywhere (ping, redeliver, the deliveries list, one delivery), in all three hook scopes, on both
//! backends; and a real pipeline run's build and deploy events have Puppet Pipelines' bodies (the shape of the
//! examples in its documentation, parsed from the same fixture the relay's unit tests use), with links that
//! answer on this server's API.

use crate::outbound::{status, Receiver};
use crate::support::{Backend, TestServer, TOKEN};
use hmac::Mac;
use serde_json::{json, Value};
use std::time::Duration;

#[path = "../../../pipehook-outbound/tests/fixtures/puppet_seed.rs"]
mod puppet_seed;

const SECRET: &str = "fidelity-hook-secret";

async fn server(backend: Backend) -> Option<TestServer> {
    TestServer::builder()
        .backend(backend)
        .env("PIPEHOOK_OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8")
        .env("PIPEHOOK_OUTBOUND_RETRY_SCHEDULE", "1,1,1")
        .env("PIPEHOOK_WORKER_POLL_MS", "50")
        .start()
        .await
}

/// A token-authenticated call; `body` is sent as it is (JSON text).
async fn call(s: &TestServer, method: &str, path: &str, body: Option<String>) -> (u16, Value, String) {
    let c = s.client();
    let url = if path.starts_with("http") { path.to_owned() } else { format!("{}/api{path}", s.url) };
    let mut req = match method {
        "GET" => c.get(url),
        "POST" => c.post(url),
        "PUT" => c.put(url),
        _ => unreachable!(),
    }
    .header("authorization", format!("token {TOKEN}"));
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b);
    }
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (code, serde_json::from_str(&text).unwrap_or(Value::Null), text)
}

async fn create_hook(s: &TestServer, base: &str, name: &str, url: &str, extra: Value) {
    let mut h = json!({"organizationName": "default", "name": name, "displayName": name, "payloadUrl": url,
                       "active": true});
    for (k, v) in extra.as_object().unwrap() {
        h[k] = v.clone();
    }
    let (code, _, text) = call(s, "POST", base, Some(h.to_string())).await;
    assert_eq!(code, 201, "{text}");
}

fn backends() -> [Backend; 2] {
    [Backend::Sqlite, Backend::Postgres]
}

/// Numbers a float cannot hold, and spacing and escapes a re-encoder would change.
const PAYLOAD: &str = "{\"timestamp\": 1796521054.0618753, \"big\": 12345678901234567890123, \"neg_zero\": -0.0, \
    \"one\": 1.0,\"past_2_53\":123456789012345678 , \"small\": 1.5e-7, \"nested\": {\"list\": [1.10, 2E5, \
    -9007199254740993]},\n  \"text\": \"caf\\u00e9 \\ud83d\\ude00 \\/\"}";

#[tokio::test]
async fn raw_bodies_are_the_published_text_and_signed_as_received() {
    for backend in backends() {
        let Some(s) = server(backend).await else { continue };
        let r = Receiver::start().await;
        create_hook(&s, "/orgs/default/hooks", "raw", &format!("{}/raw", r.url), json!({"secret": SECRET})).await;
        create_hook(&s, "/orgs/default/hooks", "chat", &format!("{}/chat", r.url), json!({"format": "slack"})).await;
        let body = format!("{{\"kind\": \"build_succeeded\", \"payload\": {PAYLOAD}}}");
        let (code, published, text) = call(&s, "POST", "/orgs/default/events", Some(body)).await;
        assert_eq!(code, 202, "{text}");
        assert_eq!(published["deliveries"], 2);

        let got = r.wait("raw", 1).await;
        assert_eq!(String::from_utf8_lossy(&got[0].body), PAYLOAD, "{backend:?}: the payload, byte for byte");
        for edge in ["1796521054.0618753", "12345678901234567890123", "-0.0", "1.0", "123456789012345678", "2E5"] {
            assert!(String::from_utf8_lossy(&got[0].body).contains(edge), "{edge}");
        }
        verify_signatures(&got[0]);
        // A summary format still reads the event from the same text.
        let chat = r.wait("chat", 1).await;
        assert!(chat[0].json()["text"].as_str().unwrap().contains("build succeeded"), "{:?}", chat[0].json());

        // The log shows what was sent; a redelivery sends the same bytes, read back from the store.
        let list = logged(&s, "/orgs/default/hooks/raw", |l| !l.as_array().unwrap().is_empty()).await;
        assert_eq!(list[0]["payload"], PAYLOAD);
        let id = got[0].header("webhook-id").unwrap();
        let (code, again, text) =
            call(&s, "POST", &format!("/orgs/default/hooks/raw/deliveries/{id}/redeliver"), None).await;
        assert_eq!(code, 200, "{text}");
        assert_eq!(again["payload"], PAYLOAD);
        let got = r.wait("raw", 2).await;
        assert_eq!(got[1].body, PAYLOAD.as_bytes(), "{backend:?}: redelivered byte for byte");
        verify_signatures(&got[1]);

        // Not an object, or not JSON: refused.
        for bad in ["[1]", "1796521054.0618753", "{\"a\": }"] {
            let body = format!("{{\"kind\": \"build_succeeded\", \"payload\": {bad}}}");
            let (code, _, text) = call(&s, "POST", "/orgs/default/events", Some(body)).await;
            assert_eq!(code, 400, "{bad}: {text}");
        }
        s.stop().await.unwrap();
    }
}

/// Both signatures verify over the bytes received.
fn verify_signatures(req: &crate::outbound::Received) {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&req.body);
    assert_eq!(req.header("pulumi-webhook-signature").unwrap(), hex::encode(mac.finalize().into_bytes()));
    let wh = standardwebhooks::Webhook::new(&pipehook_outbound::sign::whsec(SECRET.as_bytes())).unwrap();
    let mut headers = http::HeaderMap::new();
    for k in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(k, req.header(k).unwrap().parse().unwrap());
    }
    wh.verify(&req.body, &headers).expect("the Standard Webhooks signature verifies over the received bytes");
}

/// The hook `h`'s (or `base`'s own path's) deliveries list once `ready` says so.
async fn logged(s: &TestServer, hook: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let path = if hook.ends_with("/hooks") { format!("{hook}/h/deliveries") } else { format!("{hook}/deliveries") };
    for _ in 0..200 {
        let (code, list, text) = call(s, "GET", &path, None).await;
        assert_eq!(code, 200, "{text}");
        if ready(&list) {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never became ready");
}

/// `(id, attempt, trigger)` of each attempt in a deliveries list.
fn attempts(list: &Value) -> Vec<(String, i64, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|a| (a["id"].as_str().unwrap().to_owned(), a["attempt"].as_i64().unwrap(), a["trigger"].to_string()))
        .collect()
}

#[tokio::test]
async fn an_attempt_has_one_number_in_every_answer() {
    for backend in backends() {
        let Some(s) = server(backend).await else { continue };
        let r = Receiver::start().await;
        for (i, base) in
            ["/orgs/default/hooks", "/stacks/default/web/dev/hooks", "/esc/environments/default/web/prod/hooks"]
                .into_iter()
                .enumerate()
        {
            let path = format!("h{i}");
            create_hook(&s, base, "h", &format!("{}/{path}", r.url), json!({})).await;
            // A ping: the first attempt of its own delivery, in its answer and in the list.
            let (code, ping, text) = call(&s, "POST", &format!("{base}/h/ping"), None).await;
            assert_eq!(code, 200, "{text}");
            assert_eq!((ping["attempt"].as_i64(), ping["trigger"].as_str()), (Some(1), Some("ping")), "{base}: {ping}");
            let ping_id = ping["id"].as_str().unwrap().to_owned();
            let (_, list, _) = call(&s, "GET", &format!("{base}/h/deliveries"), None).await;
            assert_eq!(attempts(&list), vec![(ping_id.clone(), 1, "\"ping\"".to_owned())], "{backend:?} {base}");
            assert_eq!(list[0]["seq"], ping["seq"]);

            // A scheduled delivery failing once, retried, then redelivered: 1, 2, 3.
            r.script(&path, vec![status(500)]);
            let body = json!({"kind": "stack_created", "payload": {"n": i}, "projectName": "web",
                              "stackName": "dev", "envName": "prod"});
            let (code, _, text) = call(&s, "POST", "/orgs/default/events", Some(body.to_string())).await;
            assert_eq!(code, 202, "{text}");
            let got = r.wait(&path, 3).await;
            let id = got[2].header("webhook-id").unwrap();
            // Both attempts logged (the worker records an attempt after its answer came).
            logged(&s, base, |list| attempts(list).into_iter().filter(|a| a.0 == id).count() == 2).await;
            let (code, again, text) = call(&s, "POST", &format!("{base}/h/deliveries/{id}/redeliver"), None).await;
            assert_eq!(code, 200, "{text}");
            assert_eq!(again["attempt"], 3, "{backend:?} {base}: {again}");
            let (_, list, _) = call(&s, "GET", &format!("{base}/h/deliveries"), None).await;
            let ours: Vec<(i64, String)> =
                attempts(&list).into_iter().filter(|a| a.0 == id).map(|a| (a.1, a.2)).collect();
            let want = [(3, "\"redeliver\""), (2, "\"scheduled\""), (1, "\"scheduled\"")];
            assert_eq!(ours, want.map(|(n, t)| (n, t.to_owned())), "{backend:?} {base}: newest first");
            let (_, one, _) = call(&s, "GET", &format!("{base}/h/deliveries/{id}"), None).await;
            let numbers: Vec<i64> =
                one["attempts"].as_array().unwrap().iter().map(|a| a["attempt"].as_i64().unwrap()).collect();
            assert_eq!(numbers, [1, 2, 3], "{backend:?} {base}: {one}");
            // The ping's delivery, redelivered: its attempt 2.
            let (_, again, _) = call(&s, "POST", &format!("{base}/h/deliveries/{ping_id}/redeliver"), None).await;
            assert_eq!(again["attempt"], 2, "{again}");
        }
        s.stop().await.unwrap();
    }
}

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn pipeline() -> Value {
    let command = |name: &str, category: &str, config: Value| {
        json!({"name": name, "actionTypeId": {"category": category, "owner": "Custom", "provider": "Command",
               "version": "1"}, "configuration": config, "runOrder": 1})
    };
    json!({"pipeline": {
        "name": "shop",
        "roleArn": "arn:aws:iam::123456789012:role/pipehook",
        "artifactStore": {"type": "S3", "location": "bucket"},
        "stages": [
            {"name": "Source", "actions": [{"name": "Source",
                "actionTypeId": {"category": "Source", "owner": "ThirdParty", "provider": "GitHub", "version": "1"},
                "configuration": {"Owner": "Codertocat", "Repo": "Hello-World", "Branch": "main",
                                  "PollForSourceChanges": "false"}}]},
            {"name": "Build", "actions": [command("Compile", "Build", json!({"Command": "true", "ProjectName": "web"}))]},
            {"name": "Deploy", "actions": [command("Release", "Deploy", json!({"Command": "true", "EnvironmentName": "prod"}))]},
        ]
    }})
}

#[tokio::test]
async fn a_pipeline_run_delivers_puppet_pipelines_bodies() {
    let s = server(Backend::Sqlite).await.unwrap();
    let r = Receiver::start().await;
    create_hook(
        &s,
        "/orgs/default/hooks",
        "puppet",
        &format!("{}/puppet", r.url),
        json!({"groups": ["builds", "deployments"]}),
    )
    .await;
    let (code, _, text) = call(&s, "POST", "/orgs/default/pipelines", Some(pipeline().to_string())).await;
    assert_eq!(code, 201, "{text}");
    let webhook = json!({"webhook": {"name": "shop-github", "targetPipeline": "shop", "targetAction": "Source",
        "filters": [{"jsonPath": "$.ref", "matchEquals": "refs/heads/{Branch}"}], "authentication": "GITHUB_HMAC",
        "authenticationConfiguration": {"SecretToken": SECRET}}});
    let (code, put, text) = call(&s, "PUT", "/orgs/default/webhooks/shop-github", Some(webhook.to_string())).await;
    assert!(code == 200 || code == 201, "{text}");
    let trigger_url = put["url"].as_str().unwrap().to_owned();
    let push = std::fs::read(root().join("examples/github-push.json")).unwrap();
    let commit = serde_json::from_slice::<Value>(&push).unwrap()["after"].as_str().unwrap().to_owned();

    // Two runs of the pipeline: builds are numbered per pipeline, 1 then 2.
    for run in 1..=2 {
        let resp = s
            .client()
            .post(&trigger_url)
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", format!("fidelity-{run}"))
            .header("x-hub-signature-256", crate::webhooks::sign(SECRET, &push))
            .body(push.clone())
            .send()
            .await
            .unwrap();
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["result"], "triggered", "{answer}");
        r.wait("puppet", 4 * run).await;
    }
    let got = r.wait("puppet", 8).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(r.got("puppet").len(), 8, "build and deploy started and succeeded, twice");
    // In run order: builds by their number, deployments by theirs (increasing).
    let bodies = |kind: &str| -> Vec<Value> {
        let mut b: Vec<Value> =
            got.iter().filter(|g| g.header("pulumi-webhook-kind").as_deref() == Some(kind)).map(|g| g.json()).collect();
        b.sort_by_key(|v| v["build_num"].as_i64().or(v["deployment_number"].as_i64()));
        b
    };
    for (kind, seed) in [
        ("build_started", "build-started"),
        ("build_succeeded", "build-finished"),
        ("deploy_started", "deploy-started"),
        ("deploy_succeeded", "deploy-finished"),
    ] {
        let example = puppet_seed::example(seed);
        let found = bodies(kind);
        assert_eq!(found.len(), 2, "{kind}");
        for body in &found {
            let diff = puppet_seed::shape_differences(body, &example, &["pipehook"], &[]);
            assert!(diff.is_empty(), "{kind} against {seed}: {diff:#?}\n{body:#}");
            assert_eq!(body["pipehook"]["pipeline"], "shop", "{body}");
            // Every link is this server's API, and answers.
            for k in ["api_url", "html_url", "release_url", "app_url", "env_url", "servers_url"] {
                let Some(url) = body[k].as_str() else { continue };
                assert!(url.starts_with(&format!("{}/api/", s.url)), "{kind} {k}: {url}");
                let (code, _, text) = call(&s, "GET", url, None).await;
                assert_eq!(code, 200, "{kind} {k}: GET {url}: {text}");
            }
        }
    }
    let started = bodies("build_started");
    assert_eq!(started.iter().map(|b| b["build_num"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 2]);
    assert!(started.iter().all(|b| b["status"] == "Queued" && b["start_time"].is_null()));
    let built = bodies("build_succeeded");
    assert_eq!(built.iter().map(|b| b["release_version"].as_str().unwrap()).collect::<Vec<_>>(), ["v1", "v2"]);
    for b in &built {
        assert_eq!((b["app_name"].as_str(), b["status"].as_str()), (Some("web"), Some("Success")));
        assert!(b["start_time"].as_str().is_some() && b["end_time"].as_str().is_some(), "{b}");
        assert_eq!(b["commit"]["commit_id"], commit.as_str());
        assert_eq!(b["commit"]["branch"], "main");
        assert_eq!(
            (b["commit"]["repo_owner"].as_str(), b["commit"]["repo_name"].as_str()),
            (Some("Codertocat"), Some("Hello-World"))
        );
    }
    let deployed = bodies("deploy_succeeded");
    for (d, n) in deployed.iter().zip(1..) {
        assert_eq!((d["app_name"].as_str(), d["env_name"].as_str()), (Some("shop"), Some("prod")));
        assert_eq!(d["deployment_state"], "Success");
        assert_eq!(d["release_version"], format!("v{n}"));
        assert_eq!(d["pipehook"]["commit"]["commit_id"], commit.as_str());
    }
    let deploy_started = bodies("deploy_started");
    for (a, b) in deploy_started.iter().zip(&deployed) {
        assert_eq!(a["deployment_id"], b["deployment_id"], "one deployment, started then finished");
        assert_eq!(a["deployment_number"], b["deployment_number"]);
        assert_eq!(a["deployment_time"], b["deployment_time"]);
    }
    s.stop().await.unwrap();
}
