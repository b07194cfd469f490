//! The Pulumi Cloud webhooks REST API: organization hooks (`/api/orgs/{org}/hooks`), stack hooks
//! (`/api/stacks/{org}/{project}/{stack}/hooks`) and environment hooks
//! (`/api/esc/environments/{org}/{project}/{env}/hooks`), each with list, create, get, update (PATCH),
//! delete, deliveries, redeliver and ping; and `POST /api/orgs/{org}/events`, which publishes an event to
//! them. The same handlers serve the three scopes; the path says which.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pipehook_outbound::hook as rules;
use pipehook_outbound::{HookSecret, PublishError, PublishInput};
use pipehook_store::{AttemptRecord, HookFields, HookRecord, HookScope, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

use super::RestError;
use crate::auth::{ensure_org, Principal};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    let mut r = Router::new();
    for base in
        ["/orgs/{org}/hooks", "/stacks/{org}/{project}/{stack}/hooks", "/esc/environments/{org}/{project}/{env}/hooks"]
    {
        r = r
            .route(base, get(list).post(create))
            .route(&format!("{base}/{{name}}"), get(read).patch(update).delete(remove))
            .route(&format!("{base}/{{name}}/deliveries"), get(deliveries))
            .route(&format!("{base}/{{name}}/deliveries/{{event}}/redeliver"), post(redeliver))
            .route(&format!("{base}/{{name}}/ping"), post(ping));
    }
    r.route("/orgs/{org}/events", post(publish))
}

/// The Webhook schema as sent by clients. Everything is optional here so that a missing field gets a 400
/// naming it (and PATCH can leave fields unchanged).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HookBody {
    organization_name: Option<String>,
    project_name: Option<String>,
    stack_name: Option<String>,
    env_name: Option<String>,
    name: Option<String>,
    display_name: Option<String>,
    payload_url: Option<String>,
    secret: Option<String>,
    active: Option<bool>,
    format: Option<String>,
    filters: Option<Vec<String>>,
    groups: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HookView {
    has_secret: bool,
    organization_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stack_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    env_name: Option<String>,
    secret_ciphertext: String,
    name: String,
    display_name: String,
    payload_url: String,
    active: bool,
    format: String,
    filters: Vec<String>,
    groups: Vec<String>,
    /// Why pipehook deactivated the hook (410 Gone, failing for too long).
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_reason: Option<String>,
}

/// One attempt as the deliveries list, redeliver and ping return it (Pulumi's WebhookDelivery).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryView {
    /// The delivery id (`Pulumi-Webhook-ID`); redeliver takes it.
    id: String,
    kind: String,
    payload: String,
    /// Unix seconds.
    timestamp: i64,
    /// Milliseconds.
    duration: i64,
    request_url: String,
    request_headers: String,
    response_code: i64,
    response_headers: String,
    response_body: String,
    /// pipehook additions: the attempt's sequence number (the `before` cursor) and why it was made.
    attempt: i64,
    trigger: String,
}

fn org_of(p: &HashMap<String, String>) -> &str {
    p.get("org").map(String::as_str).unwrap_or_default()
}

fn scope_of(p: &HashMap<String, String>) -> HookScope {
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or_default();
    if p.contains_key("stack") {
        HookScope::stack(get("project"), get("stack"))
    } else if p.contains_key("env") {
        HookScope::env(get("project"), get("env"))
    } else {
        HookScope::org()
    }
}

fn bad(msg: impl Into<String>) -> RestError {
    RestError::new(StatusCode::BAD_REQUEST, msg)
}

fn hook_not_found() -> RestError {
    RestError::new(StatusCode::NOT_FOUND, "Webhook not found")
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn view(h: HookRecord, org: &str) -> HookView {
    HookView {
        has_secret: h.secret_ciphertext.is_some(),
        organization_name: org.to_owned(),
        project_name: non_empty(&h.scope.project),
        stack_name: non_empty(&h.scope.stack),
        env_name: non_empty(&h.scope.env),
        secret_ciphertext: h.secret_ciphertext.unwrap_or_default(),
        name: h.name,
        display_name: h.display_name,
        payload_url: h.payload_url,
        active: h.active,
        format: h.format,
        filters: h.filters,
        groups: h.groups,
        disabled_reason: h.disabled_reason,
    }
}

fn header_text(v: &Value) -> String {
    match v.as_object() {
        Some(m) => m.iter().map(|(k, v)| format!("{k}: {}\n", v.as_str().unwrap_or_default())).collect(),
        None => String::new(),
    }
}

fn delivery_view(a: AttemptRecord) -> DeliveryView {
    DeliveryView {
        id: a.delivery_id,
        kind: a.kind,
        payload: a.payload,
        timestamp: a.attempted_at.0 / 1000,
        duration: a.duration_ms,
        request_url: a.request_url,
        request_headers: header_text(&a.request_headers),
        response_code: a.response_code,
        response_headers: header_text(&a.response_headers),
        response_body: a.response_body,
        attempt: a.seq,
        trigger: a.trigger,
    }
}

fn parse_body(body: Result<Bytes, BytesRejection>) -> Result<HookBody, RestError> {
    let bytes = body.map_err(|e| RestError::new(e.status(), e.body_text()))?;
    serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid request body: {e}")))
}

/// The body's organization, project, stack and environment must agree with the path.
fn check_place(body: &HookBody, org: &str, scope: &HookScope, require_org: bool) -> Result<(), RestError> {
    match &body.organization_name {
        Some(o) if o != org => return Err(bad("Organization name from request body doesn't match URL")),
        None if require_org => return Err(bad("organizationName is required")),
        _ => {}
    }
    let agree = |given: &Option<String>, want: &str| given.as_deref().is_none_or(|g| g == want);
    if !agree(&body.project_name, &scope.project) {
        return Err(bad("Project name from request body doesn't match URL"));
    }
    if !agree(&body.stack_name, &scope.stack) {
        return Err(bad("Stack name from request body doesn't match URL"));
    }
    if !agree(&body.env_name, &scope.env) {
        return Err(bad("Environment name from request body doesn't match URL"));
    }
    Ok(())
}

fn check_fields(f: &HookFields, scope: &HookScope) -> Result<(), RestError> {
    rules::validate_display_name(&f.display_name).map_err(|e| bad(e.0))?;
    rules::validate_payload_url(&f.payload_url).map_err(|e| bad(e.0))?;
    rules::validate_format(&f.format, &scope.kind).map_err(|e| bad(e.0))?;
    rules::validate_filters(&f.filters).map_err(|e| bad(e.0))?;
    rules::validate_groups(&f.groups).map_err(|e| bad(e.0))?;
    Ok(())
}

fn encrypt_secret(state: &AppState, principal: &Principal, secret: &str) -> Result<String, RestError> {
    rules::validate_secret(secret).map_err(|e| bad(e.0))?;
    Ok(HookSecret::encrypt(&state.master_key, principal.org.id, secret))
}

async fn find(state: &AppState, principal: &Principal, scope: &HookScope, name: &str) -> Result<HookRecord, RestError> {
    state.store.hook(principal.org.id, scope, name).await.map_err(RestError::from_store)?.ok_or_else(hook_not_found)
}

async fn list(
    principal: Principal,
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
) -> Result<Json<Vec<HookView>>, RestError> {
    ensure_org(&principal, org_of(&p))?;
    let hooks = state.store.list_hooks(principal.org.id, &scope_of(&p)).await.map_err(RestError::from_store)?;
    let org = principal.org.name.to_string();
    Ok(Json(hooks.into_iter().map(|h| view(h, &org)).collect()))
}

async fn create(
    principal: Principal,
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<HookView>), RestError> {
    ensure_org(&principal, org_of(&p))?;
    let scope = scope_of(&p);
    let body = parse_body(body)?;
    check_place(&body, org_of(&p), &scope, true)?;
    let name = body.name.clone().ok_or_else(|| bad("name is required"))?;
    rules::validate_name(&name).map_err(|e| bad(e.0))?;
    let secret_ciphertext = match body.secret.as_deref() {
        Some("") | None => None,
        Some(s) => Some(encrypt_secret(&state, &principal, s)?),
    };
    let fields = HookFields {
        display_name: body.display_name.clone().ok_or_else(|| bad("displayName is required"))?,
        payload_url: body.payload_url.clone().ok_or_else(|| bad("payloadUrl is required"))?,
        secret_ciphertext,
        active: body.active.ok_or_else(|| bad("active is required"))?,
        format: body.format.clone().unwrap_or_else(|| "raw".into()),
        filters: body.filters.clone().unwrap_or_default(),
        groups: body.groups.clone().unwrap_or_default(),
    };
    check_fields(&fields, &scope)?;
    let mut tx = state.store.begin().await.map_err(RestError::from_store)?;
    let hook = match tx.insert_hook(principal.org.id, &scope, &name, &fields).await {
        Ok(h) => h,
        Err(StoreError::Conflict(_)) => {
            return Err(RestError::new(StatusCode::CONFLICT, format!("Webhook with name {name} already exists")))
        }
        Err(e) => return Err(RestError::from_store(e)),
    };
    tx.commit().await.map_err(RestError::from_store)?;
    state.outbound.forget_hooks();
    Ok((StatusCode::CREATED, Json(view(hook, &principal.org.name.to_string()))))
}

async fn read(
    principal: Principal,
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
) -> Result<Json<HookView>, RestError> {
    ensure_org(&principal, org_of(&p))?;
    let hook = find(&state, &principal, &scope_of(&p), &p["name"]).await?;
    Ok(Json(view(hook, &principal.org.name.to_string())))
}

async fn update(
    principal: Principal,
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<HookView>, RestError> {
    ensure_org(&principal, org_of(&p))?;
    let scope = scope_of(&p);
    let name = &p["name"];
    let body = parse_body(body)?;
    check_place(&body, org_of(&p), &scope, false)?;
    if body.name.as_deref().is_some_and(|n| n != name) {
        return Err(bad("a webhook cannot be renamed: the name in the body must match the URL"));
    }
    let hook = find(&state, &principal, &scope, name).await?;
    let secret_ciphertext = match body.secret.as_deref() {
        None => hook.secret_ciphertext.clone(),
        // An empty secret removes it.
        Some("") => None,
        Some(s) => Some(encrypt_secret(&state, &principal, s)?),
    };
    let fields = HookFields {
        display_name: body.display_name.unwrap_or(hook.display_name.clone()),
        payload_url: body.payload_url.unwrap_or(hook.payload_url.clone()),
        secret_ciphertext,
        active: body.active.unwrap_or(hook.active),
        format: body.format.unwrap_or(hook.format.clone()),
        filters: body.filters.unwrap_or(hook.filters.clone()),
        groups: body.groups.unwrap_or(hook.groups.clone()),
    };
    check_fields(&fields, &scope)?;
    let mut tx = state.store.begin().await.map_err(RestError::from_store)?;
    let updated = tx.update_hook(hook.id, &fields).await.map_err(RestError::from_store)?.ok_or_else(hook_not_found)?;
    tx.commit().await.map_err(RestError::from_store)?;
    state.outbound.forget_hooks();
    Ok(Json(view(updated, &principal.org.name.to_string())))
}

async fn remove(
    principal: Principal,
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
) -> Result<StatusCode, RestError> {
    ensure_org(&principal, org_of(&p))?;
    let mut tx = state.store.begin().await.map_err(RestError::from_store)?;
    tx.delete_hook(principal.org.id, &scope_of(&p), &p["name"]).await.map_err(RestError::from_store)?;
    tx.commit().await.map_err(RestError::from_store)?;
    state.outbound.forget_hooks();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct DeliveryQuery {
    before: Option<i64>,
    limit: Option<u32>,
}

/// Attempts, newest first. `?limit=` (1..1000, default 100) and `?before=<attempt>`; when more remain, the
/// `Pipehook-Next-Before` header gives the cursor for the next page.
async fn deliveries(
    principal: Principal,
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    q: Result<Query<DeliveryQuery>, QueryRejection>,
) -> Result<Response, RestError> {
    ensure_org(&principal, org_of(&p))?;
    let Query(q) = q.map_err(|e| bad(e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(bad("limit must be between 1 and 1000"));
    }
    let hook = find(&state, &principal, &scope_of(&p), &p["name"]).await?;
    let mut rows = state.store.list_attempts(hook.id, q.before, limit + 1).await.map_err(RestError::from_store)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = more.then(|| rows.last().map(|a| a.seq)).flatten();
    let mut resp = Json(rows.into_iter().map(delivery_view).collect::<Vec<_>>()).into_response();
    if let Some(n) = next {
        resp.headers_mut().insert("pipehook-next-before", HeaderValue::from(n));
    }
    Ok(resp)
}

async fn redeliver(
    principal: Principal,
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
) -> Result<Json<DeliveryView>, RestError> {
    ensure_org(&principal, org_of(&p))?;
    let hook = find(&state, &principal, &scope_of(&p), &p["name"]).await?;
    let attempt = state
        .outbound
        .redeliver(&hook, &p["event"])
        .await
        .map_err(RestError::from_store)?
        .ok_or_else(|| RestError::new(StatusCode::NOT_FOUND, "WebhookEvent not found"))?;
    Ok(Json(delivery_view(attempt)))
}

async fn ping(
    principal: Principal,
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
) -> Result<Json<DeliveryView>, RestError> {
    ensure_org(&principal, org_of(&p))?;
    let hook = find(&state, &principal, &scope_of(&p), &p["name"]).await?;
    let attempt = state.outbound.ping(&principal.org, &hook).await.map_err(RestError::from_store)?;
    Ok(Json(delivery_view(attempt)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PublishBody {
    kind: String,
    payload: Value,
    project_name: Option<String>,
    stack_name: Option<String>,
    env_name: Option<String>,
}

/// Publishes an event: 202 with its id once it and its deliveries are stored. `Idempotency-Key` (24 h)
/// makes a retried publish return the first event's id.
async fn publish(
    principal: Principal,
    State(state): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), RestError> {
    ensure_org(&principal, &org)?;
    let bytes = body.map_err(|e| RestError::new(e.status(), e.body_text()))?;
    let b: PublishBody = serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid request body: {e}")))?;
    let key = match headers.get("idempotency-key") {
        Some(v) => Some(v.to_str().map_err(|_| bad("Idempotency-Key must be visible ASCII"))?.to_owned()),
        None => None,
    };
    let input = PublishInput {
        kind: b.kind,
        payload: b.payload,
        project: b.project_name.filter(|s| !s.is_empty()),
        stack: b.stack_name.filter(|s| !s.is_empty()),
        env: b.env_name.filter(|s| !s.is_empty()),
        idempotency_key: key,
    };
    match state.outbound.publish(&principal.org, input).await {
        Ok(o) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"id": o.event_id, "deliveries": o.deliveries, "duplicate": o.duplicate})),
        )),
        Err(PublishError::Invalid(m)) => Err(bad(m)),
        Err(PublishError::Store(e)) => Err(RestError::from_store(e)),
    }
}
