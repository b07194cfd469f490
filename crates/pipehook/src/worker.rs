//! The worker pool: claims due jobs of the kinds it has handlers for, runs them concurrently, keeps their
//! leases alive with a heartbeat, and records each outcome.
//!
//! Completions are batched: finished leases go to one completer task that completes everything waiting in
//! one call, so a burst of short jobs costs a few commits, not one each. On shutdown the pool stops
//! claiming, lets running jobs finish until the deadline, then releases the leases it still holds so
//! another node picks those jobs up at once instead of after the lease expires.

use pipehook_api::metrics::Metrics;
use pipehook_domain::time::Timestamp;
use pipehook_store::{Job, JobFailure, JobHandler, Lease, Queue, StoreError};
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

type Held = Arc<Mutex<HashSet<Lease>>>;

impl WorkerPool {
    pub fn new(queue: Arc<dyn Queue>, handlers: Handlers, config: WorkerConfig, metrics: Arc<Metrics>) -> Self {
        Self { queue, handlers, config, metrics }
    }

    /// Runs until `shutdown`, then drains for at most `grace`.
    pub async fn run(self, shutdown: CancellationToken, grace: Duration) {
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
        let heartbeat = AbortOnDrop(tokio::spawn(heartbeat(self.queue.clone(), held.clone(), self.config.lease)));
        let mut running = JoinSet::new();
        let mut error_backoff = Duration::from_millis(100);

        while !shutdown.is_cancelled() {
            // Wait for at least one free slot, then claim as many jobs as there are free slots.
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let free = slots.available_permits() + 1;
            let jobs = match self.queue.claim(&kind_refs, free as u32, self.config.lease).await {
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
                held.lock().unwrap_or_else(|p| p.into_inner()).insert(job.lease);
                let Some(handler) = self.handlers.0.get(&job.kind).cloned() else {
                    continue;
                };
                let (queue, metrics, done_tx, held) =
                    (self.queue.clone(), self.metrics.clone(), done_tx.clone(), held.clone());
                let span = tracing::info_span!("job", job_id = job.id.0, kind = %job.kind, attempt = job.attempt);
                running.spawn(
                    async move {
                        let _permit = permit;
                        run_one(&*queue, &*handler, job, &metrics, &done_tx, &held).await;
                    }
                    .instrument(span),
                );
            }
            // Reap finished tasks so the set does not grow without bound.
            while running.try_join_next().is_some() {}
        }

        // Drain: running jobs get until the deadline; what is still running then is released.
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
        let leftover: Vec<Lease> = held.lock().unwrap_or_else(|p| p.into_inner()).drain().collect();
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
    metrics: &Metrics,
    done: &mpsc::UnboundedSender<(Lease, String)>,
    held: &Held,
) {
    // A panicking handler must not take the worker down or leave the job leased until expiry.
    let outcome = {
        let fut = std::panic::AssertUnwindSafe(handler.handle(&job));
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
                held.lock().unwrap_or_else(|p| p.into_inner()).remove(&job.lease);
            }
        }
        Err(JobFailure::Defer { after }) => {
            let result = queue.defer(&job.lease, Timestamp::now().saturating_add(after)).await;
            held.lock().unwrap_or_else(|p| p.into_inner()).remove(&job.lease);
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
            held.lock().unwrap_or_else(|p| p.into_inner()).remove(&job.lease);
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
        let mut h = held.lock().unwrap_or_else(|p| p.into_inner());
        for (lease, kind) in &batch {
            h.remove(lease);
            metrics.job_outcome(kind, if completed.contains(lease) { "completed" } else { "lost" });
        }
    }
}

fn is_retryable(e: &StoreError) -> bool {
    e.is_transient() || matches!(e, StoreError::Database(_))
}

/// Extends every held lease at a third of the lease time, so a live worker never loses a job it is running.
/// It keeps running through the drain after shutdown; the pool aborts it when it is done.
async fn heartbeat(queue: Arc<dyn Queue>, held: Held, lease: Duration) {
    let every = (lease / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let leases: Vec<Lease> = held.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect();
        if leases.is_empty() {
            continue;
        }
        match queue.extend(&leases, lease).await {
            Ok(kept) if kept.len() < leases.len() => {
                tracing::warn!(lost = leases.len() - kept.len(), "some job leases were lost (expired and taken over)")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "extending job leases failed"),
        }
    }
}
