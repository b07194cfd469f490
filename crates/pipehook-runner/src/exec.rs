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

use std::collections::VecDeque;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
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
    // group when it goes out of scope, which covers both the normal end and a dropped future.
    let group = ProcessGroup::new(child.id());
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
pub(crate) struct ProcessGroup(Option<Pid>);

impl ProcessGroup {
    /// The group led by the process `pid`, which must have been spawned with `process_group(0)`.
    pub(crate) fn new(pid: Option<u32>) -> Self {
        // Group ids 0 and 1 would mean our own group and init's; never signal those.
        ProcessGroup(pid.and_then(|pid| i32::try_from(pid).ok()).filter(|pid| *pid > 1).map(Pid::from_raw))
    }

    pub(crate) fn signal(&self, signal: Signal) {
        let Some(pgid) = self.0 else { return };
        match killpg(pgid, signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(err) => tracing::warn!(%err, pgid = pgid.as_raw(), ?signal, "signalling the process group failed"),
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal(Signal::SIGKILL);
    }
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
