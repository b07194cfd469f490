//! PutWebhook, ListWebhooks, DeleteWebhook, RegisterWebhookWithThirdParty, DeregisterWebhookWithThirdParty
//! (seeds 000 and 001).
//!
//! A webhook's trigger URL carries an opaque random token (256 bits) and nothing else; the store keeps the
//! token's hash for lookups and the token encrypted with the master key so the URL can be shown again. The
//! secret is encrypted too and never returned. A put that changes the secret keeps the previous one valid
//! for the rotation overlap.
//!
//! The work behind each operation (`put_webhook`, `list_webhooks`, `delete_webhook`, `register_webhook`,
//! `deregister_webhook`) is shared with the native REST routes (`native::webhooks`), which map its AWS
//! exceptions to HTTP statuses: one set of rules whichever API a webhook comes through.

use pipehook_domain::pipeline::{validate_tags, PipelineDeclaration, Tag};
use pipehook_domain::time::Timestamp;
use pipehook_store::{NewWebhook, StoreError, WebhookRecord, WebhookUpdate};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

use super::{constraint, next_token, page_size, pipeline_error, ts, Ctx};
use crate::aws::{parse, AwsError};
use crate::githost::{GithubRepo, HookSpec};

/// AWS's quota of webhooks per account and region.
pub const MAX_WEBHOOKS: u64 = 300;

/// What a client sends and what `definition` shows (the secret replaced by `REDACTED`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDefinition {
    pub name: String,
    pub target_pipeline: String,
    pub target_action: String,
    pub filters: Vec<FilterRule>,
    pub authentication: String,
    pub authentication_configuration: AuthConfiguration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterRule {
    pub json_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_equals: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct AuthConfiguration {
    #[serde(rename = "AllowedIPRange", skip_serializing_if = "Option::is_none")]
    pub allowed_ip_range: Option<String>,
    #[serde(rename = "SecretToken", skip_serializing_if = "Option::is_none")]
    pub secret_token: Option<String>,
}

pub const REDACTED: &str = "REDACTED";

fn auth_error(message: impl Into<String>) -> AwsError {
    AwsError::new(http::StatusCode::BAD_REQUEST, "InvalidWebhookAuthenticationParametersException", message)
}

pub(crate) fn check_name(member: &str, v: &str) -> Result<(), AwsError> {
    let ok = (1..=100).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b".@-_".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(constraint(
            member,
            "Member must satisfy regular expression pattern: [A-Za-z0-9.@\\-_]+ and have length between 1 and 100",
        ))
    }
}

/// The model's constraints and the authentication rules of seed 000.
fn validate_definition(d: &WebhookDefinition) -> Result<(), AwsError> {
    check_name("webhook.name", &d.name)?;
    check_name("webhook.targetPipeline", &d.target_pipeline)?;
    check_name("webhook.targetAction", &d.target_action)?;
    if d.filters.len() > 5 {
        return Err(constraint("webhook.filters", "Member must have length less than or equal to 5"));
    }
    for (i, f) in d.filters.iter().enumerate() {
        if f.json_path.is_empty() || f.json_path.chars().count() > 150 {
            return Err(constraint(
                &format!("webhook.filters.{}.member.jsonPath", i + 1),
                "Member must have length between 1 and 150",
            ));
        }
        if f.match_equals.as_ref().is_some_and(|m| m.is_empty() || m.chars().count() > 150) {
            return Err(constraint(
                &format!("webhook.filters.{}.member.matchEquals", i + 1),
                "Member must have length between 1 and 150",
            ));
        }
    }
    let c = &d.authentication_configuration;
    for (field, v) in [("AllowedIPRange", &c.allowed_ip_range), ("SecretToken", &c.secret_token)] {
        if v.as_ref().is_some_and(|v| v.is_empty() || v.chars().count() > 100) {
            return Err(constraint(
                &format!("webhook.authenticationConfiguration.{field}"),
                "Member must have length between 1 and 100",
            ));
        }
    }
    match d.authentication.as_str() {
        "GITHUB_HMAC" => {
            if c.secret_token.is_none() || c.allowed_ip_range.is_some() {
                return Err(auth_error("GITHUB_HMAC authentication takes exactly one property: SecretToken"));
            }
        }
        "IP" => {
            let Some(range) = &c.allowed_ip_range else {
                return Err(auth_error("IP authentication takes exactly one property: AllowedIPRange"));
            };
            if c.secret_token.is_some() {
                return Err(auth_error("IP authentication takes exactly one property: AllowedIPRange"));
            }
            pipehook_inbound::auth::parse_cidr(range)
                .map_err(|e| auth_error(format!("AllowedIPRange '{range}' is not a valid IPv4 or IPv6 CIDR: {e}")))?;
        }
        "UNAUTHENTICATED" => {
            if c.secret_token.is_some() || c.allowed_ip_range.is_some() {
                return Err(auth_error("UNAUTHENTICATED authentication takes no properties"));
            }
        }
        _ => {
            return Err(constraint(
                "webhook.authentication",
                "Member must satisfy enum value set: [GITHUB_HMAC, IP, UNAUTHENTICATED]",
            ))
        }
    }
    Ok(())
}

/// The webhook as AWS lists it.
pub(crate) fn item(ctx: &Ctx<'_>, w: &WebhookRecord, tags: Option<Vec<Tag>>) -> Result<Value, AwsError> {
    let mut out = json!({
        "definition": w.definition,
        "url": webhook_url(ctx, w)?,
        "arn": webhook_arn(ctx, &w.name),
    });
    if let Some(t) = w.last_triggered {
        out["lastTriggered"] = ts(t);
    }
    if let Some(c) = &w.error_code {
        out["errorCode"] = json!(c);
    }
    if let Some(m) = &w.error_message {
        out["errorMessage"] = json!(m);
    }
    if let Some(tags) = tags {
        out["tags"] = json!(tags);
    }
    Ok(out)
}

/// The webhook's trigger URL, from its encrypted token.
pub(crate) fn webhook_url(ctx: &Ctx<'_>, w: &WebhookRecord) -> Result<String, AwsError> {
    let token = ctx.state.master_key.decrypt(&url_context(w.org.0, &w.name), &w.url_token_ciphertext).map_err(|e| {
        tracing::error!(webhook = %w.name, error = %e, "webhook URL token does not decrypt");
        AwsError::internal()
    })?;
    let token = String::from_utf8(token).map_err(|_| AwsError::internal())?;
    Ok(trigger_url(&ctx.state.config.public_url, &token))
}

/// `arn:aws:codepipeline:<region>:<account>:webhook:<name>`; tags are kept by it.
pub(crate) fn webhook_arn(ctx: &Ctx<'_>, name: &str) -> String {
    ctx.arn(&format!("webhook:{name}"))
}

/// The webhook's tags.
pub(crate) async fn webhook_tags(ctx: &Ctx<'_>, name: &str) -> Result<Vec<Tag>, AwsError> {
    let tags = ctx.state.store.tags(ctx.org(), &webhook_arn(ctx, name)).await.map_err(AwsError::from_store)?;
    Ok(tags.into_iter().map(|(key, value)| Tag { key, value }).collect())
}

pub fn trigger_url(public_url: &str, token: &str) -> String {
    format!("{public_url}/trigger?t={token}&v=1")
}

/// Encryption contexts bind each ciphertext to its organization and webhook.
pub fn url_context(org: i64, name: &str) -> String {
    format!("webhook-url:{org}:{name}")
}

pub fn secret_context(org: i64, name: &str) -> String {
    format!("webhook-secret:{org}:{name}")
}

#[derive(Deserialize)]
struct PutInput {
    webhook: Option<WebhookDefinition>,
    #[serde(default)]
    tags: Vec<Tag>,
}

pub async fn put(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: PutInput = parse(body)?;
    let def = input.webhook.ok_or_else(|| constraint("webhook", "Member must not be null"))?;
    let put = put_webhook(ctx, def, &input.tags).await?;
    Ok(json!({ "webhook": item(ctx, &put.record, Some(put.tags))? }))
}

/// What [`put_webhook`] stored.
pub(crate) struct PutOutcome {
    pub record: WebhookRecord,
    /// All the webhook's tags after the put.
    pub tags: Vec<Tag>,
    /// Whether the put created the webhook (rather than replacing one).
    pub created: bool,
}

/// Creates or replaces a webhook (PutWebhook), for the AWS endpoint and the native REST API alike: validates
/// the definition and tags, checks the target pipeline and action and compiles the rules, then stores it. A
/// replace keeps the URL; a changed secret keeps the previous one valid for the rotation overlap. Errors are
/// AWS's exceptions; the native API maps them to statuses.
pub(crate) async fn put_webhook(ctx: &Ctx<'_>, def: WebhookDefinition, tags: &[Tag]) -> Result<PutOutcome, AwsError> {
    validate_definition(&def)?;
    validate_tags(tags).map_err(pipeline_error)?;
    let pipeline = ctx.pipeline(&def.target_pipeline).await?;
    let decl: PipelineDeclaration =
        serde_json::from_value(pipeline.declaration.clone()).map_err(|_| AwsError::internal())?;
    let action =
        decl.stages.first().and_then(|s| s.actions.iter().find(|a| a.name == def.target_action)).ok_or_else(|| {
            AwsError::validation(format!(
                "targetAction '{}' is not an action of the first (source) stage of pipeline '{}'",
                def.target_action, def.target_pipeline
            ))
        })?;
    let config: BTreeMap<String, String> = action.configuration.clone().unwrap_or_default();
    let rules: Vec<pipehook_inbound::rules::Rule> = def
        .filters
        .iter()
        .map(|f| pipehook_inbound::rules::Rule { json_path: f.json_path.clone(), match_equals: f.match_equals.clone() })
        .collect();
    if let Err(e) = pipehook_inbound::rules::compile(&rules, &super::secrets::without_secrets(&config)) {
        return Err(match e {
            pipehook_inbound::rules::RuleError::InvalidPattern { .. }
            | pipehook_inbound::rules::RuleError::TooCostly { .. } => {
                AwsError::new(http::StatusCode::BAD_REQUEST, "InvalidWebhookFilterPatternException", e.to_string())
            }
            other => AwsError::validation(other.to_string()),
        });
    }

    let mut shown = def.clone();
    if shown.authentication_configuration.secret_token.is_some() {
        shown.authentication_configuration.secret_token = Some(REDACTED.into());
    }
    let definition = serde_json::to_value(&shown).map_err(|_| AwsError::internal())?;
    let org = ctx.org();
    let key = &ctx.state.master_key;
    let arn = webhook_arn(ctx, &def.name);
    let store = &ctx.state.store;
    let existing = store.webhook(org, &def.name).await.map_err(AwsError::from_store)?;
    // `REDACTED` is what ListWebhooks shows in place of the secret: a list → edit → put round trip sends it back,
    // and it means "keep the stored secret" (as `****` does for OAuthToken), never a new, public HMAC key.
    let keep_secret = def.authentication_configuration.secret_token.as_deref() == Some(REDACTED);
    let secret_ct = if keep_secret {
        match existing.as_ref().and_then(|w| w.secret_ciphertext.clone()) {
            Some(ct) => Some(ct),
            None => {
                return Err(auth_error(format!(
                "SecretToken is '{REDACTED}', the placeholder ListWebhooks shows instead of the secret, and webhook \
                 '{}' has no stored secret to keep; give the secret",
                def.name
            )))
            }
        }
    } else {
        def.authentication_configuration
            .secret_token
            .as_ref()
            .map(|s| key.encrypt(&secret_context(org.0, &def.name), s.as_bytes()))
    };
    let conflict = || {
        AwsError::new(
            http::StatusCode::BAD_REQUEST,
            "ConcurrentModificationException",
            format!("Webhook '{}' was modified by another request at the same time; retry", def.name),
        )
    };
    let mut tx = store.begin().await.map_err(AwsError::from_store)?;
    let record = match &existing {
        Some(old) => {
            // Keep the URL. When the secret changes, the old one stays valid for the overlap window.
            let old_secret =
                old.secret_ciphertext.as_ref().and_then(|ct| key.decrypt(&secret_context(org.0, &def.name), ct).ok());
            let changed = !keep_secret
                && old_secret.as_deref() != def.authentication_configuration.secret_token.as_deref().map(str::as_bytes);
            let overlap = ctx.state.config.secret_rotation_overlap;
            let (previous, expires) = if changed && old.secret_ciphertext.is_some() && !overlap.is_zero() {
                (old.secret_ciphertext.clone(), Some(Timestamp::now().saturating_add(overlap)))
            } else if !changed {
                (old.previous_secret_ciphertext.clone(), old.previous_secret_expires_at)
            } else {
                (None, None)
            };
            let update = WebhookUpdate {
                pipeline_id: pipeline.id,
                definition,
                secret_ciphertext: secret_ct,
                previous_secret_ciphertext: previous,
                previous_secret_expires_at: expires,
            };
            tx.update_webhook(org, &def.name, old.revision, &update)
                .await
                .map_err(AwsError::from_store)?
                .ok_or_else(conflict)?
        }
        None => {
            if store.count_webhooks(org).await.map_err(AwsError::from_store)? >= MAX_WEBHOOKS {
                return Err(AwsError::new(
                    http::StatusCode::BAD_REQUEST,
                    "LimitExceededException",
                    format!("The number of webhooks is limited to {MAX_WEBHOOKS}"),
                ));
            }
            let token = new_url_token();
            let new = NewWebhook {
                org,
                name: def.name.clone(),
                pipeline_id: pipeline.id,
                url_token_hash: pipehook_domain::credentials::TokenHash::of(&token).0,
                url_token_ciphertext: key.encrypt(&url_context(org.0, &def.name), token.as_bytes()),
                definition,
                secret_ciphertext: secret_ct,
            };
            match tx.insert_webhook(&new).await {
                Ok(r) => r,
                Err(StoreError::Conflict(_)) => return Err(conflict()),
                Err(e) => return Err(AwsError::from_store(e)),
            }
        }
    };
    if !tags.is_empty() {
        let pairs: Vec<(String, String)> = tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect();
        tx.set_tags(org, &arn, &pairs).await.map_err(AwsError::from_store)?;
    }
    tx.commit().await.map_err(|e| match e {
        StoreError::Conflict(_) => conflict(),
        e => AwsError::from_store(e),
    })?;
    // A rotation keeps the previous secret valid for a while: say until when, and how to end it at once.
    if let (Some(old), Some(until)) = (&existing, record.previous_secret_expires_at) {
        if old.previous_secret_expires_at != Some(until) {
            tracing::info!(
                webhook = %def.name,
                previous_secret_valid_until_ms = until.millis(),
                previous_secret_valid_for_s = ctx.state.config.secret_rotation_overlap.as_secs(),
                "the webhook's secret changed; the previous secret stays valid until then (end it now: \
                 POST /api/orgs/{{org}}/webhooks/{{name}}/revoke-previous-secret, pipehook webhooks revoke-previous-secret)"
            );
        }
    }
    let tags = webhook_tags(ctx, &def.name).await?;
    Ok(PutOutcome { record, tags, created: existing.is_none() })
}

/// Ends the validity of the secret a put replaced (kept for the rotation overlap), at once: only the current
/// secret signs deliveries from then on. Returns the webhook as it is afterwards; nothing to end is no error.
pub(crate) async fn revoke_previous_secret(ctx: &Ctx<'_>, member: &str, name: &str) -> Result<WebhookRecord, AwsError> {
    let w = find_webhook(ctx, member, name).await?;
    if w.previous_secret_ciphertext.is_none() && w.previous_secret_expires_at.is_none() {
        return Ok(w);
    }
    let update = WebhookUpdate {
        pipeline_id: w.pipeline_id,
        definition: w.definition.clone(),
        secret_ciphertext: w.secret_ciphertext.clone(),
        previous_secret_ciphertext: None,
        previous_secret_expires_at: None,
    };
    let mut tx = ctx.state.store.begin().await.map_err(AwsError::from_store)?;
    let updated = tx.update_webhook(ctx.org(), name, w.revision, &update).await.map_err(AwsError::from_store)?;
    let Some(record) = updated else {
        return Err(AwsError::new(
            http::StatusCode::BAD_REQUEST,
            "ConcurrentModificationException",
            format!("Webhook '{name}' was modified by another request at the same time; retry"),
        ));
    };
    tx.commit().await.map_err(AwsError::from_store)?;
    tracing::info!(webhook = %name, "the webhook's previous secret was revoked; only the current secret is accepted");
    Ok(record)
}

/// 256 random bits, URL-safe.
fn new_url_token() -> String {
    pipehook_domain::credentials::random_url_token()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListInput {
    next_token: Option<String>,
    max_results: Option<i64>,
}

pub async fn list(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: ListInput = parse(body)?;
    let limit = page_size(input.max_results, 100, 100)
        .map_err(|_| constraint("MaxResults", "Member must have value between 1 and 100"))?;
    let after = next_token::decode("webhooks", input.next_token.as_deref())?;
    let page = list_webhooks(ctx, after.as_deref(), limit).await?;
    let mut items = Vec::with_capacity(page.webhooks.len());
    for (w, tags) in page.webhooks {
        items.push(item(ctx, &w, Some(tags))?);
    }
    let mut out = json!({ "webhooks": items });
    if let Some(last) = page.next {
        out["NextToken"] = json!(next_token::encode("webhooks", &last));
    }
    Ok(out)
}

/// One page of webhooks in name order, each with its tags.
pub(crate) struct WebhookPage {
    pub webhooks: Vec<(WebhookRecord, Vec<Tag>)>,
    /// The name to continue after, when there are more.
    pub next: Option<String>,
}

/// Up to `limit` webhooks named after `after`, for ListWebhooks and the native listing.
pub(crate) async fn list_webhooks(ctx: &Ctx<'_>, after: Option<&str>, limit: u32) -> Result<WebhookPage, AwsError> {
    let mut rows = ctx.state.store.list_webhooks(ctx.org(), after, limit + 1).await.map_err(AwsError::from_store)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(|w| w.name.clone()) } else { None };
    let mut webhooks = Vec::with_capacity(rows.len());
    for w in rows {
        let tags = webhook_tags(ctx, &w.name).await?;
        webhooks.push((w, tags));
    }
    Ok(WebhookPage { webhooks, next })
}

#[derive(Deserialize)]
struct DeleteInput {
    name: Option<String>,
}

/// Deleting stops the URL at once; deleting a webhook that does not exist succeeds.
pub async fn delete(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: DeleteInput = parse(body)?;
    let name = input.name.ok_or_else(|| constraint("name", "Member must not be null"))?;
    delete_webhook(ctx, "name", &name).await?;
    Ok(json!({}))
}

/// Deletes the webhook and its tags (DeleteWebhook); a webhook that does not exist is already deleted. A
/// webhook registered with its git host loses its repository hook too ([`remove_registered_hook`]).
/// `member` names the input member that carried `name`, for the validation message.
pub(crate) async fn delete_webhook(ctx: &Ctx<'_>, member: &str, name: &str) -> Result<(), AwsError> {
    check_name(member, name)?;
    let store = &ctx.state.store;
    let registered = store.webhook(ctx.org(), name).await.map_err(AwsError::from_store)?;
    let registered = registered.filter(|w| w.third_party_hook_id.is_some());
    let arn = webhook_arn(ctx, name);
    let mut tx = store.begin().await.map_err(AwsError::from_store)?;
    tx.delete_webhook(ctx.org(), name).await.map_err(AwsError::from_store)?;
    tx.remove_all_tags(ctx.org(), &arn).await.map_err(AwsError::from_store)?;
    tx.commit().await.map_err(AwsError::from_store)?;
    if let Some(w) = registered {
        match ctx.pipeline(&w.pipeline_name).await {
            Ok(p) => match serde_json::from_value::<PipelineDeclaration>(p.declaration) {
                Ok(decl) => remove_registered_hook(ctx, &w, &decl).await,
                Err(e) => tracing::error!(pipeline = %w.pipeline_name, error = %e, "a stored pipeline does not read"),
            },
            Err(e) => tracing::warn!(webhook = %w.name, repository_hook = ?w.third_party_hook_id, error = %e.message,
                "a deleted webhook's repository hook was not removed: its pipeline could not be read"),
        }
    }
    Ok(())
}

/// After a registered webhook was deleted (DeleteWebhook, or with its pipeline, whose declaration `decl` is):
/// removes its repository hook, and any other hook delivering to its URL, from the git host. Best effort, after
/// the delete committed: the trigger URL is already dead, so a hook left behind (the token revoked, the host
/// down) can start nothing; it is logged for the operator to remove.
pub(crate) async fn remove_registered_hook(ctx: &Ctx<'_>, w: &WebhookRecord, decl: &PipelineDeclaration) {
    let Some(hook_id) = w.third_party_hook_id.as_deref() else { return };
    let outcome = match (source_of(ctx, w, decl), webhook_url(ctx, w)) {
        (Ok((owner, repo, token)), Ok(url)) => {
            let r = GithubRepo { api: &ctx.state.config.github_api_url, owner: &owner, repo: &repo, token: &token };
            crate::githost::remove_hooks(&r, Some(hook_id), &url).await.map_err(|e| format!("{r}: {e}"))
        }
        (Err(e), _) | (_, Err(e)) => Err(e.message),
    };
    match outcome {
        Ok(()) => {
            tracing::info!(webhook = %w.name, repository_hook = %hook_id, "the deleted webhook's repository hook was removed")
        }
        Err(e) => tracing::warn!(webhook = %w.name, repository_hook = %hook_id, error = %e,
            "a deleted webhook's repository hook could not be removed; remove it at the git host"),
    }
}

/// The webhook, or AWS's `WebhookNotFoundException`. `member` names the input member that carried `name`.
pub(crate) async fn find_webhook(ctx: &Ctx<'_>, member: &str, name: &str) -> Result<WebhookRecord, AwsError> {
    check_name(member, name)?;
    ctx.state.store.webhook(ctx.org(), name).await.map_err(AwsError::from_store)?.ok_or_else(|| {
        AwsError::new(
            http::StatusCode::BAD_REQUEST,
            "WebhookNotFoundException",
            format!("The webhook '{name}' was not found in account '{}'", ctx.principal.org.account_id),
        )
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterInput {
    webhook_name: Option<String>,
}

fn webhook_name(body: &[u8]) -> Result<String, AwsError> {
    let input: RegisterInput = parse(body)?;
    input.webhook_name.ok_or_else(|| constraint("webhookName", "Member must not be null"))
}

/// The repository and token of the webhook's target source action (`Owner`, `Repo`, `OAuthToken`).
fn source_of(
    ctx: &Ctx<'_>,
    w: &WebhookRecord,
    decl: &PipelineDeclaration,
) -> Result<(String, String, String), AwsError> {
    let target = w.definition["targetAction"].as_str().unwrap_or_default();
    let config = decl
        .stages
        .first()
        .and_then(|s| s.actions.iter().find(|a| a.name == target))
        .and_then(|a| a.configuration.clone())
        .unwrap_or_default();
    match (config.get("Owner"), config.get("Repo"), config.get("OAuthToken")) {
        (Some(o), Some(r), Some(t)) => {
            let token = super::secrets::open(&ctx.state.master_key, ctx.org().0, &w.pipeline_name, t).map_err(|e| {
                tracing::error!(pipeline = %w.pipeline_name, error = %e, "a pipeline's OAuthToken cannot be read");
                AwsError::internal()
            })?;
            Ok((o.clone(), r.clone(), token))
        }
        _ => Err(AwsError::validation(format!(
            "The target action '{target}' needs Owner, Repo and OAuthToken in its configuration to register a webhook"
        ))),
    }
}

pub async fn register(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    register_webhook(ctx, "webhookName", &webhook_name(body)?).await?;
    Ok(json!({}))
}

/// Creates or updates the repository hook through the git host's API (RegisterWebhookWithThirdParty) and
/// remembers its id. Idempotent: the repository keeps one hook per webhook, found again by the recorded id or,
/// when that one is gone or was never recorded, by its URL, and updated (events, config, secret) instead of
/// duplicated (see [`crate::githost::ensure_hook`]). A failure is recorded in the webhook's `errorCode` /
/// `errorMessage` and returned as `ValidationException`.
pub(crate) async fn register_webhook(ctx: &Ctx<'_>, member: &str, name: &str) -> Result<WebhookRecord, AwsError> {
    let w = find_webhook(ctx, member, name).await?;
    let pipeline = ctx.pipeline(&w.pipeline_name).await?;
    let decl: PipelineDeclaration = serde_json::from_value(pipeline.declaration).map_err(|_| AwsError::internal())?;
    let (owner, repo, token) = source_of(ctx, &w, &decl)?;
    let url = webhook_url(ctx, &w)?;
    let secret = match &w.secret_ciphertext {
        Some(ct) => Some(
            String::from_utf8(
                ctx.state
                    .master_key
                    .decrypt(&secret_context(w.org.0, &w.name), ct)
                    .map_err(|_| AwsError::internal())?,
            )
            .map_err(|_| AwsError::internal())?,
        ),
        None => None,
    };
    let api = &ctx.state.config.github_api_url;
    let r = GithubRepo { api, owner: &owner, repo: &repo, token: &token };
    let spec = HookSpec { url: &url, secret: secret.as_deref(), events: &["push"] };
    let outcome = crate::githost::ensure_hook(&r, w.third_party_hook_id.as_deref(), &spec).await;
    let mut tx = ctx.state.store.begin().await.map_err(AwsError::from_store)?;
    let result = match &outcome {
        Ok(id) => {
            tx.set_webhook_registration(ctx.org(), &w.name, None, Some(id)).await.map_err(AwsError::from_store)?;
            Ok(())
        }
        Err(e) => {
            tx.set_webhook_registration(
                ctx.org(),
                &w.name,
                Some((&e.code, &e.message)),
                w.third_party_hook_id.as_deref(),
            )
            .await
            .map_err(AwsError::from_store)?;
            Err(AwsError::validation(format!("Registering the webhook with {owner}/{repo} failed: {}", e.message)))
        }
    };
    tx.commit().await.map_err(AwsError::from_store)?;
    result?;
    find_webhook(ctx, member, name).await
}

pub async fn deregister(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    deregister_webhook(ctx, "webhookName", &webhook_name(body)?).await?;
    Ok(json!({}))
}

/// Deletes the repository hook a registration created (DeregisterWebhookWithThirdParty), with any other hook of
/// the repository delivering to the webhook's URL, and forgets its id; nothing to do when none is registered. A
/// failure is recorded like [`register_webhook`]'s, and the id kept so that a retry finds the hook again.
pub(crate) async fn deregister_webhook(ctx: &Ctx<'_>, member: &str, name: &str) -> Result<WebhookRecord, AwsError> {
    let w = find_webhook(ctx, member, name).await?;
    let Some(hook_id) = w.third_party_hook_id.clone() else {
        return Ok(w); // Nothing registered: nothing to remove.
    };
    let pipeline = ctx.pipeline(&w.pipeline_name).await?;
    let decl: PipelineDeclaration = serde_json::from_value(pipeline.declaration).map_err(|_| AwsError::internal())?;
    let (owner, repo, token) = source_of(ctx, &w, &decl)?;
    let url = webhook_url(ctx, &w)?;
    let r = GithubRepo { api: &ctx.state.config.github_api_url, owner: &owner, repo: &repo, token: &token };
    let outcome = crate::githost::remove_hooks(&r, Some(&hook_id), &url).await;
    let mut tx = ctx.state.store.begin().await.map_err(AwsError::from_store)?;
    let result = match &outcome {
        Ok(()) => {
            tx.set_webhook_registration(ctx.org(), &w.name, None, None).await.map_err(AwsError::from_store)?;
            Ok(())
        }
        Err(e) => {
            tx.set_webhook_registration(ctx.org(), &w.name, Some((&e.code, &e.message)), Some(&hook_id))
                .await
                .map_err(AwsError::from_store)?;
            Err(AwsError::validation(format!("Deregistering the webhook from {owner}/{repo} failed: {}", e.message)))
        }
    };
    tx.commit().await.map_err(AwsError::from_store)?;
    result?;
    find_webhook(ctx, member, name).await
}
