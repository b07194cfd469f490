//! Commit statuses for CodeBuild projects with `source.reportBuildStatus: true`: a build reports "in progress"
//! when it starts and its outcome when it ends, on the commit it builds, as CodeBuild does.
//!
//! - GitHub / GitHub Enterprise: `POST /repos/{o}/{r}/statuses/{sha}`, `state` pending / success / failure /
//!   error (stopped), `context`, `target_url`, `description`.
//! - GitLab: `POST /projects/{path}/statuses/{sha}`, `state` running / success / failed / canceled, `name`.
//! - Bitbucket Cloud: `POST /repositories/{ws}/{repo}/commit/{sha}/statuses/build`, `state` INPROGRESS /
//!   SUCCESSFUL / FAILED / STOPPED, `key` (the context, at most 40 characters), `url`.
//!
//! The context is `source.buildStatusConfig.context`, else `AWS CodeBuild <region> (<project>)` as CodeBuild
//! names it; the link is `source.buildStatusConfig.targetUrl`, else the build's log on this server. The
//! repository is always the one `source.location` names (never one a delivery or a pipeline revision names, so
//! the project's token writes to its own repository only); a location that names none (a local path) reports
//! nothing, which the build's log says. The project's `source.auth` token authenticates the call.

use async_trait::async_trait;
use pipehook_domain::secret::MasterKey;
use pipehook_runner::codebuild::{ReportedState, StatusReport, StatusReporter};
use serde_json::json;

use super::{github_repo, gitlab_path, segment, send, succeeded};

/// Reports commit statuses through the configured git host APIs.
pub struct Reporter {
    pub github_api_url: String,
    pub gitlab_api_url: String,
    pub bitbucket_api_url: String,
    /// This server's public base URL, for the default link.
    pub public_url: String,
    pub region: String,
    pub master_key: MasterKey,
}

#[async_trait]
impl StatusReporter for Reporter {
    async fn report(&self, r: &StatusReport<'_>) -> Result<String, String> {
        let source = &r.project.document["source"];
        let kind = source["type"].as_str().unwrap_or_default();
        let token = super::project_token(&self.master_key, r.project)
            .ok_or("the project has no source.auth token (type OAUTH) to report with")?;
        let context = source["buildStatusConfig"]["context"]
            .as_str()
            .filter(|c| !c.is_empty())
            .map_or_else(|| format!("AWS CodeBuild {} ({})", self.region, r.project.name), str::to_owned);
        let link = source["buildStatusConfig"]["targetUrl"].as_str().filter(|u| !u.is_empty()).map_or_else(
            || format!("{}/api/orgs/{}/builds/{}/logs", self.public_url, r.org_name, segment(&r.build.id)),
            str::to_owned,
        );
        let description = match r.state {
            ReportedState::InProgress => "Build started",
            ReportedState::Succeeded => "Build succeeded",
            ReportedState::Failed => "Build failed",
            ReportedState::Stopped => "Build stopped",
        };
        let location = source["location"].as_str().unwrap_or_default();
        let unknown = || format!("source.location '{location}' names no repository to report to");
        let client = super::client().map_err(|e| e.to_string())?;
        let req = match kind {
            "GITHUB" | "GITHUB_ENTERPRISE" => {
                let (owner, repo) = github_repo(location).ok_or_else(unknown)?;
                let state = state_name(kind, r.state);
                let url = format!(
                    "{}/repos/{}/{}/statuses/{}",
                    self.github_api_url,
                    segment(&owner),
                    segment(&repo),
                    segment(r.commit)
                );
                client
                    .post(url)
                    .header("authorization", format!("token {token}"))
                    .header("accept", "application/vnd.github+json")
                    .json(&json!({"state": state, "target_url": link, "description": description, "context": context}))
            }
            "GITLAB" | "GITLAB_SELF_MANAGED" => {
                let path = gitlab_path(location).ok_or_else(unknown)?;
                let state = state_name(kind, r.state);
                let url = format!("{}/projects/{}/statuses/{}", self.gitlab_api_url, segment(&path), segment(r.commit));
                client
                    .post(url)
                    .header("PRIVATE-TOKEN", token)
                    .json(&json!({"state": state, "name": context, "target_url": link, "description": description}))
            }
            "BITBUCKET" => {
                let full_name = github_repo(location).map(|(w, r)| format!("{w}/{r}")).ok_or_else(unknown)?;
                let state = state_name(kind, r.state);
                let key: String = context.chars().take(40).collect();
                let url = format!(
                    "{}/commit/{}/statuses/build",
                    super::bitbucket::repository_url(&self.bitbucket_api_url, &full_name),
                    segment(r.commit)
                );
                client.post(url).header("authorization", super::bitbucket::authorization(&token)).json(&json!({
                    "key": key,
                    "state": state,
                    "name": context,
                    "url": link,
                    "description": description,
                }))
            }
            other => return Err(format!("source type {other} has no commit statuses")),
        };
        let res = send(req).await.map_err(|e| e.to_string())?;
        let res = succeeded(res).await.map_err(|e| e.to_string())?;
        Ok(res.url().to_string())
    }
}

/// The provider's name for a build state.
fn state_name(kind: &str, state: ReportedState) -> &'static str {
    use ReportedState::*;
    match (kind, state) {
        ("GITLAB" | "GITLAB_SELF_MANAGED", InProgress) => "running",
        ("GITLAB" | "GITLAB_SELF_MANAGED", Succeeded) => "success",
        ("GITLAB" | "GITLAB_SELF_MANAGED", Failed) => "failed",
        ("GITLAB" | "GITLAB_SELF_MANAGED", Stopped) => "canceled",
        ("BITBUCKET", InProgress) => "INPROGRESS",
        ("BITBUCKET", Succeeded) => "SUCCESSFUL",
        ("BITBUCKET", Failed) => "FAILED",
        ("BITBUCKET", Stopped) => "STOPPED",
        (_, InProgress) => "pending",
        (_, Succeeded) => "success",
        (_, Failed) => "failure",
        (_, Stopped) => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_provider_names_the_states() {
        use ReportedState::*;
        let names = |kind| [InProgress, Succeeded, Failed, Stopped].map(|s| state_name(kind, s));
        assert_eq!(names("GITHUB"), ["pending", "success", "failure", "error"]);
        assert_eq!(names("GITHUB_ENTERPRISE"), names("GITHUB"));
        assert_eq!(names("GITLAB_SELF_MANAGED"), ["running", "success", "failed", "canceled"]);
        assert_eq!(names("BITBUCKET"), ["INPROGRESS", "SUCCESSFUL", "FAILED", "STOPPED"]);
    }
}
