//! StartPipelineExecution: records a new execution and queues it for the runner, in one transaction.
//! A repeated `clientRequestToken` returns the execution it started the first time.

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
        let ok = (1..=128).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(constraint(
                "clientRequestToken",
                "Member must satisfy regular expression pattern: ^[a-zA-Z0-9-]+$ and have length between 1 and 128",
            ));
        }
    }
    let variables = input.variables.unwrap_or_default();
    if variables.len() > 50 {
        return Err(constraint("variables", "Member must have length less than or equal to 50"));
    }
    for v in &variables {
        let name_ok = (1..=128).contains(&v.name.len())
            && v.name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'@' | b'-' | b'_'));
        if !name_ok || v.value.is_empty() || v.value.len() > 1000 {
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
    // Variables must be declared by the pipeline (V2 pipeline variables); defaults fill the rest.
    let declared = decl.variables.clone().unwrap_or_default();
    for v in &variables {
        if !declared.iter().any(|d| d.name == v.name) {
            return Err(AwsError::validation(format!("Variable '{}' is not declared in pipeline '{name}'", v.name)));
        }
    }
    let mut resolved: Vec<Value> = Vec::new();
    for d in &declared {
        let value = variables.iter().find(|v| v.name == d.name).map(|v| v.value.clone()).or(d.default_value.clone());
        if let Some(value) = value {
            resolved.push(json!({"name": d.name, "value": value}));
        }
    }
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

    let request = pipehook_runner::pipeline::StartRequest {
        org: ctx.org(),
        pipeline,
        trigger: json!({"triggerType": "StartPipelineExecution", "triggerDetail": ctx_principal_detail(ctx)}),
        source_revisions: Value::Array(revisions),
        variables: Value::Array(resolved),
        client_request_token: input.client_request_token,
        revision_hint: None,
    };
    let execution =
        pipehook_runner::pipeline::start_execution(&*ctx.state.store, request).await.map_err(AwsError::from_store)?;
    Ok(json!({"pipelineExecutionId": execution.id}))
}

/// `triggerDetail` for a manual start: who started it (the credential), like AWS's caller ARN.
fn ctx_principal_detail(ctx: &Ctx<'_>) -> String {
    match &ctx.principal.credential {
        crate::auth::Credential::AccessKey(k) => {
            format!("arn:aws:iam::{}:user/{}", ctx.principal.org.account_id, k.as_str())
        }
        crate::auth::Credential::Token(t) => format!("pipehook:token/{}", t.0),
    }
}
