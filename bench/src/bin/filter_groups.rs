//! CodeBuild filter-group evaluation benchmark: how many deliveries per second one core judges against a
//! webhook with 5 groups of 4 filters, on real GitHub payloads (pipehook-inbound's fixtures).
//!
//! ```text
//! cargo run --release -p pipehook-bench --bin filter_groups -- [--seconds 3]
//! ```
//!
//! Two figures, single-threaded, over the payloads round-robin:
//! - `evaluate`: `filter_groups::evaluate` of an already normalized event (the filter step alone, with its full
//!   explanation built, as the inbound log records it);
//! - `normalize+evaluate`: JSON parse of the body + `event::normalize` + `evaluate` (what a payload URL request
//!   costs before its write).

use anyhow::{ensure, Context, Result};
use http::{HeaderMap, HeaderValue};
use pipehook_inbound::filter_groups::{compile, evaluate, SourceType, WebhookFilter};
use std::time::{Duration, Instant};

const PAYLOADS: [(&str, &str); 6] = [
    ("push-branch.json", "push"),
    ("push-tag.json", "push"),
    ("pull_request-opened.json", "pull_request"),
    ("pull_request-synchronize.json", "pull_request"),
    ("pull_request-closed-merged.json", "pull_request"),
    ("release-released.json", "release"),
];

fn f(t: &str, p: &str) -> WebhookFilter {
    WebhookFilter::new(t, p)
}

fn x(t: &str, p: &str) -> WebhookFilter {
    WebhookFilter::exclude(t, p)
}

fn groups() -> Vec<Vec<WebhookFilter>> {
    vec![
        vec![
            f("EVENT", "PUSH"),
            f("HEAD_REF", "^refs/heads/(main|master|release/.*)$"),
            f("ACTOR_ACCOUNT_ID", "^[0-9]+$"),
            x("COMMIT_MESSAGE", "\\[skip ci\\]"),
        ],
        vec![
            f("EVENT", "PULL_REQUEST_CREATED, PULL_REQUEST_UPDATED"),
            f("BASE_REF", "^refs/heads/(main|master)$"),
            f("HEAD_REF", "^refs/heads/(feature|fix)/"),
            x("ACTOR_ACCOUNT_ID", "^0$"),
        ],
        vec![
            f("EVENT", "RELEASED, PRERELEASED"),
            f("TAG_NAME", "^v?[0-9]+\\.[0-9]+"),
            f("RELEASE_NAME", "."),
            f("REPOSITORY_NAME", "^Hello-World$"),
        ],
        vec![
            f("EVENT", "PUSH"),
            f("HEAD_REF", "^refs/tags/"),
            f("ORGANIZATION_NAME", "^Codertocat$"),
            x("ACTOR_ACCOUNT_ID", "^1$"),
        ],
        vec![
            f("EVENT", "PULL_REQUEST_MERGED"),
            f("BASE_REF", "^refs/heads/"),
            f("REPOSITORY_NAME", "World"),
            x("HEAD_REF", "^refs/heads/dependabot/"),
        ],
    ]
}

fn main() -> Result<()> {
    let mut seconds = 3u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().context("--seconds N")?.parse()?,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/pipehook-inbound/tests/fixtures/github");
    let mut inputs = Vec::new();
    for (file, event) in PAYLOADS {
        let body = std::fs::read(format!("{dir}/{file}")).with_context(|| file.to_owned())?;
        let mut headers = HeaderMap::new();
        headers.insert("x-github-event", HeaderValue::from_static(event));
        inputs.push((file, headers, body));
    }
    let compiled = compile(&groups(), SourceType::Github).map_err(|e| anyhow::anyhow!("{e}"))?;
    ensure!(compiled.len() == 5, "5 groups");
    let events: Vec<_> = inputs
        .iter()
        .map(|(_, h, b)| pipehook_inbound::event::normalize(h, &serde_json::from_slice(b).unwrap()))
        .collect();
    for ((file, _, _), e) in inputs.iter().zip(&events) {
        let v = evaluate(&compiled, e);
        println!("{file:32} passed={:5} {}", v.passed, v.reason);
    }

    let limit = Duration::from_secs(seconds);
    let (mut n, start) = (0u64, Instant::now());
    while start.elapsed() < limit {
        for e in &events {
            std::hint::black_box(evaluate(&compiled, std::hint::black_box(e)));
        }
        n += events.len() as u64;
    }
    let eval_rate = n as f64 / start.elapsed().as_secs_f64();

    let (mut m, start) = (0u64, Instant::now());
    while start.elapsed() < limit {
        for (_, h, b) in &inputs {
            let payload: serde_json::Value = serde_json::from_slice(std::hint::black_box(b))?;
            let e = pipehook_inbound::event::normalize(h, &payload);
            std::hint::black_box(evaluate(&compiled, &e));
        }
        m += inputs.len() as u64;
    }
    let full_rate = m as f64 / start.elapsed().as_secs_f64();
    println!("evaluate:            {eval_rate:>12.0} evaluations/s ({:.2} µs each)", 1e6 / eval_rate);
    println!("normalize+evaluate:  {full_rate:>12.0} deliveries/s ({:.2} µs each)", 1e6 / full_rate);
    Ok(())
}
