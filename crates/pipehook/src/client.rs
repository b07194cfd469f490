//! The client commands (`pipelines`, `executions`, `logs`, `webhooks`, `inbound`): they call a running server's
//! native REST API over HTTP with a token, unlike the administrative commands, which open the database directly.
//!
//! They never load the server configuration, because they run on machines that have none (a laptop, a CI job);
//! everything they need comes from `--server`, `--token` and `--org` or the matching environment variables.
//! Server errors are printed as one line, `pipehook: <status> <message>`, with exit code 1; usage problems
//! (no token, a bad URL, an unreadable file) exit with 2.

use clap::{Args, Subcommand, ValueEnum};
use pipehook_domain::time::Timestamp;
use reqwest::{Method, StatusCode, Url};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
    /// Start an execution and print its id.
    Start {
        /// Pipeline name.
        pipeline: String,
        /// A pipeline variable for this execution, NAME=VALUE (repeatable).
        #[arg(long = "variable", value_name = "NAME=VALUE")]
        variables: Vec<String>,
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
    /// Keep printing new output every second until the execution ends.
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

/// Why a client command failed, and so its exit code.
#[derive(Debug)]
enum Failure {
    /// The command line or the environment is wrong (exit 2).
    Usage(String),
    /// The server answered with an error (exit 1).
    Server { status: StatusCode, message: String },
    /// The server could not be reached or answered nonsense (exit 1).
    Transport(String),
}

impl Failure {
    fn report(&self) -> i32 {
        match self {
            Failure::Usage(m) => {
                eprintln!("pipehook: {m}");
                2
            }
            Failure::Server { status, message } => {
                eprintln!("pipehook: {} {message}", status.as_u16());
                1
            }
            Failure::Transport(m) => {
                eprintln!("pipehook: {m}");
                1
            }
        }
    }
}

type Outcome<T = ()> = Result<T, Failure>;

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

fn finish(result: Outcome) -> i32 {
    match result {
        Ok(()) => 0,
        Err(f) => f.report(),
    }
}

struct Client {
    http: reqwest::Client,
    /// `<server>/api/orgs/<org>`.
    base: Url,
    token: String,
    output: Output,
}

impl Client {
    fn new(conn: &Connection, org: &str) -> Outcome<Client> {
        let token = conn.token.as_deref().map(str::trim).filter(|t| !t.is_empty()).ok_or_else(|| {
            Failure::Usage("no API token: pass --token or set PIPEHOOK_TOKEN (see `pipehook token create`)".into())
        })?;
        let mut base = Url::parse(&conn.server)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| Failure::Usage(format!("--server: '{}' is not an http:// URL", conn.server)))?;
        base.path_segments_mut()
            .map_err(|_| Failure::Usage(format!("--server: '{}' cannot be a base URL", conn.server)))?
            .pop_if_empty()
            .extend(["api", "orgs", org]);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("pipehook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Transport(format!("cannot create the HTTP client: {e}")))?;
        Ok(Client { http, base, token: token.to_owned(), output: conn.output })
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

    /// Sends a request and returns the JSON of a successful answer (`null` for an empty one). Error answers
    /// become [`Failure::Server`] with the message of the `{"code","message"}` body.
    async fn call(&self, method: Method, url: Url, body: Option<Vec<u8>>) -> Outcome<Value> {
        Ok(self.send(method, url, body).await?.1)
    }

    /// [`Client::call`], with the status of the successful answer.
    async fn send(&self, method: Method, url: Url, body: Option<Vec<u8>>) -> Outcome<(StatusCode, Value)> {
        let mut req = self.http.request(method, url.clone()).header("authorization", format!("token {}", self.token));
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body);
        }
        let res = req.send().await.map_err(|e| Failure::Transport(format!("cannot reach {url}: {}", cause(&e))))?;
        let status = res.status();
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
            return Ok((status, Value::Null));
        }
        let json = json.ok_or_else(|| Failure::Transport(format!("the server's answer from {url} is not JSON")))?;
        Ok((status, json))
    }

    async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> Outcome<Value> {
        self.call(Method::GET, self.url(segments, query), None).await
    }

    fn print_json(&self, v: &Value) {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()));
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
                        println!("created pipeline {} (version {})", text(&p["name"]), text(&p["version"]))
                    }
                }
            }
            PipelinesCommand::Update { file } => {
                let (body, name) = read_declaration(&file)?;
                let p = self.call(Method::PUT, self.url(&["pipelines", &name], &[]), Some(body)).await?;
                match self.output {
                    Output::Json => self.print_json(&p),
                    Output::Table => {
                        println!("updated pipeline {} (version {})", text(&p["name"]), text(&p["version"]))
                    }
                }
            }
            PipelinesCommand::Delete { name } => {
                self.call(Method::DELETE, self.url(&["pipelines", &name], &[]), None).await?;
                match self.output {
                    Output::Json => self.print_json(&json!({ "deleted": name })),
                    Output::Table => println!("deleted pipeline {name}"),
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
                        &["ID", "STATUS", "VERSION", "TRIGGER", "STARTED", "UPDATED"],
                        page["executions"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|e| {
                                vec![
                                    text(&e["id"]),
                                    text(&e["status"]),
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
            ExecutionsCommand::Start { pipeline, variables } => {
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
                match self.output {
                    Output::Json => self.print_json(&started),
                    // Only the id, so that a script can capture it.
                    Output::Table => println!("{}", text(&started["pipelineExecutionId"])),
                }
            }
            ExecutionsCommand::Stop { pipeline, id, abandon, reason } => {
                let body = serde_json::to_vec(&json!({ "abandon": abandon, "reason": reason })).unwrap_or_default();
                let url = self.url(&["pipelines", &pipeline, "executions", &id, "stop"], &[]);
                let stopped = self.call(Method::POST, url, Some(body)).await?;
                match self.output {
                    Output::Json => self.print_json(&stopped),
                    Output::Table => println!("stop requested for execution {id}"),
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
            let status = text(&execution["status"]);
            let logs = self.get(&logs_path, &query).await?;
            printer.show(&logs);
            if !matches!(status.as_str(), "InProgress" | "Stopping") {
                printer.finish();
                eprintln!("pipehook: execution {} ended: {status}", args.execution);
                return Ok(());
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
                        println!("{done} webhook {}", text(&w["name"]));
                        println!("URL: {}", text(&w["url"]));
                    }
                }
            }
            WebhooksCommand::Delete { name } => {
                self.call(Method::DELETE, self.url(&["webhooks", &name], &[]), None).await?;
                match self.output {
                    Output::Json => self.print_json(&json!({ "deleted": name })),
                    Output::Table => println!("deleted webhook {name}"),
                }
            }
            WebhooksCommand::Register { name } => {
                let w = self.call(Method::POST, self.url(&["webhooks", &name, "register"], &[]), None).await?;
                match self.output {
                    Output::Json => self.print_json(&w),
                    Output::Table => println!("registered webhook {name} with the git host"),
                }
            }
            WebhooksCommand::Deregister { name } => {
                let w = self.call(Method::POST, self.url(&["webhooks", &name, "deregister"], &[]), None).await?;
                match self.output {
                    Output::Json => self.print_json(&w),
                    Output::Table => println!("deregistered webhook {name} from the git host"),
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
                        println!("replayed {id} as {}: {}{execution}", text(&r["requestId"]), text(&r["verdict"]));
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
            println!("{}", tail_line(INBOUND_COLUMNS.iter().map(|c| c.to_string()).collect()));
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
            Output::Json => println!("{r}"),
            Output::Table => println!("{}", tail_line(inbound_row(r))),
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
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
    let wanted = rule["wanted"].as_str().map_or_else(|| "anything".to_owned(), str::to_owned);
    format!("{}: wanted {wanted}, found {}", text(member(rule, "jsonPath", "json_path")), found(rule))
}

fn found(rule: &Value) -> String {
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
                Output::Json => println!("{}", json!({"stage": key.0, "action": key.1, "log": new})),
                Output::Table => {
                    if self.headers && self.current.as_ref() != Some(&key) {
                        // A header must start its own line even when the previous action's output did not end one.
                        let gap = if self.line_open { "\n" } else { "" };
                        println!("{gap}==> {}/{} <==", key.0, key.1);
                    }
                    print!("{new}");
                    self.line_open = !new.ends_with('\n');
                }
            }
            *seen = log.to_owned();
            self.current = Some(key);
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }

    /// Ends an unfinished last line, so that whatever the shell prints next starts on its own line.
    fn finish(&mut self) {
        if self.line_open {
            println!();
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
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn print_pipeline(p: &Value) {
    println!("Name:     {}", text(&p["name"]));
    println!("Version:  {}", text(&p["version"]));
    println!("Mode:     {}", text(&p["executionMode"]));
    println!("Created:  {}", time(&p["created"]));
    println!("Updated:  {}", time(&p["updated"]));
    println!();
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
    println!("Execution: {}", text(&e["id"]));
    println!("Pipeline:  {} (version {})", text(&e["pipelineName"]), text(&e["pipelineVersion"]));
    println!("Status:    {}", text(&e["status"]));
    if let Some(summary) = e["statusSummary"].as_str() {
        println!("Summary:   {summary}");
    }
    println!("Trigger:   {} ({})", text(&e["trigger"]["type"]), text(&e["trigger"]["detail"]));
    println!("Started:   {}", time(&e["startTime"]));
    println!("Updated:   {}", time(&e["lastUpdateTime"]));
    println!();
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

fn print_webhook(w: &Value) {
    let d = &w["definition"];
    let c = &d["authenticationConfiguration"];
    let auth = match d["authentication"].as_str() {
        Some("GITHUB_HMAC") => "GITHUB_HMAC (a secret is set; it is never shown)".to_owned(),
        Some("IP") => format!("IP {}", text(&c["AllowedIPRange"])),
        _ => text(&d["authentication"]),
    };
    println!("Name:       {}", text(&w["name"]));
    println!("Pipeline:   {} (action {})", text(&d["targetPipeline"]), text(&d["targetAction"]));
    println!("ARN:        {}", text(&w["arn"]));
    println!("URL:        {}", text(&w["url"]));
    println!("Auth:       {auth}");
    println!("Triggered:  {}", time(&w["lastTriggered"]));
    if let Some(code) = w["errorCode"].as_str() {
        println!("Error:      {code}: {}", text(&w["errorMessage"]));
    }
    let tags: Vec<String> = w["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| format!("{}={}", text(&t["key"]), text(&t["value"])))
        .collect();
    if !tags.is_empty() {
        println!("Tags:       {}", tags.join(", "));
    }
    println!();
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
    println!("Webhook:   {} (pipeline {})", text(&x["webhook"]), text(&x["pipeline"]));
    if e["event"].is_null() {
        println!("Event:     unknown (give the event the git host would send, e.g. --event push)");
    } else {
        println!("Event:     {event} ({})", text(&e["provider"]));
    }
    println!("Auth:      {} (checked when a real request arrives)", text(&x["authentication"]["type"]));
    println!("Verdict:   {}", text(&x["verdict"]));
    println!();
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
    println!("Request:    {}", text(&r["id"]));
    println!("Webhook:    {}", text(&r["webhook"]));
    println!("Received:   {}", time(&r["receivedAt"]));
    println!("Peer:       {}", text(&r["peer"]));
    println!("Delivery:   {}", text(&r["deliveryId"]));
    println!("Verdict:    {}", text(&r["verdict"]));
    println!("Execution:  {}", text(&r["pipelineExecutionId"]));
    let detail = inbound_detail(&r["detail"]);
    if !detail.is_empty() {
        println!("Why:        {detail}");
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
        println!();
        print_table(&["JSONPATH", "WANTED", "FOUND", "RESULT"], rules);
    }
    println!();
    println!("Headers:");
    for (k, v) in r["headers"].as_object().into_iter().flatten() {
        println!("  {k}: {}", text(v));
    }
    let body = r["body"].as_str().unwrap_or_default();
    let truncated = if r["bodyTruncated"].as_bool() == Some(true) { ", truncated" } else { "" };
    println!();
    println!("Body ({} bytes{truncated}):", body.len());
    println!("{body}");
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
