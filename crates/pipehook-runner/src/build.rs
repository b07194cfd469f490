//! The CodeBuild build runner: one build of a parsed [`Buildspec`], phase by phase, with real processes.
//!
//! [`run_build`] walks CodeBuild's phases: SUBMITTED, QUEUED, PROVISIONING, DOWNLOAD_SOURCE, INSTALL, PRE_BUILD,
//! BUILD, POST_BUILD, UPLOAD_ARTIFACTS, FINALIZING, COMPLETED. Each phase gets a status (SUCCEEDED, FAILED,
//! FAULT, TIMED_OUT, STOPPED), start and end times, a duration and contexts (CodeBuild's `statusCode` and
//! `message`); COMPLETED only has a start time, as in CodeBuild. Every transition is reported to a
//! [`PhaseObserver`] so a caller can persist `currentPhase` and `phases` while the build runs.
//!
//! ## Transitions (CodeBuild's "Build phase transitions")
//! - A failed DOWNLOAD_SOURCE (the caller's [`SourceStep`]; with [`GitSource`], git's message is the context)
//!   ends the build FAILED: straight to FINALIZING.
//! - A command that fails fails its phase; the phase's remaining commands do not run, but its `finally`
//!   commands do, also when a command ended the shell with `exit` (and a failing `finally` command fails the
//!   phase too; a command's `exit 0` ends the phase's commands early without failing it).
//! - With `on-failure: ABORT` (the default) a failed INSTALL skips PRE_BUILD, BUILD, POST_BUILD and
//!   UPLOAD_ARTIFACTS, and a failed PRE_BUILD skips BUILD, POST_BUILD and UPLOAD_ARTIFACTS; a failed BUILD
//!   still runs POST_BUILD, and UPLOAD_ARTIFACTS is attempted after any BUILD ("the UPLOAD_ARTIFACTS phase is
//!   always attempted, even if the BUILD phase fails"). Skipped phases are not listed, as CodeBuild does not
//!   list them. With `on-failure: CONTINUE` the build moves on to the next phase as if the phase had passed.
//!   Either way a failed phase makes the build FAILED.
//! - The build's `timeout` covers everything from PROVISIONING on; when it passes, the running phase is
//!   TIMED_OUT, its process group is killed (see [`exec::run`]) and the build goes to FINALIZING, TIMED_OUT.
//!   A cancelled `stop` token does the same with STOPPED. Neither runs `finally` or POST_BUILD: the build's
//!   time is up, or someone asked it to end.
//! - Something pipehook itself fails at (the state directory, starting the shell) is FAULT.
//! - UPLOAD_ARTIFACTS does nothing yet (artifacts are outside the subset) and succeeds.
//!
//! ## One shell session across phases
//! CodeBuild (buildspec 0.2) runs every command of a build in one shell, so `cd` and variables carry from one
//! command to the next. pipehook runs each phase as one script (`/bin/sh` or `bash`, per `env.shell`) through
//! [`exec::run`], so within a phase everything carries as in CodeBuild. Between phases the script saves, on
//! exit, its working directory and its **exported** variables (`export -p`) in a private state directory,
//! and the next phase's script restores both before its first command. So a `cd` carries everywhere, and a
//! variable reaches later phases when it is exported (`export NAME=value`); a plain assignment is seen by the
//! rest of its own phase only, and shell functions and `set` options do not carry. Under buildspec 0.1 every
//! command runs in a subshell that starts in the source directory, so nothing carries, as 0.1 documents.
//!
//! ## Environment
//! The first phase starts from: the buildspec's `env.variables`, overridden by the caller's `env` (the
//! project's variables, StartBuild overrides, `CODEBUILD_WEBHOOK_*` from the triggering event), overridden by
//! the variables CodeBuild itself sets ([`BuildIdentity`] plus `CODEBUILD_SRC_DIR`,
//! `CODEBUILD_RESOLVED_SOURCE_VERSION`, `CODEBUILD_START_TIME`, `CODEBUILD_CI`, `CODEBUILD_LOG_PATH`).
//! `CODEBUILD_BUILD_SUCCEEDING` is set at the start of every phase: `1`, or `0` once a phase has failed.
//!
//! ## Sandbox
//! Each phase runs with the request's [`Executor`]: in a sandbox, the phase sees the source folder and the
//! state folder (both writable) and nothing else of the worker (see [`crate::sandbox`]).
//! `PIPEHOOK_NETWORK=none` among the variables (the buildspec's or the caller's) takes the network away from
//! every phase; another value fails PROVISIONING with `CLIENT_ERROR`.
//!
//! ## Log
//! One text: CodeBuild-style `[Container]` lines for each phase (entering, each command, completion and
//! context) around each phase's output. Each phase's output is bounded by `log_limit` (head and tail, see
//! [`exec::run`]), so the whole log stays within about four times `log_limit`. A [`LogSink`] receives the
//! whole log so far while the build runs.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use pipehook_domain::time::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::buildspec::{Buildspec, BuildspecVersion, OnFailure, Phase};
use crate::exec::{self, CommandResult, CommandSpec, Executor, LogSink, Outcome};
use crate::sandbox::Network;

/// CodeBuild's build phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PhaseType {
    Submitted,
    Queued,
    Provisioning,
    DownloadSource,
    Install,
    PreBuild,
    Build,
    PostBuild,
    UploadArtifacts,
    Finalizing,
    Completed,
}

impl PhaseType {
    /// The wire name, e.g. `PRE_BUILD`.
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseType::Submitted => "SUBMITTED",
            PhaseType::Queued => "QUEUED",
            PhaseType::Provisioning => "PROVISIONING",
            PhaseType::DownloadSource => "DOWNLOAD_SOURCE",
            PhaseType::Install => "INSTALL",
            PhaseType::PreBuild => "PRE_BUILD",
            PhaseType::Build => "BUILD",
            PhaseType::PostBuild => "POST_BUILD",
            PhaseType::UploadArtifacts => "UPLOAD_ARTIFACTS",
            PhaseType::Finalizing => "FINALIZING",
            PhaseType::Completed => "COMPLETED",
        }
    }
}

impl std::fmt::Display for PhaseType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// CodeBuild's `StatusType`, for phases and for the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatusType {
    Succeeded,
    Failed,
    Fault,
    TimedOut,
    InProgress,
    Stopped,
}

impl StatusType {
    /// The wire name, e.g. `TIMED_OUT`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusType::Succeeded => "SUCCEEDED",
            StatusType::Failed => "FAILED",
            StatusType::Fault => "FAULT",
            StatusType::TimedOut => "TIMED_OUT",
            StatusType::InProgress => "IN_PROGRESS",
            StatusType::Stopped => "STOPPED",
        }
    }
}

impl std::fmt::Display for StatusType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// CodeBuild's `PhaseContext`: why a phase ended as it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseContext {
    pub status_code: String,
    pub message: String,
}

/// CodeBuild's `BuildPhase`. A phase in progress has no status, end or duration yet; COMPLETED never has them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildPhase {
    pub phase_type: PhaseType,
    pub phase_status: Option<StatusType>,
    pub start_time: Timestamp,
    pub end_time: Option<Timestamp>,
    pub duration_in_seconds: Option<i64>,
    pub contexts: Vec<PhaseContext>,
}

/// Who and what a build is, for the `CODEBUILD_*` variables.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildIdentity {
    /// `<project>:<uuid>` (`CODEBUILD_BUILD_ID`).
    pub build_id: String,
    /// `arn:aws:codebuild:<region>:<account>:build/<id>` (`CODEBUILD_BUILD_ARN`).
    pub build_arn: String,
    /// The project's build counter (`CODEBUILD_BUILD_NUMBER`).
    pub build_number: u64,
    /// The user name, `codepipeline/<pipeline>`, or `GitHub-Hookshot/<id>`-like webhook name
    /// (`CODEBUILD_INITIATOR`).
    pub initiator: String,
    /// What was asked for: a commit, branch, tag or `pr/<n>` (`CODEBUILD_SOURCE_VERSION`).
    pub source_version: Option<String>,
    /// The repository's URL (`CODEBUILD_SOURCE_REPO_URL`).
    pub source_repo_url: Option<String>,
}

/// One build to run.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub identity: BuildIdentity,
    pub buildspec: Buildspec,
    /// The workspace the source is checked out into and the commands start in (`CODEBUILD_SRC_DIR`). It is
    /// created if missing.
    pub source_dir: PathBuf,
    /// Variables over the buildspec's: the project's, StartBuild overrides, `CODEBUILD_WEBHOOK_*`, in order
    /// (a later entry wins).
    pub env: Vec<(String, String)>,
    /// The whole build's time limit (`timeoutInMinutes`).
    pub timeout: Duration,
    /// Bytes of output kept per phase (head and tail).
    pub log_limit: usize,
    /// When the build was submitted (StartBuild or the webhook), for SUBMITTED and QUEUED; `None` means now.
    pub submitted_at: Option<Timestamp>,
    /// Where the phases' commands run.
    pub executor: Executor,
    /// Where the phases' process groups are written down while they run ([`exec::ProcessRegistry`]).
    pub registry: Option<exec::ProcessRegistry>,
}

/// What a source step produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Downloaded {
    /// The commit the build runs (`resolvedSourceVersion`, `CODEBUILD_RESOLVED_SOURCE_VERSION`).
    pub resolved_source_version: Option<String>,
    /// A line for the build log, e.g. the commit's subject.
    pub summary: Option<String>,
}

/// The DOWNLOAD_SOURCE step: puts the source into `dest` within `timeout`. An `Err` is the message for the
/// phase's context and the log (git's own message with [`GitSource`]). The future may be dropped when the
/// build is stopped or times out, so it must not leave work running when dropped (git's does not).
#[async_trait]
pub trait SourceStep: Send + Sync {
    async fn download(&self, dest: &Path, timeout: Duration) -> Result<Downloaded, String>;
}

/// Checks out `revision` of `url` with the system git ([`crate::git::checkout_with_env`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GitSource {
    pub url: String,
    /// A commit, branch or tag; `None` for the remote's default branch.
    pub revision: Option<String>,
    /// Extra variables for git (e.g. `GIT_CONFIG_GLOBAL`).
    pub extra_env: Vec<(String, String)>,
}

#[async_trait]
impl SourceStep for GitSource {
    async fn download(&self, dest: &Path, timeout: Duration) -> Result<Downloaded, String> {
        let env: Vec<(&str, &str)> = self.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let checkout = crate::git::checkout_with_env(&self.url, self.revision.as_deref(), dest, timeout, &env)
            .await
            .map_err(|e| e.to_string())?;
        let subject = checkout.message.as_deref().and_then(|m| m.lines().next()).unwrap_or("").to_string();
        Ok(Downloaded {
            summary: Some(format!("checked out {} {subject}", checkout.commit).trim_end().to_string()),
            resolved_source_version: Some(checkout.commit),
        })
    }
}

/// A source step that downloads nothing (`NO_SOURCE`; or a caller that put the source in place itself).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSource;

#[async_trait]
impl SourceStep for NoSource {
    async fn download(&self, _dest: &Path, _timeout: Duration) -> Result<Downloaded, String> {
        Ok(Downloaded::default())
    }
}

/// A source step from a closure: `FnSource(|dest, timeout| async move { ... })`.
pub struct FnSource<F>(pub F);

#[async_trait]
impl<F, Fut> SourceStep for FnSource<F>
where
    F: Fn(PathBuf, Duration) -> Fut + Send + Sync,
    Fut: Future<Output = Result<Downloaded, String>> + Send,
{
    async fn download(&self, dest: &Path, timeout: Duration) -> Result<Downloaded, String> {
        (self.0)(dest.to_path_buf(), timeout).await
    }
}

/// Told of every phase transition: a phase started (its entry is last and has no status) or ended. `phases`
/// is the whole list so far, ready to store as the build's `phases`; its last entry is `currentPhase`.
#[async_trait]
pub trait PhaseObserver: Send + Sync {
    async fn phases_changed(&self, phases: &[BuildPhase]);
}

/// No observer.
#[async_trait]
impl PhaseObserver for () {
    async fn phases_changed(&self, _phases: &[BuildPhase]) {}
}

/// How a build ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutcome {
    /// SUCCEEDED, FAILED, FAULT, TIMED_OUT or STOPPED.
    pub build_status: StatusType,
    pub phases: Vec<BuildPhase>,
    pub resolved_source_version: Option<String>,
    pub log: String,
    /// Whether some phase's output was cut to `log_limit`.
    pub log_truncated: bool,
}

impl BuildOutcome {
    /// The phase of this type, if the build went through it.
    pub fn phase(&self, phase_type: PhaseType) -> Option<&BuildPhase> {
        self.phases.iter().find(|p| p.phase_type == phase_type)
    }
}

/// Runs one build. See the module documentation for the phases, the shell session, the environment and the
/// log. `stop` ends the build STOPPED; `log` receives the whole log so far while it grows.
pub async fn run_build(
    request: &BuildRequest,
    source: &dyn SourceStep,
    observer: &dyn PhaseObserver,
    stop: &CancellationToken,
    log: Option<&LogSink>,
) -> BuildOutcome {
    let mut run = Run {
        request,
        observer,
        stop,
        sink: log,
        phases: Vec::new(),
        log: String::new(),
        log_truncated: false,
        status: None,
        any_failed: false,
        deadline: deadline_after(request.timeout),
        network: Network::Shared,
    };
    let now = Timestamp::now();
    let submitted = request.submitted_at.unwrap_or(now).min(now);
    run.phases.push(ended(PhaseType::Submitted, submitted, submitted, StatusType::Succeeded, None));
    run.phases.push(ended(PhaseType::Queued, submitted, now, StatusType::Succeeded, None));
    run.observer.phases_changed(&run.phases).await;

    let resolved = run.body(source).await;
    let status = run.status.unwrap_or(if run.any_failed { StatusType::Failed } else { StatusType::Succeeded });

    run.begin(PhaseType::Finalizing).await;
    run.end(StatusType::Succeeded, None).await;
    run.phases.push(BuildPhase {
        phase_type: PhaseType::Completed,
        phase_status: None,
        start_time: Timestamp::now(),
        end_time: None,
        duration_in_seconds: None,
        contexts: Vec::new(),
    });
    run.line(&format!("Build {}", status.as_str()));
    run.observer.phases_changed(&run.phases).await;
    BuildOutcome {
        build_status: status,
        phases: run.phases,
        resolved_source_version: resolved,
        log: run.log,
        log_truncated: run.log_truncated,
    }
}

/// A phase that ended at once.
fn ended(
    phase_type: PhaseType,
    start: Timestamp,
    end: Timestamp,
    status: StatusType,
    context: Option<PhaseContext>,
) -> BuildPhase {
    BuildPhase {
        phase_type,
        phase_status: Some(status),
        start_time: start,
        end_time: Some(end),
        duration_in_seconds: Some(seconds_between(start, end)),
        contexts: context.into_iter().collect(),
    }
}

fn seconds_between(start: Timestamp, end: Timestamp) -> i64 {
    (end.millis() - start.millis()).max(0) / 1000
}

fn context(status_code: &str, message: impl Into<String>) -> PhaseContext {
    PhaseContext { status_code: status_code.to_string(), message: message.into() }
}

/// `timeout` from now, or far enough away to never fire when it is too large to add.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// How a command phase ended, before the transition rules.
enum PhaseEnd {
    Succeeded,
    Failed(PhaseContext),
    Ended(StatusType, PhaseContext),
}

/// The state of one running build.
struct Run<'a> {
    request: &'a BuildRequest,
    observer: &'a dyn PhaseObserver,
    stop: &'a CancellationToken,
    sink: Option<&'a LogSink>,
    phases: Vec<BuildPhase>,
    log: String,
    log_truncated: bool,
    /// Set when the build ended early: TIMED_OUT, STOPPED or FAULT.
    status: Option<StatusType>,
    any_failed: bool,
    deadline: Instant,
    /// What the variables ask for with `PIPEHOOK_NETWORK`.
    network: Network,
}

impl Run<'_> {
    /// PROVISIONING to UPLOAD_ARTIFACTS; returns the resolved source version.
    async fn body(&mut self, source: &dyn SourceStep) -> Option<String> {
        if self.stop.is_cancelled() {
            self.status = Some(StatusType::Stopped);
            return None;
        }
        // PROVISIONING: the workspace and the private state directory.
        self.begin(PhaseType::Provisioning).await;
        let mut asked: Vec<(String, String)> = self.request.buildspec.variables.clone();
        asked.extend(self.request.env.iter().cloned());
        match Network::from_env(&asked) {
            Ok(network) => self.network = network,
            Err(message) => {
                self.line(&message);
                self.any_failed = true;
                self.end(StatusType::Failed, Some(context("CLIENT_ERROR", message))).await;
                return None;
            }
        }
        let state = match self.provision().await {
            Ok(state) => state,
            Err(message) => {
                self.status = Some(StatusType::Fault);
                self.end(StatusType::Fault, Some(context("INTERNAL_ERROR", message))).await;
                return None;
            }
        };
        self.end(StatusType::Succeeded, None).await;

        // DOWNLOAD_SOURCE: the caller's step, bounded by the build's deadline and the stop token.
        self.begin(PhaseType::DownloadSource).await;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let download = tokio::select! {
            result = source.download(&self.request.source_dir, remaining) => Some(result),
            () = tokio::time::sleep_until(self.deadline) => None,
            () = self.stop.cancelled() => None,
        };
        let resolved = match download {
            Some(Ok(downloaded)) => {
                if let Some(summary) = &downloaded.summary {
                    self.line(summary);
                }
                self.end(StatusType::Succeeded, None).await;
                downloaded.resolved_source_version
            }
            Some(Err(message)) => {
                self.line(&format!("DOWNLOAD_SOURCE failed: {message}"));
                self.any_failed = true;
                self.end(StatusType::Failed, Some(context("CLIENT_ERROR", message))).await;
                return None;
            }
            None => {
                self.end_early().await;
                return None;
            }
        };

        let env = self.initial_env(resolved.as_deref());
        let request = self.request;
        let spec = &request.buildspec;
        let command_phases = [
            (PhaseType::Install, &spec.phases.install),
            (PhaseType::PreBuild, &spec.phases.pre_build),
            (PhaseType::Build, &spec.phases.build),
            (PhaseType::PostBuild, &spec.phases.post_build),
        ];
        let empty = Phase::default();
        let mut reached_build = false;
        for (phase_type, phase) in command_phases {
            let phase = phase.as_ref().unwrap_or(&empty);
            if phase_type == PhaseType::Build {
                reached_build = true;
            }
            self.begin(phase_type).await;
            let end = if phase.is_empty() {
                PhaseEnd::Succeeded
            } else {
                self.run_phase(phase_type, phase, &state, &env).await
            };
            match end {
                PhaseEnd::Succeeded => self.end(StatusType::Succeeded, None).await,
                PhaseEnd::Failed(ctx) => {
                    self.any_failed = true;
                    self.end(StatusType::Failed, Some(ctx)).await;
                    // ABORT: a failed INSTALL or PRE_BUILD skips everything up to FINALIZING; a failed BUILD
                    // or POST_BUILD goes on (POST_BUILD, then UPLOAD_ARTIFACTS), as CodeBuild does.
                    if phase.on_failure == OnFailure::Abort
                        && matches!(phase_type, PhaseType::Install | PhaseType::PreBuild)
                    {
                        return resolved;
                    }
                }
                PhaseEnd::Ended(status, ctx) => {
                    self.status = Some(status);
                    self.end(status, Some(ctx)).await;
                    return resolved;
                }
            }
        }
        if reached_build {
            self.begin(PhaseType::UploadArtifacts).await;
            self.end(StatusType::Succeeded, None).await;
        }
        drop(state);
        resolved
    }

    /// Creates the workspace and the state directory.
    async fn provision(&mut self) -> Result<StateDir, String> {
        let dir = &self.request.source_dir;
        crate::workspace::create_private_dir(dir)
            .await
            .map_err(|e| format!("could not create the workspace {}: {e}", dir.display()))?;
        let state = StateDir::create().await?;
        crate::workspace::write_private_file(&state.path.join("pwd"), format!("{}\n", dir.display()))
            .await
            .map_err(|e| format!("could not write to the state directory: {e}"))?;
        Ok(state)
    }

    /// Ends the running phase TIMED_OUT or STOPPED, whichever happened.
    async fn end_early(&mut self) {
        let (status, ctx) = if self.stop.is_cancelled() {
            (StatusType::Stopped, context("BUILD_STOPPED", "The build was stopped"))
        } else {
            (StatusType::TimedOut, context("BUILD_TIMED_OUT", "Build has timed out"))
        };
        self.status = Some(status);
        self.end(status, Some(ctx)).await;
    }

    /// The variables of the first command phase (see the module documentation for the order).
    fn initial_env(&self, resolved: Option<&str>) -> Vec<(String, String)> {
        let request = self.request;
        let id = &request.identity;
        let mut env: Vec<(String, String)> = request.buildspec.variables.clone();
        env.extend(request.env.iter().cloned());
        let start = self.phases.first().map_or(Timestamp::now(), |p| p.start_time);
        let system = [
            ("CODEBUILD_BUILD_ID", Some(id.build_id.clone())),
            ("CODEBUILD_BUILD_ARN", Some(id.build_arn.clone())),
            ("CODEBUILD_BUILD_NUMBER", Some(id.build_number.to_string())),
            ("CODEBUILD_INITIATOR", Some(id.initiator.clone())),
            ("CODEBUILD_SOURCE_VERSION", id.source_version.clone()),
            ("CODEBUILD_SOURCE_REPO_URL", id.source_repo_url.clone()),
            ("CODEBUILD_RESOLVED_SOURCE_VERSION", resolved.map(str::to_string)),
            ("CODEBUILD_SRC_DIR", Some(request.source_dir.display().to_string())),
            ("CODEBUILD_START_TIME", Some(start.millis().to_string())),
            ("CODEBUILD_CI", Some("true".to_string())),
            ("CODEBUILD_LOG_PATH", id.build_id.rsplit_once(':').map(|(_, uuid)| uuid.to_string())),
        ];
        env.extend(system.into_iter().filter_map(|(k, v)| Some((k.to_string(), v?))));
        // A later entry wins; keep one entry per name, at its last value, for a readable environment.
        let mut seen = std::collections::HashSet::new();
        let mut deduped: Vec<(String, String)> =
            env.into_iter().rev().filter(|(k, _)| seen.insert(k.clone())).collect();
        deduped.reverse();
        deduped
    }

    /// Runs one command phase's script.
    async fn run_phase(
        &mut self,
        phase_type: PhaseType,
        phase: &Phase,
        state: &StateDir,
        env: &[(String, String)],
    ) -> PhaseEnd {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return PhaseEnd::Ended(StatusType::TimedOut, context("BUILD_TIMED_OUT", "Build has timed out"));
        }
        let failed_file = state.path.join("failed");
        let _ = tokio::fs::remove_file(&failed_file).await;
        let script = phase_script(phase_type, phase, self.request.buildspec.version, &state.path, !self.any_failed);
        let script_path = state.path.join(format!("{}.sh", phase_type.as_str().to_ascii_lowercase()));
        // The state folder is writable from the sandbox: whatever an earlier phase left at this name (a symbolic
        // link to a server file, say) goes first, so writing the script never follows it.
        remove_entry(&script_path).await;
        if let Err(e) = crate::workspace::write_private_file(&script_path, script).await {
            return PhaseEnd::Ended(
                StatusType::Fault,
                context("INTERNAL_ERROR", format!("could not write the phase script: {e}")),
            );
        }
        // Until a phase has saved its variables, the process gets the initial environment; afterwards the
        // script restores the saved one, so a variable a phase unset stays unset.
        let saved = tokio::fs::try_exists(state.path.join("env")).await.unwrap_or(false);
        let spec = CommandSpec {
            command: format!(
                "exec {} {}",
                self.request.buildspec.shell.program(),
                quote(&script_path.display().to_string())
            ),
            workdir: self.request.source_dir.clone(),
            env: if saved { Vec::new() } else { env.to_vec() },
            timeout: remaining,
            log_limit: self.request.log_limit,
            executor: self.request.executor.clone(),
            writable: vec![state.path.clone()],
            network: self.network,
            registry: self.request.registry.clone(),
        };
        let result = self.run_command(&spec).await;
        match result.outcome {
            Outcome::Succeeded => PhaseEnd::Succeeded,
            Outcome::TimedOut => {
                PhaseEnd::Ended(StatusType::TimedOut, context("BUILD_TIMED_OUT", "Build has timed out"))
            }
            Outcome::Stopped => PhaseEnd::Ended(StatusType::Stopped, context("BUILD_STOPPED", "The build was stopped")),
            Outcome::SpawnFailed(message) => PhaseEnd::Ended(StatusType::Fault, context("INTERNAL_ERROR", message)),
            Outcome::Failed { exit_code, signal } => {
                let reason = match (exit_code, signal) {
                    (Some(code), _) => format!("exit status {code}"),
                    (None, Some(signal)) => format!("killed by signal {signal}"),
                    (None, None) => "unknown exit status".to_string(),
                };
                let message = match read_state_file(&failed_file).await {
                    Ok(text) => {
                        let (code, command) = text.split_once('\n').unwrap_or((text.as_str(), ""));
                        format!(
                            "Error while executing command: {}. Reason: exit status {}",
                            command.trim_end(),
                            code.trim()
                        )
                    }
                    Err(_) => format!("Error while executing the {} phase. Reason: {reason}", phase_type.as_str()),
                };
                PhaseEnd::Failed(context("COMMAND_EXECUTION_ERROR", message))
            }
        }
    }

    /// Runs a command, forwarding its log into the build's log as it grows.
    async fn run_command(&mut self, spec: &CommandSpec) -> CommandResult {
        let Some(outer) = self.sink else {
            let result = exec::run(spec, self.stop, None).await;
            self.append_output(&result);
            return result;
        };
        let (inner, mut snapshots) = LogSink::new();
        let prefix = self.log.clone();
        let run = exec::run(spec, self.stop, Some(&inner));
        tokio::pin!(run);
        let result = loop {
            tokio::select! {
                result = &mut run => break result,
                changed = snapshots.changed() => {
                    if changed.is_err() {
                        break (&mut run).await;
                    }
                    let snapshot = snapshots.borrow_and_update().clone();
                    outer.publish(format!("{prefix}{snapshot}"));
                }
            }
        };
        self.append_output(&result);
        result
    }

    fn append_output(&mut self, result: &CommandResult) {
        self.log.push_str(&result.log);
        if !result.log.is_empty() && !result.log.ends_with('\n') {
            self.log.push('\n');
        }
        self.log_truncated |= result.truncated;
        self.publish();
    }

    /// Appends one `[Container]` line to the log.
    fn line(&mut self, text: &str) {
        self.log.push_str(&format!("[Container] {} {text}\n", Timestamp::now().to_rfc3339()));
        self.publish();
    }

    fn publish(&self) {
        if let Some(sink) = self.sink {
            sink.publish(self.log.clone());
        }
    }

    /// Starts a phase: logs it and tells the observer.
    async fn begin(&mut self, phase_type: PhaseType) {
        self.line(&format!("Entering phase {phase_type}"));
        self.phases.push(BuildPhase {
            phase_type,
            phase_status: None,
            start_time: Timestamp::now(),
            end_time: None,
            duration_in_seconds: None,
            contexts: Vec::new(),
        });
        self.observer.phases_changed(&self.phases).await;
    }

    /// Ends the running phase: logs it and tells the observer.
    async fn end(&mut self, status: StatusType, ctx: Option<PhaseContext>) {
        let now = Timestamp::now();
        let Some(phase) = self.phases.last_mut() else { return };
        phase.phase_status = Some(status);
        phase.end_time = Some(now);
        phase.duration_in_seconds = Some(seconds_between(phase.start_time, now));
        phase.contexts = ctx.into_iter().collect();
        let phase_type = phase.phase_type;
        let (code, message) = phase
            .contexts
            .first()
            .map_or((String::new(), String::new()), |c| (c.status_code.clone(), c.message.clone()));
        self.line(&format!("Phase complete: {phase_type} State: {status}"));
        self.line(&format!("Phase context status code: {code} Message: {message}"));
        self.observer.phases_changed(&self.phases).await;
    }
}

/// The private directory a build's phase scripts and saved shell state live in, outside the workspace so
/// nothing of it reaches the source tree; removed when dropped. Mode 0700 and its files 0600: the saved state
/// holds the build's exported variables, secrets included.
struct StateDir {
    path: PathBuf,
}

impl StateDir {
    async fn create() -> Result<StateDir, String> {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("pipehook-build-{}", uuid::Uuid::new_v4()));
        // Created 0700 (never recursive: a fresh name, so nobody else made it first), then set to 0700 in case
        // the umask took bits away.
        let created = async {
            tokio::fs::DirBuilder::new().mode(crate::workspace::PRIVATE_DIR_MODE).create(&path).await?;
            tokio::fs::set_permissions(&path, std::fs::Permissions::from_mode(crate::workspace::PRIVATE_DIR_MODE)).await
        };
        created.await.map_err(|e| format!("could not create the build's state directory {}: {e}", path.display()))?;
        Ok(StateDir { path })
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Removes whatever is at `path`, a symbolic link itself rather than what it points to.
async fn remove_entry(path: &Path) {
    match tokio::fs::symlink_metadata(path).await {
        Ok(meta) if meta.is_dir() => {
            let _ = tokio::fs::remove_dir_all(path).await;
        }
        Ok(_) => {
            let _ = tokio::fs::remove_file(path).await;
        }
        Err(_) => {}
    }
}

/// The most of a state file pipehook reads (the failed command's line).
const STATE_FILE_LIMIT: u64 = 16 * 1024;

/// A file a phase's script left in the state folder, read by pipehook outside the sandbox: only a regular file
/// (not a symbolic link to a server file, not a FIFO that would block), and at most [`STATE_FILE_LIMIT`] bytes.
/// Nothing of the phase runs any more when this is read (its sandbox ended with it), so nothing can swap the
/// file between the check and the read.
async fn read_state_file(path: &Path) -> std::io::Result<String> {
    use tokio::io::AsyncReadExt;
    let meta = tokio::fs::symlink_metadata(path).await?;
    if !meta.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut bytes = Vec::new();
    tokio::fs::File::open(path).await?.take(STATE_FILE_LIMIT).read_to_end(&mut bytes).await?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `text` as one single-quoted shell word.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The script of one command phase. Its variables are prefixed `__phk_` to stay out of the commands' way.
///
/// Its stderr goes to its stdout (`exec 2>&1`), so the log keeps each command's output in order after its
/// `Running command` line: two pipes read concurrently do not keep the order of writes across them.
/// It restores the state the previous phase saved (exported variables, working directory), runs `commands`
/// until one fails, then `finally` until one fails. On exit, also through a command's own `exit`, it runs
/// `finally` if that has not run yet, records the first failed command with its status in `failed`, and saves
/// the state for the next phase.
fn phase_script(
    phase_type: PhaseType,
    phase: &Phase,
    version: BuildspecVersion,
    state: &Path,
    succeeding: bool,
) -> String {
    let state = quote(&state.display().to_string());
    let run = match version {
        BuildspecVersion::V0_2 => "eval \"$__phk_current\"",
        // 0.1: each command in its own shell, starting in the source directory.
        BuildspecVersion::V0_1 => "(cd \"$CODEBUILD_SRC_DIR\" && eval \"$__phk_current\")",
    };
    let step = |var: &str, command: &str| {
        format!(
            "if [ \"${var}\" -eq 0 ]; then\n\
             \x20 __phk_current={command}\n\
             \x20 printf '[Container] Running command %s\\n' \"$__phk_current\"\n\
             \x20 {run}\n\
             \x20 {var}=$?\n\
             \x20 if [ \"${var}\" -ne 0 ]; then\n\
             \x20   printf '\\n[Container] Command did not exit successfully %s exit status %s\\n' \"$__phk_current\" \"${var}\"\n\
             \x20   __phk_fail \"${var}\" \"$__phk_current\"\n\
             \x20 fi\n\
             fi\n",
            command = quote(command),
        )
    };
    let mut s = format!(
        "# pipehook: buildspec phase {phase_type}\n\
         exec 2>&1\n\
         __phk_state={state}\n\
         if [ -f \"$__phk_state/env\" ]; then . \"$__phk_state/env\"; fi\n\
         __phk_dir=$(cat \"$__phk_state/pwd\" 2>/dev/null)\n\
         if [ -n \"$__phk_dir\" ] && ! cd \"$__phk_dir\" 2>/dev/null; then\n\
         \x20 printf '[Container] The working directory %s is gone; starting in %s\\n' \"$__phk_dir\" \"$CODEBUILD_SRC_DIR\"\n\
         \x20 cd \"$CODEBUILD_SRC_DIR\" || exit 1\n\
         fi\n\
         export CODEBUILD_BUILD_SUCCEEDING={succeeding}\n\
         __phk_current=''\n\
         __phk_rc=0\n\
         __phk_finally_done=0\n\
         __phk_fail() {{ [ -f \"$__phk_state/failed\" ] || (umask 077; printf '%s\\n%s' \"$1\" \"$2\" > \"$__phk_state/failed\"); }}\n",
        succeeding = u8::from(succeeding),
    );
    s.push_str("__phk_finally() {\n__phk_finally_done=1\n__phk_frc=0\n");
    for command in &phase.finally {
        s.push_str(&step("__phk_frc", command));
    }
    s.push_str("if [ \"$__phk_rc\" -eq 0 ]; then __phk_rc=$__phk_frc; fi\n}\n");
    s.push_str(
        "__phk_exit() {\n\
         \x20 __phk_status=$?\n\
         \x20 if [ \"$__phk_status\" -ne 0 ]; then __phk_fail \"$__phk_status\" \"$__phk_current\"; fi\n\
         \x20 if [ \"$__phk_rc\" -eq 0 ]; then __phk_rc=$__phk_status; fi\n\
         \x20 if [ \"$__phk_finally_done\" -eq 0 ]; then __phk_finally; fi\n\
         \x20 (umask 077; export -p > \"$__phk_state/env.next\" && mv \"$__phk_state/env.next\" \"$__phk_state/env\"; pwd > \"$__phk_state/pwd\")\n\
         \x20 exit \"$__phk_rc\"\n\
         }\n\
         trap __phk_exit EXIT\n",
    );
    for command in &phase.commands {
        s.push_str(&step("__phk_rc", command));
    }
    s.push_str("__phk_finally\n__phk_current=''\nexit \"$__phk_rc\"\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_scripts_parse_in_both_shells() {
        let phase = Phase {
            commands: vec!["echo 'it''s'".into(), "if true; then\n  echo multi\nfi\n".into(), "exit 0".into()],
            finally: vec!["echo \"$HOME\" # comment".into()],
            on_failure: crate::buildspec::OnFailure::Abort,
        };
        for version in [BuildspecVersion::V0_2, BuildspecVersion::V0_1] {
            for with_finally in [true, false] {
                let mut phase = phase.clone();
                if !with_finally {
                    phase.finally.clear();
                }
                let script = phase_script(PhaseType::Build, &phase, version, Path::new("/tmp/it's here"), true);
                for shell in ["/bin/sh", "bash"] {
                    let out = std::process::Command::new(shell).arg("-n").arg("-c").arg(&script).output().unwrap();
                    assert!(out.status.success(), "{shell}: {}\n{script}", String::from_utf8_lossy(&out.stderr));
                }
            }
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn wire_names() {
        let phase = ended(
            PhaseType::PreBuild,
            Timestamp(1_000),
            Timestamp(3_500),
            StatusType::TimedOut,
            Some(context("BUILD_TIMED_OUT", "x")),
        );
        assert_eq!(
            serde_json::to_value(&phase).unwrap(),
            serde_json::json!({
                "phaseType": "PRE_BUILD", "phaseStatus": "TIMED_OUT", "startTime": 1000, "endTime": 3500,
                "durationInSeconds": 2, "contexts": [{"statusCode": "BUILD_TIMED_OUT", "message": "x"}],
            })
        );
        for p in [PhaseType::Submitted, PhaseType::DownloadSource, PhaseType::UploadArtifacts, PhaseType::Completed] {
            assert_eq!(serde_json::to_value(p).unwrap(), serde_json::json!(p.as_str()));
        }
        for s in [StatusType::Succeeded, StatusType::InProgress, StatusType::Fault] {
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
    }
}
