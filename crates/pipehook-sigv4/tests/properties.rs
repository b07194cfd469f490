//! Property tests: the `Authorization` header and the rest of a request are attacker-controlled, so parsing and
//! verifying must never panic, must answer one of the documented AWS error types, and must never accept a
//! request the secret did not sign; and any request the official signer signs (random paths, queries, header
//! values, bodies) is accepted, and refused once its body changes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use pipehook_sigv4::{parse_authorization, verify, Expectations, SigV4Error};
use proptest::prelude::*;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const HOST: &str = "pipehook.example:8443";
const AWS_TYPES: [&str; 4] = [
    "MissingAuthenticationTokenException",
    "IncompleteSignatureException",
    "InvalidSignatureException",
    "UnrecognizedClientException",
];

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_440_938_160)
}

fn expect() -> Expectations<'static> {
    Expectations { region: "us-east-1", services: &["codepipeline"], max_skew: Duration::from_secs(900), now: now() }
}

fn check_error(e: &SigV4Error) {
    assert!(AWS_TYPES.contains(&e.aws_type()), "{e:?}");
    assert!(!e.message().is_empty());
    assert_eq!(e.http_status(), http::StatusCode::FORBIDDEN);
}

/// `Authorization` values: well-formed ones with random parts, near misses, and noise.
fn authorization() -> impl Strategy<Value = String> {
    let part = "[A-Za-z0-9/_=+-]{0,24}";
    prop_oneof![
        (part, "[0-9]{6,9}", "[a-z0-9-]{0,12}", "[a-z0-9]{0,12}", "[a-z0-9;-]{0,40}", "[0-9a-fA-F]{60,68}").prop_map(
            |(key, date, region, service, signed, signature)| format!(
                "AWS4-HMAC-SHA256 Credential={key}/{date}/{region}/{service}/aws4_request, SignedHeaders={signed}, \
                 Signature={signature}"
            )
        ),
        "AWS4-HMAC-SHA256 ?(Credential|SignedHeaders|Signature)=[ -~]{0,60}(, ?(Credential|SignedHeaders|Signature)=[ -~]{0,60}){0,4}",
        "[ -~]{0,200}",
    ]
}

fn other_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            prop_oneof![
                Just("x-amz-date".to_owned()),
                Just("date".to_owned()),
                Just("host".to_owned()),
                Just("x-amz-target".to_owned()),
                "[a-z-]{1,12}"
            ],
            prop_oneof!["[0-9]{8}T[0-9]{6}Z", "[ -~]{0,40}"],
        ),
        0..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn garbage_is_never_accepted_and_never_panics(
        auth in authorization(),
        headers in other_headers(),
        path in "/[ -~]{0,30}",
        query in prop::option::of("[ -~]{0,30}"),
        body in prop::collection::vec(any::<u8>(), 0..64),
        secret in "[ -~]{0,40}",
    ) {
        let mut map = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&auth) {
            map.insert("authorization", v);
        }
        for (k, v) in &headers {
            if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
                map.append(k, v);
            }
        }
        match parse_authorization(&map) {
            Err(e) => check_error(&e),
            Ok(parsed) => {
                prop_assert_eq!(parsed.signature.len(), 64);
                prop_assert!(!parsed.signed_headers.is_empty());
                let _ = parsed.require_signed("x-amz-target");
                let outcome = verify(&Method::POST, &path, query.as_deref(), &map, &body, &parsed, &secret, &expect());
                match outcome {
                    Err(e) => check_error(&e),
                    Ok(()) => prop_assert!(false, "accepted a request nobody signed: {auth}"),
                }
            }
        }
    }
}

/// Signs with the official signer (as the AWS SDKs do) and returns what a server receives.
fn signed(
    path_and_query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (String, Option<String>, HeaderMap, Vec<u8>) {
    let identity: Identity = Credentials::new("AKIDPIPEHOOKTEST", SECRET, None, None, "properties").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("codepipeline")
        .time(now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let uri = format!("https://{HOST}{path_and_query}");
    let signable = SignableRequest::new(
        "POST",
        uri.clone(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut request = http::Request::builder().method("POST").uri(&uri).body(()).unwrap();
    for (k, v) in headers {
        request.headers_mut().append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    instructions.apply_to_request_http1x(&mut request);
    request.headers_mut().insert("host", HeaderValue::from_static(HOST));
    let (parts, ()) = request.into_parts();
    (parts.uri.path().to_owned(), parts.uri.query().map(str::to_owned), parts.headers, body.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn whatever_the_official_signer_signs_is_accepted_until_it_changes(
        segments in prop::collection::vec("[A-Za-z0-9._~-]{1,8}", 0..4),
        query in prop::collection::vec(("[a-z0-9]{1,6}", "[A-Za-z0-9._~-]{0,6}"), 0..4),
        values in prop::collection::vec(("x-pipehook-[a-z]{1,6}", "[!-~]{1,8}( [!-~]{1,8}){0,3}"), 0..3),
        body in prop::collection::vec(any::<u8>(), 0..128),
        flip in any::<prop::sample::Index>(),
    ) {
        let mut path = format!("/{}", segments.join("/"));
        if !query.is_empty() {
            let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            path = format!("{path}?{}", q.join("&"));
        }
        let mut headers = vec![
            ("content-type".to_owned(), "application/x-amz-json-1.1".to_owned()),
            ("x-amz-target".to_owned(), "CodePipeline_20150709.ListPipelines".to_owned()),
        ];
        let mut seen = std::collections::BTreeSet::new();
        headers.extend(values.into_iter().filter(|(k, _)| seen.insert(k.clone())));
        let (path, query, map, body) = signed(&path, &headers, &body);
        let auth = parse_authorization(&map).unwrap();
        prop_assert!(auth.require_signed("x-amz-target").is_ok());
        let outcome = verify(&Method::POST, &path, query.as_deref(), &map, &body, &auth, SECRET, &expect());
        prop_assert!(outcome.is_ok(), "{:?} for {} {:?} {:?}", outcome, path, query, map);
        let mut spoiled = body.clone();
        if spoiled.is_empty() {
            spoiled.push(b'x');
        } else {
            let i = flip.index(spoiled.len());
            spoiled[i] ^= 1;
        }
        let outcome = verify(&Method::POST, &path, query.as_deref(), &map, &spoiled, &auth, SECRET, &expect());
        prop_assert_eq!(outcome, Err(SigV4Error::SignatureMismatch));
    }
}
