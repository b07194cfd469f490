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
//! Bodies follow Puppet Pipelines' build and deploy webhooks (app name, build number, commit with branch, id,
//! committer, message, repository and URL, create/start/end times, status; for deploys the environment,
//! deployer, release and server counters), with pipehook's ids added.

use pipehook_domain::time::Timestamp;
use pipehook_store::{RunEventRow, Store, StoreResult};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::deliver::{Outbound, IDEMPOTENCY_WINDOW};
use pipehook_store::OutboundEvent;

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
        for row in &rows {
            seqs.push(row.seq);
            let Some(mapped) = map_run_event(row) else { continue };
            let hooks = self.reach(row.org, mapped.project.as_deref(), None, mapped.env.as_deref()).await?;
            let event = OutboundEvent {
                id: uuid::Uuid::new_v4().to_string(),
                org: row.org,
                kind: mapped.kind.to_owned(),
                payload: mapped.payload,
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
pub fn map_run_event(row: &RunEventRow) -> Option<Mapped> {
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
    match family {
        "build" => {
            let project = s(p, "/projectName").or_else(|| pipeline.clone());
            let kind = match word {
                "started" => "build_started",
                "succeeded" => "build_succeeded",
                _ => "build_failed",
            };
            let payload = json!({
                "app_name": project,
                "build_num": p.get("buildNumber"),
                "build_id": p.get("buildId").cloned().or_else(|| p.get("actionExecutionId").cloned()),
                "pipeline": pipeline,
                "execution_id": execution,
                "stage": p.get("stage"),
                "action": p.get("action"),
                "status": status_word(word),
                "error": p.get("error"),
                "commit": commit(p),
                "create_time": iso(Some(row.created_at.0)),
                "start_time": if word == "started" { iso(Some(at)) } else { Value::Null },
                "end_time": if word == "started" { Value::Null } else { iso(Some(at)) },
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
            let payload = json!({
                "app_name": pipeline,
                "pipeline": pipeline,
                "execution_id": execution,
                "stage": p.get("stage"),
                "action": p.get("action"),
                "env_name": env,
                "deployer": p.pointer("/trigger/revision/actor").cloned().unwrap_or_else(|| p.pointer("/trigger/triggerDetail").cloned().unwrap_or(Value::Null)),
                "deployment_id": execution,
                "deployment_state": state,
                "deployment_type": "Deploy",
                "deployment_time": iso(Some(at)),
                "release_version": p.pointer("/trigger/revision/commitId"),
                "error": p.get("error"),
                "commit": commit(p),
                "servers": {"done": done, "failed": failed, "in_progress": in_progress, "pending": 0, "waiting": 0},
            });
            Some(Mapped { kind, project: None, env, payload })
        }
        _ => None,
    }
}
