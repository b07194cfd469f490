//! The inbound log (`/api/orgs/{org}/inbound`), replay, and explain: the answers to "why did (or didn't)
//! this delivery start my pipeline?".

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::Json;
use pipehook_domain::time::Timestamp;
use pipehook_store::InboundRecord;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{first_failure, judge, load, start_request, LoadError};
use crate::auth::{ensure_org, Principal};
use crate::native::{RestError, RestQuery};
use crate::AppState;

const VERDICTS: [&str; 5] = ["triggered", "filtered", "duplicate", "unauthenticated", "rejected"];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundView {
    id: String,
    webhook: String,
    received_at: i64,
    peer: String,
    delivery_id: Option<String>,
    verdict: String,
    detail: Value,
    pipeline_execution_id: Option<String>,
    headers: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    body_truncated: bool,
    /// Why the body was not kept (`unauthenticated`); its size and SHA-256 are in `detail`.
    #[serde(skip_serializing_if = "Option::is_none")]
    body_omitted: Option<String>,
}

fn view(r: InboundRecord, with_body: bool) -> InboundView {
    let body_omitted = r.detail["bodyOmitted"].as_str().map(str::to_owned);
    InboundView {
        id: r.id,
        webhook: r.webhook_name,
        received_at: r.received_at.millis(),
        peer: r.peer,
        delivery_id: r.delivery_id,
        verdict: r.verdict,
        detail: r.detail,
        pipeline_execution_id: r.execution_id,
        headers: r.headers,
        body: (with_body && body_omitted.is_none()).then_some(r.body),
        body_truncated: r.body_truncated,
        body_omitted,
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    webhook: Option<String>,
    verdict: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(org): Path<String>,
    RestQuery(q): RestQuery<ListQuery>,
) -> Result<Json<Value>, RestError> {
    ensure_org(&principal, &org)?;
    if let Some(v) = &q.verdict {
        if !VERDICTS.contains(&v.as_str()) {
            return Err(RestError::new(
                StatusCode::BAD_REQUEST,
                format!("verdict must be one of {}", VERDICTS.join(", ")),
            ));
        }
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(RestError::new(StatusCode::BAD_REQUEST, "limit must be between 1 and 500"));
    }
    let before = match &q.cursor {
        Some(c) => Some(c.parse::<i64>().map_err(|_| RestError::new(StatusCode::BAD_REQUEST, "invalid cursor"))?),
        None => None,
    };
    let mut rows = state
        .store
        .list_inbound(principal.org.id, q.webhook.as_deref(), q.verdict.as_deref(), before, limit + 1)
        .await
        .map_err(RestError::from_store)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(|r| r.seq.to_string()) } else { None };
    let items: Vec<InboundView> = rows.into_iter().map(|r| view(r, false)).collect();
    Ok(Json(json!({"requests": items, "nextCursor": next})))
}

pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<InboundView>, RestError> {
    ensure_org(&principal, &org)?;
    let r = state
        .store
        .inbound(principal.org.id, &id)
        .await
        .map_err(RestError::from_store)?
        .ok_or_else(|| RestError::new(StatusCode::NOT_FOUND, format!("Not Found: no inbound request '{id}'")))?;
    Ok(Json(view(r, true)))
}

/// Evaluates a logged request again against the webhook as it is now and, if it passes, starts an execution.
/// Authentication and dedupe are not repeated: the request was authenticated when it arrived (an
/// unauthenticated one cannot be replayed).
pub async fn replay(
    State(state): State<AppState>,
    principal: Principal,
    Path((org, id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), RestError> {
    ensure_org(&principal, &org)?;
    let original = state
        .store
        .inbound(principal.org.id, &id)
        .await
        .map_err(RestError::from_store)?
        .ok_or_else(|| RestError::new(StatusCode::NOT_FOUND, format!("Not Found: no inbound request '{id}'")))?;
    if original.verdict == "unauthenticated" {
        return Err(RestError::new(StatusCode::CONFLICT, "an unauthenticated request cannot be replayed"));
    }
    if original.body_truncated {
        return Err(RestError::new(
            StatusCode::CONFLICT,
            "the logged body was truncated, so the request cannot be replayed",
        ));
    }
    if original.detail["bodyOmitted"].is_string() {
        return Err(RestError::new(
            StatusCode::CONFLICT,
            "the body of this request was not kept, so it cannot be replayed",
        ));
    }
    if original.webhook_id < 0 {
        // A build project's webhook (see `pipehook_store::builds`).
        return super::build_trigger::replay(&state, &original).await;
    }
    let webhook = state
        .store
        .webhook(principal.org.id, &original.webhook_name)
        .await
        .map_err(RestError::from_store)?
        .ok_or_else(|| {
        RestError::new(
            StatusCode::NOT_FOUND,
            format!("Not Found: webhook '{}' no longer exists", original.webhook_name),
        )
    })?;
    // Only into the webhook that received the request: one deleted and put again under the same name is another
    // webhook (its own secret and rules), which never authenticated this request.
    if webhook.id != original.webhook_id {
        return Err(replaced(&original.webhook_name));
    }
    let loaded = load(&state, webhook).await.map_err(load_error)?;
    let headers = headers_of(&original.headers);
    let payload: Value = super::parse_payload(&headers, original.body.as_bytes()).unwrap_or(Value::Null);
    let judged = judge(&state, &loaded, &headers, payload).await;
    let mut record = original.clone();
    record.id = uuid::Uuid::new_v4().to_string();
    record.received_at = Timestamp::now();
    record.delivery_id = None;
    record.execution_id = None;
    let mut tx = state.store.begin().await.map_err(RestError::from_store)?;
    if judged.passed && !judged.event.is_ping {
        let start = start_request(&state, &loaded, &judged.event, Some(&original.id));
        let execution = pipehook_runner::pipeline::start_in(&mut *tx, &start).await.map_err(RestError::from_store)?;
        tx.touch_webhook(loaded.webhook.id, record.received_at).await.map_err(RestError::from_store)?;
        record.verdict = "triggered".into();
        record.execution_id = Some(execution.id);
        record.detail = json!({"replayOf": original.id, "rules": judged.rules});
    } else {
        record.verdict = "filtered".into();
        record.detail =
            json!({"replayOf": original.id, "failedRule": first_failure(&judged.rules), "rules": judged.rules});
    }
    tx.insert_inbound(&record).await.map_err(RestError::from_store)?;
    tx.commit().await.map_err(RestError::from_store)?;
    Ok((
        StatusCode::OK,
        Json(json!({"requestId": record.id, "verdict": record.verdict, "pipelineExecutionId": record.execution_id})),
    ))
}

#[derive(Deserialize)]
pub struct ExplainQuery {
    event: Option<String>,
}

/// Evaluates a payload (the request body) against a webhook step by step, starting nothing.
pub async fn explain(
    State(state): State<AppState>,
    principal: Principal,
    Path((org, name)): Path<(String, String)>,
    RestQuery(q): RestQuery<ExplainQuery>,
    mut headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, RestError> {
    ensure_org(&principal, &org)?;
    let webhook = state
        .store
        .webhook(principal.org.id, &name)
        .await
        .map_err(RestError::from_store)?
        .ok_or_else(|| RestError::new(StatusCode::NOT_FOUND, format!("Not Found: no webhook '{name}'")))?;
    let loaded = load(&state, webhook).await.map_err(load_error)?;
    let payload: Value = super::parse_payload(&headers, &body)
        .map_err(|e| RestError::new(StatusCode::BAD_REQUEST, format!("the payload is not JSON: {e}")))?;
    if let Some(event) = &q.event {
        let v =
            HeaderValue::from_str(event).map_err(|_| RestError::new(StatusCode::BAD_REQUEST, "invalid event name"))?;
        headers.entry("x-github-event").or_insert(v);
    }
    let judged = judge(&state, &loaded, &headers, payload).await;
    let verdict = if judged.event.is_ping {
        "filtered (ping: nothing to start)"
    } else if judged.passed {
        "would trigger"
    } else {
        "would be filtered"
    };
    Ok(Json(json!({
        "webhook": loaded.webhook.name,
        "pipeline": loaded.pipeline.name,
        "authentication": {
            "type": loaded.webhook.definition["authentication"],
            "note": "explain evaluates the payload only; the signature or address is checked when a real request arrives",
        },
        "event": judged.event,
        "rules": judged.rules,
        "failedRule": first_failure(&judged.rules),
        "verdict": verdict,
    })))
}

/// The refusal to replay into a webhook re-created under the name of the one that received the request.
pub(super) fn replaced(name: &str) -> RestError {
    RestError::new(
        StatusCode::CONFLICT,
        format!(
            "webhook '{name}' was deleted and created again since this request arrived; a request is replayed only \
             into the webhook that received it"
        ),
    )
}

fn load_error(e: LoadError) -> RestError {
    match e {
        LoadError::Store(e) => RestError::from_store(e),
        LoadError::Broken(m) => RestError::new(StatusCode::CONFLICT, format!("the webhook cannot be evaluated: {m}")),
    }
}

pub(super) fn headers_of(logged: &Value) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in logged.as_object().into_iter().flatten() {
        if let (Ok(name), Some(Ok(value))) =
            (http::HeaderName::from_bytes(k.as_bytes()), v.as_str().map(HeaderValue::from_str))
        {
            h.insert(name, value);
        }
    }
    h
}
