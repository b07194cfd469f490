//! ListActionExecutions: newest first, optionally of one execution, paginated.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_execution_id, constraint, execution_not_found, next_token, page_size, views, Ctx};
use crate::aws::{parse, AwsError};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Input {
    pipeline_name: Option<String>,
    filter: Option<Filter>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    pipeline_execution_id: Option<String>,
}

pub async fn handle(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: Input = parse(body)?;
    let name = input.pipeline_name.ok_or_else(|| constraint("pipelineName", "Member must not be null"))?;
    let limit = page_size(input.max_results, 100, 100)?;
    let pipeline = ctx.pipeline(&name).await?;
    let execution_id = input.filter.and_then(|f| f.pipeline_execution_id);
    let mut versions = std::collections::HashMap::new();
    if let Some(id) = &execution_id {
        check_execution_id(id)?;
        match ctx.state.store.execution(ctx.org(), id).await.map_err(AwsError::from_store)? {
            Some(e) if e.pipeline_id == pipeline.id => {
                versions.insert(e.id.clone(), e.pipeline_version);
            }
            _ => return Err(execution_not_found(id, &name)),
        }
    }
    let scope = format!("actions:{}:{}", pipeline.id, execution_id.as_deref().unwrap_or(""));
    let before = next_token::decode(&scope, input.next_token.as_deref())?
        .map(|c| c.parse::<i64>())
        .transpose()
        .map_err(|_| {
            AwsError::new(http::StatusCode::BAD_REQUEST, "InvalidNextTokenException", "The next token is not valid.")
        })?;
    let mut rows = ctx
        .state
        .store
        .list_action_executions(ctx.org(), pipeline.id, execution_id.as_deref(), before, limit + 1)
        .await
        .map_err(AwsError::from_store)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let mut details = Vec::with_capacity(rows.len());
    for a in &rows {
        let version = match versions.get(&a.execution_id) {
            Some(v) => *v,
            None => {
                let v = ctx
                    .state
                    .store
                    .execution(ctx.org(), &a.execution_id)
                    .await
                    .map_err(AwsError::from_store)?
                    .map_or(pipeline.version, |e| e.pipeline_version);
                versions.insert(a.execution_id.clone(), v);
                v
            }
        };
        details.push(views::action_execution(a, version));
    }
    let mut out = json!({ "actionExecutionDetails": details });
    if more {
        if let Some(last) = rows.last() {
            out["nextToken"] = json!(next_token::encode(&scope, &last.seq.to_string()));
        }
    }
    Ok(out)
}
