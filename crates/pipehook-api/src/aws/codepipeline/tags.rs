//! TagResource, UntagResource, ListTagsForResource on pipeline ARNs of the caller's account.

use pipehook_domain::pipeline::{validate_tags, Tag};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{constraint, next_token, page_size, pipeline_error, Ctx};
use crate::aws::{parse, AwsError};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TagInput {
    resource_arn: Option<String>,
    tags: Option<Vec<Tag>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UntagInput {
    resource_arn: Option<String>,
    tag_keys: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListInput {
    resource_arn: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

/// Checks the ARN belongs to this account and region and names an existing resource.
async fn resource(ctx: &Ctx<'_>, arn: Option<String>) -> Result<String, AwsError> {
    let arn = arn.ok_or_else(|| constraint("resourceArn", "Member must not be null"))?;
    let prefix = ctx.arn("");
    let invalid =
        || AwsError::new(http::StatusCode::BAD_REQUEST, "InvalidArnException", format!("The ARN '{arn}' is not valid"));
    let Some(resource) = arn.strip_prefix(&prefix) else {
        if arn.starts_with("arn:aws:codepipeline:") {
            return Err(not_found(&arn));
        }
        return Err(invalid());
    };
    let exists = match resource.strip_prefix("webhook:") {
        Some(name) => ctx.state.store.webhook(ctx.org(), name).await.map_err(AwsError::from_store)?.is_some(),
        None if resource.is_empty() || resource.contains(':') => false,
        None => ctx.state.store.pipeline(ctx.org(), resource).await.map_err(AwsError::from_store)?.is_some(),
    };
    if exists {
        Ok(arn)
    } else {
        Err(not_found(&arn))
    }
}

fn not_found(arn: &str) -> AwsError {
    AwsError::new(
        http::StatusCode::BAD_REQUEST,
        "ResourceNotFoundException",
        format!("The resource with the ARN '{arn}' was not found"),
    )
}

pub async fn tag(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: TagInput = parse(body)?;
    let arn = resource(ctx, input.resource_arn).await?;
    let tags = input.tags.ok_or_else(|| constraint("tags", "Member must not be null"))?;
    validate_tags(&tags).map_err(pipeline_error)?;
    // The limit applies to the resource's tags after the change.
    let existing = ctx.state.store.tags(ctx.org(), &arn).await.map_err(AwsError::from_store)?;
    let mut merged: std::collections::BTreeMap<String, String> = existing.into_iter().collect();
    for t in &tags {
        merged.insert(t.key.clone(), t.value.clone());
    }
    if merged.len() > 50 {
        return Err(AwsError::new(
            http::StatusCode::BAD_REQUEST,
            "TooManyTagsException",
            "Tag limit exceeded: a resource can have at most 50 tags",
        ));
    }
    let pairs: Vec<(String, String)> = tags.into_iter().map(|t| (t.key, t.value)).collect();
    let mut tx = ctx.state.store.begin().await.map_err(AwsError::from_store)?;
    tx.set_tags(ctx.org(), &arn, &pairs).await.map_err(AwsError::from_store)?;
    tx.commit().await.map_err(AwsError::from_store)?;
    Ok(json!({}))
}

pub async fn untag(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: UntagInput = parse(body)?;
    let arn = resource(ctx, input.resource_arn).await?;
    let keys = input.tag_keys.ok_or_else(|| constraint("tagKeys", "Member must not be null"))?;
    if keys.len() > 50 || keys.iter().any(|k| k.is_empty() || k.len() > 128) {
        return Err(constraint("tagKeys", "Member must have at most 50 keys of length between 1 and 128"));
    }
    let mut tx = ctx.state.store.begin().await.map_err(AwsError::from_store)?;
    tx.remove_tags(ctx.org(), &arn, &keys).await.map_err(AwsError::from_store)?;
    tx.commit().await.map_err(AwsError::from_store)?;
    Ok(json!({}))
}

pub async fn list(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: ListInput = parse(body)?;
    let arn = resource(ctx, input.resource_arn).await?;
    let limit = page_size(input.max_results, 100, 50)? as usize;
    let scope = format!("tags:{arn}");
    let after = next_token::decode(&scope, input.next_token.as_deref())?;
    let all = ctx.state.store.tags(ctx.org(), &arn).await.map_err(AwsError::from_store)?;
    let rest: Vec<_> = all.into_iter().filter(|(k, _)| after.as_ref().is_none_or(|a| k > a)).collect();
    let page: Vec<Value> = rest.iter().take(limit).map(|(k, v)| json!({"key": k, "value": v})).collect();
    let mut out = json!({ "tags": page });
    if rest.len() > limit {
        out["nextToken"] = json!(next_token::encode(&scope, &rest[limit - 1].0));
    }
    Ok(out)
}
