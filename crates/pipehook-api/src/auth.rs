//! Authentication, applied to every request before routing.
//!
//! - `/api` and everything under it: `Authorization: token <t>` (or `Bearer <t>`), looked up by hash.
//! - `POST /` (the AWS JSON endpoint): AWS Signature Version 4 against the organization's access keys. The
//!   body is read (bounded) here, because the signature covers its hash, and handed on unchanged.
//! - Everything else (health, metrics, and later the trigger URLs, which authenticate per webhook) passes.
//!
//! A verified request carries a [`Principal`] extension; handlers take it with the [`Principal`] extractor,
//! so a handler cannot forget which organization it serves.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pipehook_domain::credentials::{AccessKeyId, TokenHash};
use pipehook_domain::org::Organization;
use pipehook_store::TokenId;
use std::time::SystemTime;

use crate::aws::AwsError;
use crate::native::RestError;
use crate::AppState;

/// How long a SigV4 `X-Amz-Date` may be from the server's clock, as AWS allows.
pub const MAX_CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The authenticated caller: always exactly one organization.
#[derive(Debug, Clone)]
pub struct Principal {
    pub org: Organization,
    pub credential: Credential,
}

impl Principal {
    /// The trigger of an execution this caller starts by hand: AWS's `StartPipelineExecution` trigger type, with
    /// the credential as the detail (like AWS's caller ARN). Every API records manual starts alike, so an
    /// execution reads the same whichever API started it.
    pub fn manual_trigger(&self) -> serde_json::Value {
        let detail = match &self.credential {
            Credential::AccessKey(k) => format!("arn:aws:iam::{}:user/{}", self.org.account_id, k.as_str()),
            Credential::Token(t) => format!("pipehook:token/{}", t.0),
        };
        serde_json::json!({"triggerType": "StartPipelineExecution", "triggerDetail": detail})
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Token(TokenId),
    AccessKey(AccessKeyId),
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The middleware inserts it for every authenticated route; its absence is a routing mistake of ours.
        parts.extensions.get::<Principal>().cloned().ok_or_else(|| {
            tracing::error!("handler requires a principal but the route is not behind authentication");
            RestError::internal().into_response()
        })
    }
}

enum Scheme {
    Token,
    Aws,
    Open,
}

fn scheme_for(method: &Method, path: &str) -> Scheme {
    if path == "/api" || path.starts_with("/api/") {
        Scheme::Token
    } else if path == "/" && method == Method::POST {
        Scheme::Aws
    } else {
        Scheme::Open
    }
}

pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match scheme_for(req.method(), req.uri().path()) {
        Scheme::Open => next.run(req).await,
        Scheme::Token => match token_principal(&state, req.headers().get(header::AUTHORIZATION).cloned()).await {
            Ok(p) => {
                tracing::Span::current().record("org", p.org.name.as_str());
                req.extensions_mut().insert(p);
                next.run(req).await
            }
            Err(e) => e.into_response(),
        },
        Scheme::Aws => {
            let (parts, body) = req.into_parts();
            // A body declared over the cap is refused before anything else: that reveals nothing.
            if crate::server::declared_length(&parts.headers).is_some_and(|n| n > state.config.max_body_bytes) {
                return AwsError::too_large(state.config.max_body_bytes).into_response();
            }
            // The key is looked up before the body is read: a caller without a valid access key id gets its
            // answer without pipehook buffering (up to) the body cap for it.
            let key = match aws_key(&state, &parts).await {
                Ok(k) => k,
                Err(e) => return e.into_response(),
            };
            let (bytes, _budget) = match state.bodies.read(&parts.headers, body, state.config.max_body_bytes).await {
                Ok(b) => b,
                Err(crate::server::BodyError::TooLarge(_)) => {
                    return AwsError::too_large(state.config.max_body_bytes).into_response()
                }
                Err(crate::server::BodyError::Timeout) => {
                    return AwsError::new(
                        axum::http::StatusCode::REQUEST_TIMEOUT,
                        "RequestTimeoutException",
                        format!("the request body was not received within {} s", state.bodies.read_timeout.as_secs()),
                    )
                    .into_response()
                }
                Err(crate::server::BodyError::Broken(reason)) => {
                    return AwsError::new(axum::http::StatusCode::BAD_REQUEST, "SerializationException", reason)
                        .into_response()
                }
            };
            match aws_principal(&state, &parts, key, &bytes).await {
                Ok(p) => {
                    let mut req = Request::from_parts(parts, Body::from(bytes));
                    req.extensions_mut().insert(p);
                    next.run(req).await
                }
                Err(e) => e.into_response(),
            }
        }
    }
}

async fn token_principal(state: &AppState, authorization: Option<HeaderValue>) -> Result<Principal, RestError> {
    let presented = authorization
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            (scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer")).then(|| rest.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(RestError::unauthenticated)?;
    // A lookup by the hash of a high-entropy token: no secret is compared byte by byte here.
    match state.store.token_principal(&TokenHash::of(presented)).await {
        Ok(Some(p)) => Ok(Principal { org: p.org, credential: Credential::Token(p.token) }),
        Ok(None) => Err(RestError::unauthenticated()),
        Err(e) => Err(RestError::from_store(e)),
    }
}

/// A request's SigV4 `Authorization` with its access key's record: what can be checked before the body.
struct AwsKey {
    auth: pipehook_sigv4::Authorization,
    key_id: AccessKeyId,
    record: pipehook_store::AccessKeyRecord,
}

async fn aws_key(state: &AppState, parts: &Parts) -> Result<AwsKey, AwsError> {
    let auth = pipehook_sigv4::parse_authorization(&parts.headers).map_err(AwsError::from_sigv4)?;
    let key_id = AccessKeyId::parse(&auth.access_key_id).map_err(|_| AwsError::unrecognized_client())?;
    match state.store.access_key(&key_id).await {
        Ok(Some(record)) if record.revoked_at.is_none() => Ok(AwsKey { auth, key_id, record }),
        Ok(_) => Err(AwsError::unrecognized_client()),
        Err(e) => Err(AwsError::from_store(e)),
    }
}

async fn aws_principal(state: &AppState, parts: &Parts, key: AwsKey, body: &[u8]) -> Result<Principal, AwsError> {
    let AwsKey { auth, key_id, record } = key;
    let secret = state
        .master_key
        .decrypt(&key_id.encryption_context(), &record.secret_ciphertext)
        .map_err(|e| {
            tracing::error!(access_key_id = %key_id.as_str(), error = %e, "stored access key secret does not decrypt (wrong master key?)");
            AwsError::internal()
        })?;
    let secret = String::from_utf8(secret).map_err(|_| AwsError::internal())?;
    let services = crate::aws::signing_services(&parts.headers);
    let expect = pipehook_sigv4::Expectations {
        region: &state.config.aws_region,
        services: &services,
        max_skew: MAX_CLOCK_SKEW,
        now: SystemTime::now(),
    };
    // HTTP/2 carries the host as the `:authority` pseudo-header, which the signer signed as `host`.
    let with_host;
    let headers = match (parts.headers.contains_key(header::HOST), parts.uri.authority()) {
        (false, Some(authority)) => {
            let mut h = parts.headers.clone();
            if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
                h.insert(header::HOST, v);
            }
            with_host = h;
            &with_host
        }
        _ => &parts.headers,
    };
    pipehook_sigv4::verify(&parts.method, parts.uri.path(), parts.uri.query(), headers, body, &auth, &secret, &expect)
        .map_err(AwsError::from_sigv4)?;
    let org = match state.store.org_by_id(record.org).await {
        Ok(Some(o)) => o,
        Ok(None) => return Err(AwsError::unrecognized_client()),
        Err(e) => return Err(AwsError::from_store(e)),
    };
    Ok(Principal { org, credential: Credential::AccessKey(key_id) })
}

/// 403 for an authenticated caller asking about another organization. The same answer whether or not that
/// organization exists, so it cannot be used to probe names.
pub fn ensure_org(principal: &Principal, org_in_path: &str) -> Result<(), RestError> {
    if principal.org.name.as_str() == org_in_path {
        Ok(())
    } else {
        Err(RestError::new(
            StatusCode::FORBIDDEN,
            format!("Forbidden: this credential is not valid for organization '{org_in_path}'"),
        ))
    }
}
