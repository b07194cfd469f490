//! pipehook's storage: the only crate with SQL in it.
//!
//! - [`Store`] reads tenant data (every tenant query takes the organization) and opens a [`Tx`], the one way
//!   to write. A `Tx` writes domain rows *and* enqueues jobs, so an accepted request and the work it causes
//!   commit together or not at all.
//! - [`Queue`] is the durable job queue in the same database: enqueue, claim with a lease, extend, complete,
//!   fail with a retry time, dead jobs kept and listable.
//! - [`sqlite::SqliteStore`] (the default: a file, WAL mode, one writer connection) and
//!   [`postgres::PgStore`] (`FOR UPDATE SKIP LOCKED` claims, for several nodes) implement both, each with its
//!   own migrations under `migrations/`.
//! - [`copy`] copies whole databases: a SQLite snapshot for backups, SQLite into PostgreSQL for a move.
//! - [`conformance`] is one test body per behaviour, run against both backends by `tests/conformance.rs`.

pub mod builds;
mod builds_sql;
pub mod conformance;
pub mod copy;
mod error;
mod group_commit;
pub mod outbound;
mod outbound_sql;
pub mod pipelines;
mod pipelines_sql;
pub mod postgres;
mod queue;
mod rows;
pub mod sqlite;
mod store;
pub mod testing;
pub mod webhooks;
mod webhooks_sql;

pub use builds::{
    BuildRecord, BuildStart, BuildStore, BuildTriggerWrite, BuildTx, BuildWebhookFields, BuildWebhookRecord, NewBuild,
    NewBuildWebhook, ProjectRecord,
};
pub use error::{database_errors, StoreError, StoreResult};
pub use outbound::{
    AttemptRecord, AttemptWrite, DeliveryRecord, HookFields, HookHealth, HookRecord, HookScope, LoggedAttempt,
    OutboundEvent, OutboundStore, OutboundTx, Publication, RunEventRow,
};
pub use pipelines::{
    ActionExecutionRecord, ExecutionRecord, NewExecution, PipelineRecord, PipelineStore, PipelineTx, StopRequest,
};
pub use queue::{
    backoff, Claimer, DeadJob, FailOutcome, Job, JobContext, JobFailure, JobHandler, JobId, Lease, NewJob, Queue,
    QueueDepth,
};
pub use store::{AccessKeyRecord, Backend, StatusCount, Store, TokenId, TokenPrincipal, TokenRecord, Tx};
pub use webhooks::{
    DeliveryClaim, ExecutionStart, InboundRecord, NewWebhook, TriggerOutcome, TriggerWrite, WebhookRecord,
    WebhookStore, WebhookTx, WebhookUpdate,
};
