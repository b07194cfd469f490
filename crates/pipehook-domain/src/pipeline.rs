//! CodePipeline pipeline declarations: the JSON shapes that `CreatePipeline`, `UpdatePipeline` and `GetPipeline`
//! carry, and the rules AWS applies before it accepts a pipeline.
//!
//! The botocore model (`model/codepipeline-2015-07-09.service-2.json`) is the authority. Field names, enum
//! strings, lengths, ranges and patterns here are copied from it, and a test reads the model and checks every
//! constant against it, so a drift between the two fails the build's tests rather than a client's call.
//!
//! [`validate`] works in the order AWS does. First, members kept as opaque JSON (stage conditions and triggers)
//! must have their model shape, or the result is a `SerializationException`, because AWS would have failed to
//! read such a request at all. Second, every min/max/pattern constraint of the model is checked and all
//! violations are reported together as one `ValidationException`, in AWS's wording. Only a pipeline that passes
//! both gets the structural rules (stage count, source stage, artifacts, unique names), each reported as the
//! specific exception AWS uses for it.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

mod service;
pub use service::*;

/// Declares a string enum of the model. Serde uses the AWS strings, so an unknown string fails to deserialize,
/// which the API turns into a `SerializationException` as AWS does.
macro_rules! aws_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $s:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $s)] $variant),+
        }

        impl $name {
            /// Every value, in the model's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The string AWS uses on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $s),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

aws_enum! {
    /// `ActionCategory`: the kind of work an action does.
    ActionCategory {
        Source = "Source", Build = "Build", Deploy = "Deploy", Test = "Test", Invoke = "Invoke",
        Approval = "Approval", Compute = "Compute",
    }
}

aws_enum! {
    /// `ActionOwner`: who provides the action type.
    ActionOwner { Aws = "AWS", ThirdParty = "ThirdParty", Custom = "Custom" }
}

aws_enum! {
    /// `ExecutionMode`: how a pipeline handles a new execution while another one runs.
    ExecutionMode { Queued = "QUEUED", Superseded = "SUPERSEDED", Parallel = "PARALLEL" }
}

aws_enum! {
    /// `PipelineType`.
    PipelineType { V1 = "V1", V2 = "V2" }
}

aws_enum! {
    /// `ArtifactStoreType`: S3 is the only value the model allows.
    ArtifactStoreType { S3 = "S3" }
}

aws_enum! {
    /// `EncryptionKeyType`: KMS is the only value the model allows.
    EncryptionKeyType { Kms = "KMS" }
}

aws_enum! {
    /// `BlockerType` (reserved for future use by AWS).
    BlockerType { Schedule = "Schedule" }
}

aws_enum! {
    /// `EnvironmentVariableType`.
    EnvironmentVariableType { Plaintext = "PLAINTEXT", SecretsManager = "SECRETS_MANAGER" }
}

/// `PipelineDeclaration`: a whole pipeline as `CreatePipeline` takes it and `GetPipeline` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineDeclaration {
    pub name: String,
    pub role_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_store: Option<ArtifactStore>,
    /// Keyed by AWS Region name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_stores: Option<BTreeMap<String, ArtifactStore>>,
    pub stages: Vec<StageDeclaration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_mode: Option<ExecutionMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_type: Option<PipelineType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variables: Option<Vec<PipelineVariableDeclaration>>,
    /// `PipelineTriggerDeclaration`s, kept as JSON; [`validate`] checks them against the model's shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Vec<Value>>,
}

impl PipelineDeclaration {
    /// The execution mode the runner applies. pipehook defaults to QUEUED; note that AWS's documented default
    /// is SUPERSEDED, so `GetPipeline` should return the stored declaration unchanged rather than this value.
    pub fn effective_execution_mode(&self) -> ExecutionMode {
        self.execution_mode.unwrap_or(ExecutionMode::Queued)
    }
}

/// `ArtifactStore`: the bucket where a pipeline keeps its artifacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactStore {
    pub r#type: ArtifactStoreType,
    pub location: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<EncryptionKey>,
}

/// `EncryptionKey`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionKey {
    pub id: String,
    pub r#type: EncryptionKeyType,
}

/// `StageDeclaration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageDeclaration {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blockers: Option<Vec<BlockerDeclaration>>,
    pub actions: Vec<ActionDeclaration>,
    /// `FailureConditions`, kept as JSON; [`validate`] checks it against the model's shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Value>,
    /// `SuccessConditions`, kept as JSON; [`validate`] checks it against the model's shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_success: Option<Value>,
    /// `BeforeEntryConditions`, kept as JSON; [`validate`] checks it against the model's shape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before_entry: Option<Value>,
}

impl StageDeclaration {
    /// The stage's actions grouped by `runOrder` (1 when absent), lowest first. Actions in one group run in
    /// parallel; within a group they keep their declaration order.
    pub fn run_groups(&self) -> Vec<Vec<&ActionDeclaration>> {
        self.indexed_run_groups().into_iter().map(|group| group.into_iter().map(|(_, a)| a).collect()).collect()
    }

    /// Like [`StageDeclaration::run_groups`], with each action's index in `actions`, so errors can name it.
    fn indexed_run_groups(&self) -> Vec<Vec<(usize, &ActionDeclaration)>> {
        let mut groups: BTreeMap<i32, Vec<(usize, &ActionDeclaration)>> = BTreeMap::new();
        for (i, action) in self.actions.iter().enumerate() {
            groups.entry(action.run_order.unwrap_or(1)).or_default().push((i, action));
        }
        groups.into_values().collect()
    }
}

/// `BlockerDeclaration` (reserved for future use by AWS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockerDeclaration {
    pub name: String,
    pub r#type: BlockerType,
}

/// `ActionDeclaration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionDeclaration {
    pub name: String,
    pub action_type_id: ActionTypeId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_order: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commands: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_artifacts: Option<Vec<OutputArtifact>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_artifacts: Option<Vec<InputArtifact>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_variables: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_in_minutes: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_variables: Option<Vec<EnvironmentVariable>>,
}

/// `ActionTypeId`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionTypeId {
    pub category: ActionCategory,
    pub owner: ActionOwner,
    pub provider: String,
    pub version: String,
}

impl ActionTypeId {
    /// pipehook's own shell-command action: owner `Custom`, provider `Command`. (AWS's built-in Commands
    /// action, owner `AWS` and provider `Commands`, is a different type and is not matched here.)
    pub fn is_command(&self) -> bool {
        self.owner == ActionOwner::Custom && self.provider == "Command"
    }

    pub fn is_source(&self) -> bool {
        self.category == ActionCategory::Source
    }

    /// AWS CodeBuild, in any category (Build or Test).
    pub fn is_codebuild(&self) -> bool {
        self.owner == ActionOwner::Aws && self.provider == "CodeBuild"
    }
}

/// `InputArtifact`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputArtifact {
    pub name: String,
}

/// `OutputArtifact`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputArtifact {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<String>>,
}

/// `EnvironmentVariable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentVariable {
    pub name: String,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#type: Option<EnvironmentVariableType>,
}

/// `PipelineVariableDeclaration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineVariableDeclaration {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `Tag`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// The most tags one resource may carry.
pub const MAX_TAGS: usize = 50;

/// The most actions one stage may hold.
pub const MAX_ACTIONS_PER_STAGE: usize = 50;

/// One model constraint that a member failed, as AWS reports it inside a `ValidationException`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstraintViolation {
    /// AWS's member path with 1-based list indices, e.g. `pipeline.stages.1.member.actions.2.member.name`.
    pub path: String,
    /// AWS's constraint text, e.g. `Member must have length less than or equal to 100`.
    pub constraint: String,
}

impl ConstraintViolation {
    pub fn message(&self) -> String {
        format!("Value at '{}' failed to satisfy constraint: {}", self.path, self.constraint)
    }
}

/// Why a pipeline, tag list or name was refused. Each variant is one AWS exception; see
/// [`PipelineError::aws_type`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipelineError {
    /// `ValidationException`: model constraints, all of them that failed, in declaration order.
    Validation(Vec<ConstraintViolation>),
    /// `SerializationException`: a member kept as JSON does not have its model shape.
    Serialization(String),
    InvalidStructure(String),
    InvalidStageDeclaration(String),
    InvalidActionDeclaration(String),
    InvalidBlockerDeclaration(String),
    InvalidTags(String),
    TooManyTags(String),
}

impl PipelineError {
    /// The AWS error code, as it goes into `__type`.
    pub fn aws_type(&self) -> &'static str {
        match self {
            PipelineError::Validation(_) => "ValidationException",
            PipelineError::Serialization(_) => "SerializationException",
            PipelineError::InvalidStructure(_) => "InvalidStructureException",
            PipelineError::InvalidStageDeclaration(_) => "InvalidStageDeclarationException",
            PipelineError::InvalidActionDeclaration(_) => "InvalidActionDeclarationException",
            PipelineError::InvalidBlockerDeclaration(_) => "InvalidBlockerDeclarationException",
            PipelineError::InvalidTags(_) => "InvalidTagsException",
            PipelineError::TooManyTags(_) => "TooManyTagsException",
        }
    }

    /// The message for the response body. Validation errors use AWS's form:
    /// `1 validation error detected: Value at '<path>' failed to satisfy constraint: <constraint>`.
    pub fn message(&self) -> String {
        match self {
            PipelineError::Validation(violations) => {
                let n = violations.len();
                let list: Vec<String> = violations.iter().map(ConstraintViolation::message).collect();
                format!("{n} validation error{} detected: {}", if n == 1 { "" } else { "s" }, list.join("; "))
            }
            PipelineError::Serialization(m)
            | PipelineError::InvalidStructure(m)
            | PipelineError::InvalidStageDeclaration(m)
            | PipelineError::InvalidActionDeclaration(m)
            | PipelineError::InvalidBlockerDeclaration(m)
            | PipelineError::InvalidTags(m)
            | PipelineError::TooManyTags(m) => m.clone(),
        }
    }
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.aws_type(), self.message())
    }
}

impl std::error::Error for PipelineError {}

/// Checks a pipeline declaration the way `CreatePipeline` and `UpdatePipeline` do; see the module docs for the
/// order of the checks.
pub fn validate(decl: &PipelineDeclaration) -> Result<(), PipelineError> {
    let mut c = Checker::default();
    let triggers = check_pipeline(&mut c, decl);
    c.finish()?;
    check_structure(decl, &triggers)
}

/// Checks the tags of `CreatePipeline` or `TagResource`. The count rule applies to the list given, so
/// `TagResource` should also check the resource's tags after merging.
pub fn validate_tags(tags: &[Tag]) -> Result<(), PipelineError> {
    let mut c = Checker::default();
    for (i, tag) in tags.iter().enumerate() {
        c.text(&format!("tags.{}.member.key", i + 1), &tag.key, TAG_KEY);
        c.text(&format!("tags.{}.member.value", i + 1), &tag.value, TAG_VALUE);
    }
    c.finish()?;
    if tags.len() > MAX_TAGS {
        return Err(PipelineError::TooManyTags(format!(
            "The tags limit for a resource has been exceeded: {} tags were given and at most {MAX_TAGS} are allowed",
            tags.len()
        )));
    }
    let mut first_index: HashMap<&str, usize> = HashMap::new();
    for (i, tag) in tags.iter().enumerate() {
        // AWS reserves the prefix in any letter case.
        if tag.key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
            return Err(PipelineError::InvalidTags(format!(
                "Tag key '{}' at 'tags.{}.member.key' is invalid: tag keys cannot start with the reserved prefix \
                 'aws:'",
                tag.key,
                i + 1
            )));
        }
        if let Some(first) = first_index.get(tag.key.as_str()) {
            return Err(PipelineError::InvalidTags(format!(
                "Tag key '{}' appears more than once, at 'tags.{}.member.key' and 'tags.{}.member.key': tag keys \
                 must be unique",
                tag.key,
                first + 1,
                i + 1
            )));
        }
        first_index.insert(&tag.key, i);
    }
    Ok(())
}

/// Checks a pipeline name given on its own (`GetPipeline`, `DeletePipeline`, `StartPipelineExecution`, ...),
/// whose member path is `name`.
pub fn validate_pipeline_name(name: &str) -> Result<(), PipelineError> {
    let mut c = Checker::default();
    c.text("name", name, PIPELINE_NAME);
    c.finish()
}

// ---------------------------------------------------------------------------------------------------------
// Model constraints. Each constant names its model shape so the model test can compare them one by one.
// ---------------------------------------------------------------------------------------------------------

/// A model `pattern` and a matcher for it. The model's patterns are character classes under `+` or `*`, plus the
/// role ARN, so each gets an exact hand-written matcher instead of a regex engine. Like AWS (which matches the
/// whole value, Java-style), a matcher accepts the entire string or nothing.
#[derive(Clone, Copy)]
struct Pattern {
    model: &'static str,
    matches: fn(&str) -> bool,
}

/// What Java's `.` matches: anything but a line terminator.
fn java_dot(c: char) -> bool {
    !matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn one_or_more(s: &str, allowed: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.chars().all(allowed)
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `arn:aws(-[\w]+)*:iam::[0-9]{12}:role/.*`. `\w` is ASCII-only in Java, and the partition suffixes cannot contain
/// `-` or `:`, so consuming them greedily is exactly what the regex accepts.
fn matches_role_arn(s: &str) -> bool {
    let Some(mut rest) = s.strip_prefix("arn:aws") else {
        return false;
    };
    while let Some(after_dash) = rest.strip_prefix('-') {
        let word_len = after_dash.find(|c: char| !is_word(c)).unwrap_or(after_dash.len());
        if word_len == 0 {
            return false;
        }
        rest = &after_dash[word_len..];
    }
    let Some(rest) = rest.strip_prefix(":iam::") else {
        return false;
    };
    // `get` rather than slicing: a multi-byte character may straddle byte 12.
    let Some(account) = rest.get(..12) else {
        return false;
    };
    account.bytes().all(|b| b.is_ascii_digit())
        && rest[12..].strip_prefix(":role/").is_some_and(|path| path.chars().all(java_dot))
}

const NAME_PATTERN: Pattern = Pattern {
    model: r"[A-Za-z0-9.@\-_]+",
    matches: |s| one_or_more(s, |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '-' | '_')),
};
const ROLE_ARN_PATTERN: Pattern =
    Pattern { model: r"arn:aws(-[\w]+)*:iam::[0-9]{12}:role/.*", matches: matches_role_arn };
const BUCKET_PATTERN: Pattern = Pattern {
    model: r"[a-zA-Z0-9\-\.]+",
    matches: |s| one_or_more(s, |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.')),
};
const PROVIDER_PATTERN: Pattern =
    Pattern { model: "[0-9A-Za-z_-]+", matches: |s| one_or_more(s, |c| is_word(c) || c == '-') };
const ARTIFACT_NAME_PATTERN: Pattern =
    Pattern { model: r"[a-zA-Z0-9_\-]+", matches: |s| one_or_more(s, |c| is_word(c) || c == '-') };
const NAMESPACE_PATTERN: Pattern = Pattern {
    model: r"[A-Za-z0-9@\-_]+",
    matches: |s| one_or_more(s, |c| c.is_ascii_alphanumeric() || matches!(c, '@' | '-' | '_')),
};
const ENV_NAME_PATTERN: Pattern = Pattern { model: "[A-Za-z0-9_]+", matches: |s| one_or_more(s, is_word) };
const ANY_PATTERN: Pattern = Pattern { model: ".*", matches: |s| s.chars().all(java_dot) };

/// A string shape's `min`, `max` and `pattern`. An absent `min` is 0, which never fails.
#[derive(Clone, Copy)]
struct StrRule {
    /// The model shape; only the model test reads it.
    #[cfg_attr(not(test), allow(dead_code))]
    shape: &'static str,
    min: usize,
    max: Option<usize>,
    pattern: Option<Pattern>,
}

const fn s(shape: &'static str, min: usize, max: usize, pattern: Option<Pattern>) -> StrRule {
    StrRule { shape, min, max: Some(max), pattern }
}

const PIPELINE_NAME: StrRule = s("PipelineName", 1, 100, Some(NAME_PATTERN));
const ROLE_ARN: StrRule = s("RoleArn", 0, 1024, Some(ROLE_ARN_PATTERN));
const ARTIFACT_STORE_LOCATION: StrRule = s("ArtifactStoreLocation", 3, 63, Some(BUCKET_PATTERN));
const ENCRYPTION_KEY_ID: StrRule = s("EncryptionKeyId", 1, 400, None);
const AWS_REGION_NAME: StrRule = s("AWSRegionName", 4, 30, None);
const STAGE_NAME: StrRule = s("StageName", 1, 100, Some(NAME_PATTERN));
const BLOCKER_NAME: StrRule = s("BlockerName", 1, 100, None);
const ACTION_NAME: StrRule = s("ActionName", 1, 100, Some(NAME_PATTERN));
const ACTION_PROVIDER: StrRule = s("ActionProvider", 1, 35, Some(PROVIDER_PATTERN));
const VERSION: StrRule = s("Version", 1, 9, Some(PROVIDER_PATTERN));
const ACTION_CONFIGURATION_KEY: StrRule = s("ActionConfigurationKey", 1, 50, None);
const ACTION_CONFIGURATION_VALUE: StrRule = s("ActionConfigurationValue", 1, 1000, None);
const COMMAND: StrRule = s("Command", 1, 1000, None);
const ARTIFACT_NAME: StrRule = s("ArtifactName", 1, 100, Some(ARTIFACT_NAME_PATTERN));
const FILE_PATH: StrRule = s("FilePath", 1, 128, None);
const OUTPUT_VARIABLE: StrRule = s("OutputVariable", 1, 128, None);
const ACTION_NAMESPACE: StrRule = s("ActionNamespace", 1, 100, Some(NAMESPACE_PATTERN));
const ENVIRONMENT_VARIABLE_NAME: StrRule = s("EnvironmentVariableName", 1, 128, Some(ENV_NAME_PATTERN));
const ENVIRONMENT_VARIABLE_VALUE: StrRule = s("EnvironmentVariableValue", 1, 2000, Some(ANY_PATTERN));
const PIPELINE_VARIABLE_NAME: StrRule = s("PipelineVariableName", 1, 128, Some(NAMESPACE_PATTERN));
const PIPELINE_VARIABLE_VALUE: StrRule = s("PipelineVariableValue", 1, 1000, Some(ANY_PATTERN));
const PIPELINE_VARIABLE_DESCRIPTION: StrRule = s("PipelineVariableDescription", 0, 200, Some(ANY_PATTERN));
const TAG_KEY: StrRule = s("TagKey", 1, 128, None);
const TAG_VALUE: StrRule = s("TagValue", 0, 256, None);
const RULE_NAME: StrRule = s("RuleName", 1, 100, Some(NAME_PATTERN));
const RULE_PROVIDER: StrRule = s("RuleProvider", 1, 35, Some(PROVIDER_PATTERN));
const RULE_CONFIGURATION_KEY: StrRule = s("RuleConfigurationKey", 1, 50, None);
const RULE_CONFIGURATION_VALUE: StrRule = s("RuleConfigurationValue", 1, 10000, None);
const GIT_TAG_NAME_PATTERN: StrRule = s("GitTagNamePattern", 1, 255, None);
const GIT_BRANCH_NAME_PATTERN: StrRule = s("GitBranchNamePattern", 1, 255, Some(ANY_PATTERN));
const GIT_FILE_PATH_PATTERN: StrRule = s("GitFilePathPattern", 1, 255, Some(ANY_PATTERN));

/// An integer shape's range, or a list or map shape's bounds on its number of members.
#[derive(Clone, Copy)]
struct Bounds {
    /// The model shape; only the model test reads it.
    #[cfg_attr(not(test), allow(dead_code))]
    shape: &'static str,
    min: Option<i64>,
    max: Option<i64>,
}

const fn b(shape: &'static str, min: Option<i64>, max: Option<i64>) -> Bounds {
    Bounds { shape, min, max }
}

const ACTION_RUN_ORDER: Bounds = b("ActionRunOrder", Some(1), Some(999));
const ACTION_TIMEOUT: Bounds = b("ActionTimeout", Some(5), Some(86400));
const PIPELINE_VERSION: Bounds = b("PipelineVersion", Some(1), None);
const RULE_TIMEOUT: Bounds = b("RuleTimeout", Some(5), Some(86400));

const COMMAND_LIST: Bounds = b("CommandList", Some(1), Some(50));
const FILE_PATH_LIST: Bounds = b("FilePathList", Some(1), Some(10));
const OUTPUT_VARIABLE_LIST: Bounds = b("OutputVariableList", Some(1), Some(15));
const ENVIRONMENT_VARIABLE_LIST: Bounds = b("EnvironmentVariableList", Some(1), Some(10));
const PIPELINE_VARIABLE_LIST: Bounds = b("PipelineVariableDeclarationList", None, Some(50));
const PIPELINE_TRIGGER_LIST: Bounds = b("PipelineTriggerDeclarationList", None, Some(50));
const CONDITION_LIST: Bounds = b("ConditionList", Some(1), Some(1));
const RULE_DECLARATION_LIST: Bounds = b("RuleDeclarationList", Some(1), Some(5));
const RULE_CONFIGURATION_MAP: Bounds = b("RuleConfigurationMap", Some(0), Some(200));
const GIT_PUSH_FILTER_LIST: Bounds = b("GitPushFilterList", Some(1), Some(3));
const GIT_PULL_REQUEST_FILTER_LIST: Bounds = b("GitPullRequestFilterList", Some(1), Some(3));
const GIT_TAG_PATTERN_LIST: Bounds = b("GitTagPatternList", Some(1), Some(8));
const GIT_BRANCH_PATTERN_LIST: Bounds = b("GitBranchPatternList", Some(1), Some(8));
const GIT_FILE_PATH_PATTERN_LIST: Bounds = b("GitFilePathPatternList", Some(1), Some(8));
const GIT_PULL_REQUEST_EVENT_TYPE_LIST: Bounds = b("GitPullRequestEventTypeList", Some(1), Some(3));

// ---------------------------------------------------------------------------------------------------------
// The members kept as JSON, typed here only to check them. Serde's enums make unknown strings fail, as the
// model's enums do; unknown fields are ignored as everywhere else.
// ---------------------------------------------------------------------------------------------------------

/// Private mirrors of model shapes. Some members are only ever deserialized (their enum is the whole check), so
/// the compiler would call them unread.
#[allow(dead_code)]
mod shapes {
    use super::InputArtifact;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct PipelineTriggerDeclaration {
        pub provider_type: PipelineTriggerProviderType,
        pub git_configuration: GitConfiguration,
    }

    #[derive(Deserialize)]
    pub enum PipelineTriggerProviderType {
        CodeStarSourceConnection,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct GitConfiguration {
        pub source_action_name: String,
        pub push: Option<Vec<GitPushFilter>>,
        pub pull_request: Option<Vec<GitPullRequestFilter>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct GitPushFilter {
        pub tags: Option<FilterCriteria>,
        pub branches: Option<FilterCriteria>,
        pub file_paths: Option<FilterCriteria>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct GitPullRequestFilter {
        pub events: Option<Vec<GitPullRequestEventType>>,
        pub branches: Option<FilterCriteria>,
        pub file_paths: Option<FilterCriteria>,
    }

    /// `GitTagFilterCriteria`, `GitBranchFilterCriteria` and `GitFilePathFilterCriteria` share this form.
    #[derive(Deserialize)]
    pub struct FilterCriteria {
        pub includes: Option<Vec<String>>,
        pub excludes: Option<Vec<String>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum GitPullRequestEventType {
        Open,
        Updated,
        Closed,
    }

    /// `FailureConditions`.
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct FailureConditions {
        pub result: Option<ConditionResult>,
        pub retry_configuration: Option<RetryConfiguration>,
        pub conditions: Option<Vec<Condition>>,
    }

    /// `SuccessConditions` and `BeforeEntryConditions`, which have the same members.
    #[derive(Deserialize)]
    pub struct RequiredConditions {
        pub conditions: Vec<Condition>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct RetryConfiguration {
        pub retry_mode: Option<StageRetryMode>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum StageRetryMode {
        FailedActions,
        AllActions,
    }

    /// The model's `Result` enum.
    #[derive(Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum ConditionResult {
        Rollback,
        Fail,
        Retry,
        Skip,
    }

    #[derive(Deserialize)]
    pub struct Condition {
        pub result: Option<ConditionResult>,
        pub rules: Option<Vec<RuleDeclaration>>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct RuleDeclaration {
        pub name: String,
        pub rule_type_id: RuleTypeId,
        pub configuration: Option<BTreeMap<String, String>>,
        pub commands: Option<Vec<String>>,
        pub input_artifacts: Option<Vec<InputArtifact>>,
        pub role_arn: Option<String>,
        pub region: Option<String>,
        pub timeout_in_minutes: Option<i32>,
    }

    #[derive(Deserialize)]
    pub struct RuleTypeId {
        pub category: RuleCategory,
        pub owner: Option<RuleOwner>,
        pub provider: String,
        pub version: Option<String>,
    }

    #[derive(Deserialize)]
    pub enum RuleCategory {
        Rule,
    }

    #[derive(Deserialize)]
    pub enum RuleOwner {
        #[serde(rename = "AWS")]
        Aws,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Pass 1 and 2: shapes and model constraints.
// ---------------------------------------------------------------------------------------------------------

/// Collects violations while walking a declaration, so that one response lists all of them, as AWS's does.
#[derive(Default)]
struct Checker {
    violations: Vec<ConstraintViolation>,
    /// The first member kept as JSON that does not have its model shape. It outranks every violation because AWS
    /// would not have got as far as validating.
    unreadable: Option<String>,
}

impl Checker {
    fn violate(&mut self, path: &str, constraint: String) {
        self.violations.push(ConstraintViolation { path: path.to_owned(), constraint });
    }

    fn text(&mut self, path: &str, value: &str, rule: StrRule) {
        if let Some(constraint) = text_violation(value, rule) {
            self.violate(path, constraint);
        }
    }

    fn opt_text(&mut self, path: &str, value: Option<&String>, rule: StrRule) {
        if let Some(value) = value {
            self.text(path, value, rule);
        }
    }

    fn int(&mut self, path: &str, value: Option<i32>, bounds: Bounds) {
        let Some(value) = value.map(i64::from) else { return };
        if let Some(min) = bounds.min.filter(|&min| value < min) {
            self.violate(path, format!("Member must have value greater than or equal to {min}"));
        } else if let Some(max) = bounds.max.filter(|&max| value > max) {
            self.violate(path, format!("Member must have value less than or equal to {max}"));
        }
    }

    /// The member-count bounds of a list or map; AWS calls the count its length.
    fn count(&mut self, path: &str, len: usize, bounds: Bounds) {
        let len = i64::try_from(len).unwrap_or(i64::MAX);
        if let Some(min) = bounds.min.filter(|&min| len < min) {
            self.violate(path, format!("Member must have length greater than or equal to {min}"));
        } else if let Some(max) = bounds.max.filter(|&max| len > max) {
            self.violate(path, format!("Member must have length less than or equal to {max}"));
        }
    }

    /// A list of strings: its count, then each member at `<path>.<n>.member`.
    fn texts(&mut self, path: &str, items: Option<&Vec<String>>, list: Bounds, item: StrRule) {
        let Some(items) = items else { return };
        self.count(path, items.len(), list);
        for (i, value) in items.iter().enumerate() {
            self.text(&format!("{path}.{}.member", i + 1), value, item);
        }
    }

    /// A string-to-string map. AWS reports a bad key or value once for the whole map, listing the shape's
    /// constraints, so the path names the map and not the entry.
    fn string_map(&mut self, path: &str, map: Option<&BTreeMap<String, String>>, key: StrRule, value: StrRule) {
        let Some(map) = map else { return };
        if map.keys().any(|k| text_violation(k, key).is_some()) {
            self.violate(path, format!("Map keys must satisfy constraint: {}", constraint_list(key)));
        }
        if map.values().any(|v| text_violation(v, value).is_some()) {
            self.violate(path, format!("Map value must satisfy constraint: {}", constraint_list(value)));
        }
    }

    /// Reads a member kept as JSON into its model shape, noting the first one that does not fit.
    fn read<T: DeserializeOwned>(&mut self, path: &str, shape: &str, value: &Value) -> Option<T> {
        match T::deserialize(value) {
            Ok(parsed) => Some(parsed),
            Err(e) => {
                if self.unreadable.is_none() {
                    self.unreadable = Some(format!("Value at '{path}' could not be read as {shape}: {e}"));
                }
                None
            }
        }
    }

    fn finish(self) -> Result<(), PipelineError> {
        if let Some(message) = self.unreadable {
            Err(PipelineError::Serialization(message))
        } else if !self.violations.is_empty() {
            Err(PipelineError::Validation(self.violations))
        } else {
            Ok(())
        }
    }
}

/// The first constraint of `rule` that `value` fails, in AWS's words. Lengths count Unicode code points.
fn text_violation(value: &str, rule: StrRule) -> Option<String> {
    let len = value.chars().count();
    if len < rule.min {
        return Some(format!("Member must have length greater than or equal to {}", rule.min));
    }
    if let Some(max) = rule.max.filter(|&max| len > max) {
        return Some(format!("Member must have length less than or equal to {max}"));
    }
    match rule.pattern {
        Some(p) if !(p.matches)(value) => Some(format!("Member must satisfy regular expression pattern: {}", p.model)),
        _ => None,
    }
}

/// All constraints of a string shape, bracketed the way AWS lists them for map keys and values.
fn constraint_list(rule: StrRule) -> String {
    let mut parts = Vec::new();
    if let Some(max) = rule.max {
        parts.push(format!("Member must have length less than or equal to {max}"));
    }
    if rule.min > 0 {
        parts.push(format!("Member must have length greater than or equal to {}", rule.min));
    }
    if let Some(p) = rule.pattern {
        parts.push(format!("Member must satisfy regular expression pattern: {}", p.model));
    }
    format!("[{}]", parts.join(", "))
}

/// Walks the declaration for passes 1 and 2 and returns the triggers, read, for the structural pass.
fn check_pipeline(c: &mut Checker, d: &PipelineDeclaration) -> Vec<shapes::PipelineTriggerDeclaration> {
    c.text("pipeline.name", &d.name, PIPELINE_NAME);
    c.text("pipeline.roleArn", &d.role_arn, ROLE_ARN);
    if let Some(store) = &d.artifact_store {
        check_artifact_store(c, "pipeline.artifactStore", store);
    }
    if let Some(stores) = &d.artifact_stores {
        if stores.keys().any(|k| text_violation(k, AWS_REGION_NAME).is_some()) {
            let constraint = format!("Map keys must satisfy constraint: {}", constraint_list(AWS_REGION_NAME));
            c.violate("pipeline.artifactStores", constraint);
        }
        for (region, store) in stores {
            check_artifact_store(c, &format!("pipeline.artifactStores.{region}"), store);
        }
    }
    for (i, stage) in d.stages.iter().enumerate() {
        check_stage(c, &format!("pipeline.stages.{}.member", i + 1), stage);
    }
    c.int("pipeline.version", d.version, PIPELINE_VERSION);
    if let Some(variables) = &d.variables {
        c.count("pipeline.variables", variables.len(), PIPELINE_VARIABLE_LIST);
        for (i, v) in variables.iter().enumerate() {
            let p = format!("pipeline.variables.{}.member", i + 1);
            c.text(&format!("{p}.name"), &v.name, PIPELINE_VARIABLE_NAME);
            c.opt_text(&format!("{p}.defaultValue"), v.default_value.as_ref(), PIPELINE_VARIABLE_VALUE);
            c.opt_text(&format!("{p}.description"), v.description.as_ref(), PIPELINE_VARIABLE_DESCRIPTION);
        }
    }
    let mut triggers = Vec::new();
    if let Some(values) = &d.triggers {
        c.count("pipeline.triggers", values.len(), PIPELINE_TRIGGER_LIST);
        for (i, value) in values.iter().enumerate() {
            let p = format!("pipeline.triggers.{}.member", i + 1);
            if let Some(trigger) = c.read::<shapes::PipelineTriggerDeclaration>(&p, "PipelineTriggerDeclaration", value)
            {
                check_trigger(c, &p, &trigger);
                triggers.push(trigger);
            }
        }
    }
    triggers
}

fn check_artifact_store(c: &mut Checker, path: &str, store: &ArtifactStore) {
    c.text(&format!("{path}.location"), &store.location, ARTIFACT_STORE_LOCATION);
    if let Some(key) = &store.encryption_key {
        c.text(&format!("{path}.encryptionKey.id"), &key.id, ENCRYPTION_KEY_ID);
    }
}

fn check_stage(c: &mut Checker, path: &str, stage: &StageDeclaration) {
    c.text(&format!("{path}.name"), &stage.name, STAGE_NAME);
    for (i, blocker) in stage.blockers.iter().flatten().enumerate() {
        c.text(&format!("{path}.blockers.{}.member.name", i + 1), &blocker.name, BLOCKER_NAME);
    }
    for (i, action) in stage.actions.iter().enumerate() {
        check_action(c, &format!("{path}.actions.{}.member", i + 1), action);
    }
    if let Some(value) = &stage.on_failure {
        let p = format!("{path}.onFailure");
        if let Some(on_failure) = c.read::<shapes::FailureConditions>(&p, "FailureConditions", value) {
            if let Some(conditions) = &on_failure.conditions {
                check_conditions(c, &format!("{p}.conditions"), conditions);
            }
        }
    }
    for (member, shape, value) in [
        ("onSuccess", "SuccessConditions", &stage.on_success),
        ("beforeEntry", "BeforeEntryConditions", &stage.before_entry),
    ] {
        let Some(value) = value else { continue };
        let p = format!("{path}.{member}");
        if let Some(parsed) = c.read::<shapes::RequiredConditions>(&p, shape, value) {
            check_conditions(c, &format!("{p}.conditions"), &parsed.conditions);
        }
    }
}

fn check_action(c: &mut Checker, path: &str, a: &ActionDeclaration) {
    c.text(&format!("{path}.name"), &a.name, ACTION_NAME);
    c.text(&format!("{path}.actionTypeId.provider"), &a.action_type_id.provider, ACTION_PROVIDER);
    c.text(&format!("{path}.actionTypeId.version"), &a.action_type_id.version, VERSION);
    c.int(&format!("{path}.runOrder"), a.run_order, ACTION_RUN_ORDER);
    c.string_map(
        &format!("{path}.configuration"),
        a.configuration.as_ref(),
        ACTION_CONFIGURATION_KEY,
        ACTION_CONFIGURATION_VALUE,
    );
    c.texts(&format!("{path}.commands"), a.commands.as_ref(), COMMAND_LIST, COMMAND);
    for (i, out) in a.output_artifacts.iter().flatten().enumerate() {
        let p = format!("{path}.outputArtifacts.{}.member", i + 1);
        c.text(&format!("{p}.name"), &out.name, ARTIFACT_NAME);
        c.texts(&format!("{p}.files"), out.files.as_ref(), FILE_PATH_LIST, FILE_PATH);
    }
    for (i, input) in a.input_artifacts.iter().flatten().enumerate() {
        c.text(&format!("{path}.inputArtifacts.{}.member.name", i + 1), &input.name, ARTIFACT_NAME);
    }
    c.texts(&format!("{path}.outputVariables"), a.output_variables.as_ref(), OUTPUT_VARIABLE_LIST, OUTPUT_VARIABLE);
    c.opt_text(&format!("{path}.roleArn"), a.role_arn.as_ref(), ROLE_ARN);
    c.opt_text(&format!("{path}.region"), a.region.as_ref(), AWS_REGION_NAME);
    c.opt_text(&format!("{path}.namespace"), a.namespace.as_ref(), ACTION_NAMESPACE);
    c.int(&format!("{path}.timeoutInMinutes"), a.timeout_in_minutes, ACTION_TIMEOUT);
    if let Some(vars) = &a.environment_variables {
        c.count(&format!("{path}.environmentVariables"), vars.len(), ENVIRONMENT_VARIABLE_LIST);
        for (i, v) in vars.iter().enumerate() {
            let p = format!("{path}.environmentVariables.{}.member", i + 1);
            c.text(&format!("{p}.name"), &v.name, ENVIRONMENT_VARIABLE_NAME);
            c.text(&format!("{p}.value"), &v.value, ENVIRONMENT_VARIABLE_VALUE);
        }
    }
}

fn check_conditions(c: &mut Checker, path: &str, conditions: &[shapes::Condition]) {
    c.count(path, conditions.len(), CONDITION_LIST);
    for (i, condition) in conditions.iter().enumerate() {
        let Some(rules) = &condition.rules else { continue };
        let rules_path = format!("{path}.{}.member.rules", i + 1);
        c.count(&rules_path, rules.len(), RULE_DECLARATION_LIST);
        for (j, rule) in rules.iter().enumerate() {
            let p = format!("{rules_path}.{}.member", j + 1);
            c.text(&format!("{p}.name"), &rule.name, RULE_NAME);
            c.text(&format!("{p}.ruleTypeId.provider"), &rule.rule_type_id.provider, RULE_PROVIDER);
            c.opt_text(&format!("{p}.ruleTypeId.version"), rule.rule_type_id.version.as_ref(), VERSION);
            if let Some(config) = &rule.configuration {
                c.count(&format!("{p}.configuration"), config.len(), RULE_CONFIGURATION_MAP);
            }
            c.string_map(
                &format!("{p}.configuration"),
                rule.configuration.as_ref(),
                RULE_CONFIGURATION_KEY,
                RULE_CONFIGURATION_VALUE,
            );
            c.texts(&format!("{p}.commands"), rule.commands.as_ref(), COMMAND_LIST, COMMAND);
            for (k, input) in rule.input_artifacts.iter().flatten().enumerate() {
                c.text(&format!("{p}.inputArtifacts.{}.member.name", k + 1), &input.name, ARTIFACT_NAME);
            }
            c.opt_text(&format!("{p}.roleArn"), rule.role_arn.as_ref(), ROLE_ARN);
            c.opt_text(&format!("{p}.region"), rule.region.as_ref(), AWS_REGION_NAME);
            c.int(&format!("{p}.timeoutInMinutes"), rule.timeout_in_minutes, RULE_TIMEOUT);
        }
    }
}

fn check_trigger(c: &mut Checker, path: &str, trigger: &shapes::PipelineTriggerDeclaration) {
    let git = &trigger.git_configuration;
    let p = format!("{path}.gitConfiguration");
    c.text(&format!("{p}.sourceActionName"), &git.source_action_name, ACTION_NAME);
    if let Some(push) = &git.push {
        c.count(&format!("{p}.push"), push.len(), GIT_PUSH_FILTER_LIST);
        for (i, filter) in push.iter().enumerate() {
            let fp = format!("{p}.push.{}.member", i + 1);
            check_filter(c, &format!("{fp}.tags"), filter.tags.as_ref(), GIT_TAG_PATTERN_LIST, GIT_TAG_NAME_PATTERN);
            check_filter(
                c,
                &format!("{fp}.branches"),
                filter.branches.as_ref(),
                GIT_BRANCH_PATTERN_LIST,
                GIT_BRANCH_NAME_PATTERN,
            );
            check_filter(
                c,
                &format!("{fp}.filePaths"),
                filter.file_paths.as_ref(),
                GIT_FILE_PATH_PATTERN_LIST,
                GIT_FILE_PATH_PATTERN,
            );
        }
    }
    if let Some(pull) = &git.pull_request {
        c.count(&format!("{p}.pullRequest"), pull.len(), GIT_PULL_REQUEST_FILTER_LIST);
        for (i, filter) in pull.iter().enumerate() {
            let fp = format!("{p}.pullRequest.{}.member", i + 1);
            if let Some(events) = &filter.events {
                c.count(&format!("{fp}.events"), events.len(), GIT_PULL_REQUEST_EVENT_TYPE_LIST);
            }
            check_filter(
                c,
                &format!("{fp}.branches"),
                filter.branches.as_ref(),
                GIT_BRANCH_PATTERN_LIST,
                GIT_BRANCH_NAME_PATTERN,
            );
            check_filter(
                c,
                &format!("{fp}.filePaths"),
                filter.file_paths.as_ref(),
                GIT_FILE_PATH_PATTERN_LIST,
                GIT_FILE_PATH_PATTERN,
            );
        }
    }
}

fn check_filter(c: &mut Checker, path: &str, criteria: Option<&shapes::FilterCriteria>, list: Bounds, item: StrRule) {
    let Some(criteria) = criteria else { return };
    c.texts(&format!("{path}.includes"), criteria.includes.as_ref(), list, item);
    c.texts(&format!("{path}.excludes"), criteria.excludes.as_ref(), list, item);
}

// ---------------------------------------------------------------------------------------------------------
// Pass 3: structural rules. Each returns the first failure; AWS reports these one at a time too.
// ---------------------------------------------------------------------------------------------------------

fn stage_path(i: usize) -> String {
    format!("pipeline.stages.{}.member", i + 1)
}

fn action_path(stage: usize, action: usize) -> String {
    format!("{}.actions.{}.member", stage_path(stage), action + 1)
}

fn check_structure(
    d: &PipelineDeclaration,
    triggers: &[shapes::PipelineTriggerDeclaration],
) -> Result<(), PipelineError> {
    use PipelineError::{
        InvalidActionDeclaration, InvalidBlockerDeclaration, InvalidStageDeclaration, InvalidStructure,
    };

    match (&d.artifact_store, &d.artifact_stores) {
        (Some(_), Some(_)) => {
            return Err(InvalidStructure(
                "Pipeline declares both 'pipeline.artifactStore' and 'pipeline.artifactStores': declare exactly \
                 one of them (artifactStores when the pipeline has cross-region actions)"
                    .into(),
            ))
        }
        (None, None) => {
            return Err(InvalidStructure(
                "Pipeline declares neither 'pipeline.artifactStore' nor 'pipeline.artifactStores': declare exactly \
                 one of them"
                    .into(),
            ))
        }
        _ => {}
    }

    if d.stages.len() < 2 {
        return Err(InvalidStructure(format!(
            "Pipeline has only {} stage(s). There should be a minimum of 2 stages in a pipeline",
            d.stages.len()
        )));
    }

    let mut stage_index: HashMap<&str, usize> = HashMap::new();
    for (i, stage) in d.stages.iter().enumerate() {
        if let Some(&first) = stage_index.get(stage.name.as_str()) {
            return Err(InvalidStructure(format!(
                "Stage names must be unique within a pipeline: '{}' is the name of both '{}' and '{}'",
                stage.name,
                stage_path(first),
                stage_path(i)
            )));
        }
        stage_index.insert(&stage.name, i);
    }

    for (si, stage) in d.stages.iter().enumerate() {
        let n = stage.actions.len();
        if !(1..=MAX_ACTIONS_PER_STAGE).contains(&n) {
            return Err(InvalidStageDeclaration(format!(
                "Stage '{}' at '{}' has {n} actions: a stage must have between 1 and {MAX_ACTIONS_PER_STAGE} actions",
                stage.name,
                stage_path(si)
            )));
        }
        let mut action_index: HashMap<&str, usize> = HashMap::new();
        for (ai, action) in stage.actions.iter().enumerate() {
            if let Some(&first) = action_index.get(action.name.as_str()) {
                return Err(InvalidActionDeclaration(format!(
                    "Action names must be unique within a stage: stage '{}' has two actions named '{}', at '{}' and \
                     '{}'",
                    stage.name,
                    action.name,
                    action_path(si, first),
                    action_path(si, ai)
                )));
            }
            action_index.insert(&action.name, ai);
        }
        let mut blocker_names: HashMap<&str, usize> = HashMap::new();
        for (bi, blocker) in stage.blockers.iter().flatten().enumerate() {
            if let Some(&first) = blocker_names.get(blocker.name.as_str()) {
                return Err(InvalidBlockerDeclaration(format!(
                    "Blocker names must be unique within a stage: stage '{}' has two blockers named '{}', at \
                     '{}.blockers.{}.member' and '{}.blockers.{}.member'",
                    stage.name,
                    blocker.name,
                    stage_path(si),
                    first + 1,
                    stage_path(si),
                    bi + 1
                )));
            }
            blocker_names.insert(&blocker.name, bi);
        }
    }

    // Source actions start a pipeline, so they belong to the first stage and only there.
    for (si, stage) in d.stages.iter().enumerate() {
        for (ai, action) in stage.actions.iter().enumerate() {
            let source = action.action_type_id.is_source();
            if si == 0 && !source {
                return Err(InvalidStructure(format!(
                    "Pipeline should start with a stage that only contains source actions: action '{}' at '{}' in \
                     the first stage '{}' has category '{}'",
                    action.name,
                    action_path(si, ai),
                    stage.name,
                    action.action_type_id.category
                )));
            }
            if si > 0 && source {
                return Err(InvalidStructure(format!(
                    "Source actions can only be in the first stage of a pipeline: action '{}' at '{}' in stage '{}' \
                     has category 'Source'",
                    action.name,
                    action_path(si, ai),
                    stage.name
                )));
            }
        }
    }

    // Action variables are addressed by namespace alone, so two actions may not share one.
    let mut namespaces: HashSet<&str> = HashSet::new();
    for (si, stage) in d.stages.iter().enumerate() {
        for (ai, action) in stage.actions.iter().enumerate() {
            let Some(ns) = action.namespace.as_deref() else { continue };
            if !namespaces.insert(ns) {
                return Err(InvalidActionDeclaration(format!(
                    "Namespaces must be unique across the pipeline definition. The following occur more than once in \
                     the pipeline. StageName=[{}], ActionName=[{}], Namespace=[{ns}] (at '{}.namespace')",
                    stage.name,
                    action.name,
                    action_path(si, ai)
                )));
            }
        }
    }

    check_artifacts(d)?;

    // With artifactStores, every cross-region action needs a store in its Region.
    if let Some(stores) = &d.artifact_stores {
        for (si, stage) in d.stages.iter().enumerate() {
            for (ai, action) in stage.actions.iter().enumerate() {
                let Some(region) = action.region.as_deref() else { continue };
                if !stores.contains_key(region) {
                    return Err(InvalidStructure(format!(
                        "Action '{}' at '{}' in stage '{}' runs in Region '{region}', but 'pipeline.artifactStores' \
                         has no artifact store for that Region",
                        action.name,
                        action_path(si, ai),
                        stage.name
                    )));
                }
            }
        }
    }

    let mut variable_index: HashMap<&str, usize> = HashMap::new();
    for (i, variable) in d.variables.iter().flatten().enumerate() {
        if let Some(&first) = variable_index.get(variable.name.as_str()) {
            return Err(InvalidStructure(format!(
                "Pipeline variable names must be unique: '{}' is declared at 'pipeline.variables.{}.member' and \
                 'pipeline.variables.{}.member'",
                variable.name,
                first + 1,
                i + 1
            )));
        }
        variable_index.insert(&variable.name, i);
    }

    // A trigger starts the pipeline through one of its source actions, which all live in the first stage.
    for (i, trigger) in triggers.iter().enumerate() {
        let name = &trigger.git_configuration.source_action_name;
        if !d.stages[0].actions.iter().any(|a| &a.name == name) {
            return Err(InvalidStructure(format!(
                "Trigger at 'pipeline.triggers.{}.member' names source action '{name}', which is not an action of the \
                 first stage '{}'",
                i + 1,
                d.stages[0].name
            )));
        }
    }

    Ok(())
}

/// Output artifact names are unique in the pipeline, and every input artifact is the output of an action that
/// finishes before the consumer starts: one in an earlier stage, or in the same stage with a lower runOrder.
fn check_artifacts(d: &PipelineDeclaration) -> Result<(), PipelineError> {
    let mut producers: HashMap<&str, String> = HashMap::new();
    for (si, stage) in d.stages.iter().enumerate() {
        for (ai, action) in stage.actions.iter().enumerate() {
            for (oi, out) in action.output_artifacts.iter().flatten().enumerate() {
                let here = format!("{}.outputArtifacts.{}.member.name", action_path(si, ai), oi + 1);
                if let Some(first) = producers.get(out.name.as_str()) {
                    return Err(PipelineError::InvalidStructure(format!(
                        "Output Artifact Bundle name must be unique within the pipeline. {} has been used more than \
                         once: at '{first}' and at '{here}'",
                        out.name
                    )));
                }
                producers.insert(&out.name, here);
            }
        }
    }

    let mut available: HashSet<&str> = HashSet::new();
    for (si, stage) in d.stages.iter().enumerate() {
        for group in stage.indexed_run_groups() {
            for &(ai, action) in &group {
                for (ii, input) in action.input_artifacts.iter().flatten().enumerate() {
                    if available.contains(input.name.as_str()) {
                        continue;
                    }
                    let here = format!("{}.inputArtifacts.{}.member.name", action_path(si, ai), ii + 1);
                    let why = match producers.get(input.name.as_str()) {
                        Some(producer) => format!("it is produced at '{producer}', which does not run before it"),
                        None => "no action in the pipeline produces it".to_owned(),
                    };
                    return Err(PipelineError::InvalidStructure(format!(
                        "Input artifact '{}' of action '{}' in stage '{}' (at '{here}') must be the output artifact of \
                         a preceding action: {why}",
                        input.name, action.name, stage.name
                    )));
                }
            }
            // Outputs become available only after the whole group, because its actions run in parallel.
            for (_, action) in group {
                available.extend(action.output_artifacts.iter().flatten().map(|o| o.name.as_str()));
            }
        }
    }
    Ok(())
}

/// Action configuration keys whose values are secrets (CodePipeline's `secret: true` properties of the
/// GitHub-style source actions): stored encrypted, shown as [`SECRET_MASK`].
pub const SECRET_CONFIGURATION_KEYS: [&str; 1] = ["OAuthToken"];

/// What every read shows in place of a secret configuration value.
pub const SECRET_MASK: &str = "****";

/// A configuration object (JSON) with every secret value replaced by [`SECRET_MASK`].
pub fn mask_configuration(config: &serde_json::Value) -> serde_json::Value {
    let mut out = config.clone();
    if let Some(map) = out.as_object_mut() {
        for key in SECRET_CONFIGURATION_KEYS {
            if map.contains_key(key) {
                map.insert(key.to_owned(), serde_json::Value::String(SECRET_MASK.to_owned()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A valid pipeline that uses every member of the model at least once.
    fn valid() -> Value {
        json!({
            "name": "web-app.main@1",
            "roleArn": "arn:aws:iam::123456789012:role/pipehook-service",
            "artifactStore": {
                "type": "S3",
                "location": "pipehook-artifacts",
                "encryptionKey": {"id": "alias/pipehook", "type": "KMS"}
            },
            "stages": [
                {
                    "name": "Source",
                    "actions": [{
                        "name": "Checkout",
                        "actionTypeId": type_id("Source", "AWS", "CodeStarSourceConnection"),
                        "runOrder": 1,
                        "configuration": {"BranchName": "main", "FullRepositoryId": "acme/web"},
                        "outputArtifacts": [{"name": "SourceOutput"}],
                        "namespace": "SourceVariables"
                    }]
                },
                {
                    "name": "Build",
                    "blockers": [{"name": "nightly", "type": "Schedule"}],
                    "actions": [
                        {
                            "name": "Compile",
                            "actionTypeId": type_id("Build", "AWS", "CodeBuild"),
                            "configuration": {"ProjectName": "web"},
                            "inputArtifacts": [{"name": "SourceOutput"}],
                            "outputArtifacts": [{"name": "BuildOutput", "files": ["dist/app.js"]}],
                            "outputVariables": ["IMAGE_TAG"],
                            "roleArn": "arn:aws-cn:iam::123456789012:role/build",
                            "environmentVariables": [{"name": "STAGE", "value": "prod", "type": "PLAINTEXT"}]
                        },
                        {
                            "name": "Lint",
                            "actionTypeId": type_id("Build", "Custom", "Command"),
                            "commands": ["npm ci", "npm run lint"],
                            "inputArtifacts": [{"name": "SourceOutput"}]
                        },
                        {
                            "name": "Package",
                            "actionTypeId": type_id("Build", "Custom", "Command"),
                            "runOrder": 2,
                            "commands": ["tar czf app.tgz dist"],
                            "inputArtifacts": [{"name": "BuildOutput"}],
                            "outputArtifacts": [{"name": "Package"}]
                        }
                    ],
                    "onFailure": {"result": "RETRY", "retryConfiguration": {"retryMode": "FAILED_ACTIONS"}}
                },
                {
                    "name": "Deploy",
                    "actions": [
                        {
                            "name": "Approve",
                            "actionTypeId": type_id("Approval", "AWS", "Manual"),
                            "timeoutInMinutes": 60
                        },
                        {
                            "name": "Upload",
                            "actionTypeId": type_id("Deploy", "AWS", "S3"),
                            "runOrder": 2,
                            "configuration": {"BucketName": "web-prod", "Extract": "true"},
                            "inputArtifacts": [{"name": "Package"}],
                            "region": "us-east-1"
                        }
                    ],
                    "beforeEntry": {"conditions": [{"result": "FAIL", "rules": [{
                        "name": "NoAlarms",
                        "ruleTypeId": {
                            "category": "Rule", "owner": "AWS", "provider": "CloudWatchAlarm", "version": "2"
                        },
                        "configuration": {"AlarmName": "web-errors"},
                        "timeoutInMinutes": 10
                    }]}]},
                    "onSuccess": {"conditions": [{"rules": [{
                        "name": "Check",
                        "ruleTypeId": {"category": "Rule", "provider": "Commands"},
                        "commands": ["curl -f https://example.invalid/health"]
                    }]}]}
                }
            ],
            "version": 3,
            "executionMode": "QUEUED",
            "pipelineType": "V2",
            "variables": [{"name": "DeployTarget", "defaultValue": "prod", "description": "Where to deploy"}],
            "triggers": [{
                "providerType": "CodeStarSourceConnection",
                "gitConfiguration": {
                    "sourceActionName": "Checkout",
                    "push": [{"branches": {"includes": ["main"]}, "tags": {"excludes": ["beta-*"]}}],
                    "pullRequest": [{"events": ["OPEN", "UPDATED"], "filePaths": {"includes": ["src/**"]}}]
                }
            }]
        })
    }

    /// An `ActionTypeId` of version 1.
    fn type_id(category: &str, owner: &str, provider: &str) -> Value {
        json!({"category": category, "owner": owner, "provider": provider, "version": "1"})
    }

    fn parse(v: &Value) -> PipelineDeclaration {
        serde_json::from_value(v.clone()).expect("the declaration deserializes")
    }

    /// Applies `edit` to the valid pipeline, validates it, and checks the outcome: `None` for success, or the
    /// AWS error type and a text the message must contain (normally the offending path).
    fn check(case: &str, edit: fn(&mut Value), want: Option<(&str, &str)>) {
        let mut v = valid();
        edit(&mut v);
        let got = validate(&parse(&v));
        match (want, got) {
            (None, Ok(())) => {}
            (None, Err(e)) => panic!("{case}: expected success, got {e}"),
            (Some((ty, _)), Ok(())) => panic!("{case}: expected {ty}, got success"),
            (Some((ty, text)), Err(e)) => {
                assert_eq!(e.aws_type(), ty, "{case}: {e}");
                assert!(e.message().contains(text), "{case}: {:?} does not contain {text:?}", e.message());
            }
        }
    }

    fn action(v: &mut Value, stage: usize, action: usize) -> &mut Value {
        &mut v["stages"][stage]["actions"][action]
    }

    fn remove(v: &mut Value, key: &str) {
        v.as_object_mut().unwrap().remove(key);
    }

    const VALIDATION: &str = "ValidationException";
    const STRUCTURE: &str = "InvalidStructureException";

    #[test]
    fn valid_pipeline_round_trips_to_identical_json() {
        let v = valid();
        let decl = parse(&v);
        assert_eq!(serde_json::to_value(&decl).unwrap(), v);
        assert_eq!(validate(&decl), Ok(()));
        assert_eq!(decl.effective_execution_mode(), ExecutionMode::Queued);
    }

    #[test]
    fn minimal_pipeline_omits_absent_members() {
        let v = json!({
            "name": "p",
            "roleArn": "arn:aws:iam::123456789012:role/r",
            "artifactStore": {"type": "S3", "location": "bkt"},
            "stages": [
                {"name": "S", "actions": [{
                    "name": "A",
                    "actionTypeId": {"category": "Source", "owner": "ThirdParty", "provider": "GitHub", "version": "2"},
                    "outputArtifacts": [{"name": "o"}]
                }]},
                {"name": "B", "actions": [{
                    "name": "A",
                    "actionTypeId": type_id("Compute", "AWS", "Commands"),
                    "inputArtifacts": [{"name": "o"}]
                }]}
            ],
            "someFutureField": {"ignored": true}
        });
        let decl = parse(&v);
        let mut expected = v.clone();
        remove(&mut expected, "someFutureField");
        assert_eq!(serde_json::to_value(&decl).unwrap(), expected);
        assert_eq!(validate(&decl), Ok(()));
        assert_eq!(decl.effective_execution_mode(), ExecutionMode::Queued);
    }

    #[test]
    fn unknown_enum_values_fail_to_deserialize() {
        type Edit = fn(&mut Value);
        let cases: &[(&str, Edit)] = &[
            ("category", |v| action(v, 1, 0)["actionTypeId"]["category"] = json!("Build2")),
            ("owner", |v| action(v, 1, 0)["actionTypeId"]["owner"] = json!("aws")),
            ("executionMode", |v| v["executionMode"] = json!("queued")),
            ("pipelineType", |v| v["pipelineType"] = json!("V3")),
            ("artifact store type", |v| v["artifactStore"]["type"] = json!("GCS")),
            ("encryption key type", |v| v["artifactStore"]["encryptionKey"]["type"] = json!("AES")),
            ("blocker type", |v| v["stages"][1]["blockers"][0]["type"] = json!("Manual")),
            ("env var type", |v| action(v, 1, 0)["environmentVariables"][0]["type"] = json!("SECRET")),
        ];
        for (case, edit) in cases {
            let mut v = valid();
            edit(&mut v);
            let err = serde_json::from_value::<PipelineDeclaration>(v).expect_err(case);
            assert!(err.to_string().contains("unknown variant"), "{case}: {err}");
        }
    }

    #[test]
    fn enums_use_the_aws_strings() {
        assert_eq!(serde_json::to_value(ActionOwner::Aws).unwrap(), json!("AWS"));
        assert_eq!(serde_json::to_value(ExecutionMode::Superseded).unwrap(), json!("SUPERSEDED"));
        assert_eq!(serde_json::to_value(EnvironmentVariableType::SecretsManager).unwrap(), json!("SECRETS_MANAGER"));
        assert_eq!(ActionCategory::Compute.to_string(), "Compute");
        for c in ActionCategory::ALL {
            assert_eq!(serde_json::from_value::<ActionCategory>(json!(c.as_str())).unwrap(), *c);
        }
    }

    /// The text AWS puts in a `ValidationException` for one member.
    fn violation(path: &str, constraint: &str) -> String {
        format!("Value at '{path}' failed to satisfy constraint: {constraint}")
    }

    fn min_len(n: u32) -> String {
        format!("Member must have length greater than or equal to {n}")
    }

    fn max_len(n: u32) -> String {
        format!("Member must have length less than or equal to {n}")
    }

    fn min_value(n: u32) -> String {
        format!("Member must have value greater than or equal to {n}")
    }

    fn max_value(n: u32) -> String {
        format!("Member must have value less than or equal to {n}")
    }

    fn pattern(p: &str) -> String {
        format!("Member must satisfy regular expression pattern: {p}")
    }

    /// The path of a member of an action, with AWS's 1-based indices.
    fn act(stage: usize, action: usize, member: &str) -> String {
        format!("pipeline.stages.{stage}.member.actions.{action}.member.{member}")
    }

    #[test]
    fn model_constraints() {
        type Case = (&'static str, fn(&mut Value), String, String);
        let name = pattern(r"[A-Za-z0-9.@\-_]+");
        let arn = pattern(r"arn:aws(-[\w]+)*:iam::[0-9]{12}:role/.*");
        let word = pattern("[0-9A-Za-z_-]+");
        let map = |side: &str, max: u32| format!("{side} must satisfy constraint: [{}, {}]", max_len(max), min_len(1));
        let rule = "pipeline.stages.3.member.beforeEntry.conditions.1.member.rules";
        let git = "pipeline.triggers.1.member.gitConfiguration";
        let cases: Vec<Case> = vec![
            ("pipeline name empty", |v| v["name"] = json!(""), "pipeline.name".into(), min_len(1)),
            ("pipeline name long", |v| v["name"] = json!("p".repeat(101)), "pipeline.name".into(), max_len(100)),
            ("pipeline name pattern", |v| v["name"] = json!("my pipeline"), "pipeline.name".into(), name.clone()),
            (
                "role arn pattern",
                |v| v["roleArn"] = json!("arn:aws:iam::12345:role/x"),
                "pipeline.roleArn".into(),
                arn.clone(),
            ),
            (
                "role arn long",
                |v| v["roleArn"] = json!(format!("arn:aws:iam::123456789012:role/{}", "r".repeat(1000))),
                "pipeline.roleArn".into(),
                max_len(1024),
            ),
            (
                "store location short",
                |v| v["artifactStore"]["location"] = json!("ab"),
                "pipeline.artifactStore.location".into(),
                min_len(3),
            ),
            (
                "store location pattern",
                |v| v["artifactStore"]["location"] = json!("my_bucket"),
                "pipeline.artifactStore.location".into(),
                pattern(r"[a-zA-Z0-9\-\.]+"),
            ),
            (
                "encryption key id empty",
                |v| v["artifactStore"]["encryptionKey"]["id"] = json!(""),
                "pipeline.artifactStore.encryptionKey.id".into(),
                min_len(1),
            ),
            (
                "artifact stores region key",
                |v| {
                    let store = v["artifactStore"].take();
                    remove(v, "artifactStore");
                    v["artifactStores"] = json!({"us": store});
                },
                "pipeline.artifactStores".into(),
                format!("Map keys must satisfy constraint: [{}, {}]", max_len(30), min_len(4)),
            ),
            (
                "artifact stores value",
                |v| {
                    remove(v, "artifactStore");
                    v["artifactStores"] = json!({"us-east-1": {"type": "S3", "location": "x"}});
                },
                "pipeline.artifactStores.us-east-1.location".into(),
                min_len(3),
            ),
            (
                "stage name",
                |v| v["stages"][1]["name"] = json!("Build!"),
                "pipeline.stages.2.member.name".into(),
                name.clone(),
            ),
            (
                "blocker name empty",
                |v| v["stages"][1]["blockers"][0]["name"] = json!(""),
                "pipeline.stages.2.member.blockers.1.member.name".into(),
                min_len(1),
            ),
            ("action name", |v| action(v, 0, 0)["name"] = json!("check out"), act(1, 1, "name"), name.clone()),
            (
                "provider pattern",
                |v| action(v, 1, 0)["actionTypeId"]["provider"] = json!("Code Build"),
                act(2, 1, "actionTypeId.provider"),
                word.clone(),
            ),
            (
                "provider long",
                |v| action(v, 1, 0)["actionTypeId"]["provider"] = json!("p".repeat(36)),
                act(2, 1, "actionTypeId.provider"),
                max_len(35),
            ),
            (
                "version long",
                |v| action(v, 1, 0)["actionTypeId"]["version"] = json!("1234567890"),
                act(2, 1, "actionTypeId.version"),
                max_len(9),
            ),
            (
                "version pattern",
                |v| action(v, 1, 0)["actionTypeId"]["version"] = json!("1.0"),
                act(2, 1, "actionTypeId.version"),
                word.clone(),
            ),
            ("run order 0", |v| action(v, 1, 2)["runOrder"] = json!(0), act(2, 3, "runOrder"), min_value(1)),
            ("run order 1000", |v| action(v, 1, 2)["runOrder"] = json!(1000), act(2, 3, "runOrder"), max_value(999)),
            (
                "configuration key long",
                |v| action(v, 1, 0)["configuration"]["K".repeat(51)] = json!("v"),
                act(2, 1, "configuration"),
                map("Map keys", 50),
            ),
            (
                "configuration value empty",
                |v| action(v, 1, 0)["configuration"]["ProjectName"] = json!(""),
                act(2, 1, "configuration"),
                map("Map value", 1000),
            ),
            (
                "configuration value long",
                |v| action(v, 1, 0)["configuration"]["ProjectName"] = json!("x".repeat(1001)),
                act(2, 1, "configuration"),
                map("Map value", 1000),
            ),
            ("no commands", |v| action(v, 1, 1)["commands"] = json!([]), act(2, 2, "commands"), min_len(1)),
            (
                "too many commands",
                |v| action(v, 1, 1)["commands"] = json!(vec!["true"; 51]),
                act(2, 2, "commands"),
                max_len(50),
            ),
            (
                "command empty",
                |v| action(v, 1, 1)["commands"][1] = json!(""),
                act(2, 2, "commands.2.member"),
                min_len(1),
            ),
            (
                "command long",
                |v| action(v, 1, 1)["commands"][0] = json!("x".repeat(1001)),
                act(2, 2, "commands.1.member"),
                max_len(1000),
            ),
            (
                "output artifact name",
                |v| action(v, 1, 0)["outputArtifacts"][0]["name"] = json!("Build.Output"),
                act(2, 1, "outputArtifacts.1.member.name"),
                pattern(r"[a-zA-Z0-9_\-]+"),
            ),
            (
                "too many files",
                |v| action(v, 1, 0)["outputArtifacts"][0]["files"] = json!(vec!["f"; 11]),
                act(2, 1, "outputArtifacts.1.member.files"),
                max_len(10),
            ),
            (
                "file path long",
                |v| action(v, 1, 0)["outputArtifacts"][0]["files"][0] = json!("f".repeat(129)),
                act(2, 1, "outputArtifacts.1.member.files.1.member"),
                max_len(128),
            ),
            (
                "input artifact name long",
                |v| action(v, 1, 0)["inputArtifacts"][0]["name"] = json!("a".repeat(101)),
                act(2, 1, "inputArtifacts.1.member.name"),
                max_len(100),
            ),
            (
                "too many output variables",
                |v| action(v, 1, 0)["outputVariables"] = json!(vec!["V"; 16]),
                act(2, 1, "outputVariables"),
                max_len(15),
            ),
            (
                "output variable empty",
                |v| action(v, 1, 0)["outputVariables"][0] = json!(""),
                act(2, 1, "outputVariables.1.member"),
                min_len(1),
            ),
            (
                "action role arn",
                |v| action(v, 1, 0)["roleArn"] = json!("arn:aws:iam::123456789012:user/x"),
                act(2, 1, "roleArn"),
                arn.clone(),
            ),
            ("action region short", |v| action(v, 2, 1)["region"] = json!("us"), act(3, 2, "region"), min_len(4)),
            (
                "namespace pattern",
                |v| action(v, 0, 0)["namespace"] = json!("Source.Vars"),
                act(1, 1, "namespace"),
                pattern(r"[A-Za-z0-9@\-_]+"),
            ),
            (
                "timeout 4",
                |v| action(v, 2, 0)["timeoutInMinutes"] = json!(4),
                act(3, 1, "timeoutInMinutes"),
                min_value(5),
            ),
            (
                "timeout 86401",
                |v| action(v, 2, 0)["timeoutInMinutes"] = json!(86401),
                act(3, 1, "timeoutInMinutes"),
                max_value(86400),
            ),
            (
                "environment variable name",
                |v| action(v, 1, 0)["environmentVariables"][0]["name"] = json!("MY-VAR"),
                act(2, 1, "environmentVariables.1.member.name"),
                pattern("[A-Za-z0-9_]+"),
            ),
            (
                "environment variable value with a newline",
                |v| action(v, 1, 0)["environmentVariables"][0]["value"] = json!("a\nb"),
                act(2, 1, "environmentVariables.1.member.value"),
                pattern(".*"),
            ),
            (
                "too many environment variables",
                |v| action(v, 1, 0)["environmentVariables"] = json!(vec![json!({"name": "A", "value": "b"}); 11]),
                act(2, 1, "environmentVariables"),
                max_len(10),
            ),
            ("pipeline version 0", |v| v["version"] = json!(0), "pipeline.version".into(), min_value(1)),
            (
                "variable name",
                |v| v["variables"][0]["name"] = json!("deploy.target"),
                "pipeline.variables.1.member.name".into(),
                pattern(r"[A-Za-z0-9@\-_]+"),
            ),
            (
                "variable default empty",
                |v| v["variables"][0]["defaultValue"] = json!(""),
                "pipeline.variables.1.member.defaultValue".into(),
                min_len(1),
            ),
            (
                "variable description long",
                |v| v["variables"][0]["description"] = json!("d".repeat(201)),
                "pipeline.variables.1.member.description".into(),
                max_len(200),
            ),
            (
                "too many variables",
                |v| v["variables"] = json!((0..51).map(|i| json!({"name": format!("v{i}")})).collect::<Vec<_>>()),
                "pipeline.variables".into(),
                max_len(50),
            ),
            (
                "too many triggers",
                |v| v["triggers"] = json!(vec![v["triggers"][0].clone(); 51]),
                "pipeline.triggers".into(),
                max_len(50),
            ),
            (
                "trigger source action name",
                |v| v["triggers"][0]["gitConfiguration"]["sourceActionName"] = json!("check out"),
                format!("{git}.sourceActionName"),
                name.clone(),
            ),
            (
                "too many branch patterns",
                |v| v["triggers"][0]["gitConfiguration"]["push"][0]["branches"]["includes"] = json!(vec!["b"; 9]),
                format!("{git}.push.1.member.branches.includes"),
                max_len(8),
            ),
            (
                "tag pattern long",
                |v| v["triggers"][0]["gitConfiguration"]["push"][0]["tags"]["excludes"][0] = json!("t".repeat(256)),
                format!("{git}.push.1.member.tags.excludes.1.member"),
                max_len(255),
            ),
            (
                "no pull request events",
                |v| v["triggers"][0]["gitConfiguration"]["pullRequest"][0]["events"] = json!([]),
                format!("{git}.pullRequest.1.member.events"),
                min_len(1),
            ),
            (
                "rule name",
                |v| v["stages"][2]["beforeEntry"]["conditions"][0]["rules"][0]["name"] = json!("no alarms"),
                format!("{rule}.1.member.name"),
                name.clone(),
            ),
            (
                "rule timeout",
                |v| v["stages"][2]["beforeEntry"]["conditions"][0]["rules"][0]["timeoutInMinutes"] = json!(1),
                format!("{rule}.1.member.timeoutInMinutes"),
                min_value(5),
            ),
            (
                "too many rules",
                |v| {
                    let rules = &mut v["stages"][2]["beforeEntry"]["conditions"][0]["rules"];
                    *rules = json!(vec![rules[0].clone(); 6]);
                },
                rule.into(),
                max_len(5),
            ),
            (
                "too many rule configuration entries",
                |v| {
                    let config: serde_json::Map<String, Value> =
                        (0..201).map(|i| (format!("k{i}"), json!("v"))).collect();
                    v["stages"][2]["beforeEntry"]["conditions"][0]["rules"][0]["configuration"] = Value::Object(config);
                },
                format!("{rule}.1.member.configuration"),
                max_len(200),
            ),
            (
                "two conditions",
                |v| {
                    let conditions = &mut v["stages"][2]["onSuccess"]["conditions"];
                    *conditions = json!([conditions[0].clone(), conditions[0].clone()]);
                },
                "pipeline.stages.3.member.onSuccess.conditions".into(),
                max_len(1),
            ),
        ];
        for (case, edit, path, constraint) in cases {
            check(case, edit, Some((VALIDATION, &violation(&path, &constraint))));
        }
    }

    #[test]
    fn validation_errors_are_reported_together_in_aws_form() {
        let mut v = valid();
        v["name"] = json!("bad name");
        action(&mut v, 1, 2)["runOrder"] = json!(0);
        let err = validate(&parse(&v)).unwrap_err();
        assert_eq!(
            err.message(),
            "2 validation errors detected: Value at 'pipeline.name' failed to satisfy constraint: Member must \
             satisfy regular expression pattern: [A-Za-z0-9.@\\-_]+; Value at 'pipeline.stages.2.member.actions.3.\
             member.runOrder' failed to satisfy constraint: Member must have value greater than or equal to 1"
        );
        let PipelineError::Validation(violations) = &err else { panic!("{err}") };
        assert_eq!(violations[1].path, "pipeline.stages.2.member.actions.3.member.runOrder");
        // Constraint violations outrank structural errors, as AWS validates the request before reading it.
        let mut v = valid();
        v["name"] = json!("");
        v["stages"].as_array_mut().unwrap().truncate(1);
        assert_eq!(validate(&parse(&v)).unwrap_err().aws_type(), VALIDATION);
    }

    #[test]
    fn opaque_members_must_have_their_shape() {
        type Case = (&'static str, fn(&mut Value), &'static str);
        let cases: &[Case] = &[
            (
                "unknown result",
                |v| v["stages"][1]["onFailure"]["result"] = json!("EXPLODE"),
                "'pipeline.stages.2.member.onFailure'",
            ),
            (
                "retry mode",
                |v| v["stages"][1]["onFailure"]["retryConfiguration"]["retryMode"] = json!("SOME"),
                "'pipeline.stages.2.member.onFailure'",
            ),
            (
                "success without conditions",
                |v| v["stages"][2]["onSuccess"] = json!({}),
                "'pipeline.stages.3.member.onSuccess'",
            ),
            (
                "rule category",
                |v| {
                    v["stages"][2]["beforeEntry"]["conditions"][0]["rules"][0]["ruleTypeId"]["category"] =
                        json!("Check")
                },
                "'pipeline.stages.3.member.beforeEntry'",
            ),
            (
                "trigger provider",
                |v| v["triggers"][0]["providerType"] = json!("GitHub"),
                "'pipeline.triggers.1.member'",
            ),
            (
                "trigger event",
                |v| v["triggers"][0]["gitConfiguration"]["pullRequest"][0]["events"][0] = json!("MERGED"),
                "'pipeline.triggers.1.member'",
            ),
            ("trigger not an object", |v| v["triggers"][0] = json!("push"), "PipelineTriggerDeclaration"),
        ];
        for (case, edit, text) in cases {
            check(case, *edit, Some(("SerializationException", text)));
        }
    }

    #[test]
    fn structural_rules() {
        type Case = (&'static str, fn(&mut Value), &'static str, &'static str);
        let cases: &[Case] = &[
            (
                "one stage",
                |v| {
                    v["stages"].as_array_mut().unwrap().truncate(1);
                    remove(v, "triggers");
                },
                STRUCTURE,
                "Pipeline has only 1 stage(s). There should be a minimum of 2 stages in a pipeline",
            ),
            (
                "no stages",
                |v| {
                    v["stages"] = json!([]);
                    remove(v, "triggers");
                },
                STRUCTURE,
                "Pipeline has only 0 stage(s)",
            ),
            (
                "both stores",
                |v| v["artifactStores"] = json!({"us-east-1": {"type": "S3", "location": "bkt"}}),
                STRUCTURE,
                "declares both 'pipeline.artifactStore' and 'pipeline.artifactStores'",
            ),
            ("no store", |v| remove(v, "artifactStore"), STRUCTURE, "declares neither 'pipeline.artifactStore' nor"),
            (
                "duplicate stage names",
                |v| v["stages"][2]["name"] = json!("Build"),
                STRUCTURE,
                "'Build' is the name of both 'pipeline.stages.2.member' and 'pipeline.stages.3.member'",
            ),
            (
                "stage without actions",
                |v| v["stages"][2]["actions"] = json!([]),
                "InvalidStageDeclarationException",
                "Stage 'Deploy' at 'pipeline.stages.3.member' has 0 actions",
            ),
            (
                "stage with 51 actions",
                |v| {
                    let type_id = json!({"category": "Test", "owner": "AWS", "provider": "CodeBuild", "version": "1"});
                    let actions: Vec<Value> =
                        (0..51).map(|i| json!({"name": format!("A{i}"), "actionTypeId": type_id})).collect();
                    v["stages"][2]["actions"] = json!(actions);
                },
                "InvalidStageDeclarationException",
                "Stage 'Deploy' at 'pipeline.stages.3.member' has 51 actions",
            ),
            (
                "duplicate action names",
                |v| action(v, 1, 1)["name"] = json!("Compile"),
                "InvalidActionDeclarationException",
                "stage 'Build' has two actions named 'Compile', at 'pipeline.stages.2.member.actions.1.member' and \
                 'pipeline.stages.2.member.actions.2.member'",
            ),
            (
                "build action in the first stage",
                |v| action(v, 0, 0)["actionTypeId"]["category"] = json!("Build"),
                STRUCTURE,
                "Pipeline should start with a stage that only contains source actions: action 'Checkout' at \
                 'pipeline.stages.1.member.actions.1.member'",
            ),
            (
                "source action in a later stage",
                |v| action(v, 2, 0)["actionTypeId"]["category"] = json!("Source"),
                STRUCTURE,
                "Source actions can only be in the first stage of a pipeline: action 'Approve' at \
                 'pipeline.stages.3.member.actions.1.member'",
            ),
            (
                "duplicate blocker names",
                |v| {
                    let blocker = v["stages"][1]["blockers"][0].clone();
                    v["stages"][1]["blockers"] = json!([blocker.clone(), blocker]);
                },
                "InvalidBlockerDeclarationException",
                "'pipeline.stages.2.member.blockers.1.member' and 'pipeline.stages.2.member.blockers.2.member'",
            ),
            (
                "duplicate namespace",
                |v| action(v, 1, 0)["namespace"] = json!("SourceVariables"),
                "InvalidActionDeclarationException",
                "Namespaces must be unique across the pipeline definition. The following occur more than once in the \
                 pipeline. StageName=[Build], ActionName=[Compile], Namespace=[SourceVariables] (at \
                 'pipeline.stages.2.member.actions.1.member.namespace')",
            ),
            (
                "duplicate output artifact",
                |v| action(v, 1, 2)["outputArtifacts"][0]["name"] = json!("BuildOutput"),
                STRUCTURE,
                "Output Artifact Bundle name must be unique within the pipeline. BuildOutput has been used more than \
                 once: at 'pipeline.stages.2.member.actions.1.member.outputArtifacts.1.member.name' and at \
                 'pipeline.stages.2.member.actions.3.member.outputArtifacts.1.member.name'",
            ),
            (
                "input never produced",
                |v| action(v, 2, 1)["inputArtifacts"][0]["name"] = json!("Missing"),
                STRUCTURE,
                "Input artifact 'Missing' of action 'Upload' in stage 'Deploy' (at \
                 'pipeline.stages.3.member.actions.2.member.inputArtifacts.1.member.name') must be the output \
                 artifact of a preceding action: no action in the pipeline produces it",
            ),
            (
                "input produced in parallel",
                |v| action(v, 1, 2)["runOrder"] = json!(1),
                STRUCTURE,
                "Input artifact 'BuildOutput' of action 'Package' in stage 'Build' (at \
                 'pipeline.stages.2.member.actions.3.member.inputArtifacts.1.member.name') must be the output \
                 artifact of a preceding action: it is produced at \
                 'pipeline.stages.2.member.actions.1.member.outputArtifacts.1.member.name', which does not run \
                 before it",
            ),
            (
                "input produced later",
                |v| action(v, 1, 0)["inputArtifacts"][0]["name"] = json!("Package"),
                STRUCTURE,
                "Input artifact 'Package' of action 'Compile' in stage 'Build' (at \
                 'pipeline.stages.2.member.actions.1.member.inputArtifacts.1.member.name')",
            ),
            (
                "cross-region action without a store",
                |v| {
                    let store = v["artifactStore"].take();
                    remove(v, "artifactStore");
                    v["artifactStores"] = json!({"eu-west-1": store});
                },
                STRUCTURE,
                "Action 'Upload' at 'pipeline.stages.3.member.actions.2.member' in stage 'Deploy' runs in Region \
                 'us-east-1'",
            ),
            (
                "duplicate variables",
                |v| v["variables"] = json!([{"name": "X"}, {"name": "X"}]),
                STRUCTURE,
                "'pipeline.variables.1.member' and 'pipeline.variables.2.member'",
            ),
            (
                "trigger names an action outside the first stage",
                |v| v["triggers"][0]["gitConfiguration"]["sourceActionName"] = json!("Compile"),
                STRUCTURE,
                "Trigger at 'pipeline.triggers.1.member' names source action 'Compile'",
            ),
        ];
        for (case, edit, ty, text) in cases {
            check(case, *edit, Some((ty, text)));
        }
    }

    #[test]
    fn accepted_variations() {
        type Case = (&'static str, fn(&mut Value));
        let cases: &[Case] = &[
            ("artifactStores with every action region", |v| {
                let store = v["artifactStore"].take();
                remove(v, "artifactStore");
                v["artifactStores"] = json!({"us-east-1": store.clone(), "eu-west-1": store});
            }),
            ("partition role arn", |v| v["roleArn"] = json!("arn:aws-us-gov:iam::123456789012:role/a/b")),
            ("no blockers or conditions", |v| {
                for s in v["stages"].as_array_mut().unwrap() {
                    for key in ["blockers", "onFailure", "onSuccess", "beforeEntry"] {
                        remove(s, key);
                    }
                }
            }),
            ("empty tag-free description", |v| v["variables"][0]["description"] = json!("")),
            ("null optional members", |v| {
                v["triggers"] = Value::Null;
                action(v, 1, 0)["configuration"] = Value::Null;
            }),
        ];
        for (case, edit) in cases {
            check(case, *edit, None);
        }
    }

    #[test]
    fn role_arn_matcher_follows_the_model_pattern() {
        for (arn, ok) in [
            ("arn:aws:iam::123456789012:role/x", true),
            ("arn:aws:iam::123456789012:role/", true),
            ("arn:aws-cn:iam::123456789012:role/path/name", true),
            ("arn:aws-us-gov-x:iam::123456789012:role/r", true),
            ("arn:aws-:iam::123456789012:role/r", false),
            ("arn:aws:iam::1234567890123:role/r", false),
            ("arn:aws:iam::12345678901:role/r", false),
            ("arn:aws:iam::123456789012:user/r", false),
            ("arn:aws:sts::123456789012:role/r", false),
            ("arn:aws:iam::123456789012:role/r\n", false),
            (" arn:aws:iam::123456789012:role/r", false),
            ("arn:aws-é:iam::123456789012:role/r", false),
            ("arn:aws:iam::12345678901é:role/r", false),
            ("arn:aws:iam::1234567890", false),
        ] {
            assert_eq!(matches_role_arn(arn), ok, "{arn}");
        }
    }

    #[test]
    fn run_groups_order_by_run_order() {
        let mut v = valid();
        v["stages"][1]["actions"] = json!([
            {"name": "c", "runOrder": 3, "actionTypeId": type_id("Build", "AWS", "CodeBuild")},
            {"name": "a1", "actionTypeId": type_id("Build", "Custom", "Command")},
            {"name": "b", "runOrder": 2, "actionTypeId": type_id("Test", "ThirdParty", "X")},
            {"name": "a2", "runOrder": 1, "actionTypeId": type_id("Build", "AWS", "Commands")},
            {"name": "c2", "runOrder": 3, "actionTypeId": type_id("Build", "AWS", "CodeBuild")}
        ]);
        let decl = parse(&v);
        let stage = &decl.stages[1];
        let names: Vec<Vec<&str>> =
            stage.run_groups().iter().map(|g| g.iter().map(|a| a.name.as_str()).collect()).collect();
        assert_eq!(names, [vec!["a1", "a2"], vec!["b"], vec!["c", "c2"]]);
        let commands: Vec<bool> = stage.actions.iter().map(|a| a.action_type_id.is_command()).collect();
        assert_eq!(commands, [false, true, false, false, false], "AWS's own Commands action is not pipehook's");
        let codebuild: Vec<bool> = stage.actions.iter().map(|a| a.action_type_id.is_codebuild()).collect();
        assert_eq!(codebuild, [true, false, false, false, true]);
        assert!(stage.actions.iter().all(|a| !a.action_type_id.is_source()));
        assert!(decl.stages[0].actions[0].action_type_id.is_source());
    }

    #[test]
    fn tags() {
        let tag = |k: &str, v: &str| Tag { key: k.into(), value: v.into() };
        let many = |n: usize| -> Vec<Tag> { (0..n).map(|i| tag(&format!("k{i}"), "v")).collect() };
        type Case = (&'static str, Vec<Tag>, Option<(&'static str, String)>);
        let cases: Vec<Case> = vec![
            ("valid", vec![tag("team", "web"), tag("empty", "")], None),
            ("none", vec![], None),
            ("fifty", many(50), None),
            ("fifty-one", many(51), Some(("TooManyTagsException", "51 tags".into()))),
            (
                "empty key",
                vec![tag("a", "b"), tag("", "v")],
                Some((VALIDATION, violation("tags.2.member.key", &min_len(1)))),
            ),
            (
                "long key",
                vec![tag(&"k".repeat(129), "v")],
                Some((VALIDATION, violation("tags.1.member.key", &max_len(128)))),
            ),
            (
                "long value",
                vec![tag("k", &"v".repeat(257))],
                Some((VALIDATION, violation("tags.1.member.value", &max_len(256)))),
            ),
            (
                "aws prefix",
                vec![tag("t", "x"), tag("aws:owner", "x")],
                Some(("InvalidTagsException", "'tags.2.member.key'".into())),
            ),
            (
                "AWS prefix",
                vec![tag("AWS:owner", "x")],
                Some(("InvalidTagsException", "reserved prefix 'aws:'".into())),
            ),
            (
                "duplicate",
                vec![tag("a", "1"), tag("b", "2"), tag("a", "3")],
                Some(("InvalidTagsException", "'tags.1.member.key' and 'tags.3.member.key'".into())),
            ),
        ];
        for (case, tags, want) in cases {
            match (validate_tags(&tags), want) {
                (Ok(()), None) => {}
                (Err(e), Some((ty, text))) => {
                    assert_eq!(e.aws_type(), ty, "{case}: {e}");
                    assert!(e.message().contains(&text), "{case}: {:?}", e.message());
                }
                (got, want) => panic!("{case}: got {got:?}, want {want:?}"),
            }
        }
        assert_eq!(serde_json::to_value(tag("k", "v")).unwrap(), json!({"key": "k", "value": "v"}));
    }

    #[test]
    fn pipeline_names() {
        assert_eq!(validate_pipeline_name("my-pipeline_1.0@x"), Ok(()));
        assert_eq!(validate_pipeline_name(&"p".repeat(100)), Ok(()));
        let name = pattern(r"[A-Za-z0-9.@\-_]+");
        for (input, constraint) in
            [("", min_len(1)), ("a b", name.clone()), ("é", name), (&"p".repeat(101), max_len(100))]
        {
            let e = validate_pipeline_name(input).unwrap_err();
            assert_eq!(e.aws_type(), VALIDATION);
            assert_eq!(e.message(), format!("1 validation error detected: {}", violation("name", &constraint)));
        }
    }

    /// Every constant above is compared with the botocore model, and every member of the typed shapes with the
    /// model's member list, so an edit on either side that is not made on the other fails here.
    #[test]
    fn constants_match_the_botocore_model() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../model/codepipeline-2015-07-09.service-2.json");
        let Ok(text) = std::fs::read_to_string(path) else {
            eprintln!("skipping: {path} is not present");
            return;
        };
        let model: Value = serde_json::from_str(&text).unwrap();
        let shape = |name: &str| model["shapes"][name].clone();

        let strings = [
            PIPELINE_NAME,
            ROLE_ARN,
            ARTIFACT_STORE_LOCATION,
            ENCRYPTION_KEY_ID,
            AWS_REGION_NAME,
            STAGE_NAME,
            BLOCKER_NAME,
            ACTION_NAME,
            ACTION_PROVIDER,
            VERSION,
            ACTION_CONFIGURATION_KEY,
            ACTION_CONFIGURATION_VALUE,
            COMMAND,
            ARTIFACT_NAME,
            FILE_PATH,
            OUTPUT_VARIABLE,
            ACTION_NAMESPACE,
            ENVIRONMENT_VARIABLE_NAME,
            ENVIRONMENT_VARIABLE_VALUE,
            PIPELINE_VARIABLE_NAME,
            PIPELINE_VARIABLE_VALUE,
            PIPELINE_VARIABLE_DESCRIPTION,
            TAG_KEY,
            TAG_VALUE,
            RULE_NAME,
            RULE_PROVIDER,
            RULE_CONFIGURATION_KEY,
            RULE_CONFIGURATION_VALUE,
            GIT_TAG_NAME_PATTERN,
            GIT_BRANCH_NAME_PATTERN,
            GIT_FILE_PATH_PATTERN,
        ];
        for rule in strings {
            let m = shape(rule.shape);
            assert_eq!(m["type"], "string", "{}", rule.shape);
            assert_eq!(m["min"].as_u64().unwrap_or(0), rule.min as u64, "{} min", rule.shape);
            assert_eq!(m["max"].as_u64(), rule.max.map(|x| x as u64), "{} max", rule.shape);
            assert_eq!(m["pattern"].as_str(), rule.pattern.map(|p| p.model), "{} pattern", rule.shape);
        }
        let bounds = [
            ACTION_RUN_ORDER,
            ACTION_TIMEOUT,
            PIPELINE_VERSION,
            RULE_TIMEOUT,
            COMMAND_LIST,
            FILE_PATH_LIST,
            OUTPUT_VARIABLE_LIST,
            ENVIRONMENT_VARIABLE_LIST,
            PIPELINE_VARIABLE_LIST,
            PIPELINE_TRIGGER_LIST,
            CONDITION_LIST,
            RULE_DECLARATION_LIST,
            RULE_CONFIGURATION_MAP,
            GIT_PUSH_FILTER_LIST,
            GIT_PULL_REQUEST_FILTER_LIST,
            GIT_TAG_PATTERN_LIST,
            GIT_BRANCH_PATTERN_LIST,
            GIT_FILE_PATH_PATTERN_LIST,
            GIT_PULL_REQUEST_EVENT_TYPE_LIST,
        ];
        for bound in bounds {
            let m = shape(bound.shape);
            assert_eq!(m["min"].as_i64(), bound.min, "{} min", bound.shape);
            assert_eq!(m["max"].as_i64(), bound.max, "{} max", bound.shape);
        }
        // The shapes this module checks without bounds really have none.
        for name in [
            "PipelineStageDeclarationList",
            "StageActionDeclarationList",
            "StageBlockerDeclarationList",
            "OutputArtifactList",
            "InputArtifactList",
            "ActionConfigurationMap",
            "ArtifactStoreMap",
            "TagList",
        ] {
            let m = shape(name);
            assert!(m["min"].is_null() && m["max"].is_null(), "{name} has bounds in the model");
        }

        fn strs<T: fmt::Display>(all: &[T]) -> Vec<String> {
            all.iter().map(T::to_string).collect()
        }
        let enum_values = |name: &str| -> Vec<String> {
            shape(name)["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
        };
        assert_eq!(strs(ActionCategory::ALL), enum_values("ActionCategory"));
        assert_eq!(strs(ActionOwner::ALL), enum_values("ActionOwner"));
        assert_eq!(strs(ExecutionMode::ALL), enum_values("ExecutionMode"));
        assert_eq!(strs(PipelineType::ALL), enum_values("PipelineType"));
        assert_eq!(strs(ArtifactStoreType::ALL), enum_values("ArtifactStoreType"));
        assert_eq!(strs(EncryptionKeyType::ALL), enum_values("EncryptionKeyType"));
        assert_eq!(strs(BlockerType::ALL), enum_values("BlockerType"));
        assert_eq!(strs(EnvironmentVariableType::ALL), enum_values("EnvironmentVariableType"));
        // The private enums, through serde: each model value reads, and the next one in a made-up form does not.
        for (name, read) in [
            (
                "PipelineTriggerProviderType",
                (|s| serde_json::from_value::<shapes::PipelineTriggerProviderType>(s).is_ok()) as fn(Value) -> bool,
            ),
            ("GitPullRequestEventType", |s| serde_json::from_value::<shapes::GitPullRequestEventType>(s).is_ok()),
            ("StageRetryMode", |s| serde_json::from_value::<shapes::StageRetryMode>(s).is_ok()),
            ("Result", |s| serde_json::from_value::<shapes::ConditionResult>(s).is_ok()),
            ("RuleCategory", |s| serde_json::from_value::<shapes::RuleCategory>(s).is_ok()),
            ("RuleOwner", |s| serde_json::from_value::<shapes::RuleOwner>(s).is_ok()),
        ] {
            for value in enum_values(name) {
                assert!(read(json!(value)), "{name}: {value}");
                assert!(!read(json!(value.to_lowercase() + "x")), "{name}: {value}");
            }
        }

        // Members: a fully populated declaration serializes exactly the model's member names.
        let decl = parse(&valid());
        let members = |name: &str| -> Vec<String> {
            let mut m: Vec<String> = shape(name)["members"].as_object().unwrap().keys().cloned().collect();
            m.sort();
            m
        };
        let keys = |v: Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let full_action = ActionDeclaration {
            run_order: Some(1),
            configuration: Some(BTreeMap::new()),
            commands: Some(vec![]),
            output_artifacts: Some(vec![]),
            input_artifacts: Some(vec![]),
            output_variables: Some(vec![]),
            role_arn: Some(String::new()),
            region: Some(String::new()),
            namespace: Some(String::new()),
            timeout_in_minutes: Some(5),
            environment_variables: Some(vec![]),
            ..decl.stages[1].actions[0].clone()
        };
        assert_eq!(keys(serde_json::to_value(&full_action).unwrap()), members("ActionDeclaration"));
        let mut full_stage = decl.stages[1].clone();
        full_stage.on_success = Some(json!({}));
        full_stage.before_entry = Some(json!({}));
        assert_eq!(keys(serde_json::to_value(&full_stage).unwrap()), members("StageDeclaration"));
        let mut full_pipeline = decl.clone();
        full_pipeline.artifact_stores = Some(BTreeMap::new());
        assert_eq!(keys(serde_json::to_value(&full_pipeline).unwrap()), members("PipelineDeclaration"));
        let store = decl.artifact_store.clone().unwrap();
        assert_eq!(keys(serde_json::to_value(&store).unwrap()), members("ArtifactStore"));
        assert_eq!(keys(serde_json::to_value(store.encryption_key).unwrap()), members("EncryptionKey"));
        assert_eq!(
            keys(serde_json::to_value(&decl.stages[1].blockers.as_ref().unwrap()[0]).unwrap()),
            members("BlockerDeclaration")
        );
        let compile = &decl.stages[1].actions[0];
        assert_eq!(keys(serde_json::to_value(&compile.action_type_id).unwrap()), members("ActionTypeId"));
        assert_eq!(
            keys(serde_json::to_value(&compile.output_artifacts.as_ref().unwrap()[0]).unwrap()),
            members("OutputArtifact")
        );
        assert_eq!(
            keys(serde_json::to_value(&compile.input_artifacts.as_ref().unwrap()[0]).unwrap()),
            members("InputArtifact")
        );
        assert_eq!(
            keys(serde_json::to_value(&compile.environment_variables.as_ref().unwrap()[0]).unwrap()),
            members("EnvironmentVariable")
        );
        assert_eq!(
            keys(serde_json::to_value(&decl.variables.as_ref().unwrap()[0]).unwrap()),
            members("PipelineVariableDeclaration")
        );
        assert_eq!(keys(json!({"key": "", "value": ""})), members("Tag"));
    }
}
