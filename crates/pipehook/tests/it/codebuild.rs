//! CodeBuild (seed 002, issue 5) end to end: the official `aws-sdk-codebuild` for every operation and the seed's
//! errors, real builds running buildspecs with /bin/sh, StopBuild, and a real GitHub push payload (from
//! @octokit/webhooks-examples, see pipehook-inbound's fixtures) signed with the webhook's secret and posted to
//! its payload URL.

use aws_sdk_codebuild::error::ProvideErrorMetadata;
use aws_sdk_codebuild::types::{
    ArtifactsType, Build, BuildPhaseType, ComputeType, EnvironmentType, EnvironmentVariable, ProjectArtifacts,
    ProjectEnvironment, ProjectSource, SortOrderType, SourceAuth, SourceAuthType, SourceType, StatusType,
    WebhookBuildType, WebhookFilter, WebhookFilterType,
};
use aws_sdk_codebuild::Client;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

use crate::support::{Backend, TestServer, ACCESS_KEY_ID, SECRET_ACCESS_KEY, TOKEN};
use crate::webhooks::{fixture, github, post, sign};

pub(crate) fn client(s: &TestServer) -> Client {
    let creds = aws_credential_types::Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None, None, "test");
    let conf = aws_sdk_codebuild::Config::builder()
        .behavior_version(aws_sdk_codebuild::config::BehaviorVersion::latest())
        .endpoint_url(&s.url)
        .region(aws_sdk_codebuild::config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .build();
    Client::from_conf(conf)
}

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<none>").to_owned()
}

pub(crate) fn artifacts() -> ProjectArtifacts {
    ProjectArtifacts::builder().r#type(ArtifactsType::NoArtifacts).build().unwrap()
}

pub(crate) fn environment(vars: &[(&str, &str)]) -> ProjectEnvironment {
    let mut b = ProjectEnvironment::builder()
        .r#type(EnvironmentType::LinuxContainer)
        .image("aws/codebuild/standard:7.0")
        .compute_type(ComputeType::BuildGeneral1Small);
    for (k, v) in vars {
        b = b.environment_variables(EnvironmentVariable::builder().name(*k).value(*v).build().unwrap());
    }
    b.build().unwrap()
}

const BUILDSPEC: &str = r#"version: 0.2
env:
  variables:
    GREETING: hello
phases:
  install:
    commands:
      - export FROM_INSTALL=carried
  build:
    commands:
      - echo "$GREETING from $PROJECT_VAR and $OVERRIDE_VAR, $FROM_INSTALL"
      - echo "build $CODEBUILD_BUILD_NUMBER id $CODEBUILD_BUILD_ID by $CODEBUILD_INITIATOR"
"#;

async fn create_no_source(c: &Client, name: &str, buildspec: &str) {
    c.create_project()
        .name(name)
        .source(ProjectSource::builder().r#type(SourceType::NoSource).buildspec(buildspec).build().unwrap())
        .artifacts(artifacts())
        .environment(environment(&[("PROJECT_VAR", "project-value")]))
        .service_role("arn:aws:iam::123456789012:role/codebuild")
        .send()
        .await
        .unwrap();
}

pub(crate) async fn wait_build(c: &Client, id: &str) -> Build {
    for _ in 0..400 {
        let out = c.batch_get_builds().ids(id).send().await.unwrap();
        let b = out.builds.unwrap_or_default().into_iter().next().expect("the build");
        if b.build_complete {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("build {id} did not finish");
}

fn phase(b: &Build, t: BuildPhaseType) -> Option<StatusType> {
    b.phases.as_ref()?.iter().find(|p| p.phase_type.as_ref() == Some(&t))?.phase_status.clone()
}

pub(crate) async fn logs(s: &TestServer, b: &Build) -> String {
    let link = b.logs.as_ref().and_then(|l| l.deep_link.clone()).expect("logs.deepLink");
    assert!(link.starts_with(&s.url) || link.contains("/api/orgs/"), "{link}");
    let path = &link[link.find("/api/").unwrap()..];
    let res = s
        .client()
        .get(format!("{}{path}", s.url))
        .header("authorization", format!("token {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

#[tokio::test]
async fn projects_and_builds_through_the_sdk() {
    projects_and_builds(TestServer::start().await).await;
}

#[tokio::test]
async fn projects_and_builds_through_the_sdk_on_postgres() {
    let Some(s) = TestServer::builder().backend(Backend::Postgres).start().await else { return };
    projects_and_builds(s).await;
}

async fn projects_and_builds(s: TestServer) {
    let c = client(&s);
    create_no_source(&c, "web-app", BUILDSPEC).await;

    // CreateProject: defaults, ARN, errors.
    let dup = c
        .create_project()
        .name("web-app")
        .source(ProjectSource::builder().r#type(SourceType::NoSource).buildspec(BUILDSPEC).build().unwrap())
        .artifacts(artifacts())
        .environment(environment(&[]))
        .service_role("r")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&dup), "ResourceAlreadyExistsException");
    for (name, timeout) in [("x", 60), ("bad name", 60), ("ok-name", 3), ("ok-name", 2161)] {
        let e = c
            .create_project()
            .name(name)
            .source(ProjectSource::builder().r#type(SourceType::NoSource).buildspec(BUILDSPEC).build().unwrap())
            .artifacts(artifacts())
            .environment(environment(&[]))
            .service_role("r")
            .timeout_in_minutes(timeout)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "InvalidInputException", "{name} {timeout}");
    }
    let no_location = c
        .create_project()
        .name("gh")
        .source(ProjectSource::builder().r#type(SourceType::Github).build().unwrap())
        .artifacts(artifacts())
        .environment(environment(&[]))
        .service_role("r")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&no_location), "InvalidInputException");

    // UpdateProject, BatchGetProjects (with projectsNotFound), ListProjects.
    let updated = c.update_project().name("web-app").description("the web app").send().await.unwrap();
    assert_eq!(updated.project.unwrap().description.as_deref(), Some("the web app"));
    let e = c.update_project().name("nope-project").description("x").send().await.unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    create_no_source(&c, "api", BUILDSPEC).await;
    let got = c.batch_get_projects().names("web-app").names("missing").send().await.unwrap();
    let p = &got.projects.as_ref().unwrap()[0];
    assert_eq!(p.name.as_deref(), Some("web-app"));
    assert_eq!(p.arn.as_deref(), Some("arn:aws:codebuild:us-east-1:123456789012:project/web-app"));
    assert_eq!(p.timeout_in_minutes, Some(60));
    assert_eq!(p.description.as_deref(), Some("the web app"));
    assert!(p.webhook.is_none());
    assert_eq!(got.projects_not_found.unwrap(), ["missing"]);
    assert_eq!(c.list_projects().send().await.unwrap().projects.unwrap(), ["api", "web-app"]);
    let desc = c.list_projects().sort_order(SortOrderType::Descending).send().await.unwrap();
    assert_eq!(desc.projects.unwrap(), ["web-app", "api"]);

    // A build that succeeds: phases, variables from every layer, the log.
    let started = c
        .start_build()
        .project_name("web-app")
        .environment_variables_override(
            EnvironmentVariable::builder().name("OVERRIDE_VAR").value("ov").build().unwrap(),
        )
        .send()
        .await
        .unwrap()
        .build_value
        .unwrap();
    let id = started.id.clone().unwrap();
    assert!(id.starts_with("web-app:"), "{id}");
    assert_eq!(started.build_number, Some(1));
    assert_eq!(started.build_status, Some(StatusType::InProgress));
    let b = wait_build(&c, &id).await;
    assert_eq!(b.build_status, Some(StatusType::Succeeded), "{b:?}");
    assert_eq!(b.current_phase.as_deref(), Some("COMPLETED"));
    assert_eq!(b.arn.as_deref(), Some(format!("arn:aws:codebuild:us-east-1:123456789012:build/{id}").as_str()));
    assert_eq!(b.initiator.as_deref(), Some(ACCESS_KEY_ID));
    for t in [BuildPhaseType::Submitted, BuildPhaseType::Install, BuildPhaseType::Build, BuildPhaseType::Finalizing] {
        assert_eq!(phase(&b, t.clone()), Some(StatusType::Succeeded), "{t:?}");
    }
    assert!(b.end_time.is_some());
    let log = logs(&s, &b).await;
    assert!(log.contains("hello from project-value and ov, carried"), "{log}");
    assert!(log.contains(&format!("build 1 id {id} by {ACCESS_KEY_ID}")), "{log}");

    // A build that fails, through buildspecOverride; a bad override is refused.
    let failing = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo about to fail\n      - exit 3\n  post_build:\n    commands:\n      - echo post_build runs\n";
    let f =
        c.start_build().project_name("web-app").buildspec_override(failing).send().await.unwrap().build_value.unwrap();
    assert_eq!(f.build_number, Some(2));
    let f = wait_build(&c, f.id.as_deref().unwrap()).await;
    assert_eq!(f.build_status, Some(StatusType::Failed));
    assert_eq!(phase(&f, BuildPhaseType::Build), Some(StatusType::Failed));
    assert_eq!(phase(&f, BuildPhaseType::PostBuild), Some(StatusType::Succeeded));
    let log = logs(&s, &f).await;
    assert!(log.contains("about to fail") && log.contains("post_build runs"), "{log}");
    let e = c.start_build().project_name("web-app").buildspec_override("version: 0.2\nphases: 3\n").send().await;
    assert_eq!(code(&e.unwrap_err()), "InvalidInputException");
    let e = c.start_build().project_name("nope-project").send().await.unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");

    // idempotencyToken: the same build again.
    let one = c.start_build().project_name("api").idempotency_token("tok-1").send().await.unwrap().build_value.unwrap();
    let two = c.start_build().project_name("api").idempotency_token("tok-1").send().await.unwrap().build_value.unwrap();
    assert_eq!(one.id, two.id);
    // The same token with another parameter: refused, and no build started.
    let e = c
        .start_build()
        .project_name("api")
        .idempotency_token("tok-1")
        .source_version("other")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidInputException");
    assert!(e.message().unwrap_or_default().contains("tok-1"), "{e:?}");
    let done = wait_build(&c, one.id.as_deref().unwrap()).await;
    // Stopping a build that has ended is refused.
    let e = c.stop_build().id(done.id.as_deref().unwrap()).send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidInputException");

    // StopBuild: a long build ends STOPPED.
    let long = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo sleeping\n      - sleep 30\n";
    let l = c.start_build().project_name("web-app").buildspec_override(long).send().await.unwrap().build_value.unwrap();
    let lid = l.id.clone().unwrap();
    // Wait (generously: a loaded machine is slow to start a build) until the 30 s command runs.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let b = c.batch_get_builds().ids(&lid).send().await.unwrap().builds.unwrap().remove(0);
        if b.current_phase.as_deref() == Some("BUILD") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the build never reached BUILD: {b:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopping = c.stop_build().id(&lid).send().await.unwrap().build_value.unwrap();
    assert_eq!(stopping.id.as_deref(), Some(lid.as_str()));
    let stopped = wait_build(&c, &lid).await;
    assert_eq!(stopped.build_status, Some(StatusType::Stopped));
    assert_eq!(phase(&stopped, BuildPhaseType::Build), Some(StatusType::Stopped));
    let e = c.stop_build().id("web-app:00000000-0000-0000-0000-000000000000").send().await.unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");

    // BatchGetBuilds (buildsNotFound), ListBuilds, ListBuildsForProject (sortOrder, nextToken).
    let got = c.batch_get_builds().ids(&id).ids("web-app:missing").send().await.unwrap();
    assert_eq!(got.builds.unwrap().len(), 1);
    assert_eq!(got.builds_not_found.unwrap(), ["web-app:missing"]);
    let all = c.list_builds().send().await.unwrap().ids.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0], lid, "newest first");
    let asc =
        c.list_builds_for_project().project_name("web-app").sort_order(SortOrderType::Ascending).send().await.unwrap();
    assert_eq!(asc.ids.as_ref().unwrap()[0], id);
    assert_eq!(asc.ids.unwrap().len(), 3);
    assert!(asc.next_token.is_none());
    let e = c.list_builds_for_project().project_name("web-app").next_token("bogus").send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidNextTokenException");
    let e = c.list_builds_for_project().project_name("nope-project").send().await.unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");

    // DeleteProject: gone, its builds stay.
    c.delete_project().name("api").send().await.unwrap();
    let got = c.batch_get_projects().names("api").send().await.unwrap();
    assert_eq!(got.projects_not_found.unwrap(), ["api"]);
    assert_eq!(c.batch_get_builds().ids(one.id.unwrap()).send().await.unwrap().builds.unwrap().len(), 1);
}

pub(crate) fn filter(t: WebhookFilterType, pattern: &str) -> WebhookFilter {
    WebhookFilter::builder().r#type(t).pattern(pattern).build().unwrap()
}

pub(crate) async fn create_repo_project(c: &Client, name: &str, t: SourceType, location: &str, auth: Option<&str>) {
    let mut source = ProjectSource::builder().r#type(t).location(location).buildspec(BUILDSPEC);
    if let Some(token) = auth {
        source = source.auth(SourceAuth::builder().r#type(SourceAuthType::Oauth).resource(token).build().unwrap());
    }
    c.create_project()
        .name(name)
        .source(source.build().unwrap())
        .artifacts(artifacts())
        .environment(environment(&[]))
        .service_role("arn:aws:iam::123456789012:role/codebuild")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn webhooks_follow_the_seed() {
    let s = TestServer::builder().env("PIPEHOOK_PUBLIC_URL", "https://hooks.example.com").start().await.unwrap();
    let c = client(&s);
    create_repo_project(&c, "gh-app", SourceType::Github, "https://github.com/Codertocat/Hello-World", None).await;
    create_repo_project(&c, "bb-app", SourceType::Bitbucket, "https://bitbucket.org/o/r", None).await;

    let created = c
        .create_webhook()
        .project_name("gh-app")
        .filter_groups(vec![
            filter(WebhookFilterType::Event, "PUSH, PULL_REQUEST_CREATED"),
            filter(WebhookFilterType::HeadRef, "^refs/heads/"),
        ])
        .filter_groups(vec![
            filter(WebhookFilterType::Event, "RELEASED"),
            WebhookFilter::builder()
                .r#type(WebhookFilterType::TagName)
                .pattern("-rc")
                .exclude_matched_pattern(true)
                .build()
                .unwrap(),
        ])
        .build_type(WebhookBuildType::Build)
        .manual_creation(true)
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap();
    let payload_url = created.payload_url.clone().unwrap();
    assert!(payload_url.starts_with("https://hooks.example.com/webhooks?t="), "{payload_url}");
    assert!(payload_url.ends_with("&v=1"), "{payload_url}");
    let secret = created.secret.clone().unwrap();
    assert!(secret.len() >= 20, "{secret}");
    let groups = created.filter_groups.clone().unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0][1].pattern, "^refs/heads/");
    assert_eq!(groups[0][0].exclude_matched_pattern, Some(false), "echoed when omitted");
    assert_eq!(groups[1][1].exclude_matched_pattern, Some(true));
    assert_eq!(created.build_type, Some(WebhookBuildType::Build));
    assert_eq!(created.manual_creation, Some(true));
    assert!(created.last_modified_secret.is_some());
    assert_eq!(created.status.as_ref().map(|s| s.as_str()), Some("ACTIVE"));

    // The seed's errors.
    let again = c.create_webhook().project_name("gh-app").manual_creation(true).send().await.unwrap_err();
    assert_eq!(code(&again), "ResourceAlreadyExistsException");
    let missing = c.create_webhook().project_name("no-such-project").send().await.unwrap_err();
    assert_eq!(code(&missing), "ResourceNotFoundException");
    let invalid = [
        vec![filter(WebhookFilterType::Event, "PUSH"), filter(WebhookFilterType::HeadRef, "([unclosed")],
        vec![filter(WebhookFilterType::HeadRef, "^refs/heads/main$")],
        vec![filter(WebhookFilterType::Event, "PUSH, PUSHED")],
        vec![filter(WebhookFilterType::Event, "PUSH"), filter(WebhookFilterType::TagName, "v1")],
    ];
    for group in invalid {
        let e = c.create_webhook().project_name("bb-app").filter_groups(group.clone()).send().await.unwrap_err();
        assert_eq!(code(&e), "InvalidInputException", "{group:?}");
        assert!(!e.message().unwrap_or_default().is_empty());
    }
    let released_on_bitbucket = c
        .create_webhook()
        .project_name("bb-app")
        .filter_groups(vec![filter(WebhookFilterType::Event, "RELEASED")])
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&released_on_bitbucket), "InvalidInputException");
    let bad_branch = c.create_webhook().project_name("bb-app").branch_filter("(").send().await.unwrap_err();
    assert_eq!(code(&bad_branch), "InvalidInputException");

    // Bitbucket: no secret.
    let bb = c.create_webhook().project_name("bb-app").manual_creation(true).send().await.unwrap().webhook.unwrap();
    assert!(bb.secret.is_none(), "A Bitbucket webhook does not support secret");
    assert!(bb.payload_url.unwrap().starts_with("https://hooks.example.com/webhooks?t="));

    // Registration on GitHub needs a token: OAuthProviderException, and nothing is stored.
    create_repo_project(&c, "gh-auto", SourceType::Github, "https://github.com/Codertocat/Hello-World", None).await;
    let e = c.create_webhook().project_name("gh-auto").send().await.unwrap_err();
    assert_eq!(code(&e), "OAuthProviderException");
    let p = c.batch_get_projects().names("gh-auto").send().await.unwrap().projects.unwrap().remove(0);
    assert!(p.webhook.is_none());

    // UpdateWebhook: rotateSecret returns a new secret once; otherwise none.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let rotated = c.update_webhook().project_name("gh-app").rotate_secret(true).send().await.unwrap().webhook.unwrap();
    let new_secret = rotated.secret.clone().unwrap();
    assert_ne!(new_secret, secret);
    assert!(rotated.last_modified_secret.unwrap() > created.last_modified_secret.unwrap());
    assert_eq!(rotated.payload_url.as_deref(), Some(payload_url.as_str()), "the URL stays");
    let changed = c
        .update_webhook()
        .project_name("gh-app")
        .filter_groups(vec![filter(WebhookFilterType::Event, "PUSH")])
        .branch_filter("^main$")
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap();
    assert!(changed.secret.is_none());
    assert_eq!(changed.filter_groups.unwrap().len(), 1);
    assert_eq!(changed.branch_filter.as_deref(), Some("^main$"));
    let e = c.update_webhook().project_name("gh-auto").rotate_secret(true).send().await.unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    let e = c
        .update_webhook()
        .project_name("gh-app")
        .filter_groups(vec![filter(WebhookFilterType::BaseRef, "main")])
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidInputException");

    // BatchGetProjects shows the webhook, never its secret.
    let p = c.batch_get_projects().names("gh-app").send().await.unwrap().projects.unwrap().remove(0);
    let w = p.webhook.unwrap();
    assert_eq!(w.payload_url.as_deref(), Some(payload_url.as_str()));
    assert!(w.secret.is_none());
    assert_eq!(w.branch_filter.as_deref(), Some("^main$"));

    // DeleteWebhook; then it is gone; DeleteProject takes its webhook with it.
    c.delete_webhook().project_name("gh-app").send().await.unwrap();
    let e = c.delete_webhook().project_name("gh-app").send().await.unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    let (status, _) = post(&payload_url.replace("https://hooks.example.com", &s.url), b"{}", &[]).await;
    assert_eq!(status, 404, "a deleted webhook's URL is dead");
    c.delete_project().name("bb-app").send().await.unwrap();
    let e = c.delete_webhook().project_name("bb-app").send().await.unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
}

/// A local repository whose `master` has one commit; returns (path, commit).
fn git_repo(dir: &Path) -> String {
    git_repo_with(dir, &[("hello.txt", "hello from the repository\n")])
}

/// A local repository whose `master` has one commit with these files; returns the commit.
pub(crate) fn git_repo_with(dir: &Path, files: &[(&str, &str)]) -> String {
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=master"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    git(&["init", "--quiet"]);
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    git(&["add", "."]);
    git(&["commit", "--quiet", "-m", "first"]);
    git(&["rev-parse", "HEAD"]).trim().to_owned()
}

#[tokio::test]
async fn a_signed_github_push_starts_a_build_and_a_filtered_one_is_explained() {
    signed_push(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_signed_github_push_starts_a_build_on_postgres() {
    signed_push(Backend::Postgres).await;
}

async fn signed_push(backend: Backend) {
    let Some(s) = TestServer::builder()
        .backend(backend)
        .env("PIPEHOOK_OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8")
        .env("PIPEHOOK_WORKER_POLL_MS", "50")
        .start()
        .await
    else {
        return;
    };
    let c = client(&s);
    // An outbound hook for build events: the run events of the build reach it through the relay.
    let receiver = crate::outbound::Receiver::start().await;
    let hook = serde_json::json!({
        "organizationName": "default", "name": "builds", "displayName": "Builds", "active": true,
        "payloadUrl": format!("{}/builds", receiver.url),
        "filters": ["build_started", "build_succeeded", "build_failed"],
    });
    let res = s
        .client()
        .post(format!("{}/api/orgs/default/hooks", s.url))
        .header("authorization", format!("token {TOKEN}"))
        .json(&hook)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let repo = tempfile::tempdir().unwrap();
    let commit = git_repo(repo.path());
    let location = repo.path().display().to_string();
    let spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - cat hello.txt\n      - echo \"trigger=$CODEBUILD_WEBHOOK_TRIGGER event=$CODEBUILD_WEBHOOK_EVENT head=$CODEBUILD_WEBHOOK_HEAD_REF\"\n";
    c.create_project()
        .name("hello")
        .source(
            ProjectSource::builder().r#type(SourceType::Github).location(&location).buildspec(spec).build().unwrap(),
        )
        .artifacts(artifacts())
        .environment(environment(&[]))
        .service_role("r")
        .send()
        .await
        .unwrap();
    let w = c
        .create_webhook()
        .project_name("hello")
        .filter_groups(vec![
            filter(WebhookFilterType::Event, "PUSH"),
            filter(WebhookFilterType::HeadRef, "^refs/heads/"),
        ])
        .manual_creation(true)
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap();
    let secret = w.secret.unwrap();
    let url = w.payload_url.unwrap();
    assert!(url.starts_with(&s.url), "{url}");

    // The real push payload, pointed at the local commit, signed with the webhook's secret.
    let mut push: Value = serde_json::from_slice(&fixture("github/push-branch.json")).unwrap();
    push["after"] = Value::from(commit.clone());
    push["head_commit"]["id"] = Value::from(commit.clone());
    let body = serde_json::to_vec(&push).unwrap();
    let mut headers = github("push", "delivery-1", Some(sign(&secret, &body)));
    headers.push(("x-github-hook-id", "4242".into()));
    let (status, out) = post(&url, &body, &headers).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["result"], "triggered", "{out}");
    assert_eq!(out["buildNumber"], 1);
    let id = out["buildId"].as_str().unwrap().to_owned();
    let b = wait_build(&c, &id).await;
    assert_eq!(b.build_status, Some(StatusType::Succeeded), "{:?}", logs(&s, &b).await);
    assert_eq!(b.initiator.as_deref(), Some("GitHub-Hookshot/4242"));
    assert_eq!(b.source_version.as_deref(), Some(commit.as_str()));
    assert_eq!(b.resolved_source_version.as_deref(), Some(commit.as_str()));
    assert_eq!(phase(&b, BuildPhaseType::DownloadSource), Some(StatusType::Succeeded));
    let log = logs(&s, &b).await;
    assert!(log.contains("hello from the repository"), "{log}");
    assert!(log.contains("trigger=branch/master event=PUSH head=refs/heads/master"), "{log}");

    // The same delivery again starts nothing; a bad signature is refused.
    let (status, out) = post(&url, &body, &headers).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("duplicate")), "{out}");
    assert_eq!(out["buildId"].as_str(), Some(id.as_str()));
    let (status, out) = post(&url, &body, &github("push", "delivery-2", Some(sign("wrong", &body)))).await;
    assert_eq!((status, out["result"].as_str()), (401, Some("unauthenticated")));
    let ids = c.list_builds_for_project().project_name("hello").send().await.unwrap().ids.unwrap();
    assert_eq!(ids, std::slice::from_ref(&id));

    // A tag push fails HEAD_REF ^refs/heads/: filtered, and the log and explain say why.
    let tag = fixture("github/push-tag.json");
    let (status, out) = post(&url, &tag, &github("push", "delivery-3", Some(sign(&secret, &tag)))).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("filtered")), "{out}");
    let (status, log) = s.get("/api/orgs/default/inbound?webhook=project:hello", Some(TOKEN)).await;
    assert_eq!(status, 200, "{log}");
    let requests = log["requests"].as_array().unwrap();
    let verdicts: Vec<&str> = requests.iter().map(|r| r["verdict"].as_str().unwrap()).collect();
    assert_eq!(verdicts, ["filtered", "unauthenticated", "duplicate", "triggered"]);
    let filtered = &requests[0]["detail"]["evaluation"];
    assert_eq!(filtered["passed"], false);
    let head_ref = &filtered["groups"][0]["filters"][1];
    assert_eq!((head_ref["type"].as_str(), head_ref["passed"].as_bool()), (Some("HEAD_REF"), Some(false)));
    assert_eq!(head_ref["found"][0], "refs/tags/simple-tag");
    assert_eq!(requests[3]["pipelineExecutionId"].as_str(), Some(id.as_str()));

    // Replay: the triggered request starts build 2; the filtered one stays filtered.
    let replay = |request: String| {
        let (url, client) = (format!("{}/api/orgs/default/inbound/{request}/replay", s.url), s.client());
        async move {
            let res = client.post(url).header("authorization", format!("token {TOKEN}")).send().await.unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        }
    };
    let again = replay(requests[3]["id"].as_str().unwrap().to_owned()).await;
    assert_eq!((again["verdict"].as_str(), again["buildNumber"].as_i64()), (Some("triggered"), Some(2)), "{again}");
    let replayed = wait_build(&c, again["buildId"].as_str().unwrap()).await;
    assert_eq!(replayed.build_status, Some(StatusType::Succeeded));
    assert_eq!(replayed.initiator.as_deref(), Some("GitHub-Hookshot/4242"));
    let still = replay(requests[0]["id"].as_str().unwrap().to_owned()).await;
    assert_eq!(still["verdict"], "filtered", "{still}");

    let explain = s
        .client()
        .post(format!("{}/api/orgs/default/projects/hello/explain", s.url))
        .header("authorization", format!("token {TOKEN}"))
        .header("x-github-event", "push")
        .body(tag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(explain.status(), 200);
    let explain: Value = explain.json().await.unwrap();
    assert_eq!(explain["verdict"], "would be filtered");
    assert_eq!(explain["evaluation"]["groups"][0]["filters"][0]["passed"], true, "EVENT PUSH passes");
    assert_eq!(explain["evaluation"]["groups"][0]["filters"][1]["passed"], false);
    let explain: Value = s
        .client()
        .post(format!("{}/api/orgs/default/projects/hello/explain", s.url))
        .header("authorization", format!("token {TOKEN}"))
        .header("x-github-event", "push")
        .body(body.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(explain["verdict"], "would trigger");
    assert_eq!(explain["webhookEnv"][0], serde_json::json!(["CODEBUILD_WEBHOOK_EVENT", "PUSH"]));

    // build_started and build_succeeded, as outbound events with the project, number, id and commit.
    let got = receiver.wait("builds", 4).await;
    let mut kinds: Vec<String> = got.iter().map(|g| g.header("pulumi-webhook-kind").unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, ["build_started", "build_started", "build_succeeded", "build_succeeded"]);
    let done = got
        .iter()
        .find(|g| g.header("pulumi-webhook-kind").as_deref() == Some("build_succeeded") && g.json()["build_num"] == 1)
        .unwrap();
    let done = done.json();
    assert_eq!(done["app_name"], "hello");
    assert_eq!(done["build_num"], 1);
    assert_eq!(done["pipehook"]["build_id"].as_str(), Some(id.as_str()), "pipehook's own fields, grouped");
    assert_eq!(done["status"], "Success");
    assert_eq!(done["commit"]["commit_id"].as_str(), Some(commit.as_str()));
    assert_eq!(done["commit"]["branch"], "master");
}

/// A local fake of GitHub's repository-hooks API: what CreateWebhook, UpdateWebhook (rotateSecret),
/// DeleteWebhook and DeleteProject ask of it.
#[tokio::test]
async fn hooks_are_registered_rotated_and_removed_on_a_github_compatible_api() {
    use axum::extract::Path as P;
    use axum::routing::{patch, post as axum_post};
    use std::sync::{Arc, Mutex};
    type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;
    let seen: Seen = Arc::default();
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let record = |seen: &Seen, what: String, headers: &axum::http::HeaderMap, body: Value| {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        seen.lock().unwrap().push((what, auth, body));
    };
    let app = {
        let (s1, s2, f) = (seen.clone(), seen.clone(), fail.clone());
        axum::Router::new()
            .route(
                "/repos/{owner}/{repo}/hooks",
                axum_post(move |h: axum::http::HeaderMap, P((o, r)): P<(String, String)>, b: axum::Json<Value>| {
                    let (seen, fail) = (s1.clone(), f.clone());
                    async move {
                        record(&seen, format!("POST {o}/{r}"), &h, b.0);
                        if fail.load(std::sync::atomic::Ordering::SeqCst) {
                            return (
                                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                                axum::Json(serde_json::json!({"message": "Validation Failed"})),
                            );
                        }
                        (axum::http::StatusCode::CREATED, axum::Json(serde_json::json!({"id": 4242})))
                    }
                }),
            )
            .route(
                "/repos/{owner}/{repo}/hooks/{id}",
                patch({
                    let seen = s2.clone();
                    move |h: axum::http::HeaderMap, P((o, r, id)): P<(String, String, String)>, b: axum::Json<Value>| {
                        let seen = seen.clone();
                        async move {
                            record(&seen, format!("PATCH {o}/{r}/{id}"), &h, b.0);
                            axum::Json(serde_json::json!({"id": 4242}))
                        }
                    }
                })
                .delete(
                    move |h: axum::http::HeaderMap, P((o, r, id)): P<(String, String, String)>| {
                        let seen = s2.clone();
                        async move {
                            record(&seen, format!("DELETE {o}/{r}/{id}"), &h, Value::Null);
                            axum::http::StatusCode::NO_CONTENT
                        }
                    },
                ),
            )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let s = TestServer::builder().env("PIPEHOOK_GITHUB_API_URL", &fake).start().await.unwrap();
    let c = client(&s);
    let location = "https://github.com/Codertocat/Hello-World.git";
    create_repo_project(&c, "gh-app", SourceType::Github, location, Some("gh-token-123")).await;

    let w = c
        .create_webhook()
        .project_name("gh-app")
        .filter_groups(vec![filter(WebhookFilterType::Event, "PUSH, RELEASED")])
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap();
    assert_eq!(w.manual_creation, Some(false));
    assert_eq!(w.url.as_deref(), Some(format!("{fake}/repos/Codertocat/Hello-World/hooks/4242").as_str()));
    let secret = w.secret.clone().unwrap();
    {
        let seen = seen.lock().unwrap();
        let (what, auth, body) = &seen[0];
        assert_eq!((what.as_str(), auth.as_str()), ("POST Codertocat/Hello-World", "token gh-token-123"));
        assert_eq!(body["config"]["url"].as_str(), w.payload_url.as_deref());
        assert_eq!(body["config"]["secret"].as_str(), Some(secret.as_str()));
        assert_eq!(body["events"], serde_json::json!(["push", "release"]), "what the filter groups let through");
    }
    // The token is never shown back.
    let p = c.batch_get_projects().names("gh-app").send().await.unwrap().projects.unwrap().remove(0);
    let auth = p.source.unwrap().auth.unwrap();
    assert_eq!((auth.r#type, auth.resource), (SourceAuthType::Oauth, None));

    let rotated = c.update_webhook().project_name("gh-app").rotate_secret(true).send().await.unwrap().webhook.unwrap();
    let new_secret = rotated.secret.unwrap();
    assert_ne!(new_secret, secret);
    {
        let seen = seen.lock().unwrap();
        let (what, _, body) = &seen[1];
        assert_eq!(what, "PATCH Codertocat/Hello-World/4242");
        assert_eq!(body["config"]["secret"].as_str(), Some(new_secret.as_str()));
    }
    c.delete_webhook().project_name("gh-app").send().await.unwrap();
    assert_eq!(seen.lock().unwrap()[2].0, "DELETE Codertocat/Hello-World/4242");

    // The host refusing: OAuthProviderException with its message, nothing stored.
    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let e = c.create_webhook().project_name("gh-app").send().await.unwrap_err();
    assert_eq!(code(&e), "OAuthProviderException");
    assert!(e.message().unwrap_or_default().contains("Validation Failed"), "{e:?}");
    let p = c.batch_get_projects().names("gh-app").send().await.unwrap().projects.unwrap().remove(0);
    assert!(p.webhook.is_none());

    // DeleteProject removes the hook it registered.
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    c.create_webhook().project_name("gh-app").send().await.unwrap();
    c.delete_project().name("gh-app").send().await.unwrap();
    let last = seen.lock().unwrap().last().unwrap().0.clone();
    assert_eq!(last, "DELETE Codertocat/Hello-World/4242");
}

/// A local fake of GitLab's REST API v4 project hooks: CreateWebhook registers the hook on the URL-encoded
/// project path with `PRIVATE-TOKEN`, rotation re-keys it, DeleteWebhook and DeleteProject remove it, a 401 is
/// `OAuthProviderException` with nothing stored, and `manualCreation` registers nothing.
#[tokio::test]
async fn gitlab_hooks_are_registered_rotated_and_removed_through_the_gitlab_api() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    type Seen = Arc<Mutex<Vec<(String, String, Value)>>>;
    let seen: Seen = Arc::default();
    let fail = Arc::new(AtomicBool::new(false));
    let app = {
        let (seen, fail) = (seen.clone(), fail.clone());
        axum::Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  h: axum::http::HeaderMap,
                  body: axum::body::Bytes| {
                let (seen, fail) = (seen.clone(), fail.clone());
                async move {
                    let token = h.get("private-token").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    seen.lock().unwrap().push((format!("{method} {}", uri.path()), token, body));
                    if fail.load(Ordering::SeqCst) {
                        let out = serde_json::json!({"message": "401 Unauthorized"});
                        return (axum::http::StatusCode::UNAUTHORIZED, axum::Json(out));
                    }
                    match method {
                        axum::http::Method::POST => {
                            (axum::http::StatusCode::CREATED, axum::Json(serde_json::json!({"id": 77})))
                        }
                        axum::http::Method::PUT => {
                            (axum::http::StatusCode::OK, axum::Json(serde_json::json!({"id": 77})))
                        }
                        _ => (axum::http::StatusCode::NO_CONTENT, axum::Json(Value::Null)),
                    }
                }
            },
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake = format!("http://{}/api/v4", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let s = TestServer::builder().env("PIPEHOOK_GITLAB_API_URL", &fake).start().await.unwrap();
    let c = client(&s);
    let location = "https://gitlab.com/group/sub/repo.git";
    create_repo_project(&c, "gl-app", SourceType::Gitlab, location, Some("glpat-123")).await;
    let hooks = "/api/v4/projects/group%2Fsub%2Frepo/hooks";

    let w = c
        .create_webhook()
        .project_name("gl-app")
        .filter_groups(vec![filter(WebhookFilterType::Event, "PUSH")])
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap();
    assert_eq!(w.manual_creation, Some(false));
    assert_eq!(w.status_message, None, "nothing left to do by hand");
    assert_eq!(w.url.as_deref(), Some(format!("{fake}/projects/group%2Fsub%2Frepo/hooks/77").as_str()));
    let secret = w.secret.clone().unwrap();
    {
        let seen = seen.lock().unwrap();
        let (what, token, body) = &seen[0];
        assert_eq!((what.as_str(), token.as_str()), (format!("POST {hooks}").as_str(), "glpat-123"));
        assert_eq!(body["url"].as_str(), w.payload_url.as_deref());
        assert_eq!(body["token"].as_str(), Some(secret.as_str()));
        // What the filter groups let through: PUSH (branches and tags), no merge requests or releases.
        for (flag, on) in [
            ("push_events", true),
            ("tag_push_events", true),
            ("merge_requests_events", false),
            ("releases_events", false),
            ("enable_ssl_verification", true),
        ] {
            assert_eq!(body[flag], on, "{flag}: {body}");
        }
    }
    // The registered webhook still authenticates GitLab's deliveries with the secret it was given.
    let p = c.batch_get_projects().names("gl-app").send().await.unwrap().projects.unwrap().remove(0);
    assert_eq!(p.webhook.unwrap().url, w.url);

    let rotated = c.update_webhook().project_name("gl-app").rotate_secret(true).send().await.unwrap().webhook.unwrap();
    let new_secret = rotated.secret.unwrap();
    assert_ne!(new_secret, secret);
    {
        let seen = seen.lock().unwrap();
        let (what, token, body) = &seen[1];
        assert_eq!((what.as_str(), token.as_str()), (format!("PUT {hooks}/77").as_str(), "glpat-123"));
        assert_eq!(body["token"].as_str(), Some(new_secret.as_str()));
        assert_eq!(body["url"].as_str(), w.payload_url.as_deref());
    }
    c.delete_webhook().project_name("gl-app").send().await.unwrap();
    {
        let seen = seen.lock().unwrap();
        assert_eq!((seen[2].0.as_str(), seen[2].1.as_str()), (format!("DELETE {hooks}/77").as_str(), "glpat-123"));
    }

    // GitLab refusing the token: OAuthProviderException with its message, nothing stored.
    fail.store(true, Ordering::SeqCst);
    let e = c.create_webhook().project_name("gl-app").send().await.unwrap_err();
    assert_eq!(code(&e), "OAuthProviderException");
    assert!(e.message().unwrap_or_default().contains("401 Unauthorized"), "{e:?}");
    let p = c.batch_get_projects().names("gl-app").send().await.unwrap().projects.unwrap().remove(0);
    assert!(p.webhook.is_none());
    fail.store(false, Ordering::SeqCst);

    // manualCreation: nothing is asked of GitLab, and nothing is asked of it on deletion either.
    let before = seen.lock().unwrap().len();
    let manual = c.create_webhook().project_name("gl-app").manual_creation(true).send().await.unwrap().webhook.unwrap();
    assert!(manual.secret.is_some());
    c.delete_webhook().project_name("gl-app").send().await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), before);

    // GitLab self-managed, and DeleteProject removing the hook it registered.
    create_repo_project(&c, "glsm-app", SourceType::GitlabSelfManaged, "https://git.example.com/team/app", Some("t-2"))
        .await;
    c.create_webhook().project_name("glsm-app").send().await.unwrap();
    c.delete_project().name("glsm-app").send().await.unwrap();
    let seen = seen.lock().unwrap();
    let calls: Vec<(&str, &str)> = seen[before..].iter().map(|(w, t, _)| (w.as_str(), t.as_str())).collect();
    assert_eq!(
        calls,
        [("POST /api/v4/projects/team%2Fapp/hooks", "t-2"), ("DELETE /api/v4/projects/team%2Fapp/hooks/77", "t-2")]
    );
}

/// GitLab (`X-Gitlab-Token` is the webhook's secret) and Bitbucket (no secret: the URL's token) deliveries of
/// real payloads through the payload URL; a checkout that fails fails the build in DOWNLOAD_SOURCE.
#[tokio::test]
async fn gitlab_and_bitbucket_deliveries_through_the_payload_url() {
    let s = TestServer::start().await;
    let c = client(&s);
    let missing_repo = "/nonexistent/pipehook-test/repo.git";
    create_repo_project(&c, "gl-app", SourceType::Gitlab, missing_repo, None).await;
    create_repo_project(&c, "bb-app", SourceType::Bitbucket, missing_repo, None).await;

    let gl = c
        .create_webhook()
        .project_name("gl-app")
        .filter_groups(vec![
            filter(WebhookFilterType::Event, "PUSH"),
            filter(WebhookFilterType::HeadRef, "^refs/heads/master$"),
        ])
        .manual_creation(true)
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap();
    let (gl_url, gl_secret) = (gl.payload_url.unwrap(), gl.secret.expect("GitLab webhooks have a secret"));
    let push = fixture("gitlab/push.json");
    let gitlab = |event: &str, uuid: &str, token: &str| {
        vec![
            ("x-gitlab-event", event.to_owned()),
            ("x-gitlab-event-uuid", uuid.to_owned()),
            ("x-gitlab-token", token.to_owned()),
        ]
    };
    let (status, out) = post(&gl_url, &push, &gitlab("Push Hook", "gl-1", "wrong-token")).await;
    assert_eq!((status, out["result"].as_str()), (401, Some("unauthenticated")), "{out}");
    let (status, out) = post(&gl_url, &push, &gitlab("Push Hook", "gl-2", &gl_secret)).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("triggered")), "{out}");
    let b = wait_build(&c, out["buildId"].as_str().unwrap()).await;
    assert_eq!(b.initiator.as_deref(), Some("GitLab-Webhook"));
    assert_eq!(b.source_version.as_deref(), Some("da1560886d4f094c3e6c9ef40349f7d38b5d27d7"));
    assert_eq!(b.build_status, Some(StatusType::Failed));
    assert_eq!(phase(&b, BuildPhaseType::DownloadSource), Some(StatusType::Failed));
    assert_eq!(phase(&b, BuildPhaseType::Build), None, "nothing runs after a failed checkout");
    let download =
        b.phases.unwrap().into_iter().find(|p| p.phase_type == Some(BuildPhaseType::DownloadSource)).unwrap();
    let context = download.contexts.unwrap_or_default();
    assert!(!context.is_empty() && !context[0].message.clone().unwrap_or_default().is_empty(), "{context:?}");
    let tag = fixture("gitlab/tag_push.json");
    let (status, out) = post(&gl_url, &tag, &gitlab("Tag Push Hook", "gl-3", &gl_secret)).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("filtered")), "{out}");

    let bb = c
        .create_webhook()
        .project_name("bb-app")
        .filter_groups(vec![
            filter(WebhookFilterType::Event, "PUSH"),
            filter(WebhookFilterType::ActorAccountId, "^557058:"),
        ])
        .filter_groups(vec![
            filter(WebhookFilterType::Event, "PULL_REQUEST_CREATED"),
            WebhookFilter::builder()
                .r#type(WebhookFilterType::HeadRef)
                .pattern("^refs/heads/feature")
                .exclude_matched_pattern(true)
                .build()
                .unwrap(),
        ])
        .manual_creation(true)
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap();
    assert!(bb.secret.is_none());
    let bb_url = bb.payload_url.unwrap();
    let bitbucket = |key: &str, uuid: &str| vec![("x-event-key", key.to_owned()), ("x-request-uuid", uuid.to_owned())];
    let body = fixture("bitbucket/repo-push.json");
    let (status, out) = post(&bb_url, &body, &bitbucket("repo:push", "bb-1")).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("triggered")), "{out}");
    let b = wait_build(&c, out["buildId"].as_str().unwrap()).await;
    assert_eq!(b.initiator.as_deref(), Some("Bitbucket-Webhook"));
    assert_eq!(b.source_version.as_deref(), Some("7c9f3a2b5e1d4c8a9b0f6e2d3c4b5a69788f0e1d"));
    let (status, out) = post(&bb_url, &body, &bitbucket("repo:push", "bb-1")).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("duplicate")), "{out}");

    // The pull request's source branch decides group 2 (excludeMatchedPattern): the log says which filter.
    let pr: Value = serde_json::from_slice(&fixture("bitbucket/pullrequest-created.json")).unwrap();
    let branch = pr["pullrequest"]["source"]["branch"]["name"].as_str().unwrap().to_owned();
    let (status, out) =
        post(&bb_url, &serde_json::to_vec(&pr).unwrap(), &bitbucket("pullrequest:created", "bb-2")).await;
    let expected = if branch.starts_with("feature") { "filtered" } else { "triggered" };
    assert_eq!((status, out["result"].as_str()), (200, Some(expected)), "{branch}: {out}");
    let (_, log) = s.get("/api/orgs/default/inbound?webhook=project:bb-app", Some(TOKEN)).await;
    let latest = &log["requests"][0]["detail"]["evaluation"];
    let head_ref = &latest["groups"][1]["filters"][1];
    assert_eq!(head_ref["excludeMatchedPattern"], true);
    assert_eq!(head_ref["found"][0].as_str(), Some(format!("refs/heads/{branch}").as_str()));
    assert_eq!(latest["groups"][0]["passed"], false, "group 1 wants PUSH");
}

/// Without an inline buildspec, `buildspec.yml` comes from the checked-out source; without one there, the build
/// fails in DOWNLOAD_SOURCE with YAML_FILE_ERROR.
#[tokio::test]
async fn the_buildspec_comes_from_the_source_when_the_project_has_none() {
    let s = TestServer::start().await;
    let c = client(&s);
    let with = tempfile::tempdir().unwrap();
    let spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo \"from the repo $(cat data.txt)\"\n";
    let commit = git_repo_with(with.path(), &[("buildspec.yml", spec), ("data.txt", "42")]);
    let without = tempfile::tempdir().unwrap();
    git_repo(without.path());
    for (name, dir) in [("with-spec", with.path()), ("without-spec", without.path())] {
        c.create_project()
            .name(name)
            .source(
                ProjectSource::builder()
                    .r#type(SourceType::Github)
                    .location(dir.display().to_string())
                    .build()
                    .unwrap(),
            )
            .artifacts(artifacts())
            .environment(environment(&[]))
            .service_role("r")
            .send()
            .await
            .unwrap();
    }
    let b = c.start_build().project_name("with-spec").send().await.unwrap().build_value.unwrap();
    let b = wait_build(&c, b.id.as_deref().unwrap()).await;
    assert_eq!(b.build_status, Some(StatusType::Succeeded), "{}", logs(&s, &b).await);
    assert_eq!(b.resolved_source_version.as_deref(), Some(commit.as_str()));
    assert_eq!(phase(&b, BuildPhaseType::DownloadSource), Some(StatusType::Succeeded));
    assert!(logs(&s, &b).await.contains("from the repo 42"));

    let b = c.start_build().project_name("without-spec").send().await.unwrap().build_value.unwrap();
    let b = wait_build(&c, b.id.as_deref().unwrap()).await;
    assert_eq!(b.build_status, Some(StatusType::Failed));
    let download =
        b.phases.unwrap().into_iter().find(|p| p.phase_type == Some(BuildPhaseType::DownloadSource)).unwrap();
    assert_eq!(download.phase_status, Some(StatusType::Failed));
    let message = download.contexts.unwrap()[0].message.clone().unwrap();
    assert!(message.contains("YAML_FILE_ERROR") && message.contains("buildspec.yml"), "{message}");
}

/// A pipeline action `AWS`/`CodeBuild` runs a build of its `ProjectName` (initiator `codepipeline/<pipeline>`)
/// and ends as the build does.
#[tokio::test]
async fn a_pipeline_codebuild_action_runs_a_build() {
    use aws_sdk_codepipeline::types::{
        ActionCategory, ActionDeclaration, ActionOwner, ActionTypeId, ArtifactStore, ArtifactStoreType,
        PipelineDeclaration, PipelineExecutionStatus, StageDeclaration,
    };
    let s = TestServer::start().await;
    let c = client(&s);
    let cp = crate::support::codepipeline(&s.url, ACCESS_KEY_ID, SECRET_ACCESS_KEY, "us-east-1");
    create_no_source(&c, "web-app", BUILDSPEC).await;
    let pipeline = |name: &str, project: &str| {
        let source = ActionDeclaration::builder()
            .name("Source")
            .action_type_id(
                ActionTypeId::builder()
                    .category(ActionCategory::Source)
                    .owner(ActionOwner::ThirdParty)
                    .provider("GitHub")
                    .version("1")
                    .build()
                    .unwrap(),
            )
            .configuration("Owner", "Codertocat")
            .configuration("Repo", "Hello-World")
            .configuration("Branch", "master")
            .configuration("OAuthToken", "gh-token")
            .configuration("PollForSourceChanges", "false")
            .build()
            .unwrap();
        let build = ActionDeclaration::builder()
            .name("Build")
            .action_type_id(
                ActionTypeId::builder()
                    .category(ActionCategory::Build)
                    .owner(ActionOwner::Aws)
                    .provider("CodeBuild")
                    .version("1")
                    .build()
                    .unwrap(),
            )
            .configuration("ProjectName", project)
            .configuration(
                "EnvironmentVariables",
                r#"[{"name":"OVERRIDE_VAR","value":"from-pipeline","type":"PLAINTEXT"}]"#,
            )
            .build()
            .unwrap();
        PipelineDeclaration::builder()
            .name(name)
            .role_arn("arn:aws:iam::123456789012:role/pipehook")
            .artifact_store(ArtifactStore::builder().r#type(ArtifactStoreType::S3).location("bucket").build().unwrap())
            .stages(StageDeclaration::builder().name("Source").actions(source).build().unwrap())
            .stages(StageDeclaration::builder().name("Build").actions(build).build().unwrap())
            .build()
            .unwrap()
    };
    cp.create_pipeline().pipeline(pipeline("ship", "web-app")).send().await.unwrap();
    cp.create_pipeline().pipeline(pipeline("broken", "no-such-project")).send().await.unwrap();

    let id = cp.start_pipeline_execution().name("ship").send().await.unwrap().pipeline_execution_id.unwrap();
    let e = crate::support::wait_done(&cp, "ship", &id).await;
    assert_eq!(e.status, Some(PipelineExecutionStatus::Succeeded), "{e:?}");
    let builds = c.list_builds_for_project().project_name("web-app").send().await.unwrap().ids.unwrap();
    assert_eq!(builds.len(), 1);
    let b = c.batch_get_builds().ids(&builds[0]).send().await.unwrap().builds.unwrap().remove(0);
    assert_eq!(b.initiator.as_deref(), Some("codepipeline/ship"));
    assert_eq!(b.build_status, Some(StatusType::Succeeded));
    assert!(logs(&s, &b).await.contains("hello from project-value and from-pipeline"));

    // The seed's warning: the project also has a webhook, so each commit would build twice.
    create_repo_project(&c, "gh-built", SourceType::Github, "https://github.com/Codertocat/Hello-World", None).await;
    let alone = c.create_webhook().project_name("gh-built").manual_creation(true).send().await.unwrap();
    assert!(alone.webhook.unwrap().status_message.is_none());
    cp.create_pipeline().pipeline(pipeline("also-builds", "gh-built")).send().await.unwrap();
    let w = c.update_webhook().project_name("gh-built").send().await.unwrap().webhook.unwrap();
    let warning = w.status_message.unwrap_or_default();
    assert!(warning.contains("also-builds") && warning.contains("twice"), "{warning}");
    let p = c.batch_get_projects().names("gh-built").send().await.unwrap().projects.unwrap().remove(0);
    assert!(p.webhook.unwrap().status_message.unwrap_or_default().contains("also-builds"));

    // The pipeline builds a commit, then the webhook receives a push of the same commit: the second build is
    // marked in the inbound log.
    let repo = tempfile::tempdir().unwrap();
    let commit = git_repo(repo.path());
    c.update_project()
        .name("gh-built")
        .source(
            ProjectSource::builder()
                .r#type(SourceType::Github)
                .location(repo.path().display().to_string())
                .buildspec(BUILDSPEC)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let id = cp
        .start_pipeline_execution()
        .name("also-builds")
        .source_revisions(
            aws_sdk_codepipeline::types::SourceRevisionOverride::builder()
                .action_name("Source")
                .revision_type(aws_sdk_codepipeline::types::SourceRevisionType::CommitId)
                .revision_value(&commit)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .pipeline_execution_id
        .unwrap();
    let e = crate::support::wait_done(&cp, "also-builds", &id).await;
    assert_eq!(e.status, Some(PipelineExecutionStatus::Succeeded), "{e:?}");
    let first = c.list_builds_for_project().project_name("gh-built").send().await.unwrap().ids.unwrap().remove(0);
    let mut push: Value = serde_json::from_slice(&fixture("github/push-branch.json")).unwrap();
    push["after"] = Value::from(commit.clone());
    push["head_commit"]["id"] = Value::from(commit.clone());
    let body = serde_json::to_vec(&push).unwrap();
    let secret = c
        .update_webhook()
        .project_name("gh-built")
        .rotate_secret(true)
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap()
        .secret
        .unwrap();
    let (status, out) =
        post(&w.payload_url.clone().unwrap(), &body, &github("push", "dup-1", Some(sign(&secret, &body)))).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("triggered")), "{out}");
    assert_eq!(out["duplicateOf"]["buildId"].as_str(), Some(first.as_str()), "{out}");
    let webhook_build = out["buildId"].as_str().unwrap().to_owned();
    let (_, log) = s.get("/api/orgs/default/inbound?webhook=project:gh-built", Some(TOKEN)).await;
    let marked = &log["requests"][0]["detail"]["duplicateOf"];
    assert_eq!(
        (marked["buildId"].as_str(), marked["initiator"].as_str()),
        (Some(first.as_str()), Some("codepipeline/also-builds"))
    );

    // The organization setting suppresses that second build: verdict `duplicate`, nothing started.
    let settings = format!("{}/api/orgs/default/settings", s.url);
    let patch = |body: &'static str, token: &'static str| {
        let settings = settings.clone();
        async move {
            let res = reqwest::Client::new()
                .patch(settings)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, out) = s.get("/api/orgs/default/settings", Some(TOKEN)).await;
    assert_eq!((status, &out), (200, &serde_json::json!({"suppressDuplicateBuilds": false})));
    assert_eq!(s.get("/api/orgs/default/settings", None).await.0, 401);
    assert_eq!(patch(r#"{"suppressDuplicateBuilds": "yes"}"#, TOKEN).await.0, 400);
    assert_eq!(patch(r#"{"unknownSetting": true}"#, TOKEN).await.0, 400);
    assert_eq!(patch("not json", TOKEN).await.0, 400);
    let (status, out) = patch(r#"{"suppressDuplicateBuilds": true}"#, TOKEN).await;
    assert_eq!((status, &out), (200, &serde_json::json!({"suppressDuplicateBuilds": true})), "{out}");
    assert_eq!(s.get("/api/orgs/default/settings", Some(TOKEN)).await.1["suppressDuplicateBuilds"], true);
    let builds_before = c.list_builds_for_project().project_name("gh-built").send().await.unwrap().ids.unwrap().len();
    let (status, out) =
        post(&w.payload_url.clone().unwrap(), &body, &github("push", "dup-2", Some(sign(&secret, &body)))).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("duplicate")), "{out}");
    assert_eq!(out["duplicateOf"]["buildId"].as_str(), Some(first.as_str()), "{out}");
    assert!(out.get("buildId").is_none(), "{out}");
    let (_, log) = s.get("/api/orgs/default/inbound?webhook=project:gh-built", Some(TOKEN)).await;
    assert_eq!(log["requests"][0]["verdict"], "duplicate", "{log}");
    assert_eq!(log["requests"][0]["detail"]["duplicateOf"]["buildId"].as_str(), Some(first.as_str()));
    let builds_after = c.list_builds_for_project().project_name("gh-built").send().await.unwrap().ids.unwrap().len();
    assert_eq!(builds_after, builds_before, "a suppressed duplicate starts no build");
    assert_eq!(patch(r#"{"suppressDuplicateBuilds": false}"#, TOKEN).await.0, 200);

    // The other order: the webhook built the commit, then the pipeline builds it again; its action says so.
    let id = cp
        .start_pipeline_execution()
        .name("also-builds")
        .source_revisions(
            aws_sdk_codepipeline::types::SourceRevisionOverride::builder()
                .action_name("Source")
                .revision_type(aws_sdk_codepipeline::types::SourceRevisionType::CommitId)
                .revision_value(&commit)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .pipeline_execution_id
        .unwrap();
    let e = crate::support::wait_done(&cp, "also-builds", &id).await;
    assert_eq!(e.status, Some(PipelineExecutionStatus::Succeeded), "{e:?}");
    let actions = cp
        .list_action_executions()
        .pipeline_name("also-builds")
        .filter(aws_sdk_codepipeline::types::ActionExecutionFilter::builder().pipeline_execution_id(&id).build())
        .send()
        .await
        .unwrap();
    let build = actions
        .action_execution_details
        .unwrap()
        .into_iter()
        .find(|a| a.action_name.as_deref() == Some("Build"))
        .unwrap();
    let summary = build.output.and_then(|o| o.execution_result).and_then(|r| r.external_execution_summary);
    let summary = summary.unwrap_or_default();
    assert!(summary.contains("second build") && summary.contains(&webhook_build), "{summary}");

    let id = cp.start_pipeline_execution().name("broken").send().await.unwrap().pipeline_execution_id.unwrap();
    let e = crate::support::wait_done(&cp, "broken", &id).await;
    assert_eq!(e.status, Some(PipelineExecutionStatus::Failed));
    let actions = cp.list_action_executions().pipeline_name("broken").send().await.unwrap();
    let build = actions
        .action_execution_details
        .unwrap()
        .into_iter()
        .find(|a| a.action_name.as_deref() == Some("Build"))
        .unwrap();
    let message = build.output.and_then(|o| o.execution_result).and_then(|r| r.external_execution_summary);
    assert!(format!("{message:?}").contains("no-such-project"), "{message:?}");
}

/// A build that outlives its timeout ends TIMED_OUT in the phase that was running, and the phases after it
/// do not run. The operator's cap (`PIPEHOOK_RUNNER_MAX_BUILD_TIMEOUT`) makes the timeout 2 s here; the
/// project's own minimum is 5 minutes.
#[tokio::test]
async fn a_build_past_its_timeout_times_out() {
    let s = TestServer::builder().env("PIPEHOOK_RUNNER_MAX_BUILD_TIMEOUT", "2").start().await.unwrap();
    let c = client(&s);
    let spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo started\n      - sleep 30\n  post_build:\n    commands:\n      - echo never\n";
    create_no_source(&c, "slowpoke", spec).await;
    let started = std::time::Instant::now();
    let id = c.start_build().project_name("slowpoke").send().await.unwrap().build_value.unwrap().id.unwrap();
    let b = wait_build(&c, &id).await;
    assert!(started.elapsed() < Duration::from_secs(25), "the 30 s command was cut short");
    assert_eq!(b.build_status, Some(StatusType::TimedOut), "{b:?}");
    assert_eq!(phase(&b, BuildPhaseType::Build), Some(StatusType::TimedOut));
    let log = logs(&s, &b).await;
    assert!(log.contains("started") && !log.contains("never"), "{log}");
    s.stop().await.unwrap();
}

/// A webhook with `buildType: BUILD_BATCH` runs the buildspec's `batch` section: a build graph whose builds start
/// as their dependencies succeed, each an ordinary build with `buildBatchArn`, its own variables and
/// `CODEBUILD_BATCH_BUILD_IDENTIFIER`, one with its own buildspec file, one whose failure is ignored; the batch
/// (the build the webhook started) ends SUCCEEDED and lists them. The same delivery with `BUILD` is one build.
#[tokio::test]
async fn a_build_batch_webhook_runs_the_batch_section() {
    let s = TestServer::start().await;
    let c = client(&s);
    let repo = tempfile::tempdir().unwrap();
    let spec = "version: 0.2
batch:
  build-graph:
    - identifier: first
      env:
        variables:
          MODE: first
    - identifier: second
      depend-on: [first]
      env:
        variables:
          MODE: second
    - identifier: other
      buildspec: ci/other.yml
    - identifier: flaky
      ignore-failure: true
      env:
        variables:
          MODE: fail
phases:
  build:
    commands:
      - echo \"mode=$MODE id=$CODEBUILD_BATCH_BUILD_IDENTIFIER\"
      - test \"$MODE\" != fail
";
    std::fs::create_dir(repo.path().join("ci")).unwrap();
    let other = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo from the other buildspec\n";
    let commit = git_repo_with(repo.path(), &[("buildspec.yml", spec), ("ci/other.yml", other)]);
    c.create_project()
        .name("batched")
        .source(
            ProjectSource::builder()
                .r#type(SourceType::Github)
                .location(repo.path().display().to_string())
                .build()
                .unwrap(),
        )
        .artifacts(artifacts())
        .environment(environment(&[]))
        .service_role("r")
        .send()
        .await
        .unwrap();
    let w = c
        .create_webhook()
        .project_name("batched")
        .build_type(WebhookBuildType::BuildBatch)
        .filter_groups(vec![filter(WebhookFilterType::Event, "PUSH")])
        .manual_creation(true)
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap();
    assert_eq!(w.build_type, Some(WebhookBuildType::BuildBatch));
    let (url, secret) = (w.payload_url.unwrap(), w.secret.unwrap());
    let mut push: Value = serde_json::from_slice(&fixture("github/push-branch.json")).unwrap();
    push["after"] = Value::from(commit.clone());
    let body = serde_json::to_vec(&push).unwrap();
    let (status, out) = post(&url, &body, &github("push", "batch-1", Some(sign(&secret, &body)))).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("triggered")), "{out}");
    let coordinator = out["buildId"].as_str().unwrap().to_owned();
    let batch = wait_build(&c, &coordinator).await;
    let batch_log = logs(&s, &batch).await;
    assert_eq!(batch.build_status, Some(StatusType::Succeeded), "{batch_log}");
    assert_eq!(phase(&batch, BuildPhaseType::Build), Some(StatusType::Succeeded));
    for line in
        ["[Batch] first (", "[Batch] second (", "[Batch] other (", "FAILED (failure ignored)", "the batch SUCCEEDED"]
    {
        assert!(batch_log.contains(line), "{line}: {batch_log}");
    }

    let ids = c.list_builds_for_project().project_name("batched").send().await.unwrap().ids.unwrap();
    assert_eq!(ids.len(), 5, "the batch and its four builds");
    let children: Vec<_> = c
        .batch_get_builds()
        .set_ids(Some(ids.into_iter().filter(|i| *i != coordinator).collect()))
        .send()
        .await
        .unwrap()
        .builds
        .unwrap();
    let mut seen = Vec::new();
    let mut times = std::collections::HashMap::new();
    for b in &children {
        let b = wait_build(&c, b.id.as_deref().unwrap()).await;
        assert!(
            b.build_batch_arn.as_deref().unwrap_or_default().ends_with(&format!(":build-batch/{coordinator}")),
            "{b:?}"
        );
        assert_eq!(b.resolved_source_version.as_deref(), Some(commit.as_str()));
        let log = logs(&s, &b).await;
        let status = b.build_status.clone().unwrap();
        let which = [
            ("other", "from the other buildspec"),
            ("first", "mode=first id=first"),
            ("second", "mode=second id=second"),
            ("flaky", "mode=fail id=flaky"),
        ]
        .into_iter()
        .find(|(_, line)| log.contains(line))
        .map_or("?", |(id, _)| id);
        seen.push((which.to_owned(), status));
        times.insert(which, (b.start_time.unwrap(), b.end_time.unwrap()));
    }
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        [
            ("first".to_owned(), StatusType::Succeeded),
            ("flaky".to_owned(), StatusType::Failed),
            ("other".to_owned(), StatusType::Succeeded),
            ("second".to_owned(), StatusType::Succeeded),
        ]
    );

    // `second` depends on `first`: it started after `first` ended.
    assert!(times["second"].0.secs() >= times["first"].1.secs(), "{times:?}");

    // A stopped batch stops its running builds; a fast-failing one stops the others when one fails.
    let spec = |fast: bool| {
        format!(
            "version: 0.2\nbatch:\n  fast-fail: {fast}\n  build-list:\n    - identifier: slow\n      env:\n        variables:\n          NAP: '30'\n    - identifier: broken\n      env:\n        variables:\n          NAP: fail\nphases:\n  build:\n    commands:\n      - test \"$NAP\" != fail\n      - sleep \"$NAP\"\n"
        )
    };
    for (name, fast) in [("stopped-batch", false), ("fast-batch", true)] {
        c.create_project()
            .name(name)
            .source(
                ProjectSource::builder()
                    .r#type(SourceType::Github)
                    .location(repo.path().display().to_string())
                    .buildspec(spec(fast))
                    .build()
                    .unwrap(),
            )
            .artifacts(artifacts())
            .environment(environment(&[]))
            .service_role("r")
            .send()
            .await
            .unwrap();
        let w = c
            .create_webhook()
            .project_name(name)
            .build_type(WebhookBuildType::BuildBatch)
            .manual_creation(true)
            .send()
            .await
            .unwrap()
            .webhook
            .unwrap();
        let secret = w.secret.unwrap();
        let (_, out) = post(&w.payload_url.unwrap(), &body, &github("push", name, Some(sign(&secret, &body)))).await;
        let coordinator = out["buildId"].as_str().expect("a batch").to_owned();
        // Wait until `slow` runs.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let slow = loop {
            let ids = c.list_builds_for_project().project_name(name).send().await.unwrap().ids.unwrap();
            let builds = c.batch_get_builds().set_ids(Some(ids)).send().await.unwrap().builds.unwrap();
            // Stopping waits for the slow build to run; failing fast may stop it before it does.
            let running = builds.into_iter().find(|b| {
                b.id.as_deref() != Some(coordinator.as_str())
                    && (fast || b.current_phase.as_deref() == Some("BUILD"))
                    && b.environment.as_ref().is_some_and(|e| e.environment_variables().iter().any(|v| v.value == "30"))
            });
            if let Some(b) = running {
                break b.id.unwrap();
            }
            assert!(std::time::Instant::now() < deadline, "the slow build never ran");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if !fast {
            c.stop_build().id(&coordinator).send().await.unwrap();
        }
        let batch = wait_build(&c, &coordinator).await;
        let want = if fast { StatusType::Failed } else { StatusType::Stopped };
        assert_eq!(batch.build_status, Some(want), "{}", logs(&s, &batch).await);
        assert_eq!(wait_build(&c, &slow).await.build_status, Some(StatusType::Stopped), "{name}");
    }

    // BUILD: the batch section is not read, one build runs the phases.
    c.update_webhook().project_name("batched").build_type(WebhookBuildType::Build).send().await.unwrap();
    let (_, out) = post(&url, &body, &github("push", "batch-2", Some(sign(&secret, &body)))).await;
    let single = wait_build(&c, out["buildId"].as_str().unwrap()).await;
    assert_eq!(single.build_status, Some(StatusType::Succeeded), "{}", logs(&s, &single).await);
    assert!(single.build_batch_arn.is_none());
    assert!(logs(&s, &single).await.contains("mode= id="));
}

/// WORKFLOW_NAME (botocore's model: "Works with WORKFLOW_JOB_QUEUED events only") through the SDK and GitHub's
/// real `workflow_job` `queued` delivery (@octokit/webhooks-examples, workflow `CodeQL`) on the payload URL: with
/// an event that has no workflow it is refused as AWS refuses it; a matching pattern builds the job's commit, a
/// non-matching one is filtered and the inbound log shows the filter's verdict.
#[tokio::test]
async fn workflow_name_filters_github_workflow_jobs() {
    let s = TestServer::start().await;
    let c = client(&s);
    let repo = tempfile::tempdir().unwrap();
    let commit = git_repo(repo.path());
    let spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo \"event=$CODEBUILD_WEBHOOK_EVENT\"\n";
    let source = ProjectSource::builder()
        .r#type(SourceType::Github)
        .location(repo.path().display().to_string())
        .buildspec(spec)
        .build()
        .unwrap();
    c.create_project()
        .name("runner")
        .source(source)
        .artifacts(artifacts())
        .environment(environment(&[]))
        .service_role("r")
        .send()
        .await
        .unwrap();
    let e = c
        .create_webhook()
        .project_name("runner")
        .filter_groups(vec![
            filter(WebhookFilterType::Event, "PUSH, WORKFLOW_JOB_QUEUED"),
            filter(WebhookFilterType::WorkflowName, "^CodeQL$"),
        ])
        .manual_creation(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidInputException");
    assert!(
        e.message().unwrap_or_default().contains("WORKFLOW_NAME works with WORKFLOW_JOB_QUEUED events only"),
        "{e:?}"
    );
    let w = c
        .create_webhook()
        .project_name("runner")
        .filter_groups(vec![
            filter(WebhookFilterType::Event, "WORKFLOW_JOB_QUEUED"),
            filter(WebhookFilterType::WorkflowName, "^CodeQL$"),
        ])
        .manual_creation(true)
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap();
    assert_eq!(w.filter_groups.unwrap()[0][1].r#type, WebhookFilterType::WorkflowName);
    let (url, secret) = (w.payload_url.unwrap(), w.secret.unwrap());

    // The example job, pointed at the local commit.
    let mut job: Value = serde_json::from_slice(&fixture("github/workflow_job-queued.json")).unwrap();
    assert_eq!(
        (job["action"].as_str(), job["workflow_job"]["workflow_name"].as_str()),
        (Some("queued"), Some("CodeQL"))
    );
    job["workflow_job"]["head_sha"] = Value::from(commit.clone());
    let body = serde_json::to_vec(&job).unwrap();
    let (status, out) = post(&url, &body, &github("workflow_job", "wj-1", Some(sign(&secret, &body)))).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("triggered")), "{out}");
    let b = wait_build(&c, out["buildId"].as_str().unwrap()).await;
    assert_eq!(b.build_status, Some(StatusType::Succeeded), "{}", logs(&s, &b).await);
    assert_eq!(b.resolved_source_version.as_deref(), Some(commit.as_str()));
    assert!(logs(&s, &b).await.contains("event=WORKFLOW_JOB_QUEUED"));

    // UpdateWebhook takes WORKFLOW_NAME too; another workflow's name filters the same job.
    c.update_webhook()
        .project_name("runner")
        .filter_groups(vec![
            filter(WebhookFilterType::Event, "WORKFLOW_JOB_QUEUED"),
            filter(WebhookFilterType::WorkflowName, "^Deploy$"),
        ])
        .send()
        .await
        .unwrap();
    let (status, out) = post(&url, &body, &github("workflow_job", "wj-2", Some(sign(&secret, &body)))).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("filtered")), "{out}");
    let (_, log) = s.get("/api/orgs/default/inbound?webhook=project:runner", Some(TOKEN)).await;
    let latest = &log["requests"][0];
    assert_eq!(latest["verdict"], "filtered", "{latest}");
    let verdict = &latest["detail"]["evaluation"]["groups"][0]["filters"][1];
    assert_eq!(verdict["type"], "WORKFLOW_NAME", "{latest}");
    assert_eq!(verdict["pattern"], "^Deploy$");
    assert_eq!(verdict["found"], serde_json::json!(["CodeQL"]));
    assert_eq!((verdict["matched"].as_bool(), verdict["passed"].as_bool()), (Some(false), Some(false)));
    assert!(
        latest["detail"]["evaluation"]["reason"].as_str().unwrap().contains("WORKFLOW_NAME filter 2 failed"),
        "{latest}"
    );
}

/// A push that creates its branch (GitHub's example: `created: true`, `before` all zeros) sets
/// CODEBUILD_WEBHOOK_PREV_COMMIT to that `before`, as CodeBuild passes the payload's `before` on.
#[tokio::test]
async fn a_branch_creating_push_sets_the_previous_commit() {
    let s = TestServer::start().await;
    let c = client(&s);
    let repo = tempfile::tempdir().unwrap();
    let commit = git_repo(repo.path());
    let spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo \"prev=${CODEBUILD_WEBHOOK_PREV_COMMIT-unset}\"\n";
    let source = ProjectSource::builder()
        .r#type(SourceType::Github)
        .location(repo.path().display().to_string())
        .buildspec(spec)
        .build()
        .unwrap();
    c.create_project()
        .name("new-branch")
        .source(source)
        .artifacts(artifacts())
        .environment(environment(&[]))
        .service_role("r")
        .send()
        .await
        .unwrap();
    let w = c
        .create_webhook()
        .project_name("new-branch")
        .filter_groups(vec![filter(WebhookFilterType::Event, "PUSH")])
        .manual_creation(true)
        .send()
        .await
        .unwrap()
        .webhook
        .unwrap();
    let mut push: Value = serde_json::from_slice(&fixture("github/push-branch.json")).unwrap();
    let zeros = "0".repeat(40);
    assert_eq!((push["created"].as_bool(), push["before"].as_str()), (Some(true), Some(zeros.as_str())));
    push["after"] = Value::from(commit.clone());
    push["head_commit"]["id"] = Value::from(commit.clone());
    let body = serde_json::to_vec(&push).unwrap();
    let (url, secret) = (w.payload_url.unwrap(), w.secret.unwrap());
    let (status, out) = post(&url, &body, &github("push", "created-1", Some(sign(&secret, &body)))).await;
    assert_eq!((status, out["result"].as_str()), (200, Some("triggered")), "{out}");
    let b = wait_build(&c, out["buildId"].as_str().unwrap()).await;
    let log = logs(&s, &b).await;
    assert_eq!(b.build_status, Some(StatusType::Succeeded), "{log}");
    assert!(log.contains(&format!("prev={zeros}")), "{log}");
}
