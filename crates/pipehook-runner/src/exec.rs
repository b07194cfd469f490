//! The process executor: runs one shell command as a real process on the worker.
//!
//! [`run`] starts `/bin/sh -c <command>` in its own process group, with stdin on `/dev/null` and a
//! clean, minimal environment, and captures stdout and stderr together into one bounded log.
//! Timeouts and stops signal the whole process group (SIGTERM, then SIGKILL after [`KILL_GRACE`]),
//! because a build script's own children are the ones that usually do the work and must not
//! outlive it. The group is also killed when the run ends and when the future is dropped, so
//! nothing a command started in the background survives it.
//!
//! Callers that want to show the log while the command runs (for `--follow`) pass a [`LogSink`]
//! and read the snapshots from its [`tokio::sync::watch::Receiver`].
//!
//! [`CommandSpec::executor`] says where the command runs: [`Executor::Sandbox`] (pipehook's default) starts
//! it in a bubblewrap sandbox of its own (see [`crate::sandbox`]): bubblewrap leads the process group, and
//! ending it ends everything in the sandbox (its PID namespace goes with it). [`Executor::Direct`] runs it as
//! the worker's own child, with the worker's user, files and network.
//!
//! Commands die with their worker. Every process [`run`] (and [`crate::git`]) starts gets SIGKILL when the
//! worker does ([`die_with_worker`]: `PR_SET_PDEATHSIG`), which ends the shell (or bubblewrap and with it the
//! whole sandbox), but not what a shell started in the background. For those, [`run`] writes every process group
//! it starts down in a [`ProcessRegistry`] (a folder with one file per group) while it runs, and a node that
//! starts again kills the groups its previous life left behind ([`reap_leftovers`]) before it takes work.

use std::collections::VecDeque;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::sandbox::{Network, Sandbox};

/// How long a process group gets between SIGTERM and SIGKILL after a timeout or a stop.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// How long the output pipes are still read after the main process exited. A background
/// grandchild that inherited the pipes would otherwise keep the run open for as long as it lives.
pub const DRAIN_PERIOD: Duration = Duration::from_secs(1);

/// How often a [`LogSink`] receives a new snapshot while output keeps arriving.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// The shell every command runs with.
const SHELL: &str = "/bin/sh";

/// The only variables taken from the worker's own environment; everything else the command sees
/// comes from [`CommandSpec::env`], so a worker's secrets and settings do not leak into builds.
const BASE_ENV: [&str; 3] = ["PATH", "HOME", "LANG"];

/// The PATH a command gets when the worker itself has none, so that ordinary tools still resolve.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The size of one read from a pipe.
const READ_CHUNK: usize = 8 * 1024;

/// Where commands run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Executor {
    /// As the worker's own child processes, with its user, its file system and its network, and `PATH`,
    /// `HOME` and `LANG` from its environment (`PIPEHOOK_RUNNER_EXECUTOR=none`: single-tenant and trusted only).
    #[default]
    Direct,
    /// Each command in its own bubblewrap sandbox.
    Sandbox(Arc<Sandbox>),
    /// The sandbox was asked for but cannot run here (bubblewrap missing or refused): every command fails at
    /// once with this message, which says how to install bubblewrap or opt out. Nothing runs unsandboxed.
    Unavailable(Arc<str>),
}

impl Executor {
    /// Why a checkout of `url` must not run under this executor (see [`Sandbox::refuses_source`]); never without
    /// a sandbox, where commands can read those folders anyway.
    pub fn refuses_source(&self, url: &str) -> Option<String> {
        match self {
            Executor::Direct | Executor::Unavailable(_) => None,
            Executor::Sandbox(sandbox) => sandbox.refuses_source(url),
        }
    }
}

/// What to run and under which limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// The command line, run with `/bin/sh -c`.
    pub command: String,
    /// The working directory; it must exist.
    pub workdir: PathBuf,
    /// Variables added to the minimal base environment (`PATH`, `HOME` and `LANG` from the
    /// worker's environment); an entry here overrides a base variable of the same name.
    pub env: Vec<(String, String)>,
    /// How long the command may run before its process group is terminated.
    pub timeout: Duration,
    /// How many bytes of output are kept: the first half and the last half of this many bytes.
    pub log_limit: usize,
    /// Where the command runs.
    pub executor: Executor,
    /// Folders a sandboxed command may write besides `workdir` (a build's private state folder); each is
    /// bound at its own path. Without a sandbox every folder the worker can write is writable anyway.
    pub writable: Vec<PathBuf>,
    /// The network the action or build asked for ([`crate::sandbox::NETWORK_VAR`]). Only a sandbox can take
    /// it away; without one, asking for none is reported in the log and not enforced.
    pub network: Network,
    /// Where the command's process group is written down while it runs, so that the node's next life can kill
    /// it if this one dies first ([`ProcessRegistry`]); `None` writes nothing (tests, tools).
    pub registry: Option<ProcessRegistry>,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The shell exited with status 0.
    Succeeded,
    /// The shell exited with a non-zero status (`exit_code`) or was killed by a signal (`signal`).
    /// A command the shell cannot find is `exit_code: Some(127)`, with the shell's message in the log.
    Failed { exit_code: Option<i32>, signal: Option<i32> },
    /// The command ran longer than [`CommandSpec::timeout`] and its process group was terminated.
    TimedOut,
    /// The stop token was cancelled and the process group was terminated; a token that is already
    /// cancelled when [`run`] is called starts nothing.
    Stopped,
    /// The command could not be started at all; the message says why.
    SpawnFailed(String),
}

impl Outcome {
    /// Whether the command succeeded.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Succeeded)
    }
}

/// The result of [`run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    pub outcome: Outcome,
    /// stdout and stderr interleaved in the order they arrived, decoded lossily as UTF-8. When
    /// output exceeded [`CommandSpec::log_limit`], the head and the tail are kept with a line
    /// `[... N bytes truncated ...]` between them, so `log.len()` stays within the limit plus that line.
    pub log: String,
    /// Whether output was left out of `log`.
    pub truncated: bool,
    /// Wall-clock time from the call to the end of the run.
    pub duration: Duration,
}

/// Lets a caller observe the log of a running command, e.g. to persist partial logs for `--follow`.
///
/// It is a [`watch`] channel of snapshots: each value is the whole bounded log so far, rendered
/// exactly as [`CommandResult::log`] will be (head, marker, tail). Snapshots are published at most
/// every [`PROGRESS_INTERVAL`] while output arrives, and once more when the run ends, so a slow
/// reader never makes the runner buffer more than one snapshot, and it can skip intermediate ones.
#[derive(Debug)]
pub struct LogSink(watch::Sender<String>);

impl LogSink {
    /// A sink and a receiver of its snapshots; the first value is an empty log.
    pub fn new() -> (LogSink, watch::Receiver<String>) {
        let (tx, rx) = watch::channel(String::new());
        (LogSink(tx), rx)
    }

    /// Another receiver of this sink's snapshots, starting at the latest one.
    pub fn subscribe(&self) -> watch::Receiver<String> {
        self.0.subscribe()
    }

    pub(crate) fn publish(&self, snapshot: String) {
        // send_replace stores the value even when no receiver is left, which a caller that only
        // subscribes later (through subscribe) relies on.
        self.0.send_replace(snapshot);
    }
}

impl From<watch::Sender<String>> for LogSink {
    fn from(tx: watch::Sender<String>) -> Self {
        LogSink(tx)
    }
}

/// Runs `spec.command` with `/bin/sh -c` and returns how it ended with its bounded log.
///
/// The process runs in its own process group; a timeout or a cancelled `stop` sends SIGTERM to the
/// group and SIGKILL after [`KILL_GRACE`]. After the shell exits, output is read until the pipes
/// close or for at most [`DRAIN_PERIOD`], and then whatever is left of the group is killed. If
/// this future is dropped before it completes, the group is killed as well.
pub async fn run(spec: &CommandSpec, stop: &CancellationToken, progress: Option<&LogSink>) -> CommandResult {
    let started = Instant::now();
    let finish = |outcome: Outcome, log: &LogBuffer| {
        let (log, truncated) = log.render();
        if let Some(sink) = progress {
            sink.publish(log.clone());
        }
        CommandResult { outcome, log, truncated, duration: started.elapsed() }
    };
    let mut log = LogBuffer::new(spec.log_limit);

    if stop.is_cancelled() {
        return finish(Outcome::Stopped, &log);
    }
    // Checked up front because the spawn error for a missing directory is a bare "No such file or
    // directory", which reads as if the shell were missing.
    match tokio::fs::metadata(&spec.workdir).await {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            let msg = format!("working directory {} is not a directory", spec.workdir.display());
            return finish(Outcome::SpawnFailed(msg), &log);
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let msg = format!("working directory {} does not exist", spec.workdir.display());
            return finish(Outcome::SpawnFailed(msg), &log);
        }
        Err(err) => {
            let msg = format!("working directory {} is not accessible: {err}", spec.workdir.display());
            return finish(Outcome::SpawnFailed(msg), &log);
        }
    }

    let (mut cmd, sandbox_args) = match &spec.executor {
        Executor::Direct => {
            if spec.network == Network::Isolated {
                log.push(
                    format!(
                        "[pipehook] {}=none is not enforced: this worker runs commands without the sandbox \
                         (executor none)\n",
                        crate::sandbox::NETWORK_VAR
                    )
                    .as_bytes(),
                );
            }
            (direct_command(spec), None)
        }
        Executor::Sandbox(sandbox) => match sandbox.arguments(spec) {
            Ok(args) => {
                let mut cmd = Command::new(sandbox.bwrap());
                // Everything but the program to run goes through standard input; bubblewrap itself gets no
                // environment, so nothing a build defines (LD_PRELOAD, say) acts on it outside the sandbox.
                cmd.args(["--args", "0", "--"]).args(sandbox.inner_command(SHELL, &spec.command));
                cmd.current_dir(&spec.workdir).env_clear().stdin(Stdio::piped());
                (cmd, Some(args))
            }
            Err(message) => return finish(Outcome::SpawnFailed(message), &log),
        },
        Executor::Unavailable(message) => return finish(Outcome::SpawnFailed(message.to_string()), &log),
    };
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).kill_on_drop(true);
    // The shell (or bubblewrap, which also asks for it itself with --die-with-parent) dies with the worker.
    die_with_worker(&mut cmd);

    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(err) => {
            let program = match &spec.executor {
                Executor::Direct | Executor::Unavailable(_) => SHELL.to_owned(),
                Executor::Sandbox(sandbox) => sandbox.bwrap().display().to_string(),
            };
            let msg = format!("could not start {program} in {}: {err}", spec.workdir.display());
            return finish(Outcome::SpawnFailed(msg), &log);
        }
    };
    if let (Some(args), Some(mut stdin)) = (sandbox_args, child.stdin.take()) {
        // bubblewrap reads its arguments to the end before it does anything; a write error means it died
        // already, which its exit status and stderr report.
        tokio::spawn(async move {
            let _ = stdin.write_all(&args).await;
        });
    }
    // With process_group(0) the child's pid is also its process group id. The guard kills the
    // group when it goes out of scope, which covers both the normal end and a dropped future, and then
    // takes it out of the registry.
    let mut group = ProcessGroup::new(child.id());
    if let Some(registry) = &spec.registry {
        group.record(registry).await;
    }
    tracing::debug!(pid = ?child.id(), workdir = %spec.workdir.display(), "command started");

    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out_buf = vec![0u8; READ_CHUNK];
    let mut err_buf = vec![0u8; READ_CHUNK];

    let deadline = deadline_after(spec.timeout);
    let mut ended_by: Option<Outcome> = None;
    let mut kill_at: Option<Instant> = None;
    let mut drain_until: Option<Instant> = None;
    let mut exited = false;
    let mut status: Option<ExitStatus> = None;
    let mut ticker = progress.map(|_| {
        let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker
    });
    let mut dirty = false;

    let wait = child.wait();
    tokio::pin!(wait);

    loop {
        if exited && stdout.is_none() && stderr.is_none() {
            break;
        }
        tokio::select! {
            read = read_some(&mut stdout, &mut out_buf) => match read {
                Ok(0) => stdout = None,
                Ok(n) => {
                    log.push(&out_buf[..n]);
                    dirty = true;
                }
                Err(err) => {
                    tracing::warn!(%err, "reading the command's stdout failed");
                    stdout = None;
                }
            },
            read = read_some(&mut stderr, &mut err_buf) => match read {
                Ok(0) => stderr = None,
                Ok(n) => {
                    log.push(&err_buf[..n]);
                    dirty = true;
                }
                Err(err) => {
                    tracing::warn!(%err, "reading the command's stderr failed");
                    stderr = None;
                }
            },
            result = &mut wait, if !exited => {
                exited = true;
                match result {
                    Ok(s) => status = Some(s),
                    Err(err) => tracing::warn!(%err, "waiting for the command failed"),
                }
                drain_until = Some(Instant::now() + DRAIN_PERIOD);
            }
            () = tokio::time::sleep_until(deadline), if !exited && ended_by.is_none() => {
                tracing::debug!(timeout = ?spec.timeout, "command timed out");
                ended_by = Some(Outcome::TimedOut);
                group.signal(Signal::SIGTERM);
                kill_at = Some(Instant::now() + KILL_GRACE);
            }
            () = stop.cancelled(), if !exited && ended_by.is_none() => {
                tracing::debug!("command stopped");
                ended_by = Some(Outcome::Stopped);
                group.signal(Signal::SIGTERM);
                kill_at = Some(Instant::now() + KILL_GRACE);
            }
            () = sleep_until_opt(kill_at), if !exited => {
                group.signal(Signal::SIGKILL);
                kill_at = None;
            }
            () = sleep_until_opt(drain_until) => {
                // Something the command left behind still holds the pipes; the command itself is
                // done, so stop listening and end the stragglers.
                tracing::debug!("output pipes still open after the command exited; killing its process group");
                group.signal(Signal::SIGKILL);
                break;
            }
            () = tick(&mut ticker), if dirty => {
                if let Some(sink) = progress {
                    sink.publish(log.render().0);
                }
                dirty = false;
            }
        }
    }
    drop(group);

    let outcome = match (ended_by, status) {
        (Some(outcome), _) => outcome,
        (None, Some(s)) if s.success() => Outcome::Succeeded,
        (None, Some(s)) => Outcome::Failed { exit_code: s.code(), signal: s.signal() },
        (None, None) => Outcome::Failed { exit_code: None, signal: None },
    };
    let result = finish(outcome, &log);
    tracing::debug!(outcome = ?result.outcome, duration = ?result.duration, "command finished");
    result
}

/// The shell as the worker's own child: a clean environment with `PATH`, `HOME` and `LANG` from the worker's.
fn direct_command(spec: &CommandSpec) -> Command {
    let mut cmd = Command::new(SHELL);
    cmd.arg("-c").arg(&spec.command).current_dir(&spec.workdir).env_clear();
    for key in BASE_ENV {
        match std::env::var_os(key) {
            Some(value) => {
                cmd.env(key, value);
            }
            None if key == "PATH" => {
                cmd.env(key, DEFAULT_PATH);
            }
            None => {}
        }
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd.stdin(Stdio::null());
    cmd
}

/// `timeout` from now, or a point far enough away to never fire when `timeout` is too large to add.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Reads from an open pipe; a closed one (None) never becomes ready, so a select loop can keep
/// listening to the other pipe.
async fn read_some<R: AsyncRead + Unpin>(pipe: &mut Option<R>, buf: &mut [u8]) -> io::Result<usize> {
    match pipe {
        Some(pipe) => pipe.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A process group that is killed with SIGKILL when this value is dropped.
///
/// Signals go through `killpg` so every process the command started is reached, not only the
/// shell. A group that no longer exists is not an error: it means everything has already exited.
#[derive(Debug)]
pub(crate) struct ProcessGroup {
    pgid: Option<Pid>,
    /// The registry the group is written down in, if any; it is taken out once the group is killed.
    recorded: Option<ProcessRegistry>,
}

impl ProcessGroup {
    /// The group led by the process `pid`, which must have been spawned with `process_group(0)`.
    pub(crate) fn new(pid: Option<u32>) -> Self {
        // Group ids 0 and 1 would mean our own group and init's; never signal those.
        let pgid = pid.and_then(|pid| i32::try_from(pid).ok()).filter(|pid| *pid > 1).map(Pid::from_raw);
        ProcessGroup { pgid, recorded: None }
    }

    /// Writes the group down in `registry` until it is dropped. A failure is logged: the command still runs,
    /// only a crash of this node would then leave its background processes running.
    pub(crate) async fn record(&mut self, registry: &ProcessRegistry) {
        let Some(pgid) = self.pgid else { return };
        // Set before the write, so that a future dropped in the middle of it still removes the file.
        self.recorded = Some(registry.clone());
        if let Err(err) = registry.record(pgid.as_raw()).await {
            tracing::warn!(%err, pgid = pgid.as_raw(), dir = %registry.dir().display(),
                "could not write the command's process group down; a crash of this node would leave it running");
        }
    }

    pub(crate) fn signal(&self, signal: Signal) {
        let Some(pgid) = self.pgid else { return };
        match killpg(pgid, signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(err) => tracing::warn!(%err, pgid = pgid.as_raw(), ?signal, "signalling the process group failed"),
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
        if let (Some(pgid), Some(registry)) = (self.pgid, &self.recorded) {
            registry.remove(pgid.as_raw());
        }
    }
}

/// Makes the process `cmd` starts die (SIGKILL) when the worker does, with `PR_SET_PDEATHSIG`.
///
/// The signal comes when the *thread* that spawned the process ends, not the process: [`run`] and
/// [`crate::git`] spawn from whichever tokio runtime worker thread polls them, and those live as long as the
/// runtime (pipehook's multi-threaded runtime lives as long as the process). Never start commands from a thread
/// that may end before them (`spawn_blocking`, `block_in_place`, a thread of one's own): the command would be
/// killed when that thread ends.
///
/// Only the process itself gets the signal: what a shell started survives it, which [`ProcessRegistry`] covers.
#[allow(unsafe_code)]
pub(crate) fn die_with_worker(cmd: &mut Command) {
    // The worker's pid, taken before the fork: the child's parent as long as the worker lives.
    let worker = nix::libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    // SAFETY: the closure runs in the child between fork and exec, where only async-signal-safe calls are
    // allowed: it calls prctl, getppid and _exit, allocates nothing, and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            // prctl takes its arguments as unsigned longs, through C varargs: each passed as one.
            let (kill, unused): (nix::libc::c_ulong, nix::libc::c_ulong) = (nix::libc::SIGKILL as _, 0);
            if nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, kill, unused, unused, unused) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The worker died between the fork and the prctl (the child was adopted by another process, and
            // no signal will come): do not run the command at all.
            if nix::libc::getppid() != worker {
                nix::libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Where the process groups of running commands are written down, so that a node that died (kill -9, out of
/// memory, power) can kill on its next start what its commands left running ([`reap_leftovers`]).
///
/// A folder (pipehook's is `<data_dir>/commands`, 0700) with one file per running group, named by its process
/// group id (the pid of the process [`run`] started, which leads the group), mode 0600, holding `key=value`
/// lines: `start_time` (that process's start time, field 22 of `/proc/<pid>/stat`, so a reused pid is told
/// apart), `owner` and `owner_start_time` (the worker that started it, so a living node's groups are never
/// touched, e.g. another node sharing the data folder) and `boot_id` (`/proc/sys/kernel/random/boot_id`: after a
/// reboot nothing is left to kill). [`run`] writes the file right after the spawn and removes it once it has
/// killed the group at its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRegistry {
    dir: Arc<Path>,
}

/// The folder's mode: owner only.
const REGISTRY_DIR_MODE: u32 = 0o700;

impl ProcessRegistry {
    /// The registry in `dir`, which is created (0700, with missing parents) if needed.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir: PathBuf = dir.into();
        std::fs::DirBuilder::new().recursive(true).mode(REGISTRY_DIR_MODE).create(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(REGISTRY_DIR_MODE))?;
        Ok(ProcessRegistry { dir: dir.into() })
    }

    /// The registry's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes down the process group led by `pgid` (a process this worker started with `process_group(0)`, not
    /// yet reaped), as [`run`] does for every command.
    pub async fn record(&self, pgid: i32) -> io::Result<()> {
        let path = self.path(pgid)?;
        let leader = proc_stat(pgid)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no process {pgid} to write down")))?;
        let me = std::process::id();
        let owner_start = i32::try_from(me).ok().and_then(proc_stat).map_or(0, |s| s.start_time);
        let text = format!(
            "start_time={}\nowner={me}\nowner_start_time={owner_start}\nboot_id={}\n",
            leader.start_time,
            boot_id()
        );
        crate::workspace::write_private_file(&path, text).await
    }

    /// Takes the group led by `pgid` out of the registry (it was killed); a missing file is not an error.
    pub fn remove(&self, pgid: i32) {
        let Ok(path) = self.path(pgid) else { return };
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => {
                tracing::warn!(%err, path = %path.display(), "could not take a finished command out of the registry")
            }
        }
    }

    /// [`reap_leftovers`] on this registry's folder.
    pub fn reap_leftovers(&self) -> io::Result<usize> {
        reap_leftovers(&self.dir)
    }

    fn path(&self, pgid: i32) -> io::Result<PathBuf> {
        if pgid <= 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{pgid} is no process group of a command"),
            ));
        }
        Ok(self.dir.join(pgid.to_string()))
    }
}

/// Kills (SIGKILL) the process groups written down in the registry folder `dir` whose worker is gone, and
/// returns how many groups it killed. Call it once when a node starts, before it takes work.
///
/// Each file's group is killed only when it still runs processes of that command: the group's leader is gone (a
/// shell killed with its worker) or is still the process that was written down (same start time), and processes
/// in that group started no earlier than it are still running. A leader pid now used by another process means the
/// group ended long ago and its id was reused: nothing is killed. Files whose group ended, was reused, or was
/// written before the last reboot, and files that cannot be read, are removed; files of a worker that still runs
/// (this one, or another node using the same folder) are left alone. A missing folder has nothing to kill.
pub fn reap_leftovers(dir: &Path) -> io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(err),
    };
    let boot = boot_id();
    let mut processes: Option<Vec<ProcStat>> = None;
    let mut killed = 0;
    for entry in entries {
        let entry = entry?;
        let Some(pgid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()).filter(|p| *p > 1) else {
            continue;
        };
        let path = entry.path();
        let record = std::fs::read_to_string(&path).ok().and_then(|text| Recorded::parse(&text));
        if let Some(record) = record {
            let owner_alive =
                proc_stat(record.owner).is_some_and(|s| s.start_time == record.owner_start_time && !s.is_zombie());
            if owner_alive && record.boot_id == boot {
                continue;
            }
            let reused = proc_stat(pgid).is_some_and(|leader| leader.start_time != record.start_time);
            if record.boot_id == boot && !reused {
                let processes = processes.get_or_insert_with(all_processes);
                let running =
                    processes.iter().any(|p| p.pgid == pgid && p.start_time >= record.start_time && !p.is_zombie());
                if running {
                    match killpg(Pid::from_raw(pgid), Signal::SIGKILL) {
                        Ok(()) => {
                            tracing::info!(pgid, "killed a command's process group left running by a previous run");
                            killed += 1;
                        }
                        Err(Errno::ESRCH) => {}
                        Err(err) => {
                            tracing::warn!(%err, pgid, "could not kill a command's process group left running by a previous run")
                        }
                    }
                }
            }
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => tracing::warn!(%err, path = %path.display(), "could not remove a registry file"),
        }
    }
    Ok(killed)
}

/// A registry file's contents.
#[derive(Debug)]
struct Recorded {
    start_time: u64,
    owner: i32,
    owner_start_time: u64,
    boot_id: String,
}

impl Recorded {
    fn parse(text: &str) -> Option<Recorded> {
        let value =
            |key: &str| text.lines().find_map(|line| line.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')));
        Some(Recorded {
            start_time: value("start_time")?.trim().parse().ok()?,
            owner: value("owner")?.trim().parse().ok()?,
            owner_start_time: value("owner_start_time")?.trim().parse().ok()?,
            boot_id: value("boot_id")?.trim().to_owned(),
        })
    }
}

/// What [`reap_leftovers`] needs of `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcStat {
    /// Field 3: `Z` (zombie) and `X` (dead) run nothing any more.
    state: char,
    /// Field 5, the process group id.
    pgid: i32,
    /// Field 22, the start time in clock ticks after boot.
    start_time: u64,
}

impl ProcStat {
    fn parse(stat: &str) -> Option<ProcStat> {
        // The command name (field 2) is in parentheses and may hold spaces and parentheses itself: the fields
        // after it start after the last ')'.
        let (_, rest) = stat.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
        Some(ProcStat {
            state: fields.first()?.chars().next()?,
            pgid: fields.get(2)?.parse().ok()?,
            start_time: fields.get(19)?.parse().ok()?,
        })
    }

    fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

fn proc_stat(pid: i32) -> Option<ProcStat> {
    if pid <= 0 {
        return None;
    }
    ProcStat::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every process this node can see.
fn all_processes() -> Vec<ProcStat> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()).filter_map(proc_stat).collect()
}

/// This boot's id (empty when it cannot be read).
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_owned()).unwrap_or_default()
}

/// The captured output: the first half of the limit, and a ring of the most recent bytes for the
/// second half, so memory stays at `limit` however much a command prints.
#[derive(Debug)]
struct LogBuffer {
    limit: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
}

impl LogBuffer {
    fn new(limit: usize) -> Self {
        LogBuffer { limit, head: Vec::new(), tail: VecDeque::new(), total: 0 }
    }

    fn head_cap(&self) -> usize {
        self.limit / 2
    }

    fn tail_cap(&self) -> usize {
        self.limit - self.head_cap()
    }

    fn push(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        let room = self.head_cap() - self.head.len();
        let take = room.min(data.len());
        self.head.extend_from_slice(&data[..take]);
        data = &data[take..];
        let cap = self.tail_cap();
        if data.is_empty() || cap == 0 {
            return;
        }
        if data.len() >= cap {
            self.tail.clear();
            self.tail.extend(&data[data.len() - cap..]);
        } else {
            let overflow = (self.tail.len() + data.len()).saturating_sub(cap);
            self.tail.drain(..overflow);
            self.tail.extend(data);
        }
    }

    /// The log as text and whether anything was left out.
    fn render(&self) -> (String, bool) {
        let kept = (self.head.len() + self.tail.len()) as u64;
        if self.total == kept {
            let mut bytes = self.head.clone();
            bytes.extend(self.tail.iter());
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if text.len() <= self.limit {
                return (text, false);
            }
            // Replacement characters for invalid bytes are longer than the bytes they replace, so
            // even output that fit can exceed the limit as text; cut the excess to keep the bound.
            let cut = floor_char_boundary(&text, self.limit);
            let mut out = text[..cut].to_owned();
            out.push_str(&marker((text.len() - cut) as u64));
            return (out, true);
        }

        // Whole characters only at the cut points, so the text does not show replacement
        // characters where a multi-byte character was split by the bound.
        let head = &self.head[..complete_prefix_len(&self.head)];
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        let skip = tail.iter().take(3).take_while(|b| **b & 0xC0 == 0x80).count();
        let tail = &tail[skip..];

        let mut head_text = String::from_utf8_lossy(head).into_owned();
        head_text.truncate(floor_char_boundary(&head_text, self.head_cap()));
        let tail_text = String::from_utf8_lossy(tail);
        let tail_text = &tail_text[ceil_char_boundary(&tail_text, tail_text.len().saturating_sub(self.tail_cap()))..];

        let dropped = self.total - (head.len() + tail.len()) as u64;
        let marker = marker(dropped);
        let mut out = String::with_capacity(head_text.len() + marker.len() + tail_text.len());
        out.push_str(&head_text);
        out.push_str(&marker);
        out.push_str(tail_text);
        (out, true)
    }
}

fn marker(dropped: u64) -> String {
    format!("\n[... {dropped} bytes truncated ...]\n")
}

/// The length of `bytes` without a multi-byte UTF-8 sequence that is cut off at its end.
fn complete_prefix_len(bytes: &[u8]) -> usize {
    let n = bytes.len();
    for back in 1..=n.min(4) {
        let i = n - back;
        let byte = bytes[i];
        if byte & 0xC0 != 0x80 {
            let need = match byte {
                0xF0.. => 4,
                0xE0.. => 3,
                0xC0.. => 2,
                _ => 1,
            };
            return if need > back { i } else { n };
        }
    }
    n
}

/// The largest char boundary in `s` that is at most `index`.
fn floor_char_boundary(s: &str, index: usize) -> usize {
    let mut i = index.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The smallest char boundary in `s` that is at least `index`.
fn ceil_char_boundary(s: &str, index: usize) -> usize {
    let mut i = index.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(limit: usize, chunks: &[&[u8]]) -> (String, bool) {
        let mut log = LogBuffer::new(limit);
        for chunk in chunks {
            log.push(chunk);
        }
        log.render()
    }

    #[test]
    fn small_output_is_kept_whole() {
        assert_eq!(render(16, &[b"abc", b"def"]), ("abcdef".to_owned(), false));
        assert_eq!(render(6, &[b"abc", b"def"]), ("abcdef".to_owned(), false));
    }

    #[test]
    fn large_output_keeps_head_and_tail() {
        let (text, truncated) = render(6, &[b"abc", b"defgh", b"ij"]);
        assert!(truncated);
        assert_eq!(text, format!("abc{}hij", marker(4)));
    }

    #[test]
    fn one_huge_chunk_is_bounded() {
        let data = vec![b'x'; 100_000];
        let (text, truncated) = render(100, &[&data]);
        assert!(truncated);
        assert_eq!(text.len(), 100 + marker(99_900).len());
    }

    #[test]
    fn zero_limit_keeps_nothing() {
        assert_eq!(render(0, &[b"abc"]), (marker(3), true));
        assert_eq!(render(0, &[]), (String::new(), false));
    }

    #[test]
    fn cut_multibyte_characters_are_dropped_not_mangled() {
        // "é" is two bytes; the head cut falls inside the first, the tail cut inside the last.
        let (text, truncated) = render(4, &["aé".as_bytes(), b"zzzz", "éb".as_bytes()]);
        assert!(truncated);
        assert_eq!(text, format!("a{}b", marker(8)));
    }

    #[test]
    fn invalid_bytes_do_not_break_the_bound() {
        let data = vec![0xFFu8; 10];
        let (text, truncated) = render(10, &[&data]);
        assert!(truncated);
        assert!(text.len() <= 10 + marker(20).len(), "{text:?}");
        let (text, _) = render(10, &[&data, &data]);
        assert!(text.len() <= 10 + marker(20).len(), "{text:?}");
    }

    #[test]
    fn proc_stat_fields_come_after_the_last_parenthesis() {
        let stat = "4242 (a) b (c) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        assert_eq!(ProcStat::parse(stat), Some(ProcStat { state: 'S', pgid: 4240, start_time: 987_654 }));
        assert_eq!(ProcStat::parse("4242 (sh) S 1"), None);
        let me = proc_stat(std::process::id() as i32).expect("our own stat");
        assert!(!me.is_zombie() && me.start_time > 0, "{me:?}");
    }

    #[test]
    fn registry_files_parse() {
        let text = "start_time=12\nowner=34\nowner_start_time=5\nboot_id=abc\n";
        let r = Recorded::parse(text).unwrap();
        assert_eq!((r.start_time, r.owner, r.owner_start_time, r.boot_id.as_str()), (12, 34, 5, "abc"));
        assert!(Recorded::parse("start_time=12\nowner=34\n").is_none());
        assert!(Recorded::parse("").is_none());
    }

    #[test]
    fn outcomes_round_trip_through_json() {
        // The state machines persist outcomes, so every variant must survive serialization.
        let outcomes = [
            Outcome::Succeeded,
            Outcome::Failed { exit_code: Some(2), signal: None },
            Outcome::Failed { exit_code: None, signal: Some(9) },
            Outcome::TimedOut,
            Outcome::Stopped,
            Outcome::SpawnFailed("working directory /x does not exist".to_owned()),
        ];
        for outcome in outcomes {
            let json = serde_json::to_string(&outcome).unwrap();
            assert_eq!(serde_json::from_str::<Outcome>(&json).unwrap(), outcome, "{json}");
        }
    }
}
