//! pipehook's benchmark harness.
//!
//! One subcommand per scenario; today there is `queue`, the durable job queue's throughput:
//!
//! ```text
//! cargo run --release -p pipehook-bench -- queue --backend both [--jobs 20000] [--batch 1,100] [--workers 4]
//! ```
//!
//! For every (backend, batch size) pair it opens a fresh store (SQLite: a file in a temporary directory;
//! PostgreSQL: a fresh schema, dropped afterwards), migrates it, and then runs, concurrently:
//!
//! - one producer task enqueuing `--jobs` jobs, `--batch` at a time, each job's payload carrying its sequence
//!   number and the wall-clock time (µs) just before its `enqueue` call;
//! - `--workers` tasks each claiming up to `--batch` jobs at a time (lease 60 s) and completing everything
//!   it claimed with one `complete` call, backing off briefly (1 ms, doubling up to 10 ms) after an empty
//!   claim, until all jobs are completed.
//!
//! It reports the throughput of the whole enqueue + claim + complete cycle (jobs / wall time from the first
//! enqueue to the last completion), the p50/p99 enqueue-to-complete latency per job, the mean duration of
//! each store call, and the process peak RSS (`VmHWM`, reset before each scenario where the kernel allows).
//! At the end it checks that every job was completed exactly once and that the queue is empty, and exits
//! with an error otherwise.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use pipehook_store::postgres::{PgOptions, PgStore};
use pipehook_store::sqlite::{Durability, SqliteOptions, SqliteStore};
use pipehook_store::{Lease, NewJob, Store};
use serde_json::json;

/// The job kind the scenario enqueues and claims.
const KIND: &str = "bench.queue";
/// The lease each claim takes; long enough that no lease expires during a run.
const LEASE: Duration = Duration::from_secs(60);
/// Back-off after an empty claim: starts here, doubles up to `IDLE_MAX`.
const IDLE_MIN: Duration = Duration::from_millis(1);
const IDLE_MAX: Duration = Duration::from_millis(10);
/// A scenario in which no job completes for this long is aborted as stalled.
const STALL: Duration = Duration::from_secs(30);

#[derive(Parser)]
#[command(name = "pipehook-bench", about = "pipehook's benchmark harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Queue throughput: a producer enqueues while workers claim and complete.
    Queue(QueueArgs),
}

#[derive(clap::Args)]
struct QueueArgs {
    /// Which backend(s) to run.
    #[arg(long, value_enum, default_value_t = BackendArg::Sqlite)]
    backend: BackendArg,
    /// PostgreSQL server; each scenario uses (and drops) a fresh schema in it.
    #[arg(long, env = "PIPEHOOK_BENCH_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/test")]
    database_url: String,
    /// Jobs per scenario.
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Batch sizes (comma-separated): jobs per enqueue call and per claim; one scenario each.
    #[arg(long, value_delimiter = ',', default_value = "1,100")]
    batch: Vec<u32>,
    /// Concurrent claiming workers.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// SQLite `synchronous` setting.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Full)]
    durability: DurabilityArg,
    /// Print one JSON object per scenario (one per line) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DurabilityArg {
    Full,
    Normal,
}

impl DurabilityArg {
    fn name(self) -> &'static str {
        match self {
            DurabilityArg::Full => "full",
            DurabilityArg::Normal => "normal",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Queue(args) => queue(args).await,
    }
}

async fn queue(args: QueueArgs) -> Result<()> {
    ensure!(args.jobs >= 1, "--jobs must be at least 1");
    ensure!(args.workers >= 1, "--workers must be at least 1");
    ensure!(!args.batch.is_empty() && args.batch.iter().all(|&b| b >= 1), "--batch sizes must be at least 1");
    let backends: &[Backend] = match args.backend {
        BackendArg::Sqlite => &[Backend::Sqlite],
        BackendArg::Postgres => &[Backend::Postgres],
        BackendArg::Both => &[Backend::Sqlite, Backend::Postgres],
    };

    let mut reports = Vec::new();
    for &backend in backends {
        for &batch in &args.batch {
            eprintln!("queue: {} batch={batch} jobs={} workers={} ...", backend.name(), args.jobs, args.workers);
            let report = match backend {
                Backend::Sqlite => sqlite_scenario(&args, batch).await,
                Backend::Postgres => postgres_scenario(&args, batch).await,
            }
            .with_context(|| format!("queue scenario {} batch={batch}", backend.name()))?;
            if args.json {
                println!("{}", report.to_json());
            } else {
                eprintln!("  {:.0} jobs/s", report.jobs_per_s());
            }
            reports.push(report);
        }
    }
    if !args.json {
        print_table(&reports);
    }
    Ok(())
}

async fn sqlite_scenario(args: &QueueArgs, batch: u32) -> Result<Report> {
    let dir = tempfile::Builder::new().prefix("pipehook-bench-").tempdir().context("create temp dir")?;
    let path: PathBuf = dir.path().join("queue.db");
    let durability = match args.durability {
        DurabilityArg::Full => Durability::Full,
        DurabilityArg::Normal => Durability::Normal,
    };
    let opts = SqliteOptions { durability, ..SqliteOptions::default() };
    let store = SqliteStore::open(&path, &opts).await.context("open SQLite")?;
    store.migrate().await.context("migrate SQLite")?;
    let store: Arc<dyn Store> = Arc::new(store);
    let outcome = run(store.clone(), args.jobs, batch, args.workers).await;
    store.close().await;
    drop(dir);
    Ok(Report {
        backend: Backend::Sqlite,
        durability: Some(args.durability),
        jobs: args.jobs,
        batch,
        workers: args.workers,
        m: outcome?,
    })
}

async fn postgres_scenario(args: &QueueArgs, batch: u32) -> Result<Report> {
    let schema = fresh_schema_name();
    let max_connections = u32::try_from(args.workers + 4).unwrap_or(u32::MAX);
    let opts = PgOptions { max_connections, schema: Some(schema.clone()) };
    let store = PgStore::connect(&args.database_url, &opts)
        .await
        .with_context(|| format!("connect to PostgreSQL at {}", args.database_url))?;
    let store = Arc::new(store);
    let outcome = async {
        store.migrate().await.context("migrate PostgreSQL")?;
        run(store.clone(), args.jobs, batch, args.workers).await
    }
    .await;
    let dropped = store.drop_schema(&schema).await;
    store.close().await;
    let m = outcome?;
    dropped.with_context(|| format!("drop schema {schema}"))?;
    Ok(Report { backend: Backend::Postgres, durability: None, jobs: args.jobs, batch, workers: args.workers, m })
}

fn fresh_schema_name() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("bench_{}_{nanos:09}", std::process::id())
}

/// What one scenario measured.
struct Measured {
    wall: Duration,
    enqueue_done: Duration,
    latency_p50: Duration,
    latency_p99: Duration,
    latency_max: Duration,
    peak_rss_kib: Option<u64>,
    rss_reset: bool,
    enqueue: CallStats,
    claim: CallStats,
    empty_claims: u64,
    complete: CallStats,
}

#[derive(Default, Clone, Copy)]
struct CallStats {
    calls: u64,
    total: Duration,
}

impl CallStats {
    fn time<T>(&mut self, started: Instant, value: T) -> T {
        self.calls += 1;
        self.total += started.elapsed();
        value
    }

    fn add(&mut self, other: CallStats) {
        self.calls += other.calls;
        self.total += other.total;
    }

    fn mean_ms(self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.total.as_secs_f64() * 1000.0 / self.calls as f64
        }
    }
}

/// State shared by the producer, the workers and the watchdog of one scenario.
struct Shared {
    jobs: usize,
    started: Instant,
    /// Jobs whose `complete` call returned their lease.
    completed: AtomicUsize,
    /// Per sequence number: completed yet?
    seen: Vec<AtomicBool>,
    duplicates: AtomicUsize,
    /// Leases `complete` did not return (lost leases).
    lost: AtomicUsize,
    /// Claimed jobs whose payload was not what the producer wrote.
    bad_payloads: AtomicUsize,
    /// Set on a failure or a stall: every task stops.
    abort: AtomicBool,
    /// Time from the start to the completion that made the count reach `jobs`.
    finished: OnceLock<Duration>,
}

impl Shared {
    fn done(&self) -> bool {
        self.completed.load(Ordering::Acquire) >= self.jobs || self.abort.load(Ordering::Acquire)
    }
}

async fn run(store: Arc<dyn Store>, jobs: usize, batch: u32, workers: usize) -> Result<Measured> {
    let rss_reset = reset_peak_rss();
    let shared = Arc::new(Shared {
        jobs,
        started: Instant::now(),
        completed: AtomicUsize::new(0),
        seen: (0..jobs).map(|_| AtomicBool::new(false)).collect(),
        duplicates: AtomicUsize::new(0),
        lost: AtomicUsize::new(0),
        bad_payloads: AtomicUsize::new(0),
        abort: AtomicBool::new(false),
        finished: OnceLock::new(),
    });

    let producer = tokio::spawn(aborting(shared.clone(), produce(store.clone(), shared.clone(), batch)));
    let worker_tasks: Vec<_> = (0..workers)
        .map(|_| tokio::spawn(aborting(shared.clone(), work(store.clone(), shared.clone(), batch))))
        .collect();
    let watchdog = tokio::spawn(watchdog(shared.clone()));

    let (enqueue, enqueued_ids, enqueue_done) = producer.await.context("producer panicked")??;
    let mut latencies = Vec::with_capacity(jobs);
    let (mut claim, mut complete, mut empty_claims) = (CallStats::default(), CallStats::default(), 0);
    for task in worker_tasks {
        let w = task.await.context("worker panicked")??;
        latencies.extend(w.latencies_us);
        claim.add(w.claim);
        complete.add(w.complete);
        empty_claims += w.empty_claims;
    }
    let stalled = watchdog.await.context("watchdog panicked")?;
    let wall = shared.finished.get().copied().unwrap_or_else(|| shared.started.elapsed());
    let peak_rss_kib = peak_rss_kib();

    // Verification: every job enqueued once, completed once, and nothing left in the queue.
    let mut problems = Vec::new();
    if stalled {
        problems.push(format!("stalled: no job completed for {STALL:?}"));
    }
    if enqueued_ids.len() != jobs {
        problems.push(format!("enqueue returned {} ids for {jobs} jobs", enqueued_ids.len()));
    }
    let distinct: HashSet<i64> = enqueued_ids.iter().map(|id| id.0).collect();
    if distinct.len() != enqueued_ids.len() {
        problems.push(format!("enqueue returned {} duplicate ids", enqueued_ids.len() - distinct.len()));
    }
    let completed = shared.completed.load(Ordering::Acquire);
    if completed != jobs {
        problems.push(format!("{completed} completions for {jobs} jobs"));
    }
    let missing = shared.seen.iter().filter(|s| !s.load(Ordering::Acquire)).count();
    if missing != 0 {
        problems.push(format!("{missing} jobs never completed"));
    }
    for (what, n) in [
        ("jobs completed more than once", &shared.duplicates),
        ("leases lost between claim and complete", &shared.lost),
        ("claimed jobs with a foreign payload", &shared.bad_payloads),
    ] {
        let n = n.load(Ordering::Acquire);
        if n != 0 {
            problems.push(format!("{n} {what}"));
        }
    }
    if latencies.len() != jobs {
        problems.push(format!("{} latency samples for {jobs} jobs", latencies.len()));
    }
    let left: Vec<String> = store
        .depth()
        .await
        .context("queue depth after the run")?
        .into_iter()
        .filter(|d| d.count > 0)
        .map(|d| format!("{} {}={}", d.kind, d.state, d.count))
        .collect();
    if !left.is_empty() {
        problems.push(format!("jobs left in the queue: {}", left.join(", ")));
    }
    if !problems.is_empty() {
        bail!("queue verification FAILED: {}", problems.join("; "));
    }

    latencies.sort_unstable();
    Ok(Measured {
        wall,
        enqueue_done,
        latency_p50: percentile(&latencies, 50.0),
        latency_p99: percentile(&latencies, 99.0),
        latency_max: Duration::from_micros(latencies.last().copied().unwrap_or(0)),
        peak_rss_kib,
        rss_reset,
        enqueue,
        claim,
        empty_claims,
        complete,
    })
}

/// Runs a task; on error, tells the others to stop before returning it.
async fn aborting<T>(shared: Arc<Shared>, task: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let r = task.await;
    if r.is_err() {
        shared.abort.store(true, Ordering::Release);
    }
    r
}

/// Enqueues all jobs, `batch` at a time. Returns the call timing, the ids and when it finished.
async fn produce(
    store: Arc<dyn Store>,
    shared: Arc<Shared>,
    batch: u32,
) -> Result<(CallStats, Vec<pipehook_store::JobId>, Duration)> {
    let mut stats = CallStats::default();
    let mut ids = Vec::with_capacity(shared.jobs);
    let mut seq = 0;
    while seq < shared.jobs && !shared.abort.load(Ordering::Acquire) {
        let end = (seq + batch as usize).min(shared.jobs);
        let enq_us = now_us();
        let jobs: Vec<NewJob> = (seq..end).map(|s| NewJob::new(KIND, json!({ "seq": s, "enq_us": enq_us }))).collect();
        let started = Instant::now();
        let got = store.enqueue(&jobs).await.context("enqueue")?;
        ids.extend(stats.time(started, got));
        seq = end;
    }
    Ok((stats, ids, shared.started.elapsed()))
}

struct WorkerStats {
    latencies_us: Vec<u64>,
    claim: CallStats,
    empty_claims: u64,
    complete: CallStats,
}

/// Claims up to `batch` jobs at a time and completes each claimed batch with one call, until all jobs are done.
async fn work(store: Arc<dyn Store>, shared: Arc<Shared>, batch: u32) -> Result<WorkerStats> {
    let mut stats = WorkerStats {
        latencies_us: Vec::new(),
        claim: CallStats::default(),
        empty_claims: 0,
        complete: CallStats::default(),
    };
    let mut idle = IDLE_MIN;
    while !shared.done() {
        let started = Instant::now();
        let claimed = store.claim(&[KIND], batch, LEASE).await.context("claim")?;
        let claimed = stats.claim.time(started, claimed);
        if claimed.is_empty() {
            stats.empty_claims += 1;
            tokio::time::sleep(idle).await;
            idle = (idle * 2).min(IDLE_MAX);
            continue;
        }
        idle = IDLE_MIN;

        let leases: Vec<Lease> = claimed.iter().map(|j| j.lease).collect();
        let started = Instant::now();
        let held = store.complete(&leases).await.context("complete")?;
        let held = stats.complete.time(started, held);
        let done_us = now_us();

        shared.lost.fetch_add(leases.len().saturating_sub(held.len()), Ordering::AcqRel);
        let held: HashSet<Lease> = held.into_iter().collect();
        let mut n = 0;
        for job in claimed.iter().filter(|j| held.contains(&j.lease)) {
            n += 1;
            let seq = job.payload.get("seq").and_then(serde_json::Value::as_u64);
            let enq_us = job.payload.get("enq_us").and_then(serde_json::Value::as_u64);
            let (Some(seq), Some(enq_us)) = (seq, enq_us) else {
                shared.bad_payloads.fetch_add(1, Ordering::AcqRel);
                continue;
            };
            match usize::try_from(seq).ok().and_then(|s| shared.seen.get(s)) {
                Some(seen) if seen.swap(true, Ordering::AcqRel) => {
                    shared.duplicates.fetch_add(1, Ordering::AcqRel);
                }
                Some(_) => stats.latencies_us.push(done_us.saturating_sub(enq_us)),
                None => {
                    shared.bad_payloads.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
        let before = shared.completed.fetch_add(n, Ordering::AcqRel);
        if before < shared.jobs && before + n >= shared.jobs {
            let _ = shared.finished.set(shared.started.elapsed());
        }
    }
    Ok(stats)
}

/// Aborts the scenario when no job completes for [`STALL`]; returns whether it did.
async fn watchdog(shared: Arc<Shared>) -> bool {
    let mut last = (0, Instant::now());
    while !shared.done() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let completed = shared.completed.load(Ordering::Acquire);
        if completed != last.0 {
            last = (completed, Instant::now());
        } else if last.1.elapsed() >= STALL {
            shared.abort.store(true, Ordering::Release);
            return true;
        }
    }
    false
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Nearest-rank percentile of sorted microsecond samples.
fn percentile(sorted_us: &[u64], p: f64) -> Duration {
    if sorted_us.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    Duration::from_micros(sorted_us[rank.clamp(1, sorted_us.len()) - 1])
}

/// The process's peak resident set size (`VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets `VmHWM` to the current RSS (Linux ≥ 4.0), so each scenario reports its own peak.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

struct Report {
    backend: Backend,
    durability: Option<DurabilityArg>,
    jobs: usize,
    batch: u32,
    workers: usize,
    m: Measured,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Report {
    fn jobs_per_s(&self) -> f64 {
        self.jobs as f64 / self.m.wall.as_secs_f64().max(f64::EPSILON)
    }

    fn to_json(&self) -> serde_json::Value {
        let m = &self.m;
        json!({
            "scenario": "queue",
            "backend": self.backend.name(),
            "durability": self.durability.map(DurabilityArg::name),
            "jobs": self.jobs,
            "batch": self.batch,
            "workers": self.workers,
            "wall_s": m.wall.as_secs_f64(),
            "jobs_per_s": self.jobs_per_s(),
            "enqueue_done_s": m.enqueue_done.as_secs_f64(),
            "latency_p50_ms": ms(m.latency_p50),
            "latency_p99_ms": ms(m.latency_p99),
            "latency_max_ms": ms(m.latency_max),
            "peak_rss_kib": m.peak_rss_kib,
            "peak_rss_per_scenario": m.rss_reset,
            "enqueue_calls": m.enqueue.calls,
            "enqueue_mean_ms": m.enqueue.mean_ms(),
            "claim_calls": m.claim.calls,
            "claim_empty": m.empty_claims,
            "claim_mean_ms": m.claim.mean_ms(),
            "complete_calls": m.complete.calls,
            "complete_mean_ms": m.complete.mean_ms(),
            "verified": true,
        })
    }
}

fn print_table(reports: &[Report]) {
    println!(
        "{:<9} {:<6} {:>5} {:>7} {:>7} {:>8} {:>9} {:>8} {:>8} {:>9}",
        "backend", "sync", "batch", "jobs", "workers", "wall s", "jobs/s", "p50 ms", "p99 ms", "peak RSS"
    );
    for r in reports {
        let m = &r.m;
        let rss = m.peak_rss_kib.map_or_else(|| "?".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
        println!(
            "{:<9} {:<6} {:>5} {:>7} {:>7} {:>8.2} {:>9.0} {:>8.1} {:>8.1} {:>9}",
            r.backend.name(),
            r.durability.map_or("-", DurabilityArg::name),
            r.batch,
            r.jobs,
            r.workers,
            m.wall.as_secs_f64(),
            r.jobs_per_s(),
            ms(m.latency_p50),
            ms(m.latency_p99),
            rss
        );
    }
    println!();
    println!(
        "{:<9} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "backend", "batch", "enq done", "enqueues", "enq ms", "claims", "empty", "claim ms", "cmpl ms"
    );
    for r in reports {
        let m = &r.m;
        println!(
            "{:<9} {:>5} {:>8.2}s {:>9} {:>9.3} {:>9} {:>9} {:>9.3} {:>9.3}",
            r.backend.name(),
            r.batch,
            m.enqueue_done.as_secs_f64(),
            m.enqueue.calls,
            m.enqueue.mean_ms(),
            m.claim.calls,
            m.empty_claims,
            m.claim.mean_ms(),
            m.complete.mean_ms()
        );
    }
    if reports.iter().any(|r| !r.m.rss_reset) {
        println!("(peak RSS could not be reset between scenarios: it is the process peak so far)");
    }
    println!("all scenarios verified: every job completed exactly once, queue empty");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&samples, 50.0), Duration::from_micros(50));
        assert_eq!(percentile(&samples, 99.0), Duration::from_micros(99));
        assert_eq!(percentile(&[7], 99.0), Duration::from_micros(7));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn peak_rss_is_readable() {
        assert!(peak_rss_kib().is_some_and(|k| k > 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_sqlite_run_completes_every_job_once() {
        let dir = tempfile::tempdir().unwrap();
        let opts = SqliteOptions { durability: Durability::Normal, ..SqliteOptions::default() };
        let store = SqliteStore::open(&dir.path().join("q.db"), &opts).await.unwrap();
        store.migrate().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(store);
        // 7 does not divide 250: the last batch is short.
        let m = run(store.clone(), 250, 7, 3).await.unwrap();
        assert_eq!(m.enqueue.calls, 36);
        assert!(m.latency_p50 <= m.latency_p99 && m.latency_p99 <= m.latency_max);
        assert!(store.depth().await.unwrap().is_empty());
        store.close().await;
    }
}
