//! StartPipelineExecution: records a new execution and queues it for the runner, in one transaction.
//! A repeated `clientRequestToken` returns the execution it started the first time.

use pipehook_domain::pipeline::{
    is_valid_client_request_token, is_valid_variable_value, resolve_variables, UndeclaredVariable, MAX_START_VARIABLES,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{constraint, Ctx};
use crate::aws::{parse, AwsError};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Input {
    name: Option<String>,
    variables: Option<Vec<Variable>>,
    client_request_token: Option<String>,
    source_revisions: Option<Vec<SourceRevisionOverride>>,
}

#[derive(Deserialize, serde::Serialize)]
struct Variable {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SourceRevisionOverride {
    action_name: String,
    revision_type: String,
    revision_value: String,
}

pub async fn handle(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: Input = parse(body)?;
    let name = input.name.ok_or_else(|| constraint("name", "Member must not be null"))?;
    if let Some(t) = &input.client_request_token {
        if !is_valid_client_request_token(t) {
            return Err(constraint(
                "clientRequestToken",
                "Member must satisfy regular expression pattern: ^[a-zA-Z0-9-]+$ and have length between 1 and 128",
            ));
        }
    }
    let variables = input.variables.unwrap_or_default();
    if variables.len() > MAX_START_VARIABLES {
        return Err(constraint(
            "variables",
            &format!("Member must have length less than or equal to {MAX_START_VARIABLES}"),
        ));
    }
    for v in &variables {
        if !is_valid_variable_value(&v.name, &v.value) {
            return Err(constraint(
                "variables.member",
                "name must match [A-Za-z0-9@\\-_]+ (1..128) and value must have length between 1 and 1000",
            ));
        }
    }
    let overrides = input.source_revisions.unwrap_or_default();
    if overrides.len() > 50 {
        return Err(constraint("sourceRevisions", "Member must have length less than or equal to 50"));
    }
    let pipeline = ctx.pipeline(&name).await?;
    let decl: pipehook_domain::pipeline::PipelineDeclaration =
        serde_json::from_value(pipeline.declaration.clone()).map_err(|_| AwsError::internal())?;
    let given: Vec<(String, String)> = variables.into_iter().map(|v| (v.name, v.value)).collect();
    let resolved: Vec<Value> = resolve_variables(&decl, &given)
        .map_err(|UndeclaredVariable(v)| {
            AwsError::validation(format!("Variable '{v}' is not declared in pipeline '{name}'"))
        })?
        .into_iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    let mut revisions = Vec::new();
    for o in &overrides {
        let source = decl.stages.first().and_then(|s| s.actions.iter().find(|a| a.name == o.action_name));
        if source.is_none() {
            return Err(AwsError::validation(format!(
                "Source revision override names action '{}', which is not a source action of the pipeline",
                o.action_name
            )));
        }
        if !matches!(o.revision_type.as_str(), "COMMIT_ID" | "IMAGE_DIGEST" | "S3_OBJECT_VERSION_ID" | "S3_OBJECT_KEY")
        {
            return Err(constraint(
                "sourceRevisions.member.revisionType",
                "Member must satisfy enum value set: [COMMIT_ID, IMAGE_DIGEST, S3_OBJECT_VERSION_ID, S3_OBJECT_KEY]",
            ));
        }
        if o.revision_value.is_empty() || o.revision_value.len() > 1500 {
            return Err(constraint(
                "sourceRevisions.member.revisionValue",
                "Member must have length between 1 and 1500",
            ));
        }
        revisions.push(
            json!({"actionName": o.action_name, "revisionType": o.revision_type, "revisionId": o.revision_value}),
        );
    }

    // A repeated clientRequestToken returns its execution whatever the queue holds; a new execution must fit.
    let exempt = match &input.client_request_token {
        // Without a cap there is nothing to check (and no token to look up).
        _ if !ctx.state.admission.is_capped() => true,
        Some(t) => {
            ctx.state.store.execution_by_token(ctx.org(), pipeline.id, t).await.map_err(AwsError::from_store)?.is_some()
        }
        None => false,
    };
    if !exempt {
        if let Err(full) = ctx.state.admission.admit(&*ctx.state.store, ctx.org()).await {
            return Err(AwsError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "ConcurrentPipelineExecutionsLimitExceededException",
                full.message(),
            ));
        }
    }
    let request = pipehook_runner::pipeline::StartRequest {
        org: ctx.org(),
        pipeline,
        trigger: ctx.principal.manual_trigger(),
        source_revisions: Value::Array(revisions),
        variables: Value::Array(resolved),
        client_request_token: input.client_request_token,
        revision_hint: None,
    };
    let execution =
        pipehook_runner::pipeline::start_execution(&*ctx.state.store, request).await.map_err(AwsError::from_store)?;
    Ok(json!({"pipelineExecutionId": execution.id}))
}
