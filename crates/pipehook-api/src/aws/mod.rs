//! The AWS JSON 1.1 endpoint: `POST /` with `X-Amz-Target: <Service>_<version>.<Operation>`.
//!
//! The [`crate::auth`] layer has already verified SigV4 and attached the [`Principal`]. Here the target is
//! parsed into a [`Target`] and dispatched per service. Every response, error or not, carries
//! `x-amzn-RequestId`, and every error is `{"__type": "<Name>", "message": "..."}` as the SDKs expect.

pub mod codebuild;
pub mod codepipeline;
pub(crate) mod model;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use pipehook_store::StoreError;
use serde_json::json;

use crate::auth::Principal;
use crate::AppState;

pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

pub fn routes() -> Router<AppState> {
    // `GET /` is for people who open the server's address in a browser.
    Router::new().route("/", post(endpoint).get(crate::ops::home))
}

/// The services this endpoint speaks, by their `X-Amz-Target` prefix and SigV4 signing name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    CodePipeline,
    CodeBuild,
}

impl Service {
    pub const ALL: [Service; 2] = [Service::CodePipeline, Service::CodeBuild];

    pub fn target_prefix(self) -> &'static str {
        match self {
            Service::CodePipeline => "CodePipeline_20150709",
            Service::CodeBuild => "CodeBuild_20161006",
        }
    }

    pub fn signing_name(self) -> &'static str {
        match self {
            Service::CodePipeline => "codepipeline",
            Service::CodeBuild => "codebuild",
        }
    }
}

/// A parsed `X-Amz-Target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub service: Service,
    pub operation: String,
}

impl Target {
    pub fn parse(headers: &HeaderMap) -> Result<Target, AwsError> {
        let raw = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| AwsError::unknown_operation("missing X-Amz-Target header"))?;
        let (prefix, operation) = raw.split_once('.').ok_or_else(|| AwsError::unknown_operation(raw))?;
        let service = Service::ALL
            .into_iter()
            .find(|s| s.target_prefix() == prefix)
            .ok_or_else(|| AwsError::unknown_operation(raw))?;
        if operation.is_empty() {
            return Err(AwsError::unknown_operation(raw));
        }
        Ok(Target { service, operation: operation.to_owned() })
    }
}

/// The operation a request calls, as a metrics label: `codepipeline.CreatePipeline` for an operation this
/// endpoint has, `unknown` for anything else, so a client cannot grow the label space.
pub fn operation_label(headers: &HeaderMap) -> String {
    let Ok(t) = Target::parse(headers) else { return "unknown".into() };
    let known = match t.service {
        Service::CodePipeline => codepipeline::Operation::from_name(&t.operation).is_some(),
        Service::CodeBuild => codebuild::Operation::from_name(&t.operation).is_some(),
    };
    if known {
        format!("{}.{}", t.service.signing_name(), t.operation)
    } else {
        "unknown".into()
    }
}

/// The SigV4 service names a request may be signed for: the one its target names, or (for a target we do
/// not recognise, which is answered with `UnknownOperationException` after authentication) any of ours.
pub fn signing_services(headers: &HeaderMap) -> Vec<&'static str> {
    match Target::parse(headers) {
        Ok(t) => vec![t.service.signing_name()],
        Err(_) => Service::ALL.iter().map(|s| s.signing_name()).collect(),
    }
}

/// The operation is routed on `X-Amz-Target`, so it must be signed (every SDK signs it): an unsigned one could
/// be swapped on a captured request to run another operation under its signature. The signature itself was
/// verified by the authentication layer; this looks at what it covered.
fn target_is_signed(headers: &HeaderMap) -> Result<(), AwsError> {
    let auth = pipehook_sigv4::parse_authorization(headers).map_err(AwsError::from_sigv4)?;
    auth.require_signed("X-Amz-Target").map_err(AwsError::from_sigv4)
}

async fn endpoint(State(state): State<AppState>, principal: Principal, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = target_is_signed(&headers) {
        return e.into_response();
    }
    let target = match Target::parse(&headers) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let unknown = || AwsError::unknown_operation(&format!("{}.{}", target.service.target_prefix(), target.operation));
    let result = match target.service {
        Service::CodePipeline => match codepipeline::Operation::from_name(&target.operation) {
            Some(op) => {
                let ctx = codepipeline::Ctx { state: &state, principal: &principal };
                codepipeline::dispatch(&ctx, op, &body).await
            }
            None => Err(unknown()),
        },
        Service::CodeBuild => match codebuild::Operation::from_name(&target.operation) {
            Some(op) => {
                let ctx = codebuild::Ctx { state: &state, principal: &principal };
                codebuild::dispatch(&ctx, op, &body).await
            }
            None => Err(unknown()),
        },
    };
    match result {
        Ok(value) => {
            let mut res = (StatusCode::OK, value.to_string()).into_response();
            res.headers_mut().insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            res
        }
        Err(e) => {
            tracing::debug!(error_type = e.kind, message = %e.message, operation = %target.operation, "aws call failed");
            e.into_response()
        }
    }
}

/// Parses an operation's input. An empty body is `{}`; malformed JSON or a member of the wrong type is
/// `SerializationException`, as the AWS JSON protocol answers. CodePipeline inputs are checked against the
/// model first ([`model`]), so a missing required member is `ValidationException` before this reads them.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AwsError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| AwsError::serialization(format!("Could not parse the request: {e}")))
}

/// Copies the request id into `x-amzn-RequestId` on every AWS endpoint response, including the
/// authentication failures produced before routing.
pub async fn request_id_header(req: Request, next: Next) -> Response {
    let is_aws = req.uri().path() == "/" && req.method() == axum::http::Method::POST;
    let id = crate::request_id_of(req.extensions());
    let mut res = next.run(req).await;
    if is_aws {
        res.headers_mut().insert(HeaderName::from_static("x-amzn-requestid"), id);
    }
    res
}

/// An AWS-shaped error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl AwsError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, kind, message: message.into() }
    }

    pub fn unknown_operation(target: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "UnknownOperationException", format!("Unknown operation: {target}"))
    }

    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "SerializationException", message)
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationException", message)
    }

    pub fn unrecognized_client() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            format!("Request body exceeds the limit of {limit} bytes"),
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "The request processing has failed because of an unknown error.",
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            "The service is temporarily unavailable; retry.",
        )
    }

    pub fn from_sigv4(e: pipehook_sigv4::SigV4Error) -> Self {
        Self::new(e.http_status(), e.aws_type(), e.message())
    }

    /// Store failures that reach the wire are ours, not the caller's: logged with their cause, shown as
    /// `InternalFailure` (or `ServiceUnavailableException` when the database is unreachable).
    pub fn from_store(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error in AWS API");
        if e.is_transient() {
            Self::unavailable()
        } else {
            Self::internal()
        }
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        let body = json!({"__type": self.kind, "message": self.message}).to_string();
        let mut res = (self.status, body).into_response();
        res.headers_mut().insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        res.headers_mut().insert(HeaderName::from_static("x-amzn-errortype"), HeaderValue::from_static(self.kind));
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(v: &str) -> Result<Target, AwsError> {
        let mut h = HeaderMap::new();
        h.insert("x-amz-target", HeaderValue::from_str(v).unwrap());
        Target::parse(&h)
    }

    #[test]
    fn targets() {
        assert_eq!(
            target("CodePipeline_20150709.ListPipelines").unwrap(),
            Target { service: Service::CodePipeline, operation: "ListPipelines".into() }
        );
        assert_eq!(target("CodeBuild_20161006.CreateWebhook").unwrap().service, Service::CodeBuild);
        for bad in ["CodePipeline_20150709.", "CodePipeline.ListPipelines", "S3.GetObject", "nodot"] {
            assert_eq!(target(bad).unwrap_err().kind, "UnknownOperationException", "{bad}");
        }
        assert_eq!(Target::parse(&HeaderMap::new()).unwrap_err().kind, "UnknownOperationException");
    }

    #[test]
    fn signing_services_follow_the_target() {
        let mut h = HeaderMap::new();
        assert_eq!(signing_services(&h), ["codepipeline", "codebuild"]);
        h.insert("x-amz-target", HeaderValue::from_static("CodeBuild_20161006.StartBuild"));
        assert_eq!(signing_services(&h), ["codebuild"]);
    }
}
