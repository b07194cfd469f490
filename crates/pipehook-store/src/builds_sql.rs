//! The SQL behind [`crate::builds::BuildStore`] and [`crate::builds::BuildTx`], for both backends (see
//! `pipelines_sql.rs` for the placeholder convention).

use pipehook_domain::org::OrgId;
use pipehook_domain::time::Timestamp;

use crate::builds::{BuildRecord, BuildWebhookRecord, ProjectRecord};
use crate::pipelines_sql::json;
use crate::{StoreError, StoreResult};

#[derive(sqlx::FromRow)]
pub(crate) struct ProjectRow {
    id: i64,
    org_id: i64,
    name: String,
    document: String,
    build_counter: i64,
    created_at: i64,
    updated_at: i64,
}

pub(crate) const PROJECT_COLUMNS: &str = "id, org_id, name, document, build_counter, created_at, updated_at";

impl TryFrom<ProjectRow> for ProjectRecord {
    type Error = StoreError;
    fn try_from(r: ProjectRow) -> StoreResult<Self> {
        Ok(ProjectRecord {
            id: r.id,
            org: OrgId(r.org_id),
            name: r.name,
            document: json(&r.document)?,
            build_counter: r.build_counter,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct BuildRow {
    seq: i64,
    id: String,
    org_id: i64,
    project_name: String,
    build_number: i64,
    status: String,
    current_phase: String,
    phases: String,
    source_version: Option<String>,
    resolved_source_version: Option<String>,
    initiator: String,
    env_overrides: String,
    buildspec_override: Option<String>,
    idempotency_token: Option<String>,
    trigger_info: String,
    logs: String,
    stop_requested: i64,
    start_time: i64,
    end_time: Option<i64>,
}

pub(crate) const BUILD_COLUMNS: &str = "seq, id, org_id, project_name, build_number, status, current_phase, phases, \
    source_version, resolved_source_version, initiator, env_overrides, buildspec_override, idempotency_token, \
    trigger_info, logs, stop_requested, start_time, end_time";

impl TryFrom<BuildRow> for BuildRecord {
    type Error = StoreError;
    fn try_from(r: BuildRow) -> StoreResult<Self> {
        Ok(BuildRecord {
            seq: r.seq,
            id: r.id,
            org: OrgId(r.org_id),
            project_name: r.project_name,
            build_number: r.build_number,
            status: r.status,
            current_phase: r.current_phase,
            phases: json(&r.phases)?,
            source_version: r.source_version,
            resolved_source_version: r.resolved_source_version,
            initiator: r.initiator,
            env_overrides: json(&r.env_overrides)?,
            buildspec_override: r.buildspec_override,
            idempotency_token: r.idempotency_token,
            trigger: json(&r.trigger_info)?,
            logs: r.logs,
            stop_requested: r.stop_requested != 0,
            start_time: Timestamp(r.start_time),
            end_time: r.end_time.map(Timestamp),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct BuildWebhookRow {
    id: i64,
    org_id: i64,
    project_id: i64,
    project_name: String,
    url_token_ciphertext: String,
    secret_ciphertext: Option<String>,
    branch_filter: Option<String>,
    filter_groups: String,
    build_type: Option<String>,
    manual_creation: i64,
    status: String,
    status_message: Option<String>,
    third_party_hook_id: Option<String>,
    last_modified_secret: i64,
    created_at: i64,
    updated_at: i64,
}

/// Webhook columns with the project's name joined in (`w` = build_webhooks, `p` = build_projects).
pub(crate) const BUILD_WEBHOOK_SELECT: &str = "SELECT w.id, w.org_id, w.project_id, p.name AS project_name, \
    w.url_token_ciphertext, w.secret_ciphertext, w.branch_filter, w.filter_groups, w.build_type, \
    w.manual_creation, w.status, w.status_message, w.third_party_hook_id, w.last_modified_secret, w.created_at, \
    w.updated_at FROM build_webhooks w JOIN build_projects p ON p.id = w.project_id";

impl TryFrom<BuildWebhookRow> for BuildWebhookRecord {
    type Error = StoreError;
    fn try_from(r: BuildWebhookRow) -> StoreResult<Self> {
        Ok(BuildWebhookRecord {
            id: r.id,
            org: OrgId(r.org_id),
            project_id: r.project_id,
            project_name: r.project_name,
            url_token_ciphertext: r.url_token_ciphertext,
            secret_ciphertext: r.secret_ciphertext,
            branch_filter: r.branch_filter,
            filter_groups: json(&r.filter_groups)?,
            build_type: r.build_type,
            manual_creation: r.manual_creation != 0,
            status: r.status,
            status_message: r.status_message,
            third_party_hook_id: r.third_party_hook_id,
            last_modified_secret: Timestamp(r.last_modified_secret),
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        })
    }
}

macro_rules! build_store_impl {
    ($store:ty, $sql:path) => {
        #[async_trait::async_trait]
        impl $crate::builds::BuildStore for $store {
            async fn project(
                &self,
                org: pipehook_domain::org::OrgId,
                name: &str,
            ) -> $crate::StoreResult<Option<$crate::builds::ProjectRecord>> {
                let sql = format!("SELECT {PROJECT_COLUMNS} FROM build_projects WHERE org_id = $1 AND name = $2");
                let row: Option<$crate::builds_sql::ProjectRow> =
                    sqlx::query_as(&$sql(&sql)).bind(org.0).bind(name).fetch_optional(self.reader()).await?;
                row.map($crate::builds::ProjectRecord::try_from).transpose()
            }

            async fn list_projects(
                &self,
                org: pipehook_domain::org::OrgId,
            ) -> $crate::StoreResult<Vec<$crate::builds::ProjectRecord>> {
                let sql = format!("SELECT {PROJECT_COLUMNS} FROM build_projects WHERE org_id = $1 ORDER BY name");
                let rows: Vec<$crate::builds_sql::ProjectRow> =
                    sqlx::query_as(&$sql(&sql)).bind(org.0).fetch_all(self.reader()).await?;
                rows.into_iter().map($crate::builds::ProjectRecord::try_from).collect()
            }

            async fn build(
                &self,
                org: pipehook_domain::org::OrgId,
                id: &str,
            ) -> $crate::StoreResult<Option<$crate::builds::BuildRecord>> {
                let sql = format!("SELECT {BUILD_COLUMNS} FROM builds WHERE org_id = $1 AND id = $2");
                let row: Option<$crate::builds_sql::BuildRow> =
                    sqlx::query_as(&$sql(&sql)).bind(org.0).bind(id).fetch_optional(self.reader()).await?;
                row.map($crate::builds::BuildRecord::try_from).transpose()
            }

            async fn builds_of_commit(
                &self,
                org: pipehook_domain::org::OrgId,
                project: &str,
                commit: &str,
                since: pipehook_domain::time::Timestamp,
            ) -> $crate::StoreResult<Vec<$crate::builds::BuildRecord>> {
                let sql = format!(
                    "SELECT {BUILD_COLUMNS} FROM builds WHERE org_id = $1 AND project_name = $2 \
                     AND (source_version = $3 OR resolved_source_version = $3) AND start_time >= $4 ORDER BY seq"
                );
                let rows: Vec<$crate::builds_sql::BuildRow> = sqlx::query_as(&$sql(&sql))
                    .bind(org.0)
                    .bind(project)
                    .bind(commit)
                    .bind(since.0)
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter().map($crate::builds::BuildRecord::try_from).collect()
            }

            async fn build_by_token(
                &self,
                org: pipehook_domain::org::OrgId,
                project: &str,
                token: &str,
                since: pipehook_domain::time::Timestamp,
            ) -> $crate::StoreResult<Option<$crate::builds::BuildRecord>> {
                let sql = format!(
                    "SELECT {BUILD_COLUMNS} FROM builds WHERE org_id = $1 AND project_name = $2 \
                     AND idempotency_token = $3 AND start_time >= $4"
                );
                let row: Option<$crate::builds_sql::BuildRow> = sqlx::query_as(&$sql(&sql))
                    .bind(org.0)
                    .bind(project)
                    .bind(token)
                    .bind(since.0)
                    .fetch_optional(self.reader())
                    .await?;
                row.map($crate::builds::BuildRecord::try_from).transpose()
            }

            async fn list_builds(
                &self,
                org: pipehook_domain::org::OrgId,
                project: Option<&str>,
                ascending: bool,
                after: Option<i64>,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::builds::BuildRecord>> {
                let (cmp, order) = if ascending { (">", "ASC") } else { ("<", "DESC") };
                let sql = format!(
                    "SELECT {BUILD_COLUMNS} FROM builds WHERE org_id = $1 \
                     AND (CAST($2 AS TEXT) IS NULL OR project_name = $2) \
                     AND (CAST($3 AS BIGINT) IS NULL OR seq {cmp} $3) ORDER BY seq {order} LIMIT $4"
                );
                let rows: Vec<$crate::builds_sql::BuildRow> = sqlx::query_as(&$sql(&sql))
                    .bind(org.0)
                    .bind(project)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter().map($crate::builds::BuildRecord::try_from).collect()
            }

            async fn build_webhook(
                &self,
                org: pipehook_domain::org::OrgId,
                project: &str,
            ) -> $crate::StoreResult<Option<$crate::builds::BuildWebhookRecord>> {
                let sql = format!("{BUILD_WEBHOOK_SELECT} WHERE w.org_id = $1 AND p.name = $2");
                let row: Option<$crate::builds_sql::BuildWebhookRow> =
                    sqlx::query_as(&$sql(&sql)).bind(org.0).bind(project).fetch_optional(self.reader()).await?;
                row.map($crate::builds::BuildWebhookRecord::try_from).transpose()
            }

            async fn build_webhook_by_token(
                &self,
                token_hash: &str,
            ) -> $crate::StoreResult<Option<$crate::builds::BuildWebhookRecord>> {
                let sql = format!("{BUILD_WEBHOOK_SELECT} WHERE w.url_token_hash = $1");
                let row: Option<$crate::builds_sql::BuildWebhookRow> =
                    sqlx::query_as(&$sql(&sql)).bind(token_hash).fetch_optional(self.reader()).await?;
                row.map($crate::builds::BuildWebhookRecord::try_from).transpose()
            }

            async fn record_build_trigger(
                &self,
                w: $crate::builds::BuildTriggerWrite,
            ) -> $crate::StoreResult<($crate::webhooks::TriggerOutcome, Option<$crate::builds::BuildRecord>)> {
                self.record_build_trigger_impl(w).await
            }
        }
    };
}

macro_rules! build_tx_impl {
    ([$($g:tt)*] $tx:ty, $sql:path) => {
        #[async_trait::async_trait]
        impl$($g)* $crate::builds::BuildTx for $tx {
            async fn create_project(
                &mut self,
                org: pipehook_domain::org::OrgId,
                name: &str,
                document: &serde_json::Value,
            ) -> $crate::StoreResult<$crate::builds::ProjectRecord> {
                let sql = format!(
                    "INSERT INTO build_projects (org_id, name, document, build_counter, created_at, updated_at) \
                     VALUES ($1, $2, $3, 0, $4, $4) RETURNING {PROJECT_COLUMNS}"
                );
                let row: $crate::builds_sql::ProjectRow = sqlx::query_as(&$sql(&sql))
                    .bind(org.0)
                    .bind(name)
                    .bind(document.to_string())
                    .bind(pipehook_domain::time::Timestamp::now().0)
                    .fetch_one(&mut *self.tx)
                    .await?;
                row.try_into()
            }

            async fn update_project(
                &mut self,
                org: pipehook_domain::org::OrgId,
                name: &str,
                document: &serde_json::Value,
            ) -> $crate::StoreResult<Option<$crate::builds::ProjectRecord>> {
                let sql = format!(
                    "UPDATE build_projects SET document = $1, updated_at = $2 WHERE org_id = $3 AND name = $4 \
                     RETURNING {PROJECT_COLUMNS}"
                );
                let row: Option<$crate::builds_sql::ProjectRow> = sqlx::query_as(&$sql(&sql))
                    .bind(document.to_string())
                    .bind(pipehook_domain::time::Timestamp::now().0)
                    .bind(org.0)
                    .bind(name)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                row.map($crate::builds::ProjectRecord::try_from).transpose()
            }

            async fn delete_project(
                &mut self,
                org: pipehook_domain::org::OrgId,
                name: &str,
            ) -> $crate::StoreResult<bool> {
                sqlx::query(&$sql(
                    "DELETE FROM build_webhooks WHERE project_id IN \
                     (SELECT id FROM build_projects WHERE org_id = $1 AND name = $2)",
                ))
                .bind(org.0)
                .bind(name)
                .execute(&mut *self.tx)
                .await?;
                let r = sqlx::query(&$sql("DELETE FROM build_projects WHERE org_id = $1 AND name = $2"))
                    .bind(org.0)
                    .bind(name)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn insert_build(
                &mut self,
                b: &$crate::builds::NewBuild,
            ) -> $crate::StoreResult<$crate::builds::BuildRecord> {
                let number: Option<i64> = sqlx::query_scalar(&$sql(
                    "UPDATE build_projects SET build_counter = build_counter + 1 WHERE org_id = $1 AND name = $2 \
                     RETURNING build_counter",
                ))
                .bind(b.org.0)
                .bind(&b.project_name)
                .fetch_optional(&mut *self.tx)
                .await?;
                let Some(number) = number else {
                    return Err($crate::StoreError::NotFound(format!("project {}", b.project_name)));
                };
                if let Some(token) = &b.idempotency_token {
                    // A token older than its window is free again.
                    sqlx::query(&$sql(
                        "UPDATE builds SET idempotency_token = NULL WHERE org_id = $1 AND project_name = $2 \
                         AND idempotency_token = $3 AND start_time < $4",
                    ))
                    .bind(b.org.0)
                    .bind(&b.project_name)
                    .bind(token)
                    .bind(b.idempotency_since.0)
                    .execute(&mut *self.tx)
                    .await?;
                }
                let current = b
                    .phases
                    .as_array()
                    .and_then(|a| a.last())
                    .and_then(|p| p["phaseType"].as_str())
                    .unwrap_or("SUBMITTED")
                    .to_owned();
                let sql = format!(
                    "INSERT INTO builds (id, org_id, project_name, build_number, status, current_phase, phases, \
                     source_version, initiator, env_overrides, buildspec_override, idempotency_token, trigger_info, \
                     start_time) VALUES ($1, $2, $3, $4, 'IN_PROGRESS', $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                     RETURNING {BUILD_COLUMNS}"
                );
                let row: $crate::builds_sql::BuildRow = sqlx::query_as(&$sql(&sql))
                    .bind(&b.id)
                    .bind(b.org.0)
                    .bind(&b.project_name)
                    .bind(number)
                    .bind(current)
                    .bind(b.phases.to_string())
                    .bind(&b.source_version)
                    .bind(&b.initiator)
                    .bind(b.env_overrides.to_string())
                    .bind(&b.buildspec_override)
                    .bind(&b.idempotency_token)
                    .bind(b.trigger.to_string())
                    .bind(b.start_time.0)
                    .fetch_one(&mut *self.tx)
                    .await?;
                row.try_into()
            }

            async fn set_build_progress(
                &mut self,
                org: pipehook_domain::org::OrgId,
                id: &str,
                phases: Option<&serde_json::Value>,
                current_phase: Option<&str>,
                resolved_source_version: Option<&str>,
                logs: Option<&str>,
            ) -> $crate::StoreResult<()> {
                sqlx::query(&$sql(
                    "UPDATE builds SET phases = COALESCE($1, phases), current_phase = COALESCE($2, current_phase), \
                     resolved_source_version = COALESCE($3, resolved_source_version), logs = COALESCE($4, logs) \
                     WHERE org_id = $5 AND id = $6 AND status = 'IN_PROGRESS'",
                ))
                .bind(phases.map(|p| p.to_string()))
                .bind(current_phase)
                .bind(resolved_source_version)
                .bind(logs)
                .bind(org.0)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn finish_build(
                &mut self,
                org: pipehook_domain::org::OrgId,
                id: &str,
                status: &str,
                phases: &serde_json::Value,
                resolved_source_version: Option<&str>,
                logs: &str,
            ) -> $crate::StoreResult<()> {
                sqlx::query(&$sql(
                    "UPDATE builds SET status = $1, phases = $2, current_phase = 'COMPLETED', \
                     resolved_source_version = COALESCE($3, resolved_source_version), logs = $4, end_time = $5 \
                     WHERE org_id = $6 AND id = $7",
                ))
                .bind(status)
                .bind(phases.to_string())
                .bind(resolved_source_version)
                .bind(logs)
                .bind(pipehook_domain::time::Timestamp::now().0)
                .bind(org.0)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn request_build_stop(
                &mut self,
                org: pipehook_domain::org::OrgId,
                id: &str,
            ) -> $crate::StoreResult<$crate::pipelines::StopRequest> {
                use $crate::pipelines::StopRequest;
                let row: Option<(String, i64)> = sqlx::query_as(&$sql(
                    "SELECT status, stop_requested FROM builds WHERE org_id = $1 AND id = $2",
                ))
                .bind(org.0)
                .bind(id)
                .fetch_optional(&mut *self.tx)
                .await?;
                let Some((status, requested)) = row else { return Ok(StopRequest::NotFound) };
                if status != "IN_PROGRESS" {
                    return Ok(StopRequest::NotStoppable);
                }
                if requested != 0 {
                    return Ok(StopRequest::Duplicate);
                }
                sqlx::query(&$sql("UPDATE builds SET stop_requested = 1 WHERE org_id = $1 AND id = $2"))
                    .bind(org.0)
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(StopRequest::Accepted)
            }

            async fn insert_build_webhook(
                &mut self,
                w: &$crate::builds::NewBuildWebhook,
            ) -> $crate::StoreResult<$crate::builds::BuildWebhookRecord> {
                let f = &w.fields;
                let now = pipehook_domain::time::Timestamp::now().0;
                let id: i64 = sqlx::query_scalar(&$sql(
                    "INSERT INTO build_webhooks (org_id, project_id, url_token_hash, url_token_ciphertext, \
                     secret_ciphertext, branch_filter, filter_groups, build_type, manual_creation, status, \
                     status_message, third_party_hook_id, last_modified_secret, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) RETURNING id",
                ))
                .bind(w.org.0)
                .bind(w.project_id)
                .bind(&w.url_token_hash)
                .bind(&w.url_token_ciphertext)
                .bind(&f.secret_ciphertext)
                .bind(&f.branch_filter)
                .bind(f.filter_groups.to_string())
                .bind(&f.build_type)
                .bind(i64::from(f.manual_creation))
                .bind(&f.status)
                .bind(&f.status_message)
                .bind(&f.third_party_hook_id)
                .bind(f.last_modified_secret.0)
                .bind(now)
                .fetch_one(&mut *self.tx)
                .await?;
                let sql = format!("{BUILD_WEBHOOK_SELECT} WHERE w.id = $1");
                let row: $crate::builds_sql::BuildWebhookRow =
                    sqlx::query_as(&$sql(&sql)).bind(id).fetch_one(&mut *self.tx).await?;
                row.try_into()
            }

            async fn update_build_webhook(
                &mut self,
                id: i64,
                f: &$crate::builds::BuildWebhookFields,
            ) -> $crate::StoreResult<Option<$crate::builds::BuildWebhookRecord>> {
                let r = sqlx::query(&$sql(
                    "UPDATE build_webhooks SET secret_ciphertext = $1, branch_filter = $2, filter_groups = $3, \
                     build_type = $4, manual_creation = $5, status = $6, status_message = $7, \
                     third_party_hook_id = $8, last_modified_secret = $9, updated_at = $10 WHERE id = $11",
                ))
                .bind(&f.secret_ciphertext)
                .bind(&f.branch_filter)
                .bind(f.filter_groups.to_string())
                .bind(&f.build_type)
                .bind(i64::from(f.manual_creation))
                .bind(&f.status)
                .bind(&f.status_message)
                .bind(&f.third_party_hook_id)
                .bind(f.last_modified_secret.0)
                .bind(pipehook_domain::time::Timestamp::now().0)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
                if r.rows_affected() == 0 {
                    return Ok(None);
                }
                let sql = format!("{BUILD_WEBHOOK_SELECT} WHERE w.id = $1");
                let row: $crate::builds_sql::BuildWebhookRow =
                    sqlx::query_as(&$sql(&sql)).bind(id).fetch_one(&mut *self.tx).await?;
                row.try_into().map(Some)
            }

            async fn delete_build_webhook(&mut self, id: i64) -> $crate::StoreResult<bool> {
                let r = sqlx::query(&$sql("DELETE FROM build_webhooks WHERE id = $1"))
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(r.rows_affected() > 0)
            }
        }
    };
}

pub(crate) use {build_store_impl, build_tx_impl};
