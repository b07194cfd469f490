//! CodeBuild: build projects, their builds and their webhooks (CreateWebhook). Records and store traits; the
//! SQL is in `builds_sql.rs`, once for both backends.
//!
//! Requests to a build webhook's payload URL share the inbound log and the delivery-id reservations with
//! pipeline webhooks; they are told apart by a negative `webhook_id` (`-build_webhooks.id`, see
//! [`inbound_webhook_id`]) and a `webhook_name` of `project:<name>` (a character neither name may contain).

use async_trait::async_trait;
use pipehook_domain::org::OrgId;
use pipehook_domain::time::Timestamp;
use serde_json::Value;

use crate::pipelines::StopRequest;
use crate::webhooks::{DeliveryClaim, InboundRecord, TriggerOutcome};
use crate::StoreResult;

/// A build project. `document` is the project as CodeBuild shows it (without `webhook`, which has its own
/// table).
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectRecord {
    pub id: i64,
    pub org: OrgId,
    pub name: String,
    pub document: Value,
    /// The last build number given out.
    pub build_counter: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A build. `status` is CodeBuild's `buildStatus` (IN_PROGRESS, SUCCEEDED, FAILED, FAULT, TIMED_OUT, STOPPED).
#[derive(Debug, Clone, PartialEq)]
pub struct BuildRecord {
    pub seq: i64,
    /// `<project>:<uuid>`.
    pub id: String,
    pub org: OrgId,
    pub project_name: String,
    pub build_number: i64,
    pub status: String,
    pub current_phase: String,
    /// CodeBuild's `phases` array.
    pub phases: Value,
    pub source_version: Option<String>,
    pub resolved_source_version: Option<String>,
    pub initiator: String,
    /// `environmentVariablesOverride` as given: `[{"name", "value", "type"}]`.
    pub env_overrides: Value,
    pub buildspec_override: Option<String>,
    pub idempotency_token: Option<String>,
    /// What started the build: `{"revision": {...}, "webhookEnv": [[name, value]], "webhook": ...}`.
    pub trigger: Value,
    pub logs: String,
    pub stop_requested: bool,
    pub start_time: Timestamp,
    pub end_time: Option<Timestamp>,
}

/// What starting a build stores (its number comes from the project's counter).
#[derive(Debug, Clone)]
pub struct NewBuild {
    pub id: String,
    pub org: OrgId,
    pub project_name: String,
    pub source_version: Option<String>,
    pub initiator: String,
    pub env_overrides: Value,
    pub buildspec_override: Option<String>,
    pub idempotency_token: Option<String>,
    pub trigger: Value,
    pub phases: Value,
    pub start_time: Timestamp,
    /// An earlier build with the same idempotency token counts only if started at or after this.
    pub idempotency_since: Timestamp,
}

/// A build with its job and its start event (kind `build_started`); the store adds `buildNumber` to the
/// event once the project's counter has given one.
#[derive(Debug, Clone)]
pub struct BuildStart {
    pub build: NewBuild,
    pub job: crate::NewJob,
    pub event_kind: String,
    pub event: Value,
}

/// A project's webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildWebhookRecord {
    pub id: i64,
    pub org: OrgId,
    pub project_id: i64,
    pub project_name: String,
    pub url_token_ciphertext: String,
    pub secret_ciphertext: Option<String>,
    pub branch_filter: Option<String>,
    /// CodeBuild's `filterGroups` as stored (every filter with `excludeMatchedPattern`).
    pub filter_groups: Value,
    pub build_type: Option<String>,
    pub manual_creation: bool,
    /// CodeBuild's webhook `status`: CREATING, CREATE_FAILED, ACTIVE, DELETING.
    pub status: String,
    pub status_message: Option<String>,
    pub third_party_hook_id: Option<String>,
    pub last_modified_secret: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewBuildWebhook {
    pub org: OrgId,
    pub project_id: i64,
    pub url_token_hash: String,
    pub url_token_ciphertext: String,
    pub fields: BuildWebhookFields,
}

/// A webhook's settable fields (CreateWebhook and UpdateWebhook).
#[derive(Debug, Clone)]
pub struct BuildWebhookFields {
    pub secret_ciphertext: Option<String>,
    pub branch_filter: Option<String>,
    pub filter_groups: Value,
    pub build_type: Option<String>,
    pub manual_creation: bool,
    pub status: String,
    pub status_message: Option<String>,
    pub third_party_hook_id: Option<String>,
    pub last_modified_secret: Timestamp,
}

/// Everything one request to a build webhook writes, together (group-committed on SQLite).
#[derive(Debug, Clone)]
pub struct BuildTriggerWrite {
    pub inbound: InboundRecord,
    /// Reserve this delivery id first; when taken, nothing is written ([`TriggerOutcome::Duplicate`]).
    pub delivery: Option<DeliveryClaim>,
    pub build: Option<BuildStart>,
}

/// The `webhook_id` a build webhook's requests carry in the inbound log.
pub fn inbound_webhook_id(build_webhook_id: i64) -> i64 {
    -build_webhook_id
}

/// The `webhook_name` a build webhook's requests carry in the inbound log.
pub fn inbound_webhook_name(project: &str) -> String {
    format!("project:{project}")
}

#[async_trait]
pub trait BuildStore: Send + Sync {
    async fn project(&self, org: OrgId, name: &str) -> StoreResult<Option<ProjectRecord>>;
    /// Every project of the organization, by name.
    async fn list_projects(&self, org: OrgId) -> StoreResult<Vec<ProjectRecord>>;

    async fn build(&self, org: OrgId, id: &str) -> StoreResult<Option<BuildRecord>>;
    /// Builds of the project for this commit (`sourceVersion` or `resolvedSourceVersion`) started at or after
    /// `since`, oldest first.
    async fn builds_of_commit(
        &self,
        org: OrgId,
        project: &str,
        commit: &str,
        since: Timestamp,
    ) -> StoreResult<Vec<BuildRecord>>;
    /// The build started with this idempotency token at or after `since`.
    async fn build_by_token(
        &self,
        org: OrgId,
        project: &str,
        token: &str,
        since: Timestamp,
    ) -> StoreResult<Option<BuildRecord>>;
    /// Builds of the organization (or of one project), by `seq`: newest first unless `ascending`, after the
    /// cursor `after` (exclusive, in that order).
    async fn list_builds(
        &self,
        org: OrgId,
        project: Option<&str>,
        ascending: bool,
        after: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<BuildRecord>>;

    async fn build_webhook(&self, org: OrgId, project: &str) -> StoreResult<Option<BuildWebhookRecord>>;
    /// By the hash of its payload URL token (not scoped: the token is all a request carries).
    async fn build_webhook_by_token(&self, token_hash: &str) -> StoreResult<Option<BuildWebhookRecord>>;

    /// Writes one webhook request's records atomically (see [`BuildTriggerWrite`]); the build as stored.
    async fn record_build_trigger(&self, w: BuildTriggerWrite) -> StoreResult<(TriggerOutcome, Option<BuildRecord>)>;
}

#[async_trait]
pub trait BuildTx: Send {
    /// `Conflict` when the name is taken.
    async fn create_project(&mut self, org: OrgId, name: &str, document: &Value) -> StoreResult<ProjectRecord>;
    /// `None` when there is no such project.
    async fn update_project(&mut self, org: OrgId, name: &str, document: &Value) -> StoreResult<Option<ProjectRecord>>;
    /// Deletes the project and its webhook (builds stay); false when absent.
    async fn delete_project(&mut self, org: OrgId, name: &str) -> StoreResult<bool>;

    /// Takes the project's next build number and inserts the build. `NotFound` when the project is gone;
    /// `Conflict` when its idempotency token is taken since `idempotency_since`.
    async fn insert_build(&mut self, b: &NewBuild) -> StoreResult<BuildRecord>;
    /// While a build runs: its phases, current phase, resolved source version and log so far (`None` keeps
    /// what is stored). Does nothing once the build has ended.
    async fn set_build_progress(
        &mut self,
        org: OrgId,
        id: &str,
        phases: Option<&Value>,
        current_phase: Option<&str>,
        resolved_source_version: Option<&str>,
        logs: Option<&str>,
    ) -> StoreResult<()>;
    /// Ends a build: status, end time, final phases and log.
    async fn finish_build(
        &mut self,
        org: OrgId,
        id: &str,
        status: &str,
        phases: &Value,
        resolved_source_version: Option<&str>,
        logs: &str,
    ) -> StoreResult<()>;
    /// Marks a stop request on an IN_PROGRESS build.
    async fn request_build_stop(&mut self, org: OrgId, id: &str) -> StoreResult<StopRequest>;

    /// `Conflict` when the project already has one.
    async fn insert_build_webhook(&mut self, w: &NewBuildWebhook) -> StoreResult<BuildWebhookRecord>;
    /// `None` when the webhook is gone.
    async fn update_build_webhook(
        &mut self,
        id: i64,
        f: &BuildWebhookFields,
    ) -> StoreResult<Option<BuildWebhookRecord>>;
    async fn delete_build_webhook(&mut self, id: i64) -> StoreResult<bool>;
}

/// A build, its job and its start event inside one transaction.
pub(crate) async fn start_build_in<T: BuildTx + crate::webhooks::TriggerTx + ?Sized>(
    tx: &mut T,
    s: &BuildStart,
) -> StoreResult<BuildRecord> {
    let record = tx.insert_build(&s.build).await?;
    tx.enqueue_jobs(std::slice::from_ref(&s.job)).await?;
    let mut event = s.event.clone();
    if let Some(o) = event.as_object_mut() {
        o.insert("buildNumber".into(), Value::from(record.build_number));
    }
    tx.record_run_event(s.build.org, &s.event_kind, &record.id, &event).await?;
    Ok(record)
}

pub(crate) async fn record_build_trigger_in<T: BuildTx + crate::webhooks::TriggerTx + ?Sized>(
    tx: &mut T,
    w: &BuildTriggerWrite,
) -> StoreResult<(TriggerOutcome, Option<BuildRecord>)> {
    if let Some(d) = &w.delivery {
        if !tx.claim_delivery(d.webhook_id, &d.delivery_id, &w.inbound.id, w.inbound.received_at, d.cutoff).await? {
            return Ok((TriggerOutcome::Duplicate, None));
        }
    }
    let build = match &w.build {
        Some(s) => Some(start_build_in(tx, s).await?),
        None => None,
    };
    tx.insert_inbound(&w.inbound).await?;
    Ok((TriggerOutcome::Recorded, build))
}
