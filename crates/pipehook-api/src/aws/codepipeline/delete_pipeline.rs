//! DeletePipeline: removes the pipeline with its versions, executions, webhooks and tags. Deleting a pipeline
//! that does not exist succeeds, as in AWS.

use pipehook_domain::pipeline::PipelineDeclaration;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{pipeline_error, Ctx};
use crate::aws::{parse, AwsError};

#[derive(Deserialize)]
struct Input {
    name: Option<String>,
}

pub async fn handle(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: Input = parse(body)?;
    let name = input.name.ok_or_else(|| super::constraint("name", "Member must not be null"))?;
    delete_pipeline(ctx, &name).await?;
    Ok(json!({}))
}

/// Deletes the pipeline (DeletePipeline, and the native API's delete); false when there was none. Its webhooks
/// go with it (the store cascades); their tags are keyed by ARN, so they are removed here, and the repository
/// hooks of those registered with their git host are removed after the commit
/// ([`super::webhooks::remove_registered_hook`], best effort).
pub(crate) async fn delete_pipeline(ctx: &Ctx<'_>, name: &str) -> Result<bool, AwsError> {
    pipehook_domain::pipeline::validate_pipeline_name(name).map_err(pipeline_error)?;
    let store = &ctx.state.store;
    let webhooks = store.list_webhooks(ctx.org(), None, 1000).await.map_err(AwsError::from_store)?;
    let webhooks: Vec<_> = webhooks.into_iter().filter(|w| w.pipeline_name == name).collect();
    // The declaration names the repository and token of the registered hooks; read it while it exists.
    let registered: Vec<_> = webhooks.iter().filter(|w| w.third_party_hook_id.is_some()).collect();
    let decl = if registered.is_empty() {
        None
    } else {
        store
            .pipeline(ctx.org(), name)
            .await
            .map_err(AwsError::from_store)?
            .and_then(|p| serde_json::from_value::<PipelineDeclaration>(p.declaration).ok())
    };
    let mut tx = store.begin().await.map_err(AwsError::from_store)?;
    for w in &webhooks {
        tx.remove_all_tags(ctx.org(), &ctx.arn(&format!("webhook:{}", w.name))).await.map_err(AwsError::from_store)?;
    }
    let deleted = tx.delete_pipeline(ctx.org(), name, &ctx.arn(name)).await.map_err(AwsError::from_store)?;
    tx.commit().await.map_err(AwsError::from_store)?;
    if let Some(decl) = &decl {
        for w in registered {
            super::webhooks::remove_registered_hook(ctx, w, decl).await;
        }
    }
    Ok(deleted)
}
