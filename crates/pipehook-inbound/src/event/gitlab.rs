//! GitLab payloads: Push Hook, Tag Push Hook, Merge Request Hook (project, group and system hooks alike).
//!
//! The kind is read from `object_kind`, or `event_name` for system hooks, which lack `object_kind`; both say
//! `push`, `tag_push` or `merge_request`. Field sources: push `ref`, `checkout_sha` (`null` when the ref was
//! deleted), the message of the commit whose id is `checkout_sha`, `user_username`; merge request
//! `object_attributes.{iid,source_branch,target_branch,last_commit.id,title,action}`, `user.username`;
//! every event `project.{path_with_namespace,web_url}`.

use serde_json::Value;

use super::{commit, number, set_pull_request, set_ref, text, SourceEvent};

pub(super) fn fill(event: &mut SourceEvent, payload: &Value) {
    event.repository = text(payload, &["project", "path_with_namespace"]);
    event.repository_url = text(payload, &["project", "web_url"]);
    let kind = text(payload, &["object_kind"]).or_else(|| text(payload, &["event_name"]));
    match kind.as_deref() {
        Some("push" | "tag_push") => {
            set_ref(event, text(payload, &["ref"]));
            let id = commit(text(payload, &["checkout_sha"]).or_else(|| text(payload, &["after"])));
            // `commits` lists up to 20 commits, oldest first; the message is the one of the commit checked out.
            event.message = id.as_deref().and_then(|id| {
                payload["commits"]
                    .as_array()?
                    .iter()
                    .find(|c| c["id"].as_str() == Some(id))
                    .and_then(|c| text(c, &["message"]))
            });
            event.commit_id = id;
            event.actor = text(payload, &["user_username"]).or_else(|| text(payload, &["user_name"]));
        }
        Some("merge_request") => {
            let mr = &payload["object_attributes"];
            let source = text(mr, &["source_branch"]);
            set_pull_request(event, number(mr, &["iid"]), source, text(mr, &["target_branch"]));
            event.action = text(mr, &["action"]);
            event.commit_id = text(mr, &["last_commit", "id"]);
            event.message = text(mr, &["title"]);
            event.actor = text(payload, &["user", "username"]);
        }
        _ => event.actor = text(payload, &["user", "username"]).or_else(|| text(payload, &["user_username"])),
    }
}
