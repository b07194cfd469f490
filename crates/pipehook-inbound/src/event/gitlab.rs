//! GitLab payloads: Push Hook, Tag Push Hook, Merge Request Hook (project, group and system hooks alike), and
//! Release Hook.
//!
//! The kind is read from `object_kind`, or `event_name` for system hooks, which lack `object_kind`; both say
//! `push`, `tag_push`, `merge_request` or `release`. Field sources: push `ref`, `before`, `checkout_sha` (`null`
//! when the ref was deleted), the message of the commit whose id is `checkout_sha`, `commits[].{added,
//! modified,removed}` (GitLab lists at most 20 commits, so a larger push lists the files of its last 20 only),
//! `user_id`, `user_username`; merge request `object_attributes.{iid,source_branch,target_branch,last_commit.
//! {id,message},title,action,merge_commit_sha}`, `user.{id,username}`; release `action`, `tag`, `name`,
//! `commit.id`; every event `project.{path_with_namespace,web_url}`.
//!
//! CodeBuild event names, as CodeBuild's GitLab page maps them: Push Hook and Tag Push Hook → PUSH (not when
//! the push deletes the ref); Merge Request Hook `open` → PULL_REQUEST_CREATED, `update` →
//! PULL_REQUEST_UPDATED, `merge` → PULL_REQUEST_MERGED, `close` → PULL_REQUEST_CLOSED, `reopen` →
//! PULL_REQUEST_REOPENED (other actions, such as `approved`, → none); Release Hook `create` and `update` →
//! RELEASED (`delete` → none), as CodeBuild's GitLab page lists it (the API reference still says RELEASED works
//! with GitHub only; PRERELEASED has no GitLab event). The reopen name is set for the log's sake, though filter
//! groups refuse it for GitLab (the seed: GitHub and GitHub Enterprise only).

use serde_json::Value;

use super::{
    before, changed_files, commit, id_text, number, set_pull_request, set_push_ref, set_repository, text,
    CodeBuildEvent, SourceEvent,
};

pub(super) fn fill(event: &mut SourceEvent, payload: &Value) {
    set_repository(event, text(payload, &["project", "path_with_namespace"]));
    event.repository_url = text(payload, &["project", "web_url"]);
    let kind = text(payload, &["object_kind"]).or_else(|| text(payload, &["event_name"]));
    match kind.as_deref() {
        Some("push" | "tag_push") => {
            set_push_ref(event, text(payload, &["ref"]));
            let id = commit(text(payload, &["checkout_sha"]).or_else(|| text(payload, &["after"])));
            // `commits` lists up to 20 commits, oldest first; the message is the one of the commit checked out.
            event.message = id.as_deref().and_then(|id| {
                payload["commits"]
                    .as_array()?
                    .iter()
                    .find(|c| c["id"].as_str() == Some(id))
                    .and_then(|c| text(c, &["message"]))
            });
            event.commit_message = event.message.clone();
            event.changed_files = changed_files(&payload["commits"]);
            // All zeros when the push created the ref, as GitHub's.
            event.previous_commit = before(text(payload, &["before"]));
            if id.is_some() {
                event.codebuild_event = Some(CodeBuildEvent::Push);
            }
            event.commit_id = id;
            event.actor = text(payload, &["user_username"]).or_else(|| text(payload, &["user_name"]));
            event.actor_account_id = id_text(payload, &["user_id"]);
        }
        Some("merge_request") => {
            let mr = &payload["object_attributes"];
            let source = text(mr, &["source_branch"]);
            set_pull_request(event, number(mr, &["iid"]), source, text(mr, &["target_branch"]));
            event.action = text(mr, &["action"]);
            event.commit_id = commit(text(mr, &["last_commit", "id"]));
            event.commit_message = text(mr, &["last_commit", "message"]);
            event.message = text(mr, &["title"]);
            event.actor = text(payload, &["user", "username"]);
            event.actor_account_id = id_text(payload, &["user", "id"]);
            event.codebuild_event = match event.action.as_deref() {
                Some("open") => Some(CodeBuildEvent::PullRequestCreated),
                Some("update") => Some(CodeBuildEvent::PullRequestUpdated),
                Some("merge") => Some(CodeBuildEvent::PullRequestMerged),
                Some("close") => Some(CodeBuildEvent::PullRequestClosed),
                Some("reopen") => Some(CodeBuildEvent::PullRequestReopened),
                _ => None,
            };
            if event.codebuild_event == Some(CodeBuildEvent::PullRequestMerged) {
                event.merge_commit = commit(text(mr, &["merge_commit_sha"]));
            }
        }
        Some("release") => {
            event.action = text(payload, &["action"]);
            event.tag_name = text(payload, &["tag"]);
            event.release_name = text(payload, &["name"]);
            event.message = event.release_name.clone();
            event.git_ref = event.tag_name.as_ref().map(|tag| format!("refs/tags/{tag}"));
            event.commit_id = commit(text(payload, &["commit", "id"]));
            if matches!(event.action.as_deref(), Some("create" | "update")) {
                event.codebuild_event = Some(CodeBuildEvent::Released);
            }
        }
        _ => {
            event.actor = text(payload, &["user", "username"]).or_else(|| text(payload, &["user_username"]));
            event.actor_account_id = id_text(payload, &["user", "id"]).or_else(|| id_text(payload, &["user_id"]));
        }
    }
}
