//! Layered configuration: compiled-in defaults (`config.default.toml`), then `--config FILE`, then
//! `PIPEHOOK_*` environment variables, then command-line flags. Everything is validated here, before
//! anything is created on disk, and every problem is one line naming the setting.

use pipehook_domain::secret::MasterKey;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The compiled-in base layer.
pub const DEFAULTS: &str = include_str!("../../../config.default.toml");

/// A configuration problem: which setting, and what is wrong with it. Printed as one line; exit code 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub problem: String,
}

impl ConfigError {
    /// Multi-line causes (parser messages) are folded so the error stays one line.
    pub fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        let problem: String = problem.into();
        let folded = problem.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
        Self { setting: setting.into(), problem: folded }
    }
}

/// The environment variables that override the file, and the key each sets.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("PIPEHOOK_LISTEN", "listen"),
    ("PIPEHOOK_DATA_DIR", "data_dir"),
    ("PIPEHOOK_DATABASE_URL", "database_url"),
    ("PIPEHOOK_PUBLIC_URL", "public_url"),
    ("PIPEHOOK_MASTER_KEY", "master_key"),
    ("PIPEHOOK_AWS_REGION", "aws_region"),
    ("PIPEHOOK_ROLE", "role"),
    ("PIPEHOOK_LOG_FORMAT", "log_format"),
    ("PIPEHOOK_HTTP_MAX_BODY_BYTES", "http.max_body_bytes"),
    ("PIPEHOOK_SHUTDOWN_GRACE_SECONDS", "http.shutdown_grace_seconds"),
    ("PIPEHOOK_HTTP_MAX_CONNECTIONS", "http.max_connections"),
    ("PIPEHOOK_HTTP_HEADER_TIMEOUT_SECONDS", "http.header_timeout_seconds"),
    ("PIPEHOOK_HTTP_BODY_TIMEOUT_SECONDS", "http.body_timeout_seconds"),
    ("PIPEHOOK_HTTP_MAX_INFLIGHT_BODY_BYTES", "http.max_inflight_body_bytes"),
    ("PIPEHOOK_SQLITE_DURABILITY", "sqlite.durability"),
    ("PIPEHOOK_POSTGRES_SCHEMA", "postgres.schema"),
    ("PIPEHOOK_POSTGRES_MAX_CONNECTIONS", "postgres.max_connections"),
    ("PIPEHOOK_POSTGRES_CONNECT_TIMEOUT_SECONDS", "postgres.connect_timeout_seconds"),
    ("PIPEHOOK_WORKER_CONCURRENCY", "worker.concurrency"),
    ("PIPEHOOK_WORKER_LEASE_SECONDS", "worker.lease_seconds"),
    ("PIPEHOOK_WORKER_POLL_MS", "worker.poll_ms"),
    ("PIPEHOOK_WORKER_HEARTBEAT_MS", "worker.heartbeat_ms"),
    ("PIPEHOOK_WORKER_DRAIN_SECONDS", "worker.drain_seconds"),
    ("PIPEHOOK_NODE_ID", "worker.node_id"),
    ("PIPEHOOK_WORKER_MAX_RUNNING_PER_ORG", "worker.max_running_per_org"),
    ("PIPEHOOK_WORKER_MAX_QUEUED_PER_ORG", "worker.max_queued_per_org"),
    ("PIPEHOOK_TRIGGER_MAX_BODY_BYTES", "inbound.max_body_bytes"),
    ("PIPEHOOK_TRUST_PROXY", "inbound.trust_proxy"),
    ("PIPEHOOK_SECRET_ROTATION_OVERLAP", "inbound.secret_rotation_overlap_seconds"),
    ("PIPEHOOK_INBOUND_RETENTION", "inbound.retention_seconds"),
    ("PIPEHOOK_INBOUND_MAX_LOG_BYTES", "inbound.max_log_bytes"),
    ("PIPEHOOK_INBOUND_UNAUTHENTICATED_LOG_PER_MINUTE", "inbound.unauthenticated_log_per_minute"),
    ("PIPEHOOK_INBOUND_RULE_EVALUATIONS", "inbound.rule_evaluations"),
    ("PIPEHOOK_INBOUND_RULE_TIMEOUT_MS", "inbound.rule_timeout_ms"),
    ("PIPEHOOK_INBOUND_RULE_MAX_COST", "inbound.rule_max_cost"),
    ("PIPEHOOK_GITHUB_API_URL", "inbound.github_api_url"),
    ("PIPEHOOK_GITLAB_API_URL", "inbound.gitlab_api_url"),
    ("PIPEHOOK_BITBUCKET_API_URL", "inbound.bitbucket_api_url"),
    ("PIPEHOOK_OUTBOUND_TIMEOUT", "outbound.timeout_seconds"),
    ("PIPEHOOK_OUTBOUND_RETRY_SCHEDULE", "outbound.retry_schedule"),
    ("PIPEHOOK_OUTBOUND_ALLOWED_NETWORKS", "outbound.allowed_networks"),
    ("PIPEHOOK_OUTBOUND_CONCURRENCY", "outbound.concurrency"),
    ("PIPEHOOK_OUTBOUND_ENDPOINT_CONCURRENCY", "outbound.endpoint_concurrency"),
    ("PIPEHOOK_OUTBOUND_DISABLE_AFTER", "outbound.disable_after_seconds"),
    ("PIPEHOOK_OUTBOUND_RETENTION", "outbound.retention_seconds"),
    ("PIPEHOOK_RUNNER_WORKSPACE_DIR", "runner.workspace_dir"),
    ("PIPEHOOK_RUNNER_LOG_LIMIT_BYTES", "runner.log_limit_bytes"),
    ("PIPEHOOK_RUNNER_KEEP_WORKSPACES", "runner.keep_workspaces"),
    ("PIPEHOOK_RUNNER_MAX_BUILD_TIMEOUT", "runner.max_build_timeout_seconds"),
    ("PIPEHOOK_RUNNER_EXECUTOR", "runner.executor"),
    ("PIPEHOOK_RUNNER_SANDBOX_NETWORK", "runner.sandbox_network"),
    ("PIPEHOOK_RUNNER_SANDBOX_READ_ONLY_PATHS", "runner.sandbox_read_only_paths"),
    ("PIPEHOOK_RUNNER_LIMIT_CPU_SECONDS", "runner.limit_cpu_seconds"),
    ("PIPEHOOK_RUNNER_LIMIT_MEMORY_BYTES", "runner.limit_memory_bytes"),
    ("PIPEHOOK_RUNNER_LIMIT_PROCESSES", "runner.limit_processes"),
    ("PIPEHOOK_RUNNER_LIMIT_FILE_SIZE_BYTES", "runner.limit_file_size_bytes"),
    ("PIPEHOOK_RUNNER_LIMIT_TMP_BYTES", "runner.limit_tmp_bytes"),
    ("PIPEHOOK_BOOTSTRAP_ORG", "bootstrap.org"),
    ("PIPEHOOK_BOOTSTRAP_ACCOUNT_ID", "bootstrap.account_id"),
    ("PIPEHOOK_BOOTSTRAP_TOKEN", "bootstrap.token"),
    ("PIPEHOOK_BOOTSTRAP_AWS_ACCESS_KEY_ID", "bootstrap.aws_access_key_id"),
    ("PIPEHOOK_BOOTSTRAP_AWS_SECRET_ACCESS_KEY", "bootstrap.aws_secret_access_key"),
];

/// Values given on the command line (the top layer).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub role: Option<String>,
    pub log_format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: String,
    data_dir: PathBuf,
    database_url: String,
    public_url: String,
    master_key: String,
    aws_region: String,
    role: String,
    log_format: String,
    http: RawHttp,
    sqlite: RawSqlite,
    postgres: RawPostgres,
    worker: RawWorker,
    inbound: RawInbound,
    outbound: RawOutbound,
    runner: RawRunner,
    bootstrap: RawBootstrap,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInbound {
    max_body_bytes: u64,
    trust_proxy: String,
    secret_rotation_overlap_seconds: u64,
    retention_seconds: u64,
    max_log_bytes: u64,
    unauthenticated_log_per_minute: u32,
    rule_evaluations: u32,
    rule_timeout_ms: u64,
    rule_max_cost: u64,
    github_api_url: String,
    gitlab_api_url: String,
    bitbucket_api_url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutbound {
    timeout_seconds: u64,
    retry_schedule: String,
    allowed_networks: String,
    concurrency: u32,
    endpoint_concurrency: u32,
    disable_after_seconds: u64,
    retention_seconds: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunner {
    workspace_dir: String,
    log_limit_bytes: u64,
    keep_workspaces: String,
    max_build_timeout_seconds: u64,
    executor: String,
    sandbox_network: String,
    sandbox_read_only_paths: String,
    limit_cpu_seconds: u64,
    limit_memory_bytes: u64,
    limit_processes: u64,
    limit_file_size_bytes: u64,
    limit_tmp_bytes: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    max_body_bytes: u64,
    shutdown_grace_seconds: u64,
    max_connections: u64,
    header_timeout_seconds: u64,
    body_timeout_seconds: u64,
    max_inflight_body_bytes: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSqlite {
    durability: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPostgres {
    schema: String,
    max_connections: u32,
    connect_timeout_seconds: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorker {
    concurrency: u32,
    lease_seconds: u64,
    poll_ms: u64,
    heartbeat_ms: u64,
    drain_seconds: u64,
    node_id: String,
    max_running_per_org: u32,
    max_queued_per_org: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBootstrap {
    org: String,
    account_id: String,
    token: String,
    aws_access_key_id: String,
    aws_secret_access_key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Api,
    Worker,
    All,
}

impl Role {
    pub fn runs_api(self) -> bool {
        matches!(self, Role::Api | Role::All)
    }

    pub fn runs_workers(self) -> bool {
        matches!(self, Role::Worker | Role::All)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// The SQLite file at this path.
    Sqlite(PathBuf),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(String),
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub concurrency: usize,
    /// How long a job stays leased without a heartbeat: a dead node's jobs are taken over after this.
    pub lease: Duration,
    pub poll: Duration,
    /// How often the node renews the leases of the jobs it runs.
    pub heartbeat: Duration,
    /// On a graceful stop, how long running jobs may take to finish before they are killed and handed off.
    pub drain: Duration,
    /// This node's name in the queue (`worker.node_id`, else the data folder's `node-id` file). Empty until
    /// the node starts.
    pub node: String,
    /// Pipeline executions and builds one organization may have running at once, across every node.
    pub max_running_per_org: Option<u32>,
    /// Pipeline executions and builds one organization may have waiting to run; more are refused.
    pub max_queued_per_org: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct BootstrapConfig {
    pub org: pipehook_domain::org::OrgName,
    pub account_id: Option<pipehook_domain::org::AccountId>,
    pub token: Option<pipehook_domain::credentials::ApiToken>,
    pub access_key: Option<(pipehook_domain::credentials::AccessKeyId, pipehook_domain::credentials::SecretAccessKey)>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: Database,
    /// `None`: derived from the address actually listened on.
    pub public_url: Option<String>,
    /// `None`: read or generated in the data folder.
    pub master_key: Option<MasterKey>,
    pub aws_region: String,
    pub role: Role,
    pub log_format: LogFormat,
    pub max_body_bytes: usize,
    pub shutdown_grace: Duration,
    /// Open connections at most.
    pub max_connections: usize,
    /// Time to send a request head; also how long a connection may sit idle between requests.
    pub header_timeout: Duration,
    /// Time to send a request body (trigger URLs and the AWS endpoint).
    pub body_timeout: Duration,
    /// Request body bytes held in memory at once, across requests.
    pub max_inflight_body_bytes: usize,
    pub sqlite_durability: pipehook_store::sqlite::Durability,
    pub postgres_schema: Option<String>,
    pub postgres_max_connections: u32,
    pub postgres_connect_timeout: Duration,
    pub worker: WorkerConfig,
    pub inbound: InboundSettings,
    pub outbound: OutboundSettings,
    pub runner: RunnerSettings,
    pub bootstrap: BootstrapConfig,
}

#[derive(Debug, Clone)]
pub struct InboundSettings {
    pub max_body_bytes: usize,
    pub trust_proxy: bool,
    pub secret_rotation_overlap: Duration,
    pub retention: Duration,
    /// Size budget of the inbound log (`None`: none).
    pub max_log_bytes: Option<u64>,
    /// Rule evaluation budgets and the rate of logged unauthenticated requests.
    pub limits: pipehook_api::inbound::InboundLimits,
    pub github_api_url: String,
    pub gitlab_api_url: String,
    pub bitbucket_api_url: String,
}

#[derive(Debug, Clone)]
pub struct OutboundSettings {
    pub delivery: pipehook_outbound::OutboundConfig,
    /// Deliveries in flight per worker node (their own worker pool, apart from pipeline executions).
    pub concurrency: usize,
    /// How long events, deliveries and attempts are kept.
    pub retention: Duration,
}

#[derive(Debug, Clone)]
pub struct RunnerSettings {
    pub workspace_dir: PathBuf,
    pub log_limit_bytes: usize,
    pub keep_workspaces: bool,
    /// Caps every CodeBuild build's timeout (`None`: no cap).
    pub max_build_timeout: Option<Duration>,
    /// Where commands run.
    pub executor: ExecutorKind,
    /// The sandbox's limits, network policy and extra read-only paths (used with [`ExecutorKind::Sandbox`]).
    pub sandbox: pipehook_runner::sandbox::SandboxSettings,
}

/// `runner.executor`: where pipeline commands and build phases run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorKind {
    /// Each command in its own bubblewrap sandbox (the default).
    Sandbox,
    /// As the worker's own processes: single-tenant installations whose pipelines are all trusted.
    None,
}

/// Sets `dotted.key` in `table` to `value`, typed like the default already there.
fn set_path(table: &mut toml::Table, key: &str, value: &str, setting: &str) -> Result<(), ConfigError> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or(key);
    let mut cur = table;
    for p in parts {
        cur = cur
            .get_mut(p)
            .and_then(|v| v.as_table_mut())
            .ok_or_else(|| ConfigError::new(setting, format!("no section [{p}]")))?;
    }
    let typed = match cur.get(last) {
        Some(toml::Value::Integer(_)) => toml::Value::Integer(
            value
                .trim()
                .parse::<i64>()
                .map_err(|_| ConfigError::new(setting, format!("expected a whole number, got {value:?}")))?,
        ),
        _ => toml::Value::String(value.to_owned()),
    };
    cur.insert(last.to_owned(), typed);
    Ok(())
}

/// Merges `over` into `base`, section by section.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

impl Config {
    /// Loads the layers. `env` is injected so tests do not touch the process environment.
    pub fn load(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table =
            DEFAULTS.parse().map_err(|e| ConfigError::new("config.default.toml", format!("{e}")))?;
        if let Some(path) = file {
            let setting = format!("--config {}", path.display());
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::new(&setting, e.to_string()))?;
            let over: toml::Table =
                text.parse().map_err(|e: toml::de::Error| ConfigError::new(&setting, e.message().to_owned()))?;
            merge(&mut table, over);
        }
        for (var, key) in ENV_VARS {
            if let Some(v) = env(var) {
                set_path(&mut table, key, &v, var)?;
            }
        }
        let o = overrides;
        for (flag, key, v) in [
            ("--listen", "listen", o.listen.clone()),
            ("--data-dir", "data_dir", o.data_dir.as_ref().map(|p| p.display().to_string())),
            ("--database-url", "database_url", o.database_url.clone()),
            ("--role", "role", o.role.clone()),
            ("--log-format", "log_format", o.log_format.clone()),
        ] {
            if let Some(v) = v {
                set_path(&mut table, key, &v, flag)?;
            }
        }
        let raw: Raw = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::new("configuration", e.message().to_owned()))?;
        Self::validate(raw)
    }

    fn validate(raw: Raw) -> Result<Config, ConfigError> {
        use pipehook_domain::credentials::{AccessKeyId, ApiToken, SecretAccessKey};
        use pipehook_domain::org::{AccountId, OrgName};

        let listen: SocketAddr = raw.listen.parse().map_err(|_| {
            ConfigError::new(
                "listen (PIPEHOOK_LISTEN)",
                format!("{:?} is not an address like 127.0.0.1:8080", raw.listen),
            )
        })?;
        if raw.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::new("data_dir (PIPEHOOK_DATA_DIR)", "must not be empty"));
        }
        // Relative paths are resolved once, against the folder pipehook starts in: commands run in other
        // folders (a build's phases `cd` into their source folder) and must still find them.
        let mut raw = raw;
        raw.data_dir = absolute(&raw.data_dir, "data_dir (PIPEHOOK_DATA_DIR)")?;
        if let Some(dir) = non_empty(&raw.runner.workspace_dir) {
            let dir = absolute(Path::new(dir), "runner.workspace_dir (PIPEHOOK_RUNNER_WORKSPACE_DIR)")?;
            raw.runner.workspace_dir = dir.display().to_string();
        }
        let database = parse_database_url(&raw.database_url, &raw.data_dir)?;
        let public_url = if raw.public_url.trim().is_empty() { None } else { Some(parse_public_url(&raw.public_url)?) };
        let master_key = if raw.master_key.trim().is_empty() {
            None
        } else {
            Some(
                MasterKey::from_base64(&raw.master_key)
                    .map_err(|e| ConfigError::new("master_key (PIPEHOOK_MASTER_KEY)", e.0))?,
            )
        };
        let region_ok = !raw.aws_region.is_empty()
            && raw.aws_region.len() <= 32
            && raw.aws_region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(ConfigError::new(
                "aws_region (PIPEHOOK_AWS_REGION)",
                format!("{:?} is not a region name like us-east-1", raw.aws_region),
            ));
        }
        let role = match raw.role.as_str() {
            "api" => Role::Api,
            "worker" => Role::Worker,
            "all" => Role::All,
            other => {
                return Err(ConfigError::new(
                    "role (PIPEHOOK_ROLE)",
                    format!("{other:?} is not one of api, worker, all"),
                ))
            }
        };
        let log_format = match raw.log_format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::new(
                    "log_format (PIPEHOOK_LOG_FORMAT)",
                    format!("{other:?} is not one of text, json"),
                ))
            }
        };
        let sqlite_durability = match raw.sqlite.durability.as_str() {
            "full" => pipehook_store::sqlite::Durability::Full,
            "normal" => pipehook_store::sqlite::Durability::Normal,
            other => {
                return Err(ConfigError::new(
                    "sqlite.durability (PIPEHOOK_SQLITE_DURABILITY)",
                    format!("{other:?} is not one of full, normal"),
                ))
            }
        };
        let positive = |v: u64, name: &str| {
            if v == 0 {
                Err(ConfigError::new(name, "must be greater than 0"))
            } else {
                Ok(v)
            }
        };
        let max_body_bytes = positive(raw.http.max_body_bytes, "http.max_body_bytes (PIPEHOOK_HTTP_MAX_BODY_BYTES)")?;
        positive(u64::from(raw.worker.concurrency), "worker.concurrency (PIPEHOOK_WORKER_CONCURRENCY)")?;
        positive(raw.worker.lease_seconds, "worker.lease_seconds (PIPEHOOK_WORKER_LEASE_SECONDS)")?;
        positive(raw.worker.poll_ms, "worker.poll_ms (PIPEHOOK_WORKER_POLL_MS)")?;
        positive(raw.worker.heartbeat_ms, "worker.heartbeat_ms (PIPEHOOK_WORKER_HEARTBEAT_MS)")?;
        let node_id = raw.worker.node_id.trim().to_owned();
        if node_id.len() > 128 || node_id.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(ConfigError::new(
                "worker.node_id (PIPEHOOK_NODE_ID)",
                "must be at most 128 characters, without spaces or control characters",
            ));
        }
        positive(
            u64::from(raw.postgres.max_connections),
            "postgres.max_connections (PIPEHOOK_POSTGRES_MAX_CONNECTIONS)",
        )?;

        let postgres_schema = non_empty(&raw.postgres.schema).map(str::to_owned);
        if let Some(s) = &postgres_schema {
            if s.len() > 63 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(ConfigError::new(
                    "postgres.schema (PIPEHOOK_POSTGRES_SCHEMA)",
                    format!("{s:?} must be 1 to 63 letters, digits or '_'"),
                ));
            }
        }
        let keep_workspaces =
            boolean(&raw.runner.keep_workspaces, "runner.keep_workspaces (PIPEHOOK_RUNNER_KEEP_WORKSPACES)")?;
        let inbound = InboundSettings {
            max_body_bytes: usize::try_from(positive(
                raw.inbound.max_body_bytes,
                "inbound.max_body_bytes (PIPEHOOK_TRIGGER_MAX_BODY_BYTES)",
            )?)
            .unwrap_or(usize::MAX),
            trust_proxy: boolean(&raw.inbound.trust_proxy, "inbound.trust_proxy (PIPEHOOK_TRUST_PROXY)")?,
            secret_rotation_overlap: Duration::from_secs(raw.inbound.secret_rotation_overlap_seconds),
            retention: Duration::from_secs(positive(
                raw.inbound.retention_seconds,
                "inbound.retention_seconds (PIPEHOOK_INBOUND_RETENTION)",
            )?),
            max_log_bytes: (raw.inbound.max_log_bytes > 0).then_some(raw.inbound.max_log_bytes),
            limits: pipehook_api::inbound::InboundLimits {
                unauthenticated_per_minute: raw.inbound.unauthenticated_log_per_minute,
                rule_evaluations: positive(
                    u64::from(raw.inbound.rule_evaluations),
                    "inbound.rule_evaluations (PIPEHOOK_INBOUND_RULE_EVALUATIONS)",
                )? as usize,
                rule_timeout: Duration::from_millis(positive(
                    raw.inbound.rule_timeout_ms,
                    "inbound.rule_timeout_ms (PIPEHOOK_INBOUND_RULE_TIMEOUT_MS)",
                )?),
                rule_max_cost: positive(
                    raw.inbound.rule_max_cost,
                    "inbound.rule_max_cost (PIPEHOOK_INBOUND_RULE_MAX_COST)",
                )?,
            },
            github_api_url: parse_public_url(&raw.inbound.github_api_url)
                .map_err(|e| ConfigError::new("inbound.github_api_url (PIPEHOOK_GITHUB_API_URL)", e.problem))?,
            gitlab_api_url: parse_public_url(&raw.inbound.gitlab_api_url)
                .map_err(|e| ConfigError::new("inbound.gitlab_api_url (PIPEHOOK_GITLAB_API_URL)", e.problem))?,
            bitbucket_api_url: parse_public_url(&raw.inbound.bitbucket_api_url)
                .map_err(|e| ConfigError::new("inbound.bitbucket_api_url (PIPEHOOK_BITBUCKET_API_URL)", e.problem))?,
        };
        let o = &raw.outbound;
        let retry_schedule = o
            .retry_schedule
            .split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(|x| x.parse::<u64>().map(Duration::from_secs))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                ConfigError::new(
                    "outbound.retry_schedule (PIPEHOOK_OUTBOUND_RETRY_SCHEDULE)",
                    format!("{:?} must be comma-separated whole seconds, e.g. 5,300,1800", o.retry_schedule),
                )
            })?;
        if retry_schedule.len() > 50 {
            return Err(ConfigError::new(
                "outbound.retry_schedule (PIPEHOOK_OUTBOUND_RETRY_SCHEDULE)",
                "at most 50 retries",
            ));
        }
        let allowed_networks = pipehook_outbound::ssrf::AddressPolicy::parse_networks(&o.allowed_networks)
            .map_err(|e| ConfigError::new("outbound.allowed_networks (PIPEHOOK_OUTBOUND_ALLOWED_NETWORKS)", e))?;
        let outbound = OutboundSettings {
            delivery: pipehook_outbound::OutboundConfig {
                timeout: Duration::from_secs(positive(
                    o.timeout_seconds,
                    "outbound.timeout_seconds (PIPEHOOK_OUTBOUND_TIMEOUT)",
                )?),
                retry_schedule,
                endpoint_concurrency: positive(
                    u64::from(o.endpoint_concurrency),
                    "outbound.endpoint_concurrency (PIPEHOOK_OUTBOUND_ENDPOINT_CONCURRENCY)",
                )? as usize,
                disable_after: Duration::from_secs(positive(
                    o.disable_after_seconds,
                    "outbound.disable_after_seconds (PIPEHOOK_OUTBOUND_DISABLE_AFTER)",
                )?),
                allowed_networks,
                ..pipehook_outbound::OutboundConfig::default()
            },
            concurrency: positive(u64::from(o.concurrency), "outbound.concurrency (PIPEHOOK_OUTBOUND_CONCURRENCY)")?
                as usize,
            retention: Duration::from_secs(positive(
                o.retention_seconds,
                "outbound.retention_seconds (PIPEHOOK_OUTBOUND_RETENTION)",
            )?),
        };
        let log_limit =
            positive(raw.runner.log_limit_bytes, "runner.log_limit_bytes (PIPEHOOK_RUNNER_LOG_LIMIT_BYTES)")?;
        let workspace_dir =
            non_empty(&raw.runner.workspace_dir).map_or_else(|| raw.data_dir.join("workspaces"), PathBuf::from);
        let (executor, sandbox) = sandbox_settings(&raw.runner, &raw.data_dir, &workspace_dir)?;
        let runner = RunnerSettings {
            workspace_dir,
            log_limit_bytes: usize::try_from(log_limit).unwrap_or(usize::MAX),
            keep_workspaces,
            max_build_timeout: (raw.runner.max_build_timeout_seconds > 0)
                .then(|| Duration::from_secs(raw.runner.max_build_timeout_seconds)),
            executor,
            sandbox,
        };
        let b = &raw.bootstrap;
        let org =
            OrgName::parse(&b.org).map_err(|e| ConfigError::new("bootstrap.org (PIPEHOOK_BOOTSTRAP_ORG)", e.0))?;
        let account_id = non_empty(&b.account_id)
            .map(|s| {
                AccountId::parse(s)
                    .map_err(|e| ConfigError::new("bootstrap.account_id (PIPEHOOK_BOOTSTRAP_ACCOUNT_ID)", e.0))
            })
            .transpose()?;
        let token = non_empty(&b.token)
            .map(|s| {
                ApiToken::parse(s).map_err(|e| ConfigError::new("bootstrap.token (PIPEHOOK_BOOTSTRAP_TOKEN)", e.0))
            })
            .transpose()?;
        let access_key = match (non_empty(&b.aws_access_key_id), non_empty(&b.aws_secret_access_key)) {
            (None, None) => None,
            (Some(id), Some(secret)) => Some((
                AccessKeyId::parse(id).map_err(|e| {
                    ConfigError::new("bootstrap.aws_access_key_id (PIPEHOOK_BOOTSTRAP_AWS_ACCESS_KEY_ID)", e.0)
                })?,
                SecretAccessKey::parse(secret).map_err(|e| {
                    ConfigError::new("bootstrap.aws_secret_access_key (PIPEHOOK_BOOTSTRAP_AWS_SECRET_ACCESS_KEY)", e.0)
                })?,
            )),
            _ => {
                return Err(ConfigError::new(
                    "PIPEHOOK_BOOTSTRAP_AWS_ACCESS_KEY_ID / PIPEHOOK_BOOTSTRAP_AWS_SECRET_ACCESS_KEY",
                    "give both or neither",
                ))
            }
        };

        Ok(Config {
            listen,
            data_dir: raw.data_dir,
            database,
            public_url,
            master_key,
            aws_region: raw.aws_region,
            role,
            log_format,
            max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
            shutdown_grace: Duration::from_secs(raw.http.shutdown_grace_seconds),
            max_connections: usize::try_from(positive(
                raw.http.max_connections,
                "http.max_connections (PIPEHOOK_HTTP_MAX_CONNECTIONS)",
            )?)
            .unwrap_or(usize::MAX),
            header_timeout: Duration::from_secs(positive(
                raw.http.header_timeout_seconds,
                "http.header_timeout_seconds (PIPEHOOK_HTTP_HEADER_TIMEOUT_SECONDS)",
            )?),
            body_timeout: Duration::from_secs(positive(
                raw.http.body_timeout_seconds,
                "http.body_timeout_seconds (PIPEHOOK_HTTP_BODY_TIMEOUT_SECONDS)",
            )?),
            max_inflight_body_bytes: usize::try_from(positive(
                raw.http.max_inflight_body_bytes,
                "http.max_inflight_body_bytes (PIPEHOOK_HTTP_MAX_INFLIGHT_BODY_BYTES)",
            )?)
            .unwrap_or(usize::MAX),
            sqlite_durability,
            postgres_schema,
            postgres_max_connections: raw.postgres.max_connections,
            postgres_connect_timeout: Duration::from_secs(raw.postgres.connect_timeout_seconds),
            worker: WorkerConfig {
                concurrency: raw.worker.concurrency as usize,
                lease: Duration::from_secs(raw.worker.lease_seconds),
                poll: Duration::from_millis(raw.worker.poll_ms),
                // At least three heartbeats per lease, so one slow renewal never costs a live node its jobs.
                heartbeat: Duration::from_millis(raw.worker.heartbeat_ms)
                    .min(Duration::from_secs(raw.worker.lease_seconds) / 3),
                drain: Duration::from_secs(raw.worker.drain_seconds),
                node: node_id,
                max_running_per_org: Some(raw.worker.max_running_per_org).filter(|n| *n > 0),
                max_queued_per_org: Some(raw.worker.max_queued_per_org).filter(|n| *n > 0),
            },
            inbound,
            outbound,
            runner,
            bootstrap: BootstrapConfig { org, account_id, token, access_key },
        })
    }

    /// The base URL for generated trigger URLs, given the address actually bound.
    pub fn public_url_for(&self, bound: SocketAddr) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{bound}"))
    }
}

/// `runner.executor`, `runner.sandbox_*` and `runner.limit_*`. Extra read-only paths must be absolute and must
/// neither be nor contain nor lie inside the data folder or the workspaces, which no sandbox may see.
fn sandbox_settings(
    r: &RawRunner,
    data_dir: &Path,
    workspace_dir: &Path,
) -> Result<(ExecutorKind, pipehook_runner::sandbox::SandboxSettings), ConfigError> {
    use pipehook_runner::sandbox::{Limits, NetworkPolicy, SandboxSettings};
    let executor = match r.executor.trim() {
        "sandbox" => ExecutorKind::Sandbox,
        "none" => ExecutorKind::None,
        other => {
            return Err(ConfigError::new(
                "runner.executor (PIPEHOOK_RUNNER_EXECUTOR)",
                format!("{other:?} is not one of sandbox, none"),
            ))
        }
    };
    let network = match r.sandbox_network.trim() {
        "shared" => NetworkPolicy::Shared,
        "none" => NetworkPolicy::Isolated,
        other => {
            return Err(ConfigError::new(
                "runner.sandbox_network (PIPEHOOK_RUNNER_SANDBOX_NETWORK)",
                format!("{other:?} is not one of shared, none"),
            ))
        }
    };
    const PATHS: &str = "runner.sandbox_read_only_paths (PIPEHOOK_RUNNER_SANDBOX_READ_ONLY_PATHS)";
    let mut read_only_paths = Vec::new();
    for item in r.sandbox_read_only_paths.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(item);
        if !path.is_absolute() || path.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Err(ConfigError::new(PATHS, format!("{item:?} must be an absolute path without ..")));
        }
        for (hidden, what) in [(data_dir, "the data folder"), (workspace_dir, "the workspaces")] {
            if hidden.starts_with(&path) || path.starts_with(hidden) {
                return Err(ConfigError::new(
                    PATHS,
                    format!("{item:?} would show {what} ({}) to every sandbox", hidden.display()),
                ));
            }
        }
        read_only_paths.push(path);
    }
    let limits = Limits {
        cpu_seconds: r.limit_cpu_seconds,
        memory_bytes: r.limit_memory_bytes,
        processes: r.limit_processes,
        file_size_bytes: r.limit_file_size_bytes,
        tmp_bytes: r.limit_tmp_bytes,
    };
    // Values so small that nothing could start are mistakes, not limits.
    for (value, floor, setting) in [
        (limits.memory_bytes, 64 * 1024 * 1024, "runner.limit_memory_bytes (PIPEHOOK_RUNNER_LIMIT_MEMORY_BYTES)"),
        (limits.processes, 8, "runner.limit_processes (PIPEHOOK_RUNNER_LIMIT_PROCESSES)"),
        (limits.tmp_bytes, 1024 * 1024, "runner.limit_tmp_bytes (PIPEHOOK_RUNNER_LIMIT_TMP_BYTES)"),
    ] {
        if value != 0 && value < floor {
            return Err(ConfigError::new(
                setting,
                format!("{value} is too small to run anything: at least {floor}, or 0 for no limit"),
            ));
        }
    }
    let hidden_paths = vec![data_dir.to_owned(), workspace_dir.to_owned()];
    Ok((executor, SandboxSettings { limits, network, read_only_paths, hidden_paths }))
}

fn boolean(v: &str, setting: &str) -> Result<bool, ConfigError> {
    match v.trim() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        other => Err(ConfigError::new(setting, format!("{other:?} is not true or false"))),
    }
}

/// `path` made absolute against the current folder (not resolving symbolic links, which may not exist yet).
fn absolute(path: &Path, setting: &str) -> Result<PathBuf, ConfigError> {
    std::path::absolute(path)
        .map_err(|e| ConfigError::new(setting, format!("cannot resolve {} to an absolute path: {e}", path.display())))
}

fn non_empty(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}

fn parse_database_url(url: &str, data_dir: &Path) -> Result<Database, ConfigError> {
    const SETTING: &str = "database_url (PIPEHOOK_DATABASE_URL)";
    let url = url.trim();
    if url.is_empty() {
        return Ok(Database::Sqlite(data_dir.join("pipehook.db")));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Database::Postgres(url.to_owned()));
    }
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            return Err(ConfigError::new(
                SETTING,
                "a sqlite URL needs a file path, e.g. sqlite:///var/lib/pipehook/pipehook.db",
            ));
        }
        return Ok(Database::Sqlite(absolute(Path::new(path), SETTING)?));
    }
    let scheme = url.split_once(':').map_or(url, |(s, _)| s);
    Err(ConfigError::new(SETTING, format!("unsupported scheme {scheme:?}: use sqlite:// or postgres://")))
}

fn parse_public_url(s: &str) -> Result<String, ConfigError> {
    const SETTING: &str = "public_url (PIPEHOOK_PUBLIC_URL)";
    let t = s.trim().trim_end_matches('/');
    let rest = t
        .strip_prefix("http://")
        .or_else(|| t.strip_prefix("https://"))
        .ok_or_else(|| ConfigError::new(SETTING, format!("{s:?} must start with http:// or https://")))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains('@') || rest.contains('?') || rest.contains('#') {
        return Err(ConfigError::new(
            SETTING,
            format!("{s:?} must be a base URL with a host and no credentials, query or fragment"),
        ));
    }
    Ok(t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(env: &[(&str, &str)], file: Option<&str>, o: Overrides) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        if let Some(f) = file {
            std::fs::write(&path, f).unwrap();
        }
        Config::load(file.map(|_| path.as_path()), &|k| env.get(k).cloned(), &o)
    }

    #[test]
    fn defaults() {
        let c = load(&[], None, Overrides::default()).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(c.database, Database::Sqlite(cwd.join("pipehook-data/pipehook.db")));
        assert_eq!(c.aws_region, "us-east-1");
        assert_eq!(c.role, Role::All);
        assert!(c.master_key.is_none() && c.public_url.is_none());
        assert_eq!(c.public_url_for("127.0.0.1:9999".parse().unwrap()), "http://127.0.0.1:9999");
        assert_eq!(c.bootstrap.org.as_str(), "default");
        assert_eq!(c.shutdown_grace, Duration::from_secs(30));
        assert_eq!(c.inbound.max_log_bytes, Some(1 << 30));
        let l = &c.inbound.limits;
        assert_eq!(
            (l.unauthenticated_per_minute, l.rule_evaluations, l.rule_timeout, l.rule_max_cost),
            (60, 2, Duration::from_secs(2), 50_000_000)
        );
        let c = load(&[("PIPEHOOK_INBOUND_MAX_LOG_BYTES", "0")], None, Overrides::default()).unwrap();
        assert_eq!(c.inbound.max_log_bytes, None, "0: no size budget");
    }

    #[test]
    fn layers_override_in_order() {
        let file = "listen = \"127.0.0.1:1000\"\naws_region = \"eu-west-1\"\n[worker]\nconcurrency = 3\n";
        let c = load(
            &[("PIPEHOOK_LISTEN", "127.0.0.1:2000"), ("PIPEHOOK_WORKER_LEASE_SECONDS", "7")],
            Some(file),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 2000, "env beats file");
        assert_eq!(c.aws_region, "eu-west-1", "file beats defaults");
        assert_eq!((c.worker.concurrency, c.worker.lease), (3, Duration::from_secs(7)));
        let o =
            Overrides { listen: Some("127.0.0.1:3000".into()), data_dir: Some("/tmp/x".into()), ..Default::default() };
        let c = load(&[("PIPEHOOK_LISTEN", "127.0.0.1:2000")], Some(file), o).unwrap();
        assert_eq!(c.listen.port(), 3000, "flag beats env");
        assert_eq!(c.database, Database::Sqlite(PathBuf::from("/tmp/x/pipehook.db")));
    }

    #[test]
    fn database_urls() {
        let c = load(&[("PIPEHOOK_DATABASE_URL", "postgres://u@h/db")], None, Overrides::default()).unwrap();
        assert_eq!(c.database, Database::Postgres("postgres://u@h/db".into()));
        let c = load(&[("PIPEHOOK_DATABASE_URL", "sqlite:///var/x.db")], None, Overrides::default()).unwrap();
        assert_eq!(c.database, Database::Sqlite(PathBuf::from("/var/x.db")));
    }

    /// Relative folders are resolved against the starting folder, so commands that `cd` elsewhere still
    /// find them.
    #[test]
    fn relative_paths_become_absolute() {
        let cwd = std::env::current_dir().unwrap();
        let c = load(
            &[("PIPEHOOK_DATA_DIR", "./pipehook-data"), ("PIPEHOOK_RUNNER_WORKSPACE_DIR", "ws")],
            None,
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.data_dir, cwd.join("pipehook-data"));
        assert_eq!(c.database, Database::Sqlite(cwd.join("pipehook-data").join("pipehook.db")));
        assert_eq!(c.runner.workspace_dir, cwd.join("ws"));
        let c = load(&[("PIPEHOOK_DATA_DIR", "d")], None, Overrides::default()).unwrap();
        assert_eq!(c.runner.workspace_dir, cwd.join("d").join("workspaces"));
        let c = load(&[("PIPEHOOK_DATABASE_URL", "sqlite://rel/x.db")], None, Overrides::default()).unwrap();
        assert_eq!(c.database, Database::Sqlite(cwd.join("rel/x.db")));
    }

    /// Each bad value gets one error naming its setting.
    #[test]
    fn bad_values_name_their_setting() {
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a str);
        let cases: &[Case] = &[
            (&[("PIPEHOOK_DATABASE_URL", "mysql://x")], None, "database_url"),
            (&[("PIPEHOOK_DATABASE_URL", "sqlite::memory:")], None, "database_url"),
            (&[("PIPEHOOK_LISTEN", "not-an-addr")], None, "listen"),
            (&[("PIPEHOOK_MASTER_KEY", "short")], None, "master_key"),
            (&[("PIPEHOOK_MASTER_KEY", "AAAA")], None, "master_key"),
            (&[("PIPEHOOK_AWS_REGION", "US EAST")], None, "aws_region"),
            (&[("PIPEHOOK_ROLE", "boss")], None, "role"),
            (&[("PIPEHOOK_LOG_FORMAT", "xml")], None, "log_format"),
            (&[("PIPEHOOK_WORKER_CONCURRENCY", "many")], None, "PIPEHOOK_WORKER_CONCURRENCY"),
            (&[("PIPEHOOK_WORKER_CONCURRENCY", "0")], None, "worker.concurrency"),
            (&[("PIPEHOOK_PUBLIC_URL", "ftp://x")], None, "public_url"),
            (&[("PIPEHOOK_PUBLIC_URL", "https://user:pw@x")], None, "public_url"),
            (&[("PIPEHOOK_BOOTSTRAP_ORG", "bad org")], None, "bootstrap.org"),
            (&[("PIPEHOOK_BOOTSTRAP_ACCOUNT_ID", "12")], None, "bootstrap.account_id"),
            (&[("PIPEHOOK_BOOTSTRAP_TOKEN", "short")], None, "bootstrap.token"),
            (&[("PIPEHOOK_BOOTSTRAP_AWS_ACCESS_KEY_ID", "AKIAAAAAAAAAAAAAAAAA")], None, "give both"),
            (&[("PIPEHOOK_SQLITE_DURABILITY", "maybe")], None, "sqlite.durability"),
            (&[("PIPEHOOK_POSTGRES_SCHEMA", "a;drop")], None, "postgres.schema"),
            (&[("PIPEHOOK_TRUST_PROXY", "maybe")], None, "inbound.trust_proxy"),
            (&[("PIPEHOOK_GITHUB_API_URL", "ftp://x")], None, "inbound.github_api_url"),
            (&[("PIPEHOOK_GITLAB_API_URL", "ftp://x")], None, "inbound.gitlab_api_url"),
            (&[("PIPEHOOK_BITBUCKET_API_URL", "ftp://x")], None, "inbound.bitbucket_api_url"),
            (&[("PIPEHOOK_OUTBOUND_RETRY_SCHEDULE", "5,soon")], None, "outbound.retry_schedule"),
            (&[("PIPEHOOK_OUTBOUND_ALLOWED_NETWORKS", "10.0.0.0/33")], None, "outbound.allowed_networks"),
            (&[("PIPEHOOK_OUTBOUND_TIMEOUT", "0")], None, "outbound.timeout_seconds"),
            (&[("PIPEHOOK_SECRET_ROTATION_OVERLAP", "1d")], None, "PIPEHOOK_SECRET_ROTATION_OVERLAP"),
            (&[("PIPEHOOK_INBOUND_RULE_EVALUATIONS", "0")], None, "inbound.rule_evaluations"),
            (&[("PIPEHOOK_INBOUND_RULE_TIMEOUT_MS", "0")], None, "inbound.rule_timeout_ms"),
            (&[("PIPEHOOK_INBOUND_RULE_MAX_COST", "0")], None, "inbound.rule_max_cost"),
            (&[("PIPEHOOK_INBOUND_UNAUTHENTICATED_LOG_PER_MINUTE", "-1")], None, "configuration"),
            (&[], Some("nonsense = = ="), "--config"),
            (&[], Some("unknown_key = 1"), "unknown field"),
            (&[], Some("[worker]\nconcurrency = \"x\""), "invalid type"),
        ];
        for (env, file, needle) in cases {
            let err = load(env, *file, Overrides::default()).expect_err(needle);
            let line = err.to_string();
            assert!(line.contains(needle), "{env:?} {file:?}: {line}");
            assert!(!line.contains('\n'), "one line: {line}");
        }
        assert!(Config::load(Some(Path::new("/nonexistent/c.toml")), &|_| None, &Overrides::default())
            .unwrap_err()
            .to_string()
            .contains("--config"));
    }

    /// The executor and the sandbox's settings: defaults, values, and each bad value naming its setting.
    #[test]
    fn executor_and_sandbox_settings() {
        use pipehook_runner::sandbox::{Limits, NetworkPolicy};
        let c = load(&[], None, Overrides::default()).unwrap();
        assert_eq!(c.runner.executor, ExecutorKind::Sandbox, "sandboxed unless told otherwise");
        assert_eq!(c.runner.sandbox.network, NetworkPolicy::Shared);
        assert_eq!(c.runner.sandbox.limits, Limits::default());
        assert!(c.runner.sandbox.read_only_paths.is_empty());

        let c = load(
            &[
                ("PIPEHOOK_RUNNER_EXECUTOR", "none"),
                ("PIPEHOOK_RUNNER_SANDBOX_NETWORK", "none"),
                ("PIPEHOOK_RUNNER_SANDBOX_READ_ONLY_PATHS", "/opt/tools, /srv/cache"),
                ("PIPEHOOK_RUNNER_LIMIT_CPU_SECONDS", "60"),
                ("PIPEHOOK_RUNNER_LIMIT_MEMORY_BYTES", "0"),
                ("PIPEHOOK_RUNNER_LIMIT_PROCESSES", "100"),
                ("PIPEHOOK_RUNNER_LIMIT_FILE_SIZE_BYTES", "1048576"),
                ("PIPEHOOK_RUNNER_LIMIT_TMP_BYTES", "2097152"),
                ("PIPEHOOK_DATA_DIR", "/srv/pipehook"),
            ],
            None,
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.runner.executor, ExecutorKind::None);
        assert_eq!(c.runner.sandbox.network, NetworkPolicy::Isolated);
        assert_eq!(c.runner.sandbox.read_only_paths, [PathBuf::from("/opt/tools"), PathBuf::from("/srv/cache")]);
        assert_eq!(
            c.runner.sandbox.limits,
            Limits { cpu_seconds: 60, memory_bytes: 0, processes: 100, file_size_bytes: 1048576, tmp_bytes: 2097152 }
        );

        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (&[("PIPEHOOK_RUNNER_EXECUTOR", "docker")], "runner.executor (PIPEHOOK_RUNNER_EXECUTOR)"),
            (&[("PIPEHOOK_RUNNER_SANDBOX_NETWORK", "off")], "runner.sandbox_network"),
            (&[("PIPEHOOK_RUNNER_SANDBOX_READ_ONLY_PATHS", "opt/tools")], "absolute"),
            (&[("PIPEHOOK_RUNNER_SANDBOX_READ_ONLY_PATHS", "/opt/../srv")], "absolute"),
            (&[("PIPEHOOK_RUNNER_SANDBOX_READ_ONLY_PATHS", "/")], "the data folder"),
            (
                &[("PIPEHOOK_RUNNER_SANDBOX_READ_ONLY_PATHS", "/srv"), ("PIPEHOOK_DATA_DIR", "/srv/p")],
                "the data folder",
            ),
            (
                &[("PIPEHOOK_RUNNER_SANDBOX_READ_ONLY_PATHS", "/srv/p/x"), ("PIPEHOOK_DATA_DIR", "/srv/p")],
                "data folder",
            ),
            (
                &[("PIPEHOOK_RUNNER_SANDBOX_READ_ONLY_PATHS", "/ws"), ("PIPEHOOK_RUNNER_WORKSPACE_DIR", "/ws/w")],
                "the workspaces",
            ),
            (&[("PIPEHOOK_RUNNER_LIMIT_PROCESSES", "2")], "runner.limit_processes"),
            (&[("PIPEHOOK_RUNNER_LIMIT_MEMORY_BYTES", "1000")], "runner.limit_memory_bytes"),
            (&[("PIPEHOOK_RUNNER_LIMIT_TMP_BYTES", "10")], "runner.limit_tmp_bytes"),
            (&[("PIPEHOOK_RUNNER_LIMIT_CPU_SECONDS", "forever")], "PIPEHOOK_RUNNER_LIMIT_CPU_SECONDS"),
        ];
        for (env, needle) in cases {
            let err = load(env, None, Overrides::default()).expect_err(needle).to_string();
            assert!(err.contains(needle), "{env:?}: {err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn valid_master_key_and_bootstrap() {
        let key = MasterKey::generate().to_base64();
        let c = load(
            &[
                ("PIPEHOOK_MASTER_KEY", key.as_str()),
                ("PIPEHOOK_BOOTSTRAP_TOKEN", "a-long-enough-token-1234"),
                ("PIPEHOOK_BOOTSTRAP_AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
                ("PIPEHOOK_BOOTSTRAP_AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                ("PIPEHOOK_BOOTSTRAP_ACCOUNT_ID", "123456789012"),
            ],
            None,
            Overrides::default(),
        )
        .unwrap();
        assert!(c.master_key.is_some());
        assert!(c.bootstrap.token.is_some() && c.bootstrap.access_key.is_some());
        assert!(!format!("{c:?}").contains("wJalrXUtnFEMI"), "secrets never in Debug output");
        assert!(!format!("{c:?}").contains("a-long-enough-token"), "tokens never in Debug output");
    }
}
