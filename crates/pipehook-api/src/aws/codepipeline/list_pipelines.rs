//! ListPipelines: pipeline summaries by name, paginated.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{next_token, page_size, ts, Ctx};
use crate::aws::{parse, AwsError};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Input {
    next_token: Option<String>,
    max_results: Option<i64>,
}

pub async fn handle(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: Input = parse(body)?;
    let limit = page_size(input.max_results, 1000, 100)?;
    let after = next_token::decode("pipelines", input.next_token.as_deref())?;
    let mut rows =
        ctx.state.store.list_pipelines(ctx.org(), after.as_deref(), limit + 1).await.map_err(AwsError::from_store)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let pipelines: Vec<Value> = rows
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "version": p.version,
                "pipelineType": p.declaration.get("pipelineType").cloned().unwrap_or(json!("V1")),
                "executionMode": p.declaration.get("executionMode").cloned().unwrap_or(json!("QUEUED")),
                "created": ts(p.created_at),
                "updated": ts(p.updated_at),
            })
        })
        .collect();
    let mut out = json!({ "pipelines": pipelines });
    if more {
        if let Some(last) = rows.last() {
            out["nextToken"] = json!(next_token::encode("pipelines", &last.name));
        }
    }
    Ok(out)
}
