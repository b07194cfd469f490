//! The sandbox executor (issue 17, section 1) against the real server, as an attacker: a pipeline `Command` action
//! and a CodeBuild buildspec try to read the master key, the database, `/proc/1/environ` and the server's own
//! environment, another execution's and another build's workspace, and to stop the server with `kill -STOP`.
//! Every attempt fails (the logs say so), no secret reaches any log, and `/healthz` answers throughout. Also: a
//! command's environment has nothing of the server's, the network knob really cuts the network, a repository
//! cannot make the server read a file through a `buildspec.yml` link, and workers refuse to start without
//! bubblewrap (the API role does not need it). The in-process server's pid is this test process's.

use aws_sdk_codebuild::types::{BuildPhaseType, ProjectSource, SourceType, StatusType};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::codebuild::{artifacts, client as codebuild, environment, git_repo_with, logs as build_log, wait_build};
use crate::support::{codepipeline, pipehook_cmd, TestServer, ACCESS_KEY_ID, SECRET_ACCESS_KEY, TOKEN};

/// What must never appear in a log: the master key, the marker in the data folder, the database's header,
/// the victims' marker, and the names of variables only this process has.
struct Secrets(Vec<String>);

impl Secrets {
    fn of(s: &TestServer) -> Secrets {
        let key = std::fs::read_to_string(s.data_dir.join("master.key")).expect("a generated master key");
        let mut secrets = vec![key.trim().to_owned(), DATA_MARKER.to_owned(), "SQLite format 3".to_owned()];
        secrets.push(VICTIM_MARKER.to_owned());
        // cargo gives test processes CARGO_* variables; the server's environment is this process's.
        secrets.extend(std::env::vars().map(|(k, _)| k).filter(|k| k.starts_with("CARGO_")).map(|k| format!("{k}=")));
        Secrets(secrets)
    }

    fn assert_absent(&self, what: &str, log: &str) {
        for secret in &self.0 {
            assert!(!log.contains(secret.as_str()), "{what}: {secret:?} leaked into the log:\n{log}");
        }
    }
}

const DATA_MARKER: &str = "DATA-FOLDER-SECRET-6a1f";
const VICTIM_MARKER: &str = "VICTIM-WORKSPACE-SECRET-93c2";

/// Each attempt prints `refused <what>` when it fails and `BREACH <what>` when it works (a server it managed to
/// stop is resumed at once, so the test fails instead of hanging). Short, as a pipeline action's configuration
/// value holds at most 1000 characters.
fn attack_script(data: &Path, server_pid: u32) -> String {
    format!(
        r#"D={data}; P={server_pid}
t() {{ if eval "$2"; then echo "BREACH $1"; else echo "refused $1"; fi; }}
echo "attack starts in $(pwd)"
t master.key 'cat $D/master.key'
t pipehook.db 'head -c 15 $D/pipehook.db | grep -a SQLite'
t data-marker 'cat $D/marker.txt'
t server-environ 'cat /proc/$P/environ'
t server-cmdline 'cat /proc/$P/cmdline'
tr '\0' '\n' < /proc/1/environ | sed 's/^/init-environ: /'
t other-workspaces 'cat $D/workspaces/*/victim.txt $D/workspaces/builds/*/src/victim.txt'
t list-workspaces 'ls $D/workspaces/*/victim.txt'
t stop-server 'kill -STOP $P && kill -CONT $P'
echo attack ends
"#,
        data = data.display()
    )
}

/// What [`attack_script`] tries.
const ATTEMPTS: [&str; 8] = [
    "master.key",
    "pipehook.db",
    "data-marker",
    "server-environ",
    "server-cmdline",
    "other-workspaces",
    "list-workspaces",
    "stop-server",
];

/// Every attempt of [`attack_script`] failed, as its log shows.
fn assert_all_refused(what: &str, log: &str) {
    assert!(log.contains("attack ends"), "{what}: the script ran to its end:\n{log}");
    for attempt in ATTEMPTS {
        assert!(!log.contains(&format!("BREACH {attempt}")), "{what}: {attempt} worked:\n{log}");
        // Not a whole line: the failing command's own message on stderr can land in the middle of it (the log
        // interleaves stdout and stderr as they arrive).
        assert!(log.contains(&format!("refused {attempt}\n")), "{what}: {attempt} was not refused:\n{log}");
    }
}

fn command_action(name: &str, command: &str, env: &[(&str, &str)]) -> Value {
    let mut configuration = json!({"Command": command});
    if !env.is_empty() {
        let vars: Vec<Value> = env.iter().map(|(k, v)| json!({"name": k, "value": v})).collect();
        configuration["EnvironmentVariables"] = json!(serde_json::to_string(&vars).unwrap());
    }
    json!({
        "name": name,
        "actionTypeId": {"category": "Build", "owner": "Custom", "provider": "Command", "version": "1"},
        "configuration": configuration,
        "runOrder": 1,
    })
}

/// A pipeline: a GitHub source (checked out from `clone_url` when given) and the actions in one stage.
fn declaration(name: &str, clone_url: Option<&str>, actions: Vec<Value>) -> Value {
    let mut source = json!({"Owner": "octo", "Repo": "app", "Branch": "master", "OAuthToken": "****"});
    if let Some(url) = clone_url {
        source["CloneUrl"] = json!(url);
    }
    json!({
        "name": name,
        "roleArn": "arn:aws:iam::123456789012:role/pipehook",
        "artifactStore": {"type": "S3", "location": "artifact-bucket"},
        "stages": [
            {"name": "Source", "actions": [{
                "name": "Source",
                "actionTypeId": {"category": "Source", "owner": "ThirdParty", "provider": "GitHub", "version": "1"},
                "configuration": source,
                "runOrder": 1,
            }]},
            {"name": "Build", "actions": actions},
        ],
    })
}

async fn call(url: &str, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{url}/api/orgs/default/{path}"))
        .header("authorization", format!("token {token}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Creates the pipeline and starts an execution; returns its id.
async fn start(url: &str, token: &str, pipeline: Value) -> String {
    let name = pipeline["name"].as_str().unwrap().to_owned();
    let (status, body) = call(url, token, Method::POST, "pipelines", Some(pipeline)).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(url, token, Method::POST, &format!("pipelines/{name}/executions"), Some(json!({}))).await;
    assert!((200..300).contains(&status), "{status} {body}");
    body["pipelineExecutionId"].as_str().expect("an execution id").to_owned()
}

/// Waits for the execution to end and returns it with its actions' logs by action name.
async fn finished(url: &str, token: &str, pipeline: &str, id: &str) -> (Value, Vec<(String, String)>) {
    for _ in 0..600 {
        let (status, e) = call(url, token, Method::GET, &format!("pipelines/{pipeline}/executions/{id}"), None).await;
        assert_eq!(status, 200, "{e}");
        if !matches!(e["status"].as_str(), Some("InProgress") | Some("Stopping")) {
            let (_, logs) =
                call(url, token, Method::GET, &format!("pipelines/{pipeline}/executions/{id}/logs"), None).await;
            let logs = logs["actions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| (a["action"].as_str().unwrap().to_owned(), a["log"].as_str().unwrap_or("").to_owned()))
                .collect();
            return (e, logs);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("execution {id} of {pipeline} did not end");
}

fn log_of<'a>(logs: &'a [(String, String)], action: &str) -> &'a str {
    logs.iter().find(|(a, _)| a == action).map(|(_, l)| l.as_str()).unwrap_or_else(|| panic!("{action}: {logs:?}"))
}

/// Polls `/healthz` until stopped; returns how many answers were not 200 and the slowest answer.
struct Health {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<(u32, Duration, u32)>,
}

impl Health {
    fn watch(url: &str) -> Health {
        let stop = tokio_util::sync::CancellationToken::new();
        let (token, url) = (stop.clone(), format!("{url}/healthz"));
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
            let (mut bad, mut slowest, mut answers) = (0, Duration::ZERO, 0);
            while !token.is_cancelled() {
                let started = Instant::now();
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => answers += 1,
                    _ => bad += 1,
                }
                slowest = slowest.max(started.elapsed());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (bad, slowest, answers)
        });
        Health { stop, task }
    }

    async fn assert_healthy(self) {
        self.stop.cancel();
        let (bad, slowest, answers) = self.task.await.unwrap();
        assert_eq!(bad, 0, "/healthz failed {bad} times");
        assert!(answers > 0 && slowest < Duration::from_secs(2), "{answers} answers, slowest {slowest:?}");
    }
}

/// Waits until a victim has written its marker somewhere under the workspaces, so the attacks have something to
/// find.
async fn wait_for_victims(workspaces: &Path, count: usize) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let found = find_files(workspaces, "victim.txt", 4);
        if found.len() >= count {
            return;
        }
        assert!(Instant::now() < until, "victims did not start: {found:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn find_files(dir: &Path, name: &str, depth: u32) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().filter_map(Result::ok) {
        let path = entry.path();
        if entry.file_name() == name {
            found.push(path);
        } else if depth > 0 && entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(find_files(&path, name, depth - 1));
        }
    }
    found
}

/// A pipeline action and a buildspec try everything in [`attack_script`] while another execution and another
/// build are running with a secret in their workspaces; the pipeline's own checkout is readable.
#[tokio::test]
async fn commands_and_buildspecs_cannot_reach_the_server_or_other_workspaces() {
    let s = TestServer::start().await;
    std::fs::write(s.data_dir.join("marker.txt"), format!("{DATA_MARKER}\n")).unwrap();
    let secrets = Secrets::of(&s);
    let health = Health::watch(&s.url);
    let cb = codebuild(&s);

    // The victims: an execution and a build that keep a secret in their workspace while the attacks run.
    let victim = format!("echo {VICTIM_MARKER} > victim.txt; sleep 20");
    let victim_id = start(&s.url, TOKEN, declaration("victim", None, vec![command_action("Keep", &victim, &[])])).await;
    let victim_spec = format!(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo {VICTIM_MARKER} > victim.txt\n      - sleep 20\n"
    );
    create_project(&cb, "victim-build", &victim_spec, &[]).await;
    let victim_build = cb.start_build().project_name("victim-build").send().await.unwrap().build_value.unwrap();
    let workspaces = s.data_dir.join("workspaces");
    wait_for_victims(&workspaces, 2).await;

    // The attackers.
    let repo = tempfile::tempdir().unwrap();
    git_repo_with(repo.path(), &[("hello.txt", "hello from the checkout\n")]);
    let script = attack_script(&s.data_dir, std::process::id());
    let own = format!("cat hello.txt && echo read-own-checkout\n{script}");
    let attack =
        declaration("attack", Some(&repo.path().display().to_string()), vec![command_action("Attack", &own, &[])]);
    let attack_id = start(&s.url, TOKEN, attack).await;
    let build_spec = format!(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - |\n{}",
        script.lines().map(|l| format!("        {l}\n")).collect::<String>()
    );
    create_project(&cb, "attack-build", &build_spec, &[]).await;
    let attack_build = cb.start_build().project_name("attack-build").send().await.unwrap().build_value.unwrap();

    let (e, logs) = finished(&s.url, TOKEN, "attack", &attack_id).await;
    let log = log_of(&logs, "Attack");
    assert_eq!(e["status"], "Succeeded", "{e}\n{log}");
    assert!(log.contains("hello from the checkout\nread-own-checkout"), "{log}");
    assert_all_refused("pipeline action", log);
    assert!(log.contains(&format!("attack starts in {}", workspaces.display())), "real paths: {log}");
    secrets.assert_absent("pipeline action", log);

    let b = wait_build(&cb, attack_build.id.as_deref().unwrap()).await;
    let log = build_log(&s, &b).await;
    assert_eq!(b.build_status, Some(StatusType::Succeeded), "{log}");
    assert_all_refused("buildspec", &log);
    secrets.assert_absent("buildspec", &log);

    // The victims were never disturbed, and the server is still here and answering.
    let (victim_e, victim_logs) = finished(&s.url, TOKEN, "victim", &victim_id).await;
    assert_eq!(victim_e["status"], "Succeeded", "{victim_e}");
    let victim_b = wait_build(&cb, victim_build.id.as_deref().unwrap()).await;
    assert_eq!(victim_b.build_status, Some(StatusType::Succeeded));
    for (_, log) in &victim_logs {
        secrets.assert_absent("victim", &log.replace(VICTIM_MARKER, ""));
    }
    health.assert_healthy().await;
    let (status, _) = s.get("/healthz", None).await;
    assert_eq!(status, 200);
    s.stop().await.unwrap();

    // The control: the same script without the sandbox (PIPEHOOK_RUNNER_EXECUTOR=none, what every command did
    // before) reads the key, the database and the server's environment, and stops the server (resumed at once).
    let s = TestServer::builder().env("PIPEHOOK_RUNNER_EXECUTOR", "none").start().await.unwrap();
    std::fs::write(s.data_dir.join("marker.txt"), format!("{DATA_MARKER}\n")).unwrap();
    let script = attack_script(&s.data_dir, std::process::id());
    let id = start(&s.url, TOKEN, declaration("attack", None, vec![command_action("Attack", &script, &[])])).await;
    let (_, logs) = finished(&s.url, TOKEN, "attack", &id).await;
    let log = log_of(&logs, "Attack");
    for attempt in ["master.key", "pipehook.db", "data-marker", "server-environ", "stop-server"] {
        assert!(log.contains(&format!("BREACH {attempt}")), "control: {attempt}:\n{log}");
    }
    assert!(log.contains(DATA_MARKER), "{log}");
    s.stop().await.unwrap();
}

async fn create_project(c: &aws_sdk_codebuild::Client, name: &str, buildspec: &str, vars: &[(&str, &str)]) {
    c.create_project()
        .name(name)
        .source(ProjectSource::builder().r#type(SourceType::NoSource).buildspec(buildspec).build().unwrap())
        .artifacts(artifacts())
        .environment(environment(vars))
        .service_role("arn:aws:iam::123456789012:role/codebuild")
        .send()
        .await
        .unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts the real binary with `env` and waits for /healthz; `None` when it exited first (with its output).
async fn spawn_serve(data: &Path, env: &[(&str, &str)]) -> Result<(Child, String), std::process::Output> {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = pipehook_cmd()
        .args(["serve", "--listen", &listen, "--data-dir"])
        .arg(data)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://{listen}");
    let client = reqwest::Client::new();
    for _ in 0..400 {
        if client.get(format!("{url}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok((child, url));
        }
        if child.try_wait().unwrap().is_some() {
            return Err(child.wait_with_output().unwrap());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = child.kill();
    panic!("pipehook serve did not come up: {:?}", child.wait_with_output());
}

/// Ends the server with SIGTERM and returns its stderr.
fn terminate(child: Child) -> String {
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The real binary, given its secrets by environment as an operator would (bootstrap token and key pair, the
/// master key, AWS credentials of its own): a command sees none of them, in its environment or the server's, and
/// cannot stop the server.
#[tokio::test]
async fn a_command_gets_nothing_of_the_servers_environment() {
    const TOKEN_SECRET: &str = "phk_sandboxTokenSecret0123456789abcdefghij";
    const KEY_SECRET: &str = "sandboxKeySecret/0123456789abcdefghijklmn";
    const AWS_SECRET: &str = "awsEnvSecretMarker/0123456789abcdefghijkl";
    const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("PIPEHOOK_BOOTSTRAP_TOKEN", TOKEN_SECRET),
        ("PIPEHOOK_BOOTSTRAP_AWS_ACCESS_KEY_ID", "AKIASANDBOXBOOTSTRAP"),
        ("PIPEHOOK_BOOTSTRAP_AWS_SECRET_ACCESS_KEY", KEY_SECRET),
        ("PIPEHOOK_MASTER_KEY", MASTER_KEY),
        ("AWS_ACCESS_KEY_ID", "AKIASANDBOXENVMARKER"),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
        ("AWS_SESSION_TOKEN", AWS_SECRET),
    ];
    let (child, url) = spawn_serve(&dir.path().join("data"), &env).await.expect("the server starts");
    let pid = child.id();
    let script = format!(
        "env | sort | sed 's/^/env: /'
         if cat /proc/{pid}/environ; then echo BREACH-environ; else echo refused-environ; fi
         if kill -STOP {pid}; then kill -CONT {pid}; echo BREACH-stop; else echo refused-stop; fi"
    );
    let id =
        start(&url, TOKEN_SECRET, declaration("env", None, vec![command_action("Look", &script, &[("MINE", "1")])]))
            .await;
    let (e, logs) = finished(&url, TOKEN_SECRET, "env", &id).await;
    let log = log_of(&logs, "Look");
    assert_eq!(e["status"], "Succeeded", "{e}\n{log}");
    assert!(log.contains("refused-environ") && log.contains("refused-stop") && !log.contains("BREACH"), "{log}");
    assert!(log.contains("env: MINE=1") && log.contains("env: PIPEHOOK_PIPELINE=env"), "{log}");
    for forbidden in
        ["PIPEHOOK_BOOTSTRAP", "PIPEHOOK_MASTER_KEY", "AWS_", TOKEN_SECRET, KEY_SECRET, AWS_SECRET, MASTER_KEY]
    {
        assert!(!log.contains(forbidden), "{forbidden} reached the command:\n{log}");
    }
    // Still running (not stopped) and answering.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    assert!(stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('T')), "{stat}");
    assert!(reqwest::get(format!("{url}/healthz")).await.unwrap().status().is_success());
    terminate(child);
}

/// `PIPEHOOK_NETWORK=none` on an action or a project cuts the network (a listener on this machine's loopback is
/// unreachable); without it the sandbox shares the host's network; `PIPEHOOK_RUNNER_SANDBOX_NETWORK=none` cuts it
/// for every command; a value the variable does not take fails the action.
#[tokio::test]
async fn the_network_knob_cuts_the_network() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepting = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    let connect = format!(
        "if bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}'; then echo connected-to-host; else echo host-unreachable; fi"
    );

    let s = TestServer::start().await;
    let actions = vec![
        command_action("Open", &connect, &[]),
        command_action("Closed", &connect, &[("PIPEHOOK_NETWORK", "none")]),
    ];
    let id = start(&s.url, TOKEN, declaration("net", None, actions)).await;
    let (e, logs) = finished(&s.url, TOKEN, "net", &id).await;
    assert_eq!(e["status"], "Succeeded", "{e}");
    assert!(log_of(&logs, "Open").contains("connected-to-host"), "{logs:?}");
    assert!(log_of(&logs, "Closed").contains("host-unreachable"), "{logs:?}");

    let bad = start(
        &s.url,
        TOKEN,
        declaration("bad", None, vec![command_action("Odd", &connect, &[("PIPEHOOK_NETWORK", "off")])]),
    )
    .await;
    let (e, logs) = finished(&s.url, TOKEN, "bad", &bad).await;
    assert_eq!(e["status"], "Failed", "{e}");
    assert!(log_of(&logs, "Odd").contains("PIPEHOOK_NETWORK must be none or shared"), "{logs:?}");

    // A project's environment variable does the same for a build.
    let cb = codebuild(&s);
    let spec = format!("version: 0.2\nphases:\n  build:\n    commands:\n      - {connect}\n");
    create_project(&cb, "closed", &spec, &[("PIPEHOOK_NETWORK", "none")]).await;
    create_project(&cb, "open", &spec, &[]).await;
    for (project, want) in [("closed", "host-unreachable"), ("open", "connected-to-host")] {
        let b = cb.start_build().project_name(project).send().await.unwrap().build_value.unwrap();
        let b = wait_build(&cb, b.id.as_deref().unwrap()).await;
        let log = build_log(&s, &b).await;
        assert_eq!(b.build_status, Some(StatusType::Succeeded), "{log}");
        assert!(log.contains(want), "{project}: {log}");
    }
    s.stop().await.unwrap();

    // The operator's policy: no command gets the network.
    let s = TestServer::builder().env("PIPEHOOK_RUNNER_SANDBOX_NETWORK", "none").start().await.unwrap();
    let id = start(&s.url, TOKEN, declaration("net", None, vec![command_action("Open", &connect, &[])])).await;
    let (_, logs) = finished(&s.url, TOKEN, "net", &id).await;
    assert!(log_of(&logs, "Open").contains("host-unreachable"), "{logs:?}");
    s.stop().await.unwrap();
    accepting.abort();
}

/// Repositories whose `buildspec.yml` is a symbolic link out of the source: to the master key, to a YAML file of
/// the server's (the parser's error would quote its `version`), to a FIFO (reading it would block the build's
/// worker for ever; `/dev/zero` would fill the server's memory). pipehook reads the buildspec itself, outside any
/// sandbox: each build fails in DOWNLOAD_SOURCE with YAML_FILE_ERROR, and nothing of the target shows.
#[tokio::test]
async fn buildspec_links_out_of_the_source_are_refused() {
    let s = TestServer::start().await;
    let secrets = Secrets::of(&s);
    let outside = tempfile::tempdir().unwrap();
    let yaml = outside.path().join("server-settings.yml");
    std::fs::write(&yaml, "version: YAML-SECRET-MARKER\n").unwrap();
    let fifo = outside.path().join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let cb = codebuild(&s);
    let mut repos = Vec::new();
    for (name, target) in [("key", s.data_dir.join("master.key")), ("yaml", yaml), ("fifo", fifo)] {
        let repo = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&target, repo.path().join("buildspec.yml")).unwrap();
        git_repo_with(repo.path(), &[("README", "a repository\n")]);
        cb.create_project()
            .name(name)
            .source(
                ProjectSource::builder()
                    .r#type(SourceType::Github)
                    .location(repo.path().display().to_string())
                    .build()
                    .unwrap(),
            )
            .artifacts(artifacts())
            .environment(environment(&[]))
            .service_role("r")
            .send()
            .await
            .unwrap();
        repos.push(repo);
        let b = cb.start_build().project_name(name).send().await.unwrap().build_value.unwrap();
        let b = wait_build(&cb, b.id.as_deref().unwrap()).await;
        assert_eq!(b.build_status, Some(StatusType::Failed), "{name}");
        let download =
            b.phases.clone().unwrap().into_iter().find(|p| p.phase_type == Some(BuildPhaseType::DownloadSource));
        let message = download.unwrap().contexts.unwrap()[0].message.clone().unwrap();
        assert!(message.contains("YAML_FILE_ERROR") && message.contains("not a file inside the source"), "{message}");
        let log = build_log(&s, &b).await;
        for text in [format!("{:?}", b.phases), log] {
            secrets.assert_absent(name, &text);
            assert!(!text.contains("YAML-SECRET-MARKER"), "{name}: {text}");
        }
    }
    s.stop().await.unwrap();
}

/// git runs outside the sandbox, as the server: a local `CloneUrl` or `source.location` inside the workspaces (every
/// execution's workspace is a git repository) or the data folder is refused before git runs.
#[tokio::test]
async fn local_sources_inside_pipehooks_folders_are_refused() {
    let s = TestServer::start().await;
    // A repository where another execution's checkout would be.
    let inside = s.data_dir.join("workspaces").join("another-execution");
    std::fs::create_dir_all(&inside).unwrap();
    git_repo_with(&inside, &[("secret.txt", "ANOTHER-TENANT-SOURCE\n")]);
    let url = inside.display().to_string();
    let id =
        start(&s.url, TOKEN, declaration("steal", Some(&url), vec![command_action("Read", "cat secret.txt", &[])]))
            .await;
    let (e, logs) = finished(&s.url, TOKEN, "steal", &id).await;
    assert_eq!(e["status"], "Failed", "{e}");
    let log = log_of(&logs, "Source");
    assert!(log.contains("which no source may be checked out from"), "{log}");
    for (_, log) in &logs {
        assert!(!log.contains("ANOTHER-TENANT-SOURCE"), "{log}");
    }

    let cb = codebuild(&s);
    cb.create_project()
        .name("steal")
        .source(
            ProjectSource::builder()
                .r#type(SourceType::Github)
                .location(&url)
                .buildspec("version: 0.2\nphases:\n  build:\n    commands:\n      - cat secret.txt\n")
                .build()
                .unwrap(),
        )
        .artifacts(artifacts())
        .environment(environment(&[]))
        .service_role("r")
        .send()
        .await
        .unwrap();
    let b = cb.start_build().project_name("steal").send().await.unwrap().build_value.unwrap();
    let b = wait_build(&cb, b.id.as_deref().unwrap()).await;
    assert_eq!(b.build_status, Some(StatusType::Failed));
    let log = build_log(&s, &b).await;
    assert!(log.contains("which no source may be checked out from") && !log.contains("ANOTHER-TENANT-SOURCE"), "{log}");
    s.stop().await.unwrap();
}

/// With the sandbox executor (the default) and no bubblewrap, the server starts (a fresh machine can try it)
/// but runs no command: it says at start how to install bubblewrap or opt out, and a pipeline's command fails
/// with that message instead of running unsandboxed. The API role needs no bubblewrap; `none` starts, loudly.
#[tokio::test]
async fn without_bubblewrap_no_command_runs_and_the_server_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let path = empty.display().to_string();
    let data = dir.path().join("data");
    let marker = dir.path().join("ran");
    let creds = [
        ("PATH", path.as_str()),
        ("PIPEHOOK_BOOTSTRAP_AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
        ("PIPEHOOK_BOOTSTRAP_AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
    ];
    let (server, url) = spawn_serve(&data, &creds).await.expect("the server starts without bubblewrap");
    let c = codepipeline(&url, ACCESS_KEY_ID, SECRET_ACCESS_KEY, "us-east-1");
    let pipeline = serde_json::json!({
        "name": "p", "roleArn": "arn:aws:iam::123456789012:role/r",
        "artifactStore": {"type": "S3", "location": "bucket"},
        "stages": [
            {"name": "Source", "actions": [{"name": "Src", "actionTypeId": {"category": "Source", "owner": "ThirdParty", "provider": "GitHub", "version": "1"}, "configuration": {"Owner": "o", "Repo": "r", "Branch": "main"}}]},
            {"name": "Build", "actions": [{"name": "Run", "actionTypeId": {"category": "Build", "owner": "Custom", "provider": "Command", "version": "1"}, "configuration": {"Command": format!("touch {}", marker.display())}}]}
        ]
    });
    let (status, body) = crate::support::signed_post(
        &url,
        "CodePipeline_20150709.CreatePipeline",
        serde_json::to_vec(&serde_json::json!({"pipeline": pipeline})).unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = c.start_pipeline_execution().name("p").send().await.unwrap().pipeline_execution_id.unwrap();
    let e = crate::support::wait_done(&c, "p", &id).await;
    assert_eq!(e.status, Some(aws_sdk_codepipeline::types::PipelineExecutionStatus::Failed));
    let actions = c.list_action_executions().pipeline_name("p").send().await.unwrap();
    let run = actions.action_execution_details().iter().find(|a| a.action_name() == Some("Run")).unwrap();
    let summary = format!("{:?}", run.output());
    assert!(summary.contains("bubblewrap") || format!("{run:?}").contains("bubblewrap"), "{run:?}");
    assert!(!marker.exists(), "the command did not run unsandboxed");
    let stderr = terminate(server);
    for needle in
        ["bubblewrap", "apt-get install bubblewrap", "PIPEHOOK_RUNNER_EXECUTOR=none", "nothing runs unsandboxed"]
    {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }

    let (api, _) = spawn_serve(&data, &[("PATH", &path), ("PIPEHOOK_ROLE", "api")]).await.expect("the api role");
    terminate(api);

    let (unsandboxed, _) = spawn_serve(&data, &[("PATH", &path), ("PIPEHOOK_RUNNER_EXECUTOR", "none")])
        .await
        .expect("executor none starts without bubblewrap");
    let stderr = terminate(unsandboxed);
    assert!(stderr.contains("UNSANDBOXED") && stderr.contains("trusted"), "{stderr}");
}

/// Not a check but a measurement: a pipeline of 50 `true` actions one after the other (runOrder 1 to 50), from
/// start to end, on a server without and with the sandbox
/// (`cargo test --release -p pipehook --test it overhead -- --ignored --nocapture`).
#[tokio::test]
#[ignore]
async fn overhead_of_a_pipeline_of_50_true_actions() {
    for executor in ["none", "sandbox"] {
        let s = TestServer::builder().env("PIPEHOOK_RUNNER_EXECUTOR", executor).start().await.unwrap();
        let actions: Vec<Value> = (1..=50)
            .map(|i| {
                let mut action = command_action(&format!("A{i}"), "true", &[]);
                action["runOrder"] = json!(i);
                action
            })
            .collect();
        let mut pipeline = declaration("fifty", None, actions);
        pipeline["executionMode"] = json!("PARALLEL");
        let first = start(&s.url, TOKEN, pipeline).await;
        finished(&s.url, TOKEN, "fifty", &first).await;
        let mut runs = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            let (status, body) = call(&s.url, TOKEN, Method::POST, "pipelines/fifty/executions", Some(json!({}))).await;
            assert!((200..300).contains(&status), "{body}");
            let id = body["pipelineExecutionId"].as_str().unwrap().to_owned();
            let (e, _) = finished(&s.url, TOKEN, "fifty", &id).await;
            assert_eq!(e["status"], "Succeeded", "{e}");
            runs.push(started.elapsed());
        }
        println!("executor {executor}: 50 sequential true actions end to end: {runs:.2?}");
        s.stop().await.unwrap();
    }
}
