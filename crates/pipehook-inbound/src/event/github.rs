//! GitHub and GitHub Enterprise Server payloads (identical shapes; GHES only adds headers).
//!
//! Field sources: push `ref`, `before`, `after`, `head_commit.message`, `commits[].{added,modified,removed}`;
//! pull_request `number`, `pull_request.head.{ref,sha}`, `pull_request.base.ref`, `pull_request.title`,
//! `pull_request.merged`; release `release.tag_name`, `release.name`; workflow_job `workflow_job.{head_branch,
//! head_sha,workflow_name}`; every event `action`, `sender.{login,id}`, `repository.{full_name,html_url}`.
//!
//! CodeBuild event names, as CodeBuild's GitHub page maps them: `push` → PUSH (not when it deletes the ref:
//! there is nothing to build); `pull_request` `opened` → PULL_REQUEST_CREATED, `synchronize` →
//! PULL_REQUEST_UPDATED (`edited`, a title or body change, is not an update), `reopened` →
//! PULL_REQUEST_REOPENED, `closed` → PULL_REQUEST_MERGED when `merged` is true, else PULL_REQUEST_CLOSED;
//! `release` `released` → RELEASED and `prereleased` → PRERELEASED (GitHub also sends `published` for both,
//! which maps to nothing, so one release starts one build); `workflow_job` `queued` → WORKFLOW_JOB_QUEUED.

use serde_json::Value;

use super::{
    before, changed_files, commit, id_text, number, set_pull_request, set_push_ref, set_ref, set_repository, text,
    CodeBuildEvent, SourceEvent,
};

pub(super) fn fill(event: &mut SourceEvent, name: &str, payload: &Value) {
    event.action = text(payload, &["action"]);
    event.actor = text(payload, &["sender", "login"]);
    event.actor_account_id = id_text(payload, &["sender", "id"]);
    set_repository(event, text(payload, &["repository", "full_name"]));
    event.repository_url = text(payload, &["repository", "html_url"]);
    let action = event.action.clone();
    let action = action.as_deref();
    match name {
        // GitHub sends `ping` when a hook is created, to show the URL works; it is about no commit, so it must
        // start nothing.
        "ping" => event.is_ping = true,
        "push" => {
            set_push_ref(event, text(payload, &["ref"]));
            event.commit_id = commit(text(payload, &["after"]));
            // All zeros when the push created the ref: CodeBuild passes that on as CODEBUILD_WEBHOOK_PREV_COMMIT.
            event.previous_commit = before(text(payload, &["before"]));
            // A deleted ref has no head commit; a created tag has one even with an empty `commits`.
            event.message = text(payload, &["head_commit", "message"]);
            event.commit_message = event.message.clone();
            event.changed_files = changed_files(&payload["commits"]);
            if event.commit_id.is_some() {
                event.codebuild_event = Some(CodeBuildEvent::Push);
            }
        }
        "pull_request" => {
            let pr = &payload["pull_request"];
            let number = number(payload, &["number"]).or_else(|| number(pr, &["number"]));
            set_pull_request(event, number, text(pr, &["head", "ref"]), text(pr, &["base", "ref"]));
            event.commit_id = commit(text(pr, &["head", "sha"]));
            event.message = text(pr, &["title"]);
            event.codebuild_event = match action {
                Some("opened") => Some(CodeBuildEvent::PullRequestCreated),
                Some("synchronize") => Some(CodeBuildEvent::PullRequestUpdated),
                Some("reopened") => Some(CodeBuildEvent::PullRequestReopened),
                Some("closed") if pr["merged"].as_bool() == Some(true) => Some(CodeBuildEvent::PullRequestMerged),
                Some("closed") => Some(CodeBuildEvent::PullRequestClosed),
                _ => None,
            };
        }
        "release" => {
            let tag = text(payload, &["release", "tag_name"]);
            set_ref(event, tag.as_ref().map(|tag| format!("refs/tags/{tag}")));
            event.tag_name = tag;
            event.release_name = text(payload, &["release", "name"]);
            event.message = event.release_name.clone();
            event.codebuild_event = match action {
                Some("released") => Some(CodeBuildEvent::Released),
                Some("prereleased") => Some(CodeBuildEvent::Prereleased),
                _ => None,
            };
        }
        "workflow_job" => {
            let job = &payload["workflow_job"];
            set_push_ref(event, text(job, &["head_branch"]).map(|b| format!("refs/heads/{b}")));
            event.commit_id = commit(text(job, &["head_sha"]));
            event.workflow_name = text(job, &["workflow_name"]);
            if action == Some("queued") {
                event.codebuild_event = Some(CodeBuildEvent::WorkflowJobQueued);
            }
        }
        _ => {}
    }
}
