//! Trigger request authentication: the three CodePipeline schemes (`GITHUB_HMAC`, `IP`, `UNAUTHENTICATED`), and
//! the GitLab and Bitbucket Cloud secrets a CodeBuild project webhook may use.
//!
//! GitLab does not sign: it sends the webhook's secret token itself in `X-Gitlab-Token`, which is compared with
//! every configured secret in constant time. Bitbucket Cloud, when the webhook has a secret, signs the raw body
//! with HMAC-SHA256 and sends `X-Hub-Signature: sha256=<hex>` (the header GitHub uses for SHA-1; for
//! Bitbucket the `sha256=` prefix is required and no other algorithm is accepted). A Bitbucket webhook
//! without a secret sends no signature, which is what CodeBuild assumes ("a Bitbucket webhook does not
//! support secret"); such a webhook is `Unauthenticated` and relies on its URL's token.
//!
//! `GITHUB_HMAC` checks GitHub's signature headers over the raw body. GitHub sends both `X-Hub-Signature-256`
//! (`sha256=<hex>`) and the legacy `X-Hub-Signature` (`sha1=<hex>`); the algorithm is fixed by the header's
//! name, never by anything the caller chooses. When the SHA-256 header is present it alone decides: a wrong
//! SHA-256 signature is not rescued by a SHA-1 one, so an attacker cannot downgrade the check to the weaker hash.
//! Several secrets may be configured at once so a secret can be rotated without dropping deliveries; every
//! secret is tried (no early exit) and the index of the first that matched is reported.
//!
//! `IP` checks the peer address against one CIDR range. Behind a reverse proxy the peer is the proxy, so the
//! caller may say the proxy is trusted, and then the first `X-Forwarded-For` hop (the original client as the
//! proxy saw it) is checked instead. That hop is only as trustworthy as the proxy: it must overwrite, not
//! append to, a client-supplied `X-Forwarded-For`, and the server must not be reachable around the proxy.

use std::net::{IpAddr, SocketAddr};

use hmac::{Hmac, Mac};
use http::HeaderMap;
use ipnet::IpNet;
use pipehook_domain::secret::Secret;
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header GitHub signs with HMAC-SHA256; it wins over [`SHA1_HEADER`] whenever present.
pub const SHA256_HEADER: &str = "x-hub-signature-256";
/// GitHub's legacy HMAC-SHA1 header, used only when [`SHA256_HEADER`] is absent.
pub const SHA1_HEADER: &str = "x-hub-signature";
/// The header a reverse proxy uses to pass on the original client address.
pub const FORWARDED_FOR_HEADER: &str = "x-forwarded-for";
/// The header GitLab sends the webhook's secret token in.
pub const GITLAB_TOKEN_HEADER: &str = "x-gitlab-token";
/// The header Bitbucket Cloud sends its HMAC-SHA256 signature in (`sha256=<hex>`).
pub const BITBUCKET_SIGNATURE_HEADER: &str = "x-hub-signature";

/// How a webhook's trigger requests are authenticated (CodePipeline's `authentication` plus its configuration).
#[derive(Debug, Clone)]
pub enum Authentication {
    /// `GITHUB_HMAC`: the body must carry a valid GitHub signature made with one of these secrets. More than one
    /// secret is configured only while a rotation overlaps; the first is the current one.
    GithubHmac { secrets: Vec<Secret<String>> },
    /// `IP`: the client address must fall within this range.
    Ip { range: IpNet },
    /// `UNAUTHENTICATED`: every request is accepted (the URL's unguessable token is the only protection).
    Unauthenticated,
    /// GitLab: `X-Gitlab-Token` must equal one of these secrets (several during a rotation, current first).
    GitlabToken { secrets: Vec<Secret<String>> },
    /// Bitbucket Cloud: `X-Hub-Signature: sha256=<hex>` must be the HMAC-SHA256 of the body with one of these
    /// secrets (several during a rotation, current first).
    BitbucketHmac { secrets: Vec<Secret<String>> },
}

/// The result of [`authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The request is authentic. `method` is `"sha256"`, `"sha1"`, `"ip"`, `"none"`, `"gitlab-token"` or
    /// `"bitbucket-sha256"`; `secret_index` says which configured secret matched (secrets only), so a caller can
    /// tell when the old secret of a rotation stops being used.
    Passed { method: &'static str, secret_index: Option<usize> },
    /// The request is not authentic. `reason` is for the inbound log only and must never be sent to the
    /// caller, who should learn no more than "forbidden".
    Failed { reason: String },
}

impl AuthOutcome {
    pub fn passed(&self) -> bool {
        matches!(self, AuthOutcome::Passed { .. })
    }

    fn failed(reason: impl Into<String>) -> Self {
        AuthOutcome::Failed { reason: reason.into() }
    }
}

/// Authenticates one trigger request. `body` must be the raw bytes as received (the signature covers them, so
/// a re-serialised JSON body would not verify); `peer` is the TCP peer address; `trust_forwarded_for` says the
/// peer is a trusted reverse proxy whose `X-Forwarded-For` may be believed.
pub fn authenticate(
    auth: &Authentication,
    headers: &HeaderMap,
    body: &[u8],
    peer: IpAddr,
    trust_forwarded_for: bool,
) -> AuthOutcome {
    match auth {
        Authentication::GithubHmac { secrets } => github_hmac(secrets, headers, body),
        Authentication::Ip { range } => ip_range(range, headers, peer, trust_forwarded_for),
        Authentication::Unauthenticated => AuthOutcome::Passed { method: "none", secret_index: None },
        Authentication::GitlabToken { secrets } => gitlab_token(secrets, headers),
        Authentication::BitbucketHmac { secrets } => bitbucket_hmac(secrets, headers, body),
    }
}

/// Parses an `AllowedIPRange`. Only CIDR notation is accepted (`203.0.113.0/24`, `2001:db8::/32`): AWS asks for
/// "a valid CIDR", and a bare address is rejected rather than silently widened or narrowed, so the caller must
/// write `/32` or `/128` for a single host. Host bits may be set (`10.1.2.3/8` means `10.0.0.0/8`), as with
/// most CIDR parsers; the range is what the prefix says.
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    if !s.contains('/') {
        return Err(format!("{s:?} is not in CIDR notation (address/prefix, e.g. 203.0.113.0/24)"));
    }
    s.parse::<IpNet>().map_err(|_| format!("{s:?} is not a valid IPv4 or IPv6 CIDR range"))
}

/// Which GitHub signature a request carries; the header's name alone decides the algorithm.
#[derive(Clone, Copy)]
enum Algorithm {
    Sha256,
    Sha1,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha1 => "sha1",
        }
    }

    fn header(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "X-Hub-Signature-256",
            Algorithm::Sha1 => "X-Hub-Signature",
        }
    }

    fn digest_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 32,
            Algorithm::Sha1 => 20,
        }
    }

    fn mac(self, key: &[u8], body: &[u8]) -> Vec<u8> {
        // `new_from_slice` accepts keys of any length for HMAC, so it cannot fail here.
        match self {
            Algorithm::Sha256 => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
                mac.update(body);
                mac.finalize().into_bytes().to_vec()
            }
            Algorithm::Sha1 => {
                let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC accepts any key length");
                mac.update(body);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }
}

fn github_hmac(secrets: &[Secret<String>], headers: &HeaderMap, body: &[u8]) -> AuthOutcome {
    let (algorithm, value) = if headers.contains_key(SHA256_HEADER) {
        (Algorithm::Sha256, single_header(headers, SHA256_HEADER))
    } else if headers.contains_key(SHA1_HEADER) {
        (Algorithm::Sha1, single_header(headers, SHA1_HEADER))
    } else {
        return AuthOutcome::failed("no X-Hub-Signature-256 or X-Hub-Signature header");
    };
    hmac_check(secrets, algorithm, algorithm.header(), value, body, algorithm.name())
}

fn bitbucket_hmac(secrets: &[Secret<String>], headers: &HeaderMap, body: &[u8]) -> AuthOutcome {
    if !headers.contains_key(BITBUCKET_SIGNATURE_HEADER) {
        return AuthOutcome::failed("no X-Hub-Signature header (is a secret set on the Bitbucket webhook?)");
    }
    let value = single_header(headers, BITBUCKET_SIGNATURE_HEADER);
    hmac_check(secrets, Algorithm::Sha256, "X-Hub-Signature", value, body, "bitbucket-sha256")
}

/// Checks a `<algorithm>=<hex>` signature header's value against the body with every secret.
fn hmac_check(
    secrets: &[Secret<String>],
    algorithm: Algorithm,
    header: &str,
    value: Result<&str, &'static str>,
    body: &[u8],
    method: &'static str,
) -> AuthOutcome {
    let value = match value {
        Ok(value) => value,
        Err(reason) => return AuthOutcome::failed(format!("{header}: {reason}")),
    };
    let prefix = algorithm.name();
    let Some(hex_digest) = value.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('=')) else {
        return AuthOutcome::failed(format!("{header} does not start with {prefix}="));
    };
    let claimed = match hex::decode(hex_digest) {
        Ok(bytes) if bytes.len() == algorithm.digest_len() => bytes,
        _ => {
            return AuthOutcome::failed(format!(
                "{header} is not {} hex digits after {prefix}=",
                algorithm.digest_len() * 2
            ))
        }
    };
    // Every secret is tried, even after a match, so the time taken does not reveal which one matched.
    let mut matched = None;
    for (index, secret) in secrets.iter().enumerate() {
        let key = secret.expose().as_bytes();
        // An empty key is a signature anyone can compute; validation should have refused it, so never accept it.
        if key.is_empty() {
            continue;
        }
        let expected = algorithm.mac(key, body);
        if bool::from(expected.ct_eq(&claimed)) && matched.is_none() {
            matched = Some(index);
        }
    }
    match matched {
        Some(index) => AuthOutcome::Passed { method, secret_index: Some(index) },
        None if secrets.iter().all(|s| s.expose().is_empty()) => {
            AuthOutcome::failed("the webhook has no usable secret configured")
        }
        None => AuthOutcome::failed(format!(
            "{header} does not match the body with any of the {} configured secret(s)",
            secrets.len()
        )),
    }
}

fn gitlab_token(secrets: &[Secret<String>], headers: &HeaderMap) -> AuthOutcome {
    if !headers.contains_key(GITLAB_TOKEN_HEADER) {
        return AuthOutcome::failed("no X-Gitlab-Token header (is a secret token set on the GitLab webhook?)");
    }
    // GitLab sends the token as it was entered, so it is compared untrimmed, byte for byte.
    let mut values = headers.get_all(GITLAB_TOKEN_HEADER).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return AuthOutcome::failed("X-Gitlab-Token: header appears more than once");
    };
    let claimed = value.as_bytes();
    // Every secret is compared, even after a match, so the time taken does not reveal which one matched.
    // `ct_eq` on slices of different lengths returns false at once: only the length can leak, as with any
    // token comparison.
    let mut matched = None;
    for (index, secret) in secrets.iter().enumerate() {
        let key = secret.expose().as_bytes();
        if key.is_empty() {
            continue;
        }
        if bool::from(key.ct_eq(claimed)) && matched.is_none() {
            matched = Some(index);
        }
    }
    match matched {
        Some(index) => AuthOutcome::Passed { method: "gitlab-token", secret_index: Some(index) },
        None if secrets.iter().all(|s| s.expose().is_empty()) => {
            AuthOutcome::failed("the webhook has no usable secret configured")
        }
        None => AuthOutcome::failed(format!(
            "X-Gitlab-Token does not match any of the {} configured secret(s)",
            secrets.len()
        )),
    }
}

/// The value of a header that must appear exactly once, as trimmed text. A repeated signature header is
/// refused because which copy a proxy or a framework would pick is not defined.
fn single_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, &'static str> {
    let mut values = headers.get_all(name).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err("header appears more than once");
    };
    value.to_str().map(str::trim).map_err(|_| "header is not visible ASCII")
}

fn ip_range(range: &IpNet, headers: &HeaderMap, peer: IpAddr, trust_forwarded_for: bool) -> AuthOutcome {
    let client = if trust_forwarded_for && headers.contains_key(FORWARDED_FOR_HEADER) {
        match first_forwarded_hop(headers) {
            Some(address) => address,
            // A trusted proxy that sends garbage is refused rather than falling back to the peer, which is the
            // proxy itself and might well be inside the allowed range.
            None => return AuthOutcome::failed("X-Forwarded-For has no valid first address"),
        }
    } else {
        peer
    };
    // A dual-stack listener reports IPv4 clients as `::ffff:a.b.c.d`; compare them as the IPv4 they are.
    let client = client.to_canonical();
    if range.contains(&client) {
        AuthOutcome::Passed { method: "ip", secret_index: None }
    } else {
        AuthOutcome::failed(format!("client address {client} is not in {range}"))
    }
}

/// The first hop of the first `X-Forwarded-For` header: the client as the outermost proxy saw it. Some proxies
/// add a port (`203.0.113.7:5123`, `[2001:db8::1]:443`), so that form is accepted too.
fn first_forwarded_hop(headers: &HeaderMap) -> Option<IpAddr> {
    let value = headers.get(FORWARDED_FOR_HEADER)?.to_str().ok()?;
    let hop = value.split(',').next()?.trim();
    hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn secrets(values: &[&str]) -> Authentication {
        Authentication::GithubHmac { secrets: values.iter().map(|v| Secret::new(v.to_string())).collect() }
    }

    fn sign256(secret: &str, body: &[u8]) -> String {
        format!("sha256={}", hex::encode(Algorithm::Sha256.mac(secret.as_bytes(), body)))
    }

    fn sign1(secret: &str, body: &[u8]) -> String {
        format!("sha1={}", hex::encode(Algorithm::Sha1.mac(secret.as_bytes(), body)))
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    const BODY: &[u8] = br#"{"ref":"refs/heads/main"}"#;
    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    /// One HMAC case: configured secrets, request headers, and the expected outcome (`Ok((method, index))` or
    /// `Err(words the reason must contain)`).
    fn check(name: &str, configured: &[&str], request: &[(&'static str, String)], want: Result<(&str, usize), &str>) {
        let outcome = authenticate(&secrets(configured), &headers(request), BODY, PEER, false);
        match (want, &outcome) {
            (Ok((method, index)), AuthOutcome::Passed { method: m, secret_index }) => {
                assert_eq!((*m, *secret_index), (method, Some(index)), "{name}")
            }
            (Err(words), AuthOutcome::Failed { reason }) => {
                assert!(reason.contains(words), "{name}: reason {reason:?} lacks {words:?}")
            }
            (want, got) => panic!("{name}: wanted {want:?}, got {got:?}"),
        }
    }

    #[test]
    fn github_hmac_table() {
        let tampered = br#"{"ref":"refs/heads/evil"}"#;
        check("sha256 accepted", &["s3cr3t"], &[(SHA256_HEADER, sign256("s3cr3t", BODY))], Ok(("sha256", 0)));
        check("sha1 accepted", &["s3cr3t"], &[(SHA1_HEADER, sign1("s3cr3t", BODY))], Ok(("sha1", 0)));
        check(
            "both headers: sha256 is the one checked",
            &["s3cr3t"],
            &[(SHA256_HEADER, sign256("s3cr3t", BODY)), (SHA1_HEADER, sign1("s3cr3t", BODY))],
            Ok(("sha256", 0)),
        );
        check(
            "wrong sha256 is not rescued by a valid sha1",
            &["s3cr3t"],
            &[(SHA256_HEADER, sign256("other", BODY)), (SHA1_HEADER, sign1("s3cr3t", BODY))],
            Err("does not match"),
        );
        check("wrong secret", &["s3cr3t"], &[(SHA256_HEADER, sign256("other", BODY))], Err("does not match"));
        check("tampered body", &["s3cr3t"], &[(SHA256_HEADER, sign256("s3cr3t", tampered))], Err("does not match"));
        check("tampered body sha1", &["s3cr3t"], &[(SHA1_HEADER, sign1("s3cr3t", tampered))], Err("does not match"));
        check("missing header", &["s3cr3t"], &[("x-github-event", "push".into())], Err("no X-Hub-Signature"));
        check("malformed hex", &["s3cr3t"], &[(SHA256_HEADER, "sha256=zz".into())], Err("hex digits"));
        check("short digest", &["s3cr3t"], &[(SHA256_HEADER, "sha256=abcd".into())], Err("hex digits"));
        let bare = sign256("s3cr3t", BODY).trim_start_matches("sha256=").to_string();
        check("no prefix", &["s3cr3t"], &[(SHA256_HEADER, bare)], Err("does not start with sha256="));
        check(
            "sha1 value in the sha256 header",
            &["s3cr3t"],
            &[(SHA256_HEADER, sign1("s3cr3t", BODY))],
            Err("does not start with sha256="),
        );
        check(
            "sha256 value in the sha1 header",
            &["s3cr3t"],
            &[(SHA1_HEADER, sign256("s3cr3t", BODY))],
            Err("does not start with sha1="),
        );
        check(
            "upper-case hex digits",
            &["s3cr3t"],
            &[(SHA256_HEADER, sign256("s3cr3t", BODY).to_uppercase().replacen("SHA256=", "sha256=", 1))],
            Ok(("sha256", 0)),
        );
        check(
            "repeated header",
            &["s3cr3t"],
            &[(SHA256_HEADER, sign256("s3cr3t", BODY)), (SHA256_HEADER, sign256("s3cr3t", BODY))],
            Err("more than once"),
        );
        check("rotation: old secret", &["new", "old"], &[(SHA256_HEADER, sign256("old", BODY))], Ok(("sha256", 1)));
        check("rotation: new secret", &["new", "old"], &[(SHA256_HEADER, sign256("new", BODY))], Ok(("sha256", 0)));
        check("rotation: neither", &["new", "old"], &[(SHA256_HEADER, sign256("x", BODY))], Err("2 configured"));
        check("no secrets", &[], &[(SHA256_HEADER, sign256("", BODY))], Err("no usable secret"));
        check("empty secret never matches", &[""], &[(SHA256_HEADER, sign256("", BODY))], Err("no usable secret"));
    }

    /// GitHub's documented test vector, which @octokit/webhooks-methods and openssl reproduce as well.
    #[test]
    fn github_documented_vector() {
        let request = headers(&[(
            SHA256_HEADER,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".into(),
        )]);
        let outcome = authenticate(&secrets(&["It's a Secret to Everybody"]), &request, b"Hello, World!", PEER, false);
        assert_eq!(outcome, AuthOutcome::Passed { method: "sha256", secret_index: Some(0) });
    }

    /// One IP case: range, peer, X-Forwarded-For (if any), whether the proxy is trusted, and whether it passes.
    fn check_ip(range: &str, peer: &str, forwarded: Option<&str>, trusted: bool, want: bool) {
        let auth = Authentication::Ip { range: parse_cidr(range).unwrap() };
        let request = match forwarded {
            Some(value) => headers(&[(FORWARDED_FOR_HEADER, value.to_string())]),
            None => HeaderMap::new(),
        };
        let outcome = authenticate(&auth, &request, BODY, peer.parse().unwrap(), trusted);
        assert_eq!(outcome.passed(), want, "{range} {peer} {forwarded:?} trusted={trusted}: {outcome:?}");
        if want {
            assert_eq!(outcome, AuthOutcome::Passed { method: "ip", secret_index: None });
        }
    }

    #[test]
    fn ip_table() {
        check_ip("203.0.113.0/24", "203.0.113.9", None, false, true);
        check_ip("203.0.113.0/24", "203.0.114.9", None, false, false);
        check_ip("203.0.113.7/32", "203.0.113.7", None, false, true);
        check_ip("203.0.113.7/32", "203.0.113.8", None, false, false);
        check_ip("0.0.0.0/0", "198.51.100.1", None, false, true);
        check_ip("2001:db8::/32", "2001:db8:1::5", None, false, true);
        check_ip("2001:db8::/32", "2001:db9::5", None, false, false);
        check_ip("2001:db8::/32", "203.0.113.9", None, false, false);
        check_ip("203.0.113.0/24", "2001:db8::1", None, false, false);
        // A dual-stack listener reports IPv4 peers as IPv4-mapped IPv6.
        check_ip("203.0.113.0/24", "::ffff:203.0.113.9", None, false, true);
        // X-Forwarded-For is ignored unless the proxy is trusted, whichever way that cuts.
        check_ip("203.0.113.0/24", "10.0.0.1", Some("203.0.113.9"), false, false);
        check_ip("203.0.113.0/24", "203.0.113.9", Some("10.0.0.1"), false, true);
        // Trusted: the first hop decides, not the peer and not later hops.
        check_ip("203.0.113.0/24", "10.0.0.1", Some("203.0.113.9"), true, true);
        check_ip("203.0.113.0/24", "10.0.0.1", Some("203.0.113.9, 10.0.0.2"), true, true);
        check_ip("203.0.113.0/24", "203.0.113.5", Some("198.51.100.1, 203.0.113.5"), true, false);
        check_ip("203.0.113.0/24", "10.0.0.1", Some("203.0.113.9:5123"), true, true);
        check_ip("2001:db8::/32", "10.0.0.1", Some("[2001:db8::7]:443"), true, true);
        check_ip("2001:db8::/32", "10.0.0.1", Some("2001:db8::7"), true, true);
        // A trusted proxy with a garbage header is refused, not replaced by the peer (the proxy) address.
        check_ip("10.0.0.0/8", "10.0.0.1", Some("unknown"), true, false);
        check_ip("10.0.0.0/8", "10.0.0.1", Some(""), true, false);
        // Trusted but absent: the request came straight in, so the peer is the client.
        check_ip("10.0.0.0/8", "10.0.0.1", None, true, true);
    }

    #[test]
    fn unauthenticated_accepts_anything() {
        let outcome = authenticate(&Authentication::Unauthenticated, &HeaderMap::new(), b"", PEER, false);
        assert_eq!(outcome, AuthOutcome::Passed { method: "none", secret_index: None });
    }

    #[test]
    fn parse_cidr_table() {
        fn check(input: &str, want: Option<&str>) {
            let got = parse_cidr(input);
            match want {
                Some(text) => assert_eq!(got.unwrap().to_string(), text, "{input}"),
                None => assert!(got.is_err(), "{input} should be rejected, got {got:?}"),
            }
        }
        check("203.0.113.0/24", Some("203.0.113.0/24"));
        check("10.1.2.3/8", Some("10.1.2.3/8"));
        check("0.0.0.0/0", Some("0.0.0.0/0"));
        check("2001:db8::/32", Some("2001:db8::/32"));
        check("::/0", Some("::/0"));
        check("203.0.113.7", None);
        check("2001:db8::1", None);
        check("203.0.113.0/33", None);
        check("2001:db8::/129", None);
        check("203.0.113.0/", None);
        check("/24", None);
        check("not-an-ip/24", None);
        check(" 203.0.113.0/24", None);
        check("fe80::1%eth0/64", None);
    }

    fn check_provider(
        name: &str,
        auth: &Authentication,
        request: &[(&'static str, String)],
        want: Result<(&str, usize), &str>,
    ) {
        let outcome = authenticate(auth, &headers(request), BODY, PEER, false);
        match (want, &outcome) {
            (Ok((method, index)), AuthOutcome::Passed { method: m, secret_index }) => {
                assert_eq!((*m, *secret_index), (method, Some(index)), "{name}")
            }
            (Err(words), AuthOutcome::Failed { reason }) => {
                assert!(reason.contains(words), "{name}: reason {reason:?} lacks {words:?}")
            }
            (want, got) => panic!("{name}: wanted {want:?}, got {got:?}"),
        }
    }

    fn gitlab(values: &[&str]) -> Authentication {
        Authentication::GitlabToken { secrets: values.iter().map(|v| Secret::new(v.to_string())).collect() }
    }

    fn bitbucket(values: &[&str]) -> Authentication {
        Authentication::BitbucketHmac { secrets: values.iter().map(|v| Secret::new(v.to_string())).collect() }
    }

    #[test]
    fn gitlab_token_table() {
        let t = |v: &str| (GITLAB_TOKEN_HEADER, v.to_string());
        check_provider("match", &gitlab(&["tok3n"]), &[t("tok3n")], Ok(("gitlab-token", 0)));
        check_provider("rotation: old", &gitlab(&["new", "old"]), &[t("old")], Ok(("gitlab-token", 1)));
        check_provider("rotation: new", &gitlab(&["new", "old"]), &[t("new")], Ok(("gitlab-token", 0)));
        check_provider("wrong", &gitlab(&["tok3n"]), &[t("tok3m")], Err("does not match any of the 1"));
        check_provider("prefix only", &gitlab(&["tok3n"]), &[t("tok3")], Err("does not match"));
        check_provider("longer", &gitlab(&["tok3n"]), &[t("tok3nn")], Err("does not match"));
        check_provider("case matters", &gitlab(&["tok3n"]), &[t("TOK3N")], Err("does not match"));
        check_provider(
            "missing",
            &gitlab(&["tok3n"]),
            &[("x-gitlab-event", "Push Hook".into())],
            Err("no X-Gitlab-Token"),
        );
        check_provider("repeated", &gitlab(&["tok3n"]), &[t("tok3n"), t("tok3n")], Err("more than once"));
        check_provider("empty secret never matches", &gitlab(&[""]), &[t("")], Err("no usable secret"));
        check_provider("no secrets", &gitlab(&[]), &[t("x")], Err("no usable secret"));
        // A GitHub signature is no GitLab token.
        check_provider(
            "github signature instead",
            &gitlab(&["tok3n"]),
            &[(SHA256_HEADER, sign256("tok3n", BODY))],
            Err("no X-Gitlab-Token"),
        );
    }

    #[test]
    fn bitbucket_hmac_table() {
        let h = |v: String| (BITBUCKET_SIGNATURE_HEADER, v);
        check_provider("sha256", &bitbucket(&["s3cr3t"]), &[h(sign256("s3cr3t", BODY))], Ok(("bitbucket-sha256", 0)));
        check_provider(
            "rotation",
            &bitbucket(&["new", "old"]),
            &[h(sign256("old", BODY))],
            Ok(("bitbucket-sha256", 1)),
        );
        check_provider("wrong secret", &bitbucket(&["s3cr3t"]), &[h(sign256("x", BODY))], Err("does not match"));
        check_provider(
            "tampered body",
            &bitbucket(&["s3cr3t"]),
            &[h(sign256("s3cr3t", br#"{"ref":"x"}"#))],
            Err("does not match"),
        );
        // GitHub's legacy SHA-1 in the same header is not accepted from Bitbucket.
        check_provider(
            "sha1 refused",
            &bitbucket(&["s3cr3t"]),
            &[h(sign1("s3cr3t", BODY))],
            Err("does not start with sha256="),
        );
        check_provider("missing", &bitbucket(&["s3cr3t"]), &[], Err("no X-Hub-Signature"));
        // GitHub's SHA-256 header is not Bitbucket's header.
        check_provider(
            "github header",
            &bitbucket(&["s3cr3t"]),
            &[(SHA256_HEADER, sign256("s3cr3t", BODY))],
            Err("no X-Hub-Signature"),
        );
        check_provider(
            "repeated",
            &bitbucket(&["s3cr3t"]),
            &[h(sign256("s3cr3t", BODY)), h(sign256("s3cr3t", BODY))],
            Err("more than once"),
        );
        check_provider("empty secret", &bitbucket(&[""]), &[h(sign256("", BODY))], Err("no usable secret"));
    }

    /// Bitbucket's signature is the same construction as GitHub's (HMAC-SHA256 of the raw body, lower-case
    /// hex, `sha256=` prefix), so GitHub's documented vector, sent in Bitbucket's header, must verify.
    #[test]
    fn bitbucket_accepts_the_documented_hmac_vector() {
        let request = headers(&[(
            BITBUCKET_SIGNATURE_HEADER,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".into(),
        )]);
        let outcome =
            authenticate(&bitbucket(&["It's a Secret to Everybody"]), &request, b"Hello, World!", PEER, false);
        assert_eq!(outcome, AuthOutcome::Passed { method: "bitbucket-sha256", secret_index: Some(0) });
    }

    #[test]
    fn debug_never_shows_secrets() {
        for auth in [gitlab(&["hunter2"]), bitbucket(&["hunter2"])] {
            let text = format!("{auth:?}");
            assert!(!text.contains("hunter2"), "{text}");
        }
        let text = format!("{:?}", secrets(&["hunter2"]));
        assert!(!text.contains("hunter2"), "{text}");
    }
}
