//! Pipeline webhooks over the native REST API (`/api/orgs/{org}/webhooks/...`), and the client commands of the
//! real binary (`pipehook webhooks ...`, `pipehook inbound ...`) against the same server, with real GitHub
//! payloads signed as GitHub signs them.

use reqwest::Method;
use serde_json::{json, Value};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{pipehook_cmd, TestServer, ACCOUNT_ID, TOKEN};
use crate::webhooks::{fixture, github, post, sign};

const SECRET: &str = "native-secret-never-shown";

/// A pipeline whose source action watches `branch` of Codertocat/Hello-World (the fixtures' repository).
fn pipeline(name: &str, branch: &str) -> Value {
    json!({
        "name": name,
        "roleArn": "arn:aws:iam::123456789012:role/pipehook",
        "artifactStore": {"type": "S3", "location": "artifact-bucket"},
        "stages": [
            {"name": "Source", "actions": [{
                "name": "Source",
                "actionTypeId": {"category": "Source", "owner": "ThirdParty", "provider": "GitHub", "version": "1"},
                "configuration": {"Owner": "Codertocat", "Repo": "Hello-World", "Branch": branch, "OAuthToken": "gh-token-123"},
                "runOrder": 1,
            }]},
            {"name": "Build", "actions": [{
                "name": "Build",
                "actionTypeId": {"category": "Build", "owner": "Custom", "provider": "Command", "version": "1"},
                "configuration": {"Command": "true"},
                "runOrder": 1,
            }]},
        ],
        "executionMode": "PARALLEL",
    })
}

/// A webhook definition on pipeline `target` whose one rule wants a push to the source action's branch.
fn definition(target: &str, auth: &str) -> Value {
    let config = match auth {
        "GITHUB_HMAC" => json!({"SecretToken": SECRET}),
        "IP" => json!({"AllowedIPRange": "127.0.0.0/8"}),
        _ => json!({}),
    };
    json!({
        "targetPipeline": target,
        "targetAction": "Source",
        "filters": [{"jsonPath": "$.ref", "matchEquals": "refs/heads/{Branch}"}],
        "authentication": auth,
        "authenticationConfiguration": config,
    })
}

/// Calls the server as `token` and returns the status and the JSON body (`null` when empty). Every answer is
/// checked for the webhook secret, which must never come back.
async fn call(s: &TestServer, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = s.client().request(method, format!("{}/api/orgs/{path}", s.url));
    req = req.header("authorization", format!("token {token}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    assert!(!text.contains(SECRET), "the secret was returned by {path}: {text}");
    let value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect(&text) };
    (status, value)
}

async fn rest(s: &TestServer, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    call(s, TOKEN, method, path, body).await
}

/// Asserts the Pulumi error shape and returns the message.
fn error(status: u16, body: &Value) -> String {
    assert_eq!(body["code"], json!(status), "{body}");
    body["message"].as_str().expect("an error message").to_owned()
}

/// A local fake of GitHub's repository-hooks API: keeps the hooks made (ids from 4242), records what it is
/// asked to change (`POST`, `PATCH`, `DELETE`; listings are answered, not recorded), answers 422 to creations
/// while `fail` is set.
async fn fake_github(fail: Arc<AtomicBool>) -> (String, Arc<Mutex<Vec<String>>>) {
    use axum::extract::Path;
    use axum::http::StatusCode;
    use axum::routing::get;
    type Hooks = Arc<Mutex<Vec<(String, u64, Value)>>>;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let made: Hooks = Arc::default();
    let (seen_post, seen_patch, seen_delete) = (seen.clone(), seen.clone(), seen.clone());
    let (made_get, made_post, made_patch, made_delete) = (made.clone(), made.clone(), made.clone(), made.clone());
    let app = axum::Router::new()
        .route(
            "/repos/{owner}/{repo}/hooks",
            get(move |Path((o, r)): Path<(String, String)>| {
                let made = made_get.clone();
                async move {
                    let made = made.lock().unwrap();
                    let listed: Vec<Value> = made
                        .iter()
                        .filter(|(repo, _, _)| *repo == format!("{o}/{r}"))
                        .map(|(_, id, config)| json!({"id": id, "config": config}))
                        .collect();
                    axum::Json(Value::from(listed))
                }
            })
            .post(move |Path((o, r)): Path<(String, String)>, body: axum::Json<Value>| {
                let (seen, made, fail) = (seen_post.clone(), made_post.clone(), fail.clone());
                async move {
                    seen.lock().unwrap().push(format!("POST {o}/{r} {}", body.0["config"]["url"]));
                    if fail.load(Ordering::SeqCst) {
                        return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(json!({"message": "Validation Failed"})));
                    }
                    let mut made = made.lock().unwrap();
                    let id = 4242 + made.len() as u64;
                    made.push((format!("{o}/{r}"), id, body.0["config"].clone()));
                    (StatusCode::CREATED, axum::Json(json!({"id": id})))
                }
            }),
        )
        .route(
            "/repos/{owner}/{repo}/hooks/{id}",
            axum::routing::patch(move |Path((o, r, id)): Path<(String, String, u64)>, body: axum::Json<Value>| {
                let (seen, made) = (seen_patch.clone(), made_patch.clone());
                async move {
                    seen.lock().unwrap().push(format!("PATCH {o}/{r}/{id}"));
                    let mut made = made.lock().unwrap();
                    match made.iter_mut().find(|(repo, i, _)| *repo == format!("{o}/{r}") && *i == id) {
                        Some(hook) => {
                            hook.2 = body.0["config"].clone();
                            StatusCode::OK
                        }
                        None => StatusCode::NOT_FOUND,
                    }
                }
            })
            .delete(move |Path((o, r, id)): Path<(String, String, u64)>| {
                let (seen, made) = (seen_delete.clone(), made_delete.clone());
                async move {
                    seen.lock().unwrap().push(format!("DELETE {o}/{r}/{id}"));
                    made.lock().unwrap().retain(|(repo, i, _)| !(*repo == format!("{o}/{r}") && *i == id));
                    StatusCode::NO_CONTENT
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn native_webhook_routes() {
    let fail = Arc::new(AtomicBool::new(false));
    let (github_api, hooks) = fake_github(fail.clone()).await;
    let s = TestServer::builder().env("PIPEHOOK_GITHUB_API_URL", &github_api).start().await.unwrap();
    let (status, body) = rest(&s, Method::POST, "default/pipelines", Some(pipeline("app", "master"))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(rest(&s, Method::GET, "default/webhooks", None).await, (200, json!({"webhooks": []})));

    // Create: the bare definition, its name from the path, tags beside it.
    let mut bare = definition("app", "GITHUB_HMAC");
    bare["tags"] = json!([{"key": "team", "value": "ci"}]);
    let (status, created) = rest(&s, Method::PUT, "default/webhooks/gh", Some(bare)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "gh");
    let url = created["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{}/trigger?t=", s.url)) && url.ends_with("&v=1"), "{url}");
    assert_eq!(created["arn"], format!("arn:aws:codepipeline:us-east-1:{ACCOUNT_ID}:webhook:gh"));
    assert_eq!(created["definition"]["name"], "gh");
    assert_eq!(created["definition"]["targetPipeline"], "app");
    assert_eq!(created["definition"]["authenticationConfiguration"], json!({"SecretToken": "REDACTED"}));
    assert_eq!(created["definition"]["filters"][0], json!({"jsonPath": "$.ref", "matchEquals": "refs/heads/{Branch}"}));
    assert_eq!(created["tags"], json!([{"key": "team", "value": "ci"}]));
    assert!(created.get("lastTriggered").is_none() && created.get("errorCode").is_none(), "{created}");

    // Replace, as PutWebhook's whole input: 200, the same URL, the tags kept.
    let mut named = definition("app", "GITHUB_HMAC");
    named["name"] = json!("gh");
    let (status, replaced) =
        rest(&s, Method::PUT, "default/webhooks/gh", Some(json!({"webhook": named, "tags": []}))).await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["url"], url.as_str());
    assert_eq!(replaced["tags"], json!([{"key": "team", "value": "ci"}]));

    // The definition works: a signed push to master triggers, and lastTriggered shows it (epoch ms).
    let push = fixture("github/push-branch.json");
    let (status, answer) = post(&url, &push, &github("push", "n-1", Some(sign(SECRET, &push)))).await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("triggered")), "{answer}");
    let (status, got) = rest(&s, Method::GET, "default/webhooks/gh", None).await;
    assert_eq!(status, 200);
    assert_eq!((got["url"].as_str(), got["arn"].as_str()), (Some(url.as_str()), created["arn"].as_str()));
    assert!(got["lastTriggered"].as_i64().unwrap() > 1_600_000_000_000, "{got}");

    // Every AWS exception becomes a status with AWS's message.
    let with = |f: &dyn Fn(&mut Value)| {
        let mut d = definition("app", "UNAUTHENTICATED");
        f(&mut d);
        Some(d)
    };
    let cases: Vec<(&str, Option<Value>, u16, &str)> = vec![
        ("w", with(&|d| d["name"] = json!("other")), 400, "cannot be renamed"),
        ("bad%20name", with(&|_| {}), 400, "failed to satisfy constraint"),
        ("w", with(&|d| d["targetPipeline"] = json!("nope")), 404, "does not have a pipeline with name 'nope'"),
        ("w", with(&|d| d["targetAction"] = json!("Build")), 400, "is not an action of the first (source) stage"),
        ("w", with(&|d| d["filters"][0]["jsonPath"] = json!("$.[")), 400, "is not a valid RFC 9535 JSONPath"),
        ("w", with(&|d| d["filters"][0]["matchEquals"] = json!("{Nope}")), 400, "placeholder {Nope}"),
        ("w", with(&|d| d["filters"] = Value::Array(vec![d["filters"][0].clone(); 6])), 400, "less than or equal to 5"),
        ("w", with(&|d| d["authentication"] = json!("GITHUB_HMAC")), 400, "exactly one property: SecretToken"),
        (
            "w",
            with(&|d| {
                d["authentication"] = json!("IP");
                d["authenticationConfiguration"] = json!({"AllowedIPRange": "10.0.0.300/8"});
            }),
            400,
            "is not a valid IPv4 or IPv6 CIDR",
        ),
        ("w", with(&|d| d["tags"] = json!([{"key": "aws:x", "value": "v"}])), 400, "reserved prefix 'aws:'"),
        (
            "w",
            with(&|d| {
                d["tags"] = json!((0..51).map(|i| json!({"key": format!("k{i}"), "value": "v"})).collect::<Vec<_>>())
            }),
            400,
            "tags limit",
        ),
        ("w", with(&|d| d["authentication"] = json!("BASIC")), 400, "enum value set"),
        ("w", with(&|d| d.as_object_mut().unwrap().retain(|k, _| k != "filters")), 400, "invalid webhook definition"),
        (
            "w",
            with(&|d| {
                d["authentication"] = json!("GITHUB_HMAC");
                d["authenticationConfiguration"] = json!({"SecretToken": "REDACTED"});
            }),
            400,
            "the real secret",
        ),
    ];
    for (name, body, want, message) in cases {
        let (status, answer) = rest(&s, Method::PUT, &format!("default/webhooks/{name}"), body.clone()).await;
        assert_eq!(status, want, "{body:?}: {answer}");
        assert!(error(want, &answer).contains(message), "{body:?}: {answer}");
    }
    let res = s
        .client()
        .put(format!("{}/api/orgs/default/webhooks/w", s.url))
        .header("authorization", format!("token {TOKEN}"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert!(error(400, &res.json().await.unwrap()).starts_with("invalid request body"));
    // A path without `$` is read from the root, as AWS (Jayway) reads it.
    let (status, relative) =
        rest(&s, Method::PUT, "default/webhooks/rel", with(&|d| d["filters"][0]["jsonPath"] = json!("ref"))).await;
    assert_eq!(status, 201, "{relative}");
    assert_eq!(relative["definition"]["filters"][0]["jsonPath"], "ref", "kept as written");
    assert_eq!(rest(&s, Method::DELETE, "default/webhooks/rel", None).await.0, 204);

    // Two concurrent puts of one new name: each is created, replaced, or refused with 409; never torn.
    let mut conflicts = 0;
    for round in 0..20 {
        let path = format!("default/webhooks/race{round}");
        let a = rest(&s, Method::PUT, &path, with(&|_| {}));
        let b = rest(&s, Method::PUT, &path, with(&|d| d["filters"] = json!([])));
        let (a, b) = tokio::join!(a, b);
        for (status, body) in [&a, &b] {
            assert!(matches!(status, 200 | 201 | 409), "{status} {body}");
            if *status == 409 {
                conflicts += 1;
                assert!(error(409, body).contains("was modified by another request at the same time"), "{body}");
            }
        }
        assert!(a.0 == 201 || b.0 == 201, "one of them created it: {a:?} {b:?}");
        rest(&s, Method::DELETE, &path, None).await;
        if conflicts > 0 && round >= 4 {
            break;
        }
    }
    assert!(conflicts > 0, "no concurrent put lost the race in 20 rounds");

    // Pages by name.
    for name in ["w1", "w2"] {
        assert_eq!(rest(&s, Method::PUT, &format!("default/webhooks/{name}"), with(&|_| {})).await.0, 201);
    }
    let (status, page) = rest(&s, Method::GET, "default/webhooks?limit=2", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = page["webhooks"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["gh", "w1"]);
    assert_eq!(page["webhooks"][0]["tags"], json!([{"key": "team", "value": "ci"}]));
    assert_eq!(page["webhooks"][0]["url"], url.as_str());
    assert_eq!(page["nextCursor"], "w1");
    let (_, page) = rest(&s, Method::GET, "default/webhooks?limit=2&cursor=w1", None).await;
    assert_eq!(page["webhooks"][0]["name"], "w2");
    assert!(page.get("nextCursor").is_none(), "{page}");
    for bad in ["limit=0", "limit=101", "limit=x"] {
        let (status, body) = rest(&s, Method::GET, &format!("default/webhooks?{bad}"), None).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = rest(&s, Method::GET, "default/webhooks/nope", None).await;
    assert_eq!(status, 404);
    assert!(error(404, &body).contains("The webhook 'nope' was not found"), "{body}");
    let (status, body) = rest(&s, Method::GET, "default/webhooks/bad%20name", None).await;
    assert_eq!(status, 400);
    error(400, &body);

    // Register and deregister through the (fake) git host; a failure is 400 and lands in errorCode.
    let (status, registered) = rest(&s, Method::POST, "default/webhooks/gh/register", None).await;
    assert_eq!(status, 200, "{registered}");
    assert!(registered.get("errorCode").is_none(), "{registered}");
    assert_eq!(hooks.lock().unwrap().as_slice(), [format!("POST Codertocat/Hello-World \"{url}\"")]);
    let (status, _) = rest(&s, Method::POST, "default/webhooks/gh/deregister", None).await;
    assert_eq!(status, 200);
    assert_eq!(hooks.lock().unwrap()[1], "DELETE Codertocat/Hello-World/4242");
    // Nothing registered any more: deregistering again asks the host nothing.
    assert_eq!(rest(&s, Method::POST, "default/webhooks/gh/deregister", None).await.0, 200);
    assert_eq!(hooks.lock().unwrap().len(), 2);
    fail.store(true, Ordering::SeqCst);
    let (status, body) = rest(&s, Method::POST, "default/webhooks/gh/register", None).await;
    assert_eq!(status, 400);
    assert!(error(400, &body).contains("Registering the webhook with Codertocat/Hello-World failed"), "{body}");
    let (_, got) = rest(&s, Method::GET, "default/webhooks/gh", None).await;
    assert_eq!(got["errorCode"], "HTTP422");
    assert!(got["errorMessage"].as_str().unwrap().contains("Validation Failed"), "{got}");
    for action in ["register", "deregister"] {
        let (status, body) = rest(&s, Method::POST, &format!("default/webhooks/nope/{action}"), None).await;
        assert_eq!(status, 404, "{action}");
        error(404, &body);
    }
    // The webhook has no repository to register with when its source action lacks Owner/Repo/OAuthToken.
    let mut bare_source = pipeline("bare", "master");
    bare_source["stages"][0]["actions"][0]["configuration"] = json!({"Branch": "master"});
    assert_eq!(rest(&s, Method::POST, "default/pipelines", Some(bare_source)).await.0, 201);
    assert_eq!(rest(&s, Method::PUT, "default/webhooks/b", Some(definition("bare", "UNAUTHENTICATED"))).await.0, 201);
    let (status, body) = rest(&s, Method::POST, "default/webhooks/b/register", None).await;
    assert_eq!(status, 400);
    assert!(error(400, &body).contains("needs Owner, Repo and OAuthToken"), "{body}");

    // Another organization's token: the webhook does not exist there, and this organization is forbidden.
    let out = s.cli(&["org", "create", "acme", "--account-id", "210987654321"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = s.cli(&["token", "create", "--org", "acme"]).await;
    let acme = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(acme.starts_with("phk_"), "{acme}");
    for (method, path) in [
        (Method::GET, "acme/webhooks/gh"),
        (Method::POST, "acme/webhooks/gh/register"),
        (Method::POST, "acme/webhooks/gh/deregister"),
    ] {
        let (status, body) = call(&s, &acme, method, path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
        error(404, &body);
    }
    let (status, body) =
        call(&s, &acme, Method::PUT, "acme/webhooks/gh", Some(definition("app", "UNAUTHENTICATED"))).await;
    assert_eq!(status, 404, "acme has no pipeline 'app': {body}");
    assert_eq!(call(&s, &acme, Method::GET, "acme/webhooks", None).await, (200, json!({"webhooks": []})));
    assert_eq!(call(&s, &acme, Method::DELETE, "acme/webhooks/gh", None).await.0, 204);
    for (method, path) in [
        (Method::GET, "default/webhooks"),
        (Method::GET, "default/webhooks/gh"),
        (Method::DELETE, "default/webhooks/gh"),
    ] {
        let (status, body) = call(&s, &acme, method, path, None).await;
        assert_eq!(status, 403, "{path}: {body}");
        error(403, &body);
    }
    assert_eq!(rest(&s, Method::GET, "default/webhooks/gh", None).await.0, 200, "acme's delete left it alone");
    let (status, _) = s.get("/api/orgs/default/webhooks", None).await;
    assert_eq!(status, 401);
    let (status, body) = rest(&s, Method::PATCH, "default/webhooks/gh", None).await;
    assert_eq!(status, 405);
    error(405, &body);

    // Delete: 204, again 204, then gone, and its URL with it.
    assert_eq!(rest(&s, Method::DELETE, "default/webhooks/gh", None).await, (204, Value::Null));
    assert_eq!(rest(&s, Method::DELETE, "default/webhooks/gh", None).await, (204, Value::Null));
    assert_eq!(rest(&s, Method::GET, "default/webhooks/gh", None).await.0, 404);
    assert_eq!(post(&url, &push, &github("push", "n-2", Some(sign(SECRET, &push)))).await.0, 404);
    let (status, body) = rest(&s, Method::DELETE, "default/webhooks/bad%20name", None).await;
    assert_eq!(status, 400);
    error(400, &body);
    s.stop().await.unwrap();
}

/// The quota of 300 webhooks per organization: the 301st is refused with AWS's message, as 400.
#[tokio::test]
async fn native_webhook_quota() {
    let s = TestServer::start().await;
    assert_eq!(rest(&s, Method::POST, "default/pipelines", Some(pipeline("app", "master"))).await.0, 201);
    for batch in 0..30 {
        let puts = (0..10).map(|i| {
            let path = format!("default/webhooks/w{:03}", batch * 10 + i);
            let s = &s;
            async move { rest(s, Method::PUT, &path, Some(definition("app", "UNAUTHENTICATED"))).await.0 }
        });
        for status in futures::future::join_all(puts).await {
            assert_eq!(status, 201);
        }
    }
    let (status, body) = rest(&s, Method::PUT, "default/webhooks/one-too-many", Some(definition("app", "IP"))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error(400, &body), "The number of webhooks is limited to 300");
    // A replace is not a new webhook.
    assert_eq!(rest(&s, Method::PUT, "default/webhooks/w000", Some(definition("app", "IP"))).await.0, 200);
    s.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------------
// The client commands of the real binary.
// ---------------------------------------------------------------------------------------------------------

/// The binary pointed at the server through the environment, as a user would configure it.
fn client(s: &TestServer, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::from(pipehook_cmd());
    cmd.env("PIPEHOOK_SERVER", &s.url).env("PIPEHOOK_TOKEN", TOKEN).args(args);
    cmd
}

/// Runs a client command asynchronously: the server it calls runs on this test's runtime.
async fn run(s: &TestServer, args: &[&str]) -> Output {
    let out = client(s, args).output().await.expect("run pipehook");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET), "the secret was printed: {args:?}");
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns standard output.
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

#[tokio::test]
async fn cli_webhooks_and_inbound_end_to_end() {
    let fail = Arc::new(AtomicBool::new(false));
    let (github_api, hooks) = fake_github(fail).await;
    let s = TestServer::builder().env("PIPEHOOK_GITHUB_API_URL", &github_api).start().await.unwrap();
    assert_eq!(rest(&s, Method::POST, "default/pipelines", Some(pipeline("app", "master"))).await.0, 201);
    assert_eq!(rest(&s, Method::POST, "default/pipelines", Some(pipeline("dev", "develop"))).await.0, 201);
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();

    // put from a file: the definition with its name and tags; then a nameless one, named on the command line.
    let mut gh = definition("app", "GITHUB_HMAC");
    gh["name"] = json!("gh");
    gh["tags"] = json!([{"key": "team", "value": "ci"}]);
    std::fs::write(path("gh.json"), serde_json::to_vec_pretty(&gh).unwrap()).unwrap();
    let out = ok(&run(&s, &["webhooks", "put", "--file", &path("gh.json")]).await);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("created webhook gh"), "{out}");
    let url = lines.next().unwrap().strip_prefix("URL: ").expect("the URL").to_owned();
    assert!(url.starts_with(&format!("{}/trigger?t=", s.url)), "{url}");
    let out = ok(&run(&s, &["webhooks", "put", "--file", &path("gh.json")]).await);
    assert_eq!(out, format!("updated webhook gh\nURL: {url}\n"), "a replace keeps the URL");
    std::fs::write(path("dev.json"), serde_json::to_vec(&definition("dev", "GITHUB_HMAC")).unwrap()).unwrap();
    let out = ok(&run(&s, &["--output", "json", "webhooks", "put", "--file", &path("dev.json"), "dev-hook"]).await);
    let dev: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(dev["name"], "dev-hook");
    assert_eq!(dev["definition"]["authenticationConfiguration"]["SecretToken"], "REDACTED");
    let dev_url = dev["url"].as_str().unwrap().to_owned();

    // Bad input: one line and a non-zero exit, never a panic.
    let err = failed(&run(&s, &["webhooks", "put", "--file", &path("missing.json")]).await, 2);
    assert!(err.contains("cannot read") && err.contains("missing.json"), "{err}");
    std::fs::write(path("broken.json"), b"{\"name\": \"gh\",").unwrap();
    let err = failed(&run(&s, &["webhooks", "put", "--file", &path("broken.json")]).await, 2);
    assert!(err.contains("broken.json is not valid JSON"), "{err}");
    let err = failed(&run(&s, &["webhooks", "put", "--file", &path("dev.json")]).await, 2);
    assert!(err.contains("has no \"name\""), "{err}");
    let err = failed(&run(&s, &["webhooks", "put", "--file", &path("gh.json"), "renamed"]).await, 1);
    assert!(err.starts_with("pipehook: 400 ") && err.contains("cannot be renamed"), "{err}");
    let mut bad = definition("app", "GITHUB_HMAC");
    bad["filters"][0]["jsonPath"] = json!("$.[");
    std::fs::write(path("bad.json"), serde_json::to_vec(&bad).unwrap()).unwrap();
    let err = failed(&run(&s, &["webhooks", "put", "--file", &path("bad.json"), "bad"]).await, 1);
    assert!(err.starts_with("pipehook: 400 ") && err.contains("RFC 9535"), "{err}");
    let err = failed(&run(&s, &["webhooks", "explain", "gh", "--payload", &path("broken.json")]).await, 2);
    assert!(err.contains("is not valid JSON"), "{err}");
    let err = failed(&run(&s, &["webhooks", "get", "nope"]).await, 1);
    assert_eq!(err, format!("pipehook: 404 The webhook 'nope' was not found in account '{ACCOUNT_ID}'"));

    // list and get.
    let table = ok(&run(&s, &["webhooks", "list"]).await);
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "PIPELINE", "AUTHENTICATION", "RULES", "LAST", "TRIGGERED", "URL"], "{table}");
    assert_eq!(rows[1], ["dev-hook", "dev", "GITHUB_HMAC", "1", "-", dev_url.as_str()], "{table}");
    assert_eq!(rows[2], ["gh", "app", "GITHUB_HMAC", "1", "-", url.as_str()], "{table}");
    let listed: Value = serde_json::from_str(&ok(&run(&s, &["--output", "json", "webhooks", "list"]).await)).unwrap();
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 2);
    assert_eq!(listed["webhooks"][1]["tags"], json!([{"key": "team", "value": "ci"}]));
    let shown = ok(&run(&s, &["webhooks", "get", "gh"]).await);
    for want in [
        "Name:       gh".to_owned(),
        "Pipeline:   app (action Source)".to_owned(),
        format!("ARN:        arn:aws:codepipeline:us-east-1:{ACCOUNT_ID}:webhook:gh"),
        format!("URL:        {url}"),
        "Auth:       GITHUB_HMAC (a secret is set; it is never shown)".to_owned(),
        "Triggered:  -".to_owned(),
        "Tags:       team=ci".to_owned(),
    ] {
        assert!(shown.contains(&want), "{want} in {shown}");
    }
    let rule = shown.lines().last().unwrap().split_whitespace().collect::<Vec<_>>();
    assert_eq!(rule, ["1", "$.ref", "refs/heads/{Branch}"], "{shown}");

    // explain a real payload: nothing starts.
    let push = fixture("github/push-branch.json");
    std::fs::write(path("push.json"), &push).unwrap();
    let explained =
        ok(&run(&s, &["webhooks", "explain", "gh", "--payload", &path("push.json"), "--event", "push"]).await);
    assert!(explained.contains("Webhook:   gh (pipeline app)"), "{explained}");
    assert!(
        explained.contains("ref refs/heads/master, commit 6113728f27ae82c7b1a177c8d03f9e96e0adf246, by Codertocat"),
        "{explained}"
    );
    assert!(explained.contains("Verdict:   would trigger"), "{explained}");
    let row: Vec<&str> = explained.lines().last().unwrap().split_whitespace().collect();
    assert_eq!(row, ["1", "$.ref", "refs/heads/master", "\"refs/heads/master\"", "pass"], "{explained}");
    let explained = ok(&run(&s, &["webhooks", "explain", "dev-hook", "--payload", &path("push.json")]).await);
    assert!(explained.contains("Verdict:   would be filtered"), "{explained}");
    assert!(explained.lines().last().unwrap().ends_with("FAIL"), "{explained}");
    let json_explained: Value = serde_json::from_str(&ok(&run(
        &s,
        &["--output", "json", "webhooks", "explain", "dev-hook", "--payload", &path("push.json")],
    )
    .await))
    .unwrap();
    assert_eq!(json_explained["rules"][0]["wanted"], "refs/heads/develop");
    let (_, executions) = rest(&s, Method::GET, "default/pipelines/app/executions", None).await;
    assert_eq!(executions["executions"], json!([]), "explain started nothing");

    // Real signed deliveries, then the inbound log.
    let (_, triggered) = post(&url, &push, &github("push", "c-1", Some(sign(SECRET, &push)))).await;
    assert_eq!(triggered["result"], "triggered", "{triggered}");
    let triggered_id = triggered["requestId"].as_str().unwrap().to_owned();
    let execution = triggered["pipelineExecutionId"].as_str().unwrap().to_owned();
    let (_, filtered) = post(&dev_url, &push, &github("push", "c-2", Some(sign(SECRET, &push)))).await;
    assert_eq!(filtered["result"], "filtered", "{filtered}");
    let filtered_id = filtered["requestId"].as_str().unwrap().to_owned();

    let table = ok(&run(&s, &["inbound", "list"]).await);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("RECEIVED") && lines[0].contains("VERDICT"), "{table}");
    let newest: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(newest[1..6], [filtered_id.as_str(), "dev-hook", "filtered", "-", "$.ref:"], "{table}");
    assert!(lines[1].ends_with("$.ref: wanted refs/heads/develop, found \"refs/heads/master\""), "{table}");
    let older: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(older[1..5], [triggered_id.as_str(), "gh", "triggered", execution.as_str()], "{table}");
    let only: Value =
        serde_json::from_str(&ok(&run(&s, &["--output", "json", "inbound", "list", "--webhook", "gh"]).await)).unwrap();
    let ids: Vec<&str> = only["requests"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [triggered_id.as_str()]);
    let one = ok(&run(&s, &["inbound", "list", "--verdict", "filtered", "--limit", "1"]).await);
    assert_eq!(one.lines().count(), 2, "{one}");
    assert!(one.contains(&filtered_id), "{one}");
    let err = failed(&run(&s, &["inbound", "list", "--verdict", "maybe"]).await, 1);
    assert!(err.starts_with("pipehook: 400 verdict must be one of"), "{err}");

    let got = ok(&run(&s, &["inbound", "get", &filtered_id]).await);
    for want in [
        format!("Request:    {filtered_id}"),
        "Webhook:    dev-hook".to_owned(),
        "Delivery:   c-2".to_owned(),
        "Verdict:    filtered".to_owned(),
        "Why:        $.ref: wanted refs/heads/develop, found \"refs/heads/master\"".to_owned(),
        "  x-github-event: push".to_owned(),
        format!("Body ({} bytes):", push.len()),
    ] {
        assert!(got.contains(&want), "{want} in {got}");
    }
    assert!(got.contains("\"full_name\": \"Codertocat/Hello-World\""), "the body is shown: {got}");
    let err = failed(&run(&s, &["inbound", "get", "no-such-request"]).await, 1);
    assert!(err.starts_with("pipehook: 404 "), "{err}");

    // Replay the filtered request once its webhook wants master: it triggers now.
    let mut master = definition("app", "GITHUB_HMAC");
    master["name"] = json!("dev-hook");
    std::fs::write(path("dev-master.json"), serde_json::to_vec(&master).unwrap()).unwrap();
    assert!(ok(&run(&s, &["webhooks", "put", "-f", &path("dev-master.json")]).await)
        .starts_with("updated webhook dev-hook"));
    let replayed = ok(&run(&s, &["inbound", "replay", &filtered_id]).await);
    let (head, execution_part) = replayed.trim().split_once(": triggered, execution ").expect(&replayed);
    let replay_id = head.strip_prefix(&format!("replayed {filtered_id} as ")).expect(&replayed).to_owned();
    assert_eq!(execution_part.len(), 36, "{replayed}");
    let (_, logged) = rest(&s, Method::GET, &format!("default/inbound/{replay_id}"), None).await;
    assert_eq!(
        (logged["verdict"].as_str(), logged["detail"]["replayOf"].as_str()),
        (Some("triggered"), Some(filtered_id.as_str()))
    );
    assert_eq!(logged["pipelineExecutionId"], execution_part);

    // tail: the existing entries oldest first, then a new one as it arrives, each exactly once.
    let mut tail = client(&s, &["inbound", "tail"]);
    tail.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = tail.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let mut next_line = async || {
        tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("tail printed nothing")
            .unwrap()
            .expect("tail ended")
    };
    assert!(next_line().await.starts_with("RECEIVED"));
    for _ in 0..3 {
        printed.push(next_line().await);
    }
    let first_ids: Vec<&str> = printed.iter().map(|l| l.split_whitespace().nth(1).unwrap()).collect();
    assert_eq!(
        first_ids,
        [triggered_id.as_str(), filtered_id.as_str(), replay_id.as_str()],
        "oldest first: {printed:?}"
    );
    let (_, fresh) = post(&url, &push, &github("push", "c-3", Some(sign(SECRET, &push)))).await;
    let fresh_id = fresh["requestId"].as_str().unwrap().to_owned();
    let line = next_line().await;
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells[1..4], [fresh_id.as_str(), "gh", "triggered"], "{line}");
    // A later delivery shows up too, and nothing is printed twice across the polls in between.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, duplicate) = post(&url, &push, &github("push", "c-3", Some(sign(SECRET, &push)))).await;
    assert_eq!(duplicate["result"], "duplicate");
    let line = next_line().await;
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells[1..4], [duplicate["requestId"].as_str().unwrap(), "gh", "duplicate"], "{line}");
    assert!(line.ends_with("delivery seen before: triggered"), "{line}");
    let quiet = tokio::time::timeout(Duration::from_millis(1500), lines.next_line()).await;
    assert!(quiet.is_err(), "nothing else to print: {quiet:?}");
    child.kill().await.unwrap();

    // register / deregister / delete.
    assert_eq!(ok(&run(&s, &["webhooks", "register", "gh"]).await).trim(), "registered webhook gh with the git host");
    assert_eq!(hooks.lock().unwrap().as_slice(), [format!("POST Codertocat/Hello-World \"{url}\"")]);
    assert_eq!(
        ok(&run(&s, &["webhooks", "deregister", "gh"]).await).trim(),
        "deregistered webhook gh from the git host"
    );
    assert_eq!(hooks.lock().unwrap()[1], "DELETE Codertocat/Hello-World/4242");
    assert_eq!(ok(&run(&s, &["webhooks", "delete", "dev-hook"]).await).trim(), "deleted webhook dev-hook");
    assert_eq!(ok(&run(&s, &["webhooks", "delete", "dev-hook"]).await).trim(), "deleted webhook dev-hook");
    let listed: Value = serde_json::from_str(&ok(&run(&s, &["--output", "json", "webhooks", "list"]).await)).unwrap();
    assert_eq!(listed["webhooks"].as_array().unwrap().iter().map(|w| &w["name"]).collect::<Vec<_>>(), [&json!("gh")]);
    let err = failed(&run(&s, &["webhooks", "list", "--org", "other"]).await, 1);
    assert!(err.starts_with("pipehook: 403 "), "{err}");
    s.stop().await.unwrap();
}
