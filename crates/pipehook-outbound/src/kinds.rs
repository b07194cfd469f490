//! Event kinds a hook can subscribe to (`filters`) and the groups that bundle them (`groups`).
//!
//! The Pulumi Cloud kinds come from Pulumi's own list (the `pulumi org webhook` command and the REST docs);
//! pipehook adds the kinds its own runs emit (`build_*`, `deploy_*`, `pipeline_execution_*`). A hook with no
//! filters and no groups receives every kind; otherwise a kind is delivered when it is listed in `filters` or
//! belongs to one of `groups`.

/// Every kind, with its group.
pub const KINDS: &[(&str, &str)] = &[
    ("stack_created", "stacks"),
    ("stack_deleted", "stacks"),
    ("preview_succeeded", "stacks"),
    ("preview_failed", "stacks"),
    ("update_succeeded", "stacks"),
    ("update_failed", "stacks"),
    ("destroy_succeeded", "stacks"),
    ("destroy_failed", "stacks"),
    ("refresh_succeeded", "stacks"),
    ("refresh_failed", "stacks"),
    ("import_succeeded", "stacks"),
    ("import_failed", "stacks"),
    ("deployment_queued", "deployments"),
    ("deployment_started", "deployments"),
    ("deployment_succeeded", "deployments"),
    ("deployment_failed", "deployments"),
    ("deployment_file_ingestion_failed", "deployments"),
    ("drift_detected", "deployments"),
    ("drift_detection_succeeded", "deployments"),
    ("drift_detection_failed", "deployments"),
    ("drift_remediation_succeeded", "deployments"),
    ("drift_remediation_failed", "deployments"),
    ("policy_violation_mandatory", "policies"),
    ("policy_violation_advisory", "policies"),
    ("environment_created", "environments"),
    ("environment_deleted", "environments"),
    ("environment_revision_created", "environments"),
    ("environment_revision_retracted", "environments"),
    ("environment_revision_tag_created", "environments"),
    ("environment_revision_tag_deleted", "environments"),
    ("environment_revision_tag_updated", "environments"),
    ("environment_tag_created", "environments"),
    ("environment_tag_deleted", "environments"),
    ("environment_tag_updated", "environments"),
    ("imported_environment_changed", "environments"),
    ("build_started", "builds"),
    ("build_succeeded", "builds"),
    ("build_failed", "builds"),
    ("deploy_started", "deployments"),
    ("deploy_succeeded", "deployments"),
    ("deploy_failed", "deployments"),
    ("pipeline_execution_started", "pipelines"),
    ("pipeline_execution_succeeded", "pipelines"),
    ("pipeline_execution_failed", "pipelines"),
    ("pipeline_execution_stopped", "pipelines"),
];

pub const GROUPS: &[&str] = &["stacks", "deployments", "policies", "environments", "builds", "pipelines"];

/// The kind of the test event `ping` sends; not subscribable, always delivered to the pinged hook.
pub const PING: &str = "ping";

pub fn is_kind(kind: &str) -> bool {
    KINDS.iter().any(|(k, _)| *k == kind)
}

pub fn group_of(kind: &str) -> Option<&'static str> {
    KINDS.iter().find(|(k, _)| *k == kind).map(|(_, g)| *g)
}

/// Whether a hook with these filters and groups receives `kind`.
pub fn subscribed(filters: &[String], groups: &[String], kind: &str) -> bool {
    if filters.is_empty() && groups.is_empty() {
        return true;
    }
    filters.iter().any(|f| f == kind) || group_of(kind).is_some_and(|g| groups.iter().any(|x| x == g))
}

/// The first unknown filter, if any.
pub fn unknown_filter(filters: &[String]) -> Option<&str> {
    filters.iter().map(String::as_str).find(|f| !is_kind(f))
}

/// The first unknown group, if any.
pub fn unknown_group(groups: &[String]) -> Option<&str> {
    groups.iter().map(String::as_str).find(|g| !GROUPS.contains(g))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn subscription_rules() {
        assert!(subscribed(&[], &[], "update_succeeded"), "no filters and no groups: everything");
        assert!(subscribed(&v(&["build_failed"]), &[], "build_failed"));
        assert!(!subscribed(&v(&["build_failed"]), &[], "build_succeeded"));
        assert!(subscribed(&[], &v(&["builds"]), "build_succeeded"));
        assert!(!subscribed(&[], &v(&["builds"]), "deploy_started"));
        assert!(subscribed(&v(&["stack_created"]), &v(&["pipelines"]), "pipeline_execution_failed"), "union");
        assert!(!subscribed(&v(&["stack_created"]), &v(&["pipelines"]), "update_failed"));
    }

    #[test]
    fn every_kind_has_a_known_group_and_names_are_unique() {
        for (k, g) in KINDS {
            assert!(GROUPS.contains(g), "{k} -> {g}");
            assert_eq!(KINDS.iter().filter(|(x, _)| x == k).count(), 1, "{k} listed twice");
        }
        assert_eq!(unknown_filter(&v(&["update_succeeded", "nope"])), Some("nope"));
        assert_eq!(unknown_group(&v(&["stacks", "change_requests"])), Some("change_requests"));
        assert!(!is_kind(PING));
    }
}
