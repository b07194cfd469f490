//! Operational endpoints, unauthenticated: liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::time::Duration;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

/// The process is up and serving HTTP.
async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// The database answers and every migration this binary needs is applied.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match tokio::time::timeout(Duration::from_secs(5), state.store.ready()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "reason": e.to_string()})))
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": "database did not answer within 5 s"})),
        ),
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], render_metrics(&state.store, &state.metrics).await)
}

/// The metrics text with what the store knows now (each read bounded, so a stuck database cannot hang the
/// scrape; what could not be read is left out and `pipehook_queue_up` says so).
pub async fn render_metrics(
    store: &std::sync::Arc<dyn pipehook_store::Store>,
    metrics: &crate::metrics::Metrics,
) -> String {
    async fn bounded<T>(what: &str, f: impl std::future::Future<Output = pipehook_store::StoreResult<T>>) -> Option<T> {
        match tokio::time::timeout(Duration::from_secs(5), f).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "{what} unavailable for metrics");
                None
            }
            Err(_) => {
                tracing::warn!("{what} unavailable for metrics: the database did not answer within 5 s");
                None
            }
        }
    }
    let (depth, statuses) =
        tokio::join!(bounded("queue depth", store.depth()), bounded("status counts", store.status_counts()));
    metrics.render(&crate::metrics::Snapshot { depth, statuses })
}

/// `GET /`: what this server is and where to go, for a person who opened its address.
pub async fn home(State(state): State<AppState>) -> impl IntoResponse {
    let base = state.config.public_url.trim_end_matches('/');
    let text = format!(
        "pipehook {version}: a self-hosted webhook hub for CI/CD.\n\n\
         There is no web console yet; use the CLI, the AWS CLI or SDKs, or the REST API:\n\
         - AWS CodePipeline / CodeBuild JSON API: POST {base}/ (SigV4), e.g.\n\
         \x20   aws codepipeline list-pipelines --endpoint-url {base} --region {region}\n\
         - REST API: {base}/api/orgs/<org>/... with `Authorization: token <token>`, e.g.\n\
         \x20   pipehook --server {base} pipelines list\n\
         - Trigger URLs for git hosts: {base}/trigger?t=... (pipelines) and {base}/webhooks?t=... (build projects)\n\
         - Health: {base}/healthz, {base}/readyz; Prometheus metrics: {base}/metrics\n\n\
         Documentation: the README and docs/ in pipehook's repository ({repo}).\n",
        version = env!("CARGO_PKG_VERSION"),
        region = state.config.aws_region,
        repo = env!("CARGO_PKG_REPOSITORY"),
    );
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text)
}
