//! The embedded backend: one SQLite file in WAL mode.
//!
//! Writes go through a pool of exactly one connection and every write transaction starts with
//! `BEGIN IMMEDIATE`, so writers inside this process queue on the pool instead of failing with
//! `SQLITE_BUSY`, and a second process (the CLI writing credentials while the server runs) waits on the
//! busy timeout. Reads use a separate pool of read-only connections, which WAL lets run beside the writer.

use async_trait::async_trait;
use pipehook_domain::credentials::{AccessKeyId, TokenHash};
use pipehook_domain::org::{AccountId, OrgId, OrgName, Organization};
use pipehook_domain::time::Timestamp;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, Transaction};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use crate::builds_sql::*;
use crate::group_commit::GroupCommit;
use crate::outbound_sql::*;
use crate::pipelines::{ActionExecutionRecord, ExecutionRecord, NewExecution, PipelineRecord};
use crate::pipelines_sql::*;
use crate::queue::{
    bound_error, fair_shares, lease_deadline, new_lease_token, Demand, DueKinds, FAIR_GROUPS, FAIR_ORGS,
};
use crate::rows::*;
use crate::store::{AccessKeyRecord, Backend, TokenId, TokenPrincipal, TokenRecord};
use crate::webhooks::{InboundRecord, WebhookRecord};
use crate::webhooks_sql::*;
use crate::{
    Claimer, DeadJob, FailOutcome, Job, JobId, Lease, NewJob, Queue, QueueDepth, Store, StoreError, StoreResult, Tx,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How hard SQLite syncs a commit to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: a committed transaction survives power loss. The default.
    Full,
    /// `synchronous=NORMAL`: survives a crash of pipehook, may lose the last commits on power loss.
    Normal,
}

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub durability: Durability,
    pub read_connections: u32,
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { durability: Durability::Full, read_connections: 4, busy_timeout: Duration::from_secs(10) }
    }
}

pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    combiner: GroupCommit,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path`. Does not migrate.
    pub async fn open(path: &Path, opts: &SqliteOptions) -> StoreResult<Self> {
        let base = SqliteConnectOptions::new().filename(path);
        Self::open_with(base, opts).await
    }

    /// Opens a `sqlite:` URL (`sqlite:///abs/path.db`, `sqlite://rel.db`, `sqlite:file.db?mode=rwc`).
    pub async fn open_url(url: &str, opts: &SqliteOptions) -> StoreResult<Self> {
        let base = SqliteConnectOptions::from_str(url)?;
        Self::open_with(base, opts).await
    }

    async fn open_with(base: SqliteConnectOptions, opts: &SqliteOptions) -> StoreResult<Self> {
        let sync = match opts.durability {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Normal => SqliteSynchronous::Normal,
        };
        let common = base
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sync)
            .busy_timeout(opts.busy_timeout)
            .foreign_keys(true)
            .pragma("temp_store", "memory");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .after_release(|conn, _| Box::pin(async move { Ok(left_outside_transaction(conn).await) }))
            .connect_with(common.clone().create_if_missing(true))
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(opts.read_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(common.read_only(true))
            .await?;
        Ok(Self { write, read, combiner: GroupCommit::default() })
    }

    /// Starts a write transaction on the single writer connection.
    ///
    /// The `BEGIN` runs in its own task, so a caller cancelled while it waits (an HTTP client that hung up,
    /// an aborted runner task, a drained worker) cannot stop it half way. sqlx 0.8 acknowledges a custom
    /// `BEGIN` and then checks the connection in a second step; a caller dropped between the two leaves the
    /// connection inside a transaction that no `Transaction` owns, so nothing would ever end it and every
    /// later write would fail. Run to completion, the `Transaction` always exists, and dropping it (here, when
    /// the caller is gone) rolls it back.
    async fn begin_immediate(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        let pool = self.write.clone();
        match tokio::spawn(async move { pool.begin_with("BEGIN IMMEDIATE").await }).await {
            Ok(tx) => Ok(tx?),
            Err(e) => Err(StoreError::failed(format!("starting a write transaction failed: {e}"))),
        }
    }

    /// A real write transaction on the writer connection: `BEGIN IMMEDIATE` takes SQLite's write lock, so this
    /// fails when writes would (another process holds the lock, the file is read-only, the writer is stuck).
    async fn probe_write(&self) -> StoreResult<()> {
        let tx = self.begin_immediate().await.map_err(|e| StoreError::failed(format!("writes fail: {e}")))?;
        tx.commit().await.map_err(|e| StoreError::failed(format!("writes fail: {e}")))
    }
}

/// Whether the writer connection may go back to the pool: it must not be inside a transaction. Every write
/// path ends its transactions, and a cancelled caller's transaction is rolled back before this runs (sqlx
/// queues that rollback first), so this finding one is a defect; the connection is then closed, which rolls
/// the transaction back, and the pool opens a fresh one, instead of every later write failing.
///
/// `BEGIN` fails exactly when a transaction is open; a deferred `BEGIN` takes no lock, so the check costs one
/// round trip to the connection's thread per release (and the group commit releases once per batch).
async fn left_outside_transaction(conn: &mut SqliteConnection) -> bool {
    use sqlx::Executor;
    match conn.execute("BEGIN DEFERRED; ROLLBACK").await {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(error = %e, "the SQLite writer connection was released inside a transaction; closing it");
            false
        }
    }
}

/// `?, ?, ?` for an `IN (...)` list of `n` items.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

async fn enqueue_in(conn: &mut SqliteConnection, jobs: &[NewJob]) -> StoreResult<Vec<JobId>> {
    let now = Timestamp::now().0;
    let mut ids = Vec::with_capacity(jobs.len());
    // 9 bound values a row; SQLite allows 32766 per statement.
    for chunk in jobs.chunks(1000) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO jobs (kind, org_id, fair_key, payload, state, max_attempts, run_at, created_at, updated_at) ",
        );
        qb.push_values(chunk, |mut b, j| {
            b.push_bind(j.kind.clone())
                .push_bind(j.org.map(|o| o.0))
                .push_bind(j.fair_key.clone())
                .push_bind(encode_payload(&j.payload))
                .push_bind("ready")
                .push_bind(max_attempts_i32(j.max_attempts))
                .push_bind(j.run_at.map_or(now, |t| t.0))
                .push_bind(now)
                .push_bind(now);
        });
        qb.push(" RETURNING id");
        let mut got: Vec<i64> = qb.build_query_scalar().fetch_all(&mut *conn).await?;
        // RETURNING order is unspecified in SQLite; ids are assigned in VALUES order, so sorting restores it.
        got.sort_unstable();
        ids.extend(got.into_iter().map(JobId));
    }
    Ok(ids)
}

/// A JSON array of `[id, token]` pairs: a whole batch of leases as one bound value.
fn leases_json(leases: &[Lease]) -> String {
    let pairs: Vec<[i64; 2]> = leases.iter().map(|l| [l.job.0, l.token]).collect();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into())
}

/// Runs `sql` once for a whole batch of leases. `sql` selects the held jobs with
/// `id IN (SELECT j.id FROM json_each(?1) l JOIN jobs j ON ...)`, drives the join from the small lease list
/// into the primary key, and returns `id, lease_token` of the rows it touched.
async fn per_lease_batch(
    conn: &mut SqliteConnection,
    sql: &str,
    leases: &str,
    extra: Option<i64>,
) -> StoreResult<Vec<Lease>> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(sql).bind(leases).bind(extra).fetch_all(&mut *conn).await?;
    Ok(rows.into_iter().map(|(id, token)| Lease { job: JobId(id), token }).collect())
}

const HELD: &str = "id IN (SELECT j.id FROM json_each(?1) AS l JOIN jobs AS j \
                    ON j.id = l.value ->> 0 AND j.lease_token = l.value ->> 1 WHERE j.state = 'running')";

async fn claim_in(
    conn: &mut SqliteConnection,
    claimer: &Claimer,
    kinds: &[String],
    limit: u32,
    lease_for: Duration,
) -> StoreResult<Vec<JobRow>> {
    let now = Timestamp::now();
    let until = lease_deadline(now, lease_for).0;
    let token = new_lease_token();
    let in_kinds = placeholders(kinds.len());
    sqlx::query(
        "UPDATE jobs SET state = 'dead', lease_token = NULL, lease_until = NULL, last_error = ?1, updated_at = ?2 \
         WHERE state = 'running' AND lease_until <= ?2 AND attempts >= max_attempts",
    )
    .bind(LOST_LEASE_ERROR)
    .bind(now.0)
    .execute(&mut *conn)
    .await?;

    // The claimed rows: `which` selects the ids (its own `?`s come after the SET's four).
    let take = |which: String| {
        format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_token = ?, lease_until = ?, \
             updated_at = ?, node = NULLIF(?, '') WHERE id IN ({which}) RETURNING {JOB_COLUMNS}"
        )
    };
    // Jobs whose node died first: they were started, and someone is waiting for them.
    let sql = take(format!(
        "SELECT id FROM jobs WHERE state = 'running' AND lease_until <= ? AND kind IN ({in_kinds}) \
         AND attempts < max_attempts ORDER BY lease_until LIMIT ?"
    ));
    let mut q = sqlx::query_as::<_, JobRow>(&sql).bind(token).bind(until).bind(now.0).bind(&claimer.node).bind(now.0);
    for k in kinds {
        q = q.bind(k.as_str());
    }
    let mut rows = q.bind(i64::from(limit)).fetch_all(&mut *conn).await?;
    let left = limit.saturating_sub(rows.len() as u32);
    if left == 0 {
        return Ok(rows);
    }

    // Then ready jobs, shared fairly between the organizations that have some due.
    let (demand, mut due_kinds) = org_demand(conn, kinds, now.0).await?;
    let claim = Claim { token, until, now: now.0, node: &claimer.node };
    for (org, share) in fair_shares(demand, left, claimer.max_running_per_org) {
        let mut share = i64::from(share);
        let mut of_org = due_kinds.remove(&org).unwrap_or_default();
        of_org.sort();
        // One kind at a time (its oldest first), each shared between the organization's groups.
        for (_, kind) in of_org {
            if share <= 0 {
                break;
            }
            let got = claim_in_org(conn, &claim, &kind, org, share).await?;
            share -= got.len() as i64;
            rows.extend(got);
        }
    }
    Ok(rows)
}

/// What every claimed row is stamped with.
struct Claim<'a> {
    token: i64,
    until: i64,
    now: i64,
    node: &'a str,
}

/// Up to `share` due ready jobs of `kind` of `org`, shared round robin between its groups (`fair_key`: a
/// pipeline's executions, a project's builds), fewest running first, then oldest waiting; each group's oldest
/// first. Groups are found by skipping through `jobs_fair_group`, each read walks it in order.
async fn claim_in_org(
    conn: &mut SqliteConnection,
    c: &Claim<'_>,
    kind: &str,
    org: Option<i64>,
    share: i64,
) -> StoreResult<Vec<JobRow>> {
    let keys: Vec<String> = sqlx::query_scalar(
        "WITH RECURSIVE g(key) AS ( \
           SELECT MIN(fair_key) FROM jobs WHERE state = 'ready' AND kind = ?1 AND org_id IS ?2 \
           UNION ALL \
           SELECT (SELECT MIN(fair_key) FROM jobs WHERE state = 'ready' AND kind = ?1 AND org_id IS ?2 \
                   AND fair_key > g.key) FROM g WHERE g.key IS NOT NULL) \
         SELECT key FROM g WHERE key IS NOT NULL LIMIT ?3",
    )
    .bind(kind)
    .bind(org)
    .bind(FAIR_GROUPS)
    .fetch_all(&mut *conn)
    .await?;
    let mut demand = Vec::new();
    for key in keys.into_iter().map(Some).chain([None]) {
        let first: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(run_at) FROM jobs WHERE state = 'ready' AND kind = ? AND org_id IS ? AND fair_key IS ?",
        )
        .bind(kind)
        .bind(org)
        .bind(&key)
        .fetch_one(&mut *conn)
        .await?;
        if let Some(oldest) = first.filter(|at| *at <= c.now) {
            demand.push(Demand { key, oldest, running: 0 });
        }
    }
    if demand.len() > 1 {
        let running: std::collections::HashMap<Option<String>, i64> = sqlx::query_as(
            "SELECT fair_key, COUNT(*) FROM jobs WHERE state = 'running' AND kind = ? AND org_id IS ? GROUP BY fair_key",
        )
        .bind(kind)
        .bind(org)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
        for d in &mut demand {
            d.running = running.get(&d.key).copied().unwrap_or(0).max(0) as u64;
        }
    }
    let sql = format!(
        "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_token = ?, lease_until = ?, \
         updated_at = ?, node = NULLIF(?, '') WHERE id IN (SELECT id FROM jobs WHERE state = 'ready' AND kind = ? \
         AND org_id IS ? AND fair_key IS ? AND run_at <= ? AND attempts < max_attempts ORDER BY run_at, id LIMIT ?) \
         RETURNING {JOB_COLUMNS}"
    );
    let mut rows = Vec::new();
    for (key, n) in fair_shares(demand, u32::try_from(share).unwrap_or(u32::MAX), None) {
        let got: Vec<JobRow> = sqlx::query_as(&sql)
            .bind(c.token)
            .bind(c.until)
            .bind(c.now)
            .bind(c.node)
            .bind(kind)
            .bind(org)
            .bind(key)
            .bind(c.now)
            .bind(i64::from(n))
            .fetch_all(&mut *conn)
            .await?;
        rows.extend(got);
    }
    Ok(rows)
}

/// The organizations with due ready jobs of `kinds`, each with its oldest due `run_at` and its running jobs of
/// those kinds. Organizations are found by skipping through `jobs_fair` (one index seek each), never by
/// reading the backlog.
async fn org_demand(
    conn: &mut SqliteConnection,
    kinds: &[String],
    now: i64,
) -> StoreResult<(Vec<Demand<Option<i64>>>, DueKinds)> {
    let mut oldest: std::collections::HashMap<Option<i64>, i64> = std::collections::HashMap::new();
    let mut due_kinds: DueKinds = std::collections::HashMap::new();
    for kind in kinds {
        let orgs: Vec<i64> = sqlx::query_scalar(
            "WITH RECURSIVE o(org) AS ( \
               SELECT MIN(org_id) FROM jobs WHERE state = 'ready' AND kind = ?1 \
               UNION ALL \
               SELECT (SELECT MIN(org_id) FROM jobs WHERE state = 'ready' AND kind = ?1 AND org_id > o.org) \
               FROM o WHERE o.org IS NOT NULL) \
             SELECT org FROM o WHERE org IS NOT NULL LIMIT ?2",
        )
        .bind(kind)
        .bind(FAIR_ORGS)
        .fetch_all(&mut *conn)
        .await?;
        for org in orgs.into_iter().map(Some).chain([None]) {
            let first: Option<i64> =
                sqlx::query_scalar("SELECT MIN(run_at) FROM jobs WHERE state = 'ready' AND kind = ? AND org_id IS ?")
                    .bind(kind)
                    .bind(org)
                    .fetch_one(&mut *conn)
                    .await?;
            if let Some(at) = first.filter(|at| *at <= now) {
                let e = oldest.entry(org).or_insert(at);
                *e = (*e).min(at);
                due_kinds.entry(org).or_default().push((at, kind.to_string()));
            }
        }
    }
    if oldest.is_empty() {
        return Ok((Vec::new(), due_kinds));
    }
    let sql = format!(
        "SELECT org_id, COUNT(*) FROM jobs WHERE state = 'running' AND kind IN ({}) GROUP BY org_id",
        placeholders(kinds.len())
    );
    let mut q = sqlx::query_as::<_, (Option<i64>, i64)>(&sql);
    for k in kinds {
        q = q.bind(k.as_str());
    }
    let running: std::collections::HashMap<Option<i64>, i64> = q.fetch_all(&mut *conn).await?.into_iter().collect();
    let demand = oldest
        .into_iter()
        .map(|(org, oldest)| Demand {
            key: org,
            oldest,
            running: running.get(&org).copied().unwrap_or(0).max(0) as u64,
        })
        .collect();
    Ok((demand, due_kinds))
}

#[async_trait]
impl Queue for SqliteStore {
    async fn enqueue(&self, jobs: &[NewJob]) -> StoreResult<Vec<JobId>> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let jobs = jobs.to_vec();
        self.combiner.submit(&self.write, move |conn| Box::pin(async move { enqueue_in(conn, &jobs).await })).await
    }

    async fn claim_fair(
        &self,
        claimer: &Claimer,
        kinds: &[&str],
        limit: u32,
        lease_for: Duration,
    ) -> StoreResult<Vec<Job>> {
        if kinds.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        // Idle workers poll; answering "nothing due" from a read connection keeps them off the write lock.
        let now = Timestamp::now().0;
        let in_kinds = placeholders(kinds.len());
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'ready' AND run_at <= ? AND kind IN ({in_kinds})) \
                 OR EXISTS (SELECT 1 FROM jobs WHERE state = 'running' AND lease_until <= ?)"
        );
        let mut q = sqlx::query_scalar::<_, bool>(&sql).bind(now);
        for k in kinds {
            q = q.bind(*k);
        }
        if !q.bind(now).fetch_one(&self.read).await? {
            return Ok(Vec::new());
        }
        let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
        let claimer = claimer.clone();
        let rows = self
            .combiner
            .submit(&self.write, move |conn| {
                Box::pin(async move { claim_in(conn, &claimer, &kinds, limit, lease_for).await })
            })
            .await?;
        jobs_from_rows(rows)
    }

    async fn queued_jobs(&self, org: OrgId, kinds: &[&str]) -> StoreResult<u64> {
        let mut total = 0;
        for kind in kinds {
            let n: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'ready' AND kind = ? AND org_id = ?")
                    .bind(*kind)
                    .bind(org.0)
                    .fetch_one(&self.read)
                    .await?;
            total += n.max(0) as u64;
        }
        Ok(total)
    }

    async fn recover(&self, node: &str) -> StoreResult<u64> {
        if node.is_empty() {
            return Ok(0);
        }
        let (node, now) = (node.to_owned(), Timestamp::now().0);
        self.combiner
            .submit(&self.write, move |conn| {
                Box::pin(async move {
                    let r = sqlx::query(
                        "UPDATE jobs SET state = 'ready', lease_token = NULL, lease_until = NULL, run_at = ?1, \
                         updated_at = ?1 WHERE state = 'running' AND node = ?2",
                    )
                    .bind(now)
                    .bind(node)
                    .execute(&mut *conn)
                    .await?;
                    Ok(r.rows_affected())
                })
            })
            .await
    }

    async fn extend(&self, leases: &[Lease], lease_for: Duration) -> StoreResult<Vec<Lease>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let until = lease_deadline(Timestamp::now(), lease_for).0;
        let json = leases_json(leases);
        self.combiner
            .submit(&self.write, move |conn| {
                Box::pin(async move {
                    let sql = format!("UPDATE jobs SET lease_until = ?2 WHERE {HELD} RETURNING id, lease_token");
                    per_lease_batch(conn, &sql, &json, Some(until)).await
                })
            })
            .await
    }

    async fn complete(&self, leases: &[Lease]) -> StoreResult<Vec<Lease>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let json = leases_json(leases);
        self.combiner
            .submit(&self.write, move |conn| {
                Box::pin(async move {
                    let sql = format!("DELETE FROM jobs WHERE {HELD} RETURNING id, lease_token");
                    per_lease_batch(conn, &sql, &json, None).await
                })
            })
            .await
    }

    async fn fail(&self, lease: &Lease, error: &str, retry_at: Option<Timestamp>) -> StoreResult<Option<FailOutcome>> {
        let now = Timestamp::now().0;
        let retry = retry_at.map(|t| t.0);
        let (lease, error) = (*lease, bound_error(error));
        let row: Option<(String, i64)> = self
            .combiner
            .submit(&self.write, move |conn| {
                Box::pin(async move {
                    Ok(sqlx::query_as(
                        "UPDATE jobs SET \
                           state = CASE WHEN ?1 IS NOT NULL AND attempts < max_attempts THEN 'ready' ELSE 'dead' END, \
                           run_at = COALESCE(?1, run_at), lease_token = NULL, lease_until = NULL, last_error = ?2, \
                           updated_at = ?3 \
                         WHERE id = ?4 AND lease_token = ?5 AND state = 'running' RETURNING state, run_at",
                    )
                    .bind(retry)
                    .bind(error)
                    .bind(now)
                    .bind(lease.job.0)
                    .bind(lease.token)
                    .fetch_optional(&mut *conn)
                    .await?)
                })
            })
            .await?;
        Ok(row.map(|(state, run_at)| fail_state(retry, &state, run_at)))
    }

    async fn defer(&self, lease: &Lease, run_at: Timestamp) -> StoreResult<bool> {
        let lease = *lease;
        let now = Timestamp::now().0;
        self.combiner
            .submit(&self.write, move |conn| {
                Box::pin(async move {
                    let r = sqlx::query(
                        "UPDATE jobs SET state = 'ready', attempts = MAX(attempts - 1, 0), lease_token = NULL, \
                         lease_until = NULL, run_at = ?1, updated_at = ?2 WHERE id = ?3 AND lease_token = ?4 \
                         AND state = 'running'",
                    )
                    .bind(run_at.0)
                    .bind(now)
                    .bind(lease.job.0)
                    .bind(lease.token)
                    .execute(&mut *conn)
                    .await?;
                    Ok(r.rows_affected() == 1)
                })
            })
            .await
    }

    async fn release(&self, leases: &[Lease]) -> StoreResult<u64> {
        if leases.is_empty() {
            return Ok(0);
        }
        let json = leases_json(leases);
        let now = Timestamp::now().0;
        let held = self
            .combiner
            .submit(&self.write, move |conn| {
                Box::pin(async move {
                    let sql = format!(
                        "UPDATE jobs SET state = 'ready', attempts = MAX(attempts - 1, 0), lease_token = NULL, \
                         lease_until = NULL, updated_at = ?2 WHERE {HELD} RETURNING id, ?2"
                    );
                    per_lease_batch(conn, &sql, &json, Some(now)).await
                })
            })
            .await?;
        Ok(held.len() as u64)
    }

    async fn list_dead(&self, kind: Option<&str>, before: Option<JobId>, limit: u32) -> StoreResult<Vec<DeadJob>> {
        let rows: Vec<JobRow> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'dead' AND (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR id < ?2) \
             ORDER BY id DESC LIMIT ?3"
        ))
        .bind(kind)
        .bind(before.map(|b| b.0))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(DeadJob::try_from).collect()
    }

    async fn requeue_dead(&self, id: JobId) -> StoreResult<bool> {
        let now = Timestamp::now().0;
        self.combiner
            .submit(&self.write, move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE jobs SET state = 'ready', attempts = 0, run_at = ?1, updated_at = ?1 \
                         WHERE id = ?2 AND state = 'dead'",
                    )
                    .bind(now)
                    .bind(id.0)
                    .execute(&mut *conn)
                    .await?;
                    Ok(done.rows_affected() == 1)
                })
            })
            .await
    }

    async fn depth(&self) -> StoreResult<Vec<QueueDepth>> {
        let rows: Vec<(String, String, i64, Option<i64>)> =
            sqlx::query_as(&crate::queue::depth_sql("?1")).bind(Timestamp::now().0).fetch_all(&self.read).await?;
        Ok(crate::queue::depth_rows(rows))
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.write).await?;
        Ok(())
    }

    async fn ready(&self) -> StoreResult<()> {
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
                .fetch_all(&self.read)
                .await
                .map_err(|e| StoreError::NotMigrated(e.to_string()))?;
        check_migrations(&MIGRATOR, &applied)?;
        self.probe_write().await
    }

    async fn begin(&self) -> StoreResult<Box<dyn Tx>> {
        Ok(Box::new(SqliteTx { tx: self.begin_immediate().await? }))
    }

    async fn org_by_name(&self, name: &OrgName) -> StoreResult<Option<Organization>> {
        let row: Option<OrgRow> = sqlx::query_as(&format!("SELECT {ORG_COLUMNS} FROM organizations WHERE name = ?"))
            .bind(name.as_str())
            .fetch_optional(&self.read)
            .await?;
        row.map(Organization::try_from).transpose()
    }

    async fn org_by_id(&self, id: OrgId) -> StoreResult<Option<Organization>> {
        let row: Option<OrgRow> = sqlx::query_as(&format!("SELECT {ORG_COLUMNS} FROM organizations WHERE id = ?"))
            .bind(id.0)
            .fetch_optional(&self.read)
            .await?;
        row.map(Organization::try_from).transpose()
    }

    async fn org_settings(&self, org: OrgId) -> StoreResult<serde_json::Value> {
        let raw: Option<String> = sqlx::query_scalar("SELECT settings FROM organizations WHERE id = ?")
            .bind(org.0)
            .fetch_optional(&self.read)
            .await?;
        Ok(raw
            .and_then(|r| serde_json::from_str(&r).ok())
            .filter(serde_json::Value::is_object)
            .unwrap_or_else(|| serde_json::json!({})))
    }

    async fn status_counts(&self) -> StoreResult<Vec<crate::StatusCount>> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as(crate::store::STATUS_COUNTS_SQL).fetch_all(&self.read).await?;
        Ok(crate::store::status_counts(rows))
    }

    async fn list_orgs(&self) -> StoreResult<Vec<Organization>> {
        let rows: Vec<OrgRow> = sqlx::query_as(&format!("SELECT {ORG_COLUMNS} FROM organizations ORDER BY name"))
            .fetch_all(&self.read)
            .await?;
        rows.into_iter().map(Organization::try_from).collect()
    }

    async fn token_principal(&self, hash: &TokenHash) -> StoreResult<Option<TokenPrincipal>> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT id, org_id FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL")
                .bind(&hash.0)
                .fetch_optional(&self.read)
                .await?;
        let Some((token, org)) = row else {
            return Ok(None);
        };
        Ok(self.org_by_id(OrgId(org)).await?.map(|org| TokenPrincipal { token: TokenId(token), org }))
    }

    async fn list_tokens(&self, org: OrgId) -> StoreResult<Vec<TokenRecord>> {
        let rows: Vec<TokenRow> = sqlx::query_as(
            "SELECT id, org_id, description, created_at, revoked_at FROM api_tokens WHERE org_id = ? ORDER BY id",
        )
        .bind(org.0)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(TokenRecord::from).collect())
    }

    async fn access_key(&self, id: &AccessKeyId) -> StoreResult<Option<AccessKeyRecord>> {
        let row: Option<AccessKeyRow> =
            sqlx::query_as(&format!("SELECT {ACCESS_KEY_COLUMNS} FROM access_keys WHERE access_key_id = ?"))
                .bind(id.as_str())
                .fetch_optional(&self.read)
                .await?;
        row.map(AccessKeyRecord::try_from).transpose()
    }

    async fn list_access_keys(&self, org: OrgId) -> StoreResult<Vec<AccessKeyRecord>> {
        let rows: Vec<AccessKeyRow> = sqlx::query_as(&format!(
            "SELECT {ACCESS_KEY_COLUMNS} FROM access_keys WHERE org_id = ? ORDER BY created_at, access_key_id"
        ))
        .bind(org.0)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(AccessKeyRecord::try_from).collect()
    }

    async fn count_active_credentials(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NULL) \
                  + (SELECT COUNT(*) FROM access_keys WHERE revoked_at IS NULL)",
        )
        .fetch_one(&self.read)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
}

#[async_trait]
impl Tx for SqliteTx {
    async fn create_org(&mut self, name: &OrgName, account: &AccountId) -> StoreResult<Organization> {
        let row: OrgRow = sqlx::query_as(&format!(
            "INSERT INTO organizations (name, account_id, created_at) VALUES (?, ?, ?) RETURNING {ORG_COLUMNS}"
        ))
        .bind(name.as_str())
        .bind(account.as_str())
        .bind(Timestamp::now().0)
        .fetch_one(&mut *self.tx)
        .await?;
        row.try_into()
    }

    async fn create_token(&mut self, org: OrgId, hash: &TokenHash, description: &str) -> StoreResult<TokenId> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_tokens (org_id, token_hash, description, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(org.0)
        .bind(&hash.0)
        .bind(description)
        .bind(Timestamp::now().0)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(TokenId(id))
    }

    async fn set_org_settings(&mut self, org: OrgId, settings: &serde_json::Value) -> StoreResult<bool> {
        let r = sqlx::query("UPDATE organizations SET settings = ? WHERE id = ?")
            .bind(settings.to_string())
            .bind(org.0)
            .execute(&mut *self.tx)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn revoke_token(&mut self, org: OrgId, id: TokenId) -> StoreResult<bool> {
        let r = sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND org_id = ? AND revoked_at IS NULL")
            .bind(Timestamp::now().0)
            .bind(id.0)
            .bind(org.0)
            .execute(&mut *self.tx)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn create_access_key(
        &mut self,
        org: OrgId,
        id: &AccessKeyId,
        secret_ciphertext: &str,
        description: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO access_keys (access_key_id, org_id, secret_ciphertext, description, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id.as_str())
        .bind(org.0)
        .bind(secret_ciphertext)
        .bind(description)
        .bind(Timestamp::now().0)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn set_access_key_secret(
        &mut self,
        org: OrgId,
        id: &AccessKeyId,
        secret_ciphertext: &str,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE access_keys SET secret_ciphertext = ?, revoked_at = NULL WHERE access_key_id = ? AND org_id = ?",
        )
        .bind(secret_ciphertext)
        .bind(id.as_str())
        .bind(org.0)
        .execute(&mut *self.tx)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn revoke_access_key(&mut self, org: OrgId, id: &AccessKeyId) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE access_keys SET revoked_at = ? WHERE access_key_id = ? AND org_id = ? AND revoked_at IS NULL",
        )
        .bind(Timestamp::now().0)
        .bind(id.as_str())
        .bind(org.0)
        .execute(&mut *self.tx)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn enqueue(&mut self, jobs: &[NewJob]) -> StoreResult<Vec<JobId>> {
        enqueue_in(&mut self.tx, jobs).await
    }

    async fn hold(&mut self, lease: &Lease) -> StoreResult<()> {
        // The transaction began IMMEDIATE: it holds the write lock, so no claim can take the job before it ends.
        let held: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM jobs WHERE id = ? AND lease_token = ? AND state = 'running'")
                .bind(lease.job.0)
                .bind(lease.token)
                .fetch_optional(&mut *self.tx)
                .await?;
        held.map(|_| ()).ok_or(StoreError::LeaseLost)
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl SqliteStore {
    fn reader(&self) -> &SqlitePool {
        &self.read
    }
}

pipeline_store_impl!(SqliteStore, sqlite_sql);
pipeline_tx_impl!([] SqliteTx, sqlite_sql);
pipeline_tx_impl!([<'c>] ConnTx<'c>, sqlite_sql);
webhook_tx_impl!([<'c>] ConnTx<'c>, sqlite_sql);

/// The writer connection inside a group-commit operation, seen as a transaction.
struct ConnTx<'c> {
    tx: &'c mut SqliteConnection,
}

#[async_trait]
impl crate::webhooks::TriggerTx for ConnTx<'_> {
    async fn enqueue_jobs(&mut self, jobs: &[NewJob]) -> StoreResult<()> {
        enqueue_in(self.tx, jobs).await.map(|_| ())
    }
}

impl SqliteStore {
    async fn record_trigger_impl(
        &self,
        w: crate::webhooks::TriggerWrite,
    ) -> StoreResult<crate::webhooks::TriggerOutcome> {
        self.combiner
            .submit(&self.write, move |conn| {
                Box::pin(async move {
                    let mut tx = ConnTx { tx: conn };
                    crate::webhooks::record_trigger_in(&mut tx, &w).await
                })
            })
            .await
    }
}
webhook_store_impl!(SqliteStore, sqlite_sql);
webhook_tx_impl!([] SqliteTx, sqlite_sql);

outbound_store_impl!(SqliteStore, sqlite_sql);
outbound_tx_impl!([] SqliteTx, sqlite_sql, "");
outbound_tx_impl!([<'c>] ConnTx<'c>, sqlite_sql, "");

impl SqliteStore {
    async fn publish_impl(&self, p: crate::outbound::Publication) -> StoreResult<()> {
        self.combiner
            .submit(&self.write, move |conn| {
                Box::pin(async move {
                    let mut tx = ConnTx { tx: conn };
                    crate::outbound::publish_in(&mut tx, &p).await
                })
            })
            .await
    }

    async fn record_attempts_impl(&self, ws: Vec<crate::outbound::AttemptWrite>) -> StoreResult<()> {
        self.combiner
            .submit(&self.write, move |conn| {
                Box::pin(async move {
                    let mut tx = ConnTx { tx: conn };
                    crate::outbound::record_attempts_in(&mut tx, &ws).await
                })
            })
            .await
    }
}

build_store_impl!(SqliteStore, sqlite_sql);
build_tx_impl!([] SqliteTx, sqlite_sql);
build_tx_impl!([<'c>] ConnTx<'c>, sqlite_sql);

impl SqliteStore {
    async fn record_build_trigger_impl(
        &self,
        w: crate::builds::BuildTriggerWrite,
    ) -> StoreResult<(crate::webhooks::TriggerOutcome, Option<crate::builds::BuildRecord>)> {
        self.combiner
            .submit(&self.write, move |conn| {
                Box::pin(async move {
                    let mut tx = ConnTx { tx: conn };
                    crate::builds::record_build_trigger_in(&mut tx, &w).await
                })
            })
            .await
    }
}
