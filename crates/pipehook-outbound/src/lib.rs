//! pipehook's outbound webhooks: what happens (builds, deploys, pipeline executions, and events other systems
//! publish) reported to subscribed URLs, reliably.
//!
//! - [`kinds`]: the event kinds and groups a hook subscribes to. [`hook`]: the rules for a hook's fields.
//! - [`Outbound`]: publishing (an event and one delivery per matching active hook, with their jobs, in one
//!   transaction), the `outbound.delivery` job handler (sign, send, log the attempt, retry on the schedule,
//!   deactivate on 410 or after failing too long), redelivery and ping.
//! - [`ssrf`]: the address policy, enforced inside the HTTP client's resolver. [`sign`]: Pulumi and Standard
//!   Webhooks signatures. [`format`]: raw, Slack, Teams and Pulumi Deployments bodies.
//! - [`relay`]: turns recorded run transitions (`run_events`) into outbound events, exactly once.
//!
//! It must never know HTTP server frameworks: the API calls [`Outbound`], the binary registers the handler.

pub mod deliver;
pub mod format;
pub mod hook;
pub mod kinds;
pub mod relay;
pub mod sign;
pub mod ssrf;

pub use deliver::{
    secret_context, HookSecret, Outbound, OutboundConfig, PublishError, PublishInput, PublishOutcome, JOB_KIND,
};
