//! pipehook's domain: the names, ids and rules every other crate shares.
//!
//! Pure data and rules: nothing here performs I/O or knows about HTTP or databases.
//!
//! - [`org`]: organization names and AWS account ids.
//! - [`pipeline`]: CodePipeline pipeline declarations (the AWS JSON shapes) and the rules `CreatePipeline` applies.
//! - [`credentials`]: REST API tokens and AWS-style access key pairs (generation, parsing, hashing).
//! - [`secret`]: [`secret::Secret`], a wrapper whose `Debug` never prints the value, and
//!   [`secret::MasterKey`], which encrypts secrets at rest.
//! - [`time`]: [`time::Timestamp`], milliseconds since the Unix epoch, the one time type in storage.

pub mod credentials;
pub mod org;
pub mod pipeline;
pub mod secret;
pub mod time;

/// A value failed its domain rule. The message names the rule, never the value when it may be secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

impl InvalidValue {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}
