//! pipehook's own REST API under `/api/` (token-authenticated): the caller's organization here, and its
//! pipelines, executions and logs in [`pipelines`]. Errors use the Pulumi Cloud shape,
//! `{"code": <status>, "message": "..."}`, so one client handles both this and the Pulumi-compatible routes.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use pipehook_store::StoreError;
use serde::Serialize;
use serde_json::json;

use crate::auth::{ensure_org, Principal};
use crate::AppState;

mod hooks;
mod pipelines;
pub mod settings;
mod webhooks;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/orgs/{org}", get(get_org))
        .merge(pipelines::routes())
        .merge(hooks::routes())
        .merge(webhooks::routes())
        .merge(settings::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OrgResponse {
    name: String,
    aws_account_id: String,
    created_at: i64,
}

/// The caller's organization: its name and the AWS account id that appears in its ARNs.
async fn get_org(principal: Principal, Path(org): Path<String>) -> Result<Json<OrgResponse>, RestError> {
    ensure_org(&principal, &org)?;
    Ok(Json(OrgResponse {
        name: principal.org.name.to_string(),
        aws_account_id: principal.org.account_id.to_string(),
        created_at: principal.org.created_at.millis(),
    }))
}

pub async fn not_found() -> RestError {
    RestError::new(StatusCode::NOT_FOUND, "Not Found")
}

/// A known path with a method it does not serve; answered in the REST error shape like every other error.
async fn method_not_allowed() -> RestError {
    RestError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

/// A REST error: status and message, nothing internal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestError {
    pub status: StatusCode,
    pub message: String,
}

impl RestError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    pub fn unauthenticated() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized: No credentials provided or are invalid.")
    }

    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    }

    pub fn from_store(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Self::new(StatusCode::CONFLICT, m),
            StoreError::NotFound(m) => Self::new(StatusCode::NOT_FOUND, m),
            e if e.is_transient() => {
                tracing::error!(error = %e, "database unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable: the database is unreachable; retry")
            }
            e => {
                tracing::error!(error = %e, "store error in REST API");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        crate::with_request_id(self.status, json!({"code": self.status.as_u16(), "message": self.message}))
    }
}

/// axum's `Query<T>` with its rejection (a malformed or mistyped query string) in the REST error shape,
/// `{"code": 400, "message": ...}`, instead of axum's `text/plain`.
pub struct RestQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for RestQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = RestError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, RestError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(RestQuery(value)),
            Err(e) => Err(RestError::new(e.status(), e.body_text())),
        }
    }
}
