//! DeletePipeline: removes the pipeline with its versions, executions and tags. Deleting a pipeline that
//! does not exist succeeds, as in AWS.

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
    pipehook_domain::pipeline::validate_pipeline_name(&name).map_err(pipeline_error)?;
    // Its webhooks go with it (the store cascades); their tags are keyed by ARN, so remove them here.
    let webhooks = ctx.state.store.list_webhooks(ctx.org(), None, 1000).await.map_err(AwsError::from_store)?;
    let mut tx = ctx.state.store.begin().await.map_err(AwsError::from_store)?;
    for w in webhooks.iter().filter(|w| w.pipeline_name == name) {
        tx.remove_all_tags(ctx.org(), &ctx.arn(&format!("webhook:{}", w.name))).await.map_err(AwsError::from_store)?;
    }
    tx.delete_pipeline(ctx.org(), &name, &ctx.arn(&name)).await.map_err(AwsError::from_store)?;
    tx.commit().await.map_err(AwsError::from_store)?;
    Ok(json!({}))
}
