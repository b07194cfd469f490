//! The SQL behind [`crate::webhooks::WebhookStore`] and [`crate::webhooks::WebhookTx`], for both backends
//! (see `pipelines_sql.rs` for the placeholder convention).

use pipehook_domain::org::OrgId;
use pipehook_domain::time::Timestamp;

use crate::pipelines_sql::json;
use crate::webhooks::{InboundRecord, WebhookRecord};
use crate::{StoreError, StoreResult};

#[derive(sqlx::FromRow)]
pub(crate) struct WebhookRow {
    id: i64,
    org_id: i64,
    name: String,
    pipeline_id: i64,
    pipeline_name: String,
    pipeline_version: i64,
    url_token_ciphertext: String,
    definition: String,
    secret_ciphertext: Option<String>,
    previous_secret_ciphertext: Option<String>,
    previous_secret_expires_at: Option<i64>,
    revision: i64,
    last_triggered: Option<i64>,
    error_code: Option<String>,
    error_message: Option<String>,
    third_party_hook_id: Option<String>,
    created_at: i64,
    updated_at: i64,
}

/// Webhook columns with the pipeline's name joined in (`w` = webhooks, `p` = pipelines).
pub(crate) const WEBHOOK_SELECT: &str = "SELECT w.id, w.org_id, w.name, w.pipeline_id, p.name AS pipeline_name, \
    p.version AS pipeline_version, w.url_token_ciphertext, w.definition, w.secret_ciphertext, w.previous_secret_ciphertext, \
    w.previous_secret_expires_at, w.revision, w.last_triggered, w.error_code, w.error_message, \
    w.third_party_hook_id, w.created_at, w.updated_at FROM webhooks w JOIN pipelines p ON p.id = w.pipeline_id";

impl TryFrom<WebhookRow> for WebhookRecord {
    type Error = StoreError;
    fn try_from(r: WebhookRow) -> StoreResult<Self> {
        Ok(WebhookRecord {
            id: r.id,
            org: OrgId(r.org_id),
            name: r.name,
            pipeline_id: r.pipeline_id,
            pipeline_name: r.pipeline_name,
            pipeline_version: r.pipeline_version,
            url_token_ciphertext: r.url_token_ciphertext,
            definition: json(&r.definition)?,
            secret_ciphertext: r.secret_ciphertext,
            previous_secret_ciphertext: r.previous_secret_ciphertext,
            previous_secret_expires_at: r.previous_secret_expires_at.map(Timestamp),
            revision: r.revision,
            last_triggered: r.last_triggered.map(Timestamp),
            error_code: r.error_code,
            error_message: r.error_message,
            third_party_hook_id: r.third_party_hook_id,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct InboundRow {
    seq: i64,
    id: String,
    org_id: i64,
    webhook_id: i64,
    webhook_name: String,
    received_at: i64,
    peer: String,
    headers: String,
    body: String,
    body_truncated: i64,
    delivery_id: Option<String>,
    verdict: String,
    detail: String,
    execution_id: Option<String>,
}

pub(crate) const INBOUND_COLUMNS: &str =
    "seq, id, org_id, webhook_id, webhook_name, received_at, peer, headers, body, \
    body_truncated, delivery_id, verdict, detail, execution_id";

impl TryFrom<InboundRow> for InboundRecord {
    type Error = StoreError;
    fn try_from(r: InboundRow) -> StoreResult<Self> {
        Ok(InboundRecord {
            seq: r.seq,
            id: r.id,
            org: OrgId(r.org_id),
            webhook_id: r.webhook_id,
            webhook_name: r.webhook_name,
            received_at: Timestamp(r.received_at),
            peer: r.peer,
            headers: json(&r.headers)?,
            body: r.body,
            body_truncated: r.body_truncated != 0,
            delivery_id: r.delivery_id,
            verdict: r.verdict,
            detail: json(&r.detail)?,
            execution_id: r.execution_id,
        })
    }
}

macro_rules! webhook_store_impl {
    ($store:ty, $sql:path) => {
        #[async_trait::async_trait]
        impl $crate::webhooks::WebhookStore for $store {
            async fn webhook(&self, org: OrgId, name: &str) -> StoreResult<Option<WebhookRecord>> {
                let sql = format!("{WEBHOOK_SELECT} WHERE w.org_id = $1 AND w.name = $2");
                let row: Option<WebhookRow> =
                    sqlx::query_as(&$sql(&sql)).bind(org.0).bind(name).fetch_optional(self.reader()).await?;
                row.map(WebhookRecord::try_from).transpose()
            }

            async fn webhook_by_token(&self, token_hash: &str) -> StoreResult<Option<WebhookRecord>> {
                let sql = format!("{WEBHOOK_SELECT} WHERE w.url_token_hash = $1");
                let row: Option<WebhookRow> =
                    sqlx::query_as(&$sql(&sql)).bind(token_hash).fetch_optional(self.reader()).await?;
                row.map(WebhookRecord::try_from).transpose()
            }

            async fn list_webhooks(&self, org: OrgId, after: Option<&str>, limit: u32) -> StoreResult<Vec<WebhookRecord>> {
                let sql = format!(
                    "{WEBHOOK_SELECT} WHERE w.org_id = $1 AND (CAST($2 AS TEXT) IS NULL OR w.name > $2) \
                     ORDER BY w.name LIMIT $3"
                );
                let rows: Vec<WebhookRow> = sqlx::query_as(&$sql(&sql))
                    .bind(org.0)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?;
                collect(rows)
            }

            async fn count_webhooks(&self, org: OrgId) -> StoreResult<u64> {
                let n: i64 = sqlx::query_scalar(&$sql("SELECT COUNT(*) FROM webhooks WHERE org_id = $1"))
                    .bind(org.0)
                    .fetch_one(self.reader())
                    .await?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn first_delivery(
                &self,
                webhook_id: i64,
                delivery_id: &str,
                since: Timestamp,
            ) -> StoreResult<Option<InboundRecord>> {
                let sql = format!(
                    "SELECT {INBOUND_COLUMNS} FROM inbound_requests WHERE id = (SELECT request_id FROM \
                     inbound_deliveries WHERE webhook_id = $1 AND delivery_id = $2 AND received_at >= $3)"
                );
                let row: Option<InboundRow> = sqlx::query_as(&$sql(&sql))
                    .bind(webhook_id)
                    .bind(delivery_id)
                    .bind(since.0)
                    .fetch_optional(self.reader())
                    .await?;
                row.map(InboundRecord::try_from).transpose()
            }

            async fn inbound(&self, org: OrgId, id: &str) -> StoreResult<Option<InboundRecord>> {
                let sql = format!("SELECT {INBOUND_COLUMNS} FROM inbound_requests WHERE org_id = $1 AND id = $2");
                let row: Option<InboundRow> =
                    sqlx::query_as(&$sql(&sql)).bind(org.0).bind(id).fetch_optional(self.reader()).await?;
                row.map(InboundRecord::try_from).transpose()
            }

            async fn list_inbound(
                &self,
                org: OrgId,
                webhook: Option<&str>,
                verdict: Option<&str>,
                before: Option<i64>,
                limit: u32,
            ) -> StoreResult<Vec<InboundRecord>> {
                let sql = format!(
                    "SELECT {INBOUND_COLUMNS} FROM inbound_requests WHERE org_id = $1 \
                     AND (CAST($2 AS TEXT) IS NULL OR webhook_name = $2) AND (CAST($3 AS TEXT) IS NULL OR verdict = $3) \
                     AND (CAST($4 AS BIGINT) IS NULL OR seq < $4) ORDER BY seq DESC LIMIT $5"
                );
                let rows: Vec<InboundRow> = sqlx::query_as(&$sql(&sql))
                    .bind(org.0)
                    .bind(webhook)
                    .bind(verdict)
                    .bind(before)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?;
                collect(rows)
            }

            async fn record_trigger(
                &self,
                w: $crate::webhooks::TriggerWrite,
            ) -> StoreResult<$crate::webhooks::TriggerOutcome> {
                self.record_trigger_impl(w).await
            }
        }
    };
}

macro_rules! webhook_tx_impl {
    ([$($g:tt)*] $tx:ty, $sql:path) => {
        #[async_trait::async_trait]
        impl$($g)* $crate::webhooks::WebhookTx for $tx {
            async fn insert_webhook(&mut self, w: &$crate::webhooks::NewWebhook) -> StoreResult<WebhookRecord> {
                let now = Timestamp::now().0;
                let id: i64 = sqlx::query_scalar(&$sql(
                    "INSERT INTO webhooks (org_id, name, pipeline_id, url_token_hash, url_token_ciphertext, definition, \
                     secret_ciphertext, revision, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8) \
                     RETURNING id",
                ))
                .bind(w.org.0)
                .bind(&w.name)
                .bind(w.pipeline_id)
                .bind(&w.url_token_hash)
                .bind(&w.url_token_ciphertext)
                .bind(w.definition.to_string())
                .bind(&w.secret_ciphertext)
                .bind(now)
                .fetch_one(&mut *self.tx)
                .await?;
                let sql = format!("{WEBHOOK_SELECT} WHERE w.id = $1");
                let row: WebhookRow = sqlx::query_as(&$sql(&sql)).bind(id).fetch_one(&mut *self.tx).await?;
                row.try_into()
            }

            async fn update_webhook(
                &mut self,
                org: OrgId,
                name: &str,
                expected_revision: i64,
                u: &$crate::webhooks::WebhookUpdate,
            ) -> StoreResult<Option<WebhookRecord>> {
                let id: Option<i64> = sqlx::query_scalar(&$sql(
                    "UPDATE webhooks SET pipeline_id = $1, definition = $2, secret_ciphertext = $3, \
                     previous_secret_ciphertext = $4, previous_secret_expires_at = $5, revision = revision + 1, \
                     updated_at = $6 WHERE org_id = $7 AND name = $8 AND revision = $9 RETURNING id",
                ))
                .bind(u.pipeline_id)
                .bind(u.definition.to_string())
                .bind(&u.secret_ciphertext)
                .bind(&u.previous_secret_ciphertext)
                .bind(u.previous_secret_expires_at.map(|t| t.0))
                .bind(Timestamp::now().0)
                .bind(org.0)
                .bind(name)
                .bind(expected_revision)
                .fetch_optional(&mut *self.tx)
                .await?;
                let Some(id) = id else { return Ok(None) };
                let sql = format!("{WEBHOOK_SELECT} WHERE w.id = $1");
                let row: WebhookRow = sqlx::query_as(&$sql(&sql)).bind(id).fetch_one(&mut *self.tx).await?;
                row.try_into().map(Some)
            }

            async fn delete_webhook(&mut self, org: OrgId, name: &str) -> StoreResult<bool> {
                let r = sqlx::query(&$sql("DELETE FROM webhooks WHERE org_id = $1 AND name = $2"))
                    .bind(org.0)
                    .bind(name)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn set_webhook_registration(
                &mut self,
                org: OrgId,
                name: &str,
                error: Option<(&str, &str)>,
                third_party_hook_id: Option<&str>,
            ) -> StoreResult<()> {
                sqlx::query(&$sql(
                    "UPDATE webhooks SET error_code = $1, error_message = $2, third_party_hook_id = $3, updated_at = $4 \
                     WHERE org_id = $5 AND name = $6",
                ))
                .bind(error.map(|e| e.0))
                .bind(error.map(|e| e.1))
                .bind(third_party_hook_id)
                .bind(Timestamp::now().0)
                .bind(org.0)
                .bind(name)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn touch_webhook(&mut self, webhook_id: i64, at: Timestamp) -> StoreResult<()> {
                sqlx::query(&$sql("UPDATE webhooks SET last_triggered = $1 WHERE id = $2"))
                    .bind(at.0)
                    .bind(webhook_id)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn insert_inbound(&mut self, r: &InboundRecord) -> StoreResult<()> {
                sqlx::query(&$sql(
                    "INSERT INTO inbound_requests (id, org_id, webhook_id, webhook_name, received_at, peer, headers, body, \
                     body_truncated, delivery_id, verdict, detail, execution_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                ))
                .bind(&r.id)
                .bind(r.org.0)
                .bind(r.webhook_id)
                .bind(&r.webhook_name)
                .bind(r.received_at.0)
                .bind(&r.peer)
                .bind(r.headers.to_string())
                .bind(&r.body)
                .bind(i64::from(r.body_truncated))
                .bind(&r.delivery_id)
                .bind(&r.verdict)
                .bind(r.detail.to_string())
                .bind(&r.execution_id)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn claim_delivery(
                &mut self,
                webhook_id: i64,
                delivery_id: &str,
                request_id: &str,
                now: Timestamp,
                cutoff: Timestamp,
            ) -> StoreResult<bool> {
                // Insert, or take over a reservation older than the window; a live reservation is left alone
                // and nothing is returned, which marks the duplicate.
                let got: Option<String> = sqlx::query_scalar(&$sql(
                    "INSERT INTO inbound_deliveries (webhook_id, delivery_id, request_id, received_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (webhook_id, delivery_id) DO UPDATE \
                     SET request_id = excluded.request_id, received_at = excluded.received_at \
                     WHERE inbound_deliveries.received_at < $5 RETURNING request_id",
                ))
                .bind(webhook_id)
                .bind(delivery_id)
                .bind(request_id)
                .bind(now.0)
                .bind(cutoff.0)
                .fetch_optional(&mut *self.tx)
                .await?;
                Ok(got.is_some())
            }

            async fn prune_inbound(&mut self, before: Timestamp) -> StoreResult<u64> {
                let r = sqlx::query(&$sql("DELETE FROM inbound_requests WHERE received_at < $1"))
                    .bind(before.0)
                    .execute(&mut *self.tx)
                    .await?;
                sqlx::query(&$sql("DELETE FROM inbound_deliveries WHERE received_at < $1"))
                    .bind(before.0)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(r.rows_affected())
            }

            async fn prune_inbound_to_size(&mut self, max_bytes: u64) -> StoreResult<u64> {
                // The newest request at which the running total (newest first) goes over the budget: it and
                // everything older go. OCTET_LENGTH reads the stored length (SQLite ≥ 3.43 and PostgreSQL
                // alike) without loading large values.
                let sql = format!(
                    "DELETE FROM inbound_requests WHERE seq <= (SELECT seq FROM (SELECT seq, SUM(OCTET_LENGTH(headers) \
                     + OCTET_LENGTH(body) + OCTET_LENGTH(detail) + {overhead}) OVER (ORDER BY seq DESC) AS kept \
                     FROM inbound_requests) sized WHERE kept > $1 ORDER BY seq DESC LIMIT 1)",
                    overhead = crate::webhooks::INBOUND_ROW_OVERHEAD
                );
                let r = sqlx::query(&$sql(&sql))
                    .bind(i64::try_from(max_bytes).unwrap_or(i64::MAX))
                    .execute(&mut *self.tx)
                    .await?;
                Ok(r.rows_affected())
            }
        }
    };
}

pub(crate) use {webhook_store_impl, webhook_tx_impl};
