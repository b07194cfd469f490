//! Records → AWS response shapes, shared by the operations that show the same objects.

use pipehook_store::{ActionExecutionRecord, ExecutionRecord};
use serde_json::{json, Map, Value};

use super::ts;

/// The trigger as AWS shows it: `triggerType` and `triggerDetail` only (pipehook keeps more inside).
fn trigger(e: &ExecutionRecord) -> Value {
    json!({"triggerType": e.trigger.get("triggerType"), "triggerDetail": e.trigger.get("triggerDetail")})
}

fn put(map: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    if let Some(v) = v.filter(|v| !v.is_null()) {
        map.insert(key.into(), v);
    }
}

/// `sourceRevisions` of a summary, from what the source actions recorded.
fn source_revisions(e: &ExecutionRecord) -> Value {
    let list = e.source_revisions.as_array().cloned().unwrap_or_default();
    Value::Array(
        list.into_iter()
            .map(|r| {
                let mut m = Map::new();
                put(&mut m, "actionName", r.get("actionName").cloned());
                put(&mut m, "revisionId", r.get("revisionId").cloned());
                put(&mut m, "revisionSummary", r.get("revisionSummary").cloned());
                put(&mut m, "revisionUrl", r.get("revisionUrl").cloned());
                Value::Object(m)
            })
            .collect(),
    )
}

/// `PipelineExecution` (GetPipelineExecution).
pub fn execution(e: &ExecutionRecord) -> Value {
    let mut m = Map::new();
    m.insert("pipelineName".into(), json!(e.pipeline_name));
    m.insert("pipelineVersion".into(), json!(e.pipeline_version));
    m.insert("pipelineExecutionId".into(), json!(e.id));
    m.insert("status".into(), json!(e.status));
    put(&mut m, "statusSummary", e.status_summary.clone().map(Value::from));
    let artifact_revisions: Vec<Value> = e
        .source_revisions
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let mut a = Map::new();
            put(&mut a, "name", r.get("artifactName").or(r.get("actionName")).cloned());
            put(&mut a, "revisionId", r.get("revisionId").cloned());
            put(&mut a, "revisionSummary", r.get("revisionSummary").cloned());
            put(&mut a, "revisionUrl", r.get("revisionUrl").cloned());
            put(&mut a, "revisionChangeIdentifier", r.get("revisionChangeIdentifier").cloned());
            Value::Object(a)
        })
        .collect();
    m.insert("artifactRevisions".into(), Value::Array(artifact_revisions));
    let variables: Vec<Value> = e
        .variables
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|v| json!({"name": v.get("name"), "resolvedValue": v.get("value")}))
        .collect();
    m.insert("variables".into(), Value::Array(variables));
    m.insert("trigger".into(), trigger(e));
    m.insert("executionMode".into(), json!(e.execution_mode));
    m.insert("executionType".into(), json!("STANDARD"));
    Value::Object(m)
}

/// `PipelineExecutionSummary` (ListPipelineExecutions).
pub fn execution_summary(e: &ExecutionRecord) -> Value {
    let mut m = Map::new();
    m.insert("pipelineExecutionId".into(), json!(e.id));
    m.insert("status".into(), json!(e.status));
    put(&mut m, "statusSummary", e.status_summary.clone().map(Value::from));
    m.insert("startTime".into(), ts(e.start_time));
    m.insert("lastUpdateTime".into(), ts(e.last_update_time));
    m.insert("sourceRevisions".into(), source_revisions(e));
    m.insert("trigger".into(), trigger(e));
    if e.stop_requested {
        let mut stop = Map::new();
        put(&mut stop, "reason", e.stop_reason.clone().map(Value::from));
        m.insert("stopTrigger".into(), Value::Object(stop));
    }
    m.insert("executionMode".into(), json!(e.execution_mode));
    m.insert("executionType".into(), json!("STANDARD"));
    Value::Object(m)
}

fn error_details(a: &ActionExecutionRecord) -> Option<Value> {
    a.error_code.as_ref().map(|code| json!({"code": code, "message": a.error_message.clone().unwrap_or_default()}))
}

/// `ActionExecutionDetail` (ListActionExecutions).
pub fn action_execution(a: &ActionExecutionRecord, pipeline_version: i64) -> Value {
    let mut result = Map::new();
    put(&mut result, "externalExecutionId", a.output.get("externalExecutionId").cloned());
    put(&mut result, "externalExecutionSummary", a.output.get("summary").cloned());
    put(&mut result, "externalExecutionUrl", a.output.get("externalExecutionUrl").cloned());
    put(&mut result, "errorDetails", error_details(a));
    let mut output = Map::new();
    output.insert("outputArtifacts".into(), json!([]));
    output.insert("executionResult".into(), Value::Object(result));
    put(&mut output, "outputVariables", a.output.get("outputVariables").cloned());
    let mut input = Map::new();
    for key in ["actionTypeId", "configuration", "resolvedConfiguration", "roleArn", "region", "namespace"] {
        // Records written before secrets were masked at write time hold them: masked here too.
        let value = match key {
            "configuration" | "resolvedConfiguration" => {
                a.input.get(key).map(pipehook_domain::pipeline::mask_configuration)
            }
            _ => a.input.get(key).cloned(),
        };
        put(&mut input, key, value);
    }
    input.insert("inputArtifacts".into(), json!([]));
    json!({
        "pipelineExecutionId": a.execution_id,
        "actionExecutionId": a.id,
        "pipelineVersion": pipeline_version,
        "stageName": a.stage_name,
        "actionName": a.action_name,
        "startTime": ts(a.start_time),
        "lastUpdateTime": ts(a.last_update_time),
        "status": a.status,
        "input": Value::Object(input),
        "output": Value::Object(output),
    })
}

/// `ActionExecution` inside `ActionState` (GetPipelineState).
pub fn action_latest(a: &ActionExecutionRecord) -> Value {
    let mut m = Map::new();
    m.insert("actionExecutionId".into(), json!(a.id));
    m.insert("status".into(), json!(a.status));
    put(&mut m, "summary", a.output.get("summary").cloned());
    m.insert("lastStatusChange".into(), ts(a.last_update_time));
    put(&mut m, "externalExecutionId", a.output.get("externalExecutionId").cloned());
    put(&mut m, "errorDetails", error_details(a));
    Value::Object(m)
}
