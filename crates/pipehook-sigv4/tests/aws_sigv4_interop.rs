//! Requests signed by the official `aws-sigv4` crate, the signer inside the
//! AWS SDK for Rust, must be accepted by `pipehook_sigv4::verify`, and every
//! way of spoiling one must be refused with the AWS error type an SDK expects.
//!
//! Signing with the real signer, instead of with a second copy of our own
//! canonicalisation, is the point: a shared misunderstanding of the rules
//! would pass a self-made round trip but fail here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderMap, HeaderValue, Method};
use pipehook_sigv4::{parse_authorization, verify, Expectations, SigV4Error};

const ACCESS_KEY_ID: &str = "AKIDPIPEHOOKTEST";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const REGION: &str = "us-east-1";
const SERVICE: &str = "codepipeline";
const HOST: &str = "pipehook.example:8443";
const LIST_PIPELINES_BODY: &[u8] = br#"{"nextToken":null,"maxResults":10}"#;

/// A fixed instant (2015-08-30T12:36:00Z), so that failures are reproducible.
fn signing_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_440_938_160)
}

/// What a client wants to send, and how it signs it.
#[derive(Clone)]
struct ClientRequest {
    method: &'static str,
    /// Path and query exactly as the client puts them on the wire.
    path_and_query: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    region: &'static str,
    service: &'static str,
    time: SystemTime,
    secret: &'static str,
    session_token: Option<&'static str>,
    settings: SigningSettings,
}

impl ClientRequest {
    /// A CodePipeline ListPipelines call, as the AWS SDK sends it.
    fn list_pipelines() -> Self {
        Self {
            method: "POST",
            path_and_query: "/".to_owned(),
            headers: vec![
                ("content-type", "application/x-amz-json-1.1".to_owned()),
                ("x-amz-target", "CodePipeline_20150709.ListPipelines".to_owned()),
            ],
            body: LIST_PIPELINES_BODY.to_vec(),
            region: REGION,
            service: SERVICE,
            time: signing_time(),
            secret: SECRET,
            session_token: None,
            settings: SigningSettings::default(),
        }
    }

    fn at(mut self, time: SystemTime) -> Self {
        self.time = time;
        self
    }

    /// Signs with `aws-sigv4` and returns the request as the server sees it.
    fn sign(&self) -> ReceivedRequest {
        let identity: Identity = Credentials::new(
            ACCESS_KEY_ID,
            self.secret,
            self.session_token.map(str::to_owned),
            None,
            "pipehook-sigv4-tests",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.region)
            .name(self.service)
            .time(self.time)
            .settings(self.settings.clone())
            .build()
            .expect("complete signing parameters")
            .into();
        let uri = format!("https://{HOST}{}", self.path_and_query);
        let signable = SignableRequest::new(
            self.method,
            uri.clone(),
            self.headers.iter().map(|(k, v)| (*k, v.as_str())),
            SignableBody::Bytes(&self.body),
        )
        .expect("signable request");
        let (instructions, _signature) = sign(signable, &params).expect("aws-sigv4 signs the request").into_parts();

        let mut request =
            http::Request::builder().method(self.method).uri(&uri).body(self.body.clone()).expect("valid request");
        for (name, value) in &self.headers {
            request.headers_mut().append(*name, HeaderValue::from_str(value).expect("header value"));
        }
        instructions.apply_to_request_http1x(&mut request);
        // The HTTP client, not the signer, writes `Host`; it omits default
        // ports and keeps others, which is what the signer assumed.
        request.headers_mut().insert("host", HeaderValue::from_static(HOST));

        let (parts, body) = request.into_parts();
        ReceivedRequest {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers,
            body,
        }
    }
}

/// A request as an HTTP server hands it to the handler.
#[derive(Clone, Debug)]
struct ReceivedRequest {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl ReceivedRequest {
    fn authorization(&self) -> String {
        self.headers["authorization"].to_str().unwrap().to_owned()
    }

    fn set_authorization(&mut self, value: &str) {
        self.headers.insert("authorization", HeaderValue::from_str(value).unwrap());
    }
}

/// What the server expects, apart from the request.
struct Server {
    secret: &'static str,
    region: &'static str,
    services: &'static [&'static str],
    now: SystemTime,
}

impl Server {
    fn default_at(now: SystemTime) -> Self {
        Self { secret: SECRET, region: REGION, services: &[SERVICE], now }
    }
}

/// Parses and verifies the way the API crate does, in one step.
fn authenticate(request: &ReceivedRequest, server: &Server) -> Result<(), SigV4Error> {
    let auth = parse_authorization(&request.headers)?;
    assert_eq!(auth.access_key_id, ACCESS_KEY_ID);
    verify(
        &request.method,
        &request.path,
        request.query.as_deref(),
        &request.headers,
        &request.body,
        &auth,
        server.secret,
        &Expectations {
            region: server.region,
            services: server.services,
            max_skew: Duration::from_secs(15 * 60),
            now: server.now,
        },
    )
}

/// The one assertion every case goes through: `want` is `None` for an
/// accepted request, else the AWS error type and a fragment of its message.
fn check(name: &str, request: &ReceivedRequest, server: &Server, want: Option<(&str, &str)>) {
    let outcome = authenticate(request, server);
    match (want, outcome) {
        (None, Ok(())) => {}
        (None, Err(error)) => {
            panic!("{name}: expected acceptance, got {} ({})\nrequest: {request:#?}", error.aws_type(), error.message())
        }
        (Some((aws_type, _)), Ok(())) => {
            panic!("{name}: expected {aws_type}, but the request was accepted")
        }
        (Some((aws_type, fragment)), Err(error)) => {
            assert_eq!(error.aws_type(), aws_type, "{name}: {}", error.message());
            assert!(error.message().contains(fragment), "{name}: message {:?} lacks {fragment:?}", error.message());
        }
    }
}

#[test]
fn accepts_a_list_pipelines_call_signed_by_aws_sigv4() {
    let request = ClientRequest::list_pipelines().sign();
    assert!(request.authorization().starts_with(
        "AWS4-HMAC-SHA256 Credential=AKIDPIPEHOOKTEST/20150830/us-east-1/codepipeline/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature="
    ));
    check("list pipelines", &request, &Server::default_at(signing_time()), None);
}

#[test]
fn accepts_paths_and_queries_that_need_encoding() {
    let server = Server::default_at(signing_time());
    let cases = [
        // Spaces and non-ASCII in the path, already percent-encoded on the
        // wire as every client sends them; the signer encodes them again.
        "/pipelines/my%20pipeline/caf%C3%A9/%E2%9C%93",
        // Reserved characters that stay encoded, and dot segments.
        "/a%2Fb/c%3Ad/./e/../f",
        // Repeated and unsorted keys, an empty value, a bare key, `+`,
        // reserved characters and non-ASCII in keys and values.
        "/search?zeta=1&alpha=2&alpha=1&empty=&bare&plus=a+b&q=x%3Dy%26z&%C3%A9t%C3%A9=%E2%9C%93",
        "/?Version=2015-07-09&Action=ListPipelines&Action=Again",
        "/trailing/slash/?b=&a=",
        "//double//slashes",
    ];
    for path_and_query in cases {
        let mut client = ClientRequest::list_pipelines();
        client.path_and_query = path_and_query.to_owned();
        check(path_and_query, &client.sign(), &server, None);
    }
}

#[test]
fn accepts_other_methods_headers_and_settings() {
    let server = Server::default_at(signing_time());

    let mut get = ClientRequest::list_pipelines();
    get.method = "GET";
    get.body.clear();
    get.path_and_query = "/health?deep=true".to_owned();
    check("GET without body", &get.sign(), &server, None);

    let mut spaced = ClientRequest::list_pipelines();
    spaced.headers.push(("x-amz-meta-note", "  many   spaces  here ".to_owned()));
    spaced.headers.push(("x-amz-meta-list", "one".to_owned()));
    spaced.headers.push(("x-amz-meta-list", "two".to_owned()));
    check("trimmed and repeated headers", &spaced.sign(), &server, None);

    // A session token is signed as `x-amz-security-token`, an ordinary
    // signed header for the verifier.
    let mut temporary = ClientRequest::list_pipelines();
    temporary.session_token = Some("FQoGZXIvYXdzEXAMPLETOKEN");
    let temporary = temporary.sign();
    assert!(temporary.headers.contains_key("x-amz-security-token"));
    check("session token", &temporary, &server, None);

    let mut with_checksum = ClientRequest::list_pipelines();
    with_checksum.settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
    check("x-amz-content-sha256", &with_checksum.sign(), &server, None);

    // `user-agent` is excluded from signing by default, so a proxy may
    // rewrite it, and headers added after signing are ignored too.
    let mut proxied = ClientRequest::list_pipelines();
    proxied.headers.push(("user-agent", "aws-sdk-rust/1.0".to_owned()));
    let mut proxied = proxied.sign();
    proxied.headers.insert("user-agent", HeaderValue::from_static("rewritten"));
    proxied.headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
    check("unsigned headers changed", &proxied, &server, None);

    // Exactly the allowed skew is still accepted on both sides.
    let fifteen = Duration::from_secs(15 * 60);
    let old = ClientRequest::list_pipelines().at(signing_time() - fifteen).sign();
    check("15 minutes old", &old, &server, None);
    let early = ClientRequest::list_pipelines().at(signing_time() + fifteen).sign();
    check("15 minutes ahead", &early, &server, None);

    // One server may answer to several signing names.
    let mut other_name = ClientRequest::list_pipelines();
    other_name.service = "pipehook";
    let multi = Server { services: &["codepipeline", "pipehook"], ..Server::default_at(signing_time()) };
    check("second service name", &other_name.sign(), &multi, None);
}

#[test]
fn refuses_spoiled_requests_with_the_aws_error_type() {
    const INCOMPLETE: &str = "IncompleteSignatureException";
    const INVALID: &str = "InvalidSignatureException";
    const MISSING: &str = "MissingAuthenticationTokenException";
    let sixteen = Duration::from_secs(16 * 60);
    let good = || ClientRequest::list_pipelines().sign();
    let server = || Server::default_at(signing_time());
    let mismatch = "does not match the signature you provided";

    let mut cases: Vec<(&str, ReceivedRequest, Server, (&str, &str))> = Vec::new();

    let mut request = good();
    request.body = br#"{"nextToken":null,"maxResults":11}"#.to_vec();
    cases.push(("tampered body", request, server(), (INVALID, mismatch)));

    let mut request = good();
    request.headers.insert("x-amz-target", HeaderValue::from_static("CodePipeline_20150709.DeletePipeline"));
    cases.push(("tampered signed header", request, server(), (INVALID, mismatch)));

    let mut request = good();
    request.path = "/other".to_owned();
    cases.push(("tampered path", request, server(), (INVALID, mismatch)));

    let mut client = ClientRequest::list_pipelines();
    client.path_and_query = "/?a=1&b=2".to_owned();
    let mut request = client.sign();
    request.query = Some("a=1&b=3".to_owned());
    cases.push(("tampered query", request, server(), (INVALID, mismatch)));

    let mut request = good();
    request.method = Method::PUT;
    cases.push(("tampered method", request, server(), (INVALID, mismatch)));

    cases.push((
        "wrong secret",
        good(),
        Server { secret: "ANOTHERSECRETKEYEXAMPLEEXAMPLEEXAMPLEKEY", ..server() },
        (INVALID, mismatch),
    ));

    let mut client = ClientRequest::list_pipelines();
    client.region = "eu-west-1";
    cases.push((
        "wrong region",
        client.sign(),
        server(),
        (INVALID, "Credential should be scoped to a valid region, not 'eu-west-1'"),
    ));

    let mut client = ClientRequest::list_pipelines();
    client.service = "codebuild";
    cases.push((
        "wrong service",
        client.sign(),
        server(),
        (INVALID, "Credential should be scoped to correct service: 'codepipeline'"),
    ));

    cases.push((
        "date 16 minutes old",
        ClientRequest::list_pipelines().at(signing_time() - sixteen).sign(),
        server(),
        (
            INVALID,
            "Signature expired: 20150830T122000Z is now earlier than 20150830T122100Z \
             (20150830T123600Z - 15 min.)",
        ),
    ));

    cases.push((
        "date 16 minutes in the future",
        ClientRequest::list_pipelines().at(signing_time() + sixteen).sign(),
        server(),
        (
            INVALID,
            "Signature not yet current: 20150830T125200Z is still later than 20150830T125100Z \
             (20150830T123600Z + 15 min.)",
        ),
    ));

    // The scope says the 29th while x-amz-date says the 30th; the signature
    // may well match a key derived for the 29th, so the date check must
    // catch it on its own.
    let mut request = good();
    let forged = request.authorization().replace("/20150830/", "/20150829/");
    request.set_authorization(&forged);
    cases.push((
        "scope date differs from x-amz-date",
        request,
        server(),
        (
            INVALID,
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20150829' != '20150830'",
        ),
    ));

    let mut client = ClientRequest::list_pipelines();
    client.settings.excluded_headers.get_or_insert_with(Vec::new).push("host".into());
    let request = client.sign();
    assert!(!request.authorization().contains("host"));
    cases.push(("host not signed", request, server(), (INCOMPLETE, "'Host' or ':authority' must be a 'SignedHeader'")));

    let mut client = ClientRequest::list_pipelines();
    client.settings.excluded_headers.get_or_insert_with(Vec::new).push("x-amz-date".into());
    cases.push((
        "x-amz-date not signed",
        client.sign(),
        server(),
        (INCOMPLETE, "'x-amz-date' must be a 'SignedHeader'"),
    ));

    let mut request = good();
    request.headers.remove("x-amz-date");
    cases.push(("no date header", request, server(), (INCOMPLETE, "requires existence of either a 'X-Amz-Date'")));

    let mut request = good();
    request.headers.insert("x-amz-date", HeaderValue::from_static("2015-08-30T12:36:00Z"));
    cases.push(("date not in basic format", request, server(), (INVALID, "Date must be in ISO-8601 'basic format'")));

    let mut request = good();
    request.headers.remove("authorization");
    cases.push(("missing Authorization", request, server(), (MISSING, "Missing Authentication Token")));

    let mut request = good();
    let auth = request.authorization();
    let without_signature = auth[..auth.find(", Signature=").unwrap()].to_owned();
    request.set_authorization(&without_signature);
    cases.push((
        "missing Signature=",
        request,
        server(),
        (INCOMPLETE, "Authorization header requires 'Signature' parameter."),
    ));

    let mut request = good();
    let wrong_algorithm = request.authorization().replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512");
    request.set_authorization(&wrong_algorithm);
    cases.push(("wrong algorithm", request, server(), (INCOMPLETE, "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512'")));

    let mut request = good();
    let auth = request.authorization();
    let non_hex = format!("{}zz", &auth[..auth.len() - 2]);
    request.set_authorization(&non_hex);
    cases.push(("non-hex signature", request, server(), (INCOMPLETE, "Signature must be 64 hexadecimal digits.")));

    let mut request = good();
    let auth = request.authorization();
    request.set_authorization(&auth[..auth.len() - 2]);
    cases.push(("short signature", request, server(), (INCOMPLETE, "Signature must be 64 hexadecimal digits.")));

    let mut request = good();
    let flipped = {
        let auth = request.authorization();
        let last = if auth.ends_with('0') { '1' } else { '0' };
        format!("{}{last}", &auth[..auth.len() - 1])
    };
    request.set_authorization(&flipped);
    cases.push(("one signature digit changed", request, server(), (INVALID, mismatch)));

    let mut request = good();
    let short_scope = request.authorization().replace("/codepipeline/aws4_request", "/aws4_request");
    request.set_authorization(&short_scope);
    cases.push(("credential scope too short", request, server(), (INCOMPLETE, "must have the form")));

    let mut request = good();
    request.headers.insert("authorization", HeaderValue::from_static("Bearer abc"));
    cases.push(("another scheme", request, server(), (INCOMPLETE, "Unsupported AWS 'algorithm': 'Bearer'")));

    let mut request = good();
    let again = request.authorization();
    request.headers.append("authorization", HeaderValue::from_str(&again).unwrap());
    cases.push(("two Authorization headers", request, server(), (INCOMPLETE, "Only one Authorization header")));

    for (name, request, server, want) in &cases {
        check(name, request, server, Some(*want));
    }
}

#[test]
fn parses_the_authorization_header() {
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_static(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
        ),
    );
    let auth = parse_authorization(&headers).unwrap();
    assert_eq!(
        auth,
        pipehook_sigv4::Authorization {
            access_key_id: "AKIDEXAMPLE".into(),
            date: "20150830".into(),
            region: "us-east-1".into(),
            service: "iam".into(),
            signed_headers: vec!["content-type".into(), "host".into(), "x-amz-date".into()],
            signature: "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7".into(),
        }
    );

    // Some clients leave out the spaces after the commas.
    headers.insert(
        "authorization",
        HeaderValue::from_static(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request,\
             SignedHeaders=host;x-amz-date,\
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
        ),
    );
    assert_eq!(parse_authorization(&headers).unwrap().signed_headers, ["host", "x-amz-date"]);

    // All missing components are named at once.
    headers.insert("authorization", HeaderValue::from_static("AWS4-HMAC-SHA256 SignedHeaders=host"));
    let error = parse_authorization(&headers).unwrap_err();
    assert_eq!(error.aws_type(), "IncompleteSignatureException");
    assert!(error.message().starts_with(
        "Authorization header requires 'Credential' parameter. \
         Authorization header requires 'Signature' parameter. Authorization="
    ));
}
