//! CodeBuild filter groups against real provider payloads (see `fixtures/README.md`): every event mapping,
//! every filter type, exclusion, several groups, the legacy branch filter, and every validation error.

use std::path::PathBuf;

use http::{HeaderMap, HeaderName, HeaderValue};
use pipehook_inbound::filter_groups::{
    compile, compile_webhook, evaluate, FilterGroupError, FilterType, SourceType, WebhookFilter,
};
use pipehook_inbound::{normalize, CodeBuildEvent, SourceEvent};
use serde_json::{json, Value};

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| (HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap()))
        .collect()
}

/// A fixture with the event header its provider sends, normalized. The header is told by the directory.
fn event(file: &str, header_value: &str) -> SourceEvent {
    event_of(file, header_value, fixture(file))
}

fn event_of(file: &str, header_value: &str, payload: Value) -> SourceEvent {
    let name = match file.split('/').next().unwrap() {
        "github" => "X-GitHub-Event",
        "gitlab" => "X-Gitlab-Event",
        "bitbucket" => "X-Event-Key",
        other => panic!("no provider for {other}"),
    };
    normalize(&headers(&[(name, header_value)]), &payload)
}

use SourceType::{Bitbucket, Github, GithubEnterprise, Gitlab, GitlabSelfManaged};

fn f(t: &str, p: &str) -> WebhookFilter {
    WebhookFilter::new(t, p)
}

fn x(t: &str, p: &str) -> WebhookFilter {
    WebhookFilter::exclude(t, p)
}

/// Every fixture with its header, source type and the CodeBuild event it must map to.
const EVENTS: &[(&str, &str, SourceType, Option<&str>)] = &[
    ("github/push-branch.json", "push", Github, Some("PUSH")),
    ("github/push-tag.json", "push", Github, Some("PUSH")),
    ("github/push-tag-deleted.json", "push", Github, None),
    ("github/pull_request-opened.json", "pull_request", Github, Some("PULL_REQUEST_CREATED")),
    ("github/pull_request-synchronize.json", "pull_request", Github, Some("PULL_REQUEST_UPDATED")),
    ("github/pull_request-closed.json", "pull_request", Github, Some("PULL_REQUEST_CLOSED")),
    ("github/pull_request-closed-merged.json", "pull_request", Github, Some("PULL_REQUEST_MERGED")),
    ("github/pull_request-reopened.json", "pull_request", Github, Some("PULL_REQUEST_REOPENED")),
    ("github/release-published.json", "release", Github, None),
    ("github/release-released.json", "release", Github, Some("RELEASED")),
    ("github/release-prereleased.json", "release", Github, Some("PRERELEASED")),
    ("github/workflow_job-queued.json", "workflow_job", Github, Some("WORKFLOW_JOB_QUEUED")),
    ("github/ping.json", "ping", Github, None),
    ("github/ghes-3.5-push-tag.json", "push", GithubEnterprise, Some("PUSH")),
    ("github/ghes-3.5-pull_request-opened.json", "pull_request", GithubEnterprise, Some("PULL_REQUEST_CREATED")),
    ("gitlab/push.json", "Push Hook", Gitlab, Some("PUSH")),
    ("gitlab/tag_push.json", "Tag Push Hook", Gitlab, Some("PUSH")),
    ("gitlab/merge_request.json", "Merge Request Hook", Gitlab, Some("PULL_REQUEST_CREATED")),
    ("gitlab/merge_request-update.json", "Merge Request Hook", GitlabSelfManaged, Some("PULL_REQUEST_UPDATED")),
    ("gitlab/merge_request-merge.json", "Merge Request Hook", Gitlab, Some("PULL_REQUEST_MERGED")),
    ("gitlab/release.json", "Release Hook", GitlabSelfManaged, Some("RELEASED")),
    ("bitbucket/repo-push.json", "repo:push", Bitbucket, Some("PUSH")),
    ("bitbucket/pullrequest-created.json", "pullrequest:created", Bitbucket, Some("PULL_REQUEST_CREATED")),
    ("bitbucket/pullrequest-created.json", "pullrequest:updated", Bitbucket, Some("PULL_REQUEST_UPDATED")),
    ("bitbucket/pullrequest-created.json", "pullrequest:rejected", Bitbucket, Some("PULL_REQUEST_CLOSED")),
    ("bitbucket/pullrequest-fulfilled.json", "pullrequest:fulfilled", Bitbucket, Some("PULL_REQUEST_MERGED")),
];

/// For every fixture and every event its provider supports, a one-filter group `EVENT: <name>` passes exactly
/// when the name is the fixture's event; the excluded filter passes exactly when it is not (and the event has
/// a CodeBuild name at all).
#[test]
fn every_event_mapping() {
    for (file, header, source, want) in EVENTS {
        let event = event(file, header);
        assert_eq!(event.codebuild_event.map(|e| e.as_str()), *want, "{file} {header}");
        for name in source.events() {
            let include = compile(&[vec![f("EVENT", name.as_str())]], *source).unwrap();
            let evaluation = evaluate(&include, &event);
            assert_eq!(evaluation.passed, *want == Some(name.as_str()), "{file} {header} EVENT {name}");
            let exclude = compile(&[vec![x("EVENT", name.as_str())]], *source).unwrap();
            let passed = evaluate(&exclude, &event).passed;
            assert_eq!(passed, want.is_some() && *want != Some(name.as_str()), "{file} {header} EVENT !{name}");
        }
    }
}

#[test]
fn event_lists_are_comma_separated_with_blanks_ignored() {
    let groups = compile(&[vec![f("EVENT", "PUSH, PULL_REQUEST_CREATED ,PULL_REQUEST_UPDATED")]], Github).unwrap();
    for (file, header, want) in [
        ("github/push-branch.json", "push", true),
        ("github/pull_request-opened.json", "pull_request", true),
        ("github/pull_request-synchronize.json", "pull_request", true),
        ("github/pull_request-closed.json", "pull_request", false),
        ("github/release-released.json", "release", false),
    ] {
        assert_eq!(evaluate(&groups, &event(file, header)).passed, want, "{file}");
    }
}

/// The value each filter type reads, on real payloads, included and excluded: (source, fixture, header,
/// event filter, filter type, pattern, whether the pattern matches).
#[test]
fn every_filter_type() {
    let cases: &[(SourceType, &str, &str, &str, &str, &str, bool)] = &[
        // ACTOR_ACCOUNT_ID: GitHub `sender.id`, GitLab user id, Bitbucket `actor.account_id`.
        (Github, "github/push-branch.json", "push", "PUSH", "ACTOR_ACCOUNT_ID", "^21031067$", true),
        (Github, "github/push-branch.json", "push", "PUSH", "ACTOR_ACCOUNT_ID", "^2103106$", false),
        (
            GithubEnterprise,
            "github/ghes-3.5-pull_request-opened.json",
            "pull_request",
            "PULL_REQUEST_CREATED",
            "ACTOR_ACCOUNT_ID",
            "^4$",
            true,
        ),
        (Gitlab, "gitlab/push.json", "Push Hook", "PUSH", "ACTOR_ACCOUNT_ID", "^4$", true),
        (
            Gitlab,
            "gitlab/merge_request.json",
            "Merge Request Hook",
            "PULL_REQUEST_CREATED",
            "ACTOR_ACCOUNT_ID",
            "^42$",
            true,
        ),
        (Bitbucket, "bitbucket/repo-push.json", "repo:push", "PUSH", "ACTOR_ACCOUNT_ID", "^557058:", true),
        (
            Bitbucket,
            "bitbucket/pullrequest-fulfilled.json",
            "pullrequest:fulfilled",
            "PULL_REQUEST_MERGED",
            "ACTOR_ACCOUNT_ID",
            "^557058:",
            false,
        ),
        // HEAD_REF: full refs, search semantics (the seed's `^refs/heads/`).
        (Github, "github/push-branch.json", "push", "PUSH", "HEAD_REF", "^refs/heads/", true),
        (Github, "github/push-branch.json", "push", "PUSH", "HEAD_REF", "^refs/heads/master$", true),
        (Github, "github/push-branch.json", "push", "PUSH", "HEAD_REF", "master", true),
        (Github, "github/push-branch.json", "push", "PUSH", "HEAD_REF", "^master$", false),
        (Github, "github/push-tag.json", "push", "PUSH", "HEAD_REF", "^refs/tags/simple-", true),
        (Github, "github/push-tag.json", "push", "PUSH", "HEAD_REF", "^refs/heads/", false),
        (
            Github,
            "github/pull_request-opened.json",
            "pull_request",
            "PULL_REQUEST_CREATED",
            "HEAD_REF",
            "^refs/heads/changes$",
            true,
        ),
        (Gitlab, "gitlab/tag_push.json", "Tag Push Hook", "PUSH", "HEAD_REF", "^refs/tags/v1\\.", true),
        (
            Bitbucket,
            "bitbucket/pullrequest-created.json",
            "pullrequest:created",
            "PULL_REQUEST_CREATED",
            "HEAD_REF",
            "^refs/heads/feature/",
            true,
        ),
        // BASE_REF: pull requests' target branch.
        (
            Github,
            "github/pull_request-closed-merged.json",
            "pull_request",
            "PULL_REQUEST_MERGED",
            "BASE_REF",
            "^refs/heads/master$",
            true,
        ),
        (
            Github,
            "github/pull_request-opened.json",
            "pull_request",
            "PULL_REQUEST_CREATED",
            "BASE_REF",
            "^refs/heads/main$",
            false,
        ),
        (
            Gitlab,
            "gitlab/merge_request-update.json",
            "Merge Request Hook",
            "PULL_REQUEST_UPDATED",
            "BASE_REF",
            "^refs/heads/master$",
            true,
        ),
        (
            Bitbucket,
            "bitbucket/pullrequest-created.json",
            "pullrequest:created",
            "PULL_REQUEST_CREATED",
            "BASE_REF",
            "^refs/heads/main$",
            true,
        ),
        // FILE_PATH: any changed file of the push.
        (Github, "github/push-branch.json", "push", "PUSH", "FILE_PATH", "^README\\.md$", true),
        (Github, "github/push-branch.json", "push", "PUSH", "FILE_PATH", "^src/", false),
        (Github, "github/push-tag.json", "push", "PUSH", "FILE_PATH", ".*", false),
        (GithubEnterprise, "github/ghes-3.5-push-tag.json", "push", "PUSH", "FILE_PATH", ".*", false),
        (Gitlab, "gitlab/push.json", "Push Hook", "PUSH", "FILE_PATH", "^app/controller/", true),
        (Gitlab, "gitlab/push.json", "Push Hook", "PUSH", "FILE_PATH", "^CHANGELOG$", true),
        (Gitlab, "gitlab/push.json", "Push Hook", "PUSH", "FILE_PATH", "^docs/", false),
        // No pull request payload lists files: nothing to match (a caller may fill them in; see below).
        (Github, "github/pull_request-opened.json", "pull_request", "PULL_REQUEST_CREATED", "FILE_PATH", ".*", false),
        (Bitbucket, "bitbucket/repo-push.json", "repo:push", "PUSH", "FILE_PATH", ".*", false),
        // COMMIT_MESSAGE: the head commit's message.
        (Github, "github/push-branch.json", "push", "PUSH", "COMMIT_MESSAGE", "^Initial", true),
        (Github, "github/push-tag.json", "push", "PUSH", "COMMIT_MESSAGE", "gitignore", true),
        (Github, "github/push-branch.json", "push", "PUSH", "COMMIT_MESSAGE", "\\[skip ci\\]", false),
        (Gitlab, "gitlab/push.json", "Push Hook", "PUSH", "COMMIT_MESSAGE", "^fixed readme", true),
        (Gitlab, "gitlab/push.json", "Push Hook", "PUSH", "COMMIT_MESSAGE", "^Merge branch", false),
        (
            Gitlab,
            "gitlab/merge_request.json",
            "Merge Request Hook",
            "PULL_REQUEST_CREATED",
            "COMMIT_MESSAGE",
            "readme",
            true,
        ),
        (Bitbucket, "bitbucket/repo-push.json", "repo:push", "PUSH", "COMMIT_MESSAGE", "widget count", true),
        (
            Github,
            "github/pull_request-opened.json",
            "pull_request",
            "PULL_REQUEST_CREATED",
            "COMMIT_MESSAGE",
            ".*",
            false,
        ),
        // TAG_NAME and RELEASE_NAME: release events only (these examples' releases have no name).
        (Github, "github/release-released.json", "release", "RELEASED", "TAG_NAME", "^0\\.0\\.1$", true),
        (Github, "github/release-prereleased.json", "release", "PRERELEASED", "TAG_NAME", "^v", false),
        (Github, "github/release-released.json", "release", "RELEASED, PRERELEASED", "RELEASE_NAME", ".*", false),
        // REPOSITORY_NAME and ORGANIZATION_NAME: the full name split at its last slash.
        (Github, "github/push-branch.json", "push", "PUSH", "REPOSITORY_NAME", "^Hello-World$", true),
        (Github, "github/push-branch.json", "push", "PUSH", "REPOSITORY_NAME", "^Codertocat/", false),
        (
            Github,
            "github/workflow_job-queued.json",
            "workflow_job",
            "WORKFLOW_JOB_QUEUED",
            "REPOSITORY_NAME",
            "^Hello-World$",
            true,
        ),
        (Github, "github/release-released.json", "release", "RELEASED", "ORGANIZATION_NAME", "^Codertocat$", true),
        (Gitlab, "gitlab/push.json", "Push Hook", "PUSH", "ORGANIZATION_NAME", "^mike$", true),
        (Gitlab, "gitlab/push.json", "Push Hook", "PUSH", "REPOSITORY_NAME", "^diaspora$", true),
        (Bitbucket, "bitbucket/repo-push.json", "repo:push", "PUSH", "ORGANIZATION_NAME", "^acme$", true),
        (Bitbucket, "bitbucket/repo-push.json", "repo:push", "PUSH", "REPOSITORY_NAME", "^gadgets$", false),
        // TAG_NAME and RELEASE_NAME on a GitLab release (`tag`, `name`).
        (Gitlab, "gitlab/release.json", "Release Hook", "RELEASED", "TAG_NAME", "^1\\.0\\.0$", true),
        (Gitlab, "gitlab/release.json", "Release Hook", "RELEASED", "RELEASE_NAME", "^v", false),
        // WORKFLOW_NAME: `workflow_job.workflow_name` (this example's workflow is `CodeQL`).
        (
            Github,
            "github/workflow_job-queued.json",
            "workflow_job",
            "WORKFLOW_JOB_QUEUED",
            "WORKFLOW_NAME",
            "^CodeQL$",
            true,
        ),
        (
            Github,
            "github/workflow_job-queued.json",
            "workflow_job",
            "WORKFLOW_JOB_QUEUED",
            "WORKFLOW_NAME",
            "^Deploy",
            false,
        ),
        (
            GithubEnterprise,
            "github/workflow_job-queued.json",
            "workflow_job",
            "WORKFLOW_JOB_QUEUED",
            "WORKFLOW_NAME",
            "Code",
            true,
        ),
    ];
    for (source, file, header, events, filter_type, pattern, matches) in cases {
        let name = format!("{source} {file} {filter_type} {pattern:?}");
        let event = event(file, header);
        let include = compile(&[vec![f("EVENT", events), f(filter_type, pattern)]], *source)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let evaluation = evaluate(&include, &event);
        assert_eq!(evaluation.passed, *matches, "{name}: {evaluation:#?}");
        let outcome = &evaluation.groups[0].filters[1];
        assert_eq!((outcome.matched, outcome.passed), (*matches, *matches), "{name}");
        // excludeMatchedPattern inverts the filter, and so the group.
        let exclude = compile(&[vec![f("EVENT", events), x(filter_type, pattern)]], *source).unwrap();
        let evaluation = evaluate(&exclude, &event);
        assert_eq!(evaluation.passed, !*matches, "{name} excluded: {evaluation:#?}");
        let outcome = &evaluation.groups[0].filters[1];
        assert_eq!((outcome.matched, outcome.passed), (*matches, !*matches), "{name} excluded");
    }
}

#[test]
fn release_name_on_a_named_release() {
    // The examples' releases are unnamed; name one in code so RELEASE_NAME has something to match.
    let mut payload = fixture("github/release-released.json");
    payload["release"]["name"] = json!("Hello World 0.0.1");
    let event = event_of("github/release-released.json", "release", payload);
    assert_eq!(event.release_name.as_deref(), Some("Hello World 0.0.1"));
    for (pattern, want) in [("^Hello World", true), ("0\\.0\\.1$", true), ("^v", false)] {
        let groups = compile(&[vec![f("EVENT", "RELEASED"), f("RELEASE_NAME", pattern)]], Github).unwrap();
        assert_eq!(evaluate(&groups, &event).passed, want, "{pattern}");
    }
}

#[test]
fn a_caller_may_fill_in_what_pull_request_payloads_lack() {
    let groups = compile(
        &[vec![f("EVENT", "PULL_REQUEST_CREATED"), f("FILE_PATH", "^src/"), x("COMMIT_MESSAGE", "\\[skip ci\\]")]],
        Github,
    )
    .unwrap();
    assert!(groups.uses(FilterType::FilePath) && groups.uses(FilterType::CommitMessage));
    assert!(!groups.uses(FilterType::BaseRef));
    let mut event = event("github/pull_request-opened.json", "pull_request");
    let evaluation = evaluate(&groups, &event);
    assert!(!evaluation.passed);
    assert_eq!(evaluation.groups[0].filters[1].note.as_deref(), Some("the payload does not list the changed files"));
    event.changed_files = Some(vec!["README.md".into(), "src/lib.rs".into()]);
    event.commit_message = Some("Fix the parser".into());
    let evaluation = evaluate(&groups, &event);
    assert!(evaluation.passed, "{evaluation:#?}");
    assert_eq!(evaluation.groups[0].filters[1].matched_value.as_deref(), Some("src/lib.rs"));
    event.commit_message = Some("Fix the parser [skip ci]".into());
    assert!(!evaluate(&groups, &event).passed);
}

/// `needs` asks for a fetch only when a group that could let the event through has the filter.
#[test]
fn needs_tells_when_a_fetch_can_change_the_outcome() {
    let groups = compile(
        &[
            vec![f("EVENT", "PULL_REQUEST_CREATED"), f("FILE_PATH", "^src/")],
            vec![f("EVENT", "PUSH"), f("HEAD_REF", "^refs/heads/main$")],
            vec![
                f("EVENT", "PULL_REQUEST_UPDATED, PULL_REQUEST_MERGED"),
                x("EVENT", "PULL_REQUEST_MERGED"),
                f("COMMIT_MESSAGE", "^Fix"),
            ],
        ],
        Github,
    )
    .unwrap();
    let opened = event("github/pull_request-opened.json", "pull_request");
    let updated = event("github/pull_request-synchronize.json", "pull_request");
    let merged = event("github/pull_request-closed-merged.json", "pull_request");
    let push = event("github/push-branch.json", "push");
    assert!(groups.needs(FilterType::FilePath, &opened));
    assert!(!groups.needs(FilterType::CommitMessage, &opened));
    assert!(groups.needs(FilterType::CommitMessage, &updated));
    assert!(!groups.needs(FilterType::FilePath, &updated));
    assert!(!groups.needs(FilterType::CommitMessage, &merged), "group 3 excludes merged pull requests");
    assert!(!groups.needs(FilterType::FilePath, &push) && !groups.needs(FilterType::CommitMessage, &push));
    let ping = event("github/ping.json", "ping");
    assert!(!groups.needs(FilterType::FilePath, &ping), "no CodeBuild event: nothing to fetch");
    // An exclude-only EVENT filter lets releases through, which have no files to fetch.
    let open = compile(&[vec![x("EVENT", "PULL_REQUEST_MERGED"), f("FILE_PATH", "^src/")]], Github).unwrap();
    let release = event("github/release-released.json", "release");
    assert!(!open.needs(FilterType::FilePath, &release));
    assert!(open.needs(FilterType::FilePath, &event("github/pull_request-opened.json", "pull_request")));
}

/// OR across groups, AND within a group: the AWS CLI's update-webhook example (pull requests from any branch
/// but one into any branch but main; pushes to any branch but one) plus a group for releases.
#[test]
fn several_groups() {
    let groups = vec![
        vec![
            f("EVENT", "PULL_REQUEST_CREATED, PULL_REQUEST_UPDATED, PULL_REQUEST_REOPENED"),
            x("HEAD_REF", "^refs/heads/myBranch$"),
            x("BASE_REF", "^refs/heads/main$"),
        ],
        vec![f("EVENT", "PUSH"), x("HEAD_REF", "^refs/heads/myBranch$"), f("HEAD_REF", "^refs/heads/")],
        vec![f("EVENT", "RELEASED"), f("TAG_NAME", "^0\\.")],
    ];
    let compiled = compile(&groups, Github).unwrap();
    assert_eq!(compiled.len(), 3);
    for (file, header, want_group) in [
        ("github/pull_request-opened.json", "pull_request", Some(1)),
        ("github/pull_request-reopened.json", "pull_request", Some(1)),
        ("github/pull_request-closed.json", "pull_request", None),
        ("github/push-branch.json", "push", Some(2)),
        // A tag push passes the PUSH event and the exclusion, but not the branch-only HEAD_REF: AND.
        ("github/push-tag.json", "push", None),
        ("github/release-released.json", "release", Some(3)),
        ("github/release-prereleased.json", "release", None),
    ] {
        let evaluation = evaluate(&compiled, &event(file, header));
        let passed: Vec<usize> = evaluation.groups.iter().filter(|g| g.passed).map(|g| g.group).collect();
        assert_eq!(passed.first().copied(), want_group, "{file}: {evaluation:#?}");
        assert_eq!(evaluation.passed, want_group.is_some(), "{file}");
        // Every group and every filter is reported, whatever passed.
        assert_eq!(evaluation.groups.iter().map(|g| g.filters.len()).collect::<Vec<_>>(), [3, 3, 2]);
        match want_group {
            Some(g) => assert_eq!(evaluation.reason, format!("filter group {g} passed")),
            None => assert!(evaluation.reason.starts_with("no filter group passed"), "{}", evaluation.reason),
        }
    }
    let mut pushed_to_my_branch = fixture("github/push-branch.json");
    pushed_to_my_branch["ref"] = json!("refs/heads/myBranch");
    assert!(!evaluate(&compiled, &event_of("github/push-branch.json", "push", pushed_to_my_branch)).passed);
}

#[test]
fn explanation_shape() {
    let groups =
        compile(&[vec![f("EVENT", "PUSH"), f("FILE_PATH", "^app/"), x("HEAD_REF", "^refs/tags/")]], Gitlab).unwrap();
    let evaluation = evaluate(&groups, &event("gitlab/push.json", "Push Hook"));
    let value = serde_json::to_value(&evaluation).unwrap();
    assert_eq!(
        value,
        json!({
            "passed": true, "event": "PUSH", "branchFilter": null, "defaultEvents": null,
            "reason": "filter group 1 passed",
            "groups": [{"group": 1, "passed": true, "filters": [
                {"filter": 1, "type": "EVENT", "pattern": "PUSH", "excludeMatchedPattern": false,
                 "found": ["PUSH"], "foundCount": 1, "matchedValue": "PUSH", "matched": true, "passed": true, "note": null},
                {"filter": 2, "type": "FILE_PATH", "pattern": "^app/", "excludeMatchedPattern": false,
                 "found": ["CHANGELOG", "app/controller/application.rb"], "foundCount": 2,
                 "matchedValue": "app/controller/application.rb", "matched": true, "passed": true, "note": null},
                {"filter": 3, "type": "HEAD_REF", "pattern": "^refs/tags/", "excludeMatchedPattern": true,
                 "found": ["refs/heads/master"], "foundCount": 1, "matchedValue": null, "matched": false,
                 "passed": true, "note": null},
            ]}],
        })
    );
}

#[test]
fn found_values_are_bounded() {
    let groups =
        compile(&[vec![f("EVENT", "PUSH"), f("FILE_PATH", "^z"), f("COMMIT_MESSAGE", "end$")]], Github).unwrap();
    let mut event = event("github/push-branch.json", "push");
    event.changed_files = Some((0..50).map(|i| format!("file{i}")).chain(["zebra".to_string()]).collect());
    event.commit_message = Some(format!("{}end", "é".repeat(500)));
    let evaluation = evaluate(&groups, &event);
    assert!(evaluation.passed);
    let files = &evaluation.groups[0].filters[1];
    assert_eq!((files.found.len(), files.found_count), (10, 51));
    assert_eq!(files.matched_value.as_deref(), Some("zebra"));
    let message = &evaluation.groups[0].filters[2].found[0];
    assert_eq!(message.chars().count(), 201);
    assert!(message.ends_with('…'));
}

#[test]
fn no_groups_builds_the_default_events() {
    let none = compile(&[], Github).unwrap();
    assert!(none.is_empty());
    for (file, header, want) in [
        ("github/push-branch.json", "push", true),
        ("github/pull_request-opened.json", "pull_request", true),
        ("github/pull_request-synchronize.json", "pull_request", true),
        ("github/pull_request-reopened.json", "pull_request", true),
        ("github/pull_request-closed-merged.json", "pull_request", false),
        ("github/release-released.json", "release", false),
        ("github/push-tag-deleted.json", "push", false),
        ("github/ping.json", "ping", false),
    ] {
        let evaluation = evaluate(&none, &event(file, header));
        assert_eq!(evaluation.passed, want, "{file}: {}", evaluation.reason);
        assert!(evaluation.groups.is_empty());
    }
    let ping = evaluate(&none, &event("github/ping.json", "ping"));
    assert_eq!(ping.reason, "a ping starts no build");
    let deleted = evaluate(&none, &event("github/push-tag-deleted.json", "push"));
    assert_eq!(deleted.reason, "the event (push) has no CodeBuild event type");
}

#[test]
fn legacy_branch_filter() {
    for (branch_filter, file, header, want) in [
        (Some("^master$"), "github/push-branch.json", "push", true),
        (Some("^main$"), "github/push-branch.json", "push", false),
        (Some("mast"), "github/push-branch.json", "push", true),
        // A pull request's source branch is the one filtered.
        (Some("^changes$"), "github/pull_request-opened.json", "pull_request", true),
        (Some("^master$"), "github/pull_request-opened.json", "pull_request", false),
        // A tag is no branch.
        (Some(".*"), "github/push-tag.json", "push", false),
        // Empty means all branches.
        (Some(""), "github/push-tag.json", "push", true),
        (None, "github/push-tag.json", "push", true),
        (Some("^feature/"), "bitbucket/pullrequest-created.json", "pullrequest:created", true),
    ] {
        let source = if file.starts_with("bitbucket") { Bitbucket } else { Github };
        let compiled = compile_webhook(branch_filter, &[], source).unwrap();
        let evaluation = evaluate(&compiled, &event(file, header));
        assert_eq!(evaluation.passed, want, "{branch_filter:?} {file}: {evaluation:#?}");
        assert_eq!(evaluation.branch_filter.is_some(), branch_filter.is_some_and(|b| !b.is_empty()));
    }
    // With filter groups, both must pass.
    let compiled =
        compile_webhook(Some("^master$"), &[vec![f("EVENT", "PUSH, PULL_REQUEST_CREATED")]], Github).unwrap();
    assert!(evaluate(&compiled, &event("github/push-branch.json", "push")).passed);
    let pr = evaluate(&compiled, &event("github/pull_request-opened.json", "pull_request"));
    assert!(!pr.passed);
    assert_eq!(pr.reason, "the branch filter did not pass");
    assert!(pr.groups[0].passed);
}

/// Every refusal, with words its message must contain. All are InvalidInputException.
#[test]
fn validation_errors() {
    type Groups = Vec<Vec<WebhookFilter>>;
    let cases: Vec<(&str, SourceType, Groups, &str)> = vec![
        ("empty group", Github, vec![vec![]], "Filter group 1 is empty"),
        ("no EVENT filter", Github, vec![vec![f("HEAD_REF", "^refs/heads/")]], "Filter group 1 has no filter of type EVENT"),
        (
            "second group without EVENT",
            Github,
            vec![vec![f("EVENT", "PUSH")], vec![f("FILE_PATH", "x")]],
            "Filter group 2 has no filter of type EVENT",
        ),
        ("unknown filter type", Github, vec![vec![f("EVENT", "PUSH"), f("BRANCH", "x")]], "filter 2: invalid filter type \"BRANCH\""),
        ("lower-case filter type", Github, vec![vec![f("event", "PUSH")]], "invalid filter type \"event\""),
        (
            "WORKFLOW_NAME on pushes",
            Github,
            vec![vec![f("EVENT", "PUSH, WORKFLOW_JOB_QUEUED"), f("WORKFLOW_NAME", "x")]],
            "WORKFLOW_NAME is not supported with PUSH events for source type GITHUB: WORKFLOW_NAME works with WORKFLOW_JOB_QUEUED events only",
        ),
        (
            "WORKFLOW_NAME on GitLab",
            Gitlab,
            vec![vec![x("EVENT", "PUSH"), f("WORKFLOW_NAME", "x")]],
            "WORKFLOW_NAME is not supported with any event filter group 1 lets through",
        ),
        ("bad WORKFLOW_NAME regex", Github, vec![vec![f("EVENT", "WORKFLOW_JOB_QUEUED"), f("WORKFLOW_NAME", "(")]], "filter 2: invalid regular expression"),
        ("unknown event", Github, vec![vec![f("EVENT", "PUSH, PULL_REQUEST_OPENED")]], "unknown event \"PULL_REQUEST_OPENED\""),
        ("lower-case event", Github, vec![vec![f("EVENT", "push")]], "unknown event \"push\""),
        ("empty EVENT pattern", Github, vec![vec![f("EVENT", "")]], "empty event name"),
        ("trailing comma", Github, vec![vec![f("EVENT", "PUSH,")]], "empty event name"),
        (
            "REOPENED on GitLab",
            Gitlab,
            vec![vec![f("EVENT", "PULL_REQUEST_REOPENED")]],
            "event PULL_REQUEST_REOPENED is not supported for source type GITLAB (it works with GitHub and GitHub Enterprise only)",
        ),
        ("REOPENED on Bitbucket", Bitbucket, vec![vec![f("EVENT", "PUSH, PULL_REQUEST_REOPENED")]], "PULL_REQUEST_REOPENED is not supported for source type BITBUCKET"),
        ("RELEASED on GHE", GithubEnterprise, vec![vec![f("EVENT", "RELEASED")]], "RELEASED is not supported for source type GITHUB_ENTERPRISE (it works with GitHub and GitLab only)"),
        ("PRERELEASED on GitLab", GitlabSelfManaged, vec![vec![f("EVENT", "PRERELEASED")]], "PRERELEASED is not supported for source type GITLAB_SELF_MANAGED"),
        ("RELEASED on Bitbucket even excluded", Bitbucket, vec![vec![x("EVENT", "RELEASED")]], "RELEASED is not supported"),
        ("WORKFLOW_JOB_QUEUED on Bitbucket", Bitbucket, vec![vec![f("EVENT", "WORKFLOW_JOB_QUEUED")]], "WORKFLOW_JOB_QUEUED is not supported"),
        (
            "FILE_PATH on GHE pull requests",
            GithubEnterprise,
            vec![vec![f("EVENT", "PUSH, PULL_REQUEST_CREATED"), f("FILE_PATH", "^src/")]],
            "FILE_PATH is not supported with PULL_REQUEST_CREATED events for source type GITHUB_ENTERPRISE",
        ),
        (
            "COMMIT_MESSAGE on GHE pull requests",
            GithubEnterprise,
            vec![vec![f("EVENT", "PULL_REQUEST_MERGED"), x("COMMIT_MESSAGE", "wip")]],
            "COMMIT_MESSAGE is not supported with PULL_REQUEST_MERGED events",
        ),
        ("BASE_REF on pushes", Github, vec![vec![f("EVENT", "PUSH"), f("BASE_REF", "^refs/heads/main$")]], "BASE_REF works with pull request events only"),
        ("HEAD_REF on releases", Github, vec![vec![f("EVENT", "RELEASED"), f("HEAD_REF", "x")]], "HEAD_REF is not supported with RELEASED events"),
        ("TAG_NAME on pushes", Github, vec![vec![f("EVENT", "PUSH, RELEASED"), f("TAG_NAME", "^v")]], "TAG_NAME is not supported with PUSH events"),
        ("RELEASE_NAME on pull requests", Github, vec![vec![f("EVENT", "PULL_REQUEST_CREATED"), f("RELEASE_NAME", "x")]], "RELEASE_NAME works with RELEASED and PRERELEASED events only"),
        ("FILE_PATH on workflow jobs", Github, vec![vec![f("EVENT", "WORKFLOW_JOB_QUEUED"), f("FILE_PATH", "x")]], "FILE_PATH is not supported with WORKFLOW_JOB_QUEUED"),
        (
            "TAG_NAME where only excluded events leave none that has a tag",
            Bitbucket,
            vec![vec![x("EVENT", "PULL_REQUEST_CLOSED"), f("TAG_NAME", "^v")]],
            "TAG_NAME is not supported with any event filter group 1 lets through",
        ),
        ("no event left", Github, vec![vec![f("EVENT", "PUSH"), x("EVENT", "PUSH")]], "Filter group 1: its EVENT filters let no event through"),
        ("disjoint EVENT filters", Github, vec![vec![f("EVENT", "PUSH"), f("EVENT", "RELEASED")]], "let no event through"),
        ("bad regex", Github, vec![vec![f("EVENT", "PUSH"), f("HEAD_REF", "^refs/heads/(main")]], "filter 2: invalid regular expression \"^refs/heads/(main\""),
        ("look-around", Github, vec![vec![f("EVENT", "PUSH"), f("HEAD_REF", "^refs/heads/(?!main)")]], "invalid regular expression"),
        ("back-reference", Bitbucket, vec![vec![f("EVENT", "PUSH"), f("COMMIT_MESSAGE", "(a)\\1")]], "invalid regular expression"),
        ("huge regex", Github, vec![vec![f("EVENT", "PUSH"), f("COMMIT_MESSAGE", "\\w{1000}\\w{1000}")]], "exceeds the size limit"),
        ("long pattern", Github, vec![vec![f("EVENT", "PUSH"), f("COMMIT_MESSAGE", &"a".repeat(4097))]], "longer than 4096 characters"),
    ];
    for (name, source, groups, words) in cases {
        match compile(&groups, source) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => {
                assert_eq!(e.aws_type(), "InvalidInputException");
                let message = e.to_string();
                assert!(message.contains(words), "{name}: {message:?} lacks {words:?}");
            }
        }
    }
    let e = compile_webhook(Some("(unclosed"), &[], Github).unwrap_err();
    assert!(matches!(e, FilterGroupError::InvalidBranchFilter { .. }), "{e}");
    assert!(e.to_string().starts_with("Invalid branchFilter \"(unclosed\""), "{e}");
    for source in ["CODEPIPELINE", "NO_SOURCE", "S3", "CODECOMMIT", "github"] {
        let e = SourceType::parse(source).unwrap_err();
        assert!(e.to_string().contains("does not support webhooks"), "{source}: {e}");
        assert_eq!(e.aws_type(), "InvalidInputException");
    }
}

/// What every provider accepts: the seed's matrix, positively.
#[test]
fn accepted_configurations() {
    let cases: Vec<(SourceType, Vec<Vec<WebhookFilter>>)> = vec![
        (Github, vec![vec![f("EVENT", "PULL_REQUEST_REOPENED"), f("FILE_PATH", "x"), f("COMMIT_MESSAGE", "y")]]),
        (GithubEnterprise, vec![vec![f("EVENT", "PULL_REQUEST_REOPENED, WORKFLOW_JOB_QUEUED")]]),
        (
            Github,
            vec![vec![f("EVENT", "WORKFLOW_JOB_QUEUED"), f("WORKFLOW_NAME", "^CI$"), x("ACTOR_ACCOUNT_ID", "^1$")]],
        ),
        (GithubEnterprise, vec![vec![f("EVENT", "WORKFLOW_JOB_QUEUED"), x("WORKFLOW_NAME", "^Deploy")]]),
        (Gitlab, vec![vec![f("EVENT", "RELEASED"), f("TAG_NAME", "^v"), f("RELEASE_NAME", "x")]]),
        (GitlabSelfManaged, vec![vec![f("EVENT", "PUSH, RELEASED")]]),
        (GithubEnterprise, vec![vec![f("EVENT", "PUSH"), f("FILE_PATH", "x"), f("COMMIT_MESSAGE", "y")]]),
        (GithubEnterprise, vec![vec![f("EVENT", "PULL_REQUEST_CREATED"), f("HEAD_REF", "x"), f("BASE_REF", "y")]]),
        (Github, vec![vec![f("EVENT", "RELEASED, PRERELEASED"), f("TAG_NAME", "^v"), x("RELEASE_NAME", "rc")]]),
        (
            Github,
            vec![vec![
                f("EVENT", "PUSH, RELEASED"),
                f("ACTOR_ACCOUNT_ID", "^1$"),
                f("REPOSITORY_NAME", "r"),
                f("ORGANIZATION_NAME", "o"),
            ]],
        ),
        (
            Gitlab,
            vec![vec![
                f("EVENT", "PUSH, PULL_REQUEST_MERGED, PULL_REQUEST_CLOSED"),
                f("FILE_PATH", "x"),
                f("HEAD_REF", "y"),
            ]],
        ),
        (
            Bitbucket,
            vec![vec![
                f("EVENT", "PULL_REQUEST_MERGED"),
                f("FILE_PATH", "x"),
                f("COMMIT_MESSAGE", "y"),
                f("BASE_REF", "z"),
            ]],
        ),
        // Only excluded events: HEAD_REF needs just one event let through that has a head ref.
        (Github, vec![vec![x("EVENT", "RELEASED, PRERELEASED"), f("HEAD_REF", "^refs/heads/")]]),
        // An empty regex matches everything.
        (Github, vec![vec![f("EVENT", "PUSH"), f("HEAD_REF", "")]]),
        (Github, vec![]),
    ];
    for (source, groups) in cases {
        compile(&groups, source).unwrap_or_else(|e| panic!("{source} {groups:?}: {e}"));
    }
}

/// The events a repository hook must be subscribed to: what some group's EVENT filters let through (the other
/// filters are decided per delivery), or the default events without groups.
#[test]
fn events_a_hook_needs() {
    use CodeBuildEvent::*;
    let cases: Vec<(SourceType, Vec<Vec<WebhookFilter>>, Vec<CodeBuildEvent>)> = vec![
        (Github, vec![], vec![Push, PullRequestCreated, PullRequestUpdated, PullRequestReopened]),
        (Bitbucket, vec![], vec![Push, PullRequestCreated, PullRequestUpdated]),
        (Github, vec![vec![f("EVENT", "PUSH"), f("HEAD_REF", "^refs/heads/main$")]], vec![Push]),
        (
            Github,
            vec![vec![f("EVENT", "PUSH")], vec![f("EVENT", "RELEASED"), f("TAG_NAME", "^v")]],
            vec![Push, Released],
        ),
        (
            Github,
            vec![vec![f("EVENT", "PUSH, PULL_REQUEST_MERGED"), f("EVENT", "PULL_REQUEST_MERGED")]],
            vec![PullRequestMerged],
        ),
        (Github, vec![vec![f("EVENT", "WORKFLOW_JOB_QUEUED"), f("WORKFLOW_NAME", "^CI$")]], vec![WorkflowJobQueued]),
        (
            Gitlab,
            vec![vec![x("EVENT", "PUSH, PULL_REQUEST_CLOSED")]],
            vec![PullRequestCreated, PullRequestUpdated, PullRequestMerged, Released],
        ),
        (GitlabSelfManaged, vec![vec![f("EVENT", "PUSH, RELEASED"), x("EVENT", "PUSH")]], vec![Released]),
        (
            Bitbucket,
            vec![vec![f("EVENT", "PUSH")], vec![f("EVENT", "PULL_REQUEST_MERGED"), f("BASE_REF", "^refs/heads/main$")]],
            vec![Push, PullRequestMerged],
        ),
    ];
    for (source, groups, want) in cases {
        let compiled = compile(&groups, source).unwrap_or_else(|e| panic!("{source} {groups:?}: {e}"));
        assert_eq!(compiled.events().into_iter().collect::<Vec<_>>(), want, "{source} {groups:?}");
    }
}

#[test]
fn wire_shape_round_trips() {
    let wire = json!([[{"type": "EVENT", "pattern": "PUSH"}, {"type": "HEAD_REF", "pattern": "^refs/heads/main$", "excludeMatchedPattern": true}]]);
    let groups: Vec<Vec<WebhookFilter>> = serde_json::from_value(wire).unwrap();
    assert_eq!(groups[0][0], f("EVENT", "PUSH"));
    assert_eq!(groups[0][1], x("HEAD_REF", "^refs/heads/main$"));
    // CodeBuild echoes `excludeMatchedPattern: false` where the request left it out.
    assert_eq!(
        serde_json::to_value(&groups).unwrap(),
        json!([[{"type": "EVENT", "pattern": "PUSH", "excludeMatchedPattern": false},
                {"type": "HEAD_REF", "pattern": "^refs/heads/main$", "excludeMatchedPattern": true}]])
    );
    assert_eq!(serde_json::to_value(CodeBuildEvent::PullRequestMerged).unwrap(), json!("PULL_REQUEST_MERGED"));
    assert_eq!(serde_json::to_value(SourceType::GitlabSelfManaged).unwrap(), json!("GITLAB_SELF_MANAGED"));
    assert_eq!(serde_json::to_value(FilterType::ActorAccountId).unwrap(), json!("ACTOR_ACCOUNT_ID"));
    for t in FilterType::ALL {
        assert_eq!(FilterType::parse(t.as_str()), Some(t));
    }
    for e in CodeBuildEvent::ALL {
        assert_eq!(CodeBuildEvent::parse(e.as_str()), Some(e));
    }
}
