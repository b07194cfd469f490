//! `POST /webhooks?t=<token>&v=1`: a build project's payload URL (CodeBuild CreateWebhook), and
//! `POST /api/orgs/{org}/projects/{name}/explain`.
//!
//! The same steps as the pipeline trigger (`trigger.rs`), each recorded in the shared inbound log (webhook
//! `project:<name>`, see `pipehook_store::builds`): read the body (capped), find the webhook by the token
//! (unknown: 404), authenticate per provider (GitHub / GitHub Enterprise: HMAC `X-Hub-Signature-256`; GitLab:
//! `X-Gitlab-Token`; Bitbucket: `X-Hub-Signature` when pipehook registered the hook with its own secret, else
//! none, the URL's token being the credential, as CodeBuild gives Bitbucket no secret), recognise pings, read
//! from the git host what FILE_PATH / COMMIT_MESSAGE filters need and the payload lacks (`githost::changes`; a
//! failure answers 502 and claims nothing, so the host's redelivery is judged afresh), deduplicate by the
//! provider's delivery id, evaluate the filter groups, start the build. The
//! request, its verdict (with the filter-group [`Evaluation`]) and the build with its job and `build_started`
//! event commit together before the answer.
//!
//! The build: `initiator` is `GitHub-Hookshot/<X-GitHub-Hook-ID>` (or `GitHub-Hookshot`), `GitLab-Webhook`,
//! `Bitbucket-Webhook`; `sourceVersion` is `pr/<n>` for pull request events, else the commit; the checkout uses
//! the event's commit; the `CODEBUILD_WEBHOOK_*` variables come from the event.

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use pipehook_domain::credentials::TokenHash;
use pipehook_domain::secret::Secret;
use pipehook_domain::time::Timestamp;
use pipehook_inbound::auth::{AuthOutcome, Authentication};
use pipehook_inbound::event::Provider;
use pipehook_inbound::event::{CodeBuildEvent, SourceEvent};
use pipehook_inbound::filter_groups::{compile_webhook, evaluate, Evaluation, FilterType, SourceType, WebhookFilter};
use pipehook_runner::codebuild::{prepare_build, StartBuildRequest};
use pipehook_store::builds::{inbound_webhook_id, inbound_webhook_name};
use pipehook_store::{
    BuildTriggerWrite, BuildWebhookRecord, DeliveryClaim, InboundRecord, ProjectRecord, TriggerOutcome,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;

use super::{answer, logged_body, logged_headers, not_found, revision_hint, unavailable, DEDUPE_WINDOW};
use crate::auth::{ensure_org, Principal};
use crate::aws::codebuild::webhook_secret_context;
use crate::githost::changes::{self, Apis, Wanted};
use crate::githost::HostError;
use crate::native::{RestError, RestQuery};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/webhooks", post(trigger))
}

#[derive(Deserialize)]
pub struct TriggerQuery {
    t: Option<String>,
}

/// A build webhook ready to judge requests.
struct LoadedBuildHook {
    webhook: BuildWebhookRecord,
    project: ProjectRecord,
    source_type: SourceType,
    compiled: pipehook_inbound::filter_groups::CompiledFilterGroups,
    auth: Authentication,
}

async fn load(state: &AppState, webhook: BuildWebhookRecord) -> Result<LoadedBuildHook, String> {
    let project = state
        .store
        .project(webhook.org, &webhook.project_name)
        .await
        .map_err(|e| format!("store: {e}"))?
        .ok_or_else(|| "the project no longer exists".to_owned())?;
    let source_type = SourceType::parse(project.document["source"]["type"].as_str().unwrap_or_default())
        .map_err(|e| e.to_string())?;
    let groups: Vec<Vec<WebhookFilter>> =
        serde_json::from_value(webhook.filter_groups.clone()).map_err(|e| format!("stored filter groups: {e}"))?;
    let compiled =
        compile_webhook(webhook.branch_filter.as_deref(), &groups, source_type).map_err(|e| e.to_string())?;
    let secrets = match &webhook.secret_ciphertext {
        Some(ct) => {
            let plain = state
                .master_key
                .decrypt(&webhook_secret_context(webhook.org.0, webhook.project_id), ct)
                .map_err(|e| format!("the webhook secret does not decrypt: {e}"))?;
            vec![Secret::new(String::from_utf8(plain).map_err(|_| "the webhook secret is not UTF-8".to_owned())?)]
        }
        None => vec![],
    };
    let auth = match source_type {
        SourceType::Github | SourceType::GithubEnterprise if !secrets.is_empty() => {
            Authentication::GithubHmac { secrets }
        }
        SourceType::Gitlab | SourceType::GitlabSelfManaged if !secrets.is_empty() => {
            Authentication::GitlabToken { secrets }
        }
        // A hook pipehook registered on Bitbucket carries a secret pipehook kept; a manual one has none.
        SourceType::Bitbucket if !secrets.is_empty() => Authentication::BitbucketHmac { secrets },
        _ => Authentication::Unauthenticated,
    };
    Ok(LoadedBuildHook { webhook, project, source_type, compiled, auth })
}

/// What CodeBuild records as the build's initiator for a webhook build.
fn initiator(headers: &HeaderMap, t: SourceType) -> String {
    match t {
        SourceType::Github | SourceType::GithubEnterprise => {
            match headers.get("x-github-hook-id").and_then(|v| v.to_str().ok()) {
                Some(id) if !id.is_empty() => format!("GitHub-Hookshot/{id}"),
                _ => "GitHub-Hookshot".into(),
            }
        }
        SourceType::Gitlab | SourceType::GitlabSelfManaged => "GitLab-Webhook".into(),
        SourceType::Bitbucket => "Bitbucket-Webhook".into(),
    }
}

/// The build a passing event starts.
fn build_request(l: &LoadedBuildHook, headers: &HeaderMap, event: &SourceEvent) -> StartBuildRequest {
    let pr = event.codebuild_event.is_some_and(CodeBuildEvent::is_pull_request);
    let source_version = match (pr, event.pull_request) {
        (true, Some(n)) => Some(format!("pr/{n}")),
        _ => event.commit_id.clone(),
    };
    let env: Vec<Value> = event.codebuild_webhook_env().into_iter().map(|(k, v)| json!([k, v])).collect();
    StartBuildRequest {
        org: l.webhook.org,
        project: l.project.name.clone(),
        source_version,
        initiator: initiator(headers, l.source_type),
        env_overrides: json!([]),
        buildspec_override: None,
        idempotency_token: None,
        trigger: json!({
            "revision": revision_hint(event),
            "webhookEnv": env,
            "webhook": true,
            "buildType": l.webhook.build_type.as_deref().unwrap_or("BUILD"),
            "timeoutInMinutes": l.project.document["timeoutInMinutes"].as_i64().unwrap_or(60),
            "environment": l.project.document["environment"],
        }),
    }
}

/// What the filter groups need from the git host for this event (see `githost::changes`), or `None`: a ping,
/// no group that could pass has FILE_PATH / COMMIT_MESSAGE, the payload carries what they need, the branch
/// filter already failed, or a group without them already passes (the build starts whatever the host says).
fn wanted_from_host(l: &LoadedBuildHook, event: &SourceEvent, payload: &Value) -> Option<Wanted> {
    if event.is_ping {
        return None;
    }
    let wanted = Wanted {
        files: l.compiled.needs(FilterType::FilePath, event) && changes::files_missing(event, payload),
        commit_message: l.compiled.needs(FilterType::CommitMessage, event) && event.commit_message.is_none(),
    };
    if !wanted.any() {
        return None;
    }
    let pre = evaluate(&l.compiled, event);
    let needs_host = |g: &pipehook_inbound::filter_groups::GroupOutcome| {
        g.filters.iter().any(|f| f.filter_type == "FILE_PATH" || f.filter_type == "COMMIT_MESSAGE")
    };
    let decided = pre.branch_filter.as_ref().is_some_and(|f| !f.passed)
        || (pre.passed && pre.groups.iter().any(|g| g.passed && !needs_host(g)));
    (!decided).then_some(wanted)
}

/// Reads `wanted` from the git host into `event`; returns what was read, for the log. Only a delivery from the
/// project's own provider about the project's own repository (`source.location`) is completed, so the project's
/// token never reads another repository, whatever a payload says.
async fn read_from_host(
    state: &AppState,
    l: &LoadedBuildHook,
    wanted: Wanted,
    event: &mut SourceEvent,
) -> Result<Value, HostError> {
    let provider = match l.source_type {
        SourceType::Github | SourceType::GithubEnterprise => Provider::GitHub,
        SourceType::Gitlab | SourceType::GitlabSelfManaged => Provider::GitLab,
        SourceType::Bitbucket => Provider::Bitbucket,
    };
    if event.provider != provider {
        return Err(changes::missing(&format!(
            "a {:?} delivery to a {} project",
            event.provider,
            l.source_type.display_name()
        )));
    }
    let location = l.project.document["source"]["location"].as_str().unwrap_or_default();
    let repo = match provider {
        Provider::GitLab => crate::githost::gitlab_path(location),
        _ => crate::githost::github_repo(location).map(|(owner, name)| format!("{owner}/{name}")),
    }
    .ok_or_else(|| {
        changes::missing(&format!(
            "FILE_PATH / COMMIT_MESSAGE need the {} API, and the project's source.location '{location}' names no \
             repository on it",
            l.source_type.display_name()
        ))
    })?;
    let named = event.repository.clone().unwrap_or_default();
    if !named.eq_ignore_ascii_case(&repo) {
        return Err(changes::missing(&format!(
            "the delivery is about repository '{named}', and the project builds '{repo}'"
        )));
    }
    let c = &state.config;
    let apis = Apis { github: &c.github_api_url, gitlab: &c.gitlab_api_url, bitbucket: &c.bitbucket_api_url };
    let token = crate::githost::project_token(&state.master_key, &l.project);
    changes::complete(apis, token.as_deref(), &repo, wanted, event).await
}

/// [`wanted_from_host`] then [`read_from_host`], for explain and replay; a failure is the REST error: 502 when
/// the host failed, 400 when the delivery cannot be completed.
async fn complete_for_rest(
    state: &AppState,
    l: &LoadedBuildHook,
    event: &mut SourceEvent,
    payload: &Value,
) -> Result<Option<Value>, RestError> {
    let Some(wanted) = wanted_from_host(l, event, payload) else { return Ok(None) };
    read_from_host(state, l, wanted, event).await.map(Some).map_err(|e| {
        let status = if changes::is_host_failure(&e) { StatusCode::BAD_GATEWAY } else { StatusCode::BAD_REQUEST };
        RestError::new(status, format!("the filter groups need what the payload lacks: {e}"))
    })
}

async fn trigger(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RestQuery(q): RestQuery<TriggerQuery>,
    rid: Option<axum::Extension<tower_http::request_id::RequestId>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(token) = super::trigger_token(q.t) else { return not_found() };
    let webhook = match state.store.build_webhook_by_token(&TokenHash::of(&token).0).await {
        Ok(Some(w)) => w,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "looking up a payload URL token failed");
            return unavailable();
        }
    };
    // Only now, with a webhook found, is the body read (bounded in size, time and memory).
    let (body, _body_budget) = match super::read_trigger_body(&state, &headers, body).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let (org, hook_id, project_name) = (webhook.org, webhook.id, webhook.project_name.clone());
    let now = Timestamp::now();
    // The request's id (`x-request-id`, in its log lines) names its inbound log record too.
    let request_id = super::request_id(rid);
    let (logged, truncated) = logged_body(&body);
    let delivery_id = pipehook_inbound::event::delivery_id(&headers);
    let mut record = InboundRecord {
        seq: 0,
        id: request_id.clone(),
        org,
        webhook_id: inbound_webhook_id(hook_id),
        webhook_name: inbound_webhook_name(&project_name),
        received_at: now,
        peer: peer.ip().to_string(),
        headers: logged_headers(&headers),
        body: logged,
        body_truncated: truncated,
        delivery_id: delivery_id.clone(),
        verdict: String::new(),
        detail: Value::Null,
        execution_id: None,
    };
    let loaded = match load(&state, webhook).await {
        Ok(l) => l,
        Err(reason) => {
            tracing::warn!(%reason, project = %project_name, "a payload URL points at a webhook that cannot be evaluated");
            let refused = || {
                answer(
                    StatusCode::CONFLICT,
                    json!({"result": "rejected", "message": "The webhook's configuration is not usable; see its inbound log", "requestId": request_id}),
                )
            };
            // Nothing could authenticate the request: it is logged as unauthenticated ones are.
            if !state.inbound_guard.admit_unauthenticated(org, record.webhook_id, &record.webhook_name, &record.peer) {
                state.metrics.inbound_dropped("unauthenticated_rate", 1);
                return refused();
            }
            record.verdict = "rejected".into();
            record.detail = json!({"reason": reason});
            super::limits::omit_body(&mut record, &body);
            return match save(&state, &record).await {
                Ok(()) => refused(),
                Err(r) => r,
            };
        }
    };

    // 1. Authenticate.
    let auth = pipehook_inbound::auth::authenticate(
        &loaded.auth,
        &headers,
        &body,
        peer.ip(),
        state.config.trust_forwarded_for,
    );
    if let AuthOutcome::Failed { reason } = &auth {
        let refused =
            || answer(StatusCode::UNAUTHORIZED, json!({"result": "unauthenticated", "requestId": request_id}));
        // Logged without its body, and at most so many per webhook and minute: the rest are only counted.
        if !state.inbound_guard.admit_unauthenticated(org, record.webhook_id, &record.webhook_name, &record.peer) {
            state.metrics.inbound_dropped("unauthenticated_rate", 1);
            return refused();
        }
        record.verdict = "unauthenticated".into();
        record.detail = json!({"reason": reason});
        super::limits::omit_body(&mut record, &body);
        return match save(&state, &record).await {
            Ok(()) => refused(),
            Err(r) => r,
        };
    }
    let auth_detail = match &auth {
        AuthOutcome::Passed { method, secret_index } => json!({"method": method, "secretIndex": secret_index}),
        AuthOutcome::Failed { .. } => Value::Null,
    };

    // 2. The payload.
    let payload: Value = match super::parse_payload(&headers, &body) {
        Ok(v) => v,
        Err(e) => {
            record.verdict = "rejected".into();
            record.detail = json!({"reason": format!("the body is not JSON: {e}"), "authentication": auth_detail});
            return match save(&state, &record).await {
                Ok(()) => answer(
                    StatusCode::BAD_REQUEST,
                    json!({"result": "rejected", "message": format!("The body is not valid JSON: {e}"), "requestId": request_id}),
                ),
                Err(r) => r,
            };
        }
    };
    let mut event = pipehook_inbound::event::normalize(&headers, &payload);
    let cutoff = Timestamp(now.0.saturating_sub(DEDUPE_WINDOW.as_millis() as i64));
    let mut fetched = None;
    if let Some(wanted) = wanted_from_host(&loaded, &event, &payload) {
        // A redelivery of a delivery already judged costs the host nothing: the write below marks it duplicate.
        let seen = match &delivery_id {
            Some(d) => matches!(state.store.first_delivery(record.webhook_id, d, cutoff).await, Ok(Some(_))),
            None => false,
        };
        if !seen {
            match read_from_host(&state, &loaded, wanted, &mut event).await {
                Ok(f) => fetched = Some(f),
                Err(e) => {
                    // Nothing is claimed: a redelivery of this request is judged afresh.
                    let host = changes::is_host_failure(&e);
                    tracing::warn!(error = %e, project = %project_name, host, "completing a delivery from the git host failed");
                    record.verdict = "rejected".into();
                    record.detail = json!({
                        "reason": format!("the filter groups need what the payload lacks: {e}"),
                        "event": serde_json::to_value(&event).unwrap_or(Value::Null),
                        "authentication": auth_detail,
                    });
                    let (status, message) = if host {
                        (
                            StatusCode::BAD_GATEWAY,
                            "The git host's API could not be read to evaluate the filter groups; redeliver later",
                        )
                    } else {
                        (StatusCode::BAD_REQUEST, "The delivery lacks what the filter groups need; see the inbound log")
                    };
                    return match save(&state, &record).await {
                        Ok(()) => {
                            answer(status, json!({"result": "rejected", "message": message, "requestId": request_id}))
                        }
                        Err(r) => r,
                    };
                }
            }
        }
    }
    let evaluation = evaluate(&loaded.compiled, &event);

    // 3. Dedupe (claimed with the request itself); 4. pings; 5. filter groups; 6. start.
    let mut delivery =
        delivery_id.clone().map(|d| DeliveryClaim { webhook_id: record.webhook_id, delivery_id: d, cutoff });
    let event_json = serde_json::to_value(&event).unwrap_or(Value::Null);
    let mut build = None;
    let (status, mut out) = if event.is_ping {
        record.verdict = "filtered".into();
        record.detail =
            json!({"reason": "ping event: nothing to start", "event": event_json, "authentication": auth_detail});
        (StatusCode::OK, json!({"result": "filtered", "reason": "ping", "requestId": request_id}))
    } else if !evaluation.passed {
        record.verdict = "filtered".into();
        record.detail = json!({"reason": evaluation.reason, "evaluation": evaluation, "event": event_json, "authentication": auth_detail});
        (StatusCode::OK, json!({"result": "filtered", "reason": evaluation.reason, "requestId": request_id}))
    } else if let Some(first) = suppressed_duplicate(&state, &loaded, &event, now).await {
        record.verdict = "duplicate".into();
        record.detail = json!({
            "reason": "this commit was already built by a pipeline's CodeBuild action and the organization suppresses duplicate builds",
            "duplicateOf": first,
            "evaluation": evaluation,
            "event": event_json,
            "authentication": auth_detail,
        });
        (StatusCode::OK, json!({"result": "duplicate", "duplicateOf": first, "requestId": request_id}))
    } else if let Err(full) = state.admission.admit(&*state.store, loaded.webhook.org).await {
        // The organization's queue is full: nothing starts, and the delivery is not claimed, so the host's
        // redelivery is judged again once the backlog has shrunk.
        delivery = None;
        record.verdict = "rejected".into();
        record.detail = json!({"reason": full.message(), "queued": full.queued, "limit": full.max, "evaluation": evaluation, "event": event_json, "authentication": auth_detail});
        (
            StatusCode::TOO_MANY_REQUESTS,
            json!({"result": "rejected", "message": full.message(), "requestId": request_id}),
        )
    } else {
        let start = match prepare_build(&build_request(&loaded, &headers, &event)) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "preparing a build from a webhook failed");
                return unavailable();
            }
        };
        record.verdict = "triggered".into();
        record.execution_id = Some(start.build.id.clone());
        record.detail = json!({"evaluation": evaluation, "event": event_json, "authentication": auth_detail});
        let mut out = json!({"result": "triggered", "buildId": start.build.id, "requestId": request_id});
        if let Some(first) = pipeline_build_of(&state, &loaded, &event, now).await {
            record.detail["duplicateOf"] = first.clone();
            out["duplicateOf"] = first;
        }
        build = Some(start);
        (StatusCode::OK, out)
    };
    if let Some(f) = fetched {
        record.detail["fetched"] = f;
    }
    let write = BuildTriggerWrite { inbound: record.clone(), delivery, build };
    match state.store.record_build_trigger(write).await {
        Ok((TriggerOutcome::Recorded, built)) => {
            if let Some(b) = built {
                out["buildNumber"] = json!(b.build_number);
            }
            answer(status, out)
        }
        Ok((TriggerOutcome::Duplicate, _)) => {
            let d = delivery_id.unwrap_or_default();
            let first = state.store.first_delivery(record.webhook_id, &d, cutoff).await.ok().flatten();
            record.verdict = "duplicate".into();
            record.detail = json!({
                "firstRequestId": first.as_ref().map(|f| f.id.clone()),
                "firstVerdict": first.as_ref().map(|f| f.verdict.clone()),
            });
            record.execution_id = first.as_ref().and_then(|f| f.execution_id.clone());
            match save(&state, &record).await {
                Ok(()) => answer(
                    StatusCode::OK,
                    json!({
                        "result": "duplicate",
                        "firstVerdict": first.as_ref().map(|f| f.verdict.clone()),
                        "buildId": record.execution_id,
                        "requestId": request_id,
                    }),
                ),
                Err(r) => r,
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "recording a build webhook request failed");
            unavailable()
        }
    }
}

/// The seed's warning in the log: a build of the same commit by a pipeline's CodeBuild action (within a day)
/// makes this webhook build the second of that commit.
async fn pipeline_build_of(
    state: &AppState,
    l: &LoadedBuildHook,
    event: &SourceEvent,
    now: Timestamp,
) -> Option<Value> {
    let commit = event.commit_id.as_deref()?;
    let since = Timestamp(now.0.saturating_sub(24 * 3600 * 1000));
    let builds = match state.store.builds_of_commit(l.webhook.org, &l.project.name, commit, since).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "looking for earlier builds of a commit failed");
            return None;
        }
    };
    let first = builds.into_iter().find(|b| b.initiator.starts_with("codepipeline/"))?;
    Some(json!({
        "buildId": first.id,
        "buildNumber": first.build_number,
        "initiator": first.initiator,
        "reason": "this commit was already built by a pipeline's CodeBuild action: the webhook builds it a second time",
    }))
}

/// The pipeline build this delivery would duplicate, when the organization suppresses such duplicates.
async fn suppressed_duplicate(
    state: &AppState,
    l: &LoadedBuildHook,
    event: &SourceEvent,
    now: Timestamp,
) -> Option<Value> {
    match crate::native::settings::suppress_duplicate_builds(&*state.store, l.webhook.org).await {
        Ok(true) => pipeline_build_of(state, l, event, now).await,
        Ok(false) => None,
        Err(e) => {
            tracing::warn!(error = %e, "reading the organization's settings failed");
            None
        }
    }
}

/// Records a request whose verdict needs no other write.
async fn save(state: &AppState, record: &InboundRecord) -> Result<(), Response> {
    let write = BuildTriggerWrite { inbound: record.clone(), delivery: None, build: None };
    state.store.record_build_trigger(write).await.map(|_| ()).map_err(|e| {
        tracing::error!(error = %e, "recording a build webhook request failed");
        unavailable()
    })
}

#[derive(Deserialize)]
pub struct ExplainQuery {
    event: Option<String>,
}

/// How a payload would fare against a project's webhook, without starting anything: the normalized event and
/// the filter-group [`Evaluation`], group by group and filter by filter. The provider is told by the usual event
/// header; `?event=` sets `X-GitHub-Event` when the request has none.
pub async fn explain(
    State(state): State<AppState>,
    principal: Principal,
    Path((org, name)): Path<(String, String)>,
    RestQuery(q): RestQuery<ExplainQuery>,
    mut headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, RestError> {
    ensure_org(&principal, &org)?;
    let webhook =
        state.store.build_webhook(principal.org.id, &name).await.map_err(RestError::from_store)?.ok_or_else(|| {
            RestError::new(StatusCode::NOT_FOUND, format!("Not Found: project '{name}' has no webhook"))
        })?;
    let loaded = load(&state, webhook).await.map_err(|reason| RestError::new(StatusCode::CONFLICT, reason))?;
    let payload: Value = super::parse_payload(&headers, &body)
        .map_err(|e| RestError::new(StatusCode::BAD_REQUEST, format!("the payload is not JSON: {e}")))?;
    if let Some(event) = &q.event {
        let v = axum::http::HeaderValue::from_str(event)
            .map_err(|_| RestError::new(StatusCode::BAD_REQUEST, "invalid event name"))?;
        headers.entry("x-github-event").or_insert(v);
    }
    let mut event = pipehook_inbound::event::normalize(&headers, &payload);
    let fetched = complete_for_rest(&state, &loaded, &mut event, &payload).await?;
    let evaluation: Evaluation = evaluate(&loaded.compiled, &event);
    let verdict = if event.is_ping {
        "filtered (ping: nothing to start)"
    } else if evaluation.passed {
        "would trigger"
    } else {
        "would be filtered"
    };
    Ok(Json(json!({
        "project": loaded.project.name,
        "sourceType": loaded.source_type.as_str(),
        "event": event,
        "webhookEnv": event.codebuild_webhook_env().into_iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "evaluation": evaluation,
        "fetched": fetched,
        "verdict": verdict,
    })))
}

/// Replays a logged request to a build webhook: evaluates it against the webhook's filter groups as they are now
/// and, if it passes, starts a build (authentication and dedupe are not repeated, as for pipeline webhooks).
pub(super) async fn replay(state: &AppState, original: &InboundRecord) -> Result<(StatusCode, Json<Value>), RestError> {
    let project = original.webhook_name.strip_prefix("project:").unwrap_or_default();
    let webhook =
        state.store.build_webhook(original.org, project).await.map_err(RestError::from_store)?.ok_or_else(|| {
            RestError::new(StatusCode::NOT_FOUND, format!("Not Found: project '{project}' has no webhook any more"))
        })?;
    // Only into the webhook that received the request, not one deleted and created again since.
    if inbound_webhook_id(webhook.id) != original.webhook_id {
        return Err(super::log::replaced(&original.webhook_name));
    }
    let loaded = load(state, webhook).await.map_err(|reason| RestError::new(StatusCode::CONFLICT, reason))?;
    let headers = super::log::headers_of(&original.headers);
    let payload: Value = super::parse_payload(&headers, original.body.as_bytes()).unwrap_or(Value::Null);
    let mut event = pipehook_inbound::event::normalize(&headers, &payload);
    let fetched = complete_for_rest(state, &loaded, &mut event, &payload).await?;
    let evaluation = evaluate(&loaded.compiled, &event);
    let mut record = original.clone();
    record.id = uuid::Uuid::new_v4().to_string();
    record.received_at = Timestamp::now();
    record.delivery_id = None;
    record.execution_id = None;
    let mut build = None;
    if evaluation.passed && !event.is_ping {
        let start = prepare_build(&build_request(&loaded, &headers, &event)).map_err(RestError::from_store)?;
        record.verdict = "triggered".into();
        record.execution_id = Some(start.build.id.clone());
        build = Some(start);
    } else {
        record.verdict = "filtered".into();
    }
    record.detail = json!({"replayOf": original.id, "reason": evaluation.reason, "evaluation": evaluation});
    if let Some(f) = fetched {
        record.detail["fetched"] = f;
    }
    let write = BuildTriggerWrite { inbound: record.clone(), delivery: None, build };
    let (_, built) = state.store.record_build_trigger(write).await.map_err(RestError::from_store)?;
    Ok((
        StatusCode::OK,
        Json(json!({
            "requestId": record.id,
            "verdict": record.verdict,
            "buildId": record.execution_id,
            "buildNumber": built.map(|b| b.build_number),
        })),
    ))
}

/// `GET /api/orgs/{org}/builds/{id}/logs`: a build's log so far, as text (the `logs.deepLink` of a build).
pub async fn build_logs(
    State(state): State<AppState>,
    principal: Principal,
    Path((org, id)): Path<(String, String)>,
) -> Result<Response, RestError> {
    ensure_org(&principal, &org)?;
    let b = state
        .store
        .build(principal.org.id, &id)
        .await
        .map_err(RestError::from_store)?
        .ok_or_else(|| RestError::new(StatusCode::NOT_FOUND, format!("Not Found: no build '{id}'")))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], b.logs).into_response())
}
