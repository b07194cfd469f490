//! Every management request is authenticated before routing, in the called API's error shape.

use crate::support::{Backend, TestServer, TOKEN};
use serde_json::json;

#[tokio::test]
async fn management_routes_require_a_token_before_routing_sqlite() {
    management_routes_require_a_token_before_routing(Backend::Sqlite).await
}

#[tokio::test]
async fn management_routes_require_a_token_before_routing_postgres() {
    management_routes_require_a_token_before_routing(Backend::Postgres).await
}

async fn management_routes_require_a_token_before_routing(backend: Backend) {
    let Some(s) = TestServer::builder().backend(backend).start().await else {
        return;
    };
    let unauthorized = json!({"code": 401, "message": "Unauthorized: No credentials provided or are invalid."});
    // An existing route and a route that does not exist answer the same: nothing is learned without credentials.
    // Every error answer carries its request id; apart from it they are identical.
    let without_id = |(status, mut body): (u16, serde_json::Value)| {
        let id = body.as_object_mut().and_then(|o| o.remove("requestId"));
        assert!(id.is_some_and(|id| id.is_string()), "{body}");
        (status, body)
    };
    for path in ["/api/orgs/default", "/api/does/not/exist", "/api", "/api/orgs/other/hooks"] {
        assert_eq!(without_id(s.get(path, None).await), (401, unauthorized.clone()), "{path}");
        assert_eq!(
            without_id(s.get(path, Some("phk_not_a_real_token_at_all_000000")).await),
            (401, unauthorized.clone()),
            "{path}"
        );
    }
    let basic = s
        .client()
        .get(format!("{}/api/orgs/default", s.url))
        .header("authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401, "only the token scheme is accepted");

    let (status, body) = s.get("/api/orgs/default", Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!((body["name"].as_str(), body["awsAccountId"].as_str()), (Some("default"), Some("123456789012")));
    let bearer = s
        .client()
        .get(format!("{}/api/orgs/default", s.url))
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);

    // Authenticated but not allowed: 403, the same for an existing and a missing organization.
    let (status, body) = s.get("/api/orgs/someone-else", Some(TOKEN)).await;
    assert_eq!((status, body["code"].as_u64()), (403, Some(403)));
    assert_eq!(s.get("/api/does/not/exist", Some(TOKEN)).await.0, 404);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn tokens_created_and_revoked_with_the_cli_take_effect_on_the_running_server() {
    let s = TestServer::start().await;
    let out = s.cli(&["org", "create", "acme", "--account-id", "210987654321"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = s.cli(&["token", "create", "--org", "acme", "--description", "ci"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("phk_"), "{token}");

    let (status, body) = s.get("/api/orgs/acme", Some(&token)).await;
    assert_eq!((status, body["awsAccountId"].as_str()), (200, Some("210987654321")));
    assert_eq!(s.get("/api/orgs/default", Some(&token)).await.0, 403, "acme's token is not default's");
    assert_eq!(s.get("/api/orgs/acme", Some(TOKEN)).await.0, 403, "default's token is not acme's");

    let list = s.cli(&["token", "list", "--org", "acme"]).await;
    let listing = String::from_utf8(list.stdout).unwrap();
    assert!(listing.contains("active") && listing.contains("ci"), "{listing}");
    assert!(!listing.contains(&token), "token values are never listed");
    let id = listing.lines().nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    let out = s.cli(&["token", "revoke", "--org", "acme", &id]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.get("/api/orgs/acme", Some(&token)).await.0, 401, "a revoked token is refused at once");

    let again = s.cli(&["token", "revoke", "--org", "acme", &id]).await;
    assert_eq!(again.status.code(), Some(2), "revoking twice is a usage error");
    let dup = s.cli(&["org", "create", "acme"]).await;
    assert_eq!(dup.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    let missing = s.cli(&["token", "create", "--org", "nobody"]).await;
    assert_eq!(missing.status.code(), Some(2));
    s.stop().await.unwrap();
}

#[tokio::test]
async fn ops_endpoints_are_open_and_metrics_count_requests() {
    let s = TestServer::start().await;
    assert_eq!(s.get("/healthz", None).await, (200, json!({"status": "ok"})));
    assert_eq!(s.get("/readyz", None).await, (200, json!({"status": "ready"})));
    s.get("/api/orgs/default", Some(TOKEN)).await;
    s.get("/api/orgs/default", None).await;
    let res = s.client().get(format!("{}/metrics", s.url)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = res.text().await.unwrap();
    assert!(
        text.contains(r#"pipehook_http_requests_total{route="/api/orgs/{org}",method="GET",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"pipehook_http_requests_total{route="/api/orgs/{org}",method="GET",status="401"} 1"#),
        "{text}"
    );
    assert!(text.contains("pipehook_http_request_duration_seconds_bucket{"));
    assert!(text.contains("pipehook_queue_up 1"));
    s.stop().await.unwrap();
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let s = TestServer::start().await;
    let mut seen = std::collections::HashSet::new();
    for path in ["/healthz", "/api/orgs/default", "/nothing-here"] {
        let res = s.client().get(format!("{}{path}", s.url)).send().await.unwrap();
        let id = res.headers().get("x-request-id").expect("x-request-id").to_str().unwrap().to_owned();
        assert!(seen.insert(id), "request ids are unique");
    }
    s.stop().await.unwrap();
}

#[tokio::test]
async fn postgres_nodes_share_one_database() {
    let Some(guard) = pipehook_store::testing::postgres_schema().await else {
        return;
    };
    let guard = std::sync::Arc::new(guard);
    // Two nodes start together on one schema: migrations and bootstrap race and both must come up.
    let (a, b) = tokio::join!(
        TestServer::builder().schema(guard.clone()).start(),
        TestServer::builder().schema(guard.clone()).start()
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    for s in [&a, &b] {
        assert_eq!(s.get("/readyz", None).await.0, 200);
        let (status, body) = s.get("/api/orgs/default", Some(TOKEN)).await;
        assert_eq!((status, body["awsAccountId"].as_str()), (200, Some("123456789012")));
    }
    // A token created through one node's database works on the other at once.
    let out = a.cli(&["token", "create", "--org", "default"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(b.get("/api/orgs/default", Some(&token)).await.0, 200);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}
