//! Pipelines, their executions and the executions' logs over pipehook's own REST API, under
//! `/api/orgs/{org}/pipelines`.
//!
//! These routes are a second door to the same pipelines the AWS-compatible endpoint serves: the records come
//! from the same store, executions start through the runner's `start_execution`, and declarations pass the same
//! domain rules (`validate`, `supported_actions`), so a pipeline accepted by one API is accepted by the other.
//! Only the wire differs: camelCase JSON owned by this file, timestamps in epoch milliseconds, HTTP statuses
//! and the `{"code","message"}` error shape.

use crate::aws::codepipeline::secrets;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use pipehook_domain::pipeline::{
    is_valid_client_request_token, is_valid_variable_value, resolve_variables, supported_actions, validate,
    validate_pipeline_name, PipelineDeclaration, PipelineError, UndeclaredVariable, MAX_DOCUMENT_BYTES, MAX_PIPELINES,
    MAX_START_VARIABLES, MAX_STOP_REASON_LEN,
};
use pipehook_runner::pipeline::{start_execution, StartRequest};
use pipehook_store::{ActionExecutionRecord, ExecutionRecord, PipelineRecord, StopRequest, StoreError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::RestError;
use crate::auth::{ensure_org, Principal};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/orgs/{org}/pipelines", get(list_pipelines).post(create_pipeline))
        .route("/orgs/{org}/pipelines/{name}", get(get_pipeline).put(update_pipeline).delete(delete_pipeline))
        .route("/orgs/{org}/pipelines/{name}/executions", get(list_executions).post(start))
        .route("/orgs/{org}/pipelines/{name}/executions/{id}", get(get_execution))
        .route("/orgs/{org}/pipelines/{name}/executions/{id}/stop", post(stop))
        .route("/orgs/{org}/pipelines/{name}/executions/{id}/logs", get(logs))
}

/// The largest page a listing returns, and the size when `limit` is not given.
const MAX_PAGE: u32 = 100;

// ---------------------------------------------------------------------------------------------------------
// Wire types. They belong to this API alone: the AWS module has its own, so neither can break the other.
// ---------------------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct PageQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PipelineSummary {
    name: String,
    version: i64,
    execution_mode: &'static str,
    created: i64,
    updated: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PipelineList {
    pipelines: Vec<PipelineSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PipelineView {
    #[serde(flatten)]
    summary: PipelineSummary,
    /// The declaration as stored, with its `version`.
    pipeline: Value,
}

#[derive(Serialize)]
struct TriggerView {
    #[serde(rename = "type")]
    kind: Option<String>,
    detail: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExecutionSummary {
    id: String,
    pipeline_name: String,
    pipeline_version: i64,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_summary: Option<String>,
    execution_mode: String,
    trigger: TriggerView,
    start_time: i64,
    last_update_time: i64,
    stop_requested: bool,
    /// The commit it runs: its first source revision, else the one its trigger carried.
    #[serde(skip_serializing_if = "Option::is_none")]
    commit_id: Option<String>,
    /// While it waits for its turn (QUEUED and SUPERSEDED run one at a time): the execution it waits behind.
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting_for: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExecutionList {
    executions: Vec<ExecutionSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StopView {
    abandon: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ActionView {
    id: String,
    stage: String,
    action: String,
    status: String,
    start_time: i64,
    /// Absent while the action runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExecutionView {
    #[serde(flatten)]
    summary: ExecutionSummary,
    /// What the source actions resolved, as recorded.
    source_revisions: Value,
    /// `[{"name", "value"}]`, as resolved at start.
    variables: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<StopView>,
    actions: Vec<ActionView>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StartInput {
    client_request_token: Option<String>,
    #[serde(default)]
    variables: Vec<VariableInput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VariableInput {
    name: String,
    value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExecutionRef {
    pipeline_execution_id: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StopInput {
    #[serde(default)]
    abandon: bool,
    reason: Option<String>,
}

#[derive(Deserialize)]
struct LogsQuery {
    action: Option<String>,
}

#[derive(Serialize)]
struct ActionLog {
    stage: String,
    action: String,
    status: String,
    log: String,
}

#[derive(Serialize)]
struct LogsView {
    actions: Vec<ActionLog>,
}

// ---------------------------------------------------------------------------------------------------------
// Pipelines
// ---------------------------------------------------------------------------------------------------------

async fn list_pipelines(
    principal: Principal,
    State(state): State<AppState>,
    Path(org): Path<String>,
    page: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<PipelineList>, RestError> {
    ensure_org(&principal, &org)?;
    let Query(page) = page.map_err(|e| RestError::new(e.status(), e.body_text()))?;
    let limit = page_limit(page.limit)?;
    let mut rows = state
        .store
        .list_pipelines(principal.org.id, page.cursor.as_deref(), limit + 1)
        .await
        .map_err(RestError::from_store)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = more.then(|| rows.last().map(|p| p.name.clone())).flatten();
    let pipelines = rows.iter().map(pipeline_summary).collect::<Result<_, _>>()?;
    Ok(Json(PipelineList { pipelines, next_cursor }))
}

async fn create_pipeline(
    principal: Principal,
    State(state): State<AppState>,
    Path(org): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<PipelineView>), RestError> {
    ensure_org(&principal, &org)?;
    let decl = declaration(body)?;
    let store = &state.store;
    if store.count_pipelines(principal.org.id).await.map_err(RestError::from_store)? >= MAX_PIPELINES {
        return Err(RestError::new(
            StatusCode::BAD_REQUEST,
            format!("the organization already has the maximum of {MAX_PIPELINES} pipelines"),
        ));
    }
    let mut doc = serde_json::to_value(&decl).map_err(|_| RestError::internal())?;
    secrets::seal(&state.master_key, principal.org.id.0, &decl.name, &mut doc, None);
    let mut tx = store.begin().await.map_err(RestError::from_store)?;
    let record = match tx.create_pipeline(principal.org.id, &decl.name, &doc).await {
        Ok(r) => r,
        Err(StoreError::Conflict(_)) => {
            return Err(RestError::new(StatusCode::CONFLICT, format!("pipeline '{}' already exists", decl.name)))
        }
        Err(e) => return Err(RestError::from_store(e)),
    };
    tx.commit().await.map_err(RestError::from_store)?;
    Ok((StatusCode::CREATED, Json(pipeline_view(record)?)))
}

async fn get_pipeline(
    principal: Principal,
    State(state): State<AppState>,
    Path((org, name)): Path<(String, String)>,
) -> Result<Json<PipelineView>, RestError> {
    ensure_org(&principal, &org)?;
    let p = find_pipeline(&state, &principal, &name).await?;
    Ok(Json(pipeline_view(p)?))
}

/// Stores a new version. The body's `name` must be the path's; a `version` in the body, when given, must be
/// the current one, so two editors cannot silently overwrite each other.
async fn update_pipeline(
    principal: Principal,
    State(state): State<AppState>,
    Path((org, name)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PipelineView>, RestError> {
    ensure_org(&principal, &org)?;
    let decl = declaration(body)?;
    if decl.name != name {
        return Err(RestError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the declaration's name '{}' is not the pipeline's name '{name}'; pipelines cannot be renamed",
                decl.name
            ),
        ));
    }
    let current = find_pipeline(&state, &principal, &name).await?;
    if let Some(v) = decl.version {
        if i64::from(v) != current.version {
            return Err(stale_version(v, current.version));
        }
    }
    let mut doc = serde_json::to_value(&decl).map_err(|_| RestError::internal())?;
    secrets::seal(&state.master_key, principal.org.id.0, &name, &mut doc, Some(&current.declaration));
    let mut tx = state.store.begin().await.map_err(RestError::from_store)?;
    let updated = match tx.update_pipeline(principal.org.id, &name, &doc).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(pipeline_not_found(&name)),
        Err(StoreError::Conflict(m)) => return Err(RestError::new(StatusCode::CONFLICT, m)),
        Err(e) => return Err(RestError::from_store(e)),
    };
    tx.commit().await.map_err(RestError::from_store)?;
    Ok(Json(pipeline_view(updated)?))
}

/// Deletes the pipeline with its versions, executions, webhooks (their tags and registered repository hooks too)
/// and tags, as DeletePipeline does.
async fn delete_pipeline(
    principal: Principal,
    State(state): State<AppState>,
    Path((org, name)): Path<(String, String)>,
) -> Result<StatusCode, RestError> {
    ensure_org(&principal, &org)?;
    validate_pipeline_name(&name).map_err(invalid)?;
    let ctx = crate::aws::codepipeline::Ctx { state: &state, principal: &principal };
    let deleted = crate::aws::codepipeline::delete_pipeline::delete_pipeline(&ctx, &name).await.map_err(|e| {
        if e.status == StatusCode::SERVICE_UNAVAILABLE {
            RestError::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable: the database is unreachable; retry")
        } else {
            RestError::internal()
        }
    })?;
    if !deleted {
        return Err(pipeline_not_found(&name));
    }
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------------------
// Executions
// ---------------------------------------------------------------------------------------------------------

/// Newest first. The cursor is the position of the last execution of the previous page.
async fn list_executions(
    principal: Principal,
    State(state): State<AppState>,
    Path((org, name)): Path<(String, String)>,
    page: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<ExecutionList>, RestError> {
    ensure_org(&principal, &org)?;
    let Query(page) = page.map_err(|e| RestError::new(e.status(), e.body_text()))?;
    let limit = page_limit(page.limit)?;
    let before = page
        .cursor
        .map(|c| c.parse::<i64>().map_err(|_| RestError::new(StatusCode::BAD_REQUEST, "the cursor is not valid")))
        .transpose()?;
    let pipeline = find_pipeline(&state, &principal, &name).await?;
    let mut rows = state
        .store
        .list_executions(principal.org.id, pipeline.id, before, limit + 1)
        .await
        .map_err(RestError::from_store)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = more.then(|| rows.last().map(|e| e.seq.to_string())).flatten();
    let active = state.store.active_executions(principal.org.id, pipeline.id).await.map_err(RestError::from_store)?;
    let executions = rows.iter().map(|e| execution_summary(e, &active)).collect();
    Ok(Json(ExecutionList { executions, next_cursor }))
}

/// Starts an execution: it is recorded and queued for the runner in one transaction, so 202 means it will run.
/// A repeated `clientRequestToken` answers with the execution it started the first time.
async fn start(
    principal: Principal,
    State(state): State<AppState>,
    Path((org, name)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ExecutionRef>), RestError> {
    ensure_org(&principal, &org)?;
    let input: StartInput = parse(&read_body(body)?)?;
    if input.client_request_token.as_deref().is_some_and(|t| !is_valid_client_request_token(t)) {
        return Err(bad_request("clientRequestToken must be 1 to 128 letters, digits or '-'"));
    }
    if input.variables.len() > MAX_START_VARIABLES {
        return Err(bad_request(format!("at most {MAX_START_VARIABLES} variables may be given")));
    }
    if let Some(v) = input.variables.iter().find(|v| !is_valid_variable_value(&v.name, &v.value)) {
        return Err(bad_request(format!(
            "variable '{}': names are 1 to 128 of [A-Za-z0-9@-_] and values 1 to 1000 bytes",
            v.name
        )));
    }
    let pipeline = find_pipeline(&state, &principal, &name).await?;
    let decl = stored_declaration(&pipeline)?;
    let given: Vec<(String, String)> = input.variables.into_iter().map(|v| (v.name, v.value)).collect();
    let variables = resolve_variables(&decl, &given)
        .map_err(|UndeclaredVariable(v)| bad_request(format!("variable '{v}' is not declared in pipeline '{name}'")))?;
    // A repeated clientRequestToken returns its execution whatever the queue holds; a new execution must fit.
    let exempt = match &input.client_request_token {
        // Without a cap there is nothing to check (and no token to look up).
        _ if !state.admission.is_capped() => true,
        Some(t) => state
            .store
            .execution_by_token(principal.org.id, pipeline.id, t)
            .await
            .map_err(RestError::from_store)?
            .is_some(),
        None => false,
    };
    if !exempt {
        if let Err(full) = state.admission.admit(&*state.store, principal.org.id).await {
            return Err(RestError::new(StatusCode::TOO_MANY_REQUESTS, full.message()));
        }
    }
    let request = StartRequest {
        org: principal.org.id,
        pipeline,
        trigger: principal.manual_trigger(),
        source_revisions: Value::Array(Vec::new()),
        variables: variables
            .into_iter()
            .map(|(name, value)| serde_json::json!({"name": name, "value": value}))
            .collect(),
        client_request_token: input.client_request_token,
        revision_hint: None,
    };
    let execution = start_execution(&*state.store, request).await.map_err(RestError::from_store)?;
    Ok((StatusCode::ACCEPTED, Json(ExecutionRef { pipeline_execution_id: execution.id })))
}

async fn get_execution(
    principal: Principal,
    State(state): State<AppState>,
    Path((org, name, id)): Path<(String, String, String)>,
) -> Result<Json<ExecutionView>, RestError> {
    ensure_org(&principal, &org)?;
    let pipeline = find_pipeline(&state, &principal, &name).await?;
    let e = find_execution(&state, &principal, &pipeline, &id).await?;
    let actions = state.store.action_executions(principal.org.id, &e.id).await.map_err(RestError::from_store)?;
    let active = state.store.active_executions(principal.org.id, pipeline.id).await.map_err(RestError::from_store)?;
    Ok(Json(ExecutionView {
        summary: execution_summary(&e, &active),
        source_revisions: e.source_revisions.clone(),
        variables: e.variables.clone(),
        stop: e.stop_requested.then(|| StopView { abandon: e.stop_abandon, reason: e.stop_reason.clone() }),
        actions: actions.iter().map(action_view).collect(),
    }))
}

/// Asks the runner to stop. `abandon: true` kills running actions at once; otherwise they finish and nothing
/// new starts. The stop itself is asynchronous, hence 202.
async fn stop(
    principal: Principal,
    State(state): State<AppState>,
    Path((org, name, id)): Path<(String, String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ExecutionRef>), RestError> {
    ensure_org(&principal, &org)?;
    let input: StopInput = parse(&read_body(body)?)?;
    if input.reason.as_ref().is_some_and(|r| r.len() > MAX_STOP_REASON_LEN) {
        return Err(bad_request(format!("reason must be at most {MAX_STOP_REASON_LEN} bytes")));
    }
    let pipeline = find_pipeline(&state, &principal, &name).await?;
    let execution = find_execution(&state, &principal, &pipeline, &id).await?;
    let mut tx = state.store.begin().await.map_err(RestError::from_store)?;
    let outcome = tx
        .request_stop(principal.org.id, &id, input.abandon, input.reason.as_deref())
        .await
        .map_err(RestError::from_store)?;
    tx.commit().await.map_err(RestError::from_store)?;
    match outcome {
        StopRequest::Accepted => Ok((StatusCode::ACCEPTED, Json(ExecutionRef { pipeline_execution_id: id }))),
        StopRequest::Duplicate => Err(RestError::new(
            StatusCode::CONFLICT,
            format!("a stop request for execution '{id}' is already in progress"),
        )),
        StopRequest::NotStoppable => Err(RestError::new(
            StatusCode::CONFLICT,
            format!("execution '{id}' is {} and cannot be stopped", execution.status),
        )),
        StopRequest::NotFound => Err(execution_not_found(&id, &name)),
    }
}

/// The log of every action of the execution, or of the actions named `action`. An action the pipeline declares
/// but that has not started yet has no entry (rather than a 404), so a follower can poll from the start.
async fn logs(
    principal: Principal,
    State(state): State<AppState>,
    Path((org, name, id)): Path<(String, String, String)>,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<Json<LogsView>, RestError> {
    ensure_org(&principal, &org)?;
    let Query(query) = query.map_err(|e| RestError::new(e.status(), e.body_text()))?;
    let pipeline = find_pipeline(&state, &principal, &name).await?;
    let execution = find_execution(&state, &principal, &pipeline, &id).await?;
    let mut actions = state.store.action_executions(principal.org.id, &id).await.map_err(RestError::from_store)?;
    if let Some(wanted) = &query.action {
        actions.retain(|a| &a.action_name == wanted);
        if actions.is_empty() && !declares_action(&state, &principal, &execution, wanted).await? {
            return Err(RestError::new(
                StatusCode::NOT_FOUND,
                format!("pipeline '{name}' version {} has no action '{wanted}'", execution.pipeline_version),
            ));
        }
    }
    Ok(Json(LogsView {
        actions: actions
            .into_iter()
            .map(|a| ActionLog { stage: a.stage_name, action: a.action_name, status: a.status, log: a.log })
            .collect(),
    }))
}

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

fn bad_request(message: impl Into<String>) -> RestError {
    RestError::new(StatusCode::BAD_REQUEST, message)
}

/// A declaration or name that breaks a rule: 400 with the rule's message.
fn invalid(e: PipelineError) -> RestError {
    bad_request(e.message())
}

fn pipeline_not_found(name: &str) -> RestError {
    RestError::new(StatusCode::NOT_FOUND, format!("pipeline '{name}' does not exist"))
}

fn execution_not_found(id: &str, pipeline: &str) -> RestError {
    RestError::new(StatusCode::NOT_FOUND, format!("execution '{id}' of pipeline '{pipeline}' does not exist"))
}

fn stale_version(given: i32, current: i64) -> RestError {
    RestError::new(
        StatusCode::CONFLICT,
        format!("the declaration is of version {given} but the pipeline is at version {current}; fetch it again"),
    )
}

fn page_limit(limit: Option<u32>) -> Result<u32, RestError> {
    match limit {
        None => Ok(MAX_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(bad_request(format!("limit must be from 1 to {MAX_PAGE}"))),
    }
}

fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, RestError> {
    body.map_err(|e| RestError::new(e.status(), e.body_text()))
}

/// Parses a JSON body. An empty body reads as `{}`, so requests whose members are all optional need none.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, RestError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| bad_request(format!("invalid request body: {e}")))
}

/// A declaration from a create or update body: the declaration itself, or wrapped as `{"pipeline": {...}}` the
/// way the AWS API and `GetPipeline` output carry it, so a fetched pipeline can be sent back as it is. It must
/// pass the same rules as over the AWS API.
fn declaration(body: Result<Bytes, BytesRejection>) -> Result<PipelineDeclaration, RestError> {
    let body = read_body(body)?;
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(RestError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the pipeline document is {} bytes; the maximum is {MAX_DOCUMENT_BYTES} bytes", body.len()),
        ));
    }
    let decl = unwrap_declaration(parse(&body)?)?;
    validate(&decl).map_err(invalid)?;
    supported_actions(&decl).map_err(invalid)?;
    Ok(decl)
}

fn unwrap_declaration(mut doc: Value) -> Result<PipelineDeclaration, RestError> {
    if let Some(inner) = doc.get_mut("pipeline").filter(|p| p.is_object()) {
        doc = inner.take();
    }
    serde_json::from_value(doc).map_err(|e| bad_request(format!("invalid pipeline declaration: {e}")))
}

fn stored_declaration(p: &PipelineRecord) -> Result<PipelineDeclaration, RestError> {
    serde_json::from_value(p.declaration.clone()).map_err(|e| {
        tracing::error!(pipeline = %p.name, error = %e, "stored pipeline declaration does not parse");
        RestError::internal()
    })
}

async fn find_pipeline(state: &AppState, principal: &Principal, name: &str) -> Result<PipelineRecord, RestError> {
    validate_pipeline_name(name).map_err(invalid)?;
    state
        .store
        .pipeline(principal.org.id, name)
        .await
        .map_err(RestError::from_store)?
        .ok_or_else(|| pipeline_not_found(name))
}

/// The execution, only if it belongs to this pipeline: an id from another pipeline is not found here.
async fn find_execution(
    state: &AppState,
    principal: &Principal,
    pipeline: &PipelineRecord,
    id: &str,
) -> Result<ExecutionRecord, RestError> {
    match state.store.execution(principal.org.id, id).await.map_err(RestError::from_store)? {
        Some(e) if e.pipeline_id == pipeline.id => Ok(e),
        _ => Err(execution_not_found(id, &pipeline.name)),
    }
}

/// Whether the pipeline version the execution runs declares an action of that name.
async fn declares_action(
    state: &AppState,
    principal: &Principal,
    execution: &ExecutionRecord,
    action: &str,
) -> Result<bool, RestError> {
    let doc = state
        .store
        .pipeline_version(principal.org.id, &execution.pipeline_name, execution.pipeline_version)
        .await
        .map_err(RestError::from_store)?;
    let Some(doc) = doc else { return Ok(false) };
    let decl: PipelineDeclaration = serde_json::from_value(doc).map_err(|_| RestError::internal())?;
    Ok(decl.stages.iter().any(|s| s.actions.iter().any(|a| a.name == action)))
}

fn pipeline_summary(p: &PipelineRecord) -> Result<PipelineSummary, RestError> {
    Ok(PipelineSummary {
        name: p.name.clone(),
        version: p.version,
        execution_mode: stored_declaration(p)?.effective_execution_mode().as_str(),
        created: p.created_at.millis(),
        updated: p.updated_at.millis(),
    })
}

fn pipeline_view(p: PipelineRecord) -> Result<PipelineView, RestError> {
    Ok(PipelineView { summary: pipeline_summary(&p)?, pipeline: secrets::mask(&p.declaration) })
}

/// The execution `e` waits behind, as the runner decides (`turn` in pipehook-runner's pipeline.rs): unless it
/// runs in parallel, only the oldest of the pipeline's active executions (`active`, in start order) runs.
fn waiting_for(e: &ExecutionRecord, active: &[ExecutionRecord]) -> Option<String> {
    let first = active.first()?;
    let waits = e.execution_mode != "PARALLEL" && e.status == "InProgress" && first.id != e.id;
    (waits && active.iter().any(|a| a.id == e.id)).then(|| first.id.clone())
}

/// The commit an execution runs: the first source revision with an id, else its trigger's revision.
fn commit_of(e: &ExecutionRecord) -> Option<String> {
    let resolved = e
        .source_revisions
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|r| r.get("revisionId").and_then(Value::as_str).filter(|c| !c.is_empty()));
    let hinted = || e.trigger.get("revision")?.get("commitId")?.as_str().filter(|c| !c.is_empty());
    resolved.or_else(hinted).map(str::to_owned)
}

fn execution_summary(e: &ExecutionRecord, active: &[ExecutionRecord]) -> ExecutionSummary {
    let text = |key: &str| e.trigger.get(key).and_then(Value::as_str).map(str::to_owned);
    ExecutionSummary {
        id: e.id.clone(),
        pipeline_name: e.pipeline_name.clone(),
        pipeline_version: e.pipeline_version,
        status: e.status.clone(),
        status_summary: e.status_summary.clone(),
        execution_mode: e.execution_mode.clone(),
        trigger: TriggerView { kind: text("triggerType"), detail: text("triggerDetail") },
        start_time: e.start_time.millis(),
        last_update_time: e.last_update_time.millis(),
        stop_requested: e.stop_requested,
        commit_id: commit_of(e),
        waiting_for: waiting_for(e, active),
    }
}

fn action_view(a: &ActionExecutionRecord) -> ActionView {
    ActionView {
        id: a.id.clone(),
        stage: a.stage_name.clone(),
        action: a.action_name.clone(),
        status: a.status.clone(),
        start_time: a.start_time.millis(),
        end_time: (a.status != "InProgress").then_some(a.last_update_time.millis()),
        error_code: a.error_code.clone(),
        error_message: a.error_message.clone(),
        summary: a.output.get("summary").and_then(Value::as_str).map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decl() -> Value {
        json!({
            "name": "app",
            "roleArn": "arn:aws:iam::123456789012:role/r",
            "stages": [],
        })
    }

    #[test]
    fn declarations_may_be_wrapped() {
        assert_eq!(unwrap_declaration(decl()).unwrap().name, "app");
        assert_eq!(unwrap_declaration(json!({"pipeline": decl()})).unwrap().name, "app");
        let e = unwrap_declaration(json!({"pipeline": "app"})).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.starts_with("invalid pipeline declaration"), "{}", e.message);
    }

    #[test]
    fn empty_bodies_are_empty_objects() {
        let s: StopInput = parse(b" \n").unwrap();
        assert!(!s.abandon && s.reason.is_none());
        let e = parse::<StopInput>(b"{\"abandn\": true}").unwrap_err();
        assert!(e.message.contains("abandn"), "{}", e.message);
    }

    #[test]
    fn page_limits() {
        assert_eq!(page_limit(None).unwrap(), MAX_PAGE);
        assert_eq!(page_limit(Some(1)).unwrap(), 1);
        assert_eq!(page_limit(Some(0)).unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(page_limit(Some(MAX_PAGE + 1)).unwrap_err().status, StatusCode::BAD_REQUEST);
    }
}
