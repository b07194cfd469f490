//! The worker pool: claims due jobs of the kinds it has handlers for, runs them concurrently, keeps their
//! leases alive with a heartbeat, and records each outcome.
//!
//! Completions are batched: finished leases go to one completer task that completes everything waiting in
//! one call, so a burst of short jobs costs a few commits, not one each.
//!
//! Fencing: the heartbeat renews every held lease each `heartbeat`; a lease it finds lost (the node paused
//! past it and another node took the job) has its job's task dropped at once, which kills its commands, and
//! the handlers' own writes are fenced by the lease in the store, so a worker that lost a job changes
//! nothing more of it.
//!
//! Draining: on shutdown the pool stops claiming and tells running jobs to hand off (`JobContext::handoff`:
//! a pipeline execution stops between actions and is deferred, so another node carries on at once); running
//! jobs get until the drain deadline, then their tasks are dropped and their leases released.

use pipehook_api::metrics::Metrics;
use pipehook_domain::time::Timestamp;
use pipehook_store::{Claimer, Job, JobContext, JobFailure, JobHandler, Lease, Queue, StoreError};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::WorkerConfig;

/// Handlers by job kind.
#[derive(Default, Clone)]
pub struct Handlers(HashMap<String, Arc<dyn JobHandler>>);

impl Handlers {
    pub fn register(&mut self, kind: impl Into<String>, handler: Arc<dyn JobHandler>) -> &mut Self {
        self.0.insert(kind.into(), handler);
        self
    }

    pub fn kinds(&self) -> Vec<String> {
        let mut k: Vec<String> = self.0.keys().cloned().collect();
        k.sort();
        k
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub struct WorkerPool {
    queue: Arc<dyn Queue>,
    handlers: Handlers,
    config: WorkerConfig,
    metrics: Arc<Metrics>,
}

/// The leases this pool holds, each with its job's kind and task once spawned (so a lost lease's task can be
/// dropped).
type Held = Arc<Mutex<HashMap<Lease, HeldJob>>>;

struct HeldJob {
    kind: String,
    task: Option<tokio::task::AbortHandle>,
}

fn lock_held(held: &Held) -> std::sync::MutexGuard<'_, HashMap<Lease, HeldJob>> {
    held.lock().unwrap_or_else(|p| p.into_inner())
}

impl WorkerPool {
    pub fn new(queue: Arc<dyn Queue>, handlers: Handlers, config: WorkerConfig, metrics: Arc<Metrics>) -> Self {
        Self { queue, handlers, config, metrics }
    }

    /// Runs until `shutdown`, then drains for at most the configured drain time.
    pub async fn run(self, shutdown: CancellationToken) {
        let grace = self.config.drain;
        if self.handlers.is_empty() {
            shutdown.cancelled().await;
            return;
        }
        let kinds = self.handlers.kinds();
        let kind_refs: Vec<&str> = kinds.iter().map(String::as_str).collect();
        let slots = Arc::new(Semaphore::new(self.config.concurrency));
        let held: Held = Arc::default();
        let (done_tx, done_rx) = mpsc::unbounded_channel::<(Lease, String)>();
        // Guards, so that dropping this future (a crash in miniature) also ends the heartbeat: a heartbeat that
        // outlived its pool would keep dead jobs leased forever.
        let completer = AbortOnDrop(tokio::spawn(complete_batches(
            self.queue.clone(),
            done_rx,
            held.clone(),
            self.metrics.clone(),
        )));
        let heartbeat = AbortOnDrop(tokio::spawn(heartbeat(
            self.queue.clone(),
            held.clone(),
            self.config.lease,
            self.config.heartbeat,
            self.metrics.clone(),
        )));
        let context = JobContext::default();
        let claimer = Claimer { node: self.config.node.clone(), max_running_per_org: self.config.max_running_per_org };
        let mut running = JoinSet::new();
        let mut error_backoff = Duration::from_millis(100);

        while !shutdown.is_cancelled() {
            // Wait for at least one free slot, then claim as many jobs as there are free slots.
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let free = slots.available_permits() + 1;
            let jobs = match self.queue.claim_fair(&claimer, &kind_refs, free as u32, self.config.lease).await {
                Ok(jobs) => {
                    error_backoff = Duration::from_millis(100);
                    jobs
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming jobs failed; retrying");
                    drop(first);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(error_backoff) => {}
                    }
                    error_backoff = (error_backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if jobs.is_empty() {
                drop(first);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(self.config.poll) => {}
                }
                continue;
            }
            let mut permits = vec![first];
            for job in jobs {
                let permit = match permits.pop() {
                    Some(p) => p,
                    // Claimed no more than the free slots, so this only waits if a slot was taken meanwhile.
                    None => match slots.clone().acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                };
                lock_held(&held).insert(job.lease, HeldJob { kind: job.kind.clone(), task: None });
                let Some(handler) = self.handlers.0.get(&job.kind).cloned() else {
                    continue;
                };
                let lease = job.lease;
                let (queue, metrics, done_tx, task_held, context) =
                    (self.queue.clone(), self.metrics.clone(), done_tx.clone(), held.clone(), context.clone());
                let span = tracing::info_span!("job", job_id = job.id.0, kind = %job.kind, attempt = job.attempt);
                let task = running.spawn(
                    async move {
                        let _permit = permit;
                        run_one(&*queue, &*handler, job, &context, &metrics, &done_tx, &task_held).await;
                    }
                    .instrument(span),
                );
                // Unless the job already ended (and left `held`), the heartbeat can now drop it if its lease is lost.
                if let Some(slot) = lock_held(&held).get_mut(&lease) {
                    slot.task = Some(task);
                }
            }
            // Reap finished tasks so the set does not grow without bound.
            while running.try_join_next().is_some() {}
        }

        // Drain: running jobs are asked to hand off and get until the deadline; what is still running then is
        // dropped (its commands killed) and released.
        context.handoff.cancel();
        let deadline = tokio::time::sleep(grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                next = running.join_next() => if next.is_none() { break },
            }
        }
        running.abort_all();
        drop(done_tx);
        let _ = completer.join().await;
        drop(heartbeat);
        let leftover: Vec<Lease> = lock_held(&held).drain().map(|(lease, _)| lease).collect();
        if !leftover.is_empty() {
            match self.queue.release(&leftover).await {
                Ok(n) => tracing::info!(released = n, "released unfinished jobs for other workers"),
                Err(e) => {
                    tracing::warn!(error = %e, "releasing leases failed; they return when the leases expire")
                }
            }
        }
    }
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    /// Waits for the task to end by itself (and no longer aborts it).
    async fn join(mut self) -> Result<(), tokio::task::JoinError> {
        let handle = std::mem::replace(&mut self.0, tokio::spawn(async {}));
        handle.await
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run_one(
    queue: &dyn Queue,
    handler: &dyn JobHandler,
    job: Job,
    context: &JobContext,
    metrics: &Metrics,
    done: &mpsc::UnboundedSender<(Lease, String)>,
    held: &Held,
) {
    // A panicking handler must not take the worker down or leave the job leased until expiry.
    let outcome = {
        let fut = std::panic::AssertUnwindSafe(handler.handle(&job, context));
        match futures::FutureExt::catch_unwind(fut).await {
            Ok(r) => r,
            Err(_) => Err(JobFailure::Retry {
                error: "handler panicked".into(),
                after: pipehook_store::backoff(job.attempt, Duration::from_secs(1), Duration::from_secs(300)),
            }),
        }
    };
    match outcome {
        Ok(()) => {
            // The completer removes it from `held` once the completion is stored.
            if done.send((job.lease, job.kind.clone())).is_err() {
                lock_held(held).remove(&job.lease);
            }
        }
        Err(JobFailure::Defer { after }) => {
            let result = queue.defer(&job.lease, Timestamp::now().saturating_add(after)).await;
            lock_held(held).remove(&job.lease);
            if let Err(e) = result {
                tracing::warn!(error = %e, "deferring a job failed; it returns when its lease expires");
            }
            metrics.job_outcome(&job.kind, "deferred");
        }
        Err(failure) => {
            let (error, retry_at) = match failure {
                // Handled by the arm above; kept total without a panic path.
                JobFailure::Defer { after } => ("deferred".to_owned(), Some(Timestamp::now().saturating_add(after))),
                JobFailure::Retry { error, after } => (error, Some(Timestamp::now().saturating_add(after))),
                JobFailure::Permanent(error) => (error, None),
            };
            let result = queue.fail(&job.lease, &error, retry_at).await;
            lock_held(held).remove(&job.lease);
            let outcome = match result {
                Ok(Some(pipehook_store::FailOutcome::Retrying { .. })) => "retried",
                Ok(Some(pipehook_store::FailOutcome::Dead)) => "dead",
                Ok(None) => "lost",
                Err(e) => {
                    tracing::warn!(error = %e, "recording a job failure failed; the job returns when its lease expires");
                    "lost"
                }
            };
            tracing::warn!(%error, outcome, "job failed");
            metrics.job_outcome(&job.kind, outcome);
        }
    }
}

async fn complete_batches(
    queue: Arc<dyn Queue>,
    mut rx: mpsc::UnboundedReceiver<(Lease, String)>,
    held: Held,
    metrics: Arc<Metrics>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let leases: Vec<Lease> = batch.iter().map(|(l, _)| *l).collect();
        let mut attempt = 0;
        let completed = loop {
            match queue.complete(&leases).await {
                Ok(c) => break c,
                Err(e) if attempt < 5 && is_retryable(&e) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, jobs = leases.len(), "completing jobs failed; they will run again when their leases expire");
                    break Vec::new();
                }
            }
        };
        let completed: HashSet<Lease> = completed.into_iter().collect();
        let mut h = lock_held(&held);
        for (lease, kind) in &batch {
            h.remove(lease);
            metrics.job_outcome(kind, if completed.contains(lease) { "completed" } else { "lost" });
        }
    }
}

fn is_retryable(e: &StoreError) -> bool {
    e.is_transient() || matches!(e, StoreError::Database(_))
}

/// Renews every held lease each `every` (at most a third of the lease), so a live worker never loses a job it
/// is running. A lease found lost was taken over by another node while this one was paused or cut off: its
/// job's task is dropped at once (killing its commands), since every write it could still make is refused.
/// It keeps running through the drain after shutdown; the pool aborts it when it is done.
async fn heartbeat(queue: Arc<dyn Queue>, held: Held, lease: Duration, every: Duration, metrics: Arc<Metrics>) {
    let every = every.min(lease / 3).max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(every).await;
        let leases: Vec<Lease> = lock_held(&held).keys().copied().collect();
        if leases.is_empty() {
            continue;
        }
        match queue.extend(&leases, lease).await {
            Ok(kept) if kept.len() < leases.len() => {
                let kept: HashSet<Lease> = kept.into_iter().collect();
                let mut h = lock_held(&held);
                for lost in leases.iter().filter(|l| !kept.contains(l)) {
                    // Not in `held` any more: the job ended meanwhile (completed, failed or deferred).
                    if let Some(job) = h.remove(lost) {
                        tracing::warn!(job_id = lost.job.0, kind = %job.kind, "a job's lease was lost to another node; stopping it here");
                        if let Some(task) = job.task {
                            task.abort();
                        }
                        metrics.job_outcome(&job.kind, "lost");
                    }
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "extending job leases failed"),
        }
    }
}
