//! Bitbucket Cloud's repository hooks (API 2.0): `POST /repositories/{workspace}/{repo}/hooks`, `PUT` and
//! `DELETE /repositories/{workspace}/{repo}/hooks/{uuid}`.
//!
//! The caller is authenticated with the project's token: `user:app-password` as HTTP Basic (Bitbucket's app
//! passwords), anything else as a Bearer token (repository, project and workspace access tokens, OAuth). The
//! hook subscribes to the events the webhook's filter groups need, among `repo:push` and the four pull request
//! events CodeBuild maps (created, updated, fulfilled, rejected), and carries a secret, so Bitbucket signs each
//! delivery (`X-Hub-Signature: sha256=`); CodeBuild gives Bitbucket webhooks no secret, so pipehook keeps this
//! one to itself and never returns it.

use serde_json::{json, Value};

use super::{deleted, send, succeeded, HostError};

/// `Authorization` for a Bitbucket token: Basic for `user:app-password`, else Bearer.
pub(crate) fn authorization(token: &str) -> String {
    use base64::Engine;
    if token.contains(':') {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(token))
    } else {
        format!("Bearer {token}")
    }
}

/// `{api}/repositories/{workspace}/{repo}`, each segment encoded.
pub(crate) fn repository_url(api: &str, full_name: &str) -> String {
    let (workspace, repo) = full_name.split_once('/').unwrap_or((full_name, ""));
    format!("{api}/repositories/{}/{}", super::segment(workspace), super::segment(repo))
}

/// A hook's settings; without a secret, Bitbucket keeps the one the hook has.
fn settings(url: &str, secret: Option<&str>, events: &[&str]) -> Value {
    let mut body = json!({
        "description": "pipehook (CodeBuild-compatible build webhook)",
        "url": url,
        "active": true,
        "events": events,
    });
    if let Some(secret) = secret {
        body["secret"] = json!(secret);
    }
    body
}

/// Creates the hook of `workspace/repo` for these events (`repo:push`, `pullrequest:created`, ...); returns its
/// uuid (with Bitbucket's braces).
pub async fn create_hook(
    api: &str,
    full_name: &str,
    token: &str,
    url: &str,
    secret: &str,
    events: &[&str],
) -> Result<String, HostError> {
    let body = settings(url, Some(secret), events);
    let req = super::client()?
        .post(format!("{}/hooks", repository_url(api, full_name)))
        .header("authorization", authorization(token))
        .json(&body);
    let res = succeeded(send(req).await?).await?;
    let v: Value =
        res.json().await.map_err(|e| HostError { code: "InvalidResponse".into(), message: e.to_string() })?;
    match v.get("uuid").and_then(Value::as_str) {
        Some(uuid) if !uuid.is_empty() => Ok(uuid.to_owned()),
        _ => Err(HostError { code: "InvalidResponse".into(), message: "the created hook has no uuid".into() }),
    }
}

/// Updates the hook (`PUT .../hooks/{uuid}`): its events, and its secret when one is given.
pub async fn update_hook(
    api: &str,
    full_name: &str,
    token: &str,
    uuid: &str,
    url: &str,
    secret: Option<&str>,
    events: &[&str],
) -> Result<(), HostError> {
    let req = super::client()?
        .put(format!("{}/hooks/{}", repository_url(api, full_name), super::segment(uuid)))
        .header("authorization", authorization(token))
        .json(&settings(url, secret, events));
    succeeded(send(req).await?).await.map(drop)
}

/// Deletes the hook; a hook that is already gone counts as deleted.
pub async fn delete_hook(api: &str, full_name: &str, token: &str, uuid: &str) -> Result<(), HostError> {
    let req = super::client()?
        .delete(format!("{}/hooks/{}", repository_url(api, full_name), super::segment(uuid)))
        .header("authorization", authorization(token));
    deleted(send(req).await?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_urls() {
        assert_eq!(authorization("abc"), "Bearer abc");
        assert_eq!(authorization("me:app-pass"), "Basic bWU6YXBwLXBhc3M=");
        assert_eq!(repository_url("http://h/2.0", "ws/my repo"), "http://h/2.0/repositories/ws/my%20repo");
    }
}
