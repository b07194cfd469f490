//! The pipeline execution state machine.
//!
//! [`start_execution`] stores an execution and queues one `pipeline.execution` job for it, in one
//! transaction. [`PipelineRunner`] handles that job: it waits its turn (execution modes), then walks the
//! stages in order and, inside a stage, the run groups (`runOrder`) in order, running each group's actions
//! in parallel, recording every action and every transition as it goes.
//!
//! Crash behaviour: the whole execution is one job, kept leased by the worker's heartbeat, and every write
//! the handler makes is fenced by that lease (a worker that lost the job can change nothing). If the worker
//! dies, the job is claimed again and the handler resumes from what is recorded: actions that succeeded are
//! never run again; an action found `InProgress` is run again when that is safe (a Source action, a
//! CodeBuild action, which re-attaches to its build, and a command that had not started yet); a command
//! that had started (its outcome is unknown) is failed with `WorkerLost`, with its end events, unless its
//! stage opts in to retries (`onFailure.result = RETRY`). When the node drains, the execution stops between
//! actions and is handed to another node without failing.

use async_trait::async_trait;
use pipehook_domain::org::OrgId;
use pipehook_domain::pipeline::{ActionCategory, ActionDeclaration, ExecutionMode, PipelineDeclaration};
use pipehook_domain::time::Timestamp;
use pipehook_store::ExecutionStart;
use pipehook_store::{
    ActionExecutionRecord, ExecutionRecord, Job, JobContext, JobFailure, JobHandler, Lease, NewExecution, NewJob,
    PipelineRecord, Store, StoreError, StoreResult, Tx,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::companion::{pause, Companion};
use crate::exec::{self, CommandSpec, LogSink, Outcome};

/// The queue kind of execution jobs.
pub const EXECUTION_JOB: &str = "pipeline.execution";

/// Attempts an execution job gets; each lost worker uses one.
const MAX_ATTEMPTS: u32 = 10;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecutionJob {
    pub org: i64,
    pub execution: String,
}

/// What starts an execution.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub org: OrgId,
    pub pipeline: PipelineRecord,
    /// `{"triggerType": ..., "triggerDetail": ...}`.
    pub trigger: Value,
    /// Source revision overrides: `[{"actionName", "revisionType", "revisionId"}]`.
    pub source_revisions: Value,
    /// Resolved pipeline variables: `[{"name", "value"}]`.
    pub variables: Value,
    pub client_request_token: Option<String>,
    /// The revision the trigger carried (webhooks): `{"commitId", "branch", "message", "actor", "repository"}`.
    pub revision_hint: Option<Value>,
}

/// Stores the execution, its job and its `pipeline_execution_started` event together. A repeated
/// `client_request_token` returns the execution it started the first time.
pub async fn start_execution(store: &dyn Store, req: StartRequest) -> StoreResult<ExecutionRecord> {
    if let Some(token) = &req.client_request_token {
        if let Some(existing) = store.execution_by_token(req.org, req.pipeline.id, token).await? {
            return Ok(existing);
        }
    }
    let mut tx = store.begin().await?;
    let record = match start_in(&mut *tx, &req).await {
        Ok(r) => r,
        // Two starts with one token raced; the other one won.
        Err(StoreError::Conflict(_)) if req.client_request_token.is_some() => {
            drop(tx);
            let token = req.client_request_token.as_deref().unwrap_or_default();
            return store
                .execution_by_token(req.org, req.pipeline.id, token)
                .await?
                .ok_or_else(|| StoreError::NotFound("execution".into()));
        }
        Err(e) => return Err(e),
    };
    tx.commit().await?;
    Ok(record)
}

/// Writes a new execution, its job and its start event inside `tx`, so a caller can commit them together
/// with its own writes.
pub async fn start_in(tx: &mut dyn Tx, req: &StartRequest) -> StoreResult<ExecutionRecord> {
    let start = prepare_start(req)?;
    let record = tx.insert_execution(&start.execution).await?;
    tx.enqueue(std::slice::from_ref(&start.job)).await?;
    tx.record_run_event(req.org, &start.event_kind, &record.id, &start.event).await?;
    Ok(record)
}

/// The rows a new execution needs (execution, job, start event), built without touching the store, for
/// writers that batch them with other rows (the trigger path's group commit).
pub fn prepare_start(req: &StartRequest) -> StoreResult<ExecutionStart> {
    let decl: PipelineDeclaration = serde_json::from_value(req.pipeline.declaration.clone())
        .map_err(|e| StoreError::Corrupt(format!("stored pipeline declaration: {e}")))?;
    let mut trigger = req.trigger.clone();
    if let (Some(obj), Some(hint)) = (trigger.as_object_mut(), &req.revision_hint) {
        obj.insert("revision".into(), hint.clone());
    }
    let id = uuid::Uuid::new_v4().to_string();
    let execution = NewExecution {
        id: id.clone(),
        org: req.org,
        pipeline_id: req.pipeline.id,
        pipeline_name: req.pipeline.name.clone(),
        pipeline_version: req.pipeline.version,
        execution_mode: decl.effective_execution_mode().as_str().to_owned(),
        trigger,
        source_revisions: req.source_revisions.clone(),
        variables: req.variables.clone(),
        client_request_token: req.client_request_token.clone(),
    };
    let job = ExecutionJob { org: req.org.0, execution: id.clone() };
    let payload = serde_json::to_value(&job).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let now = Timestamp::now();
    let event = json!({
        "pipeline": execution.pipeline_name,
        "pipelineVersion": execution.pipeline_version,
        "executionId": id,
        "trigger": execution.trigger,
        "status": "InProgress",
        "summary": null,
        "startTime": now.millis(),
        "at": now.millis(),
    });
    Ok(ExecutionStart {
        // Executions are shared fairly between an organization's pipelines.
        job: NewJob::new(EXECUTION_JOB, payload)
            .org(req.org)
            .max_attempts(MAX_ATTEMPTS)
            .fair_key(format!("pipeline:{}", req.pipeline.id)),
        execution,
        event_kind: "pipeline_execution_started".into(),
        event,
    })
}

fn execution_event(e: &ExecutionRecord, summary: Option<&str>) -> Value {
    json!({
        "pipeline": e.pipeline_name,
        "pipelineVersion": e.pipeline_version,
        "executionId": e.id,
        "trigger": e.trigger,
        "status": e.status,
        "summary": summary,
        "startTime": e.start_time.millis(),
        "at": Timestamp::now().millis(),
    })
}

/// Runner settings.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Executions get `<workspace_root>/<execution id>`, removed when they end.
    pub workspace_root: PathBuf,
    /// Bytes of log kept per action.
    pub log_limit: usize,
    /// Action timeout when the action sets none.
    pub default_timeout: Duration,
    /// How often a running execution looks for a stop request, and persists partial logs.
    pub poll: Duration,
    /// Keep workspaces after the execution ends (for debugging).
    pub keep_workspaces: bool,
    /// Where Command actions run (the server sets the sandbox unless told otherwise).
    pub executor: crate::exec::Executor,
    /// Where running commands' process groups are written down, for the node's next start.
    pub registry: Option<crate::exec::ProcessRegistry>,
}

impl RunnerConfig {
    pub fn new(workspace_root: PathBuf) -> Self {
        Self {
            workspace_root,
            log_limit: 256 * 1024,
            default_timeout: Duration::from_secs(3600),
            poll: Duration::from_millis(500),
            keep_workspaces: false,
            executor: crate::exec::Executor::default(),
            registry: None,
        }
    }
}

/// The `pipeline.execution` job handler.
pub struct PipelineRunner {
    store: Arc<dyn Store>,
    config: RunnerConfig,
}

impl PipelineRunner {
    pub fn new(store: Arc<dyn Store>, config: RunnerConfig) -> Self {
        Self { store, config }
    }
}

fn retry(e: StoreError) -> JobFailure {
    JobFailure::Retry { error: e.to_string(), after: Duration::from_secs(2) }
}

/// A transaction fenced by `lease`: it fails with [`StoreError::LeaseLost`] once another worker holds the job.
pub(crate) async fn fenced(store: &dyn Store, lease: &Lease) -> StoreResult<Box<dyn Tx>> {
    let mut tx = store.begin().await?;
    tx.hold(lease).await?;
    Ok(tx)
}

#[async_trait]
impl JobHandler for PipelineRunner {
    async fn handle(&self, job: &Job, ctx: &JobContext) -> Result<(), JobFailure> {
        let j: ExecutionJob = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobFailure::Permanent(format!("bad execution job payload: {e}")))?;
        let org = OrgId(j.org);
        let Some(exec) = self.store.execution(org, &j.execution).await.map_err(retry)? else {
            return Ok(()); // Deleted with its pipeline.
        };
        if exec.status != "InProgress" && exec.status != "Stopping" {
            return Ok(());
        }
        let Some(doc) =
            self.store.pipeline_version(org, &exec.pipeline_name, exec.pipeline_version).await.map_err(retry)?
        else {
            return Ok(());
        };
        let decl: PipelineDeclaration = match serde_json::from_value(doc) {
            Ok(d) => d,
            Err(e) => {
                self.finish(&job.lease, &exec, "Failed", &format!("stored declaration does not parse: {e}"))
                    .await
                    .map_err(retry)?;
                return Ok(());
            }
        };
        let run = Run { runner: self, org, decl: &decl, lease: job.lease, handoff: &ctx.handoff };
        match run.turn(&exec).await.map_err(retry)? {
            Turn::Go => {}
            Turn::Wait => return Err(JobFailure::Defer { after: Duration::from_secs(1) }),
            Turn::Done => return Ok(()),
        }
        match run.execute(exec).await.map_err(retry)? {
            Flow::Ended => Ok(()),
            // The node is draining: another node carries on from the next action, at once.
            Flow::HandedOff => Err(JobFailure::Defer { after: Duration::ZERO }),
        }
    }
}

enum Turn {
    Go,
    Wait,
    Done,
}

/// How an action ended.
enum ActionEnd {
    Succeeded,
    Failed,
    Abandoned,
    /// Left `InProgress` for another node to take up (a CodeBuild action waiting on its build while the node
    /// drains).
    HandedOff,
}

/// Whether the execution ended here or was handed off.
enum Flow {
    Ended,
    HandedOff,
}

struct Run<'a> {
    runner: &'a PipelineRunner,
    org: OrgId,
    decl: &'a PipelineDeclaration,
    /// The execution job's lease: every write is fenced with it.
    lease: Lease,
    /// Cancelled when the node drains.
    handoff: &'a CancellationToken,
}

impl PipelineRunner {
    async fn finish(&self, lease: &Lease, exec: &ExecutionRecord, status: &str, summary: &str) -> StoreResult<()> {
        let mut tx = fenced(&*self.store, lease).await?;
        tx.set_execution_status(exec.org, &exec.id, status, Some(summary)).await?;
        let kind = match status {
            "Succeeded" => "pipeline_execution_succeeded",
            "Stopped" => "pipeline_execution_stopped",
            "Superseded" => "pipeline_execution_superseded",
            _ => "pipeline_execution_failed",
        };
        let mut ended = exec.clone();
        ended.status = status.to_owned();
        tx.record_run_event(exec.org, kind, &exec.id, &execution_event(&ended, Some(summary))).await?;
        tx.commit().await?;
        if !self.config.keep_workspaces {
            if let Ok(workspace) = crate::workspace::id_path(&self.config.workspace_root, &exec.id) {
                let _ = tokio::fs::remove_dir_all(workspace).await;
            }
        }
        tracing::info!(execution = %exec.id, pipeline = %exec.pipeline_name, status, summary, "pipeline execution ended");
        Ok(())
    }
}

impl Run<'_> {
    fn store(&self) -> &dyn Store {
        &*self.runner.store
    }

    /// A transaction fenced by the execution job's lease.
    async fn begin(&self) -> StoreResult<Box<dyn Tx>> {
        fenced(self.store(), &self.lease).await
    }

    async fn finish(&self, exec: &ExecutionRecord, status: &str, summary: &str) -> StoreResult<()> {
        self.runner.finish(&self.lease, exec, status, summary).await
    }

    /// Whether this execution may run now. QUEUED: one at a time, in start order. SUPERSEDED: one at a time,
    /// and a waiting execution is superseded as soon as a newer one is waiting too. PARALLEL: always.
    async fn turn(&self, exec: &ExecutionRecord) -> StoreResult<Turn> {
        let mode = self.decl.effective_execution_mode();
        if mode == ExecutionMode::Parallel {
            return Ok(Turn::Go);
        }
        let active = self.store().active_executions(self.org, exec.pipeline_id).await?;
        let Some(first) = active.first() else { return Ok(Turn::Go) };
        if first.id == exec.id {
            return Ok(Turn::Go);
        }
        let started = !self.store().action_executions(self.org, &exec.id).await?.is_empty();
        if mode == ExecutionMode::Superseded && !started && active.iter().any(|e| e.seq > exec.seq) {
            self.finish(exec, "Superseded", "Superseded by a newer execution").await?;
            return Ok(Turn::Done);
        }
        if exec.stop_requested && !started {
            self.finish(exec, "Stopped", &stop_summary(exec)).await?;
            return Ok(Turn::Done);
        }
        Ok(Turn::Wait)
    }

    async fn execute(&self, exec: ExecutionRecord) -> StoreResult<Flow> {
        let failed = |e: std::io::Error| format!("cannot create the workspace: {e}");
        // The execution's own folder, named by its id (never by a name a user chose), 0700.
        let workspace = match crate::workspace::id_path(&self.runner.config.workspace_root, &exec.id) {
            Ok(w) => w,
            Err(e) => return self.finish(&exec, "Failed", &failed(e)).await.map(|()| Flow::Ended),
        };
        // Resumed elsewhere (another node, or a workspace removed): its checkouts must be made again.
        let fresh = tokio::fs::metadata(&workspace).await.is_err();
        if let Err(e) = crate::workspace::create_private_dir(&workspace).await {
            return self.finish(&exec, "Failed", &failed(e)).await.map(|()| Flow::Ended);
        }
        // Watch for stop requests while the execution runs: `halt` stops new actions, `kill` running ones.
        let halt = CancellationToken::new();
        let kill = CancellationToken::new();
        let watcher = {
            let (store, org, id, every) =
                (self.runner.store.clone(), self.org, exec.id.clone(), self.runner.config.poll);
            let (halt, kill) = (halt.clone(), kill.clone());
            Companion::spawn(move |stop| watch_stop(store, org, id, every, stop, halt, kill))
        };
        let result = self.stages(&exec, &workspace, fresh, &halt, &kill).await;
        watcher.finish().await;
        let (status, summary) = match result? {
            Ended::HandedOff => {
                tracing::info!(execution = %exec.id, "draining: execution handed to another node between actions");
                return Ok(Flow::HandedOff);
            }
            Ended::Succeeded => ("Succeeded", "All actions succeeded".to_owned()),
            Ended::Failed(summary) => ("Failed", summary),
            Ended::Stopped => {
                let latest = self.store().execution(self.org, &exec.id).await?.unwrap_or(exec.clone());
                ("Stopped", stop_summary(&latest))
            }
            Ended::Superseded => ("Superseded", "Superseded by a newer execution".to_owned()),
        };
        self.finish(&exec, status, &summary).await.map(|()| Flow::Ended)
    }

    async fn stages(
        &self,
        exec: &ExecutionRecord,
        workspace: &std::path::Path,
        fresh_workspace: bool,
        halt: &CancellationToken,
        kill: &CancellationToken,
    ) -> StoreResult<Ended> {
        let recorded = self.store().action_executions(self.org, &exec.id).await?;
        if fresh_workspace && !recorded.is_empty() {
            if let Some(failure) = self.restore_checkouts(exec, &recorded, workspace).await? {
                return Ok(Ended::Failed(failure));
            }
        }
        for (si, stage) in self.decl.stages.iter().enumerate() {
            if si > 0 && self.superseded(exec).await? {
                return Ok(Ended::Superseded);
            }
            for group in stage.run_groups() {
                if halt.is_cancelled() {
                    return Ok(Ended::Stopped);
                }
                if self.handoff.is_cancelled() {
                    return Ok(Ended::HandedOff);
                }
                let mut pending = Vec::new();
                for action in group {
                    let ai = stage.actions.iter().position(|a| a.name == action.name).unwrap_or(0);
                    match recorded.iter().find(|r| r.stage_name == stage.name && r.action_name == action.name) {
                        Some(r) if r.status == "Succeeded" => continue,
                        Some(r) if r.status == "InProgress" => {
                            if repeatable(stage, action, r) {
                                tracing::info!(execution = %exec.id, stage = %stage.name, action = %action.name,
                                    "resuming an action its lost worker left in progress: it is safe to run again");
                                pending.push((si, ai, action, Some(r.clone())));
                                continue;
                            }
                            self.lose_action(exec, &stage.name, action, r).await?;
                            return Ok(Ended::Failed(format!(
                                "Action '{}' in stage '{}' was interrupted by a lost worker",
                                action.name, stage.name
                            )));
                        }
                        _ => pending.push((si, ai, action, None)),
                    }
                }
                let runs = pending.into_iter().map(|(si, ai, action, resumed)| {
                    self.run_action(exec, &stage.name, si, ai, action, resumed, workspace, kill)
                });
                let ends = futures::future::join_all(runs).await;
                let mut failed = None;
                let mut abandoned = false;
                let mut handed_off = false;
                for (end, name) in ends {
                    match end? {
                        ActionEnd::Succeeded => {}
                        ActionEnd::Failed => failed = failed.or(Some(name)),
                        ActionEnd::Abandoned => abandoned = true,
                        ActionEnd::HandedOff => handed_off = true,
                    }
                }
                if let Some(name) = failed {
                    return Ok(Ended::Failed(format!("Action '{name}' in stage '{}' failed", stage.name)));
                }
                if abandoned {
                    return Ok(Ended::Stopped);
                }
                if handed_off {
                    return Ok(Ended::HandedOff);
                }
            }
        }
        // A stop that let the last actions finish still ends the execution Stopped, as AWS reports it.
        if halt.is_cancelled() {
            return Ok(Ended::Stopped);
        }
        Ok(Ended::Succeeded)
    }

    /// Fails an action its lost worker left running (its command had started: its outcome is unknown), with the
    /// end events its start events promised.
    async fn lose_action(
        &self,
        exec: &ExecutionRecord,
        stage: &str,
        action: &ActionDeclaration,
        r: &ActionExecutionRecord,
    ) -> StoreResult<()> {
        const LOST: &str = "The worker running this action stopped before it finished; its outcome is unknown";
        let mut tx = self.begin().await?;
        tx.finish_action(&r.id, "Failed", &r.output, Some(("WorkerLost", LOST)), &r.log).await?;
        let ended = action_event(exec, stage, action, "Failed", Some(LOST));
        tx.record_run_event(self.org, "action_finished", &exec.id, &ended).await?;
        if let Some(k) = run_kind(action) {
            tx.record_run_event(self.org, &format!("{k}_failed"), &exec.id, &ended).await?;
        }
        tx.commit().await
    }

    /// The execution resumes in a new workspace (another node took it over): the Source actions that already
    /// succeeded check their recorded revisions out again, so later actions find the files they expect.
    /// `Some(reason)` when that fails.
    async fn restore_checkouts(
        &self,
        exec: &ExecutionRecord,
        recorded: &[ActionExecutionRecord],
        workspace: &std::path::Path,
    ) -> StoreResult<Option<String>> {
        let Some(stage) = self.decl.stages.first() else { return Ok(None) };
        for (ai, action) in stage.actions.iter().enumerate() {
            let done = recorded
                .iter()
                .any(|r| r.stage_name == stage.name && r.action_name == action.name && r.status == "Succeeded");
            let has_clone = action.configuration.as_ref().is_some_and(|c| c.contains_key("CloneUrl"));
            if !(done && action.action_type_id.is_source() && has_clone) {
                continue;
            }
            let latest = self.store().execution(self.org, &exec.id).await?.unwrap_or_else(|| exec.clone());
            let pinned = latest.source_revisions.as_array().and_then(|list| {
                list.iter()
                    .find(|r| r.get("actionName").and_then(Value::as_str) == Some(&action.name))
                    .and_then(|r| r.get("revisionId").and_then(Value::as_str).map(str::to_owned))
            });
            let outcome = self.source(&latest, &stage.name, ai, action, workspace, pinned).await?;
            if let Some((_, message)) = outcome.error {
                return Ok(Some(format!(
                    "Action '{}' could not check its revision out again on the node that took the execution over: {message}",
                    action.name
                )));
            }
        }
        Ok(None)
    }
    /// SUPERSEDED mode: a newer execution waiting for this pipeline takes over at the next stage boundary.
    async fn superseded(&self, exec: &ExecutionRecord) -> StoreResult<bool> {
        if self.decl.effective_execution_mode() != ExecutionMode::Superseded {
            return Ok(false);
        }
        let active = self.store().active_executions(self.org, exec.pipeline_id).await?;
        Ok(active.iter().any(|e| e.seq > exec.seq && !e.stop_requested))
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_action(
        &self,
        exec: &ExecutionRecord,
        stage: &str,
        stage_index: usize,
        action_index: usize,
        action: &ActionDeclaration,
        resumed: Option<ActionExecutionRecord>,
        workspace: &std::path::Path,
        kill: &CancellationToken,
    ) -> (StoreResult<ActionEnd>, String) {
        let r = self.run_action_inner(exec, stage, stage_index, action_index, action, resumed, workspace, kill).await;
        (r, action.name.clone())
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_action_inner(
        &self,
        exec: &ExecutionRecord,
        stage: &str,
        stage_index: usize,
        action_index: usize,
        action: &ActionDeclaration,
        resumed: Option<ActionExecutionRecord>,
        workspace: &std::path::Path,
        kill: &CancellationToken,
    ) -> StoreResult<ActionEnd> {
        let kind = run_kind(action);
        // A resumed action keeps its record (and its start events, sent when it first started).
        let id = match &resumed {
            Some(r) => r.id.clone(),
            None => self.start_action_record(exec, stage, stage_index, action_index, action, kind).await?,
        };
        let outcome = if action.action_type_id.is_source() {
            self.source(exec, stage, action_index, action, workspace, None).await?
        } else if action.action_type_id.is_codebuild() {
            let prior = resumed.as_ref().and_then(|r| r.output.get("buildId")).and_then(Value::as_str);
            match self.codebuild(exec, stage, action, &id, prior, kill).await? {
                Some(outcome) => outcome,
                None => return Ok(ActionEnd::HandedOff),
            }
        } else {
            self.command(exec, stage, action, &id, workspace, kill).await?
        };
        let (status, end) = match &outcome.error {
            None => ("Succeeded", ActionEnd::Succeeded),
            Some((code, _)) if code == "Abandoned" => ("Abandoned", ActionEnd::Abandoned),
            Some(_) => ("Failed", ActionEnd::Failed),
        };
        let mut output = outcome.output;
        output["externalExecutionId"] = json!(id);
        let mut log = outcome.log;
        if resumed.is_some() {
            log.insert_str(0, "[pipehook] the worker first running this action was lost; it ran again here\n");
        }
        let error = outcome.error.as_ref().map(|(c, m)| (c.as_str(), m.as_str()));
        let mut tx = self.begin().await?;
        tx.finish_action(&id, status, &output, error, &log).await?;
        let ended = action_event(exec, stage, action, status, outcome.error.as_ref().map(|e| e.1.as_str()));
        tx.record_run_event(self.org, "action_finished", &exec.id, &ended).await?;
        if let Some(k) = kind {
            let suffix = if status == "Succeeded" { "succeeded" } else { "failed" };
            tx.record_run_event(self.org, &format!("{k}_{suffix}"), &exec.id, &ended).await?;
        }
        tx.commit().await?;
        Ok(end)
    }

    /// Records a new action execution `InProgress` with its start events; returns its id.
    async fn start_action_record(
        &self,
        exec: &ExecutionRecord,
        stage: &str,
        stage_index: usize,
        action_index: usize,
        action: &ActionDeclaration,
        kind: Option<&str>,
    ) -> StoreResult<String> {
        let id = uuid::Uuid::new_v4().to_string();
        // The record is shown by ListActionExecutions: secrets are kept out of it.
        let shown = pipehook_domain::pipeline::mask_configuration(&json!(action.configuration));
        let input = json!({
            "actionTypeId": action.action_type_id,
            "configuration": shown,
            "resolvedConfiguration": shown,
            "runOrder": action.run_order.unwrap_or(1),
            "roleArn": action.role_arn,
            "region": action.region,
            "namespace": action.namespace,
        });
        let record = ActionExecutionRecord {
            seq: 0,
            id: id.clone(),
            execution_id: exec.id.clone(),
            org: self.org,
            pipeline_id: exec.pipeline_id,
            stage_name: stage.to_owned(),
            action_name: action.name.clone(),
            stage_index: stage_index as i64,
            action_index: action_index as i64,
            status: "InProgress".into(),
            input,
            output: json!({"externalExecutionId": id}),
            error_code: None,
            error_message: None,
            log: String::new(),
            start_time: Timestamp::now(),
            last_update_time: Timestamp::now(),
        };
        let mut tx = self.begin().await?;
        tx.start_action(&record).await?;
        let started = action_event(exec, stage, action, "InProgress", None);
        tx.record_run_event(self.org, "action_started", &exec.id, &started).await?;
        if let Some(k) = kind {
            tx.record_run_event(self.org, &format!("{k}_started"), &exec.id, &started).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// A source action: the revision from an override, the trigger, or (with `CloneUrl`) a checkout.
    /// `pinned`: check out exactly this commit (restoring a checkout the action already recorded).
    async fn source(
        &self,
        exec: &ExecutionRecord,
        stage: &str,
        action_index: usize,
        action: &ActionDeclaration,
        workspace: &std::path::Path,
        pinned: Option<String>,
    ) -> StoreResult<ActionOutcome> {
        let config = action.configuration.clone().unwrap_or_default();
        let overrides = exec.source_revisions.as_array().cloned().unwrap_or_default();
        let overridden = overrides
            .iter()
            .find(|r| {
                r.get("actionName").and_then(Value::as_str) == Some(&action.name) && r.get("revisionType").is_some()
            })
            .and_then(|r| r.get("revisionId").and_then(Value::as_str).map(str::to_owned));
        let overridden = pinned.or(overridden);
        let hint = exec.trigger.get("revision").cloned().unwrap_or(Value::Null);
        // The trigger's commit, only when it is a commit id: a payload's ref name (`refs/pull/1/head`) must
        // never choose what is checked out.
        let trigger_commit = hint
            .get("commitId")
            .and_then(Value::as_str)
            .filter(|c| crate::workspace::is_commit_ref(c))
            .map(str::to_owned);
        let configured_branch = config.get("Branch").or(config.get("BranchName")).cloned();
        let branch = hint
            .get("branch")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| config.get("Branch").or(config.get("BranchName")).cloned());
        let repository = hint.get("repository").and_then(Value::as_str).map(str::to_owned).or_else(|| {
            match (config.get("Owner"), config.get("Repo")) {
                (Some(o), Some(r)) => Some(format!("{o}/{r}")),
                _ => config.get("FullRepositoryId").cloned(),
            }
        });
        let mut revision = json!({
            "actionName": action.name,
            "artifactName": action.output_artifacts.as_ref().and_then(|o| o.first()).map(|o| o.name.clone()),
            "revisionId": overridden.clone().or_else(|| trigger_commit.clone()),
            "revisionSummary": hint.get("message"),
            "branch": branch,
            "repository": repository,
            "actor": hint.get("actor"),
        });
        let mut log = String::new();
        if let Some(url) = config.get("CloneUrl") {
            // A commit (an override, or the trigger's commit id), else the branch the action is configured with:
            // never a branch name from the payload.
            let want = revision["revisionId"].as_str().map(str::to_owned).or(configured_branch);
            // Checked out by id, so the commit must be the one named (git prefers a ref of that name).
            let want_commit =
                if overridden.is_none() { trigger_commit.clone().filter(|c| want.as_deref() == Some(c)) } else { None };
            let sources = self.decl.stages.first().map_or(1, |s| s.actions.len());
            // Several sources: each in `source-<n>` (its place in the stage), never a folder named after the
            // action (an action named `..` would check out into the shared workspaces root).
            let dest =
                if sources > 1 { crate::workspace::source_dir(workspace, action_index) } else { workspace.to_owned() };
            let timeout = action_timeout(action, self.runner.config.default_timeout);
            log.push_str(&format!("git checkout {url} {}\n", want.as_deref().unwrap_or("HEAD")));
            let refused = self.runner.config.executor.refuses_source(url);
            let checkout = async {
                match refused {
                    Some(message) => Err(crate::git::GitError::Failed { step: "fetch", message }),
                    None => crate::git::checkout(url, want.as_deref(), &dest, timeout).await,
                }
            };
            let checked = match checkout.await {
                Ok(c) => match &want_commit {
                    Some(w) if !crate::workspace::commit_matches(&c.commit, w) => Err(format!(
                        "git resolved {w} to commit {}, not to that commit; refusing to run another revision",
                        c.commit
                    )),
                    _ => Ok(c),
                },
                Err(e) => Err(e.to_string()),
            };
            match checked {
                Ok(c) => {
                    log.push_str(&format!("checked out {}\n", c.commit));
                    revision["revisionId"] = json!(c.commit);
                    if revision["revisionSummary"].is_null() {
                        revision["revisionSummary"] = json!(c.message);
                    }
                    if revision["actor"].is_null() {
                        revision["actor"] = json!(c.author);
                    }
                }
                Err(e) => {
                    log.push_str(&format!("{e}\n"));
                    return Ok(ActionOutcome {
                        output: json!({"summary": "Checkout failed"}),
                        error: Some(("JobFailed".into(), e)),
                        log,
                    });
                }
            }
        }
        // Record the resolved revision on the execution (replacing this action's override, if any).
        let mut all: Vec<Value> = overrides
            .into_iter()
            .filter(|r| r.get("actionName").and_then(Value::as_str) != Some(&action.name))
            .collect();
        all.push(revision.clone());
        let mut tx = self.begin().await?;
        tx.set_source_revisions(self.org, &exec.id, &Value::Array(all)).await?;
        tx.commit().await?;
        let _ = stage;
        Ok(ActionOutcome {
            output: json!({
                "summary": revision["revisionSummary"].as_str().map_or("Source revision recorded".to_owned(), str::to_owned),
                "revisionId": revision["revisionId"],
                "outputVariables": output_variables(&[("CommitId", &revision["revisionId"]), ("BranchName", &revision["branch"])]),
            }),
            error: None,
            log,
        })
    }

    /// An `AWS`/`CodeBuild` action: a build of the `ProjectName` project (initiator `codepipeline/<pipeline>`, the
    /// source revision the execution resolved, `EnvironmentVariables` as overrides), started as its own
    /// `codebuild.build` job and waited for; the action ends as the build does. The build's own `build_*` events
    /// (with the pipeline and execution) stand for the action's. Abandoning the execution stops the build.
    ///
    /// Safe to repeat: the build's id is recorded on the action as soon as it starts (and the start is
    /// idempotent on the action's id until then), so an action resumed after a lost worker waits for the same
    /// build. `None`: the node is draining and left the action for another node to wait on.
    async fn codebuild(
        &self,
        exec: &ExecutionRecord,
        stage: &str,
        action: &ActionDeclaration,
        action_id: &str,
        prior_build: Option<&str>,
        kill: &CancellationToken,
    ) -> StoreResult<Option<ActionOutcome>> {
        let config = action.configuration.clone().unwrap_or_default();
        let project = config.get("ProjectName").cloned().unwrap_or_default();
        let latest = self.store().execution(self.org, &exec.id).await?.unwrap_or_else(|| exec.clone());
        let source_version = latest
            .source_revisions
            .as_array()
            .and_then(|a| a.iter().find_map(|r| r["revisionId"].as_str().map(str::to_owned)));
        let env_overrides = match config.get("EnvironmentVariables") {
            None => json!([]),
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(v @ Value::Array(_)) => v,
                _ => {
                    return Ok(Some(ActionOutcome {
                        output: json!({"summary": "Invalid EnvironmentVariables"}),
                        error: Some((
                            "JobFailed".into(),
                            "EnvironmentVariables must be a JSON array of {name, value, type}".into(),
                        )),
                        log: String::new(),
                    }))
                }
            },
        };
        // The seed's warning, seen from this side: a webhook of the project already built this commit.
        let duplicate_of = match &source_version {
            Some(commit) => self.webhook_build_of(&project, commit).await,
            None => None,
        };
        let mut trigger = json!({
            "revision": exec.trigger.get("revision"),
            "pipeline": exec.pipeline_name,
            "executionId": exec.id,
            "stage": stage,
            "action": action.name,
        });
        if let Some(first) = &duplicate_of {
            trigger["duplicateOf"] = first.clone();
        }
        let req = crate::codebuild::StartBuildRequest {
            org: self.org,
            project: project.clone(),
            source_version,
            initiator: format!("codepipeline/{}", exec.pipeline_name),
            env_overrides,
            buildspec_override: None,
            idempotency_token: Some(action_id.to_owned()),
            trigger,
        };
        let build_id = match prior_build {
            Some(id) => id.to_owned(),
            None => {
                let build = match crate::codebuild::start_build(self.store(), &req).await {
                    Ok(b) => b,
                    Err(StoreError::NotFound(_)) => {
                        return Ok(Some(ActionOutcome {
                            output: json!({"summary": format!("CodeBuild project '{project}' not found")}),
                            error: Some(("JobFailed".into(), format!("CodeBuild project '{project}' does not exist"))),
                            log: String::new(),
                        }))
                    }
                    Err(e) => return Err(e),
                };
                let mut tx = self.begin().await?;
                tx.set_action_output(action_id, &json!({"externalExecutionId": action_id, "buildId": build.id}))
                    .await?;
                tx.commit().await?;
                build.id
            }
        };
        let mut stopping = false;
        let ended = loop {
            tokio::time::sleep(self.runner.config.poll).await;
            if kill.is_cancelled() && !stopping {
                let mut tx = self.begin().await?;
                tx.request_build_stop(self.org, &build_id).await?;
                tx.commit().await?;
                stopping = true;
            }
            match self.store().build(self.org, &build_id).await? {
                Some(b) if b.status == "IN_PROGRESS" => {}
                Some(b) => break b,
                None => {
                    return Ok(Some(ActionOutcome {
                        output: json!({"summary": "The build disappeared", "buildId": build_id}),
                        error: Some(("JobFailed".into(), format!("Build {build_id} no longer exists"))),
                        log: String::new(),
                    }))
                }
            }
            // The build runs as its own job: waiting on it is safe to hand to another node.
            if self.handoff.is_cancelled() && !stopping {
                return Ok(None);
            }
        };
        let mut summary = format!("Build {} (#{}) {}", ended.id, ended.build_number, ended.status);
        if let Some(first) = &duplicate_of {
            summary.push_str(&format!(
                "; a second build of this commit: the project's webhook already started build {}",
                first["buildId"].as_str().unwrap_or_default()
            ));
        }
        let error = match ended.status.as_str() {
            "SUCCEEDED" => None,
            "STOPPED" if stopping => Some(("Abandoned".to_owned(), summary.clone())),
            _ => Some(("JobFailed".to_owned(), summary.clone())),
        };
        Ok(Some(ActionOutcome {
            output: json!({
                "summary": summary,
                "buildId": ended.id,
                "buildNumber": ended.build_number,
                "buildStatus": ended.status,
                "duplicateOf": duplicate_of,
            }),
            error,
            log: ended.logs,
        }))
    }

    /// The first build of `commit` a webhook of `project` started within the last day, as `duplicateOf`.
    async fn webhook_build_of(&self, project: &str, commit: &str) -> Option<Value> {
        let since = Timestamp(Timestamp::now().0.saturating_sub(24 * 3600 * 1000));
        let builds = match self.store().builds_of_commit(self.org, project, commit, since).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "looking for earlier builds of a commit failed");
                return None;
            }
        };
        let first = builds.into_iter().find(|b| b.trigger["webhook"] == json!(true))?;
        Some(json!({
            "buildId": first.id,
            "buildNumber": first.build_number,
            "initiator": first.initiator,
            "reason": "this commit was already built by the project's webhook: the pipeline builds it a second time",
        }))
    }

    /// A `Custom`/`Command` action: the configured command in the workspace, with the run in its environment.
    async fn command(
        &self,
        exec: &ExecutionRecord,
        stage: &str,
        action: &ActionDeclaration,
        action_id: &str,
        workspace: &std::path::Path,
        kill: &CancellationToken,
    ) -> StoreResult<ActionOutcome> {
        let config = action.configuration.clone().unwrap_or_default();
        let command = config.get("Command").cloned().unwrap_or_default();
        let latest = self.store().execution(self.org, &exec.id).await?.unwrap_or_else(|| exec.clone());
        let env = command_env(&latest, stage, action);
        let timeout = action_timeout(action, self.runner.config.default_timeout);
        // PIPEHOOK_NETWORK=none in the action's variables: no network in its sandbox.
        let network = match crate::sandbox::Network::from_env(&env) {
            Ok(network) => network,
            Err(message) => {
                return Ok(ActionOutcome {
                    output: json!({"summary": "Command could not start"}),
                    error: Some(("JobFailed".to_owned(), message.clone())),
                    log: format!("{message}\n"),
                })
            }
        };
        let spec = CommandSpec {
            command,
            workdir: workspace.to_owned(),
            env,
            timeout,
            log_limit: self.runner.config.log_limit,
            executor: self.runner.config.executor.clone(),
            writable: Vec::new(),
            network,
            registry: self.runner.config.registry.clone(),
        };
        // From here the command may have effects: a worker taking the execution over must not run it again
        // unasked (see `repeatable`).
        let mut tx = self.begin().await?;
        let started = json!({"externalExecutionId": action_id, "commandStartedAt": Timestamp::now().millis()});
        tx.set_action_output(action_id, &started).await?;
        tx.commit().await?;
        // Persist partial logs while the command runs, so `logs --follow` sees them.
        let (sink, mut snapshots) = LogSink::new();
        let store = self.runner.store.clone();
        let id = action_id.to_owned();
        let poll = self.runner.config.poll;
        let lease = self.lease;
        let persist = Companion::spawn(move |stop| async move {
            let mut last = String::new();
            while pause(&stop, poll).await {
                let changed = tokio::select! {
                    _ = stop.cancelled() => return,
                    c = snapshots.changed() => c,
                };
                if changed.is_err() {
                    return;
                }
                let current = snapshots.borrow_and_update().clone();
                if current != last {
                    let write = async {
                        let mut tx = fenced(&*store, &lease).await?;
                        tx.set_action_log(&id, &current).await?;
                        tx.commit().await
                    };
                    if let Err(e) = write.await {
                        tracing::warn!(action = %id, error = %e, "recording an action's partial log failed");
                    }
                    last = current;
                }
            }
        });
        let result = exec::run(&spec, kill, Some(&sink)).await;
        // Stopped and awaited before the final log is written, so a partial log never lands after it.
        persist.finish().await;
        let secs = result.duration.as_secs_f64();
        let (summary, error) = match &result.outcome {
            Outcome::Succeeded => (format!("Command succeeded in {secs:.1} s"), None),
            Outcome::Failed { exit_code: Some(code), .. } => (
                format!("Command failed with exit code {code}"),
                Some(("JobFailed".to_owned(), format!("Command exited with code {code}"))),
            ),
            Outcome::Failed { signal, .. } => (
                "Command was killed".to_owned(),
                Some(("JobFailed".to_owned(), format!("Command was killed by signal {}", signal.unwrap_or(0)))),
            ),
            Outcome::TimedOut => (
                format!("Command timed out after {} s", timeout.as_secs()),
                Some(("TimedOut".to_owned(), format!("Command timed out after {} s", timeout.as_secs()))),
            ),
            Outcome::Stopped => (
                "Stopped".to_owned(),
                Some(("Abandoned".to_owned(), "The execution was stopped and this action abandoned".to_owned())),
            ),
            Outcome::SpawnFailed(m) => {
                ("Command could not start".to_owned(), Some(("JobFailed".to_owned(), m.clone())))
            }
        };
        let exit_code = match &result.outcome {
            Outcome::Succeeded => Some(0),
            Outcome::Failed { exit_code, .. } => *exit_code,
            _ => None,
        };
        Ok(ActionOutcome {
            output: json!({"summary": summary, "exitCode": exit_code, "logTruncated": result.truncated}),
            error,
            log: result.log,
        })
    }
}

enum Ended {
    Succeeded,
    Failed(String),
    Stopped,
    Superseded,
    /// The node is draining: left for another node to continue.
    HandedOff,
}

/// Whether an action its lost worker left `InProgress` may simply run again. A Source action only records a
/// revision or checks one out; a CodeBuild action waits for its build (recorded, or started idempotently);
/// a command that had not started has done nothing. A command that had started may have had effects: it runs
/// again only when its stage opts in to retries (`onFailure` with `result: RETRY`).
fn repeatable(
    stage: &pipehook_domain::pipeline::StageDeclaration,
    action: &ActionDeclaration,
    r: &ActionExecutionRecord,
) -> bool {
    if action.action_type_id.is_source() || action.action_type_id.is_codebuild() {
        return true;
    }
    if r.output.get("commandStartedAt").is_none() {
        return true;
    }
    stage.on_failure.as_ref().and_then(|f| f.get("result")).and_then(Value::as_str) == Some("RETRY")
}

struct ActionOutcome {
    output: Value,
    error: Option<(String, String)>,
    log: String,
}

fn stop_summary(e: &ExecutionRecord) -> String {
    match &e.stop_reason {
        Some(r) if !r.is_empty() => format!("Stopped: {r}"),
        _ => "Stopped by request".to_owned(),
    }
}

/// AWS output variables are a string map: only the values that are known strings.
fn output_variables(pairs: &[(&str, &Value)]) -> Value {
    let map: serde_json::Map<String, Value> =
        pairs.iter().filter_map(|(k, v)| v.as_str().map(|s| ((*k).to_owned(), Value::from(s)))).collect();
    Value::Object(map)
}

/// Build-category actions are "builds" and Deploy-category actions "deploys" for the run events
/// (Puppet Pipelines' build and deploy hooks).
fn run_kind(action: &ActionDeclaration) -> Option<&'static str> {
    if action.action_type_id.is_codebuild() {
        return None; // The build records its own build_* events.
    }
    match action.action_type_id.category {
        ActionCategory::Build => Some("build"),
        ActionCategory::Deploy => Some("deploy"),
        _ => None,
    }
}

fn action_event(
    exec: &ExecutionRecord,
    stage: &str,
    action: &ActionDeclaration,
    status: &str,
    error: Option<&str>,
) -> Value {
    let config = action.configuration.clone().unwrap_or_default();
    json!({
        "pipeline": exec.pipeline_name,
        "executionId": exec.id,
        "stage": stage,
        "action": action.name,
        "category": action.action_type_id.category.as_str(),
        "environmentName": config.get("EnvironmentName"),
        "projectName": config.get("ProjectName"),
        "status": status,
        "error": error,
        "sourceRevisions": exec.source_revisions,
        "trigger": exec.trigger,
        "at": Timestamp::now().millis(),
    })
}

/// `TimeoutSeconds` in the configuration, else the model's `timeoutInMinutes`, else the default.
fn action_timeout(action: &ActionDeclaration, default: Duration) -> Duration {
    let config = action.configuration.clone().unwrap_or_default();
    if let Some(secs) = config.get("TimeoutSeconds").and_then(|s| s.parse::<u64>().ok()) {
        return Duration::from_secs(secs);
    }
    match action.timeout_in_minutes {
        Some(m) if m > 0 => Duration::from_secs(m as u64 * 60),
        _ => default,
    }
}

/// The run's facts for the command: which pipeline, execution and revision, plus the pipeline variables
/// and the action's own environment variables (`environmentVariables`, or configuration
/// `EnvironmentVariables` as a JSON list of `{name, value}` or a JSON object).
fn command_env(exec: &ExecutionRecord, stage: &str, action: &ActionDeclaration) -> Vec<(String, String)> {
    // The first source action's revision (the one with a resolved commit if there are several).
    let revisions = exec.source_revisions.as_array();
    let revision = revisions
        .and_then(|r| r.iter().find(|x| x.get("revisionId").is_some_and(|v| !v.is_null())))
        .or_else(|| revisions.and_then(|r| r.first()));
    let field = |k: &str| revision.and_then(|r| r.get(k)).and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut env = vec![
        ("PIPEHOOK_PIPELINE".to_owned(), exec.pipeline_name.clone()),
        ("PIPEHOOK_EXECUTION_ID".to_owned(), exec.id.clone()),
        ("PIPEHOOK_STAGE".to_owned(), stage.to_owned()),
        ("PIPEHOOK_ACTION".to_owned(), action.name.clone()),
        ("PIPEHOOK_COMMIT_ID".to_owned(), field("revisionId")),
        ("PIPEHOOK_BRANCH".to_owned(), field("branch")),
        ("PIPEHOOK_REPOSITORY".to_owned(), field("repository")),
        ("PIPEHOOK_ACTOR".to_owned(), field("actor")),
        ("PIPEHOOK_COMMIT_MESSAGE".to_owned(), field("revisionSummary")),
        (
            "PIPEHOOK_TRIGGER".to_owned(),
            exec.trigger.get("triggerType").and_then(Value::as_str).unwrap_or_default().to_owned(),
        ),
        (
            "PIPEHOOK_TRIGGER_DETAIL".to_owned(),
            exec.trigger.get("triggerDetail").and_then(Value::as_str).unwrap_or_default().to_owned(),
        ),
    ];
    for v in exec.variables.as_array().into_iter().flatten() {
        if let (Some(n), Some(val)) = (v.get("name").and_then(Value::as_str), v.get("value").and_then(Value::as_str)) {
            env.push((format!("PIPEHOOK_VAR_{n}"), val.to_owned()));
        }
    }
    for v in action.environment_variables.iter().flatten() {
        env.push((v.name.clone(), v.value.clone()));
    }
    if let Some(raw) = action.configuration.as_ref().and_then(|c| c.get("EnvironmentVariables")) {
        match serde_json::from_str::<Value>(raw) {
            Ok(Value::Array(list)) => {
                for v in list {
                    if let (Some(n), Some(val)) = (v.get("name").and_then(Value::as_str), v.get("value")) {
                        env.push((n.to_owned(), val.as_str().map_or_else(|| val.to_string(), str::to_owned)));
                    }
                }
            }
            Ok(Value::Object(map)) => {
                for (n, val) in map {
                    env.push((n, val.as_str().map_or_else(|| val.to_string(), str::to_owned)));
                }
            }
            _ => tracing::warn!(action = %action.name, "EnvironmentVariables is not a JSON list or object; ignored"),
        }
    }
    env
}

/// Polls the execution for stop requests: any request halts new actions; `abandon` also kills running ones.
async fn watch_stop(
    store: Arc<dyn Store>,
    org: OrgId,
    id: String,
    every: Duration,
    stop: CancellationToken,
    halt: CancellationToken,
    kill: CancellationToken,
) {
    while pause(&stop, every).await {
        match store.execution(org, &id).await {
            Ok(Some(e)) if e.stop_requested => {
                halt.cancel();
                if e.stop_abandon {
                    kill.cancel();
                    return;
                }
            }
            Ok(None) => {
                // Deleted with its pipeline: stop everything.
                halt.cancel();
                kill.cancel();
                return;
            }
            _ => {}
        }
    }
}
