//! pipehook's worker-side execution: everything that turns a pipeline action or a build into real
//! processes on a worker.
//!
//! Module map:
//!
//! - `companion`: background tasks beside a job step, stopped by asking and awaited, never aborted.
//! - [`exec`]: the process executor. [`exec::run`] runs one shell command in its own process group
//!   with a clean environment, a timeout, cooperative stop, and a bounded, interleaved log that a
//!   caller can watch while it grows ([`exec::LogSink`]).
//! - [`git`]: the checkout helper. [`git::checkout`] fetches one revision of a repository with the
//!   system `git` (so the operator's git configuration applies) and reports the resolved commit.
//!
//! - [`sandbox`]: the sandbox executor: every command in its own bubblewrap sandbox (namespaces, a
//!   read-only system, its workspace only, a clean environment, optional network isolation, resource limits).
//! - [`pipeline`]: the pipeline execution state machine: [`pipeline::start_execution`] and the
//!   [`pipeline::PipelineRunner`] job handler.
//! - [`buildspec`]: parses CodeBuild buildspec YAML (version 0.2 subset) into a [`buildspec::Buildspec`].
//! - [`codebuild`]: builds in the store: [`codebuild::start_build`] and the [`codebuild::BuildRunner`] job
//!   handler (`codebuild.build`), which runs [`build::run_build`] and records phases, log and outcome.
//! - [`build`]: runs one CodeBuild build of a buildspec: [`build::run_build`] walks CodeBuild's phases
//!   with real processes (through [`exec::run`]), a caller-supplied source step ([`build::GitSource`] for
//!   git), a timeout, a stop token, a log sink and a phase observer.
//! - [`workspace`]: where work happens on disk: paths from ids only, folders 0700, files 0600.

pub mod batch;
pub mod build;
pub mod buildspec;
pub mod codebuild;
mod companion;
pub mod exec;
pub mod git;
pub mod pipeline;
pub mod sandbox;
pub mod workspace;
