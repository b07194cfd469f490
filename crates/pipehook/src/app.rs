//! The composition root: opens the store the configuration names, resolves the master key, bootstraps
//! credentials, and runs the API and the workers until shutdown.

use pipehook_api::metrics::Metrics;
use pipehook_api::{ApiConfig, AppState};
use pipehook_domain::secret::MasterKey;
use pipehook_store::postgres::{PgOptions, PgStore};
use pipehook_store::sqlite::{SqliteOptions, SqliteStore};
use pipehook_store::{Queue, Store};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError, Database, ExecutorKind};
use crate::worker::{Handlers, WorkerPool};
use pipehook_runner::exec::Executor;
use pipehook_runner::sandbox::Sandbox;

/// Why the process could not start. A configuration problem exits with 2, anything else with 1.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Runtime(String),
}

impl StartError {
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::Config(_) => 2,
            StartError::Runtime(_) => 1,
        }
    }
}

impl From<crate::bootstrap::BootstrapError> for StartError {
    fn from(e: crate::bootstrap::BootstrapError) -> Self {
        match e {
            crate::bootstrap::BootstrapError::Config(c) => StartError::Config(c),
            crate::bootstrap::BootstrapError::Store(s) => StartError::Runtime(format!("bootstrap failed: {s}")),
        }
    }
}

/// Creates the data folder if needed (0700, or tightened to it: see [`crate::files`]) and proves it writable, so
/// a bad folder fails before anything else.
fn ensure_data_dir(dir: &Path) -> Result<(), ConfigError> {
    const SETTING: &str = "data_dir (PIPEHOOK_DATA_DIR)";
    crate::files::private_dir(dir)
        .map_err(|e| ConfigError::new(SETTING, format!("cannot create {}: {e}", dir.display())))?;
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .map_err(|e| ConfigError::new(SETTING, format!("{} is not writable: {e}", dir.display())))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// The configured key, or the one in `<data_dir>/master.key`, generated (mode 0600) on first start.
pub fn resolve_master_key(config: &Config) -> Result<MasterKey, StartError> {
    if let Some(k) = &config.master_key {
        return Ok(k.clone());
    }
    let path = config.data_dir.join("master.key");
    crate::files::tighten(&path, crate::files::FILE_MODE);
    match std::fs::read_to_string(&path) {
        Ok(text) => MasterKey::from_base64(&text)
            .map_err(|e| ConfigError::new(format!("master key file {}", path.display()), e.0).into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            ensure_data_dir(&config.data_dir)?;
            let key = MasterKey::generate();
            write_private(&path, key.to_base64().as_bytes()).map_err(|e| {
                StartError::Config(ConfigError::new(
                    "data_dir (PIPEHOOK_DATA_DIR)",
                    format!("cannot write {}: {e}", path.display()),
                ))
            })?;
            tracing::info!(path = %path.display(), "generated a new master key; back it up: secrets stored with it are unreadable without it");
            Ok(key)
        }
        Err(e) => Err(ConfigError::new(format!("master key file {}", path.display()), e.to_string()).into()),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(crate::files::FILE_MODE).open(path)?;
    f.write_all(bytes)?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// Opens the configured database (without migrating). PostgreSQL is retried with backoff for
/// `postgres.connect_timeout_seconds`, so nodes may start before their database.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    match &config.database {
        Database::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                ensure_data_dir(parent)?;
            }
            // The database (and so its WAL and shared-memory files) readable by pipehook's user only.
            crate::files::prepare_sqlite(path)
                .map_err(|e| StartError::Runtime(format!("cannot create SQLite database {}: {e}", path.display())))?;
            let opts = SqliteOptions { durability: config.sqlite_durability, ..SqliteOptions::default() };
            let store = SqliteStore::open(path, &opts)
                .await
                .map_err(|e| StartError::Runtime(format!("cannot open SQLite database {}: {e}", path.display())))?;
            Ok(Arc::new(store))
        }
        Database::Postgres(url) => {
            let opts =
                PgOptions { max_connections: config.postgres_max_connections, schema: config.postgres_schema.clone() };
            let started = Instant::now();
            let mut delay = Duration::from_millis(250);
            loop {
                match PgStore::connect(url, &opts).await {
                    Ok(s) => return Ok(Arc::new(s)),
                    Err(e) if started.elapsed() + delay < config.postgres_connect_timeout => {
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "PostgreSQL is not reachable yet");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                    Err(e) => {
                        return Err(StartError::Runtime(format!(
                            "PostgreSQL unreachable after {} s: {e}",
                            config.postgres_connect_timeout.as_secs()
                        )))
                    }
                }
            }
        }
    }
}

/// Opens and migrates the store, with the master key: what every command that touches the database needs.
pub async fn prepare(config: &Config) -> Result<(Arc<dyn Store>, MasterKey), StartError> {
    // The key first: a malformed key file must fail before a database is created.
    let key = resolve_master_key(config)?;
    Ok((open_migrated(config).await?, key))
}

/// Opens and migrates the store, without the master key (see [`prepare`]).
pub async fn open_migrated(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    // Another process (a running server, when this is the CLI) may hold SQLite's lock for a moment while
    // opening or migrating; SQLite answers some of those with "database is locked" at once instead of
    // waiting, so retry those for a few seconds.
    let mut attempt = 0;
    loop {
        let result = async {
            let store = open_store(config).await?;
            store.migrate().await.map_err(|e| StartError::Runtime(format!("migrating the database failed: {e}")))?;
            Ok::<_, StartError>(store)
        };
        match result.await {
            Ok(store) => return Ok(store),
            Err(StartError::Runtime(m)) if m.contains("database is locked") && attempt < 50 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// This node's name in the job queue: `worker.node_id` when set, else the one kept in the data folder's
/// `node-id` file (generated, 0600, on first start), so a restarted node knows which leases were its own.
fn node_id(config: &Config) -> Result<String, String> {
    if !config.worker.node.is_empty() {
        return Ok(config.worker.node.clone());
    }
    let path = config.data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let id = format!("node-{:016x}", rand::random::<u64>());
    crate::files::private_dir(&config.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", config.data_dir.display()))?;
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = config.data_dir.join("node-id.tmp");
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(format!("{id}\n").as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(id)
}

/// Runs pipehook until `shutdown` is cancelled: the API on `listener` (when given and the role serves it)
/// and the workers (when the role runs them). Returns after in-flight work drained or the grace period.
pub async fn run(config: Config, listener: Option<TcpListener>, shutdown: CancellationToken) -> Result<(), StartError> {
    // The sandbox is tried before anything is opened: without it, workers run no command (each fails saying
    // why) unless told to run them unsandboxed; an API-only node runs no commands and needs no bubblewrap.
    let executor = if config.role.runs_workers() { Some(command_executor(&config).await?) } else { None };
    let (store, key) = prepare(&config).await?;
    if let Some(generated) = crate::bootstrap::run(&*store, &key, &config.bootstrap).await? {
        println!("{}", generated.notice());
    }
    let metrics = Arc::new(Metrics::default());
    // Run events' bodies link to this server's API: PIPEHOOK_PUBLIC_URL, else the address it is bound to.
    let mut delivery = config.outbound.delivery.clone();
    delivery.public_url =
        config.public_url_for(listener.as_ref().and_then(|l| l.local_addr().ok()).unwrap_or(config.listen));
    let outbound =
        Arc::new(pipehook_outbound::Outbound::new(store.clone(), key.clone(), delivery).map_err(StartError::Runtime)?);

    let mut tasks = tokio::task::JoinSet::new();
    if config.role.runs_workers() {
        let mut handlers = Handlers::default();
        // Every execution's and build's folder is 0700 under a 0700 root.
        if let Err(e) = crate::files::private_dir(&config.runner.workspace_dir) {
            tracing::warn!(path = %config.runner.workspace_dir.display(), error = %e, "cannot create the workspaces folder");
        }
        // Before any worker runs: what this node's previous life left running is killed first.
        let registry = command_registry(&config.data_dir.join("commands"));
        let mut runner = pipehook_runner::pipeline::RunnerConfig::new(config.runner.workspace_dir.clone());
        runner.log_limit = config.runner.log_limit_bytes;
        runner.keep_workspaces = config.runner.keep_workspaces;
        runner.executor = executor.clone().unwrap_or_default();
        runner.registry = registry.clone();
        handlers.register(
            pipehook_runner::pipeline::EXECUTION_JOB,
            Arc::new(pipehook_runner::pipeline::PipelineRunner::new(store.clone(), runner)),
        );
        let mut builds = pipehook_runner::codebuild::BuildRunnerConfig::new(
            config.runner.workspace_dir.join("builds"),
            &config.aws_region,
        );
        builds.log_limit = config.runner.log_limit_bytes;
        builds.keep_workspaces = config.runner.keep_workspaces;
        builds.max_timeout = config.runner.max_build_timeout;
        builds.executor = executor.clone().unwrap_or_default();
        builds.registry = registry;
        // Commit statuses link to this server: the address the API is bound to unless PIPEHOOK_PUBLIC_URL says.
        let bound = listener.as_ref().and_then(|l| l.local_addr().ok()).unwrap_or(config.listen);
        let reporter = pipehook_api::githost::status::Reporter {
            github_api_url: config.inbound.github_api_url.clone(),
            gitlab_api_url: config.inbound.gitlab_api_url.clone(),
            bitbucket_api_url: config.inbound.bitbucket_api_url.clone(),
            public_url: config.public_url_for(bound),
            region: config.aws_region.clone(),
            master_key: key.clone(),
        };
        let build_runner = Arc::new(
            pipehook_runner::codebuild::BuildRunner::new(store.clone(), builds).with_reporter(Arc::new(reporter)),
        );
        handlers.register(pipehook_runner::codebuild::BUILD_JOB, build_runner.clone());
        handlers.register(pipehook_runner::codebuild::BATCH_JOB, build_runner);
        tasks.spawn(prune_inbound_log(
            store.clone(),
            config.inbound.retention,
            config.inbound.max_log_bytes,
            metrics.clone(),
            shutdown.clone(),
        ));
        // The node's name in the queue; what its previous life held (it crashed or was killed) is taken back
        // now, instead of after those leases run out.
        let mut worker = config.worker.clone();
        worker.node = node_id(&config).map_err(StartError::Runtime)?;
        match store.recover(&worker.node).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(
                    node = %worker.node,
                    jobs = n,
                    "took back the jobs this node held when it last stopped without giving them back (a crash or a kill)"
                )
            }
            Err(e) => {
                tracing::warn!(node = %worker.node, error = %e, "taking back this node's jobs failed; they return when their leases run out")
            }
        }
        let queue: Arc<dyn Queue> = store.clone();
        let pool = WorkerPool::new(queue, handlers, worker.clone(), metrics.clone());
        let token = shutdown.clone();
        tasks.spawn(async move {
            pool.run(token).await;
            Ok(())
        });

        // Deliveries get their own pool, so long pipeline executions never hold the slots they need.
        let mut delivery_handlers = Handlers::default();
        delivery_handlers.register(pipehook_outbound::JOB_KIND, outbound.clone());
        let delivery_config = crate::config::WorkerConfig {
            concurrency: config.outbound.concurrency,
            lease: worker.lease.max(config.outbound.delivery.timeout * 2),
            // A delivery is one HTTP request: it drains within the API's grace, never the long drain.
            drain: config.shutdown_grace.min(worker.drain),
            // The per-organization cap is for executions and builds; deliveries have per-endpoint caps.
            max_running_per_org: None,
            ..worker.clone()
        };
        let queue: Arc<dyn Queue> = store.clone();
        let pool = WorkerPool::new(queue, delivery_handlers, delivery_config, metrics.clone());
        let token = shutdown.clone();
        tasks.spawn(async move {
            pool.run(token).await;
            Ok(())
        });
        let (relay, relay_store, token) = (outbound.clone(), store.clone(), shutdown.clone());
        tasks.spawn(async move {
            relay.run_relay(&*relay_store, Duration::from_millis(250), token).await;
            Ok(())
        });
        tasks.spawn(prune_outbound_log(store.clone(), config.outbound.retention, shutdown.clone()));
    }
    if config.role.runs_workers() {
        tracing::info!(
            role = ?config.role,
            backend = ?store.backend(),
            concurrency = config.worker.concurrency,
            deliveries = config.outbound.concurrency,
            workspaces = %config.runner.workspace_dir.display(),
            "workers started"
        );
    }
    if let Some(listener) = listener {
        let bound = listener.local_addr().map_err(|e| StartError::Runtime(e.to_string()))?;
        let public_url = config.public_url_for(bound);
        if config.role.runs_api() {
            if let Some(problem) = unreachable_public_url(config.public_url.is_some(), bound) {
                tracing::warn!(
                    trigger_urls = %public_url,
                    "{problem}: git hosts cannot reach the trigger URLs; set PIPEHOOK_PUBLIC_URL (public_url in the \
                     configuration file) to the address they use, e.g. https://pipehook.example.com"
                );
            }
        }
        let state = AppState {
            store: store.clone(),
            master_key: key.clone(),
            config: Arc::new(ApiConfig {
                aws_region: config.aws_region.clone(),
                public_url: public_url.clone(),
                max_body_bytes: config.max_body_bytes,
                trigger_max_body_bytes: config.inbound.max_body_bytes,
                trust_forwarded_for: config.inbound.trust_proxy,
                secret_rotation_overlap: config.inbound.secret_rotation_overlap,
                github_api_url: config.inbound.github_api_url.clone(),
                gitlab_api_url: config.inbound.gitlab_api_url.clone(),
                bitbucket_api_url: config.inbound.bitbucket_api_url.clone(),
            }),
            metrics: metrics.clone(),
            outbound: outbound.clone(),
            inbound_cache: Arc::default(),
            inbound_guard: Arc::new(pipehook_api::inbound::InboundGuard::new(config.inbound.limits.clone())),
            bodies: pipehook_api::server::BodyBudget::new(config.max_inflight_body_bytes, config.body_timeout),
            admission: Arc::new(pipehook_api::admission::Admission::new(config.worker.max_queued_per_org)),
        };
        // A worker-only node serves health, readiness and metrics, so it can be probed and scraped like the
        // others; everything else is the API nodes'.
        if config.role.runs_api() {
            // One record per webhook and minute sums up the unauthenticated requests counted but not logged;
            // at shutdown, the minutes not ended yet are written too.
            let (summaries, token) = (state.clone(), shutdown.clone());
            tasks.spawn(async move {
                tokio::select! {
                    _ = pipehook_api::inbound::record_dropped(summaries.clone(), Duration::from_secs(10)) => {}
                    _ = token.cancelled() => pipehook_api::inbound::write_dropped(&summaries, true).await,
                }
                Ok(())
            });
        }
        let app = if config.role.runs_api() { pipehook_api::router(state) } else { pipehook_api::ops_router(state) };
        let (token, grace) = (shutdown.clone(), config.shutdown_grace);
        tracing::info!(listen = %bound, role = ?config.role, backend = ?store.backend(), %public_url, "pipehook is serving");
        let limits = pipehook_api::server::ServerLimits {
            max_connections: config.max_connections,
            header_read_timeout: config.header_timeout,
        };
        tasks.spawn(async move {
            pipehook_api::server::serve(listener, app, limits, token, grace)
                .await
                .map_err(|e| StartError::Runtime(format!("HTTP server failed: {e}")))
        });
    } else if config.role.runs_api() {
        return Err(StartError::Runtime("the api role needs a listener".into()));
    }

    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                shutdown.cancel();
                result = Err(e);
            }
            Err(e) => {
                shutdown.cancel();
                result = Err(StartError::Runtime(format!("a task panicked: {e}")));
            }
        }
    }
    store.close().await;
    tracing::info!("pipehook stopped");
    result
}

/// The registry of running commands' process groups in `dir`, after killing what this node's previous life left
/// running there (its commands die with it, but not what they started in the background). `None` (commands run
/// unrecorded) when the folder cannot be made.
fn command_registry(dir: &Path) -> Option<pipehook_runner::exec::ProcessRegistry> {
    let registry = pipehook_runner::exec::ProcessRegistry::open(dir)
        .map_err(|e| tracing::warn!(path = %dir.display(), error = %e, "cannot create the folder of running commands"))
        .ok()?;
    match registry.reap_leftovers() {
        Ok(0) => {}
        Ok(killed) => tracing::warn!(killed, "killed the commands a previous run of this node left running"),
        Err(e) => tracing::warn!(path = %dir.display(), error = %e, "cannot look for commands left running"),
    }
    Some(registry)
}

/// Where pipeline commands and build phases run. The sandbox needs bubblewrap, found on `PATH` and probed once
/// (a sandbox running `true`). When it does not work the server still starts (a fresh machine without
/// bubblewrap can try pipehook), an error at start says how to install it or opt out, and every command fails
/// with that message: nothing runs unsandboxed. `none` is said loudly, at every start.
async fn command_executor(config: &Config) -> Result<Executor, StartError> {
    match config.runner.executor {
        ExecutorKind::None => {
            tracing::warn!(
                "runner.executor is \"none\" (PIPEHOOK_RUNNER_EXECUTOR=none): pipeline commands and build phases run \
                 UNSANDBOXED as this server's own processes, with its user, its files (the database, the master key, \
                 every workspace), its network and the power to signal it. Only for a single-tenant installation \
                 whose pipelines and builds are all trusted; remove the setting to sandbox them with bubblewrap"
            );
            Ok(Executor::Direct)
        }
        ExecutorKind::Sandbox => {
            // Without a working bubblewrap the server still starts (the API, trigger URLs, the inbound log and
            // outbound webhooks work), but no command runs: each fails with how to install bubblewrap or opt out.
            // Never unsandboxed unless the operator says `none`.
            let unavailable = |e: String| {
                tracing::error!(
                    "{e}. Pipeline commands and build phases fail until the sandbox works (nothing runs \
                     unsandboxed); the API and trigger URLs serve meanwhile"
                );
                Ok(Executor::Unavailable(Arc::from(format!("the command did not run: {e}"))))
            };
            let sandbox = match Sandbox::new(config.runner.sandbox.clone()) {
                Ok(s) => s,
                Err(e) => return unavailable(e.to_string()),
            };
            // A folder of its own for the probe: the workspaces may not exist yet, and nothing should be created
            // there before the installation is.
            let nanos =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
            let dir = std::env::temp_dir().join(format!("pipehook-sandbox-probe-{}-{nanos}", std::process::id()));
            std::fs::create_dir(&dir)
                .map_err(|e| StartError::Runtime(format!("cannot create {} to try the sandbox: {e}", dir.display())))?;
            let probed = sandbox.probe(&dir).await;
            let _ = std::fs::remove_dir_all(&dir);
            if let Err(e) = probed {
                return unavailable(e.to_string());
            }
            let settings = sandbox.settings();
            tracing::info!(
                bwrap = %sandbox.bwrap().display(),
                network = ?settings.network,
                limits = ?settings.limits,
                "pipeline commands and build phases run in bubblewrap sandboxes"
            );
            if runs_as_root() {
                tracing::warn!(
                    "pipehook runs as root: sandboxed commands then run as uid 0 (without capabilities, in their own \
                     namespaces), and the kernel does not apply the process limit to root; run pipehook as a user of \
                     its own (see docs/install.md)"
                );
            }
            Ok(Executor::Sandbox(Arc::new(sandbox)))
        }
    }
}

/// Whether this process runs as root (the owner of its own `/proc` entry).
fn runs_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Why trigger URLs built on `bound` cannot be reached from another machine, when no public URL is set: a
/// loopback address only answers this machine, and an unspecified one (`0.0.0.0`, `::`) is no address at all.
fn unreachable_public_url(public_url_set: bool, bound: SocketAddr) -> Option<&'static str> {
    if public_url_set {
        None
    } else if bound.ip().is_loopback() {
        Some("the server listens on a loopback address and no public URL is set")
    } else if bound.ip().is_unspecified() {
        Some("no public URL is set, so trigger URLs name the unspecified listen address")
    } else {
        None
    }
}

/// Deletes inbound requests older than the retention every ten minutes (and once at start), and, with a size
/// budget, the oldest requests over it every minute. Every worker node runs it; the deletes are idempotent, so
/// nodes racing on them do no harm.
async fn prune_inbound_log(
    store: Arc<dyn Store>,
    retention: Duration,
    max_bytes: Option<u64>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    for round in 0u64.. {
        let by_age = round % 10 == 0;
        let cutoff = pipehook_domain::time::Timestamp::now().saturating_sub(retention);
        let pruned = async {
            let mut tx = store.begin().await?;
            let old = if by_age { tx.prune_inbound(cutoff).await? } else { 0 };
            let over = match max_bytes {
                Some(max) => tx.prune_inbound_to_size(max).await?,
                None => 0,
            };
            tx.commit().await?;
            Ok::<(u64, u64), pipehook_store::StoreError>((old, over))
        };
        match pruned.await {
            Ok((old, over)) => {
                if old > 0 {
                    tracing::info!(pruned = old, "pruned the inbound request log");
                }
                if over > 0 {
                    metrics.inbound_dropped("log_size_budget", over);
                    tracing::warn!(
                        pruned = over,
                        max_bytes = max_bytes.unwrap_or_default(),
                        "the inbound request log was over its size budget (inbound.max_log_bytes): pruned its \
                         oldest requests"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "pruning the inbound request log failed; will retry"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
    }
    Ok(())
}

/// Deletes delivery attempts, finished deliveries and their events older than the retention, every ten
/// minutes (and once at start). Idempotent, like the inbound pruning.
async fn prune_outbound_log(
    store: Arc<dyn Store>,
    retention: Duration,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    loop {
        let cutoff = pipehook_domain::time::Timestamp::now().saturating_sub(retention);
        let pruned = async {
            let mut tx = store.begin().await?;
            let n = tx.prune_outbound(cutoff).await?;
            tx.commit().await?;
            Ok::<u64, pipehook_store::StoreError>(n)
        };
        match pruned.await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "pruned the outbound delivery log"),
            Err(e) => tracing::warn!(error = %e, "pruning the outbound delivery log failed; will retry"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
    }
}
