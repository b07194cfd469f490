//! Bitbucket Cloud payloads: `repo:push` and `pullrequest:*`.
//!
//! Field sources: push `push.changes[].{new.{type,name,target.hash,target.message},old.target.hash}`; pull
//! request `pullrequest.{id,title,source.branch.name,source.commit.hash,destination.branch.name,
//! merge_commit.hash}`; every event `actor.{nickname,display_name,account_id}`, `repository.{full_name,
//! links.html.href}`. A push may change several refs at once; the event describes the first change that still
//! has a new head, because one delivery starts at most one build. Bitbucket sends 12-character abbreviated
//! commit hashes in pull request payloads: they are passed on when they are hexadecimal (7 to 64 digits), and
//! the checkout makes sure the commit it resolved starts with them; every other commit field must be a full id. No Bitbucket payload lists
//! changed files, and pull request payloads carry no commit message, so `changed_files` is always `None` and
//! `commit_message` is `None` for pull requests.
//!
//! CodeBuild event names, as CodeBuild's Bitbucket page maps them: `repo:push` → PUSH (not when every change
//! deleted its ref); `pullrequest:created` → PULL_REQUEST_CREATED, `pullrequest:updated` →
//! PULL_REQUEST_UPDATED, `pullrequest:fulfilled` → PULL_REQUEST_MERGED, `pullrequest:rejected` (declined) →
//! PULL_REQUEST_CLOSED.

use serde_json::Value;

use super::{
    abbreviated_commit, commit, number, set_pull_request, set_push_ref, set_repository, text, CodeBuildEvent,
    SourceEvent,
};

pub(super) fn fill(event: &mut SourceEvent, key: &str, payload: &Value) {
    event.actor = text(payload, &["actor", "nickname"]).or_else(|| text(payload, &["actor", "display_name"]));
    event.actor_account_id = text(payload, &["actor", "account_id"]);
    set_repository(event, text(payload, &["repository", "full_name"]));
    event.repository_url = text(payload, &["repository", "links", "html", "href"]);
    if key == "repo:push" {
        let changes = payload["push"]["changes"].as_array().map(Vec::as_slice).unwrap_or_default();
        match changes.iter().find(|change| change["new"].is_object()) {
            Some(change) => {
                let new = &change["new"];
                set_push_ref(event, full_ref(new));
                event.commit_id = commit(text(new, &["target", "hash"]));
                event.message = text(new, &["target", "message"]);
                event.commit_message = event.message.clone();
                event.previous_commit = commit(text(&change["old"], &["target", "hash"]));
                if event.commit_id.is_some() {
                    event.codebuild_event = Some(CodeBuildEvent::Push);
                }
            }
            // Every change deleted its ref: report the first one's ref, with no commit.
            None => set_push_ref(event, changes.first().and_then(|change| full_ref(&change["old"]))),
        }
    } else if let Some(action) = key.strip_prefix("pullrequest:") {
        let pr = &payload["pullrequest"];
        event.action = Some(action.to_string());
        let source = text(pr, &["source", "branch", "name"]);
        set_pull_request(event, number(pr, &["id"]), source, text(pr, &["destination", "branch", "name"]));
        event.commit_id = abbreviated_commit(text(pr, &["source", "commit", "hash"]));
        event.message = text(pr, &["title"]);
        event.codebuild_event = match action {
            "created" => Some(CodeBuildEvent::PullRequestCreated),
            "updated" => Some(CodeBuildEvent::PullRequestUpdated),
            "fulfilled" => Some(CodeBuildEvent::PullRequestMerged),
            "rejected" => Some(CodeBuildEvent::PullRequestClosed),
            _ => None,
        };
        if event.codebuild_event == Some(CodeBuildEvent::PullRequestMerged) {
            event.merge_commit = abbreviated_commit(text(pr, &["merge_commit", "hash"]));
        }
    } else if key == "diagnostics:ping" {
        // Bitbucket Data Center's "Test connection" request: about no commit, like GitHub's ping.
        event.is_ping = true;
    }
}

/// The full ref of a change's `new` or `old` side; Mercurial-era types (`named_branch`, `bookmark`) have none.
fn full_ref(side: &Value) -> Option<String> {
    let name = text(side, &["name"])?;
    match text(side, &["type"])?.as_str() {
        "branch" => Some(format!("refs/heads/{name}")),
        "tag" => Some(format!("refs/tags/{name}")),
        _ => None,
    }
}
