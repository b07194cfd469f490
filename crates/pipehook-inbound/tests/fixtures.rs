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
use pipehook_inbound::{authenticate, compile, evaluate, normalize, AuthOutcome, Authentication, Rule};
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
/// expected `SourceEvent` as JSON.
fn check(name: &str, request: &[(&str, &str)], want: Value) {
    let event = normalize(&headers(request), &fixture(name));
    let got = serde_json::to_value(&event).unwrap();
    assert_eq!(got, want, "{name}:\n got  {got:#}\n want {want:#}");
}

const DELIVERY: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";

#[test]
fn github_fixtures() {
    let push = |event: &'static str| {
        [("X-GitHub-Event", event), ("X-GitHub-Delivery", DELIVERY), ("X-GitHub-Hook-ID", "292430182")]
    };
    let branch_push = json!({
        "provider": "github", "event": "push", "action": null, "delivery_id": DELIVERY, "is_ping": false,
        "commit_id": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "git_ref": "refs/heads/master", "branch": "master",
        "message": "Initial commit", "actor": "Codertocat", "repository": "Codertocat/Hello-World",
        "repository_url": "https://github.com/Codertocat/Hello-World", "pull_request": null, "base_ref": null, "head_ref": null,
    });
    check("github/push-branch.json", &push("push"), branch_push.clone());
    check("github/push-bench.json", &push("push"), branch_push);
    check(
        "github/push-tag.json",
        &push("push"),
        json!({
            "provider": "github", "event": "push", "action": null, "delivery_id": DELIVERY, "is_ping": false,
            "commit_id": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "git_ref": "refs/tags/simple-tag", "branch": null,
            "message": "Adding a .gitignore file", "actor": "Codertocat", "repository": "Codertocat/Hello-World",
            "repository_url": "https://github.com/Codertocat/Hello-World", "pull_request": null, "base_ref": null, "head_ref": null,
        }),
    );
    check(
        "github/push-tag-deleted.json",
        &push("push"),
        json!({
            "provider": "github", "event": "push", "action": null, "delivery_id": DELIVERY, "is_ping": false,
            "commit_id": null, "git_ref": "refs/tags/simple-tag", "branch": null,
            "message": null, "actor": "Codertocat", "repository": "Codertocat/Hello-World",
            "repository_url": "https://github.com/Codertocat/Hello-World", "pull_request": null, "base_ref": null, "head_ref": null,
        }),
    );
    for (file, action) in [
        ("github/pull_request-opened.json", "opened"),
        ("github/pull_request-synchronize.json", "synchronize"),
        ("github/pull_request-closed.json", "closed"),
        ("github/pull_request-closed-merged.json", "closed"),
    ] {
        check(
            file,
            &push("pull_request"),
            json!({
                "provider": "github", "event": "pull_request", "action": action, "delivery_id": DELIVERY, "is_ping": false,
                "commit_id": "ec26c3e57ca3a959ca5aad62de7213c562f8c821", "git_ref": "refs/heads/changes", "branch": "changes",
                "message": "Update the README with new information.", "actor": "Codertocat",
                "repository": "Codertocat/Hello-World", "repository_url": "https://github.com/Codertocat/Hello-World",
                "pull_request": 2, "base_ref": "refs/heads/master", "head_ref": "refs/heads/changes",
            }),
        );
    }
    check(
        "github/ping.json",
        &push("ping"),
        json!({
            "provider": "github", "event": "ping", "action": null, "delivery_id": DELIVERY, "is_ping": true,
            "commit_id": null, "git_ref": null, "branch": null, "message": null, "actor": "Codertocat",
            "repository": "Octocoders/Hello-World", "repository_url": "https://github.com/Octocoders/Hello-World",
            "pull_request": null, "base_ref": null, "head_ref": null,
        }),
    );
    check(
        "github/ping-organization.json",
        &push("ping"),
        json!({
            "provider": "github", "event": "ping", "action": null, "delivery_id": DELIVERY, "is_ping": true,
            "commit_id": null, "git_ref": null, "branch": null, "message": null, "actor": "Codertocat",
            "repository": null, "repository_url": null, "pull_request": null, "base_ref": null, "head_ref": null,
        }),
    );
    check(
        "github/release-published.json",
        &push("release"),
        json!({
            "provider": "github", "event": "release", "action": "published", "delivery_id": DELIVERY, "is_ping": false,
            "commit_id": null, "git_ref": "refs/tags/0.0.1", "branch": null, "message": null, "actor": "Codertocat",
            "repository": "Codertocat/Hello-World", "repository_url": "https://github.com/Codertocat/Hello-World",
            "pull_request": null, "base_ref": null, "head_ref": null,
        }),
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
            "pull_request": null, "base_ref": null, "head_ref": null,
        }),
    );
    check(
        "github/ghes-3.5-pull_request-opened.json",
        &ghes("pull_request"),
        json!({
            "provider": "github", "event": "pull_request", "action": "opened", "delivery_id": DELIVERY, "is_ping": false,
            "commit_id": "14977a7b5485400124827221a04bfb474bcd72d1", "git_ref": "refs/heads/changes", "branch": "changes",
            "message": "Update the README with new information.", "actor": "Codertocat",
            "repository": "Codertocat/Hello-World", "repository_url": "https://octocoders.github.io/Codertocat/Hello-World",
            "pull_request": 2, "base_ref": "refs/heads/master", "head_ref": "refs/heads/changes",
        }),
    );
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
            "repository_url": "http://example.com/mike/diaspora", "pull_request": null, "base_ref": null, "head_ref": null,
        }),
    );
    check(
        "gitlab/tag_push.json",
        &hook("Tag Push Hook"),
        json!({
            "provider": "gitlab", "event": "Tag Push Hook", "action": null, "delivery_id": UUID, "is_ping": false,
            "commit_id": "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7", "git_ref": "refs/tags/v1.0.0", "branch": null,
            "message": "Merge branch 'some-feature' into 'master'\n\nRelease v1.0.0\n\nSee merge request jsmith/example!1",
            "actor": "jsmith", "repository": "jsmith/example", "repository_url": "http://example.com/jsmith/example",
            "pull_request": null, "base_ref": null, "head_ref": null,
        }),
    );
    check(
        "gitlab/merge_request.json",
        &hook("Merge Request Hook"),
        json!({
            "provider": "gitlab", "event": "Merge Request Hook", "action": "open", "delivery_id": UUID, "is_ping": false,
            "commit_id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", "git_ref": "refs/heads/ms-viewport", "branch": "ms-viewport",
            "message": "MS-Viewport", "actor": "user1", "repository": "gitlabhq/gitlab-test",
            "repository_url": "http://example.com/gitlabhq/gitlab-test",
            "pull_request": 1, "base_ref": "refs/heads/master", "head_ref": "refs/heads/ms-viewport",
        }),
    );
    check(
        "gitlab/merge_request-update.json",
        &hook("Merge Request Hook"),
        json!({
            "provider": "gitlab", "event": "Merge Request Hook", "action": "update", "delivery_id": UUID, "is_ping": false,
            "commit_id": "0ab96a10266b95b4b533dcfd98738015fbe70889", "git_ref": "refs/heads/next-feature", "branch": "next-feature",
            "message": "Update client.go 🎉", "actor": "test", "repository": "test/woodpecker",
            "repository_url": "http://10.40.8.5:3200/test/woodpecker",
            "pull_request": 2, "base_ref": "refs/heads/master", "head_ref": "refs/heads/next-feature",
        }),
    );
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
    check(
        "bitbucket/repo-push.json",
        &hook("repo:push"),
        json!({
            "provider": "bitbucket", "event": "repo:push", "action": null, "delivery_id": UUID, "is_ping": false,
            "commit_id": "7c9f3a2b5e1d4c8a9b0f6e2d3c4b5a69788f0e1d", "git_ref": "refs/heads/main", "branch": "main",
            "message": "Fix the widget count on the dashboard\n", "actor": "emma", "repository": "acme/widgets",
            "repository_url": "https://bitbucket.org/acme/widgets", "pull_request": null, "base_ref": null, "head_ref": null,
        }),
    );
    for (file, key, action, actor) in [
        ("bitbucket/pullrequest-created.json", "pullrequest:created", "created", "emma"),
        ("bitbucket/pullrequest-fulfilled.json", "pullrequest:fulfilled", "fulfilled", "sam"),
    ] {
        check(
            file,
            &hook(key),
            json!({
                "provider": "bitbucket", "event": key, "action": action, "delivery_id": UUID, "is_ping": false,
                "commit_id": "3f8e2a1b9c7d", "git_ref": "refs/heads/feature/widget-count", "branch": "feature/widget-count",
                "message": "Count widgets per workspace", "actor": actor, "repository": "acme/widgets",
                "repository_url": "https://bitbucket.org/acme/widgets",
                "pull_request": 7, "base_ref": "refs/heads/main", "head_ref": "refs/heads/feature/widget-count",
            }),
        );
    }
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
