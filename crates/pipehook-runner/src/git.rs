//! The git checkout helper: puts one revision of a repository into a directory.
//!
//! It drives the system `git` binary rather than a library, so the operator's git configuration
//! applies as it would in a shell: credential helpers, `url.<base>.insteadOf` mirrors, proxies,
//! SSH settings. For that reason the worker's environment is passed through (HOME included) and
//! only `GIT_TERMINAL_PROMPT=0` is added, so a missing credential fails instead of waiting for a
//! password nobody will type.
//!
//! Strategy: `git init <dest>`, `git fetch --depth 1 <url> <revision>`, `git checkout --detach
//! FETCH_HEAD`, then `git log -1` for the commit's id, message and author. A server that refuses
//! a shallow fetch of a commit id it does not advertise gets a full fetch instead.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::time::Instant;

use crate::exec::{die_with_worker, ProcessGroup, DRAIN_PERIOD};

/// How much of git's stderr a [`GitError`] keeps: the end, where git puts its `fatal:` line.
pub const ERROR_MESSAGE_LIMIT: usize = 4 * 1024;

/// How much of git's stdout is read; only `git log -1` output is used, and a commit message
/// larger than this is cut.
const STDOUT_LIMIT: usize = 1024 * 1024;

/// Variables that would point git at another repository than `dest`. They are set when the
/// worker itself runs inside a git hook, and would make every command here act on that repository.
const REPOSITORY_ENV: [&str; 8] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_QUARANTINE_PATH",
];

/// The commit that was checked out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    /// The full commit id the revision resolved to.
    pub commit: String,
    /// The full commit message without trailing whitespace, if it has one.
    pub message: Option<String>,
    /// The author as `Name <email>`, if the commit records one.
    pub author: Option<String>,
}

/// Why a checkout failed. Messages from git are its own stderr, trimmed and bounded to
/// [`ERROR_MESSAGE_LIMIT`] bytes, so they can be shown to a user as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    /// The `git` binary could not be run.
    #[error("could not run git: {0}")]
    Spawn(String),
    /// The revision is not something this helper will pass to git (empty, or starting with `-`).
    #[error("invalid revision {0:?}")]
    InvalidRevision(String),
    /// The checkout took longer than its timeout; `step` is the git command that was running.
    #[error("git {step} timed out after {timeout:?}")]
    TimedOut { step: &'static str, timeout: Duration },
    /// A git command failed; `message` is what git printed on stderr.
    #[error("git {step} failed: {message}")]
    Failed { step: &'static str, message: String },
}

/// The local folder `url` names when it names one: a path (absolute, or relative to the worker's folder) or a
/// `file://` URL. `None` for a remote: `scheme://...` other than `file`, or scp-like `[user@]host:path`.
pub fn local_path(url: &str) -> Option<PathBuf> {
    if let Some(rest) = url.strip_prefix("file://") {
        return Some(PathBuf::from(rest));
    }
    if url.contains("://") {
        return None;
    }
    // git reads `host:path` as ssh when the colon comes before any slash.
    match (url.find(':'), url.find('/')) {
        (Some(colon), None) => (colon == 0).then(|| PathBuf::from(url)),
        (Some(colon), Some(slash)) if colon < slash => None,
        _ => Some(PathBuf::from(url)),
    }
}

/// Checks out `revision` of the repository at `url` into `dest`.
///
/// `url` is anything `git fetch` accepts, including a local path or a `file://` URL. `revision` is
/// a full commit id, a branch or a tag; `None` means the remote's default branch (its `HEAD`). `dest`
/// is created if needed; an existing checkout there is reused and overwritten. `timeout` bounds
/// the whole operation; when it passes, the running git command and its helpers are killed.
pub async fn checkout(url: &str, revision: Option<&str>, dest: &Path, timeout: Duration) -> Result<Checkout, GitError> {
    checkout_with_env(url, revision, dest, timeout, &[]).await
}

/// [`checkout`] with extra environment variables for every git process it runs.
///
/// This is for tests and operators that need to point git at a configuration of their own (e.g.
/// `GIT_CONFIG_GLOBAL` for a mirror's `url.<base>.insteadOf`, or `GIT_SSH_COMMAND`) without
/// changing the worker's own environment. The variables are added on top of the worker's
/// environment and `GIT_TERMINAL_PROMPT=0`, and may override either.
pub async fn checkout_with_env(
    url: &str,
    revision: Option<&str>,
    dest: &Path,
    timeout: Duration,
    extra_env: &[(&str, &str)],
) -> Result<Checkout, GitError> {
    // Anything starting with "-" would be read as an option by the commands that take the
    // revision without a preceding "--", so it is refused rather than passed on.
    if let Some(rev) = revision {
        if rev.is_empty() || rev.starts_with('-') || rev.chars().any(char::is_control) {
            return Err(GitError::InvalidRevision(rev.to_owned()));
        }
    }
    let git = Git { dest, extra_env, deadline: deadline_after(timeout), timeout };
    let rev = revision.unwrap_or("HEAD");

    git.run("init", false, [OsStr::new("init"), OsStr::new("--quiet"), dest.as_os_str()]).await?;

    let shallow = git.run("fetch", true, ["fetch", "--quiet", "--no-tags", "--depth", "1", "--", url, rev]).await;
    let target = match shallow {
        Ok(_) => "FETCH_HEAD".to_owned(),
        // Servers only hand out unadvertised commits when configured to (protocol v2 and
        // uploadpack.allowAnySHA1InWant do); an abbreviated id is never accepted. Both are
        // resolved from a full fetch instead.
        Err(shallow_err @ GitError::Failed { .. }) if looks_like_commit_id(rev) => {
            tracing::debug!(%url, rev, error = %shallow_err, "shallow fetch of a commit id failed; fetching everything");
            match git.full_fetch_and_resolve(url, rev).await {
                Ok(Some(commit)) => commit,
                // The commit is not there either: git's answer to the first fetch says the most.
                Ok(None) | Err(GitError::Failed { .. }) => return Err(shallow_err),
                Err(err) => return Err(err),
            }
        }
        Err(err) => return Err(err),
    };

    git.run("checkout", true, ["checkout", "--quiet", "--force", "--detach", target.as_str()]).await?;
    let out = git.run("log", true, ["log", "-1", "--format=%H%x00%an%x00%ae%x00%B", "HEAD"]).await?;
    parse_log(&out).ok_or_else(|| GitError::Failed {
        step: "log",
        message: format!("unexpected output from git log: {}", bound_message(&out)),
    })
}

/// Runs git commands for one checkout, all against one deadline.
struct Git<'a> {
    dest: &'a Path,
    extra_env: &'a [(&'a str, &'a str)],
    deadline: Instant,
    timeout: Duration,
}

impl Git<'_> {
    /// Fetches all branches and tags (undoing an earlier shallow fetch) and resolves `rev` to a
    /// full commit id, or None when the repository has no such commit.
    async fn full_fetch_and_resolve(&self, url: &str, rev: &str) -> Result<Option<String>, GitError> {
        let is_shallow = self.run("rev-parse", true, ["rev-parse", "--is-shallow-repository"]).await?;
        let mut args = vec!["fetch", "--quiet"];
        if is_shallow.trim() == "true" {
            args.push("--unshallow");
        }
        args.extend(["--", url, "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"]);
        self.run("fetch", true, args).await?;
        let spec = format!("{rev}^{{commit}}");
        match self.run("rev-parse", true, ["rev-parse", "--verify", "--quiet", spec.as_str()]).await {
            Ok(out) => Ok(Some(out.trim().to_owned())),
            Err(GitError::Failed { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Runs `git [-C dest] args...` and returns its stdout, or its stderr as the error.
    async fn run<I, S>(&self, step: &'static str, in_dest: bool, args: I) -> Result<String, GitError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("git");
        if in_dest {
            cmd.arg("-C").arg(self.dest);
        }
        cmd.args(args);
        for var in REPOSITORY_ENV {
            cmd.env_remove(var);
        }
        cmd.env("GIT_TERMINAL_PROMPT", "0");
        cmd.envs(self.extra_env.iter().copied());
        // Its own process group, so a timeout also reaches the helpers git starts (ssh,
        // git-remote-https, upload-pack), which would otherwise keep running and hold the pipes.
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).kill_on_drop(true);
        // git dies with the worker too (its helpers then lose their pipes to it).
        die_with_worker(&mut cmd);

        let mut child = cmd.spawn().map_err(|err| GitError::Spawn(err.to_string()))?;
        let group = ProcessGroup::new(child.id());
        let stdout = tokio::spawn(read_bounded(child.stdout.take(), STDOUT_LIMIT, false));
        let stderr = tokio::spawn(read_bounded(child.stderr.take(), ERROR_MESSAGE_LIMIT * 4, true));

        let status = match tokio::time::timeout_at(self.deadline, child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(err)) => return Err(GitError::Spawn(err.to_string())),
            Err(_) => {
                stdout.abort();
                stderr.abort();
                return Err(GitError::TimedOut { step, timeout: self.timeout });
            }
        };
        // A helper that git left running in the background (an SSH control master, say) may still
        // hold the pipes; git itself is done, so its output is complete after a short wait.
        let drain_until = Instant::now() + DRAIN_PERIOD;
        let stdout = collect(stdout, drain_until).await;
        let stderr = collect(stderr, drain_until).await;
        drop(group);

        if status.success() {
            Ok(String::from_utf8_lossy(&stdout).into_owned())
        } else {
            let mut message = bound_message(&String::from_utf8_lossy(&stderr));
            if message.is_empty() {
                message = format!("git exited with {status}");
            }
            Err(GitError::Failed { step, message })
        }
    }
}

/// Reads a pipe to its end, keeping at most `limit` bytes: the last ones if `keep_tail`, else the
/// first ones. It keeps reading past the limit so git never blocks on a full pipe.
async fn read_bounded<R: AsyncRead + Unpin>(pipe: Option<R>, limit: usize, keep_tail: bool) -> Vec<u8> {
    let Some(mut pipe) = pipe else { return Vec::new() };
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) if keep_tail => {
                kept.extend_from_slice(&buf[..n]);
                // Trimming only when twice the limit is reached keeps the copying amortized.
                if kept.len() > 2 * limit {
                    kept.drain(..kept.len() - limit);
                }
            }
            Ok(n) => {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if keep_tail && kept.len() > limit {
        kept.drain(..kept.len() - limit);
    }
    kept
}

/// The output a reader task collected by `until`, or nothing if it did not finish by then.
async fn collect(task: tokio::task::JoinHandle<Vec<u8>>, until: Instant) -> Vec<u8> {
    let abort = task.abort_handle();
    match tokio::time::timeout_at(until, task).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => Vec::new(),
        Err(_) => {
            abort.abort();
            Vec::new()
        }
    }
}

/// git's stderr trimmed and cut to its last [`ERROR_MESSAGE_LIMIT`] bytes.
fn bound_message(text: &str) -> String {
    let text = text.trim();
    if text.len() <= ERROR_MESSAGE_LIMIT {
        return text.to_owned();
    }
    const ELLIPSIS: &str = "[...] ";
    let mut start = text.len() - (ERROR_MESSAGE_LIMIT - ELLIPSIS.len());
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("{ELLIPSIS}{}", &text[start..])
}

/// Parses `git log -1 --format=%H%x00%an%x00%ae%x00%B`.
fn parse_log(out: &str) -> Option<Checkout> {
    let mut fields = out.splitn(4, '\0');
    let commit = fields.next()?.trim();
    let name = fields.next()?.trim();
    let email = fields.next()?.trim();
    let message = fields.next()?.trim_end();
    if commit.is_empty() || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let author = match (name.is_empty(), email.is_empty()) {
        (true, true) => None,
        (false, true) => Some(name.to_owned()),
        _ => Some(format!("{name} <{email}>").trim_start().to_owned()),
    };
    let message = (!message.is_empty()).then(|| message.to_owned());
    Some(Checkout { commit: commit.to_owned(), message, author })
}

/// Whether `rev` could be a (possibly abbreviated) SHA-1 or SHA-256 commit id.
fn looks_like_commit_id(rev: &str) -> bool {
    (4..=64).contains(&rev.len()) && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_log_output() {
        let out = "0123abcd\0Ada Lovelace\0ada@example.com\0Subject\n\nBody\n\n";
        let checkout = parse_log(out).unwrap();
        assert_eq!(checkout.commit, "0123abcd");
        assert_eq!(checkout.author.as_deref(), Some("Ada Lovelace <ada@example.com>"));
        assert_eq!(checkout.message.as_deref(), Some("Subject\n\nBody"));

        let bare = parse_log("0123abcd\0\0\0\n").unwrap();
        assert_eq!(bare.author, None);
        assert_eq!(bare.message, None);

        assert_eq!(parse_log("not a log"), None);
    }

    #[test]
    fn bounds_long_messages_keeping_the_end() {
        let long = format!("{}fatal: the real reason", "x".repeat(10_000));
        let bounded = bound_message(&long);
        assert!(bounded.len() <= ERROR_MESSAGE_LIMIT);
        assert!(bounded.ends_with("fatal: the real reason"));
        assert_eq!(bound_message("  fatal: short \n"), "fatal: short");
    }

    #[test]
    fn local_paths() {
        for (url, want) in [
            ("/srv/repo", Some("/srv/repo")),
            ("relative/repo", Some("relative/repo")),
            ("file:///srv/repo.git", Some("/srv/repo.git")),
            ("./a:b", Some("./a:b")),
            ("https://github.com/o/r.git", None),
            ("ssh://git@host/r", None),
            ("git@github.com:o/r.git", None),
            ("host:repo", None),
        ] {
            assert_eq!(local_path(url), want.map(PathBuf::from), "{url}");
        }
    }

    #[test]
    fn recognises_commit_ids() {
        assert!(looks_like_commit_id("0123abcd"));
        assert!(looks_like_commit_id(&"a".repeat(40)));
        assert!(!looks_like_commit_id("main"));
        assert!(!looks_like_commit_id("v1.0"));
        assert!(!looks_like_commit_id("abc"));
    }
}
