//! Provider payloads → one normalized [`SourceEvent`].
//!
//! The provider is told by its event header (`X-GitHub-Event`, `X-Gitlab-Event`, `X-Event-Key`), never by the
//! payload's shape, because the header is what every provider documents as the event's type. Each provider's
//! mapping lives in one submodule (`github`, `gitlab`, `bitbucket`), so a new field is added once per provider.
//! Payloads drift between provider versions (GitLab especially), so every mapping reads fields leniently: a
//! missing or oddly typed field leaves its `SourceEvent` field `None`, and normalization never fails.
//!
//! Field conventions, chosen so CodeBuild filter groups can match on them directly:
//! - `git_ref`, `head_ref` and `base_ref` are full refs (`refs/heads/x`, `refs/tags/y`), as CodeBuild's HEAD_REF
//!   and BASE_REF patterns expect; `branch` is the short branch name, set only when the ref is a branch.
//! - For a pull/merge request, `git_ref`, `branch` and `head_ref` are its source branch, `base_ref` its target,
//!   `commit_id` the source head commit and `message` the title.
//! - `actor` is the acting user's login (GitHub `sender.login`, GitLab username, Bitbucket nickname);
//!   `actor_account_id` is the provider's stable account id, which CodeBuild's ACTOR_ACCOUNT_ID matches
//!   (GitHub `sender.id`, GitLab `user_id`/`user.id`, Bitbucket `actor.account_id`), written as text.
//! - `head_ref` is the ref a build of the event would build: a push's ref (branch or tag) or a pull request's
//!   source branch; `base_ref` is set for pull requests only.
//! - `codebuild_event` is the event's CodeBuild name ([`CodeBuildEvent`]), or `None` when CodeBuild has no
//!   name for it (a ping, a pull request `edited`, a release `published`, a push that deletes a ref, ...).
//!   The mapping is the one CodeBuild documents per provider; see each submodule.
//! - `changed_files` is `None` when the payload does not list the changed files (every pull request payload,
//!   every Bitbucket payload), and `Some` (maybe empty) when it does (GitHub and GitLab pushes: `added`,
//!   `modified` and `removed` of every commit listed, without duplicates, in the order first seen). Likewise
//!   `commit_message` (the head commit's message) is `None` when the payload lacks it (GitHub and Bitbucket
//!   pull requests). CodeBuild reads these through the provider's API; a caller that can do I/O may fill them
//!   in before evaluating filter groups (see `filter_groups::CompiledFilterGroups::uses`).
//! - `repository_name` and `organization_name` split the repository's full name at its last `/`: the
//!   repository's own name, and its owner (GitHub user or organization, GitLab namespace path, Bitbucket
//!   workspace).

mod bitbucket;
mod github;
mod gitlab;

use http::HeaderMap;
use serde_json::Value;

/// The git host that sent a request, as told by its event header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// github.com and GitHub Enterprise Server, which send the same headers and payloads.
    GitHub,
    GitLab,
    /// Bitbucket Cloud.
    Bitbucket,
    /// No known event header: nothing is read from the payload.
    #[default]
    Unknown,
}

/// What a trigger request is about, independent of the provider that sent it.
///
/// `#[non_exhaustive]` because later features (CodeBuild filter groups: changed files, the merged flag,
/// release tags) add fields; build one with `SourceEvent::default()` and assign fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SourceEvent {
    pub provider: Provider,
    /// The raw event header value: `X-GitHub-Event`, `X-Gitlab-Event` or `X-Event-Key`.
    pub event: Option<String>,
    /// The event's sub-type: GitHub's `action`, GitLab's `object_attributes.action`, or the part of Bitbucket's
    /// event key after the colon for pull requests (`created`, `updated`, `fulfilled`).
    pub action: Option<String>,
    /// The provider's id for this delivery, kept across the provider's own retries (see [`delivery_id`]).
    pub delivery_id: Option<String>,
    /// A provider's "is this URL alive?" request (GitHub `ping`), which must start nothing.
    pub is_ping: bool,
    /// The commit the event is about; `None` when a ref was deleted.
    pub commit_id: Option<String>,
    /// The full ref: `refs/heads/x` or `refs/tags/y`.
    pub git_ref: Option<String>,
    /// The short branch name, when `git_ref` is a branch.
    pub branch: Option<String>,
    /// The head commit's message, a pull request's title, or a release's name.
    pub message: Option<String>,
    pub actor: Option<String>,
    /// The repository's full name: `owner/name` (GitLab: the full namespace path).
    pub repository: Option<String>,
    /// The repository's web page.
    pub repository_url: Option<String>,
    /// The pull/merge request number (GitLab: the project-scoped `iid`, as shown in its URL).
    pub pull_request: Option<u64>,
    /// A pull request's target branch, as a full ref.
    pub base_ref: Option<String>,
    /// The ref the event builds, as a full ref: a push's ref, or a pull request's source branch.
    pub head_ref: Option<String>,
    /// CodeBuild's name for the event, which its `EVENT` filter matches; `None` when CodeBuild has none.
    pub codebuild_event: Option<CodeBuildEvent>,
    /// The acting account's id as text (GitHub `sender.id`, GitLab user id, Bitbucket `actor.account_id`).
    pub actor_account_id: Option<String>,
    /// The paths the event changed, or `None` when the payload does not list them.
    pub changed_files: Option<Vec<String>>,
    /// The head commit's message, or `None` when the payload does not carry it.
    pub commit_message: Option<String>,
    /// A release's tag name (release events only).
    pub tag_name: Option<String>,
    /// A release's name (release events only).
    pub release_name: Option<String>,
    /// The repository's own name: the last segment of `repository`.
    pub repository_name: Option<String>,
    /// The repository's owner: `repository` without its last segment.
    pub organization_name: Option<String>,
    /// The commit a push moved its ref from (`before`), for `CODEBUILD_WEBHOOK_PREV_COMMIT`: the payload's full
    /// commit id as it is, so a push that created the ref has git's all-zero id here (GitHub and GitLab send it
    /// as `before`; CodeBuild passes it on). [`SourceEvent::previous_head`] leaves that one out.
    pub previous_commit: Option<String>,
    /// The merge commit of a merged pull request, when the payload names it (GitLab, Bitbucket), for
    /// `CODEBUILD_WEBHOOK_MERGE_COMMIT`.
    pub merge_commit: Option<String>,
    /// A GitHub Actions workflow job's workflow (`workflow_job.workflow_name`), which CodeBuild's WORKFLOW_NAME
    /// filter matches.
    pub workflow_name: Option<String>,
}

/// CodeBuild's webhook event types: the names an `EVENT` filter lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CodeBuildEvent {
    Push,
    PullRequestCreated,
    PullRequestUpdated,
    PullRequestClosed,
    PullRequestReopened,
    PullRequestMerged,
    Released,
    Prereleased,
    WorkflowJobQueued,
}

impl CodeBuildEvent {
    /// Every event, in the order CodeBuild's documentation lists them.
    pub const ALL: [CodeBuildEvent; 9] = [
        CodeBuildEvent::Push,
        CodeBuildEvent::PullRequestCreated,
        CodeBuildEvent::PullRequestUpdated,
        CodeBuildEvent::PullRequestClosed,
        CodeBuildEvent::PullRequestReopened,
        CodeBuildEvent::PullRequestMerged,
        CodeBuildEvent::Released,
        CodeBuildEvent::Prereleased,
        CodeBuildEvent::WorkflowJobQueued,
    ];

    /// The wire name, e.g. `PULL_REQUEST_CREATED`.
    pub fn as_str(self) -> &'static str {
        match self {
            CodeBuildEvent::Push => "PUSH",
            CodeBuildEvent::PullRequestCreated => "PULL_REQUEST_CREATED",
            CodeBuildEvent::PullRequestUpdated => "PULL_REQUEST_UPDATED",
            CodeBuildEvent::PullRequestClosed => "PULL_REQUEST_CLOSED",
            CodeBuildEvent::PullRequestReopened => "PULL_REQUEST_REOPENED",
            CodeBuildEvent::PullRequestMerged => "PULL_REQUEST_MERGED",
            CodeBuildEvent::Released => "RELEASED",
            CodeBuildEvent::Prereleased => "PRERELEASED",
            CodeBuildEvent::WorkflowJobQueued => "WORKFLOW_JOB_QUEUED",
        }
    }

    /// The event with this wire name (exact, upper case), if any.
    pub fn parse(name: &str) -> Option<Self> {
        CodeBuildEvent::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// Whether this is one of the five pull request events.
    pub fn is_pull_request(self) -> bool {
        matches!(
            self,
            CodeBuildEvent::PullRequestCreated
                | CodeBuildEvent::PullRequestUpdated
                | CodeBuildEvent::PullRequestClosed
                | CodeBuildEvent::PullRequestReopened
                | CodeBuildEvent::PullRequestMerged
        )
    }

    /// Whether this is a release event (RELEASED or PRERELEASED).
    pub fn is_release(self) -> bool {
        matches!(self, CodeBuildEvent::Released | CodeBuildEvent::Prereleased)
    }
}

impl std::fmt::Display for CodeBuildEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl SourceEvent {
    /// The commit the pushed ref pointed at before the push: `previous_commit`, unless the push created the ref
    /// (git's all-zero id), when there is none to compare with.
    pub fn previous_head(&self) -> Option<&str> {
        self.previous_commit.as_deref().filter(|id| !is_zero_id(id))
    }

    /// CodeBuild's `CODEBUILD_WEBHOOK_TRIGGER`: `pr/<number>` for a pull request event, `branch/<name>` for a
    /// branch, `tag/<name>` for a tag push or a release; `None` when the event is about none of them.
    pub fn webhook_trigger(&self) -> Option<String> {
        if self.codebuild_event.is_some_and(CodeBuildEvent::is_pull_request) {
            return self.pull_request.map(|n| format!("pr/{n}"));
        }
        if let Some(branch) = &self.branch {
            return Some(format!("branch/{branch}"));
        }
        let tag = self.git_ref.as_deref().and_then(|r| r.strip_prefix("refs/tags/")).map(str::to_string);
        tag.or_else(|| self.tag_name.clone()).filter(|t| !t.is_empty()).map(|t| format!("tag/{t}"))
    }

    /// The `CODEBUILD_WEBHOOK_*` variables CodeBuild sets in a build that this event started: `_EVENT`,
    /// `_TRIGGER`, `_HEAD_REF`, `_BASE_REF`, `_ACTOR_ACCOUNT_ID`, `_PREV_COMMIT`, `_MERGE_COMMIT`, each only
    /// when the event has a value for it.
    pub fn codebuild_webhook_env(&self) -> Vec<(String, String)> {
        let pairs = [
            ("CODEBUILD_WEBHOOK_EVENT", self.codebuild_event.map(|e| e.as_str().to_string())),
            ("CODEBUILD_WEBHOOK_TRIGGER", self.webhook_trigger()),
            ("CODEBUILD_WEBHOOK_HEAD_REF", self.head_ref.clone()),
            ("CODEBUILD_WEBHOOK_BASE_REF", self.base_ref.clone()),
            ("CODEBUILD_WEBHOOK_ACTOR_ACCOUNT_ID", self.actor_account_id.clone()),
            ("CODEBUILD_WEBHOOK_PREV_COMMIT", self.previous_commit.clone()),
            ("CODEBUILD_WEBHOOK_MERGE_COMMIT", self.merge_commit.clone()),
        ];
        pairs.into_iter().filter_map(|(name, value)| Some((name.to_string(), value?))).collect()
    }
}

/// The headers that carry each provider's delivery id, in the order they are looked for.
pub const DELIVERY_ID_HEADERS: [&str; 3] = ["x-github-delivery", "x-gitlab-event-uuid", "x-request-uuid"];

/// Longer "delivery ids" are not ids any provider sends; they are ignored rather than stored and compared.
pub const MAX_DELIVERY_ID_CHARS: usize = 200;

/// Normalizes a trigger request. `payload` is the parsed body; a body that is not JSON can be passed as
/// `Value::Null`, and the result then carries only what the headers say.
pub fn normalize(headers: &HeaderMap, payload: &Value) -> SourceEvent {
    let mut event = SourceEvent { delivery_id: delivery_id(headers), ..SourceEvent::default() };
    if let Some(name) = header(headers, "x-github-event") {
        event.provider = Provider::GitHub;
        event.event = Some(name.to_string());
        github::fill(&mut event, name, payload);
    } else if let Some(name) = header(headers, "x-gitlab-event") {
        event.provider = Provider::GitLab;
        event.event = Some(name.to_string());
        gitlab::fill(&mut event, payload);
    } else if let Some(name) = header(headers, "x-event-key") {
        event.provider = Provider::Bitbucket;
        event.event = Some(name.to_string());
        bitbucket::fill(&mut event, name, payload);
    }
    event
}

/// The provider's delivery id (`X-GitHub-Delivery`, `X-Gitlab-Event-UUID`, or Bitbucket's `X-Request-UUID`),
/// which stays the same when the provider redelivers, so a repeated id means a duplicate. An empty or
/// implausibly long (over 200 characters) value counts as absent.
pub fn delivery_id(headers: &HeaderMap) -> Option<String> {
    DELIVERY_ID_HEADERS
        .iter()
        .filter_map(|name| header(headers, name))
        .find(|id| id.chars().count() <= MAX_DELIVERY_ID_CHARS)
        .map(str::to_string)
}

/// The JSON document a delivery carries. GitHub's default content type for a repository hook is
/// `application/x-www-form-urlencoded`, with the JSON in the `payload` field (GitHub Enterprise and the
/// `payload=` form of older integrations too); every other sender posts the JSON as the body. Signatures are
/// over the raw body as sent, so authentication reads that, and only filtering reads what this returns.
pub fn json_payload<'b>(headers: &HeaderMap, body: &'b [u8]) -> Result<std::borrow::Cow<'b, [u8]>, String> {
    let form = header(headers, "content-type").is_some_and(|t| {
        t.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    });
    if !form {
        return Ok(std::borrow::Cow::Borrowed(body));
    }
    form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| std::borrow::Cow::Owned(v.into_owned().into_bytes()))
        .ok_or_else(|| "the form-encoded body has no `payload` field".to_owned())
}

/// The most values (objects, arrays, strings, numbers, literals) a delivery's JSON may hold. A parsed value
/// takes far more memory than its text (an array of small objects about 50 times), so the count, not the byte
/// size, is what bounds a parse's memory: 100,000 values is at most about 80 MB, and a large real delivery
/// (a GitLab push listing 20 commits with their files) holds a few thousand.
pub const MAX_JSON_VALUES: usize = 100_000;

/// Counts the values in a JSON text without parsing it (one pass over the bytes: each `,` and each opening
/// bracket outside strings starts one more value). Malformed text gives some count; the parser reports it.
pub fn json_values(text: &[u8]) -> usize {
    let (mut count, mut in_string, mut escaped, mut any) = (0usize, false, false, false);
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' | b',' => count += 1,
            b' ' | b'\t' | b'\n' | b'\r' => continue,
            _ => {}
        }
        any = true;
    }
    count + usize::from(any)
}

/// A header's trimmed text, or `None` when it is absent, empty or not visible ASCII.
fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok().map(str::trim).filter(|v| !v.is_empty())
}

/// The string at `path` in `value`, or `None` if any step is missing or the leaf is not a non-empty string.
fn text(value: &Value, path: &[&str]) -> Option<String> {
    let leaf = path.iter().try_fold(value, |v, key| v.get(key))?;
    leaf.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// The unsigned integer at `path` in `value`.
fn number(value: &Value, path: &[&str]) -> Option<u64> {
    path.iter().try_fold(value, |v, key| v.get(key))?.as_u64()
}

/// An id at `path` written as text: a non-empty string as it is, an integer in decimal.
fn id_text(value: &Value, path: &[&str]) -> Option<String> {
    match path.iter().try_fold(value, |v, key| v.get(key))? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

/// The paths `added`, `modified` or `removed` by the commits of a push, each once, in the order first seen;
/// `None` when `commits` is not a list.
fn changed_files(commits: &Value) -> Option<Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    let mut files = Vec::new();
    for commit in commits.as_array()? {
        for key in ["added", "modified", "removed"] {
            let paths = commit[key].as_array().map(Vec::as_slice).unwrap_or_default();
            for path in paths.iter().filter_map(Value::as_str) {
                if seen.insert(path) {
                    files.push(path.to_string());
                }
            }
        }
    }
    Some(files)
}

/// Sets `repository` and the two names derived from it (split at the last `/`).
fn set_repository(event: &mut SourceEvent, full_name: Option<String>) {
    if let Some(full) = &full_name {
        match full.rsplit_once('/') {
            Some((owner, name)) => {
                event.organization_name = Some(owner.to_string()).filter(|s| !s.is_empty());
                event.repository_name = Some(name.to_string()).filter(|s| !s.is_empty());
            }
            None => event.repository_name = Some(full.clone()),
        }
    }
    event.repository = full_name;
}

/// Whether `id` is a full git commit id: 40 (SHA-1) or 64 (SHA-256) hexadecimal digits. Only such an id names
/// a commit and nothing else: anything shorter may be taken for a branch or tag by git, and anything else in a
/// payload's commit field (`refs/pull/1/head`, `main`) is a ref name, which must never choose what is checked out.
pub fn is_commit_id(id: &str) -> bool {
    matches!(id.len(), 40 | 64) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `id` is git's all-zero id, which providers send as the "before" of a created ref and the "after" of a
/// deleted one.
pub fn is_zero_id(id: &str) -> bool {
    id.bytes().all(|b| b == b'0')
}

/// A full commit id (lowercased), or `None` for anything else ([`is_commit_id`]) and for git's all-zero id, which
/// providers send as the "after" of a deleted ref.
fn commit(id: Option<String>) -> Option<String> {
    id.filter(|id| is_commit_id(id) && !is_zero_id(id)).map(|id| id.to_ascii_lowercase())
}

/// A push's `before`: a full commit id (lowercased), git's all-zero id included (the push created the ref).
fn before(id: Option<String>) -> Option<String> {
    id.filter(|id| is_commit_id(id)).map(|id| id.to_ascii_lowercase())
}

/// An abbreviated commit id (7 to 64 hexadecimal digits, lowercased), for the one payload that only has those:
/// Bitbucket Cloud's pull requests. Whoever checks it out must make sure the commit it resolved to starts with it.
fn abbreviated_commit(id: Option<String>) -> Option<String> {
    id.filter(|id| (7..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .filter(|id| !id.bytes().all(|b| b == b'0'))
        .map(|id| id.to_ascii_lowercase())
}

/// The short branch name of a full ref, when it is a branch.
fn branch_of(git_ref: &str) -> Option<String> {
    git_ref.strip_prefix("refs/heads/").filter(|b| !b.is_empty()).map(str::to_string)
}

/// Sets the ref fields from a full ref.
fn set_ref(event: &mut SourceEvent, git_ref: Option<String>) {
    event.branch = git_ref.as_deref().and_then(branch_of);
    event.git_ref = git_ref;
}

/// Sets the ref fields of a push, whose ref is also the head ref a build would check out.
fn set_push_ref(event: &mut SourceEvent, git_ref: Option<String>) {
    event.head_ref = git_ref.clone();
    set_ref(event, git_ref);
}

/// Sets the pull request fields from its number and short source/target branch names.
fn set_pull_request(event: &mut SourceEvent, number: Option<u64>, source: Option<String>, target: Option<String>) {
    event.pull_request = number;
    event.head_ref = source.as_deref().map(|b| format!("refs/heads/{b}"));
    event.base_ref = target.map(|b| format!("refs/heads/{b}"));
    event.git_ref = event.head_ref.clone();
    event.branch = source;
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), HeaderValue::from_str(v).unwrap())).collect()
    }

    #[test]
    fn json_values_counts_without_parsing() {
        for (text, want) in [
            ("", 0),
            ("1", 1),
            ("{}", 2),
            ("[1,2,3]", 4),
            (r#"{"a":1,"b":[2]}"#, 4),
            (r#"{"a":"x,y[{","b":"\\\",["}"#, 3),
        ] {
            assert_eq!(json_values(text.as_bytes()), want, "{text}");
        }
        // Never fewer than the values serde_json finds.
        let doc = r#"{"commits":[{"id":"a","added":["x","y"]},{"id":"b","added":[]}],"ref":"refs/heads/main"}"#;
        fn values(v: &serde_json::Value) -> usize {
            1 + match v {
                serde_json::Value::Array(a) => a.iter().map(values).sum(),
                serde_json::Value::Object(o) => o.values().map(values).sum(),
                _ => 0,
            }
        }
        assert!(json_values(doc.as_bytes()) >= values(&serde_json::from_str(doc).unwrap()));
    }

    #[test]
    fn json_payload_table() {
        fn check(content_type: &str, body: &str, want: Result<&str, &str>) {
            let h = headers(&[("content-type", content_type)]);
            let got = json_payload(&h, body.as_bytes());
            let got = got.as_ref().map(|b| std::str::from_utf8(b).unwrap()).map_err(String::as_str);
            assert_eq!(got, want, "{content_type} {body}");
        }
        check("application/json", r#"{"a":1}"#, Ok(r#"{"a":1}"#));
        // As GitHub sends it: `payload=` with the JSON percent-encoded, `+` for spaces.
        check(
            "application/x-www-form-urlencoded",
            "payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%2C%22m%22%3A%22a+b%26c%22%7D",
            Ok(r#"{"ref":"refs/heads/main","m":"a b&c"}"#),
        );
        check("Application/X-WWW-Form-Urlencoded; charset=utf-8", "x=1&payload=%7B%7D", Ok("{}"));
        check("application/x-www-form-urlencoded", "x=1", Err("the form-encoded body has no `payload` field"));
        // No content type: the body is taken as it is.
        assert_eq!(&*json_payload(&HeaderMap::new(), b"{}").unwrap(), b"{}");
    }

    #[test]
    fn delivery_id_table() {
        fn check(pairs: &[(&'static str, &str)], want: Option<&str>) {
            assert_eq!(delivery_id(&headers(pairs)).as_deref(), want, "{pairs:?}");
        }
        check(
            &[("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")],
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        );
        check(
            &[("x-gitlab-event-uuid", "13792a34-cac6-4fda-95a8-c58e00a3954e")],
            Some("13792a34-cac6-4fda-95a8-c58e00a3954e"),
        );
        check(
            &[("x-request-uuid", "afd7e4f4-1c2a-4c5c-8a64-3d3b4d0c9f2e")],
            Some("afd7e4f4-1c2a-4c5c-8a64-3d3b4d0c9f2e"),
        );
        check(&[("x-github-delivery", "  padded  ")], Some("padded"));
        check(&[("x-github-delivery", "")], None);
        check(&[("x-github-delivery", "gh"), ("x-request-uuid", "bb")], Some("gh"));
        check(&[("x-github-delivery", &"x".repeat(201))], None);
        check(&[("x-github-delivery", &"x".repeat(200))], Some(&"x".repeat(200)));
        check(&[("x-request-id", "bitbucket-server-is-not-bitbucket-cloud")], None);
        check(&[], None);
    }

    #[test]
    fn unknown_provider_reads_nothing_from_the_payload() {
        let event = normalize(&headers(&[("x-github-delivery", "d1")]), &json!({"ref": "refs/heads/main"}));
        assert_eq!(event.provider, Provider::Unknown);
        assert_eq!(event.delivery_id.as_deref(), Some("d1"));
        assert_eq!(event.git_ref, None);
    }

    #[test]
    fn odd_payloads_never_fail() {
        for payload in [json!(null), json!([]), json!("text"), json!({"ref": 7, "pull_request": "x", "commits": {}})] {
            for (name, value) in
                [("x-github-event", "push"), ("x-gitlab-event", "Push Hook"), ("x-event-key", "repo:push")]
            {
                let event = normalize(&headers(&[(name, value)]), &payload);
                assert_eq!(event.event.as_deref(), Some(value));
                assert_eq!((event.git_ref, event.commit_id), (None, None), "{name} {payload}");
            }
        }
    }

    #[test]
    fn commit_ids_are_full_hex_ids_only() {
        let full = "6113728F27AE82C7B1A177C8D03F9E96E0ADF246";
        let sha256 = "a".repeat(64);
        for ok in [full, sha256.as_str()] {
            assert!(is_commit_id(ok), "{ok}");
        }
        for bad in ["", "main", "refs/pull/1/head", "6113728f", &full[..39], &format!("{full}0"), &"g".repeat(40)] {
            assert!(!is_commit_id(bad), "{bad}");
        }
        // Every provider's commit field: a ref name or an abbreviation is no commit (nothing to check out), and a
        // full id is kept, lowercased.
        let push = |after: &str| {
            let payload = json!({"ref": "refs/heads/main", "after": after, "checkout_sha": after,
                "head_commit": {"id": after}});
            let github = normalize(&headers(&[("x-github-event", "push")]), &payload);
            let gitlab = normalize(
                &headers(&[("x-gitlab-event", "Push Hook")]),
                &json!({"object_kind": "push",
                "ref": "refs/heads/main", "checkout_sha": after}),
            );
            let bitbucket = normalize(
                &headers(&[("x-event-key", "repo:push")]),
                &json!({"push": {"changes": [
                {"new": {"type": "branch", "name": "main", "target": {"hash": after}}}]}}),
            );
            [github, gitlab, bitbucket].map(|e| (e.commit_id, e.codebuild_event))
        };
        for bad in ["refs/pull/1/head", "main", "6113728", "HEAD~1"] {
            assert_eq!(push(bad), [(None, None), (None, None), (None, None)], "{bad}");
        }
        let lower = full.to_ascii_lowercase();
        assert_eq!(push(full).map(|(c, _)| c), [Some(lower.clone()), Some(lower.clone()), Some(lower)]);
        let pr = normalize(
            &headers(&[("x-github-event", "pull_request")]),
            &json!({"action": "opened", "number": 1, "pull_request": {"head": {"sha": "refs/pull/1/head", "ref": "x"}}}),
        );
        assert_eq!(pr.commit_id, None);
        // Bitbucket pull requests carry 12-digit abbreviations, the only place one is taken.
        let bb = |hash: &str| {
            normalize(
                &headers(&[("x-event-key", "pullrequest:created")]),
                &json!({"pullrequest": {"id": 1, "source": {"branch": {"name": "x"}, "commit": {"hash": hash}}}}),
            )
            .commit_id
        };
        assert_eq!(bb("3F8E2A1B9C7D").as_deref(), Some("3f8e2a1b9c7d"));
        assert_eq!(bb("refs/heads/main"), None);
        assert_eq!(bb("abc"), None);
    }

    #[test]
    fn serializes_provider_in_lower_case() {
        let event = normalize(&headers(&[("x-gitlab-event", "Push Hook")]), &json!({}));
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["provider"], "gitlab");
        assert_eq!(value["event"], "Push Hook");
        assert_eq!(value["is_ping"], false);
    }
}
