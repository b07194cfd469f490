//! CodePipeline (`CodePipeline_20150709.*`): one file per operation behind [`Operation`].
//!
//! Shapes follow botocore's `codepipeline/2015-07-09/service-2.json` (copied under `model/`): camelCase
//! members, epoch-second timestamps, AWS exception names. Every operation works inside the caller's
//! organization; another organization's pipelines simply do not exist for it.

mod create_pipeline;
pub(crate) mod delete_pipeline;
mod get_pipeline;
mod get_pipeline_execution;
mod get_pipeline_state;
mod list_action_executions;
mod list_pipeline_executions;
mod list_pipelines;
pub(crate) mod secrets;
mod start_pipeline_execution;
mod stop_pipeline_execution;
mod tags;
mod update_pipeline;
pub(crate) mod views;
pub(crate) mod webhooks;

use pipehook_domain::org::OrgId;
use pipehook_domain::pipeline::{PipelineError, MAX_DOCUMENT_BYTES};
use pipehook_domain::time::Timestamp;
use pipehook_store::PipelineRecord;
use serde_json::Value;

use super::AwsError;
use crate::auth::Principal;
use crate::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CreatePipeline,
    GetPipeline,
    UpdatePipeline,
    ListPipelines,
    DeletePipeline,
    StartPipelineExecution,
    StopPipelineExecution,
    GetPipelineExecution,
    ListPipelineExecutions,
    ListActionExecutions,
    GetPipelineState,
    TagResource,
    UntagResource,
    ListTagsForResource,
    PutWebhook,
    ListWebhooks,
    DeleteWebhook,
    RegisterWebhookWithThirdParty,
    DeregisterWebhookWithThirdParty,
}

impl Operation {
    /// Every operation with its `X-Amz-Target` name (which is also its name in the botocore model).
    pub const ALL: [Operation; 19] = {
        use Operation::*;
        [
            CreatePipeline,
            GetPipeline,
            UpdatePipeline,
            ListPipelines,
            DeletePipeline,
            StartPipelineExecution,
            StopPipelineExecution,
            GetPipelineExecution,
            ListPipelineExecutions,
            ListActionExecutions,
            GetPipelineState,
            TagResource,
            UntagResource,
            ListTagsForResource,
            PutWebhook,
            ListWebhooks,
            DeleteWebhook,
            RegisterWebhookWithThirdParty,
            DeregisterWebhookWithThirdParty,
        ]
    };

    pub fn name(self) -> &'static str {
        use Operation::*;
        match self {
            CreatePipeline => "CreatePipeline",
            GetPipeline => "GetPipeline",
            UpdatePipeline => "UpdatePipeline",
            ListPipelines => "ListPipelines",
            DeletePipeline => "DeletePipeline",
            StartPipelineExecution => "StartPipelineExecution",
            StopPipelineExecution => "StopPipelineExecution",
            GetPipelineExecution => "GetPipelineExecution",
            ListPipelineExecutions => "ListPipelineExecutions",
            ListActionExecutions => "ListActionExecutions",
            GetPipelineState => "GetPipelineState",
            TagResource => "TagResource",
            UntagResource => "UntagResource",
            ListTagsForResource => "ListTagsForResource",
            PutWebhook => "PutWebhook",
            ListWebhooks => "ListWebhooks",
            DeleteWebhook => "DeleteWebhook",
            RegisterWebhookWithThirdParty => "RegisterWebhookWithThirdParty",
            DeregisterWebhookWithThirdParty => "DeregisterWebhookWithThirdParty",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == name)
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

    pub fn arn(&self, resource: &str) -> String {
        pipehook_domain::pipeline::codepipeline_arn(
            &self.state.config.aws_region,
            self.principal.org.account_id.as_str(),
            resource,
        )
    }

    /// The pipeline, or AWS's `PipelineNotFoundException`.
    pub async fn pipeline(&self, name: &str) -> Result<PipelineRecord, AwsError> {
        pipehook_domain::pipeline::validate_pipeline_name(name).map_err(pipeline_error)?;
        match self.state.store.pipeline(self.org(), name).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(AwsError::new(
                http::StatusCode::BAD_REQUEST,
                "PipelineNotFoundException",
                format!("Account '{}' does not have a pipeline with name '{name}'", self.principal.org.account_id),
            )),
            Err(e) => Err(AwsError::from_store(e)),
        }
    }
}

pub(crate) async fn dispatch(ctx: &Ctx<'_>, op: Operation, body: &[u8]) -> Result<Value, AwsError> {
    use Operation::*;
    // Before any handler reads its typed input: a member of the wrong type is SerializationException, a missing
    // required one ValidationException naming it (see `aws::model`). Pipeline documents are measured first.
    if matches!(op, CreatePipeline | UpdatePipeline) {
        check_document_size(body)?;
    }
    crate::aws::model::Model::codepipeline().check_input(op.name(), &crate::aws::parse::<Value>(body)?)?;
    match op {
        CreatePipeline => create_pipeline::handle(ctx, body).await,
        GetPipeline => get_pipeline::handle(ctx, body).await,
        UpdatePipeline => update_pipeline::handle(ctx, body).await,
        ListPipelines => list_pipelines::handle(ctx, body).await,
        DeletePipeline => delete_pipeline::handle(ctx, body).await,
        StartPipelineExecution => start_pipeline_execution::handle(ctx, body).await,
        StopPipelineExecution => stop_pipeline_execution::handle(ctx, body).await,
        GetPipelineExecution => get_pipeline_execution::handle(ctx, body).await,
        ListPipelineExecutions => list_pipeline_executions::handle(ctx, body).await,
        ListActionExecutions => list_action_executions::handle(ctx, body).await,
        GetPipelineState => get_pipeline_state::handle(ctx, body).await,
        TagResource => tags::tag(ctx, body).await,
        UntagResource => tags::untag(ctx, body).await,
        ListTagsForResource => tags::list(ctx, body).await,
        PutWebhook => webhooks::put(ctx, body).await,
        ListWebhooks => webhooks::list(ctx, body).await,
        DeleteWebhook => webhooks::delete(ctx, body).await,
        RegisterWebhookWithThirdParty => webhooks::register(ctx, body).await,
        DeregisterWebhookWithThirdParty => webhooks::deregister(ctx, body).await,
    }
}

pub(crate) fn pipeline_error(e: PipelineError) -> AwsError {
    AwsError::new(http::StatusCode::BAD_REQUEST, e.aws_type(), e.message())
}

/// Epoch seconds, as the AWS JSON protocols write timestamps.
pub(crate) fn ts(t: Timestamp) -> Value {
    Value::from(t.epoch_seconds_f64())
}

/// AWS's wording for a member that breaks its model constraint (a missing member is `Value null at`).
pub(crate) fn constraint(member: &str, rule: &str) -> AwsError {
    let value = if rule == "Member must not be null" { "Value null" } else { "Value" };
    AwsError::validation(format!(
        "1 validation error detected: {value} at '{member}' failed to satisfy constraint: {rule}"
    ))
}

/// Checks an optional `maxResults` against the model's range; returns the page size to use.
pub(crate) fn page_size(max_results: Option<i64>, max: i64, default: i64) -> Result<u32, AwsError> {
    match max_results {
        None => Ok(default as u32),
        Some(n) if (1..=max).contains(&n) => Ok(n as u32),
        Some(_) => Err(constraint("maxResults", &format!("Member must have value between 1 and {max}"))),
    }
}

/// Opaque pagination tokens: the cursor, tagged with what it pages, hex-encoded. A token from another
/// listing, or a made-up one, is `InvalidNextTokenException`.
pub(crate) mod next_token {
    use super::AwsError;

    pub fn encode(scope: &str, cursor: &str) -> String {
        hex_encode(format!("{scope}\u{1f}{cursor}").as_bytes())
    }

    pub fn decode(scope: &str, token: Option<&str>) -> Result<Option<String>, AwsError> {
        let Some(token) = token else { return Ok(None) };
        let invalid = || {
            AwsError::new(http::StatusCode::BAD_REQUEST, "InvalidNextTokenException", "The next token is not valid.")
        };
        if token.is_empty() || token.len() > 2048 {
            return Err(invalid());
        }
        let bytes = hex_decode(token).ok_or_else(invalid)?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (s, cursor) = text.split_once('\u{1f}').ok_or_else(invalid)?;
        if s != scope {
            return Err(invalid());
        }
        Ok(Some(cursor.to_owned()))
    }

    fn hex_encode(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn hex_decode(s: &str) -> Option<Vec<u8>> {
        if !s.len().is_multiple_of(2) {
            return None;
        }
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn round_trip_and_scope() {
            let t = super::encode("executions:7", "42");
            assert_eq!(super::decode("executions:7", Some(&t)).unwrap(), Some("42".into()));
            assert_eq!(super::decode("executions:8", Some(&t)).unwrap_err().kind, "InvalidNextTokenException");
            assert_eq!(super::decode("x", Some("zz")).unwrap_err().kind, "InvalidNextTokenException");
            assert_eq!(super::decode("x", None).unwrap(), None);
        }
    }
}

/// The pipeline execution id pattern from the model.
pub(crate) fn check_execution_id(id: &str) -> Result<(), AwsError> {
    let ok = id.len() == 36
        && id.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                matches!(c, '0'..='9' | 'a'..='f')
            }
        });
    if ok {
        Ok(())
    } else {
        Err(constraint(
            "pipelineExecutionId",
            "Member must satisfy regular expression pattern: [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        ))
    }
}

pub(crate) fn execution_not_found(id: &str, pipeline: &str) -> AwsError {
    AwsError::new(
        http::StatusCode::BAD_REQUEST,
        "PipelineExecutionNotFoundException",
        format!("Pipeline execution with id '{id}' does not exist in pipeline with name '{pipeline}'."),
    )
}

pub(crate) fn check_document_size(body: &[u8]) -> Result<(), AwsError> {
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(AwsError::validation(format!(
            "The pipeline document is {} bytes; the maximum is {MAX_DOCUMENT_BYTES} bytes",
            body.len()
        )));
    }
    Ok(())
}
