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
//! - `actor` is the acting user's login (GitHub `sender.login`, GitLab username, Bitbucket nickname).

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
    /// A pull request's source branch, as a full ref.
    pub head_ref: Option<String>,
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

/// A commit id, or `None` for git's all-zero id, which providers send as the "after" of a deleted ref.
fn commit(id: Option<String>) -> Option<String> {
    id.filter(|id| !id.bytes().all(|b| b == b'0'))
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
    fn serializes_provider_in_lower_case() {
        let event = normalize(&headers(&[("x-gitlab-event", "Push Hook")]), &json!({}));
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(value["provider"], "gitlab");
        assert_eq!(value["event"], "Push Hook");
        assert_eq!(value["is_ping"], false);
    }
}
