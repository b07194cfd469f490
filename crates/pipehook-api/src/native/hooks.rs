//! The Pulumi Cloud webhooks REST API: organization hooks (`/api/orgs/{org}/hooks`), stack hooks
//! (`/api/stacks/{org}/{project}/{stack}/hooks`) and environment hooks
//! (`/api/esc/environments/{org}/{project}/{env}/hooks`), each with list, create, get, update (PATCH),
//! delete, deliveries, redeliver and ping; and `POST /api/orgs/{org}/events`, which publishes an event to
//! them. The same handlers serve the three scopes; the path says which.
//!
//! pipehook additions to Pulumi's shapes (never replacing a Pulumi field): a hook's `health`; on each attempt its
//! number within its delivery (`attempt`), its place in the hook's log (`seq`, the `before` cursor), the delivery's
//! status, next retry and the attempt's `error`; and `GET .../deliveries/{deliveryId}`, one delivery with its
//! attempts.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pipehook_outbound::hook as rules;
use pipehook_outbound::{HookSecret, PublishError, PublishInput};
use pipehook_store::{AttemptRecord, HookFields, HookHealth, HookRecord, HookScope, LoggedAttempt, StoreError};
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
            .route(&format!("{base}/{{name}}/deliveries/{{event}}"), get(delivery))
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
    /// pipehook addition (list and get): how its delivery attempts have gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<HealthView>,
    /// pipehook addition (create and update): problems deliveries will meet, e.g. an address the outbound
    /// policy refuses. Also sent as a `Warning` header.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// A hook's recent delivery record; times in Unix seconds, like a delivery's `timestamp`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HealthView {
    last_success: Option<i64>,
    last_failure: Option<i64>,
    /// Failed attempts since the last successful one.
    consecutive_failures: i64,
    /// Since when every attempt has failed (what deactivation after `PIPEHOOK_OUTBOUND_DISABLE_AFTER` counts).
    failing_since: Option<i64>,
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
    /// pipehook additions: the attempt's number within its delivery (1 for the first), its sequence number in
    /// the hook's log (the `before` cursor), and why it was made (`scheduled`, `redeliver`, `ping`).
    attempt: i64,
    seq: i64,
    trigger: String,
    /// The delivery's status now: `pending` (not attempted yet), `retrying` (failed, another attempt is
    /// scheduled), `succeeded` or `failed` (no more attempts).
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_status: Option<String>,
    /// Unix seconds when the delivery's next attempt is due, while it is `retrying`.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_retry: Option<i64>,
    /// Why this attempt failed (absent when it succeeded).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// One delivery (`GET .../deliveries/{deliveryId}`): its state and every attempt kept, oldest first.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DeliveryDetail {
    id: String,
    kind: String,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_retry: Option<i64>,
    attempts: Vec<DeliveryView>,
}

fn org_of(p: &HashMap<String, String>) -> &str {
    p.get("org").map(String::as_str).unwrap_or_default()
}

/// The hook scope the path names. Its project, stack and environment segments must follow Pulumi's name rules
/// (400 otherwise), so nothing else (NUL, CR/LF, `/`, `..`, 300 characters) is ever stored or looked up.
fn scope_of(p: &HashMap<String, String>) -> Result<HookScope, RestError> {
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or_default();
    if p.contains_key("stack") {
        rules::validate_project_name(get("project")).map_err(|e| bad(e.0))?;
        rules::validate_stack_name(get("stack")).map_err(|e| bad(e.0))?;
        Ok(HookScope::stack(get("project"), get("stack")))
    } else if p.contains_key("env") {
        rules::validate_project_name(get("project")).map_err(|e| bad(e.0))?;
        rules::validate_env_name(get("env")).map_err(|e| bad(e.0))?;
        Ok(HookScope::env(get("project"), get("env")))
    } else {
        Ok(HookScope::org())
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
        health: None,
        warnings: Vec::new(),
    }
}

fn health_view(h: &HookRecord, health: HookHealth) -> HealthView {
    let seconds = |t: pipehook_domain::time::Timestamp| t.0 / 1000;
    HealthView {
        last_success: health.last_success.map(seconds),
        last_failure: health.last_failure.map(seconds),
        consecutive_failures: health.consecutive_failures,
        failing_since: h.failing_since.map(seconds),
    }
}

/// A hook as list and get show it: with its health.
async fn view_with_health(state: &AppState, h: HookRecord, org: &str) -> Result<HookView, RestError> {
    let health = state.store.hook_health(h.id).await.map_err(RestError::from_store)?;
    let health = health_view(&h, health);
    Ok(HookView { health: Some(health), ..view(h, org) })
}

fn header_text(v: &Value) -> String {
    match v.as_object() {
        Some(m) => m.iter().map(|(k, v)| format!("{k}: {}\n", v.as_str().unwrap_or_default())).collect(),
        None => String::new(),
    }
}

/// A delivery's status as shown: `pending` that has been attempted is `retrying`.
fn shown_status(status: &str, attempts: i64) -> String {
    match status {
        "pending" if attempts > 0 => "retrying".to_owned(),
        other => other.to_owned(),
    }
}

/// Why an attempt failed, in a few words; `None` for a 2xx.
fn attempt_error(a: &AttemptRecord) -> Option<String> {
    let code = a.response_code;
    if (200..300).contains(&code) {
        return None;
    }
    if code == 0 {
        let reason = a.response_body.lines().next().unwrap_or_default().trim();
        return Some(if reason.is_empty() { "no response".to_owned() } else { reason.to_owned() });
    }
    let reason = u16::try_from(code)
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .and_then(|c| c.canonical_reason())
        .map(|r| format!(" {r}"))
        .unwrap_or_default();
    let redirect = if (300..400).contains(&code) { " (redirects are not followed)" } else { "" };
    Some(format!("HTTP {code}{reason}{redirect}"))
}

fn logged_view(l: LoggedAttempt) -> DeliveryView {
    let status = l.delivery_status.as_deref().map(|s| shown_status(s, l.delivery_attempts));
    let next_retry = l.next_attempt_at.filter(|_| status.as_deref() == Some("retrying")).map(|t| t.0 / 1000);
    DeliveryView { delivery_status: status, next_retry, ..delivery_view(l.attempt, l.number) }
}

/// The view of an attempt just made (ping, redeliver), read back from the log for the number it was given
/// there, so the answer and the deliveries list agree. When it is not there (its hook was deleted meanwhile,
/// taking the delivery along), it is numbered after the attempts that are: never 0.
async fn made_view(state: &AppState, a: AttemptRecord) -> Result<DeliveryView, RestError> {
    let logged = state.store.delivery_attempts(&a.delivery_id).await.map_err(RestError::from_store)?;
    let next = logged.iter().map(|l| l.number).max().unwrap_or(0) + 1;
    let found = logged.into_iter().rev().find(|l| {
        l.attempt.trigger == a.trigger && l.attempt.attempted_at == a.attempted_at && l.attempt.payload == a.payload
    });
    Ok(match found {
        Some(l) => logged_view(l),
        None => delivery_view(a, next),
    })
}

/// An attempt with its number within its delivery.
fn delivery_view(a: AttemptRecord, number: i64) -> DeliveryView {
    let error = attempt_error(&a);
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
        attempt: number,
        seq: a.seq,
        trigger: a.trigger,
        delivery_status: None,
        next_retry: None,
        error,
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
    let hooks = state.store.list_hooks(principal.org.id, &scope_of(&p)?).await.map_err(RestError::from_store)?;
    let org = principal.org.name.to_string();
    let mut views = Vec::with_capacity(hooks.len());
    for h in hooks {
        views.push(view_with_health(&state, h, &org).await?);
    }
    Ok(Json(views))
}

async fn create(
    principal: Principal,
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, axum::http::HeaderMap, Json<HookView>), RestError> {
    ensure_org(&principal, org_of(&p))?;
    let scope = scope_of(&p)?;
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
    let mut view = view(hook, &principal.org.name.to_string());
    view.warnings = warnings(&state, &view.payload_url).await;
    Ok((StatusCode::CREATED, warning_header(&view.warnings), Json(view)))
}

/// What deliveries to `payload_url` will meet, said when the hook is written rather than only in its delivery
/// log.
async fn warnings(state: &AppState, payload_url: &str) -> Vec<String> {
    state.outbound.address_warning(payload_url).await.into_iter().collect()
}

/// The warnings as RFC 9111 `Warning` headers (code 299, "miscellaneous persistent warning").
fn warning_header(warnings: &[String]) -> axum::http::HeaderMap {
    let mut headers = axum::http::HeaderMap::new();
    for w in warnings {
        let text = w.replace(['"', '\\'], "'");
        if let Ok(v) = axum::http::HeaderValue::from_str(&format!("299 pipehook \"{text}\"")) {
            headers.append(axum::http::header::WARNING, v);
        }
    }
    headers
}

async fn read(
    principal: Principal,
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
) -> Result<Json<HookView>, RestError> {
    ensure_org(&principal, org_of(&p))?;
    let hook = find(&state, &principal, &scope_of(&p)?, &p["name"]).await?;
    Ok(Json(view_with_health(&state, hook, &principal.org.name.to_string()).await?))
}

async fn update(
    principal: Principal,
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(axum::http::HeaderMap, Json<HookView>), RestError> {
    ensure_org(&principal, org_of(&p))?;
    let scope = scope_of(&p)?;
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
    let mut view = view(updated, &principal.org.name.to_string());
    view.warnings = warnings(&state, &view.payload_url).await;
    Ok((warning_header(&view.warnings), Json(view)))
}

async fn remove(
    principal: Principal,
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
) -> Result<StatusCode, RestError> {
    ensure_org(&principal, org_of(&p))?;
    let scope = scope_of(&p)?;
    let mut tx = state.store.begin().await.map_err(RestError::from_store)?;
    tx.delete_hook(principal.org.id, &scope, &p["name"]).await.map_err(RestError::from_store)?;
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
    let hook = find(&state, &principal, &scope_of(&p)?, &p["name"]).await?;
    let mut rows = state.store.delivery_log(hook.id, q.before, limit + 1).await.map_err(RestError::from_store)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = more.then(|| rows.last().map(|a| a.attempt.seq)).flatten();
    let mut resp = Json(rows.into_iter().map(logged_view).collect::<Vec<_>>()).into_response();
    if let Some(n) = next {
        resp.headers_mut().insert("pipehook-next-before", HeaderValue::from(n));
    }
    Ok(resp)
}

/// One delivery of the hook, with its attempts oldest first.
async fn delivery(
    principal: Principal,
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
) -> Result<Json<DeliveryDetail>, RestError> {
    ensure_org(&principal, org_of(&p))?;
    let hook = find(&state, &principal, &scope_of(&p)?, &p["name"]).await?;
    let not_found = || RestError::new(StatusCode::NOT_FOUND, "Delivery not found");
    let d = state.store.delivery(&p["event"]).await.map_err(RestError::from_store)?.ok_or_else(not_found)?;
    if d.hook_id != hook.id {
        return Err(not_found());
    }
    let attempts: Vec<DeliveryView> = state
        .store
        .delivery_attempts(&d.id)
        .await
        .map_err(RestError::from_store)?
        .into_iter()
        .map(logged_view)
        .collect();
    let next_retry = attempts.last().and_then(|a| a.next_retry);
    Ok(Json(DeliveryDetail {
        id: d.id,
        kind: d.kind,
        status: shown_status(&d.status, d.attempts),
        next_retry,
        attempts,
    }))
}

async fn redeliver(
    principal: Principal,
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
) -> Result<Json<DeliveryView>, RestError> {
    ensure_org(&principal, org_of(&p))?;
    let hook = find(&state, &principal, &scope_of(&p)?, &p["name"]).await?;
    let attempt = state
        .outbound
        .redeliver(&hook, &p["event"])
        .await
        .map_err(RestError::from_store)?
        .ok_or_else(|| RestError::new(StatusCode::NOT_FOUND, "WebhookEvent not found"))?;
    Ok(Json(made_view(&state, attempt).await?))
}

async fn ping(
    principal: Principal,
    State(state): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
) -> Result<Json<DeliveryView>, RestError> {
    ensure_org(&principal, org_of(&p))?;
    let hook = find(&state, &principal, &scope_of(&p)?, &p["name"]).await?;
    let attempt = state.outbound.ping(&principal.org, &hook).await.map_err(RestError::from_store)?;
    Ok(Json(made_view(&state, attempt).await?))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PublishBody {
    kind: String,
    /// Kept as the text it came as: `raw` deliveries send it byte for byte.
    payload: Box<serde_json::value::RawValue>,
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
    // The same name rules as the hook routes: what is stored and matched is a Pulumi name.
    let named = |v: &Option<String>, check: fn(&str) -> Result<(), rules::Invalid>| match v.as_deref() {
        Some(name) if !name.is_empty() => check(name).map_err(|e| bad(e.0)),
        _ => Ok(()),
    };
    named(&b.project_name, rules::validate_project_name)?;
    named(&b.stack_name, rules::validate_stack_name)?;
    named(&b.env_name, rules::validate_env_name)?;
    let input = PublishInput {
        kind: b.kind,
        payload: b.payload.get().to_owned(),
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
