//! Background tasks that run beside a job step (log persistence, stop watchers) and are stopped by asking,
//! never by aborting.
//!
//! Aborting a task can cut a database write in half; a store must survive that, but the write itself is lost
//! and a late write can land after the step's final one (a partial log overwriting the whole log). A
//! [`Companion`] is told to stop, finishes the write it is in, and is awaited before the step records its
//! outcome.

use std::future::Future;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A spawned task with a stop token. [`Companion::finish`] asks it to stop and waits for it; dropping it (the
/// step's own future was dropped) only asks, so the task still ends at its next stop check.
pub(crate) struct Companion {
    stop: CancellationToken,
    handle: Option<JoinHandle<()>>,
}

impl Companion {
    /// Spawns `task` with the token it must watch between its steps.
    pub(crate) fn spawn<F, Fut>(task: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let stop = CancellationToken::new();
        let handle = tokio::spawn(task(stop.clone()));
        Self { stop, handle: Some(handle) }
    }

    /// Asks the task to stop and waits until it has.
    pub(crate) async fn finish(mut self) {
        self.stop.cancel();
        if let Some(handle) = self.handle.take() {
            if let Err(e) = handle.await {
                if e.is_panic() {
                    tracing::error!(error = %e, "a background task of a job step panicked");
                }
            }
        }
    }
}

impl Drop for Companion {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Sleeps for `every`, or returns false at once when `stop` is cancelled.
pub(crate) async fn pause(stop: &CancellationToken, every: std::time::Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(every) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn finish_lets_the_current_step_complete() {
        let done = Arc::new(AtomicUsize::new(0));
        let seen = done.clone();
        let c = Companion::spawn(move |stop| async move {
            while pause(&stop, Duration::from_millis(5)).await {}
            // A "write" after the stop request still completes before finish returns.
            tokio::time::sleep(Duration::from_millis(20)).await;
            seen.fetch_add(1, Ordering::SeqCst);
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        c.finish().await;
        assert_eq!(done.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn dropping_asks_the_task_to_stop() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let c = Companion::spawn(move |stop| async move {
            stop.cancelled().await;
            let _ = tx.send(());
        });
        drop(c);
        tokio::time::timeout(Duration::from_secs(5), rx).await.expect("stopped").expect("sent");
    }
}
