//! CodeBuild builds in the store: [`prepare_build`] / [`start_build_in`] (a build, its `codebuild.build` job and
//! its `build_started` run event, together), and [`BuildRunner`], the job handler that runs the build with
//! [`crate::build::run_build`] and records its phases, log and outcome as it goes.
//!
//! - The buildspec is the StartBuild `buildspecOverride`, else the project's inline `source.buildspec`, else
//!   `buildspec.yml` (or `.yaml`) from the checked-out source: the source is then checked out before the phases
//!   start (the checkout's time counts in QUEUED) and DOWNLOAD_SOURCE reports it; a missing or invalid file
//!   fails DOWNLOAD_SOURCE with `YAML_FILE_ERROR`. An inline buildspec that does not parse ends the build FAILED
//!   before it runs, with the reason in its log.
//! - The source is the project's `source.location` checked out with git ([`GitSource`]) at the commit the
//!   webhook carried, else the build's `sourceVersion`, else the default branch; `NO_SOURCE` downloads nothing.
//! - Environment, in order (a later one wins): the project's `environment.environmentVariables`, StartBuild's
//!   `environmentVariablesOverride`, the `CODEBUILD_WEBHOOK_*` variables of the triggering event; the runner
//!   then adds CodeBuild's own `CODEBUILD_*` (see [`crate::build`]).
//! - Every phase transition is written to the build row (PhaseObserver); the log and stop requests are polled
//!   every [`BuildRunnerConfig::poll`]. StopBuild sets `stop_requested`, which cancels the build: STOPPED.
//! - Crash safety: a build found past QUEUED when its job starts was being run by a worker that died; it is
//!   ended FAULT (its commands may have had effects) rather than run twice.
//! - Run events `build_started` (at start), `build_succeeded` / `build_failed` (at the end; FAILED, FAULT,
//!   TIMED_OUT and STOPPED are all `build_failed`, with `status` saying which), with `projectName`,
//!   `buildNumber`, `buildId`, `pipeline` (null unless a pipeline's CodeBuild action started it; then also
//!   `executionId`, `stage`, `action`), `trigger` (`{"revision": {...}}` when known), `status`, `at`.

use async_trait::async_trait;
use pipehook_domain::org::OrgId;
use pipehook_domain::time::Timestamp;
use pipehook_store::{
    BuildRecord, BuildStart, Job, JobContext, JobFailure, JobHandler, Lease, NewBuild, NewJob, ProjectRecord, Store,
    StoreError, StoreResult, Tx,
};

use crate::pipeline::fenced;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::build::{
    run_build, BuildIdentity, BuildOutcome, BuildPhase, BuildRequest, GitSource, NoSource, PhaseObserver, SourceStep,
};
use crate::companion::{pause, Companion};
use crate::exec::LogSink;

/// The queue kind of build jobs.
pub const BUILD_JOB: &str = "codebuild.build";

/// The job kind that coordinates a batch (see `batch.rs`).
pub const BATCH_JOB: &str = "codebuild.batch";

/// A batch's time limit when its buildspec sets none (`timeout-in-mins`).
const DEFAULT_BATCH_MINUTES: u64 = 8 * 60;

/// A batch job is deferred, not retried, while it waits; attempts are only spent on store failures.
const BATCH_MAX_ATTEMPTS: u32 = 20;

/// The `codebuild.batch` job: the coordinator build and its plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchJob {
    pub org: i64,
    pub build: String,
    pub batch: crate::batch::Batch,
    /// When the batch times out (epoch milliseconds).
    pub deadline: i64,
    /// The coordinator's log before the list of builds.
    pub log_head: String,
}

/// How long an idempotency token names the same build (CodeBuild: 5 minutes).
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(5 * 60);

const MAX_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildJob {
    pub org: i64,
    pub build: String,
}

/// What starts a build.
#[derive(Debug, Clone)]
pub struct StartBuildRequest {
    pub org: OrgId,
    pub project: String,
    pub source_version: Option<String>,
    /// `CODEBUILD_INITIATOR`: the user, `GitHub-Hookshot/<hook id>`, `codepipeline/<pipeline>`.
    pub initiator: String,
    /// `[{"name", "value", "type"}]`.
    pub env_overrides: Value,
    pub buildspec_override: Option<String>,
    pub idempotency_token: Option<String>,
    /// `{"revision": {...}, "webhookEnv": [[name, value]], ...}`; `{}` when nothing is known.
    pub trigger: Value,
}

/// The rows a new build needs, without touching the store.
pub fn prepare_build(req: &StartBuildRequest) -> StoreResult<BuildStart> {
    let id = format!("{}:{}", req.project, uuid::Uuid::new_v4());
    let now = Timestamp::now();
    let phases = json!([{"phaseType": "SUBMITTED", "startTime": now.millis()}]);
    let job = BuildJob { org: req.org.0, build: id.clone() };
    let payload = serde_json::to_value(&job).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let event = json!({
        "projectName": req.project,
        "buildId": id,
        "pipeline": req.trigger.get("pipeline"),
        "executionId": req.trigger.get("executionId"),
        "stage": req.trigger.get("stage"),
        "action": req.trigger.get("action"),
        "trigger": trigger_for_event(&req.trigger),
        "status": "IN_PROGRESS",
        "initiator": req.initiator,
        "at": now.millis(),
    });
    Ok(BuildStart {
        build: NewBuild {
            id,
            org: req.org,
            project_name: req.project.clone(),
            source_version: req.source_version.clone(),
            initiator: req.initiator.clone(),
            env_overrides: req.env_overrides.clone(),
            buildspec_override: req.buildspec_override.clone(),
            idempotency_token: req.idempotency_token.clone(),
            trigger: req.trigger.clone(),
            phases,
            start_time: now,
            idempotency_since: now.saturating_sub(IDEMPOTENCY_WINDOW),
        },
        // Builds are shared fairly between an organization's projects.
        job: NewJob::new(BUILD_JOB, payload)
            .org(req.org)
            .max_attempts(MAX_ATTEMPTS)
            .fair_key(format!("project:{}", req.project)),
        event_kind: "build_started".into(),
        event,
    })
}

/// Writes a prepared build, its job and its start event inside `tx`.
pub async fn start_build_in(tx: &mut dyn Tx, s: &BuildStart) -> StoreResult<BuildRecord> {
    let record = tx.insert_build(&s.build).await?;
    tx.enqueue(std::slice::from_ref(&s.job)).await?;
    let mut event = s.event.clone();
    event["buildNumber"] = json!(record.build_number);
    tx.record_run_event(s.build.org, &s.event_kind, &record.id, &event).await?;
    Ok(record)
}

/// Starts a build in its own transaction. A repeated idempotency token (within [`IDEMPOTENCY_WINDOW`]) returns
/// the build it started the first time.
pub async fn start_build(store: &dyn Store, req: &StartBuildRequest) -> StoreResult<BuildRecord> {
    let start = prepare_build(req)?;
    if let Some(token) = &req.idempotency_token {
        if let Some(b) = store.build_by_token(req.org, &req.project, token, start.build.idempotency_since).await? {
            return Ok(b);
        }
    }
    let mut tx = store.begin().await?;
    match start_build_in(&mut *tx, &start).await {
        Ok(r) => {
            tx.commit().await?;
            Ok(r)
        }
        Err(StoreError::Conflict(_)) if req.idempotency_token.is_some() => {
            drop(tx);
            let token = req.idempotency_token.as_deref().unwrap_or_default();
            store
                .build_by_token(req.org, &req.project, token, start.build.idempotency_since)
                .await?
                .ok_or_else(|| StoreError::NotFound("build".into()))
        }
        Err(e) => Err(e),
    }
}

/// The part of a build's trigger the outbound relay reads (`trigger.revision`).
fn trigger_for_event(trigger: &Value) -> Value {
    match trigger.get("revision") {
        Some(r) if !r.is_null() => json!({"revision": r}),
        _ => json!({}),
    }
}

fn end_event(b: &BuildRecord, status: &str) -> Value {
    json!({
        "projectName": b.project_name,
        "buildNumber": b.build_number,
        "buildId": b.id,
        "pipeline": b.trigger.get("pipeline"),
        "executionId": b.trigger.get("executionId"),
        "stage": b.trigger.get("stage"),
        "action": b.trigger.get("action"),
        "trigger": trigger_for_event(&b.trigger),
        "status": status,
        "initiator": b.initiator,
        "startTime": b.start_time.millis(),
        "at": Timestamp::now().millis(),
    })
}

/// Runner settings.
#[derive(Debug, Clone)]
pub struct BuildRunnerConfig {
    /// Builds get `<workspace_root>/<build uuid>`, removed when they end.
    pub workspace_root: PathBuf,
    /// AWS region and account-less ARNs: `arn:aws:codebuild:<region>:<account>:build/<id>`.
    pub region: String,
    /// Bytes of output kept per phase.
    pub log_limit: usize,
    /// How often a running build looks for a stop request and persists its log.
    pub poll: Duration,
    pub keep_workspaces: bool,
    /// The operator's cap on any build's timeout (`None`: the project's `timeoutInMinutes` or the
    /// override, 5 to 2160 minutes, as in CodeBuild).
    pub max_timeout: Option<Duration>,
    /// Where the phases' commands run (the server sets the sandbox unless told otherwise).
    pub executor: crate::exec::Executor,
    /// Where running phases' process groups are written down, for the node's next start.
    pub registry: Option<crate::exec::ProcessRegistry>,
}

impl BuildRunnerConfig {
    pub fn new(workspace_root: PathBuf, region: &str) -> Self {
        Self {
            workspace_root,
            region: region.to_owned(),
            log_limit: 256 * 1024,
            poll: Duration::from_millis(500),
            keep_workspaces: false,
            max_timeout: None,
            executor: crate::exec::Executor::default(),
            registry: None,
        }
    }
}

/// A build's state as a git host's commit status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportedState {
    InProgress,
    Succeeded,
    /// FAILED, FAULT or TIMED_OUT.
    Failed,
    Stopped,
}

impl ReportedState {
    fn of(status: &str) -> Self {
        match status {
            "SUCCEEDED" => ReportedState::Succeeded,
            "STOPPED" => ReportedState::Stopped,
            "IN_PROGRESS" => ReportedState::InProgress,
            _ => ReportedState::Failed,
        }
    }
}

/// What a commit status report is about.
#[derive(Debug, Clone)]
pub struct StatusReport<'a> {
    pub project: &'a ProjectRecord,
    pub build: &'a BuildRecord,
    /// The organization's name (for links).
    pub org_name: &'a str,
    pub commit: &'a str,
    pub state: ReportedState,
}

/// Reports builds to the git host as commit statuses, for projects with `source.reportBuildStatus` (CodeBuild's
/// "report build statuses to source provider"). Implemented where the git hosts' APIs are (`pipehook-api`); a
/// failure is written to the build's log and does not change the build.
#[async_trait]
pub trait StatusReporter: Send + Sync {
    /// Sends one status; `Ok` names where it went (for the log).
    async fn report(&self, report: &StatusReport<'_>) -> Result<String, String>;
}

/// The `codebuild.build` job handler.
pub struct BuildRunner {
    store: Arc<dyn Store>,
    config: BuildRunnerConfig,
    reporter: Option<Arc<dyn StatusReporter>>,
}

impl BuildRunner {
    pub fn new(store: Arc<dyn Store>, config: BuildRunnerConfig) -> Self {
        Self { store, config, reporter: None }
    }

    /// Reports builds of projects with `source.reportBuildStatus` through `reporter`.
    pub fn with_reporter(mut self, reporter: Arc<dyn StatusReporter>) -> Self {
        self.reporter = Some(reporter);
        self
    }

    /// Reports `state` of `build` when the project asks for it; returns a line for the log when it failed.
    async fn report_status(
        &self,
        project: &ProjectRecord,
        build: &BuildRecord,
        org_name: &str,
        commit: Option<&str>,
        state: ReportedState,
    ) -> Option<String> {
        let reporter = self.reporter.as_ref()?;
        // StartBuild's `reportBuildStatusOverride`, else the project's `source.reportBuildStatus`.
        let wanted = build.trigger["reportBuildStatus"]
            .as_bool()
            .unwrap_or(project.document["source"]["reportBuildStatus"] == json!(true));
        // The builds of a batch do not report: the batch does, under one context.
        if !wanted || build.trigger["batch"].is_object() {
            return None;
        }
        let commit = commit.filter(|c| c.len() >= 7 && c.chars().all(|ch| ch.is_ascii_hexdigit()))?;
        let report = StatusReport { project, build, org_name, commit, state };
        match reporter.report(&report).await {
            Ok(to) => {
                tracing::debug!(build = %build.id, %to, ?state, "build status reported");
                None
            }
            Err(e) => {
                tracing::warn!(build = %build.id, error = %e, "reporting the build status to the source provider failed");
                Some(format!(
                    "[Container] {} Reporting the build status ({state:?}) to the source provider failed: {e}\n",
                    Timestamp::now().to_rfc3339()
                ))
            }
        }
    }
}

fn retry(e: StoreError) -> JobFailure {
    JobFailure::Retry { error: e.to_string(), after: Duration::from_secs(2) }
}

/// The buildspec file of the checked-out source, parsed, with its text: `path` (a batch build's own buildspec)
/// or `buildspec.yml` (or `buildspec.yaml`) at the root.
async fn read_buildspec(
    dir: &std::path::Path,
    path: Option<&str>,
) -> Result<(crate::buildspec::Buildspec, String), String> {
    let names: Vec<&str> = match path {
        Some(p) => vec![p],
        None => vec!["buildspec.yml", "buildspec.yaml"],
    };
    for name in &names {
        match read_source_file(dir, name).await {
            Ok(text) => return crate::buildspec::parse(&text).map(|b| (b, text)).map_err(|e| format!("{name}: {e}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && path.is_none() => continue,
            Err(e) => return Err(format!("{name}: {e}")),
        }
    }
    Err("no buildspec.yml at the root of the source, and the project has no inline buildspec".into())
}

/// The largest buildspec file read from a source.
const BUILDSPEC_FILE_LIMIT: u64 = 1024 * 1024;

/// Reads `name` from the checked-out source `dir` as pipehook itself, outside any sandbox: only a regular file
/// of at most [`BUILDSPEC_FILE_LIMIT`] bytes that really lies inside `dir`. A repository can hold a symbolic link
/// named `buildspec.yml` to any path of the server's, and `name` (a batch's per-build buildspec) can hold `..`:
/// a link to `/dev/zero` would fill the server's memory, one to a FIFO block the worker, one to a YAML file put
/// parts of it in the build's log through the parser's error message.
async fn read_source_file(dir: &std::path::Path, name: &str) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind};
    let root = tokio::fs::canonicalize(dir).await?;
    let real = tokio::fs::canonicalize(dir.join(name)).await?;
    let meta = tokio::fs::symlink_metadata(&real).await?;
    if !real.starts_with(&root) || !meta.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "not a file inside the source (a symbolic link or .. leads out of it)",
        ));
    }
    if meta.len() > BUILDSPEC_FILE_LIMIT {
        return Err(Error::new(ErrorKind::InvalidData, format!("larger than {BUILDSPEC_FILE_LIMIT} bytes")));
    }
    tokio::fs::read_to_string(&real).await
}

/// A buildspec for a build whose DOWNLOAD_SOURCE fails (so no command ever runs).
/// A trigger's commit, checked out by id: the commit git resolved must be that one (git takes a branch or tag
/// named like an abbreviated id before the commit), or DOWNLOAD_SOURCE fails.
struct CommitSource {
    git: GitSource,
    commit: String,
}

#[async_trait]
impl SourceStep for CommitSource {
    async fn download(&self, dest: &std::path::Path, timeout: Duration) -> Result<crate::build::Downloaded, String> {
        let downloaded = self.git.download(dest, timeout).await?;
        match downloaded.resolved_source_version.as_deref() {
            Some(resolved) if crate::workspace::commit_matches(resolved, &self.commit) => Ok(downloaded),
            resolved => Err(format!(
                "git resolved {} to {}, not to that commit; refusing to build another revision",
                self.commit,
                resolved.unwrap_or("nothing")
            )),
        }
    }
}

fn placeholder_buildspec() -> crate::buildspec::Buildspec {
    crate::buildspec::parse("version: 0.2\nphases:\n  build:\n    commands:\n      - 'true'\n")
        .expect("a valid buildspec")
}

/// `phases` with the last one ended at `at` with `status`, and a phase `next` begun at `at` (COMPLETED has no
/// status of its own, as in CodeBuild).
fn advance_phases(phases: &Value, status: &str, next: &str, at: Timestamp) -> Value {
    let mut list = phases.as_array().cloned().unwrap_or_default();
    if let Some(last) = list.last_mut() {
        let begun = last["startTime"].as_i64().unwrap_or(at.millis());
        last["endTime"] = json!(at.millis());
        last["phaseStatus"] = json!(status);
        last["durationInSeconds"] = json!((at.millis() - begun) / 1000);
    }
    list.push(json!({"phaseType": next, "startTime": at.millis()}));
    Value::Array(list)
}

/// Persists phases as they change.
struct StoreObserver {
    store: Arc<dyn Store>,
    lease: Lease,
    org: OrgId,
    id: String,
}

#[async_trait]
impl PhaseObserver for StoreObserver {
    async fn phases_changed(&self, phases: &[BuildPhase]) {
        let current = phases.last().map_or("SUBMITTED", |p| p.phase_type.as_str());
        let result = async {
            let mut tx = fenced(&*self.store, &self.lease).await?;
            tx.set_build_progress(self.org, &self.id, Some(&phases_json(phases)), Some(current), None, None).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(build = %self.id, error = %e, "recording build phases failed");
        }
    }
}

fn phases_json(phases: &[BuildPhase]) -> Value {
    serde_json::to_value(phases).unwrap_or_else(|_| json!([]))
}

/// The project's variables (`environment.environmentVariables`, PLAINTEXT values as given).
fn env_pairs(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v["name"].as_str()?.to_owned(), v["value"].as_str().unwrap_or_default().to_owned())))
        .collect()
}

#[async_trait]
impl JobHandler for BuildRunner {
    async fn handle(&self, job: &Job, ctx: &JobContext) -> Result<(), JobFailure> {
        let lease = &job.lease;
        if job.kind == BATCH_JOB {
            let j: BatchJob = serde_json::from_value(job.payload.clone())
                .map_err(|e| JobFailure::Permanent(format!("bad batch job payload: {e}")))?;
            return self.coordinate(lease, &j).await;
        }
        let j: BuildJob = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobFailure::Permanent(format!("bad build job payload: {e}")))?;
        let org = OrgId(j.org);
        let Some(build) = self.store.build(org, &j.build).await.map_err(retry)? else {
            return Ok(());
        };
        if build.status != "IN_PROGRESS" {
            return Ok(());
        }
        // A build whose worker was lost before its commands ran (provisioning, checking out) starts over: that
        // is safe to repeat. One lost while its commands ran has an unknown outcome: it ends FAULT.
        if !matches!(build.current_phase.as_str(), "SUBMITTED" | "QUEUED" | "PROVISIONING" | "DOWNLOAD_SOURCE") {
            let mut log =
                format!("{}\n[Container] The worker running this build stopped before it finished\n", build.logs);
            // The in-progress status it reported must not stay pending on the commit.
            log.push_str(&self.report_end(&build, ReportedState::Failed).await);
            return self.finish(lease, &build, "FAULT", &build.phases, None, &log).await.map_err(retry);
        }
        if build.stop_requested {
            return self
                .finish(lease, &build, "STOPPED", &build.phases, None, "Build stopped before it started\n")
                .await
                .map_err(retry);
        }
        // A draining node starts no build; another node (or this one after its restart) starts it at once.
        if ctx.handoff.is_cancelled() {
            return Err(JobFailure::Defer { after: Duration::ZERO });
        }
        let Some(project) = self.store.project(org, &build.project_name).await.map_err(retry)? else {
            return self
                .finish(lease, &build, "FAULT", &build.phases, None, "The build's project no longer exists\n")
                .await
                .map_err(retry);
        };
        self.run(lease, build, project).await.map_err(retry)
    }
}

impl BuildRunner {
    async fn finish(
        &self,
        lease: &Lease,
        b: &BuildRecord,
        status: &str,
        phases: &Value,
        resolved: Option<&str>,
        log: &str,
    ) -> StoreResult<()> {
        let mut tx = fenced(&*self.store, lease).await?;
        tx.finish_build(b.org, &b.id, status, phases, resolved, log).await?;
        let kind = if status == "SUCCEEDED" { "build_succeeded" } else { "build_failed" };
        tx.record_run_event(b.org, kind, &b.id, &end_event(b, status)).await?;
        tx.commit().await?;
        tracing::info!(build = %b.id, status, "build ended");
        Ok(())
    }

    async fn run(&self, lease: &Lease, build: BuildRecord, project: ProjectRecord) -> StoreResult<()> {
        let doc = &project.document;
        // A batch build with its own buildspec file reads it from the source, whatever the project says.
        let spec_path = build.trigger["buildspecPath"].as_str().map(str::to_owned);
        let spec_text = build
            .buildspec_override
            .clone()
            .filter(|s| !s.trim().is_empty())
            .or_else(|| doc["source"]["buildspec"].as_str().map(str::to_owned).filter(|s| !s.trim().is_empty()))
            .filter(|_| spec_path.is_none());
        // The build's own folder, named by the uuid pipehook gave it (never by the project's name).
        let uuid = build.id.rsplit(':').next().unwrap_or(&build.id).to_owned();
        let workspace = match crate::workspace::id_path(&self.config.workspace_root, &uuid) {
            Ok(w) => w,
            Err(e) => {
                let log = format!("[Container] Phase context status code: CLIENT_ERROR Message: no workspace: {e}\n");
                return self.finish(lease, &build, "FAULT", &build.phases, None, &log).await;
            }
        };
        let source_dir = workspace.join("src");
        let mut env = env_pairs(&doc["environment"]["environmentVariables"]);
        env.extend(env_pairs(&build.env_overrides));
        if let Some(list) = build.trigger["webhookEnv"].as_array() {
            for pair in list {
                if let (Some(k), Some(v)) = (pair[0].as_str(), pair[1].as_str()) {
                    env.push((k.to_owned(), v.to_owned()));
                }
            }
        }
        let org = self.store.org_by_id(build.org).await?;
        let account = org.as_ref().map(|o| o.account_id.to_string()).unwrap_or_else(|| "000000000000".into());
        let org_name = org.as_ref().map(|o| o.name.to_string()).unwrap_or_default();
        let location = doc["source"]["location"].as_str().filter(|l| !l.is_empty()).map(str::to_owned);
        let source_type = doc["source"]["type"].as_str().unwrap_or("NO_SOURCE");
        // The trigger's commit, only when it is a commit id (a payload's ref name never chooses what is built).
        // A webhook build builds that commit and nothing else: its `sourceVersion` (`pr/<n>`) is no revision.
        let trigger_commit = build.trigger["revision"]["commitId"]
            .as_str()
            .filter(|c| crate::workspace::is_commit_ref(c))
            .map(str::to_owned);
        let webhook_build = build.trigger["webhook"].as_bool() == Some(true);
        let revision = if webhook_build {
            trigger_commit.clone()
        } else {
            trigger_commit.clone().or_else(|| build.source_version.clone())
        };
        let git: Option<Box<dyn SourceStep>> = match (&location, source_type) {
            (_, "NO_SOURCE") | (None, _) => None,
            (Some(url), _) if self.config.executor.refuses_source(url).is_some() => {
                let message = self.config.executor.refuses_source(url).unwrap_or_default();
                Some(Box::new(crate::build::FnSource(move |_: PathBuf, _: Duration| {
                    let message = message.clone();
                    async move { Err::<crate::build::Downloaded, String>(message) }
                })))
            }
            (Some(url), _) => {
                let git = GitSource { url: url.clone(), revision: revision.clone(), extra_env: vec![] };
                match (&trigger_commit, webhook_build) {
                    (Some(commit), _) => Some(Box::new(CommitSource { git, commit: commit.clone() })),
                    (None, true) => Some(Box::new(crate::build::FnSource(|_: PathBuf, _: Duration| async {
                        Err::<crate::build::Downloaded, String>(
                            "the webhook's payload names no commit id to build".to_owned(),
                        )
                    }))),
                    (None, false) => Some(Box::new(git)),
                }
            }
        };
        let minutes =
            build.trigger["timeoutInMinutes"].as_u64().or_else(|| doc["timeoutInMinutes"].as_u64()).unwrap_or(60);
        let mut timeout = Duration::from_secs(minutes * 60);
        if let Some(cap) = self.config.max_timeout {
            timeout = timeout.min(cap);
        }

        // The buildspec: inline, or `buildspec.yml` from the source, which is then checked out first (its time
        // counts in QUEUED) and DOWNLOAD_SOURCE reports that checkout; a missing or bad file fails DOWNLOAD_SOURCE
        // with YAML_FILE_ERROR, as in CodeBuild.
        let mut read_text = None;
        let (buildspec, source): (crate::buildspec::Buildspec, Box<dyn SourceStep>) = match (spec_text, git) {
            (Some(text), git) => match crate::buildspec::parse(&text) {
                Ok(b) => {
                    read_text = Some(text);
                    (b, git.unwrap_or_else(|| Box::new(NoSource)))
                }
                Err(e) => {
                    let log = format!("[Container] Phase context status code: YAML_FILE_ERROR Message: {e}\n");
                    return self.finish(lease, &build, "FAILED", &build.phases, None, &log).await;
                }
            },
            (None, None) => {
                let log = "[Container] Phase context status code: YAML_FILE_ERROR Message: no buildspec: the project \
                           has no source to read buildspec.yml from; set source.buildspec or buildspecOverride\n";
                return self.finish(lease, &build, "FAILED", &build.phases, None, log).await;
            }
            (None, Some(g)) => {
                let downloaded = g.download(&source_dir, timeout).await;
                let (spec, result) = match downloaded {
                    Err(message) => (placeholder_buildspec(), Err(message)),
                    Ok(d) => match read_buildspec(&source_dir, spec_path.as_deref()).await {
                        Ok((spec, text)) => {
                            read_text = Some(text);
                            (spec, Ok(d))
                        }
                        Err(message) => (placeholder_buildspec(), Err(format!("YAML_FILE_ERROR: {message}"))),
                    },
                };
                let step = crate::build::FnSource(move |_dest: PathBuf, _timeout: Duration| {
                    let result = result.clone();
                    async move { result }
                });
                (spec, Box::new(step))
            }
        };
        // A webhook's BUILD_BATCH: the buildspec's `batch` section says which builds to run.
        if build.trigger["buildType"] == "BUILD_BATCH" {
            if let Some(text) = &read_text {
                match crate::batch::parse_batch(text) {
                    Ok(Some(batch)) => {
                        let _ = tokio::fs::remove_dir_all(&workspace).await;
                        let commit = revision.as_deref();
                        let start = self.report_status(&project, &build, &org_name, commit, ReportedState::InProgress);
                        let report_log = start.await.unwrap_or_default();
                        return self.begin_batch(lease, &build, batch, &report_log).await;
                    }
                    // No batch section: the batch is this one build, as in CodeBuild.
                    Ok(None) => {}
                    Err(e) => {
                        let _ = tokio::fs::remove_dir_all(&workspace).await;
                        let log = format!("[Container] Phase context status code: YAML_FILE_ERROR Message: {e}\n");
                        return self.finish(lease, &build, "FAILED", &build.phases, None, &log).await;
                    }
                }
            }
        }
        let mut report_log = String::new();
        if let Some(line) =
            self.report_status(&project, &build, &org_name, revision.as_deref(), ReportedState::InProgress).await
        {
            report_log.push_str(&line);
        }
        let request = BuildRequest {
            identity: BuildIdentity {
                build_id: build.id.clone(),
                build_arn: format!("arn:aws:codebuild:{}:{account}:build/{}", self.config.region, build.id),
                build_number: build.build_number as u64,
                initiator: build.initiator.clone(),
                source_version: build.source_version.clone().or(revision.clone()),
                source_repo_url: location,
            },
            buildspec,
            source_dir,
            env,
            timeout,
            log_limit: self.config.log_limit,
            submitted_at: Some(build.start_time),
            executor: self.config.executor.clone(),
            registry: self.config.registry.clone(),
        };
        let stop = CancellationToken::new();
        let (sink, mut logs) = LogSink::new();
        let observer = StoreObserver { store: self.store.clone(), lease: *lease, org: build.org, id: build.id.clone() };
        let watcher = {
            let (store, org, id, every, stop, lease) =
                (self.store.clone(), build.org, build.id.clone(), self.config.poll, stop.clone(), *lease);
            Companion::spawn(move |done| async move {
                while pause(&done, every).await {
                    match store.build(org, &id).await {
                        Ok(Some(b)) if b.stop_requested => stop.cancel(),
                        Ok(None) => stop.cancel(),
                        _ => {}
                    }
                    if logs.has_changed().unwrap_or(false) {
                        // The phases are the observer's; only the log is written here.
                        let snapshot = logs.borrow_and_update().clone();
                        let write = async {
                            let mut tx = fenced(&*store, &lease).await?;
                            tx.set_build_progress(org, &id, None, None, None, Some(&snapshot)).await?;
                            tx.commit().await
                        };
                        if let Err(e) = write.await {
                            tracing::warn!(build = %id, error = %e, "recording a build's log failed");
                        }
                    }
                }
            })
        };
        let outcome: BuildOutcome = run_build(&request, &*source, &observer, &stop, Some(&sink)).await;
        // Stopped and awaited before the outcome and final log are written, so a partial log never lands
        // after them.
        watcher.finish().await;
        if !self.config.keep_workspaces {
            let _ = tokio::fs::remove_dir_all(&workspace).await;
        }
        let status = outcome.build_status;
        let commit = outcome.resolved_source_version.as_deref().or(revision.as_deref());
        let end = ReportedState::of(status.as_str());
        if let Some(line) = self.report_status(&project, &build, &org_name, commit, end).await {
            report_log.push_str(&line);
        }
        let log = if report_log.is_empty() { outcome.log } else { format!("{}{report_log}", outcome.log) };
        self.finish(
            lease,
            &build,
            status.as_str(),
            &phases_json(&outcome.phases),
            outcome.resolved_source_version.as_deref(),
            &log,
        )
        .await
    }

    /// Starts a batch: this build (the coordinator) enters BUILD and a `codebuild.batch` job carrying the plan
    /// takes over (see [`BuildRunner::coordinate`]), in one transaction.
    async fn begin_batch(
        &self,
        lease: &Lease,
        build: &BuildRecord,
        batch: crate::batch::Batch,
        report_log: &str,
    ) -> StoreResult<()> {
        let started = Timestamp::now();
        let phases = advance_phases(&build.phases, "SUCCEEDED", "BUILD", started);
        let minutes = batch.timeout_minutes.unwrap_or(DEFAULT_BATCH_MINUTES);
        let mut limit = Duration::from_secs(minutes * 60);
        if let Some(cap) = self.config.max_timeout {
            limit = limit.min(cap);
        }
        let log = format!(
            "[Batch] {} build(s), fast-fail {}: {}\n{report_log}",
            batch.builds.len(),
            batch.fast_fail,
            batch.builds.iter().map(|b| b.identifier.as_str()).collect::<Vec<_>>().join(", ")
        );
        let job = BatchJob {
            org: build.org.0,
            build: build.id.clone(),
            batch,
            deadline: started.millis() + limit.as_millis() as i64,
            log_head: log.clone(),
        };
        let payload = serde_json::to_value(&job).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = fenced(&*self.store, lease).await?;
        tx.set_build_progress(build.org, &build.id, Some(&phases), Some("BUILD"), None, Some(&log)).await?;
        tx.enqueue(&[NewJob::new(BATCH_JOB, payload).org(build.org).max_attempts(BATCH_MAX_ATTEMPTS)]).await?;
        tx.commit().await
    }

    /// One look at a batch (the `codebuild.batch` job): its builds are found by their `trigger.batch`, those
    /// that can start are started (idempotently: a token per batch build, so a look repeated by another worker
    /// starts nothing twice), and the job is deferred until the next look, or the coordinator ends with the
    /// batch's outcome. A stopped, failing-fast or timed-out batch stops its running builds.
    async fn coordinate(&self, lease: &Lease, job: &BatchJob) -> Result<(), JobFailure> {
        use crate::batch::{blocked, outcome, ready, status_name, Slot};
        use std::fmt::Write as _;
        let org = OrgId(job.org);
        let Some(build) = self.store.build(org, &job.build).await.map_err(retry)? else { return Ok(()) };
        if build.status != "IN_PROGRESS" {
            return Ok(());
        }
        let batch = &job.batch;
        let n = batch.builds.len();
        // The batch's builds so far: builds of the same project and source version naming this coordinator.
        let version = build.source_version.clone().unwrap_or_default();
        let found =
            self.store.builds_of_commit(org, &build.project_name, &version, build.start_time).await.map_err(retry)?;
        let mut ids: Vec<Option<String>> = vec![None; n];
        let mut slots = vec![Slot::Waiting; n];
        for b in found.iter().filter(|b| b.trigger["batch"]["coordinator"] == json!(build.id)) {
            let identifier = b.trigger["batch"]["identifier"].as_str().unwrap_or_default();
            if let Some(i) = batch.builds.iter().position(|x| x.identifier == identifier) {
                ids[i] = Some(b.id.clone());
                slots[i] = if b.status == "IN_PROGRESS" { Slot::Running } else { Slot::Ended(status_name(&b.status)) };
            }
        }
        let failed =
            |i: usize| matches!(slots[i], Slot::Ended(s) if s != "SUCCEEDED") && !batch.builds[i].ignore_failure;
        let failing = batch.fast_fail && (0..n).any(failed);
        let timed_out = Timestamp::now().millis() >= job.deadline;
        let stopping = build.stop_requested || failing || timed_out;
        if stopping {
            for i in (0..n).filter(|&i| slots[i] == Slot::Running) {
                let mut tx = fenced(&*self.store, lease).await.map_err(retry)?;
                tx.request_build_stop(org, ids[i].as_deref().unwrap_or_default()).await.map_err(retry)?;
                tx.commit().await.map_err(retry)?;
            }
            for s in slots.iter_mut().filter(|s| **s == Slot::Waiting) {
                *s = Slot::Skipped;
            }
        } else {
            loop {
                let cannot = blocked(&batch.builds, &slots);
                if cannot.is_empty() {
                    break;
                }
                for i in cannot {
                    slots[i] = Slot::Skipped;
                }
            }
            for i in ready(&batch.builds, &slots) {
                let child = match self.start_batch_build(&build, &batch.builds[i]).await {
                    Ok(c) => c,
                    // The project was deleted under the batch: nothing more can start.
                    Err(StoreError::NotFound(_)) => {
                        let log = format!("{}[Batch] the project no longer exists\n", job.log_head);
                        return self.finish(lease, &build, "FAULT", &build.phases, None, &log).await.map_err(retry);
                    }
                    Err(e) => return Err(retry(e)),
                };
                ids[i] = Some(child.id);
                slots[i] = Slot::Running;
            }
        }
        let mut log = job.log_head.clone();
        for (i, b) in batch.builds.iter().enumerate() {
            let id = ids[i].as_deref().unwrap_or("-");
            let state = match slots[i] {
                Slot::Waiting => "waiting".to_owned(),
                Slot::Running => "running".to_owned(),
                Slot::Ended(s) if s != "SUCCEEDED" && b.ignore_failure => format!("{s} (failure ignored)"),
                Slot::Ended(s) => s.to_owned(),
                Slot::Skipped => "not started".to_owned(),
            };
            let _ = writeln!(log, "[Batch] {} ({id}) {state}", b.identifier);
        }
        let done = slots.iter().all(|s| matches!(s, Slot::Ended(_) | Slot::Skipped));
        if !done {
            let mut tx = fenced(&*self.store, lease).await.map_err(retry)?;
            tx.set_build_progress(org, &build.id, None, None, None, Some(&log)).await.map_err(retry)?;
            tx.commit().await.map_err(retry)?;
            return Err(JobFailure::Defer { after: self.config.poll.max(Duration::from_millis(200)) });
        }
        let status = if timed_out && !build.stop_requested {
            "TIMED_OUT"
        } else {
            outcome(&batch.builds, &slots, build.stop_requested)
        };
        if failing && status == "FAILED" {
            log.push_str("[Batch] fast-fail: the other builds were stopped\n");
        }
        let _ = writeln!(log, "[Batch] the batch {status}");
        let phases = advance_phases(&build.phases, status, "COMPLETED", Timestamp::now());
        log.push_str(&self.report_end(&build, ReportedState::of(status)).await);
        self.finish(lease, &build, status, &phases, None, &log).await.map_err(retry)
    }

    /// Reports how a build ended when the caller has not loaded its project (a batch, a build whose worker
    /// died): the line for the log when reporting failed, else nothing.
    async fn report_end(&self, build: &BuildRecord, state: ReportedState) -> String {
        let Ok(Some(project)) = self.store.project(build.org, &build.project_name).await else { return String::new() };
        let org = self.store.org_by_id(build.org).await.ok().flatten();
        let org_name = org.map(|o| o.name.to_string()).unwrap_or_default();
        let commit = build.resolved_source_version.clone().or_else(|| {
            build.trigger["revision"]["commitId"].as_str().map(str::to_owned).or(build.source_version.clone())
        });
        self.report_status(&project, build, &org_name, commit.as_deref(), state).await.unwrap_or_default()
    }

    /// Starts one build of a batch: the coordinator's commit, initiator and webhook variables, the batch build's
    /// variables (and `CODEBUILD_BATCH_BUILD_IDENTIFIER`) as overrides, its own buildspec file when it names one.
    async fn start_batch_build(&self, batch: &BuildRecord, b: &crate::batch::BatchBuild) -> StoreResult<BuildRecord> {
        let mut env: Vec<Value> = batch.env_overrides.as_array().cloned().unwrap_or_default();
        for (name, value) in &b.variables {
            env.push(json!({"name": name, "value": value, "type": "PLAINTEXT"}));
        }
        env.push(json!({"name": "CODEBUILD_BATCH_BUILD_IDENTIFIER", "value": b.identifier, "type": "PLAINTEXT"}));
        let mut trigger = batch.trigger.clone();
        if let Some(t) = trigger.as_object_mut() {
            t.remove("buildType");
            t.remove("duplicateOf");
        }
        trigger["batch"] = json!({"coordinator": batch.id, "identifier": b.identifier});
        if let Some(path) = &b.buildspec {
            trigger["buildspecPath"] = json!(path);
        }
        let req = StartBuildRequest {
            org: batch.org,
            project: batch.project_name.clone(),
            source_version: batch.source_version.clone(),
            initiator: batch.initiator.clone(),
            env_overrides: Value::Array(env),
            buildspec_override: batch.buildspec_override.clone(),
            // Starting the same batch build twice (a look repeated after a lost lease) returns the first.
            idempotency_token: Some(format!("batch:{}:{}", batch.id, b.identifier)),
            trigger,
        };
        start_build(&*self.store, &req).await
    }
}
