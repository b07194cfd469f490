//! Pipeline webhooks (seeds 000, 001) end to end: the official SDK for PutWebhook and friends, and real
//! GitHub payloads (from @octokit/webhooks-examples, see pipehook-inbound's fixtures) signed as GitHub signs
//! them and posted to the trigger URL.

use aws_sdk_codepipeline::error::ProvideErrorMetadata;
use aws_sdk_codepipeline::types::{
    ActionCategory, ActionDeclaration, ActionOwner, ActionTypeId, ArtifactStore, ArtifactStoreType, ExecutionMode,
    PipelineDeclaration, PipelineExecutionStatus, StageDeclaration, Tag, WebhookAuthConfiguration,
    WebhookAuthenticationType, WebhookDefinition, WebhookFilterRule,
};
use aws_sdk_codepipeline::Client;
use hmac::{Hmac, Mac};
use serde_json::Value;

use crate::support::{codepipeline, wait_done, TestServer, ACCESS_KEY_ID, SECRET_ACCESS_KEY, TOKEN};

pub(crate) const SECRET: &str = "it's-a-secret-to-everybody";

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../pipehook-inbound/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub(crate) fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub(crate) fn client(s: &TestServer) -> Client {
    codepipeline(&s.url, ACCESS_KEY_ID, SECRET_ACCESS_KEY, "us-east-1")
}

pub(crate) async fn create_pipeline(c: &Client, name: &str, branch: &str, command: &str) {
    let source = ActionDeclaration::builder()
        .name("Source")
        .action_type_id(
            ActionTypeId::builder()
                .category(ActionCategory::Source)
                .owner(ActionOwner::ThirdParty)
                .provider("GitHub")
                .version("1")
                .build()
                .unwrap(),
        )
        .configuration("Owner", "Codertocat")
        .configuration("Repo", "Hello-World")
        .configuration("Branch", branch)
        .configuration("OAuthToken", "gh-token-123")
        .configuration("PollForSourceChanges", "false")
        .build()
        .unwrap();
    let build = ActionDeclaration::builder()
        .name("Build")
        .action_type_id(
            ActionTypeId::builder()
                .category(ActionCategory::Build)
                .owner(ActionOwner::Custom)
                .provider("Command")
                .version("1")
                .build()
                .unwrap(),
        )
        .configuration("Command", command)
        .build()
        .unwrap();
    let p = PipelineDeclaration::builder()
        .name(name)
        .role_arn("arn:aws:iam::123456789012:role/pipehook")
        .artifact_store(ArtifactStore::builder().r#type(ArtifactStoreType::S3).location("bucket").build().unwrap())
        .stages(StageDeclaration::builder().name("Source").actions(source).build().unwrap())
        .stages(StageDeclaration::builder().name("Build").actions(build).build().unwrap())
        .execution_mode(ExecutionMode::Parallel)
        .build()
        .unwrap();
    c.create_pipeline().pipeline(p).send().await.unwrap();
}

pub(crate) fn definition(
    name: &str,
    pipeline: &str,
    auth: WebhookAuthenticationType,
    config: WebhookAuthConfiguration,
) -> WebhookDefinition {
    WebhookDefinition::builder()
        .name(name)
        .target_pipeline(pipeline)
        .target_action("Source")
        .filters(WebhookFilterRule::builder().json_path("$.ref").match_equals("refs/heads/{Branch}").build().unwrap())
        .authentication(auth)
        .authentication_configuration(config)
        .build()
        .unwrap()
}

pub(crate) fn hmac_config(secret: &str) -> WebhookAuthConfiguration {
    WebhookAuthConfiguration::builder().secret_token(secret).build()
}

pub(crate) async fn post(url: &str, body: &[u8], headers: &[(&str, String)]) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(url).header("content-type", "application/json").body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub(crate) fn github(event: &str, delivery: &str, signature: Option<String>) -> Vec<(&'static str, String)> {
    let mut h = vec![("x-github-event", event.to_owned()), ("x-github-delivery", delivery.to_owned())];
    if let Some(s) = signature {
        h.push(("x-hub-signature-256", s));
    }
    h
}

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<none>").to_owned()
}

#[tokio::test]
async fn put_list_delete_and_the_url_lifecycle() {
    let s = TestServer::start().await;
    let c = client(&s);
    create_pipeline(&c, "app", "master", "true").await;
    let put = c
        .put_webhook()
        .webhook(definition("gh", "app", WebhookAuthenticationType::GithubHmac, hmac_config(SECRET)))
        .tags(Tag::builder().key("team").value("ci").build().unwrap())
        .send()
        .await
        .unwrap();
    let w = put.webhook.unwrap();
    let url = w.url.clone();
    assert!(url.starts_with(&format!("{}/trigger?t=", s.url)) && url.ends_with("&v=1"), "{url}");
    let token = url.split("t=").nth(1).unwrap().split('&').next().unwrap();
    // Opaque: random base64url, not built from the webhook's and pipeline's names (a random token holds "gh" or
    // "app" by chance about once in 200; both at once, practically never).
    assert!(token.len() >= 22, "{token}");
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{token}");
    assert!(!(token.contains("gh") && token.contains("app")), "the token is opaque: {token}");
    assert_eq!(w.arn.as_deref(), Some("arn:aws:codepipeline:us-east-1:123456789012:webhook:gh"));
    let shown = w.definition.unwrap().authentication_configuration.unwrap();
    assert_ne!(shown.secret_token.as_deref(), Some(SECRET), "the secret is never returned");
    assert_eq!(w.tags.unwrap().len(), 1);

    // A replace keeps the URL.
    let again = c
        .put_webhook()
        .webhook(definition(
            "gh",
            "app",
            WebhookAuthenticationType::Unauthenticated,
            WebhookAuthConfiguration::builder().build(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(again.webhook.unwrap().url, url);

    for i in 0..3 {
        c.put_webhook()
            .webhook(definition(
                &format!("w{i}"),
                "app",
                WebhookAuthenticationType::Unauthenticated,
                WebhookAuthConfiguration::builder().build(),
            ))
            .send()
            .await
            .unwrap();
    }
    let page = c.list_webhooks().max_results(2).send().await.unwrap();
    assert_eq!(page.webhooks().len(), 2);
    let rest = c.list_webhooks().max_results(2).next_token(page.next_token().unwrap()).send().await.unwrap();
    assert_eq!(rest.webhooks().len(), 2);
    assert!(rest.next_token().is_none());

    let arn = "arn:aws:codepipeline:us-east-1:123456789012:webhook:gh";
    c.tag_resource()
        .resource_arn(arn)
        .tags(Tag::builder().key("env").value("prod").build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(c.list_tags_for_resource().resource_arn(arn).send().await.unwrap().tags().len(), 2);

    // Delete: the URL stops at once; deleting again succeeds; re-creating gives a new URL.
    c.delete_webhook().name("gh").send().await.unwrap();
    assert_eq!(post(&url, b"{}", &[]).await.0, 404);
    c.delete_webhook().name("gh").send().await.unwrap();
    let recreated = c
        .put_webhook()
        .webhook(definition(
            "gh",
            "app",
            WebhookAuthenticationType::Unauthenticated,
            WebhookAuthConfiguration::builder().build(),
        ))
        .send()
        .await
        .unwrap();
    assert_ne!(recreated.webhook.unwrap().url, url);
    let (status, mut body) = post(&format!("{}/trigger?t=nope&v=1", s.url), b"{}", &[]).await;
    assert!(body.as_object_mut().unwrap().remove("requestId").is_some_and(|id| id.is_string()), "{body}");
    assert_eq!((status, body), (404, serde_json::json!({"message": "Not Found"})));

    // Deleting the pipeline deletes its webhooks.
    c.delete_pipeline().name("app").send().await.unwrap();
    assert!(c.list_webhooks().send().await.unwrap().webhooks().is_empty());
    s.stop().await.unwrap();
}

#[tokio::test]
async fn put_webhook_errors_follow_the_seed() {
    let s = TestServer::start().await;
    let c = client(&s);
    create_pipeline(&c, "app", "master", "true").await;
    let unauth = || WebhookAuthConfiguration::builder().build();
    let base = || definition("w", "app", WebhookAuthenticationType::Unauthenticated, unauth());
    let with = |f: &dyn Fn(&mut WebhookDefinition)| {
        let mut d = base();
        f(&mut d);
        d
    };
    let cases: Vec<(WebhookDefinition, &str)> = vec![
        (with(&|d| d.name = "bad name".into()), "ValidationException"),
        (with(&|d| d.target_pipeline = "nope".into()), "PipelineNotFoundException"),
        (with(&|d| d.target_action = "Build".into()), "ValidationException"),
        (with(&|d| d.filters[0].json_path = "$.[".into()), "InvalidWebhookFilterPatternException"),
        (with(&|d| d.filters[0].match_equals = Some("refs/heads/{Nope}".into())), "ValidationException"),
        (with(&|d| d.filters = vec![d.filters[0].clone(); 6]), "ValidationException"),
        (
            with(&|d| {
                d.authentication = WebhookAuthenticationType::GithubHmac;
                d.authentication_configuration =
                    Some(WebhookAuthConfiguration::builder().secret_token("s").allowed_ip_range("10.0.0.0/8").build());
            }),
            "InvalidWebhookAuthenticationParametersException",
        ),
        (
            with(&|d| {
                d.authentication = WebhookAuthenticationType::GithubHmac;
                d.authentication_configuration = Some(unauth());
            }),
            "InvalidWebhookAuthenticationParametersException",
        ),
        (
            with(&|d| {
                d.authentication = WebhookAuthenticationType::Ip;
                d.authentication_configuration =
                    Some(WebhookAuthConfiguration::builder().allowed_ip_range("10.0.0.300/8").build());
            }),
            "InvalidWebhookAuthenticationParametersException",
        ),
        (
            with(&|d| {
                d.authentication_configuration = Some(WebhookAuthConfiguration::builder().secret_token("x").build())
            }),
            "InvalidWebhookAuthenticationParametersException",
        ),
    ];
    for (d, want) in cases {
        let e = c.put_webhook().webhook(d.clone()).send().await.unwrap_err();
        assert_eq!(code(&e), want, "{d:?}: {:?}", e.message());
    }
    assert!(c.list_webhooks().send().await.unwrap().webhooks().is_empty(), "nothing partial is stored");
    let e = c
        .put_webhook()
        .webhook(base())
        .tags(Tag::builder().key("aws:x").value("v").build().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidTagsException");
    let tags: Vec<Tag> = (0..51).map(|i| Tag::builder().key(format!("k{i}")).value("v").build().unwrap()).collect();
    let e = c.put_webhook().webhook(base()).set_tags(Some(tags)).send().await.unwrap_err();
    assert_eq!(code(&e), "TooManyTagsException");
    let e = c.register_webhook_with_third_party().webhook_name("missing").send().await.unwrap_err();
    assert_eq!(code(&e), "WebhookNotFoundException");

    // Two concurrent puts of one new name: one wins, the other gets ConcurrentModificationException, and the
    // stored record is whole.
    let mut outcomes = Vec::new();
    for round in 0..5 {
        let name = format!("race{round}");
        let d1 = with(&|d| d.name = name.clone());
        let d2 = with(&|d| {
            d.name = name.clone();
            d.filters.clear();
        });
        let (a, b) = tokio::join!(c.put_webhook().webhook(d1).send(), c.put_webhook().webhook(d2).send());
        for r in [&a, &b] {
            if let Err(e) = r {
                assert_eq!(code(e), "ConcurrentModificationException");
            }
        }
        assert!(a.is_ok() || b.is_ok());
        outcomes.push((a.is_ok(), b.is_ok()));
        let listed = c.list_webhooks().send().await.unwrap();
        let w = listed.webhooks().iter().find(|w| w.definition().unwrap().name() == name).unwrap();
        let filters = w.definition().unwrap().filters().len();
        assert!(filters == 0 || filters == 1);
    }
    s.stop().await.unwrap();
}

#[tokio::test]
async fn signed_github_deliveries_trigger_filter_and_deduplicate() {
    let s = TestServer::start().await;
    let c = client(&s);
    // Commands run sandboxed and write only inside their workspace: what the command saw is read from its log.
    let cmd = "echo \"facts: $PIPEHOOK_COMMIT_ID $PIPEHOOK_BRANCH $PIPEHOOK_REPOSITORY $PIPEHOOK_TRIGGER\"";
    create_pipeline(&c, "app", "master", cmd).await;
    create_pipeline(&c, "other", "develop", "true").await;
    let url = c
        .put_webhook()
        .webhook(definition("gh", "app", WebhookAuthenticationType::GithubHmac, hmac_config(SECRET)))
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap()
        .url;
    let url_dev = c
        .put_webhook()
        .webhook(definition("dev", "other", WebhookAuthenticationType::GithubHmac, hmac_config(SECRET)))
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap()
        .url;
    let push = fixture("github/push-branch.json");

    // Triggered: a real push to master, signed.
    let (status, body) = post(&url, &push, &github("push", "d-1", Some(sign(SECRET, &push)))).await;
    assert_eq!((status, body["result"].as_str()), (200, Some("triggered")), "{body}");
    let id = body["pipelineExecutionId"].as_str().unwrap().to_owned();
    let e = wait_done(&c, "app", &id).await;
    assert_eq!(e.status, Some(PipelineExecutionStatus::Succeeded));
    let trigger = e.trigger.clone().unwrap();
    assert_eq!(trigger.trigger_type.unwrap().as_str(), "Webhook");
    assert_eq!(trigger.trigger_detail.as_deref(), Some("arn:aws:codepipeline:us-east-1:123456789012:webhook:gh"));
    let (status, logs) = s.get(&format!("/api/orgs/default/pipelines/app/executions/{id}/logs"), Some(TOKEN)).await;
    assert_eq!(status, 200, "{logs}");
    let log = logs["actions"].as_array().unwrap().iter().filter_map(|a| a["log"].as_str()).collect::<String>();
    assert!(
        log.contains("facts: 6113728f27ae82c7b1a177c8d03f9e96e0adf246 master Codertocat/Hello-World Webhook\n"),
        "{log}"
    );
    let revisions = e.artifact_revisions();
    assert_eq!(revisions[0].revision_id(), Some("6113728f27ae82c7b1a177c8d03f9e96e0adf246"));
    let listed = c.list_webhooks().send().await.unwrap();
    assert!(listed
        .webhooks()
        .iter()
        .find(|w| w.definition().unwrap().name() == "gh")
        .unwrap()
        .last_triggered()
        .is_some());

    // Duplicate: the same delivery id again starts nothing and answers with the first verdict.
    let (status, body) = post(&url, &push, &github("push", "d-1", Some(sign(SECRET, &push)))).await;
    assert_eq!(
        (status, body["result"].as_str(), body["firstVerdict"].as_str()),
        (200, Some("duplicate"), Some("triggered"))
    );
    assert_eq!(body["pipelineExecutionId"].as_str(), Some(id.as_str()));
    assert_eq!(
        c.list_pipeline_executions().pipeline_name("app").send().await.unwrap().pipeline_execution_summaries().len(),
        1
    );

    // Filtered: the same push against a webhook that wants develop.
    let (status, body) = post(&url_dev, &push, &github("push", "d-2", Some(sign(SECRET, &push)))).await;
    assert_eq!((status, body["result"].as_str()), (200, Some("filtered")));
    let request = body["requestId"].as_str().unwrap().to_owned();
    let (status, logged) = s.get(&format!("/api/orgs/default/inbound/{request}"), Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(logged["verdict"], "filtered");
    assert_eq!(logged["detail"]["failedRule"]["wanted"], "refs/heads/develop");
    assert_eq!(logged["detail"]["failedRule"]["found"][0], "\"refs/heads/master\"");
    assert!(c
        .list_pipeline_executions()
        .pipeline_name("other")
        .send()
        .await
        .unwrap()
        .pipeline_execution_summaries()
        .is_empty());

    // Unauthenticated: wrong secret, no signature, tampered body. 401 and nothing that helps an attacker.
    for (headers, body) in [
        (github("push", "d-3", Some(sign("wrong", &push))), push.clone()),
        (github("push", "d-4", None), push.clone()),
        (github("push", "d-5", Some(sign(SECRET, &push))), [&push[..], b" "].concat()),
    ] {
        let (status, answer) = post(&url, &body, &headers).await;
        assert_eq!((status, answer["result"].as_str()), (401, Some("unauthenticated")));
        assert_eq!(answer.as_object().unwrap().len(), 2, "only result and requestId: {answer}");
    }
    let (_, log) = s.get("/api/orgs/default/inbound?verdict=unauthenticated", Some(TOKEN)).await;
    assert_eq!(log["requests"].as_array().unwrap().len(), 3);
    assert!(log["requests"][0]["detail"]["reason"].as_str().is_some());

    // A ping starts nothing; a body that is not JSON is rejected (the webhook has filters).
    let ping = fixture("github/ping.json");
    let (status, body) = post(&url, &ping, &github("ping", "d-6", Some(sign(SECRET, &ping)))).await;
    assert_eq!((status, body["result"].as_str()), (200, Some("filtered")));
    let junk = b"not json".to_vec();
    let (status, body) = post(&url, &junk, &github("push", "d-7", Some(sign(SECRET, &junk)))).await;
    assert_eq!((status, body["result"].as_str()), (400, Some("rejected")));

    // Explain: rule by rule, nothing started.
    let res = reqwest::Client::new()
        .post(format!("{}/api/orgs/default/webhooks/dev/explain?event=push", s.url))
        .header("authorization", format!("token {TOKEN}"))
        .body(push.clone())
        .send()
        .await
        .unwrap();
    let explained: Value = res.json().await.unwrap();
    assert_eq!(explained["verdict"], "would be filtered");
    assert_eq!(explained["rules"][0]["wanted"], "refs/heads/develop");
    assert_eq!(
        explained["event"]["commit_id"].as_str().or(explained["event"]["commitId"].as_str()),
        Some("6113728f27ae82c7b1a177c8d03f9e96e0adf246")
    );

    // Replay of the filtered request after the webhook is pointed at master: it triggers now.
    c.put_webhook()
        .webhook(definition("dev", "app", WebhookAuthenticationType::GithubHmac, hmac_config(SECRET)))
        .send()
        .await
        .unwrap();
    let res = reqwest::Client::new()
        .post(format!("{}/api/orgs/default/inbound/{request}/replay", s.url))
        .header("authorization", format!("token {TOKEN}"))
        .send()
        .await
        .unwrap();
    let replayed: Value = res.json().await.unwrap();
    assert_eq!(replayed["verdict"], "triggered", "{replayed}");
    // The source action's OAuthToken never shows in its action executions.
    let details =
        c.list_action_executions().pipeline_name("app").send().await.unwrap().action_execution_details.unwrap();
    let source = details.iter().find(|a| a.action_name.as_deref() == Some("Source")).expect("a source action ran");
    let input = source.input.clone().unwrap();
    for config in [input.configuration.unwrap(), input.resolved_configuration.unwrap()] {
        assert_eq!(config.get("OAuthToken").map(String::as_str), Some("****"), "{config:?}");
    }
    s.stop().await.unwrap();
}

#[tokio::test]
async fn ip_authentication_body_cap_and_secret_rotation() {
    let s = TestServer::builder().env("PIPEHOOK_TRIGGER_MAX_BODY_BYTES", "20000").start().await.unwrap();
    let c = client(&s);
    create_pipeline(&c, "app", "master", "true").await;
    let ip = |range: &str| WebhookAuthConfiguration::builder().allowed_ip_range(range).build();
    let inside = c
        .put_webhook()
        .webhook(definition("in", "app", WebhookAuthenticationType::Ip, ip("127.0.0.0/8")))
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap()
        .url;
    let outside = c
        .put_webhook()
        .webhook(definition("out", "app", WebhookAuthenticationType::Ip, ip("2001:db8::/32")))
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap()
        .url;
    let push = fixture("github/push-branch.json");
    assert_eq!(post(&inside, &push, &github("push", "i-1", None)).await.1["result"], "triggered");
    assert_eq!(post(&outside, &push, &github("push", "i-2", None)).await.0, 401);
    // X-Forwarded-For is not believed unless the server trusts a proxy.
    let mut spoof = github("push", "i-3", None);
    spoof.push(("x-forwarded-for", "2001:db8::1".into()));
    assert_eq!(post(&outside, &push, &spoof).await.0, 401);

    let big = vec![b' '; 30_000];
    assert_eq!(post(&inside, &big, &github("push", "i-4", None)).await.0, 413);

    // Rotation: after a put with a new secret, the old one keeps working during the overlap.
    let url = c
        .put_webhook()
        .webhook(definition("rot", "app", WebhookAuthenticationType::GithubHmac, hmac_config("old-secret")))
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap()
        .url;
    c.put_webhook()
        .webhook(definition("rot", "app", WebhookAuthenticationType::GithubHmac, hmac_config("new-secret")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        post(&url, &push, &github("push", "r-1", Some(sign("old-secret", &push)))).await.1["result"],
        "triggered"
    );
    assert_eq!(
        post(&url, &push, &github("push", "r-2", Some(sign("new-secret", &push)))).await.1["result"],
        "triggered"
    );
    assert_eq!(post(&url, &push, &github("push", "r-3", Some(sign("other", &push)))).await.0, 401);
    s.stop().await.unwrap();

    // With no overlap configured, the old secret stops at once.
    let s = TestServer::builder().env("PIPEHOOK_SECRET_ROTATION_OVERLAP", "0").start().await.unwrap();
    let c = client(&s);
    create_pipeline(&c, "app", "master", "true").await;
    let url = c
        .put_webhook()
        .webhook(definition("rot", "app", WebhookAuthenticationType::GithubHmac, hmac_config("old-secret")))
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap()
        .url;
    c.put_webhook()
        .webhook(definition("rot", "app", WebhookAuthenticationType::GithubHmac, hmac_config("new-secret")))
        .send()
        .await
        .unwrap();
    assert_eq!(post(&url, &push, &github("push", "r-4", Some(sign("old-secret", &push)))).await.0, 401);
    s.stop().await.unwrap();
}

/// One repository hook held by [`FakeGithub`].
#[derive(Debug, Clone)]
pub(crate) struct FakeHook {
    pub repo: String,
    pub id: u64,
    pub url: String,
    pub secret: Option<String>,
    pub events: Value,
    pub active: bool,
}

/// A local fake of GitHub's repository-hooks API that keeps its hooks (list with `per_page`/`page`, create,
/// update, delete: a hook that is not there is 404, as GitHub answers) and records every call as
/// `METHOD path` with its credential and body. `fail_creates` makes creation fail as GitHub does (422).
#[derive(Clone, Default)]
pub(crate) struct FakeGithub {
    hooks: std::sync::Arc<std::sync::Mutex<Vec<FakeHook>>>,
    calls: std::sync::Arc<std::sync::Mutex<Vec<(String, String, Value)>>>,
    next_id: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub fail_creates: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FakeGithub {
    /// Serves the fake on a local port; returns its base URL.
    pub async fn start(&self) -> String {
        use axum::extract::{Path, Query};
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        use axum::routing::get;
        use std::sync::atomic::Ordering;

        self.next_id.store(4242, Ordering::SeqCst);
        let view = |h: &FakeHook| {
            let mut config = serde_json::json!({"url": h.url, "content_type": "json", "insecure_ssl": "0"});
            if h.secret.is_some() {
                config["secret"] = "********".into();
            }
            serde_json::json!({"id": h.id, "name": "web", "active": h.active, "events": h.events, "config": config})
        };
        let record = |me: &FakeGithub, what: String, headers: &axum::http::HeaderMap, body: Value| {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            me.calls.lock().unwrap().push((what, auth, body));
        };
        let (a, b, c, d) = (self.clone(), self.clone(), self.clone(), self.clone());
        let app = axum::Router::new()
            .route(
                "/repos/{owner}/{repo}/hooks",
                get(
                    move |h: axum::http::HeaderMap,
                          Path((o, r)): Path<(String, String)>,
                          Query(q): Query<std::collections::HashMap<String, usize>>| {
                        let me = a.clone();
                        async move {
                            record(&me, format!("GET {o}/{r}"), &h, Value::Null);
                            let per_page = q.get("per_page").copied().unwrap_or(30);
                            let page = q.get("page").copied().unwrap_or(1);
                            let hooks = me.hooks.lock().unwrap();
                            let listed: Vec<Value> = hooks
                                .iter()
                                .filter(|x| x.repo == format!("{o}/{r}"))
                                .skip((page - 1) * per_page)
                                .take(per_page)
                                .map(view)
                                .collect();
                            axum::Json(Value::from(listed))
                        }
                    },
                )
                .post(
                    move |h: axum::http::HeaderMap, Path((o, r)): Path<(String, String)>, body: axum::Json<Value>| {
                        let me = b.clone();
                        async move {
                            record(&me, format!("POST {o}/{r}"), &h, body.0.clone());
                            if me.fail_creates.load(Ordering::SeqCst) {
                                let out = serde_json::json!({"message": "Validation Failed"});
                                return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(out)).into_response();
                            }
                            let hook = FakeHook {
                                repo: format!("{o}/{r}"),
                                id: me.next_id.fetch_add(1, Ordering::SeqCst),
                                url: body["config"]["url"].as_str().unwrap_or_default().to_owned(),
                                secret: body["config"]["secret"].as_str().map(str::to_owned),
                                events: body["events"].clone(),
                                active: body["active"].as_bool().unwrap_or(true),
                            };
                            let out = view(&hook);
                            me.hooks.lock().unwrap().push(hook);
                            (StatusCode::CREATED, axum::Json(out)).into_response()
                        }
                    },
                ),
            )
            .route(
                "/repos/{owner}/{repo}/hooks/{id}",
                axum::routing::patch(
                    move |h: axum::http::HeaderMap,
                          Path((o, r, id)): Path<(String, String, u64)>,
                          body: axum::Json<Value>| {
                        let me = c.clone();
                        async move {
                            record(&me, format!("PATCH {o}/{r}/{id}"), &h, body.0.clone());
                            let mut hooks = me.hooks.lock().unwrap();
                            let Some(hook) = hooks.iter_mut().find(|x| x.repo == format!("{o}/{r}") && x.id == id)
                            else {
                                let out = serde_json::json!({"message": "Not Found"});
                                return (StatusCode::NOT_FOUND, axum::Json(out)).into_response();
                            };
                            if let Some(config) = body.get("config") {
                                // GitHub replaces the config: a secret left out is removed.
                                hook.url = config["url"].as_str().unwrap_or_default().to_owned();
                                hook.secret = config["secret"].as_str().map(str::to_owned);
                            }
                            if let Some(events) = body.get("events") {
                                hook.events = events.clone();
                            }
                            if let Some(active) = body["active"].as_bool() {
                                hook.active = active;
                            }
                            axum::Json(view(hook)).into_response()
                        }
                    },
                )
                .delete(
                    move |h: axum::http::HeaderMap, Path((o, r, id)): Path<(String, String, u64)>| {
                        let me = d.clone();
                        async move {
                            record(&me, format!("DELETE {o}/{r}/{id}"), &h, Value::Null);
                            let mut hooks = me.hooks.lock().unwrap();
                            let before = hooks.len();
                            hooks.retain(|x| !(x.repo == format!("{o}/{r}") && x.id == id));
                            if hooks.len() < before {
                                StatusCode::NO_CONTENT
                            } else {
                                StatusCode::NOT_FOUND
                            }
                        }
                    },
                ),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// The hooks of `repo` (`owner/name`), oldest first.
    pub fn hooks(&self, repo: &str) -> Vec<FakeHook> {
        self.hooks.lock().unwrap().iter().filter(|h| h.repo == repo).cloned().collect()
    }

    /// A hook someone made by hand at the host; returns its id.
    pub fn add_by_hand(&self, repo: &str, url: &str) -> u64 {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.hooks.lock().unwrap().push(FakeHook {
            repo: repo.into(),
            id,
            url: url.into(),
            secret: None,
            events: serde_json::json!(["push"]),
            active: true,
        });
        id
    }

    /// Deletes a hook by hand at the host, behind pipehook's back.
    pub fn delete_by_hand(&self, id: u64) {
        self.hooks.lock().unwrap().retain(|h| h.id != id);
    }

    /// Changes a hook by hand at the host: other events, deactivated, no secret.
    pub fn tamper(&self, id: u64) {
        for h in self.hooks.lock().unwrap().iter_mut().filter(|h| h.id == id) {
            h.events = serde_json::json!(["issues"]);
            h.active = false;
            h.secret = None;
        }
    }

    /// Every call so far, as `METHOD owner/repo[/id]`, and forgets them.
    pub fn take_calls(&self) -> Vec<(String, String, Value)> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

const REPO: &str = "Codertocat/Hello-World";

#[tokio::test]
async fn register_and_deregister_with_a_github_compatible_api() {
    let fake = FakeGithub::default();
    let base = fake.start().await;
    let s = TestServer::builder().env("PIPEHOOK_GITHUB_API_URL", &base).start().await.unwrap();
    let c = client(&s);
    create_pipeline(&c, "app", "master", "true").await;
    // The OAuthToken is a secret: every read shows `****`, the database holds it encrypted, and an update that
    // sends `****` back keeps it (the registration below still uses it).
    let got = c.get_pipeline().name("app").send().await.unwrap().pipeline.unwrap();
    let config = got.stages[0].actions[0].configuration.clone().unwrap();
    assert_eq!(config.get("OAuthToken").map(String::as_str), Some("****"));
    let (_, native) = s.get("/api/orgs/default/pipelines/app", Some(TOKEN)).await;
    assert_eq!(native["pipeline"]["stages"][0]["actions"][0]["configuration"]["OAuthToken"], "****", "{native}");
    let stored: Vec<u8> = ["pipehook.db", "pipehook.db-wal"]
        .iter()
        .filter_map(|f| std::fs::read(s.data_dir.join(f)).ok())
        .flatten()
        .collect();
    assert!(stored.windows(10).any(|w| w == b"OAuthToken"), "the pipeline is in the files read");
    assert!(!stored.windows(12).any(|w| w == b"gh-token-123"), "the token is stored in plain text");
    c.update_pipeline().pipeline(got).send().await.unwrap();
    let url = c
        .put_webhook()
        .webhook(definition("gh", "app", WebhookAuthenticationType::GithubHmac, hmac_config(SECRET)))
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap()
        .url;
    c.register_webhook_with_third_party().webhook_name("gh").send().await.unwrap();
    let calls = fake.take_calls();
    let what: Vec<&str> = calls.iter().map(|(w, _, _)| w.as_str()).collect();
    assert_eq!(what, [&format!("GET {REPO}"), &format!("POST {REPO}")], "listed, then created");
    for (what, auth, _) in &calls {
        assert_eq!(auth, "token gh-token-123", "{what}");
    }
    let body = &calls[1].2;
    assert_eq!(body["config"]["url"], Value::from(url.clone()));
    assert_eq!(body["config"]["content_type"], "json");
    assert_eq!(body["config"]["secret"], SECRET);
    assert_eq!(body["events"], serde_json::json!(["push"]));
    c.deregister_webhook_with_third_party().webhook_name("gh").send().await.unwrap();
    let calls = fake.take_calls();
    assert_eq!(calls.last().unwrap().0, format!("DELETE {REPO}/4242"));
    assert!(fake.hooks(REPO).is_empty());

    // A failure lands in errorCode / errorMessage and as an error.
    fake.fail_creates.store(true, std::sync::atomic::Ordering::SeqCst);
    let e = c.register_webhook_with_third_party().webhook_name("gh").send().await.unwrap_err();
    assert_eq!(code(&e), "ValidationException");
    let listed = c.list_webhooks().send().await.unwrap();
    let w = &listed.webhooks()[0];
    assert_eq!(w.error_code(), Some("HTTP422"));
    assert!(w.error_message().unwrap().contains("Validation Failed"));
    s.stop().await.unwrap();
}

/// RegisterWebhookWithThirdParty keeps one hook per webhook at the host, whatever happens to it there: called
/// again it updates that hook (events, config, secret) instead of creating a second one; a hook deleted by hand is
/// created again; hooks left delivering to the webhook's URL by earlier registrations are removed. Deregistering,
/// DeleteWebhook and deleting the pipeline (through either API) leave no hook behind. Other hooks are not
/// touched.
#[tokio::test]
async fn registration_keeps_one_hook_per_webhook_at_the_host() {
    let fake = FakeGithub::default();
    let base = fake.start().await;
    let s = TestServer::builder().env("PIPEHOOK_GITHUB_API_URL", &base).start().await.unwrap();
    let c = client(&s);
    let foreign = fake.add_by_hand(REPO, "https://ci.example.com/hook");
    let only_foreign = || fake.hooks(REPO).iter().all(|h| h.id == foreign);
    create_pipeline(&c, "app", "master", "true").await;
    let put = |secret: &'static str| {
        c.put_webhook().webhook(definition("gh", "app", WebhookAuthenticationType::GithubHmac, hmac_config(secret)))
    };
    let url = put(SECRET).send().await.unwrap().webhook.unwrap().url;
    let register = || c.register_webhook_with_third_party().webhook_name("gh").send();
    let mine = || fake.hooks(REPO).into_iter().filter(|h| h.id != foreign).collect::<Vec<_>>();

    register().await.unwrap();
    let first = mine();
    assert_eq!(first.len(), 1, "{first:?}");
    let id = first[0].id;
    assert_eq!((first[0].url.as_str(), first[0].secret.as_deref()), (url.as_str(), Some(SECRET)));

    // Twice, three times: still the one hook, updated in place; nothing is created.
    fake.take_calls();
    register().await.unwrap();
    register().await.unwrap();
    let calls: Vec<String> = fake.take_calls().into_iter().map(|(w, _, _)| w).collect();
    assert!(!calls.iter().any(|w| w.starts_with("POST")), "{calls:?}");
    assert!(calls.contains(&format!("PATCH {REPO}/{id}")), "{calls:?}");
    assert_eq!(mine().iter().map(|h| h.id).collect::<Vec<_>>(), [id]);

    // A new secret (PutWebhook), then register again: the same hook signs with the new secret.
    put("the-new-secret").send().await.unwrap();
    register().await.unwrap();
    let now = mine();
    assert_eq!(now.len(), 1);
    assert_eq!((now[0].id, now[0].secret.as_deref()), (id, Some("the-new-secret")));
    // A hook changed by hand at the host is set back.
    fake.tamper(id);
    register().await.unwrap();
    let now = mine();
    assert_eq!((now.len(), now[0].id), (1, id));
    assert!(now[0].active && now[0].events == serde_json::json!(["push"]) && now[0].secret.is_some(), "{now:?}");

    // A hook deleted by hand at the host is created again, and its new id recorded.
    fake.delete_by_hand(id);
    register().await.unwrap();
    let again = mine();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_ne!(again[0].id, id);
    assert_eq!((again[0].url.as_str(), again[0].secret.as_deref()), (url.as_str(), Some("the-new-secret")));
    fake.take_calls();
    register().await.unwrap();
    assert!(fake.take_calls().iter().any(|(w, _, _)| *w == format!("PATCH {REPO}/{}", again[0].id)));

    // A second hook delivering to the webhook's URL (what registering twice used to leave behind) is removed by
    // the next registration; the recorded one stays.
    let left_over = fake.add_by_hand(REPO, &url);
    register().await.unwrap();
    assert_eq!(mine().iter().map(|h| h.id).collect::<Vec<_>>(), [again[0].id]);
    assert!(fake.hooks(REPO).iter().all(|h| h.id != left_over));

    // Deregister removes the hook, and any other delivering to the URL; then nothing is registered.
    fake.add_by_hand(REPO, &url);
    c.deregister_webhook_with_third_party().webhook_name("gh").send().await.unwrap();
    assert!(only_foreign(), "{:?}", fake.hooks(REPO));
    fake.take_calls();
    c.deregister_webhook_with_third_party().webhook_name("gh").send().await.unwrap();
    assert!(fake.take_calls().is_empty(), "nothing registered: the host is not asked");
    let listed = c.list_webhooks().send().await.unwrap();
    assert_eq!(listed.webhooks()[0].error_code(), None);

    // Register, then DeleteWebhook: the hook goes with the webhook.
    register().await.unwrap();
    assert_eq!(mine().len(), 1);
    c.delete_webhook().name("gh").send().await.unwrap();
    assert!(only_foreign(), "{:?}", fake.hooks(REPO));

    // Register, then DeletePipeline (which deletes its webhooks): the hooks go too.
    put(SECRET).send().await.unwrap();
    c.put_webhook()
        .webhook(definition(
            "gh2",
            "app",
            WebhookAuthenticationType::Unauthenticated,
            WebhookAuthConfiguration::builder().build(),
        ))
        .send()
        .await
        .unwrap();
    register().await.unwrap();
    c.register_webhook_with_third_party().webhook_name("gh2").send().await.unwrap();
    assert_eq!(mine().len(), 2);
    let unauthenticated = mine().into_iter().find(|h| h.secret.is_none());
    assert!(unauthenticated.is_some(), "an UNAUTHENTICATED webhook's hook has no secret: {:?}", mine());
    c.delete_pipeline().name("app").send().await.unwrap();
    assert!(only_foreign(), "{:?}", fake.hooks(REPO));

    // The native API's pipeline delete does the same.
    create_pipeline(&c, "app", "master", "true").await;
    put(SECRET).send().await.unwrap();
    register().await.unwrap();
    assert_eq!(mine().len(), 1);
    let res =
        s.client().delete(format!("{}/api/orgs/default/pipelines/app", s.url)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert!(only_foreign(), "{:?}", fake.hooks(REPO));
    assert!(c.list_webhooks().send().await.unwrap().webhooks().is_empty());
    s.stop().await.unwrap();
}

/// A request missing a member the model marks required is `ValidationException` naming it, in AWS's words, for
/// every CodePipeline operation; JSON that does not parse, or a member of the wrong type, stays
/// `SerializationException`. Raw signed requests: the SDK refuses to send them.
#[tokio::test]
async fn missing_required_members_are_validation_errors() {
    let s = TestServer::start().await;
    let c = client(&s);
    create_pipeline(&c, "app", "master", "true").await;
    let null = |paths: &[&str]| {
        let list: Vec<String> = paths
            .iter()
            .map(|p| format!("Value null at '{p}' failed to satisfy constraint: Member must not be null"))
            .collect();
        let n = paths.len();
        format!("{n} validation error{} detected: {}", if n == 1 { "" } else { "s" }, list.join("; "))
    };
    let webhook = serde_json::json!({
        "name": "w", "targetPipeline": "app", "targetAction": "Source",
        "filters": [{"jsonPath": "$.ref", "matchEquals": "refs/heads/{Branch}"}],
        "authentication": "GITHUB_HMAC", "authenticationConfiguration": {"SecretToken": SECRET}
    });
    let without = |members: &[&str]| {
        let mut w = webhook.clone();
        for m in members {
            w.as_object_mut().unwrap().remove(*m);
        }
        serde_json::json!({ "webhook": w })
    };
    let arn = "arn:aws:codepipeline:us-east-1:123456789012:app";
    let stage = serde_json::json!({"name": "Source", "actions": [{"name": "Source"}]});
    let cases: Vec<(&str, Value, String)> = vec![
        ("PutWebhook", without(&["filters"]), null(&["webhook.filters"])),
        ("PutWebhook", without(&["authenticationConfiguration"]), null(&["webhook.authenticationConfiguration"])),
        (
            "PutWebhook",
            without(&["filters", "authenticationConfiguration"]),
            null(&["webhook.filters", "webhook.authenticationConfiguration"]),
        ),
        ("PutWebhook", without(&["name", "targetPipeline"]), null(&["webhook.name", "webhook.targetPipeline"])),
        (
            "PutWebhook",
            without(&["targetAction", "authentication"]),
            null(&["webhook.targetAction", "webhook.authentication"]),
        ),
        ("PutWebhook", serde_json::json!({}), null(&["webhook"])),
        ("PutWebhook", serde_json::json!({"webhook": null}), null(&["webhook"])),
        (
            "PutWebhook",
            {
                let mut w = without(&[]);
                w["webhook"]["filters"] = serde_json::json!([{"matchEquals": "x"}]);
                w["tags"] = serde_json::json!([{"key": "team"}]);
                w
            },
            null(&["webhook.filters.1.member.jsonPath", "tags.1.member.value"]),
        ),
        ("GetPipeline", serde_json::json!({}), null(&["name"])),
        ("DeletePipeline", serde_json::json!({}), null(&["name"])),
        ("GetPipelineState", serde_json::json!({}), null(&["name"])),
        ("StartPipelineExecution", serde_json::json!({}), null(&["name"])),
        ("StopPipelineExecution", serde_json::json!({"pipelineName": "app"}), null(&["pipelineExecutionId"])),
        ("GetPipelineExecution", serde_json::json!({}), null(&["pipelineName", "pipelineExecutionId"])),
        ("ListPipelineExecutions", serde_json::json!({}), null(&["pipelineName"])),
        ("ListActionExecutions", serde_json::json!({}), null(&["pipelineName"])),
        ("TagResource", serde_json::json!({"resourceArn": arn}), null(&["tags"])),
        (
            "TagResource",
            serde_json::json!({"resourceArn": arn, "tags": [{"value": "v"}]}),
            null(&["tags.1.member.key"]),
        ),
        ("UntagResource", serde_json::json!({"tagKeys": ["k"]}), null(&["resourceArn"])),
        ("ListTagsForResource", serde_json::json!({}), null(&["resourceArn"])),
        ("DeleteWebhook", serde_json::json!({}), null(&["name"])),
        ("UpdatePipeline", serde_json::json!({}), null(&["pipeline"])),
        ("CreatePipeline", serde_json::json!({"pipeline": {"name": "p", "stages": []}}), null(&["pipeline.roleArn"])),
        (
            "CreatePipeline",
            serde_json::json!({"pipeline": {"name": "p", "roleArn": "arn:aws:iam::123456789012:role/r", "stages": [stage]}}),
            null(&["pipeline.stages.1.member.actions.1.member.actionTypeId"]),
        ),
    ];
    for (op, body, message) in cases {
        let target = format!("CodePipeline_20150709.{op}");
        let (status, json) = crate::support::signed_post(&s.url, &target, body.to_string().into_bytes()).await;
        assert_eq!((status, json["__type"].as_str()), (400, Some("ValidationException")), "{op} {body}: {json}");
        assert_eq!(json["message"].as_str(), Some(message.as_str()), "{op} {body}");
    }
    // Wrong types and broken JSON stay SerializationException, also beside a missing member.
    let serialization: Vec<(&str, Vec<u8>)> = vec![
        ("PutWebhook", b"{\"webhook\": ".to_vec()),
        ("PutWebhook", {
            let mut w = without(&["authenticationConfiguration"]);
            w["webhook"]["filters"] = "$.ref".into();
            w.to_string().into_bytes()
        }),
        ("PutWebhook", {
            let mut w = without(&["filters"]);
            w["webhook"]["name"] = 5.into();
            w.to_string().into_bytes()
        }),
        ("PutWebhook", br#"{"webhook": ["w"]}"#.to_vec()),
        ("GetPipeline", br#"{"name": ["app"]}"#.to_vec()),
        ("ListWebhooks", br#"{"MaxResults": "10"}"#.to_vec()),
    ];
    for (op, body) in serialization {
        let target = format!("CodePipeline_20150709.{op}");
        let (status, json) = crate::support::signed_post(&s.url, &target, body.clone()).await;
        let shown = String::from_utf8_lossy(&body);
        assert_eq!((status, json["__type"].as_str()), (400, Some("SerializationException")), "{op} {shown}: {json}");
    }
    // Nothing was stored, and a whole request still works.
    assert!(c.list_webhooks().send().await.unwrap().webhooks().is_empty());
    let (status, json) =
        crate::support::signed_post(&s.url, "CodePipeline_20150709.PutWebhook", without(&[]).to_string().into_bytes())
            .await;
    assert_eq!(status, 200, "{json}");
    s.stop().await.unwrap();
}
