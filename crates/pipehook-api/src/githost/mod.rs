//! The git hosts' REST APIs, for the few things pipehook asks of them: creating, re-keying and deleting the
//! repository hook that delivers to a trigger URL, and reading what a delivery's payload lacks (a pull request's
//! changed files and head commit message, see [`changes`]).
//!
//! - GitHub and GitHub Enterprise (`PIPEHOOK_GITHUB_API_URL`): `GET` and `POST /repos/{owner}/{repo}/hooks`,
//!   `PATCH` and `DELETE /repos/{owner}/{repo}/hooks/{id}`, for RegisterWebhookWithThirdParty (one hook per
//!   webhook: [`ensure_hook`], [`remove_hooks`]) and CodeBuild webhooks.
//! - [`gitlab`]: GitLab's REST API v4 (`PIPEHOOK_GITLAB_API_URL`).
//! - [`bitbucket`]: Bitbucket Cloud's API 2.0 (`PIPEHOOK_BITBUCKET_API_URL`).
//!
//! Every base URL is the operator's (a GitHub Enterprise server, a self-managed GitLab, or a local fake in
//! tests), so these calls are not subject to the outbound webhooks' address policy. Redirects are not followed
//! and every call has a timeout.

pub mod bitbucket;
pub mod changes;
pub mod status;

use serde_json::json;
use std::time::Duration;

/// A failure, as stored in the webhook's `errorCode` / `errorMessage`.
#[derive(Debug, Clone)]
pub struct HostError {
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// One client for every call (connections are reused across deliveries): 15 s per call, no redirects.
fn client() -> Result<reqwest::Client, HostError> {
    static CLIENT: std::sync::OnceLock<Result<reqwest::Client, String>> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .connect_timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("pipehook/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|message| HostError { code: "ClientError".into(), message })
}

/// The repository path of a git URL: what follows the host in `scheme://host/path` or scp-like
/// `[user@]host:path`. A local path (`/srv/git/repo`) names no repository on a host: `None`.
fn repository_path(location: &str) -> Option<&str> {
    if let Some((_, rest)) = location.split_once("://") {
        return rest.split_once('/').map(|(_, path)| path);
    }
    let (host, path) = location.split_once(':')?;
    (!host.is_empty() && !host.contains('/')).then_some(path)
}

/// The full path of a GitLab project (`https://gitlab.com/group/sub/repo(.git)` → `group/sub/repo`).
pub(crate) fn gitlab_path(location: &str) -> Option<String> {
    let path = repository_path(location)?.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    (segments.len() >= 2 && segments.iter().all(|s| !s.is_empty() && !is_dots(s))).then(|| path.to_owned())
}

/// `owner`, `repo` of a GitHub location (`https://github.com/owner/repo(.git)`, `git@github.com:owner/repo`).
pub(crate) fn github_repo(location: &str) -> Option<(String, String)> {
    let mut parts = repository_path(location)?.trim_end_matches('/').split('/');
    let owner = parts.next()?.to_owned();
    let repo = parts.next()?.trim_end_matches(".git").to_owned();
    (!owner.is_empty() && !repo.is_empty() && !is_dots(&owner) && !is_dots(&repo)).then_some((owner, repo))
}

/// The encryption context of a project's git host token: bound to its organization and name.
pub(crate) fn token_context(org: i64, project: &str) -> String {
    format!("project-source-token:{org}:{project}")
}

/// The git host token of a CodeBuild project: its `source.auth` of type `OAUTH`, whose `resource` is stored
/// encrypted as `resourceCiphertext` (see `aws::codebuild::projects`); a plain `resource` stored before
/// tokens were encrypted is still read. `None` when there is none or it does not decrypt (logged).
pub(crate) fn project_token(
    key: &pipehook_domain::secret::MasterKey,
    project: &pipehook_store::ProjectRecord,
) -> Option<String> {
    let auth = &project.document["source"]["auth"];
    if auth["type"].as_str() != Some("OAUTH") {
        return None;
    }
    if let Some(ct) = auth["resourceCiphertext"].as_str() {
        return match key.decrypt(&token_context(project.org.0, &project.name), ct) {
            Ok(plain) => String::from_utf8(plain).ok().filter(|t| !t.is_empty()),
            Err(e) => {
                tracing::error!(project = %project.name, error = %e, "a project's git host token does not decrypt");
                None
            }
        };
    }
    auth["resource"].as_str().filter(|t| !t.is_empty()).map(str::to_owned)
}

/// `.`, `..`, ...: a name that would climb a URL's path once normalized.
fn is_dots(s: &str) -> bool {
    s.bytes().all(|b| b == b'.')
}

/// What a path segment keeps as it is: RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// One path segment, encoded (`group/sub` → `group%2Fsub`). Names that are only dots never reach here from a
/// payload (repositories come from `source.location`, parsed by [`github_repo`] / [`gitlab_path`], which refuse
/// them; commits are checked to be hex), because URL parsers resolve even an encoded `%2E%2E`.
pub(crate) fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

async fn failure(res: reqwest::Response) -> HostError {
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    // GitHub: `{"message": "..."}`; GitLab: `{"message": "..." | {field: [...]}}` or `{"error": "..."}`.
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            let m = v.get("message").or_else(|| v.get("error"))?;
            Some(m.as_str().map_or_else(|| m.to_string(), str::to_owned))
        })
        .unwrap_or_else(|| body.chars().take(500).collect());
    HostError { code: format!("HTTP{}", status.as_u16()), message: format!("{status}: {message}") }
}

/// Sends a request; the connection failing is `ConnectionError`.
async fn send(req: reqwest::RequestBuilder) -> Result<reqwest::Response, HostError> {
    req.send().await.map_err(|e| HostError { code: "ConnectionError".into(), message: e.to_string() })
}

/// A success, or the host's failure.
async fn succeeded(res: reqwest::Response) -> Result<reqwest::Response, HostError> {
    if res.status().is_success() {
        Ok(res)
    } else {
        Err(failure(res).await)
    }
}

/// The `id` of a created hook (a number or a string).
async fn created_id(res: reqwest::Response) -> Result<String, HostError> {
    let v: serde_json::Value =
        res.json().await.map_err(|e| HostError { code: "InvalidResponse".into(), message: e.to_string() })?;
    match v.get("id") {
        Some(id) if id.is_u64() || id.is_string() => {
            Ok(id.as_u64().map_or_else(|| id.as_str().unwrap_or_default().to_owned(), |n| n.to_string()))
        }
        _ => Err(HostError { code: "InvalidResponse".into(), message: "the created hook has no id".into() }),
    }
}

/// A deletion's outcome: a hook that is already gone counts as deleted.
async fn deleted(res: reqwest::Response) -> Result<(), HostError> {
    if res.status().is_success() || res.status() == reqwest::StatusCode::NOT_FOUND {
        Ok(())
    } else {
        Err(failure(res).await)
    }
}

/// A GitHub hook's whole `config`: where it delivers, as JSON, TLS verified, signed with `secret` when there is one.
fn hook_config(url: &str, secret: Option<&str>) -> serde_json::Value {
    let mut config = json!({"url": url, "content_type": "json", "insecure_ssl": "0"});
    if let Some(s) = secret {
        config["secret"] = json!(s);
    }
    config
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
    let body = json!({"name": "web", "active": true, "events": events, "config": hook_config(url, secret)});
    let req = client()?
        .post(format!("{api}/repos/{}/{}/hooks", segment(owner), segment(repo)))
        .header("authorization", format!("token {token}"))
        .header("accept", "application/vnd.github+json")
        .json(&body);
    created_id(succeeded(send(req).await?).await?).await
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
    let req = client()?
        .patch(format!("{api}/repos/{}/{}/hooks/{}", segment(owner), segment(repo), segment(id)))
        .header("authorization", format!("token {token}"))
        .header("accept", "application/vnd.github+json")
        .json(&body);
    succeeded(send(req).await?).await.map(drop)
}

/// Deletes the hook; a hook that is already gone counts as deleted.
pub async fn delete_hook(api: &str, owner: &str, repo: &str, token: &str, id: &str) -> Result<(), HostError> {
    let req = client()?
        .delete(format!("{api}/repos/{}/{}/hooks/{}", segment(owner), segment(repo), segment(id)))
        .header("authorization", format!("token {token}"))
        .header("accept", "application/vnd.github+json");
    deleted(send(req).await?).await
}

/// A GitHub repository and the token to act on it with.
#[derive(Debug, Clone, Copy)]
pub struct GithubRepo<'a> {
    pub api: &'a str,
    pub owner: &'a str,
    pub repo: &'a str,
    pub token: &'a str,
}

impl GithubRepo<'_> {
    fn hooks(&self) -> String {
        format!("{}/repos/{}/{}/hooks", self.api, segment(self.owner), segment(self.repo))
    }

    fn hook(&self, id: &str) -> String {
        format!("{}/{}", self.hooks(), segment(id))
    }

    fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.header("authorization", format!("token {}", self.token)).header("accept", "application/vnd.github+json")
    }
}

impl std::fmt::Display for GithubRepo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.repo)
    }
}

/// What a repository hook is to be: where it delivers, the secret it signs with, the events it sends.
#[derive(Debug, Clone, Copy)]
pub struct HookSpec<'a> {
    pub url: &'a str,
    pub secret: Option<&'a str>,
    pub events: &'a [&'a str],
}

/// A repository hook as GitHub lists it: its id and the URL it delivers to (`config.url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub id: String,
    pub url: Option<String>,
}

/// GitHub's page size for hooks, and how many pages are read: GitHub allows 20 hooks per event and repository,
/// so 10 pages of 100 are far more than a repository can hold.
const HOOKS_PER_PAGE: usize = 100;
const MAX_HOOK_PAGES: usize = 10;

/// The repository's hooks (`GET /repos/{owner}/{repo}/hooks`), page by page (`per_page`, `page`: the next page
/// is asked of the same base, never taken from a `Link` header).
pub async fn list_hooks(r: &GithubRepo<'_>) -> Result<Vec<Hook>, HostError> {
    let invalid = |message: String| HostError { code: "InvalidResponse".into(), message };
    let mut hooks = Vec::new();
    for page in 1..=MAX_HOOK_PAGES {
        let req = r.authorized(client()?.get(format!("{}?per_page={HOOKS_PER_PAGE}&page={page}", r.hooks())));
        let res = succeeded(send(req).await?).await?;
        let items: Vec<serde_json::Value> = res.json().await.map_err(|e| invalid(e.to_string()))?;
        let count = items.len();
        for h in items {
            let id = match &h["id"] {
                serde_json::Value::Number(n) if n.is_u64() => n.to_string(),
                serde_json::Value::String(s) => s.clone(),
                _ => return Err(invalid("a listed hook has no id".into())),
            };
            hooks.push(Hook { id, url: h["config"]["url"].as_str().map(str::to_owned) });
        }
        if count < HOOKS_PER_PAGE {
            break;
        }
    }
    Ok(hooks)
}

/// Sets the hook's events and whole config and activates it (`PATCH /repos/{owner}/{repo}/hooks/{id}`; GitHub
/// removes a secret the config leaves out). `Ok(false)` when the hook is gone (404).
pub async fn update_hook(r: &GithubRepo<'_>, id: &str, spec: &HookSpec<'_>) -> Result<bool, HostError> {
    let body = json!({"active": true, "events": spec.events, "config": hook_config(spec.url, spec.secret)});
    let res = send(r.authorized(client()?.patch(r.hook(id))).json(&body)).await?;
    if res.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(false);
    }
    succeeded(res).await.map(|_| true)
}

/// Makes the repository have exactly one hook delivering to `spec.url`, set as `spec` says, and returns its id;
/// calling it again changes nothing at the host but that hook's settings. The hook is the one recorded
/// (`recorded`, when the listing still shows it), else one the listing shows delivering to the URL (a
/// registration whose id was lost), else a new one. Other hooks delivering to the URL (left by registrations
/// before this was idempotent) are deleted; failing that is logged, not an error, since the kept hook is set.
pub async fn ensure_hook(r: &GithubRepo<'_>, recorded: Option<&str>, spec: &HookSpec<'_>) -> Result<String, HostError> {
    let hooks = list_hooks(r).await?;
    let mine: Vec<&Hook> = hooks.iter().filter(|h| h.url.as_deref() == Some(spec.url)).collect();
    let found = recorded.and_then(|id| hooks.iter().find(|h| h.id == id)).or_else(|| mine.first().copied());
    let id = match found {
        Some(h) if update_hook(r, &h.id, spec).await? => h.id.clone(),
        // None yet, or deleted between the listing and the update.
        _ => create_hook_for(r.api, r.owner, r.repo, r.token, spec.url, spec.secret, spec.events).await?,
    };
    for extra in mine.iter().filter(|h| h.id != id) {
        if let Err(e) = delete_hook(r.api, r.owner, r.repo, r.token, &extra.id).await {
            tracing::warn!(repository = %r, hook = %extra.id, error = %e,
                "a second hook delivering to a webhook's URL could not be deleted; the next registration retries");
        }
    }
    Ok(id)
}

/// Deletes the hook `recorded` and every other hook of the repository delivering to `url`; hooks already gone,
/// and a repository the token no longer sees (404 on the listing), count as deleted.
pub async fn remove_hooks(r: &GithubRepo<'_>, recorded: Option<&str>, url: &str) -> Result<(), HostError> {
    let hooks = match list_hooks(r).await {
        Ok(hooks) => hooks,
        Err(e) if e.code == "HTTP404" => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut ids: Vec<&str> = recorded.into_iter().collect();
    for h in &hooks {
        if h.url.as_deref() == Some(url) && !ids.contains(&h.id.as_str()) {
            ids.push(&h.id);
        }
    }
    for id in ids {
        delete_hook(r.api, r.owner, r.repo, r.token, id).await?;
    }
    Ok(())
}

/// GitLab's project hooks (REST API v4): `POST /projects/{path}/hooks`, `PUT` and `DELETE
/// /projects/{path}/hooks/{id}`, the project addressed by its URL-encoded full path (`group%2Fsub%2Frepo`) and
/// the caller authenticated by `PRIVATE-TOKEN`. The hook's `token` comes back as `X-Gitlab-Token`.
pub mod gitlab {
    use super::{client, created_id, deleted, segment, send, succeeded, HostError};
    use serde_json::json;

    fn hooks(api: &str, path: &str) -> String {
        format!("{api}/projects/{}/hooks", segment(path))
    }

    /// The event flags pipehook sets on a hook.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct HookEvents {
        /// `push_events` and `tag_push_events` (Push Hook, Tag Push Hook).
        pub push: bool,
        /// `merge_requests_events` (Merge Request Hook).
        pub merge_requests: bool,
        /// `releases_events` (Release Hook).
        pub releases: bool,
    }

    /// The hook's settings: each flag pipehook manages, on or off (GitLab turns `push_events` on when it is left
    /// out), TLS verified, and the token when one is given (an update without one keeps the current token, the
    /// URL being unchanged).
    fn settings(url: &str, secret: Option<&str>, events: HookEvents) -> serde_json::Value {
        let mut settings = json!({
            "url": url,
            "push_events": events.push,
            "tag_push_events": events.push,
            "merge_requests_events": events.merge_requests,
            "releases_events": events.releases,
            "enable_ssl_verification": true,
        });
        if let Some(secret) = secret {
            settings["token"] = json!(secret);
        }
        settings
    }

    /// Creates the hook of project `path` (`group/sub/repo`); returns its id.
    pub async fn create_hook(
        api: &str,
        path: &str,
        token: &str,
        url: &str,
        secret: &str,
        events: HookEvents,
    ) -> Result<String, HostError> {
        let body = settings(url, Some(secret), events);
        let req = client()?.post(hooks(api, path)).header("PRIVATE-TOKEN", token).json(&body);
        created_id(succeeded(send(req).await?).await?).await
    }

    /// Updates the hook (`PUT /projects/{path}/hooks/{id}`): its event flags, and its token when `secret` is
    /// given (a rotated one, or the current one).
    pub async fn update_hook(
        api: &str,
        path: &str,
        token: &str,
        id: &str,
        url: &str,
        secret: Option<&str>,
        events: HookEvents,
    ) -> Result<(), HostError> {
        let req = client()?
            .put(format!("{}/{}", hooks(api, path), segment(id)))
            .header("PRIVATE-TOKEN", token)
            .json(&settings(url, secret, events));
        succeeded(send(req).await?).await.map(drop)
    }

    /// Deletes the hook; a hook that is already gone counts as deleted.
    pub async fn delete_hook(api: &str, path: &str, token: &str, id: &str) -> Result<(), HostError> {
        let req = client()?.delete(format!("{}/{}", hooks(api, path), segment(id))).header("PRIVATE-TOKEN", token);
        deleted(send(req).await?).await
    }
}
