//! CreateWebhook, UpdateWebhook (with `rotateSecret`), DeleteWebhook (seed 002).
//!
//! - `filterGroups` and `branchFilter` are validated for the project's source provider by
//!   `pipehook_inbound::filter_groups::compile_webhook`; every refusal is `InvalidInputException` with its message
//!   (bad regex, a group without EVENT, an unknown event, a filter the provider cannot evaluate for an event).
//!   They are stored normalized, so `excludeMatchedPattern: false` is echoed where it was left out.
//! - `payloadUrl` is `<public URL>/webhooks?t=<opaque>&v=1`; the token's hash finds the webhook, the token itself
//!   is kept encrypted so the URL can be shown again. A `secret` (40 random characters) is generated for GitHub,
//!   GitHub Enterprise and GitLab and returned by CreateWebhook and by UpdateWebhook with `rotateSecret` only; it
//!   is stored encrypted and never shown again. Bitbucket gets none ("A Bitbucket webhook does not support
//!   secret"): its payload URL's token is its only protection.
//! - Unless `manualCreation` is true, a GitHub / GitHub Enterprise project gets a repository hook created
//!   through the git host's REST API (`PIPEHOOK_GITHUB_API_URL`), with the project's `source.auth` (`OAUTH`,
//!   `resource` = the token); no token, or the host refusing, is `OAuthProviderException` and nothing is stored.
//!   A GitLab / GitLab self-managed project gets a project hook through GitLab's REST API v4
//!   (`PIPEHOOK_GITLAB_API_URL`, the token sent as `PRIVATE-TOKEN`, the secret as the hook's `token`), the same
//!   way. Rotating the secret updates the hook; deleting the webhook (or the project) deletes the hook.
//! - The hook is subscribed to the host's events for the CodeBuild events the filter groups let through
//!   (`CompiledFilterGroups::events`, the default events without groups): GitHub `push`, `pull_request`,
//!   `release`, `workflow_job`; GitLab `push_events` + `tag_push_events`, `merge_requests_events`,
//!   `releases_events`; Bitbucket `repo:push`, `pullrequest:created|updated|fulfilled|rejected`. UpdateWebhook
//!   keeps the hook in step: when the events change (or the secret is rotated) it updates the hook (events, and
//!   the secret, current or new) before storing anything; the host refusing is `OAuthProviderException` and
//!   nothing is stored.
//!   A Bitbucket project gets a repository hook through Bitbucket Cloud's API 2.0 (`PIPEHOOK_BITBUCKET_API_URL`)
//!   the same way, with a secret pipehook generates and keeps to itself (CodeBuild returns none for Bitbucket),
//!   so the deliveries of a registered Bitbucket hook are signed and checked; a `manualCreation` Bitbucket
//!   webhook has no secret and its URL's token is its only protection. `rotateSecret` is ignored for
//!   Bitbucket, as in CodeBuild.
//! - The registered hook is stored as `owner/repo#id` (GitHub), `gitlab:group/sub/repo#id` (GitLab) or
//!   `bitbucket:workspace/repo#{uuid}` (Bitbucket).

use std::collections::BTreeSet;

use pipehook_domain::credentials::TokenHash;
use pipehook_domain::pipeline::PipelineDeclaration;
use pipehook_domain::time::Timestamp;
use pipehook_inbound::event::CodeBuildEvent;
use pipehook_inbound::filter_groups::{compile_webhook, CompiledFilterGroups, SourceType, WebhookFilter};
use pipehook_store::{BuildWebhookFields, BuildWebhookRecord, NewBuildWebhook, ProjectRecord, StoreError};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{already_exists, check_enum, check_project_name, invalid_input, not_found, oauth_provider, ts, Ctx};
use crate::aws::{parse, AwsError};
use crate::githost::{self, github_repo, gitlab_path};

const BUILD_TYPES: [&str; 3] = ["BUILD", "BUILD_BATCH", "RUNNER_BUILDKITE_BUILD"];

pub fn payload_url(public_url: &str, token: &str) -> String {
    format!("{public_url}/webhooks?t={token}&v=1")
}

/// Encryption contexts bind each ciphertext to its organization and project.
pub fn url_context(org: i64, project_id: i64) -> String {
    format!("build-webhook-url:{org}:{project_id}")
}

pub fn secret_context(org: i64, project_id: i64) -> String {
    format!("build-webhook-secret:{org}:{project_id}")
}

/// The webhook as CodeBuild shows it; `secret` only right after it was generated.
pub(crate) fn view(ctx: &Ctx<'_>, w: &BuildWebhookRecord, secret: Option<&str>) -> Result<Value, AwsError> {
    let token =
        ctx.state.master_key.decrypt(&url_context(w.org.0, w.project_id), &w.url_token_ciphertext).map_err(|e| {
            tracing::error!(project = %w.project_name, error = %e, "build webhook URL token does not decrypt");
            AwsError::internal()
        })?;
    let token = String::from_utf8(token).map_err(|_| AwsError::internal())?;
    let payload = payload_url(&ctx.state.config.public_url, &token);
    let mut out = json!({
        "url": hook_api_url(ctx, w).unwrap_or_else(|| payload.clone()),
        "payloadUrl": payload,
        "filterGroups": w.filter_groups,
        "manualCreation": w.manual_creation,
        "lastModifiedSecret": ts(w.last_modified_secret),
        "status": w.status,
    });
    if let Some(s) = secret {
        out["secret"] = json!(s);
    }
    if let Some(b) = &w.branch_filter {
        out["branchFilter"] = json!(b);
    }
    if let Some(b) = &w.build_type {
        out["buildType"] = json!(b);
    }
    if let Some(m) = &w.status_message {
        out["statusMessage"] = json!(m);
    }
    Ok(out)
}

/// The pipelines of the organization with an `AWS`/`CodeBuild` action building this project.
pub(crate) async fn pipelines_using(ctx: &Ctx<'_>, project: &str) -> Result<Vec<String>, AwsError> {
    const PAGE: u32 = 100;
    let (mut found, mut after) = (Vec::new(), None::<String>);
    loop {
        let page =
            ctx.state.store.list_pipelines(ctx.org(), after.as_deref(), PAGE).await.map_err(AwsError::from_store)?;
        for p in &page {
            let Ok(decl) = serde_json::from_value::<PipelineDeclaration>(p.declaration.clone()) else { continue };
            let uses = decl.stages.iter().flat_map(|s| &s.actions).any(|a| {
                a.action_type_id.is_codebuild()
                    && a.configuration.as_ref().and_then(|c| c.get("ProjectName")).map(String::as_str) == Some(project)
            });
            if uses {
                found.push(p.name.clone());
            }
        }
        if page.len() < PAGE as usize {
            return Ok(found);
        }
        after = page.last().map(|p| p.name.clone());
    }
}

/// The seed's warning, as the webhook's `statusMessage`: a project built by a pipeline that also has its own
/// webhook builds every commit twice.
pub(crate) async fn add_pipeline_warning(ctx: &Ctx<'_>, project: &str, webhook: &mut Value) -> Result<(), AwsError> {
    let pipelines = pipelines_using(ctx, project).await?;
    if pipelines.is_empty() {
        return Ok(());
    }
    let mut message = format!(
        "Warning: this project is also built by pipeline(s) {} (AWS/CodeBuild action), so each commit is built twice: \
         once through this webhook and once through the pipeline. If you use CodePipeline, delete this webhook.",
        pipelines.join(", ")
    );
    if let Some(previous) = webhook["statusMessage"].as_str() {
        message = format!("{message} {previous}");
    }
    webhook["statusMessage"] = json!(message);
    Ok(())
}

const GITLAB_PREFIX: &str = "gitlab:";
const BITBUCKET_PREFIX: &str = "bitbucket:";

/// A repository hook pipehook registered, parsed from its stored id.
#[derive(Debug, PartialEq)]
enum Hook<'a> {
    Github { owner: &'a str, repo: &'a str, id: &'a str },
    Gitlab { path: &'a str, id: &'a str },
    Bitbucket { repo: &'a str, id: &'a str },
}

impl<'a> Hook<'a> {
    fn parse(stored: &'a str) -> Self {
        if let Some(rest) = stored.strip_prefix(GITLAB_PREFIX) {
            let (path, id) = rest.rsplit_once('#').unwrap_or(("", rest));
            return Hook::Gitlab { path, id };
        }
        if let Some(rest) = stored.strip_prefix(BITBUCKET_PREFIX) {
            let (repo, id) = rest.split_once('#').unwrap_or(("", rest));
            return Hook::Bitbucket { repo, id };
        }
        let (path, id) = stored.split_once('#').unwrap_or(("", stored));
        let (owner, repo) = path.split_once('/').unwrap_or(("", ""));
        Hook::Github { owner, repo, id }
    }

    fn repository(&self) -> String {
        match self {
            Hook::Github { owner, repo, .. } => format!("{owner}/{repo}"),
            Hook::Gitlab { path, .. } | Hook::Bitbucket { repo: path, .. } => (*path).to_owned(),
        }
    }
}

/// The repository hook's API URL, when pipehook registered one.
fn hook_api_url(ctx: &Ctx<'_>, w: &BuildWebhookRecord) -> Option<String> {
    let stored = w.third_party_hook_id.as_deref()?;
    if !stored.starts_with(GITLAB_PREFIX) && !stored.starts_with(BITBUCKET_PREFIX) && !stored.contains('#') {
        return None;
    }
    Some(match Hook::parse(stored) {
        Hook::Github { owner, repo, id } => {
            format!("{}/repos/{owner}/{repo}/hooks/{id}", ctx.state.config.github_api_url)
        }
        Hook::Gitlab { path, id } => {
            format!("{}/projects/{}/hooks/{id}", ctx.state.config.gitlab_api_url, githost::segment(path))
        }
        Hook::Bitbucket { repo, id } => format!(
            "{}/hooks/{}",
            githost::bitbucket::repository_url(&ctx.state.config.bitbucket_api_url, repo),
            githost::segment(id)
        ),
    })
}

/// The git host token of a project (`source.auth` of type OAUTH), or `OAuthProviderException`.
fn host_token(ctx: &Ctx<'_>, p: &ProjectRecord) -> Result<String, AwsError> {
    match githost::project_token(&ctx.state.master_key, p) {
        Some(t) => Ok(t),
        None => Err(oauth_provider(
            "Access token not found in CodeBuild project. Please modify the project's source.auth (type OAUTH, \
             resource = the token) or create the webhook with manualCreation.",
        )),
    }
}

/// The GitHub events a hook needs for these CodeBuild events: `push` for PUSH, `pull_request` for the pull
/// request events, `release` for RELEASED and PRERELEASED, `workflow_job` for WORKFLOW_JOB_QUEUED.
fn github_events(events: &BTreeSet<CodeBuildEvent>) -> Vec<&'static str> {
    let wanted = [
        ("push", events.contains(&CodeBuildEvent::Push)),
        ("pull_request", events.iter().any(|e| e.is_pull_request())),
        ("release", events.iter().any(|e| e.is_release())),
        ("workflow_job", events.contains(&CodeBuildEvent::WorkflowJobQueued)),
    ];
    wanted.into_iter().filter(|(_, on)| *on).map(|(name, _)| name).collect()
}

/// The GitLab hook flags these CodeBuild events need: push and tag push events for PUSH, merge request events
/// for the pull request events, release events for RELEASED.
fn gitlab_events(events: &BTreeSet<CodeBuildEvent>) -> githost::gitlab::HookEvents {
    githost::gitlab::HookEvents {
        push: events.contains(&CodeBuildEvent::Push),
        merge_requests: events.iter().any(|e| e.is_pull_request()),
        releases: events.iter().any(|e| e.is_release()),
    }
}

/// The Bitbucket events a hook needs for these CodeBuild events, as CodeBuild maps them: `repo:push` (PUSH),
/// `pullrequest:created`, `:updated`, `:fulfilled` (MERGED), `:rejected` (CLOSED). Bitbucket Cloud has no
/// release or workflow job events (CodeBuild refuses RELEASED, PRERELEASED and WORKFLOW_JOB_QUEUED for it).
fn bitbucket_events(events: &BTreeSet<CodeBuildEvent>) -> Vec<&'static str> {
    use CodeBuildEvent as E;
    let keys = [
        (E::Push, "repo:push"),
        (E::PullRequestCreated, "pullrequest:created"),
        (E::PullRequestUpdated, "pullrequest:updated"),
        (E::PullRequestMerged, "pullrequest:fulfilled"),
        (E::PullRequestClosed, "pullrequest:rejected"),
    ];
    keys.into_iter().filter(|(e, _)| events.contains(e)).map(|(_, key)| key).collect()
}

fn source_type(p: &ProjectRecord) -> Result<SourceType, AwsError> {
    let name = p.document["source"]["type"].as_str().unwrap_or_default();
    SourceType::parse(name).map_err(|e| AwsError::new(http::StatusCode::BAD_REQUEST, e.aws_type(), e.to_string()))
}

fn new_secret(t: SourceType) -> Option<String> {
    (t != SourceType::Bitbucket).then(|| pipehook_domain::credentials::random_url_token()[..40].to_owned())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookInput {
    project_name: Option<String>,
    branch_filter: Option<String>,
    filter_groups: Option<Vec<Vec<WebhookFilter>>>,
    build_type: Option<String>,
    manual_creation: Option<bool>,
    rotate_secret: Option<bool>,
    scope_configuration: Option<Value>,
}

fn checked(input: &WebhookInput) -> Result<&str, AwsError> {
    let name =
        input.project_name.as_deref().ok_or_else(|| super::constraint("projectName", "Member must not be null"))?;
    check_project_name("projectName", name)?;
    if let Some(b) = &input.build_type {
        check_enum("buildType", b, &BUILD_TYPES)?;
    }
    if input.scope_configuration.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(invalid_input(
            "scopeConfiguration (organization and global webhooks) is not supported by pipehook",
        ));
    }
    Ok(name)
}

fn compile(
    branch: Option<&str>,
    groups: &[Vec<WebhookFilter>],
    t: SourceType,
) -> Result<CompiledFilterGroups, AwsError> {
    compile_webhook(branch, groups, t)
        .map_err(|e| AwsError::new(http::StatusCode::BAD_REQUEST, e.aws_type(), e.to_string()))
}

pub async fn create(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: WebhookInput = parse(body)?;
    let name = checked(&input)?;
    let project = ctx.project(name).await?;
    let kind = source_type(&project)?;
    let groups = input.filter_groups.clone().unwrap_or_default();
    let events = compile(input.branch_filter.as_deref(), &groups, kind)?.events();
    if ctx.state.store.build_webhook(ctx.org(), name).await.map_err(AwsError::from_store)?.is_some() {
        return Err(already_exists(format!(
            "Webhook already exists for project: {}",
            ctx.arn(&format!("project/{name}"))
        )));
    }
    let manual = input.manual_creation.unwrap_or(false);
    let token = pipehook_domain::credentials::random_url_token();
    let secret = new_secret(kind);
    // What deliveries are checked with: the secret returned, or for a registered Bitbucket hook one never shown.
    let mut kept_secret = secret.clone();
    let url = payload_url(&ctx.state.config.public_url, &token);

    // The git host first (no transaction is open while the network is awaited).
    let mut hook_id = None;
    if !manual {
        match kind {
            SourceType::Github | SourceType::GithubEnterprise => {
                let location = project.document["source"]["location"].as_str().unwrap_or_default();
                let (owner, repo) = github_repo(location).ok_or_else(|| not_a_repository(location))?;
                let api_token = host_token(ctx, &project)?;
                let id = githost::create_hook_for(
                    &ctx.state.config.github_api_url,
                    &owner,
                    &repo,
                    &api_token,
                    &url,
                    secret.as_deref(),
                    &github_events(&events),
                )
                .await
                .map_err(|e| oauth_provider(format!("Failed to create webhook on {owner}/{repo}: {}", e.message)))?;
                hook_id = Some(format!("{owner}/{repo}#{id}"));
            }
            SourceType::Gitlab | SourceType::GitlabSelfManaged => {
                let location = project.document["source"]["location"].as_str().unwrap_or_default();
                let path = gitlab_path(location).ok_or_else(|| not_a_repository(location))?;
                let api_token = host_token(ctx, &project)?;
                let id = githost::gitlab::create_hook(
                    &ctx.state.config.gitlab_api_url,
                    &path,
                    &api_token,
                    &url,
                    secret.as_deref().unwrap_or_default(),
                    gitlab_events(&events),
                )
                .await
                .map_err(|e| oauth_provider(format!("Failed to create webhook on {path}: {}", e.message)))?;
                hook_id = Some(format!("{GITLAB_PREFIX}{path}#{id}"));
            }
            SourceType::Bitbucket => {
                let location = project.document["source"]["location"].as_str().unwrap_or_default();
                let (workspace, repo) = github_repo(location).ok_or_else(|| not_a_repository(location))?;
                let full_name = format!("{workspace}/{repo}");
                let api_token = host_token(ctx, &project)?;
                let internal = pipehook_domain::credentials::random_url_token()[..40].to_owned();
                let id = githost::bitbucket::create_hook(
                    &ctx.state.config.bitbucket_api_url,
                    &full_name,
                    &api_token,
                    &url,
                    &internal,
                    &bitbucket_events(&events),
                )
                .await
                .map_err(|e| oauth_provider(format!("Failed to create webhook on {full_name}: {}", e.message)))?;
                hook_id = Some(format!("{BITBUCKET_PREFIX}{full_name}#{id}"));
                kept_secret = Some(internal);
            }
        }
    }
    let now = Timestamp::now();
    let fields = BuildWebhookFields {
        secret_ciphertext: kept_secret
            .as_ref()
            .map(|s| ctx.state.master_key.encrypt(&secret_context(ctx.org().0, project.id), s.as_bytes())),
        branch_filter: input.branch_filter.clone(),
        filter_groups: serde_json::to_value(&groups).unwrap_or_else(|_| json!([])),
        build_type: input.build_type.clone(),
        manual_creation: manual,
        status: "ACTIVE".into(),
        status_message: None,
        third_party_hook_id: hook_id,
        last_modified_secret: now,
    };
    let new = NewBuildWebhook {
        org: ctx.org(),
        project_id: project.id,
        url_token_hash: TokenHash::of(&token).0,
        url_token_ciphertext: ctx.state.master_key.encrypt(&url_context(ctx.org().0, project.id), token.as_bytes()),
        fields,
    };
    let inserted = async {
        let mut tx = ctx.state.store.begin().await?;
        let w = tx.insert_build_webhook(&new).await?;
        tx.commit().await?;
        Ok::<_, StoreError>(w)
    }
    .await;
    let w = match inserted {
        Ok(w) => w,
        Err(e) => {
            if let Some(id) = &new.fields.third_party_hook_id {
                let _ = remove_hook(ctx, &project, id).await;
            }
            return Err(match e {
                StoreError::Conflict(_) => already_exists(format!("Webhook already exists for project: {name}")),
                e => AwsError::from_store(e),
            });
        }
    };
    let mut out = view(ctx, &w, secret.as_deref())?;
    add_pipeline_warning(ctx, name, &mut out).await?;
    Ok(json!({"webhook": out}))
}

pub async fn update(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: WebhookInput = parse(body)?;
    let name = checked(&input)?;
    if input.manual_creation.is_some() {
        return Err(invalid_input("manualCreation can only be set when the webhook is created"));
    }
    let project = ctx.project(name).await?;
    let w = ctx.state.store.build_webhook(ctx.org(), name).await.map_err(AwsError::from_store)?.ok_or_else(|| {
        not_found(format!("Webhook does not exist for project: {}", ctx.arn(&format!("project/{name}"))))
    })?;
    let kind = source_type(&project)?;
    let stored_groups: Vec<Vec<WebhookFilter>> = serde_json::from_value(w.filter_groups.clone()).unwrap_or_default();
    let groups = input.filter_groups.clone().unwrap_or_else(|| stored_groups.clone());
    let branch = input.branch_filter.clone().or(w.branch_filter.clone());
    let events = compile(branch.as_deref(), &groups, kind)?.events();
    // What the hook was registered for: the stored groups' events (none when they no longer compile, so the hook
    // is updated).
    let registered = compile_webhook(None, &stored_groups, kind).ok().map(|c| c.events());
    let mut fields = BuildWebhookFields {
        secret_ciphertext: w.secret_ciphertext.clone(),
        branch_filter: branch,
        filter_groups: serde_json::to_value(&groups).unwrap_or_else(|_| json!([])),
        build_type: input.build_type.clone().or(w.build_type.clone()),
        manual_creation: w.manual_creation,
        status: w.status.clone(),
        status_message: w.status_message.clone(),
        third_party_hook_id: w.third_party_hook_id.clone(),
        last_modified_secret: w.last_modified_secret,
    };
    let secret = (input.rotate_secret.unwrap_or(false) && kind != SourceType::Bitbucket)
        .then(|| new_secret(kind).unwrap_or_default());
    // The git host first (no transaction is open while the network is awaited): its hook gets the new events and
    // the new secret, or nothing is stored.
    let mut synced = None;
    if let Some(hook) = &w.third_party_hook_id {
        if secret.is_some() || registered.as_ref() != Some(&events) {
            let current = stored_secret(ctx, &w)?;
            sync_hook(ctx, &project, &w, hook, &events, secret.as_deref().or(current.as_deref())).await?;
            synced = Some((hook, current));
        }
    }
    if let Some(s) = &secret {
        fields.secret_ciphertext =
            Some(ctx.state.master_key.encrypt(&secret_context(ctx.org().0, project.id), s.as_bytes()));
        fields.last_modified_secret = Timestamp::now();
    }
    let stored = async {
        let mut tx = ctx.state.store.begin().await?;
        let updated = tx.update_build_webhook(w.id, &fields).await?;
        tx.commit().await?;
        Ok::<_, StoreError>(updated)
    }
    .await;
    let updated = match stored {
        Ok(Some(updated)) => updated,
        failed => {
            // Put the hook back as it was registered, so it stays in step with what is stored.
            if let (Some((hook, current)), Some(registered)) = (synced, &registered) {
                if let Err(e) = sync_hook(ctx, &project, &w, hook, registered, current.as_deref()).await {
                    tracing::warn!(project = %name, error = ?e, "the git host's hook could not be put back");
                }
            }
            return Err(match failed {
                Err(e) => AwsError::from_store(e),
                Ok(_) => not_found(format!("Webhook does not exist for project: {name}")),
            });
        }
    };
    let mut out = view(ctx, &updated, secret.as_deref())?;
    add_pipeline_warning(ctx, name, &mut out).await?;
    Ok(json!({"webhook": out}))
}

/// The webhook's current secret (what the registered hook signs with), decrypted; `None` when it has none.
fn stored_secret(ctx: &Ctx<'_>, w: &BuildWebhookRecord) -> Result<Option<String>, AwsError> {
    let Some(ct) = &w.secret_ciphertext else { return Ok(None) };
    let plain = ctx.state.master_key.decrypt(&secret_context(w.org.0, w.project_id), ct).map_err(|e| {
        tracing::error!(project = %w.project_name, error = %e, "build webhook secret does not decrypt");
        AwsError::internal()
    })?;
    String::from_utf8(plain).map(Some).map_err(|_| AwsError::internal())
}

/// Sets the registered hook's events (for these CodeBuild events) and its secret; the host refusing (or the hook
/// being gone) is `OAuthProviderException`.
async fn sync_hook(
    ctx: &Ctx<'_>,
    project: &ProjectRecord,
    w: &BuildWebhookRecord,
    stored: &str,
    events: &BTreeSet<CodeBuildEvent>,
    secret: Option<&str>,
) -> Result<(), AwsError> {
    let hook = Hook::parse(stored);
    let url = view(ctx, w, None)?["payloadUrl"].as_str().unwrap_or_default().to_owned();
    let token = host_token(ctx, project)?;
    let c = &ctx.state.config;
    let updated = match hook {
        Hook::Github { owner, repo, id } => {
            let r = githost::GithubRepo { api: &c.github_api_url, owner, repo, token: &token };
            let events = github_events(events);
            let spec = githost::HookSpec { url: &url, secret, events: &events };
            match githost::update_hook(&r, id, &spec).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(githost::HostError {
                    code: "HTTP404".into(),
                    message: format!("the repository hook {id} no longer exists"),
                }),
                Err(e) => Err(e),
            }
        }
        Hook::Gitlab { path, id } => {
            githost::gitlab::update_hook(&c.gitlab_api_url, path, &token, id, &url, secret, gitlab_events(events)).await
        }
        Hook::Bitbucket { repo, id } => {
            let events = bitbucket_events(events);
            githost::bitbucket::update_hook(&c.bitbucket_api_url, repo, &token, id, &url, secret, &events).await
        }
    };
    updated.map_err(|e| oauth_provider(format!("Failed to update the webhook on {}: {}", hook.repository(), e.message)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteInput {
    project_name: Option<String>,
}

pub async fn delete(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: DeleteInput = parse(body)?;
    let name =
        input.project_name.as_deref().ok_or_else(|| super::constraint("projectName", "Member must not be null"))?;
    check_project_name("projectName", name)?;
    let project = ctx.project(name).await?;
    let w = ctx.state.store.build_webhook(ctx.org(), name).await.map_err(AwsError::from_store)?.ok_or_else(|| {
        not_found(format!("Webhook does not exist for project: {}", ctx.arn(&format!("project/{name}"))))
    })?;
    deregister(ctx, &project, &w).await?;
    let mut tx = ctx.state.store.begin().await.map_err(AwsError::from_store)?;
    tx.delete_build_webhook(w.id).await.map_err(AwsError::from_store)?;
    tx.commit().await.map_err(AwsError::from_store)?;
    Ok(json!({}))
}

async fn remove_hook(ctx: &Ctx<'_>, project: &ProjectRecord, stored: &str) -> Result<(), AwsError> {
    let hook = Hook::parse(stored);
    let token = host_token(ctx, project)?;
    let removed = match hook {
        Hook::Github { owner, repo, id } => {
            githost::delete_hook(&ctx.state.config.github_api_url, owner, repo, &token, id).await
        }
        Hook::Gitlab { path, id } => {
            githost::gitlab::delete_hook(&ctx.state.config.gitlab_api_url, path, &token, id).await
        }
        Hook::Bitbucket { repo, id } => {
            githost::bitbucket::delete_hook(&ctx.state.config.bitbucket_api_url, repo, &token, id).await
        }
    };
    removed.map_err(|e| oauth_provider(format!("Failed to delete the webhook on {}: {}", hook.repository(), e.message)))
}

fn not_a_repository(location: &str) -> AwsError {
    invalid_input(format!("The project's source location '{location}' is not a repository URL"))
}

/// Deletes the repository hook pipehook created for this webhook, if any.
pub(crate) async fn deregister(ctx: &Ctx<'_>, project: &ProjectRecord, w: &BuildWebhookRecord) -> Result<(), AwsError> {
    match &w.third_party_hook_id {
        Some(id) => remove_hook(ctx, project, id).await,
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_and_events() {
        assert_eq!(github_repo("https://github.com/o/r.git"), Some(("o".into(), "r".into())));
        assert_eq!(github_repo("https://ghe.example.com/o/r"), Some(("o".into(), "r".into())));
        assert_eq!(github_repo("https://github.com/o"), None);
        assert_eq!(github_repo("https://github.com/../x"), None);
        assert_eq!(github_repo("git@github.com:o/r.git"), Some(("o".into(), "r".into())));
        assert_eq!(github_repo("/srv/git/o/r"), None, "a local path names no repository on a host");
        assert_eq!(gitlab_path("/srv/git/g/r"), None);
        assert_eq!(gitlab_path("git@gitlab.com:g/s/r.git").as_deref(), Some("g/s/r"));
        assert_eq!(gitlab_path("https://gitlab.com/g/../r"), None);
        let events = |t: SourceType, groups: &[Vec<WebhookFilter>]| compile(None, groups, t).unwrap().events();
        let push_released = vec![vec![WebhookFilter::new("EVENT", "PUSH, RELEASED")]];
        assert_eq!(github_events(&events(SourceType::Github, &push_released)), ["push", "release"]);
        assert_eq!(github_events(&events(SourceType::Github, &[])), ["push", "pull_request"]);
        let job = vec![vec![WebhookFilter::new("EVENT", "WORKFLOW_JOB_QUEUED")]];
        assert_eq!(github_events(&events(SourceType::GithubEnterprise, &job)), ["workflow_job"]);
        let gl = gitlab_events(&events(SourceType::Gitlab, &push_released));
        assert_eq!(gl, githost::gitlab::HookEvents { push: true, merge_requests: false, releases: true });
        let merged =
            vec![vec![WebhookFilter::new("EVENT", "PULL_REQUEST_MERGED")], vec![WebhookFilter::new("EVENT", "PUSH")]];
        assert_eq!(bitbucket_events(&events(SourceType::Bitbucket, &merged)), ["repo:push", "pullrequest:fulfilled"]);
        assert_eq!(
            bitbucket_events(&events(SourceType::Bitbucket, &[])),
            ["repo:push", "pullrequest:created", "pullrequest:updated"]
        );
        assert_eq!(gitlab_path("https://gitlab.com/group/sub/repo.git").as_deref(), Some("group/sub/repo"));
        assert_eq!(gitlab_path("https://gitlab.example.com/g/r/").as_deref(), Some("g/r"));
        assert_eq!(gitlab_path("https://gitlab.com/g"), None);
        assert_eq!(gitlab_path("https://gitlab.com/g//r"), None);
        assert_eq!(Hook::parse("o/r#42"), Hook::Github { owner: "o", repo: "r", id: "42" });
        assert_eq!(Hook::parse("gitlab:g/s/r#7"), Hook::Gitlab { path: "g/s/r", id: "7" });
        assert_eq!(Hook::parse("bitbucket:w/r#{a-b}"), Hook::Bitbucket { repo: "w/r", id: "{a-b}" });
    }
}
