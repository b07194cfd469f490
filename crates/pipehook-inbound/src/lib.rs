//! pipehook's inbound engine: a trigger request in, a verdict out. Pure: no I/O, no async, no HTTP framework,
//! no database, so every rule here is tested with plain values and real provider payloads.
//!
//! - [`auth`]: authenticates a request (`GITHUB_HMAC` signatures with secret rotation, `IP` ranges behind an
//!   optionally trusted proxy, `UNAUTHENTICATED`).
//! - [`rules`]: CodePipeline filter rules (RFC 9535 JSONPath + `matchEquals` with `{Key}` placeholders),
//!   compiled at PutWebhook and evaluated per request, each outcome kept for `explain`.
//! - [`event`]: normalizes GitHub (and GitHub Enterprise), GitLab and Bitbucket Cloud payloads into one
//!   [`SourceEvent`] (with its CodeBuild event type and every value CodeBuild filters on), and reads the
//!   provider's delivery id for deduplication.
//! - [`filter_groups`]: CodeBuild webhook `filterGroups` and the legacy `branchFilter`, validated per source
//!   provider at CreateWebhook and evaluated per delivery into an [`filter_groups::Evaluation`] that explains
//!   every group and filter.
//!
//! The HTTP layer runs them in that order: authenticate, dedupe by [`delivery_id`], skip pings, evaluate the
//! rules; the verdict is that every [`RuleOutcome`] passed. For a CodeBuild project webhook the last step is
//! [`filter_groups::evaluate`] on the normalized event instead, and the verdict is [`filter_groups::Evaluation::passed`].

pub mod auth;
pub mod event;
pub mod filter_groups;
pub mod rules;

pub use auth::{authenticate, parse_cidr, AuthOutcome, Authentication};
pub use event::{delivery_id, normalize, CodeBuildEvent, Provider, SourceEvent};
/// Re-exported so callers can hold an [`Authentication::Ip`] range without depending on `ipnet` themselves.
pub use ipnet::IpNet;
pub use rules::{compile, evaluate, CompiledRule, Rule, RuleError, RuleOutcome};
