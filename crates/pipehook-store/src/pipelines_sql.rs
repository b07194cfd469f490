//! The SQL behind [`PipelineStore`] and [`PipelineTx`], once for both backends. The statements use `$n`
//! placeholders; [`sqlite_sql`] rewrites them to SQLite's `?n`. Integers are 64-bit and booleans 0/1 on both.

use pipehook_domain::org::OrgId;
use pipehook_domain::time::Timestamp;
use std::borrow::Cow;

use crate::pipelines::{ActionExecutionRecord, ExecutionRecord, PipelineRecord};
use crate::{StoreError, StoreResult};

/// `$1` → `?1`: SQLite accepts numbered `?n` parameters with the same meaning.
pub(crate) fn sqlite_sql(sql: &str) -> Cow<'_, str> {
    if sql.contains('$') {
        Cow::Owned(sql.replace('$', "?"))
    } else {
        Cow::Borrowed(sql)
    }
}

pub(crate) fn pg_sql(sql: &str) -> Cow<'_, str> {
    Cow::Borrowed(sql)
}

pub(crate) fn json(s: &str) -> StoreResult<serde_json::Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("stored JSON does not parse: {e}")))
}

#[derive(sqlx::FromRow)]
pub(crate) struct PipelineRow {
    pub(crate) id: i64,
    org_id: i64,
    name: String,
    version: i64,
    declaration: String,
    created_at: i64,
    updated_at: i64,
}

pub(crate) const PIPELINE_COLUMNS: &str = "id, org_id, name, version, declaration, created_at, updated_at";

impl TryFrom<PipelineRow> for PipelineRecord {
    type Error = StoreError;
    fn try_from(r: PipelineRow) -> StoreResult<Self> {
        Ok(PipelineRecord {
            id: r.id,
            org: OrgId(r.org_id),
            name: r.name,
            version: r.version,
            declaration: json(&r.declaration)?,
            created_at: Timestamp(r.created_at),
            updated_at: Timestamp(r.updated_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ExecutionRow {
    seq: i64,
    id: String,
    org_id: i64,
    pipeline_id: i64,
    pipeline_name: String,
    pipeline_version: i64,
    status: String,
    status_summary: Option<String>,
    execution_mode: String,
    trigger_info: String,
    source_revisions: String,
    variables: String,
    client_request_token: Option<String>,
    stop_requested: i64,
    stop_abandon: i64,
    stop_reason: Option<String>,
    start_time: i64,
    last_update_time: i64,
}

pub(crate) const EXECUTION_COLUMNS: &str = "seq, id, org_id, pipeline_id, pipeline_name, pipeline_version, status, \
    status_summary, execution_mode, trigger_info, source_revisions, variables, client_request_token, stop_requested, \
    stop_abandon, stop_reason, start_time, last_update_time";

impl TryFrom<ExecutionRow> for ExecutionRecord {
    type Error = StoreError;
    fn try_from(r: ExecutionRow) -> StoreResult<Self> {
        Ok(ExecutionRecord {
            seq: r.seq,
            id: r.id,
            org: OrgId(r.org_id),
            pipeline_id: r.pipeline_id,
            pipeline_name: r.pipeline_name,
            pipeline_version: r.pipeline_version,
            status: r.status,
            status_summary: r.status_summary,
            execution_mode: r.execution_mode,
            trigger: json(&r.trigger_info)?,
            source_revisions: json(&r.source_revisions)?,
            variables: json(&r.variables)?,
            client_request_token: r.client_request_token,
            stop_requested: r.stop_requested != 0,
            stop_abandon: r.stop_abandon != 0,
            stop_reason: r.stop_reason,
            start_time: Timestamp(r.start_time),
            last_update_time: Timestamp(r.last_update_time),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ActionRow {
    seq: i64,
    id: String,
    execution_id: String,
    org_id: i64,
    pipeline_id: i64,
    stage_name: String,
    action_name: String,
    stage_index: i64,
    action_index: i64,
    status: String,
    input: String,
    output: String,
    error_code: Option<String>,
    error_message: Option<String>,
    log: String,
    start_time: i64,
    last_update_time: i64,
}

pub(crate) const ACTION_COLUMNS: &str = "seq, id, execution_id, org_id, pipeline_id, stage_name, action_name, \
    stage_index, action_index, status, input, output, error_code, error_message, log, start_time, last_update_time";

impl TryFrom<ActionRow> for ActionExecutionRecord {
    type Error = StoreError;
    fn try_from(r: ActionRow) -> StoreResult<Self> {
        Ok(ActionExecutionRecord {
            seq: r.seq,
            id: r.id,
            execution_id: r.execution_id,
            org: OrgId(r.org_id),
            pipeline_id: r.pipeline_id,
            stage_name: r.stage_name,
            action_name: r.action_name,
            stage_index: r.stage_index,
            action_index: r.action_index,
            status: r.status,
            input: json(&r.input)?,
            output: json(&r.output)?,
            error_code: r.error_code,
            error_message: r.error_message,
            log: r.log,
            start_time: Timestamp(r.start_time),
            last_update_time: Timestamp(r.last_update_time),
        })
    }
}

pub(crate) fn with_version(declaration: &serde_json::Value, version: i64) -> String {
    let mut d = declaration.clone();
    if let Some(obj) = d.as_object_mut() {
        obj.insert("version".into(), serde_json::Value::from(version));
    }
    d.to_string()
}

pub(crate) fn collect<R, T>(rows: Vec<R>) -> StoreResult<Vec<T>>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// The reads, for a store type with `fn reader(&self) -> &Pool<DB>`.
macro_rules! pipeline_store_impl {
    ($store:ty, $sql:path) => {
        #[async_trait::async_trait]
        impl $crate::pipelines::PipelineStore for $store {
            async fn pipeline(&self, org: OrgId, name: &str) -> StoreResult<Option<PipelineRecord>> {
                let sql = format!("SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE org_id = $1 AND name = $2");
                let row: Option<PipelineRow> =
                    sqlx::query_as(&$sql(&sql)).bind(org.0).bind(name).fetch_optional(self.reader()).await?;
                row.map(PipelineRecord::try_from).transpose()
            }

            async fn pipeline_version(&self, org: OrgId, name: &str, version: i64) -> StoreResult<Option<serde_json::Value>> {
                let row: Option<String> = sqlx::query_scalar(&$sql(
                    "SELECT v.declaration FROM pipeline_versions v JOIN pipelines p ON p.id = v.pipeline_id \
                     WHERE p.org_id = $1 AND p.name = $2 AND v.version = $3",
                ))
                .bind(org.0)
                .bind(name)
                .bind(version)
                .fetch_optional(self.reader())
                .await?;
                row.map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(e.to_string()))).transpose()
            }

            async fn list_pipelines(&self, org: OrgId, after: Option<&str>, limit: u32) -> StoreResult<Vec<PipelineRecord>> {
                let sql = format!(
                    "SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE org_id = $1 AND (CAST($2 AS TEXT) IS NULL OR name > $2) \
                     ORDER BY name LIMIT $3"
                );
                let rows: Vec<PipelineRow> = sqlx::query_as(&$sql(&sql))
                    .bind(org.0)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?;
                collect(rows)
            }

            async fn count_pipelines(&self, org: OrgId) -> StoreResult<u64> {
                let n: i64 = sqlx::query_scalar(&$sql("SELECT COUNT(*) FROM pipelines WHERE org_id = $1"))
                    .bind(org.0)
                    .fetch_one(self.reader())
                    .await?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn execution(&self, org: OrgId, id: &str) -> StoreResult<Option<ExecutionRecord>> {
                let sql = format!("SELECT {EXECUTION_COLUMNS} FROM pipeline_executions WHERE org_id = $1 AND id = $2");
                let row: Option<ExecutionRow> =
                    sqlx::query_as(&$sql(&sql)).bind(org.0).bind(id).fetch_optional(self.reader()).await?;
                row.map(ExecutionRecord::try_from).transpose()
            }

            async fn execution_number(&self, org: OrgId, id: &str) -> StoreResult<Option<i64>> {
                let n: i64 = sqlx::query_scalar(&$sql(
                    "SELECT COUNT(*) FROM pipeline_executions e JOIN pipeline_executions x \
                     ON x.pipeline_id = e.pipeline_id AND x.seq <= e.seq WHERE e.org_id = $1 AND e.id = $2",
                ))
                .bind(org.0)
                .bind(id)
                .fetch_one(self.reader())
                .await?;
                Ok((n > 0).then_some(n))
            }

            async fn execution_by_token(
                &self,
                org: OrgId,
                pipeline_id: i64,
                token: &str,
            ) -> StoreResult<Option<ExecutionRecord>> {
                let sql = format!(
                    "SELECT {EXECUTION_COLUMNS} FROM pipeline_executions \
                     WHERE org_id = $1 AND pipeline_id = $2 AND client_request_token = $3"
                );
                let row: Option<ExecutionRow> = sqlx::query_as(&$sql(&sql))
                    .bind(org.0)
                    .bind(pipeline_id)
                    .bind(token)
                    .fetch_optional(self.reader())
                    .await?;
                row.map(ExecutionRecord::try_from).transpose()
            }

            async fn list_executions(
                &self,
                org: OrgId,
                pipeline_id: i64,
                before: Option<i64>,
                limit: u32,
            ) -> StoreResult<Vec<ExecutionRecord>> {
                let sql = format!(
                    "SELECT {EXECUTION_COLUMNS} FROM pipeline_executions WHERE org_id = $1 AND pipeline_id = $2 \
                     AND (CAST($3 AS BIGINT) IS NULL OR seq < $3) ORDER BY seq DESC LIMIT $4"
                );
                let rows: Vec<ExecutionRow> = sqlx::query_as(&$sql(&sql))
                    .bind(org.0)
                    .bind(pipeline_id)
                    .bind(before)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?;
                collect(rows)
            }

            async fn active_executions(&self, org: OrgId, pipeline_id: i64) -> StoreResult<Vec<ExecutionRecord>> {
                let sql = format!(
                    "SELECT {EXECUTION_COLUMNS} FROM pipeline_executions WHERE org_id = $1 AND pipeline_id = $2 \
                     AND status IN ('InProgress', 'Stopping') ORDER BY seq"
                );
                let rows: Vec<ExecutionRow> =
                    sqlx::query_as(&$sql(&sql)).bind(org.0).bind(pipeline_id).fetch_all(self.reader()).await?;
                collect(rows)
            }

            async fn action_executions(&self, org: OrgId, execution_id: &str) -> StoreResult<Vec<ActionExecutionRecord>> {
                let sql = format!(
                    "SELECT {ACTION_COLUMNS} FROM action_executions WHERE org_id = $1 AND execution_id = $2 \
                     ORDER BY stage_index, action_index"
                );
                let rows: Vec<ActionRow> =
                    sqlx::query_as(&$sql(&sql)).bind(org.0).bind(execution_id).fetch_all(self.reader()).await?;
                collect(rows)
            }

            async fn list_action_executions(
                &self,
                org: OrgId,
                pipeline_id: i64,
                execution_id: Option<&str>,
                before: Option<i64>,
                limit: u32,
            ) -> StoreResult<Vec<ActionExecutionRecord>> {
                let sql = format!(
                    "SELECT {ACTION_COLUMNS} FROM action_executions WHERE org_id = $1 AND pipeline_id = $2 \
                     AND (CAST($3 AS TEXT) IS NULL OR execution_id = $3) AND (CAST($4 AS BIGINT) IS NULL OR seq < $4) ORDER BY seq DESC LIMIT $5"
                );
                let rows: Vec<ActionRow> = sqlx::query_as(&$sql(&sql))
                    .bind(org.0)
                    .bind(pipeline_id)
                    .bind(execution_id)
                    .bind(before)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?;
                collect(rows)
            }

            async fn latest_action_executions(&self, org: OrgId, pipeline_id: i64) -> StoreResult<Vec<ActionExecutionRecord>> {
                let sql = format!(
                    "SELECT {ACTION_COLUMNS} FROM action_executions a WHERE org_id = $1 AND pipeline_id = $2 \
                     AND seq = (SELECT MAX(b.seq) FROM action_executions b WHERE b.pipeline_id = a.pipeline_id \
                                AND b.stage_name = a.stage_name AND b.action_name = a.action_name) \
                     ORDER BY stage_index, action_index"
                );
                let rows: Vec<ActionRow> =
                    sqlx::query_as(&$sql(&sql)).bind(org.0).bind(pipeline_id).fetch_all(self.reader()).await?;
                collect(rows)
            }

            async fn tags(&self, org: OrgId, arn: &str) -> StoreResult<Vec<(String, String)>> {
                Ok(sqlx::query_as(&$sql(
                    "SELECT key, value FROM resource_tags WHERE org_id = $1 AND resource_arn = $2 ORDER BY key",
                ))
                .bind(org.0)
                .bind(arn)
                .fetch_all(self.reader())
                .await?)
            }

            async fn run_events(&self, org: OrgId, subject: &str) -> StoreResult<Vec<(String, serde_json::Value)>> {
                let rows: Vec<(String, String)> = sqlx::query_as(&$sql(
                    "SELECT kind, payload FROM run_events WHERE org_id = $1 AND subject = $2 ORDER BY seq",
                ))
                .bind(org.0)
                .bind(subject)
                .fetch_all(self.reader())
                .await?;
                rows.into_iter().map(|(k, p)| Ok((k, json(&p)?))).collect()
            }
        }
    };
}

/// The writes, for a transaction type with a `tx: Transaction<'static, DB>` field.
macro_rules! pipeline_tx_impl {
    ([$($g:tt)*] $tx:ty, $sql:path) => {
        #[async_trait::async_trait]
        impl$($g)* $crate::pipelines::PipelineTx for $tx {
            async fn create_pipeline(
                &mut self,
                org: OrgId,
                name: &str,
                declaration: &serde_json::Value,
            ) -> StoreResult<PipelineRecord> {
                let now = Timestamp::now().0;
                let decl = with_version(declaration, 1);
                let sql = format!(
                    "INSERT INTO pipelines (org_id, name, version, declaration, created_at, updated_at) \
                     VALUES ($1, $2, 1, $3, $4, $4) RETURNING {PIPELINE_COLUMNS}"
                );
                let row: PipelineRow = sqlx::query_as(&$sql(&sql))
                    .bind(org.0)
                    .bind(name)
                    .bind(&decl)
                    .bind(now)
                    .fetch_one(&mut *self.tx)
                    .await?;
                sqlx::query(&$sql(
                    "INSERT INTO pipeline_versions (pipeline_id, version, declaration, created_at) VALUES ($1, 1, $2, $3)",
                ))
                .bind(row.id)
                .bind(&decl)
                .bind(now)
                .execute(&mut *self.tx)
                .await?;
                row.try_into()
            }

            async fn update_pipeline(
                &mut self,
                org: OrgId,
                name: &str,
                declaration: &serde_json::Value,
            ) -> StoreResult<Option<PipelineRecord>> {
                let now = Timestamp::now().0;
                let current: Option<(i64, i64)> =
                    sqlx::query_as(&$sql("SELECT id, version FROM pipelines WHERE org_id = $1 AND name = $2"))
                        .bind(org.0)
                        .bind(name)
                        .fetch_optional(&mut *self.tx)
                        .await?;
                let Some((id, version)) = current else { return Ok(None) };
                let next = version + 1;
                let decl = with_version(declaration, next);
                // The version check makes a concurrent update of the same pipeline fail here instead of
                // silently overwriting it.
                let sql = format!(
                    "UPDATE pipelines SET version = $1, declaration = $2, updated_at = $3 \
                     WHERE id = $4 AND version = $5 RETURNING {PIPELINE_COLUMNS}"
                );
                let row: Option<PipelineRow> = sqlx::query_as(&$sql(&sql))
                    .bind(next)
                    .bind(&decl)
                    .bind(now)
                    .bind(id)
                    .bind(version)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                let Some(row) = row else {
                    return Err(StoreError::Conflict(format!("pipeline {name} was modified concurrently")));
                };
                sqlx::query(&$sql(
                    "INSERT INTO pipeline_versions (pipeline_id, version, declaration, created_at) VALUES ($1, $2, $3, $4)",
                ))
                .bind(id)
                .bind(next)
                .bind(&decl)
                .bind(now)
                .execute(&mut *self.tx)
                .await?;
                row.try_into().map(Some)
            }

            async fn delete_pipeline(&mut self, org: OrgId, name: &str, arn: &str) -> StoreResult<bool> {
                let id: Option<i64> = sqlx::query_scalar(&$sql("SELECT id FROM pipelines WHERE org_id = $1 AND name = $2"))
                    .bind(org.0)
                    .bind(name)
                    .fetch_optional(&mut *self.tx)
                    .await?;
                let Some(id) = id else { return Ok(false) };
                sqlx::query(&$sql("DELETE FROM action_executions WHERE pipeline_id = $1"))
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await?;
                sqlx::query(&$sql("DELETE FROM pipelines WHERE id = $1")).bind(id).execute(&mut *self.tx).await?;
                sqlx::query(&$sql("DELETE FROM resource_tags WHERE org_id = $1 AND resource_arn = $2"))
                    .bind(org.0)
                    .bind(arn)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(true)
            }

            async fn set_tags(&mut self, org: OrgId, arn: &str, tags: &[(String, String)]) -> StoreResult<()> {
                for (k, v) in tags {
                    sqlx::query(&$sql(
                        "INSERT INTO resource_tags (org_id, resource_arn, key, value) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (org_id, resource_arn, key) DO UPDATE SET value = excluded.value",
                    ))
                    .bind(org.0)
                    .bind(arn)
                    .bind(k)
                    .bind(v)
                    .execute(&mut *self.tx)
                    .await?;
                }
                Ok(())
            }

            async fn remove_tags(&mut self, org: OrgId, arn: &str, keys: &[String]) -> StoreResult<()> {
                for k in keys {
                    sqlx::query(&$sql("DELETE FROM resource_tags WHERE org_id = $1 AND resource_arn = $2 AND key = $3"))
                        .bind(org.0)
                        .bind(arn)
                        .bind(k)
                        .execute(&mut *self.tx)
                        .await?;
                }
                Ok(())
            }

            async fn remove_all_tags(&mut self, org: OrgId, arn: &str) -> StoreResult<()> {
                sqlx::query(&$sql("DELETE FROM resource_tags WHERE org_id = $1 AND resource_arn = $2"))
                    .bind(org.0)
                    .bind(arn)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn insert_execution(&mut self, e: &NewExecution) -> StoreResult<ExecutionRecord> {
                let now = Timestamp::now().0;
                let sql = format!(
                    "INSERT INTO pipeline_executions (id, org_id, pipeline_id, pipeline_name, pipeline_version, status, \
                     execution_mode, trigger_info, source_revisions, variables, client_request_token, start_time, \
                     last_update_time) VALUES ($1, $2, $3, $4, $5, 'InProgress', $6, $7, $8, $9, $10, $11, $11) \
                     RETURNING {EXECUTION_COLUMNS}"
                );
                let row: ExecutionRow = sqlx::query_as(&$sql(&sql))
                    .bind(&e.id)
                    .bind(e.org.0)
                    .bind(e.pipeline_id)
                    .bind(&e.pipeline_name)
                    .bind(e.pipeline_version)
                    .bind(&e.execution_mode)
                    .bind(e.trigger.to_string())
                    .bind(e.source_revisions.to_string())
                    .bind(e.variables.to_string())
                    .bind(&e.client_request_token)
                    .bind(now)
                    .fetch_one(&mut *self.tx)
                    .await?;
                row.try_into()
            }

            async fn set_execution_status(
                &mut self,
                org: OrgId,
                id: &str,
                status: &str,
                summary: Option<&str>,
            ) -> StoreResult<()> {
                sqlx::query(&$sql(
                    "UPDATE pipeline_executions SET status = $1, status_summary = COALESCE($2, status_summary), \
                     last_update_time = $3 WHERE org_id = $4 AND id = $5",
                ))
                .bind(status)
                .bind(summary)
                .bind(Timestamp::now().0)
                .bind(org.0)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn set_source_revisions(&mut self, org: OrgId, id: &str, revisions: &serde_json::Value) -> StoreResult<()> {
                sqlx::query(&$sql(
                    "UPDATE pipeline_executions SET source_revisions = $1, last_update_time = $2 WHERE org_id = $3 AND id = $4",
                ))
                .bind(revisions.to_string())
                .bind(Timestamp::now().0)
                .bind(org.0)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn request_stop(
                &mut self,
                org: OrgId,
                id: &str,
                abandon: bool,
                reason: Option<&str>,
            ) -> StoreResult<$crate::pipelines::StopRequest> {
                use $crate::pipelines::StopRequest;
                let row: Option<(String, i64)> = sqlx::query_as(&$sql(
                    "SELECT status, stop_requested FROM pipeline_executions WHERE org_id = $1 AND id = $2",
                ))
                .bind(org.0)
                .bind(id)
                .fetch_optional(&mut *self.tx)
                .await?;
                let Some((status, requested)) = row else { return Ok(StopRequest::NotFound) };
                if requested != 0 && !(abandon && status == "Stopping") {
                    return Ok(StopRequest::Duplicate);
                }
                if status != "InProgress" && status != "Stopping" {
                    return Ok(StopRequest::NotStoppable);
                }
                sqlx::query(&$sql(
                    "UPDATE pipeline_executions SET status = 'Stopping', stop_requested = 1, stop_abandon = $1, \
                     stop_reason = COALESCE($2, stop_reason), last_update_time = $3 WHERE org_id = $4 AND id = $5",
                ))
                .bind(i64::from(abandon))
                .bind(reason)
                .bind(Timestamp::now().0)
                .bind(org.0)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
                Ok(StopRequest::Accepted)
            }

            async fn start_action(&mut self, a: &ActionExecutionRecord) -> StoreResult<()> {
                let now = Timestamp::now().0;
                sqlx::query(&$sql(
                    "DELETE FROM action_executions WHERE execution_id = $1 AND stage_name = $2 AND action_name = $3",
                ))
                .bind(&a.execution_id)
                .bind(&a.stage_name)
                .bind(&a.action_name)
                .execute(&mut *self.tx)
                .await?;
                sqlx::query(&$sql(
                    "INSERT INTO action_executions (id, execution_id, org_id, pipeline_id, stage_name, action_name, \
                     stage_index, action_index, status, input, output, log, start_time, last_update_time) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'InProgress', $9, $10, '', $11, $11)",
                ))
                .bind(&a.id)
                .bind(&a.execution_id)
                .bind(a.org.0)
                .bind(a.pipeline_id)
                .bind(&a.stage_name)
                .bind(&a.action_name)
                .bind(a.stage_index)
                .bind(a.action_index)
                .bind(a.input.to_string())
                .bind(a.output.to_string())
                .bind(now)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn finish_action(
                &mut self,
                id: &str,
                status: &str,
                output: &serde_json::Value,
                error: Option<(&str, &str)>,
                log: &str,
            ) -> StoreResult<()> {
                sqlx::query(&$sql(
                    "UPDATE action_executions SET status = $1, output = $2, error_code = $3, error_message = $4, \
                     log = $5, last_update_time = $6 WHERE id = $7",
                ))
                .bind(status)
                .bind(output.to_string())
                .bind(error.map(|e| e.0))
                .bind(error.map(|e| e.1))
                .bind(log)
                .bind(Timestamp::now().0)
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }

            async fn set_action_output(&mut self, id: &str, output: &serde_json::Value) -> StoreResult<()> {
                sqlx::query(&$sql("UPDATE action_executions SET output = $1 WHERE id = $2 AND status = 'InProgress'"))
                    .bind(output.to_string())
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn set_action_log(&mut self, id: &str, log: &str) -> StoreResult<()> {
                sqlx::query(&$sql("UPDATE action_executions SET log = $1 WHERE id = $2 AND status = 'InProgress'"))
                    .bind(log)
                    .bind(id)
                    .execute(&mut *self.tx)
                    .await?;
                Ok(())
            }

            async fn record_run_event(
                &mut self,
                org: OrgId,
                kind: &str,
                subject: &str,
                payload: &serde_json::Value,
            ) -> StoreResult<()> {
                sqlx::query(&$sql(
                    "INSERT INTO run_events (org_id, kind, subject, payload, created_at) VALUES ($1, $2, $3, $4, $5)",
                ))
                .bind(org.0)
                .bind(kind)
                .bind(subject)
                .bind(payload.to_string())
                .bind(Timestamp::now().0)
                .execute(&mut *self.tx)
                .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use {pipeline_store_impl, pipeline_tx_impl};
