//! pipehook's HTTP surface, and only HTTP.
//!
//! - [`router`] assembles everything behind one layer stack: request id, tracing span, metrics, and
//!   [`auth`], which authenticates every management request *before* routing, so an unauthenticated caller
//!   learns nothing about which routes exist.
//! - [`aws`]: the AWS JSON 1.1 endpoint (`POST /` with `X-Amz-Target`), SigV4-authenticated, AWS error shape.
//! - [`native`]: pipehook's own REST API under `/api/` (token-authenticated, Pulumi-style error shape).
//! - [`inbound`]: the trigger URLs git hosts call, and the inbound log, replay and explain routes.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`server`]: the server loop with connection, header and idle limits, and the request body budget.
//! - [`metrics`]: the in-process Prometheus registry the API and the workers record into.
//!
//! Each wire flavour owns its request/response types and its error shape; they never share DTOs.

pub mod admission;
pub mod auth;
pub mod aws;
pub mod githost;
pub mod inbound;
pub mod metrics;
pub mod native;
pub mod ops;
pub mod server;
mod state;

pub use state::{ApiConfig, AppState};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use std::time::Instant;
use tower_http::request_id::RequestId;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(ops::routes())
        .merge(aws::routes())
        .merge(inbound::trigger_routes())
        .merge(inbound::build_trigger_routes())
        .nest("/api", native::routes().merge(inbound::api_routes()))
        .fallback(native::not_found)
        // Extractors (`Json`, `Bytes`) refuse larger bodies with 413; the AWS endpoint checks its own.
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(middleware::from_fn(aws::request_id_header))
        .layer(middleware::from_fn_with_state(state.clone(), record_metrics))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.extensions().get::<RequestId>().and_then(|r| r.header_value().to_str().ok()).unwrap_or("-");
            let client = req.extensions().get::<ClientRequestId>().map(|c| c.0.as_str());
            tracing::info_span!("request", request_id = %id, client_request_id = client, method = %req.method(), path = %req.uri().path(), org = tracing::field::Empty)
        }).on_response(DefaultOnResponse::new().level(tracing::Level::INFO)))
        .layer(middleware::from_fn(request_ids))
        .with_state(state)
}

/// What a worker-only node serves: `/healthz`, `/readyz` and `/metrics`, with the same request ids and
/// metrics as the whole application.
pub fn ops_router(state: AppState) -> Router {
    Router::new()
        .merge(ops::routes())
        .layer(middleware::from_fn_with_state(state.clone(), record_metrics))
        .layer(middleware::from_fn(request_ids))
        .with_state(state)
}

/// Records request count and latency by route template (never the raw path: it would explode the label
/// space), method and status.
async fn record_metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_owned();
    let method = req.method().clone();
    // Every AWS call is `POST /`: the operation is what tells them apart.
    let operation =
        if route == "/" && method == http::Method::POST { aws::operation_label(req.headers()) } else { String::new() };
    let response = next.run(req).await;
    state.metrics.observe_request(
        &route,
        &operation,
        method_label(&method),
        response.status().as_u16(),
        started.elapsed(),
    );
    if let Some(result) = response.extensions().get::<inbound::TriggerResult>() {
        state.metrics.trigger(if route == "/trigger" { "pipeline" } else { "build" }, result.0);
    }
    response
}

/// The method as a metrics label: the standard methods by name, anything else (a client may send any token as
/// a method) as `other`, so the label space stays bounded.
fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// An error answer's JSON body, waiting for [`request_ids`] to add the request's id as `requestId` (the
/// handler that builds an error often has no access to the request).
#[derive(Clone)]
struct ErrorBody(serde_json::Value);

/// A JSON error answer that will carry the request id (`requestId`), so an operator can find the request's
/// log lines from what the client saw.
pub fn with_request_id(status: http::StatusCode, body: serde_json::Value) -> Response {
    use axum::response::IntoResponse;
    let mut response = (status, axum::Json(body.clone())).into_response();
    response.extensions_mut().insert(ErrorBody(body));
    response
}

/// Gives every request an id of ours (a UUID v4), in the `x-request-id` request and response headers, the
/// request's log span, error answers (`requestId`), AWS answers (`x-amzn-RequestId`) and the inbound log. An id
/// the client sent is not trusted (it names stored records); it is kept in the span as `client_request_id`.
async fn request_ids(mut req: Request, next: Next) -> Response {
    let name = HeaderName::from_static(REQUEST_ID_HEADER);
    let client = req.headers_mut().remove(&name);
    let id = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).unwrap_or_else(|_| HeaderValue::from_static("-"));
    req.headers_mut().insert(name.clone(), id.clone());
    req.extensions_mut().insert(RequestId::new(id.clone()));
    if let Some(client) = client.as_ref().and_then(|v| v.to_str().ok()) {
        req.extensions_mut().insert(ClientRequestId(client.chars().take(128).collect()));
    }
    let mut response = next.run(req).await;
    if let Some(ErrorBody(mut body)) = response.extensions_mut().remove::<ErrorBody>() {
        if let Some(fields) = body.as_object_mut() {
            fields.entry("requestId").or_insert_with(|| serde_json::Value::from(id.to_str().unwrap_or("-")));
            let status = response.status();
            let mut rebuilt = axum::response::IntoResponse::into_response((status, axum::Json(body)));
            std::mem::swap(rebuilt.headers_mut(), response.headers_mut());
            std::mem::swap(rebuilt.extensions_mut(), response.extensions_mut());
            response = rebuilt;
        }
    }
    response.headers_mut().insert(name, id);
    response
}

/// The `x-request-id` a client sent, kept for the log (see [`request_ids`]).
#[derive(Clone)]
struct ClientRequestId(String);

/// The request id of the current request as a header value, for responses that echo it under another name
/// (AWS clients read `x-amzn-RequestId`).
pub fn request_id_of(req_extensions: &http::Extensions) -> HeaderValue {
    req_extensions.get::<RequestId>().map(|r| r.header_value().clone()).unwrap_or_else(|| HeaderValue::from_static("-"))
}
