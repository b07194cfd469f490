//! The worker pool against real stores: exactly-once completion, retries, dead jobs, panics, heartbeats,
//! and the drain on shutdown.

use async_trait::async_trait;
use pipehook::config::WorkerConfig;
use pipehook::worker::{Handlers, WorkerPool};
use pipehook_api::metrics::Metrics;
use pipehook_store::testing::{self, TestStore};
use pipehook_store::{Job, JobContext, JobFailure, JobHandler, NewJob, Queue};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Records every attempt per job; behaviour chosen by the payload.
#[derive(Default)]
struct Recorder {
    attempts: Mutex<HashMap<i64, u32>>,
}

#[async_trait]
impl JobHandler for Recorder {
    async fn handle(&self, job: &Job, _ctx: &JobContext) -> Result<(), JobFailure> {
        let n = {
            let mut a = self.attempts.lock().unwrap();
            let n = a.entry(job.id.0).or_default();
            *n += 1;
            *n
        };
        match job.payload["mode"].as_str() {
            Some("flaky") if n < 3 => {
                Err(JobFailure::Retry { error: format!("flaky {n}"), after: Duration::from_millis(50) })
            }
            Some("permanent") => Err(JobFailure::Permanent("cannot ever work".into())),
            Some("panic") if n < 2 => panic!("handler bug"),
            Some("slow") => {
                tokio::time::sleep(Duration::from_millis(job.payload["ms"].as_u64().unwrap_or(0))).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn config(lease_ms: u64) -> WorkerConfig {
    WorkerConfig {
        concurrency: 8,
        lease: Duration::from_millis(lease_ms),
        poll: Duration::from_millis(20),
        heartbeat: Duration::from_millis(lease_ms / 3),
        drain: Duration::from_secs(5),
        node: String::new(),
        max_running_per_org: None,
        max_queued_per_org: None,
    }
}

struct Running {
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
    recorder: Arc<Recorder>,
    metrics: Arc<Metrics>,
}

fn start(t: &TestStore, lease_ms: u64, grace: Duration) -> Running {
    let recorder = Arc::new(Recorder::default());
    let mut handlers = Handlers::default();
    handlers.register("t.work", recorder.clone());
    let metrics = Arc::new(Metrics::default());
    let queue: Arc<dyn Queue> = t.store.clone();
    let pool = WorkerPool::new(queue, handlers, WorkerConfig { drain: grace, ..config(lease_ms) }, metrics.clone());
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(pool.run(shutdown.clone()));
    Running { shutdown, handle, recorder, metrics }
}

async fn until_empty(t: &TestStore) {
    for _ in 0..500 {
        let depth = t.store.depth().await.unwrap();
        if depth.iter().all(|d| d.state == "dead") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("queue never drained: {:?}", t.store.depth().await.unwrap());
}

async fn runs_every_job_once_and_handles_failures(t: TestStore) {
    let mut jobs: Vec<NewJob> = (0..300).map(|i| NewJob::new("t.work", json!({"i": i}))).collect();
    jobs.push(NewJob::new("t.work", json!({"mode": "flaky"})));
    jobs.push(NewJob::new("t.work", json!({"mode": "permanent"})));
    jobs.push(NewJob::new("t.work", json!({"mode": "panic"})));
    let ids = t.store.enqueue(&jobs).await.unwrap();
    let r = start(&t, 30_000, Duration::from_secs(5));
    until_empty(&t).await;
    r.shutdown.cancel();
    r.handle.await.unwrap();

    let attempts = r.recorder.attempts.lock().unwrap().clone();
    assert!(ids[..300].iter().all(|id| attempts.get(&id.0) == Some(&1)), "every plain job ran exactly once");
    assert_eq!(attempts[&ids[300].0], 3, "flaky job retried until it succeeded");
    assert_eq!(attempts[&ids[301].0], 1, "permanent failure is not retried");
    assert_eq!(attempts[&ids[302].0], 2, "a panicking handler is retried, and the worker survives");
    let dead = t.store.list_dead(None, None, 10).await.unwrap();
    assert_eq!(dead.iter().map(|d| d.id).collect::<Vec<_>>(), [ids[301]]);
    assert_eq!(dead[0].last_error.as_deref(), Some("cannot ever work"));
    let text = r.metrics.render(&pipehook_api::metrics::Snapshot::default());
    assert!(text.contains(r#"pipehook_jobs_total{kind="t.work",outcome="completed"} 302"#), "{text}");
    assert!(text.contains(r#"pipehook_jobs_total{kind="t.work",outcome="retried"} 3"#), "{text}");
    assert!(text.contains(r#"pipehook_jobs_total{kind="t.work",outcome="dead"} 1"#), "{text}");
}

async fn heartbeat_keeps_long_jobs_leased(t: TestStore) {
    // The job outlives its 300 ms lease several times over; the heartbeat must keep it ours.
    t.store.enqueue(&[NewJob::new("t.work", json!({"mode": "slow", "ms": 1200}))]).await.unwrap();
    let r = start(&t, 300, Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(150)).await;
    for _ in 0..8 {
        let stolen = t.store.claim(&["t.work"], 10, Duration::from_secs(30)).await.unwrap();
        assert!(stolen.is_empty(), "a running job's lease expired under a live worker");
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    until_empty(&t).await;
    r.shutdown.cancel();
    r.handle.await.unwrap();
    assert_eq!(r.recorder.attempts.lock().unwrap().values().copied().collect::<Vec<_>>(), [1]);
}

async fn shutdown_drains_then_releases(t: TestStore) {
    let ids = t
        .store
        .enqueue(&[
            NewJob::new("t.work", json!({"mode": "slow", "ms": 200})),
            NewJob::new("t.work", json!({"mode": "slow", "ms": 60_000})),
        ])
        .await
        .unwrap();
    let r = start(&t, 30_000, Duration::from_millis(800));
    tokio::time::sleep(Duration::from_millis(100)).await;
    r.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), r.handle)
        .await
        .expect("drain is bounded by the grace period")
        .unwrap();
    // The short job finished during the drain; the long one was released at once for another worker,
    // without using up an attempt.
    let left = t.store.claim(&["t.work"], 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(left.iter().map(|j| (j.id, j.attempt)).collect::<Vec<_>>(), [(ids[1], 1)]);
}

macro_rules! both_backends {
    ($($name:ident),*) => {
        mod sqlite_pool {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name(super::testing::sqlite().await).await }
            )*
        }
        mod postgres_pool {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(t) = super::testing::postgres().await { super::$name(t).await }
                }
            )*
        }
    };
}

both_backends!(
    runs_every_job_once_and_handles_failures,
    heartbeat_keeps_long_jobs_leased,
    shutdown_drains_then_releases
);
