//! Pipeline webhooks over pipehook's own REST API, under `/api/orgs/{org}/webhooks`: list, get, put (create
//! or replace), delete, and (de)registration with the git host.
//!
//! A second door to what PutWebhook and friends do on the AWS endpoint: every route calls the same function
//! as the AWS operation (`aws::codepipeline::webhooks::put_webhook` and its siblings), so a definition passes
//! the same rules and is stored the same way whichever API sent it. Only the wire differs: camelCase JSON owned
//! by this file, timestamps in epoch milliseconds, and HTTP statuses in the `{"code","message"}` shape, mapped
//! from the AWS exception with its message ([`from_aws`]). The secret is never returned: the stored
//! definition shows `REDACTED` in its place. A put that changes the secret keeps the previous one valid for the
//! rotation overlap (`previousSecretValidUntil`); `POST .../revoke-previous-secret` ends that at once. The inbound
//! log and `explain` are in `inbound::log`.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use pipehook_domain::pipeline::Tag;
use pipehook_store::WebhookRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::RestError;
use crate::auth::{ensure_org, Principal};
use crate::aws::codepipeline::webhooks::{self as shared, WebhookDefinition, REDACTED};
use crate::aws::codepipeline::Ctx;
use crate::aws::AwsError;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/orgs/{org}/webhooks", get(list))
        .route("/orgs/{org}/webhooks/{name}", get(get_one).put(put).delete(delete))
        .route("/orgs/{org}/webhooks/{name}/register", post(register))
        .route("/orgs/{org}/webhooks/{name}/deregister", post(deregister))
        .route("/orgs/{org}/webhooks/{name}/revoke-previous-secret", post(revoke_previous_secret))
}

/// The largest page a listing returns, and the size when `limit` is not given (ListWebhooks' maximum).
const MAX_PAGE: u32 = 100;

// ---------------------------------------------------------------------------------------------------------
// Wire types, this API's own.
// ---------------------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct PageQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct TagView {
    key: String,
    value: String,
}

/// A webhook: what PutWebhook / ListWebhooks return, in this API's conventions.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookView {
    name: String,
    /// The trigger URL to give the git host.
    url: String,
    arn: String,
    /// The definition as put, with `SecretToken` shown as `REDACTED`.
    definition: Value,
    tags: Vec<TagView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_triggered: Option<i64>,
    /// The last registration failure with the git host, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
    /// Until when (epoch ms) the secret a put replaced is still accepted, during the rotation overlap;
    /// `POST .../revoke-previous-secret` ends it at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_secret_valid_until: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WebhookList {
    webhooks: Vec<WebhookView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

// ---------------------------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------------------------

/// By name. The cursor is the name of the last webhook of the previous page.
async fn list(
    principal: Principal,
    State(state): State<AppState>,
    Path(org): Path<String>,
    page: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<WebhookList>, RestError> {
    ensure_org(&principal, &org)?;
    let Query(page) = page.map_err(|e| RestError::new(e.status(), e.body_text()))?;
    let limit = page_limit(page.limit)?;
    let ctx = Ctx { state: &state, principal: &principal };
    let listed = shared::list_webhooks(&ctx, page.cursor.as_deref(), limit).await.map_err(from_aws)?;
    let webhooks = listed.webhooks.into_iter().map(|(w, tags)| view(&ctx, w, tags)).collect::<Result<_, _>>()?;
    Ok(Json(WebhookList { webhooks, next_cursor: listed.next }))
}

async fn get_one(
    principal: Principal,
    State(state): State<AppState>,
    Path((org, name)): Path<(String, String)>,
) -> Result<Json<WebhookView>, RestError> {
    ensure_org(&principal, &org)?;
    let ctx = Ctx { state: &state, principal: &principal };
    let w = shared::find_webhook(&ctx, "name", &name).await.map_err(from_aws)?;
    let tags = shared::webhook_tags(&ctx, &name).await.map_err(from_aws)?;
    Ok(Json(view(&ctx, w, tags)?))
}

/// Creates (201) or replaces (200) the webhook. The body is PutWebhook's `WebhookDefinition`, optionally with
/// `tags` beside its members, or PutWebhook's whole input `{"webhook": {...}, "tags": [...]}`. Its `name` may
/// be left out; when given it must be the path's.
async fn put(
    principal: Principal,
    State(state): State<AppState>,
    Path((org, name)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<WebhookView>), RestError> {
    ensure_org(&principal, &org)?;
    let body = body.map_err(|e| RestError::new(e.status(), e.body_text()))?;
    let (definition, tags) = put_input(&name, &body)?;
    let ctx = Ctx { state: &state, principal: &principal };
    let put = shared::put_webhook(&ctx, definition, &tags).await.map_err(from_aws)?;
    let status = if put.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(view(&ctx, put.record, put.tags)?)))
}

/// Deletes the webhook: its URL stops working at once. Deleting one that does not exist succeeds too.
async fn delete(
    principal: Principal,
    State(state): State<AppState>,
    Path((org, name)): Path<(String, String)>,
) -> Result<StatusCode, RestError> {
    ensure_org(&principal, &org)?;
    let ctx = Ctx { state: &state, principal: &principal };
    shared::delete_webhook(&ctx, "name", &name).await.map_err(from_aws)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates the repository hook through the git host's API (RegisterWebhookWithThirdParty).
async fn register(
    principal: Principal,
    State(state): State<AppState>,
    Path((org, name)): Path<(String, String)>,
) -> Result<Json<WebhookView>, RestError> {
    ensure_org(&principal, &org)?;
    let ctx = Ctx { state: &state, principal: &principal };
    let w = shared::register_webhook(&ctx, "name", &name).await.map_err(from_aws)?;
    let tags = shared::webhook_tags(&ctx, &name).await.map_err(from_aws)?;
    Ok(Json(view(&ctx, w, tags)?))
}

/// Ends the rotation overlap at once: the secret a put replaced stops being accepted, only the current one signs.
async fn revoke_previous_secret(
    principal: Principal,
    State(state): State<AppState>,
    Path((org, name)): Path<(String, String)>,
) -> Result<Json<WebhookView>, RestError> {
    ensure_org(&principal, &org)?;
    let ctx = Ctx { state: &state, principal: &principal };
    let w = shared::revoke_previous_secret(&ctx, "name", &name).await.map_err(from_aws)?;
    let tags = shared::webhook_tags(&ctx, &name).await.map_err(from_aws)?;
    Ok(Json(view(&ctx, w, tags)?))
}

/// Deletes the repository hook a registration created (DeregisterWebhookWithThirdParty).
async fn deregister(
    principal: Principal,
    State(state): State<AppState>,
    Path((org, name)): Path<(String, String)>,
) -> Result<Json<WebhookView>, RestError> {
    ensure_org(&principal, &org)?;
    let ctx = Ctx { state: &state, principal: &principal };
    let w = shared::deregister_webhook(&ctx, "name", &name).await.map_err(from_aws)?;
    let tags = shared::webhook_tags(&ctx, &name).await.map_err(from_aws)?;
    Ok(Json(view(&ctx, w, tags)?))
}

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

fn bad_request(message: impl Into<String>) -> RestError {
    RestError::new(StatusCode::BAD_REQUEST, message)
}

/// An AWS exception from the shared webhook functions as a REST error, with AWS's message: `*NotFound*` is
/// 404, `ConcurrentModificationException` 409, our own failures 500 / 503 (their messages are generic), and
/// everything else is the caller's mistake, 400: `ValidationException`, `Invalid*`, `SerializationException`,
/// `TooManyTagsException`, and `LimitExceededException` (as the native pipelines API answers its quota).
fn from_aws(e: AwsError) -> RestError {
    match e.kind {
        "ConcurrentModificationException" => RestError::new(StatusCode::CONFLICT, e.message),
        kind if kind.contains("NotFound") => RestError::new(StatusCode::NOT_FOUND, e.message),
        _ if e.status == StatusCode::SERVICE_UNAVAILABLE => {
            RestError::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable: the database is unreachable; retry")
        }
        _ if e.status.is_server_error() => RestError::internal(),
        _ => bad_request(e.message),
    }
}

fn page_limit(limit: Option<u32>) -> Result<u32, RestError> {
    match limit {
        None => Ok(MAX_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(bad_request(format!("limit must be from 1 to {MAX_PAGE}"))),
    }
}

/// The definition and tags of a put body (see [`put`]), the definition named after the path.
fn put_input(name: &str, body: &[u8]) -> Result<(WebhookDefinition, Vec<Tag>), RestError> {
    let mut doc: Value = serde_json::from_slice(body).map_err(|e| bad_request(format!("invalid request body: {e}")))?;
    let Some(members) = doc.as_object_mut() else {
        return Err(bad_request("invalid request body: expected a webhook definition (a JSON object)"));
    };
    let tags = members.remove("tags").unwrap_or(Value::Array(Vec::new()));
    let mut definition = match members.remove("webhook") {
        Some(inner) if inner.is_object() => inner,
        Some(_) => return Err(bad_request("invalid request body: \"webhook\" must be a webhook definition")),
        None => doc,
    };
    match definition.get("name") {
        None | Some(Value::Null) => {
            definition["name"] = Value::from(name);
        }
        Some(Value::String(given)) if given != name => {
            return Err(bad_request(format!(
                "the definition's name '{given}' is not the webhook's name '{name}' in the path; webhooks cannot be \
                 renamed"
            )));
        }
        Some(_) => {}
    }
    let definition: WebhookDefinition =
        serde_json::from_value(definition).map_err(|e| bad_request(format!("invalid webhook definition: {e}")))?;
    // What GET shows in place of the secret must not become the secret when a fetched definition is put back.
    if definition.authentication_configuration.secret_token.as_deref() == Some(REDACTED) {
        return Err(bad_request(format!(
            "SecretToken is '{REDACTED}', the placeholder shown instead of the secret; give the real secret"
        )));
    }
    let tags: Vec<TagView> = serde_json::from_value(tags).map_err(|e| bad_request(format!("invalid tags: {e}")))?;
    Ok((definition, tags.into_iter().map(|t| Tag { key: t.key, value: t.value }).collect()))
}

fn view(ctx: &Ctx<'_>, w: WebhookRecord, tags: Vec<Tag>) -> Result<WebhookView, RestError> {
    Ok(WebhookView {
        url: shared::webhook_url(ctx, &w).map_err(from_aws)?,
        arn: shared::webhook_arn(ctx, &w.name),
        name: w.name,
        definition: w.definition,
        tags: tags.into_iter().map(|t| TagView { key: t.key, value: t.value }).collect(),
        last_triggered: w.last_triggered.map(|t| t.millis()),
        error_code: w.error_code,
        error_message: w.error_message,
        previous_secret_valid_until: w
            .previous_secret_ciphertext
            .as_ref()
            .and(w.previous_secret_expires_at)
            .filter(|t| t.millis() > pipehook_domain::time::Timestamp::now().millis())
            .map(|t| t.millis()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn definition() -> Value {
        json!({
            "targetPipeline": "app",
            "targetAction": "Source",
            "filters": [{"jsonPath": "$.ref", "matchEquals": "refs/heads/{Branch}"}],
            "authentication": "GITHUB_HMAC",
            "authenticationConfiguration": {"SecretToken": "s3cret"},
        })
    }

    fn input(body: Value) -> Result<(WebhookDefinition, Vec<Tag>), RestError> {
        put_input("gh", &serde_json::to_vec(&body).unwrap())
    }

    #[test]
    fn put_bodies() {
        // Bare, the name taken from the path, tags beside the members.
        let mut bare = definition();
        bare["tags"] = json!([{"key": "team", "value": "ci"}]);
        let (d, tags) = input(bare).unwrap();
        assert_eq!((d.name.as_str(), d.target_pipeline.as_str()), ("gh", "app"));
        assert_eq!(tags, [Tag { key: "team".into(), value: "ci".into() }]);
        // PutWebhook's input, with the same name as the path.
        let mut named = definition();
        named["name"] = json!("gh");
        let (d, tags) = input(json!({"webhook": named, "tags": []})).unwrap();
        assert_eq!(d.name, "gh");
        assert!(tags.is_empty());

        let cases: [(Value, &str); 7] = [
            (json!({"webhook": {"name": "other"}}), "cannot be renamed"),
            (json!([1]), "a JSON object"),
            (json!({"webhook": "gh"}), "must be a webhook definition"),
            (json!({"name": "gh"}), "invalid webhook definition"),
            (
                {
                    let mut d = definition();
                    d["tags"] = json!([{"key": "k"}]);
                    d
                },
                "invalid tags",
            ),
            (
                {
                    let mut d = definition();
                    d["authenticationConfiguration"]["SecretToken"] = json!(REDACTED);
                    d
                },
                "the real secret",
            ),
            (
                {
                    let mut d = definition();
                    d["name"] = json!("gh2");
                    d
                },
                "'gh2'",
            ),
        ];
        for (body, want) in cases {
            let e = input(body.clone()).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{body}");
            assert!(e.message.contains(want), "{body}: {}", e.message);
        }
        let e = put_input("gh", b"{not json").unwrap_err();
        assert!(e.message.starts_with("invalid request body"), "{}", e.message);
    }

    #[test]
    fn aws_exceptions_become_statuses() {
        let cases = [
            ("ValidationException", StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST),
            ("InvalidWebhookFilterPatternException", StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST),
            ("InvalidWebhookAuthenticationParametersException", StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST),
            ("InvalidTagsException", StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST),
            ("TooManyTagsException", StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST),
            ("LimitExceededException", StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST),
            ("PipelineNotFoundException", StatusCode::BAD_REQUEST, StatusCode::NOT_FOUND),
            ("WebhookNotFoundException", StatusCode::BAD_REQUEST, StatusCode::NOT_FOUND),
            ("ConcurrentModificationException", StatusCode::BAD_REQUEST, StatusCode::CONFLICT),
        ];
        for (kind, aws_status, want) in cases {
            let e = from_aws(AwsError::new(aws_status, kind, "the message"));
            assert_eq!((e.status, e.message.as_str()), (want, "the message"), "{kind}");
        }
        assert_eq!(from_aws(AwsError::internal()), RestError::internal());
        assert_eq!(from_aws(AwsError::unavailable()).status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
