//! The [`Store`] and [`Tx`] traits: tenant reads, and the transactional unit every write goes through.

use async_trait::async_trait;
use pipehook_domain::credentials::{AccessKeyId, TokenHash};
use pipehook_domain::org::{AccountId, OrgId, OrgName, Organization};
use pipehook_domain::time::Timestamp;

use crate::queue::{JobId, Lease, NewJob, Queue};
use crate::StoreResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(pub i64);

/// Who a valid token authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPrincipal {
    pub token: TokenId,
    pub org: Organization,
}

/// A token as listed (never its value; the store does not have it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: TokenId,
    pub org: OrgId,
    pub description: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// An access key as stored: its secret only as ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyRecord {
    pub id: AccessKeyId,
    pub org: OrgId,
    pub secret_ciphertext: String,
    pub description: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// Reads, and the way in to writes. Every read of tenant data takes the organization.
#[async_trait]
pub trait Store:
    Queue
    + crate::pipelines::PipelineStore
    + crate::webhooks::WebhookStore
    + crate::outbound::OutboundStore
    + crate::builds::BuildStore
{
    fn backend(&self) -> Backend;

    /// Applies this binary's migrations (idempotent; safe to race from several nodes).
    async fn migrate(&self) -> StoreResult<()>;

    /// Ok when the database answers, every migration this binary knows is applied, and a write transaction
    /// can start and commit now (so a writer that is stuck or a database that turned read-only is not ready).
    async fn ready(&self) -> StoreResult<()>;

    /// Starts a write transaction. Dropping it without [`Tx::commit`] rolls everything back.
    async fn begin(&self) -> StoreResult<Box<dyn Tx>>;

    async fn org_by_name(&self, name: &OrgName) -> StoreResult<Option<Organization>>;
    async fn org_by_id(&self, id: OrgId) -> StoreResult<Option<Organization>>;
    async fn list_orgs(&self) -> StoreResult<Vec<Organization>>;

    /// How many pipeline executions, builds and outbound deliveries are in each status, over every
    /// organization: the operator's view for metrics, never shown to a tenant.
    async fn status_counts(&self) -> StoreResult<Vec<StatusCount>>;
    /// The organization's settings (a JSON object; `{}` when none were set or the organization is unknown).
    async fn org_settings(&self, org: OrgId) -> StoreResult<serde_json::Value>;

    /// The organization of an unrevoked token with this hash.
    async fn token_principal(&self, hash: &TokenHash) -> StoreResult<Option<TokenPrincipal>>;
    async fn list_tokens(&self, org: OrgId) -> StoreResult<Vec<TokenRecord>>;

    /// An access key by id, revoked or not (the caller decides; SigV4 must reject revoked keys).
    async fn access_key(&self, id: &AccessKeyId) -> StoreResult<Option<AccessKeyRecord>>;
    async fn list_access_keys(&self, org: OrgId) -> StoreResult<Vec<AccessKeyRecord>>;

    /// Unrevoked tokens plus unrevoked access keys, across organizations (first-start bootstrap).
    async fn count_active_credentials(&self) -> StoreResult<u64>;

    /// Closes the pools, waiting for checked-out connections.
    async fn close(&self);
}

/// One write transaction. Domain writes and [`Tx::enqueue`] commit together.
#[async_trait]
pub trait Tx:
    crate::pipelines::PipelineTx + crate::webhooks::WebhookTx + crate::outbound::OutboundTx + crate::builds::BuildTx + Send
{
    /// Fails with `Conflict` when the name or the account id is taken.
    async fn create_org(&mut self, name: &OrgName, account: &AccountId) -> StoreResult<Organization>;
    async fn create_token(&mut self, org: OrgId, hash: &TokenHash, description: &str) -> StoreResult<TokenId>;
    /// Revokes a token of this organization; false when it has no such unrevoked token.
    async fn revoke_token(&mut self, org: OrgId, id: TokenId) -> StoreResult<bool>;
    /// Replaces the organization's settings; false when there is no such organization.
    async fn set_org_settings(&mut self, org: OrgId, settings: &serde_json::Value) -> StoreResult<bool>;
    async fn create_access_key(
        &mut self,
        org: OrgId,
        id: &AccessKeyId,
        secret_ciphertext: &str,
        description: &str,
    ) -> StoreResult<()>;
    /// Sets the secret of an existing key of this organization (idempotent bootstrap); false when none.
    async fn set_access_key_secret(
        &mut self,
        org: OrgId,
        id: &AccessKeyId,
        secret_ciphertext: &str,
    ) -> StoreResult<bool>;
    async fn revoke_access_key(&mut self, org: OrgId, id: &AccessKeyId) -> StoreResult<bool>;

    async fn enqueue(&mut self, jobs: &[NewJob]) -> StoreResult<Vec<JobId>>;
    /// The fence: fails with [`StoreError::LeaseLost`] unless `lease` still holds its job, and keeps it held
    /// until this transaction ends (SQLite: the transaction holds the write lock; PostgreSQL: the job's row is
    /// locked), so everything this transaction writes is written by the lease holder or not at all.
    async fn hold(&mut self, lease: &Lease) -> StoreResult<()>;

    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

/// A count of one kind of record in one status (see [`Store::status_counts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    /// `execution`, `build` or `delivery`.
    pub what: String,
    pub status: String,
    pub count: u64,
}

/// The same text on both backends.
pub(crate) const STATUS_COUNTS_SQL: &str = "SELECT 'execution' AS what, status, COUNT(*) FROM pipeline_executions \
     GROUP BY status UNION ALL SELECT 'build' AS what, status, COUNT(*) FROM builds GROUP BY status \
     UNION ALL SELECT 'delivery' AS what, status, COUNT(*) FROM deliveries GROUP BY status";

pub(crate) fn status_counts(rows: Vec<(String, String, i64)>) -> Vec<StatusCount> {
    rows.into_iter()
        .map(|(what, status, n)| StatusCount { what, status, count: u64::try_from(n).unwrap_or(0) })
        .collect()
}
