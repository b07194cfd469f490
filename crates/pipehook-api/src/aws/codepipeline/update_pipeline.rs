//! UpdatePipeline: a new version of an existing pipeline (running executions keep the version they started with).

use pipehook_domain::pipeline::{supported_actions, validate, PipelineDeclaration};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{pipeline_error, Ctx};
use crate::aws::{parse, AwsError};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Input {
    pipeline: Option<PipelineDeclaration>,
}

pub async fn handle(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    super::check_document_size(body)?;
    let input: Input = parse(body)?;
    let decl = input.pipeline.ok_or_else(|| super::constraint("pipeline", "Member must not be null"))?;
    validate(&decl).map_err(pipeline_error)?;
    supported_actions(&decl).map_err(pipeline_error)?;
    let current = ctx.pipeline(&decl.name).await?;
    if let Some(v) = decl.version {
        if i64::from(v) != current.version {
            return Err(AwsError::new(
                http::StatusCode::BAD_REQUEST,
                "InvalidStructureException",
                format!("The pipeline version {v} is not the current version {}", current.version),
            ));
        }
    }
    let mut doc = serde_json::to_value(&decl).map_err(|_| AwsError::internal())?;
    super::secrets::seal(&ctx.state.master_key, ctx.org().0, &decl.name, &mut doc, Some(&current.declaration));
    let mut tx = ctx.state.store.begin().await.map_err(AwsError::from_store)?;
    let updated = match tx.update_pipeline(ctx.org(), &decl.name, &doc).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(ctx.pipeline(&decl.name).await.err().unwrap_or_else(AwsError::internal)),
        Err(pipehook_store::StoreError::Conflict(m)) => {
            return Err(AwsError::new(http::StatusCode::BAD_REQUEST, "ConcurrentModificationException", m))
        }
        Err(e) => return Err(AwsError::from_store(e)),
    };
    tx.commit().await.map_err(AwsError::from_store)?;
    Ok(json!({"pipeline": super::secrets::mask(&updated.declaration)}))
}
