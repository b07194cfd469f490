//! CodeBuild (`CodeBuild_20161006.*`): one file per group of operations behind [`Operation`].
//!
//! Shapes follow botocore's `codebuild/2016-10-06/service-2.json` (copied under `model/`): camelCase members,
//! epoch-second timestamps, AWS exception names. Constraint violations are `InvalidInputException`, as
//! CodeBuild answers them. Every operation works inside the caller's organization.

mod builds;
mod projects;
mod webhooks;

use pipehook_domain::org::OrgId;
use pipehook_domain::time::Timestamp;
use pipehook_store::ProjectRecord;
use serde_json::Value;

use super::AwsError;
use crate::auth::Principal;
use crate::AppState;

pub use webhooks::{payload_url, secret_context as webhook_secret_context, url_context as webhook_url_context};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CreateProject,
    UpdateProject,
    BatchGetProjects,
    ListProjects,
    DeleteProject,
    StartBuild,
    StopBuild,
    BatchGetBuilds,
    ListBuilds,
    ListBuildsForProject,
    CreateWebhook,
    UpdateWebhook,
    DeleteWebhook,
}

impl Operation {
    pub fn from_name(name: &str) -> Option<Self> {
        use Operation::*;
        Some(match name {
            "CreateProject" => CreateProject,
            "UpdateProject" => UpdateProject,
            "BatchGetProjects" => BatchGetProjects,
            "ListProjects" => ListProjects,
            "DeleteProject" => DeleteProject,
            "StartBuild" => StartBuild,
            "StopBuild" => StopBuild,
            "BatchGetBuilds" => BatchGetBuilds,
            "ListBuilds" => ListBuilds,
            "ListBuildsForProject" => ListBuildsForProject,
            "CreateWebhook" => CreateWebhook,
            "UpdateWebhook" => UpdateWebhook,
            "DeleteWebhook" => DeleteWebhook,
            _ => return None,
        })
    }
}

/// What every operation gets: the state and the verified caller.
pub(crate) struct Ctx<'a> {
    pub state: &'a AppState,
    pub principal: &'a Principal,
}

impl Ctx<'_> {
    pub fn org(&self) -> OrgId {
        self.principal.org.id
    }

    /// `arn:aws:codebuild:<region>:<account>:<resource>`.
    pub fn arn(&self, resource: &str) -> String {
        format!(
            "arn:aws:codebuild:{}:{}:{resource}",
            self.state.config.aws_region,
            self.principal.org.account_id.as_str()
        )
    }

    /// The project, or `ResourceNotFoundException`.
    pub async fn project(&self, name: &str) -> Result<ProjectRecord, AwsError> {
        match self.state.store.project(self.org(), name).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(not_found(format!("Project cannot be found: {}", self.arn(&format!("project/{name}"))))),
            Err(e) => Err(AwsError::from_store(e)),
        }
    }
}

pub(crate) async fn dispatch(ctx: &Ctx<'_>, op: Operation, body: &[u8]) -> Result<Value, AwsError> {
    use Operation::*;
    match op {
        CreateProject => projects::create(ctx, body).await,
        UpdateProject => projects::update(ctx, body).await,
        BatchGetProjects => projects::batch_get(ctx, body).await,
        ListProjects => projects::list(ctx, body).await,
        DeleteProject => projects::delete(ctx, body).await,
        StartBuild => builds::start(ctx, body).await,
        StopBuild => builds::stop(ctx, body).await,
        BatchGetBuilds => builds::batch_get(ctx, body).await,
        ListBuilds => builds::list(ctx, body).await,
        ListBuildsForProject => builds::list_for_project(ctx, body).await,
        CreateWebhook => webhooks::create(ctx, body).await,
        UpdateWebhook => webhooks::update(ctx, body).await,
        DeleteWebhook => webhooks::delete(ctx, body).await,
    }
}

pub(crate) fn invalid_input(message: impl Into<String>) -> AwsError {
    AwsError::new(http::StatusCode::BAD_REQUEST, "InvalidInputException", message)
}

pub(crate) fn not_found(message: impl Into<String>) -> AwsError {
    AwsError::new(http::StatusCode::BAD_REQUEST, "ResourceNotFoundException", message)
}

pub(crate) fn already_exists(message: impl Into<String>) -> AwsError {
    AwsError::new(http::StatusCode::BAD_REQUEST, "ResourceAlreadyExistsException", message)
}

pub(crate) fn oauth_provider(message: impl Into<String>) -> AwsError {
    AwsError::new(http::StatusCode::BAD_REQUEST, "OAuthProviderException", message)
}

/// AWS's wording for a member that breaks its model constraint, as CodeBuild's `InvalidInputException`.
pub(crate) fn constraint(member: &str, rule: &str) -> AwsError {
    invalid_input(format!("1 validation error detected: Value at '{member}' failed to satisfy constraint: {rule}"))
}

/// Epoch seconds, as the AWS JSON protocols write timestamps.
pub(crate) fn ts(t: Timestamp) -> Value {
    Value::from(t.epoch_seconds_f64())
}

/// The model's `ProjectName`: 2..150 characters, `[A-Za-z0-9][A-Za-z0-9\-_]{1,149}`.
pub(crate) fn check_project_name(member: &str, name: &str) -> Result<(), AwsError> {
    let b = name.as_bytes();
    let ok = (2..=150).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b[1..].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_');
    if ok {
        Ok(())
    } else {
        Err(constraint(
            member,
            "Member must satisfy regular expression pattern: [A-Za-z0-9][A-Za-z0-9\\-_]{1,149} and have length between 2 and 150",
        ))
    }
}

/// Checks a string member against an enum of the model.
pub(crate) fn check_enum(member: &str, value: &str, allowed: &[&str]) -> Result<(), AwsError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(constraint(member, &format!("Member must satisfy enum value set: [{}]", allowed.join(", "))))
    }
}

pub(crate) use super::codepipeline::next_token;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names() {
        for ok in ["ab", "my-project_1", &"a".repeat(150)] {
            assert!(check_project_name("name", ok).is_ok(), "{ok}");
        }
        for bad in ["a", "-ab", "a b", "a.b", &"a".repeat(151), ""] {
            assert_eq!(check_project_name("name", bad).unwrap_err().kind, "InvalidInputException", "{bad}");
        }
    }
}
