//! The engine against real provider payloads (see `fixtures/README.md` for where each file comes from).
//!
//! Each `normalize` case compares the whole serialized `SourceEvent` with a literal, so a field that is
//! added, dropped or mapped differently shows up here. The signature cases sign the fixture's raw bytes with
//! values computed independently by `openssl dgst -hmac`, so our HMAC code is checked against another
//! implementation, not against itself.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use http::{HeaderMap, HeaderName, HeaderValue};
use pipehook_domain::secret::Secret;
use pipehook_inbound::{
    authenticate, compile, evaluate, normalize, AuthOutcome, Authentication, CodeBuildEvent, Rule, SourceEvent,
};
use serde_json::{json, Value};

fn fixture_bytes(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture_bytes(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| (HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap()))
        .collect()
}

/// One normalization case: the fixture, the headers the provider would send with it, and the whole
/// expected `SourceEvent` as JSON: `want` holds the fields every event has, `codebuild` the fields CodeBuild
/// filter groups and build variables use (both are checked, so every field is written out once per case).
fn check(name: &str, request: &[(&str, &str)], want: Value, codebuild: Value) {
    let event = normalize(&headers(request), &fixture(name));
    check_event(name, &event, want, codebuild);
}

fn check_event(name: &str, event: &SourceEvent, mut want: Value, codebuild: Value) {
    want.as_object_mut().unwrap().extend(codebuild.as_object().unwrap().clone());
    let got = serde_json::to_value(event).unwrap();
    assert_eq!(got, want, "{name}:\n got  {got:#}\n want {want:#}");
}

/// The CodeBuild fields of a GitHub event from the Codertocat/Hello-World examples.
fn hello_world(codebuild_event: Option<&str>, head_ref: Option<&str>, extra: Value) -> Value {
    let mut v = json!({
        "codebuild_event": codebuild_event, "actor_account_id": "21031067", "changed_files": null,
        "commit_message": null, "tag_name": null, "release_name": null, "repository_name": "Hello-World",
        "organization_name": "Codertocat", "previous_commit": null, "merge_commit": null, "head_ref": head_ref,
        "workflow_name": null,
    });
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    v
}

const DELIVERY: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
/// git's all-zero id: the `before` of a push that created its ref.
const ZERO: &str = "0000000000000000000000000000000000000000";

#[test]
fn github_fixtures() {
    let push = |event: &'static str| {
        [("X-GitHub-Event", event), ("X-GitHub-Delivery", DELIVERY), ("X-GitHub-Hook-ID", "292430182")]
    };
    let branch_push = json!({
        "provider": "github", "event": "push", "action": null, "delivery_id": DELIVERY, "is_ping": false,
        "commit_id": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "git_ref": "refs/heads/master", "branch": "master",
        "message": "Initial commit", "actor": "Codertocat", "repository": "Codertocat/Hello-World",
        "repository_url": "https://github.com/Codertocat/Hello-World", "pull_request": null, "base_ref": null,
    });
    // A new branch: `before` is git's all-zero id, kept as it is (CodeBuild passes it on as
    // CODEBUILD_WEBHOOK_PREV_COMMIT).
    let branch_push_cb = hello_world(
        Some("PUSH"),
        Some("refs/heads/master"),
        json!({"changed_files": ["README.md"], "commit_message": "Initial commit", "previous_commit": ZERO}),
    );
    check("github/push-branch.json", &push("push"), branch_push.clone(), branch_push_cb.clone());
    check("github/push-bench.json", &push("push"), branch_push, branch_push_cb);
    check(
        "github/push-tag.json",
        &push("push"),
        json!({
            "provider": "github", "event": "push", "action": null, "delivery_id": DELIVERY, "is_ping": false,
            "commit_id": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "git_ref": "refs/tags/simple-tag", "branch": null,
            "message": "Adding a .gitignore file", "actor": "Codertocat", "repository": "Codertocat/Hello-World",
            "repository_url": "https://github.com/Codertocat/Hello-World", "pull_request": null, "base_ref": null,
        }),
        // A tag created on an existing commit lists no commits, hence no changed files.
        hello_world(
            Some("PUSH"),
            Some("refs/tags/simple-tag"),
            json!({"changed_files": [], "commit_message": "Adding a .gitignore file", "previous_commit": ZERO}),
        ),
    );
    check(
        "github/push-tag-deleted.json",
        &push("push"),
        json!({
            "provider": "github", "event": "push", "action": null, "delivery_id": DELIVERY, "is_ping": false,
            "commit_id": null, "git_ref": "refs/tags/simple-tag", "branch": null,
            "message": null, "actor": "Codertocat", "repository": "Codertocat/Hello-World",
            "repository_url": "https://github.com/Codertocat/Hello-World", "pull_request": null, "base_ref": null,
        }),
        // Deleting a ref leaves nothing to build: no CodeBuild event.
        hello_world(
            None,
            Some("refs/tags/simple-tag"),
            json!({"changed_files": [], "previous_commit": "6113728f27ae82c7b1a177c8d03f9e96e0adf246"}),
        ),
    );
    for (file, action, codebuild_event) in [
        ("github/pull_request-opened.json", "opened", "PULL_REQUEST_CREATED"),
        ("github/pull_request-synchronize.json", "synchronize", "PULL_REQUEST_UPDATED"),
        ("github/pull_request-closed.json", "closed", "PULL_REQUEST_CLOSED"),
        ("github/pull_request-closed-merged.json", "closed", "PULL_REQUEST_MERGED"),
        ("github/pull_request-reopened.json", "reopened", "PULL_REQUEST_REOPENED"),
    ] {
        check(
            file,
            &push("pull_request"),
            json!({
                "provider": "github", "event": "pull_request", "action": action, "delivery_id": DELIVERY, "is_ping": false,
                "commit_id": "ec26c3e57ca3a959ca5aad62de7213c562f8c821", "git_ref": "refs/heads/changes", "branch": "changes",
                "message": "Update the README with new information.", "actor": "Codertocat",
                "repository": "Codertocat/Hello-World", "repository_url": "https://github.com/Codertocat/Hello-World",
                "pull_request": 2, "base_ref": "refs/heads/master",
            }),
            // Pull request payloads carry neither the changed files nor the head commit's message.
            hello_world(Some(codebuild_event), Some("refs/heads/changes"), json!({})),
        );
    }
    // `edited` (title or body) is not an update of the code: CodeBuild names only `synchronize` UPDATED.
    let mut edited = fixture("github/pull_request-synchronize.json");
    edited["action"] = json!("edited");
    let event = normalize(&headers(&push("pull_request")), &edited);
    assert_eq!((event.action.as_deref(), event.codebuild_event), (Some("edited"), None));
    check(
        "github/ping.json",
        &push("ping"),
        json!({
            "provider": "github", "event": "ping", "action": null, "delivery_id": DELIVERY, "is_ping": true,
            "commit_id": null, "git_ref": null, "branch": null, "message": null, "actor": "Codertocat",
            "repository": "Octocoders/Hello-World", "repository_url": "https://github.com/Octocoders/Hello-World",
            "pull_request": null, "base_ref": null,
        }),
        hello_world(None, None, json!({"organization_name": "Octocoders"})),
    );
    check(
        "github/ping-organization.json",
        &push("ping"),
        json!({
            "provider": "github", "event": "ping", "action": null, "delivery_id": DELIVERY, "is_ping": true,
            "commit_id": null, "git_ref": null, "branch": null, "message": null, "actor": "Codertocat",
            "repository": null, "repository_url": null, "pull_request": null, "base_ref": null,
        }),
        hello_world(None, None, json!({"repository_name": null, "organization_name": null})),
    );
    // `published` comes with every release beside `released` or `prereleased`; only those two have a
    // CodeBuild name, so a release starts one build, not two.
    for (file, action, codebuild_event) in [
        ("github/release-published.json", "published", None),
        ("github/release-released.json", "released", Some("RELEASED")),
        ("github/release-prereleased.json", "prereleased", Some("PRERELEASED")),
    ] {
        check(
            file,
            &push("release"),
            json!({
                "provider": "github", "event": "release", "action": action, "delivery_id": DELIVERY, "is_ping": false,
                "commit_id": null, "git_ref": "refs/tags/0.0.1", "branch": null, "message": null, "actor": "Codertocat",
                "repository": "Codertocat/Hello-World", "repository_url": "https://github.com/Codertocat/Hello-World",
                "pull_request": null, "base_ref": null,
            }),
            // These examples' releases have an empty or null name.
            hello_world(codebuild_event, None, json!({"tag_name": "0.0.1"})),
        );
    }
    check(
        "github/workflow_job-queued.json",
        &push("workflow_job"),
        json!({
            "provider": "github", "event": "workflow_job", "action": "queued", "delivery_id": DELIVERY, "is_ping": false,
            "commit_id": "3484a3fb816e0859fd6e1cea078d76385ff50625", "git_ref": "refs/heads/main", "branch": "main",
            "message": null, "actor": "Codertocat", "repository": "Codertocat/Hello-World",
            "repository_url": "https://github.com/Codertocat/Hello-World", "pull_request": null, "base_ref": null,
        }),
        hello_world(Some("WORKFLOW_JOB_QUEUED"), Some("refs/heads/main"), json!({"workflow_name": "CodeQL"})),
    );
}

#[test]
fn github_enterprise_fixtures() {
    let ghes = |event: &'static str| {
        [
            ("X-GitHub-Event", event),
            ("X-GitHub-Delivery", DELIVERY),
            ("X-GitHub-Enterprise-Host", "octocoders.github.io"),
            ("X-GitHub-Enterprise-Version", "3.5.0"),
        ]
    };
    check(
        "github/ghes-3.5-push-tag.json",
        &ghes("push"),
        json!({
            "provider": "github", "event": "push", "action": null, "delivery_id": DELIVERY, "is_ping": false,
            "commit_id": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "git_ref": "refs/tags/simple-tag", "branch": null,
            "message": "Adding a .gitignore file", "actor": "Codertocat", "repository": "Codertocat/Hello-World",
            "repository_url": "https://octocoders.github.io/Codertocat/Hello-World",
            "pull_request": null, "base_ref": null,
        }),
        hello_world(
            Some("PUSH"),
            Some("refs/tags/simple-tag"),
            json!({
                "actor_account_id": "4", "changed_files": [], "commit_message": "Adding a .gitignore file",
                "previous_commit": ZERO,
            }),
        ),
    );
    check(
        "github/ghes-3.5-pull_request-opened.json",
        &ghes("pull_request"),
        json!({
            "provider": "github", "event": "pull_request", "action": "opened", "delivery_id": DELIVERY, "is_ping": false,
            "commit_id": "14977a7b5485400124827221a04bfb474bcd72d1", "git_ref": "refs/heads/changes", "branch": "changes",
            "message": "Update the README with new information.", "actor": "Codertocat",
            "repository": "Codertocat/Hello-World", "repository_url": "https://octocoders.github.io/Codertocat/Hello-World",
            "pull_request": 2, "base_ref": "refs/heads/master",
        }),
        hello_world(Some("PULL_REQUEST_CREATED"), Some("refs/heads/changes"), json!({"actor_account_id": "4"})),
    );
}

/// The CodeBuild fields of a GitLab or Bitbucket event.
fn other(codebuild_event: Option<&str>, head_ref: &str, org: &str, repo: &str, extra: Value) -> Value {
    let mut v = json!({
        "codebuild_event": codebuild_event, "actor_account_id": null, "changed_files": null,
        "commit_message": null, "tag_name": null, "release_name": null, "repository_name": repo,
        "organization_name": org, "previous_commit": null, "merge_commit": null, "head_ref": head_ref,
        "workflow_name": null,
    });
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    v
}

#[test]
fn gitlab_fixtures() {
    const UUID: &str = "13792a34-cac6-4fda-95a8-c58e00a3954e";
    let hook = |event: &'static str| {
        [("X-Gitlab-Event", event), ("X-Gitlab-Event-UUID", UUID), ("X-Gitlab-Token", "irrelevant")]
    };
    check(
        "gitlab/push.json",
        &hook("Push Hook"),
        json!({
            "provider": "gitlab", "event": "Push Hook", "action": null, "delivery_id": UUID, "is_ping": false,
            "commit_id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", "git_ref": "refs/heads/master", "branch": "master",
            "message": "fixed readme\n", "actor": "jsmith", "repository": "mike/diaspora",
            "repository_url": "http://example.com/mike/diaspora", "pull_request": null, "base_ref": null,
        }),
        other(
            Some("PUSH"),
            "refs/heads/master",
            "mike",
            "diaspora",
            json!({
                "actor_account_id": "4", "changed_files": ["CHANGELOG", "app/controller/application.rb"],
                "commit_message": "fixed readme\n", "previous_commit": "95790bf891e76fee5e1747ab589903a6a1f80f22",
            }),
        ),
    );
    check(
        "gitlab/tag_push.json",
        &hook("Tag Push Hook"),
        json!({
            "provider": "gitlab", "event": "Tag Push Hook", "action": null, "delivery_id": UUID, "is_ping": false,
            "commit_id": "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7", "git_ref": "refs/tags/v1.0.0", "branch": null,
            "message": "Merge branch 'some-feature' into 'master'\n\nRelease v1.0.0\n\nSee merge request jsmith/example!1",
            "actor": "jsmith", "repository": "jsmith/example", "repository_url": "http://example.com/jsmith/example",
            "pull_request": null, "base_ref": null,
        }),
        other(
            Some("PUSH"),
            "refs/tags/v1.0.0",
            "jsmith",
            "example",
            json!({
                "actor_account_id": "1", "changed_files": ["CHANGELOG", "UPGRADE.md"],
                "commit_message": "Merge branch 'some-feature' into 'master'\n\nRelease v1.0.0\n\nSee merge request jsmith/example!1",
                "previous_commit": ZERO,
            }),
        ),
    );
    check(
        "gitlab/merge_request.json",
        &hook("Merge Request Hook"),
        json!({
            "provider": "gitlab", "event": "Merge Request Hook", "action": "open", "delivery_id": UUID, "is_ping": false,
            "commit_id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", "git_ref": "refs/heads/ms-viewport", "branch": "ms-viewport",
            "message": "MS-Viewport", "actor": "user1", "repository": "gitlabhq/gitlab-test",
            "repository_url": "http://example.com/gitlabhq/gitlab-test",
            "pull_request": 1, "base_ref": "refs/heads/master",
        }),
        // GitLab merge request payloads do carry the last commit's message.
        other(
            Some("PULL_REQUEST_CREATED"),
            "refs/heads/ms-viewport",
            "gitlabhq",
            "gitlab-test",
            json!({"actor_account_id": "42", "commit_message": "fixed readme"}),
        ),
    );
    check(
        "gitlab/merge_request-update.json",
        &hook("Merge Request Hook"),
        json!({
            "provider": "gitlab", "event": "Merge Request Hook", "action": "update", "delivery_id": UUID, "is_ping": false,
            "commit_id": "0ab96a10266b95b4b533dcfd98738015fbe70889", "git_ref": "refs/heads/next-feature", "branch": "next-feature",
            "message": "Update client.go 🎉", "actor": "test", "repository": "test/woodpecker",
            "repository_url": "http://10.40.8.5:3200/test/woodpecker",
            "pull_request": 2, "base_ref": "refs/heads/master",
        }),
        other(
            Some("PULL_REQUEST_UPDATED"),
            "refs/heads/next-feature",
            "test",
            "woodpecker",
            json!({"actor_account_id": "2", "commit_message": "Update state.go"}),
        ),
    );
    let merged = normalize(&headers(&hook("Merge Request Hook")), &fixture("gitlab/merge_request-merge.json"));
    assert_eq!(merged.action.as_deref(), Some("merge"));
    assert_eq!(merged.codebuild_event, Some(CodeBuildEvent::PullRequestMerged));
    assert_eq!(merged.actor_account_id.as_deref(), Some("42"));
    assert_eq!(merged.commit_message.as_deref(), Some("commit message"));
    // The other actions, on the `open` example with only `object_attributes.action` changed.
    for (action, want) in [
        ("close", Some(CodeBuildEvent::PullRequestClosed)),
        ("reopen", Some(CodeBuildEvent::PullRequestReopened)),
        ("merge", Some(CodeBuildEvent::PullRequestMerged)),
        ("approved", None),
        ("unapproved", None),
    ] {
        let mut payload = fixture("gitlab/merge_request.json");
        payload["object_attributes"]["action"] = json!(action);
        let event = normalize(&headers(&hook("Merge Request Hook")), &payload);
        assert_eq!(event.codebuild_event, want, "{action}");
    }
    // A release: `create` and `update` are RELEASED (CodeBuild's GitLab page), `delete` is nothing to build.
    check(
        "gitlab/release.json",
        &hook("Release Hook"),
        json!({
            "provider": "gitlab", "event": "Release Hook", "action": "create", "delivery_id": UUID, "is_ping": false,
            "commit_id": "2626dbdb936782b5c54816b1c6d45b1279303c6d", "git_ref": "refs/tags/1.0.0", "branch": null,
            "message": "1.0.0", "actor": null, "repository": "exm-namespace/example-project",
            "repository_url": "http://example.com/exm-namespace/example-project", "pull_request": null,
            "base_ref": null,
        }),
        other(
            Some("RELEASED"),
            "",
            "exm-namespace",
            "example-project",
            json!({"head_ref": null, "tag_name": "1.0.0", "release_name": "1.0.0"}),
        ),
    );
    for (action, want) in [("update", Some(CodeBuildEvent::Released)), ("delete", None)] {
        let mut payload = fixture("gitlab/release.json");
        payload["action"] = json!(action);
        let event = normalize(&headers(&hook("Release Hook")), &payload);
        assert_eq!(event.codebuild_event, want, "{action}");
    }
    // A push that deletes the branch: `checkout_sha` is null, nothing to build.
    let mut deleted = fixture("gitlab/push.json");
    deleted["checkout_sha"] = Value::Null;
    deleted["after"] = json!("0000000000000000000000000000000000000000");
    let event = normalize(&headers(&hook("Push Hook")), &deleted);
    assert_eq!((event.commit_id, event.codebuild_event), (None, None));
}

#[test]
fn bitbucket_fixtures() {
    const UUID: &str = "afd7e4f4-1c2a-4c5c-8a64-3d3b4d0c9f2e";
    let hook = |key: &'static str| {
        [
            ("X-Event-Key", key),
            ("X-Request-UUID", UUID),
            ("X-Hook-UUID", "{5b0d1c2e-3f4a-4b5c-9d6e-7f8a9b0c1d2e}"),
            ("X-Attempt-Number", "1"),
        ]
    };
    const EMMA: &str = "557058:0f3a9d5c-7b2e-4c61-9e8a-2d4b6f1a3c57";
    const SAM: &str = "712020:5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9";
    check(
        "bitbucket/repo-push.json",
        &hook("repo:push"),
        json!({
            "provider": "bitbucket", "event": "repo:push", "action": null, "delivery_id": UUID, "is_ping": false,
            "commit_id": "7c9f3a2b5e1d4c8a9b0f6e2d3c4b5a69788f0e1d", "git_ref": "refs/heads/main", "branch": "main",
            "message": "Fix the widget count on the dashboard\n", "actor": "emma", "repository": "acme/widgets",
            "repository_url": "https://bitbucket.org/acme/widgets", "pull_request": null, "base_ref": null,
        }),
        // Bitbucket push payloads do not list changed files.
        other(
            Some("PUSH"),
            "refs/heads/main",
            "acme",
            "widgets",
            json!({
                "actor_account_id": EMMA, "commit_message": "Fix the widget count on the dashboard\n",
                "previous_commit": "1e65c05c1d5171631d92438a13901ca7dae9618c",
            }),
        ),
    );
    // Bitbucket's event is told by the header alone, so one body serves every pull request key.
    for (file, key, action, actor, account, codebuild_event, merge_commit) in [
        (
            "bitbucket/pullrequest-created.json",
            "pullrequest:created",
            "created",
            "emma",
            EMMA,
            Some("PULL_REQUEST_CREATED"),
            None,
        ),
        (
            "bitbucket/pullrequest-created.json",
            "pullrequest:updated",
            "updated",
            "emma",
            EMMA,
            Some("PULL_REQUEST_UPDATED"),
            None,
        ),
        (
            "bitbucket/pullrequest-created.json",
            "pullrequest:rejected",
            "rejected",
            "emma",
            EMMA,
            Some("PULL_REQUEST_CLOSED"),
            None,
        ),
        ("bitbucket/pullrequest-created.json", "pullrequest:approved", "approved", "emma", EMMA, None, None),
        (
            "bitbucket/pullrequest-fulfilled.json",
            "pullrequest:fulfilled",
            "fulfilled",
            "sam",
            SAM,
            Some("PULL_REQUEST_MERGED"),
            Some("d4c3b2a1f0e9"),
        ),
    ] {
        check(
            file,
            &hook(key),
            json!({
                "provider": "bitbucket", "event": key, "action": action, "delivery_id": UUID, "is_ping": false,
                "commit_id": "3f8e2a1b9c7d", "git_ref": "refs/heads/feature/widget-count", "branch": "feature/widget-count",
                "message": "Count widgets per workspace", "actor": actor, "repository": "acme/widgets",
                "repository_url": "https://bitbucket.org/acme/widgets",
                "pull_request": 7, "base_ref": "refs/heads/main",
            }),
            other(
                codebuild_event,
                "refs/heads/feature/widget-count",
                "acme",
                "widgets",
                json!({"actor_account_id": account, "merge_commit": merge_commit}),
            ),
        );
    }
}

#[test]
fn codebuild_webhook_variables() {
    let github = |event: &'static str, name: &str| {
        normalize(&headers(&[("X-GitHub-Event", event)]), &fixture(name)).codebuild_webhook_env()
    };
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    assert_eq!(
        github("push", "github/push-branch.json"),
        pairs(&[
            ("CODEBUILD_WEBHOOK_EVENT", "PUSH"),
            ("CODEBUILD_WEBHOOK_TRIGGER", "branch/master"),
            ("CODEBUILD_WEBHOOK_HEAD_REF", "refs/heads/master"),
            ("CODEBUILD_WEBHOOK_ACTOR_ACCOUNT_ID", "21031067"),
            // The push created the branch: `before` is all zeros, and CodeBuild passes it on.
            ("CODEBUILD_WEBHOOK_PREV_COMMIT", ZERO),
        ])
    );
    assert_eq!(
        github("push", "github/push-tag.json"),
        pairs(&[
            ("CODEBUILD_WEBHOOK_EVENT", "PUSH"),
            ("CODEBUILD_WEBHOOK_TRIGGER", "tag/simple-tag"),
            ("CODEBUILD_WEBHOOK_HEAD_REF", "refs/tags/simple-tag"),
            ("CODEBUILD_WEBHOOK_ACTOR_ACCOUNT_ID", "21031067"),
            ("CODEBUILD_WEBHOOK_PREV_COMMIT", ZERO),
        ])
    );
    assert_eq!(
        github("pull_request", "github/pull_request-opened.json"),
        pairs(&[
            ("CODEBUILD_WEBHOOK_EVENT", "PULL_REQUEST_CREATED"),
            ("CODEBUILD_WEBHOOK_TRIGGER", "pr/2"),
            ("CODEBUILD_WEBHOOK_HEAD_REF", "refs/heads/changes"),
            ("CODEBUILD_WEBHOOK_BASE_REF", "refs/heads/master"),
            ("CODEBUILD_WEBHOOK_ACTOR_ACCOUNT_ID", "21031067"),
        ])
    );
    assert_eq!(
        github("release", "github/release-released.json"),
        pairs(&[
            ("CODEBUILD_WEBHOOK_EVENT", "RELEASED"),
            ("CODEBUILD_WEBHOOK_TRIGGER", "tag/0.0.1"),
            ("CODEBUILD_WEBHOOK_ACTOR_ACCOUNT_ID", "21031067"),
        ])
    );
    let gitlab = normalize(&headers(&[("X-Gitlab-Event", "Push Hook")]), &fixture("gitlab/push.json"));
    assert!(gitlab
        .codebuild_webhook_env()
        .contains(&("CODEBUILD_WEBHOOK_PREV_COMMIT".into(), "95790bf891e76fee5e1747ab589903a6a1f80f22".into())));
    let merged = normalize(
        &headers(&[("X-Event-Key", "pullrequest:fulfilled")]),
        &fixture("bitbucket/pullrequest-fulfilled.json"),
    );
    assert!(merged.codebuild_webhook_env().contains(&("CODEBUILD_WEBHOOK_MERGE_COMMIT".into(), "d4c3b2a1f0e9".into())));
    assert!(merged.codebuild_webhook_env().contains(&("CODEBUILD_WEBHOOK_TRIGGER".into(), "pr/7".into())));
}

/// One signature case over the benchmark payload's raw bytes.
fn check_signature(request: &[(&str, &str)], body: &[u8], want: AuthOutcome) {
    let auth = Authentication::GithubHmac {
        secrets: vec![Secret::new("rotated-out".to_string()), Secret::new("It's a Secret to Everybody".to_string())],
    };
    let got = authenticate(&auth, &headers(request), body, IpAddr::V4(Ipv4Addr::LOCALHOST), false);
    match (&got, &want) {
        (AuthOutcome::Failed { .. }, AuthOutcome::Failed { .. }) => {}
        _ => assert_eq!(got, want, "{request:?}"),
    }
}

#[test]
fn signatures_over_a_real_payload() {
    // `openssl dgst -sha256|-sha1 -hmac "It's a Secret to Everybody" push-bench.json`.
    const SHA256: &str = "sha256=62558da9aec6d0cffcd394c0c0722ac2f6637860e4d801e6f5248cf18f187c33";
    const SHA1: &str = "sha1=92f6467cca8692b0073b26f1b2fa538ca96e2131";
    let body = fixture_bytes("github/push-bench.json");
    let failed = AuthOutcome::Failed { reason: String::new() };
    check_signature(
        &[("X-Hub-Signature-256", SHA256)],
        &body,
        AuthOutcome::Passed { method: "sha256", secret_index: Some(1) },
    );
    check_signature(&[("X-Hub-Signature", SHA1)], &body, AuthOutcome::Passed { method: "sha1", secret_index: Some(1) });
    check_signature(
        &[("X-Hub-Signature-256", SHA256), ("X-Hub-Signature", SHA1)],
        &body,
        AuthOutcome::Passed { method: "sha256", secret_index: Some(1) },
    );
    // The same bytes re-serialised (compact) are a different body: signatures cover bytes, not JSON values.
    let compact = serde_json::to_vec(&fixture("github/push-bench.json")).unwrap();
    check_signature(&[("X-Hub-Signature-256", SHA256)], &compact, failed.clone());
    let mut tampered = body.clone();
    *tampered.last_mut().unwrap() ^= 1;
    check_signature(&[("X-Hub-Signature-256", SHA256)], &tampered, failed.clone());
    check_signature(&[("X-Hub-Signature-256", SHA1)], &body, failed);
}

#[test]
fn codepipeline_filters_on_real_payloads() {
    let configuration: BTreeMap<String, String> =
        [("Owner", "Codertocat"), ("Repo", "Hello-World"), ("Branch", "master")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
    let rule = |path: &str, equals: Option<&str>| Rule { json_path: path.into(), match_equals: equals.map(Into::into) };
    // The filter the AWS CLI example and most CloudFormation templates use.
    let branch_filter = compile(&[rule("$.ref", Some("refs/heads/{Branch}"))], &configuration).unwrap();
    let verdict = |rules, name| evaluate(rules, &fixture(name)).iter().all(|o| o.passed);
    assert!(verdict(&branch_filter, "github/push-bench.json"));
    assert!(!verdict(&branch_filter, "github/push-tag.json"));
    assert!(!verdict(&branch_filter, "github/pull_request-opened.json"), "a PR payload has no $.ref");

    let merged_into_master = compile(
        &[
            rule("$.action", Some("closed")),
            rule("$.pull_request.merged", Some("true")),
            rule("$.pull_request.base.ref", Some("{Branch}")),
            rule("$.repository.full_name", Some("{Owner}/{Repo}")),
            rule("$.pull_request.number", Some("2")),
        ],
        &configuration,
    )
    .unwrap();
    assert!(verdict(&merged_into_master, "github/pull_request-closed-merged.json"));
    let outcomes = evaluate(&merged_into_master, &fixture("github/pull_request-closed.json"));
    assert_eq!(outcomes.iter().map(|o| o.passed).collect::<Vec<_>>(), [true, false, true, true, true]);
    assert_eq!(outcomes[1].found, ["false"]);

    let touches_readme = compile(&[rule("$.commits[*].added[*]", Some("README.md"))], &configuration).unwrap();
    assert!(verdict(&touches_readme, "github/push-branch.json"));
    assert!(!verdict(&touches_readme, "github/push-tag.json"), "a tag push carries no commits");
}
