//! The `pipehook` binary's library: everything but `main`.
//!
//! - [`config`]: layered configuration (defaults, file, environment, flags), validated up front.
//! - [`app`]: the composition root, [`app::run`]`(config, listener, shutdown)`, which tests call directly.
//! - [`worker`]: the worker pool that runs queued jobs through their kind's [`pipehook_store::JobHandler`].
//! - [`bootstrap`]: declared and first-start credentials.
//! - [`cli`]: the command line.
//! - [`installation`]: whether an installation exists where the configuration points (admin commands refuse
//!   to create one by accident); [`backup`]: `pipehook backup` and `pipehook db copy`.
//! - [`client`]: the client commands, which call a running server's REST API.
//! - [`telemetry`]: logging setup.
//! - [`files`]: the modes of what pipehook keeps on disk (folders 0700, files 0600).
//! - [`secrets_env`]: secrets given by environment, read once and removed from the process's environment.

pub mod app;
pub mod backup;
pub mod bootstrap;
pub mod cli;
pub mod client;
pub mod config;
pub mod files;
pub mod installation;
pub mod secrets_env;
pub mod telemetry;
pub mod worker;

pub use app::run;
