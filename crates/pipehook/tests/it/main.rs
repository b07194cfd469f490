//! pipehook's integration tests: the real server on a real socket with a real database, called over HTTP,
//! with the official AWS SDK, and as the real binary.

mod abuse;
mod auth;
mod aws;
mod backup;
mod cli_ux;
mod codebuild;
mod codebuild_cli;
mod codebuild_githost;
mod fairness;
mod faults;
mod first_day;
mod hardening;
mod lifecycle;
mod limits;
mod native_pipelines;
mod outbound;
mod outbound_cli;
mod outbound_fidelity;
mod pipelines;
mod quickstart;
mod recovery;
mod sandbox;
mod supervision;
mod support;
mod webhooks;
mod webhooks_cli;
mod worker;
