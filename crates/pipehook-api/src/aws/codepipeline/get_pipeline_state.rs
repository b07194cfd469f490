//! GetPipelineState: each stage of the current declaration with its actions' latest runs.

use pipehook_domain::pipeline::PipelineDeclaration;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{constraint, ts, views, Ctx};
use crate::aws::{parse, AwsError};

#[derive(Deserialize)]
struct Input {
    name: Option<String>,
}

pub async fn handle(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: Input = parse(body)?;
    let name = input.name.ok_or_else(|| constraint("name", "Member must not be null"))?;
    let p = ctx.pipeline(&name).await?;
    let decl: PipelineDeclaration = serde_json::from_value(p.declaration.clone()).map_err(|_| AwsError::internal())?;
    let latest = ctx.state.store.latest_action_executions(ctx.org(), p.id).await.map_err(AwsError::from_store)?;
    let mut stages = Vec::new();
    for stage in &decl.stages {
        let runs: Vec<_> = latest.iter().filter(|a| a.stage_name == stage.name).collect();
        let actions: Vec<Value> = stage
            .actions
            .iter()
            .map(|action| {
                let mut state = json!({"actionName": action.name});
                if let Some(run) = runs.iter().find(|r| r.action_name == action.name) {
                    state["latestExecution"] = views::action_latest(run);
                    if let Some(rev) = run.output.get("revisionId") {
                        state["currentRevision"] = json!({"revisionId": rev});
                    }
                }
                state
            })
            .collect();
        let mut stage_state = json!({
            "stageName": stage.name,
            "inboundTransitionState": {"enabled": true},
            "actionStates": actions,
        });
        // The stage's latest execution is the newest execution that ran any of its actions.
        if let Some(newest) = runs.iter().max_by_key(|r| r.seq) {
            let of_it: Vec<_> = runs.iter().filter(|r| r.execution_id == newest.execution_id).collect();
            let status = if of_it.iter().any(|r| r.status == "InProgress") {
                "InProgress"
            } else if of_it.iter().any(|r| r.status == "Failed") {
                "Failed"
            } else if of_it.iter().any(|r| r.status == "Abandoned") {
                "Stopped"
            } else {
                "Succeeded"
            };
            stage_state["latestExecution"] = json!({"pipelineExecutionId": newest.execution_id, "status": status});
        }
        stages.push(stage_state);
    }
    Ok(json!({
        "pipelineName": name,
        "pipelineVersion": p.version,
        "stageStates": stages,
        "created": ts(p.created_at),
        "updated": ts(p.updated_at),
    }))
}
