//! What one request (or one flood of them) can make the inbound side spend.
//!
//! - **Rule evaluation**: JSONPath rules run on a blocking thread, never on the async runtime, at most
//!   [`InboundLimits::rule_evaluations`] at once, each request waiting at most [`InboundLimits::rule_timeout`]
//!   for its rules (waiting for a slot included). A rule whose cost bound on the payload is over
//!   [`InboundLimits::rule_max_cost`] is not run (`pipehook_inbound::rules::evaluate_bounded`). A rule still
//!   running when the time is up fails with an `error` saying so; the thread finishes it (a query cannot be
//!   interrupted) while keeping its slot, and runs no further rule of that request.
//! - **The inbound log under floods**: an unauthenticated request is logged without its body (its size and
//!   SHA-256 instead, [`omit_body`]), and at most [`InboundLimits::unauthenticated_per_minute`] of them per
//!   webhook per minute on this node; the others are counted (`pipehook_inbound_dropped_total{reason=
//!   "unauthenticated_rate"}`) and summed up in one record per webhook and minute ([`record_dropped`]).

use pipehook_domain::org::OrgId;
use pipehook_domain::time::Timestamp;
use pipehook_inbound::rules::{CompiledRule, RuleOutcome};
use pipehook_store::{InboundRecord, TriggerWrite};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::AppState;

/// The settings (`inbound.*` in the configuration).
#[derive(Debug, Clone)]
pub struct InboundLimits {
    /// Unauthenticated requests logged per webhook per minute on one node; the rest are only counted.
    pub unauthenticated_per_minute: u32,
    /// Rule evaluations running at once on one node, each on a blocking thread.
    pub rule_evaluations: usize,
    /// How long a request waits for its rules, waiting for a free evaluation included.
    pub rule_timeout: Duration,
    /// The most node visits a rule may be bound to take on a payload; over it, the rule is not run.
    pub rule_max_cost: u64,
}

impl Default for InboundLimits {
    fn default() -> Self {
        InboundLimits {
            unauthenticated_per_minute: 60,
            rule_evaluations: 2,
            rule_timeout: Duration::from_secs(2),
            rule_max_cost: 50_000_000,
        }
    }
}

/// The window unauthenticated requests are counted in.
const WINDOW: Duration = Duration::from_secs(60);

/// The limits and their state on this node.
pub struct InboundGuard {
    pub limits: InboundLimits,
    evaluations: Arc<tokio::sync::Semaphore>,
    windows: Mutex<Windows>,
}

#[derive(Default)]
struct Windows {
    open: HashMap<i64, Window>,
    /// Windows that ended with requests dropped, waiting for [`record_dropped`].
    closed: Vec<Dropped>,
}

struct Window {
    started: Instant,
    from: Timestamp,
    logged: u32,
    dropped: u64,
    org: OrgId,
    webhook_name: String,
    /// The peer of the last request dropped.
    peer: String,
}

/// Unauthenticated requests to one webhook counted and not logged during one window.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dropped {
    pub org: OrgId,
    pub webhook_id: i64,
    pub webhook_name: String,
    pub from: Timestamp,
    pub until: Timestamp,
    pub count: u64,
    pub peer: String,
}

impl Window {
    fn close(self, webhook_id: i64) -> Option<Dropped> {
        (self.dropped > 0).then(|| Dropped {
            org: self.org,
            webhook_id,
            webhook_name: self.webhook_name,
            from: self.from,
            until: Timestamp(self.from.0.saturating_add(WINDOW.as_millis() as i64)),
            count: self.dropped,
            peer: self.peer,
        })
    }
}

impl Default for InboundGuard {
    fn default() -> Self {
        InboundGuard::new(InboundLimits::default())
    }
}

impl InboundGuard {
    pub fn new(limits: InboundLimits) -> Self {
        let slots = limits.rule_evaluations.max(1);
        InboundGuard { limits, evaluations: Arc::new(tokio::sync::Semaphore::new(slots)), windows: Mutex::default() }
    }

    /// Whether this unauthenticated request to `webhook_id` is logged (true) or only counted (false).
    pub(crate) fn admit_unauthenticated(&self, org: OrgId, webhook_id: i64, webhook_name: &str, peer: &str) -> bool {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let fresh = || Window {
            started: now,
            from: Timestamp::now(),
            logged: 0,
            dropped: 0,
            org,
            webhook_name: webhook_name.to_owned(),
            peer: String::new(),
        };
        let Windows { open, closed } = &mut *windows;
        let window = open.entry(webhook_id).or_insert_with(fresh);
        if now.duration_since(window.started) >= WINDOW {
            let ended = std::mem::replace(window, fresh());
            closed.extend(ended.close(webhook_id));
        }
        if window.logged < self.limits.unauthenticated_per_minute {
            window.logged += 1;
            true
        } else {
            window.dropped += 1;
            peer.clone_into(&mut window.peer);
            false
        }
    }

    /// The windows that ended with requests dropped (all of them with `everything`, at shutdown); forgets
    /// the ended windows.
    pub(crate) fn take_dropped(&self, everything: bool) -> Vec<Dropped> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let Windows { open, closed } = &mut *windows;
        let ended: Vec<i64> =
            open.iter().filter(|(_, w)| everything || w.started.elapsed() >= WINDOW).map(|(id, _)| *id).collect();
        for id in ended {
            if let Some(d) = open.remove(&id).and_then(|w| w.close(id)) {
                closed.push(d);
            }
        }
        std::mem::take(closed)
    }

    /// Runs `rules` on `payload` off the async runtime, within the cost and time budgets; one outcome per rule,
    /// in order (see the module docs for what a rule over a budget gets).
    pub(crate) async fn evaluate(&self, rules: &[CompiledRule], payload: Value) -> Vec<RuleOutcome> {
        if rules.is_empty() {
            return Vec::new();
        }
        let budget = self.limits.rule_timeout;
        let deadline = tokio::time::Instant::now() + budget;
        let ms = budget.as_millis();
        let permit = match tokio::time::timeout_at(deadline, self.evaluations.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            _ => {
                let error = format!(
                    "not evaluated: the server's {} rule evaluation slots stayed busy for the whole time budget of \
                     {ms} ms",
                    self.limits.rule_evaluations.max(1)
                );
                return rules.iter().map(|r| RuleOutcome::failed(r, error.clone())).collect();
            }
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let owned = rules.to_vec();
        let max_cost = self.limits.rule_max_cost;
        // Detached: a rule still running when the time is up keeps its thread and its slot until it ends.
        drop(tokio::task::spawn_blocking(move || {
            let _slot = permit;
            pipehook_inbound::rules::evaluate_bounded(&owned, &payload, max_cost, |o| tx.send(o).is_ok());
        }));
        let mut outcomes = Vec::with_capacity(rules.len());
        let mut timed_out = false;
        while outcomes.len() < rules.len() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(o)) => outcomes.push(o),
                Ok(None) => break,
                Err(_) => {
                    timed_out = true;
                    break;
                }
            }
        }
        // Closing the channel tells the thread to run no further rule.
        drop(rx);
        let done = outcomes.len();
        for (i, rule) in rules.iter().enumerate().skip(done) {
            let error = match (i == done, timed_out) {
                (true, true) => format!("ran out of the time budget of {ms} ms (the rule was still being evaluated)"),
                (false, true) => "not evaluated: an earlier rule ran out of the time budget".to_owned(),
                (_, false) => "not evaluated: the evaluation failed".to_owned(),
            };
            outcomes.push(RuleOutcome::failed(rule, error));
        }
        outcomes
    }
}

/// What a logged unauthenticated request keeps instead of its body: no body, and in `detail` why
/// (`bodyOmitted`), its size (`bodyBytes`) and its hex SHA-256 (`bodySha256`).
pub(crate) fn omit_body(record: &mut InboundRecord, body: &[u8]) {
    record.body = String::new();
    record.body_truncated = false;
    if !record.detail.is_object() {
        record.detail = json!({});
    }
    record.detail["bodyOmitted"] = json!("unauthenticated");
    record.detail["bodyBytes"] = json!(body.len());
    record.detail["bodySha256"] = json!(hex::encode(Sha256::digest(body)));
}

/// Writes one record per webhook for the unauthenticated requests dropped in each ended window, every
/// `every`, until the future is dropped. Also a warning in the server's log, one line per record.
pub async fn record_dropped(state: AppState, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        write_dropped(&state, false).await;
    }
}

/// Writes the records of the windows that ended (all windows with `everything`).
pub async fn write_dropped(state: &AppState, everything: bool) {
    for d in state.inbound_guard.take_dropped(everything) {
        tracing::warn!(
            webhook = %d.webhook_name,
            dropped = d.count,
            last_peer = %d.peer,
            "unauthenticated requests over the log's rate limit were counted, not logged"
        );
        let record = InboundRecord {
            seq: 0,
            id: uuid::Uuid::new_v4().to_string(),
            org: d.org,
            webhook_id: d.webhook_id,
            webhook_name: d.webhook_name.clone(),
            received_at: d.until.min(Timestamp::now()),
            peer: d.peer.clone(),
            headers: json!({}),
            body: String::new(),
            body_truncated: false,
            delivery_id: None,
            verdict: "unauthenticated".into(),
            detail: json!({
                "reason": format!(
                    "{} more unauthenticated requests in this minute were counted, not logged (at most {} are \
                     logged per webhook and minute)",
                    d.count, state.inbound_guard.limits.unauthenticated_per_minute
                ),
                "dropped": d.count,
                "from": d.from.millis(),
                "until": d.until.millis(),
                "bodyOmitted": "unauthenticated",
            }),
            execution_id: None,
        };
        let write = TriggerWrite { inbound: record, delivery: None, execution: None, touch: None };
        if let Err(e) = state.store.record_trigger(write).await {
            tracing::warn!(error = %e, "recording a summary of dropped unauthenticated requests failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthenticated_requests_are_counted_past_the_limit() {
        let guard = InboundGuard::new(InboundLimits { unauthenticated_per_minute: 3, ..InboundLimits::default() });
        let admitted: Vec<bool> = (0..5).map(|_| guard.admit_unauthenticated(OrgId(1), 7, "gh", "10.0.0.1")).collect();
        assert_eq!(admitted, [true, true, true, false, false]);
        assert!(guard.admit_unauthenticated(OrgId(1), -8, "project:p", "10.0.0.2"), "per webhook");
        assert!(guard.take_dropped(false).is_empty(), "the window has not ended");
        let dropped = guard.take_dropped(true);
        assert_eq!(dropped.len(), 1, "only the webhook that dropped some: {dropped:?}");
        assert_eq!((dropped[0].webhook_id, dropped[0].count, dropped[0].peer.as_str()), (7, 2, "10.0.0.1"));
        assert!(guard.take_dropped(true).is_empty(), "taken once");
        assert!(guard.admit_unauthenticated(OrgId(1), 7, "gh", "10.0.0.1"), "a new window");
        let none = InboundGuard::new(InboundLimits { unauthenticated_per_minute: 0, ..InboundLimits::default() });
        assert!(!none.admit_unauthenticated(OrgId(1), 7, "gh", "10.0.0.1"), "0: none logged");
    }

    #[test]
    fn an_omitted_body_leaves_its_size_and_hash() {
        let mut r = InboundRecord {
            seq: 0,
            id: "r".into(),
            org: OrgId(1),
            webhook_id: 1,
            webhook_name: "gh".into(),
            received_at: Timestamp(0),
            peer: "127.0.0.1".into(),
            headers: json!({}),
            body: "abc".into(),
            body_truncated: true,
            delivery_id: None,
            verdict: "unauthenticated".into(),
            detail: json!({"reason": "bad signature"}),
            execution_id: None,
        };
        omit_body(&mut r, b"abc");
        assert_eq!((r.body.as_str(), r.body_truncated), ("", false));
        assert_eq!(
            r.detail,
            json!({
                "reason": "bad signature",
                "bodyOmitted": "unauthenticated",
                "bodyBytes": 3,
                "bodySha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            })
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rules_over_the_time_budget_fail_and_the_rest_are_not_run() {
        use pipehook_inbound::rules::{compile_stored, Rule};
        let rule = |p: &str| Rule { json_path: p.into(), match_equals: None };
        let rules = compile_stored(&[rule("$.a"), rule("$..[?@..x]"), rule("$.b")], &Default::default()).unwrap();
        // 1,000 arrays nested 120 deep side by side: the middle rule takes about a second (a quarter in a
        // release build), and the cost budget lets it run.
        let chain = format!("{}0{}", "[".repeat(120), "]".repeat(120));
        let deep: Value = serde_json::from_str(&format!("[{}]", vec![chain; 1_000].join(","))).unwrap();
        let guard = InboundGuard::new(InboundLimits {
            rule_timeout: Duration::from_millis(100),
            rule_max_cost: u64::MAX,
            rule_evaluations: 1,
            ..InboundLimits::default()
        });
        let started = Instant::now();
        let outcomes = guard.evaluate(&rules, deep.clone()).await;
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        assert_eq!(outcomes.len(), 3);
        assert!(outcomes[0].error.is_none(), "{:?}", outcomes[0]);
        assert!(outcomes[1].error.as_deref().unwrap().contains("ran out of the time budget of 100 ms"));
        assert!(outcomes[2].error.as_deref().unwrap().contains("an earlier rule ran out"));
        // The one slot is still taken by the running rule: the next request waits, then gives up.
        let outcomes = guard.evaluate(&rules[..1], deep.clone()).await;
        assert!(outcomes[0].error.as_deref().unwrap().contains("slots stayed busy"), "{:?}", outcomes[0]);
        // Within the budgets, the outcomes are the plain evaluation's.
        let relaxed = InboundGuard::new(InboundLimits { rule_max_cost: u64::MAX, ..InboundLimits::default() });
        let small = json!({"a": 1, "b": [{"x": 2}]});
        assert_eq!(relaxed.evaluate(&rules, small.clone()).await, pipehook_inbound::rules::evaluate(&rules, &small));
    }
}
