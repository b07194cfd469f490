use pipehook_domain::secret::MasterKey;
use pipehook_store::Store;
use std::sync::Arc;

use crate::metrics::Metrics;

/// What the HTTP layer needs to know of the configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Region used in ARNs and required in SigV4 credential scopes.
    pub aws_region: String,
    /// Base URL written into generated trigger URLs, without a trailing slash.
    pub public_url: String,
    /// Largest request body the management APIs accept.
    pub max_body_bytes: usize,
    /// Largest trigger request body.
    pub trigger_max_body_bytes: usize,
    /// Use the first `X-Forwarded-For` hop as the caller's address (behind a trusted proxy only).
    pub trust_forwarded_for: bool,
    /// How long a replaced webhook secret stays valid.
    pub secret_rotation_overlap: std::time::Duration,
    /// GitHub-compatible REST API base URL (RegisterWebhookWithThirdParty, CodeBuild webhooks).
    pub github_api_url: String,
    /// GitLab REST API v4 base URL (CodeBuild webhooks of GitLab projects).
    pub gitlab_api_url: String,
    /// Bitbucket Cloud API 2.0 base URL (CodeBuild webhooks of Bitbucket projects).
    pub bitbucket_api_url: String,
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub master_key: MasterKey,
    pub config: Arc<ApiConfig>,
    pub metrics: Arc<Metrics>,
    /// Publishing, ping and redelivery of outbound webhooks.
    pub outbound: Arc<pipehook_outbound::Outbound>,
    /// Loaded pipeline webhooks for the trigger path.
    pub inbound_cache: Arc<crate::inbound::LoadCache>,
    /// Rule evaluation slots and budgets, and the rate of logged unauthenticated requests.
    pub inbound_guard: Arc<crate::inbound::InboundGuard>,
    /// Request body bytes held in memory at once, and how long reading one may take.
    pub bodies: crate::server::BodyBudget,
    /// The per-organization cap on queued runs.
    pub admission: Arc<crate::admission::Admission>,
}
