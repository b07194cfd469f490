//! The inbound side over HTTP: the trigger URLs git hosts call (`POST /trigger?t=...&v=1`), and the native
//! REST routes that show what happened to each request (the inbound log), replay one, or explain how a
//! payload would fare without starting anything.
//!
//! The decisions themselves are `pipehook-inbound`'s (authentication, rules, payload normalization); this
//! module loads the webhook, calls it, and records the request, its verdict and any execution it starts in
//! one transaction before answering.

mod build_trigger;
mod limits;
mod log;
mod trigger;

use axum::routing::{get, post};
use axum::Router;
use pipehook_domain::pipeline::PipelineDeclaration;
use pipehook_domain::time::Timestamp;
use pipehook_inbound::auth::Authentication;
use pipehook_inbound::event::SourceEvent;
use pipehook_inbound::rules::{CompiledRule, RuleOutcome};
use pipehook_store::{PipelineRecord, StoreError, WebhookRecord};
use serde_json::{json, Value};
use std::collections::BTreeMap;

use crate::aws::codepipeline::webhooks::secret_context;
use crate::AppState;

pub use build_trigger::routes as build_trigger_routes;
pub use limits::{record_dropped, write_dropped, InboundGuard, InboundLimits};
pub use trigger::routes as trigger_routes;

/// `/api/orgs/{org}/...` routes of the inbound log and explain.
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/orgs/{org}/inbound", get(log::list))
        .route("/orgs/{org}/inbound/{id}", get(log::get))
        .route("/orgs/{org}/inbound/{id}/replay", post(log::replay))
        .route("/orgs/{org}/webhooks/{name}/explain", post(log::explain))
        .route("/orgs/{org}/projects/{name}/explain", post(build_trigger::explain))
        .route("/orgs/{org}/builds/{id}/logs", get(build_trigger::build_logs))
}

/// The id the request-id layer gave this request (always a fresh UUID of ours, never the client's), or a new
/// one where no layer ran.
pub(crate) fn request_id(rid: Option<axum::Extension<tower_http::request_id::RequestId>>) -> String {
    rid.and_then(|axum::Extension(r)| r.header_value().to_str().ok().map(str::to_owned))
        .filter(|id| uuid::Uuid::parse_str(id).is_ok())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// What a trigger URL answered, for metrics: the answer's `result`, or a name for answers without one.
#[derive(Debug, Clone)]
pub struct TriggerResult(pub &'static str);

/// A trigger URL's JSON answer.
pub(crate) fn answer(status: axum::http::StatusCode, body: Value) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    // A fixed set of names, so the metric's label space stays bounded whatever a handler writes.
    let result = match (body["result"].as_str(), status) {
        (Some("triggered"), _) => "triggered",
        (Some("filtered"), _) => "filtered",
        (Some("duplicate"), _) => "duplicate",
        (Some("unauthenticated"), _) => "unauthenticated",
        (Some("rejected"), _) => "rejected",
        (Some(_), _) => "other",
        (None, StatusCode::NOT_FOUND) => "not_found",
        (None, StatusCode::PAYLOAD_TOO_LARGE) => "too_large",
        (None, s) if s.is_server_error() => "unavailable",
        (None, _) => "other",
    };
    let mut response = if status.is_client_error() || status.is_server_error() {
        crate::with_request_id(status, body)
    } else {
        (status, axum::Json(body)).into_response()
    };
    response.extensions_mut().insert(TriggerResult(result));
    response
}

/// Unknown or deleted token: nothing revealed.
pub(crate) fn not_found() -> axum::response::Response {
    answer(axum::http::StatusCode::NOT_FOUND, json!({"message": "Not Found"}))
}

/// A 5xx makes the git host retry the delivery later: nothing was accepted.
pub(crate) fn unavailable() -> axum::response::Response {
    answer(axum::http::StatusCode::SERVICE_UNAVAILABLE, json!({"message": "Service Unavailable: retry later"}))
}

/// The token from `?t=`: a missing, empty or implausibly long one is an unknown token (404, body unread).
pub(crate) fn trigger_token(token: Option<String>) -> Option<String> {
    token.filter(|t| !t.is_empty() && t.len() <= 128)
}

/// The body, read up to the trigger cap within the server's body timeout and in-memory budget. Called only
/// once the token named a webhook, so unknown tokens never make pipehook buffer anything.
pub(crate) async fn read_trigger_body(
    state: &AppState,
    headers: &http::HeaderMap,
    body: axum::body::Body,
) -> Result<(axum::body::Bytes, crate::server::BodyPermit), axum::response::Response> {
    use crate::server::BodyError;
    use axum::http::StatusCode;
    let cap = state.config.trigger_max_body_bytes;
    state.bodies.read(headers, body, cap).await.map_err(|e| match e {
        BodyError::TooLarge(cap) => {
            answer(StatusCode::PAYLOAD_TOO_LARGE, json!({"message": format!("Payload Too Large: the limit is {cap} bytes")}))
        }
        BodyError::Timeout => answer(
            StatusCode::REQUEST_TIMEOUT,
            json!({"message": format!("Request Timeout: the body was not received within {} s", state.bodies.read_timeout.as_secs())}),
        ),
        BodyError::Broken(reason) => answer(StatusCode::BAD_REQUEST, json!({"message": format!("Bad Request: {reason}")})),
    })
}

/// The JSON document a delivery (or a logged one, or a payload to explain) carries: the body itself, or the
/// `payload` field of a form-encoded body, as GitHub sends by default.
pub(crate) fn parse_payload(headers: &http::HeaderMap, body: &[u8]) -> Result<Value, String> {
    use pipehook_inbound::event::{json_values, MAX_JSON_VALUES};
    let json = pipehook_inbound::event::json_payload(headers, body)?;
    // Counted before parsing: a parsed value takes many times its text, so the count bounds the memory.
    let values = json_values(&json);
    if values > MAX_JSON_VALUES {
        return Err(format!("the document holds about {values} values; at most {MAX_JSON_VALUES} are read"));
    }
    serde_json::from_slice(&json).map_err(|e| e.to_string())
}

/// Delivery ids are remembered this long: a redelivery within it starts nothing.
pub const DEDUPE_WINDOW: std::time::Duration = std::time::Duration::from_secs(72 * 3600);

/// Bodies are kept in the log up to this size.
pub const LOGGED_BODY_BYTES: usize = 64 * 1024;

/// Headers worth keeping with a logged request (never secrets or signatures).
const LOGGED_HEADERS: [&str; 11] = [
    "content-type",
    "user-agent",
    "x-github-event",
    "x-github-delivery",
    "x-github-hook-id",
    "x-gitlab-event",
    "x-gitlab-event-uuid",
    "x-event-key",
    "x-request-uuid",
    "x-forwarded-for",
    "x-hub-signature-256",
];

pub(crate) fn logged_headers(headers: &http::HeaderMap) -> Value {
    let mut m = serde_json::Map::new();
    for name in LOGGED_HEADERS {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            // A signature is not a secret, but only its presence matters for debugging.
            let v = if name == "x-hub-signature-256" { "(present)" } else { v };
            m.insert(name.to_owned(), Value::from(v));
        }
    }
    Value::Object(m)
}

/// The body as logged: UTF-8 (lossy), NUL characters replaced by U+FFFD (PostgreSQL's text cannot hold them, and
/// both backends must keep the same log and give the same verdicts), capped on a character boundary.
pub(crate) fn logged_body(body: &[u8]) -> (String, bool) {
    let truncated = body.len() > LOGGED_BODY_BYTES;
    let slice = &body[..body.len().min(LOGGED_BODY_BYTES)];
    let mut text = String::from_utf8_lossy(slice).replace('\0', "\u{FFFD}");
    if truncated {
        while text.len() > LOGGED_BODY_BYTES {
            text.pop();
        }
    }
    (text, truncated)
}

/// Everything needed to judge requests for one webhook.
pub(crate) struct Loaded {
    pub webhook: WebhookRecord,
    pub pipeline: PipelineRecord,
    pub rules: Vec<CompiledRule>,
    pub auth: Authentication,
    /// The organization's AWS account id, for the webhook's ARN.
    pub account_id: String,
}

#[derive(Debug)]
pub(crate) enum LoadError {
    /// The webhook's pipeline or rules no longer make sense (e.g. the target action was removed).
    Broken(String),
    Store(StoreError),
}

impl From<StoreError> for LoadError {
    fn from(e: StoreError) -> Self {
        LoadError::Store(e)
    }
}

pub(crate) async fn load(state: &AppState, webhook: WebhookRecord) -> Result<Loaded, LoadError> {
    let account_id = state
        .store
        .org_by_id(webhook.org)
        .await?
        .map(|o| o.account_id.to_string())
        .ok_or_else(|| LoadError::Broken("the organization no longer exists".into()))?;
    let pipeline = state
        .store
        .pipeline(webhook.org, &webhook.pipeline_name)
        .await?
        .ok_or_else(|| LoadError::Broken("the target pipeline no longer exists".into()))?;
    let decl: PipelineDeclaration = serde_json::from_value(pipeline.declaration.clone())
        .map_err(|e| LoadError::Broken(format!("stored pipeline does not parse: {e}")))?;
    let target = webhook.definition["targetAction"].as_str().unwrap_or_default().to_owned();
    let config: BTreeMap<String, String> = decl
        .stages
        .first()
        .and_then(|s| s.actions.iter().find(|a| a.name == target))
        .and_then(|a| a.configuration.clone())
        .ok_or_else(|| LoadError::Broken(format!("target action '{target}' is no longer in the source stage")))?;
    let filters: Vec<pipehook_inbound::rules::Rule> = webhook.definition["filters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| pipehook_inbound::rules::Rule {
            json_path: f["jsonPath"].as_str().unwrap_or_default().to_owned(),
            match_equals: f["matchEquals"].as_str().map(str::to_owned),
        })
        .collect();
    let rules =
        // Stored rules passed PutWebhook's checks when they were put; newer shape limits apply to new puts only.
        pipehook_inbound::rules::compile_stored(&filters, &crate::aws::codepipeline::secrets::without_secrets(&config))
            .map_err(|e| LoadError::Broken(e.to_string()))?;
    let auth = match webhook.definition["authentication"].as_str() {
        Some("GITHUB_HMAC") => {
            let mut secrets = Vec::new();
            let ctx = secret_context(webhook.org.0, &webhook.name);
            let now = Timestamp::now();
            let previous = webhook
                .previous_secret_ciphertext
                .as_ref()
                .filter(|_| webhook.previous_secret_expires_at.is_some_and(|t| t > now));
            for ct in webhook.secret_ciphertext.iter().chain(previous) {
                let plain = state
                    .master_key
                    .decrypt(&ctx, ct)
                    .map_err(|e| LoadError::Broken(format!("the webhook secret does not decrypt: {e}")))?;
                let s = String::from_utf8(plain)
                    .map_err(|_| LoadError::Broken("the webhook secret is not UTF-8".into()))?;
                secrets.push(pipehook_domain::secret::Secret::new(s));
            }
            Authentication::GithubHmac { secrets }
        }
        Some("IP") => {
            let range =
                webhook.definition["authenticationConfiguration"]["AllowedIPRange"].as_str().unwrap_or_default();
            Authentication::Ip { range: pipehook_inbound::auth::parse_cidr(range).map_err(LoadError::Broken)? }
        }
        _ => Authentication::Unauthenticated,
    };
    Ok(Loaded { webhook, pipeline, rules, auth, account_id })
}

/// Loaded webhooks by id, so the trigger path does not reload the pipeline and organization, re-parse the
/// declaration, recompile the rules and decrypt the secret on every request. An entry is used only while the
/// webhook row read for the request (always read: a deleted webhook's URL dies at once) still has the same
/// revision, update time, pipeline and pipeline version, and for at most [`LOAD_TTL`], which bounds how long
/// an expired rotation secret stays accepted.
#[derive(Default)]
pub struct LoadCache {
    entries: std::sync::Mutex<std::collections::HashMap<i64, (std::time::Instant, std::sync::Arc<Loaded>)>>,
}

pub const LOAD_TTL: std::time::Duration = std::time::Duration::from_secs(5);
const LOAD_CACHE_MAX: usize = 10_000;

impl LoadCache {
    pub(crate) async fn get(
        &self,
        state: &AppState,
        webhook: WebhookRecord,
    ) -> Result<std::sync::Arc<Loaded>, LoadError> {
        {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, l)) = entries.get(&webhook.id) {
                let w = &l.webhook;
                if at.elapsed() < LOAD_TTL
                    && w.revision == webhook.revision
                    && w.updated_at == webhook.updated_at
                    && w.pipeline_id == webhook.pipeline_id
                    && w.pipeline_version == webhook.pipeline_version
                {
                    return Ok(l.clone());
                }
            }
        }
        let id = webhook.id;
        let loaded = std::sync::Arc::new(load(state, webhook).await?);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= LOAD_CACHE_MAX {
            entries.retain(|_, (at, _)| at.elapsed() < LOAD_TTL);
            if entries.len() >= LOAD_CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(id, (std::time::Instant::now(), loaded.clone()));
        Ok(loaded)
    }

    /// Forgets a webhook (after a put or delete on this node, so the change applies at once here).
    pub fn forget(&self, webhook_id: i64) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(&webhook_id);
    }
}

/// The filter step's outcome for a payload.
pub(crate) struct Judgement {
    pub event: SourceEvent,
    pub rules: Vec<RuleOutcome>,
    pub passed: bool,
}

/// Normalizes the payload, then runs the rules off the async runtime within the evaluation budgets (see
/// `limits`); the payload goes to the evaluation thread, which also drops it.
pub(crate) async fn judge(state: &AppState, loaded: &Loaded, headers: &http::HeaderMap, payload: Value) -> Judgement {
    let event = pipehook_inbound::event::normalize(headers, &payload);
    let rules = state.inbound_guard.evaluate(&loaded.rules, payload).await;
    if let Some(error) = rules.iter().find_map(|r| r.error.as_deref()) {
        tracing::warn!(webhook = %loaded.webhook.name, %error, "a webhook rule was not evaluated to the end");
    }
    let passed = rules.iter().all(|r| r.passed);
    Judgement { event, rules, passed }
}

/// The first failing rule, for the log's `filtered` detail.
pub(crate) fn first_failure(rules: &[RuleOutcome]) -> Value {
    rules.iter().find(|r| !r.passed).map_or(Value::Null, |r| json!(r))
}

/// What the runner needs to know of the revision a trigger carries.
pub(crate) fn revision_hint(e: &SourceEvent) -> Value {
    json!({
        "provider": e.provider,
        "event": e.event,
        "commitId": e.commit_id,
        "ref": e.git_ref,
        "branch": e.branch,
        "message": e.message,
        "actor": e.actor,
        "repository": e.repository,
        "repositoryUrl": e.repository_url,
        "pullRequest": e.pull_request,
    })
}

/// The start request for a triggered execution.
pub(crate) fn start_request(
    state: &AppState,
    loaded: &Loaded,
    event: &SourceEvent,
    replay_of: Option<&str>,
) -> pipehook_runner::pipeline::StartRequest {
    let w = &loaded.webhook;
    let arn = format!("arn:aws:codepipeline:{}:{}:webhook:{}", state.config.aws_region, loaded.account_id, w.name);
    let mut trigger = json!({"triggerType": "Webhook", "triggerDetail": arn});
    if let Some(r) = replay_of {
        trigger["replayOf"] = json!(r);
    }
    pipehook_runner::pipeline::StartRequest {
        org: w.org,
        pipeline: loaded.pipeline.clone(),
        trigger,
        source_revisions: json!([]),
        variables: json!([]),
        client_request_token: None,
        revision_hint: Some(revision_hint(event)),
    }
}
