//! Bitbucket Cloud payloads: `repo:push` and `pullrequest:*`.
//!
//! Field sources: push `push.changes[].new.{type,name,target.hash,target.message}`; pull request
//! `pullrequest.{id,title,source.branch.name,source.commit.hash,destination.branch.name}`; every event
//! `actor.nickname` (else `display_name`), `repository.{full_name,links.html.href}`. A push may change several
//! refs at once; the event describes the first change that still has a new head, because one delivery starts
//! at most one execution. Bitbucket sends 12-character
//! abbreviated commit hashes in pull request payloads, and they are passed on as they are.

use serde_json::Value;

use super::{number, set_pull_request, set_ref, text, SourceEvent};

pub(super) fn fill(event: &mut SourceEvent, key: &str, payload: &Value) {
    event.actor = text(payload, &["actor", "nickname"]).or_else(|| text(payload, &["actor", "display_name"]));
    event.repository = text(payload, &["repository", "full_name"]);
    event.repository_url = text(payload, &["repository", "links", "html", "href"]);
    if key == "repo:push" {
        let changes = payload["push"]["changes"].as_array().map(Vec::as_slice).unwrap_or_default();
        match changes.iter().map(|change| &change["new"]).find(|new| new.is_object()) {
            Some(new) => {
                set_ref(event, full_ref(new));
                event.commit_id = text(new, &["target", "hash"]);
                event.message = text(new, &["target", "message"]);
            }
            // Every change deleted its ref: report the first one's ref, with no commit.
            None => set_ref(event, changes.first().and_then(|change| full_ref(&change["old"]))),
        }
    } else if let Some(action) = key.strip_prefix("pullrequest:") {
        let pr = &payload["pullrequest"];
        event.action = Some(action.to_string());
        let source = text(pr, &["source", "branch", "name"]);
        set_pull_request(event, number(pr, &["id"]), source, text(pr, &["destination", "branch", "name"]));
        event.commit_id = text(pr, &["source", "commit", "hash"]);
        event.message = text(pr, &["title"]);
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
