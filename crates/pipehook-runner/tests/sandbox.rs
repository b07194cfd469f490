//! Tests of the sandbox executor with real bubblewrap sandboxes: what a command can see, reach and use, that
//! the executor's guarantees (timeout, stop, nothing left running) hold inside, and builds whose phases and
//! git checkouts go through it. bubblewrap must be installed (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipehook_runner::build::{run_build, BuildIdentity, BuildRequest, GitSource, StatusType};
use pipehook_runner::exec::{run, CommandResult, CommandSpec, Executor, Outcome};
use pipehook_runner::sandbox::{Limits, Network, NetworkPolicy, Sandbox, SandboxSettings, NETWORK_VAR};
use tokio_util::sync::CancellationToken;

fn sandbox(settings: SandboxSettings) -> Executor {
    let sandbox = Sandbox::new(settings).unwrap_or_else(|e| panic!("bubblewrap is needed for these tests: {e}"));
    Executor::Sandbox(Arc::new(sandbox))
}

fn spec(workdir: &Path, command: &str) -> CommandSpec {
    CommandSpec {
        command: command.to_owned(),
        workdir: workdir.to_owned(),
        env: Vec::new(),
        timeout: Duration::from_secs(20),
        log_limit: 64 * 1024,
        executor: sandbox(SandboxSettings::default()),
        writable: Vec::new(),
        network: Network::Shared,
        registry: None,
    }
}

async fn run_plain(spec: &CommandSpec) -> CommandResult {
    run(spec, &CancellationToken::new(), None).await
}

/// A data folder like the server's: a database, a master key, and two workspaces.
struct Host {
    _dir: tempfile::TempDir,
    data: PathBuf,
    mine: PathBuf,
    other: PathBuf,
}

fn host() -> Host {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mine = data.join("workspaces").join("exec-mine");
    let other = data.join("workspaces").join("exec-other");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(data.join("master.key"), "MASTER-KEY-MARKER\n").unwrap();
    std::fs::write(data.join("pipehook.db"), "DATABASE-MARKER\n").unwrap();
    std::fs::write(other.join("secret.txt"), "OTHER-WORKSPACE-MARKER\n").unwrap();
    std::fs::write(mine.join("mine.txt"), "my own file\n").unwrap();
    Host { _dir: dir, data, mine, other }
}

#[tokio::test]
async fn the_probe_succeeds_here() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::new(SandboxSettings::default()).unwrap();
    sandbox.probe(dir.path()).await.unwrap();
}

/// The workspace is there, read-write, at its real path; the data folder and other workspaces are not.
#[tokio::test]
async fn a_command_sees_its_workspace_and_nothing_of_the_data_folder() {
    let h = host();
    let script = format!(
        "pwd; cat mine.txt; echo written > new.txt && echo wrote-ok
         cat {data}/master.key || echo no-master-key
         cat {data}/pipehook.db || echo no-database
         ls {data} && echo listed-data
         cat {other}/secret.txt || echo no-other-workspace
         ls {data}/workspaces
         touch /usr/pwned || echo usr-read-only
         touch /pwned || echo root-read-only
         cat /etc/shadow || echo no-shadow
         echo tmp > /tmp/x && cat /tmp/x && echo \"home=$HOME\" && touch \"$HOME/h\" && echo home-ok",
        data = h.data.display(),
        other = h.other.display()
    );
    let result = run_plain(&spec(&h.mine, &script)).await;
    assert_eq!(result.outcome, Outcome::Succeeded, "{}", result.log);
    let log = &result.log;
    assert!(log.starts_with(&format!("{}\nmy own file\n", h.mine.display())), "{log}");
    for want in ["wrote-ok", "no-master-key", "no-database", "no-other-workspace", "usr-read-only", "root-read-only"] {
        assert!(log.contains(want), "{want}: {log}");
    }
    for want in ["no-shadow", "home=/tmp/home", "home-ok"] {
        assert!(log.contains(want), "{want}: {log}");
    }
    for leaked in ["MASTER-KEY-MARKER", "DATABASE-MARKER", "OTHER-WORKSPACE-MARKER"] {
        assert!(!log.contains(leaked), "{leaked} leaked: {log}");
    }
    // The data folder holds only the way to this workspace.
    for listed in ["exec-other", "master.key", "pipehook.db"] {
        assert!(!log.lines().any(|l| l == listed), "{listed} listed: {log}");
    }
    assert_eq!(std::fs::read_to_string(h.mine.join("new.txt")).unwrap(), "written\n");
}

/// The worker is invisible: its own PID namespace, a /proc of its own, and nothing of the worker's environment.
#[tokio::test]
async fn the_worker_is_out_of_sight_and_out_of_reach() {
    let h = host();
    let me = std::process::id();
    let script = format!(
        "kill -0 {me} && echo worker-visible
         kill -STOP {me} && echo worker-stopped
         cat /proc/{me}/environ && echo read-worker-environ
         tr '\\0' '\\n' < /proc/1/environ
         echo processes: $(ls /proc | grep -c '^[0-9]')
         env"
    );
    let mut spec = spec(&h.mine, &script);
    spec.env.push(("GREETING".into(), "hello".into()));
    let result = run_plain(&spec).await;
    assert_eq!(result.outcome, Outcome::Succeeded, "{}", result.log);
    let log = &result.log;
    for bad in ["worker-visible", "worker-stopped", "read-worker-environ", "CARGO", "RUST"] {
        assert!(!log.contains(bad), "{bad}: {log}");
    }
    assert!(log.contains("GREETING=hello"), "{log}");
    assert!(log.contains("LANG=C.UTF-8"), "{log}");
    let processes: usize = log
        .lines()
        .find_map(|l| l.strip_prefix("processes: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{log}"));
    assert!(processes < 10, "only the sandbox's processes: {log}");
}

/// Variables never appear on a command line (which every local user can read in /proc), and bubblewrap itself
/// gets no environment.
#[tokio::test]
async fn variables_stay_off_command_lines() {
    let h = host();
    let marker = format!("VALUE-MARKER-{}", std::process::id());
    let mut spec = spec(&h.mine, "sleep 3");
    spec.env.push(("TOKEN".into(), marker.clone()));
    let running = tokio::spawn(async move { run_plain(&spec).await });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut bwrap_seen = false;
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        assert!(!cmdline.contains(&marker), "{cmdline}");
        if cmdline.contains("bwrap") && cmdline.contains("sleep 3") {
            bwrap_seen = true;
            let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            let environ = String::from_utf8_lossy(&environ);
            assert!(!environ.contains(&marker), "{environ}");
        }
    }
    assert!(bwrap_seen, "the sandbox was running");
    assert_eq!(running.await.unwrap().outcome, Outcome::Succeeded);
}

fn processes_with(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let zombie = stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'));
            (cmdline.contains(marker) && !zombie).then_some(cmdline)
        })
        .collect()
}

async fn assert_none_left(marker: &str) {
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let left = processes_with(marker);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < until, "still running: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A timeout ends the sandbox and everything in it, background processes and new sessions included.
#[tokio::test]
async fn a_timeout_ends_everything_in_the_sandbox() {
    let h = host();
    let marker = "77.123";
    let mut spec = spec(&h.mine, &format!("sleep {marker} & setsid sleep {marker} & trap '' TERM; sleep {marker}"));
    spec.timeout = Duration::from_millis(500);
    let started = Instant::now();
    let result = run_plain(&spec).await;
    assert_eq!(result.outcome, Outcome::TimedOut, "{}", result.log);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_none_left(marker).await;
}

#[tokio::test]
async fn a_stop_ends_everything_in_the_sandbox() {
    let h = host();
    let marker = "78.456";
    let spec = spec(&h.mine, &format!("sleep {marker} & sleep {marker}"));
    let stop = CancellationToken::new();
    let stopper = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stopper.cancel();
    });
    let result = run(&spec, &stop, None).await;
    assert_eq!(result.outcome, Outcome::Stopped, "{}", result.log);
    assert_none_left(marker).await;
}

/// What a command leaves running in the background ends with it (its PID namespace goes when it exits).
#[tokio::test]
async fn background_processes_end_with_the_command() {
    let h = host();
    let marker = "79.789";
    let started = Instant::now();
    let result = run_plain(&spec(&h.mine, &format!("sleep {marker} >/dev/null 2>&1 & echo started"))).await;
    assert_eq!(result.outcome, Outcome::Succeeded, "{}", result.log);
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_none_left(marker).await;
}

#[tokio::test]
async fn exit_codes_and_missing_commands_as_without_the_sandbox() {
    let h = host();
    let result = run_plain(&spec(&h.mine, "echo about to fail; exit 3")).await;
    assert_eq!(result.outcome, Outcome::Failed { exit_code: Some(3), signal: None });
    let result = run_plain(&spec(&h.mine, "pipehook-no-such-command-xyz")).await;
    assert_eq!(result.outcome, Outcome::Failed { exit_code: Some(127), signal: None }, "{}", result.log);
    assert!(result.log.contains("not found"), "{}", result.log);
    // Standard input is empty, as without the sandbox.
    let result = run_plain(&spec(&h.mine, "cat; echo \"read $(wc -c)\"")).await;
    assert_eq!(result.outcome, Outcome::Succeeded, "{}", result.log);
    assert!(result.log.contains("read 0"), "{}", result.log);
}

/// Limits are set inside and cannot be raised; a file over the size limit cannot be written.
#[tokio::test]
async fn limits_apply_and_cannot_be_raised() {
    let h = host();
    let limits = Limits {
        cpu_seconds: 30,
        memory_bytes: 512 * 1024 * 1024,
        processes: 300,
        file_size_bytes: 1024 * 1024,
        tmp_bytes: 8 * 1024 * 1024,
    };
    let mut spec = spec(&h.mine, "");
    spec.executor = sandbox(SandboxSettings { limits, ..SandboxSettings::default() });
    spec.command =
        "bash -c 'echo cpu=$(ulimit -t) as=$(ulimit -v) nproc=$(ulimit -u) fsize=$(ulimit -f) core=$(ulimit -c)
        ulimit -t 100 2>/dev/null && echo raised-cpu'
        head -c 2097152 /dev/zero > big.bin; echo big=$(wc -c < big.bin)
        for i in $(seq 1 12); do head -c 1048576 /dev/zero > /tmp/f$i 2>/dev/null || break; done
        echo tmp=$(cat /tmp/f* | wc -c)"
            .into();
    let result = run_plain(&spec).await;
    let log = &result.log;
    assert!(log.contains("cpu=30 as=524288 nproc=300 fsize=1024 core=0"), "{log}");
    assert!(!log.contains("raised-cpu"), "{log}");
    assert!(log.contains("big=1048576"), "the file stops at the size limit: {log}");
    let tmp: u64 = log
        .lines()
        .find_map(|l| l.strip_prefix("tmp="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{log}"));
    assert!(tmp <= 8 * 1024 * 1024, "/tmp is bounded: {log}");
}

/// A process past its CPU seconds is killed.
#[tokio::test]
async fn cpu_time_is_limited() {
    let h = host();
    let limits = Limits { cpu_seconds: 1, ..Limits::default() };
    let mut spec = spec(&h.mine, "while :; do :; done");
    spec.executor = sandbox(SandboxSettings { limits, ..SandboxSettings::default() });
    let started = Instant::now();
    let result = run_plain(&spec).await;
    // bubblewrap reports a command killed by a signal as 128 + the signal (SIGXCPU 24, SIGKILL 9).
    assert!(
        matches!(result.outcome, Outcome::Failed { exit_code: Some(152 | 137), .. }),
        "{:?} {}",
        result.outcome,
        result.log
    );
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}

/// A TCP listener on the host's loopback: reachable with the shared network, not from an isolated one, and
/// never when the operator's policy isolates every command.
#[tokio::test]
async fn network_isolation_cuts_the_network() {
    let h = host();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepts = tokio::spawn(async move {
        let mut n = 0;
        while let Ok((_socket, _)) = listener.accept().await {
            n += 1;
        }
        n
    });
    let connect = format!(
        "if bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' 2>/dev/null; then echo connected; else echo refused; fi"
    );

    let shared = spec(&h.mine, &connect);
    let result = run_plain(&shared).await;
    assert!(result.log.contains("connected"), "{}", result.log);

    let mut isolated = shared.clone();
    isolated.network = Network::Isolated;
    let result = run_plain(&isolated).await;
    assert!(result.log.contains("refused"), "{}", result.log);

    let mut policy = shared.clone();
    policy.executor = sandbox(SandboxSettings { network: NetworkPolicy::Isolated, ..SandboxSettings::default() });
    let result = run_plain(&policy).await;
    assert!(result.log.contains("refused"), "{}", result.log);
    accepts.abort();
}

/// The operator's extra read-only paths are there, read-only.
#[tokio::test]
async fn extra_read_only_paths() {
    let h = host();
    let tools = tempfile::tempdir().unwrap();
    std::fs::write(tools.path().join("tool.txt"), "a tool\n").unwrap();
    let mut spec = spec(&h.mine, &format!("cat {0}/tool.txt; touch {0}/x || echo read-only", tools.path().display()));
    spec.executor =
        sandbox(SandboxSettings { read_only_paths: vec![tools.path().to_owned()], ..SandboxSettings::default() });
    let result = run_plain(&spec).await;
    assert!(result.log.contains("a tool") && result.log.contains("read-only"), "{}", result.log);
    assert!(!tools.path().join("x").exists());
}

/// An origin repository with one commit.
fn origin(dir: &Path) -> String {
    let path = dir.join("origin");
    std::fs::create_dir(&path).unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(&path)
            .args(["-c", "commit.gpgsign=false", "-c", "user.name=Ada", "-c", "user.email=ada@example.com"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["init", "--quiet", "-b", "main"]);
    std::fs::write(path.join("hello.txt"), "hello from git\n").unwrap();
    git(&["add", "hello.txt"]);
    git(&["commit", "--quiet", "-m", "Add hello"]);
    path.display().to_string()
}

/// A build whose source was checked out (by git, outside the sandbox) into its workspace: every phase runs
/// sandboxed, sees the source at its real path, carries `cd` and exports to the next phase through the state
/// folder, and cannot see the repository it came from. PIPEHOOK_NETWORK=none from the buildspec isolates it.
#[tokio::test]
async fn a_build_runs_its_phases_in_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let url = origin(dir.path());
    let source_dir = dir.path().join("ws").join("src");
    let buildspec = format!(
        "version: 0.2\nenv:\n  variables:\n    {NETWORK_VAR}: none\nphases:\n  install:\n    commands:\n      - mkdir -p out && cd out\n      - export CARRIED=yes\n  build:\n    commands:\n      - pwd\n      - echo \"carried=$CARRIED\"\n      - cat ../hello.txt\n      - ls {url} || echo no-origin\n"
    );
    let request = BuildRequest {
        identity: BuildIdentity { build_id: "p:1".into(), ..BuildIdentity::default() },
        buildspec: pipehook_runner::buildspec::parse(&buildspec).unwrap(),
        source_dir: source_dir.clone(),
        env: Vec::new(),
        timeout: Duration::from_secs(60),
        log_limit: 64 * 1024,
        submitted_at: None,
        executor: sandbox(SandboxSettings::default()),
        registry: None,
    };
    let source = GitSource { url: url.clone(), revision: Some("main".into()), extra_env: Vec::new() };
    let outcome = run_build(&request, &source, &(), &CancellationToken::new(), None).await;
    assert_eq!(outcome.build_status, StatusType::Succeeded, "{}", outcome.log);
    let log = &outcome.log;
    assert!(log.contains(&format!("{}\n", source_dir.join("out").display())), "{log}");
    assert!(log.contains("carried=yes") && log.contains("hello from git") && log.contains("no-origin"), "{log}");

    // A value the variable does not take fails PROVISIONING before anything runs.
    let mut bad = request.clone();
    bad.env.push((NETWORK_VAR.into(), "off".into()));
    bad.source_dir = dir.path().join("ws2").join("src");
    let outcome = run_build(&bad, &source, &(), &CancellationToken::new(), None).await;
    assert_eq!(outcome.build_status, StatusType::Failed, "{}", outcome.log);
    let provisioning = &outcome.phases[2];
    assert_eq!(provisioning.contexts[0].status_code, "CLIENT_ERROR");
    assert!(provisioning.contexts[0].message.contains(NETWORK_VAR), "{:?}", provisioning);
}

/// The state folder is writable from the sandbox, and pipehook itself reads and writes there between phases: a
/// symbolic link a phase leaves at the next phase's script or at the failure record must not make pipehook
/// write or read the file it points to.
#[tokio::test]
async fn links_left_in_the_state_folder_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("server-secret.txt");
    std::fs::write(&secret, "STATE-SECRET-MARKER\n").unwrap();
    let buildspec = format!(
        "version: 0.2\nphases:\n  install:\n    commands:\n      - ln -s {s} \"$__phk_state/build.sh\"\n  build:\n    commands:\n      - ln -s {s} \"$__phk_state/failed\"\n      - exit 1\n",
        s = secret.display()
    );
    let request = BuildRequest {
        identity: BuildIdentity { build_id: "p:2".into(), ..BuildIdentity::default() },
        buildspec: pipehook_runner::buildspec::parse(&buildspec).unwrap(),
        source_dir: dir.path().join("ws").join("src"),
        env: Vec::new(),
        timeout: Duration::from_secs(60),
        log_limit: 64 * 1024,
        submitted_at: None,
        executor: sandbox(SandboxSettings::default()),
        registry: None,
    };
    let outcome = run_build(&request, &pipehook_runner::build::NoSource, &(), &CancellationToken::new(), None).await;
    assert_eq!(outcome.build_status, StatusType::Failed, "{}", outcome.log);
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "STATE-SECRET-MARKER\n", "the script went elsewhere");
    let phases = serde_json::to_string(&outcome.phases).unwrap();
    assert!(!outcome.log.contains("STATE-SECRET-MARKER") && !phases.contains("STATE-SECRET-MARKER"), "{phases}");
    let build = outcome.phases.iter().find(|p| p.phase_type == pipehook_runner::build::PhaseType::Build).unwrap();
    assert_eq!(build.phase_status, Some(StatusType::Failed));
}

/// Not a check but a measurement: 50 `true` commands one after the other, without and with the sandbox
/// (`cargo test --release -p pipehook-runner --test sandbox overhead -- --ignored --nocapture`).
#[tokio::test]
#[ignore]
async fn overhead_of_50_true_commands() {
    let h = host();
    let isolated = {
        let mut s = spec(&h.mine, "true");
        s.network = Network::Isolated;
        s
    };
    let direct = CommandSpec { executor: Executor::Direct, ..spec(&h.mine, "true") };
    let no_limits = CommandSpec {
        executor: sandbox(SandboxSettings {
            limits: Limits { cpu_seconds: 0, memory_bytes: 0, processes: 0, file_size_bytes: 0, tmp_bytes: 0 },
            ..SandboxSettings::default()
        }),
        ..spec(&h.mine, "true")
    };
    for (name, spec) in [
        ("none (no sandbox)", direct),
        ("sandbox", spec(&h.mine, "true")),
        ("sandbox without limits (no prlimit)", no_limits),
        ("sandbox, PIPEHOOK_NETWORK=none", isolated),
    ] {
        assert_eq!(run_plain(&spec).await.outcome, Outcome::Succeeded);
        let started = Instant::now();
        for _ in 0..50 {
            assert_eq!(run_plain(&spec).await.outcome, Outcome::Succeeded);
        }
        let took = started.elapsed();
        println!("{name}: 50 x true in {took:.2?}, {:.2?} each", took / 50);
    }
}
