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
    if event.codebuild_event != Some(CodeBuildEvent::Push) || event.previous_commit.is_none() {
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

/// Reads what `wanted` says into `event` (`changed_files`, `commit_message`); returns a summary for the
/// inbound log: what was read, from where, and how many calls it took.
pub async fn complete(
    apis: Apis<'_>,
    token: Option<&str>,
    wanted: Wanted,
    event: &mut SourceEvent,
) -> Result<Value, HostError> {
    let repo = event.repository.clone().ok_or_else(|| missing("the payload names no repository"))?;
    let mut host = Host { apis, token, provider: event.provider, repo: &repo, calls: 0 };
    let mut summary = json!({"provider": event.provider});
    if wanted.files {
        let files = host.files(event).await?;
        summary["files"] = json!(files.len());
        summary["filesCapped"] = json!(files.len() >= MAX_FILES);
        event.changed_files = Some(files);
    }
    if wanted.commit_message {
        let sha = event.commit_id.clone().ok_or_else(|| missing("the event names no head commit"))?;
        event.commit_message = Some(host.commit_message(&sha).await?);
        summary["commitMessage"] = json!(true);
    }
    summary["calls"] = json!(host.calls);
    Ok(summary)
}

fn missing(what: &str) -> HostError {
    HostError { code: "MissingInPayload".into(), message: what.into() }
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
}

impl Host<'_> {
    async fn get(&mut self, url: &str) -> Result<Value, HostError> {
        self.calls += 1;
        let mut req = super::client()?.get(url);
        req = match (self.provider, self.token) {
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
        };
        succeeded(send(req).await?).await?.json::<Value>().await.map_err(invalid)
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

    async fn files(&mut self, event: &SourceEvent) -> Result<Vec<String>, HostError> {
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
                }
            }
            (Provider::GitHub, false) => {
                let (before, after) = range(event)?;
                let v = self.get(&format!("{}/compare/{before}...{after}", self.github_repo())).await?;
                for f in v["files"].as_array().map(Vec::as_slice).unwrap_or_default() {
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
                }
            }
            (Provider::GitLab, false) => {
                let (before, after) = range(event)?;
                let url = format!("{}/repository/compare?from={before}&to={after}", self.gitlab_project());
                let v = self.get(&url).await?;
                gitlab_paths(&mut files, &v["diffs"]);
            }
            (Provider::Bitbucket, _) => {
                let first = if pr {
                    let id = event.pull_request.ok_or_else(|| missing("the event names no pull request"))?;
                    format!("{}/pullrequests/{id}/diffstat", self.bitbucket_repo())
                } else {
                    let new = event.commit_id.as_deref().ok_or_else(|| missing("the push has no new commit"))?;
                    // Against the ref's previous head; a new ref's first commit against its parent.
                    let spec = match &event.previous_commit {
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
                    next = v["next"]
                        .as_str()
                        .filter(|n| n.starts_with(self.apis.bitbucket) && pages < MAX_PAGES && !files.full())
                        .map(str::to_owned);
                }
            }
            (Provider::Unknown, _) => return Err(missing("the provider is unknown")),
        }
        Ok(files.list)
    }

    async fn commit_message(&mut self, sha: &str) -> Result<String, HostError> {
        let (url, pointer) = match self.provider {
            Provider::GitHub => (format!("{}/commits/{}", self.github_repo(), segment(sha)), "/commit/message"),
            Provider::GitLab => (format!("{}/repository/commits/{}", self.gitlab_project(), segment(sha)), "/message"),
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
    let before = event.previous_commit.clone().ok_or_else(|| missing("the push has no previous commit"))?;
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
        e.changed_files = None;
        assert!(files_missing(&e, &json!({})));
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
