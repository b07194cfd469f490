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
    let mut tx = ctx.state.store.begin().await.map_err(AwsError::from_store)?;
    tx.delete_pipeline(ctx.org(), &name, &ctx.arn(&name)).await.map_err(AwsError::from_store)?;
    tx.commit().await.map_err(AwsError::from_store)?;
    Ok(json!({}))
}
