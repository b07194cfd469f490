//! The binary as an operator runs it: bad configuration, first start, restart, shutdown on a signal.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{pipehook_cmd, TestServer, TOKEN};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `pipehook serve` and waits until /healthz answers.
async fn spawn_serve(dir: &std::path::Path, envs: &[(&str, &str)]) -> (Child, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = pipehook_cmd()
        .args(["serve", "--listen", &listen, "--data-dir"])
        .arg(dir)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://{listen}");
    let client = reqwest::Client::new();
    for _ in 0..400 {
        if client.get(format!("{url}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return (child, url);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("pipehook serve did not come up");
}

fn sigterm(child: &Child) {
    let ok = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < within, "pipehook did not exit within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_configuration_is_one_line_and_exit_code_2_with_nothing_created() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("PIPEHOOK_DATABASE_URL", "mysql://root@localhost/x")], "database_url"),
        (&[("PIPEHOOK_MASTER_KEY", "too-short")], "master_key"),
        (&[("PIPEHOOK_LISTEN", "localhost")], "listen"),
        (&[("PIPEHOOK_WORKER_CONCURRENCY", "lots")], "PIPEHOOK_WORKER_CONCURRENCY"),
        (&[("PIPEHOOK_ROLE", "everything")], "role"),
    ];
    for (env, needle) in cases {
        let out = pipehook_cmd().args(["serve", "--data-dir"]).arg(&dir).envs(env.iter().copied()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{env:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(needle), "{env:?}: {stderr}");
        assert!(!dir.exists(), "{env:?}: nothing may be created");
    }
    // A data folder that cannot be created.
    let out = pipehook_cmd().args(["migrate", "--data-dir", "/proc/pipehook-cannot-exist"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("data_dir"));
    // A malformed master key file.
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("master.key"), "garbage\n").unwrap();
    let out = pipehook_cmd().args(["migrate", "--data-dir"]).arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("master key"));
    assert!(!dir.join("pipehook.db").exists(), "no database is created with a bad key");
    // A config file with an unknown key.
    let file = parent.path().join("c.toml");
    std::fs::write(&file, "lisen = \"127.0.0.1:1\"\n").unwrap();
    let out = pipehook_cmd().args(["serve", "--config"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lisen"));
}

#[test]
fn unreachable_postgres_is_retried_then_fails() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = pipehook_cmd()
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .env("PIPEHOOK_DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
        .env("PIPEHOOK_POSTGRES_CONNECT_TIMEOUT_SECONDS", "2")
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("PostgreSQL unreachable"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(elapsed >= Duration::from_millis(1000), "it retried for a while: {elapsed:?}");
}

#[test]
fn version_and_help() {
    let out = pipehook_cmd().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("pipehook 0."));
    let out = pipehook_cmd().arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for cmd in ["serve", "migrate", "org", "token", "access-key"] {
        assert!(help.contains(cmd), "{help}");
    }
}

#[tokio::test]
async fn first_start_generates_credentials_once_and_sigterm_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn_serve(dir.path(), &[]).await;
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("master.key")).unwrap().permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600, "the generated master key is private");
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success(), "SIGTERM exits 0");
    let mut stdout = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        stdout.push_str(&line.unwrap());
        stdout.push('\n');
    }
    let token = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("REST API token:"))
        .map(|t| t.trim().to_owned())
        .expect("the first start prints a token");
    assert!(stdout.contains("AWS access key id:") && stdout.contains("AWS secret access key:"));

    // Restart on the same folder: the same key and credentials, nothing printed again.
    let (mut child, url2) = spawn_serve(dir.path(), &[]).await;
    let res = reqwest::Client::new()
        .get(format!("{url2}/api/orgs/default"))
        .header("authorization", format!("token {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the generated token survives a restart");
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut rest).unwrap();
    assert!(!rest.contains("REST API token"), "credentials are printed only once");
    let _ = url;
}

#[tokio::test]
async fn bootstrap_is_idempotent_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let s = TestServer::builder().data_dir(dir.path()).start().await.unwrap();
        assert_eq!(s.get("/api/orgs/default", Some(TOKEN)).await.0, 200);
        s.stop().await.unwrap();
    }
    // Declaring a different account id for the existing organization is refused, clearly.
    let out = pipehook_cmd().args(["migrate", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success());
    let s = TestServer::builder().data_dir(dir.path()).env("PIPEHOOK_BOOTSTRAP_ACCOUNT_ID", "999999999999");
    let env: std::collections::HashMap<String, String> = [
        ("PIPEHOOK_DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("PIPEHOOK_BOOTSTRAP_ACCOUNT_ID".to_owned(), "999999999999".to_owned()),
    ]
    .into();
    drop(s);
    let config = pipehook::config::Config::load(None, &|k| env.get(k).cloned(), &Default::default()).unwrap();
    let err = pipehook::run(config, None, tokio_util::sync::CancellationToken::new()).await.unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("already exists with account id 123456789012"), "{err}");
}
