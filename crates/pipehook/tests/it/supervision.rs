//! Commands die with their node: after `kill -9` of the real binary the running command's shell is gone
//! (PR_SET_PDEATHSIG), and what the shell started in the background is killed when the node starts again on the
//! same data folder, before it runs anything.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::pipehook_cmd;

const TOKEN: &str = "phk_supervisionTokenXY0123456789abcdefghij";

/// Every wait in this file ends after this long at most.
const WAIT: Duration = Duration::from_secs(30);

/// The server, killed (SIGKILL) and reaped when dropped, so a failing test leaves no server behind.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Processes by pid, killed when dropped (a failing test leaves no `sleep 300` behind).
struct Reaper(Vec<u32>);

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).stderr(Stdio::null()).status();
        }
    }
}

async fn serve(data: &Path) -> Server {
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let child = pipehook_cmd()
        .args(["serve", "--listen", &listen, "--data-dir"])
        .arg(data)
        .envs([("PIPEHOOK_RUNNER_EXECUTOR", "none"), ("PIPEHOOK_BOOTSTRAP_TOKEN", TOKEN)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server { child, url: format!("http://{listen}") };
    let client = reqwest::Client::new();
    let until = Instant::now() + WAIT;
    loop {
        if client.get(format!("{}/healthz", server.url)).send().await.is_ok_and(|r| r.status().is_success()) {
            return server;
        }
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("pipehook serve exited with {status}");
        }
        assert!(Instant::now() < until, "pipehook serve did not come up within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn call(url: &str, method: Method, path: &str, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .request(method, format!("{url}/api/orgs/default/{path}"))
        .header("authorization", format!("token {TOKEN}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A pipeline whose one command is `command`.
fn pipeline(name: &str, command: &str) -> Value {
    json!({
        "name": name,
        "roleArn": "arn:aws:iam::123456789012:role/pipehook",
        "artifactStore": {"type": "S3", "location": "artifact-bucket"},
        "stages": [
            {"name": "Source", "actions": [{
                "name": "Source",
                "actionTypeId": {"category": "Source", "owner": "ThirdParty", "provider": "GitHub", "version": "1"},
                "configuration": {"Owner": "octo", "Repo": "app", "Branch": "master", "OAuthToken": "****"},
                "runOrder": 1,
            }]},
            {"name": "Build", "actions": [{
                "name": "Run",
                "actionTypeId": {"category": "Build", "owner": "Custom", "provider": "Command", "version": "1"},
                "configuration": {"Command": command},
                "runOrder": 1,
            }]},
        ],
    })
}

/// Whether `pid` has stopped running: gone, or a zombie nobody reaped yet.
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with(['Z', 'X', 'x'])),
    }
}

async fn wait_gone(pid: u32) -> bool {
    let until = Instant::now() + WAIT;
    while !gone(pid) {
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

async fn read_pid(path: &PathBuf) -> u32 {
    let until = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.ends_with('\n') {
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
        }
        assert!(Instant::now() < until, "{} was not written within {WAIT:?}", path.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn commands_die_with_a_killed_node_and_their_leftovers_at_its_restart() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let (shell_file, child_file) = (temp.path().join("shell.pid"), temp.path().join("child.pid"));
    let command = format!("echo $$ > {}; sleep 300 & echo $! > {}; wait", shell_file.display(), child_file.display());

    let mut server = serve(&data).await;
    let (status, body) = call(&server.url, Method::POST, "pipelines", pipeline("long", &command)).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(&server.url, Method::POST, "pipelines/long/executions", json!({})).await;
    assert!((200..300).contains(&status), "{status} {body}");
    let shell = read_pid(&shell_file).await;
    let background = read_pid(&child_file).await;
    let _reaper = Reaper(vec![shell, background]);
    assert!(!gone(shell) && !gone(background), "the command runs");
    assert!(data.join("commands").join(shell.to_string()).exists(), "the running group is written down");

    // kill -9: the node has no chance to end its commands itself.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(wait_gone(shell).await, "the shell died with its node (PR_SET_PDEATHSIG)");
    assert!(!gone(background), "what the shell started in the background outlives it, until the next start");

    let server = serve(&data).await;
    assert!(wait_gone(background).await, "the restarted node killed what its previous life left running");
    assert!(!data.join("commands").join(shell.to_string()).exists(), "and forgot the group");
    drop(server);
}
