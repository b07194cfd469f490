//! CodeBuild webhook filter groups (`filterGroups`) and the legacy `branchFilter`: validated and compiled once
//! at CreateWebhook/UpdateWebhook, evaluated against every normalized [`SourceEvent`].
//!
//! The model, as the seed (boto3 `create_webhook`) states it: `filterGroups` is a list of groups, each a list of
//! [`WebhookFilter`]s `{type, pattern, excludeMatchedPattern}`. A build starts when **any** group passes; a group
//! passes when **every** filter in it passes; every group needs at least one `EVENT` filter. An `EVENT` pattern
//! is a comma-separated list of event names ([`CodeBuildEvent`]); every other pattern is a regular expression
//! that must be *found* in the value (search, not full match: the seed's `^refs/heads/` matches every branch).
//! `excludeMatchedPattern: true` inverts a filter. `FILE_PATH` matches when any changed file matches.
//!
//! ## Validation ([`compile`]), every refusal an `InvalidInputException`
//! - a filter type outside [`FilterType`] (CodeBuild's enum);
//! - a group with no `EVENT` filter, an `EVENT` pattern with an empty or unknown name (names are exact and
//!   upper case; blanks around the commas are ignored), a regex that does not compile or exceeds the size
//!   limits ([`REGEX_SIZE_LIMIT`]; the dialect is Rust's `regex`: no look-around, no back-references);
//! - an event the project's source provider does not support (the seed: PULL_REQUEST_REOPENED is GitHub and
//!   GitHub Enterprise only, RELEASED and PRERELEASED are GitHub only; WORKFLOW_JOB_QUEUED is GitHub and GitHub
//!   Enterprise only per CodeBuild's API reference). One exception: RELEASED is also accepted for GitLab, whose
//!   CodeBuild page lists it (Release Hook `create`/`update`);
//! - a filter type the group's events do not support, per the seed's notes: HEAD_REF works with push and pull
//!   request events; BASE_REF with pull request events only; FILE_PATH and COMMIT_MESSAGE with push and pull
//!   request events, except GitHub Enterprise pull request events; TAG_NAME and RELEASE_NAME with RELEASED and
//!   PRERELEASED only; WORKFLOW_NAME (`workflow_job.workflow_name`; botocore's model) with WORKFLOW_JOB_QUEUED
//!   only. ACTOR_ACCOUNT_ID, REPOSITORY_NAME and ORGANIZATION_NAME work with every event. The check is strict:
//!   *every* event the group's `EVENT` filters let through must support the filter, because a filter whose value
//!   an event never has would make that event silently fail the group. (A group whose `EVENT` filters are all
//!   excluded lets through every other event of the provider; there a filter only needs one of them to support
//!   it.)
//!
//! GitLab predates the seed's notes, which do not name it; pipehook follows CodeBuild's GitLab page for its
//! filter types (HEAD_REF, BASE_REF, FILE_PATH, COMMIT_MESSAGE, ACTOR_ACCOUNT_ID) and the seed for its events,
//! except RELEASED (above).
//!
//! ## Evaluation ([`evaluate`])
//! Every filter of every group is evaluated (no short cut), so the [`Evaluation`] explains each one: the value
//! found, the pattern, whether it matched, whether it passed. A value the event does not have (a push has no
//! base ref; a payload without the changed files) matches nothing, so an including filter fails and an
//! excluding one passes. Without filter groups, the events CodeBuild builds by default pass: PUSH,
//! PULL_REQUEST_CREATED, PULL_REQUEST_UPDATED and PULL_REQUEST_REOPENED (pipehook's reading; AWS does not list
//! them). An event with no CodeBuild name (a ping, a deleted branch) never passes.
//!
//! `branchFilter` (legacy) is a regex searched in the short branch name of a push or of a pull request's source
//! branch; when it is set, an event without a branch (a tag push, a release) fails it. When both are set, the
//! branch filter and the filter groups must both pass (AWS does not say how they combine).

use std::collections::BTreeSet;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use crate::event::{CodeBuildEvent, SourceEvent};

/// The compiled program of one regex may use at most this many bytes (the `regex` crate's `size_limit`).
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// The lazy DFA of one regex may use at most this many bytes of cache.
pub const REGEX_DFA_SIZE_LIMIT: usize = 1024 * 1024;
/// A pattern may be at most this many characters long.
pub const MAX_PATTERN_CHARS: usize = 4096;
/// [`FilterOutcome::found`] keeps at most this many values (FILE_PATH can find thousands)...
pub const MAX_FOUND_VALUES: usize = 10;
/// ...each cut to at most this many characters (a commit message can be long).
pub const MAX_FOUND_CHARS: usize = 200;

/// One filter as CodeBuild's API carries it (`WebhookFilter`), in AWS's wire names.
///
/// `type` stays text so an unknown type is refused by [`compile`] with CodeBuild's message rather than by the
/// deserializer. `excludeMatchedPattern` defaults to `false` and is always serialized, because CodeBuild echoes
/// `excludeMatchedPattern: false` where the request left it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookFilter {
    #[serde(rename = "type")]
    pub filter_type: String,
    pub pattern: String,
    #[serde(rename = "excludeMatchedPattern", default)]
    pub exclude_matched_pattern: bool,
}

impl WebhookFilter {
    /// A filter that includes what matches.
    pub fn new(filter_type: &str, pattern: &str) -> Self {
        WebhookFilter {
            filter_type: filter_type.to_string(),
            pattern: pattern.to_string(),
            exclude_matched_pattern: false,
        }
    }

    /// A filter that excludes what matches.
    pub fn exclude(filter_type: &str, pattern: &str) -> Self {
        WebhookFilter { exclude_matched_pattern: true, ..WebhookFilter::new(filter_type, pattern) }
    }
}

/// CodeBuild's `WebhookFilterType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FilterType {
    Event,
    ActorAccountId,
    HeadRef,
    BaseRef,
    FilePath,
    CommitMessage,
    TagName,
    ReleaseName,
    RepositoryName,
    OrganizationName,
    WorkflowName,
}

impl FilterType {
    /// Every type of CodeBuild's enum.
    pub const ALL: [FilterType; 11] = [
        FilterType::Event,
        FilterType::ActorAccountId,
        FilterType::HeadRef,
        FilterType::BaseRef,
        FilterType::FilePath,
        FilterType::CommitMessage,
        FilterType::TagName,
        FilterType::ReleaseName,
        FilterType::RepositoryName,
        FilterType::OrganizationName,
        FilterType::WorkflowName,
    ];

    /// The wire name, e.g. `HEAD_REF`.
    pub fn as_str(self) -> &'static str {
        match self {
            FilterType::Event => "EVENT",
            FilterType::ActorAccountId => "ACTOR_ACCOUNT_ID",
            FilterType::HeadRef => "HEAD_REF",
            FilterType::BaseRef => "BASE_REF",
            FilterType::FilePath => "FILE_PATH",
            FilterType::CommitMessage => "COMMIT_MESSAGE",
            FilterType::TagName => "TAG_NAME",
            FilterType::ReleaseName => "RELEASE_NAME",
            FilterType::RepositoryName => "REPOSITORY_NAME",
            FilterType::OrganizationName => "ORGANIZATION_NAME",
            FilterType::WorkflowName => "WORKFLOW_NAME",
        }
    }

    /// The type with this wire name (exact, upper case), if any.
    pub fn parse(name: &str) -> Option<Self> {
        FilterType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The types [`compile`] accepts, as a list for messages.
    fn supported_list() -> String {
        FilterType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
    }
}

impl std::fmt::Display for FilterType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A project's source provider (CodeBuild's `SourceType`, limited to those that take webhooks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SourceType {
    Github,
    GithubEnterprise,
    Gitlab,
    GitlabSelfManaged,
    Bitbucket,
}

impl SourceType {
    pub const ALL: [SourceType; 5] = [
        SourceType::Github,
        SourceType::GithubEnterprise,
        SourceType::Gitlab,
        SourceType::GitlabSelfManaged,
        SourceType::Bitbucket,
    ];

    /// The wire name, e.g. `GITHUB_ENTERPRISE`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::Github => "GITHUB",
            SourceType::GithubEnterprise => "GITHUB_ENTERPRISE",
            SourceType::Gitlab => "GITLAB",
            SourceType::GitlabSelfManaged => "GITLAB_SELF_MANAGED",
            SourceType::Bitbucket => "BITBUCKET",
        }
    }

    /// Parses a project's `source.type`. The other CodeBuild source types (`CODECOMMIT`, `CODEPIPELINE`, `S3`,
    /// `NO_SOURCE`, ...) take no webhooks and are refused with a message saying so.
    pub fn parse(name: &str) -> Result<Self, FilterGroupError> {
        SourceType::ALL
            .into_iter()
            .find(|t| t.as_str() == name)
            .ok_or_else(|| FilterGroupError::UnsupportedSourceType { source_type: name.to_string() })
    }

    /// The provider's name for people: "GitHub Enterprise", "Bitbucket", ...
    pub fn display_name(self) -> &'static str {
        match self {
            SourceType::Github => "GitHub",
            SourceType::GithubEnterprise => "GitHub Enterprise",
            SourceType::Gitlab => "GitLab",
            SourceType::GitlabSelfManaged => "GitLab Self Managed",
            SourceType::Bitbucket => "Bitbucket",
        }
    }

    /// Whether the provider can send this event at all (the seed's notes on EVENT; RELEASED also for GitLab, as
    /// CodeBuild's GitLab page lists it).
    pub fn supports_event(self, event: CodeBuildEvent) -> bool {
        use CodeBuildEvent as E;
        match event {
            E::PullRequestReopened | E::WorkflowJobQueued => {
                matches!(self, SourceType::Github | SourceType::GithubEnterprise)
            }
            E::Released => matches!(self, SourceType::Github | SourceType::Gitlab | SourceType::GitlabSelfManaged),
            E::Prereleased => self == SourceType::Github,
            _ => true,
        }
    }

    /// The events the provider supports, in CodeBuild's order.
    pub fn events(self) -> Vec<CodeBuildEvent> {
        CodeBuildEvent::ALL.into_iter().filter(|e| self.supports_event(*e)).collect()
    }

    /// Whether a filter of type `filter` can be evaluated for `event` from this provider (the seed's notes on
    /// each filter type; WORKFLOW_NAME from botocore's model). `EVENT` is not asked about here.
    pub fn supports_filter(self, filter: FilterType, event: CodeBuildEvent) -> bool {
        let push_or_pr = event == CodeBuildEvent::Push || event.is_pull_request();
        match filter {
            FilterType::ActorAccountId | FilterType::RepositoryName | FilterType::OrganizationName => true,
            FilterType::HeadRef => push_or_pr,
            FilterType::BaseRef => event.is_pull_request(),
            FilterType::FilePath | FilterType::CommitMessage => match self {
                SourceType::GithubEnterprise => event == CodeBuildEvent::Push,
                _ => push_or_pr,
            },
            FilterType::TagName | FilterType::ReleaseName => event.is_release(),
            FilterType::WorkflowName => event == CodeBuildEvent::WorkflowJobQueued,
            FilterType::Event => false,
        }
    }
}

impl std::fmt::Display for SourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why filter groups (or a branch filter) were refused. Every variant is CodeBuild's `InvalidInputException`
/// ([`FilterGroupError::aws_type`]); the `Display` text is the exception's message. Groups and filters are
/// counted from 1 in messages, as a person reads the JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterGroupError {
    #[error("Source type {source_type} does not support webhooks; webhooks work with GITHUB, GITHUB_ENTERPRISE, GITLAB, GITLAB_SELF_MANAGED and BITBUCKET")]
    UnsupportedSourceType { source_type: String },
    #[error("Filter group {group} is empty: each filter group needs at least one filter of type EVENT")]
    EmptyGroup { group: usize },
    #[error("Filter group {group} has no filter of type EVENT: each filter group needs at least one")]
    NoEventFilter { group: usize },
    #[error("Filter group {group}, filter {filter}: invalid filter type {filter_type:?}; valid types are {valid}")]
    UnknownFilterType { group: usize, filter: usize, filter_type: String, valid: String },
    #[error("Filter group {group}, filter {filter}: invalid EVENT pattern {pattern:?}: {reason}")]
    InvalidEventPattern { group: usize, filter: usize, pattern: String, reason: String },
    #[error(
        "Filter group {group}, filter {filter}: event {event} is not supported for source type {source_type} ({label})"
    )]
    EventNotSupported {
        group: usize,
        filter: usize,
        event: CodeBuildEvent,
        source_type: SourceType,
        label: &'static str,
    },
    #[error("Filter group {group}, filter {filter}: {filter_type} is not supported with {event} events for source type {source_type}: {rule}")]
    FilterNotSupported {
        group: usize,
        filter: usize,
        filter_type: FilterType,
        event: CodeBuildEvent,
        source_type: SourceType,
        rule: &'static str,
    },
    #[error("Filter group {group}, filter {filter}: {filter_type} is not supported with any event filter group {group} lets through: {rule}")]
    FilterNeverApplies { group: usize, filter: usize, filter_type: FilterType, rule: &'static str },
    #[error("Filter group {group}: its EVENT filters let no event through")]
    NoEventPasses { group: usize },
    #[error("Filter group {group}, filter {filter}: invalid regular expression {pattern:?}: {reason}")]
    InvalidPattern { group: usize, filter: usize, pattern: String, reason: String },
    #[error("Invalid branchFilter {pattern:?}: {reason}")]
    InvalidBranchFilter { pattern: String, reason: String },
}

impl FilterGroupError {
    /// The AWS exception name every refusal maps to.
    pub fn aws_type(&self) -> &'static str {
        "InvalidInputException"
    }
}

/// One compiled filter.
#[derive(Debug, Clone)]
struct CompiledFilter {
    filter_type: FilterType,
    pattern: String,
    exclude: bool,
    test: Test,
}

#[derive(Debug, Clone)]
enum Test {
    Events(BTreeSet<CodeBuildEvent>),
    Regex(Regex),
}

/// Filter groups and a branch filter, validated and ready to evaluate many times.
#[derive(Debug, Clone)]
pub struct CompiledFilterGroups {
    source_type: SourceType,
    groups: Vec<Vec<CompiledFilter>>,
    branch_filter: Option<(String, Regex)>,
}

/// The events that pass when a webhook has no filter groups.
pub const DEFAULT_EVENTS: [CodeBuildEvent; 4] = [
    CodeBuildEvent::Push,
    CodeBuildEvent::PullRequestCreated,
    CodeBuildEvent::PullRequestUpdated,
    CodeBuildEvent::PullRequestReopened,
];

impl CompiledFilterGroups {
    /// The source type the groups were validated for.
    pub fn source_type(&self) -> SourceType {
        self.source_type
    }

    /// How many groups there are.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether there are no groups (the default events pass).
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Whether any group has a filter of this type. A caller that can fetch what payloads lack (the changed
    /// files and head commit message of a pull request) asks this first, so it fetches only when it matters.
    pub fn uses(&self, filter_type: FilterType) -> bool {
        self.groups.iter().flatten().any(|f| f.filter_type == filter_type)
    }

    /// Whether the outcome for `event` can depend on a filter of this type: some group has one and that group's
    /// EVENT filters let the event through (every other filter in the group is still unknown). A caller fetches
    /// what the payload lacks (changed files, the head commit message) only when this is true, so a delivery
    /// no group could build costs no call to the git host.
    pub fn needs(&self, filter_type: FilterType, event: &SourceEvent) -> bool {
        let Some(name) = event.codebuild_event else { return false };
        // A filter the provider cannot evaluate for this event (a release's FILE_PATH) has nothing to fetch.
        if !self.source_type.supports_filter(filter_type, name) {
            return false;
        }
        self.groups.iter().any(|group| {
            group.iter().any(|f| f.filter_type == filter_type)
                && group.iter().all(|f| match &f.test {
                    Test::Events(events) => events.contains(&name) != f.exclude,
                    Test::Regex(_) => true,
                })
        })
    }

    /// The events some group lets through (by its EVENT filters: the others are decided per delivery), or, without
    /// groups, the default events the provider sends: what a repository hook must be subscribed to so that every
    /// delivery that could start a build is sent. CreateWebhook registers the hook for these and UpdateWebhook
    /// keeps it in step.
    pub fn events(&self) -> BTreeSet<CodeBuildEvent> {
        if self.groups.is_empty() {
            return DEFAULT_EVENTS.into_iter().filter(|e| self.source_type.supports_event(*e)).collect();
        }
        self.groups
            .iter()
            .filter_map(|g| events_through(g, self.source_type))
            .flat_map(|(_, through)| through)
            .collect()
    }

    /// Sets the legacy `branchFilter` (an empty one means none, as in CodeBuild: "all branches are built").
    pub fn with_branch_filter(mut self, pattern: Option<&str>) -> Result<Self, FilterGroupError> {
        self.branch_filter = match pattern.filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => Some((
                p.to_string(),
                build_regex(p)
                    .map_err(|reason| FilterGroupError::InvalidBranchFilter { pattern: p.to_string(), reason })?,
            )),
        };
        Ok(self)
    }
}

/// Validates and compiles `filterGroups` for a project whose source is `source_type`. An empty list is valid
/// (see the module documentation for what passes then).
pub fn compile(
    groups: &[Vec<WebhookFilter>],
    source_type: SourceType,
) -> Result<CompiledFilterGroups, FilterGroupError> {
    let groups = groups
        .iter()
        .enumerate()
        .map(|(index, group)| compile_group(index + 1, group, source_type))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CompiledFilterGroups { source_type, groups, branch_filter: None })
}

/// [`compile`] plus the legacy `branchFilter`, as CreateWebhook and UpdateWebhook take them.
pub fn compile_webhook(
    branch_filter: Option<&str>,
    groups: &[Vec<WebhookFilter>],
    source_type: SourceType,
) -> Result<CompiledFilterGroups, FilterGroupError> {
    compile(groups, source_type)?.with_branch_filter(branch_filter)
}

fn compile_group(
    group: usize,
    filters: &[WebhookFilter],
    source: SourceType,
) -> Result<Vec<CompiledFilter>, FilterGroupError> {
    if filters.is_empty() {
        return Err(FilterGroupError::EmptyGroup { group });
    }
    let mut compiled = Vec::with_capacity(filters.len());
    for (index, filter) in filters.iter().enumerate() {
        let at = index + 1;
        let filter_type =
            FilterType::parse(&filter.filter_type).ok_or_else(|| FilterGroupError::UnknownFilterType {
                group,
                filter: at,
                filter_type: filter.filter_type.clone(),
                valid: FilterType::supported_list(),
            })?;
        let test = match filter_type {
            FilterType::Event => Test::Events(parse_events(group, at, &filter.pattern, source)?),
            _ => {
                let invalid = |reason: String| FilterGroupError::InvalidPattern {
                    group,
                    filter: at,
                    pattern: filter.pattern.clone(),
                    reason,
                };
                if filter.pattern.chars().count() > MAX_PATTERN_CHARS {
                    return Err(invalid(format!("longer than {MAX_PATTERN_CHARS} characters")));
                }
                Test::Regex(build_regex(&filter.pattern).map_err(invalid)?)
            }
        };
        compiled.push(CompiledFilter {
            filter_type,
            pattern: filter.pattern.clone(),
            exclude: filter.exclude_matched_pattern,
            test,
        });
    }
    check_support(group, &compiled, source)?;
    Ok(compiled)
}

/// Parses a comma-separated EVENT pattern.
fn parse_events(
    group: usize,
    filter: usize,
    pattern: &str,
    source: SourceType,
) -> Result<BTreeSet<CodeBuildEvent>, FilterGroupError> {
    let invalid =
        |reason: String| FilterGroupError::InvalidEventPattern { group, filter, pattern: pattern.to_string(), reason };
    let mut events = BTreeSet::new();
    for name in pattern.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(invalid("it has an empty event name; list event names separated by commas".to_string()));
        }
        let event = CodeBuildEvent::parse(name).ok_or_else(|| {
            let valid = CodeBuildEvent::ALL.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ");
            invalid(format!("unknown event {name:?}; valid events are {valid}"))
        })?;
        if !source.supports_event(event) {
            let label = match event {
                CodeBuildEvent::Released => "it works with GitHub and GitLab only",
                CodeBuildEvent::Prereleased => "it works with GitHub only",
                _ => "it works with GitHub and GitHub Enterprise only",
            };
            return Err(FilterGroupError::EventNotSupported { group, filter, event, source_type: source, label });
        }
        events.insert(event);
    }
    Ok(events)
}

/// The seed's rule for each filter type, for messages.
fn rule(filter_type: FilterType) -> &'static str {
    match filter_type {
        FilterType::HeadRef => "HEAD_REF works with push and pull request events",
        FilterType::BaseRef => "BASE_REF works with pull request events only",
        FilterType::FilePath => {
            "FILE_PATH works with push and pull request events, but not with GitHub Enterprise pull request events"
        }
        FilterType::CommitMessage => {
            "COMMIT_MESSAGE works with push and pull request events, but not with GitHub Enterprise pull request events"
        }
        FilterType::TagName => "TAG_NAME works with RELEASED and PRERELEASED events only",
        FilterType::ReleaseName => "RELEASE_NAME works with RELEASED and PRERELEASED events only",
        FilterType::WorkflowName => "WORKFLOW_NAME works with WORKFLOW_JOB_QUEUED events only",
        _ => "",
    }
}

/// The events a group's EVENT filters let through, in CodeBuild's order: those every including EVENT filter
/// names (every event of the provider when none includes), less those an excluding one names; `None` when the
/// group has no EVENT filter. The flag says whether some EVENT filter includes (a strict group, see
/// [`check_support`]).
fn events_through(filters: &[CompiledFilter], source: SourceType) -> Option<(bool, Vec<CodeBuildEvent>)> {
    let mut included: Option<BTreeSet<CodeBuildEvent>> = None;
    let mut excluded = BTreeSet::new();
    let mut has_event = false;
    for f in filters {
        let Test::Events(set) = &f.test else { continue };
        has_event = true;
        if f.exclude {
            excluded.extend(set.iter().copied());
        } else {
            included = Some(match included {
                None => set.clone(),
                Some(previous) => previous.intersection(set).copied().collect(),
            });
        }
    }
    if !has_event {
        return None;
    }
    let strict = included.is_some();
    let through = included
        .unwrap_or_else(|| source.events().into_iter().collect())
        .into_iter()
        .filter(|e| !excluded.contains(e))
        .collect();
    Some((strict, through))
}

/// Checks every non-EVENT filter against the events the group lets through (see the module documentation).
fn check_support(group: usize, filters: &[CompiledFilter], source: SourceType) -> Result<(), FilterGroupError> {
    let Some((strict, through)) = events_through(filters, source) else {
        return Err(FilterGroupError::NoEventFilter { group });
    };
    if through.is_empty() {
        return Err(FilterGroupError::NoEventPasses { group });
    }
    for (index, filter) in filters.iter().enumerate() {
        let t = filter.filter_type;
        if matches!(
            t,
            FilterType::Event | FilterType::ActorAccountId | FilterType::RepositoryName | FilterType::OrganizationName
        ) {
            continue;
        }
        if strict {
            if let Some(event) = through.iter().copied().find(|e| !source.supports_filter(t, *e)) {
                return Err(FilterGroupError::FilterNotSupported {
                    group,
                    filter: index + 1,
                    filter_type: t,
                    event,
                    source_type: source,
                    rule: rule(t),
                });
            }
        } else if !through.iter().any(|e| source.supports_filter(t, *e)) {
            return Err(FilterGroupError::FilterNeverApplies {
                group,
                filter: index + 1,
                filter_type: t,
                rule: rule(t),
            });
        }
    }
    Ok(())
}

/// Compiles a pattern with the size limits; the error is the `regex` crate's message.
fn build_regex(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern).size_limit(REGEX_SIZE_LIMIT).dfa_size_limit(REGEX_DFA_SIZE_LIMIT).build().map_err(|e| {
        match e {
            regex::Error::CompiledTooBig(limit) => {
                format!("the compiled pattern exceeds the size limit of {limit} bytes")
            }
            other => other.to_string(),
        }
    })
}

/// Why a delivery did or did not start a build: the verdict, and each group and filter with what it saw.
/// Serialized in camelCase for the explain API and the inbound log (`type`, `pattern` and
/// `excludeMatchedPattern` as in CodeBuild's `WebhookFilter`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    /// Whether a build starts.
    pub passed: bool,
    /// The event's CodeBuild name, or `None` when it has none (it then never passes).
    pub event: Option<CodeBuildEvent>,
    /// The legacy branch filter's outcome, when one is set.
    pub branch_filter: Option<FilterOutcome>,
    /// Set when the webhook has no filter groups: the default events passed or not.
    pub default_events: Option<bool>,
    /// Each group's outcome, in order.
    pub groups: Vec<GroupOutcome>,
    /// One sentence for people: which group passed, or why nothing did.
    pub reason: String,
}

/// One group's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupOutcome {
    /// The group's position, from 1.
    pub group: usize,
    pub passed: bool,
    pub filters: Vec<FilterOutcome>,
}

/// One filter's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterOutcome {
    /// The filter's position in its group, from 1 (0 for the branch filter).
    pub filter: usize,
    #[serde(rename = "type")]
    pub filter_type: String,
    pub pattern: String,
    pub exclude_matched_pattern: bool,
    /// The values the filter looked at: the event name, the ref, the changed files (at most
    /// [`MAX_FOUND_VALUES`], each cut to [`MAX_FOUND_CHARS`] characters with `…`). Empty when the event has
    /// no such value.
    pub found: Vec<String>,
    /// How many values there were in all (more than `found` holds when it was cut).
    pub found_count: usize,
    /// The value the pattern matched (for FILE_PATH, the first file that matched).
    pub matched_value: Option<String>,
    /// Whether the pattern matched, before `excludeMatchedPattern` is applied.
    pub matched: bool,
    /// Whether the filter passed: `matched`, inverted by `excludeMatchedPattern`.
    pub passed: bool,
    /// Why the value is missing, when it is.
    pub note: Option<String>,
}

/// Evaluates compiled filter groups (and the branch filter) against a normalized event.
pub fn evaluate(compiled: &CompiledFilterGroups, event: &SourceEvent) -> Evaluation {
    let branch_filter = compiled.branch_filter.as_ref().map(|(pattern, regex)| {
        let value = event.branch.clone();
        let note = value.is_none().then(|| "the event is not about a branch".to_string());
        outcome_of(0, "branchFilter", pattern, false, value.into_iter().collect(), note, |v| regex.is_match(v))
    });
    let groups: Vec<GroupOutcome> = compiled
        .groups
        .iter()
        .enumerate()
        .map(|(index, filters)| {
            let filters: Vec<FilterOutcome> =
                filters.iter().enumerate().map(|(at, filter)| evaluate_filter(at + 1, filter, event)).collect();
            GroupOutcome { group: index + 1, passed: filters.iter().all(|f| f.passed), filters }
        })
        .collect();
    let default_events =
        compiled.groups.is_empty().then(|| event.codebuild_event.is_some_and(|e| DEFAULT_EVENTS.contains(&e)));
    let branch_ok = branch_filter.as_ref().is_none_or(|f| f.passed);
    let groups_ok = match default_events {
        Some(passed) => passed,
        None => groups.iter().any(|g| g.passed),
    };
    let passed = event.codebuild_event.is_some() && branch_ok && groups_ok;
    let reason = match (event.codebuild_event, default_events) {
        _ if event.is_ping => "a ping starts no build".to_string(),
        (None, _) => format!("the event ({}) has no CodeBuild event type", describe(event)),
        _ if !branch_ok => "the branch filter did not pass".to_string(),
        (Some(e), Some(true)) => format!("no filter groups: {e} is one of the events built by default"),
        (Some(e), Some(false)) => format!(
            "no filter groups: only {} are built by default, not {e}",
            DEFAULT_EVENTS.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")
        ),
        (Some(_), None) => match groups.iter().find(|g| g.passed) {
            Some(g) => format!("filter group {} passed", g.group),
            None => {
                let failures: Vec<String> = groups
                    .iter()
                    .map(|g| {
                        let first = g.filters.iter().find(|f| !f.passed).expect("a failed group has a failed filter");
                        format!("group {}: {} filter {} failed", g.group, first.filter_type, first.filter)
                    })
                    .collect();
                format!("no filter group passed ({})", failures.join("; "))
            }
        },
    };
    Evaluation { passed, event: event.codebuild_event, branch_filter, default_events, groups, reason }
}

/// A short description of an event without a CodeBuild type, for the reason.
fn describe(event: &SourceEvent) -> String {
    match (&event.event, &event.action) {
        (Some(name), Some(action)) => format!("{name} {action}"),
        (Some(name), None) => name.clone(),
        (None, _) => "no known provider event header".to_string(),
    }
}

fn evaluate_filter(at: usize, filter: &CompiledFilter, event: &SourceEvent) -> FilterOutcome {
    let name = filter.filter_type.as_str();
    let exclude = filter.exclude;
    let single = |value: &Option<String>, missing: &str| {
        (value.iter().cloned().collect::<Vec<_>>(), value.is_none().then(|| missing.to_string()))
    };
    let regex = match &filter.test {
        Test::Events(events) => {
            let values: Vec<String> = event.codebuild_event.iter().map(|e| e.as_str().to_string()).collect();
            let note = event.codebuild_event.is_none().then(|| "the event has no CodeBuild event type".to_string());
            return outcome_of(at, name, &filter.pattern, exclude, values, note, |v| {
                CodeBuildEvent::parse(v).is_some_and(|e| events.contains(&e))
            });
        }
        Test::Regex(regex) => regex,
    };
    let (values, note) = match filter.filter_type {
        FilterType::ActorAccountId => single(&event.actor_account_id, "the payload names no actor account id"),
        FilterType::HeadRef => single(&event.head_ref, "the event has no head ref"),
        FilterType::BaseRef => single(&event.base_ref, "the event has no base ref (pull requests only)"),
        FilterType::CommitMessage => single(&event.commit_message, "the payload carries no head commit message"),
        FilterType::TagName => single(&event.tag_name, "the event has no release tag name"),
        FilterType::ReleaseName => single(&event.release_name, "the event has no release name"),
        FilterType::RepositoryName => single(&event.repository_name, "the payload names no repository"),
        FilterType::OrganizationName => single(&event.organization_name, "the payload names no repository owner"),
        FilterType::WorkflowName => single(&event.workflow_name, "the event names no workflow (workflow jobs only)"),
        FilterType::FilePath => match &event.changed_files {
            Some(files) => {
                let note = files.is_empty().then(|| "the event changed no files".to_string());
                (files.clone(), note)
            }
            None => (Vec::new(), Some("the payload does not list the changed files".to_string())),
        },
        FilterType::Event => (Vec::new(), None),
    };
    outcome_of(at, name, &filter.pattern, exclude, values, note, |v| regex.is_match(v))
}

/// Builds an outcome: the filter matches when any value matches.
fn outcome_of(
    at: usize,
    filter_type: &str,
    pattern: &str,
    exclude: bool,
    values: Vec<String>,
    note: Option<String>,
    mut matches: impl FnMut(&str) -> bool,
) -> FilterOutcome {
    let matched_value = values.iter().find(|v| matches(v)).map(|v| cut(v));
    let matched = matched_value.is_some();
    FilterOutcome {
        filter: at,
        filter_type: filter_type.to_string(),
        pattern: pattern.to_string(),
        exclude_matched_pattern: exclude,
        found_count: values.len(),
        found: values.iter().take(MAX_FOUND_VALUES).map(|v| cut(v)).collect(),
        matched_value,
        matched,
        passed: matched != exclude,
        note,
    }
}

/// `value` cut to [`MAX_FOUND_CHARS`] characters, ending in `…` when cut.
fn cut(value: &str) -> String {
    match value.char_indices().nth(MAX_FOUND_CHARS) {
        None => value.to_string(),
        Some((end, _)) => format!("{}…", &value[..end]),
    }
}
