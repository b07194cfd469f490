//! The client commands (`pipelines`, `executions`, `logs`): they call a running server's native REST API over
//! HTTP with a token, unlike the administrative commands, which open the database directly.
//!
//! They never load the server configuration, because they run on machines that have none (a laptop, a CI job);
//! everything they need comes from `--server`, `--token` and `--org` or the matching environment variables.
//! Server errors are printed as one line, `pipehook: <status> <message>`, with exit code 1; usage problems
//! (no token, a bad URL, an unreadable file) exit with 2.

use clap::{Args, Subcommand, ValueEnum};
use pipehook_domain::time::Timestamp;
use reqwest::{Method, StatusCode, Url};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

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
            return Ok(Value::Null);
        }
        json.ok_or_else(|| Failure::Transport(format!("the server's answer from {url} is not JSON")))
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

/// Reads a declaration file (or standard input for `-`) and the pipeline name in it. The name is read here
/// only because an update is addressed by it; the server validates everything else.
fn read_declaration(file: &PathBuf) -> Outcome<(Vec<u8>, String)> {
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
