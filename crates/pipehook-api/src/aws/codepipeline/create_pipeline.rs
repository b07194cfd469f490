//! CreatePipeline: validate the whole declaration as AWS does, then store version 1 with its tags.

use pipehook_domain::pipeline::{supported_actions, validate, validate_tags, PipelineDeclaration, Tag, MAX_PIPELINES};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{pipeline_error, Ctx};
use crate::aws::{parse, AwsError};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Input {
    pipeline: Option<PipelineDeclaration>,
    #[serde(default)]
    tags: Vec<Tag>,
}

pub async fn handle(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    super::check_document_size(body)?;
    let input: Input = parse(body)?;
    let decl = input.pipeline.ok_or_else(|| super::constraint("pipeline", "Member must not be null"))?;
    validate(&decl).map_err(pipeline_error)?;
    validate_tags(&input.tags).map_err(pipeline_error)?;
    supported_actions(&decl).map_err(pipeline_error)?;
    let store = &ctx.state.store;
    if store.count_pipelines(ctx.org()).await.map_err(AwsError::from_store)? >= MAX_PIPELINES {
        return Err(AwsError::new(
            http::StatusCode::BAD_REQUEST,
            "LimitExceededException",
            format!("The number of pipelines is limited to {MAX_PIPELINES}"),
        ));
    }
    let mut doc = serde_json::to_value(&decl).map_err(|_| AwsError::internal())?;
    super::secrets::seal(&ctx.state.master_key, ctx.org().0, &decl.name, &mut doc, None);
    let arn = ctx.arn(&decl.name);
    let mut tx = store.begin().await.map_err(AwsError::from_store)?;
    let record = match tx.create_pipeline(ctx.org(), &decl.name, &doc).await {
        Ok(r) => r,
        Err(pipehook_store::StoreError::Conflict(_)) => {
            return Err(AwsError::new(
                http::StatusCode::BAD_REQUEST,
                "PipelineNameInUseException",
                format!(
                    "A pipeline with the name '{}' already exists in account '{}'",
                    decl.name, ctx.principal.org.account_id
                ),
            ))
        }
        Err(e) => return Err(AwsError::from_store(e)),
    };
    let tags: Vec<(String, String)> = input.tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect();
    tx.set_tags(ctx.org(), &arn, &tags).await.map_err(AwsError::from_store)?;
    tx.commit().await.map_err(AwsError::from_store)?;
    Ok(json!({"pipeline": super::secrets::mask(&record.declaration), "tags": input.tags}))
}
