//! GetPipeline: the current declaration, or a stored `version`, with its metadata.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{ts, Ctx};
use crate::aws::{parse, AwsError};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Input {
    name: Option<String>,
    version: Option<i64>,
}

pub async fn handle(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: Input = parse(body)?;
    let name = input.name.ok_or_else(|| super::constraint("name", "Member must not be null"))?;
    let p = ctx.pipeline(&name).await?;
    let declaration = match input.version {
        None => p.declaration.clone(),
        Some(v) if v < 1 => {
            return Err(super::constraint("version", "Member must have value greater than or equal to 1"))
        }
        Some(v) => {
            ctx.state.store.pipeline_version(ctx.org(), &name, v).await.map_err(AwsError::from_store)?.ok_or_else(
                || {
                    AwsError::new(
                        http::StatusCode::BAD_REQUEST,
                        "PipelineVersionNotFoundException",
                        format!("Pipeline '{name}' does not have version {v}"),
                    )
                },
            )?
        }
    };
    Ok(json!({
        "pipeline": super::secrets::mask(&declaration),
        "metadata": {"pipelineArn": ctx.arn(&name), "created": ts(p.created_at), "updated": ts(p.updated_at)},
    }))
}
