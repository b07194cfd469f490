//! The organization's settings: `GET` and `PATCH /api/orgs/{org}/settings`, stored in the organizations table's
//! `settings` JSON. One setting so far: `suppressDuplicateBuilds` (bool, default false): a CodeBuild webhook
//! delivery for a commit a pipeline's CodeBuild action already built starts nothing (inbound verdict `duplicate`,
//! with `duplicateOf`) instead of building it a second time.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use pipehook_domain::org::OrgId;
use pipehook_store::Store;
use serde::Deserialize;
use serde_json::{json, Value};

use super::RestError;
use crate::auth::{ensure_org, Principal};
use crate::AppState;

pub const SUPPRESS_DUPLICATE_BUILDS: &str = "suppressDuplicateBuilds";

pub fn routes() -> Router<AppState> {
    Router::new().route("/orgs/{org}/settings", get(get_settings).patch(patch_settings))
}

/// The settings as shown: every known setting, with its default when unset.
fn view(stored: &Value) -> Value {
    json!({SUPPRESS_DUPLICATE_BUILDS: stored[SUPPRESS_DUPLICATE_BUILDS].as_bool().unwrap_or(false)})
}

/// Whether the organization suppresses a webhook build of a commit a pipeline already built.
pub async fn suppress_duplicate_builds(store: &dyn Store, org: OrgId) -> pipehook_store::StoreResult<bool> {
    Ok(store.org_settings(org).await?[SUPPRESS_DUPLICATE_BUILDS].as_bool().unwrap_or(false))
}

async fn get_settings(
    State(state): State<AppState>,
    principal: Principal,
    Path(org): Path<String>,
) -> Result<Json<Value>, RestError> {
    ensure_org(&principal, &org)?;
    let stored = state.store.org_settings(principal.org.id).await.map_err(RestError::from_store)?;
    Ok(Json(view(&stored)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SettingsPatch {
    suppress_duplicate_builds: Option<bool>,
}

async fn patch_settings(
    State(state): State<AppState>,
    principal: Principal,
    Path(org): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, RestError> {
    ensure_org(&principal, &org)?;
    let body = body.map_err(|e| RestError::new(e.status(), e.body_text()))?;
    let patch: SettingsPatch = serde_json::from_slice(&body).map_err(|e| {
        RestError::new(
            StatusCode::BAD_REQUEST,
            format!("Invalid settings: {e} (known: {SUPPRESS_DUPLICATE_BUILDS}, a boolean)"),
        )
    })?;
    let mut tx = state.store.begin().await.map_err(RestError::from_store)?;
    let mut stored = state.store.org_settings(principal.org.id).await.map_err(RestError::from_store)?;
    if let Some(v) = patch.suppress_duplicate_builds {
        stored[SUPPRESS_DUPLICATE_BUILDS] = json!(v);
    }
    tx.set_org_settings(principal.org.id, &stored).await.map_err(RestError::from_store)?;
    tx.commit().await.map_err(RestError::from_store)?;
    Ok(Json(view(&stored)))
}
