//! The sandbox executor: every command of a pipeline action or a build phase in its own bubblewrap sandbox.
//!
//! pipehook runs commands for many organizations on one worker. Run directly, a command would have the
//! server's powers: its environment, its data folder (the database and the master key), every other
//! workspace, and signals to the server itself. [`Sandbox`] runs each command under bubblewrap (`bwrap`,
//! Debian package `bubblewrap`, unprivileged through a user namespace), as CodeBuild runs each build in its
//! own container:
//!
//! - **Processes**: its own PID namespace (the server and every other process are invisible and cannot be
//!   signalled), with a fresh `/proc` that shows only the sandbox; IPC, UTS and (where the kernel allows)
//!   cgroup namespaces of its own; a new session (no controlling terminal to inject input into); all
//!   capabilities dropped and no further user namespaces (`--disable-userns`). It dies with the worker
//!   (`--die-with-parent`), and when its first process ends the kernel ends everything left in it.
//! - **Files**: an empty root, read-only, with the system folders bound read-only (`/usr`, `/bin`, `/sbin`,
//!   `/lib*`), a short list of `/etc` files builds need ([`ETC_ENTRIES`]: name resolution, users and groups,
//!   TLS trust, the dynamic linker's cache, time zone, system-wide git and ssh client settings: never
//!   `/etc/shadow`, private keys or pipehook's own configuration), the operator's extra read-only paths, a
//!   private `/tmp` (a size-bounded tmpfs, also `HOME`), and the command's own workspace read-write at its real
//!   path (so paths in logs mean the same inside and out) as the working directory, plus the few folders its
//!   caller names ([`exec::CommandSpec::writable`]). The data folder, other workspaces and the rest of the
//!   host are not there. `/proc/sys`, `/proc/sysrq-trigger` and similar kernel interfaces are read-only or
//!   masked.
//! - **Environment**: built from scratch: a fixed `PATH`, `HOME` and `LANG` plus the variables the action or
//!   build defines; nothing of the server's. The variables reach bubblewrap through its standard input
//!   (`--args 0`), never through its command line (which any local user can read in `/proc`) nor its own
//!   environment (a variable like `LD_PRELOAD` would act on bubblewrap itself, outside the sandbox).
//! - **Network**: shared with the host by default (builds download dependencies); a command whose action or
//!   project sets [`NETWORK_VAR`]` = none` gets a network namespace of its own with only a loopback
//!   interface, and the operator can take the network away from every command ([`NetworkPolicy::Isolated`]).
//! - **Limits**: `prlimit` inside the sandbox sets CPU seconds, address space, processes and file size
//!   ([`Limits`]) before the command starts; the command cannot raise them.
//!
//! [`exec::run`] keeps everything else: the process group (here bubblewrap's; ending it ends the sandbox),
//! the timeout, the stop token, the bounded log and its snapshots.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::exec::{self, CommandSpec, Outcome};

/// The variable an action or a project sets to `none` to run its commands without network access
/// (`shared`, the default, keeps the host's network).
pub const NETWORK_VAR: &str = "PIPEHOOK_NETWORK";

/// `PATH` inside the sandbox.
pub const SANDBOX_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `HOME` inside the sandbox: on the private `/tmp`.
pub const SANDBOX_HOME: &str = "/tmp/home";

/// `LANG` inside the sandbox (glibc has it built in).
pub const SANDBOX_LANG: &str = "C.UTF-8";

/// System folders bound read-only (or recreated as the same symbolic link, on merged-/usr systems).
const SYSTEM_DIRS: [&str; 7] = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// What of `/etc` a sandbox sees, read-only, when it exists on the host. Everything else there (`shadow`,
/// `ssl/private`, `ssh` host keys, pipehook's or a database's configuration) stays out.
pub const ETC_ENTRIES: &[&str] = &[
    // Names and addresses.
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/networks",
    // Users and groups by name (no passwords: those are in shadow).
    "/etc/passwd",
    "/etc/group",
    // TLS trust.
    "/etc/ssl/certs",
    "/etc/ssl/openssl.cnf",
    "/etc/ca-certificates",
    "/etc/ca-certificates.conf",
    "/etc/pki/tls/certs",
    "/etc/pki/ca-trust",
    "/etc/crypto-policies",
    // How programs and libraries are found.
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    // Time, locale, system identity, file types.
    "/etc/localtime",
    "/etc/timezone",
    "/etc/locale.alias",
    "/etc/os-release",
    "/etc/debian_version",
    "/etc/lsb-release",
    "/etc/shells",
    "/etc/mime.types",
    "/etc/magic",
    "/etc/magic.mime",
    "/etc/fonts",
    "/etc/wgetrc",
    // System-wide git and ssh client settings (mirrors, known hosts); never the operator's home.
    "/etc/gitconfig",
    "/etc/ssh/ssh_config",
    "/etc/ssh/ssh_config.d",
    "/etc/ssh/ssh_known_hosts",
];

/// Folders of `/etc` whose names start like this are language runtimes' settings (`/etc/java-17-openjdk`,
/// `/etc/python3.11`, `/etc/perl`); they are bound read-only too.
const ETC_RUNTIME_PREFIXES: [&str; 3] = ["java", "python", "perl"];

/// Kernel interfaces under `/proc` that stay read-only in the sandbox (as Docker keeps them): with pipehook
/// running as root, the sandbox's uid is 0 and some of them check the uid rather than a capability.
const PROC_READ_ONLY: [&str; 5] = ["/proc/sys", "/proc/sysrq-trigger", "/proc/fs", "/proc/irq", "/proc/bus"];

/// Files under `/proc` replaced by an empty file (as Docker masks them).
const PROC_MASKED_FILES: [&str; 5] =
    ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/latency_stats"];

/// Folders under `/proc` replaced by an empty read-only folder.
const PROC_MASKED_DIRS: [&str; 3] = ["/proc/acpi", "/proc/scsi", "/proc/asound"];

/// The wrapper the sandbox starts: bubblewrap has read its arguments from standard input and closed it, so
/// the command gets `/dev/null` as its standard input, as without the sandbox.
const STDIN_WRAPPER: &str = "exec </dev/null && exec \"$@\"";

/// Resource limits of every process in a sandbox, set with `prlimit` before the command starts (soft and
/// hard, so the command cannot raise them). 0 means unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// CPU time of each process, in seconds (`RLIMIT_CPU`): SIGXCPU at the limit, SIGKILL a second later.
    pub cpu_seconds: u64,
    /// Address space of each process, in bytes (`RLIMIT_AS`): allocations beyond it fail.
    pub memory_bytes: u64,
    /// Processes and threads of the sandbox's user (`RLIMIT_NPROC`; counted per sandbox, since each has its
    /// own user namespace; the kernel does not apply it to root).
    pub processes: u64,
    /// Size of any file a process writes, in bytes (`RLIMIT_FSIZE`): SIGXFSZ / EFBIG beyond it.
    pub file_size_bytes: u64,
    /// Size of the private `/tmp` (and `HOME`), a tmpfs held in memory.
    pub tmp_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        const GIB: u64 = 1024 * 1024 * 1024;
        Limits { cpu_seconds: 7200, memory_bytes: 8 * GIB, processes: 4096, file_size_bytes: 8 * GIB, tmp_bytes: GIB }
    }
}

/// The operator's rule for the network of sandboxed commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkPolicy {
    /// Commands share the host's network unless their action or project asks for none ([`NETWORK_VAR`]).
    #[default]
    Shared,
    /// No command gets network access, whatever it asks for.
    Isolated,
}

/// What an action or a build asks for with [`NETWORK_VAR`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// The host's network (unless the operator's policy takes it away).
    #[default]
    Shared,
    /// A network namespace with only a loopback interface: no connection leaves the sandbox.
    Isolated,
}

impl Network {
    /// The choice `env` makes with [`NETWORK_VAR`] (its last value wins, as in the environment itself):
    /// `none` or `shared`; unset or empty means shared. Anything else is an error naming the variable.
    pub fn from_env(env: &[(String, String)]) -> Result<Network, String> {
        let value = env.iter().rev().find(|(k, _)| k == NETWORK_VAR).map(|(_, v)| v.trim());
        match value {
            None | Some("") | Some("shared") => Ok(Network::Shared),
            Some("none") => Ok(Network::Isolated),
            Some(other) => Err(format!("{NETWORK_VAR} must be none or shared, not {other:?}")),
        }
    }
}

/// The operator's sandbox settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SandboxSettings {
    pub limits: Limits,
    pub network: NetworkPolicy,
    /// More host paths every sandbox sees read-only at the same place (toolchains in `/opt`, say).
    pub read_only_paths: Vec<PathBuf>,
    /// What no tenant may reach by any way: the data folder and the workspaces. Checkouts, which run outside the
    /// sandbox, refuse a local source in them ([`Sandbox::refuses_source`]).
    pub hidden_paths: Vec<PathBuf>,
}

/// Why the sandbox cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    /// A program it needs is not installed.
    #[error("{0}")]
    Missing(String),
    /// bubblewrap is there but could not create a sandbox.
    #[error("{0}")]
    Unusable(String),
}

/// How to install bubblewrap or do without it: the end of every [`SandboxError`] message.
pub const INSTALL_HINT: &str = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora/RHEL: dnf \
                                install bubblewrap), or, for a single-tenant installation whose pipelines and \
                                builds are all trusted, run commands unsandboxed with PIPEHOOK_RUNNER_EXECUTOR=none \
                                (runner.executor = \"none\")";

/// A configured sandbox: where bubblewrap and prlimit are, and what every sandbox gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    bwrap: PathBuf,
    /// `None` when every limit is 0 (unlimited): the command then starts without prlimit.
    prlimit: Option<PathBuf>,
    settings: SandboxSettings,
    /// The mount arguments every sandbox shares, computed once from the host's layout.
    base: Vec<String>,
}

impl Sandbox {
    /// Finds `bwrap` on the worker's `PATH` and `prlimit` in the system folders the sandbox shows, and lays
    /// out the mounts. It does not start anything: [`Sandbox::probe`] does.
    pub fn new(settings: SandboxSettings) -> Result<Sandbox, SandboxError> {
        let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from(SANDBOX_PATH));
        let bwrap = find_program("bwrap", &path).ok_or_else(|| {
            SandboxError::Missing(format!(
                "the sandbox executor needs bubblewrap, and `bwrap` is not on PATH ({}): {INSTALL_HINT}",
                path.to_string_lossy()
            ))
        })?;
        let l = &settings.limits;
        let limited = [l.cpu_seconds, l.memory_bytes, l.processes, l.file_size_bytes].iter().any(|v| *v > 0);
        let prlimit = if limited {
            // Looked up where the sandbox shows it, since it runs inside.
            Some(find_program("prlimit", &OsString::from(SANDBOX_PATH)).ok_or_else(|| {
                SandboxError::Missing(format!(
                    "the sandbox executor sets resource limits with prlimit (util-linux), and it is not in \
                     {SANDBOX_PATH}: install util-linux, or set every runner.limit_* to 0; or {INSTALL_HINT}"
                ))
            })?)
        } else {
            None
        };
        let base = base_mounts(&settings);
        Ok(Sandbox { bwrap, prlimit, settings, base })
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &SandboxSettings {
        &self.settings
    }

    /// Where bubblewrap is.
    pub fn bwrap(&self) -> &Path {
        &self.bwrap
    }

    /// Runs `true` in a sandbox with every namespace a command may get (network included) and the limits,
    /// in `dir` (which must exist), to prove this machine can create one: user namespaces may be disabled
    /// (`kernel.unprivileged_userns_clone`, `user.max_user_namespaces`, AppArmor on Ubuntu 24.04).
    pub async fn probe(&self, dir: &Path) -> Result<(), SandboxError> {
        let spec = CommandSpec {
            command: "true".to_owned(),
            workdir: dir.to_owned(),
            env: Vec::new(),
            timeout: Duration::from_secs(30),
            log_limit: 16 * 1024,
            executor: exec::Executor::Sandbox(std::sync::Arc::new(self.clone())),
            writable: Vec::new(),
            network: Network::Isolated,
            registry: None,
        };
        let result = exec::run(&spec, &CancellationToken::new(), None).await;
        match result.outcome {
            Outcome::Succeeded => Ok(()),
            outcome => {
                let detail = result.log.trim();
                let detail = if detail.is_empty() { format!("{outcome:?}") } else { detail.replace('\n', "; ") };
                Err(SandboxError::Unusable(format!(
                    "bubblewrap ({}) could not create a sandbox: {detail}. Unprivileged user namespaces may be \
                     disabled (sysctl kernel.unprivileged_userns_clone=1 and user.max_user_namespaces > 0; on \
                     Ubuntu 24.04 AppArmor restricts them: kernel.apparmor_restrict_unprivileged_userns=0 or an \
                     AppArmor profile for bwrap); or {INSTALL_HINT}",
                    self.bwrap.display()
                )))
            }
        }
    }

    /// Why a checkout of `url` must not run: a local path inside [`SandboxSettings::hidden_paths`] (another
    /// execution's workspace is a git repository, and git runs as the server's user, outside any sandbox).
    pub fn refuses_source(&self, url: &str) -> Option<String> {
        let path = crate::git::local_path(url)?;
        let real = std::fs::canonicalize(&path).ok()?;
        self.settings.hidden_paths.iter().find_map(|hidden| {
            let hidden = std::fs::canonicalize(hidden).unwrap_or_else(|_| hidden.clone());
            real.starts_with(&hidden).then(|| {
                format!("{url} is inside pipehook's data folder or workspaces, which no source may be checked out from")
            })
        })
    }

    /// Whether a command asking for `network` runs without the host's network.
    pub fn isolates_network(&self, network: Network) -> bool {
        self.settings.network == NetworkPolicy::Isolated || network == Network::Isolated
    }

    /// bubblewrap's arguments for `spec`, NUL-separated, for its standard input (`--args 0`): the mounts, the
    /// namespaces and the whole environment. Fails for a variable that cannot be passed (a name with `=`, a
    /// NUL anywhere).
    pub(crate) fn arguments(&self, spec: &CommandSpec) -> Result<Vec<u8>, String> {
        let mut args: Vec<String> = vec![
            "--unshare-user".into(),
            "--unshare-pid".into(),
            "--unshare-ipc".into(),
            "--unshare-uts".into(),
            "--unshare-cgroup-try".into(),
            "--disable-userns".into(),
            // PR_SET_PDEATHSIG: the sandbox dies with the *thread* that started bwrap. exec::run starts it from
            // a runtime worker thread, which lives as long as the runtime; never start commands from a thread
            // that may end before them (spawn_blocking, block_in_place).
            "--die-with-parent".into(),
            "--new-session".into(),
            "--cap-drop".into(),
            "ALL".into(),
        ];
        if self.isolates_network(spec.network) {
            args.push("--unshare-net".into());
        }
        args.extend(self.base.iter().cloned());
        let push_path = |args: &mut Vec<String>, option: &str, path: &Path| -> Result<(), String> {
            let text = path.to_str().ok_or_else(|| format!("{} is not valid UTF-8", path.display()))?;
            args.extend([option.to_owned(), text.to_owned(), text.to_owned()]);
            Ok(())
        };
        // The workspace and the caller's folders last, so they are mounted over anything above (the /tmp
        // tmpfs, when a workspace lives in the host's /tmp).
        push_path(&mut args, "--bind", &spec.workdir)?;
        for dir in &spec.writable {
            push_path(&mut args, "--bind", dir)?;
        }
        // The root stays read-only: nothing lands in the sandbox's memory outside the bounded /tmp.
        args.extend(["--remount-ro".into(), "/".into()]);
        let workdir = spec.workdir.to_str().ok_or_else(|| format!("{} is not valid UTF-8", spec.workdir.display()))?;
        args.extend(["--chdir".into(), workdir.to_owned(), "--clearenv".into()]);
        let base = [("PATH", SANDBOX_PATH), ("HOME", SANDBOX_HOME), ("LANG", SANDBOX_LANG)];
        for (name, value) in
            base.iter().map(|(k, v)| (*k, *v)).chain(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(format!("environment variable name {name:?} cannot be set"));
            }
            if value.contains('\0') {
                return Err(format!("environment variable {name} contains a NUL character"));
            }
            args.extend(["--setenv".into(), name.to_owned(), value.to_owned()]);
        }
        let mut bytes = Vec::new();
        for arg in &args {
            if arg.contains('\0') {
                return Err(format!("sandbox argument {arg:?} contains a NUL character"));
            }
            bytes.extend_from_slice(arg.as_bytes());
            bytes.push(0);
        }
        Ok(bytes)
    }

    /// The program and arguments bubblewrap runs inside the sandbox: the standard-input wrapper, prlimit with
    /// the limits, then `shell -c command`.
    pub(crate) fn inner_command(&self, shell: &str, command: &str) -> Vec<String> {
        let mut argv =
            vec!["/bin/sh".to_owned(), "-c".to_owned(), STDIN_WRAPPER.to_owned(), "pipehook-sandbox".to_owned()];
        if let Some(prlimit) = &self.prlimit {
            argv.push(prlimit.display().to_string());
            let l = &self.settings.limits;
            if l.cpu_seconds > 0 {
                // The hard limit a second later: SIGXCPU first, then SIGKILL for a process that ignores it.
                argv.push(format!("--cpu={}:{}", l.cpu_seconds, l.cpu_seconds.saturating_add(1)));
            }
            for (flag, value) in [("--as", l.memory_bytes), ("--nproc", l.processes), ("--fsize", l.file_size_bytes)] {
                if value > 0 {
                    argv.push(format!("{flag}={value}"));
                }
            }
            // No core dumps: they would land in the workspace or go to the host's crash handler.
            argv.push("--core=0".to_owned());
            argv.push("--".to_owned());
        }
        argv.extend([shell.to_owned(), "-c".to_owned(), command.to_owned()]);
        argv
    }
}

/// The mounts every sandbox gets, from the host's layout: system folders, `/etc` entries, the operator's
/// paths, `/proc`, `/dev`, `/tmp`.
fn base_mounts(settings: &SandboxSettings) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut add = |parts: &[&str]| args.extend(parts.iter().map(|s| (*s).to_owned()));
    for dir in SYSTEM_DIRS {
        match std::fs::symlink_metadata(dir) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(dir) {
                    if let Some(target) = target.to_str() {
                        add(&["--symlink", target, dir]);
                    }
                }
            }
            Ok(meta) if meta.is_dir() => add(&["--ro-bind", dir, dir]),
            _ => {}
        }
    }
    let mut etc: Vec<String> = ETC_ENTRIES.iter().map(|s| (*s).to_owned()).collect();
    if let Ok(entries) = std::fs::read_dir("/etc") {
        let mut runtimes: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|name| ETC_RUNTIME_PREFIXES.iter().any(|p| name.starts_with(p)))
            .map(|name| format!("/etc/{name}"))
            .collect();
        runtimes.sort();
        etc.extend(runtimes);
    }
    for entry in &etc {
        if Path::new(entry).exists() {
            add(&["--ro-bind-try", entry, entry]);
        }
    }
    add(&["--symlink", "/proc/self/mounts", "/etc/mtab"]);
    add(&["--proc", "/proc", "--dev", "/dev"]);
    for path in PROC_READ_ONLY {
        add(&["--ro-bind-try", path, path]);
    }
    for path in PROC_MASKED_FILES {
        if Path::new(path).exists() {
            add(&["--ro-bind", "/dev/null", path]);
        }
    }
    for path in PROC_MASKED_DIRS {
        if Path::new(path).is_dir() {
            add(&["--tmpfs", path, "--remount-ro", path]);
        }
    }
    let tmp_size = settings.limits.tmp_bytes.to_string();
    if settings.limits.tmp_bytes > 0 {
        add(&["--size", &tmp_size]);
    }
    add(&["--tmpfs", "/tmp", "--dir", SANDBOX_HOME, "--symlink", "../tmp", "/var/tmp"]);
    // After /tmp, so a path there is not hidden by the tmpfs.
    for path in &settings.read_only_paths {
        if let Some(p) = path.to_str() {
            add(&["--ro-bind-try", p, p]);
        }
    }
    args
}

/// The first executable file called `name` in the folders of `path`.
fn find_program(name: &str, path: &OsString) -> Option<PathBuf> {
    std::env::split_paths(path).filter(|dir| dir.is_absolute()).map(|dir| dir.join(name)).find(|candidate| {
        std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn network_choice_from_the_environment() {
        assert_eq!(Network::from_env(&[]), Ok(Network::Shared));
        assert_eq!(Network::from_env(&env(&[(NETWORK_VAR, "none")])), Ok(Network::Isolated));
        assert_eq!(Network::from_env(&env(&[(NETWORK_VAR, " shared ")])), Ok(Network::Shared));
        assert_eq!(Network::from_env(&env(&[(NETWORK_VAR, "none"), (NETWORK_VAR, "")])), Ok(Network::Shared));
        let err = Network::from_env(&env(&[(NETWORK_VAR, "off")])).unwrap_err();
        assert!(err.contains(NETWORK_VAR) && err.contains("\"off\""), "{err}");
    }

    fn sandbox(settings: SandboxSettings) -> Sandbox {
        let base = base_mounts(&settings);
        Sandbox { bwrap: "/usr/bin/bwrap".into(), prlimit: Some("/usr/bin/prlimit".into()), settings, base }
    }

    fn spec(env: Vec<(String, String)>) -> CommandSpec {
        CommandSpec {
            command: "true".into(),
            workdir: "/srv/ws/1".into(),
            env,
            timeout: Duration::from_secs(1),
            log_limit: 1024,
            executor: exec::Executor::Direct,
            writable: vec!["/srv/state/1".into()],
            network: Network::Shared,
            registry: None,
        }
    }

    fn args_of(sandbox: &Sandbox, spec: &CommandSpec) -> Vec<String> {
        let bytes = sandbox.arguments(spec).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let mut args: Vec<String> = text.split('\0').map(str::to_owned).collect();
        assert_eq!(args.pop().as_deref(), Some(""), "every argument ends with a NUL");
        args
    }

    fn has(args: &[String], window: &[&str]) -> bool {
        args.windows(window.len()).any(|w| w.iter().zip(window).all(|(a, b)| a == b))
    }

    #[test]
    fn arguments_isolate_and_carry_the_environment() {
        let s = sandbox(SandboxSettings::default());
        let args = args_of(&s, &spec(env(&[("GREETING", "a b\nc"), ("PATH", "/opt/x/bin")])));
        for flag in ["--unshare-user", "--unshare-pid", "--die-with-parent", "--new-session", "--clearenv"] {
            assert!(args.iter().any(|a| a == flag), "{flag}: {args:?}");
        }
        assert!(has(&args, &["--cap-drop", "ALL"]));
        assert!(!args.iter().any(|a| a == "--unshare-net"), "shared network by default");
        assert!(has(&args, &["--bind", "/srv/ws/1", "/srv/ws/1"]));
        assert!(has(&args, &["--bind", "/srv/state/1", "/srv/state/1"]));
        assert!(has(&args, &["--chdir", "/srv/ws/1"]));
        assert!(has(&args, &["--setenv", "GREETING", "a b\nc"]));
        // The caller's PATH comes after the fixed one, so it wins.
        let fixed = args.windows(3).position(|w| w[0] == "--setenv" && w[1] == "PATH" && w[2] == SANDBOX_PATH);
        let own = args.windows(3).position(|w| w[0] == "--setenv" && w[1] == "PATH" && w[2] == "/opt/x/bin");
        assert!(fixed.unwrap() < own.unwrap());
        // The workspace is bound after /tmp, and the root made read-only after both.
        let tmp = args.iter().position(|a| a == "/tmp").unwrap();
        let ws = args.iter().position(|a| a == "/srv/ws/1").unwrap();
        let ro = args.windows(2).position(|w| w[0] == "--remount-ro" && w[1] == "/").unwrap();
        assert!(tmp < ws && ws < ro, "{args:?}");
        assert!(!args.iter().any(|a| a == "/etc/shadow" || a == "/etc"), "{args:?}");
    }

    #[test]
    fn network_isolation_by_request_or_by_policy() {
        let s = sandbox(SandboxSettings::default());
        let mut isolated = spec(Vec::new());
        isolated.network = Network::Isolated;
        assert!(args_of(&s, &isolated).iter().any(|a| a == "--unshare-net"));
        let s = sandbox(SandboxSettings { network: NetworkPolicy::Isolated, ..SandboxSettings::default() });
        assert!(args_of(&s, &spec(Vec::new())).iter().any(|a| a == "--unshare-net"));
    }

    #[test]
    fn bad_variables_are_refused() {
        let s = sandbox(SandboxSettings::default());
        assert!(s.arguments(&spec(env(&[("A=B", "x")]))).unwrap_err().contains("cannot be set"));
        assert!(s.arguments(&spec(env(&[("", "x")]))).unwrap_err().contains("cannot be set"));
        assert!(s.arguments(&spec(env(&[("A", "x\0y")]))).unwrap_err().contains("NUL"));
    }

    #[test]
    fn limits_go_to_prlimit() {
        let s = sandbox(SandboxSettings::default());
        let argv = s.inner_command("/bin/sh", "echo hi");
        assert_eq!(&argv[..4], ["/bin/sh", "-c", STDIN_WRAPPER, "pipehook-sandbox"]);
        assert_eq!(argv[4], "/usr/bin/prlimit");
        assert!(argv.contains(&"--cpu=7200:7201".to_owned()), "{argv:?}");
        assert!(argv.contains(&format!("--as={}", 8u64 << 30)), "{argv:?}");
        assert!(argv.contains(&"--nproc=4096".to_owned()), "{argv:?}");
        assert_eq!(&argv[argv.len() - 4..], ["--", "/bin/sh", "-c", "echo hi"]);

        let limits = Limits { cpu_seconds: 0, memory_bytes: 0, processes: 5, file_size_bytes: 0, tmp_bytes: 0 };
        let s = sandbox(SandboxSettings { limits, ..SandboxSettings::default() });
        let argv = s.inner_command("bash", "x");
        assert_eq!(&argv[4..], ["/usr/bin/prlimit", "--nproc=5", "--core=0", "--", "bash", "-c", "x"]);
        assert!(!s.base.iter().any(|a| a == "--size"), "tmp_bytes 0: an unbounded /tmp");
    }
}
