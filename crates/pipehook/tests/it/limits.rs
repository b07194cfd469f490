//! Issue 17, "one request must never stop the server": connection, header, idle and body limits on the real
//! socket, authentication before any body is buffered, a budget of body bytes in memory, and bounded metric
//! labels.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::TestServer;
use crate::webhooks::{create_pipeline, fixture, github, post, sign, SECRET};

fn addr(s: &TestServer) -> String {
    s.url.trim_start_matches("http://").to_owned()
}

/// Sends `head` (and `body`) on a new connection and reads what comes back until the server closes or
/// `wait` passes. Returns the text read and how long it took.
async fn raw(s: &TestServer, head: &str, body: &[u8], wait: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut sock = TcpStream::connect(addr(s)).await.unwrap();
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(body).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(wait, sock.read_to_end(&mut got)).await;
    (String::from_utf8_lossy(&got).into_owned(), started.elapsed())
}

async fn webhook_url(s: &TestServer) -> String {
    let c = crate::webhooks::client(s);
    create_pipeline(&c, "app", "master", "true").await;
    let definition = crate::webhooks::definition(
        "gh",
        "app",
        aws_sdk_codepipeline::types::WebhookAuthenticationType::GithubHmac,
        crate::webhooks::hmac_config(SECRET),
    );
    c.put_webhook().webhook(definition).send().await.unwrap().webhook.unwrap().url
}

/// An unknown trigger token, or an unknown access key, is answered without reading the body: a client that
/// declares 20 MB and sends none of it still gets its answer at once.
#[tokio::test]
async fn unknown_tokens_and_keys_are_answered_before_the_body_is_read() {
    let s = TestServer::start().await;
    let head = format!(
        "POST /trigger?t=unknown-token&v=1 HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: 20000000\r\n\r\n",
        addr(&s)
    );
    let (answer, took) = raw(&s, &head, b"{", Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let head =
        format!("POST /webhooks?t=unknown-token HTTP/1.1\r\nhost: {}\r\ncontent-length: 20000000\r\n\r\n", addr(&s));
    let (answer, _) = raw(&s, &head, b"{", Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    // The AWS endpoint: an access key id that does not exist.
    let head = format!(
        "POST / HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-amz-json-1.1\r\n\
         x-amz-target: CodePipeline_20150709.ListPipelines\r\nx-amz-date: 20260101T000000Z\r\n\
         authorization: AWS4-HMAC-SHA256 Credential=AKIANOTAREALKEY00000/20260101/us-east-1/codepipeline/aws4_request, \
         SignedHeaders=host;x-amz-date;x-amz-target, \
         Signature=0000000000000000000000000000000000000000000000000000000000000000\r\ncontent-length: 9000000\r\n\r\n",
        addr(&s)
    );
    let (answer, took) = raw(&s, &head, b"{", Duration::from_secs(10)).await;
    assert!(answer.contains("UnrecognizedClientException"), "{answer}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // A declared length over the cap is refused before reading, for a real token too.
    let url = webhook_url(&s).await;
    let path = &url[url.find("/trigger").unwrap()..];
    let head = format!("POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: 999999999\r\n\r\n", addr(&s));
    let (answer, _) = raw(&s, &head, b"", Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

/// A client that sends part of a body and stops gets 408 after the body timeout instead of holding the
/// request (and its memory) forever.
#[tokio::test]
async fn slow_bodies_time_out() {
    let s = TestServer::builder().env("PIPEHOOK_HTTP_BODY_TIMEOUT_SECONDS", "1").start().await.unwrap();
    let url = webhook_url(&s).await;
    let path = &url[url.find("/trigger").unwrap()..];
    let head = format!("POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: 5000\r\n\r\n", addr(&s));
    let (answer, took) = raw(&s, &head, b"{\"ref\":", Duration::from_secs(15)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(answer.contains("requestId"), "{answer}");
}

/// Connections that send nothing, or sit idle after a request, are closed after the header timeout; with
/// more idle connections than the cap, a new client is still served once the idle ones are closed.
#[tokio::test]
async fn idle_connections_are_closed_and_the_cap_does_not_lock_people_out() {
    let s = TestServer::builder()
        .env("PIPEHOOK_HTTP_HEADER_TIMEOUT_SECONDS", "1")
        .env("PIPEHOOK_HTTP_MAX_CONNECTIONS", "8")
        .start()
        .await
        .unwrap();
    // Nothing sent: closed.
    let (answer, took) = raw(&s, "", b"", Duration::from_secs(15)).await;
    assert!(took < Duration::from_secs(10), "the server closed the silent connection: {took:?} {answer:?}");
    // Idle after one request on a keep-alive connection: closed.
    let mut sock = TcpStream::connect(addr(&s)).await.unwrap();
    sock.write_all(format!("GET /healthz HTTP/1.1\r\nhost: {}\r\n\r\n", addr(&s)).as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let started = Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(15), sock.read_to_end(&mut got)).await;
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    assert!(started.elapsed() < Duration::from_secs(10), "idle keep-alive connection closed");
    // Four times the cap in silent connections, then a real client.
    let mut idle = Vec::new();
    for _ in 0..32 {
        idle.push(TcpStream::connect(addr(&s)).await.unwrap());
    }
    let started = Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(30), reqwest::get(format!("{}/healthz", s.url))).await;
    assert!(res.is_ok_and(|r| r.is_ok_and(|r| r.status() == 200)), "served after {:?}", started.elapsed());
    drop(idle);
}

/// Bodies held in memory at once are bounded: with the budget taken by a slow client, another request's body
/// waits for room; the slow client's body timeout gives the room back and the waiting request goes through.
#[tokio::test]
async fn the_body_budget_bounds_memory_across_requests() {
    let s = TestServer::builder()
        .env("PIPEHOOK_HTTP_MAX_INFLIGHT_BODY_BYTES", "10000")
        .env("PIPEHOOK_HTTP_BODY_TIMEOUT_SECONDS", "3")
        .start()
        .await
        .unwrap();
    let url = webhook_url(&s).await;
    let path = url[url.find("/trigger").unwrap()..].to_owned();
    let push = fixture("github/push-branch.json");
    assert!(push.len() > 5000 && push.len() < 10000);
    // A slow client reserves 9,000 of the 10,000 bytes and sends nothing more.
    let mut slow = TcpStream::connect(addr(&s)).await.unwrap();
    let head = format!("POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: 9000\r\n\r\n{{", addr(&s));
    slow.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // A real push does not fit beside it: it waits until the slow body times out (about 2 s from now).
    let started = Instant::now();
    let (status, body) = post(&url, &push, &github("push", "b-1", Some(sign(SECRET, &push)))).await;
    let waited = started.elapsed();
    assert_eq!((status, body["result"].as_str()), (200, Some("triggered")), "{body}");
    assert!(waited >= Duration::from_millis(1500), "the push waited for room: {waited:?}");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut rest)).await;
    assert!(String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 408"), "{}", String::from_utf8_lossy(&rest));
    // With the room back, pushes go through.
    let (status, _) = post(&url, &push, &github("push", "b-2", Some(sign(SECRET, &push)))).await;
    assert_eq!(status, 200);
}

/// A made-up HTTP method does not become a metric label of its own (each would be a new series).
#[tokio::test]
async fn made_up_methods_do_not_grow_the_metrics() {
    let s = TestServer::start().await;
    for i in 0..20 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        let _ = s.client().request(method, format!("{}/healthz", s.url)).send().await.unwrap();
    }
    let text = s.client().get(format!("{}/metrics", s.url)).send().await.unwrap().text().await.unwrap();
    assert!(!text.contains("MADEUP"), "{text}");
    assert!(text.contains(r#"method="other""#), "{text}");
}

/// Peak resident memory (VmHWM) of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// A parsed JSON value takes many times its text (an array of small objects about 50 times), so a body's
/// values are counted before it is parsed: a document of hundreds of thousands of values is refused as
/// `rejected` without being parsed, four at once leave the server's memory where it was, and a large
/// document of few values (long strings) is still read. Measured on the real binary (its own process).
#[tokio::test]
async fn documents_of_too_many_values_are_refused_before_parsing() {
    use aws_sdk_codepipeline::types::{WebhookAuthConfiguration, WebhookAuthenticationType};
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let mut child = tokio::process::Command::from(crate::support::pipehook_cmd())
        .envs([
            ("PIPEHOOK_BOOTSTRAP_AWS_ACCESS_KEY_ID", crate::support::ACCESS_KEY_ID),
            ("PIPEHOOK_BOOTSTRAP_AWS_SECRET_ACCESS_KEY", crate::support::SECRET_ACCESS_KEY),
            ("PIPEHOOK_HTTP_MAX_INFLIGHT_BODY_BYTES", "16777216"),
            ("PIPEHOOK_SQLITE_DURABILITY", "normal"),
        ])
        .args(["serve", "--role", "api", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    for _ in 0..200 {
        if reqwest::get(format!("{url}/healthz")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = crate::support::codepipeline(
        &url,
        crate::support::ACCESS_KEY_ID,
        crate::support::SECRET_ACCESS_KEY,
        "us-east-1",
    );
    create_pipeline(&c, "app", "master", "true").await;
    let definition = crate::webhooks::definition(
        "open",
        "app",
        WebhookAuthenticationType::Unauthenticated,
        WebhookAuthConfiguration::builder().build(),
    );
    let trigger = c.put_webhook().webhook(definition).send().await.unwrap().webhook.unwrap().url;
    // About 5 MiB of small objects (about a million values): parsed, it would take some 280 MB.
    let mut body = String::from("[");
    while body.len() < 5 * 1024 * 1024 {
        body.push_str("{\"a\":1,\"b\":[2]},");
    }
    body.push_str("{}]");
    let before = peak_rss(pid);
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..4 {
        let (trigger, body) = (trigger.clone(), body.clone());
        posts.spawn(async move { post(&trigger, body.as_bytes(), &github("push", &format!("big-{i}"), None)).await });
    }
    while let Some(answer) = posts.join_next().await {
        let (status, answer) = answer.unwrap();
        assert_eq!(status, 400, "{answer}");
        assert!(answer["message"].as_str().unwrap().contains("values"), "{answer}");
    }
    let grew = peak_rss(pid).saturating_sub(before);
    eprintln!("peak RSS: +{} MiB for four documents of a million values at once", grew / (1024 * 1024));
    assert!(grew < 100 * 1024 * 1024, "+{grew} bytes");
    // 4 MiB in a few long strings: read, and filtered by the webhook's rule.
    let long = serde_json::json!({"ref": "refs/heads/other", "blob": "x".repeat(4 * 1024 * 1024)}).to_string();
    let (status, answer) = post(&trigger, long.as_bytes(), &github("push", "long", None)).await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("filtered")), "{answer}");
    let _ = child.kill().await;
}

/// A client that sends its whole request and then shuts down its write side (`shutdown(SHUT_WR)`, what
/// `curl --no-keepalive`-style tools and some proxies do) still gets the whole answer: a GET and a POST whose
/// body the handler reads. A connection half-closed before sending a request is still closed at once.
#[tokio::test]
async fn half_closed_clients_get_their_answer() {
    let s = TestServer::builder().env("PIPEHOOK_HTTP_HEADER_TIMEOUT_SECONDS", "2").start().await.unwrap();
    let url = webhook_url(&s).await;
    let path = url[url.find("/trigger").unwrap()..].to_owned();
    let push = fixture("github/push-branch.json");
    async fn half_closed(s: &TestServer, request: &[u8]) -> String {
        let mut sock = TcpStream::connect(addr(s)).await.unwrap();
        sock.write_all(request).await.unwrap();
        sock.shutdown().await.unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), sock.read_to_end(&mut got))
            .await
            .expect("the server answers and closes within 20 s")
            .unwrap();
        String::from_utf8_lossy(&got).into_owned()
    }
    for i in 0..20 {
        let get = format!("GET /healthz HTTP/1.1\r\nhost: {}\r\n\r\n", addr(&s));
        let answer = half_closed(&s, get.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "GET {i}: {answer:?}");

        let mut post = format!(
            "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\nx-github-event: push\r\n\
             x-github-delivery: half-{i}\r\nx-hub-signature-256: {}\r\ncontent-length: {}\r\n\r\n",
            addr(&s),
            sign(SECRET, &push),
            push.len()
        )
        .into_bytes();
        post.extend_from_slice(&push);
        let answer = half_closed(&s, &post).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "POST {i}: {answer:?}");
        assert!(answer.contains("\"result\""), "POST {i}: the whole answer: {answer:?}");
    }
    // Half-closed with nothing sent, or with half a request head: closed at once, not held to the timeout.
    for request in ["", "GET /healthz HTTP/1.1\r\nhost: x"] {
        let started = Instant::now();
        let answer = half_closed(&s, request.as_bytes()).await;
        assert!(!answer.starts_with("HTTP/1.1 200"), "{request:?}: {answer:?}");
        assert!(started.elapsed() < Duration::from_secs(1), "{request:?}: {:?}", started.elapsed());
    }
}
