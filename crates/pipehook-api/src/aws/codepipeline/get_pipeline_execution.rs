//! GetPipelineExecution.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_execution_id, constraint, execution_not_found, views, Ctx};
use crate::aws::{parse, AwsError};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Input {
    pipeline_name: Option<String>,
    pipeline_execution_id: Option<String>,
}

pub async fn handle(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: Input = parse(body)?;
    let name = input.pipeline_name.ok_or_else(|| constraint("pipelineName", "Member must not be null"))?;
    let id = input.pipeline_execution_id.ok_or_else(|| constraint("pipelineExecutionId", "Member must not be null"))?;
    check_execution_id(&id)?;
    let pipeline = ctx.pipeline(&name).await?;
    match ctx.state.store.execution(ctx.org(), &id).await.map_err(AwsError::from_store)? {
        Some(e) if e.pipeline_id == pipeline.id => Ok(json!({"pipelineExecution": views::execution(&e)})),
        _ => Err(execution_not_found(&id, &name)),
    }
}
