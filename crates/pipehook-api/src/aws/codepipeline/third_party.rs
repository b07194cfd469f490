//! The git host's repository-hooks API (GitHub-compatible: `POST /repos/{owner}/{repo}/hooks`,
//! `DELETE /repos/{owner}/{repo}/hooks/{id}`), for RegisterWebhookWithThirdParty and its inverse. The base
//! URL is configurable (`PIPEHOOK_GITHUB_API_URL`): GitHub Enterprise, or a local fake in tests.

use serde_json::json;
use std::time::Duration;

/// A failure, as stored in the webhook's `errorCode` / `errorMessage`.
#[derive(Debug, Clone)]
pub struct HostError {
    pub code: String,
    pub message: String,
}

fn client() -> Result<reqwest::Client, HostError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("pipehook/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| HostError { code: "ClientError".into(), message: e.to_string() })
}

fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn failure(res: reqwest::Response) -> HostError {
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(500).collect());
    HostError { code: format!("HTTP{}", status.as_u16()), message: format!("{status}: {message}") }
}

/// Creates the hook for `push` events; returns its id.
pub async fn create_hook(
    api: &str,
    owner: &str,
    repo: &str,
    token: &str,
    url: &str,
    secret: Option<&str>,
) -> Result<String, HostError> {
    create_hook_for(api, owner, repo, token, url, secret, &["push"]).await
}

/// Creates the hook for these GitHub events; returns its id.
pub async fn create_hook_for(
    api: &str,
    owner: &str,
    repo: &str,
    token: &str,
    url: &str,
    secret: Option<&str>,
    events: &[&str],
) -> Result<String, HostError> {
    let mut config = json!({"url": url, "content_type": "json", "insecure_ssl": "0"});
    if let Some(s) = secret {
        config["secret"] = json!(s);
    }
    let body = json!({"name": "web", "active": true, "events": events, "config": config});
    let res = client()?
        .post(format!("{api}/repos/{}/{}/hooks", segment(owner), segment(repo)))
        .header("authorization", format!("token {token}"))
        .header("accept", "application/vnd.github+json")
        .json(&body)
        .send()
        .await
        .map_err(|e| HostError { code: "ConnectionError".into(), message: e.to_string() })?;
    if !res.status().is_success() {
        return Err(failure(res).await);
    }
    let v: serde_json::Value =
        res.json().await.map_err(|e| HostError { code: "InvalidResponse".into(), message: e.to_string() })?;
    match v.get("id") {
        Some(id) if id.is_u64() || id.is_string() => {
            Ok(id.as_u64().map_or_else(|| id.as_str().unwrap_or_default().to_owned(), |n| n.to_string()))
        }
        _ => Err(HostError { code: "InvalidResponse".into(), message: "the created hook has no id".into() }),
    }
}

/// Replaces the hook's secret (`PATCH /repos/{owner}/{repo}/hooks/{id}`), after a rotation.
pub async fn set_hook_secret(
    api: &str,
    owner: &str,
    repo: &str,
    token: &str,
    id: &str,
    url: &str,
    secret: &str,
) -> Result<(), HostError> {
    let body = json!({"config": {"url": url, "content_type": "json", "insecure_ssl": "0", "secret": secret}});
    let res = client()?
        .patch(format!("{api}/repos/{}/{}/hooks/{}", segment(owner), segment(repo), segment(id)))
        .header("authorization", format!("token {token}"))
        .header("accept", "application/vnd.github+json")
        .json(&body)
        .send()
        .await
        .map_err(|e| HostError { code: "ConnectionError".into(), message: e.to_string() })?;
    if res.status().is_success() {
        Ok(())
    } else {
        Err(failure(res).await)
    }
}

/// Deletes the hook; a hook that is already gone counts as deleted.
pub async fn delete_hook(api: &str, owner: &str, repo: &str, token: &str, id: &str) -> Result<(), HostError> {
    let res = client()?
        .delete(format!("{api}/repos/{}/{}/hooks/{}", segment(owner), segment(repo), segment(id)))
        .header("authorization", format!("token {token}"))
        .header("accept", "application/vnd.github+json")
        .send()
        .await
        .map_err(|e| HostError { code: "ConnectionError".into(), message: e.to_string() })?;
    if res.status().is_success() || res.status() == reqwest::StatusCode::NOT_FOUND {
        Ok(())
    } else {
        Err(failure(res).await)
    }
}
