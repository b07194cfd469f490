//! `POST /trigger?t=<token>&v=1`: what git hosts call.
//!
//! Steps, each recorded: read the body (capped), find the webhook by the token (unknown: 404, nothing
//! revealed), authenticate, recognise pings, deduplicate by the provider's delivery id, apply the filter
//! rules, start the execution. The request, its verdict and the execution commit in one transaction before
//! the response is sent, so an answered delivery is never lost and an unanswered one is retried by the host.

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use pipehook_domain::credentials::TokenHash;
use pipehook_domain::time::Timestamp;
use pipehook_inbound::auth::AuthOutcome;
use pipehook_store::{DeliveryClaim, InboundRecord, TriggerOutcome, TriggerWrite};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;

use super::{
    answer, first_failure, judge, logged_body, logged_headers, not_found, start_request, unavailable, LoadError,
    DEDUPE_WINDOW,
};
use crate::native::RestQuery;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/trigger", post(trigger))
}

#[derive(Deserialize)]
struct TriggerQuery {
    t: Option<String>,
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
    let webhook = match state.store.webhook_by_token(&TokenHash::of(&token).0).await {
        Ok(Some(w)) => w,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "looking up a trigger token failed");
            return unavailable();
        }
    };
    // Only now, with a webhook found, is the body read (bounded in size, time and memory).
    let (body, _body_budget) = match super::read_trigger_body(&state, &headers, body).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let loaded = match state.inbound_cache.get(&state, webhook).await {
        Ok(l) => l,
        Err(LoadError::Store(e)) => {
            tracing::error!(error = %e, "loading a webhook failed");
            return unavailable();
        }
        Err(LoadError::Broken(reason)) => {
            tracing::warn!(%reason, "a trigger URL points at a webhook that cannot be evaluated");
            return answer(
                StatusCode::CONFLICT,
                json!({"result": "rejected", "message": "The webhook's configuration is not usable; see its inbound log"}),
            );
        }
    };
    let w = &loaded.webhook;
    let now = Timestamp::now();
    // The request's id (`x-request-id`, in its log lines) names its inbound log record too.
    let request_id = super::request_id(rid);
    let (logged, truncated) = logged_body(&body);
    let delivery_id = pipehook_inbound::event::delivery_id(&headers);
    let mut record = InboundRecord {
        seq: 0,
        id: request_id.clone(),
        org: w.org,
        webhook_id: w.id,
        webhook_name: w.name.clone(),
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

    // 1. Authenticate. Why it failed goes to the log only.
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
        if !state.inbound_guard.admit_unauthenticated(w.org, w.id, &w.name, &record.peer) {
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

    // 2. The payload: JSON when the rules need it.
    let payload: Value = match super::parse_payload(&headers, &body) {
        Ok(v) => v,
        Err(e) if !loaded.rules.is_empty() => {
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
        Err(_) => Value::Null,
    };
    let judged = judge(&state, &loaded, &headers, payload).await;

    // 3. Deduplicate: the first request with a delivery id decides; later ones answer with its verdict.
    //    The claim is written with the request itself (below), so two racing copies cannot both win.
    let cutoff = Timestamp(now.0.saturating_sub(DEDUPE_WINDOW.as_millis() as i64));
    let mut delivery = delivery_id.clone().map(|d| DeliveryClaim { webhook_id: w.id, delivery_id: d, cutoff });

    // 4. Pings start nothing; 5. rules; 6. start.
    let event_json = serde_json::to_value(&judged.event).unwrap_or(Value::Null);
    let mut execution = None;
    let (status, body) = if judged.event.is_ping {
        record.verdict = "filtered".into();
        record.detail =
            json!({"reason": "ping event: nothing to start", "event": event_json, "authentication": auth_detail});
        (StatusCode::OK, json!({"result": "filtered", "reason": "ping", "requestId": request_id}))
    } else if !judged.passed {
        record.verdict = "filtered".into();
        record.detail = json!({"failedRule": first_failure(&judged.rules), "rules": judged.rules, "event": event_json, "authentication": auth_detail});
        let mut out = json!({"result": "filtered", "requestId": request_id});
        // A rule over the evaluation budget: the sender learns why nothing started.
        if let Some(error) = judged.rules.iter().find_map(|r| r.error.as_deref()) {
            out["reason"] = json!(format!("a filter rule could not be evaluated: {error}"));
        }
        (StatusCode::OK, out)
    } else if let Err(full) = state.admission.admit(&*state.store, w.org).await {
        // The organization's queue is full: nothing starts, and the delivery is not claimed, so the host's
        // redelivery is judged again once the backlog has shrunk.
        delivery = None;
        record.verdict = "rejected".into();
        record.detail = json!({"reason": full.message(), "queued": full.queued, "limit": full.max, "rules": judged.rules, "event": event_json, "authentication": auth_detail});
        (
            StatusCode::TOO_MANY_REQUESTS,
            json!({"result": "rejected", "message": full.message(), "requestId": request_id}),
        )
    } else {
        let start = match pipehook_runner::pipeline::prepare_start(&start_request(&state, &loaded, &judged.event, None))
        {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "preparing an execution from a trigger failed");
                return unavailable();
            }
        };
        let id = start.execution.id.clone();
        record.verdict = "triggered".into();
        record.execution_id = Some(id.clone());
        record.detail = json!({"rules": judged.rules, "event": event_json, "authentication": auth_detail});
        execution = Some(start);
        (StatusCode::OK, json!({"result": "triggered", "pipelineExecutionId": id, "requestId": request_id}))
    };
    let touch = execution.as_ref().map(|_| (w.id, now));
    let write = TriggerWrite { inbound: record.clone(), delivery, execution, touch };
    match state.store.record_trigger(write).await {
        Ok(TriggerOutcome::Recorded) => answer(status, body),
        Ok(TriggerOutcome::Duplicate) => {
            let d = delivery_id.unwrap_or_default();
            let first = state.store.first_delivery(w.id, &d, cutoff).await.ok().flatten();
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
                        "pipelineExecutionId": record.execution_id,
                        "requestId": request_id,
                    }),
                ),
                Err(r) => r,
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "recording a trigger request failed");
            unavailable()
        }
    }
}

/// Records a request whose verdict needs no other write (through the same group commit).
async fn save(state: &AppState, record: &InboundRecord) -> Result<(), Response> {
    let write = TriggerWrite { inbound: record.clone(), delivery: None, execution: None, touch: None };
    state.store.record_trigger(write).await.map(|_| ()).map_err(|e| {
        tracing::error!(error = %e, "recording a trigger request failed");
        unavailable()
    })
}
