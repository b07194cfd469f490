//! The shared backend: PostgreSQL, for several pipehook nodes working off one database.
//!
//! Claims lock candidate rows with `FOR UPDATE SKIP LOCKED`, so concurrent claimers on any node pass over
//! each other's rows instead of waiting or double-claiming. Batched operations send arrays (`UNNEST`) so a
//! batch of 100 is one round trip.

use async_trait::async_trait;
use pipehook_domain::credentials::{AccessKeyId, TokenHash};
use pipehook_domain::org::{AccountId, OrgId, OrgName, Organization};
use pipehook_domain::time::Timestamp;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;

use crate::builds_sql::*;
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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone)]
pub struct PgOptions {
    pub max_connections: u32,
    /// Use (and create) this schema instead of the default search path: one database can host several
    /// independent pipehook installations, and each test gets a fresh one.
    pub schema: Option<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self { max_connections: 16, schema: None }
    }
}

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to a `postgres://` URL. Does not migrate. Fails at once when the server is unreachable; the
    /// binary retries with backoff.
    pub async fn connect(url: &str, opts: &PgOptions) -> StoreResult<Self> {
        let mut connect = PgConnectOptions::from_str(url)?.application_name("pipehook");
        if let Some(schema) = &opts.schema {
            if !schema.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') || schema.is_empty() {
                return Err(StoreError::Corrupt(format!("invalid schema name {schema:?}")));
            }
            let mut conn = connect.connect().await?;
            // Nodes starting together race on CREATE SCHEMA IF NOT EXISTS (it can fail on the catalog's
            // unique index); losing that race is fine when the schema now exists.
            if let Err(e) = sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")).execute(&mut conn).await {
                let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                    .bind(schema)
                    .fetch_one(&mut conn)
                    .await?;
                if !exists {
                    return Err(e.into());
                }
            }
            conn.close().await?;
            connect = connect.options([("search_path", schema.as_str())]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections.max(2))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(connect)
            .await?;
        Ok(Self { pool })
    }

    /// Drops a schema made with [`PgOptions::schema`] (test cleanup).
    /// The connection pool (tests use it to watch and unblock their own sessions).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn drop_schema(&self, schema: &str) -> StoreResult<()> {
        sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).execute(&self.pool).await?;
        Ok(())
    }
}

async fn enqueue_in(tx: &mut Transaction<'static, Postgres>, jobs: &[NewJob]) -> StoreResult<Vec<JobId>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let now = Timestamp::now().0;
    let kinds: Vec<&str> = jobs.iter().map(|j| j.kind.as_str()).collect();
    let orgs: Vec<Option<i64>> = jobs.iter().map(|j| j.org.map(|o| o.0)).collect();
    let payloads: Vec<String> = jobs.iter().map(|j| encode_payload(&j.payload)).collect();
    let keys: Vec<Option<&str>> = jobs.iter().map(|j| j.fair_key.as_deref()).collect();
    let max: Vec<i32> = jobs.iter().map(|j| max_attempts_i32(j.max_attempts)).collect();
    let run_at: Vec<i64> = jobs.iter().map(|j| j.run_at.map_or(now, |t| t.0)).collect();
    let mut ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO jobs (kind, org_id, payload, state, max_attempts, run_at, created_at, updated_at, fair_key) \
         SELECT k, o, p, 'ready', m, r, $6, $6, f \
           FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::int[], $5::bigint[], $7::text[]) \
           WITH ORDINALITY AS t(k, o, p, m, r, f, n) ORDER BY n \
         RETURNING id",
    )
    .bind(&kinds)
    .bind(&orgs)
    .bind(&payloads)
    .bind(&max)
    .bind(&run_at)
    .bind(now)
    .bind(&keys)
    .fetch_all(&mut **tx)
    .await?;
    // Ids come from one sequence in the SELECT's order, so sorting restores the input order.
    ids.sort_unstable();
    Ok(ids.into_iter().map(JobId).collect())
}

fn lease_arrays(leases: &[Lease]) -> (Vec<i64>, Vec<i64>) {
    leases.iter().map(|l| (l.job.0, l.token)).unzip()
}

fn leases_from(rows: Vec<(i64, i64)>) -> Vec<Lease> {
    rows.into_iter().map(|(id, token)| Lease { job: JobId(id), token }).collect()
}

#[async_trait]
impl Queue for PgStore {
    async fn enqueue(&self, jobs: &[NewJob]) -> StoreResult<Vec<JobId>> {
        let mut tx = self.pool.begin().await?;
        let ids = enqueue_in(&mut tx, jobs).await?;
        tx.commit().await?;
        Ok(ids)
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
        let now = Timestamp::now();
        let until = lease_deadline(now, lease_for).0;
        let token = new_lease_token();

        sqlx::query(
            "UPDATE jobs SET state = 'dead', lease_token = NULL, lease_until = NULL, last_error = $1, updated_at = $2 \
             WHERE id IN (SELECT id FROM jobs WHERE state = 'running' AND lease_until <= $2 \
                          AND attempts >= max_attempts FOR UPDATE SKIP LOCKED)",
        )
        .bind(LOST_LEASE_ERROR)
        .bind(now.0)
        .execute(&self.pool)
        .await?;

        // `id = ANY(ARRAY(...))` makes the planner lock the picked rows first and then update them by primary
        // key, instead of hash-joining the whole backlog on a table without statistics. `which`'s own
        // parameters start at $5.
        let take = |which: &str| {
            format!(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_token = $1, lease_until = $2, \
                 updated_at = $3, node = NULLIF($4, '') WHERE id = ANY(ARRAY({which} FOR UPDATE SKIP LOCKED)) \
                 RETURNING {JOB_COLUMNS}"
            )
        };
        // Jobs whose node died first: they were started, and someone is waiting for them.
        let sql = take(
            "SELECT id FROM jobs WHERE state = 'running' AND lease_until <= $3 AND kind = ANY($5) \
             AND attempts < max_attempts ORDER BY lease_until LIMIT $6",
        );
        let mut rows: Vec<JobRow> = sqlx::query_as(&sql)
            .bind(token)
            .bind(until)
            .bind(now.0)
            .bind(&claimer.node)
            .bind(kinds)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let left = limit.saturating_sub(rows.len() as u32);
        if left > 0 {
            // Then ready jobs, shared fairly between the organizations that have some due.
            let (demand, mut due_kinds) = self.org_demand(kinds, now.0).await?;
            for (org, share) in fair_shares(demand, left, claimer.max_running_per_org) {
                let mut share = i64::from(share);
                let mut of_org = due_kinds.remove(&org).unwrap_or_default();
                of_org.sort();
                // One kind at a time (its oldest first), each shared between the organization's groups.
                for (_, kind) in of_org {
                    if share <= 0 {
                        break;
                    }
                    let got = self.claim_in_org(token, until, now.0, &claimer.node, &kind, org, share).await?;
                    share -= got.len() as i64;
                    rows.extend(got);
                }
            }
        }
        jobs_from_rows(rows)
    }

    async fn queued_jobs(&self, org: OrgId, kinds: &[&str]) -> StoreResult<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'ready' AND kind = ANY($1) AND org_id = $2")
                .bind(kinds)
                .bind(org.0)
                .fetch_one(&self.pool)
                .await?;
        Ok(n.max(0) as u64)
    }

    async fn recover(&self, node: &str) -> StoreResult<u64> {
        if node.is_empty() {
            return Ok(0);
        }
        let now = Timestamp::now().0;
        let r = sqlx::query(
            "UPDATE jobs SET state = 'ready', lease_token = NULL, lease_until = NULL, run_at = $1, updated_at = $1 \
             WHERE state = 'running' AND node = $2",
        )
        .bind(now)
        .bind(node)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    async fn extend(&self, leases: &[Lease], lease_for: Duration) -> StoreResult<Vec<Lease>> {
        let until = lease_deadline(Timestamp::now(), lease_for).0;
        let (ids, tokens) = lease_arrays(leases);
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "UPDATE jobs j SET lease_until = $1 FROM UNNEST($2::bigint[], $3::bigint[]) AS l(id, tok) \
             WHERE j.id = l.id AND j.lease_token = l.tok AND j.state = 'running' RETURNING j.id, j.lease_token",
        )
        .bind(until)
        .bind(&ids)
        .bind(&tokens)
        .fetch_all(&self.pool)
        .await?;
        Ok(leases_from(rows))
    }

    async fn complete(&self, leases: &[Lease]) -> StoreResult<Vec<Lease>> {
        let (ids, tokens) = lease_arrays(leases);
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "DELETE FROM jobs j USING UNNEST($1::bigint[], $2::bigint[]) AS l(id, tok) \
             WHERE j.id = l.id AND j.lease_token = l.tok AND j.state = 'running' RETURNING j.id, l.tok",
        )
        .bind(&ids)
        .bind(&tokens)
        .fetch_all(&self.pool)
        .await?;
        Ok(leases_from(rows))
    }

    async fn fail(&self, lease: &Lease, error: &str, retry_at: Option<Timestamp>) -> StoreResult<Option<FailOutcome>> {
        let retry = retry_at.map(|t| t.0);
        let row: Option<(String, i64)> = sqlx::query_as(
            "UPDATE jobs SET \
               state = CASE WHEN $1::bigint IS NOT NULL AND attempts < max_attempts THEN 'ready' ELSE 'dead' END, \
               run_at = COALESCE($1::bigint, run_at), lease_token = NULL, lease_until = NULL, last_error = $2, \
               updated_at = $3 \
             WHERE id = $4 AND lease_token = $5 AND state = 'running' RETURNING state, run_at",
        )
        .bind(retry)
        .bind(bound_error(error))
        .bind(Timestamp::now().0)
        .bind(lease.job.0)
        .bind(lease.token)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(state, run_at)| fail_state(retry, &state, run_at)))
    }

    async fn defer(&self, lease: &Lease, run_at: Timestamp) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE jobs SET state = 'ready', attempts = GREATEST(attempts - 1, 0), lease_token = NULL, \
             lease_until = NULL, run_at = $1, updated_at = $2 WHERE id = $3 AND lease_token = $4 AND state = 'running'",
        )
        .bind(run_at.0)
        .bind(Timestamp::now().0)
        .bind(lease.job.0)
        .bind(lease.token)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn release(&self, leases: &[Lease]) -> StoreResult<u64> {
        let (ids, tokens) = lease_arrays(leases);
        let r = sqlx::query(
            "UPDATE jobs j SET state = 'ready', attempts = GREATEST(j.attempts - 1, 0), lease_token = NULL, \
             lease_until = NULL, updated_at = $1 FROM UNNEST($2::bigint[], $3::bigint[]) AS l(id, tok) \
             WHERE j.id = l.id AND j.lease_token = l.tok AND j.state = 'running'",
        )
        .bind(Timestamp::now().0)
        .bind(&ids)
        .bind(&tokens)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    async fn list_dead(&self, kind: Option<&str>, before: Option<JobId>, limit: u32) -> StoreResult<Vec<DeadJob>> {
        let rows: Vec<JobRow> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'dead' AND ($1::text IS NULL OR kind = $1) \
             AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        ))
        .bind(kind)
        .bind(before.map(|b| b.0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(DeadJob::try_from).collect()
    }

    async fn requeue_dead(&self, id: JobId) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE jobs SET state = 'ready', attempts = 0, run_at = $1, updated_at = $1 WHERE id = $2 AND state = 'dead'",
        )
        .bind(Timestamp::now().0)
        .bind(id.0)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn depth(&self) -> StoreResult<Vec<QueueDepth>> {
        let rows: Vec<(String, String, i64, Option<i64>)> =
            sqlx::query_as(&crate::queue::depth_sql("$1")).bind(Timestamp::now().0).fetch_all(&self.pool).await?;
        Ok(crate::queue::depth_rows(rows))
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> StoreResult<()> {
        // sqlx takes an advisory lock, so nodes starting together migrate one at a time.
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ready(&self) -> StoreResult<()> {
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| StoreError::NotMigrated(e.to_string()))?;
        check_migrations(&MIGRATOR, &applied)?;
        // A write transaction must be possible: a server that failed over to a standby, or a database set
        // read-only, answers reads but refuses every write.
        let mut tx = self.pool.begin().await?;
        let read_only: String = sqlx::query_scalar("SHOW transaction_read_only").fetch_one(&mut *tx).await?;
        tx.commit().await?;
        if read_only == "on" {
            return Err(StoreError::failed("writes fail: the database is read-only (transaction_read_only = on)"));
        }
        Ok(())
    }

    async fn begin(&self) -> StoreResult<Box<dyn Tx>> {
        Ok(Box::new(PgTx { tx: self.pool.begin().await? }))
    }

    async fn org_by_name(&self, name: &OrgName) -> StoreResult<Option<Organization>> {
        let row: Option<OrgRow> = sqlx::query_as(&format!("SELECT {ORG_COLUMNS} FROM organizations WHERE name = $1"))
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(Organization::try_from).transpose()
    }

    async fn org_by_id(&self, id: OrgId) -> StoreResult<Option<Organization>> {
        let row: Option<OrgRow> = sqlx::query_as(&format!("SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.map(Organization::try_from).transpose()
    }

    async fn org_settings(&self, org: OrgId) -> StoreResult<serde_json::Value> {
        let raw: Option<String> = sqlx::query_scalar("SELECT settings FROM organizations WHERE id = $1")
            .bind(org.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(raw
            .and_then(|r| serde_json::from_str(&r).ok())
            .filter(serde_json::Value::is_object)
            .unwrap_or_else(|| serde_json::json!({})))
    }

    async fn status_counts(&self) -> StoreResult<Vec<crate::StatusCount>> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as(crate::store::STATUS_COUNTS_SQL).fetch_all(&self.pool).await?;
        Ok(crate::store::status_counts(rows))
    }

    async fn list_orgs(&self) -> StoreResult<Vec<Organization>> {
        let rows: Vec<OrgRow> = sqlx::query_as(&format!("SELECT {ORG_COLUMNS} FROM organizations ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(Organization::try_from).collect()
    }

    async fn token_principal(&self, hash: &TokenHash) -> StoreResult<Option<TokenPrincipal>> {
        let row: Option<(i64, i64, String, String, i64)> = sqlx::query_as(
            "SELECT t.id, o.id, o.name, o.account_id, o.created_at FROM api_tokens t \
             JOIN organizations o ON o.id = t.org_id WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
        )
        .bind(&hash.0)
        .fetch_optional(&self.pool)
        .await?;
        let Some((token, id, name, account_id, created_at)) = row else {
            return Ok(None);
        };
        let org = Organization::try_from(OrgRow { id, name, account_id, created_at })?;
        Ok(Some(TokenPrincipal { token: TokenId(token), org }))
    }

    async fn list_tokens(&self, org: OrgId) -> StoreResult<Vec<TokenRecord>> {
        let rows: Vec<TokenRow> = sqlx::query_as(
            "SELECT id, org_id, description, created_at, revoked_at FROM api_tokens WHERE org_id = $1 ORDER BY id",
        )
        .bind(org.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(TokenRecord::from).collect())
    }

    async fn access_key(&self, id: &AccessKeyId) -> StoreResult<Option<AccessKeyRecord>> {
        let row: Option<AccessKeyRow> =
            sqlx::query_as(&format!("SELECT {ACCESS_KEY_COLUMNS} FROM access_keys WHERE access_key_id = $1"))
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
        row.map(AccessKeyRecord::try_from).transpose()
    }

    async fn list_access_keys(&self, org: OrgId) -> StoreResult<Vec<AccessKeyRecord>> {
        let rows: Vec<AccessKeyRow> = sqlx::query_as(&format!(
            "SELECT {ACCESS_KEY_COLUMNS} FROM access_keys WHERE org_id = $1 ORDER BY created_at, access_key_id"
        ))
        .bind(org.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(AccessKeyRecord::try_from).collect()
    }

    async fn count_active_credentials(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NULL) \
                  + (SELECT COUNT(*) FROM access_keys WHERE revoked_at IS NULL)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

struct PgTx {
    tx: Transaction<'static, Postgres>,
}

#[async_trait]
impl Tx for PgTx {
    async fn create_org(&mut self, name: &OrgName, account: &AccountId) -> StoreResult<Organization> {
        let row: OrgRow = sqlx::query_as(&format!(
            "INSERT INTO organizations (name, account_id, created_at) VALUES ($1, $2, $3) RETURNING {ORG_COLUMNS}"
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
            "INSERT INTO api_tokens (org_id, token_hash, description, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
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
        let r = sqlx::query("UPDATE organizations SET settings = $1 WHERE id = $2")
            .bind(settings.to_string())
            .bind(org.0)
            .execute(&mut *self.tx)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn revoke_token(&mut self, org: OrgId, id: TokenId) -> StoreResult<bool> {
        let r =
            sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL")
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
            "INSERT INTO access_keys (access_key_id, org_id, secret_ciphertext, description, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
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
            "UPDATE access_keys SET secret_ciphertext = $1, revoked_at = NULL WHERE access_key_id = $2 AND org_id = $3",
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
            "UPDATE access_keys SET revoked_at = $1 WHERE access_key_id = $2 AND org_id = $3 AND revoked_at IS NULL",
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
        // FOR SHARE locks the job's row until this transaction ends: a claim (which updates the row, skipping
        // locked ones) cannot take the job in between, so the writes here are the lease holder's or nothing.
        let held: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM jobs WHERE id = $1 AND lease_token = $2 AND state = 'running' FOR SHARE")
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

/// `column = $n`, or, for a missing value, `column IS NULL` (with `$n` still typed, so the statement binds the
/// same parameters): `IS NOT DISTINCT FROM` would match both but cannot use an index in PostgreSQL.
fn same(column: &str, n: usize, ty: &str, null: bool) -> String {
    if null {
        format!("({column} IS NULL AND ${n}::{ty} IS NULL)")
    } else {
        format!("{column} = ${n}")
    }
}

impl PgStore {
    /// Up to `share` due ready jobs of `kind` of `org`, shared round robin between its groups (`fair_key`),
    /// fewest running first, then oldest waiting; each group's oldest first (see the SQLite twin).
    #[allow(clippy::too_many_arguments)]
    async fn claim_in_org(
        &self,
        token: i64,
        until: i64,
        now: i64,
        node: &str,
        kind: &str,
        org: Option<i64>,
        share: i64,
    ) -> StoreResult<Vec<JobRow>> {
        // `IS NOT DISTINCT FROM` cannot use an index in PostgreSQL: `=` or `IS NULL`, chosen per call.
        let org2 = same("org_id", 2, "bigint", org.is_none());
        let sql = format!(
            "WITH RECURSIVE g(key) AS ( \
               SELECT MIN(fair_key) FROM jobs WHERE state = 'ready' AND kind = $1 AND {org2} \
               UNION ALL \
               SELECT (SELECT MIN(fair_key) FROM jobs WHERE state = 'ready' AND kind = $1 \
                       AND {org2} AND fair_key > g.key) FROM g WHERE g.key IS NOT NULL) \
             SELECT key FROM g WHERE key IS NOT NULL LIMIT $3"
        );
        let keys: Vec<String> =
            sqlx::query_scalar(&sql).bind(kind).bind(org).bind(FAIR_GROUPS).fetch_all(&self.pool).await?;
        let mut demand = Vec::new();
        for key in keys.into_iter().map(Some).chain([None]) {
            let sql = format!(
                "SELECT MIN(run_at) FROM jobs WHERE state = 'ready' AND kind = $1 AND {org2} AND {}",
                same("fair_key", 3, "text", key.is_none())
            );
            let first: Option<i64> =
                sqlx::query_scalar(&sql).bind(kind).bind(org).bind(&key).fetch_one(&self.pool).await?;
            if let Some(oldest) = first.filter(|at| *at <= now) {
                demand.push(Demand { key, oldest, running: 0 });
            }
        }
        if demand.len() > 1 {
            let sql = format!(
                "SELECT fair_key, COUNT(*) FROM jobs WHERE state = 'running' AND kind = $1 AND {org2} GROUP BY fair_key"
            );
            let running: std::collections::HashMap<Option<String>, i64> =
                sqlx::query_as(&sql).bind(kind).bind(org).fetch_all(&self.pool).await?.into_iter().collect();
            for d in &mut demand {
                d.running = running.get(&d.key).copied().unwrap_or(0).max(0) as u64;
            }
        }
        let org6 = same("org_id", 6, "bigint", org.is_none());
        let mut rows = Vec::new();
        for (key, n) in fair_shares(demand, u32::try_from(share).unwrap_or(u32::MAX), None) {
            let sql = format!(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_token = $1, lease_until = $2, \
                 updated_at = $3, node = NULLIF($4, '') WHERE id = ANY(ARRAY(SELECT id FROM jobs WHERE state = 'ready' \
                 AND kind = $5 AND {org6} AND {} AND run_at <= $3 AND attempts < max_attempts ORDER BY run_at, id \
                 LIMIT $8 FOR UPDATE SKIP LOCKED)) RETURNING {JOB_COLUMNS}",
                same("fair_key", 7, "text", key.is_none())
            );
            let got: Vec<JobRow> = sqlx::query_as(&sql)
                .bind(token)
                .bind(until)
                .bind(now)
                .bind(node)
                .bind(kind)
                .bind(org)
                .bind(key)
                .bind(i64::from(n))
                .fetch_all(&self.pool)
                .await?;
            rows.extend(got);
        }
        Ok(rows)
    }

    /// The organizations with due ready jobs of `kinds`, each with its oldest due `run_at` and its running jobs
    /// of those kinds, found by skipping through `jobs_fair` (one index seek each), never by reading the backlog.
    async fn org_demand(&self, kinds: &[&str], now: i64) -> StoreResult<(Vec<Demand<Option<i64>>>, DueKinds)> {
        let mut oldest: std::collections::HashMap<Option<i64>, i64> = std::collections::HashMap::new();
        let mut due_kinds: DueKinds = std::collections::HashMap::new();
        for kind in kinds {
            let orgs: Vec<i64> = sqlx::query_scalar(
                "WITH RECURSIVE o(org) AS ( \
                   SELECT MIN(org_id) FROM jobs WHERE state = 'ready' AND kind = $1 \
                   UNION ALL \
                   SELECT (SELECT MIN(org_id) FROM jobs WHERE state = 'ready' AND kind = $1 AND org_id > o.org) \
                   FROM o WHERE o.org IS NOT NULL) \
                 SELECT org FROM o WHERE org IS NOT NULL LIMIT $2",
            )
            .bind(kind)
            .bind(FAIR_ORGS)
            .fetch_all(&self.pool)
            .await?;
            for org in orgs.into_iter().map(Some).chain([None]) {
                let sql = format!(
                    "SELECT MIN(run_at) FROM jobs WHERE state = 'ready' AND kind = $1 AND {}",
                    same("org_id", 2, "bigint", org.is_none())
                );
                let first: Option<i64> = sqlx::query_scalar(&sql).bind(kind).bind(org).fetch_one(&self.pool).await?;
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
        let running: std::collections::HashMap<Option<i64>, i64> = sqlx::query_as::<_, (Option<i64>, i64)>(
            "SELECT org_id, COUNT(*) FROM jobs WHERE state = 'running' AND kind = ANY($1) GROUP BY org_id",
        )
        .bind(kinds)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .collect();
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

    fn reader(&self) -> &PgPool {
        &self.pool
    }
}

pipeline_store_impl!(PgStore, pg_sql);
pipeline_tx_impl!([] PgTx, pg_sql);

#[async_trait]
impl crate::webhooks::TriggerTx for PgTx {
    async fn enqueue_jobs(&mut self, jobs: &[NewJob]) -> StoreResult<()> {
        enqueue_in(&mut self.tx, jobs).await.map(|_| ())
    }
}

impl PgStore {
    async fn record_trigger_impl(
        &self,
        w: crate::webhooks::TriggerWrite,
    ) -> StoreResult<crate::webhooks::TriggerOutcome> {
        let mut tx = PgTx { tx: self.pool.begin().await? };
        let outcome = crate::webhooks::record_trigger_in(&mut tx, &w).await?;
        if outcome == crate::webhooks::TriggerOutcome::Recorded {
            tx.tx.commit().await?;
        }
        Ok(outcome)
    }
}
webhook_store_impl!(PgStore, pg_sql);
webhook_tx_impl!([] PgTx, pg_sql);

outbound_store_impl!(PgStore, pg_sql);
outbound_tx_impl!([] PgTx, pg_sql, " FOR UPDATE SKIP LOCKED");

impl PgStore {
    async fn publish_impl(&self, p: crate::outbound::Publication) -> StoreResult<()> {
        let mut tx = PgTx { tx: self.pool.begin().await? };
        crate::outbound::publish_in(&mut tx, &p).await?;
        tx.tx.commit().await?;
        Ok(())
    }

    async fn record_attempts_impl(&self, ws: Vec<crate::outbound::AttemptWrite>) -> StoreResult<()> {
        let mut tx = PgTx { tx: self.pool.begin().await? };
        crate::outbound::record_attempts_in(&mut tx, &ws).await?;
        tx.tx.commit().await?;
        Ok(())
    }
}

build_store_impl!(PgStore, pg_sql);
build_tx_impl!([] PgTx, pg_sql);

impl PgStore {
    async fn record_build_trigger_impl(
        &self,
        w: crate::builds::BuildTriggerWrite,
    ) -> StoreResult<(crate::webhooks::TriggerOutcome, Option<crate::builds::BuildRecord>)> {
        let mut tx = PgTx { tx: self.pool.begin().await? };
        let outcome = crate::builds::record_build_trigger_in(&mut tx, &w).await?;
        if outcome.0 == crate::webhooks::TriggerOutcome::Recorded {
            tx.tx.commit().await?;
        }
        Ok(outcome)
    }
}
