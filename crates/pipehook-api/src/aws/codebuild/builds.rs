//! StartBuild, StopBuild, BatchGetBuilds, ListBuilds, ListBuildsForProject.
//!
//! StartBuild stores the build, its `codebuild.build` job and its `build_started` run event in one transaction
//! (`pipehook_runner::codebuild::start_build`); the worker runs it. A repeated `idempotencyToken` within five
//! minutes returns the first build, or `InvalidInputException` when the parameters differ. StopBuild records a
//! stop request, which the running build polls; stopping a build that has ended is `InvalidInputException`.

use pipehook_domain::time::Timestamp;
use pipehook_runner::codebuild::StartBuildRequest;
use pipehook_store::{BuildRecord, StopRequest};
use serde::Deserialize;
use serde_json::{json, Value};

use super::projects::{check_variables, Variable};
use super::{constraint, invalid_input, next_token, not_found, ts, Ctx};
use crate::auth::Credential;
use crate::aws::{parse, AwsError};

/// Phases as CodeBuild shows them: epoch-second times.
fn phases_view(phases: &Value) -> Value {
    let list = phases.as_array().cloned().unwrap_or_default();
    Value::Array(
        list.into_iter()
            .map(|mut p| {
                for key in ["startTime", "endTime"] {
                    if let Some(ms) = p.get(key).and_then(Value::as_i64) {
                        p[key] = ts(Timestamp(ms));
                    } else if let Some(o) = p.as_object_mut() {
                        o.remove(key);
                    }
                }
                if let Some(o) = p.as_object_mut() {
                    o.retain(|_, v| !v.is_null());
                }
                p
            })
            .collect(),
    )
}

/// The environment the build ran in: the project's when it started (`trigger.environment`), with the
/// StartBuild overrides appended to its variables.
fn environment(b: &BuildRecord) -> Value {
    let mut env = b.trigger.get("environment").cloned().filter(Value::is_object).unwrap_or_else(
        || json!({"type": "LINUX_CONTAINER", "image": "pipehook/shell", "computeType": "BUILD_GENERAL1_SMALL"}),
    );
    let mut vars = env["environmentVariables"].as_array().cloned().unwrap_or_default();
    vars.extend(b.env_overrides.as_array().cloned().unwrap_or_default());
    env["environmentVariables"] = Value::Array(vars);
    env
}

/// The build as CodeBuild shows it.
pub(crate) fn view(ctx: &Ctx<'_>, b: &BuildRecord) -> Value {
    let done = b.status != "IN_PROGRESS";
    let mut out = json!({
        "id": b.id,
        "arn": ctx.arn(&format!("build/{}", b.id)),
        "buildNumber": b.build_number,
        "startTime": ts(b.start_time),
        "currentPhase": b.current_phase,
        "buildStatus": b.status,
        "projectName": b.project_name,
        "phases": phases_view(&b.phases),
        "initiator": b.initiator,
        "buildComplete": done,
        "environment": environment(b),
        "logs": {
            "deepLink": format!(
                "{}/api/orgs/{}/builds/{}/logs",
                ctx.state.config.public_url,
                ctx.principal.org.name,
                b.id
            ),
        },
        "timeoutInMinutes": b.trigger.get("timeoutInMinutes").cloned().unwrap_or(Value::Null),
    });
    if let Some(t) = b.end_time {
        out["endTime"] = ts(t);
    }
    if let Some(v) = &b.source_version {
        out["sourceVersion"] = json!(v);
    }
    if let Some(v) = &b.resolved_source_version {
        out["resolvedSourceVersion"] = json!(v);
    }
    // A build of a batch points at the batch (its coordinator build, see pipehook_runner::batch).
    if let Some(coordinator) = b.trigger["batch"]["coordinator"].as_str() {
        out["buildBatchArn"] = json!(ctx.arn(&format!("build-batch/{coordinator}")));
    }
    if let Some(o) = out.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartInput {
    project_name: Option<String>,
    source_version: Option<String>,
    environment_variables_override: Option<Vec<Variable>>,
    buildspec_override: Option<String>,
    idempotency_token: Option<String>,
    timeout_in_minutes_override: Option<i64>,
}

pub async fn start(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: StartInput = parse(body)?;
    let raw: Value = parse(body)?;
    let name = input.project_name.as_deref().ok_or_else(|| constraint("projectName", "Member must not be null"))?;
    if name.is_empty() {
        return Err(constraint("projectName", "Member must have length greater than or equal to 1"));
    }
    if let Some(vars) = &input.environment_variables_override {
        check_variables("environmentVariablesOverride", vars)?;
    }
    if input.timeout_in_minutes_override.is_some_and(|m| !(5..=2160).contains(&m)) {
        return Err(constraint("timeoutInMinutesOverride", "Member must have value between 5 and 2160"));
    }
    if let Some(spec) = input.buildspec_override.as_deref().filter(|s| !s.trim().is_empty()) {
        pipehook_runner::buildspec::parse(spec)
            .map_err(|e| invalid_input(format!("Invalid buildspecOverride: {e}")))?;
    }
    let project = ctx.project(name).await?;
    let timeout =
        input.timeout_in_minutes_override.or_else(|| project.document["timeoutInMinutes"].as_i64()).unwrap_or(60);
    let initiator = match &ctx.principal.credential {
        Credential::AccessKey(k) => k.as_str().to_owned(),
        Credential::Token(t) => format!("pipehook-token/{}", t.0),
    };
    // What the caller asked for, apart from the project's defaults: what a reused idempotency token compares.
    let asked_version = input.source_version.clone().filter(|s| !s.is_empty());
    let asked_timeout = input.timeout_in_minutes_override;
    let req = StartBuildRequest {
        org: ctx.org(),
        project: project.name.clone(),
        source_version: input
            .source_version
            .filter(|s| !s.is_empty())
            .or_else(|| project.document["sourceVersion"].as_str().filter(|s| !s.is_empty()).map(str::to_owned)),
        initiator,
        env_overrides: raw.get("environmentVariablesOverride").cloned().unwrap_or_else(|| json!([])),
        buildspec_override: input.buildspec_override,
        idempotency_token: input.idempotency_token.filter(|t| !t.is_empty()),
        trigger: {
            let mut t = json!({"timeoutInMinutes": timeout, "environment": project.document["environment"]});
            if let Some(report) = raw.get("reportBuildStatusOverride").filter(|v| !v.is_null()) {
                let report = report.as_bool().ok_or_else(|| {
                    AwsError::serialization("Could not parse the request: reportBuildStatusOverride must be a boolean")
                })?;
                t["reportBuildStatus"] = json!(report);
            }
            t
        },
    };
    // A repeated idempotency token returns its build whatever the queue holds; a new build must fit.
    let exempt = match &req.idempotency_token {
        // Without a cap there is nothing to check (and no token to look up).
        _ if !ctx.state.admission.is_capped() => true,
        Some(t) => {
            let since =
                pipehook_domain::time::Timestamp::now().saturating_sub(pipehook_runner::codebuild::IDEMPOTENCY_WINDOW);
            ctx.state
                .store
                .build_by_token(ctx.org(), &req.project, t, since)
                .await
                .map_err(AwsError::from_store)?
                .is_some()
        }
        None => false,
    };
    if !exempt {
        if let Err(full) = ctx.state.admission.admit(&*ctx.state.store, ctx.org()).await {
            return Err(AwsError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "AccountLimitExceededException",
                full.message(),
            ));
        }
    }
    let build = pipehook_runner::codebuild::start_build(&*ctx.state.store, &req).await.map_err(|e| match e {
        pipehook_store::StoreError::NotFound(_) => not_found(format!("Project cannot be found: {name}")),
        e => AwsError::from_store(e),
    })?;
    if req.idempotency_token.is_some() && !same_parameters(&build, &req, asked_version.as_deref(), asked_timeout) {
        return Err(invalid_input(format!(
            "Parameter mismatch: idempotency token {} was used within the last 5 minutes by build {} with different \
             parameters",
            req.idempotency_token.as_deref().unwrap_or_default(),
            build.id
        )));
    }
    Ok(json!({"build": view(ctx, &build)}))
}

/// Whether a build (maybe the one an idempotency token names) was started with the parameters this request
/// gives: CodeBuild returns the first build for a repeated token only when nothing changed, and refuses a
/// changed request. What the request leaves to the project (its `sourceVersion`, its timeout) is not compared,
/// so a retry after the project changed still gets its build.
fn same_parameters(
    b: &BuildRecord,
    req: &StartBuildRequest,
    asked_version: Option<&str>,
    asked_timeout: Option<i64>,
) -> bool {
    let overrides = |v: &Value| if v.is_null() { json!([]) } else { v.clone() };
    b.project_name == req.project
        && asked_version.is_none_or(|v| b.source_version.as_deref() == Some(v))
        && b.buildspec_override == req.buildspec_override
        && overrides(&b.env_overrides) == overrides(&req.env_overrides)
        && asked_timeout.is_none_or(|t| b.trigger["timeoutInMinutes"] == json!(t))
}

#[derive(Deserialize)]
struct StopInput {
    id: Option<String>,
}

pub async fn stop(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: StopInput = parse(body)?;
    let id = input.id.as_deref().ok_or_else(|| constraint("id", "Member must not be null"))?;
    if id.is_empty() {
        return Err(constraint("id", "Member must have length greater than or equal to 1"));
    }
    let mut tx = ctx.state.store.begin().await.map_err(AwsError::from_store)?;
    let outcome = tx.request_build_stop(ctx.org(), id).await.map_err(AwsError::from_store)?;
    tx.commit().await.map_err(AwsError::from_store)?;
    if outcome == StopRequest::NotFound {
        return Err(not_found(format!("Build {id} does not exist")));
    }
    let build = ctx
        .state
        .store
        .build(ctx.org(), id)
        .await
        .map_err(AwsError::from_store)?
        .ok_or_else(|| not_found(format!("Build {id} does not exist")))?;
    if outcome == StopRequest::NotStoppable {
        // CodeBuild refuses to stop a build that has ended; a second stop of a running build is accepted.
        return Err(invalid_input(format!(
            "Failed to stop build {id}: the build has already completed with status {}",
            build.status
        )));
    }
    Ok(json!({"build": view(ctx, &build)}))
}

#[derive(Deserialize)]
struct BatchGetInput {
    ids: Option<Vec<String>>,
}

pub async fn batch_get(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: BatchGetInput = parse(body)?;
    let ids = input.ids.ok_or_else(|| constraint("ids", "Member must not be null"))?;
    if ids.is_empty() || ids.len() > 100 {
        return Err(constraint("ids", "Member must have length between 1 and 100"));
    }
    let prefix = ctx.arn("build/");
    let (mut found, mut missing) = (Vec::new(), Vec::new());
    for given in ids {
        if given.is_empty() {
            return Err(constraint("ids", "Member must have length greater than or equal to 1"));
        }
        let id = given.strip_prefix(prefix.as_str()).unwrap_or(&given);
        match ctx.state.store.build(ctx.org(), id).await.map_err(AwsError::from_store)? {
            Some(b) => found.push(view(ctx, &b)),
            None => missing.push(given.clone()),
        }
    }
    Ok(json!({"builds": found, "buildsNotFound": missing}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListInput {
    project_name: Option<String>,
    sort_order: Option<String>,
    next_token: Option<String>,
}

const PAGE: u32 = 100;

async fn list_ids(ctx: &Ctx<'_>, project: Option<&str>, input: &ListInput) -> Result<Value, AwsError> {
    let order = input.sort_order.clone().unwrap_or_else(|| "DESCENDING".into());
    super::check_enum("sortOrder", &order, &["ASCENDING", "DESCENDING"])?;
    let ascending = order == "ASCENDING";
    let scope = format!("builds:{}:{order}", project.unwrap_or("*"));
    let after = match next_token::decode(&scope, input.next_token.as_deref())? {
        Some(c) => Some(c.parse::<i64>().map_err(|_| invalid_input("The next token is not valid."))?),
        None => None,
    };
    let mut rows = ctx
        .state
        .store
        .list_builds(ctx.org(), project, ascending, after, PAGE + 1)
        .await
        .map_err(AwsError::from_store)?;
    let more = rows.len() > PAGE as usize;
    rows.truncate(PAGE as usize);
    let mut out = json!({"ids": rows.iter().map(|b| b.id.clone()).collect::<Vec<_>>()});
    if more {
        if let Some(last) = rows.last() {
            out["nextToken"] = json!(next_token::encode(&scope, &last.seq.to_string()));
        }
    }
    Ok(out)
}

pub async fn list(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: ListInput = parse(body)?;
    list_ids(ctx, None, &input).await
}

pub async fn list_for_project(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: ListInput = parse(body)?;
    let name = input.project_name.clone().ok_or_else(|| constraint("projectName", "Member must not be null"))?;
    if name.is_empty() {
        return Err(constraint("projectName", "Member must have length greater than or equal to 1"));
    }
    let project = ctx.project(&name).await?;
    list_ids(ctx, Some(&project.name), &input).await
}
