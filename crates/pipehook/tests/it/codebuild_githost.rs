//! CodeBuild webhooks and the git hosts' APIs, against one local fake of GitHub (`/gh`), GitLab (`/gl`, API v4)
//! and Bitbucket Cloud (`/bb`, API 2.0): FILE_PATH and COMMIT_MESSAGE on events whose payload lacks the changed
//! files or the head commit message (pull requests, Bitbucket pushes, GitLab pushes listing 20 of more commits)
//! read them from the host, with the project's token, only when a group could pass; a host failure answers 502,
//! claims nothing and the redelivery is judged afresh. Bitbucket hooks are registered with a secret pipehook
//! keeps, so the deliveries are signed and checked. Projects point at a closed local port, so a build that
//! starts fails its checkout without reaching any host.

use aws_sdk_codebuild::error::ProvideErrorMetadata;
use aws_sdk_codebuild::types::{
    ProjectSource, SourceAuth, SourceAuthType, SourceType, WebhookBuildType, WebhookFilter, WebhookFilterType,
};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::codebuild::{artifacts, client, create_repo_project, environment, filter, logs, wait_build};
use crate::support::{TestServer, TOKEN};
use crate::webhooks::{fixture, github, post, sign};

const BUILDSPEC: &str = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo built\n";
/// A repository URL on a closed local port: it names the repository the payloads are about (the API is asked
/// about that one only), and a build that starts fails its checkout at once, without leaving this machine.
fn location(repo: &str) -> String {
    format!("https://127.0.0.1:1/{repo}")
}

fn exclude(t: WebhookFilterType, pattern: &str) -> WebhookFilter {
    WebhookFilter::builder().r#type(t).pattern(pattern).exclude_matched_pattern(true).build().unwrap()
}

/// One request the fake received: method and path with query, the credential header, the JSON body.
#[derive(Debug, Clone)]
struct Call {
    what: String,
    credential: String,
    body: Value,
}

/// The fake git host: answers from a table of `METHOD /path?query` → (status, JSON), records every call.
#[derive(Clone, Default)]
struct Fake {
    calls: Arc<Mutex<Vec<Call>>>,
    routes: Arc<Mutex<Vec<(String, u16, Value)>>>,
    fail: Arc<AtomicBool>,
}

impl Fake {
    async fn start(&self) -> String {
        let me = self.clone();
        let app = axum::Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  h: axum::http::HeaderMap,
                  body: axum::body::Bytes| {
                let me = me.clone();
                async move {
                    let header = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                    let credential = [header("authorization"), header("private-token")].concat();
                    let what = format!("{method} {uri}");
                    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    me.calls.lock().unwrap().push(Call { what: what.clone(), credential, body });
                    use axum::http::StatusCode;
                    use axum::response::IntoResponse;
                    if me.fail.load(Ordering::SeqCst) {
                        let out = json!({"message": "Server Error"});
                        return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(out)).into_response();
                    }
                    let routes = me.routes.lock().unwrap();
                    match routes.iter().find(|(w, _, _)| *w == what) {
                        // A redirect: the route's JSON names where to.
                        Some((_, status, out)) if (300..400).contains(status) => {
                            let to = out["location"].as_str().unwrap_or_default().to_owned();
                            (StatusCode::from_u16(*status).unwrap(), [(axum::http::header::LOCATION, to)])
                                .into_response()
                        }
                        Some((_, status, out)) => {
                            (StatusCode::from_u16(*status).unwrap(), axum::Json(out.clone())).into_response()
                        }
                        None => (StatusCode::NOT_FOUND, axum::Json(json!({"message": "Not Found"}))).into_response(),
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn route(&self, what: &str, status: u16, out: Value) {
        self.routes.lock().unwrap().push((what.to_owned(), status, out));
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

async fn server(fake: &str) -> TestServer {
    TestServer::builder()
        .env("PIPEHOOK_GITHUB_API_URL", &format!("{fake}/gh"))
        .env("PIPEHOOK_GITLAB_API_URL", &format!("{fake}/gl/api/v4"))
        .env("PIPEHOOK_BITBUCKET_API_URL", &format!("{fake}/bb/2.0"))
        .start()
        .await
        .unwrap()
}

/// The newest inbound log entry of a project's webhook.
async fn last_logged(s: &TestServer, project: &str) -> Value {
    let (_, log) = s.get(&format!("/api/orgs/default/inbound?webhook=project:{project}"), Some(TOKEN)).await;
    log["requests"][0].clone()
}

#[tokio::test]
async fn github_pull_requests_read_their_files_and_head_commit_message_from_the_api() {
    let fake = Fake::default();
    let base = fake.start().await;
    let s = server(&base).await;
    let c = client(&s);
    create_repo_project(
        &c,
        "gh",
        SourceType::Github,
        &location("Codertocat/Hello-World"),
        Some("ghp-canary-token-4711"),
    )
    .await;
    // The token is stored encrypted, and an update that cannot send it back (the API never shows it) keeps it.
    let stored: Vec<u8> = ["pipehook.db", "pipehook.db-wal"]
        .iter()
        .filter_map(|f| std::fs::read(s.data_dir.join(f)).ok())
        .flatten()
        .collect();
    assert!(stored.windows(18).any(|w| w == b"resourceCiphertext"), "the project is in the files read");
    assert!(!stored.windows(21).any(|w| w == b"ghp-canary-token-4711"), "the token is in the database in plain text");
    let source = ProjectSource::builder()
        .r#type(SourceType::Github)
        .location(location("Codertocat/Hello-World"))
        .buildspec(BUILDSPEC)
        .auth(SourceAuth::builder().r#type(SourceAuthType::Oauth).build().unwrap())
        .build()
        .unwrap();
    let updated = c.update_project().name("gh").source(source).send().await.unwrap().project.unwrap();
    let auth = updated.source.unwrap().auth.unwrap();
    assert_eq!((auth.r#type, auth.resource), (SourceAuthType::Oauth, None));
    let w = c
        .create_webhook()
        .project_name("gh")
        .filter_groups(vec![
            filter(WebhookFilterType::Event, "PULL_REQUEST_CREATED"),
            filter(WebhookFilterType::FilePath, "^src/"),
        ])
        .filter_groups(vec![
            filter(WebhookFilterType::Event, "PULL_REQUEST_UPDATED"),
            exclude(WebhookFilterType::CommitMessage, "\\[skip ci\\]"),
        ])
        .filter_groups(vec![filter(WebhookFilterType::Event, "PUSH"), filter(WebhookFilterType::FilePath, "^README")])
        .manual_creation(true)
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap();
    let (url, secret) = (w.payload_url.unwrap(), w.secret.unwrap());
    let repo = "/gh/repos/Codertocat/Hello-World";
    // Pull request 2: 100 documentation files on the first page, a source file (renamed) on the second.
    let page: Vec<Value> =
        (0..100).map(|i| json!({"filename": format!("docs/{i}.md"), "status": "modified"})).collect();
    fake.route(&format!("GET {repo}/pulls/2/files?per_page=100&page=1"), 200, json!(page));
    fake.route(
        &format!("GET {repo}/pulls/2/files?per_page=100&page=2"),
        200,
        json!([{"filename": "src/parser.rs", "previous_filename": "src/parse.rs", "status": "renamed"}]),
    );

    let opened = fixture("github/pull_request-opened.json");
    let (status, out) = post(&url, &opened, &github("pull_request", "pr-1", Some(sign(&secret, &opened)))).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("triggered")), "{out}");
    let logged = last_logged(&s, "gh").await;
    assert_eq!(logged["detail"]["fetched"]["files"], 102, "{logged}");
    assert_eq!(logged["detail"]["fetched"]["calls"], 2, "{logged}");
    let file_filter = &logged["detail"]["evaluation"]["groups"][0]["filters"][1];
    assert_eq!(file_filter["matchedValue"], "src/parser.rs", "{logged}");
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c.credential == "token ghp-canary-token-4711"), "{calls:?}");

    // Only documentation changed: filtered, with what FILE_PATH saw.
    fake.routes.lock().unwrap().retain(|(w, _, _)| !w.contains("page=2"));
    fake.route(&format!("GET {repo}/pulls/2/files?per_page=100&page=2"), 200, json!([]));
    let (status, out) = post(&url, &opened, &github("pull_request", "pr-2", Some(sign(&secret, &opened)))).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("filtered")), "{out}");
    let logged = last_logged(&s, "gh").await;
    assert_eq!(logged["detail"]["evaluation"]["groups"][0]["filters"][1]["foundCount"], 100, "{logged}");

    // The host failing: 502, nothing claimed, so the same delivery is judged again once the host is back.
    fake.fail.store(true, Ordering::SeqCst);
    let (status, out) = post(&url, &opened, &github("pull_request", "pr-3", Some(sign(&secret, &opened)))).await;
    assert_eq!((status, out["result"].as_str()), (502, Some("rejected")), "{out}");
    let logged = last_logged(&s, "gh").await;
    assert_eq!(logged["verdict"], "rejected");
    assert!(logged["detail"]["reason"].as_str().unwrap().contains("500"), "{logged}");
    fake.fail.store(false, Ordering::SeqCst);
    let (status, out) = post(&url, &opened, &github("pull_request", "pr-3", Some(sign(&secret, &opened)))).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("filtered")), "not a duplicate: {out}");

    // PULL_REQUEST_UPDATED with an excluded COMMIT_MESSAGE: the head commit is read, files are not.
    let head = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";
    let sync = fixture("github/pull_request-synchronize.json");
    fake.route(
        &format!("GET {repo}/commits/{head}"),
        200,
        json!({"sha": head, "commit": {"message": "Fix it [skip ci]"}}),
    );
    let before = fake.calls().len();
    let (status, out) = post(&url, &sync, &github("pull_request", "pr-4", Some(sign(&secret, &sync)))).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("filtered")), "{out}");
    let calls = fake.calls();
    assert_eq!(
        calls[before..].iter().map(|c| c.what.as_str()).collect::<Vec<_>>(),
        [format!("GET {repo}/commits/{head}")]
    );
    let logged = last_logged(&s, "gh").await;
    assert_eq!(logged["detail"]["evaluation"]["groups"][1]["filters"][1]["matchedValue"], "Fix it [skip ci]");

    // A push lists its files: no call. A delivery no group can pass (a closed pull request): no call.
    let before = fake.calls().len();
    let push = fixture("github/push-branch.json");
    let (status, out) = post(&url, &push, &github("push", "push-1", Some(sign(&secret, &push)))).await;
    assert_eq!(status, 200, "{out}");
    let closed = fixture("github/pull_request-closed.json");
    let (status, out) = post(&url, &closed, &github("pull_request", "pr-5", Some(sign(&secret, &closed)))).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("filtered")), "{out}");
    assert_eq!(fake.calls().len(), before, "{:?}", &fake.calls()[before..]);

    // A redelivery of a delivery already judged asks the host nothing.
    let before = fake.calls().len();
    let (status, out) = post(&url, &opened, &github("pull_request", "pr-1", Some(sign(&secret, &opened)))).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("duplicate")), "{out}");
    assert_eq!(fake.calls().len(), before);

    // A delivery about another repository never makes the project's token read it: refused as the sender's
    // mistake, with no call.
    let mut elsewhere: Value = serde_json::from_slice(&opened).unwrap();
    elsewhere["repository"]["full_name"] = json!("someone/private-repo");
    let elsewhere = serde_json::to_vec(&elsewhere).unwrap();
    let (status, out) = post(&url, &elsewhere, &github("pull_request", "pr-6", Some(sign(&secret, &elsewhere)))).await;
    assert_eq!((status, out["result"].as_str()), (400, Some("rejected")), "{out}");
    assert_eq!(fake.calls().len(), before);
    let logged = last_logged(&s, "gh").await;
    assert!(logged["detail"]["reason"].as_str().unwrap().contains("someone/private-repo"), "{logged}");

    // explain reads the same way, and says what it read.
    let res = reqwest::Client::new()
        .post(format!("{}/api/orgs/default/projects/gh/explain", s.url))
        .bearer_auth(TOKEN)
        .header("x-github-event", "pull_request")
        .body(opened.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let explained: Value = res.json().await.unwrap();
    assert_eq!(explained["fetched"]["files"], 100, "{explained}");
    assert_eq!(explained["verdict"], "would be filtered");
}

#[tokio::test]
async fn gitlab_and_bitbucket_changes_come_from_their_apis() {
    let fake = Fake::default();
    let base = fake.start().await;
    let s = server(&base).await;
    let c = client(&s);
    create_repo_project(&c, "gl", SourceType::Gitlab, &location("gitlabhq/gitlab-test"), Some("glpat-1")).await;
    create_repo_project(&c, "bb", SourceType::Bitbucket, &location("acme/widgets"), Some("bb-user:app-pass")).await;
    let gl = c
        .create_webhook()
        .project_name("gl")
        .filter_groups(vec![
            filter(WebhookFilterType::Event, "PUSH, PULL_REQUEST_CREATED"),
            filter(WebhookFilterType::FilePath, "^app/"),
        ])
        .manual_creation(true)
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap();
    let (gl_url, gl_secret) = (gl.payload_url.unwrap(), gl.secret.unwrap());
    let gitlab = |event: &str, uuid: &str| {
        vec![
            ("x-gitlab-event", event.to_owned()),
            ("x-gitlab-event-uuid", uuid.to_owned()),
            ("x-gitlab-token", gl_secret.clone()),
        ]
    };
    // The merge request's diffs (GitLab 15.7+).
    let project_path = "/gl/api/v4/projects/gitlabhq%2Fgitlab-test";
    fake.route(
        &format!("GET {project_path}/merge_requests/1/diffs?per_page=100&page=1"),
        200,
        json!([{"old_path": "app/models/user.rb", "new_path": "app/models/user.rb"}, {"old_path": "README", "new_path": "README.md"}]),
    );
    let mr = fixture("gitlab/merge_request.json");
    let (status, out) = post(&gl_url, &mr, &gitlab("Merge Request Hook", "gl-1")).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("triggered")), "{out}");
    let logged = last_logged(&s, "gl").await;
    assert_eq!(logged["detail"]["fetched"]["files"], 3, "new and old paths: {logged}");
    assert_eq!(fake.calls().last().unwrap().credential, "glpat-1");

    // A push listing 2 of its 4 commits: the compare API completes the list. (The example push is about another
    // project: it is made one about this project's repository.)
    let mut push: Value = serde_json::from_slice(&fixture("gitlab/push.json")).unwrap();
    push["project"]["path_with_namespace"] = json!("gitlabhq/gitlab-test");
    let compare = format!(
        "GET {project_path}/repository/compare?from={}&to={}",
        push["before"].as_str().unwrap(),
        push["after"].as_str().unwrap()
    );
    fake.route(&compare, 200, json!({"diffs": [{"old_path": "app/views/x.erb", "new_path": "app/views/x.erb"}]}));
    let (status, out) = post(&gl_url, &serde_json::to_vec(&push).unwrap(), &gitlab("Push Hook", "gl-2")).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("triggered")), "{out}");
    assert_eq!(fake.calls().last().unwrap().what, compare);

    // Bitbucket: a pull request's diffstat over two pages, the push's diffstat between its old and new heads,
    // and the head commit's message; app passwords go as HTTP Basic.
    let bb = c
        .create_webhook()
        .project_name("bb")
        .filter_groups(vec![
            filter(WebhookFilterType::Event, "PULL_REQUEST_CREATED"),
            filter(WebhookFilterType::FilePath, "\\.rs$"),
            filter(WebhookFilterType::CommitMessage, "^Add"),
        ])
        .filter_groups(vec![filter(WebhookFilterType::Event, "PUSH"), exclude(WebhookFilterType::FilePath, "^docs/")])
        .manual_creation(true)
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap();
    let bb_url = bb.payload_url.unwrap();
    let repo = "/bb/2.0/repositories/acme/widgets";
    // Bitbucket answers a pull request's diffstat with a redirect to the diffstat of its commits.
    let spec = "acme/widgets:3f8e2a1b9c7d%0D1e65c05c1d51?from_pullrequest_id=7&topic=true";
    fake.route(
        &format!("GET {repo}/pullrequests/7/diffstat?pagelen=100"),
        302,
        json!({"location": format!("{base}{repo}/diffstat/{spec}")}),
    );
    fake.route(
        &format!("GET {repo}/diffstat/{spec}"),
        200,
        json!({"values": [{"new": {"path": "README.md"}, "old": {"path": "README.md"}}], "next": format!("{base}{repo}/diffstat/{spec}&page=2")}),
    );
    fake.route(
        &format!("GET {repo}/diffstat/{spec}&page=2"),
        200,
        json!({"values": [{"new": {"path": "src/lib.rs"}, "old": null}]}),
    );
    fake.route(
        &format!("GET {repo}/pullrequests/7/commits?pagelen=50"),
        200,
        json!({"values": [{"hash": "3f8e2a1b9c7d5e4f3a2b1c0d9e8f7a6b5c4d3e2f", "message": "Add the widget API\n"}]}),
    );
    let bitbucket = |key: &str, uuid: &str| vec![("x-event-key", key.to_owned()), ("x-request-uuid", uuid.to_owned())];
    let pr = fixture("bitbucket/pullrequest-created.json");
    let before = fake.calls().len();
    let (status, out) = post(&bb_url, &pr, &bitbucket("pullrequest:created", "bb-1")).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("triggered")), "{out}");
    let calls = fake.calls();
    assert_eq!(calls.len() - before, 4, "redirect, two pages, the commits: {:?}", &calls[before..]);
    assert!(calls[before..].iter().all(|c| c.credential == "Basic YmItdXNlcjphcHAtcGFzcw=="), "{calls:?}");

    let (new, old) = ("7c9f3a2b5e1d4c8a9b0f6e2d3c4b5a69788f0e1d", "1e65c05c1d5171631d92438a13901ca7dae9618c");
    fake.route(
        &format!("GET {repo}/diffstat/{new}..{old}?pagelen=100"),
        200,
        json!({"values": [{"new": {"path": "docs/guide.md"}, "old": {"path": "docs/guide.md"}}]}),
    );
    let (status, out) = post(&bb_url, &fixture("bitbucket/repo-push.json"), &bitbucket("repo:push", "bb-2")).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("filtered")), "only docs changed: {out}");
    let logged = last_logged(&s, "bb").await;
    assert_eq!(logged["detail"]["evaluation"]["groups"][1]["filters"][1]["matchedValue"], "docs/guide.md", "{logged}");
}

/// CreateWebhook on a Bitbucket project registers a repository hook through API 2.0 with a secret that is never
/// returned; Bitbucket signs deliveries with it (`X-Hub-Signature: sha256=`), so an unsigned or badly signed
/// delivery is refused. `rotateSecret` is ignored as in CodeBuild; DeleteWebhook removes the hook; the host
/// refusing is `OAuthProviderException` with nothing stored.
#[tokio::test]
async fn bitbucket_hooks_are_registered_with_a_kept_secret() {
    let fake = Fake::default();
    let base = fake.start().await;
    let s = server(&base).await;
    let c = client(&s);
    create_repo_project(
        &c,
        "bb",
        SourceType::Bitbucket,
        "https://bitbucket.org/acme/widgets.git",
        Some("bb-access-token"),
    )
    .await;
    let hooks = "/bb/2.0/repositories/acme/widgets/hooks";
    fake.route(&format!("POST {hooks}"), 201, json!({"uuid": "{4f1c-99}", "url": "x"}));
    fake.route(&format!("DELETE {hooks}/%7B4f1c-99%7D"), 204, Value::Null);

    let w = c
        .create_webhook()
        .project_name("bb")
        .filter_groups(vec![filter(WebhookFilterType::Event, "PULL_REQUEST_CREATED")])
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap();
    assert!(w.secret.is_none(), "CodeBuild returns no secret for Bitbucket");
    assert_eq!(w.status_message, None);
    assert_eq!(w.url.as_deref(), Some(format!("{base}{hooks}/%7B4f1c-99%7D").as_str()));
    let call = fake.calls()[0].clone();
    assert_eq!(
        (call.what.as_str(), call.credential.as_str()),
        (format!("POST {hooks}").as_str(), "Bearer bb-access-token")
    );
    assert_eq!(call.body["url"].as_str(), w.payload_url.as_deref());
    assert_eq!(call.body["active"], true);
    assert_eq!(call.body["events"], json!(["pullrequest:created"]), "what the filter groups let through");
    let secret = call.body["secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 40);

    // Deliveries are checked against that secret.
    let url = w.payload_url.clone().unwrap();
    let body = fixture("bitbucket/repo-push.json");
    let delivery = std::sync::atomic::AtomicUsize::new(0);
    let headers = |sig: Option<String>| {
        let n = delivery.fetch_add(1, Ordering::SeqCst);
        let mut h = vec![("x-event-key", "repo:push".to_owned()), ("x-request-uuid", format!("bb-delivery-{n}"))];
        if let Some(sig) = sig {
            h.push(("x-hub-signature", sig));
        }
        h
    };
    let (status, out) = post(&url, &body, &headers(None)).await;
    assert_eq!((status, out["result"].as_str()), (401, Some("unauthenticated")), "{out}");
    let (status, _) = post(&url, &body, &headers(Some(sign("not-the-secret", &body)))).await;
    assert_eq!(status, 401);
    let (status, out) = post(&url, &body, &headers(Some(sign(&secret, &body)))).await;
    assert_eq!(
        (status, out["result"].as_str()),
        (200, Some("filtered")),
        "authentic, and not an event it builds: {out}"
    );
    let p = c.batch_get_projects().names("bb").send().await.unwrap().projects.unwrap().remove(0);
    assert!(p.webhook.unwrap().secret.is_none());

    // rotateSecret is ignored for Bitbucket: no secret, nothing asked of Bitbucket.
    let calls = fake.calls().len();
    let rotated = c.update_webhook().project_name("bb").rotate_secret(true).send().await.unwrap().webhook.unwrap();
    assert!(rotated.secret.is_none());
    assert_eq!(fake.calls().len(), calls);
    let (status, _) = post(&url, &body, &headers(Some(sign(&secret, &body)))).await;
    assert_eq!(status, 200, "the kept secret still signs");

    c.delete_webhook().project_name("bb").send().await.unwrap();
    let last = fake.calls().last().unwrap().clone();
    assert_eq!(
        (last.what.as_str(), last.credential.as_str()),
        (format!("DELETE {hooks}/%7B4f1c-99%7D").as_str(), "Bearer bb-access-token")
    );

    // Bitbucket refusing: OAuthProviderException with its message, nothing stored.
    fake.fail.store(true, Ordering::SeqCst);
    let e = c.create_webhook().project_name("bb").send().await.unwrap_err();
    assert_eq!(e.code(), Some("OAuthProviderException"));
    assert!(e.message().unwrap_or_default().contains("Server Error"), "{e:?}");
    let p = c.batch_get_projects().names("bb").send().await.unwrap().projects.unwrap().remove(0);
    assert!(p.webhook.is_none());
    fake.fail.store(false, Ordering::SeqCst);

    // No token: OAuthProviderException unless manualCreation, which registers nothing and has no secret at all.
    create_repo_project(&c, "bb-manual", SourceType::Bitbucket, "https://bitbucket.org/acme/other", None).await;
    let e = c.create_webhook().project_name("bb-manual").send().await.unwrap_err();
    assert_eq!(e.code(), Some("OAuthProviderException"));
    let calls = fake.calls().len();
    let manual = c
        .create_webhook()
        .project_name("bb-manual")
        .filter_groups(vec![filter(WebhookFilterType::Event, "PULL_REQUEST_CREATED")])
        .manual_creation(true)
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap();
    assert!(manual.secret.is_none());
    assert_eq!(fake.calls().len(), calls);
    let (status, out) = post(&manual.payload_url.unwrap(), &body, &headers(None)).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("filtered")), "protected by its URL alone: {out}");
}

/// `source.reportBuildStatus`: a webhook build reports "pending" when it starts and its outcome when it ends as
/// a commit status on the repository `source.location` names (context from `buildStatusConfig`, link to the
/// build's log); here the checkout fails (the location is a closed local port), so the outcome is "failure". A
/// project whose location names no repository reports nothing and says so in its log; a project without the flag
/// reports nothing.
#[tokio::test]
async fn builds_report_their_status_to_the_commit() {
    use aws_sdk_codebuild::types::BuildStatusConfig;
    let fake = Fake::default();
    let base = fake.start().await;
    let s = server(&base).await;
    let c = client(&s);
    let repo = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=master"])
            .args(args)
            .current_dir(repo.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    git(&["init", "--quiet"]);
    std::fs::write(repo.path().join("ok.txt"), "yes").unwrap();
    git(&["add", "."]);
    git(&["commit", "--quiet", "-m", "first"]);
    let commit = git(&["rev-parse", "HEAD"]).trim().to_owned();
    let local = repo.path().display().to_string();
    let remote = location("Codertocat/Hello-World");
    for (name, at, report) in [("reported", &remote, true), ("local", &local, true), ("quiet", &remote, false)] {
        let mut source = ProjectSource::builder()
            .r#type(SourceType::Github)
            .location(at)
            .buildspec(BUILDSPEC)
            .auth(SourceAuth::builder().r#type(SourceAuthType::Oauth).resource("gh-status-token").build().unwrap());
        if report {
            source = source
                .report_build_status(true)
                .build_status_config(BuildStatusConfig::builder().context("ci/pipehook").build());
        }
        c.create_project()
            .name(name)
            .source(source.build().unwrap())
            .artifacts(artifacts())
            .environment(environment(&[]))
            .service_role("r")
            .send()
            .await
            .unwrap();
    }
    let statuses = format!("POST /gh/repos/Codertocat/Hello-World/statuses/{commit}");
    fake.route(&statuses, 201, json!({"id": 1}));
    let mut push: Value = serde_json::from_slice(&fixture("github/push-branch.json")).unwrap();
    push["after"] = json!(commit);
    let body = serde_json::to_vec(&push).unwrap();
    for (project, want) in [("reported", Some("failure")), ("local", None), ("quiet", None)] {
        let w = c
            .create_webhook()
            .project_name(project)
            .filter_groups(vec![filter(WebhookFilterType::Event, "PUSH")])
            .manual_creation(true)
            .send()
            .await
            .unwrap()
            .webhook
            .unwrap();
        let before = fake.calls().len();
        let headers = github("push", &format!("st-{project}"), Some(sign(&w.secret.unwrap(), &body)));
        let (status, out) = post(&w.payload_url.unwrap(), &body, &headers).await;
        assert_eq!((status, out["result"].as_str()), (200, Some("triggered")), "{out}");
        let id = out["buildId"].as_str().unwrap().to_owned();
        let b = wait_build(&c, &id).await;
        let calls: Vec<Call> = fake.calls()[before..].to_vec();
        let Some(want) = want else {
            assert!(calls.is_empty(), "{project}: {calls:?}");
            if project == "local" {
                assert_eq!(b.build_status, Some(aws_sdk_codebuild::types::StatusType::Succeeded));
                let log = logs(&s, &b).await;
                assert!(log.contains("names no repository to report to"), "{log}");
            }
            continue;
        };
        assert_eq!(calls.len(), 2, "{calls:?}");
        for (call, state) in calls.iter().zip(["pending", want]) {
            assert_eq!((call.what.as_str(), call.credential.as_str()), (statuses.as_str(), "token gh-status-token"));
            assert_eq!(call.body["state"], state, "{:?}", call.body);
            assert_eq!(call.body["context"], "ci/pipehook");
            let link = call.body["target_url"].as_str().unwrap();
            let id = b.id.as_deref().unwrap().replace(':', "%3A");
            assert!(link.ends_with(&format!("/api/orgs/default/builds/{id}/logs")), "{link}");
        }
    }

    // StartBuild's reportBuildStatusOverride turns reporting on for a project without the flag.
    let before = fake.calls().len();
    let id = c
        .start_build()
        .project_name("quiet")
        .source_version(&commit)
        .report_build_status_override(true)
        .send()
        .await
        .unwrap()
        .build_value
        .unwrap()
        .id
        .unwrap();
    wait_build(&c, &id).await;
    let states: Vec<Value> = fake.calls()[before..].iter().map(|c| c.body["state"].clone()).collect();
    assert_eq!(states, [json!("pending"), json!("failure")]);
}

impl Fake {
    /// The hook at `hook` (its resource path) as the host holds it: the body of the POST to `collection` that
    /// created it, with the fields of every later PATCH / PUT to it written over (events lists replaced whole).
    fn hook(&self, collection: &str, hook: &str) -> Value {
        let mut state = Value::Null;
        for call in self.calls() {
            if call.what == format!("POST {collection}") {
                state = call.body.clone();
            } else if call.what == format!("PATCH {hook}") || call.what == format!("PUT {hook}") {
                for (k, v) in call.body.as_object().unwrap() {
                    state[k] = v.clone();
                }
            }
        }
        state
    }

    /// How many calls reached the hook's resource path.
    fn updates(&self, hook: &str) -> usize {
        self.calls().iter().filter(|c| c.what.ends_with(&format!(" {hook}"))).count()
    }
}

/// UpdateWebhook keeps the GitHub hook's `events` in step with the filter groups: RELEASED added later subscribes
/// it to `release` (a release build would never come otherwise), removed unsubscribes it; each update sends the
/// current secret with the configuration (GitHub drops a secret a configuration update leaves out). An update
/// that changes no event asks nothing of GitHub; GitHub refusing is `OAuthProviderException` and nothing is
/// stored; a rotation in the same call sends the new secret with the new events.
#[tokio::test]
async fn update_webhook_keeps_the_github_hook_events_in_step() {
    let fake = Fake::default();
    let base = fake.start().await;
    let s = server(&base).await;
    let c = client(&s);
    create_repo_project(&c, "gh", SourceType::Github, &location("acme/app"), Some("gh-token-1")).await;
    let (hooks, hook) = ("/gh/repos/acme/app/hooks", "/gh/repos/acme/app/hooks/901");
    fake.route(&format!("POST {hooks}"), 201, json!({"id": 901}));
    fake.route(&format!("PATCH {hook}"), 200, json!({"id": 901}));
    let push = vec![filter(WebhookFilterType::Event, "PUSH")];
    let release = vec![filter(WebhookFilterType::Event, "RELEASED"), filter(WebhookFilterType::TagName, "^v")];

    let w = c.create_webhook().project_name("gh").filter_groups(push.clone()).send().await.unwrap().webhook.unwrap();
    let (url, secret) = (w.payload_url.unwrap(), w.secret.unwrap());
    assert_eq!(fake.hook(hooks, hook)["events"], json!(["push"]));

    let updated = c
        .update_webhook()
        .project_name("gh")
        .filter_groups(push.clone())
        .filter_groups(release.clone())
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap();
    assert_eq!(updated.filter_groups.unwrap().len(), 2);
    assert!(updated.secret.is_none(), "no rotation, no secret shown");
    let now = fake.hook(hooks, hook);
    assert_eq!(now["events"], json!(["push", "release"]), "{now}");
    assert_eq!(now["active"], true);
    assert_eq!(
        (now["config"]["url"].as_str(), now["config"]["secret"].as_str()),
        (Some(url.as_str()), Some(secret.as_str()))
    );
    let patch = fake.calls().into_iter().rfind(|c| c.what == format!("PATCH {hook}")).unwrap();
    assert_eq!(patch.credential, "token gh-token-1");

    // Nothing about the events changes: GitHub is not asked.
    let before = fake.updates(hook);
    c.update_webhook().project_name("gh").build_type(WebhookBuildType::Build).send().await.unwrap();
    assert_eq!(fake.updates(hook), before);

    // GitHub failing: OAuthProviderException, the stored groups stay.
    fake.fail.store(true, Ordering::SeqCst);
    let e = c.update_webhook().project_name("gh").filter_groups(push.clone()).send().await.unwrap_err();
    assert_eq!(e.code(), Some("OAuthProviderException"), "{e:?}");
    assert!(e.message().unwrap_or_default().contains("Server Error"), "{e:?}");
    fake.fail.store(false, Ordering::SeqCst);
    let p = c.batch_get_projects().names("gh").send().await.unwrap().projects.unwrap().remove(0);
    assert_eq!(p.webhook.unwrap().filter_groups.unwrap().len(), 2, "nothing stored");

    // RELEASED removed: `release` is gone from the hook.
    c.update_webhook().project_name("gh").filter_groups(push.clone()).send().await.unwrap();
    assert_eq!(fake.hook(hooks, hook)["events"], json!(["push"]));

    // A rotation with new events: one update, the new secret and the new events.
    let before = fake.updates(hook);
    let rotated = c
        .update_webhook()
        .project_name("gh")
        .filter_groups(vec![filter(WebhookFilterType::Event, "PUSH, PULL_REQUEST_CREATED")])
        .rotate_secret(true)
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap();
    assert_eq!(fake.updates(hook), before + 1);
    let now = fake.hook(hooks, hook);
    assert_eq!(now["events"], json!(["push", "pull_request"]));
    assert_eq!(now["config"]["secret"].as_str(), rotated.secret.as_deref());
    assert_ne!(rotated.secret.as_deref(), Some(secret.as_str()));
}

/// The same for a GitLab project hook: `releases_events` follows RELEASED (which CodeBuild's GitLab page lists:
/// Release Hook `create` / `update`), each flag is sent on or off, the hook keeps its token; and a real Release
/// Hook delivery builds while RELEASED is in a group and is filtered once it is not.
#[tokio::test]
async fn update_webhook_keeps_the_gitlab_hook_events_in_step() {
    let fake = Fake::default();
    let base = fake.start().await;
    let s = server(&base).await;
    let c = client(&s);
    create_repo_project(&c, "gl", SourceType::Gitlab, &location("acme/app"), Some("glpat-7")).await;
    let (hooks, hook) = ("/gl/api/v4/projects/acme%2Fapp/hooks", "/gl/api/v4/projects/acme%2Fapp/hooks/77");
    fake.route(&format!("POST {hooks}"), 201, json!({"id": 77}));
    fake.route(&format!("PUT {hook}"), 200, json!({"id": 77}));
    let push = vec![filter(WebhookFilterType::Event, "PUSH")];
    let flags = |h: &Value| {
        ["push_events", "tag_push_events", "merge_requests_events", "releases_events"].map(|f| h[f].as_bool())
    };

    let w = c.create_webhook().project_name("gl").filter_groups(push.clone()).send().await.unwrap().webhook.unwrap();
    let (url, secret) = (w.payload_url.unwrap(), w.secret.unwrap());
    let created = fake.hook(hooks, hook);
    assert_eq!(flags(&created), [Some(true), Some(true), Some(false), Some(false)], "{created}");
    assert_eq!(created["token"].as_str(), Some(secret.as_str()));

    c.update_webhook()
        .project_name("gl")
        .filter_groups(push.clone())
        .filter_groups(vec![filter(WebhookFilterType::Event, "RELEASED")])
        .send()
        .await
        .unwrap();
    let now = fake.hook(hooks, hook);
    assert_eq!(flags(&now), [Some(true), Some(true), Some(false), Some(true)], "{now}");
    assert_eq!((now["url"].as_str(), now["token"].as_str()), (Some(url.as_str()), Some(secret.as_str())));
    let put = fake.calls().into_iter().rfind(|c| c.what == format!("PUT {hook}")).unwrap();
    assert_eq!(put.credential, "glpat-7");

    // GitLab's Release Hook (go-gitlab's example) builds now.
    let release = fixture("gitlab/release.json");
    let gitlab = |uuid: &str| {
        vec![
            ("x-gitlab-event", "Release Hook".to_owned()),
            ("x-gitlab-event-uuid", uuid.to_owned()),
            ("x-gitlab-token", secret.clone()),
        ]
    };
    let (status, out) = post(&url, &release, &gitlab("rel-1")).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("triggered")), "{out}");

    // RELEASED removed: `releases_events` off, and the same release is filtered.
    c.update_webhook().project_name("gl").filter_groups(push.clone()).send().await.unwrap();
    let now = fake.hook(hooks, hook);
    assert_eq!(flags(&now), [Some(true), Some(true), Some(false), Some(false)], "{now}");
    let (status, out) = post(&url, &release, &gitlab("rel-2")).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("filtered")), "{out}");

    // GitLab refusing: OAuthProviderException, nothing stored.
    fake.fail.store(true, Ordering::SeqCst);
    let e = c
        .update_webhook()
        .project_name("gl")
        .filter_groups(vec![filter(WebhookFilterType::Event, "PUSH, PULL_REQUEST_MERGED")])
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("OAuthProviderException"), "{e:?}");
    fake.fail.store(false, Ordering::SeqCst);
    let p = c.batch_get_projects().names("gl").send().await.unwrap().projects.unwrap().remove(0);
    let groups = p.webhook.unwrap().filter_groups.unwrap();
    let patterns: Vec<Vec<&str>> = groups.iter().map(|g| g.iter().map(|f| f.pattern.as_str()).collect()).collect();
    assert_eq!(patterns, [["PUSH"]], "nothing stored");
}

/// Bitbucket Cloud has no release events (CodeBuild refuses RELEASED for Bitbucket, so it is refused here too,
/// asking nothing of Bitbucket); the hook's `events` follow the pull request events instead: PULL_REQUEST_MERGED
/// added subscribes it to `pullrequest:fulfilled`, removed unsubscribes it, and the kept secret is sent again.
#[tokio::test]
async fn update_webhook_keeps_the_bitbucket_hook_events_in_step() {
    let fake = Fake::default();
    let base = fake.start().await;
    let s = server(&base).await;
    let c = client(&s);
    create_repo_project(&c, "bb", SourceType::Bitbucket, &location("acme/app"), Some("bb-token")).await;
    let (hooks, hook) = ("/bb/2.0/repositories/acme/app/hooks", "/bb/2.0/repositories/acme/app/hooks/%7Bb-1%7D");
    fake.route(&format!("POST {hooks}"), 201, json!({"uuid": "{b-1}"}));
    fake.route(&format!("PUT {hook}"), 200, json!({"uuid": "{b-1}"}));
    let push = vec![filter(WebhookFilterType::Event, "PUSH")];

    c.create_webhook().project_name("bb").filter_groups(push.clone()).send().await.unwrap();
    let created = fake.hook(hooks, hook);
    assert_eq!(created["events"], json!(["repo:push"]));
    let kept = created["secret"].as_str().unwrap().to_owned();

    let before = fake.calls().len();
    let e = c
        .update_webhook()
        .project_name("bb")
        .filter_groups(vec![filter(WebhookFilterType::Event, "RELEASED")])
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidInputException"), "{e:?}");
    assert!(e.message().unwrap_or_default().contains("RELEASED is not supported for source type BITBUCKET"), "{e:?}");
    assert_eq!(fake.calls().len(), before);

    c.update_webhook()
        .project_name("bb")
        .filter_groups(push.clone())
        .filter_groups(vec![
            filter(WebhookFilterType::Event, "PULL_REQUEST_MERGED"),
            filter(WebhookFilterType::BaseRef, "^refs/heads/main$"),
        ])
        .send()
        .await
        .unwrap();
    let now = fake.hook(hooks, hook);
    assert_eq!(now["events"], json!(["repo:push", "pullrequest:fulfilled"]), "{now}");
    assert_eq!(now["secret"].as_str(), Some(kept.as_str()));
    let put = fake.calls().into_iter().rfind(|c| c.what == format!("PUT {hook}")).unwrap();
    assert_eq!(put.credential, "Bearer bb-token");

    c.update_webhook().project_name("bb").filter_groups(push).send().await.unwrap();
    assert_eq!(fake.hook(hooks, hook)["events"], json!(["repo:push"]));
}
