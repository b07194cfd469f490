//! The AWS JSON endpoint, called with the official AWS SDK for Rust: SigV4 is verified against the
//! organization's access keys before any operation is looked at.

use aws_sdk_codepipeline::error::ProvideErrorMetadata;

use crate::support::{codepipeline, TestServer, ACCESS_KEY_ID, SECRET_ACCESS_KEY};

/// Calls an operation pipehook does not serve (the custom-action job worker API), so even a correctly
/// signed call ends in an error whose code shows how far it got.
async fn error_code(client: &aws_sdk_codepipeline::Client) -> (Option<String>, Option<String>) {
    let err = client
        .acknowledge_job()
        .job_id("00000000-0000-4000-8000-000000000000")
        .nonce("1")
        .send()
        .await
        .expect_err("not served");
    let raw = err.raw_response().map(|r| r.status().as_u16());
    let request_id = err.raw_response().and_then(|r| r.headers().get("x-amzn-requestid")).map(str::to_owned);
    assert!(request_id.is_some(), "x-amzn-RequestId on every AWS response");
    assert!(raw.is_some());
    (err.code().map(str::to_owned), err.message().map(str::to_owned))
}

#[tokio::test]
async fn sdk_signed_requests_are_verified() {
    let s = TestServer::start().await;
    // Correctly signed: authentication passes and the operation is answered in the AWS error shape.
    let ok = codepipeline(&s.url, ACCESS_KEY_ID, SECRET_ACCESS_KEY, "us-east-1");
    let (code, message) = error_code(&ok).await;
    assert_eq!(code.as_deref(), Some("UnknownOperationException"));
    assert!(message.unwrap().contains("AcknowledgeJob"));
    ok.list_pipelines().send().await.expect("a served operation succeeds with valid credentials");

    let wrong_secret = codepipeline(&s.url, ACCESS_KEY_ID, "not-the-secret-not-the-secret-000000000", "us-east-1");
    assert_eq!(error_code(&wrong_secret).await.0.as_deref(), Some("InvalidSignatureException"));

    let unknown_key = codepipeline(&s.url, "AKIAUNKNOWNUNKNOWN00", SECRET_ACCESS_KEY, "us-east-1");
    assert_eq!(error_code(&unknown_key).await.0.as_deref(), Some("UnrecognizedClientException"));

    let wrong_region = codepipeline(&s.url, ACCESS_KEY_ID, SECRET_ACCESS_KEY, "eu-west-1");
    assert_eq!(error_code(&wrong_region).await.0.as_deref(), Some("InvalidSignatureException"));
    s.stop().await.unwrap();
}

#[tokio::test]
async fn new_and_revoked_access_keys_take_effect_at_once() {
    let s = TestServer::start().await;
    let out = s.cli(&["access-key", "create", "--org", "default", "--description", "sdk"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let field =
        |name: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{name}="))).map(str::to_owned).expect(name);
    let (id, secret) = (field("AWS_ACCESS_KEY_ID"), field("AWS_SECRET_ACCESS_KEY"));
    let client = codepipeline(&s.url, &id, &secret, "us-east-1");
    assert_eq!(error_code(&client).await.0.as_deref(), Some("UnknownOperationException"));
    client.list_pipelines().send().await.expect("the new key works");

    let listing = String::from_utf8(s.cli(&["access-key", "list", "--org", "default"]).await.stdout).unwrap();
    assert!(listing.contains(&id) && !listing.contains(&secret), "secrets are never listed");

    let out = s.cli(&["access-key", "revoke", "--org", "default", &id]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(error_code(&client).await.0.as_deref(), Some("UnrecognizedClientException"));
    s.stop().await.unwrap();
}

#[tokio::test]
async fn unsigned_and_malformed_requests_get_aws_errors() {
    let s = TestServer::start().await;
    let post = |auth: Option<&'static str>| {
        let mut req = s
            .client()
            .post(format!("{}/", s.url))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", "CodePipeline_20150709.ListPipelines")
            .body("{}");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    for (auth, want) in [
        (None, "MissingAuthenticationTokenException"),
        (Some("AWS4-HMAC-SHA256 Credential=garbage"), "IncompleteSignatureException"),
        (Some("token phk_whatever"), "IncompleteSignatureException"),
    ] {
        let res = post(auth).await.unwrap();
        assert_eq!(res.status(), 403, "{auth:?}");
        assert!(res.headers().contains_key("x-amzn-requestid"));
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["__type"], want, "{auth:?}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // An oversized body is refused before any signature work.
    let big = s.client().post(format!("{}/", s.url)).body(vec![b'x'; 11 * 1024 * 1024]).send().await.unwrap();
    assert_eq!(big.status(), 413);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_bodies_get_serialization_and_validation_errors() {
    let s = TestServer::start().await;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("CodePipeline_20150709.ListPipelines", b"{not json".to_vec(), 400, "SerializationException"),
        ("CodePipeline_20150709.GetPipeline", br#"{"name": 5}"#.to_vec(), 400, "SerializationException"),
        (
            "CodePipeline_20150709.CreatePipeline",
            br#"{"pipeline": {"name": "x", "roleArn": "arn:aws:iam::123456789012:role/r", "stages": [], "executionMode": "FAST"}}"#.to_vec(),
            400,
            "SerializationException",
        ),
        ("CodePipeline_20150709.ListPipelines", br#"{"maxResults": 0}"#.to_vec(), 400, "ValidationException"),
        ("CodePipeline_20150709.NoSuchThing", b"{}".to_vec(), 400, "UnknownOperationException"),
        ("Nonsense.ListPipelines", b"{}".to_vec(), 400, "UnknownOperationException"),
        ("CodePipeline_20150709.GetPipeline", b"".to_vec(), 400, "ValidationException"),
    ];
    for (target, body, status, kind) in cases {
        let (got, json) = crate::support::signed_post(&s.url, target, body).await;
        assert_eq!((got, json["__type"].as_str()), (status, Some(kind)), "{target}: {json}");
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()), "{target}");
    }
    // An absurdly large pipeline document is refused with ValidationException and nothing is stored.
    let big = format!(
        r#"{{"pipeline": {{"name": "huge", "roleArn": "arn:aws:iam::123456789012:role/r", "stages": [], "pad": "{}"}}}}"#,
        "x".repeat(1_200_000)
    );
    let (got, json) =
        crate::support::signed_post(&s.url, "CodePipeline_20150709.CreatePipeline", big.into_bytes()).await;
    assert_eq!((got, json["__type"].as_str()), (400, Some("ValidationException")), "{json}");
    let (got, json) =
        crate::support::signed_post(&s.url, "CodePipeline_20150709.GetPipeline", br#"{"name": "huge"}"#.to_vec()).await;
    assert_eq!((got, json["__type"].as_str()), (400, Some("PipelineNotFoundException")));
    s.stop().await.unwrap();
}
