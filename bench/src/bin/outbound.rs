//! Outbound delivery benchmark: the real pipehook (in this process, on a real socket, SQLite file with
//! `synchronous=FULL`) publishing events over its REST API to a fast local receiver.
//!
//! ```text
//! cargo run --release -p pipehook-bench --bin outbound -- [--events 20000] [--fanout-events 200] [--concurrency 32]
//! ```
//!
//! Scenarios, each on a fresh data directory:
//! 1. `one-to-one`: `--events` events published by `--concurrency` HTTP clients, one hook each: published
//!    events/s (202 = durably stored with its deliveries), end-to-end deliveries/s (first publish to last
//!    delivery), p50/p99 publish-to-delivery latency.
//! 2. `half-rate`: the same at half the measured end-to-end rate, paced: its p99 latency is the figure that
//!    matters for "how late is a webhook under normal load".
//! 3. `fan-out`: `--fanout-events` events each delivered to 100 hooks.
//!
//! `--backlog-events N` runs only the memory scenario instead: N events to 100 hooks whose receiver takes
//! 10 s to answer, so N × 100 deliveries wait while the workers keep claiming them; RSS is printed at every
//! tenth.
//!
//! The receiver stamps each delivery's arrival; each event's payload carries its publish time. Peak RSS is
//! the whole process (server, receiver and load generator) and is reset between scenarios.

use anyhow::{ensure, Context, Result};
use axum::extract::State;
use axum::routing::post;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "phk_bench_token_0123456789abcdefghijklm";

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64
}

#[derive(Default)]
struct Received {
    latencies_us: Mutex<Vec<u64>>,
    last: Mutex<Option<Instant>>,
}

/// The backlog scenario's receiver: answers after 10 s, so deliveries pile up.
async fn slow(_body: axum::body::Bytes) -> &'static str {
    tokio::time::sleep(Duration::from_secs(10)).await;
    "ok"
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|x| x.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Publishes `events` events to 100 hooks whose receiver takes 10 s to answer, printing RSS as the backlog
/// of waiting deliveries grows (the workers keep claiming and deferring them meanwhile).
async fn backlog(events: usize, concurrency: usize) -> Result<()> {
    let app = axum::Router::new().route("/{*path}", post(slow));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let s = start_pipehook().await?;
    create_hooks(&client, &s, &receiver, 100).await?;
    let started = Instant::now();
    let step = (events / 10).max(1);
    let mut done = 0;
    while done < events {
        let chunk = step.min(events - done);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let (client, next, url) = (client.clone(), next.clone(), s.url.clone());
            tasks.spawn(async move {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < chunk {
                    let r = client
                        .post(format!("{url}/api/orgs/default/events"))
                        .header("authorization", format!("token {TOKEN}"))
                        .json(&serde_json::json!({"kind": "build_failed", "payload": {"app_name": "bench"}}))
                        .send()
                        .await?;
                    ensure!(r.status() == 202, "publish answered {}", r.status());
                }
                Ok::<(), anyhow::Error>(())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        done += chunk;
        println!(
            "backlog     {:>9} deliveries waiting after {:>6.1} s | RSS {:>6.1} MiB (peak {:>6.1})",
            done * 100,
            started.elapsed().as_secs_f64(),
            rss_mib(),
            peak_rss_mib()
        );
    }
    s.stop().await;
    Ok(())
}

async fn receive(State(r): State<Arc<Received>>, body: axum::body::Bytes) -> &'static str {
    let now = now_us();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
        if let Some(sent) = v.get("sent_us").and_then(|x| x.as_u64()) {
            r.latencies_us.lock().unwrap().push(now.saturating_sub(sent));
        }
    }
    *r.last.lock().unwrap() = Some(Instant::now());
    "ok"
}

struct Args {
    events: usize,
    fanout_events: usize,
    concurrency: usize,
    /// Events (×100 hooks) for the backlog scenario; 0 skips it.
    backlog_events: usize,
}

fn parse_args() -> Result<Args> {
    let mut a = Args { events: 20_000, fanout_events: 200, concurrency: 32, backlog_events: 0 };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).context("flag needs a value")?.parse::<usize>().context("a number")?;
        match argv[i].as_str() {
            "--events" => a.events = v,
            "--fanout-events" => a.fanout_events = v,
            "--concurrency" => a.concurrency = v,
            "--backlog-events" => a.backlog_events = v,
            f => anyhow::bail!("unknown flag {f}"),
        }
        i += 2;
    }
    Ok(a)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|x| x.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

struct Server {
    url: String,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), pipehook::app::StartError>>,
    _dir: tempfile::TempDir,
}

async fn start_pipehook() -> Result<Server> {
    let dir = tempfile::tempdir()?;
    let env: HashMap<String, String> = [
        ("PIPEHOOK_DATA_DIR", dir.path().to_str().unwrap_or_default()),
        ("PIPEHOOK_BOOTSTRAP_TOKEN", TOKEN),
        ("PIPEHOOK_OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8"),
        ("PIPEHOOK_OUTBOUND_CONCURRENCY", "128"),
        ("PIPEHOOK_OUTBOUND_ENDPOINT_CONCURRENCY", "128"),
        ("PIPEHOOK_WORKER_POLL_MS", "20"),
        ("PIPEHOOK_LOG_FORMAT", "json"),
        ("RUST_LOG", "warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let config = pipehook::config::Config::load(None, &|k| env.get(k).cloned(), &Default::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(pipehook::run(config, Some(listener), shutdown.clone()));
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(format!("{url}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(Server { url, shutdown, handle, _dir: dir });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("pipehook did not start")
}

impl Server {
    async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.handle.await;
    }
}

async fn create_hooks(client: &reqwest::Client, s: &Server, receiver: &str, n: usize) -> Result<()> {
    for i in 0..n {
        let r = client
            .post(format!("{}/api/orgs/default/hooks", s.url))
            .header("authorization", format!("token {TOKEN}"))
            .json(&serde_json::json!({"organizationName": "default", "name": format!("h{i}"), "displayName": "bench",
                "payloadUrl": format!("{receiver}/h{i}"), "active": true, "secret": "bench-secret"}))
            .send()
            .await?;
        ensure!(r.status() == 201, "creating a hook: {}", r.status());
    }
    Ok(())
}

struct Outcome {
    publish_per_s: f64,
    deliveries_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    publish_p99_ms: f64,
    rss_mib: f64,
}

/// Publishes `events` events (paced at `rate` events/s when given) and waits for `events * fanout`
/// deliveries.
async fn run(
    s: &Server,
    received: &Arc<Received>,
    events: usize,
    fanout: usize,
    conc: usize,
    rate: Option<f64>,
) -> Result<Outcome> {
    received.latencies_us.lock().unwrap().clear();
    let client = reqwest::Client::builder().pool_max_idle_per_host(conc).build()?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..conc {
        let (client, next, url) = (client.clone(), next.clone(), s.url.clone());
        tasks.spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= events {
                    break;
                }
                if let Some(r) = rate {
                    let due = started + Duration::from_secs_f64(i as f64 / r);
                    tokio::time::sleep_until(due.into()).await;
                }
                let t = Instant::now();
                let resp = client
                    .post(format!("{url}/api/orgs/default/events"))
                    .header("authorization", format!("token {TOKEN}"))
                    .json(&serde_json::json!({"kind": "build_succeeded", "payload": {"sent_us": now_us(), "i": i, "app_name": "bench"}}))
                    .send()
                    .await?;
                ensure!(resp.status() == 202, "publish answered {}", resp.status());
                lat.push(t.elapsed().as_micros() as u64);
            }
            Ok::<Vec<u64>, anyhow::Error>(lat)
        });
    }
    let mut publish_lat = Vec::new();
    while let Some(r) = tasks.join_next().await {
        publish_lat.extend(r??);
    }
    let published_in = started.elapsed();
    let want = events * fanout;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let n = received.latencies_us.lock().unwrap().len();
        if n >= want {
            break;
        }
        ensure!(Instant::now() < deadline, "only {n} of {want} deliveries arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let last = received.last.lock().unwrap().unwrap_or_else(Instant::now);
    let total = last.duration_since(started);
    let mut lats = received.latencies_us.lock().unwrap().clone();
    lats.sort_unstable();
    publish_lat.sort_unstable();
    Ok(Outcome {
        publish_per_s: events as f64 / published_in.as_secs_f64(),
        deliveries_per_s: want as f64 / total.as_secs_f64(),
        p50_ms: percentile(&lats, 0.50),
        p99_ms: percentile(&lats, 0.99),
        publish_p99_ms: percentile(&publish_lat, 0.99),
        rss_mib: peak_rss_mib(),
    })
}

fn print(name: &str, o: &Outcome) {
    println!(
        "{name:<11} publish {:>8.0} events/s (p99 {:>6.1} ms) | delivered {:>8.0}/s | publish→delivery p50 {:>7.1} ms p99 {:>7.1} ms | peak RSS {:>6.1} MiB",
        o.publish_per_s, o.publish_p99_ms, o.deliveries_per_s, o.p50_ms, o.p99_ms, o.rss_mib
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    if args.backlog_events > 0 {
        return backlog(args.backlog_events, args.concurrency).await;
    }
    let received = Arc::new(Received::default());
    let app = axum::Router::new().route("/{*path}", post(receive)).with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();

    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let s = start_pipehook().await?;
    create_hooks(&client, &s, &receiver, 1).await?;
    let full = run(&s, &received, args.events, 1, args.concurrency, None).await?;
    print("one-to-one", &full);
    let half = run(&s, &received, args.events / 2, 1, args.concurrency, Some(full.deliveries_per_s / 2.0)).await?;
    print("half-rate", &half);
    s.stop().await;

    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let s = start_pipehook().await?;
    create_hooks(&client, &s, &receiver, 100).await?;
    let fan = run(&s, &received, args.fanout_events, 100, args.concurrency.min(8), None).await?;
    print("fan-out×100", &fan);
    s.stop().await;
    Ok(())
}
