//! The relay: recorded run transitions (`run_events`, written by the runner in the same transaction as the
//! transition itself) become outbound events. Each batch of run events is read, published and marked relayed
//! in one transaction, so every transition is published exactly once even with several nodes (PostgreSQL
//! locks the rows it took with SKIP LOCKED; SQLite has one writer).
//!
//! Which transitions become which events, and where they go:
//! - `pipeline_execution_started|succeeded|failed|stopped` (superseded counts as stopped): the organization's
//!   hooks and the stack hooks of the project named like the pipeline.
//! - `build_started|succeeded|failed` (Build actions): the organization's hooks and the stack hooks of its
//!   project: the action's `ProjectName`, else the pipeline's name.
//! - `deploy_started|succeeded|failed` (Deploy actions): the organization's hooks and the hooks of the
//!   environment named by the action's `EnvironmentName`.
//!
//! Build and deploy bodies are Puppet Pipelines' build and deploy webhook bodies, every field of theirs with
//! its type (see [`map_run_event`]); pipehook's own facts (pipeline, execution, stage, action, error, and for
//! deploys the commit) are grouped under one key, `pipehook`, so a Puppet receiver sees Puppet's shape. Their
//! links point at this server's API ([`crate::OutboundConfig::public_url`]). Numbers and times the run events
//! do not carry (an execution's number within its pipeline, an action's start and id) are looked up here,
//! once per execution and batch, rather than added to the runner's events.

use pipehook_domain::org::OrgId;
use pipehook_domain::time::Timestamp;
use pipehook_store::{ActionExecutionRecord, RunEventRow, Store, StoreResult};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::deliver::{Outbound, IDEMPOTENCY_WINDOW};
use pipehook_store::OutboundEvent;

#[cfg(test)]
#[path = "../tests/fixtures/puppet_seed.rs"]
mod puppet_seed;

/// Run events handled per transaction.
const BATCH: u32 = 100;

impl Outbound {
    /// Relays one batch; returns how many run events it consumed.
    pub async fn relay_once(&self, store: &dyn Store) -> StoreResult<usize> {
        let mut tx = store.begin().await?;
        let rows = tx.unrelayed_run_events(BATCH).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut seqs = Vec::with_capacity(rows.len());
        let mut executions = HashMap::new();
        for row in &rows {
            seqs.push(row.seq);
            let facts = self.run_facts(store, row, &mut executions).await?;
            let org_name = self.org_name(row.org).await;
            let links = Links::new(&self.config().public_url, &org_name);
            let Some(mapped) = map_run_event(row, &links, &facts) else { continue };
            let hooks = self.reach(row.org, mapped.project.as_deref(), None, mapped.env.as_deref()).await?;
            let event = OutboundEvent {
                id: uuid::Uuid::new_v4().to_string(),
                org: row.org,
                kind: mapped.kind.to_owned(),
                payload: mapped.payload.to_string(),
                project: mapped.project,
                stack: None,
                env: mapped.env,
                idempotency_key: None,
                created_at: Timestamp::now(),
            };
            let p = self.publication(event, &hooks, Timestamp::now().saturating_sub(IDEMPOTENCY_WINDOW));
            tx.insert_outbound_event(&p.event, p.idempotency_since).await?;
            if !p.deliveries.is_empty() {
                tx.insert_deliveries(&p.deliveries).await?;
                tx.enqueue(&p.jobs).await?;
            }
        }
        tx.mark_relayed(&seqs).await?;
        tx.commit().await?;
        Ok(rows.len())
    }

    /// What a build or deploy event's body needs beyond the event: the execution's number within its pipeline
    /// and, for a pipeline action, its record. Read through the store's readers (never the relay's open
    /// transaction, which on SQLite holds the writer), once per execution and batch.
    async fn run_facts(
        &self,
        store: &dyn Store,
        row: &RunEventRow,
        executions: &mut HashMap<(OrgId, String), Execution>,
    ) -> StoreResult<RunFacts> {
        let family = row.kind.split_once('_').map(|(f, _)| f);
        if !matches!(family, Some("build" | "deploy")) {
            return Ok(RunFacts::default());
        }
        let p = &row.payload;
        let Some(exec_id) = s(p, "/executionId") else { return Ok(RunFacts::default()) };
        let key = (row.org, exec_id.clone());
        if !executions.contains_key(&key) {
            let number = store.execution_number(row.org, &exec_id).await?;
            // A CodeBuild build's events carry its own numbers and times; only an action's need its record.
            let actions = if p.get("buildId").is_some() {
                Vec::new()
            } else {
                store.action_executions(row.org, &exec_id).await?
            };
            executions.insert(key.clone(), Execution { number, actions });
        }
        let e = &executions[&key];
        let action = match (s(p, "/stage"), s(p, "/action")) {
            (Some(stage), Some(action)) if p.get("buildId").is_none() => e
                .actions
                .iter()
                .find(|a| a.stage_name == stage && a.action_name == action)
                .map(|a| ActionFacts { id: a.id.clone(), seq: a.seq, start_time: a.start_time }),
            _ => None,
        };
        Ok(RunFacts { execution_number: e.number, action })
    }

    /// Relays until `shutdown`, polling every `interval` when idle.
    pub async fn run_relay(&self, store: &dyn Store, interval: Duration, shutdown: CancellationToken) {
        let mut backoff = interval;
        while !shutdown.is_cancelled() {
            let wait = match self.relay_once(store).await {
                Ok(n) if n as u32 == BATCH => Duration::ZERO,
                Ok(_) => {
                    backoff = interval;
                    interval
                }
                Err(e) => {
                    tracing::warn!(error = %e, "relaying run events failed; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    backoff
                }
            };
            if !wait.is_zero() {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// One execution's facts, read once per batch.
struct Execution {
    number: Option<i64>,
    actions: Vec<ActionExecutionRecord>,
}

/// What a run event's body needs that the event does not carry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFacts {
    /// The execution's number within its pipeline (1 for its first), when the event belongs to an execution.
    pub execution_number: Option<i64>,
    /// The pipeline action the event is about.
    pub action: Option<ActionFacts>,
}

/// A pipeline action's run: its id, its sequence number (unique, increasing) and when it started.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionFacts {
    pub id: String,
    pub seq: i64,
    pub start_time: Timestamp,
}

/// Links into this server's API, for an organization.
#[derive(Debug, Clone)]
pub struct Links {
    public: String,
    org: String,
}

impl Links {
    pub fn new(public_url: &str, org: &str) -> Self {
        Self { public: public_url.trim_end_matches('/').to_owned(), org: org.to_owned() }
    }

    fn org_base(&self) -> String {
        format!("{}/api/orgs/{}", self.public, segment(&self.org))
    }

    /// The pipeline (Puppet's application).
    fn pipeline(&self, pipeline: &str) -> String {
        format!("{}/pipelines/{}", self.org_base(), segment(pipeline))
    }

    /// The execution: its actions, revisions and status (Puppet's release).
    fn execution(&self, pipeline: &str, execution: &str) -> String {
        format!("{}/executions/{}", self.pipeline(pipeline), segment(execution))
    }

    /// One action of the execution: its status and log (Puppet's build or deployment).
    fn action(&self, pipeline: &str, execution: &str, action: &str) -> String {
        format!("{}/logs?action={}", self.execution(pipeline, execution), segment(action))
    }

    /// A CodeBuild build's log (the `logs.deepLink` BatchGetBuilds gives).
    fn build(&self, build_id: &str) -> String {
        format!("{}/builds/{}/logs", self.org_base(), segment(build_id))
    }

    /// The environment's hooks, in the pipeline's project (pipehook has no environment resource of its own).
    fn environment(&self, project: &str, env: &str) -> String {
        format!(
            "{}/api/esc/environments/{}/{}/{}/hooks",
            self.public,
            segment(&self.org),
            segment(project),
            segment(env)
        )
    }
}

/// A path segment (or query value) percent-encoded: everything but RFC 3986's unreserved characters, `:` and `@`.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a run event becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub kind: &'static str,
    pub project: Option<String>,
    pub env: Option<String>,
    pub payload: Value,
}

fn s(v: &Value, ptr: &str) -> Option<String> {
    v.pointer(ptr).and_then(Value::as_str).filter(|x| !x.is_empty()).map(str::to_owned)
}

fn iso(ms: Option<i64>) -> Value {
    ms.map(|m| Value::from(Timestamp(m).to_rfc3339())).unwrap_or(Value::Null)
}

/// The commit a run is about, in Puppet's shape, from the trigger's revision.
fn commit(p: &Value) -> Value {
    let r = p.pointer("/trigger/revision").cloned().unwrap_or(Value::Null);
    let repo = s(&r, "/repository");
    let (owner, name) = match repo.as_deref().and_then(|x| x.split_once('/')) {
        Some((o, n)) => (Some(o.to_owned()), Some(n.to_owned())),
        None => (None, repo.clone()),
    };
    let commit_id = s(&r, "/commitId");
    let url = match (s(&r, "/repositoryUrl"), &commit_id) {
        (Some(u), Some(c)) => Some(format!("{}/commit/{c}", u.trim_end_matches(".git").trim_end_matches('/'))),
        _ => None,
    };
    json!({
        "branch": s(&r, "/branch"),
        "commit_id": commit_id,
        "committer": s(&r, "/actor"),
        "date": Value::Null,
        "msg": s(&r, "/message"),
        "repo_name": name,
        "repo_owner": owner,
        "url": url,
    })
}

fn status_word(kind_suffix: &str) -> &'static str {
    match kind_suffix {
        "started" => "Running",
        "succeeded" => "Success",
        "stopped" => "Stopped",
        _ => "Failed",
    }
}

/// Maps one run event; `None` for transitions no hook subscribes to (action_started, ...).
///
/// Build events (Build actions, and CodeBuild builds) have every field of Puppet Pipelines' "Build Started" and
/// "Build Finished" bodies: `api_url` and `html_url` (the action's status and log, or the build's log),
/// `app_name` (the action's `ProjectName`, else the pipeline; the CodeBuild project), `build_num` (the
/// execution's number within its pipeline; the CodeBuild build number), `build_server` and `dependencies`
/// (null), `commit`, `create_time`, `deployments` (null, then `[]`), `end_time`, `release_url` and
/// `release_version` (on success: the execution and `v<its number>`; a CodeBuild build outside a pipeline is
/// its own release, `v<build number>`), `start_time` (null while `Queued`, as Puppet's), `status` (`Queued`,
/// `Success`, `Failed`). Deploy events have every field of "Deploy Started" and "Deploy Finished": `api_url`,
/// `html_url` and `servers_url` (the action's status and log), `app_name` and `app_url` (the pipeline),
/// `deployer`, `deployment_id` and `deployment_number` (the action's run: its id and sequence number),
/// `deployment_state`, `deployment_time` (when the action started), `deployment_type`, `env_name`, `env_url`,
/// `release_url` and `release_version` (the execution), `servers` (one: the worker), `stagger_delay` (0) and
/// `stagger_size` (1).
pub fn map_run_event(row: &RunEventRow, links: &Links, facts: &RunFacts) -> Option<Mapped> {
    let p = &row.payload;
    let at = p.get("at").and_then(Value::as_i64).unwrap_or(row.created_at.0);
    let pipeline = s(p, "/pipeline");
    let execution = s(p, "/executionId");
    if let Some(rest) = row.kind.strip_prefix("pipeline_execution_") {
        let (kind, word) = match rest {
            "started" => ("pipeline_execution_started", "started"),
            "succeeded" => ("pipeline_execution_succeeded", "succeeded"),
            "failed" => ("pipeline_execution_failed", "failed"),
            "stopped" | "superseded" => ("pipeline_execution_stopped", "stopped"),
            _ => return None,
        };
        let start = p.get("startTime").and_then(Value::as_i64);
        let payload = json!({
            "app_name": pipeline,
            "pipeline": pipeline,
            "pipeline_version": p.get("pipelineVersion"),
            "execution_id": execution,
            "status": status_word(word),
            "execution_status": p.get("status"),
            "summary": p.get("summary"),
            "trigger": p.pointer("/trigger/triggerType"),
            "commit": commit(p),
            "create_time": iso(start),
            "start_time": iso(start),
            "end_time": if word == "started" { Value::Null } else { iso(Some(at)) },
        });
        return Some(Mapped { kind, project: pipeline, env: None, payload });
    }
    let (family, word) = row.kind.split_once('_')?;
    let word = match word {
        "started" | "succeeded" | "failed" => word,
        _ => return None,
    };
    let started = word == "started";
    let number = facts.execution_number;
    // The execution as Puppet's release: its link and `v<number>`.
    let release = match (&pipeline, &execution, number) {
        (Some(pl), Some(ex), Some(n)) => Some((links.execution(pl, ex), format!("v{n}"))),
        _ => None,
    };
    let action_link = match (&pipeline, &execution, s(p, "/action")) {
        (Some(pl), Some(ex), Some(a)) => Some(links.action(pl, ex, &a)),
        _ => None,
    };
    match family {
        "build" => {
            let kind = match word {
                "started" => "build_started",
                "succeeded" => "build_succeeded",
                _ => "build_failed",
            };
            let build_id = s(p, "/buildId");
            let (project, build_num, link, created, release) = match &build_id {
                // A CodeBuild build: its project, its number, its log; it started when it was created.
                Some(id) => {
                    let project = s(p, "/projectName");
                    let created = p.get("startTime").and_then(Value::as_i64).unwrap_or(at);
                    let own = p.get("buildNumber").and_then(Value::as_i64).map(|n| (links.build(id), format!("v{n}")));
                    let release = release.or(own);
                    (
                        project,
                        p.get("buildNumber").cloned().unwrap_or(Value::Null),
                        Some(links.build(id)),
                        created,
                        release,
                    )
                }
                // A Build action: numbered by its execution.
                None => {
                    let project = s(p, "/projectName").or_else(|| pipeline.clone());
                    let created = facts.action.as_ref().map_or(at, |a| a.start_time.0);
                    (project, number.map_or(Value::Null, Value::from), action_link, created, release)
                }
            };
            let (release_url, release_version) = match release {
                Some((url, version)) if word == "succeeded" => (Value::from(url), Value::from(version)),
                _ => (Value::Null, Value::Null),
            };
            let payload = json!({
                "api_url": link,
                "app_name": project,
                "build_num": build_num,
                "build_server": Value::Null,
                "commit": commit(p),
                "create_time": iso(Some(created)),
                "dependencies": Value::Null,
                "deployments": if started { Value::Null } else { json!([]) },
                "end_time": if started { Value::Null } else { iso(Some(at)) },
                "html_url": link,
                "release_url": release_url,
                "release_version": release_version,
                "start_time": if started { Value::Null } else { iso(Some(created)) },
                "status": if started { "Queued" } else { status_word(word) },
                "pipehook": {
                    "pipeline": pipeline,
                    "execution_id": execution,
                    "stage": p.get("stage"),
                    "action": p.get("action"),
                    "build_id": build_id.or_else(|| facts.action.as_ref().map(|a| a.id.clone())),
                    "error": p.get("error"),
                },
            });
            Some(Mapped { kind, project, env: None, payload })
        }
        "deploy" => {
            let env = s(p, "/environmentName");
            let kind = match word {
                "started" => "deploy_started",
                "succeeded" => "deploy_succeeded",
                _ => "deploy_failed",
            };
            let state = match word {
                "started" => "InProgress",
                "succeeded" => "Success",
                _ => "Failed",
            };
            let (done, failed, in_progress) = match word {
                "started" => (0, 0, 1),
                "succeeded" => (1, 0, 0),
                _ => (0, 1, 0),
            };
            let deployer = s(p, "/trigger/revision/actor")
                .or_else(|| s(p, "/trigger/triggerDetail"))
                .or_else(|| s(p, "/trigger/triggerType"))
                .unwrap_or_default();
            let action = facts.action.as_ref();
            let (release_url, release_version) =
                release.map_or((Value::Null, Value::Null), |(u, v)| (u.into(), v.into()));
            let payload = json!({
                "api_url": action_link,
                "app_name": pipeline,
                "app_url": pipeline.as_deref().map(|pl| links.pipeline(pl)),
                "deployer": deployer,
                "deployment_id": action.map(|a| a.id.clone()).or_else(|| execution.clone()),
                "deployment_number": action.map(|a| a.seq),
                "deployment_state": state,
                "deployment_time": iso(Some(action.map_or(at, |a| a.start_time.0))),
                "deployment_type": "Deploy",
                "env_name": env,
                "env_url": match (&pipeline, &env) {
                    (Some(pl), Some(e)) => Some(links.environment(pl, e)),
                    _ => None,
                },
                "html_url": action_link,
                "release_url": release_url,
                "release_version": release_version,
                "servers": {"done": done, "failed": failed, "in_progress": in_progress, "pending": 0, "waiting": 0},
                "servers_url": action_link,
                "stagger_delay": 0,
                "stagger_size": 1,
                "pipehook": {
                    "pipeline": pipeline,
                    "execution_id": execution,
                    "stage": p.get("stage"),
                    "action": p.get("action"),
                    "error": p.get("error"),
                    "commit": commit(p),
                },
            });
            Some(Mapped { kind, project: None, env, payload })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::puppet_seed::{example, shape_differences};
    use super::*;

    const T0: i64 = 1_700_000_000_000;
    const T1: i64 = 1_700_000_090_000;

    fn revision() -> Value {
        json!({"provider": "github", "event": "push", "commitId": "2670a8bf48bbc326833b24854c6559b82577a832",
               "ref": "refs/heads/master", "branch": "master", "message": "Update distelli-manifest.yml",
               "actor": "doct15", "repository": "doct15/rubyubunturbenvapp",
               "repositoryUrl": "https://github.com/doct15/rubyubunturbenvapp.git", "pullRequest": null})
    }

    /// A pipeline action's run event, as `pipehook-runner`'s `action_event` writes it.
    fn action_event(kind: &str, category: &str) -> RunEventRow {
        let ended = !kind.ends_with("_started");
        let payload = json!({
            "pipeline": "shop",
            "executionId": "exec-1",
            "stage": category,
            "action": format!("{category} it"),
            "category": category,
            "environmentName": if category == "Deploy" { json!("prod") } else { Value::Null },
            "projectName": if category == "Build" { json!("web") } else { Value::Null },
            "status": if ended { "Succeeded" } else { "InProgress" },
            "error": if kind.ends_with("_failed") { json!("exit status 3") } else { Value::Null },
            "sourceRevisions": [],
            "trigger": {"triggerType": "Webhook", "triggerDetail": "arn:aws:codepipeline:us-east-1:1:webhook:w",
                        "revision": revision()},
            "at": if ended { T1 } else { T0 },
        });
        RunEventRow {
            seq: 1,
            org: OrgId(1),
            kind: kind.into(),
            subject: "exec-1".into(),
            payload,
            created_at: Timestamp(T1),
        }
    }

    /// A CodeBuild build's run event, as `pipehook-runner`'s codebuild module writes it (outside a pipeline).
    fn build_event(kind: &str) -> RunEventRow {
        let ended = kind != "build_started";
        let mut payload = json!({
            "projectName": "web", "buildNumber": 12, "buildId": "web:6d7c1a52-0000-4000-8000-000000000001",
            "pipeline": null, "executionId": null, "stage": null, "action": null,
            "trigger": {"revision": revision()}, "status": if ended { "SUCCEEDED" } else { "IN_PROGRESS" },
            "initiator": "user", "at": if ended { T1 } else { T0 },
        });
        if ended {
            payload["startTime"] = json!(T0);
        }
        RunEventRow {
            seq: 1,
            org: OrgId(1),
            kind: kind.into(),
            subject: "web:6d7c1a52-0000-4000-8000-000000000001".into(),
            payload,
            created_at: Timestamp(T1),
        }
    }

    fn facts() -> RunFacts {
        RunFacts {
            execution_number: Some(7),
            action: Some(ActionFacts { id: "act-1".into(), seq: 42, start_time: Timestamp(T0) }),
        }
    }

    fn links() -> Links {
        Links::new("https://pipehook.example.com/", "acme")
    }

    /// The body as delivered (`raw`): the mapped payload's text, read back.
    fn rendered(row: &RunEventRow, facts: &RunFacts) -> (Mapped, Value) {
        let mapped = map_run_event(row, &links(), facts).expect("mapped");
        let text = mapped.payload.to_string();
        let body = serde_json::from_str(&text).unwrap();
        (mapped, body)
    }

    #[test]
    fn build_and_deploy_bodies_have_the_shape_of_puppet_pipelines_examples() {
        // (run event, seed example, fields that may be null where the example has a value)
        let no_release: &[&str] = &["release_url", "release_version"];
        let cases: Vec<(RunEventRow, &str, &[&str])> = vec![
            (action_event("build_started", "Build"), "build-started", &[]),
            (action_event("build_succeeded", "Build"), "build-finished", &[]),
            (action_event("build_failed", "Build"), "build-finished", no_release),
            (build_event("build_started"), "build-started", &[]),
            (build_event("build_succeeded"), "build-finished", &[]),
            (build_event("build_failed"), "build-finished", no_release),
            (action_event("deploy_started", "Deploy"), "deploy-started", &[]),
            (action_event("deploy_succeeded", "Deploy"), "deploy-finished", &[]),
            (action_event("deploy_failed", "Deploy"), "deploy-finished", &[]),
        ];
        for (row, seed, null_ok) in cases {
            let (_, body) = rendered(&row, &facts());
            let diff = shape_differences(&body, &example(seed), &["pipehook"], null_ok);
            assert!(diff.is_empty(), "{} ({}) against {seed}: {diff:#?}\n{body:#}", row.kind, row.subject);
            assert!(body["pipehook"].is_object(), "{}: pipehook's own fields grouped: {body}", row.kind);
            for k in ["api_url", "html_url", "release_url", "app_url", "env_url", "servers_url"] {
                if let Some(url) = body[k].as_str() {
                    assert!(url.starts_with("https://pipehook.example.com/api/"), "{}: {k} = {url}", row.kind);
                }
            }
        }
    }

    #[test]
    fn build_bodies_follow_puppets_lifecycle() {
        let (m, started) = rendered(&action_event("build_started", "Build"), &facts());
        assert_eq!(m.kind, "build_started");
        assert_eq!(m.project.as_deref(), Some("web"), "the action's ProjectName is the application");
        assert_eq!((started["status"].as_str(), started["start_time"].is_null()), (Some("Queued"), true));
        assert_eq!(started["build_num"], 7, "the execution's number within its pipeline");
        assert_eq!(
            started["api_url"],
            "https://pipehook.example.com/api/orgs/acme/pipelines/shop/executions/exec-1/logs?action=Build%20it"
        );
        assert_eq!(started["html_url"], started["api_url"]);
        assert!(started["deployments"].is_null() && started["release_url"].is_null());
        assert_eq!(started["commit"]["repo_owner"], "doct15");
        assert_eq!(
            started["commit"]["url"],
            "https://github.com/doct15/rubyubunturbenvapp/commit/2670a8bf48bbc326833b24854c6559b82577a832"
        );
        assert_eq!(started["pipehook"]["build_id"], "act-1");
        assert_eq!(started["pipehook"]["execution_id"], "exec-1");

        let (_, done) = rendered(&action_event("build_succeeded", "Build"), &facts());
        assert_eq!(done["status"], "Success");
        assert_eq!(done["start_time"], Timestamp(T0).to_rfc3339(), "when the action started");
        assert_eq!(done["create_time"], started["create_time"]);
        assert_eq!(done["end_time"], Timestamp(T1).to_rfc3339());
        assert_eq!(done["deployments"], json!([]));
        assert_eq!(done["release_version"], "v7");
        assert_eq!(done["release_url"], "https://pipehook.example.com/api/orgs/acme/pipelines/shop/executions/exec-1");
        let (_, failed) = rendered(&action_event("build_failed", "Build"), &facts());
        assert_eq!((failed["status"].as_str(), failed["release_url"].is_null()), (Some("Failed"), true));
        assert_eq!(failed["pipehook"]["error"], "exit status 3");

        // A CodeBuild build: its own number and log; its own release outside a pipeline, the execution's inside.
        let (_, cb) = rendered(&build_event("build_succeeded"), &RunFacts::default());
        assert_eq!(cb["build_num"], 12);
        let log = "https://pipehook.example.com/api/orgs/acme/builds/web:6d7c1a52-0000-4000-8000-000000000001/logs";
        assert_eq!((cb["api_url"].as_str(), cb["release_url"].as_str()), (Some(log), Some(log)));
        assert_eq!(cb["release_version"], "v12");
        assert_eq!(cb["start_time"], Timestamp(T0).to_rfc3339());
        let mut in_pipeline = build_event("build_succeeded");
        in_pipeline.payload["pipeline"] = json!("shop");
        in_pipeline.payload["executionId"] = json!("exec-1");
        let (_, cb) = rendered(&in_pipeline, &RunFacts { execution_number: Some(3), action: None });
        assert_eq!((cb["build_num"].as_i64(), cb["release_version"].as_str()), (Some(12), Some("v3")));
    }

    #[test]
    fn deploy_bodies_name_the_action_and_the_release() {
        let (m, started) = rendered(&action_event("deploy_started", "Deploy"), &facts());
        assert_eq!((m.kind, m.env.as_deref(), m.project.as_deref()), ("deploy_started", Some("prod"), None));
        assert_eq!(started["deployment_state"], "InProgress");
        assert_eq!(
            (started["deployment_id"].as_str(), started["deployment_number"].as_i64()),
            (Some("act-1"), Some(42))
        );
        assert_eq!(started["app_url"], "https://pipehook.example.com/api/orgs/acme/pipelines/shop");
        assert_eq!(started["env_url"], "https://pipehook.example.com/api/esc/environments/acme/shop/prod/hooks");
        assert_eq!(started["release_version"], "v7");
        assert_eq!((started["stagger_delay"].as_i64(), started["stagger_size"].as_i64()), (Some(0), Some(1)));
        assert_eq!(started["deployer"], "doct15");
        assert_eq!(started["pipehook"]["commit"]["commit_id"], "2670a8bf48bbc326833b24854c6559b82577a832");
        let (_, failed) = rendered(&action_event("deploy_failed", "Deploy"), &facts());
        assert_eq!(failed["deployment_state"], "Failed");
        assert_eq!(failed["servers"]["failed"], 1);
        assert_eq!(failed["deployment_time"], started["deployment_time"], "when the deployment started");
    }

    #[test]
    fn links_are_percent_encoded() {
        assert_eq!(segment("Build it/2?&"), "Build%20it%2F2%3F%26");
        assert_eq!(segment("web:6d7c-1_a.b~c@d"), "web:6d7c-1_a.b~c@d");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn the_seed_parses_into_its_four_examples() {
        let names: Vec<String> = super::puppet_seed::examples().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["build-started", "build-finished", "deploy-started", "deploy-finished"]);
        let b = example("build-finished");
        assert_eq!((b["build_num"].as_i64(), b["deployments"].clone()), (Some(6982), json!([])));
        assert_eq!(b["commit"]["branch"], "master");
        assert_eq!(example("deploy-started")["servers"]["waiting"], 1);
        // The comparison catches a missing field, an extra one and a wrong type, nested ones too.
        let mut wrong = example("build-started");
        wrong.as_object_mut().unwrap().remove("api_url");
        wrong["build_num"] = json!("6982");
        wrong["commit"]["extra"] = json!(1);
        wrong["execution_id"] = json!("e");
        let diff = shape_differences(&wrong, &example("build-started"), &["pipehook"], &[]);
        assert_eq!(diff.len(), 4, "{diff:#?}");
        assert!(shape_differences(&example("build-finished"), &example("build-started"), &[], &[]).len() > 1);
    }
}
