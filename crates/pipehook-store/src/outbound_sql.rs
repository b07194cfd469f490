//! The SQL behind [`crate::outbound::OutboundStore`] and [`crate::outbound::OutboundTx`], for both backends
//! (see `pipelines_sql.rs` for the placeholder convention).

use pipehook_domain::org::OrgId;
use pipehook_domain::time::Timestamp;

use crate::outbound::{
    AttemptRecord, DeliveryRecord, HookHealth, HookRecord, HookScope, LoggedAttempt, OutboundEvent, RunEventRow,
};
use crate::pipelines_sql::json;
use crate::{StoreError, StoreResult};

#[derive(sqlx::FromRow)]
pub(crate) struct HookRow {
    id: i64,
    org_id: i64,
    scope: String,
    project_name: String,
    stack_name: String,
    env_name: String,
    name: String,
    display_name: String,
    payload_url: String,
    secret_ciphertext: Option<String>,
    active: i64,
    format: String,
    filters: String,
    event_groups: String,
    disabled_reason: Option<String>,
    failing_since: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

pub(crate) const HOOK_COLUMNS: &str = "id, org_id, scope, project_name, stack_name, env_name, name, display_name, \
    payload_url, secret_ciphertext, active, format, filters, event_groups, disabled_reason, failing_since, \
    created_at, updated_at";

fn string_list(s: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("stored list does not parse: {e}")))
}

pub(crate) fn list_json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

impl TryFrom<HookRow> for HookRecord {
    type Error = StoreError;
    fn try_from(r: HookRow) -> StoreResult<Self> {
        Ok(HookRecord {
            id: r.id,
            org: OrgId(r.org_id),
            scope: HookScope { kind: r.scope, project: r.project_name, stack: r.stack_name, env: r.env_name },
            name: r.name,
            display_name: r.display_name,
            payload_url: r.payload_url,
            secret_ciphertext: r.secret_ciphertext,
            active: r.active != 0,
            format: r.format,
            filters: string_list(&r.filters)?,
            groups: string_list(&r.event_groups)?,
            disabled_reason: r.disabled_reason,
            failing_since: r.failing_since.map(Timestamp),
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    id: String,
    org_id: i64,
    kind: String,
    payload: String,
    project_name: Option<String>,
    stack_name: Option<String>,
    env_name: Option<String>,
    idempotency_key: Option<String>,
    created_at: i64,
}

pub(crate) const EVENT_COLUMNS: &str =
    "id, org_id, kind, payload, project_name, stack_name, env_name, idempotency_key, created_at";

impl TryFrom<EventRow> for OutboundEvent {
    type Error = StoreError;
    fn try_from(r: EventRow) -> StoreResult<Self> {
        Ok(OutboundEvent {
            id: r.id,
            org: OrgId(r.org_id),
            kind: r.kind,
            // The published text itself, never re-encoded (see `OutboundEvent::payload`).
            payload: r.payload,
            project: r.project_name,
            stack: r.stack_name,
            env: r.env_name,
            idempotency_key: r.idempotency_key,
            created_at: Timestamp(r.created_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    id: String,
    org_id: i64,
    hook_id: i64,
    event_id: String,
    kind: String,
    status: String,
    attempts: i64,
    created_at: i64,
    updated_at: i64,
}

pub(crate) const DELIVERY_COLUMNS: &str =
    "id, org_id, hook_id, event_id, kind, status, attempts, created_at, updated_at";

impl From<DeliveryRow> for DeliveryRecord {
    fn from(r: DeliveryRow) -> Self {
        DeliveryRecord {
            id: r.id,
            org: OrgId(r.org_id),
            hook_id: r.hook_id,
            event_id: r.event_id,
            kind: r.kind,
            status: r.status,
            attempts: r.attempts,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AttemptRow {
    seq: i64,
    delivery_id: String,
    org_id: i64,
    hook_id: i64,
    kind: String,
    attempt_trigger: String,
    payload: String,
    attempted_at: i64,
    duration_ms: i64,
    request_url: String,
    request_headers: String,
    response_code: i64,
    response_headers: String,
    response_body: String,
}

pub(crate) const ATTEMPT_COLUMNS: &str = "seq, delivery_id, org_id, hook_id, kind, attempt_trigger, payload, \
    attempted_at, duration_ms, request_url, request_headers, response_code, response_headers, response_body";

impl TryFrom<AttemptRow> for AttemptRecord {
    type Error = StoreError;
    fn try_from(r: AttemptRow) -> StoreResult<Self> {
        Ok(AttemptRecord {
            seq: r.seq,
            delivery_id: r.delivery_id,
            org: OrgId(r.org_id),
            hook_id: r.hook_id,
            kind: r.kind,
            trigger: r.attempt_trigger,
            payload: r.payload,
            attempted_at: Timestamp(r.attempted_at),
            duration_ms: r.duration_ms,
            request_url: r.request_url,
            request_headers: json(&r.request_headers)?,
            response_code: r.response_code,
            response_headers: json(&r.response_headers)?,
            response_body: r.response_body,
        })
    }
}

/// [`LOGGED_SELECT`]'s row: an attempt with its number within its delivery (written with it, see
/// `insert_attempt`) and the delivery's state.
#[derive(sqlx::FromRow)]
pub(crate) struct LoggedRow {
    #[sqlx(flatten)]
    attempt: AttemptRow,
    number: i64,
    delivery_status: Option<String>,
    delivery_attempts: i64,
    next_attempt_at: Option<i64>,
}

/// Attempts (`a`) with their number within their delivery, the delivery's status and attempt count, and when its
/// next scheduled attempt is due. The delivery's job (kind `outbound.delivery`, pipehook-outbound's `JOB_KIND`)
/// is found by its payload, which holds `"delivery":"<id>"` as the compact JSON every job payload is stored as;
/// delivery ids are UUIDs, so they hold no LIKE wildcards.
pub(crate) const LOGGED_SELECT: &str = "SELECT a.seq, a.delivery_id, a.org_id, a.hook_id, a.kind, \
    a.attempt_trigger, a.payload, a.attempted_at, a.duration_ms, a.request_url, a.request_headers, a.response_code, \
    a.response_headers, a.response_body, \
    a.attempt_number AS number, \
    d.status AS delivery_status, COALESCE(d.attempts, 0) AS delivery_attempts, \
    (SELECT MIN(j.run_at) FROM jobs j WHERE d.status = 'pending' AND j.kind = 'outbound.delivery' \
       AND j.state = 'ready' AND j.payload LIKE ('%\"delivery\":\"' || a.delivery_id || '\"%')) AS next_attempt_at \
    FROM delivery_attempts a LEFT JOIN deliveries d ON d.id = a.delivery_id";

impl TryFrom<LoggedRow> for LoggedAttempt {
    type Error = StoreError;
    fn try_from(r: LoggedRow) -> StoreResult<Self> {
        Ok(LoggedAttempt {
            attempt: AttemptRecord::try_from(r.attempt)?,
            number: r.number,
            delivery_status: r.delivery_status,
            delivery_attempts: r.delivery_attempts,
            next_attempt_at: r.next_attempt_at.map(Timestamp),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct HealthRow {
    last_success: Option<i64>,
    last_failure: Option<i64>,
    consecutive_failures: i64,
}

impl From<HealthRow> for HookHealth {
    fn from(r: HealthRow) -> Self {
        HookHealth {
            last_success: r.last_success.map(Timestamp),
            last_failure: r.last_failure.map(Timestamp),
            consecutive_failures: r.consecutive_failures,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RunEventDbRow {
    seq: i64,
    org_id: i64,
    kind: String,
    subject: String,
    payload: String,
    created_at: i64,
}

impl TryFrom<RunEventDbRow> for RunEventRow {
    type Error = StoreError;
    fn try_from(r: RunEventDbRow) -> StoreResult<Self> {
        Ok(RunEventRow {
            seq: r.seq,
            org: OrgId(r.org_id),
            kind: r.kind,
            subject: r.subject,
            payload: json(&r.payload)?,
            created_at: Timestamp(r.created_at),
        })
    }
}

macro_rules! outbound_store_impl {
    ($store:ty, $sql:path) => {
        #[async_trait::async_trait]
        impl $crate::outbound::OutboundStore for $store {
            async fn hook(
                &self,
                org: pipehook_domain::org::OrgId,
                scope: &$crate::outbound::HookScope,
                name: &str,
            ) -> $crate::StoreResult<Option<$crate::outbound::HookRecord>> {
                let sql = format!(
                    "SELECT {HOOK_COLUMNS} FROM hooks WHERE org_id = $1 AND scope = $2 AND project_name = $3 \
                     AND stack_name = $4 AND env_name = $5 AND name = $6"
                );
                let row: Option<$crate::outbound_sql::HookRow> = sqlx::query_as(&$sql(&sql))
                    .bind(org.0)
                    .bind(&scope.kind)
                    .bind(&scope.project)
                    .bind(&scope.stack)
                    .bind(&scope.env)
                    .bind(name)
                    .fetch_optional(self.reader())
                    .await?;
                row.map($crate::outbound::HookRecord::try_from).transpose()
            }

            async fn hook_by_id(&self, id: i64) -> $crate::StoreResult<Option<$crate::outbound::HookRecord>> {
                let sql = format!("SELECT {HOOK_COLUMNS} FROM hooks WHERE id = $1");
                let row: Option<$crate::outbound_sql::HookRow> =
                    sqlx::query_as(&$sql(&sql)).bind(id).fetch_optional(self.reader()).await?;
                row.map($crate::outbound::HookRecord::try_from).transpose()
            }

            async fn list_hooks(
                &self,
                org: pipehook_domain::org::OrgId,
                scope: &$crate::outbound::HookScope,
            ) -> $crate::StoreResult<Vec<$crate::outbound::HookRecord>> {
                let sql = format!(
                    "SELECT {HOOK_COLUMNS} FROM hooks WHERE org_id = $1 AND scope = $2 AND project_name = $3 \
                     AND stack_name = $4 AND env_name = $5 ORDER BY name"
                );
                let rows: Vec<$crate::outbound_sql::HookRow> = sqlx::query_as(&$sql(&sql))
                    .bind(org.0)
                    .bind(&scope.kind)
                    .bind(&scope.project)
                    .bind(&scope.stack)
                    .bind(&scope.env)
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter().map($crate::outbound::HookRecord::try_from).collect()
            }

            async fn hooks_for_event(
                &self,
                org: pipehook_domain::org::OrgId,
                project: Option<&str>,
                stack: Option<&str>,
                env: Option<&str>,
            ) -> $crate::StoreResult<Vec<$crate::outbound::HookRecord>> {
                let sql = format!(
                    "SELECT {HOOK_COLUMNS} FROM hooks WHERE org_id = $1 AND active = 1 AND (scope = 'org' \
                     OR (scope = 'stack' AND project_name = $2 AND (CAST($3 AS TEXT) IS NULL OR stack_name = $3)) \
                     OR (scope = 'env' AND env_name = $4 AND (CAST($2 AS TEXT) IS NULL OR project_name = $2))) \
                     ORDER BY id"
                );
                let rows: Vec<$crate::outbound_sql::HookRow> = sqlx::query_as(&$sql(&sql))
                    .bind(org.0)
                    .bind(project)
                    .bind(stack)
                    .bind(env)
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter().map($crate::outbound::HookRecord::try_from).collect()
            }

            async fn outbound_event(
                &self,
                org: pipehook_domain::org::OrgId,
                id: &str,
            ) -> $crate::StoreResult<Option<$crate::outbound::OutboundEvent>> {
                let sql = format!("SELECT {EVENT_COLUMNS} FROM outbound_events WHERE org_id = $1 AND id = $2");
                let row: Option<$crate::outbound_sql::EventRow> =
                    sqlx::query_as(&$sql(&sql)).bind(org.0).bind(id).fetch_optional(self.reader()).await?;
                row.map($crate::outbound::OutboundEvent::try_from).transpose()
            }

            async fn event_by_idempotency_key(
                &self,
                org: pipehook_domain::org::OrgId,
                key: &str,
                since: pipehook_domain::time::Timestamp,
            ) -> $crate::StoreResult<Option<$crate::outbound::OutboundEvent>> {
                let sql = format!(
                    "SELECT {EVENT_COLUMNS} FROM outbound_events WHERE org_id = $1 AND idempotency_key = $2 \
                     AND created_at >= $3"
                );
                let row: Option<$crate::outbound_sql::EventRow> = sqlx::query_as(&$sql(&sql))
                    .bind(org.0)
                    .bind(key)
                    .bind(since.0)
                    .fetch_optional(self.reader())
                    .await?;
                row.map($crate::outbound::OutboundEvent::try_from).transpose()
            }

            async fn delivery(&self, id: &str) -> $crate::StoreResult<Option<$crate::outbound::DeliveryRecord>> {
                let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1");
                let row: Option<$crate::outbound_sql::DeliveryRow> =
                    sqlx::query_as(&$sql(&sql)).bind(id).fetch_optional(self.reader()).await?;
                Ok(row.map($crate::outbound::DeliveryRecord::from))
            }

            async fn delivery_progress(
                &self,
                id: &str,
            ) -> $crate::StoreResult<Option<$crate::outbound::DeliveryProgress>> {
                let row: Option<(String, i64)> = sqlx::query_as(&$sql(
                    "SELECT d.status, (SELECT COUNT(*) FROM delivery_attempts a WHERE a.delivery_id = d.id \
                     AND a.attempt_trigger = 'scheduled') FROM deliveries d WHERE d.id = $1",
                ))
                .bind(id)
                .fetch_optional(self.reader())
                .await?;
                Ok(row.map(|(status, scheduled_attempts)| $crate::outbound::DeliveryProgress {
                    status,
                    scheduled_attempts,
                }))
            }

            async fn list_attempts(
                &self,
                hook_id: i64,
                before: Option<i64>,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::outbound::AttemptRecord>> {
                let sql = format!(
                    "SELECT {ATTEMPT_COLUMNS} FROM delivery_attempts WHERE hook_id = $1 \
                     AND (CAST($2 AS BIGINT) IS NULL OR seq < $2) ORDER BY seq DESC LIMIT $3"
                );
                let rows: Vec<$crate::outbound_sql::AttemptRow> = sqlx::query_as(&$sql(&sql))
                    .bind(hook_id)
                    .bind(before)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter().map($crate::outbound::AttemptRecord::try_from).collect()
            }

            async fn delivery_log(
                &self,
                hook_id: i64,
                before: Option<i64>,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::outbound::LoggedAttempt>> {
                let sql = format!(
                    "{LOGGED_SELECT} WHERE a.hook_id = $1 AND (CAST($2 AS BIGINT) IS NULL OR a.seq < $2) \
                     ORDER BY a.seq DESC LIMIT $3"
                );
                let rows: Vec<$crate::outbound_sql::LoggedRow> = sqlx::query_as(&$sql(&sql))
                    .bind(hook_id)
                    .bind(before)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter().map($crate::outbound::LoggedAttempt::try_from).collect()
            }

            async fn delivery_attempts(
                &self,
                delivery_id: &str,
            ) -> $crate::StoreResult<Vec<$crate::outbound::LoggedAttempt>> {
                let sql = format!("{LOGGED_SELECT} WHERE a.delivery_id = $1 ORDER BY a.seq");
                let rows: Vec<$crate::outbound_sql::LoggedRow> =
                    sqlx::query_as(&$sql(&sql)).bind(delivery_id).fetch_all(self.reader()).await?;
                rows.into_iter().map($crate::outbound::LoggedAttempt::try_from).collect()
            }

            async fn hook_health(&self, hook_id: i64) -> $crate::StoreResult<$crate::outbound::HookHealth> {
                let ok = "response_code >= 200 AND response_code < 300";
                let sql = format!(
                    "SELECT MAX(CASE WHEN {ok} THEN attempted_at END) AS last_success, \
                     MAX(CASE WHEN NOT ({ok}) THEN attempted_at END) AS last_failure, \
                     COUNT(CASE WHEN NOT ({ok}) AND seq > COALESCE((SELECT MAX(s.seq) FROM delivery_attempts s \
                       WHERE s.hook_id = $1 AND s.response_code >= 200 AND s.response_code < 300), 0) \
                       THEN 1 END) \
                       AS consecutive_failures \
                     FROM delivery_attempts WHERE hook_id = $1"
                );
                let row: $crate::outbound_sql::HealthRow =
                    sqlx::query_as(&$sql(&sql)).bind(hook_id).fetch_one(self.reader()).await?;
                Ok(row.into())
            }

            async fn pending_deliveries(&self) -> $crate::StoreResult<u64> {
                let n: i64 = sqlx::query_scalar(&$sql("SELECT COUNT(*) FROM deliveries WHERE status = 'pending'"))
                    .fetch_one(self.reader())
                    .await?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn publish(&self, p: $crate::outbound::Publication) -> $crate::StoreResult<()> {
                self.publish_impl(p).await
            }

            async fn record_attempts(&self, ws: Vec<$crate::outbound::AttemptWrite>) -> $crate::StoreResult<()> {
                self.record_attempts_impl(ws).await
            }
        }
    };
}

macro_rules! outbound_tx_impl {
    ([$($g:tt)*] $tx:ty, $sql:path, $lock:expr) => {
        #[async_trait::async_trait]
        impl$($g)* $crate::outbound::OutboundTx for $tx {
            async fn insert_hook(
                &mut self,
                org: pipehook_domain::org::OrgId,
                scope: &$crate::outbound::HookScope,
                name: &str,
                f: &$crate::outbound::HookFields,
            ) -> $crate::StoreResult<$crate::outbound::HookRecord> {
                let now = pipehook_domain::time::Timestamp::now().0;
                let sql = format!(
                    "INSERT INTO hooks (org_id, scope, project_name, stack_name, env_name, name, display_name, \
                     payload_url, secret_ciphertext, active, format, filters, event_groups, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) RETURNING {HOOK_COLUMNS}"
                );
                let row: $crate::outbound_sql::HookRow = sqlx::query_as(&$sql(&sql))
                    .bind(org.0)
                    .bind(&scope.kind)
                    .bind(&scope.project)
                    .bind(&scope.stack)
                    .bind(&scope.env)
                    .bind(name)
                    .bind(&f.display_name)
                    .bind(&f.payload_url)
                    .bind(&f.secret_ciphertext)
                    .bind(i64::from(f.active))
                    .bind(&f.format)
                    .bind($crate::outbound_sql::list_json(&f.filters))
                    .bind($crate::outbound_sql::list_json(&f.groups))
                    .bind(now)
                    .fetch_one(&mut *self.tx)
                    .await?;
                row.try_into()
            }

            async fn update_hook(
                &mut self,
                id: i64,
                f: &$crate::outbound::HookFields,
            ) -> $crate::StoreResult<Option<$crate::outbound::HookRecord>> {
                let sql = format!(
                    "UPDATE hooks SET display_name = $1, payload_url = $2, secret_ciphertext = $3, active = $4, \
                     format = $5, filters = $6, event_groups = $7, updated_at = $8, \
                     disabled_reason = CASE WHEN $4 = 1 THEN NULL ELSE disabled_reason END, \
                     failing_since = CASE WHEN $4 = 1 AND active = 0 THEN NULL ELSE failing_since END \
                     WHERE id = $9 RETURNING {HOOK_COLUMNS}"
                );
                let row: Option<$crate::outbound_sql::HookRow> = sqlx::query_as(&$sql(&sql))
                    .bind(&f.display_name)
                    .bind(&f.payload_url)
                    .bind(&f.secret_ciphertext)
                    .bind(i64::from(f.active))
                    .bind(&f.format)
                    .bind($crate::outbound_sql::list_json(&f.filters))
                    .bind($crate::outbound_sql::list_json(&f.groups))
                    .bind(pipehook_domain::time::Timestamp::now().0)
                    .bind(id)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                row.map($crate::outbound::HookRecord::try_from).transpose()
            }

            async fn delete_hook(&mut self, org: pipehook_domain::org::OrgId, scope: &$crate::outbound::HookScope, name: &str) -> $crate::StoreResult<bool> {
                let r = sqlx::query(&$sql(
                    "DELETE FROM hooks WHERE org_id = $1 AND scope = $2 AND project_name = $3 AND stack_name = $4 \
                     AND env_name = $5 AND name = $6",
                ))
                .bind(org.0)
                .bind(&scope.kind)
                .bind(&scope.project)
                .bind(&scope.stack)
                .bind(&scope.env)
                .bind(name)
                .execute(&mut *self.tx)
                .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn set_hook_health(
                &mut self,
                id: i64,
                failing_since: Option<pipehook_domain::time::Timestamp>,
                deactivate: Option<&str>,
            ) -> $crate::StoreResult<()> {
                sqlx::query(&$sql(
                    "UPDATE hooks SET failing_since = CASE WHEN CAST($1 AS BIGINT) IS NULL THEN NULL \
                     ELSE COALESCE(failing_since, $1) END, \
                     active = CASE WHEN CAST($2 AS TEXT) IS NULL THEN active ELSE 0 END, \
                     disabled_reason = COALESCE($2, disabled_reason) WHERE id = $3",
                ))
                .bind(failing_since.map(|t| t.0))
                .bind(deactivate)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn insert_outbound_event(&mut self, e: &$crate::outbound::OutboundEvent, since: pipehook_domain::time::Timestamp) -> $crate::StoreResult<()> {
                if let Some(key) = &e.idempotency_key {
                    // A key older than its window is free again.
                    sqlx::query(&$sql(
                        "UPDATE outbound_events SET idempotency_key = NULL \
                         WHERE org_id = $1 AND idempotency_key = $2 AND created_at < $3",
                    ))
                    .bind(e.org.0)
                    .bind(key)
                    .bind(since.0)
                    .execute(&mut *self.tx)
                    .await?;
                }
                sqlx::query(&$sql(
                    "INSERT INTO outbound_events (id, org_id, kind, payload, project_name, stack_name, env_name, \
                     idempotency_key, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                ))
                .bind(&e.id)
                .bind(e.org.0)
                .bind(&e.kind)
                .bind(&e.payload)
                .bind(&e.project)
                .bind(&e.stack)
                .bind(&e.env)
                .bind(&e.idempotency_key)
                .bind(e.created_at.0)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn insert_deliveries(&mut self, ds: &[$crate::outbound::DeliveryRecord]) -> $crate::StoreResult<()> {
                for d in ds {
                    sqlx::query(&$sql(
                        "INSERT INTO deliveries (id, org_id, hook_id, event_id, kind, status, attempts, created_at, \
                         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                    ))
                    .bind(&d.id)
                    .bind(d.org.0)
                    .bind(d.hook_id)
                    .bind(&d.event_id)
                    .bind(&d.kind)
                    .bind(&d.status)
                    .bind(d.attempts)
                    .bind(d.created_at.0)
                    .execute(&mut *self.tx)
                    .await?;
                }
                Ok(())
            }

            async fn set_delivery_status(&mut self, id: &str, status: &str) -> $crate::StoreResult<()> {
                // A recorded success stays: a worker that lost its lease mid-send and records its failure late
                // must not turn a delivered event back into a pending or failed one.
                sqlx::query(&$sql(
                    "UPDATE deliveries SET status = CASE WHEN status = 'succeeded' THEN status ELSE $1 END, \
                     attempts = attempts + 1, updated_at = $2 WHERE id = $3",
                ))
                .bind(status)
                .bind(pipehook_domain::time::Timestamp::now().0)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn insert_attempt(&mut self, a: &$crate::outbound::AttemptRecord) -> $crate::StoreResult<()> {
                sqlx::query(&$sql(
                    // A delivery deleted meanwhile (its hook was deleted) takes no attempt, and does not fail
                    // the other attempts written with this one.
                    // Its number is the delivery's attempt count, which `set_delivery_status` has just raised
                    // (and, on PostgreSQL, locked) in this transaction.
                    "INSERT INTO delivery_attempts (delivery_id, org_id, hook_id, kind, attempt_trigger, payload, \
                     attempted_at, duration_ms, request_url, request_headers, response_code, response_headers, \
                     response_body, attempt_number) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, d.attempts \
                     FROM deliveries d WHERE d.id = $1",
                ))
                .bind(&a.delivery_id)
                .bind(a.org.0)
                .bind(a.hook_id)
                .bind(&a.kind)
                .bind(&a.trigger)
                .bind(&a.payload)
                .bind(a.attempted_at.0)
                .bind(a.duration_ms)
                .bind(&a.request_url)
                .bind(a.request_headers.to_string())
                .bind(a.response_code)
                .bind(a.response_headers.to_string())
                .bind(&a.response_body)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn unrelayed_run_events(&mut self, limit: u32) -> $crate::StoreResult<Vec<$crate::outbound::RunEventRow>> {
                let sql = format!(
                    "SELECT seq, org_id, kind, subject, payload, created_at FROM run_events WHERE relayed = 0 \
                     ORDER BY seq LIMIT $1{}",
                    $lock
                );
                let rows: Vec<$crate::outbound_sql::RunEventDbRow> =
                    sqlx::query_as(&$sql(&sql)).bind(i64::from(limit)).fetch_all(&mut *self.tx).await?;
                rows.into_iter().map($crate::outbound::RunEventRow::try_from).collect()
            }

            async fn mark_relayed(&mut self, seqs: &[i64]) -> $crate::StoreResult<()> {
                for seq in seqs {
                    sqlx::query(&$sql("UPDATE run_events SET relayed = 1 WHERE seq = $1"))
                        .bind(seq)
                        .execute(&mut *self.tx)
                        .await?;
                }
                Ok(())
            }

            async fn prune_outbound(&mut self, before: pipehook_domain::time::Timestamp) -> $crate::StoreResult<u64> {
                let r = sqlx::query(&$sql("DELETE FROM delivery_attempts WHERE attempted_at < $1"))
                    .bind(before.0)
                    .execute(&mut *self.tx)
                    .await?;
                sqlx::query(&$sql("DELETE FROM deliveries WHERE status <> 'pending' AND updated_at < $1"))
                    .bind(before.0)
                    .execute(&mut *self.tx)
                    .await?;
                sqlx::query(&$sql(
                    "DELETE FROM outbound_events WHERE created_at < $1 \
                     AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = outbound_events.id)",
                ))
                .bind(before.0)
                .execute(&mut *self.tx)
                .await?;
                Ok(r.rows_affected())
            }
        }
    };
}

pub(crate) use {outbound_store_impl, outbound_tx_impl};
