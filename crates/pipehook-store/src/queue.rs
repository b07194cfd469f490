//! The durable job queue's types and its trait.

use async_trait::async_trait;
use pipehook_domain::org::OrgId;
use pipehook_domain::time::Timestamp;
use std::time::Duration;

use crate::StoreResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct JobId(pub i64);

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// What handles it, e.g. `pipeline.execution` or `outbound.delivery`.
    pub kind: String,
    pub payload: serde_json::Value,
    /// Not claimable before this time (scheduled jobs, retries with backoff). `None` = now.
    pub run_at: Option<Timestamp>,
    /// Claims allowed before the job is marked dead (a lost lease counts as an attempt).
    pub max_attempts: u32,
    pub org: Option<OrgId>,
    /// The group inside its organization that claims share fairly (a pipeline's executions, a project's
    /// builds): one group's backlog does not hold back another group's job.
    pub fair_key: Option<String>,
}

impl NewJob {
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> Self {
        Self { kind: kind.into(), payload, run_at: None, max_attempts: 25, org: None, fair_key: None }
    }

    pub fn fair_key(mut self, key: impl Into<String>) -> Self {
        self.fair_key = Some(key.into());
        self
    }

    pub fn run_at(mut self, at: Timestamp) -> Self {
        self.run_at = Some(at);
        self
    }

    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    pub fn org(mut self, org: OrgId) -> Self {
        self.org = Some(org);
        self
    }
}

/// Proof of holding a job: its id and the token of the claim that leased it. Every call that changes a
/// leased job checks both, so a worker whose lease expired (and whose job another worker now holds) can
/// neither complete, fail, extend nor release it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    pub job: JobId,
    pub token: i64,
}

/// Who claims, and the limits its claims keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claimer {
    /// The node's name (`""`: anonymous), remembered by the jobs it holds (see [`Queue::recover`]).
    pub node: String,
    /// Running jobs of the claimed kinds one organization may have at once, across every node.
    pub max_running_per_org: Option<u32>,
}

/// A claimed job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub kind: String,
    pub payload: serde_json::Value,
    pub org: Option<OrgId>,
    /// 1 on the first claim, 2 on the second, ...
    pub attempt: u32,
    pub max_attempts: u32,
    pub lease: Lease,
    pub lease_until: Timestamp,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Claimable again at this time.
    Retrying { at: Timestamp },
    /// No attempts left (or no retry asked for): kept as dead.
    Dead,
}

/// A job that ran out of attempts, kept for inspection and manual requeue.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadJob {
    pub id: JobId,
    pub kind: String,
    pub payload: serde_json::Value,
    pub org: Option<OrgId>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub died_at: Timestamp,
}

/// Number of jobs of one kind in one state (`ready`, `scheduled`, `running`, `dead`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    pub kind: String,
    pub state: String,
    pub count: u64,
    /// Since when the oldest of them has waited: for due `ready` jobs the time they became due, for `running`
    /// and `dead` ones their creation. `None` for `scheduled` jobs, which are not waiting yet.
    pub oldest: Option<Timestamp>,
}

/// The queue depth query, the same text on both backends (`?1` / `$1` is now).
pub(crate) fn depth_sql(now: &str) -> String {
    format!(
        "SELECT kind, st, COUNT(*), MIN(since) FROM (SELECT kind, \
         CASE WHEN state = 'ready' AND run_at > {now} THEN 'scheduled' ELSE state END AS st, \
         CASE WHEN state = 'ready' THEN run_at ELSE created_at END AS since FROM jobs) AS j \
         GROUP BY kind, st ORDER BY kind, st"
    )
}

pub(crate) fn depth_rows(rows: Vec<(String, String, i64, Option<i64>)>) -> Vec<QueueDepth> {
    rows.into_iter()
        .map(|(kind, state, n, since)| QueueDepth {
            oldest: if state == "scheduled" { None } else { since.map(Timestamp) },
            kind,
            state,
            count: u64::try_from(n).unwrap_or(0),
        })
        .collect()
}

#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Enqueues on its own (a one-statement transaction). To enqueue with a domain write, use [`crate::Tx`].
    async fn enqueue(&self, jobs: &[NewJob]) -> StoreResult<Vec<JobId>>;

    /// Leases up to `limit` due jobs of the given kinds for `lease_for`: ready jobs whose `run_at` has come,
    /// and running jobs whose lease expired (their worker died). Jobs whose lease expired with no attempts
    /// left are marked dead instead. Oldest `run_at` first.
    async fn claim(&self, kinds: &[&str], limit: u32, lease_for: Duration) -> StoreResult<Vec<Job>> {
        self.claim_fair(&Claimer::default(), kinds, limit, lease_for).await
    }

    /// The claim itself, by `claimer.node` (`""`: anonymous), which the claimed jobs remember until they are
    /// completed, failed, deferred or released, so [`Queue::recover`] can give them back when that node restarts.
    /// Jobs whose lease expired (their node died) come first, oldest lease first; then due
    /// ready jobs, shared fairly between organizations ([`fair_shares`]): each organization's oldest first, no
    /// organization above `claimer.max_running_per_org` running jobs of these kinds.
    async fn claim_fair(
        &self,
        claimer: &Claimer,
        kinds: &[&str],
        limit: u32,
        lease_for: Duration,
    ) -> StoreResult<Vec<Job>>;

    /// Called by a node as it starts, before it claims: every job its previous life still holds (that life
    /// ended without releasing them: a crash, a kill) is made ready at once instead of after its lease runs
    /// out. The lost claim still counts towards `max_attempts`, so a job that kills its node every time ends
    /// dead instead of looping; handlers that must not lose a retry to a crash count their own attempts
    /// (outbound deliveries count the attempts they recorded). Returns how many jobs were given back. A node name
    /// must belong to one running process at a time, or the other process's jobs are taken from it (which
    /// fencing makes safe, but wasteful).
    async fn recover(&self, node: &str) -> StoreResult<u64>;

    /// Extends the leases still held to now + `lease_for`; returns those (lost leases are left out).
    async fn extend(&self, leases: &[Lease], lease_for: Duration) -> StoreResult<Vec<Lease>>;

    /// Completes (removes) the jobs whose leases are still held; returns those.
    async fn complete(&self, leases: &[Lease]) -> StoreResult<Vec<Lease>>;

    /// Records a failed attempt. With `retry_at` and attempts left the job is claimable again at that time;
    /// otherwise it is dead. `None` when the lease was lost.
    async fn fail(&self, lease: &Lease, error: &str, retry_at: Option<Timestamp>) -> StoreResult<Option<FailOutcome>>;

    /// Puts a held job back to wait until `run_at` without counting the attempt (the job was not ready to
    /// run, e.g. an execution queued behind another). False when the lease was lost.
    async fn defer(&self, lease: &Lease, run_at: Timestamp) -> StoreResult<bool>;

    /// Gives leases back without counting an attempt (graceful shutdown); returns how many were held.
    async fn release(&self, leases: &[Lease]) -> StoreResult<u64>;

    /// Dead jobs, newest first, optionally of one kind, with ids below `before` (pagination).
    async fn list_dead(&self, kind: Option<&str>, before: Option<JobId>, limit: u32) -> StoreResult<Vec<DeadJob>>;

    /// Makes a dead job ready again with a fresh set of attempts. False when no such dead job exists.
    async fn requeue_dead(&self, id: JobId) -> StoreResult<bool>;

    /// Ready jobs (due or scheduled) of `kinds` that belong to `org`: its queued work.
    async fn queued_jobs(&self, org: OrgId, kinds: &[&str]) -> StoreResult<u64>;

    /// Job counts by kind and state, for metrics. `scheduled` = ready with `run_at` in the future.
    async fn depth(&self) -> StoreResult<Vec<QueueDepth>>;
}

/// An organization (or a group inside one) with due ready jobs, as a fair claim sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Demand<K> {
    /// The organization (`None`: jobs of no organization), or the group (`None`: jobs of no group).
    pub key: K,
    /// Its oldest due job's `run_at`.
    pub oldest: i64,
    /// Its jobs of the claimed kinds running now (on any node).
    pub running: u64,
}

/// How many of `limit` claim slots each organization (or group) gets: one at a time, round robin, in order of
/// fewest running jobs, then oldest waiting job, so one with a huge backlog cannot starve one with a single
/// job; one at `cap` running jobs gets none.
pub(crate) fn fair_shares<K: Clone>(mut demand: Vec<Demand<K>>, limit: u32, cap: Option<u32>) -> Vec<(K, u32)> {
    demand.sort_by_key(|d| (d.running, d.oldest));
    let mut shares: Vec<(K, u32)> = demand.iter().map(|d| (d.key.clone(), 0)).collect();
    let mut left = limit;
    while left > 0 {
        let mut gave = false;
        for (d, share) in demand.iter().zip(shares.iter_mut()) {
            if left == 0 {
                break;
            }
            if cap.is_some_and(|c| d.running + u64::from(share.1) >= u64::from(c)) {
                continue;
            }
            share.1 += 1;
            left -= 1;
            gave = true;
        }
        if !gave {
            break;
        }
    }
    shares.retain(|s| s.1 > 0);
    shares
}

/// Organizations a fair claim considers at most (the ones with the fewest running jobs come first).
pub(crate) const FAIR_ORGS: i64 = 512;

/// Groups (`fair_key`) inside one organization a fair claim considers at most.
pub(crate) const FAIR_GROUPS: i64 = 64;

/// Per organization, the claimed kinds it has due jobs of, oldest first (after sorting).
pub(crate) type DueKinds = std::collections::HashMap<Option<i64>, Vec<(i64, String)>>;

pub(crate) fn lease_deadline(now: Timestamp, lease_for: Duration) -> Timestamp {
    now.saturating_add(lease_for)
}

pub(crate) fn new_lease_token() -> i64 {
    use rand::Rng;
    rand::thread_rng().gen()
}

/// Errors stored on jobs are bounded so a handler's huge error cannot bloat the table.
pub(crate) fn bound_error(e: &str) -> String {
    const MAX: usize = 4096;
    if e.len() <= MAX {
        return e.to_owned();
    }
    let mut end = MAX;
    while !e.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &e[..end])
}

/// Why a handler could not finish a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobFailure {
    /// Try again after this delay (while attempts remain).
    Retry { error: String, after: Duration },
    /// Never retry: the job is kept as dead with this error.
    Permanent(String),
    /// Not a failure: the job cannot run yet; run it again after this delay without using an attempt.
    Defer { after: Duration },
}

/// What the worker pool tells a running job besides the job itself.
#[derive(Debug, Clone, Default)]
pub struct JobContext {
    /// Cancelled when the node drains (a graceful stop). A long job finishes the step in hand, starts no new
    /// one, and returns [`JobFailure::Defer`], so another node carries on from there without a failure.
    pub handoff: tokio_util::sync::CancellationToken,
}

/// Runs one kind of job. Implemented by the crates that own the work (runner, outbound delivery); the
/// binary's worker pool claims jobs and calls the handler registered for their kind.
///
/// Every write a handler makes about its job's work goes through a transaction fenced with the job's lease
/// ([`crate::Tx::hold`] with `job.lease`): once the lease is lost (the worker paused past it and another
/// worker claimed the job) the handler can change nothing. The pool also drops a handler whose lease it
/// finds lost, which kills its commands.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn handle(&self, job: &Job, ctx: &JobContext) -> Result<(), JobFailure>;
}

/// Exponential backoff with full jitter: a random delay in `[base, min(cap, base * 2^(attempt-1))]`.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    use rand::Rng;
    let exp = base.saturating_mul(1u32.checked_shl(attempt.saturating_sub(1).min(20)).unwrap_or(u32::MAX));
    let hi = exp.min(cap).max(base);
    let span = hi.saturating_sub(base).as_millis() as u64;
    base + Duration::from_millis(if span == 0 { 0 } else { rand::thread_rng().gen_range(0..=span) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_within_bounds() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(60);
        for attempt in 1..40 {
            let d = backoff(attempt, base, cap);
            assert!(d >= base && d <= cap, "attempt {attempt}: {d:?}");
        }
        assert_eq!(backoff(1, base, cap), base, "first retry waits the base delay");
        assert!((0..50).any(|_| backoff(10, base, cap) > Duration::from_secs(2)), "later attempts spread out");
    }

    #[test]
    fn fair_shares_go_round_robin_by_least_running_then_oldest() {
        let d = |org: i64, oldest: i64, running: u64| Demand { key: Some(org), oldest, running };
        // A huge, old backlog (org 1) and a single new job (org 2): both get a slot.
        assert_eq!(fair_shares(vec![d(1, 0, 0), d(2, 100, 0)], 4, None), [(Some(1), 2), (Some(2), 2)]);
        assert_eq!(fair_shares(vec![d(1, 0, 0), d(2, 100, 0)], 1, None), [(Some(1), 1)]);
        // The one already running more goes last.
        assert_eq!(fair_shares(vec![d(1, 0, 5), d(2, 100, 0)], 1, None), [(Some(2), 1)]);
        // Caps: org 1 may run 6 at most, so it gets 1; org 2 takes the rest.
        assert_eq!(fair_shares(vec![d(1, 0, 5), d(2, 100, 0)], 5, Some(6)), [(Some(2), 4), (Some(1), 1)]);
        // Everyone at the cap: nothing.
        assert!(fair_shares(vec![d(1, 0, 2)], 3, Some(2)).is_empty());
        assert!(fair_shares::<Option<i64>>(Vec::new(), 3, None).is_empty());
    }

    #[test]
    fn errors_are_bounded_on_char_boundaries() {
        let e = "é".repeat(5000);
        let b = bound_error(&e);
        assert!(b.len() <= 4096 + '…'.len_utf8());
        assert_eq!(bound_error("short"), "short");
    }
}
