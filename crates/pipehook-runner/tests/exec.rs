//! Tests of the process executor with real processes under `/bin/sh`.

use std::path::Path;
use std::time::{Duration, Instant};

use pipehook_runner::exec::{run, CommandResult, CommandSpec, Executor, LogSink, Outcome};
use pipehook_runner::sandbox::Network;
use tokio_util::sync::CancellationToken;

fn spec(workdir: &Path, command: &str) -> CommandSpec {
    CommandSpec {
        command: command.to_owned(),
        workdir: workdir.to_owned(),
        env: Vec::new(),
        timeout: Duration::from_secs(20),
        log_limit: 64 * 1024,
        executor: Executor::Direct,
        writable: Vec::new(),
        network: Network::Shared,
        registry: None,
    }
}

async fn run_plain(spec: &CommandSpec) -> CommandResult {
    run(spec, &CancellationToken::new(), None).await
}

/// Whether the process `pid` is gone. A zombie counts as gone: it has stopped running and only
/// waits for whoever adopted it to reap it, which in a container may never happen.
fn process_gone(pid: &str) -> bool {
    let alive = std::process::Command::new("kill")
        .args(["-0", pid])
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !alive {
        return true;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the parenthesised command name.
    stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'))
}

/// Waits a little for `pid` to disappear, since reaping an orphan is not instantaneous.
async fn assert_process_gone(pid_file: &Path) {
    let pid = std::fs::read_to_string(pid_file).expect("the command wrote its pid");
    let pid = pid.trim();
    assert!(!pid.is_empty());
    let until = Instant::now() + Duration::from_secs(2);
    while !process_gone(pid) {
        assert!(Instant::now() < until, "process {pid} is still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn success_sees_env_and_writes_in_workdir() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path(), r#"echo "$GREETING" > out.txt; echo "hello from $GREETING"; env"#);
    spec.env.push(("GREETING".to_owned(), "bonjour".to_owned()));
    let result = run_plain(&spec).await;

    assert_eq!(result.outcome, Outcome::Succeeded, "{}", result.log);
    assert!(result.outcome.is_success());
    assert!(result.log.contains("hello from bonjour"), "{}", result.log);
    assert_eq!(std::fs::read_to_string(dir.path().join("out.txt")).unwrap(), "bonjour\n");
    assert!(!result.truncated);
    // The base environment is minimal: cargo's variables in this test process do not leak in.
    assert!(result.log.contains("PATH="), "{}", result.log);
    if std::env::var_os("CARGO_MANIFEST_DIR").is_some() {
        assert!(!result.log.contains("CARGO_MANIFEST_DIR"), "{}", result.log);
    }
}

#[tokio::test]
async fn non_zero_exit_is_failed_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let result = run_plain(&spec(dir.path(), "echo about to fail; exit 3")).await;
    assert_eq!(result.outcome, Outcome::Failed { exit_code: Some(3), signal: None });
    assert!(result.log.contains("about to fail"));
}

#[tokio::test]
async fn missing_command_is_127_with_the_shells_message() {
    let dir = tempfile::tempdir().unwrap();
    let result = run_plain(&spec(dir.path(), "pipehook-no-such-command-xyz --version")).await;
    assert_eq!(result.outcome, Outcome::Failed { exit_code: Some(127), signal: None });
    assert!(result.log.contains("not found"), "{}", result.log);
    assert!(result.log.contains("pipehook-no-such-command-xyz"), "{}", result.log);
}

#[tokio::test]
async fn missing_workdir_is_spawn_failed() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let result = run_plain(&spec(&missing, "true")).await;
    match result.outcome {
        Outcome::SpawnFailed(msg) => {
            assert!(msg.contains("does not exist"), "{msg}");
            assert!(msg.contains(&missing.display().to_string()), "{msg}");
        }
        other => panic!("expected SpawnFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path(), "sleep 30 & echo $! > child.pid; wait");
    spec.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let result = run_plain(&spec).await;

    assert_eq!(result.outcome, Outcome::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(result.duration >= Duration::from_millis(300));
    assert_process_gone(&dir.path().join("child.pid")).await;
}

#[tokio::test]
async fn timeout_escalates_to_sigkill_when_sigterm_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path(), "trap '' TERM; echo $$ > shell.pid; while :; do sleep 0.1; done");
    spec.timeout = Duration::from_millis(200);
    let started = Instant::now();
    let result = run_plain(&spec).await;

    assert_eq!(result.outcome, Outcome::TimedOut);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert_process_gone(&dir.path().join("shell.pid")).await;
}

#[tokio::test]
async fn stop_token_stops_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), "echo started; sleep 30 & echo $! > child.pid; wait");
    let stop = CancellationToken::new();
    let canceller = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            stop.cancel();
        })
    };
    let started = Instant::now();
    let result = run(&spec, &stop, None).await;
    canceller.await.unwrap();

    assert_eq!(result.outcome, Outcome::Stopped);
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert!(result.log.contains("started"));
    assert_process_gone(&dir.path().join("child.pid")).await;
}

#[tokio::test]
async fn already_cancelled_token_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let stop = CancellationToken::new();
    stop.cancel();
    let result = run(&spec(dir.path(), "touch ran"), &stop, None).await;
    assert_eq!(result.outcome, Outcome::Stopped);
    assert!(!dir.path().join("ran").exists());
}

#[tokio::test]
async fn log_is_bounded_keeping_head_and_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(dir.path(), "printf HEAD; head -c 1000000 /dev/zero | tr '\\0' x; printf TAIL");
    spec.log_limit = 4096;
    let result = run_plain(&spec).await;

    assert_eq!(result.outcome, Outcome::Succeeded);
    assert!(result.truncated);
    let marker = format!("\n[... {} bytes truncated ...]\n", 1_000_008 - 4096);
    assert!(result.log.contains(&marker), "{}", &result.log[..100]);
    assert!(result.log.len() <= 4096 + marker.len(), "{}", result.log.len());
    assert!(result.log.starts_with("HEADxxx"));
    assert!(result.log.ends_with("xxxTAIL"));
}

#[tokio::test]
async fn background_grandchild_holding_the_pipes_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), "sleep 30 & echo $! > child.pid; echo done");
    let started = Instant::now();
    let result = run_plain(&spec).await;

    assert_eq!(result.outcome, Outcome::Succeeded);
    assert!(result.log.contains("done"));
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    assert_process_gone(&dir.path().join("child.pid")).await;
}

#[tokio::test]
async fn closed_output_still_waits_for_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), "echo before; exec >&- 2>&-; sleep 0.5; exit 4");
    let result = run_plain(&spec).await;

    assert_eq!(result.outcome, Outcome::Failed { exit_code: Some(4), signal: None });
    assert!(result.duration >= Duration::from_millis(500), "{:?}", result.duration);
    assert_eq!(result.log, "before\n");
}

#[tokio::test]
async fn stderr_is_captured_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), "echo to-stdout; sleep 0.1; echo to-stderr >&2; sleep 0.1; echo again");
    let result = run_plain(&spec).await;

    assert_eq!(result.outcome, Outcome::Succeeded);
    assert_eq!(result.log, "to-stdout\nto-stderr\nagain\n");
}

#[tokio::test]
async fn killed_by_signal_reports_the_signal() {
    let dir = tempfile::tempdir().unwrap();
    let result = run_plain(&spec(dir.path(), "kill -KILL $$")).await;
    assert_eq!(result.outcome, Outcome::Failed { exit_code: None, signal: Some(9) });
}

#[tokio::test]
async fn log_sink_sees_output_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), "echo first; sleep 1; echo second");
    let (sink, mut rx) = LogSink::new();

    let watcher = tokio::spawn(async move {
        let started = Instant::now();
        loop {
            if rx.borrow_and_update().contains("first") {
                break started.elapsed();
            }
            rx.changed().await.expect("sink alive until first appears");
        }
    });
    let result = run(&spec, &CancellationToken::new(), Some(&sink)).await;
    let seen_after = tokio::time::timeout(Duration::from_secs(1), watcher).await.unwrap().unwrap();

    assert!(seen_after < Duration::from_millis(900), "first seen only after {seen_after:?}");
    assert_eq!(result.log, "first\nsecond\n");
    assert_eq!(*sink.subscribe().borrow(), result.log);
}
