//! Row shapes shared by both backends (`sqlx::FromRow` is generic over the database) and their conversion
//! into domain types, so the mapping is written once.

use pipehook_domain::credentials::AccessKeyId;
use pipehook_domain::org::{AccountId, OrgId, OrgName, Organization};
use pipehook_domain::time::Timestamp;

use crate::queue::{DeadJob, Job, JobId, Lease};
use crate::store::{AccessKeyRecord, TokenId, TokenRecord};
use crate::{StoreError, StoreResult};

#[derive(sqlx::FromRow)]
pub(crate) struct OrgRow {
    pub id: i64,
    pub name: String,
    pub account_id: String,
    pub created_at: i64,
}

impl TryFrom<OrgRow> for Organization {
    type Error = StoreError;
    fn try_from(r: OrgRow) -> StoreResult<Self> {
        Ok(Organization {
            id: OrgId(r.id),
            name: OrgName::parse(&r.name).map_err(|e| StoreError::Corrupt(e.0))?,
            account_id: AccountId::parse(&r.account_id).map_err(|e| StoreError::Corrupt(e.0))?,
            created_at: Timestamp(r.created_at),
        })
    }
}

pub(crate) const ORG_COLUMNS: &str = "id, name, account_id, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    pub id: i64,
    pub org_id: i64,
    pub description: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl From<TokenRow> for TokenRecord {
    fn from(r: TokenRow) -> Self {
        TokenRecord {
            id: TokenId(r.id),
            org: OrgId(r.org_id),
            description: r.description,
            created_at: Timestamp(r.created_at),
            revoked_at: r.revoked_at.map(Timestamp),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AccessKeyRow {
    pub access_key_id: String,
    pub org_id: i64,
    pub secret_ciphertext: String,
    pub description: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl TryFrom<AccessKeyRow> for AccessKeyRecord {
    type Error = StoreError;
    fn try_from(r: AccessKeyRow) -> StoreResult<Self> {
        Ok(AccessKeyRecord {
            id: AccessKeyId::parse(&r.access_key_id).map_err(|e| StoreError::Corrupt(e.0))?,
            org: OrgId(r.org_id),
            secret_ciphertext: r.secret_ciphertext,
            description: r.description,
            created_at: Timestamp(r.created_at),
            revoked_at: r.revoked_at.map(Timestamp),
        })
    }
}

pub(crate) const ACCESS_KEY_COLUMNS: &str =
    "access_key_id, org_id, secret_ciphertext, description, created_at, revoked_at";

#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub org_id: Option<i64>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub lease_token: Option<i64>,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(crate) const JOB_COLUMNS: &str =
    "id, kind, payload, org_id, attempts, max_attempts, lease_token, lease_until, last_error, created_at, updated_at";

fn payload(s: &str) -> StoreResult<serde_json::Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("job payload is not JSON: {e}")))
}

fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;
    fn try_from(r: JobRow) -> StoreResult<Self> {
        Ok(Job {
            id: JobId(r.id),
            payload: payload(&r.payload)?,
            kind: r.kind,
            org: r.org_id.map(OrgId),
            attempt: count(r.attempts),
            max_attempts: count(r.max_attempts),
            lease: Lease { job: JobId(r.id), token: r.lease_token.unwrap_or_default() },
            lease_until: Timestamp(r.lease_until.unwrap_or_default()),
            created_at: Timestamp(r.created_at),
        })
    }
}

impl TryFrom<JobRow> for DeadJob {
    type Error = StoreError;
    fn try_from(r: JobRow) -> StoreResult<Self> {
        Ok(DeadJob {
            id: JobId(r.id),
            payload: payload(&r.payload)?,
            kind: r.kind,
            org: r.org_id.map(OrgId),
            attempts: count(r.attempts),
            last_error: r.last_error,
            created_at: Timestamp(r.created_at),
            died_at: Timestamp(r.updated_at),
        })
    }
}

pub(crate) fn jobs_from_rows(rows: Vec<JobRow>) -> StoreResult<Vec<Job>> {
    let mut jobs = rows.into_iter().map(Job::try_from).collect::<StoreResult<Vec<_>>>()?;
    jobs.sort_by_key(|j| j.id);
    Ok(jobs)
}

pub(crate) fn fail_state(retry_at: Option<i64>, state: &str, run_at: i64) -> crate::FailOutcome {
    match (retry_at, state) {
        (Some(_), "ready") => crate::FailOutcome::Retrying { at: Timestamp(run_at) },
        _ => crate::FailOutcome::Dead,
    }
}

pub(crate) fn encode_payload(v: &serde_json::Value) -> String {
    v.to_string()
}

/// The message a job gets when its last lease expired: its worker died or hung on every attempt.
pub(crate) const LOST_LEASE_ERROR: &str = "lease expired on the last attempt (worker lost or hung)";

pub(crate) fn max_attempts_i32(n: u32) -> i32 {
    i32::try_from(n.max(1)).unwrap_or(i32::MAX)
}

/// Ok when every migration `migrator` embeds is among the `applied` versions.
pub(crate) fn check_migrations(migrator: &sqlx::migrate::Migrator, applied: &[i64]) -> StoreResult<()> {
    let missing: Vec<i64> = migrator.iter().map(|m| m.version).filter(|v| !applied.contains(v)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(StoreError::NotMigrated(format!("migrations not applied: {missing:?} (run `pipehook migrate`)")))
    }
}
