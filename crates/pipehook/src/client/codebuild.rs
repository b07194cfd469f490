//! The CodeBuild client commands (`projects`, `builds`, `project-webhooks`): they call a running server's
//! AWS JSON 1.1 endpoint (`POST /`, `X-Amz-Target: CodeBuild_20161006.<Op>`) signed with SigV4 by the official
//! `aws-sigv4` signer, with an access key pair from the environment. Only `builds logs` uses the REST API
//! (and so the token), because CodeBuild has no operation that returns a build's log.
//!
//! AWS errors (`__type`, `message`) are printed as one line, `pipehook: <Type>: <message>`, with exit code 1;
//! missing credentials or unreadable files exit with 2. `builds logs --follow` and `builds start --wait` exit
//! with 1 when the build ends otherwise than SUCCEEDED.

use clap::{Args, Subcommand};
use reqwest::Url;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::time::Duration;

use super::{print_table, read_json, term, text, unseen, Connection, Failure, OrgArg, Outcome, Output};

/// The region and credentials of the AWS-compatible API.
#[derive(Debug, Args)]
pub struct AwsArgs {
    /// Region the requests are signed for.
    #[arg(long, global = true, env = "PIPEHOOK_AWS_REGION", default_value = "us-east-1", value_name = "REGION")]
    pub region: String,
}

#[derive(Debug, Args)]
pub struct ProjectsArgs {
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(subcommand)]
    pub command: ProjectsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ProjectsCommand {
    /// List the build projects' names.
    List,
    /// Show a build project.
    Get {
        /// Project name.
        name: String,
    },
    /// Create a build project from CreateProject's JSON input (as `aws codebuild create-project --cli-input-json`).
    Create {
        /// JSON file, or - for standard input.
        #[arg(long, short, value_name = "FILE")]
        file: PathBuf,
    },
    /// Change a build project from UpdateProject's JSON input; its "name" says which project.
    Update {
        /// JSON file, or - for standard input.
        #[arg(long, short, value_name = "FILE")]
        file: PathBuf,
    },
    /// Delete a build project with its webhook.
    Delete {
        /// Project name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct BuildsArgs {
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub org: OrgArg,
    #[command(subcommand)]
    pub command: BuildsCommand,
}

#[derive(Debug, Subcommand)]
pub enum BuildsCommand {
    /// List builds, newest first, with their status.
    List {
        /// Only this project's builds.
        #[arg(long)]
        project: Option<String>,
        /// How many to show (1 to 100).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show a build and its phases.
    Get {
        /// Build id (PROJECT:UUID).
        id: String,
    },
    /// Start a build of a project and print its id (with --wait, wait for it to end: exit 0 only if it succeeded).
    Start {
        /// Project name.
        project: String,
        /// Commit, branch or tag to build.
        #[arg(long, value_name = "VERSION")]
        source_version: Option<String>,
        /// An environment variable for this build, K=V (repeatable).
        #[arg(long = "env", value_name = "K=V")]
        env: Vec<String>,
        /// A buildspec (YAML) to use instead of the project's.
        #[arg(long, value_name = "FILE")]
        buildspec_file: Option<PathBuf>,
        /// Wait for the build to end and print its final status; exit 1 unless it SUCCEEDED.
        #[arg(long)]
        wait: bool,
    },
    /// Stop a running build.
    Stop {
        /// Build id.
        id: String,
    },
    /// Print a build's log (needs the API token; --follow to keep printing until the build ends).
    Logs {
        /// Build id.
        id: String,
        /// Keep printing new output every second until the build is no longer IN_PROGRESS; exit 1 unless it
        /// SUCCEEDED.
        #[arg(long, short)]
        follow: bool,
    },
}

#[derive(Debug, Args)]
pub struct ProjectWebhooksArgs {
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(subcommand)]
    pub command: ProjectWebhooksCommand,
}

/// The webhook settings shared by create and update.
#[derive(Debug, Args)]
pub struct WebhookFlags {
    /// CreateWebhook's / UpdateWebhook's whole JSON input (the project name comes from the command line).
    #[arg(long, short, value_name = "FILE", conflicts_with_all = ["filter_groups", "build_type"])]
    pub file: Option<PathBuf>,
    /// A filter group, comma-separated TYPE:PATTERN filters (prefix TYPE with ! to exclude), e.g.
    /// 'EVENT:PUSH,HEAD_REF:^refs/heads/main$' (repeatable; a build starts when any group matches).
    #[arg(long = "filter-group", value_name = "FILTERS")]
    pub filter_groups: Vec<String>,
    /// BUILD, BUILD_BATCH or RUNNER_BUILDKITE_BUILD.
    #[arg(long, value_name = "TYPE")]
    pub build_type: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ProjectWebhooksCommand {
    /// Create a project's webhook and print its payload URL (and secret, shown only once).
    Create {
        /// Project name.
        project: String,
        #[command(flatten)]
        flags: WebhookFlags,
        /// Do not create the repository hook on the git host; set it up yourself with the payload URL.
        #[arg(long)]
        manual: bool,
    },
    /// Change a project's webhook.
    Update {
        /// Project name.
        project: String,
        #[command(flatten)]
        flags: WebhookFlags,
        /// Generate a new secret (printed once).
        #[arg(long)]
        rotate_secret: bool,
    },
    /// Delete a project's webhook (and the repository hook it created).
    Delete {
        /// Project name.
        project: String,
    },
}

pub async fn projects(conn: &Connection, args: ProjectsArgs) -> i32 {
    super::finish(async { Aws::new(conn, &args.aws)?.projects(args.command).await }.await)
}

pub async fn builds(conn: &Connection, args: BuildsArgs) -> i32 {
    super::finish(async { Aws::new(conn, &args.aws)?.builds(conn, &args.org.org, args.command).await }.await)
}

pub async fn project_webhooks(conn: &Connection, args: ProjectWebhooksArgs) -> i32 {
    super::finish(async { Aws::new(conn, &args.aws)?.webhooks(args.command).await }.await)
}

/// A key pair from `PIPEHOOK_AWS_*`, else `AWS_*`.
fn credentials(var: &dyn Fn(&str) -> Option<String>) -> Outcome<(String, String)> {
    let get = |a: &str, b: &str| var(a).or_else(|| var(b)).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    match (
        get("PIPEHOOK_AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
        get("PIPEHOOK_AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
    ) {
        (Some(id), Some(secret)) => Ok((id, secret)),
        _ => Err(Failure::Usage(
            "no AWS credentials: set PIPEHOOK_AWS_ACCESS_KEY_ID and PIPEHOOK_AWS_SECRET_ACCESS_KEY (or \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; see `pipehook access-key create`)"
                .into(),
        )),
    }
}

/// The AWS error type without its namespace (`com.amazonaws.codebuild#ResourceNotFoundException`).
fn error_type(t: &str) -> &str {
    let t = t.rsplit('#').next().unwrap_or(t);
    t.split(':').next().unwrap_or(t)
}

struct Aws {
    http: reqwest::Client,
    /// `<server>/`.
    endpoint: Url,
    region: String,
    key_id: String,
    secret: String,
    output: Output,
}

impl Aws {
    fn new(conn: &Connection, aws: &AwsArgs) -> Outcome<Aws> {
        let (key_id, secret) = credentials(&|k| std::env::var(k).ok())?;
        let mut endpoint = Url::parse(&conn.server)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| Failure::Usage(format!("--server: '{}' is not an http:// URL", conn.server)))?;
        endpoint.set_query(None);
        if !endpoint.path().ends_with('/') {
            let path = format!("{}/", endpoint.path());
            endpoint.set_path(&path);
        }
        let region = aws.region.trim().to_owned();
        if region.is_empty() {
            return Err(Failure::Usage("--region: the region is empty".into()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("pipehook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Transport(format!("cannot create the HTTP client: {e}")))?;
        Ok(Aws { http, endpoint, region, key_id, secret, output: conn.output })
    }

    /// Calls CodeBuild operation `op` with `input`, signed with SigV4, and returns the answer's JSON. AWS error
    /// answers become [`Failure::Aws`].
    async fn call(&self, op: &str, input: &Value) -> Outcome<Value> {
        use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
        use aws_sigv4::sign::v4;
        use aws_smithy_runtime_api::client::identity::Identity;

        let body = serde_json::to_vec(input).unwrap_or_default();
        let target = format!("CodeBuild_20161006.{op}");
        let identity: Identity =
            aws_credential_types::Credentials::new(&self.key_id, &self.secret, None, None, "pipehook").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("codebuild")
            .time(std::time::SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| Failure::Usage(format!("cannot sign the request: {e}")))?
            .into();
        let host = match (self.endpoint.host_str(), self.endpoint.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => String::new(),
        };
        let headers =
            [("content-type", "application/x-amz-json-1.1".to_owned()), ("x-amz-target", target), ("host", host)];
        let url = self.endpoint.as_str().to_owned();
        let signable = SignableRequest::new(
            "POST",
            url.clone(),
            headers.iter().map(|(k, v)| (*k, v.as_str())),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| Failure::Usage(format!("cannot sign the request: {e}")))?;
        let (instructions, _) =
            sign(signable, &params).map_err(|e| Failure::Usage(format!("cannot sign the request: {e}")))?.into_parts();
        let mut req = self.http.post(self.endpoint.clone()).body(body);
        for (k, v) in &headers {
            if *k != "host" {
                req = req.header(*k, v);
            }
        }
        for (k, v) in instructions.headers() {
            req = req.header(k, v);
        }
        let res =
            req.send().await.map_err(|e| Failure::Transport(format!("cannot reach {url}: {}", super::cause(&e))))?;
        let status = res.status();
        let text =
            res.text().await.map_err(|e| Failure::Transport(format!("reading the answer: {}", super::cause(&e))))?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        if !status.is_success() {
            let kind = json.as_ref().and_then(|v| v.get("__type")).and_then(Value::as_str).map(error_type);
            let message = json
                .as_ref()
                .and_then(|v| v.get("message").or_else(|| v.get("Message")))
                .and_then(Value::as_str)
                .map(|m| m.lines().next().unwrap_or(m).to_owned());
            return Err(match kind {
                Some(kind) => Failure::Aws { kind: kind.to_owned(), message: message.unwrap_or_default() },
                None => Failure::Server {
                    status,
                    message: message.unwrap_or_else(|| {
                        let t = text.trim();
                        t.lines().next().filter(|l| !l.is_empty()).unwrap_or("error").to_owned()
                    }),
                },
            });
        }
        if text.trim().is_empty() {
            return Ok(json!({}));
        }
        json.ok_or_else(|| Failure::Transport(format!("the server's answer from {url} is not JSON")))
    }

    fn print_json(&self, v: &Value) {
        outln!("{}", serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()));
    }

    async fn project(&self, name: &str) -> Outcome<Value> {
        let out = self.call("BatchGetProjects", &json!({ "names": [name] })).await?;
        out["projects"].as_array().and_then(|p| p.first()).cloned().ok_or_else(|| Failure::Aws {
            kind: "ResourceNotFoundException".into(),
            message: format!("Project cannot be found: {name}"),
        })
    }

    async fn build(&self, id: &str) -> Outcome<Value> {
        let out = self.call("BatchGetBuilds", &json!({ "ids": [id] })).await?;
        out["builds"].as_array().and_then(|b| b.first()).cloned().ok_or_else(|| Failure::Aws {
            kind: "ResourceNotFoundException".into(),
            message: format!("Build cannot be found: {id}"),
        })
    }

    async fn projects(&self, command: ProjectsCommand) -> Outcome {
        match command {
            ProjectsCommand::List => {
                let mut all = Vec::new();
                let mut token: Option<String> = None;
                loop {
                    let mut input = json!({ "sortBy": "NAME", "sortOrder": "ASCENDING" });
                    if let Some(t) = &token {
                        input["nextToken"] = json!(t);
                    }
                    let page = self.call("ListProjects", &input).await?;
                    all.extend(page["projects"].as_array().cloned().unwrap_or_default());
                    match page.get("nextToken").and_then(Value::as_str) {
                        Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                        _ => break,
                    }
                }
                match self.output {
                    Output::Json => self.print_json(&json!({ "projects": all })),
                    Output::Table => print_table(&["NAME"], all.iter().map(|p| vec![text(p)]).collect()),
                }
            }
            ProjectsCommand::Get { name } => {
                let p = self.project(&name).await?;
                match self.output {
                    Output::Json => self.print_json(&p),
                    Output::Table => print_project(&p),
                }
            }
            ProjectsCommand::Create { file } => {
                let (_, doc) = read_object(&file)?;
                let out = self.call("CreateProject", &Value::Object(doc)).await?;
                match self.output {
                    Output::Json => self.print_json(&out),
                    Output::Table => outln!("created project {}", text(&out["project"]["name"])),
                }
            }
            ProjectsCommand::Update { file } => {
                let (_, doc) = read_object(&file)?;
                if doc.get("name").and_then(Value::as_str).is_none() {
                    return Err(Failure::Usage(format!("{}: the input has no \"name\"", file.display())));
                }
                let out = self.call("UpdateProject", &Value::Object(doc)).await?;
                match self.output {
                    Output::Json => self.print_json(&out),
                    Output::Table => outln!("updated project {}", text(&out["project"]["name"])),
                }
            }
            ProjectsCommand::Delete { name } => {
                self.call("DeleteProject", &json!({ "name": name })).await?;
                match self.output {
                    Output::Json => self.print_json(&json!({ "deleted": name })),
                    Output::Table => outln!("deleted project {name}"),
                }
            }
        }
        Ok(())
    }

    async fn builds(&self, conn: &Connection, org: &str, command: BuildsCommand) -> Outcome {
        match command {
            BuildsCommand::List { project, limit } => {
                if !(1..=100).contains(&limit) {
                    return Err(Failure::Usage(format!("--limit: {limit} is not between 1 and 100")));
                }
                let mut ids: Vec<Value> = Vec::new();
                let mut token: Option<String> = None;
                while ids.len() < limit as usize {
                    let (op, mut input) = match &project {
                        Some(p) => ("ListBuildsForProject", json!({ "projectName": p, "sortOrder": "DESCENDING" })),
                        None => ("ListBuilds", json!({ "sortOrder": "DESCENDING" })),
                    };
                    if let Some(t) = &token {
                        input["nextToken"] = json!(t);
                    }
                    let page = self.call(op, &input).await?;
                    ids.extend(page["ids"].as_array().cloned().unwrap_or_default());
                    match page.get("nextToken").and_then(Value::as_str) {
                        Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                        _ => break,
                    }
                }
                ids.truncate(limit as usize);
                let builds = if ids.is_empty() {
                    Vec::new()
                } else {
                    let out = self.call("BatchGetBuilds", &json!({ "ids": ids })).await?;
                    out["builds"].as_array().cloned().unwrap_or_default()
                };
                match self.output {
                    Output::Json => self.print_json(&json!({ "builds": builds })),
                    Output::Table => print_table(
                        &["ID", "NUMBER", "STATUS", "PHASE", "INITIATOR", "STARTED"],
                        builds
                            .iter()
                            .map(|b| {
                                vec![
                                    text(&b["id"]),
                                    text(&b["buildNumber"]),
                                    text(&b["buildStatus"]),
                                    text(&b["currentPhase"]),
                                    text(&b["initiator"]),
                                    aws_time(&b["startTime"]),
                                ]
                            })
                            .collect(),
                    ),
                }
            }
            BuildsCommand::Get { id } => {
                let b = self.build(&id).await?;
                match self.output {
                    Output::Json => self.print_json(&b),
                    Output::Table => print_build(&b),
                }
            }
            BuildsCommand::Start { project, source_version, env, buildspec_file, wait } => {
                let mut input = Map::new();
                input.insert("projectName".into(), json!(project));
                if let Some(v) = source_version {
                    input.insert("sourceVersion".into(), json!(v));
                }
                let mut vars = Vec::new();
                for kv in &env {
                    let (k, v) = kv
                        .split_once('=')
                        .filter(|(k, _)| !k.trim().is_empty())
                        .ok_or_else(|| Failure::Usage(format!("--env: '{kv}' is not K=V")))?;
                    vars.push(json!({ "name": k.trim(), "value": v, "type": "PLAINTEXT" }));
                }
                if !vars.is_empty() {
                    input.insert("environmentVariablesOverride".into(), Value::Array(vars));
                }
                if let Some(f) = buildspec_file {
                    let spec = std::fs::read_to_string(&f)
                        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", f.display())))?;
                    input.insert("buildspecOverride".into(), json!(spec));
                }
                let out = self.call("StartBuild", &Value::Object(input)).await?;
                match self.output {
                    // With --wait, the build as it ended instead.
                    Output::Json if wait => {}
                    Output::Json => self.print_json(&out),
                    Output::Table => outln!("{}", text(&out["build"]["id"])),
                }
                if wait {
                    let id = out["build"]["id"]
                        .as_str()
                        .ok_or_else(|| Failure::Missing("the StartBuild answer has no build id".into()))?;
                    let ended = loop {
                        let b = self.build(id).await?;
                        if b["buildStatus"] != "IN_PROGRESS" {
                            break b;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    };
                    if self.output == Output::Json {
                        self.print_json(&ended);
                    }
                    return build_ended(id, &ended);
                }
            }
            BuildsCommand::Stop { id } => {
                let out = self.call("StopBuild", &json!({ "id": id })).await?;
                match self.output {
                    Output::Json => self.print_json(&out),
                    Output::Table => {
                        outln!("stopping build {} ({})", text(&out["build"]["id"]), text(&out["build"]["buildStatus"]))
                    }
                }
            }
            BuildsCommand::Logs { id, follow } => {
                let rest = super::Client::new(conn, org)?;
                let url = rest.url(&["builds", &id, "logs"], &[]);
                let mut seen = String::new();
                let mut line_open = false;
                let mut ended = None;
                loop {
                    // The status first: a log read after the build ended is complete.
                    let done = if follow {
                        let b = self.build(&id).await?;
                        let done = b["buildStatus"] != "IN_PROGRESS";
                        ended = done.then_some(b);
                        done
                    } else {
                        true
                    };
                    let log = rest.text(url.clone()).await?;
                    let new = unseen(&seen, &log);
                    if !new.is_empty() {
                        match self.output {
                            Output::Json => outln!("{}", json!({ "id": id, "log": new })),
                            Output::Table => {
                                out!("{new}");
                                line_open = !new.ends_with('\n');
                            }
                        }
                        term::flush_out();
                        seen = log;
                    }
                    if done {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                if line_open {
                    outln!();
                }
                if let Some(b) = ended {
                    return build_ended(&id, &b);
                }
            }
        }
        Ok(())
    }

    async fn webhooks(&self, command: ProjectWebhooksCommand) -> Outcome {
        let (op, project, input) = match command {
            ProjectWebhooksCommand::Create { project, flags, manual } => {
                let mut input = webhook_input(&project, &flags)?;
                if manual {
                    input.insert("manualCreation".into(), json!(true));
                }
                ("CreateWebhook", project, input)
            }
            ProjectWebhooksCommand::Update { project, flags, rotate_secret } => {
                let mut input = webhook_input(&project, &flags)?;
                if rotate_secret {
                    input.insert("rotateSecret".into(), json!(true));
                }
                ("UpdateWebhook", project, input)
            }
            ProjectWebhooksCommand::Delete { project } => {
                self.call("DeleteWebhook", &json!({ "projectName": project })).await?;
                match self.output {
                    Output::Json => self.print_json(&json!({ "deleted": project })),
                    Output::Table => outln!("deleted the webhook of project {project}"),
                }
                return Ok(());
            }
        };
        let out = self.call(op, &Value::Object(input)).await?;
        let w = &out["webhook"];
        match self.output {
            Output::Json => self.print_json(&out),
            Output::Table => {
                let verb = if op == "CreateWebhook" { "created" } else { "updated" };
                outln!("{verb} the webhook of project {project}");
                outln!("Payload URL: {}", text(&w["payloadUrl"]));
                if let Some(s) = w.get("secret").and_then(Value::as_str) {
                    outln!("Secret (shown only once): {s}");
                }
                if let Some(m) = w.get("statusMessage").and_then(Value::as_str).filter(|m| !m.is_empty()) {
                    outln!("Note: {m}");
                }
            }
        }
        Ok(())
    }
}

/// How a followed or awaited build ended: said on standard error when it SUCCEEDED, a failure otherwise.
fn build_ended(id: &str, build: &Value) -> Outcome {
    let status = text(&build["buildStatus"]);
    if status == "SUCCEEDED" {
        errln!("pipehook: build {id} ended: {status}");
        return Ok(());
    }
    // The failed phase's message says why (e.g. a command's exit status).
    let why = build["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["phaseStatus"].as_str().is_some_and(|s| s != "SUCCEEDED"))
        .flat_map(|p| p["contexts"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["message"].as_str().filter(|m| !m.is_empty()).map(str::to_owned))
        .next()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default();
    Err(Failure::Unsuccessful(format!("build {id} ended: {status}{why}")))
}

/// Reads a JSON file that must hold an object.
fn read_object(file: &PathBuf) -> Outcome<(Vec<u8>, Map<String, Value>)> {
    let (body, doc) = read_json(file)?;
    match doc {
        Value::Object(m) => Ok((body, m)),
        _ => Err(Failure::Usage(format!("{} is not a JSON object", file.display()))),
    }
}

/// CreateWebhook's / UpdateWebhook's input from `--file` or the flags.
fn webhook_input(project: &str, flags: &WebhookFlags) -> Outcome<Map<String, Value>> {
    let mut input = match &flags.file {
        Some(f) => read_object(f)?.1,
        None => Map::new(),
    };
    input.insert("projectName".into(), json!(project));
    if !flags.filter_groups.is_empty() {
        let groups = flags.filter_groups.iter().map(|g| filter_group(g)).collect::<Outcome<Vec<_>>>()?;
        input.insert("filterGroups".into(), Value::Array(groups));
    }
    if let Some(t) = &flags.build_type {
        input.insert("buildType".into(), json!(t));
    }
    Ok(input)
}

/// `EVENT:PUSH,HEAD_REF:^refs/heads/main$` as CodeBuild's filter group; `!TYPE:PATTERN` excludes.
fn filter_group(spec: &str) -> Outcome<Value> {
    let mut filters = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (kind, pattern) = part
            .split_once(':')
            .filter(|(k, p)| !k.trim().is_empty() && !p.is_empty())
            .ok_or_else(|| Failure::Usage(format!("--filter-group: '{part}' is not TYPE:PATTERN (e.g. EVENT:PUSH)")))?;
        let kind = kind.trim();
        let (exclude, kind) = match kind.strip_prefix('!') {
            Some(k) => (true, k.trim()),
            None => (false, kind),
        };
        let mut f = json!({ "type": kind.to_ascii_uppercase(), "pattern": pattern });
        if exclude {
            f["excludeMatchedPattern"] = json!(true);
        }
        filters.push(f);
    }
    if filters.is_empty() {
        return Err(Failure::Usage(format!("--filter-group: '{spec}' has no filters")));
    }
    Ok(Value::Array(filters))
}

/// AWS JSON timestamps are epoch seconds (with a fraction); shown as RFC 3339 (UTC).
fn aws_time(v: &Value) -> String {
    v.as_f64().map_or_else(|| "-".to_owned(), |s| pipehook_domain::time::Timestamp((s * 1000.0) as i64).to_rfc3339())
}

fn print_project(p: &Value) {
    outln!("Name:         {}", text(&p["name"]));
    outln!("ARN:          {}", text(&p["arn"]));
    outln!("Source:       {} {}", text(&p["source"]["type"]), p["source"]["location"].as_str().unwrap_or(""));
    outln!("Image:        {}", text(&p["environment"]["image"]));
    outln!("Created:      {}", aws_time(&p["created"]));
    outln!("Modified:     {}", aws_time(&p["lastModified"]));
    if let Some(w) = p.get("webhook").filter(|w| w.is_object()) {
        outln!("Webhook:      {}", text(&w["payloadUrl"]));
    }
    if let Some(spec) = p["source"]["buildspec"].as_str() {
        outln!("Buildspec:");
        for line in spec.lines() {
            outln!("  {line}");
        }
    }
}

fn print_build(b: &Value) {
    outln!("Id:           {}", text(&b["id"]));
    outln!("Number:       {}", text(&b["buildNumber"]));
    outln!("Project:      {}", text(&b["projectName"]));
    outln!("Status:       {}", text(&b["buildStatus"]));
    outln!("Phase:        {}", text(&b["currentPhase"]));
    outln!("Initiator:    {}", text(&b["initiator"]));
    outln!("Version:      {}", text(&b["resolvedSourceVersion"]));
    outln!("Started:      {}", aws_time(&b["startTime"]));
    outln!("Ended:        {}", aws_time(&b["endTime"]));
    let phases: Vec<Vec<String>> = b["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let context = p["contexts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["message"].as_str().filter(|m| !m.is_empty()))
                .collect::<Vec<_>>()
                .join("; ");
            vec![text(&p["phaseType"]), text(&p["phaseStatus"]), text(&p["durationInSeconds"]), context]
        })
        .collect();
    if !phases.is_empty() {
        outln!();
        print_table(&["PHASE", "STATUS", "SECONDS", "MESSAGE"], phases);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_groups_parse() {
        let g = filter_group("EVENT:PUSH, HEAD_REF:^refs/heads/main$,!file_path:^docs/").unwrap();
        assert_eq!(
            g,
            json!([
                {"type": "EVENT", "pattern": "PUSH"},
                {"type": "HEAD_REF", "pattern": "^refs/heads/main$"},
                {"type": "FILE_PATH", "pattern": "^docs/", "excludeMatchedPattern": true},
            ])
        );
        assert!(filter_group("EVENT").is_err());
        assert!(filter_group(" , ").is_err());
    }

    #[test]
    fn credentials_fall_back_to_aws_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
        };
        let both =
            env(&[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "b"), ("PIPEHOOK_AWS_ACCESS_KEY_ID", "p")]);
        assert_eq!(credentials(&both).unwrap(), ("p".to_owned(), "b".to_owned()));
        let none = env(&[("AWS_ACCESS_KEY_ID", "a")]);
        assert!(matches!(credentials(&none), Err(Failure::Usage(m)) if m.contains("PIPEHOOK_AWS_SECRET_ACCESS_KEY")));
        assert_eq!(error_type("com.amazonaws.codebuild#ResourceNotFoundException"), "ResourceNotFoundException");
    }
}
