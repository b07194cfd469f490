//! Outbound webhooks end to end: the Pulumi-compatible hooks REST API, events published and pipehook's own
//! run events delivered to a local receiver that records what it gets, signatures checked with the
//! `standardwebhooks` crate and by recomputing the HMAC, retries, Retry-After, 410, timeouts, redeliver,
//! ping, SSRF refusals, and a worker killed mid-delivery.

use crate::support::{TestServer, TOKEN};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use hmac::Mac;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "s3cr3t-hook-key-for-tests";

#[derive(Debug, Clone)]
pub(crate) struct Received {
    path: String,
    headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Received {
    pub(crate) fn header(&self, k: &str) -> Option<String> {
        self.headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// A scripted answer: status, extra delay, headers.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    status: u16,
    delay: Duration,
    retry_after: Option<&'static str>,
}

fn ok() -> Answer {
    Answer { status: 200, delay: Duration::ZERO, retry_after: None }
}

pub(crate) fn status(s: u16) -> Answer {
    Answer { status: s, delay: Duration::ZERO, retry_after: None }
}

#[derive(Default)]
struct ReceiverState {
    got: Mutex<Vec<Received>>,
    /// Answers by path, consumed in order; `ok()` when none is left.
    script: Mutex<std::collections::HashMap<String, VecDeque<Answer>>>,
}

pub(crate) struct Receiver {
    pub(crate) url: String,
    state: Arc<ReceiverState>,
}

impl Receiver {
    pub(crate) async fn start() -> Receiver {
        let state = Arc::new(ReceiverState::default());
        let app = axum::Router::new().route("/{*path}", post(receive)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, state }
    }

    pub(crate) fn script(&self, path: &str, answers: Vec<Answer>) {
        self.state.script.lock().unwrap().insert(format!("/{path}"), answers.into());
    }

    pub(crate) fn got(&self, path: &str) -> Vec<Received> {
        self.state.got.lock().unwrap().iter().filter(|r| r.path == format!("/{path}")).cloned().collect()
    }

    /// Waits until `path` received at least `n` requests.
    pub(crate) async fn wait(&self, path: &str, n: usize) -> Vec<Received> {
        for _ in 0..300 {
            let got = self.got(path);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{path} got {} requests, wanted {n}", self.got(path).len());
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let path = uri.path().to_owned();
    state.got.lock().unwrap().push(Received { path: path.clone(), headers, body: body.to_vec() });
    let answer = state.script.lock().unwrap().get_mut(&path).and_then(VecDeque::pop_front).unwrap_or_else(ok);
    tokio::time::sleep(answer.delay).await;
    let mut resp = (StatusCode::from_u16(answer.status).unwrap(), "receiver says hi").into_response();
    if let Some(ra) = answer.retry_after {
        resp.headers_mut().insert("retry-after", ra.parse().unwrap());
    }
    resp
}

async fn server(extra: &[(&str, &str)]) -> TestServer {
    let mut b = TestServer::builder()
        .env("PIPEHOOK_OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8")
        .env("PIPEHOOK_OUTBOUND_RETRY_SCHEDULE", "1,1,1")
        .env("PIPEHOOK_WORKER_POLL_MS", "50");
    for (k, v) in extra {
        b = b.env(k, v);
    }
    b.start().await.expect("server")
}

async fn call(s: &TestServer, method: &str, path: &str, body: Option<Value>) -> (u16, Value, String) {
    let c = s.client();
    let url = format!("{}/api{path}", s.url);
    let mut req = match method {
        "GET" => c.get(url),
        "POST" => c.post(url),
        "PATCH" => c.patch(url),
        "DELETE" => c.delete(url),
        _ => unreachable!(),
    }
    .header("authorization", format!("token {TOKEN}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::Null);
    (code, v, text)
}

fn hook(name: &str, url: &str) -> Value {
    json!({"organizationName": "default", "name": name, "displayName": format!("Hook {name}"), "payloadUrl": url, "active": true})
}

async fn create(s: &TestServer, base: &str, body: Value) -> Value {
    let (code, v, text) = call(s, "POST", base, Some(body)).await;
    assert_eq!(code, 201, "{text}");
    v
}

async fn publish(s: &TestServer, body: Value) -> Value {
    let (code, v, text) = call(s, "POST", "/orgs/default/events", Some(body)).await;
    assert_eq!(code, 202, "{text}");
    v
}

#[tokio::test]
async fn hooks_crud_follows_the_pulumi_api_and_never_returns_the_secret() {
    let s = server(&[]).await;
    let mut texts = Vec::new();
    let mut body = hook("build-hook", "https://hooks.example.com/ci?task=build");
    body["secret"] = json!(SECRET);
    body["filters"] = json!(["build_succeeded", "build_failed"]);
    let (code, created, text) = call(&s, "POST", "/orgs/default/hooks", Some(body.clone())).await;
    assert_eq!(code, 201, "{text}");
    texts.push(text);
    assert_eq!(created["hasSecret"], true);
    assert_eq!(created["organizationName"], "default");
    assert_eq!(created["format"], "raw", "raw is the default format");
    assert_eq!(created["filters"], json!(["build_succeeded", "build_failed"]));
    let ciphertext = created["secretCiphertext"].as_str().unwrap().to_owned();
    assert!(!ciphertext.is_empty() && !ciphertext.contains(SECRET));
    assert!(created.get("secret").is_none());

    let (code, _, text) = call(&s, "POST", "/orgs/default/hooks", Some(body.clone())).await;
    assert_eq!(code, 409);
    assert!(text.contains("Webhook with name build-hook already exists"), "{text}");

    let cases: Vec<(Value, &str)> = vec![
        (json!({"organizationName": "other"}), "Organization name from request body doesn't match URL"),
        (json!({"name": "bad name"}), "invalid webhook name"),
        (json!({"payloadUrl": "ftp://example.com/"}), "invalid payload URL"),
        (json!({"payloadUrl": "http://user:pw@example.com/"}), "credentials"),
        (json!({"format": "xml"}), "invalid format"),
        (
            json!({"format": "pulumi_deployments"}),
            "'pulumi_deployments' format can only be used on stack or environment webhooks",
        ),
        (json!({"filters": ["update_succeeded", "made_up"]}), "invalid filter \"made_up\""),
        (json!({"groups": ["nope"]}), "invalid group \"nope\""),
        (json!({"displayName": ""}), "invalid display name"),
        (json!({"active": null}), "active is required"),
    ];
    for (patch, want) in cases {
        let mut b = hook("other-hook", "https://hooks.example.com/");
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        let (code, v, text) = call(&s, "POST", "/orgs/default/hooks", Some(b)).await;
        assert_eq!(code, 400, "{patch}: {text}");
        assert!(v["message"].as_str().unwrap().contains(want), "{patch}: {text}");
        assert_eq!(v["code"], 400);
    }
    let (code, _, text) = call(&s, "POST", "/orgs/default/hooks", Some(json!("not an object"))).await;
    assert_eq!(code, 400, "{text}");

    // Stack hooks: the body must agree with the path; pulumi_deployments is allowed there.
    let mut sb = hook("deploy", "https://hooks.example.com/stack");
    sb["projectName"] = json!("web");
    sb["stackName"] = json!("prod");
    sb["format"] = json!("pulumi_deployments");
    let (code, _, text) = call(&s, "POST", "/stacks/default/web/dev/hooks", Some(sb.clone())).await;
    assert_eq!(code, 400);
    assert!(text.contains("Stack name from request body doesn't match URL"), "{text}");
    let stack_hook = create(&s, "/stacks/default/web/prod/hooks", sb).await;
    assert_eq!(stack_hook["stackName"], "prod");
    assert_eq!(stack_hook["hasSecret"], false);
    assert_eq!(stack_hook["secretCiphertext"], "");
    let env_hook =
        create(&s, "/esc/environments/default/web/production/hooks", hook("env", "https://h.example/")).await;
    assert_eq!(env_hook["envName"], "production");

    // Same name in another scope is another hook.
    create(&s, "/stacks/default/web/dev/hooks", hook("build-hook", "https://h.example/dev")).await;

    // PATCH without a secret keeps it; other fields change.
    let (code, patched, text) = call(
        &s,
        "PATCH",
        "/orgs/default/hooks/build-hook",
        Some(json!({"organizationName": "default", "name": "build-hook", "displayName": "Renamed", "active": false, "format": "slack"})),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    texts.push(text);
    assert_eq!(patched["hasSecret"], true);
    assert_eq!(patched["secretCiphertext"], ciphertext.as_str());
    assert_eq!((patched["displayName"].as_str(), patched["active"].as_bool()), (Some("Renamed"), Some(false)));
    let (code, _, text) =
        call(&s, "PATCH", "/orgs/default/hooks/build-hook", Some(json!({"format": "pulumi_deployments"}))).await;
    assert_eq!(code, 400);
    assert!(text.contains("'pulumi_deployments' format can only be used on stack or environment webhooks"));
    let (code, _, _) = call(&s, "PATCH", "/orgs/default/hooks/missing", Some(json!({"active": true}))).await;
    assert_eq!(code, 404);

    let (code, got, text) = call(&s, "GET", "/orgs/default/hooks/build-hook", None).await;
    assert_eq!(code, 200);
    texts.push(text);
    assert_eq!(got["displayName"], "Renamed");
    let (code, list, text) = call(&s, "GET", "/orgs/default/hooks", None).await;
    assert_eq!(code, 200);
    texts.push(text);
    assert_eq!(list.as_array().unwrap().len(), 1, "org scope lists org hooks only: {list}");
    let (_, stack_list, _) = call(&s, "GET", "/stacks/default/web/prod/hooks", None).await;
    assert_eq!(stack_list[0]["name"], "deploy");

    let (code, _, _) = call(&s, "GET", "/orgs/default/hooks/missing", None).await;
    assert_eq!(code, 404);
    let (code, _, _) = call(&s, "GET", "/orgs/someone-else/hooks", None).await;
    assert!(code == 404 || code == 403, "another organization's hooks: {code}");
    let unauth = s.client().get(format!("{}/api/orgs/default/hooks", s.url)).send().await.unwrap();
    assert_eq!(unauth.status(), 401);

    let (code, _, _) = call(&s, "DELETE", "/orgs/default/hooks/build-hook", None).await;
    assert_eq!(code, 204);
    let (code, _, _) = call(&s, "GET", "/orgs/default/hooks/build-hook", None).await;
    assert_eq!(code, 404);
    for t in texts {
        assert!(!t.contains(SECRET), "a response contained the secret: {t}");
    }
    s.stop().await.unwrap();
}

#[tokio::test]
async fn events_reach_the_right_hooks_signed_and_formatted() {
    let r = Receiver::start().await;
    let s = server(&[]).await;
    let mut signed = hook("signed", &format!("{}/signed", r.url));
    signed["secret"] = json!(SECRET);
    signed["filters"] = json!(["build_succeeded"]);
    create(&s, "/orgs/default/hooks", signed).await;
    let mut stacks = hook("stacks", &format!("{}/stacks", r.url));
    stacks["groups"] = json!(["stacks"]);
    create(&s, "/orgs/default/hooks", stacks).await;
    let mut slack = hook("slack", &format!("{}/slack", r.url));
    slack["format"] = json!("slack");
    create(&s, "/stacks/default/web/dev/hooks", slack).await;
    let mut teams = hook("teams", &format!("{}/teams", r.url));
    teams["format"] = json!("ms_teams");
    create(&s, "/esc/environments/default/web/prod/hooks", teams).await;
    let mut off = hook("off", &format!("{}/off", r.url));
    off["active"] = json!(false);
    create(&s, "/orgs/default/hooks", off).await;

    let update = json!({"user": {"name": "Ada", "githubLogin": "ada"}, "organization": {"githubLogin": "default"},
        "projectName": "web", "stackName": "dev", "kind": "update", "result": "succeeded", "updateUrl": "https://app.example/u/1"});
    let published =
        publish(&s, json!({"kind": "update_succeeded", "payload": update, "projectName": "web", "stackName": "dev"}))
            .await;
    assert_eq!(published["deliveries"], 2, "the stacks group hook and the dev stack hook: {published}");
    let got = r.wait("stacks", 1).await;
    assert_eq!(got[0].json(), update, "raw is the payload as published");
    assert_eq!(got[0].header("pulumi-webhook-kind").as_deref(), Some("update_succeeded"));
    assert_eq!(got[0].header("content-type").as_deref(), Some("application/json"));
    assert!(got[0].header("user-agent").unwrap().starts_with("pipehook/"));
    assert_eq!(got[0].header("pulumi-webhook-id"), got[0].header("webhook-id"));
    assert!(got[0].header("pulumi-webhook-signature").is_none(), "no secret, no signature");
    assert!(got[0].header("webhook-signature").is_none());
    let slack_got = r.wait("slack", 1).await;
    let sb = slack_got[0].json();
    assert!(sb["text"].as_str().unwrap().contains("update succeeded"), "{sb}");
    let blocks = sb["blocks"].as_array().unwrap();
    assert!(blocks.iter().all(|b| ["section", "context", "actions"].contains(&b["type"].as_str().unwrap())), "{sb}");

    // An environment event reaches the environment's hook as a Teams card.
    publish(&s, json!({"kind": "environment_revision_created", "payload": {"env": "prod"}, "envName": "prod"})).await;
    let teams_got = r.wait("teams", 1).await;
    let card = teams_got[0].json();
    assert_eq!(card["@type"], "MessageCard");
    assert!(card["sections"][0]["facts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["value"] == "environment_revision_created"));

    // The filtered, signed hook: both signatures verify.
    publish(&s, json!({"kind": "build_succeeded", "payload": {"app_name": "web", "build_num": 7}})).await;
    let signed_got = r.wait("signed", 1).await;
    let req = &signed_got[0];
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&req.body);
    assert_eq!(req.header("pulumi-webhook-signature").unwrap(), hex::encode(mac.finalize().into_bytes()));
    let wh = standardwebhooks::Webhook::new(&pipehook_outbound::sign::whsec(SECRET.as_bytes())).unwrap();
    let mut std_headers = http::HeaderMap::new();
    for k in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        std_headers.insert(k, req.header(k).unwrap().parse().unwrap());
    }
    wh.verify(&req.body, &std_headers).expect("Standard Webhooks signature verifies");

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.got("signed").len(), 1, "update_succeeded is not in the signed hook's filters");
    assert_eq!(r.got("stacks").len(), 1, "build_succeeded is not in the stacks group");
    assert!(r.got("off").is_empty(), "inactive hooks get nothing");
    assert!(r.got("teams").len() == 1 && r.got("slack").len() == 1);

    // Bad publishes.
    for (body, want) in [
        (json!({"kind": "nope", "payload": {}}), "unknown event kind"),
        (json!({"kind": "build_failed", "payload": [1]}), "payload must be a JSON object"),
        (json!({"kind": "build_failed"}), "invalid request body"),
        (json!({"kind": "build_failed", "payload": {}, "stackName": "x"}), "stackName needs projectName"),
    ] {
        let (code, _, text) = call(&s, "POST", "/orgs/default/events", Some(body)).await;
        assert_eq!(code, 400, "{text}");
        assert!(text.contains(want), "{text}");
    }
    s.stop().await.unwrap();
}

#[tokio::test]
async fn idempotency_key_publishes_once() {
    let r = Receiver::start().await;
    let s = server(&[]).await;
    create(&s, "/orgs/default/hooks", hook("h", &format!("{}/idem", r.url))).await;
    let send = || async {
        let resp = s
            .client()
            .post(format!("{}/api/orgs/default/events", s.url))
            .header("authorization", format!("token {TOKEN}"))
            .header("idempotency-key", "job-42")
            .json(&json!({"kind": "deployment_succeeded", "payload": {"n": 1}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        resp.json::<Value>().await.unwrap()
    };
    let first = send().await;
    let second = send().await;
    assert_eq!(first["id"], second["id"]);
    assert_eq!((first["duplicate"].as_bool(), second["duplicate"].as_bool()), (Some(false), Some(true)));
    r.wait("idem", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.got("idem").len(), 1);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn failures_are_retried_on_the_schedule_and_logged() {
    let r = Receiver::start().await;
    let s = server(&[("PIPEHOOK_OUTBOUND_TIMEOUT", "1")]).await;
    r.script("flaky", vec![status(500), Answer { status: 503, delay: Duration::ZERO, retry_after: Some("2") }, ok()]);
    create(&s, "/orgs/default/hooks", hook("flaky", &format!("{}/flaky", r.url))).await;
    publish(&s, json!({"kind": "deploy_failed", "payload": {"env_name": "prod"}})).await;
    let got = r.wait("flaky", 3).await;
    let ids: Vec<_> = got.iter().map(|g| g.header("webhook-id").unwrap()).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "one delivery id across retries: {ids:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, list, text) = call(&s, "GET", "/orgs/default/hooks/flaky/deliveries", None).await;
    assert_eq!(code, 200, "{text}");
    let codes: Vec<i64> = list.as_array().unwrap().iter().map(|d| d["responseCode"].as_i64().unwrap()).collect();
    assert_eq!(codes, vec![200, 503, 500], "newest first");
    let newest = &list[0];
    assert_eq!(newest["kind"], "deploy_failed");
    assert_eq!(newest["id"], ids[0].as_str());
    assert!(newest["requestHeaders"].as_str().unwrap().contains("pulumi-webhook-kind: deploy_failed"));
    assert_eq!(newest["responseBody"], "receiver says hi");
    assert!(
        newest["timestamp"].as_i64().unwrap() > 1_600_000_000 && newest["timestamp"].as_i64().unwrap() < 10_000_000_000
    );
    assert!(serde_json::from_str::<Value>(newest["payload"].as_str().unwrap()).is_ok());
    // Retry-After: 2 s after the 503, though the schedule says ~1 s.
    let times: Vec<i64> = list.as_array().unwrap().iter().map(|d| d["timestamp"].as_i64().unwrap()).collect();
    assert!(times[0] - times[1] >= 2, "Retry-After honoured: {times:?}");

    // Pagination of the deliveries list.
    let resp = s
        .client()
        .get(format!("{}/api/orgs/default/hooks/flaky/deliveries?limit=2", s.url))
        .header("authorization", format!("token {TOKEN}"))
        .send()
        .await
        .unwrap();
    let before = resp.headers()["pipehook-next-before"].to_str().unwrap().to_owned();
    assert_eq!(resp.json::<Value>().await.unwrap().as_array().unwrap().len(), 2);
    let (_, rest, _) = call(&s, "GET", &format!("/orgs/default/hooks/flaky/deliveries?before={before}"), None).await;
    assert_eq!(rest.as_array().unwrap().len(), 1);
    assert_eq!(rest[0]["responseCode"], 500);

    // A receiver that always fails: 1 try + 3 retries, then the delivery stops.
    r.script("down", vec![status(500); 10]);
    create(&s, "/orgs/default/hooks", hook("down", &format!("{}/down", r.url))).await;
    publish(&s, json!({"kind": "deploy_failed", "payload": {}})).await;
    r.wait("down", 4).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(r.got("down").len(), 4, "the schedule has three retries");

    // Timeouts are failures with no response code.
    r.script("slow", vec![Answer { status: 200, delay: Duration::from_secs(3), retry_after: None }]);
    create(&s, "/orgs/default/hooks", hook("slow", &format!("{}/slow", r.url))).await;
    let (code, ping, _) = call(&s, "POST", "/orgs/default/hooks/slow/ping", None).await;
    assert_eq!(code, 200);
    assert_eq!(ping["responseCode"], 0);
    assert!(ping["responseBody"].as_str().unwrap().contains("timed out"), "{ping}");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn gone_deactivates_the_hook() {
    let r = Receiver::start().await;
    let s = server(&[]).await;
    r.script("gone", vec![status(410)]);
    create(&s, "/orgs/default/hooks", hook("gone", &format!("{}/gone", r.url))).await;
    publish(&s, json!({"kind": "build_failed", "payload": {}})).await;
    r.wait("gone", 1).await;
    let mut hook_now = Value::Null;
    for _ in 0..100 {
        hook_now = call(&s, "GET", "/orgs/default/hooks/gone", None).await.1;
        if hook_now["active"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(hook_now["active"], false, "{hook_now}");
    assert!(hook_now["disabledReason"].as_str().unwrap().contains("410"));
    publish(&s, json!({"kind": "build_failed", "payload": {}})).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(r.got("gone").len(), 1, "no retry after 410, nothing to an inactive hook");
    // Reactivating clears the reason.
    let (_, re, _) = call(&s, "PATCH", "/orgs/default/hooks/gone", Some(json!({"active": true}))).await;
    assert_eq!(re["active"], true);
    assert!(re.get("disabledReason").is_none(), "{re}");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn ping_and_redeliver() {
    let r = Receiver::start().await;
    let s = server(&[]).await;
    let mut h = hook("p", &format!("{}/p", r.url));
    h["secret"] = json!(SECRET);
    create(&s, "/orgs/default/hooks", h).await;
    let (code, ping, text) = call(&s, "POST", "/orgs/default/hooks/p/ping", None).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(ping["kind"], "ping");
    assert_eq!(ping["responseCode"], 200);
    assert!(ping["duration"].as_i64().unwrap() >= 0);
    assert!(!text.contains(SECRET));
    let got = r.wait("p", 1).await;
    assert_eq!(got[0].json()["kind"], "ping");
    assert_eq!(got[0].header("pulumi-webhook-id").unwrap(), ping["id"].as_str().unwrap());

    publish(&s, json!({"kind": "stack_created", "payload": {"stackName": "dev"}})).await;
    let got = r.wait("p", 2).await;
    let delivery_id = got[1].header("webhook-id").unwrap();
    let (code, again, text) =
        call(&s, "POST", &format!("/orgs/default/hooks/p/deliveries/{delivery_id}/redeliver"), None).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(again["id"], delivery_id.as_str());
    assert_eq!(again["trigger"], "redeliver");
    let got = r.wait("p", 3).await;
    assert_eq!(got[2].header("webhook-id").unwrap(), delivery_id, "same id on redelivery");
    assert_eq!(got[2].body, got[1].body);

    let (code, _, text) = call(&s, "POST", "/orgs/default/hooks/p/deliveries/no-such-event/redeliver", None).await;
    assert_eq!(code, 404);
    assert!(text.contains("WebhookEvent"), "{text}");
    let (code, _, _) = call(&s, "POST", "/orgs/default/hooks/missing/ping", None).await;
    assert_eq!(code, 404);
    let (_, list, _) = call(&s, "GET", "/orgs/default/hooks/p/deliveries", None).await;
    let triggers: Vec<&str> = list.as_array().unwrap().iter().map(|d| d["trigger"].as_str().unwrap()).collect();
    assert_eq!(triggers, vec!["redeliver", "scheduled", "ping"]);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn private_addresses_are_refused_without_connecting() {
    let r = Receiver::start().await;
    // No allowed networks: the receiver on 127.0.0.1 is off limits.
    let s = TestServer::builder().env("PIPEHOOK_OUTBOUND_TIMEOUT", "2").start().await.unwrap();
    let port = r.url.rsplit(':').next().unwrap().to_owned();
    let cases = [
        (format!("http://127.0.0.1:{port}/x"), "loopback"),
        (format!("http://localhost:{port}/x"), "loopback"),
        (format!("http://[::1]:{port}/x"), "loopback"),
        (format!("http://[::ffff:127.0.0.1]:{port}/x"), "loopback"),
        ("http://10.1.2.3/x".to_owned(), "private"),
        ("http://192.168.0.10/x".to_owned(), "private"),
        ("http://169.254.169.254/latest/meta-data/".to_owned(), "link-local"),
        ("http://100.64.0.1/x".to_owned(), "CGNAT"),
        ("http://224.0.0.1/x".to_owned(), "multicast"),
        ("http://[fd00::1]/x".to_owned(), "unique-local"),
        ("http://[fe80::1]/x".to_owned(), "link-local"),
        ("http://0.0.0.0/x".to_owned(), "unspecified"),
    ];
    for (i, (url, class)) in cases.iter().enumerate() {
        let name = format!("ssrf{i}");
        create(&s, "/orgs/default/hooks", hook(&name, url)).await;
        let (code, ping, text) = call(&s, "POST", &format!("/orgs/default/hooks/{name}/ping"), None).await;
        assert_eq!(code, 200, "{text}");
        assert_eq!(ping["responseCode"], 0, "{url}: {ping}");
        let reason = ping["responseBody"].as_str().unwrap();
        assert!(reason.contains("refused") && reason.contains(class), "{url}: {reason}");
    }
    assert!(r.state.got.lock().unwrap().is_empty(), "no connection reached the receiver");
    // Redirects are not followed: a 3xx is a failed attempt.
    s.stop().await.unwrap();
}

#[tokio::test]
async fn redirects_are_failures_and_not_followed() {
    let r = Receiver::start().await;
    let s = server(&[]).await;
    r.script("redirect", vec![status(307)]);
    create(&s, "/orgs/default/hooks", hook("redirect", &format!("{}/redirect", r.url))).await;
    let (_, ping, _) = call(&s, "POST", "/orgs/default/hooks/redirect/ping", None).await;
    assert_eq!(ping["responseCode"], 307);
    let (_, h, _) = call(&s, "GET", "/orgs/default/hooks/redirect/deliveries", None).await;
    assert_eq!(h[0]["responseCode"], 307);
    s.stop().await.unwrap();
}

fn pipeline(name: &str) -> Value {
    let action = |name: &str, category: &str, config: Value| {
        json!({"name": name, "actionTypeId": {"category": category, "owner": "Custom", "provider": "Command", "version": "1"},
               "configuration": config, "runOrder": 1})
    };
    json!({
        "name": name,
        "roleArn": "arn:aws:iam::123456789012:role/pipehook",
        "artifactStore": {"type": "S3", "location": "bucket"},
        "stages": [
            {"name": "Source", "actions": [{"name": "Source", "actionTypeId": {"category": "Source", "owner": "ThirdParty", "provider": "GitHub", "version": "1"},
                "configuration": {"Owner": "o", "Repo": "r", "Branch": "main", "OAuthToken": "t", "PollForSourceChanges": "false"}}]},
            {"name": "Build", "actions": [action("Build", "Build", json!({"Command": "echo built", "ProjectName": "web"}))]},
            {"name": "Deploy", "actions": [action("Deploy", "Deploy", json!({"Command": "exit 3", "EnvironmentName": "prod"}))]},
        ]
    })
}

#[tokio::test]
async fn pipeline_runs_emit_build_deploy_and_execution_events() {
    let r = Receiver::start().await;
    let s = server(&[]).await;
    let mut org = hook("runs", &format!("{}/runs", r.url));
    org["groups"] = json!(["builds", "pipelines"]);
    create(&s, "/orgs/default/hooks", org).await;
    create(&s, "/stacks/default/web/any/hooks", hook("project", &format!("{}/project", r.url))).await;
    create(&s, "/esc/environments/default/apps/prod/hooks", hook("env", &format!("{}/env", r.url))).await;
    let (code, _, text) = call(&s, "POST", "/orgs/default/pipelines", Some(pipeline("shop"))).await;
    assert_eq!(code, 201, "{text}");
    let (code, _, text) = call(&s, "POST", "/orgs/default/pipelines/shop/executions", Some(json!({}))).await;
    assert!((200..300).contains(&code), "{code} {text}");

    let runs = r.wait("runs", 4).await;
    // Deliveries run concurrently: like Pulumi's, they promise no order.
    let kinds_of = |got: &[Received]| {
        let mut k: Vec<String> = got.iter().map(|g| g.header("pulumi-webhook-kind").unwrap()).collect();
        k.sort();
        k
    };
    assert_eq!(
        kinds_of(&runs),
        vec!["build_started", "build_succeeded", "pipeline_execution_failed", "pipeline_execution_started"],
        "deploy events are not in the builds or pipelines groups"
    );
    let built =
        &runs.iter().find(|g| g.header("pulumi-webhook-kind").as_deref() == Some("build_succeeded")).unwrap().json();
    assert_eq!(built["app_name"], "web");
    assert_eq!(built["status"], "Success");
    assert!(built["end_time"].as_str().is_some());
    assert!(built["commit"].is_object());
    let env = r.wait("env", 2).await;
    assert_eq!(kinds_of(&env), vec!["deploy_failed", "deploy_started"]);
    let deployed =
        env.iter().find(|g| g.header("pulumi-webhook-kind").as_deref() == Some("deploy_failed")).unwrap().json();
    assert_eq!(deployed["env_name"], "prod");
    assert_eq!(deployed["deployment_state"], "Failed");
    assert_eq!(deployed["servers"]["failed"], 1);
    // The build's project ("web", its ProjectName) has a stack hook: it gets the build's events only.
    let project = r.wait("project", 2).await;
    assert_eq!(kinds_of(&project), vec!["build_started", "build_succeeded"]);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn a_worker_killed_mid_delivery_does_not_lose_it() {
    let r = Receiver::start().await;
    // The first attempt hangs; the node dies while it is in flight.
    r.script("crash", vec![Answer { status: 200, delay: Duration::from_secs(30), retry_after: None }]);
    let dir = tempfile::tempdir().unwrap();
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let spawn = || {
        let mut cmd = crate::support::pipehook_cmd();
        cmd.arg("serve")
            .env("PIPEHOOK_DATA_DIR", dir.path())
            .env("PIPEHOOK_LISTEN", &listen)
            .env("PIPEHOOK_BOOTSTRAP_TOKEN", TOKEN)
            .env("PIPEHOOK_OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8")
            .env("PIPEHOOK_OUTBOUND_TIMEOUT", "1")
            .env("PIPEHOOK_WORKER_LEASE_SECONDS", "2")
            .env("PIPEHOOK_WORKER_POLL_MS", "50")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd.spawn().unwrap()
    };
    let base = format!("http://{listen}");
    let client = reqwest::Client::new();
    let wait_up = || async {
        for _ in 0..200 {
            if client.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not start");
    };
    let mut first = spawn();
    wait_up().await;
    let auth = format!("token {TOKEN}");
    let resp = client
        .post(format!("{base}/api/orgs/default/hooks"))
        .header("authorization", &auth)
        .json(&hook("crash", &format!("{}/crash", r.url)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = client
        .post(format!("{base}/api/orgs/default/events"))
        .header("authorization", &auth)
        .json(&json!({"kind": "build_started", "payload": {"n": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    r.wait("crash", 1).await;
    first.kill().unwrap();
    first.wait().unwrap();

    let mut second = spawn();
    wait_up().await;
    let got = r.wait("crash", 2).await;
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"), "the same delivery, at least once");
    second.kill().unwrap();
    second.wait().unwrap();
}

#[tokio::test]
async fn a_slow_receiver_does_not_delay_the_others() {
    let slow = Receiver::start().await;
    let fast = Receiver::start().await;
    slow.script("s", vec![Answer { status: 200, delay: Duration::from_secs(2), retry_after: None }; 10]);
    let s = server(&[
        ("PIPEHOOK_OUTBOUND_ENDPOINT_CONCURRENCY", "2"),
        ("PIPEHOOK_OUTBOUND_CONCURRENCY", "8"),
        ("PIPEHOOK_OUTBOUND_TIMEOUT", "5"),
    ])
    .await;
    create(&s, "/orgs/default/hooks", hook("slow", &format!("{}/s", slow.url))).await;
    create(&s, "/orgs/default/hooks", hook("fast", &format!("{}/f", fast.url))).await;
    let started = std::time::Instant::now();
    for i in 0..10 {
        publish(&s, json!({"kind": "build_started", "payload": {"i": i}})).await;
    }
    fast.wait("f", 10).await;
    let took = started.elapsed();
    let slow_so_far = slow.got("s").len();
    assert!(took < Duration::from_secs(4), "the fast receiver waited behind the slow one: {took:?}");
    assert!(slow_so_far <= 4, "the slow endpoint is limited to 2 at a time: {slow_so_far} already");
    // Ten 2-second answers, two at a time: at least 10 s; they all arrive, later.
    for _ in 0..40 {
        if slow.got("s").len() >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(slow.got("s").len(), 10);
    s.stop().await.unwrap();
}
