//! Pipelines, their executions and action executions, resource tags and run events: the records and the
//! store traits. One implementation serves both backends (`pipelines_sql.rs`): the statements are the same
//! SQL, written with `$n` placeholders and rewritten to `?n` for SQLite.

use async_trait::async_trait;
use pipehook_domain::org::OrgId;
use pipehook_domain::time::Timestamp;

use crate::StoreResult;

#[derive(Debug, Clone, PartialEq)]
pub struct PipelineRecord {
    pub id: i64,
    pub org: OrgId,
    pub name: String,
    pub version: i64,
    /// The declaration as stored (AWS JSON shape, `version` included).
    pub declaration: serde_json::Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A pipeline execution. `status` uses AWS's names: InProgress, Stopping, Stopped, Succeeded, Failed,
/// Superseded, Cancelled.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionRecord {
    pub seq: i64,
    pub id: String,
    pub org: OrgId,
    pub pipeline_id: i64,
    pub pipeline_name: String,
    pub pipeline_version: i64,
    pub status: String,
    pub status_summary: Option<String>,
    pub execution_mode: String,
    /// `{"triggerType": ..., "triggerDetail": ...}`.
    pub trigger: serde_json::Value,
    /// What the source actions resolved (or were given): a JSON array.
    pub source_revisions: serde_json::Value,
    pub variables: serde_json::Value,
    pub client_request_token: Option<String>,
    pub stop_requested: bool,
    pub stop_abandon: bool,
    pub stop_reason: Option<String>,
    pub start_time: Timestamp,
    pub last_update_time: Timestamp,
}

/// What starting an execution stores.
#[derive(Debug, Clone)]
pub struct NewExecution {
    pub id: String,
    pub org: OrgId,
    pub pipeline_id: i64,
    pub pipeline_name: String,
    pub pipeline_version: i64,
    pub execution_mode: String,
    pub trigger: serde_json::Value,
    pub source_revisions: serde_json::Value,
    pub variables: serde_json::Value,
    pub client_request_token: Option<String>,
}

/// An action's run within an execution. `status`: InProgress, Succeeded, Failed, Abandoned.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionExecutionRecord {
    pub seq: i64,
    pub id: String,
    pub execution_id: String,
    pub org: OrgId,
    pub pipeline_id: i64,
    pub stage_name: String,
    pub action_name: String,
    pub stage_index: i64,
    pub action_index: i64,
    pub status: String,
    /// actionTypeId, configuration, resolved configuration, runOrder...
    pub input: serde_json::Value,
    /// summary, externalExecutionId, outputVariables, exit code...
    pub output: serde_json::Value,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub log: String,
    pub start_time: Timestamp,
    pub last_update_time: Timestamp,
}

/// What a stop request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopRequest {
    /// Recorded; the runner stops the execution.
    Accepted,
    /// A stop was already requested (AWS: DuplicatedStopRequestException).
    Duplicate,
    /// The execution is not running (AWS: PipelineExecutionNotStoppableException).
    NotStoppable,
    NotFound,
}

/// Reads of pipelines and runs. Every method takes the organization.
#[async_trait]
pub trait PipelineStore: Send + Sync {
    async fn pipeline(&self, org: OrgId, name: &str) -> StoreResult<Option<PipelineRecord>>;
    /// One stored version of a pipeline's declaration.
    async fn pipeline_version(&self, org: OrgId, name: &str, version: i64) -> StoreResult<Option<serde_json::Value>>;
    /// Pipelines by name, after `after` (exclusive).
    async fn list_pipelines(&self, org: OrgId, after: Option<&str>, limit: u32) -> StoreResult<Vec<PipelineRecord>>;
    async fn count_pipelines(&self, org: OrgId) -> StoreResult<u64>;

    async fn execution(&self, org: OrgId, id: &str) -> StoreResult<Option<ExecutionRecord>>;
    /// The execution's number within its pipeline: 1 for the pipeline's first execution, 2 for the next (its
    /// place by `seq` among the pipeline's executions, which are only ever deleted with the pipeline, so the
    /// number never changes). `None` when there is no such execution.
    async fn execution_number(&self, org: OrgId, id: &str) -> StoreResult<Option<i64>>;
    async fn execution_by_token(
        &self,
        org: OrgId,
        pipeline_id: i64,
        token: &str,
    ) -> StoreResult<Option<ExecutionRecord>>;
    /// A pipeline's executions, newest first, with `seq` below `before`.
    async fn list_executions(
        &self,
        org: OrgId,
        pipeline_id: i64,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<ExecutionRecord>>;
    /// Executions of the pipeline that are InProgress or Stopping, oldest first.
    async fn active_executions(&self, org: OrgId, pipeline_id: i64) -> StoreResult<Vec<ExecutionRecord>>;

    /// One execution's actions in stage and action order.
    async fn action_executions(&self, org: OrgId, execution_id: &str) -> StoreResult<Vec<ActionExecutionRecord>>;
    /// A pipeline's action executions, newest first, optionally of one execution, with `seq` below `before`.
    async fn list_action_executions(
        &self,
        org: OrgId,
        pipeline_id: i64,
        execution_id: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<ActionExecutionRecord>>;
    /// The newest action execution of each action of the pipeline (GetPipelineState).
    async fn latest_action_executions(&self, org: OrgId, pipeline_id: i64) -> StoreResult<Vec<ActionExecutionRecord>>;

    async fn tags(&self, org: OrgId, arn: &str) -> StoreResult<Vec<(String, String)>>;

    /// Run events of one subject (an execution id), in order.
    async fn run_events(&self, org: OrgId, subject: &str) -> StoreResult<Vec<(String, serde_json::Value)>>;
}

/// Writes of pipelines and runs, inside a [`crate::Tx`].
#[async_trait]
pub trait PipelineTx: Send {
    /// Version 1, stamped into the declaration. `Conflict` when the name is taken.
    async fn create_pipeline(
        &mut self,
        org: OrgId,
        name: &str,
        declaration: &serde_json::Value,
    ) -> StoreResult<PipelineRecord>;
    /// Stores a new version (current + 1, stamped into the declaration's `version`) and returns it; `None`
    /// when there is no such pipeline.
    async fn update_pipeline(
        &mut self,
        org: OrgId,
        name: &str,
        declaration: &serde_json::Value,
    ) -> StoreResult<Option<PipelineRecord>>;
    /// Deletes the pipeline with its versions, executions and tags; false when absent.
    async fn delete_pipeline(&mut self, org: OrgId, name: &str, arn: &str) -> StoreResult<bool>;

    async fn set_tags(&mut self, org: OrgId, arn: &str, tags: &[(String, String)]) -> StoreResult<()>;
    async fn remove_tags(&mut self, org: OrgId, arn: &str, keys: &[String]) -> StoreResult<()>;
    async fn remove_all_tags(&mut self, org: OrgId, arn: &str) -> StoreResult<()>;

    async fn insert_execution(&mut self, e: &NewExecution) -> StoreResult<ExecutionRecord>;
    async fn set_execution_status(
        &mut self,
        org: OrgId,
        id: &str,
        status: &str,
        summary: Option<&str>,
    ) -> StoreResult<()>;
    async fn set_source_revisions(&mut self, org: OrgId, id: &str, revisions: &serde_json::Value) -> StoreResult<()>;
    /// Marks a stop request on an InProgress execution (status becomes Stopping).
    async fn request_stop(
        &mut self,
        org: OrgId,
        id: &str,
        abandon: bool,
        reason: Option<&str>,
    ) -> StoreResult<StopRequest>;

    /// Creates (or, on a re-run after a lost worker, replaces) an action execution as InProgress.
    async fn start_action(&mut self, a: &ActionExecutionRecord) -> StoreResult<()>;
    async fn finish_action(
        &mut self,
        id: &str,
        status: &str,
        output: &serde_json::Value,
        error: Option<(&str, &str)>,
        log: &str,
    ) -> StoreResult<()>;
    /// Replaces an InProgress action's output (e.g. to record that its command started).
    async fn set_action_output(&mut self, id: &str, output: &serde_json::Value) -> StoreResult<()>;
    async fn set_action_log(&mut self, id: &str, log: &str) -> StoreResult<()>;

    async fn record_run_event(
        &mut self,
        org: OrgId,
        kind: &str,
        subject: &str,
        payload: &serde_json::Value,
    ) -> StoreResult<()>;
}
