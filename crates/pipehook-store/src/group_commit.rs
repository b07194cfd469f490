//! Group commit for SQLite's single writer connection.
//!
//! With `synchronous=FULL` every commit waits for the disk (a few milliseconds here), so one transaction per
//! call caps throughput at a few hundred commits a second whatever the CPU. Instead each write call queues
//! an *operation* and then either waits for its result or, if it gets the writer connection first, becomes
//! the *leader*: it takes every queued operation (its own and those of callers that arrived meanwhile), runs
//! them in one transaction, each inside its own savepoint so one failing operation rolls back only itself,
//! commits once, and hands every caller its result. No caller sees a result before the commit that made it
//! durable, and a failed commit fails every operation in it.
//!
//! The leader runs in a spawned task, so a caller that is cancelled mid-lead cannot abandon the connection
//! inside an open transaction.

use futures::future::BoxFuture;
use sqlx::sqlite::SqlitePool;
use sqlx::SqliteConnection;
use std::sync::Mutex;
use tokio::sync::oneshot;

use crate::{StoreError, StoreResult};

/// Delivers an operation's result once the commit outcome is known.
type Finisher = Box<dyn FnOnce(Option<&str>) + Send>;
/// One queued operation: runs on the connection, says whether it succeeded, and returns its finisher.
type Operation = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (bool, Finisher)> + Send>;

/// Most operations one transaction takes; the rest wait for the next leader.
const MAX_BATCH: usize = 256;

#[derive(Default)]
pub(crate) struct GroupCommit {
    pending: Mutex<Vec<Operation>>,
}

impl GroupCommit {
    /// Runs `op` in a shared transaction on `pool`'s (single) connection and returns its result after the
    /// commit.
    pub(crate) async fn submit<T, F>(&self, pool: &SqlitePool, op: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        let (tx, mut rx) = oneshot::channel::<StoreResult<T>>();
        let operation: Operation = Box::new(move |conn| {
            Box::pin(async move {
                let result = op(conn).await;
                let ok = result.is_ok();
                let finish: Finisher = Box::new(move |commit_error| {
                    let _ = tx.send(match commit_error {
                        None => result,
                        Some(e) => {
                            Err(StoreError::Database(sqlx::Error::Protocol(format!("group commit failed: {e}"))))
                        }
                    });
                });
                (ok, finish)
            })
        });
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).push(operation);
        loop {
            tokio::select! {
                biased;
                r = &mut rx => return r.unwrap_or_else(|_| Err(StoreError::Database(sqlx::Error::Protocol("the write transaction could not start".into())))),
                conn = pool.acquire() => {
                    let conn = conn?;
                    let batch: Vec<Operation> = {
                        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                        let n = p.len().min(MAX_BATCH);
                        p.drain(..n).collect()
                    };
                    if batch.is_empty() {
                        // Another leader already ran ours; its result is on the way.
                        drop(conn);
                        continue;
                    }
                    let _ = tokio::spawn(lead(conn, batch)).await;
                }
            }
        }
    }
}

async fn lead(mut conn: sqlx::pool::PoolConnection<sqlx::Sqlite>, batch: Vec<Operation>) {
    use sqlx::Executor;
    let conn: &mut SqliteConnection = &mut conn;
    if let Err(e) = conn.execute("BEGIN IMMEDIATE").await {
        // Nothing runs: dropping the operations drops their result channels, and every waiting caller
        // gets an error.
        tracing::error!(error = %e, operations = batch.len(), "could not start a write transaction");
        return;
    }
    let mut finishers = Vec::with_capacity(batch.len());
    let mut broken = None;
    let mut ops = batch.into_iter();
    for op in ops.by_ref() {
        if let Err(e) = conn.execute("SAVEPOINT op").await {
            broken = Some(e.to_string());
            break;
        }
        let (ok, finish) = op(&mut *conn).await;
        finishers.push(finish);
        let rolled_back = if ok { Ok(Default::default()) } else { conn.execute("ROLLBACK TO op").await };
        if let Err(e) = rolled_back.and(conn.execute("RELEASE op").await) {
            // SQLite may have rolled back the whole transaction (disk full, I/O error): stop here, and fail
            // everything rather than run the rest outside a transaction.
            broken = Some(e.to_string());
            break;
        }
    }
    // Operations never started are dropped; their callers get an error.
    drop(ops);
    let outcome = match broken {
        Some(e) => Err(e),
        None => conn.execute("COMMIT").await.map(|_| ()).map_err(|e| e.to_string()),
    };
    match outcome {
        Ok(()) => finishers.into_iter().for_each(|f| f(None)),
        Err(msg) => {
            tracing::error!(error = %msg, "group commit failed; rolling back");
            let _ = conn.execute("ROLLBACK").await;
            finishers.into_iter().for_each(|f| f(Some(&msg)));
        }
    }
}
