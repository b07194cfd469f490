//! Pipeline webhooks (CodePipeline `PutWebhook`), the inbound request log and delivery-id dedupe: records
//! and store traits. The SQL is in `webhooks_sql.rs`, once for both backends.

use async_trait::async_trait;
use pipehook_domain::org::OrgId;
use pipehook_domain::time::Timestamp;

use crate::StoreResult;

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRecord {
    pub id: i64,
    pub org: OrgId,
    pub name: String,
    pub pipeline_id: i64,
    pub pipeline_name: String,
    /// The target pipeline's current version (a loaded webhook is stale when it changes).
    pub pipeline_version: i64,
    pub url_token_ciphertext: String,
    /// The definition as AWS shows it (secret redacted).
    pub definition: serde_json::Value,
    pub secret_ciphertext: Option<String>,
    /// The secret before the last change, still accepted until `previous_secret_expires_at`.
    pub previous_secret_ciphertext: Option<String>,
    pub previous_secret_expires_at: Option<Timestamp>,
    /// Incremented by every put; a put that read an older revision loses (ConcurrentModification).
    pub revision: i64,
    pub last_triggered: Option<Timestamp>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub third_party_hook_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub org: OrgId,
    pub name: String,
    pub pipeline_id: i64,
    pub url_token_hash: String,
    pub url_token_ciphertext: String,
    pub definition: serde_json::Value,
    pub secret_ciphertext: Option<String>,
}

/// What a put changes on an existing webhook (its URL stays).
#[derive(Debug, Clone)]
pub struct WebhookUpdate {
    pub pipeline_id: i64,
    pub definition: serde_json::Value,
    pub secret_ciphertext: Option<String>,
    pub previous_secret_ciphertext: Option<String>,
    pub previous_secret_expires_at: Option<Timestamp>,
}

/// One request to a trigger URL and what pipehook made of it.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundRecord {
    pub seq: i64,
    pub id: String,
    pub org: OrgId,
    pub webhook_id: i64,
    pub webhook_name: String,
    pub received_at: Timestamp,
    pub peer: String,
    /// Selected headers (never secrets).
    pub headers: serde_json::Value,
    /// The body, capped; `body_truncated` says whether it was.
    pub body: String,
    pub body_truncated: bool,
    pub delivery_id: Option<String>,
    /// `triggered`, `filtered`, `duplicate`, `unauthenticated`, `rejected`, `ignored` (pings).
    pub verdict: String,
    /// Why: the failing rule with the value found and wanted, the auth failure, the first verdict...
    pub detail: serde_json::Value,
    pub execution_id: Option<String>,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn webhook(&self, org: OrgId, name: &str) -> StoreResult<Option<WebhookRecord>>;
    /// By the hash of its trigger URL token. Not scoped by organization on purpose: the token is the only
    /// thing a trigger request carries.
    async fn webhook_by_token(&self, token_hash: &str) -> StoreResult<Option<WebhookRecord>>;
    async fn list_webhooks(&self, org: OrgId, after: Option<&str>, limit: u32) -> StoreResult<Vec<WebhookRecord>>;
    async fn count_webhooks(&self, org: OrgId) -> StoreResult<u64>;

    /// The first accepted request with this delivery id at or after `since`.
    async fn first_delivery(
        &self,
        webhook_id: i64,
        delivery_id: &str,
        since: Timestamp,
    ) -> StoreResult<Option<InboundRecord>>;
    async fn inbound(&self, org: OrgId, id: &str) -> StoreResult<Option<InboundRecord>>;
    /// Newest first, optionally of one webhook and one verdict, with `seq` below `before`.
    async fn list_inbound(
        &self,
        org: OrgId,
        webhook: Option<&str>,
        verdict: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<InboundRecord>>;

    /// Writes one trigger request's records atomically (see [`TriggerWrite`]).
    async fn record_trigger(&self, w: TriggerWrite) -> StoreResult<TriggerOutcome>;
}

#[async_trait]
pub trait WebhookTx: Send {
    /// `Conflict` when the name is taken.
    async fn insert_webhook(&mut self, w: &NewWebhook) -> StoreResult<WebhookRecord>;
    /// Replaces the definition if the stored revision is still `expected_revision`; `None` otherwise.
    async fn update_webhook(
        &mut self,
        org: OrgId,
        name: &str,
        expected_revision: i64,
        u: &WebhookUpdate,
    ) -> StoreResult<Option<WebhookRecord>>;
    async fn delete_webhook(&mut self, org: OrgId, name: &str) -> StoreResult<bool>;
    /// Records the outcome of registering with the git host (`None` clears).
    async fn set_webhook_registration(
        &mut self,
        org: OrgId,
        name: &str,
        error: Option<(&str, &str)>,
        third_party_hook_id: Option<&str>,
    ) -> StoreResult<()>;
    async fn touch_webhook(&mut self, webhook_id: i64, at: Timestamp) -> StoreResult<()>;

    async fn insert_inbound(&mut self, r: &InboundRecord) -> StoreResult<()>;
    /// Reserves a delivery id for this request. True when it is the first (or the earlier one is older
    /// than `cutoff`); false for a duplicate.
    async fn claim_delivery(
        &mut self,
        webhook_id: i64,
        delivery_id: &str,
        request_id: &str,
        now: Timestamp,
        cutoff: Timestamp,
    ) -> StoreResult<bool>;
    /// Deletes inbound requests and delivery reservations received before `before`; returns how many requests.
    async fn prune_inbound(&mut self, before: Timestamp) -> StoreResult<u64>;
    /// Deletes the oldest inbound requests until the rest take at most `max_bytes` ([`inbound_size`] each);
    /// returns how many requests. Delivery reservations are left to [`WebhookTx::prune_inbound`].
    async fn prune_inbound_to_size(&mut self, max_bytes: u64) -> StoreResult<u64>;
}

/// What one inbound request counts for against the log's size budget: the bytes of its headers, body and
/// detail as stored, plus [`INBOUND_ROW_OVERHEAD`] for its other columns and index entries.
pub fn inbound_size(r: &InboundRecord) -> u64 {
    (r.headers.to_string().len() + r.body.len() + r.detail.to_string().len()) as u64 + INBOUND_ROW_OVERHEAD
}

/// The fixed part of [`inbound_size`].
pub const INBOUND_ROW_OVERHEAD: u64 = 256;

/// Everything one trigger request writes, as one unit: on SQLite it joins the group commit, so concurrent
/// deliveries share a commit (and its fsync) instead of queueing for one each.
#[derive(Debug, Clone)]
pub struct TriggerWrite {
    pub inbound: InboundRecord,
    /// Reserve this delivery id first; when it is already taken nothing is written and the outcome is
    /// [`TriggerOutcome::Duplicate`].
    pub delivery: Option<DeliveryClaim>,
    pub execution: Option<ExecutionStart>,
    /// `lastTriggered` of this webhook.
    pub touch: Option<(i64, Timestamp)>,
}

#[derive(Debug, Clone)]
pub struct DeliveryClaim {
    pub webhook_id: i64,
    pub delivery_id: String,
    pub cutoff: Timestamp,
}

/// A new execution with its job and start event (see the runner's `prepare_start`).
#[derive(Debug, Clone)]
pub struct ExecutionStart {
    pub execution: crate::NewExecution,
    pub job: crate::NewJob,
    pub event_kind: String,
    pub event: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerOutcome {
    Recorded,
    Duplicate,
}

/// The writes a trigger needs, over any transaction-like connection of either backend.
#[async_trait]
pub(crate) trait TriggerTx: crate::pipelines::PipelineTx + WebhookTx + Send {
    async fn enqueue_jobs(&mut self, jobs: &[crate::NewJob]) -> StoreResult<()>;
}

pub(crate) async fn record_trigger_in(tx: &mut (dyn TriggerTx + '_), w: &TriggerWrite) -> StoreResult<TriggerOutcome> {
    if let Some(d) = &w.delivery {
        if !tx.claim_delivery(d.webhook_id, &d.delivery_id, &w.inbound.id, w.inbound.received_at, d.cutoff).await? {
            return Ok(TriggerOutcome::Duplicate);
        }
    }
    if let Some(start) = &w.execution {
        tx.insert_execution(&start.execution).await?;
        tx.enqueue_jobs(std::slice::from_ref(&start.job)).await?;
        tx.record_run_event(start.execution.org, &start.event_kind, &start.execution.id, &start.event).await?;
    }
    if let Some((id, at)) = w.touch {
        tx.touch_webhook(id, at).await?;
    }
    tx.insert_inbound(&w.inbound).await?;
    Ok(TriggerOutcome::Recorded)
}
