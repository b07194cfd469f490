//! Secrets given to the server by environment (`PIPEHOOK_MASTER_KEY`, `PIPEHOOK_BOOTSTRAP_TOKEN`,
//! `PIPEHOOK_BOOTSTRAP_AWS_SECRET_ACCESS_KEY`, and `PIPEHOOK_DATABASE_URL`, which often carries a password) are
//! read once, into the configuration, and then taken out of the process's environment.
//!
//! Removing a variable (`unsetenv`) is not enough on its own: it drops the variable from the C library's list,
//! but the process's initial environment block, which `/proc/<pid>/environ` and `ps e` show to anyone who may
//! read the process's memory maps (the same user, root), keeps the text. So `serve`, the long-running command
//! that starts other programs, re-executes itself (same binary, same pid, same arguments) with an environment
//! without them, and hands the values to its new self through a socket on standard input, which is read at once
//! and then stays at end-of-file. Every server command also removes the variables from its environment
//! ([`scrub`]). Both happen in `main` before the async runtime starts, while the process has one thread: changing
//! the environment is only sound then.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;

/// The variables holding secrets, removed once read.
pub const SECRET_VARS: [&str; 4] = [
    "PIPEHOOK_MASTER_KEY",
    "PIPEHOOK_BOOTSTRAP_TOKEN",
    "PIPEHOOK_BOOTSTRAP_AWS_SECRET_ACCESS_KEY",
    "PIPEHOOK_DATABASE_URL",
];

/// Set (to `1`) on the re-executed process: its standard input is the socket carrying the secrets.
pub const HANDOFF_VAR: &str = "PIPEHOOK_INTERNAL_SECRETS_ON_STDIN";

/// The most a hand-over may carry.
const HANDOFF_LIMIT: u64 = 64 * 1024;

/// The secrets this process was handed by the process it replaced, if it was re-executed; otherwise empty.
#[derive(Default)]
pub struct HandedOver(BTreeMap<String, String>);

impl HandedOver {
    /// A variable's value: handed over, else from the environment.
    pub fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned().or_else(|| std::env::var(name).ok())
    }

    /// The names of the variables handed over.
    pub fn names(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Takes the secrets a re-executing parent handed over on standard input (see the module). Call first in `main`,
/// while the process has one thread. Without [`HANDOFF_VAR`], or when standard input is not a socket (the
/// variable was set by someone else), nothing is read.
pub fn take_handed_over() -> Result<HandedOver, String> {
    if std::env::var_os(HANDOFF_VAR).is_none() {
        return Ok(HandedOver::default());
    }
    std::env::remove_var(HANDOFF_VAR);
    let is_socket = std::fs::metadata("/proc/self/fd/0").map(|m| m.file_type().is_socket()).unwrap_or(false);
    if !is_socket {
        return Ok(HandedOver::default());
    }
    let mut text = Vec::new();
    std::io::stdin()
        .lock()
        .take(HANDOFF_LIMIT)
        .read_to_end(&mut text)
        .map_err(|e| format!("cannot read the secrets handed over on standard input: {e}"))?;
    let map: BTreeMap<String, String> = serde_json::from_slice(&text)
        .map_err(|e| format!("the secrets handed over on standard input are not readable: {e}"))?;
    Ok(HandedOver(map.into_iter().filter(|(k, _)| SECRET_VARS.contains(&k.as_str())).collect()))
}

/// The secret variables set in this process's environment, with their values.
pub fn present() -> Vec<(String, String)> {
    SECRET_VARS.iter().filter_map(|&k| std::env::var(k).ok().map(|v| (k.to_owned(), v))).collect()
}

/// Removes the secret variables from the environment and returns the names removed. Only while the process has
/// one thread (see the module).
pub fn scrub() -> Vec<&'static str> {
    let set: Vec<&'static str> = SECRET_VARS.iter().copied().filter(|k| std::env::var_os(k).is_some()).collect();
    for k in &set {
        std::env::remove_var(k);
    }
    set
}

/// Re-executes this program (`/proc/self/exe`, which works even when the file was replaced on disk) with the same
/// arguments and an environment without `secrets`, handing them over on standard input. Returns only when that
/// failed, with the reason; the caller then goes on with [`scrub`] alone.
pub fn reexec_without(secrets: &[(String, String)]) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let (mut sender, receiver) = match std::os::unix::net::UnixStream::pair() {
        Ok(pair) => pair,
        Err(e) => return e,
    };
    let map: BTreeMap<&str, &str> = secrets.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let payload = match serde_json::to_vec(&map) {
        Ok(p) => p,
        Err(e) => return std::io::Error::other(e),
    };
    // The socket's buffer holds it all (a few hundred bytes); closing the sender ends the stream.
    if let Err(e) = sender.write_all(&payload) {
        return e;
    }
    drop(sender);
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| "pipehook".into());
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg0(arg0).args(args);
    for (k, _) in secrets {
        cmd.env_remove(k);
    }
    cmd.env(HANDOFF_VAR, "1").stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(receiver)));
    cmd.exec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handed_over_values_come_first() {
        let h = HandedOver([("PIPEHOOK_BOOTSTRAP_TOKEN".to_owned(), "phk_x".to_owned())].into_iter().collect());
        assert_eq!(h.var("PIPEHOOK_BOOTSTRAP_TOKEN").as_deref(), Some("phk_x"));
        assert_eq!(h.names(), ["PIPEHOOK_BOOTSTRAP_TOKEN"]);
        assert_eq!(HandedOver::default().var("PIPEHOOK_SURELY_NOT_SET_ANYWHERE"), None);
    }
}
