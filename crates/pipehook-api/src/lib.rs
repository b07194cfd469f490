//! pipehook's HTTP surface, and only HTTP.
//!
//! - [`router`] assembles everything behind one layer stack: request id, tracing span, metrics, and
//!   [`auth`], which authenticates every management request *before* routing, so an unauthenticated caller
//!   learns nothing about which routes exist.
//! - [`aws`]: the AWS JSON 1.1 endpoint (`POST /` with `X-Amz-Target`), SigV4-authenticated, AWS error shape.
//! - [`native`]: pipehook's own REST API under `/api/` (token-authenticated, Pulumi-style error shape).
//! - [`inbound`]: the trigger URLs git hosts call, and the inbound log, replay and explain routes.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`metrics`]: the in-process Prometheus registry the API and the workers record into.
//!
//! Each wire flavour owns its request/response types and its error shape; they never share DTOs.

pub mod auth;
pub mod aws;
pub mod githost;
pub mod inbound;
pub mod metrics;
pub mod native;
pub mod ops;
mod state;

pub use state::{ApiConfig, AppState};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use std::time::Instant;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
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
            tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path(), org = tracing::field::Empty)
        }).on_response(DefaultOnResponse::new().level(tracing::Level::INFO)))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
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
    let response = next.run(req).await;
    state.metrics.observe_request(&route, method.as_str(), response.status().as_u16(), started.elapsed());
    response
}

/// The request id of the current request as a header value, for responses that echo it under another name
/// (AWS clients read `x-amzn-RequestId`).
pub fn request_id_of(req_extensions: &http::Extensions) -> HeaderValue {
    req_extensions.get::<RequestId>().map(|r| r.header_value().clone()).unwrap_or_else(|| HeaderValue::from_static("-"))
}
