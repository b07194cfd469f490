//! GitHub and GitHub Enterprise Server payloads (identical shapes; GHES only adds headers).
//!
//! Field sources: push `ref`, `after`, `head_commit.message`; pull_request `number`, `pull_request.head.{ref,sha}`,
//! `pull_request.base.ref`, `pull_request.title`; release `release.tag_name`, `release.name`; every event
//! `action`, `sender.login`, `repository.{full_name,html_url}`.

use serde_json::Value;

use super::{commit, number, set_pull_request, set_ref, text, SourceEvent};

pub(super) fn fill(event: &mut SourceEvent, name: &str, payload: &Value) {
    event.action = text(payload, &["action"]);
    event.actor = text(payload, &["sender", "login"]);
    event.repository = text(payload, &["repository", "full_name"]);
    event.repository_url = text(payload, &["repository", "html_url"]);
    match name {
        // GitHub sends `ping` when a hook is created, to show the URL works; it is about no commit, so it must
        // start nothing.
        "ping" => event.is_ping = true,
        "push" => {
            set_ref(event, text(payload, &["ref"]));
            event.commit_id = commit(text(payload, &["after"]));
            // A deleted ref has no head commit; a created tag has one even with an empty `commits`.
            event.message = text(payload, &["head_commit", "message"]);
        }
        "pull_request" => {
            let pr = &payload["pull_request"];
            let number = number(payload, &["number"]).or_else(|| number(pr, &["number"]));
            set_pull_request(event, number, text(pr, &["head", "ref"]), text(pr, &["base", "ref"]));
            event.commit_id = text(pr, &["head", "sha"]);
            event.message = text(pr, &["title"]);
        }
        "release" => {
            set_ref(event, text(payload, &["release", "tag_name"]).map(|tag| format!("refs/tags/{tag}")));
            event.message = text(payload, &["release", "name"]);
        }
        _ => {}
    }
}
