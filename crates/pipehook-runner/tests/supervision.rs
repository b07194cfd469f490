//! Commands do not outlive their worker: the registry of running process groups ([`ProcessRegistry`]) and
//! [`reap_leftovers`], which a restarted node calls to kill what its previous life left running, with real
//! process groups. (That the shell itself dies with the worker, `PR_SET_PDEATHSIG`, needs the worker to die:
//! `crates/pipehook/tests/it/supervision.rs` kills the real binary.)

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pipehook_runner::exec::{reap_leftovers, run, CommandSpec, Executor, ProcessRegistry};
use pipehook_runner::sandbox::Network;
use tokio_util::sync::CancellationToken;

/// Whether the process `pid` has stopped running: gone, or a zombie waiting for whoever adopted it (which in a
/// container may never reap it).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with(['Z', 'X', 'x'])),
    }
}

/// Waits up to 10 s for `pid` to stop running.
fn wait_gone(pid: u32) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    gone(pid)
}

/// A pid no process has any more (one that ran and was reaped; another process may get it later, but not with
/// this one's start time).
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// A shell leading its own process group, with a background `sleep` in it, as a command of [`run`] would leave
/// one. Both are killed when the value is dropped, so a failing test leaves nothing running.
struct Group {
    shell: Child,
    background: u32,
}

impl Group {
    fn start(dir: &Path) -> Group {
        let pidfile = dir.join(format!("background-{}", rand_suffix()));
        let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
        let shell = Command::new("/bin/sh")
            .args(["-c", &script])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        let background = loop {
            if let Some(pid) = std::fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse().ok()) {
                break pid;
            }
            assert!(Instant::now() < until, "the shell did not start its background process");
            std::thread::sleep(Duration::from_millis(10));
        };
        Group { shell, background }
    }

    fn pgid(&self) -> i32 {
        self.shell.id() as i32
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", &self.background.to_string()]).stderr(Stdio::null()).status();
        let _ = self.shell.kill();
        let _ = self.shell.wait();
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Rewrites the worker a registry file names, as if the worker that wrote it were gone.
fn orphan(registry: &ProcessRegistry, pgid: i32) {
    let path = registry.dir().join(pgid.to_string());
    let text = std::fs::read_to_string(&path).unwrap();
    let dead = dead_pid();
    let text: Vec<String> = text
        .lines()
        .map(|line| if line.starts_with("owner=") { format!("owner={dead}") } else { line.to_owned() })
        .collect();
    std::fs::write(&path, text.join("\n") + "\n").unwrap();
}

fn files(registry: &ProcessRegistry) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(registry.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A group written down by a worker that is gone is killed: its shell and what the shell started.
#[tokio::test]
async fn a_dead_workers_groups_are_killed() {
    let temp = tempfile::tempdir().unwrap();
    let registry = ProcessRegistry::open(temp.path().join("commands")).unwrap();
    let mut group = Group::start(temp.path());
    registry.record(group.pgid()).await.unwrap();
    orphan(&registry, group.pgid());

    assert_eq!(registry.reap_leftovers().unwrap(), 1);
    let _ = group.shell.wait();
    assert!(wait_gone(group.shell.id()), "the shell was killed");
    assert!(wait_gone(group.background), "its background process was killed");
    assert!(files(&registry).is_empty(), "{:?}", files(&registry));
    assert_eq!(reap_leftovers(registry.dir()).unwrap(), 0, "nothing twice");
}

/// The case a killed worker leaves: its shell died with it (PR_SET_PDEATHSIG) and was reaped, so the group's
/// leader pid is gone, but the shell's background process still runs in the group. It is found and killed.
#[tokio::test]
async fn a_group_whose_shell_died_is_still_killed() {
    let temp = tempfile::tempdir().unwrap();
    let registry = ProcessRegistry::open(temp.path().join("commands")).unwrap();
    let mut group = Group::start(temp.path());
    registry.record(group.pgid()).await.unwrap();
    orphan(&registry, group.pgid());
    group.shell.kill().unwrap();
    group.shell.wait().unwrap();
    assert!(!gone(group.background), "the background process outlives its shell");

    assert_eq!(registry.reap_leftovers().unwrap(), 1);
    assert!(wait_gone(group.background), "the background process was killed");
    assert!(files(&registry).is_empty());
}

/// A file whose start time is not that of the process now holding the pid (the group ended and the pid was
/// reused) is removed, and nothing is killed; so is a file that cannot be read. A living worker's groups are
/// left alone, file and processes.
#[tokio::test]
async fn reused_pids_and_living_workers_are_left_alone() {
    let temp = tempfile::tempdir().unwrap();
    let registry = ProcessRegistry::open(temp.path().join("commands")).unwrap();

    let reused = Group::start(temp.path());
    registry.record(reused.pgid()).await.unwrap();
    orphan(&registry, reused.pgid());
    let path = registry.dir().join(reused.pgid().to_string());
    let text = std::fs::read_to_string(&path).unwrap();
    let text: Vec<String> = text
        .lines()
        .map(|line| if line.starts_with("start_time=") { "start_time=1".to_owned() } else { line.to_owned() })
        .collect();
    std::fs::write(&path, text.join("\n") + "\n").unwrap();

    let garbled = Group::start(temp.path());
    std::fs::write(registry.dir().join(garbled.pgid().to_string()), "start_time=").unwrap();

    let living = Group::start(temp.path());
    registry.record(living.pgid()).await.unwrap();

    assert_eq!(registry.reap_leftovers().unwrap(), 0);
    assert_eq!(files(&registry), vec![living.pgid().to_string()], "only the living worker's file is left");
    std::thread::sleep(Duration::from_millis(200));
    for group in [&reused, &garbled, &living] {
        assert!(!gone(group.shell.id()) && !gone(group.background), "nothing was killed");
    }
}

/// [`run`] writes the group of a running command down (a file named by its pid, owner-only) and takes it out when
/// the command ends; without a registry it writes nothing.
#[tokio::test]
async fn run_records_its_group_while_it_runs() {
    use std::os::unix::fs::PermissionsExt;
    let temp = tempfile::tempdir().unwrap();
    let registry = ProcessRegistry::open(temp.path().join("commands")).unwrap();
    assert_eq!(std::fs::metadata(registry.dir()).unwrap().permissions().mode() & 0o777, 0o700);
    let spec = CommandSpec {
        command: format!("echo $$ > {}/pid; sleep 2", temp.path().display()),
        workdir: temp.path().to_owned(),
        env: Vec::new(),
        timeout: Duration::from_secs(20),
        log_limit: 4096,
        executor: Executor::Direct,
        writable: Vec::new(),
        network: Network::Shared,
        registry: Some(registry.clone()),
    };
    let running = tokio::spawn(async move { run(&spec, &CancellationToken::new(), None).await });
    let until = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        if let Some(pid) =
            std::fs::read_to_string(temp.path().join("pid")).ok().and_then(|s| s.trim().parse::<u32>().ok())
        {
            break pid;
        }
        assert!(Instant::now() < until, "the command did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(files(&registry), vec![pid.to_string()]);
    let file = registry.dir().join(pid.to_string());
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(registry.reap_leftovers().unwrap(), 0, "a living worker's command is not killed");
    assert!(!gone(pid));

    let result = running.await.unwrap();
    assert!(result.outcome.is_success(), "{result:?}");
    assert!(files(&registry).is_empty(), "{:?}", files(&registry));

    // A dropped run (a worker task aborted) takes its group out too.
    let spec = CommandSpec {
        command: "sleep 30".to_owned(),
        workdir: temp.path().to_owned(),
        env: Vec::new(),
        timeout: Duration::from_secs(60),
        log_limit: 4096,
        executor: Executor::Direct,
        writable: Vec::new(),
        network: Network::Shared,
        registry: Some(registry.clone()),
    };
    let running = tokio::spawn(async move { run(&spec, &CancellationToken::new(), None).await });
    let until = Instant::now() + Duration::from_secs(10);
    while files(&registry).is_empty() {
        assert!(Instant::now() < until, "the command did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid: u32 = files(&registry)[0].parse().unwrap();
    running.abort();
    let _ = running.await;
    assert!(files(&registry).is_empty(), "{:?}", files(&registry));
    assert!(wait_gone(pid));
}
