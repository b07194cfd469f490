//! StopPipelineExecution: asks the runner to stop. `abandon: true` kills running actions at once;
//! otherwise they finish and nothing new starts.

use pipehook_domain::pipeline::MAX_STOP_REASON_LEN;
use pipehook_store::StopRequest;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_execution_id, constraint, execution_not_found, Ctx};
use crate::aws::{parse, AwsError};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Input {
    pipeline_name: Option<String>,
    pipeline_execution_id: Option<String>,
    #[serde(default)]
    abandon: bool,
    reason: Option<String>,
}

pub async fn handle(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: Input = parse(body)?;
    let name = input.pipeline_name.ok_or_else(|| constraint("pipelineName", "Member must not be null"))?;
    let id = input.pipeline_execution_id.ok_or_else(|| constraint("pipelineExecutionId", "Member must not be null"))?;
    check_execution_id(&id)?;
    if input.reason.as_ref().is_some_and(|r| r.len() > MAX_STOP_REASON_LEN) {
        return Err(constraint(
            "reason",
            &format!("Member must have length less than or equal to {MAX_STOP_REASON_LEN}"),
        ));
    }
    let pipeline = ctx.pipeline(&name).await?;
    match ctx.state.store.execution(ctx.org(), &id).await.map_err(AwsError::from_store)? {
        Some(e) if e.pipeline_id == pipeline.id => {}
        _ => return Err(execution_not_found(&id, &name)),
    }
    let mut tx = ctx.state.store.begin().await.map_err(AwsError::from_store)?;
    let outcome =
        tx.request_stop(ctx.org(), &id, input.abandon, input.reason.as_deref()).await.map_err(AwsError::from_store)?;
    tx.commit().await.map_err(AwsError::from_store)?;
    let err = |kind: &'static str, message: String| Err(AwsError::new(http::StatusCode::BAD_REQUEST, kind, message));
    match outcome {
        StopRequest::Accepted => Ok(json!({"pipelineExecutionId": id})),
        StopRequest::Duplicate => err(
            "DuplicatedStopRequestException",
            format!("A stop request for pipeline execution '{id}' is already in progress"),
        ),
        StopRequest::NotStoppable => err(
            "PipelineExecutionNotStoppableException",
            format!("Pipeline execution '{id}' is not in progress and cannot be stopped"),
        ),
        StopRequest::NotFound => Err(execution_not_found(&id, &name)),
    }
}
