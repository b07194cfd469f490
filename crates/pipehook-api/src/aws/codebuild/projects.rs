//! CreateProject, UpdateProject, BatchGetProjects, ListProjects, DeleteProject.
//!
//! A project is stored as the document the client sent (validated against the model's constraints), and shown
//! with its `arn`, `created`, `lastModified`, defaults (`timeoutInMinutes` 60, `queuedTimeoutInMinutes` 480) and
//! its `webhook`. Deleting a project deletes its webhook (and the hook on the git host when pipehook created
//! it); its builds stay, as in CodeBuild.

use pipehook_store::{BuildWebhookRecord, ProjectRecord, StoreError};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{check_enum, check_project_name, constraint, invalid_input, next_token, ts, Ctx};
use crate::aws::{parse, AwsError};

pub const SOURCE_TYPES: [&str; 9] = [
    "CODECOMMIT",
    "CODEPIPELINE",
    "GITHUB",
    "GITLAB",
    "GITLAB_SELF_MANAGED",
    "S3",
    "BITBUCKET",
    "GITHUB_ENTERPRISE",
    "NO_SOURCE",
];
const ENVIRONMENT_TYPES: [&str; 10] = [
    "WINDOWS_CONTAINER",
    "LINUX_CONTAINER",
    "LINUX_GPU_CONTAINER",
    "ARM_CONTAINER",
    "WINDOWS_SERVER_2019_CONTAINER",
    "WINDOWS_SERVER_2022_CONTAINER",
    "LINUX_LAMBDA_CONTAINER",
    "ARM_LAMBDA_CONTAINER",
    "LINUX_EC2",
    "ARM_EC2",
];
const COMPUTE_TYPES: [&str; 11] = [
    "BUILD_GENERAL1_SMALL",
    "BUILD_GENERAL1_MEDIUM",
    "BUILD_GENERAL1_LARGE",
    "BUILD_GENERAL1_XLARGE",
    "BUILD_GENERAL1_2XLARGE",
    "BUILD_LAMBDA_1GB",
    "BUILD_LAMBDA_2GB",
    "BUILD_LAMBDA_4GB",
    "BUILD_LAMBDA_8GB",
    "BUILD_LAMBDA_10GB",
    "ATTRIBUTE_BASED_COMPUTE",
];
const ARTIFACT_TYPES: [&str; 3] = ["CODEPIPELINE", "S3", "NO_ARTIFACTS"];
pub const VARIABLE_TYPES: [&str; 3] = ["PLAINTEXT", "PARAMETER_STORE", "SECRETS_MANAGER"];

/// The members pipehook reads, typed so a member of the wrong type is a `SerializationException`; the
/// document itself is kept whole.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct Typed {
    name: Option<String>,
    description: Option<String>,
    source: Option<Source>,
    artifacts: Option<Artifacts>,
    environment: Option<Environment>,
    service_role: Option<String>,
    timeout_in_minutes: Option<i64>,
    queued_timeout_in_minutes: Option<i64>,
    tags: Option<Vec<Tag>>,
    source_version: Option<String>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Source {
    #[serde(rename = "type")]
    source_type: Option<String>,
    location: Option<String>,
    buildspec: Option<String>,
}

#[derive(Deserialize)]
struct Artifacts {
    #[serde(rename = "type")]
    artifacts_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Environment {
    #[serde(rename = "type")]
    environment_type: Option<String>,
    image: Option<String>,
    compute_type: Option<String>,
    environment_variables: Option<Vec<Variable>>,
}

#[derive(Deserialize)]
pub(crate) struct Variable {
    pub name: Option<String>,
    pub value: Option<String>,
    #[serde(rename = "type")]
    pub variable_type: Option<String>,
}

#[derive(Deserialize)]
struct Tag {
    key: Option<String>,
    value: Option<String>,
}

fn required<'a, T>(member: &str, v: &'a Option<T>) -> Result<&'a T, AwsError> {
    v.as_ref().ok_or_else(|| constraint(member, "Member must not be null"))
}

/// Checks `environmentVariables`-shaped lists (also StartBuild's `environmentVariablesOverride`).
pub(crate) fn check_variables(member: &str, vars: &[Variable]) -> Result<(), AwsError> {
    for (i, v) in vars.iter().enumerate() {
        let m = format!("{member}.{}.member", i + 1);
        let name = required(&format!("{m}.name"), &v.name)?;
        if name.is_empty() {
            return Err(constraint(&format!("{m}.name"), "Member must have length greater than or equal to 1"));
        }
        required(&format!("{m}.value"), &v.value)?;
        if let Some(t) = &v.variable_type {
            check_enum(&format!("{m}.type"), t, &VARIABLE_TYPES)?;
            if t != "PLAINTEXT" {
                return Err(invalid_input(format!(
                    "Environment variable '{name}' of type {t} is not supported by pipehook; use PLAINTEXT"
                )));
            }
        }
    }
    Ok(())
}

/// Validates a whole project document (CreateProject's input, or UpdateProject's merged result).
fn validate(doc: &Value) -> Result<(), AwsError> {
    let t: Typed = serde_json::from_value(doc.clone())
        .map_err(|e| AwsError::serialization(format!("Could not parse the request: {e}")))?;
    check_project_name("name", required("name", &t.name)?)?;
    if t.description.as_ref().is_some_and(|d| d.chars().count() > 255) {
        return Err(constraint("description", "Member must have length less than or equal to 255"));
    }
    let source = required("source", &t.source)?;
    let source_type = required("source.type", &source.source_type)?;
    check_enum("source.type", source_type, &SOURCE_TYPES)?;
    let location = source.location.as_deref().unwrap_or("");
    let no_buildspec = source.buildspec.as_deref().unwrap_or("").trim().is_empty();
    if source_type == "NO_SOURCE" && no_buildspec {
        return Err(invalid_input("Project source buildspec cannot be empty for source type NO_SOURCE"));
    }
    if !matches!(source_type.as_str(), "NO_SOURCE" | "CODEPIPELINE") && location.is_empty() {
        return Err(invalid_input(format!("Project source location is required for source type {source_type}")));
    }
    let artifacts = required("artifacts", &t.artifacts)?;
    check_enum("artifacts.type", required("artifacts.type", &artifacts.artifacts_type)?, &ARTIFACT_TYPES)?;
    let env = required("environment", &t.environment)?;
    check_enum("environment.type", required("environment.type", &env.environment_type)?, &ENVIRONMENT_TYPES)?;
    check_enum("environment.computeType", required("environment.computeType", &env.compute_type)?, &COMPUTE_TYPES)?;
    if required("environment.image", &env.image)?.is_empty() {
        return Err(constraint("environment.image", "Member must have length greater than or equal to 1"));
    }
    if let Some(vars) = &env.environment_variables {
        check_variables("environment.environmentVariables", vars)?;
    }
    if required("serviceRole", &t.service_role)?.is_empty() {
        return Err(constraint("serviceRole", "Member must have length greater than or equal to 1"));
    }
    if t.timeout_in_minutes.is_some_and(|m| !(5..=2160).contains(&m)) {
        return Err(constraint("timeoutInMinutes", "Member must have value between 5 and 2160"));
    }
    if t.queued_timeout_in_minutes.is_some_and(|m| !(5..=480).contains(&m)) {
        return Err(constraint("queuedTimeoutInMinutes", "Member must have value between 5 and 480"));
    }
    if let Some(tags) = &t.tags {
        if tags.len() > 50 {
            return Err(constraint("tags", "Member must have length less than or equal to 50"));
        }
        for (i, tag) in tags.iter().enumerate() {
            let key = tag.key.as_deref().unwrap_or("");
            if key.is_empty() || key.chars().count() > 127 {
                return Err(constraint(
                    &format!("tags.{}.member.key", i + 1),
                    "Member must have length between 1 and 127",
                ));
            }
            if tag.value.as_ref().is_some_and(|v| v.chars().count() > 255) {
                return Err(constraint(
                    &format!("tags.{}.member.value", i + 1),
                    "Member must have length less than or equal to 255",
                ));
            }
        }
    }
    Ok(())
}

fn object(body: &[u8]) -> Result<Map<String, Value>, AwsError> {
    match parse::<Value>(body)? {
        Value::Object(m) => Ok(m),
        _ => Err(AwsError::serialization("Could not parse the request: expected a JSON object")),
    }
}

/// Encrypts `source.auth.resource` (the git host token) into `resourceCiphertext`, so no token is stored in
/// plain text. An update whose `source.auth` is `OAUTH` without a `resource` keeps the token stored before (the
/// API never shows it, so a read-modify-write round trip cannot send it back).
fn seal_token(ctx: &Ctx<'_>, name: &str, doc: &mut Value, previous: Option<&Value>) {
    let Some(auth) = doc.get_mut("source").and_then(|s| s.get_mut("auth")).and_then(Value::as_object_mut) else {
        return;
    };
    auth.remove("resourceCiphertext");
    match auth.remove("resource") {
        Some(Value::String(token)) if !token.is_empty() => {
            let ct = ctx.state.master_key.encrypt(&crate::githost::token_context(ctx.org().0, name), token.as_bytes());
            auth.insert("resourceCiphertext".into(), json!(ct));
        }
        _ if auth.get("type").and_then(Value::as_str) == Some("OAUTH") => {
            let old = previous.map(|p| &p["source"]["auth"]);
            if let Some(old) = old.filter(|a| a["type"] == "OAUTH") {
                if let Some(ct) = old.get("resourceCiphertext") {
                    auth.insert("resourceCiphertext".into(), ct.clone());
                } else if let Some(Value::String(t)) = old.get("resource") {
                    let ct =
                        ctx.state.master_key.encrypt(&crate::githost::token_context(ctx.org().0, name), t.as_bytes());
                    auth.insert("resourceCiphertext".into(), json!(ct));
                }
            }
        }
        _ => {}
    }
}

/// The project as CodeBuild shows it.
pub(crate) fn view(ctx: &Ctx<'_>, p: &ProjectRecord, webhook: Option<&BuildWebhookRecord>) -> Result<Value, AwsError> {
    let mut out = p.document.clone();
    let o = out.as_object_mut().ok_or_else(AwsError::internal)?;
    o.insert("arn".into(), json!(ctx.arn(&format!("project/{}", p.name))));
    // An OAUTH token is a secret: shown as its type only.
    if let Some(auth) = o.get_mut("source").and_then(|s| s.get_mut("auth")).and_then(Value::as_object_mut) {
        auth.remove("resource");
        auth.remove("resourceCiphertext");
    }
    o.entry("timeoutInMinutes").or_insert(json!(60));
    o.entry("queuedTimeoutInMinutes").or_insert(json!(480));
    o.entry("tags").or_insert(json!([]));
    o.insert("created".into(), ts(p.created_at));
    o.insert("lastModified".into(), ts(p.updated_at));
    o.insert("badge".into(), json!({"badgeEnabled": false}));
    o.insert("projectVisibility".into(), json!("PRIVATE"));
    if let Some(w) = webhook {
        o.insert("webhook".into(), super::webhooks::view(ctx, w, None)?);
    }
    Ok(out)
}

pub async fn create(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let doc = Value::Object(object(body)?);
    validate(&doc)?;
    let name = doc["name"].as_str().unwrap_or_default().to_owned();
    let mut doc = doc;
    seal_token(ctx, &name, &mut doc, None);
    let mut tx = ctx.state.store.begin().await.map_err(AwsError::from_store)?;
    let p = match tx.create_project(ctx.org(), &name, &doc).await {
        Ok(p) => p,
        Err(StoreError::Conflict(_)) => {
            return Err(super::already_exists(format!(
                "Project already exists: {}",
                ctx.arn(&format!("project/{name}"))
            )))
        }
        Err(e) => return Err(AwsError::from_store(e)),
    };
    tx.commit().await.map_err(AwsError::from_store)?;
    Ok(json!({"project": view(ctx, &p, None)?}))
}

pub async fn update(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input = object(body)?;
    let name = match input.get("name") {
        Some(Value::String(n)) => n.clone(),
        Some(_) => return Err(AwsError::serialization("Could not parse the request: name must be a string")),
        None => return Err(constraint("name", "Member must not be null")),
    };
    if name.is_empty() {
        return Err(constraint("name", "Member must have length greater than or equal to 1"));
    }
    let current = ctx.project(&name).await?;
    let mut doc = current.document.clone();
    if let Some(o) = doc.as_object_mut() {
        for (k, v) in input {
            o.insert(k, v);
        }
    }
    validate(&doc)?;
    seal_token(ctx, &name, &mut doc, Some(&current.document));
    let mut tx = ctx.state.store.begin().await.map_err(AwsError::from_store)?;
    let p = tx
        .update_project(ctx.org(), &name, &doc)
        .await
        .map_err(AwsError::from_store)?
        .ok_or_else(|| super::not_found(format!("Project cannot be found: {name}")))?;
    tx.commit().await.map_err(AwsError::from_store)?;
    let webhook = ctx.state.store.build_webhook(ctx.org(), &name).await.map_err(AwsError::from_store)?;
    let mut out = view(ctx, &p, webhook.as_ref())?;
    if webhook.is_some() {
        super::webhooks::add_pipeline_warning(ctx, &p.name, &mut out["webhook"]).await?;
    }
    Ok(json!({"project": out}))
}

/// A project name, or its ARN in this account and region.
fn name_of<'a>(ctx: &Ctx<'_>, s: &'a str) -> &'a str {
    let prefix = ctx.arn("project/");
    s.strip_prefix(prefix.as_str()).unwrap_or(s)
}

#[derive(Deserialize)]
struct BatchGetInput {
    names: Option<Vec<String>>,
}

pub async fn batch_get(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: BatchGetInput = parse(body)?;
    let names = required("names", &input.names)?;
    if names.is_empty() || names.len() > 100 {
        return Err(constraint("names", "Member must have length between 1 and 100"));
    }
    let (mut found, mut missing) = (Vec::new(), Vec::new());
    for given in names {
        if given.is_empty() {
            return Err(constraint("names", "Member must have length greater than or equal to 1"));
        }
        let name = name_of(ctx, given);
        match ctx.state.store.project(ctx.org(), name).await.map_err(AwsError::from_store)? {
            Some(p) => {
                let w = ctx.state.store.build_webhook(ctx.org(), &p.name).await.map_err(AwsError::from_store)?;
                let mut out = view(ctx, &p, w.as_ref())?;
                if w.is_some() {
                    super::webhooks::add_pipeline_warning(ctx, &p.name, &mut out["webhook"]).await?;
                }
                found.push(out);
            }
            None => missing.push(given.clone()),
        }
    }
    Ok(json!({"projects": found, "projectsNotFound": missing}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListInput {
    sort_by: Option<String>,
    sort_order: Option<String>,
    next_token: Option<String>,
}

const PAGE: usize = 100;

pub async fn list(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: ListInput = parse(body)?;
    let sort_by = input.sort_by.unwrap_or_else(|| "NAME".into());
    check_enum("sortBy", &sort_by, &["NAME", "CREATED_TIME", "LAST_MODIFIED_TIME"])?;
    let order = input.sort_order.unwrap_or_else(|| "ASCENDING".into());
    check_enum("sortOrder", &order, &["ASCENDING", "DESCENDING"])?;
    if input.next_token.as_deref() == Some("") {
        return Err(constraint("nextToken", "Member must have length greater than or equal to 1"));
    }
    let scope = format!("projects:{sort_by}:{order}");
    let offset: usize = match next_token::decode(&scope, input.next_token.as_deref())? {
        Some(c) => c.parse().map_err(|_| invalid_input("The next token is not valid."))?,
        None => 0,
    };
    let mut projects = ctx.state.store.list_projects(ctx.org()).await.map_err(AwsError::from_store)?;
    match sort_by.as_str() {
        "CREATED_TIME" => projects.sort_by_key(|p| (p.created_at, p.id)),
        "LAST_MODIFIED_TIME" => projects.sort_by_key(|p| (p.updated_at, p.id)),
        _ => {}
    }
    if order == "DESCENDING" {
        projects.reverse();
    }
    let page: Vec<String> = projects.iter().skip(offset).take(PAGE).map(|p| p.name.clone()).collect();
    let mut out = json!({"projects": page});
    if projects.len() > offset + PAGE {
        out["nextToken"] = json!(next_token::encode(&scope, &(offset + PAGE).to_string()));
    }
    Ok(out)
}

#[derive(Deserialize)]
struct DeleteInput {
    name: Option<String>,
}

pub async fn delete(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, AwsError> {
    let input: DeleteInput = parse(body)?;
    let name = required("name", &input.name)?;
    if name.is_empty() {
        return Err(constraint("name", "Member must have length greater than or equal to 1"));
    }
    let name = name_of(ctx, name).to_owned();
    let project = ctx.state.store.project(ctx.org(), &name).await.map_err(AwsError::from_store)?;
    if let Some(p) = &project {
        if let Some(w) = ctx.state.store.build_webhook(ctx.org(), &name).await.map_err(AwsError::from_store)? {
            if let Err(e) = super::webhooks::deregister(ctx, p, &w).await {
                tracing::warn!(project = %name, error = %e.message, "removing the git host's hook of a deleted project failed");
            }
        }
        let mut tx = ctx.state.store.begin().await.map_err(AwsError::from_store)?;
        tx.delete_project(ctx.org(), &name).await.map_err(AwsError::from_store)?;
        tx.commit().await.map_err(AwsError::from_store)?;
    }
    Ok(json!({}))
}
