//! What a delivery's payload lacks and CodeBuild's `FILE_PATH` and `COMMIT_MESSAGE` filters need, read from
//! the git host's API the way CodeBuild does: a pull request's changed files and head commit message, a
//! Bitbucket push's changed files, and the changed files of a push whose payload lists only some of its
//! commits (GitLab lists 20, GitHub 2,048).
//!
//! The caller asks only when a filter group that could let the event through has such a filter
//! (`CompiledFilterGroups::needs`), so most deliveries cost no call. A failed call is an error for the caller
//! to record: evaluating without the data would let an `excludeMatchedPattern` filter pass by mistake.
//!
//! Calls per provider (the project's token, when it has one, authenticates them; public repositories need
//! none on GitHub and GitLab):
//! - GitHub / GitHub Enterprise: `GET /repos/{o}/{r}/pulls/{n}/files` (100 a page), `GET /repos/{o}/{r}/
//!   compare/{before}...{after}` (`files`), `GET /repos/{o}/{r}/commits/{sha}` (`commit.message`).
//! - GitLab: `GET /projects/{path}/merge_requests/{iid}/diffs` (GitLab 15.7+, falling back to `.../changes`),
//!   `GET /projects/{path}/repository/compare?from=&to=` (`diffs`), `GET /projects/{path}/repository/commits/
//!   {sha}` (`message`); paths are `new_path`, and `old_path` too for a rename.
//! - Bitbucket Cloud: `GET /repositories/{ws}/{repo}/pullrequests/{id}/diffstat` and `.../diffstat/{new}..{old}`
//!   (pages linked by `next`, followed only within the API's base URL), `GET /repositories/{ws}/{repo}/commit/
//!   {hash}` (`message`); paths are `new.path` and `old.path`.
//!
//! At most [`MAX_FILES`] paths and [`MAX_PAGES`] pages are read per delivery, as GitHub itself lists at most
//! 3,000 files of a pull request.

use pipehook_inbound::event::{CodeBuildEvent, Provider, SourceEvent};
use serde_json::{json, Value};

use super::{segment, send, succeeded, HostError};

/// Paths read per delivery at most.
pub const MAX_FILES: usize = 3000;
/// Pages read per delivery at most.
pub const MAX_PAGES: usize = 30;
const PER_PAGE: usize = 100;

/// The API base URLs.
#[derive(Debug, Clone, Copy)]
pub struct Apis<'a> {
    pub github: &'a str,
    pub gitlab: &'a str,
    pub bitbucket: &'a str,
}

/// What to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wanted {
    pub files: bool,
    pub commit_message: bool,
}

impl Wanted {
    pub fn any(self) -> bool {
        self.files || self.commit_message
    }
}

/// Whether the payload's own list of changed files is missing or incomplete, so FILE_PATH needs the API.
pub fn files_missing(event: &SourceEvent, payload: &Value) -> bool {
    if event.changed_files.is_none() {
        return true;
    }
    if event.codebuild_event != Some(CodeBuildEvent::Push) || event.previous_head().is_none() {
        // A new ref's push lists what it lists: there is no `before` to compare with.
        return false;
    }
    let listed = payload["commits"].as_array().map_or(0, Vec::len);
    match event.provider {
        Provider::GitLab => payload["total_commits_count"].as_u64().is_some_and(|n| n as usize > listed),
        Provider::GitHub => listed >= 2048,
        _ => false,
    }
}

/// How long reading from the host may take for one delivery in all: the git hosts give up on a delivery after
/// about ten seconds.
pub const TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(8);

/// Reads what `wanted` says into `event` (`changed_files`, `commit_message`) from repository `repo` (the
/// project's own, never one a payload names); returns a summary for the inbound log: what was read, whether the
/// file list was cut short, and how many calls it took. Everything within [`TIME_LIMIT`].
pub async fn complete(
    apis: Apis<'_>,
    token: Option<&str>,
    repo: &str,
    wanted: Wanted,
    event: &mut SourceEvent,
) -> Result<Value, HostError> {
    match tokio::time::timeout(TIME_LIMIT, read(apis, token, repo, wanted, event)).await {
        Ok(r) => r,
        Err(_) => Err(HostError {
            code: "Timeout".into(),
            message: format!("the host's API did not answer within {} s", TIME_LIMIT.as_secs()),
        }),
    }
}

async fn read(
    apis: Apis<'_>,
    token: Option<&str>,
    repo: &str,
    wanted: Wanted,
    event: &mut SourceEvent,
) -> Result<Value, HostError> {
    if let Some(c) = event.commit_id.as_deref().filter(|c| !is_commit(c)) {
        return Err(missing(&format!("the payload's commit id {c:?} is not a commit hash")));
    }
    if let Some(c) = event.previous_commit.as_deref().filter(|c| !is_commit(c)) {
        return Err(missing(&format!("the payload's previous commit {c:?} is not a commit hash")));
    }
    let mut host = Host { apis, token, provider: event.provider, repo, calls: 0, capped: false };
    let mut summary = json!({"provider": event.provider, "repository": repo});
    if wanted.files {
        let files = host.files(event).await?;
        summary["files"] = json!(files.list.len());
        summary["filesCapped"] = json!(host.capped || files.full());
        event.changed_files = Some(files.list);
    }
    if wanted.commit_message {
        let sha = event.commit_id.clone().ok_or_else(|| missing("the event names no head commit"))?;
        event.commit_message = Some(host.commit_message(event, &sha).await?);
        summary["commitMessage"] = json!(true);
    }
    summary["calls"] = json!(host.calls);
    Ok(summary)
}

/// A (maybe abbreviated) commit hash: 7 to 64 hex digits.
fn is_commit(s: &str) -> bool {
    (7..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The delivery itself cannot be completed (not the host's fault): answered as the sender's mistake.
pub fn missing(what: &str) -> HostError {
    HostError { code: "MissingInPayload".into(), message: what.into() }
}

/// Whether a failure is the host's (worth a redelivery) rather than the delivery's.
pub fn is_host_failure(e: &HostError) -> bool {
    e.code.starts_with("HTTP")
        || matches!(e.code.as_str(), "ConnectionError" | "InvalidResponse" | "Timeout" | "ClientError")
}

/// Whether `url` is under the API base `api` (same scheme, host and port, path below the base's), so a link
/// or redirect from the host never sends the token elsewhere.
fn within(api: &str, url: &reqwest::Url) -> bool {
    let Ok(base) = reqwest::Url::parse(api) else { return false };
    let prefix = base.path().trim_end_matches('/');
    base.scheme() == url.scheme()
        && base.host_str() == url.host_str()
        && base.port_or_known_default() == url.port_or_known_default()
        && (url.path() == prefix || url.path().starts_with(&format!("{prefix}/")))
}

fn invalid(e: impl std::fmt::Display) -> HostError {
    HostError { code: "InvalidResponse".into(), message: e.to_string() }
}

struct Host<'a> {
    apis: Apis<'a>,
    token: Option<&'a str>,
    provider: Provider,
    repo: &'a str,
    calls: usize,
    /// Set when the host listed fewer files than changed (its own cap, or pages left unread).
    capped: bool,
}

impl Host<'_> {
    fn api(&self) -> &str {
        match self.provider {
            Provider::GitLab => self.apis.gitlab,
            Provider::Bitbucket => self.apis.bitbucket,
            _ => self.apis.github,
        }
    }

    /// GETs `url`, following at most three redirects that stay under the API's base URL (Bitbucket answers a
    /// pull request's diffstat with one).
    async fn get(&mut self, url: &str) -> Result<Value, HostError> {
        let mut url = reqwest::Url::parse(url).map_err(invalid)?;
        for _ in 0..4 {
            let res = send(self.request(url.clone())?).await?;
            if !res.status().is_redirection() {
                return succeeded(res).await?.json::<Value>().await.map_err(invalid);
            }
            let location = res.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default();
            let next = url.join(location).map_err(invalid)?;
            if !within(self.api(), &next) {
                return Err(invalid(format!("the host redirected outside its API, to {next}")));
            }
            url = next;
        }
        Err(invalid("too many redirects"))
    }

    fn request(&mut self, url: reqwest::Url) -> Result<reqwest::RequestBuilder, HostError> {
        self.calls += 1;
        let req = super::client()?.get(url);
        Ok(match (self.provider, self.token) {
            (Provider::GitHub, t) => {
                let req = req.header("accept", "application/vnd.github+json");
                match t {
                    Some(t) => req.header("authorization", format!("token {t}")),
                    None => req,
                }
            }
            (Provider::GitLab, Some(t)) => req.header("PRIVATE-TOKEN", t),
            (Provider::Bitbucket, Some(t)) => req.header("authorization", super::bitbucket::authorization(t)),
            _ => req,
        })
    }

    fn github_repo(&self) -> String {
        let (owner, name) = self.repo.split_once('/').unwrap_or((self.repo, ""));
        format!("{}/repos/{}/{}", self.apis.github, segment(owner), segment(name))
    }

    fn gitlab_project(&self) -> String {
        format!("{}/projects/{}", self.apis.gitlab, segment(self.repo))
    }

    fn bitbucket_repo(&self) -> String {
        super::bitbucket::repository_url(self.apis.bitbucket, self.repo)
    }

    async fn files(&mut self, event: &SourceEvent) -> Result<Files, HostError> {
        let pr = event.codebuild_event.is_some_and(CodeBuildEvent::is_pull_request);
        let mut files = Files::default();
        match (event.provider, pr) {
            (Provider::GitHub, true) => {
                let n = event.pull_request.ok_or_else(|| missing("the event names no pull request"))?;
                for page in 1..=MAX_PAGES {
                    let url = format!("{}/pulls/{n}/files?per_page={PER_PAGE}&page={page}", self.github_repo());
                    let v = self.get(&url).await?;
                    let items = v.as_array().ok_or_else(|| invalid("the pull request's files are not a list"))?;
                    for f in items {
                        files.add(f["filename"].as_str());
                        files.add(f["previous_filename"].as_str());
                    }
                    if items.len() < PER_PAGE || files.full() {
                        break;
                    }
                    self.capped |= page == MAX_PAGES;
                }
            }
            (Provider::GitHub, false) => {
                let (before, after) = range(event)?;
                let v = self.get(&format!("{}/compare/{before}...{after}", self.github_repo())).await?;
                let listed = v["files"].as_array().ok_or_else(|| invalid("the comparison lists no files"))?;
                // GitHub's comparison lists at most 300 files.
                self.capped |= listed.len() >= 300;
                for f in listed {
                    files.add(f["filename"].as_str());
                    files.add(f["previous_filename"].as_str());
                }
            }
            (Provider::GitLab, true) => {
                let iid = event.pull_request.ok_or_else(|| missing("the event names no merge request"))?;
                let base = format!("{}/merge_requests/{iid}", self.gitlab_project());
                for page in 1..=MAX_PAGES {
                    let url = format!("{base}/diffs?per_page={PER_PAGE}&page={page}");
                    let v = match self.get(&url).await {
                        // GitLab before 15.7 has no `diffs`: one call to `changes` lists them all.
                        Err(e) if page == 1 && e.code == "HTTP404" => {
                            let v = self.get(&format!("{base}/changes")).await?;
                            gitlab_paths(&mut files, &v["changes"]);
                            break;
                        }
                        other => other?,
                    };
                    let count = v.as_array().map_or(0, Vec::len);
                    gitlab_paths(&mut files, &v);
                    if count < PER_PAGE || files.full() {
                        break;
                    }
                    self.capped |= page == MAX_PAGES;
                }
            }
            (Provider::GitLab, false) => {
                let (before, after) = range(event)?;
                let url = format!("{}/repository/compare?from={before}&to={after}", self.gitlab_project());
                let v = self.get(&url).await?;
                gitlab_paths(&mut files, &v["diffs"]);
                // GitLab cuts large comparisons short and says so.
                self.capped |= v["compare_timeout"] == json!(true) || v["overflow"] == json!(true);
            }
            (Provider::Bitbucket, _) => {
                let first = if pr {
                    let id = event.pull_request.ok_or_else(|| missing("the event names no pull request"))?;
                    format!("{}/pullrequests/{id}/diffstat", self.bitbucket_repo())
                } else {
                    let new = event.commit_id.as_deref().ok_or_else(|| missing("the push has no new commit"))?;
                    // Against the ref's previous head; a new ref's first commit against its parent.
                    let spec = match event.previous_head() {
                        Some(old) => format!("{}..{}", segment(new), segment(old)),
                        None => segment(new),
                    };
                    format!("{}/diffstat/{spec}", self.bitbucket_repo())
                };
                let mut next = Some(format!("{first}?pagelen={PER_PAGE}"));
                let mut pages = 0;
                while let Some(url) = next.take() {
                    pages += 1;
                    let v = self.get(&url).await?;
                    for item in v["values"].as_array().map(Vec::as_slice).unwrap_or_default() {
                        files.add(item["new"]["path"].as_str());
                        files.add(item["old"]["path"].as_str());
                    }
                    next = match v["next"].as_str() {
                        None => None,
                        Some(_) if pages >= MAX_PAGES || files.full() => {
                            self.capped = true;
                            None
                        }
                        Some(n) => match reqwest::Url::parse(n) {
                            Ok(u) if within(self.apis.bitbucket, &u) => Some(n.to_owned()),
                            _ => return Err(invalid(format!("the next page is outside the API: {n}"))),
                        },
                    };
                }
            }
            (Provider::Unknown, _) => return Err(missing("the provider is unknown")),
        }
        Ok(files)
    }

    async fn commit_message(&mut self, event: &SourceEvent, sha: &str) -> Result<String, HostError> {
        let pr = event.codebuild_event.is_some_and(CodeBuildEvent::is_pull_request);
        let (url, pointer) = match self.provider {
            Provider::GitHub => (format!("{}/commits/{}", self.github_repo(), segment(sha)), "/commit/message"),
            Provider::GitLab => (format!("{}/repository/commits/{}", self.gitlab_project(), segment(sha)), "/message"),
            // A pull request's head may be in a fork, which the repository's own commit API does not know:
            // its commits are read through the pull request.
            Provider::Bitbucket if pr => {
                let id = event.pull_request.ok_or_else(|| missing("the event names no pull request"))?;
                let v = self.get(&format!("{}/pullrequests/{id}/commits?pagelen=50", self.bitbucket_repo())).await?;
                let commits = v["values"].as_array().map(Vec::as_slice).unwrap_or_default();
                let head = commits.iter().find(|c| c["hash"].as_str().is_some_and(|h| h.starts_with(sha)));
                return head
                    .and_then(|c| c["message"].as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| invalid("the pull request's head commit is not among its commits"));
            }
            Provider::Bitbucket => (format!("{}/commit/{}", self.bitbucket_repo(), segment(sha)), "/message"),
            Provider::Unknown => return Err(missing("the provider is unknown")),
        };
        let v = self.get(&url).await?;
        v.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| invalid("the commit has no message"))
    }
}

/// `before`, `after` of a push.
fn range(event: &SourceEvent) -> Result<(String, String), HostError> {
    let before = event.previous_head().map(str::to_owned).ok_or_else(|| missing("the push has no previous commit"))?;
    let after = event.commit_id.clone().ok_or_else(|| missing("the push has no new commit"))?;
    Ok((segment(&before), segment(&after)))
}

fn gitlab_paths(files: &mut Files, diffs: &Value) {
    for d in diffs.as_array().map(Vec::as_slice).unwrap_or_default() {
        files.add(d["new_path"].as_str());
        files.add(d["old_path"].as_str());
    }
}

/// Paths, each once, in the order first seen, at most [`MAX_FILES`].
#[derive(Default)]
struct Files {
    seen: std::collections::HashSet<String>,
    list: Vec<String>,
}

impl Files {
    fn add(&mut self, path: Option<&str>) {
        if let Some(p) = path.filter(|p| !p.is_empty()) {
            if !self.full() && self.seen.insert(p.to_owned()) {
                self.list.push(p.to_owned());
            }
        }
    }

    fn full(&self) -> bool {
        self.list.len() >= MAX_FILES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_push_lists() {
        let mut e = SourceEvent::default();
        e.provider = Provider::GitLab;
        e.codebuild_event = Some(CodeBuildEvent::Push);
        e.previous_commit = Some("a".into());
        e.changed_files = Some(vec!["x".into()]);
        let commits: Vec<Value> = (0..20).map(|_| json!({})).collect();
        assert!(files_missing(&e, &json!({"commits": commits, "total_commits_count": 21})));
        assert!(!files_missing(&e, &json!({"commits": commits, "total_commits_count": 20})));
        e.provider = Provider::GitHub;
        assert!(!files_missing(&e, &json!({"commits": commits})));
        e.previous_commit = None;
        e.provider = Provider::GitLab;
        assert!(!files_missing(&e, &json!({"commits": commits, "total_commits_count": 21})), "a new ref");
        e.previous_commit = Some("0".repeat(40));
        assert!(!files_missing(&e, &json!({"commits": commits, "total_commits_count": 21})), "a new ref, as sent");
        e.changed_files = None;
        assert!(files_missing(&e, &json!({})));
    }

    #[test]
    fn links_stay_under_the_api() {
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        let api = "https://api.bitbucket.org/2.0";
        assert!(within(api, &url("https://api.bitbucket.org/2.0/repositories/a/b?page=2")));
        assert!(!within(api, &url("https://api.bitbucket.org/2.0x/repositories")));
        assert!(!within(api, &url("https://api.bitbucket.org.evil/2.0/repositories")));
        assert!(!within(api, &url("http://api.bitbucket.org/2.0/repositories")));
        assert!(!within(api, &url("https://api.bitbucket.org:8443/2.0/repositories")));
        assert!(within("https://h.example", &url("https://h.example/anything")));
        assert!(!within("https://h.example", &url("https://h.example.evil/anything")));
        assert!(is_commit("3f8e2a1b9c7d") && !is_commit("..") && !is_commit("abc"));
    }

    #[test]
    fn paths_are_kept_once_and_capped() {
        let mut f = Files::default();
        for i in 0..(MAX_FILES + 10) {
            f.add(Some(&format!("f{}", i % (MAX_FILES + 5))));
        }
        f.add(Some(""));
        f.add(None);
        assert_eq!(f.list.len(), MAX_FILES);
        assert!(f.full());
    }
}
