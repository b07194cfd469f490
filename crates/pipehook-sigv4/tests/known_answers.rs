//! Known-answer tests: published signatures that `verify` must accept.
//!
//! The first is the IAM `ListUsers` example from AWS's SigV4 documentation.
//! The rest are cases of the AWS signing test suite (the one the AWS SDKs
//! and the CRT share, also shipped inside the `aws-sigv4` crate), chosen for
//! the canonicalisation rules they exercise. Their request lines are written
//! the way that suite writes them, which for `get-utf8` and `get-space`
//! means unencoded, as if a client had sent the raw bytes.
//!
//! Each case is checked twice: as published, and with the signature's last
//! digit changed, so that a verifier accepting everything cannot pass.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use pipehook_sigv4::{parse_authorization, verify, Expectations};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// 2015-08-30T12:36:00Z, the date of every case below.
fn suite_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_440_938_160)
}

struct Case {
    name: &'static str,
    method: Method,
    path: &'static str,
    query: Option<&'static str>,
    /// In order; repeated names become repeated headers.
    headers: &'static [(&'static str, &'static str)],
    body: &'static [u8],
    service: &'static str,
    authorization: &'static str,
}

fn suite_auth(signed_headers: &str, signature: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders={signed_headers}, Signature={signature}"
    )
}

fn cases() -> Vec<Case> {
    let host = ("host", "example.amazonaws.com");
    let date = ("x-amz-date", "20150830T123600Z");
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let plain = |name, method, path, query, signature: &str| Case {
        name,
        method,
        path,
        query,
        headers: Box::leak(Box::new([host, date])),
        body: b"",
        service: "service",
        authorization: leak(suite_auth("host;x-amz-date", signature)),
    };
    vec![
        Case {
            name: "AWS documentation: IAM ListUsers",
            method: Method::GET,
            path: "/",
            query: Some("Action=ListUsers&Version=2010-05-08"),
            headers: &[
                ("content-type", "application/x-www-form-urlencoded; charset=utf-8"),
                ("host", "iam.amazonaws.com"),
                ("x-amz-date", "20150830T123600Z"),
            ],
            body: b"",
            service: "iam",
            authorization: "AWS4-HMAC-SHA256 \
                Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
                SignedHeaders=content-type;host;x-amz-date, \
                Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
        },
        plain(
            "get-vanilla",
            Method::GET,
            "/",
            None,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        plain(
            "get-relative-relative-normalized",
            Method::GET,
            "/example1/example2/../..",
            None,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        plain(
            "get-slash-dot-slash-normalized",
            Method::GET,
            "/./",
            None,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        plain(
            "get-slashes-normalized",
            Method::GET,
            "//example//",
            None,
            "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
        ),
        plain(
            "get-slash-pointless-dot-normalized",
            Method::GET,
            "/./example",
            None,
            "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5",
        ),
        plain(
            "get-space-normalized",
            Method::GET,
            "/example space/",
            None,
            "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
        ),
        plain("get-utf8", Method::GET, "/ሴ", None, "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
        plain(
            "get-unreserved",
            Method::GET,
            "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            None,
            "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
        ),
        plain(
            "get-vanilla-query-order-key-case",
            Method::GET,
            "/",
            Some("Param2=value2&Param1=value1"),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
        plain(
            "get-vanilla-query-order-encoded",
            Method::GET,
            "/",
            Some("Param-3=Value3&Param=Value2&%E1%88%B4=Value1"),
            "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac",
        ),
        plain(
            "get-vanilla-query-unreserved",
            Method::GET,
            "/",
            Some(
                "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\
                 =-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            ),
            "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
        ),
        plain(
            "get-vanilla-utf8-query",
            Method::GET,
            "/",
            Some("ሴ=bar"),
            "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
        ),
        plain(
            "post-vanilla",
            Method::POST,
            "/",
            None,
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
        plain(
            "post-vanilla-query",
            Method::POST,
            "/",
            Some("Param1=value1"),
            "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
        ),
        Case {
            name: "get-header-key-duplicate",
            method: Method::GET,
            path: "/",
            query: None,
            headers: &[
                ("host", "example.amazonaws.com"),
                ("my-header1", "value2"),
                ("my-header1", "value2"),
                ("my-header1", "value1"),
                ("x-amz-date", "20150830T123600Z"),
            ],
            body: b"",
            service: "service",
            authorization: leak(suite_auth(
                "host;my-header1;x-amz-date",
                "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
            )),
        },
        Case {
            name: "get-header-value-order",
            method: Method::GET,
            path: "/",
            query: None,
            headers: &[
                ("host", "example.amazonaws.com"),
                ("my-header1", "value4"),
                ("my-header1", "value1"),
                ("my-header1", "value3"),
                ("my-header1", "value2"),
                ("x-amz-date", "20150830T123600Z"),
            ],
            body: b"",
            service: "service",
            authorization: leak(suite_auth(
                "host;my-header1;x-amz-date",
                "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
            )),
        },
        Case {
            name: "get-header-value-trim",
            method: Method::GET,
            path: "/",
            query: None,
            headers: &[
                ("host", "example.amazonaws.com"),
                ("my-header1", " value1"),
                ("my-header2", " \"a   b   c\""),
                ("x-amz-date", "20150830T123600Z"),
            ],
            body: b"",
            service: "service",
            authorization: leak(suite_auth(
                "host;my-header1;my-header2;x-amz-date",
                "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
            )),
        },
        Case {
            name: "post-header-value-case",
            method: Method::POST,
            path: "/",
            query: None,
            headers: &[("host", "example.amazonaws.com"), ("my-header1", "VALUE1"), ("x-amz-date", "20150830T123600Z")],
            body: b"",
            service: "service",
            authorization: leak(suite_auth(
                "host;my-header1;x-amz-date",
                "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
            )),
        },
        Case {
            name: "post-x-www-form-urlencoded",
            method: Method::POST,
            path: "/",
            query: None,
            headers: &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("host", "example.amazonaws.com"),
                ("content-length", "13"),
                ("x-amz-date", "20150830T123600Z"),
                ("x-amz-content-sha256", "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"),
            ],
            body: b"Param1=value1",
            service: "service",
            authorization: leak(suite_auth(
                "content-length;content-type;host;x-amz-content-sha256;x-amz-date",
                "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b",
            )),
        },
        Case {
            name: "post-sts-header-after (token present, not signed)",
            method: Method::POST,
            path: "/",
            query: None,
            headers: &[
                ("host", "example.amazonaws.com"),
                ("x-amz-security-token", "AQoDYXdzEPT//////////wEXAMPLE"),
                ("x-amz-date", "20150830T123600Z"),
            ],
            body: b"",
            service: "service",
            authorization: leak(suite_auth(
                "host;x-amz-date",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            )),
        },
        Case {
            name: "get-vanilla-with-session-token",
            method: Method::GET,
            path: "/",
            query: None,
            headers: &[
                ("host", "example.amazonaws.com"),
                ("x-amz-security-token", "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"),
                ("x-amz-date", "20150830T123600Z"),
            ],
            body: b"",
            service: "service",
            authorization: leak(suite_auth(
                "host;x-amz-date;x-amz-security-token",
                "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
            )),
        },
    ]
}

fn run(case: &Case, authorization: &str) -> Result<(), pipehook_sigv4::SigV4Error> {
    let mut headers = HeaderMap::new();
    for (name, value) in case.headers {
        headers.append(HeaderName::from_static(name), HeaderValue::from_str(value).expect("header value"));
    }
    headers.insert("authorization", HeaderValue::from_str(authorization).expect("authorization value"));
    let auth = parse_authorization(&headers)?;
    verify(
        &case.method,
        case.path,
        case.query,
        &headers,
        case.body,
        &auth,
        SECRET,
        &Expectations {
            region: "us-east-1",
            services: &[case.service],
            max_skew: Duration::from_secs(15 * 60),
            now: suite_time(),
        },
    )
}

#[test]
fn published_signatures_verify() {
    for case in cases() {
        if let Err(error) = run(&case, case.authorization) {
            panic!("{}: {} ({})", case.name, error.aws_type(), error.message());
        }

        let last = case.authorization.chars().last().unwrap();
        let changed = if last == '0' { '1' } else { '0' };
        let spoiled = format!("{}{changed}", &case.authorization[..case.authorization.len() - 1]);
        let error = run(&case, &spoiled).expect_err(case.name);
        assert_eq!(error.aws_type(), "InvalidSignatureException", "{}", case.name);
    }
}
