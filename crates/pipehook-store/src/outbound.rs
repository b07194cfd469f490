//! Outbound webhooks: subscriptions ("hooks") at organization, stack or environment scope, the events
//! published to them, one delivery per (event, hook) and every attempt to send it. Records and store traits;
//! the SQL is in `outbound_sql.rs`, once for both backends.

use async_trait::async_trait;
use pipehook_domain::org::OrgId;
use pipehook_domain::time::Timestamp;
use serde_json::Value;

use crate::queue::NewJob;
use crate::StoreResult;

/// Where a hook is attached. Names that do not apply to the scope are empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct HookScope {
    /// `org`, `stack` or `env`.
    pub kind: String,
    pub project: String,
    pub stack: String,
    pub env: String,
}

impl HookScope {
    pub fn org() -> Self {
        Self { kind: "org".into(), ..Self::default() }
    }
    pub fn stack(project: &str, stack: &str) -> Self {
        Self { kind: "stack".into(), project: project.into(), stack: stack.into(), env: String::new() }
    }
    pub fn env(project: &str, env: &str) -> Self {
        Self { kind: "env".into(), project: project.into(), stack: String::new(), env: env.into() }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HookRecord {
    pub id: i64,
    pub org: OrgId,
    pub scope: HookScope,
    pub name: String,
    pub display_name: String,
    pub payload_url: String,
    pub secret_ciphertext: Option<String>,
    pub active: bool,
    pub format: String,
    pub filters: Vec<String>,
    pub groups: Vec<String>,
    /// Why pipehook deactivated the hook (a 410, or failing for too long); cleared when it is reactivated.
    pub disabled_reason: Option<String>,
    /// Start of the current run of failed attempts.
    pub failing_since: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A hook's settable fields, for create and update.
#[derive(Debug, Clone, PartialEq)]
pub struct HookFields {
    pub display_name: String,
    pub payload_url: String,
    pub secret_ciphertext: Option<String>,
    pub active: bool,
    pub format: String,
    pub filters: Vec<String>,
    pub groups: Vec<String>,
}

/// An event as published: what happened, where (for hook scopes), and its JSON payload.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundEvent {
    pub id: String,
    pub org: OrgId,
    pub kind: String,
    /// The payload's JSON text exactly as it was published, stored and returned byte for byte: never parsed
    /// into numbers and written again, so `1796521054.0618753` or an integer past 2^53 arrives as sent.
    pub payload: String,
    pub project: Option<String>,
    pub stack: Option<String>,
    pub env: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// Sent as `Pulumi-Webhook-ID` and `webhook-id`, unchanged across retries and redeliveries.
    pub id: String,
    pub org: OrgId,
    pub hook_id: i64,
    pub event_id: String,
    pub kind: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Where a delivery stands for its scheduled sender, read in one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryProgress {
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    /// Attempts with trigger `scheduled` kept in its log (redeliveries and pings are not counted).
    pub scheduled_attempts: i64,
}

/// One HTTP attempt (or a refusal to make one) and what came back.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub seq: i64,
    pub delivery_id: String,
    pub org: OrgId,
    pub hook_id: i64,
    pub kind: String,
    /// `scheduled`, `redeliver` or `ping`.
    pub trigger: String,
    /// The body as sent.
    pub payload: String,
    pub attempted_at: Timestamp,
    pub duration_ms: i64,
    pub request_url: String,
    /// Header name → value, signatures redacted.
    pub request_headers: Value,
    /// 0 when no response came (refused by policy, connection error, timeout).
    pub response_code: i64,
    pub response_headers: Value,
    /// Capped; for a failure without a response, the reason.
    pub response_body: String,
}

/// An attempt as the delivery log shows it: with its number within its delivery and where that delivery
/// stands now.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedAttempt {
    pub attempt: AttemptRecord,
    /// The attempt's number within its delivery: 1 for its first attempt, 2 for the next, whatever made them
    /// (schedule, redelivery, ping). Written with the attempt, so pruning older attempts renumbers nothing, and
    /// the delivery's newest attempt has the number its `attempts` count says.
    pub number: i64,
    /// The delivery's status now (`pending`, `succeeded`, `failed`); `None` when it is gone.
    pub delivery_status: Option<String>,
    /// How many attempts the delivery has had.
    pub delivery_attempts: i64,
    /// When the delivery's next scheduled attempt is due, while one is waiting.
    pub next_attempt_at: Option<Timestamp>,
}

/// How a hook's attempts have gone lately (pings and redeliveries included), from its delivery log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HookHealth {
    pub last_success: Option<Timestamp>,
    pub last_failure: Option<Timestamp>,
    /// Failed attempts since the last successful one.
    pub consecutive_failures: i64,
}

/// An event with its deliveries and their jobs, written together.
#[derive(Debug, Clone)]
pub struct Publication {
    pub event: OutboundEvent,
    pub deliveries: Vec<DeliveryRecord>,
    pub jobs: Vec<NewJob>,
    /// An earlier event with the same idempotency key counts only if created after this.
    pub idempotency_since: Timestamp,
}

/// What one attempt changes, written together (group-committed on SQLite).
#[derive(Debug, Clone)]
pub struct AttemptWrite {
    pub attempt: AttemptRecord,
    /// The delivery's new status; its attempt count goes up by one.
    pub delivery_status: String,
    /// The hook's new failure run start, and a deactivation reason; `None` leaves the hook alone.
    pub hook_health: Option<(Option<Timestamp>, Option<String>)>,
}

/// A run transition not yet turned into an outbound event.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEventRow {
    pub seq: i64,
    pub org: OrgId,
    pub kind: String,
    pub subject: String,
    pub payload: Value,
    pub created_at: Timestamp,
}

#[async_trait]
pub trait OutboundStore: Send + Sync {
    async fn hook(&self, org: OrgId, scope: &HookScope, name: &str) -> StoreResult<Option<HookRecord>>;
    async fn hook_by_id(&self, id: i64) -> StoreResult<Option<HookRecord>>;
    /// Hooks of one scope, by name.
    async fn list_hooks(&self, org: OrgId, scope: &HookScope) -> StoreResult<Vec<HookRecord>>;
    /// Active hooks an event at this place reaches: the organization's; with a project, that project's stack
    /// hooks (only the given stack's when `stack` is set); with an environment, its hooks (only the given
    /// project's when `project` is set).
    async fn hooks_for_event(
        &self,
        org: OrgId,
        project: Option<&str>,
        stack: Option<&str>,
        env: Option<&str>,
    ) -> StoreResult<Vec<HookRecord>>;
    async fn outbound_event(&self, org: OrgId, id: &str) -> StoreResult<Option<OutboundEvent>>;
    async fn event_by_idempotency_key(
        &self,
        org: OrgId,
        key: &str,
        since: Timestamp,
    ) -> StoreResult<Option<OutboundEvent>>;
    async fn delivery(&self, id: &str) -> StoreResult<Option<DeliveryRecord>>;
    /// The delivery's status and its scheduled attempts so far; `None` when it is gone.
    async fn delivery_progress(&self, id: &str) -> StoreResult<Option<DeliveryProgress>>;
    /// A hook's attempts, newest first, with `seq` below `before`.
    async fn list_attempts(&self, hook_id: i64, before: Option<i64>, limit: u32) -> StoreResult<Vec<AttemptRecord>>;
    /// [`OutboundStore::list_attempts`] with each attempt's number within its delivery and the delivery's state.
    async fn delivery_log(&self, hook_id: i64, before: Option<i64>, limit: u32) -> StoreResult<Vec<LoggedAttempt>>;
    /// One delivery's attempts, oldest first, as [`OutboundStore::delivery_log`] shows them.
    async fn delivery_attempts(&self, delivery_id: &str) -> StoreResult<Vec<LoggedAttempt>>;
    /// The hook's last success, last failure and the failures since the last success.
    async fn hook_health(&self, hook_id: i64) -> StoreResult<HookHealth>;
    /// Deliveries not yet succeeded or failed (for the backlog gauge and tests).
    async fn pending_deliveries(&self) -> StoreResult<u64>;
    /// Writes an event, its deliveries and their jobs in one transaction (group-committed on SQLite).
    /// `Conflict` when an event with the same idempotency key exists since `idempotency_since`.
    async fn publish(&self, p: Publication) -> StoreResult<()>;
    /// Records attempts, each with its delivery's status and the hook's health, in one transaction
    /// (group-committed on SQLite).
    async fn record_attempts(&self, ws: Vec<AttemptWrite>) -> StoreResult<()>;

    async fn record_attempt(&self, w: AttemptWrite) -> StoreResult<()> {
        self.record_attempts(vec![w]).await
    }
}

#[async_trait]
pub trait OutboundTx: Send {
    /// `Conflict` when the scope already has a hook with this name.
    async fn insert_hook(
        &mut self,
        org: OrgId,
        scope: &HookScope,
        name: &str,
        fields: &HookFields,
    ) -> StoreResult<HookRecord>;
    /// Replaces a hook's fields; reactivating clears `disabled_reason` and `failing_since`. `None` when gone.
    async fn update_hook(&mut self, id: i64, fields: &HookFields) -> StoreResult<Option<HookRecord>>;
    /// Deletes a hook with its deliveries and attempts; false when there was none.
    async fn delete_hook(&mut self, org: OrgId, scope: &HookScope, name: &str) -> StoreResult<bool>;
    /// After an attempt: the run of failures (`None` = it succeeded), and deactivation with a reason.
    async fn set_hook_health(
        &mut self,
        id: i64,
        failing_since: Option<Timestamp>,
        deactivate: Option<&str>,
    ) -> StoreResult<()>;
    /// `Conflict` on a live idempotency key (see [`Publication::idempotency_since`]).
    async fn insert_outbound_event(&mut self, e: &OutboundEvent, idempotency_since: Timestamp) -> StoreResult<()>;
    async fn insert_deliveries(&mut self, d: &[DeliveryRecord]) -> StoreResult<()>;
    /// Sets the status and counts one more attempt.
    async fn set_delivery_status(&mut self, id: &str, status: &str) -> StoreResult<()>;
    /// Logs an attempt, numbered with its delivery's attempt count: call [`OutboundTx::set_delivery_status`]
    /// first, in the same transaction, so that count includes it (on PostgreSQL that update also locks the
    /// delivery, so two attempts recorded at once get two numbers). Nothing for a delivery that is gone.
    async fn insert_attempt(&mut self, a: &AttemptRecord) -> StoreResult<()>;
    /// The oldest run transitions not yet relayed; on PostgreSQL locked (SKIP LOCKED) until commit.
    async fn unrelayed_run_events(&mut self, limit: u32) -> StoreResult<Vec<RunEventRow>>;
    async fn mark_relayed(&mut self, seqs: &[i64]) -> StoreResult<()>;
    /// Deletes attempts, finished deliveries and their events older than `before`; returns attempts deleted.
    async fn prune_outbound(&mut self, before: Timestamp) -> StoreResult<u64>;
}

/// A publication inside a transaction (both backends' `publish`).
pub(crate) async fn publish_in<T: OutboundTx + crate::webhooks::TriggerTx + ?Sized>(
    tx: &mut T,
    p: &Publication,
) -> StoreResult<()> {
    tx.insert_outbound_event(&p.event, p.idempotency_since).await?;
    if !p.deliveries.is_empty() {
        tx.insert_deliveries(&p.deliveries).await?;
        tx.enqueue_jobs(&p.jobs).await?;
    }
    Ok(())
}

pub(crate) async fn record_attempts_in<T: OutboundTx + ?Sized>(tx: &mut T, ws: &[AttemptWrite]) -> StoreResult<()> {
    for w in ws {
        record_attempt_in(tx, w).await?;
    }
    Ok(())
}

async fn record_attempt_in<T: OutboundTx + ?Sized>(tx: &mut T, w: &AttemptWrite) -> StoreResult<()> {
    // Counted first: the attempt takes its number from the count (see `insert_attempt`).
    tx.set_delivery_status(&w.attempt.delivery_id, &w.delivery_status).await?;
    tx.insert_attempt(&w.attempt).await?;
    if let Some((failing_since, deactivate)) = &w.hook_health {
        tx.set_hook_health(w.attempt.hook_id, *failing_since, deactivate.as_deref()).await?;
    }
    Ok(())
}
