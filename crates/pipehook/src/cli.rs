//! The command line: `serve`, `migrate`, the administrative commands that work directly on the database
//! (organizations, tokens, access keys; they refuse where no installation exists unless `--create`), `backup`
//! and `db copy` (in [`crate::backup`]), for bootstrapping and recovery, and the client commands
//! (`pipelines`, `executions`, `logs`, `webhooks`, `inbound`, `hooks`, `deliveries`, `events`, in
//! [`crate::client`]; `projects`, `builds`, `project-webhooks`, in [`crate::client::codebuild`]) that call a
//! running server.

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use pipehook_domain::credentials::{AccessKeyId, ApiToken, SecretAccessKey};
use pipehook_domain::org::{AccountId, OrgName, Organization};
use pipehook_store::{Store, TokenId};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

use crate::app::{prepare, run, StartError};
use crate::client::codebuild::{BuildsArgs, ProjectWebhooksArgs, ProjectsArgs};
use crate::client::{
    self, DeliveriesArgs, EventsArgs, ExecutionsArgs, HooksArgs, InboundArgs, LogsArgs, Output, PipelinesArgs,
    WebhooksArgs,
};
use crate::config::{Config, ConfigError, Overrides};

#[derive(Debug, Parser)]
#[command(name = "pipehook", version, about = "A self-hosted webhook hub for CI/CD", long_about = None)]
pub struct Cli {
    /// Configuration file (TOML) layered over the compiled-in defaults.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Database URL (sqlite://PATH or postgres://...). Default: <data-dir>/pipehook.db.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Folder for the SQLite database and the generated master key.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Server the client commands (pipelines, executions, logs, webhooks, inbound, hooks, deliveries, events)
    /// call.
    #[arg(long, global = true, env = "PIPEHOOK_SERVER", default_value = "http://127.0.0.1:8080", value_name = "URL")]
    pub server: String,
    /// REST API token for the client commands.
    #[arg(long, global = true, env = "PIPEHOOK_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// How the client commands print results.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table, value_name = "FORMAT")]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API and the workers.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Manage organizations (directly on the database).
    Org(OrgArgs),
    /// Manage REST API tokens (directly on the database).
    Token(TokenArgs),
    /// Manage AWS-style access key pairs for the AWS-compatible API (directly on the database).
    #[command(name = "access-key")]
    AccessKey(AccessKeyArgs),
    /// Copy the SQLite database (a consistent snapshot, while the server runs) and the master key into a folder.
    #[command(after_help = "Restore: stop pipehook and start it with --data-dir on (a copy of) the backup folder.\n\
                            PostgreSQL installations: back the database up with pg_dump; this copies the master key.")]
    Backup(BackupArgs),
    /// Database maintenance: copy a SQLite installation into PostgreSQL.
    #[command(subcommand)]
    Db(DbCommand),
    /// Manage pipelines on a running server.
    Pipelines(PipelinesArgs),
    /// List, start, inspect and stop pipeline executions on a running server.
    Executions(ExecutionsArgs),
    /// Print the logs of an execution's actions (--follow to keep printing until it ends).
    Logs(LogsArgs),
    /// Manage pipeline webhooks (trigger URLs) on a running server, and explain how a payload would fare.
    Webhooks(WebhooksArgs),
    /// Inspect, replay and follow the requests that reached trigger URLs.
    Inbound(InboundArgs),
    /// Manage outbound webhooks (hooks) of the organization, a stack (--stack) or an environment (--env).
    Hooks(HooksArgs),
    /// List, inspect and redeliver a hook's delivery attempts.
    Deliveries(DeliveriesArgs),
    /// Publish events to the outbound webhooks.
    Events(EventsArgs),
    /// Manage CodeBuild projects (AWS JSON API, signed with an access key pair).
    Projects(ProjectsArgs),
    /// List, start, inspect, stop and follow CodeBuild builds.
    Builds(BuildsArgs),
    /// Manage CodeBuild project webhooks (payload URLs).
    #[command(name = "project-webhooks")]
    ProjectWebhooks(ProjectWebhooksArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell or elvish).
    Completions(client::CompletionsArgs),
}

/// The command line, with the client commands' help tidied ([`client::tidy_help`]).
pub fn command() -> clap::Command {
    client::tidy_help(Cli::command())
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// api (HTTP only), worker (jobs only) or all.
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
}

/// `--create` for the database-side admin commands: without it they refuse where no installation exists.
#[derive(Debug, Args)]
pub struct InstallationArgs {
    /// Create a new installation (data folder, master key, database) if there is none here, instead of refusing.
    #[arg(long, global = true)]
    pub create: bool,
}

#[derive(Debug, Args)]
pub struct OrgArgs {
    #[command(flatten)]
    pub installation: InstallationArgs,
    #[command(subcommand)]
    pub command: OrgCommand,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub installation: InstallationArgs,
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Args)]
pub struct AccessKeyArgs {
    #[command(flatten)]
    pub installation: InstallationArgs,
    #[command(subcommand)]
    pub command: AccessKeyCommand,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Folder to write pipehook.db and master.key into (created with mode 0700).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Replace a backup already in that folder.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy every table of a SQLite installation into a fresh PostgreSQL database (ids kept; refused unless the
    /// target is empty). Stop pipehook on the SQLite installation first.
    #[command(after_help = "Example: pipehook db copy --from ./pipehook-data --to postgres://pipehook@db/pipehook\n\
                            Then start pipehook with PIPEHOOK_DATABASE_URL and the same master key.")]
    Copy {
        /// The SQLite installation: its data folder or database file. Default: the configured one.
        #[arg(long, value_name = "DIR|FILE")]
        from: Option<PathBuf>,
        /// The PostgreSQL database to fill (migrated first; must hold no pipehook data).
        #[arg(long, value_name = "URL")]
        to: String,
        /// PostgreSQL schema to copy into (created if missing). Default: PIPEHOOK_POSTGRES_SCHEMA, else the
        /// connection's own.
        #[arg(long, value_name = "NAME")]
        schema: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization.
    Create {
        name: String,
        /// 12-digit AWS account id for its ARNs (random when omitted).
        #[arg(long)]
        account_id: Option<String>,
    },
    /// List organizations.
    List,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (shown only once).
    Create {
        #[arg(long)]
        org: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List an organization's tokens (never their values).
    List {
        #[arg(long)]
        org: String,
    },
    /// Revoke a token by id.
    Revoke {
        #[arg(long)]
        org: String,
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccessKeyCommand {
    /// Create an access key pair and print it (the secret is shown only once).
    Create {
        #[arg(long)]
        org: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List an organization's access keys (never their secrets).
    List {
        #[arg(long)]
        org: String,
    },
    /// Revoke an access key.
    Revoke {
        #[arg(long)]
        org: String,
        access_key_id: String,
    },
}

/// Parses arguments, runs the command, and returns the process exit code.
///
/// It starts the async runtime itself, once it knows the command: a server command first takes the secrets it
/// was given by environment out of the process's environment ([`crate::secrets_env`]; `serve` re-executes
/// itself for that), which is only sound while the process has one thread.
pub fn main() -> i32 {
    let handed = match crate::secrets_env::take_handed_over() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("pipehook: {e}");
            return 1;
        }
    };
    let cli = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.format(&mut command()).exit());
    // Client commands talk to a server over HTTP and must work without any server configuration, so they run
    // before the configuration is loaded.
    let conn = client::Connection { server: cli.server.clone(), token: cli.token.clone(), output: cli.output };
    if !is_server_command(&cli.command) {
        return with_runtime(client_command(conn, cli.command));
    }
    let listen_role = match &cli.command {
        Command::Serve(a) => (a.listen.clone(), a.role.clone()),
        _ => (None, None),
    };
    let overrides = Overrides {
        listen: listen_role.0,
        role: listen_role.1,
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
        log_format: cli.log_format.clone(),
    };
    let config = match Config::load(cli.config.as_deref(), &|k| handed.var(k), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pipehook: configuration error: {e}");
            return 2;
        }
    };
    if matches!(cli.command, Command::Serve(_)) {
        let secrets = crate::secrets_env::present();
        if !secrets.is_empty() {
            // Returns only when the re-execution failed.
            let e = crate::secrets_env::reexec_without(&secrets);
            eprintln!(
                "pipehook: warning: could not restart without the secrets in the environment ({e}); they are only \
                 removed from the environment list, and /proc/<pid>/environ still shows them"
            );
        }
    }
    let removed = crate::secrets_env::scrub();
    let command = cli.command;
    with_runtime(async move {
        crate::telemetry::init(config.log_format);
        let mut names: Vec<&str> = handed.names();
        names.extend(removed.iter().copied());
        if !names.is_empty() {
            tracing::info!(variables = ?names, "secrets given by environment were read and removed from pipehook's environment");
        }
        match execute(command, config).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("pipehook: {e}");
                e.exit_code()
            }
        }
    })
}

/// Runs `f` to completion on a new multi-threaded runtime; the runtime is then left to the process's exit, as
/// `#[tokio::main]` with `std::process::exit` inside it did.
fn with_runtime(f: impl std::future::Future<Output = i32>) -> i32 {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => {
            let code = runtime.block_on(f);
            runtime.shutdown_background();
            code
        }
        Err(e) => {
            eprintln!("pipehook: cannot start the async runtime: {e}");
            1
        }
    }
}

/// The commands that work on the installation (and so load the server's configuration).
fn is_server_command(c: &Command) -> bool {
    matches!(
        c,
        Command::Serve(_)
            | Command::Migrate
            | Command::Org(_)
            | Command::Token(_)
            | Command::AccessKey(_)
            | Command::Backup(_)
            | Command::Db(_)
    )
}

async fn client_command(conn: client::Connection, cmd: Command) -> i32 {
    match cmd {
        Command::Pipelines(args) => client::pipelines(&conn, args).await,
        Command::Executions(args) => client::executions(&conn, args).await,
        Command::Logs(args) => client::logs(&conn, args).await,
        Command::Webhooks(args) => client::webhooks(&conn, args).await,
        Command::Inbound(args) => client::inbound(&conn, args).await,
        Command::Hooks(args) => client::hooks(&conn, args).await,
        Command::Deliveries(args) => client::deliveries(&conn, args).await,
        Command::Events(args) => client::events(&conn, args).await,
        Command::Projects(args) => client::codebuild::projects(&conn, args).await,
        Command::Builds(args) => client::codebuild::builds(&conn, args).await,
        Command::ProjectWebhooks(args) => client::codebuild::project_webhooks(&conn, args).await,
        Command::Completions(args) => client::completions(args, command()),
        Command::Serve(_)
        | Command::Migrate
        | Command::Org(_)
        | Command::Token(_)
        | Command::AccessKey(_)
        | Command::Backup(_)
        | Command::Db(_) => {
            eprintln!("pipehook: internal error: a server command was taken for a client command");
            1
        }
    }
}

async fn execute(command: Command, config: Config) -> Result<(), StartError> {
    match command {
        Command::Serve(_) => serve(config).await,
        Command::Migrate => {
            let (store, _) = prepare(&config).await?;
            println!("migrations applied ({:?})", store.backend());
            store.close().await;
            Ok(())
        }
        Command::Org(a) => {
            admin(config, a.installation.create, false, |store, _| Box::pin(org_command(store, a.command))).await
        }
        Command::Token(a) => {
            admin(config, a.installation.create, false, |store, _| Box::pin(token_command(store, a.command))).await
        }
        Command::AccessKey(a) => {
            let needs_key = matches!(a.command, AccessKeyCommand::Create { .. });
            admin(config, a.installation.create, needs_key, move |store, key| {
                Box::pin(access_key_command(store, key, a.command))
            })
            .await
        }
        Command::Backup(a) => crate::backup::backup(&config, &a.to, a.force).await,
        Command::Db(DbCommand::Copy { from, to, schema }) => {
            crate::backup::copy_database(&config, from.as_deref(), &to, schema.as_deref()).await
        }
        Command::Pipelines(_)
        | Command::Executions(_)
        | Command::Logs(_)
        | Command::Webhooks(_)
        | Command::Inbound(_)
        | Command::Hooks(_)
        | Command::Deliveries(_)
        | Command::Events(_)
        | Command::Projects(_)
        | Command::Builds(_)
        | Command::ProjectWebhooks(_)
        | Command::Completions(_) => {
            unreachable!("client commands are run by `main` before the configuration is loaded")
        }
    }
}

async fn serve(config: Config) -> Result<(), StartError> {
    // Every role listens: API nodes for everything, worker nodes for health, readiness and metrics.
    let listener = Some(tokio::net::TcpListener::bind(config.listen).await.map_err(|e| {
        StartError::Config(ConfigError::new(
            "listen (PIPEHOOK_LISTEN)",
            format!("cannot listen on {}: {e}", config.listen),
        ))
    })?);
    let shutdown = CancellationToken::new();
    let signal_token = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: no new requests or jobs; finishing in-flight work");
        signal_token.cancel();
    });
    run(config, listener, shutdown).await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

type AdminFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StartError>> + Send + 'a>>;

/// Runs an admin command on the existing installation (see [`crate::installation::open_for_admin`]); the
/// master key is loaded only when `needs_key`.
async fn admin<F>(config: Config, create: bool, needs_key: bool, f: F) -> Result<(), StartError>
where
    F: for<'a> FnOnce(&'a dyn Store, Option<&'a pipehook_domain::secret::MasterKey>) -> AdminFuture<'a>,
{
    let (store, key) = crate::installation::open_for_admin(&config, create, needs_key).await?;
    let result = f(&*store, key.as_ref()).await;
    store.close().await;
    result
}

fn usage(setting: &str, problem: impl Into<String>) -> StartError {
    StartError::Config(ConfigError::new(setting, problem))
}

fn db(e: pipehook_store::StoreError) -> StartError {
    StartError::Runtime(e.to_string())
}

async fn find_org(store: &dyn Store, name: &str) -> Result<Organization, StartError> {
    let name = OrgName::parse(name).map_err(|e| usage("--org", e.0))?;
    store.org_by_name(&name).await.map_err(db)?.ok_or_else(|| usage("--org", format!("no organization named '{name}'")))
}

async fn org_command(store: &dyn Store, c: OrgCommand) -> Result<(), StartError> {
    match c {
        OrgCommand::Create { name, account_id } => {
            let name = OrgName::parse(&name).map_err(|e| usage("NAME", e.0))?;
            let account = match account_id {
                Some(a) => AccountId::parse(&a).map_err(|e| usage("--account-id", e.0))?,
                None => AccountId::generate(),
            };
            let mut tx = store.begin().await.map_err(db)?;
            let org = match tx.create_org(&name, &account).await {
                Ok(o) => o,
                Err(pipehook_store::StoreError::Conflict(_)) => {
                    return Err(usage("NAME", format!("organization '{name}' or account id {account} already exists")))
                }
                Err(e) => return Err(db(e)),
            };
            tx.commit().await.map_err(db)?;
            println!("created organization {} (AWS account id {})", org.name, org.account_id);
        }
        OrgCommand::List => {
            println!("{:<40} {:<14} CREATED_AT_MS", "NAME", "ACCOUNT_ID");
            for o in store.list_orgs().await.map_err(db)? {
                println!("{:<40} {:<14} {}", o.name.as_str(), o.account_id.as_str(), o.created_at.millis());
            }
        }
    }
    Ok(())
}

async fn token_command(store: &dyn Store, c: TokenCommand) -> Result<(), StartError> {
    match c {
        TokenCommand::Create { org, description } => {
            let org = find_org(store, &org).await?;
            let token = ApiToken::generate();
            let mut tx = store.begin().await.map_err(db)?;
            let id = tx.create_token(org.id, &token.hash(), &description).await.map_err(db)?;
            tx.commit().await.map_err(db)?;
            eprintln!("created token {} for organization {}; it is shown only once:", id.0, org.name);
            println!("{}", token.expose());
        }
        TokenCommand::List { org } => {
            let org = find_org(store, &org).await?;
            println!("{:<8} {:<10} {:<16} DESCRIPTION", "ID", "STATUS", "CREATED_AT_MS");
            for t in store.list_tokens(org.id).await.map_err(db)? {
                let status = if t.revoked_at.is_some() { "revoked" } else { "active" };
                println!("{:<8} {:<10} {:<16} {}", t.id.0, status, t.created_at.millis(), t.description);
            }
        }
        TokenCommand::Revoke { org, id } => {
            let org = find_org(store, &org).await?;
            let mut tx = store.begin().await.map_err(db)?;
            let revoked = tx.revoke_token(org.id, TokenId(id)).await.map_err(db)?;
            tx.commit().await.map_err(db)?;
            if !revoked {
                return Err(usage("ID", format!("organization {} has no active token {id}", org.name)));
            }
            println!("revoked token {id}");
        }
    }
    Ok(())
}

async fn access_key_command(
    store: &dyn Store,
    key: Option<&pipehook_domain::secret::MasterKey>,
    c: AccessKeyCommand,
) -> Result<(), StartError> {
    match c {
        AccessKeyCommand::Create { org, description } => {
            let key = key.ok_or_else(|| StartError::Runtime("the master key was not loaded".into()))?;
            let org = find_org(store, &org).await?;
            let id = AccessKeyId::generate();
            let secret = SecretAccessKey::generate();
            let ct = key.encrypt(&id.encryption_context(), secret.expose().as_bytes());
            let mut tx = store.begin().await.map_err(db)?;
            tx.create_access_key(org.id, &id, &ct, &description).await.map_err(db)?;
            tx.commit().await.map_err(db)?;
            eprintln!(
                "created access key for organization {} (account {}); the secret is shown only once:",
                org.name, org.account_id
            );
            println!("AWS_ACCESS_KEY_ID={}", id.as_str());
            println!("AWS_SECRET_ACCESS_KEY={}", secret.expose());
        }
        AccessKeyCommand::List { org } => {
            let org = find_org(store, &org).await?;
            println!("{:<24} {:<10} {:<16} DESCRIPTION", "ACCESS_KEY_ID", "STATUS", "CREATED_AT_MS");
            for k in store.list_access_keys(org.id).await.map_err(db)? {
                let status = if k.revoked_at.is_some() { "revoked" } else { "active" };
                println!("{:<24} {:<10} {:<16} {}", k.id.as_str(), status, k.created_at.millis(), k.description);
            }
        }
        AccessKeyCommand::Revoke { org, access_key_id } => {
            let org = find_org(store, &org).await?;
            let id = AccessKeyId::parse(&access_key_id).map_err(|e| usage("ACCESS_KEY_ID", e.0))?;
            let mut tx = store.begin().await.map_err(db)?;
            let revoked = tx.revoke_access_key(org.id, &id).await.map_err(db)?;
            tx.commit().await.map_err(db)?;
            if !revoked {
                return Err(usage(
                    "ACCESS_KEY_ID",
                    format!("organization {} has no active key {}", org.name, id.as_str()),
                ));
            }
            println!("revoked access key {}", id.as_str());
        }
    }
    Ok(())
}
