//! The client commands (`pipelines`, `executions`, `logs`, `webhooks`, `inbound`, and for outbound webhooks
//! `hooks`, `deliveries`, `events`; the CodeBuild commands are in [`codebuild`]): they call a running server's native REST API over HTTP with a token, unlike the administrative commands, which open the database directly.
//!
//! They never load the server configuration, because they run on machines that have none (a laptop, a CI job);
//! everything they need comes from `--server`, `--token` and `--org` or the matching environment variables.
//! Server errors are printed as one line, `pipehook: <status> <message>`, with exit code 1; usage problems
//! (no token, a bad URL, an unreadable file) exit with 2; so does anything that did not succeed although the
//! server answered: a ping or redelivery the receiver refused, a followed or awaited run that ended otherwise
//! than succeeded (see [`EXIT_CODES`]).
//!
//! Output goes through `outln!`/`out!` ([`term`]), so `| head` ends a command quietly. [`tidy_help`] keeps the
//! server-only options out of these commands' help and adds examples; `completions` prints shell completions.

use clap::{Args, Subcommand, ValueEnum};
use pipehook_domain::time::Timestamp;
use reqwest::{Method, StatusCode, Url};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `println!` for the client commands, through [`term::write_out`]: a closed pipe (`| head`) ends the command
/// quietly instead of panicking.
macro_rules! outln {
    () => {
        $crate::client::term::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::client::term::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` through [`term::write_out`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::client::term::write_out(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics (a closed standard error is ignored).
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::client::term::write_err(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub mod codebuild;
pub mod term;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// The server's JSON, pretty-printed, for scripts.
    Json,
}

/// Where the client commands connect, from the global options.
#[derive(Debug, Clone)]
pub struct Connection {
    pub server: String,
    pub token: Option<String>,
    pub output: Output,
}

/// The organization the client commands act in. It is not a global option because the administrative
/// commands already have their own, required, `--org`.
#[derive(Debug, Args)]
pub struct OrgArg {
    /// Organization to act in.
    #[arg(long, global = true, env = "PIPEHOOK_ORG", default_value = "default", value_name = "ORG")]
    pub org: String,
}

#[derive(Debug, Args)]
pub struct PipelinesArgs {
    #[command(flatten)]
    pub org: OrgArg,
    #[command(subcommand)]
    pub command: PipelinesCommand,
}

#[derive(Debug, Subcommand)]
pub enum PipelinesCommand {
    /// List the organization's pipelines.
    List,
    /// Show a pipeline and its declaration.
    Get {
        /// Pipeline name.
        name: String,
    },
    /// Create a pipeline from a JSON declaration (bare, or wrapped as {"pipeline": {...}}).
    Create {
        /// JSON file, or - for standard input.
        #[arg(long, short, value_name = "FILE")]
        file: PathBuf,
    },
    /// Store a new version of a pipeline from a JSON declaration; its name says which pipeline.
    Update {
        /// JSON file, or - for standard input.
        #[arg(long, short, value_name = "FILE")]
        file: PathBuf,
    },
    /// Delete a pipeline with its executions.
    Delete {
        /// Pipeline name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct ExecutionsArgs {
    #[command(flatten)]
    pub org: OrgArg,
    #[command(subcommand)]
    pub command: ExecutionsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ExecutionsCommand {
    /// List a pipeline's executions, newest first.
    List {
        /// Pipeline name.
        pipeline: String,
        /// How many to show (1 to 100).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show an execution and its actions.
    Get {
        /// Pipeline name.
        pipeline: String,
        /// Execution id.
        id: String,
    },
    /// Start an execution and print its id (with --wait, wait for it to end: exit 0 only if it succeeded).
    Start {
        /// Pipeline name.
        pipeline: String,
        /// A pipeline variable for this execution, NAME=VALUE (repeatable).
        #[arg(long = "variable", value_name = "NAME=VALUE")]
        variables: Vec<String>,
        /// Wait for the execution to end and print its final status; exit 1 unless it succeeded.
        #[arg(long)]
        wait: bool,
    },
    /// Ask a running execution to stop.
    Stop {
        /// Pipeline name.
        pipeline: String,
        /// Execution id.
        id: String,
        /// Kill running actions now instead of letting them finish.
        #[arg(long)]
        abandon: bool,
        /// Why, recorded with the execution.
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub org: OrgArg,
    /// Pipeline name.
    pub pipeline: String,
    /// Execution id.
    pub execution: String,
    /// Only this action's log.
    #[arg(long)]
    pub action: Option<String>,
    /// Keep printing new output every second until the execution ends; exit 1 unless it succeeded.
    #[arg(long, short)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct WebhooksArgs {
    #[command(flatten)]
    pub org: OrgArg,
    #[command(subcommand)]
    pub command: WebhooksCommand,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// List the organization's pipeline webhooks.
    List,
    /// Show a webhook: its trigger URL, rules and authentication (never its secret).
    Get {
        /// Webhook name.
        name: String,
    },
    /// Create or replace a webhook from a JSON definition (PutWebhook's "webhook", optionally with "tags", or
    /// PutWebhook's whole input). A replace keeps the trigger URL.
    Put {
        /// JSON file, or - for standard input.
        #[arg(long, short, value_name = "FILE")]
        file: PathBuf,
        /// Webhook name; by default the definition's "name".
        name: Option<String>,
    },
    /// Delete a webhook; its trigger URL stops working at once.
    Delete {
        /// Webhook name.
        name: String,
    },
    /// Create the repository hook on the git host (RegisterWebhookWithThirdParty).
    Register {
        /// Webhook name.
        name: String,
    },
    /// Delete the repository hook a registration created (DeregisterWebhookWithThirdParty).
    Deregister {
        /// Webhook name.
        name: String,
    },
    /// End the rotation overlap now: the secret a put replaced stops being accepted at once.
    #[command(name = "revoke-previous-secret")]
    RevokePreviousSecret {
        /// Webhook name.
        name: String,
    },
    /// Show, rule by rule, what a webhook would do with a payload, starting nothing.
    Explain {
        /// Webhook name.
        name: String,
        /// The payload, a JSON file as the git host would send it (- for standard input).
        #[arg(long, value_name = "FILE")]
        payload: PathBuf,
        /// The event name the git host would send with it (X-GitHub-Event), e.g. push.
        #[arg(long)]
        event: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct InboundArgs {
    #[command(flatten)]
    pub org: OrgArg,
    #[command(subcommand)]
    pub command: InboundCommand,
}

#[derive(Debug, Subcommand)]
pub enum InboundCommand {
    /// List requests to trigger URLs and their verdicts, newest first.
    List {
        #[command(flatten)]
        filter: InboundFilter,
        /// How many to show (1 to 500).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show a request: its headers, body, verdict and why.
    Get {
        /// Request id.
        id: String,
    },
    /// Judge a logged request again against the webhook as it is now, and start the pipeline if it passes.
    Replay {
        /// Request id.
        id: String,
    },
    /// Print the newest requests, then new ones as they arrive, until interrupted (Ctrl-C).
    Tail {
        #[command(flatten)]
        filter: InboundFilter,
    },
}

#[derive(Debug, Args)]
pub struct InboundFilter {
    /// Only requests to this webhook.
    #[arg(long, value_name = "NAME")]
    pub webhook: Option<String>,
    /// Only requests with this verdict: triggered, filtered, duplicate, unauthenticated or rejected.
    #[arg(long)]
    pub verdict: Option<String>,
}

impl InboundFilter {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        q.extend(self.webhook.iter().map(|w| ("webhook", w.clone())));
        q.extend(self.verdict.iter().map(|v| ("verdict", v.clone())));
        q
    }
}

/// Which hooks an outbound-webhook command acts on: the organization's (neither flag), a stack's or an
/// environment's.
#[derive(Debug, Args)]
pub struct HookScopeArgs {
    /// Act on the hooks of this stack instead of the organization's.
    #[arg(long, global = true, value_name = "PROJECT/STACK")]
    pub stack: Option<String>,
    /// Act on the hooks of this environment instead of the organization's.
    #[arg(long, global = true, value_name = "PROJECT/ENV")]
    pub env: Option<String>,
}

/// A hook scope, parsed from [`HookScopeArgs`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum HookScope {
    Org,
    Stack { project: String, stack: String },
    Env { project: String, env: String },
}

impl HookScopeArgs {
    fn parse(&self) -> Outcome<HookScope> {
        let split = |flag: &str, what: &str, v: &str| -> Outcome<(String, String)> {
            match v.split_once('/') {
                Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains('/') => Ok((a.to_owned(), b.to_owned())),
                _ => Err(Failure::Usage(format!("{flag} '{v}': expected PROJECT/{what}, e.g. web/prod"))),
            }
        };
        match (&self.stack, &self.env) {
            (Some(_), Some(_)) => Err(Failure::Usage("give --stack or --env, not both".into())),
            (Some(s), None) => split("--stack", "STACK", s).map(|(project, stack)| HookScope::Stack { project, stack }),
            (None, Some(e)) => split("--env", "ENV", e).map(|(project, env)| HookScope::Env { project, env }),
            (None, None) => Ok(HookScope::Org),
        }
    }
}

impl HookScope {
    /// The path of the scope's hooks below `/api`.
    fn segments<'a>(&'a self, org: &'a str) -> Vec<&'a str> {
        match self {
            HookScope::Org => vec!["orgs", org, "hooks"],
            HookScope::Stack { project, stack } => vec!["stacks", org, project, stack, "hooks"],
            HookScope::Env { project, env } => vec!["esc", "environments", org, project, env, "hooks"],
        }
    }

    fn describe(&self, org: &str) -> String {
        match self {
            HookScope::Org => format!("organization {org}"),
            HookScope::Stack { project, stack } => format!("stack {project}/{stack}"),
            HookScope::Env { project, env } => format!("environment {project}/{env}"),
        }
    }
}

#[derive(Debug, Args)]
pub struct HooksArgs {
    #[command(flatten)]
    pub org: OrgArg,
    #[command(flatten)]
    pub scope: HookScopeArgs,
    #[command(subcommand)]
    pub command: HooksCommand,
}

#[derive(Debug, Subcommand)]
pub enum HooksCommand {
    /// List the hooks of the organization (or of --stack / --env).
    List,
    /// Show a hook (never its secret).
    Get {
        /// Hook name.
        name: String,
    },
    /// Create a hook, from a Webhook JSON file (--file) or from NAME --url URL and the options below.
    Create {
        /// Hook name (letters, digits, -, _ and .); with --file, fills the file's "name" when it has none.
        name: Option<String>,
        /// Webhook JSON file, or - for standard input; organizationName and the scope's names are filled in.
        #[arg(long, short, value_name = "FILE",
              conflicts_with_all = ["url", "display_name", "secret_env", "format", "filters", "groups", "inactive"])]
        file: Option<PathBuf>,
        /// Payload URL the events are POSTed to.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Display name (default: the name).
        #[arg(long, value_name = "TEXT")]
        display_name: Option<String>,
        /// Name of an environment variable holding the signing secret (never the secret itself: a command
        /// line lands in shell history and process listings).
        #[arg(long, value_name = "VAR")]
        secret_env: Option<String>,
        /// raw (default), slack, ms_teams or pulumi_deployments (stack and environment hooks only).
        #[arg(long)]
        format: Option<String>,
        /// Only this event kind (repeatable), e.g. build_failed.
        #[arg(long = "filter", value_name = "KIND")]
        filters: Vec<String>,
        /// Only this group of event kinds (repeatable): stacks, deployments, policies, environments, builds,
        /// pipelines.
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// Create it inactive (it receives nothing until updated with "active": true).
        #[arg(long)]
        inactive: bool,
    },
    /// Change a hook from a partial Webhook JSON file: fields it leaves out keep their value (the secret too).
    Update {
        /// Hook name.
        name: String,
        /// JSON file, or - for standard input.
        #[arg(long, short, value_name = "FILE")]
        file: PathBuf,
    },
    /// Delete a hook.
    Delete {
        /// Hook name.
        name: String,
    },
    /// Send a ping event to the hook's URL now, and show the answer; exit 1 unless it was a 2xx.
    Ping {
        /// Hook name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    #[command(flatten)]
    pub org: OrgArg,
    #[command(flatten)]
    pub scope: HookScopeArgs,
    #[command(subcommand)]
    pub command: DeliveriesCommand,
}

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// List a hook's delivery attempts, newest first: each with its delivery (id, event kind, status, next
    /// retry), its number within that delivery, the response and why it failed.
    List {
        /// Hook name.
        hook: String,
        /// How many to show (1 to 1000).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Only attempts older than this cursor (printed after a full page).
        #[arg(long, value_name = "CURSOR")]
        before: Option<i64>,
    },
    /// Show a delivery: its status and attempts, and one attempt in full (request headers, payload, response).
    Get {
        /// Hook name.
        hook: String,
        /// Delivery id (the DELIVERY column of `deliveries list`).
        delivery_id: String,
        /// The attempt to show in full, by its number within the delivery (default: the latest).
        #[arg(long, value_name = "N")]
        attempt: Option<i64>,
    },
    /// Send a delivery's event again now (same Pulumi-Webhook-ID), and show the answer; exit 1 unless it was a
    /// 2xx.
    Redeliver {
        /// Hook name.
        hook: String,
        /// Delivery id (the DELIVERY column of `deliveries list`).
        delivery_id: String,
    },
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub org: OrgArg,
    #[command(subcommand)]
    pub command: EventsCommand,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Publish an event to the matching hooks and print its id.
    Publish {
        /// Event kind, e.g. update_succeeded or build_failed.
        #[arg(long)]
        kind: String,
        /// The payload, a JSON object in a file (- for standard input).
        #[arg(long, value_name = "FILE", conflicts_with = "payload")]
        payload_file: Option<PathBuf>,
        /// The payload as JSON text (default {}).
        #[arg(long, value_name = "JSON")]
        payload: Option<String>,
        /// Project: with --stack, the stack's hooks get the event too (every stack of it without --stack).
        #[arg(long)]
        project: Option<String>,
        /// Stack (needs --project).
        #[arg(long)]
        stack: Option<String>,
        /// Environment whose hooks get the event too.
        #[arg(long)]
        env: Option<String>,
        /// Publishing again with the same key within 24 hours returns the first event's id and sends nothing.
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
    },
}

/// Why a client command failed, and so its exit code.
#[derive(Debug)]
enum Failure {
    /// The command line or the environment is wrong (exit 2).
    Usage(String),
    /// The server answered with an error (exit 1).
    Server { status: StatusCode, message: String },
    /// The server could not be reached or answered nonsense (exit 1).
    Transport(String),
    /// The server answered, but without what was asked for (exit 1).
    Missing(String),
    /// The AWS-compatible API answered with an error (`__type`, `message`) (exit 1).
    Aws { kind: String, message: String },
    /// The call worked but what it did failed: a receiver refused a ping or a redelivery, a followed or awaited
    /// run ended otherwise than succeeded (exit 1).
    Unsuccessful(String),
}

impl Failure {
    fn report(&self) -> i32 {
        match self {
            Failure::Usage(m) => {
                errln!("pipehook: {m}");
                2
            }
            Failure::Server { status, message } => {
                errln!("pipehook: {} {message}", status.as_u16());
                1
            }
            Failure::Transport(m) | Failure::Missing(m) | Failure::Unsuccessful(m) => {
                errln!("pipehook: {m}");
                1
            }
            Failure::Aws { kind, message } => {
                errln!("pipehook: {kind}: {message}");
                1
            }
        }
    }
}

type Outcome<T = ()> = Result<T, Failure>;

/// The exit codes, in the help of `pipehook` and (`--help`) of every client command.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success (also when the output is closed early, e.g. `pipehook ... | head`; serve and the database
     commands exit 141 then, as if killed by SIGPIPE)
  1  failure: the server answered with an error or could not be reached; a hook ping or redelivery the
     receiver did not accept (no 2xx answer); `logs --follow`, `builds logs --follow`, `executions start
     --wait` or `builds start --wait` of a run that ended otherwise than succeeded (Failed, Stopped,
     Superseded, FAILED, FAULT, STOPPED, TIMED_OUT); serve, migrate or a database command that failed
  2  bad usage: invalid arguments or configuration, an unreadable or invalid input file, no API token or
     access key";

/// The client commands (they call a server), each with the examples its help shows.
const CLIENT_COMMANDS: &[(&str, &str)] = &[
    (
        "pipelines",
        "  pipehook pipelines create --file pipeline.json
  pipehook pipelines list
  pipehook --output json pipelines get app",
    ),
    (
        "executions",
        "  pipehook executions start app --wait            # prints the id, waits, exits 1 unless it succeeded
  pipehook executions list app --limit 5           # COMMIT, and which execution a queued one waits behind
  pipehook executions stop app EXECUTION_ID --abandon",
    ),
    (
        "logs",
        "  pipehook logs app EXECUTION_ID --follow         # exits 1 unless the execution succeeded
  pipehook logs app EXECUTION_ID --action Build",
    ),
    (
        "webhooks",
        "  pipehook webhooks put --file gh.json            # prints the trigger URL
  pipehook webhooks explain gh --payload push.json --event push",
    ),
    (
        "inbound",
        "  pipehook inbound list --webhook gh --verdict filtered
  pipehook inbound get REQUEST_ID
  pipehook inbound tail",
    ),
    (
        "hooks",
        "  pipehook hooks create ci --url https://hooks.example.com/ci --secret-env CI_HOOK_SECRET --group pipelines
  pipehook hooks ping ci                           # exits 1 unless the receiver answers 2xx
  pipehook hooks list --stack web/prod",
    ),
    (
        "deliveries",
        "  pipehook deliveries list ci
  pipehook deliveries get ci DELIVERY_ID [--attempt 2]
  pipehook deliveries redeliver ci DELIVERY_ID",
    ),
    (
        "events",
        "  pipehook events publish --kind update_succeeded --project web --stack dev --payload '{\"stackName\":\"dev\"}'",
    ),
    (
        "projects",
        "  pipehook projects create --file project.json
  pipehook projects list
  pipehook projects get hello",
    ),
    (
        "builds",
        "  pipehook builds start hello --source-version main --wait   # exits 1 unless the build succeeded
  pipehook builds logs hello:6f1c... --follow
  pipehook builds list --project hello --limit 5",
    ),
    (
        "project-webhooks",
        "  pipehook project-webhooks create hello --filter-group 'EVENT:PUSH,HEAD_REF:^refs/heads/main$'
  pipehook project-webhooks update hello --rotate-secret",
    ),
    (
        "completions",
        "  pipehook completions bash > /etc/bash_completion.d/pipehook
  pipehook completions zsh > \"${fpath[1]}/_pipehook\"
  pipehook completions fish > ~/.config/fish/completions/pipehook.fish",
    ),
];

/// The commands that never call a server: the client options are left out of their help.
const SERVER_COMMANDS: &[&str] = &["serve", "migrate", "org", "token", "access-key", "backup", "db"];

/// The global options only `serve`, `migrate` and the database commands use (ids of [`crate::cli::Cli`]).
const SERVER_OPTIONS: &[&str] = &["config", "log_format", "database_url", "data_dir"];

/// The global options only the client commands use.
const CLIENT_OPTIONS: &[&str] = &["server", "token", "output"];

/// Tidies the help of `root` (the whole command line): the server-only global options are left out of the client
/// commands' help, and the client options out of the server commands' help; each client command shows its
/// examples, and with `--help` the exit codes too, as does `pipehook --help`.
///
/// An option is left out by giving the command a hidden copy of it: clap never propagates a global option to a
/// command that has one with the same id, and the copy, global too, goes on to the command's own subcommands.
/// The options still parse as before (they are accepted, and ignored, where they are hidden).
pub fn tidy_help(root: clap::Command) -> clap::Command {
    let hidden = |ids: &[&str]| -> Vec<clap::Arg> {
        root.get_arguments().filter(|a| ids.contains(&a.get_id().as_str())).map(|a| a.clone().hide(true)).collect()
    };
    let (server_only, client_only) = (hidden(SERVER_OPTIONS), hidden(CLIENT_OPTIONS));
    root.after_help(EXIT_CODES).mut_subcommands(|sc| {
        let name = sc.get_name().to_owned();
        if let Some((_, examples)) = CLIENT_COMMANDS.iter().find(|(n, _)| *n == name) {
            let sc = server_only.iter().cloned().fold(sc, clap::Command::arg);
            sc.after_help(format!("Examples:\n{examples}"))
                .after_long_help(format!("Examples:\n{examples}\n\n{EXIT_CODES}"))
        } else if SERVER_COMMANDS.contains(&name.as_str()) {
            client_only.iter().cloned().fold(sc, clap::Command::arg)
        } else {
            sc
        }
    })
}

/// `pipehook completions SHELL`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Prints the completion script of `shell` for the command line `cmd`.
pub fn completions(args: CompletionsArgs, mut cmd: clap::Command) -> i32 {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "pipehook", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    term::flush_out();
    0
}

pub async fn pipelines(conn: &Connection, args: PipelinesArgs) -> i32 {
    finish(async { Client::new(conn, &args.org.org)?.pipelines(args.command).await }.await)
}

pub async fn executions(conn: &Connection, args: ExecutionsArgs) -> i32 {
    finish(async { Client::new(conn, &args.org.org)?.executions(args.command).await }.await)
}

pub async fn logs(conn: &Connection, args: LogsArgs) -> i32 {
    finish(async { Client::new(conn, &args.org.org)?.logs(&args).await }.await)
}

pub async fn webhooks(conn: &Connection, args: WebhooksArgs) -> i32 {
    finish(async { Client::new(conn, &args.org.org)?.webhooks(args.command).await }.await)
}

pub async fn inbound(conn: &Connection, args: InboundArgs) -> i32 {
    finish(async { Client::new(conn, &args.org.org)?.inbound(args.command).await }.await)
}

pub async fn hooks(conn: &Connection, args: HooksArgs) -> i32 {
    finish(
        async {
            let scope = args.scope.parse()?;
            Client::new(conn, &args.org.org)?.hooks(&scope, args.command).await
        }
        .await,
    )
}

pub async fn deliveries(conn: &Connection, args: DeliveriesArgs) -> i32 {
    finish(
        async {
            let scope = args.scope.parse()?;
            Client::new(conn, &args.org.org)?.deliveries(&scope, args.command).await
        }
        .await,
    )
}

pub async fn events(conn: &Connection, args: EventsArgs) -> i32 {
    finish(async { Client::new(conn, &args.org.org)?.events(args.command).await }.await)
}

fn finish(result: Outcome) -> i32 {
    match result {
        Ok(()) => 0,
        Err(f) => f.report(),
    }
}

struct Client {
    http: reqwest::Client,
    /// `<server>/api`.
    api: Url,
    /// `<server>/api/orgs/<org>`.
    base: Url,
    /// The organization, for the routes that are not below `/api/orgs/<org>` (stack and environment hooks).
    org: String,
    token: String,
    output: Output,
}

impl Client {
    fn new(conn: &Connection, org: &str) -> Outcome<Client> {
        let token = conn.token.as_deref().map(str::trim).filter(|t| !t.is_empty()).ok_or_else(|| {
            Failure::Usage("no API token: pass --token or set PIPEHOOK_TOKEN (see `pipehook token create`)".into())
        })?;
        let mut api = Url::parse(&conn.server)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| Failure::Usage(format!("--server: '{}' is not an http:// URL", conn.server)))?;
        api.path_segments_mut()
            .map_err(|_| Failure::Usage(format!("--server: '{}' cannot be a base URL", conn.server)))?
            .pop_if_empty()
            .push("api");
        let mut base = api.clone();
        if let Ok(mut path) = base.path_segments_mut() {
            path.extend(["orgs", org]);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("pipehook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Transport(format!("cannot create the HTTP client: {e}")))?;
        Ok(Client { http, api, base, org: org.to_owned(), token: token.to_owned(), output: conn.output })
    }

    /// The URL of `segments` below the organization; each segment is percent-encoded, so a name can never
    /// change the path's structure.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// The URL of `segments` below `/api` (each percent-encoded), for routes outside the organization's.
    fn api_url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.api.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends a request and returns the JSON of a successful answer (`null` for an empty one). Error answers
    /// become [`Failure::Server`] with the message of the `{"code","message"}` body.
    async fn call(&self, method: Method, url: Url, body: Option<Vec<u8>>) -> Outcome<Value> {
        Ok(self.send(method, url, body).await?.1)
    }

    /// [`Client::call`], with the status of the successful answer.
    async fn send(&self, method: Method, url: Url, body: Option<Vec<u8>>) -> Outcome<(StatusCode, Value)> {
        let (status, _, json) = self.exchange(method, url, body, &[]).await?;
        Ok((status, json))
    }

    /// [`Client::send`] with extra request headers, returning the answer's headers too.
    async fn exchange(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        headers: &[(&str, String)],
    ) -> Outcome<(StatusCode, reqwest::header::HeaderMap, Value)> {
        let mut req = self.http.request(method, url.clone()).header("authorization", format!("token {}", self.token));
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body);
        }
        let res = req.send().await.map_err(|e| Failure::Transport(format!("cannot reach {url}: {}", cause(&e))))?;
        let status = res.status();
        let answer_headers = res.headers().clone();
        let text = res.text().await.map_err(|e| Failure::Transport(format!("reading the answer: {}", cause(&e))))?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        if !status.is_success() {
            let message =
                json.as_ref().and_then(|v| v.get("message")).and_then(Value::as_str).map(str::to_owned).unwrap_or_else(
                    || {
                        let t = text.trim();
                        if t.is_empty() {
                            status.canonical_reason().unwrap_or("error").to_owned()
                        } else {
                            t.lines().next().unwrap_or(t).to_owned()
                        }
                    },
                );
            return Err(Failure::Server { status, message });
        }
        if text.trim().is_empty() {
            return Ok((status, answer_headers, Value::Null));
        }
        let json = json.ok_or_else(|| Failure::Transport(format!("the server's answer from {url} is not JSON")))?;
        Ok((status, answer_headers, json))
    }

    /// A GET whose successful answer is text (a log), with error answers as in [`Client::exchange`].
    async fn text(&self, url: Url) -> Outcome<String> {
        let req = self.http.get(url.clone()).header("authorization", format!("token {}", self.token));
        let res = req.send().await.map_err(|e| Failure::Transport(format!("cannot reach {url}: {}", cause(&e))))?;
        let status = res.status();
        let text = res.text().await.map_err(|e| Failure::Transport(format!("reading the answer: {}", cause(&e))))?;
        if !status.is_success() {
            let json: Option<Value> = serde_json::from_str(&text).ok();
            let message = json
                .as_ref()
                .and_then(|v| v.get("message"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| text.trim().lines().next().map(str::to_owned))
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
            return Err(Failure::Server { status, message });
        }
        Ok(text)
    }

    async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> Outcome<Value> {
        self.call(Method::GET, self.url(segments, query), None).await
    }

    fn print_json(&self, v: &Value) {
        outln!("{}", serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()));
    }

    async fn pipelines(&self, command: PipelinesCommand) -> Outcome {
        match command {
            PipelinesCommand::List => {
                // Every page, so that the listing is complete however many pipelines there are.
                let mut all = Vec::new();
                let mut cursor: Option<String> = None;
                loop {
                    let query: Vec<(&str, String)> = cursor.iter().map(|c| ("cursor", c.clone())).collect();
                    let page = self.get(&["pipelines"], &query).await?;
                    all.extend(page["pipelines"].as_array().cloned().unwrap_or_default());
                    match page.get("nextCursor").and_then(Value::as_str) {
                        Some(c) => cursor = Some(c.to_owned()),
                        None => break,
                    }
                }
                match self.output {
                    Output::Json => self.print_json(&json!({ "pipelines": all })),
                    Output::Table => print_table(
                        &["NAME", "VERSION", "MODE", "CREATED", "UPDATED"],
                        all.iter()
                            .map(|p| {
                                vec![
                                    text(&p["name"]),
                                    text(&p["version"]),
                                    text(&p["executionMode"]),
                                    time(&p["created"]),
                                    time(&p["updated"]),
                                ]
                            })
                            .collect(),
                    ),
                }
            }
            PipelinesCommand::Get { name } => {
                let p = self.get(&["pipelines", &name], &[]).await?;
                match self.output {
                    Output::Json => self.print_json(&p),
                    Output::Table => print_pipeline(&p),
                }
            }
            PipelinesCommand::Create { file } => {
                let (body, _) = read_declaration(&file)?;
                let p = self.call(Method::POST, self.url(&["pipelines"], &[]), Some(body)).await?;
                match self.output {
                    Output::Json => self.print_json(&p),
                    Output::Table => {
                        outln!("created pipeline {} (version {})", text(&p["name"]), text(&p["version"]))
                    }
                }
            }
            PipelinesCommand::Update { file } => {
                let (body, name) = read_declaration(&file)?;
                let p = self.call(Method::PUT, self.url(&["pipelines", &name], &[]), Some(body)).await?;
                match self.output {
                    Output::Json => self.print_json(&p),
                    Output::Table => {
                        outln!("updated pipeline {} (version {})", text(&p["name"]), text(&p["version"]))
                    }
                }
            }
            PipelinesCommand::Delete { name } => {
                self.call(Method::DELETE, self.url(&["pipelines", &name], &[]), None).await?;
                match self.output {
                    Output::Json => self.print_json(&json!({ "deleted": name })),
                    Output::Table => outln!("deleted pipeline {name}"),
                }
            }
        }
        Ok(())
    }

    async fn executions(&self, command: ExecutionsCommand) -> Outcome {
        match command {
            ExecutionsCommand::List { pipeline, limit } => {
                let page = self.get(&["pipelines", &pipeline, "executions"], &[("limit", limit.to_string())]).await?;
                match self.output {
                    Output::Json => self.print_json(&page),
                    Output::Table => print_table(
                        &["ID", "STATUS", "COMMIT", "VERSION", "TRIGGER", "STARTED", "UPDATED"],
                        page["executions"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|e| {
                                vec![
                                    text(&e["id"]),
                                    execution_status(e),
                                    short_commit(&e["commitId"]),
                                    text(&e["pipelineVersion"]),
                                    text(&e["trigger"]["type"]),
                                    time(&e["startTime"]),
                                    time(&e["lastUpdateTime"]),
                                ]
                            })
                            .collect(),
                    ),
                }
            }
            ExecutionsCommand::Get { pipeline, id } => {
                let e = self.get(&["pipelines", &pipeline, "executions", &id], &[]).await?;
                match self.output {
                    Output::Json => self.print_json(&e),
                    Output::Table => print_execution(&e),
                }
            }
            ExecutionsCommand::Start { pipeline, variables, wait } => {
                let mut vars = Vec::new();
                for v in &variables {
                    let (name, value) = v
                        .split_once('=')
                        .ok_or_else(|| Failure::Usage(format!("--variable '{v}': expected NAME=VALUE")))?;
                    vars.push(json!({"name": name, "value": value}));
                }
                let body = serde_json::to_vec(&json!({ "variables": vars })).unwrap_or_default();
                let url = self.url(&["pipelines", &pipeline, "executions"], &[]);
                let started = self.call(Method::POST, url, Some(body)).await?;
                let id = started["pipelineExecutionId"].as_str().unwrap_or_default().to_owned();
                match self.output {
                    // With --wait, the execution as it ended instead.
                    Output::Json if wait => {}
                    Output::Json => self.print_json(&started),
                    // Only the id, so that a script can capture it.
                    Output::Table => outln!("{}", text(&started["pipelineExecutionId"])),
                }
                if wait {
                    if id.is_empty() {
                        return Err(Failure::Missing("the server's answer has no pipelineExecutionId".into()));
                    }
                    let ended = self.wait_execution(&pipeline, &id).await?;
                    if self.output == Output::Json {
                        self.print_json(&ended);
                    }
                    return execution_ended(&id, &ended);
                }
            }
            ExecutionsCommand::Stop { pipeline, id, abandon, reason } => {
                let body = serde_json::to_vec(&json!({ "abandon": abandon, "reason": reason })).unwrap_or_default();
                let url = self.url(&["pipelines", &pipeline, "executions", &id, "stop"], &[]);
                let stopped = self.call(Method::POST, url, Some(body)).await?;
                match self.output {
                    Output::Json => self.print_json(&stopped),
                    Output::Table => outln!("stop requested for execution {id}"),
                }
            }
        }
        Ok(())
    }

    async fn logs(&self, args: &LogsArgs) -> Outcome {
        let query: Vec<(&str, String)> = args.action.iter().map(|a| ("action", a.clone())).collect();
        let logs_path = ["pipelines", args.pipeline.as_str(), "executions", args.execution.as_str(), "logs"];
        if !args.follow {
            let logs = self.get(&logs_path, &query).await?;
            match self.output {
                Output::Json => self.print_json(&logs),
                Output::Table => {
                    let mut printer = LogPrinter::new(args.action.is_none(), Output::Table);
                    printer.show(&logs);
                    printer.finish();
                }
            }
            return Ok(());
        }
        let execution_path = ["pipelines", args.pipeline.as_str(), "executions", args.execution.as_str()];
        let mut printer = LogPrinter::new(args.action.is_none(), self.output);
        loop {
            // The status is read before the logs: once it says the execution ended, the logs read after it are
            // complete, so nothing is missed on the last round.
            let execution = self.get(&execution_path, &[]).await?;
            let logs = self.get(&logs_path, &query).await?;
            printer.show(&logs);
            if !running(&execution) {
                printer.finish();
                return execution_ended(&args.execution, &execution);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Polls an execution every second until it ends and returns it as it ended. Says once (on standard error)
    /// when it waits behind another execution.
    async fn wait_execution(&self, pipeline: &str, id: &str) -> Outcome<Value> {
        let mut said_waiting = false;
        loop {
            let e = self.get(&["pipelines", pipeline, "executions", id], &[]).await?;
            if !running(&e) {
                return Ok(e);
            }
            if let (Some(behind), false) = (e["waitingFor"].as_str(), said_waiting) {
                errln!("pipehook: execution {id} is waiting behind execution {behind}");
                said_waiting = true;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn webhooks(&self, command: WebhooksCommand) -> Outcome {
        match command {
            WebhooksCommand::List => {
                let mut all = Vec::new();
                let mut cursor: Option<String> = None;
                loop {
                    let query: Vec<(&str, String)> = cursor.iter().map(|c| ("cursor", c.clone())).collect();
                    let page = self.get(&["webhooks"], &query).await?;
                    all.extend(page["webhooks"].as_array().cloned().unwrap_or_default());
                    match page.get("nextCursor").and_then(Value::as_str) {
                        Some(c) => cursor = Some(c.to_owned()),
                        None => break,
                    }
                }
                match self.output {
                    Output::Json => self.print_json(&json!({ "webhooks": all })),
                    Output::Table => print_table(
                        &["NAME", "PIPELINE", "AUTHENTICATION", "RULES", "LAST TRIGGERED", "URL"],
                        all.iter()
                            .map(|w| {
                                let d = &w["definition"];
                                vec![
                                    text(&w["name"]),
                                    text(&d["targetPipeline"]),
                                    text(&d["authentication"]),
                                    d["filters"].as_array().map_or(0, Vec::len).to_string(),
                                    time(&w["lastTriggered"]),
                                    text(&w["url"]),
                                ]
                            })
                            .collect(),
                    ),
                }
            }
            WebhooksCommand::Get { name } => {
                let w = self.get(&["webhooks", &name], &[]).await?;
                match self.output {
                    Output::Json => self.print_json(&w),
                    Output::Table => print_webhook(&w),
                }
            }
            WebhooksCommand::Put { file, name } => {
                let (body, doc) = read_json(&file)?;
                let definition = doc.get("webhook").filter(|w| w.is_object()).unwrap_or(&doc);
                let name = match (name, definition.get("name").and_then(Value::as_str)) {
                    (Some(name), _) => name,
                    (None, Some(name)) => name.to_owned(),
                    (None, None) => {
                        return Err(Failure::Usage(format!(
                            "{}: the definition has no \"name\"; give the webhook's name after --file",
                            file.display()
                        )))
                    }
                };
                let (status, w) = self.send(Method::PUT, self.url(&["webhooks", &name], &[]), Some(body)).await?;
                match self.output {
                    Output::Json => self.print_json(&w),
                    Output::Table => {
                        let done = if status == StatusCode::CREATED { "created" } else { "updated" };
                        outln!("{done} webhook {}", text(&w["name"]));
                        outln!("URL: {}", text(&w["url"]));
                        previous_secret_note(&w);
                    }
                }
            }
            WebhooksCommand::Delete { name } => {
                self.call(Method::DELETE, self.url(&["webhooks", &name], &[]), None).await?;
                match self.output {
                    Output::Json => self.print_json(&json!({ "deleted": name })),
                    Output::Table => outln!("deleted webhook {name}"),
                }
            }
            WebhooksCommand::Register { name } => {
                let w = self.call(Method::POST, self.url(&["webhooks", &name, "register"], &[]), None).await?;
                match self.output {
                    Output::Json => self.print_json(&w),
                    Output::Table => outln!("registered webhook {name} with the git host"),
                }
            }
            WebhooksCommand::RevokePreviousSecret { name } => {
                let w = self
                    .call(Method::POST, self.url(&["webhooks", &name, "revoke-previous-secret"], &[]), None)
                    .await?;
                match self.output {
                    Output::Json => self.print_json(&w),
                    Output::Table => outln!("webhook {name}: only the current secret is accepted now"),
                }
            }
            WebhooksCommand::Deregister { name } => {
                let w = self.call(Method::POST, self.url(&["webhooks", &name, "deregister"], &[]), None).await?;
                match self.output {
                    Output::Json => self.print_json(&w),
                    Output::Table => outln!("deregistered webhook {name} from the git host"),
                }
            }
            WebhooksCommand::Explain { name, payload, event } => {
                let (body, _) = read_json(&payload)?;
                let query: Vec<(&str, String)> = event.iter().map(|e| ("event", e.clone())).collect();
                let url = self.url(&["webhooks", &name, "explain"], &query);
                let explained = self.call(Method::POST, url, Some(body)).await?;
                match self.output {
                    Output::Json => self.print_json(&explained),
                    Output::Table => print_explanation(&explained),
                }
            }
        }
        Ok(())
    }

    async fn inbound(&self, command: InboundCommand) -> Outcome {
        match command {
            InboundCommand::List { filter, limit } => {
                let mut query = filter.query();
                query.push(("limit", limit.to_string()));
                let page = self.get(&["inbound"], &query).await?;
                match self.output {
                    Output::Json => self.print_json(&page),
                    Output::Table => print_table(
                        &INBOUND_COLUMNS,
                        page["requests"].as_array().into_iter().flatten().map(inbound_row).collect(),
                    ),
                }
            }
            InboundCommand::Get { id } => {
                let r = self.get(&["inbound", &id], &[]).await?;
                match self.output {
                    Output::Json => self.print_json(&r),
                    Output::Table => print_inbound(&r),
                }
            }
            InboundCommand::Replay { id } => {
                let r = self.call(Method::POST, self.url(&["inbound", &id, "replay"], &[]), None).await?;
                match self.output {
                    Output::Json => self.print_json(&r),
                    Output::Table => {
                        let execution = match r["pipelineExecutionId"].as_str() {
                            Some(e) => format!(", execution {e}"),
                            None => String::new(),
                        };
                        outln!("replayed {id} as {}: {}{execution}", text(&r["requestId"]), text(&r["verdict"]));
                    }
                }
            }
            InboundCommand::Tail { filter } => return self.tail(&filter).await,
        }
        Ok(())
    }

    /// `inbound tail`: the newest requests, then every second the ones logged since, oldest first, until killed.
    async fn tail(&self, filter: &InboundFilter) -> Outcome {
        let mut query = filter.query();
        query.push(("limit", TAIL_FIRST.to_string()));
        let first = self.get(&["inbound"], &query).await?;
        let rows = first["requests"].as_array().cloned().unwrap_or_default();
        let mut tail = Tail::new(&rows, Instant::now());
        if self.output == Output::Table {
            outln!("{}", tail_line(INBOUND_COLUMNS.iter().map(|c| c.to_string()).collect()));
        }
        for r in rows.iter().rev() {
            self.print_tailed(r);
        }
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut new = Vec::new();
            let mut cursor: Option<String> = None;
            'pages: loop {
                let mut query = filter.query();
                query.push(("limit", TAIL_PAGE.to_string()));
                query.extend(cursor.iter().map(|c| ("cursor", c.clone())));
                let page = self.get(&["inbound"], &query).await?;
                let now = Instant::now();
                for r in page["requests"].as_array().into_iter().flatten() {
                    match tail.see(r["id"].as_str().unwrap_or_default(), now) {
                        Step::New => new.push(r.clone()),
                        Step::Seen => {}
                        Step::Stop => break 'pages,
                    }
                }
                match page.get("nextCursor").and_then(Value::as_str) {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => break,
                }
            }
            tail.end_round();
            for r in new.iter().rev() {
                self.print_tailed(r);
            }
        }
    }

    fn print_tailed(&self, r: &Value) {
        match self.output {
            Output::Json => outln!("{r}"),
            Output::Table => outln!("{}", tail_line(inbound_row(r))),
        }
        term::flush_out();
    }
}

/// An execution's status, or `waiting behind <id>` while it waits for its turn.
fn execution_status(e: &Value) -> String {
    match e["waitingFor"].as_str() {
        Some(behind) => format!("waiting behind {behind}"),
        None => text(&e["status"]),
    }
}

/// A commit id as a table cell: a full hex SHA shortened to 7 characters, anything else as it is.
fn short_commit(v: &Value) -> String {
    match v.as_str() {
        Some(c) if c.len() >= 40 && c.bytes().all(|b| b.is_ascii_hexdigit()) => c[..7].to_owned(),
        _ => text(v),
    }
}

/// Whether an execution has not ended yet.
fn running(execution: &Value) -> bool {
    matches!(execution["status"].as_str(), Some("InProgress" | "Stopping"))
}

/// How a followed or awaited execution ended: said on standard error when it succeeded, a failure otherwise.
fn execution_ended(id: &str, execution: &Value) -> Outcome {
    let status = text(&execution["status"]);
    if status == "Succeeded" {
        errln!("pipehook: execution {id} ended: {status}");
        return Ok(());
    }
    let why = execution["statusSummary"].as_str().map(|s| format!(" ({s})")).unwrap_or_default();
    Err(Failure::Unsuccessful(format!("execution {id} ended: {status}{why}")))
}

/// The outbound-webhook commands: `hooks`, `deliveries`, `events`.
impl Client {
    fn hooks_url(&self, scope: &HookScope, rest: &[&str], query: &[(&str, String)]) -> Url {
        let mut segments = scope.segments(&self.org);
        segments.extend(rest);
        self.api_url(&segments, query)
    }

    async fn hooks(&self, scope: &HookScope, command: HooksCommand) -> Outcome {
        match command {
            HooksCommand::List => {
                let hooks = self.call(Method::GET, self.hooks_url(scope, &[], &[]), None).await?;
                match self.output {
                    Output::Json => self.print_json(&hooks),
                    Output::Table => print_table(
                        &["NAME", "DISPLAY NAME", "ACTIVE", "FORMAT", "SECRET", "KINDS", "HEALTH", "URL"],
                        hooks.as_array().into_iter().flatten().map(hook_row).collect(),
                    ),
                }
            }
            HooksCommand::Get { name } => {
                let h = self.call(Method::GET, self.hooks_url(scope, &[&name], &[]), None).await?;
                match self.output {
                    Output::Json => self.print_json(&h),
                    Output::Table => print_hook(&h, scope, &self.org),
                }
            }
            HooksCommand::Create { name, file, url, display_name, secret_env, format, filters, groups, inactive } => {
                let body = match (file, url) {
                    (Some(file), _) => {
                        let (_, doc) = read_json(&file)?;
                        hook_from_file(doc, &file, name.as_deref(), scope, &self.org)?
                    }
                    (None, Some(url)) => {
                        let name = name.ok_or_else(|| {
                            Failure::Usage("give the hook's name: pipehook hooks create NAME --url URL".into())
                        })?;
                        let flags = HookFlags { display_name, secret_env, format, filters, groups, inactive };
                        hook_from_flags(&name, &url, flags, scope, &self.org, &|k| std::env::var(k).ok())?
                    }
                    (None, None) => {
                        return Err(Failure::Usage(
                            "give --file FILE (a Webhook JSON), or NAME --url URL to create a hook".into(),
                        ))
                    }
                };
                let body = serde_json::to_vec(&body).unwrap_or_default();
                let h = self.call(Method::POST, self.hooks_url(scope, &[], &[]), Some(body)).await?;
                hook_warnings(&h);
                match self.output {
                    Output::Json => self.print_json(&h),
                    Output::Table => outln!(
                        "created hook {} ({}) -> {}",
                        text(&h["name"]),
                        scope.describe(&self.org),
                        text(&h["payloadUrl"])
                    ),
                }
            }
            HooksCommand::Update { name, file } => {
                let (body, doc) = read_json(&file)?;
                if !doc.is_object() {
                    return Err(Failure::Usage(format!("{}: a Webhook must be a JSON object", file.display())));
                }
                let h = self.call(Method::PATCH, self.hooks_url(scope, &[&name], &[]), Some(body)).await?;
                hook_warnings(&h);
                match self.output {
                    Output::Json => self.print_json(&h),
                    Output::Table => outln!("updated hook {} ({})", text(&h["name"]), scope.describe(&self.org)),
                }
            }
            HooksCommand::Delete { name } => {
                self.call(Method::DELETE, self.hooks_url(scope, &[&name], &[]), None).await?;
                match self.output {
                    Output::Json => self.print_json(&json!({ "deleted": name })),
                    Output::Table => outln!("deleted hook {name} ({})", scope.describe(&self.org)),
                }
            }
            HooksCommand::Ping { name } => {
                let a = self.call(Method::POST, self.hooks_url(scope, &[&name, "ping"], &[]), None).await?;
                match self.output {
                    Output::Json => self.print_json(&a),
                    Output::Table => print_answer("ping", &name, &a),
                }
                return accepted("ping", &name, &a);
            }
        }
        Ok(())
    }

    async fn deliveries(&self, scope: &HookScope, command: DeliveriesCommand) -> Outcome {
        match command {
            DeliveriesCommand::List { hook, limit, before } => {
                let mut query = vec![("limit", limit.to_string())];
                query.extend(before.map(|b| ("before", b.to_string())));
                let url = self.hooks_url(scope, &[&hook, "deliveries"], &query);
                let (_, headers, list) = self.exchange(Method::GET, url, None, &[]).await?;
                let next = headers.get("pipehook-next-before").and_then(|v| v.to_str().ok()).map(str::to_owned);
                match self.output {
                    Output::Json => {
                        let next = next.as_deref().and_then(|n| n.parse::<i64>().ok());
                        self.print_json(&json!({ "deliveries": list, "nextBefore": next }))
                    }
                    Output::Table => {
                        print_table(
                            &DELIVERY_COLUMNS,
                            list.as_array().into_iter().flatten().map(attempt_row).collect(),
                        );
                        if let Some(n) = next {
                            errln!("pipehook: more attempts: add --before {n}");
                        }
                    }
                }
            }
            DeliveriesCommand::Get { hook, delivery_id, attempt } => {
                check_delivery_id(&hook, &delivery_id)?;
                let url = self.hooks_url(scope, &[&hook, "deliveries", &delivery_id], &[]);
                let d = self.call(Method::GET, url, None).await?;
                let attempts = d["attempts"].as_array().cloned().unwrap_or_default();
                let shown = match attempt {
                    None => attempts.last(),
                    Some(n) => Some(attempts.iter().find(|a| a["attempt"].as_i64() == Some(n)).ok_or_else(|| {
                        Failure::Missing(format!(
                            "delivery {delivery_id} of hook {hook} has no attempt {n} (it has {})",
                            attempts.len()
                        ))
                    })?),
                };
                match (self.output, attempt, shown) {
                    (Output::Json, Some(_), Some(a)) => self.print_json(a),
                    (Output::Json, _, _) => self.print_json(&d),
                    (Output::Table, _, shown) => print_delivery(&d, shown),
                }
            }
            DeliveriesCommand::Redeliver { hook, delivery_id } => {
                check_delivery_id(&hook, &delivery_id)?;
                let url = self.hooks_url(scope, &[&hook, "deliveries", &delivery_id, "redeliver"], &[]);
                let a = self.call(Method::POST, url, None).await?;
                match self.output {
                    Output::Json => self.print_json(&a),
                    Output::Table => print_answer("redelivery", &hook, &a),
                }
                return accepted("redelivery", &hook, &a);
            }
        }
        Ok(())
    }

    async fn events(&self, command: EventsCommand) -> Outcome {
        match command {
            EventsCommand::Publish { kind, payload_file, payload, project, stack, env, idempotency_key } => {
                let payload = match (payload_file, payload) {
                    (Some(file), _) => {
                        let (_, doc) = read_json(&file)?;
                        if !doc.is_object() {
                            return Err(Failure::Usage(format!(
                                "--payload-file {}: the payload must be a JSON object",
                                file.display()
                            )));
                        }
                        doc
                    }
                    (None, Some(text)) => match serde_json::from_str::<Value>(&text) {
                        Ok(v) if v.is_object() => v,
                        Ok(_) => return Err(Failure::Usage("--payload: the payload must be a JSON object".into())),
                        Err(e) => return Err(Failure::Usage(format!("--payload is not valid JSON: {e}"))),
                    },
                    (None, None) => json!({}),
                };
                if kind.trim().is_empty() {
                    return Err(Failure::Usage("--kind: give an event kind, e.g. update_succeeded".into()));
                }
                if stack.is_some() && project.is_none() {
                    return Err(Failure::Usage("--stack needs --project".into()));
                }
                let mut headers = Vec::new();
                if let Some(key) = idempotency_key {
                    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
                        return Err(Failure::Usage(
                            "--idempotency-key: use visible ASCII characters, without spaces".into(),
                        ));
                    }
                    headers.push(("idempotency-key", key));
                }
                let mut body = json!({ "kind": kind, "payload": payload });
                for (field, value) in [("projectName", project), ("stackName", stack), ("envName", env)] {
                    if let Some(v) = value {
                        body[field] = json!(v);
                    }
                }
                let body = serde_json::to_vec(&body).unwrap_or_default();
                let url = self.url(&["events"], &[]);
                let (_, _, published) = self.exchange(Method::POST, url, Some(body), &headers).await?;
                match self.output {
                    Output::Json => self.print_json(&published),
                    Output::Table => {
                        // Only the id on standard output, so that a script can capture it.
                        outln!("{}", text(&published["id"]));
                        if published["duplicate"].as_bool() == Some(true) {
                            errln!("pipehook: already published with this idempotency key; nothing sent again");
                        } else {
                            errln!("pipehook: {} deliveries queued", text(&published["deliveries"]));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The options of `hooks create NAME --url URL`.
struct HookFlags {
    display_name: Option<String>,
    secret_env: Option<String>,
    format: Option<String>,
    filters: Vec<String>,
    groups: Vec<String>,
    inactive: bool,
}

/// Fills `organizationName` and the scope's names into a body that does not give them.
fn fill_place(body: &mut serde_json::Map<String, Value>, scope: &HookScope, org: &str) {
    let mut fill = |k: &str, v: &str| {
        body.entry(k.to_owned()).or_insert_with(|| json!(v));
    };
    fill("organizationName", org);
    match scope {
        HookScope::Org => {}
        HookScope::Stack { project, stack } => {
            fill("projectName", project);
            fill("stackName", stack);
        }
        HookScope::Env { project, env } => {
            fill("projectName", project);
            fill("envName", env);
        }
    }
}

/// The body of `hooks create --file`: the file's Webhook with its place filled in. The server validates
/// everything else (and says which field is wrong).
fn hook_from_file(
    doc: Value,
    file: &std::path::Path,
    name: Option<&str>,
    scope: &HookScope,
    org: &str,
) -> Outcome<Value> {
    let Value::Object(mut body) = doc else {
        return Err(Failure::Usage(format!("{}: a Webhook must be a JSON object", file.display())));
    };
    match (name, body.get("name").and_then(Value::as_str)) {
        (Some(given), Some(in_file)) if given != in_file => {
            return Err(Failure::Usage(format!(
                "the name {given} disagrees with the name {in_file} in {}",
                file.display()
            )))
        }
        (Some(given), None) => {
            body.insert("name".into(), json!(given));
        }
        (None, None) => {
            return Err(Failure::Usage(format!(
                "{}: the Webhook has no \"name\"; give the hook's name after create",
                file.display()
            )))
        }
        _ => {}
    }
    fill_place(&mut body, scope, org);
    Ok(Value::Object(body))
}

/// What the server says deliveries to a hook will meet (e.g. an address its policy refuses), on stderr so
/// that `--output json` stays parseable.
fn hook_warnings(hook: &Value) {
    for w in hook["warnings"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        eprintln!("pipehook: warning: {w}");
    }
}

/// The body of `hooks create NAME --url URL ...`. The secret comes from the environment variable named by
/// `--secret-env`, read through `env`.
fn hook_from_flags(
    name: &str,
    url: &str,
    flags: HookFlags,
    scope: &HookScope,
    org: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Outcome<Value> {
    let mut body = serde_json::Map::new();
    body.insert("name".into(), json!(name));
    body.insert("displayName".into(), json!(flags.display_name.as_deref().unwrap_or(name)));
    body.insert("payloadUrl".into(), json!(url));
    body.insert("active".into(), json!(!flags.inactive));
    if let Some(var) = flags.secret_env {
        let secret = env(&var).filter(|s| !s.is_empty()).ok_or_else(|| {
            Failure::Usage(format!("--secret-env {var}: the environment variable {var} is not set or empty"))
        })?;
        body.insert("secret".into(), json!(secret));
    }
    if let Some(format) = flags.format {
        body.insert("format".into(), json!(format));
    }
    if !flags.filters.is_empty() {
        body.insert("filters".into(), json!(flags.filters));
    }
    if !flags.groups.is_empty() {
        body.insert("groups".into(), json!(flags.groups));
    }
    fill_place(&mut body, scope, org);
    Ok(Value::Object(body))
}

/// What a hook receives, in one cell: its filters and groups, or `all`.
fn hook_kinds(h: &Value) -> String {
    let list = |k: &str| -> Vec<String> { h[k].as_array().into_iter().flatten().map(text).collect() };
    let (filters, groups) = (list("filters"), list("groups"));
    let mut parts = Vec::new();
    if !filters.is_empty() {
        parts.push(filters.join(","));
    }
    if !groups.is_empty() {
        parts.push(format!("groups:{}", groups.join(",")));
    }
    if parts.is_empty() {
        "all".to_owned()
    } else {
        parts.join(" ")
    }
}

fn yes_no(v: &Value) -> String {
    match v.as_bool() {
        Some(true) => "yes".to_owned(),
        Some(false) => "no".to_owned(),
        None => "-".to_owned(),
    }
}

fn hook_row(h: &Value) -> Vec<String> {
    vec![
        text(&h["name"]),
        text(&h["displayName"]),
        yes_no(&h["active"]),
        text(&h["format"]),
        yes_no(&h["hasSecret"]),
        hook_kinds(h),
        health_cell(h),
        text(&h["payloadUrl"]),
    ]
}

/// A hook's health in a few words: `ok`, `failing (N)` (attempts in a row), `deactivated`, or `-` before any
/// attempt.
fn health_cell(h: &Value) -> String {
    let health = &h["health"];
    let failures = health["consecutiveFailures"].as_i64().unwrap_or(0);
    if h["disabledReason"].is_string() {
        "deactivated".to_owned()
    } else if failures > 0 {
        format!("failing ({failures})")
    } else if health["lastSuccess"].is_i64() {
        "ok".to_owned()
    } else {
        "-".to_owned()
    }
}

/// A hook's health as `hooks get` shows it, one line each.
fn health_lines(h: &Value) -> Vec<String> {
    let health = &h["health"];
    if !health.is_object() {
        return Vec::new();
    }
    let when = |v: &Value| if v.is_i64() { seconds(v) } else { "never".to_owned() };
    let failures = health["consecutiveFailures"].as_i64().unwrap_or(0);
    let state = match (failures, health["lastSuccess"].is_i64() || health["lastFailure"].is_i64()) {
        (0, false) => "no delivery attempts yet".to_owned(),
        (0, true) => "ok (the last attempt succeeded)".to_owned(),
        (n, _) => {
            let since = health["failingSince"]
                .as_i64()
                .map(|_| format!(", failing since {}", seconds(&health["failingSince"])));
            format!("failing: {n} attempt{} in a row{}", if n == 1 { "" } else { "s" }, since.unwrap_or_default())
        }
    };
    vec![
        format!("Health:    {state}"),
        format!("Succeeded: {}", when(&health["lastSuccess"])),
        format!("Failed:    {}", when(&health["lastFailure"])),
    ]
}

fn print_hook(h: &Value, scope: &HookScope, org: &str) {
    outln!("Name:      {}", text(&h["name"]));
    outln!("Display:   {}", text(&h["displayName"]));
    outln!("Scope:     {}", scope.describe(org));
    outln!("URL:       {}", text(&h["payloadUrl"]));
    match h["disabledReason"].as_str() {
        Some(reason) => outln!("Active:    {} (deactivated: {reason})", yes_no(&h["active"])),
        None => outln!("Active:    {}", yes_no(&h["active"])),
    }
    outln!("Format:    {}", text(&h["format"]));
    let secret = if h["hasSecret"].as_bool() == Some(true) { "set (never shown)" } else { "none (unsigned)" };
    outln!("Secret:    {secret}");
    outln!("Kinds:     {}", hook_kinds(h));
    for line in health_lines(h) {
        outln!("{line}");
    }
}

/// Unix seconds as RFC 3339 (UTC).
fn seconds(v: &Value) -> String {
    v.as_i64().map_or_else(|| "-".to_owned(), |s| Timestamp(s.saturating_mul(1000)).to_rfc3339())
}

/// A response code as a cell: 0 means no answer (refused, timed out, unreachable).
fn response(a: &Value) -> String {
    match a["responseCode"].as_i64() {
        Some(0) => "none".to_owned(),
        _ => text(&a["responseCode"]),
    }
}

/// The columns of `deliveries list`: one attempt a row, with its delivery's id, event kind, status and next retry.
const DELIVERY_COLUMNS: [&str; 8] =
    ["DELIVERY", "KIND", "STATUS", "ATTEMPT", "TIME", "RESPONSE", "NEXT RETRY", "ERROR"];

/// An attempt's number within its delivery, with why it was made when it was not the schedule: `2`,
/// `3 (redeliver)`, `1 (ping)`.
fn attempt_number(a: &Value) -> String {
    match a["trigger"].as_str() {
        Some("scheduled") | None => text(&a["attempt"]),
        Some(trigger) => format!("{} ({trigger})", text(&a["attempt"])),
    }
}

fn attempt_row(a: &Value) -> Vec<String> {
    vec![
        text(&a["id"]),
        text(&a["kind"]),
        text(&a["deliveryStatus"]),
        attempt_number(a),
        seconds(&a["timestamp"]),
        response(a),
        seconds(&a["nextRetry"]),
        text(&a["error"]),
    ]
}

/// Whether a ping or redelivery got a 2xx; a failure (exit 1) saying why otherwise.
fn accepted(what: &str, hook: &str, a: &Value) -> Outcome {
    if a["responseCode"].as_i64().is_some_and(|c| (200..300).contains(&c)) {
        return Ok(());
    }
    let why = a["error"].as_str().map_or_else(|| format!("response {}", response(a)), str::to_owned);
    Err(Failure::Unsuccessful(format!("{what} of hook {hook} failed: {why}")))
}

/// Deliveries are named by their id (a UUID), never by a number: a number is a mistake worth saying so.
fn check_delivery_id(hook: &str, id: &str) -> Outcome {
    if id.is_empty() || id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Failure::Usage(format!(
            "DELIVERY_ID '{id}': deliveries are named by their id, as in the DELIVERY column of \
             `pipehook deliveries list {hook}`"
        )));
    }
    Ok(())
}

/// `deliveries get`: the delivery, its attempts, and `shown` in full.
fn print_delivery(d: &Value, shown: Option<&Value>) {
    outln!("Delivery:  {}", text(&d["id"]));
    outln!("Kind:      {}", text(&d["kind"]));
    match d["nextRetry"].as_i64() {
        Some(_) => outln!("Status:    {} (next attempt at {})", text(&d["status"]), seconds(&d["nextRetry"])),
        None => outln!("Status:    {}", text(&d["status"])),
    }
    let attempts = d["attempts"].as_array().cloned().unwrap_or_default();
    outln!();
    if attempts.is_empty() {
        outln!("No attempts yet.");
        return;
    }
    let rows = attempts
        .iter()
        .map(|a| {
            vec![attempt_number(a), seconds(&a["timestamp"]), response(a), text(&a["duration"]), text(&a["error"])]
        })
        .collect();
    print_table(&["ATTEMPT", "TIME", "RESPONSE", "DURATION MS", "ERROR"], rows);
    if let Some(a) = shown {
        outln!();
        print_attempt(a);
    }
}

/// The outcome of a ping or a redelivery: the receiver's answer, with its body when it failed.
fn print_answer(what: &str, hook: &str, a: &Value) {
    let ok = a["responseCode"].as_i64().is_some_and(|c| (200..300).contains(&c));
    outln!(
        "{what} of hook {hook} to {}: response {} in {} ms ({}; delivery {}, attempt {})",
        text(&a["requestUrl"]),
        response(a),
        text(&a["duration"]),
        if ok { "delivered" } else { "FAILED" },
        text(&a["id"]),
        text(&a["attempt"]),
    );
    if !ok {
        let body = a["responseBody"].as_str().unwrap_or_default().trim();
        if !body.is_empty() {
            outln!("{body}");
        }
    }
}

fn print_attempt(a: &Value) {
    outln!("Attempt:   {} ({})", text(&a["attempt"]), text(&a["trigger"]));
    outln!("Delivery:  {}", text(&a["id"]));
    outln!("Kind:      {}", text(&a["kind"]));
    outln!("Time:      {}", seconds(&a["timestamp"]));
    outln!("Duration:  {} ms", text(&a["duration"]));
    outln!("URL:       {}", text(&a["requestUrl"]));
    outln!("Response:  {}", response(a));
    if let Some(error) = a["error"].as_str() {
        outln!("Error:     {error}");
    }
    let block = |title: &str, v: &Value| {
        let body = v.as_str().unwrap_or_default();
        outln!();
        outln!("{title}:");
        for line in body.lines() {
            outln!("  {line}");
        }
    };
    block("Request headers", &a["requestHeaders"]);
    let payload = a["payload"].as_str().unwrap_or_default();
    let pretty = serde_json::from_str::<Value>(payload)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| payload.to_owned());
    block("Payload", &json!(pretty));
    block("Response headers", &a["responseHeaders"]);
    block("Response body", &a["responseBody"]);
}

/// How many of the newest requests `inbound tail` prints first, and how many it asks for per page afterwards.
const TAIL_FIRST: u32 = 20;
const TAIL_PAGE: u32 = 100;

/// How long `inbound tail` keeps looking below an entry it has printed for entries that appear there later.
/// The log is ordered by a sequence number taken when the request is written, and on PostgreSQL a transaction
/// can commit after a later one, so an entry may become visible below newer ones; such a lag is milliseconds
/// in practice, so a few seconds of overlap finds it without reading the whole log every second.
const TAIL_OVERLAP: Duration = Duration::from_secs(5);

/// What `inbound tail` does with an entry met walking the log newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Not printed before: print it.
    New,
    /// Printed recently: keep walking, an entry that committed late may be below it.
    Seen,
    /// Printed long enough ago (or the oldest entry of the first listing): everything below it is known.
    Stop,
}

/// The entries `inbound tail` has printed, so that each is printed once however the polls overlap.
struct Tail {
    /// Request id → when it was first met.
    seen: HashMap<String, Instant>,
    /// The oldest entry of the first listing: below it is history the command was not asked to print.
    floor: Option<String>,
    /// Ids met in the current round: after it, only they (the new, the recent and the one the walk stopped
    /// at) are needed to stop the next walk, so the rest are forgotten and memory stays bounded.
    walked: HashSet<String>,
}

impl Tail {
    /// The state after printing the first listing (newest first).
    fn new(first: &[Value], now: Instant) -> Self {
        let ids: Vec<String> = first.iter().filter_map(|r| r["id"].as_str().map(str::to_owned)).collect();
        Tail { floor: ids.last().cloned(), seen: ids.into_iter().map(|id| (id, now)).collect(), walked: HashSet::new() }
    }

    fn see(&mut self, id: &str, now: Instant) -> Step {
        self.walked.insert(id.to_owned());
        if self.floor.as_deref() == Some(id) {
            return Step::Stop;
        }
        match self.seen.get(id) {
            None => {
                self.seen.insert(id.to_owned(), now);
                Step::New
            }
            Some(first) if now.duration_since(*first) > TAIL_OVERLAP => Step::Stop,
            Some(_) => Step::Seen,
        }
    }

    fn end_round(&mut self) {
        let walked = std::mem::take(&mut self.walked);
        self.seen.retain(|id, _| walked.contains(id));
    }
}

const INBOUND_COLUMNS: [&str; 6] = ["RECEIVED", "ID", "WEBHOOK", "VERDICT", "EXECUTION", "DETAIL"];

fn inbound_row(r: &Value) -> Vec<String> {
    vec![
        time(&r["receivedAt"]),
        text(&r["id"]),
        text(&r["webhook"]),
        text(&r["verdict"]),
        text(&r["pipelineExecutionId"]),
        inbound_detail(&r["detail"]),
    ]
}

/// A streamed table row: fixed widths, since later rows cannot widen the columns of printed ones.
fn tail_line(cells: Vec<String>) -> String {
    let widths = [20, 36, 20, 15, 36];
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        match widths.get(i) {
            Some(w) => line.push_str(&format!("{cell:<w$}  ")),
            None => line.push_str(cell),
        }
    }
    line.trim_end().to_owned()
}

/// One line saying why a request got its verdict.
fn inbound_detail(detail: &Value) -> String {
    if let Some(rule) = detail.get("failedRule").filter(|r| r.is_object()) {
        return rule_summary(rule);
    }
    if let Some(reason) = detail["reason"].as_str() {
        return reason.to_owned();
    }
    if let Some(first) = detail["firstVerdict"].as_str() {
        return format!("delivery seen before: {first}");
    }
    if let Some(original) = detail["replayOf"].as_str() {
        return format!("replay of {original}");
    }
    String::new()
}

/// A member that the server may spell in camelCase or snake_case.
fn member<'a>(v: &'a Value, camel: &str, snake: &str) -> &'a Value {
    v.get(camel).filter(|m| !m.is_null()).or_else(|| v.get(snake)).unwrap_or(&Value::Null)
}

/// A rule outcome as `<jsonPath>: wanted <value>, found <values>`.
fn rule_summary(rule: &Value) -> String {
    if let Some(error) = rule["error"].as_str() {
        return format!("{}: {error}", text(member(rule, "jsonPath", "json_path")));
    }
    let wanted = rule["wanted"].as_str().map_or_else(|| "anything".to_owned(), str::to_owned);
    format!("{}: wanted {wanted}, found {}", text(member(rule, "jsonPath", "json_path")), found(rule))
}

fn found(rule: &Value) -> String {
    // A rule over the evaluation's cost or time budget found nothing: say why.
    if let Some(error) = rule["error"].as_str() {
        return error.to_owned();
    }
    let nodes: Vec<&str> = rule["found"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    if nodes.is_empty() {
        "nothing".to_owned()
    } else {
        nodes.join(", ")
    }
}

/// Prints only the output not printed before, per action, for `logs` and `logs --follow`.
struct LogPrinter {
    /// Each action's log as last printed, by (stage, action).
    seen: HashMap<(String, String), String>,
    /// Whether to print a `==> Stage/Action <==` line when the output switches to another action.
    headers: bool,
    current: Option<(String, String)>,
    /// Whether the last output left a line unfinished.
    line_open: bool,
    output: Output,
}

impl LogPrinter {
    fn new(headers: bool, output: Output) -> Self {
        Self { seen: HashMap::new(), headers, current: None, line_open: false, output }
    }

    fn show(&mut self, logs: &Value) {
        for a in logs["actions"].as_array().into_iter().flatten() {
            let key = (text(&a["stage"]), text(&a["action"]));
            let log = a["log"].as_str().unwrap_or_default();
            let seen = self.seen.entry(key.clone()).or_default();
            let new = unseen(seen, log);
            if new.is_empty() {
                continue;
            }
            match self.output {
                Output::Json => outln!("{}", json!({"stage": key.0, "action": key.1, "log": new})),
                Output::Table => {
                    if self.headers && self.current.as_ref() != Some(&key) {
                        // A header must start its own line even when the previous action's output did not end one.
                        let gap = if self.line_open { "\n" } else { "" };
                        outln!("{gap}==> {}/{} <==", key.0, key.1);
                    }
                    out!("{new}");
                    self.line_open = !new.ends_with('\n');
                }
            }
            *seen = log.to_owned();
            self.current = Some(key);
        }
        term::flush_out();
    }

    /// Ends an unfinished last line, so that whatever the shell prints next starts on its own line.
    fn finish(&mut self) {
        if self.line_open {
            outln!();
            self.line_open = false;
        }
    }
}

/// The part of `log` after what was printed (`seen`). The server keeps only the head and the tail of a long
/// log, so a log can stop extending the printed one; then everything after their common prefix is new to the
/// reader (which may repeat a few lines of the tail, but never loses any).
fn unseen<'a>(seen: &str, log: &'a str) -> &'a str {
    if let Some(rest) = log.strip_prefix(seen) {
        return rest;
    }
    let common = seen.char_indices().zip(log.chars()).take_while(|((_, a), b)| a == b).last();
    let at = common.map_or(0, |((i, c), _)| i + c.len_utf8());
    &log[at..]
}

/// Reads a JSON file (or standard input for `-`): its bytes as they are, to send, and its parsed value.
fn read_json(file: &PathBuf) -> Outcome<(Vec<u8>, Value)> {
    let body = if file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .map_err(|e| Failure::Usage(format!("cannot read standard input: {e}")))?;
        buf
    } else {
        std::fs::read(file).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", file.display())))?
    };
    let doc: Value = serde_json::from_slice(&body)
        .map_err(|e| Failure::Usage(format!("{} is not valid JSON: {e}", file.display())))?;
    Ok((body, doc))
}

/// Reads a declaration file (or standard input for `-`) and the pipeline name in it. The name is read here
/// only because an update is addressed by it; the server validates everything else.
fn read_declaration(file: &PathBuf) -> Outcome<(Vec<u8>, String)> {
    let (body, doc) = read_json(file)?;
    let decl = doc.get("pipeline").filter(|p| p.is_object()).unwrap_or(&doc);
    let name = decl
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| Failure::Usage(format!("{}: the declaration has no \"name\"", file.display())))?;
    Ok((body, name.to_owned()))
}

/// The causes of a transport failure: reqwest's own message only repeats the URL, while the cause says what
/// went wrong (e.g. "Connection refused").
fn cause(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut source = e.source();
    while let Some(c) = source {
        parts.push(c.to_string());
        source = c.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// A JSON value as table text: strings without quotes, missing values as `-`.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Epoch milliseconds as RFC 3339 (UTC).
fn time(v: &Value) -> String {
    v.as_i64().map_or_else(|| "-".to_owned(), |ms| Timestamp(ms).to_rfc3339())
}

fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        outln!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn print_pipeline(p: &Value) {
    outln!("Name:     {}", text(&p["name"]));
    outln!("Version:  {}", text(&p["version"]));
    outln!("Mode:     {}", text(&p["executionMode"]));
    outln!("Created:  {}", time(&p["created"]));
    outln!("Updated:  {}", time(&p["updated"]));
    outln!();
    let mut rows = Vec::new();
    for stage in p["pipeline"]["stages"].as_array().into_iter().flatten() {
        for action in stage["actions"].as_array().into_iter().flatten() {
            let t = &action["actionTypeId"];
            let detail = action["configuration"]["Command"].as_str().map(str::to_owned).unwrap_or_default();
            rows.push(vec![
                text(&stage["name"]),
                text(&action["name"]),
                format!("{}/{}", text(&t["category"]), text(&t["provider"])),
                action["runOrder"].as_i64().unwrap_or(1).to_string(),
                detail,
            ]);
        }
    }
    print_table(&["STAGE", "ACTION", "TYPE", "RUN ORDER", "COMMAND"], rows);
}

fn print_execution(e: &Value) {
    outln!("Execution: {}", text(&e["id"]));
    outln!("Pipeline:  {} (version {})", text(&e["pipelineName"]), text(&e["pipelineVersion"]));
    match e["waitingFor"].as_str() {
        Some(behind) => outln!("Status:    {} (waiting behind execution {behind})", text(&e["status"])),
        None => outln!("Status:    {}", text(&e["status"])),
    }
    if let Some(commit) = e["commitId"].as_str() {
        outln!("Commit:    {commit}");
    }
    if let Some(summary) = e["statusSummary"].as_str() {
        outln!("Summary:   {summary}");
    }
    outln!("Trigger:   {} ({})", text(&e["trigger"]["type"]), text(&e["trigger"]["detail"]));
    outln!("Started:   {}", time(&e["startTime"]));
    outln!("Updated:   {}", time(&e["lastUpdateTime"]));
    outln!();
    let rows = e["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let detail = match (a["errorCode"].as_str(), a["errorMessage"].as_str(), a["summary"].as_str()) {
                (Some(code), message, _) => format!("{code}: {}", message.unwrap_or_default()),
                (None, _, Some(summary)) => summary.to_owned(),
                _ => String::new(),
            };
            vec![
                text(&a["stage"]),
                text(&a["action"]),
                text(&a["status"]),
                time(&a["startTime"]),
                time(&a["endTime"]),
                detail,
            ]
        })
        .collect();
    print_table(&["STAGE", "ACTION", "STATUS", "STARTED", "ENDED", "DETAIL"], rows);
}

/// On stderr: until when the secret a put replaced is still accepted, and how to end that now.
fn previous_secret_note(w: &Value) {
    if w["previousSecretValidUntil"].is_i64() {
        eprintln!(
            "pipehook: the previous secret stays valid until {}; end that now with: pipehook webhooks \
             revoke-previous-secret {}",
            time(&w["previousSecretValidUntil"]),
            text(&w["name"])
        );
    }
}

fn print_webhook(w: &Value) {
    let d = &w["definition"];
    let c = &d["authenticationConfiguration"];
    let auth = match d["authentication"].as_str() {
        Some("GITHUB_HMAC") => "GITHUB_HMAC (a secret is set; it is never shown)".to_owned(),
        Some("IP") => format!("IP {}", text(&c["AllowedIPRange"])),
        _ => text(&d["authentication"]),
    };
    outln!("Name:       {}", text(&w["name"]));
    outln!("Pipeline:   {} (action {})", text(&d["targetPipeline"]), text(&d["targetAction"]));
    outln!("ARN:        {}", text(&w["arn"]));
    outln!("URL:        {}", text(&w["url"]));
    outln!("Auth:       {auth}");
    outln!("Triggered:  {}", time(&w["lastTriggered"]));
    if let Some(code) = w["errorCode"].as_str() {
        outln!("Error:      {code}: {}", text(&w["errorMessage"]));
    }
    if w["previousSecretValidUntil"].is_i64() {
        outln!("Previous:   the previous secret is accepted until {}", time(&w["previousSecretValidUntil"]));
    }
    let tags: Vec<String> = w["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| format!("{}={}", text(&t["key"]), text(&t["value"])))
        .collect();
    if !tags.is_empty() {
        outln!("Tags:       {}", tags.join(", "));
    }
    outln!();
    let rules = d["filters"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, f)| vec![(i + 1).to_string(), text(&f["jsonPath"]), text(&f["matchEquals"])])
        .collect();
    print_table(&["RULE", "JSONPATH", "MATCH EQUALS"], rules);
}

fn print_explanation(x: &Value) {
    let e = &x["event"];
    let mut event = text(&e["event"]);
    for (label, value) in
        [("ref", member(e, "gitRef", "git_ref")), ("commit", member(e, "commitId", "commit_id")), ("by", &e["actor"])]
    {
        if let Some(v) = value.as_str() {
            event.push_str(&format!(", {label} {v}"));
        }
    }
    outln!("Webhook:   {} (pipeline {})", text(&x["webhook"]), text(&x["pipeline"]));
    if e["event"].is_null() {
        outln!("Event:     unknown (give the event the git host would send, e.g. --event push)");
    } else {
        outln!("Event:     {event} ({})", text(&e["provider"]));
    }
    outln!("Auth:      {} (checked when a real request arrives)", text(&x["authentication"]["type"]));
    outln!("Verdict:   {}", text(&x["verdict"]));
    outln!();
    let rules = x["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                r["index"].as_u64().map_or_else(|| "-".to_owned(), |i| (i + 1).to_string()),
                text(member(r, "jsonPath", "json_path")),
                r["wanted"].as_str().map_or_else(|| "(anything)".to_owned(), str::to_owned),
                found(r),
                if r["passed"].as_bool() == Some(true) { "pass" } else { "FAIL" }.to_owned(),
            ]
        })
        .collect();
    print_table(&["RULE", "JSONPATH", "WANTED", "FOUND", "RESULT"], rules);
}

fn print_inbound(r: &Value) {
    outln!("Request:    {}", text(&r["id"]));
    outln!("Webhook:    {}", text(&r["webhook"]));
    outln!("Received:   {}", time(&r["receivedAt"]));
    outln!("Peer:       {}", text(&r["peer"]));
    outln!("Delivery:   {}", text(&r["deliveryId"]));
    outln!("Verdict:    {}", text(&r["verdict"]));
    outln!("Execution:  {}", text(&r["pipelineExecutionId"]));
    let detail = inbound_detail(&r["detail"]);
    if !detail.is_empty() {
        outln!("Why:        {detail}");
    }
    let rules: Vec<Vec<String>> = r["detail"]["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|rule| {
            vec![
                text(member(rule, "jsonPath", "json_path")),
                rule["wanted"].as_str().map_or_else(|| "(anything)".to_owned(), str::to_owned),
                found(rule),
                if rule["passed"].as_bool() == Some(true) { "pass" } else { "FAIL" }.to_owned(),
            ]
        })
        .collect();
    if !rules.is_empty() {
        outln!();
        print_table(&["JSONPATH", "WANTED", "FOUND", "RESULT"], rules);
    }
    outln!();
    outln!("Headers:");
    for (k, v) in r["headers"].as_object().into_iter().flatten() {
        outln!("  {k}: {}", text(v));
    }
    outln!();
    if let Some(why) = r["bodyOmitted"].as_str() {
        // Unauthenticated requests keep only the body's size and hash.
        let d = &r["detail"];
        match (d["bodyBytes"].as_u64(), d["bodySha256"].as_str()) {
            (Some(n), Some(sha)) => outln!("Body:       not kept ({why}): {n} bytes, SHA-256 {sha}"),
            _ => outln!("Body:       not kept ({why})"),
        }
        return;
    }
    let body = r["body"].as_str().unwrap_or_default();
    let truncated = if r["bodyTruncated"].as_bool() == Some(true) { ", truncated" } else { "" };
    outln!("Body ({} bytes{truncated}):", body.len());
    outln!("{body}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unseen_output() {
        assert_eq!(unseen("", "abc"), "abc");
        assert_eq!(unseen("ab", "abcd"), "cd");
        assert_eq!(unseen("abcd", "abcd"), "");
        // The server truncated the middle: everything after the common head is shown.
        assert_eq!(
            unseen("head\nmiddle\n", "head\n[... 7 bytes truncated ...]\ntail\n"),
            "[... 7 bytes truncated ...]\ntail\n"
        );
        assert_eq!(unseen("é1", "é2"), "2");
        assert_eq!(unseen("x", "y"), "y");
    }

    #[test]
    fn cells() {
        assert_eq!(text(&json!("a")), "a");
        assert_eq!(text(&json!(3)), "3");
        assert_eq!(text(&Value::Null), "-");
        assert_eq!(time(&json!(0)), "1970-01-01T00:00:00Z");
        assert_eq!(time(&Value::Null), "-");
    }

    fn ids(rows: &[&str]) -> Vec<Value> {
        rows.iter().map(|id| json!({ "id": id })).collect()
    }

    /// One poll of `inbound tail` over `log` (newest first, in pages of `page`): what it prints, oldest first.
    fn poll(tail: &mut Tail, log: &[&str], page: usize, now: Instant) -> Vec<String> {
        let mut new = Vec::new();
        'pages: for chunk in log.chunks(page) {
            for id in chunk {
                match tail.see(id, now) {
                    Step::New => new.push(id.to_string()),
                    Step::Seen => {}
                    Step::Stop => break 'pages,
                }
            }
        }
        tail.end_round();
        new.reverse();
        new
    }

    #[test]
    fn tail_prints_each_entry_once() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        // The first listing: c is the newest, a the oldest shown; older entries are history.
        let mut tail = Tail::new(&ids(&["c", "b", "a"]), t0);
        assert_eq!(poll(&mut tail, &["c", "b", "a", "old"], 2, t0 + s), Vec::<String>::new());
        // More new entries than a page: the walk pages back to what it knows.
        let log = ["g", "f", "e", "d", "c", "b", "a", "old"];
        assert_eq!(poll(&mut tail, &log, 2, t0 + 2 * s), ["d", "e", "f", "g"]);
        // An entry that committed late below newer ones (PostgreSQL) is found while they are recent.
        let log = ["h", "g", "f", "late", "e", "d", "c", "b", "a", "old"];
        assert_eq!(poll(&mut tail, &log, 3, t0 + 3 * s), ["late", "h"]);
        assert_eq!(poll(&mut tail, &log, 3, t0 + 4 * s), Vec::<String>::new());
        // Once the overlap has passed, the walk stops at the newest entry printed long enough ago, and only what
        // it walked is remembered.
        let later = t0 + 20 * s;
        let log = ["i", "h", "g", "f", "late", "e", "d", "c", "b", "a", "old"];
        assert_eq!(poll(&mut tail, &log, 3, later), ["i"]);
        assert_eq!(tail.see("h", later), Step::Stop);
        assert!(tail.seen.len() <= 2, "{:?}", tail.seen.keys());
        // Nothing listed at first: everything that appears is new.
        let mut empty = Tail::new(&[], t0);
        assert_eq!(poll(&mut empty, &["b", "a"], 1, t0 + s), ["a", "b"]);
        assert_eq!(poll(&mut empty, &["c", "b", "a"], 1, t0 + 2 * s), ["c"]);
    }

    #[test]
    fn inbound_details() {
        let filtered = json!({"failedRule": {"index": 0, "json_path": "$.ref", "wanted": "refs/heads/develop",
            "found": ["\"refs/heads/master\""], "passed": false}});
        assert_eq!(inbound_detail(&filtered), "$.ref: wanted refs/heads/develop, found \"refs/heads/master\"");
        let nothing = json!({"failedRule": {"jsonPath": "$.x", "wanted": null, "found": []}});
        assert_eq!(inbound_detail(&nothing), "$.x: wanted anything, found nothing");
        assert_eq!(inbound_detail(&json!({"reason": "bad signature"})), "bad signature");
        let over =
            json!({"failedRule": {"jsonPath": "$..x", "found": [], "error": "ran out of the time budget of 2000 ms"}});
        assert_eq!(inbound_detail(&over), "$..x: ran out of the time budget of 2000 ms");
        assert_eq!(found(&over["failedRule"]), "ran out of the time budget of 2000 ms");
        assert_eq!(inbound_detail(&json!({"firstVerdict": "triggered"})), "delivery seen before: triggered");
        assert_eq!(inbound_detail(&json!({"replayOf": "r1", "rules": []})), "replay of r1");
        assert_eq!(inbound_detail(&Value::Null), "");
        assert_eq!(tail_line(vec!["a".into(), "b".into()]), format!("{:<20}  b", "a"));
    }

    #[test]
    fn json_files() {
        let dir = std::env::temp_dir().join(format!("pipehook-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.json");
        std::fs::write(&good, b"{\"name\": \"gh\"}").unwrap();
        assert_eq!(read_json(&good).unwrap().1, json!({"name": "gh"}));
        let bad = dir.join("bad.json");
        std::fs::write(&bad, b"{\"name\": ").unwrap();
        match read_json(&bad) {
            Err(Failure::Usage(m)) => assert!(m.contains("bad.json is not valid JSON"), "{m}"),
            other => panic!("{other:?}"),
        }
        match read_json(&dir.join("missing.json")) {
            Err(Failure::Usage(m)) => assert!(m.starts_with("cannot read ") && m.contains("missing.json"), "{m}"),
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hook_scopes() {
        let scope = |stack: Option<&str>, env: Option<&str>| {
            HookScopeArgs { stack: stack.map(str::to_owned), env: env.map(str::to_owned) }.parse()
        };
        assert_eq!(scope(None, None).unwrap(), HookScope::Org);
        let stack = scope(Some("web/prod"), None).unwrap();
        assert_eq!(stack.segments("acme"), ["stacks", "acme", "web", "prod", "hooks"]);
        assert_eq!(stack.describe("acme"), "stack web/prod");
        let env = scope(None, Some("web/production")).unwrap();
        assert_eq!(env.segments("acme"), ["esc", "environments", "acme", "web", "production", "hooks"]);
        assert_eq!(HookScope::Org.segments("acme"), ["orgs", "acme", "hooks"]);
        for (stack, env) in [(Some("web"), None), (Some("/prod"), None), (Some("web/"), None), (None, Some("a/b/c"))] {
            assert!(matches!(scope(stack, env), Err(Failure::Usage(_))), "{stack:?} {env:?}");
        }
        assert!(matches!(scope(Some("a/b"), Some("c/d")), Err(Failure::Usage(_))));
        // The scope's URL: names are percent-encoded segments below /api.
        let conn = Connection { server: "http://127.0.0.1:1".into(), token: Some("t".into()), output: Output::Table };
        let c = Client::new(&conn, "acme").unwrap();
        let url = c.hooks_url(&stack, &["a b", "deliveries"], &[("limit", "2".into())]);
        assert_eq!(url.as_str(), "http://127.0.0.1:1/api/stacks/acme/web/prod/hooks/a%20b/deliveries?limit=2");
    }

    #[test]
    fn hook_bodies() {
        let flags = || HookFlags {
            display_name: None,
            secret_env: Some("SECRET_VAR".into()),
            format: Some("slack".into()),
            filters: vec!["build_failed".into()],
            groups: vec![],
            inactive: true,
        };
        let env = HookScope::Env { project: "web".into(), env: "prod".into() };
        let set = |k: &str| (k == "SECRET_VAR").then(|| "s3cret".to_owned());
        let body = hook_from_flags("ci", "https://h.example/", flags(), &env, "acme", &set).unwrap();
        assert_eq!(
            body,
            json!({"name": "ci", "displayName": "ci", "payloadUrl": "https://h.example/", "active": false,
                "secret": "s3cret", "format": "slack", "filters": ["build_failed"], "organizationName": "acme",
                "projectName": "web", "envName": "prod"})
        );
        match hook_from_flags("ci", "https://h.example/", flags(), &env, "acme", &|_| Some(String::new())) {
            Err(Failure::Usage(m)) => assert!(m.contains("SECRET_VAR is not set or empty") && !m.contains("s3cret")),
            other => panic!("{other:?}"),
        }
        // A file's own values win; only what it leaves out is filled in.
        let file = std::path::Path::new("h.json");
        let doc = json!({"name": "ci", "organizationName": "acme", "projectName": "web"});
        let stack = HookScope::Stack { project: "web".into(), stack: "dev".into() };
        let body = hook_from_file(doc.clone(), file, None, &stack, "acme").unwrap();
        assert_eq!(body, json!({"name": "ci", "organizationName": "acme", "projectName": "web", "stackName": "dev"}));
        assert_eq!(hook_from_file(doc.clone(), file, Some("ci"), &stack, "acme").unwrap()["name"], "ci");
        assert!(matches!(hook_from_file(doc, file, Some("other"), &stack, "acme"), Err(Failure::Usage(_))));
        assert_eq!(hook_from_file(json!({}), file, Some("n"), &HookScope::Org, "acme").unwrap()["name"], "n");
        assert!(matches!(hook_from_file(json!({}), file, None, &HookScope::Org, "acme"), Err(Failure::Usage(_))));
        assert!(matches!(hook_from_file(json!([]), file, Some("n"), &HookScope::Org, "acme"), Err(Failure::Usage(_))));
    }

    #[test]
    fn attempt_cells() {
        let a = json!({"attempt": 1, "id": "d1", "kind": "ping", "timestamp": 1_714_564_800, "duration": 12,
            "responseCode": 0, "trigger": "ping", "deliveryStatus": "failed", "error": "connection refused"});
        assert_eq!(
            attempt_row(&a),
            ["d1", "ping", "failed", "1 (ping)", "2024-05-01T12:00:00Z", "none", "-", "connection refused"]
        );
        let retrying = json!({"attempt": 2, "id": "d2", "kind": "build_failed", "timestamp": 1_714_564_800,
            "responseCode": 500, "trigger": "scheduled", "deliveryStatus": "retrying", "nextRetry": 1_714_564_860,
            "error": "HTTP 500 Internal Server Error"});
        assert_eq!(
            attempt_row(&retrying),
            [
                "d2",
                "build_failed",
                "retrying",
                "2",
                "2024-05-01T12:00:00Z",
                "500",
                "2024-05-01T12:01:00Z",
                "HTTP 500 Internal Server Error"
            ]
        );
        assert_eq!(hook_kinds(&json!({"filters": [], "groups": []})), "all");
        assert_eq!(hook_kinds(&json!({"filters": ["a", "b"], "groups": ["builds"]})), "a,b groups:builds");
        // Health: nothing yet, ok, failing, deactivated.
        let hook = |health: Value, disabled: Option<&str>| json!({"health": health, "disabledReason": disabled});
        assert_eq!(health_cell(&hook(json!({"consecutiveFailures": 0}), None)), "-");
        assert_eq!(health_cell(&hook(json!({"lastSuccess": 1, "consecutiveFailures": 0}), None)), "ok");
        assert_eq!(health_cell(&hook(json!({"lastSuccess": 1, "consecutiveFailures": 3}), None)), "failing (3)");
        assert_eq!(health_cell(&hook(json!({"consecutiveFailures": 9}), Some("410"))), "deactivated");
        assert!(matches!(accepted("ping", "h", &json!({"responseCode": 204})), Ok(())));
        match accepted("ping", "h", &json!({"responseCode": 0, "error": "refused"})) {
            Err(Failure::Unsuccessful(m)) => assert_eq!(m, "ping of hook h failed: refused"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(check_delivery_id("h", "42"), Err(Failure::Usage(_))));
        assert!(check_delivery_id("h", "6d7c1a52-0000-4000-8000-000000000001").is_ok());
    }

    #[test]
    fn executions_cells() {
        assert_eq!(short_commit(&json!("0123456789abcdef0123456789abcdef01234567")), "0123456");
        assert_eq!(short_commit(&json!("main")), "main");
        assert_eq!(short_commit(&Value::Null), "-");
        assert_eq!(execution_status(&json!({"status": "InProgress", "waitingFor": "e1"})), "waiting behind e1");
        assert_eq!(execution_status(&json!({"status": "Failed"})), "Failed");
        assert!(execution_ended("e", &json!({"status": "Succeeded"})).is_ok());
        match execution_ended("e", &json!({"status": "Failed", "statusSummary": "Run: exit 3"})) {
            Err(Failure::Unsuccessful(m)) => assert_eq!(m, "execution e ended: Failed (Run: exit 3)"),
            other => panic!("{other:?}"),
        }
    }

    /// Every command the help tidying names exists, and every command is placed: a new command that is not
    /// would show the other side's options in its help.
    #[test]
    fn help_tidying_places_every_command() {
        let cmd = crate::cli::command();
        cmd.clone().debug_assert();
        let names: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_owned()).collect();
        let client: Vec<&str> = CLIENT_COMMANDS.iter().map(|(n, _)| *n).collect();
        for name in client.iter().chain(SERVER_COMMANDS) {
            assert!(names.iter().any(|n| n == name), "no command {name}: {names:?}");
        }
        for name in &names {
            assert!(
                client.contains(&name.as_str()) || SERVER_COMMANDS.contains(&name.as_str()),
                "add the command {name} to CLIENT_COMMANDS (with examples) or SERVER_COMMANDS in client.rs"
            );
        }
        let ids: Vec<String> = cmd.get_arguments().map(|a| a.get_id().to_string()).collect();
        for id in SERVER_OPTIONS.iter().chain(CLIENT_OPTIONS) {
            assert!(ids.iter().any(|i| i == id), "no global option {id}: {ids:?}");
        }
    }

    #[test]
    fn urls_encode_each_segment() {
        let conn = Connection { server: "http://127.0.0.1:1/".into(), token: Some("t".into()), output: Output::Table };
        let c = Client::new(&conn, "acme").unwrap();
        let url = c.url(&["pipelines", "a/b c"], &[("action", "x&y".into())]);
        assert_eq!(url.as_str(), "http://127.0.0.1:1/api/orgs/acme/pipelines/a%2Fb%20c?action=x%26y");
        let none = Connection { token: None, ..conn.clone() };
        assert!(matches!(Client::new(&none, "acme"), Err(Failure::Usage(_))));
        let bad = Connection { server: "ftp://x".into(), ..conn };
        assert!(matches!(Client::new(&bad, "acme"), Err(Failure::Usage(_))));
    }
}
