//! ListPipelineExecutions: newest first, paginated.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{constraint, next_token, page_size, views, Ctx};
use crate::aws::{parse, AwsError};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Input {
    pipeline_name: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
    filter: Option<Value>,
}

pub async fn handle(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: Input = parse(body)?;
    let name = input.pipeline_name.ok_or_else(|| constraint("pipelineName", "Member must not be null"))?;
    let limit = page_size(input.max_results, 100, 100)?;
    let pipeline = ctx.pipeline(&name).await?;
    let scope = format!("executions:{}", pipeline.id);
    let before = next_token::decode(&scope, input.next_token.as_deref())?
        .map(|c| c.parse::<i64>())
        .transpose()
        .map_err(|_| {
            AwsError::new(http::StatusCode::BAD_REQUEST, "InvalidNextTokenException", "The next token is not valid.")
        })?;
    // The only filter AWS defines is by source branch (succeededInStage.stageName); it narrows on what the
    // source actions recorded.
    let stage_filter = input
        .filter
        .as_ref()
        .and_then(|f| f.pointer("/succeededInStage/stageName"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut rows = ctx
        .state
        .store
        .list_executions(ctx.org(), pipeline.id, before, limit + 1)
        .await
        .map_err(AwsError::from_store)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let mut summaries = Vec::new();
    for e in &rows {
        if let Some(stage) = &stage_filter {
            let actions = ctx.state.store.action_executions(ctx.org(), &e.id).await.map_err(AwsError::from_store)?;
            let in_stage: Vec<_> = actions.iter().filter(|a| &a.stage_name == stage).collect();
            if in_stage.is_empty() || !in_stage.iter().all(|a| a.status == "Succeeded") {
                continue;
            }
        }
        summaries.push(views::execution_summary(e));
    }
    let mut out = json!({ "pipelineExecutionSummaries": summaries });
    if more {
        if let Some(last) = rows.last() {
            out["nextToken"] = json!(next_token::encode(&scope, &last.seq.to_string()));
        }
    }
    Ok(out)
}
