//! Writing to the terminal, or to whatever stands in for it: standard output that may be a pipe closed early
//! (`pipehook ... | head`), and whether colour may be used.
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe fails with `BrokenPipe`, and `println!` panics on it. The
//! client commands write through [`write_out`] (the `outln!`/`out!` macros of [`crate::client`]), which ends the
//! process quietly with exit code 0 instead: the reader has all it wanted. [`quiet_broken_pipe`] ends the
//! process quietly for any other `println!` (`serve`, the database commands), from a panic hook, with 141, the
//! status of a process killed by SIGPIPE: there a lost line may matter (the credentials `serve` prints once), so
//! it must not look like success. No command ever shows a panic for it. No `unsafe` is needed (the workspace
//! forbids it), unlike resetting SIGPIPE to its default.

use std::io::{ErrorKind, IsTerminal, Write};

/// Writes to standard output; a closed pipe ends the process with exit code 0, any other write error (a full
/// disk) with a message and exit code 1.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        output_failed(&e);
    }
}

/// Flushes standard output (after a partial line), with the same handling of errors as [`write_out`].
pub fn flush_out() {
    if let Err(e) = std::io::stdout().lock().flush() {
        output_failed(&e);
    }
}

/// Writes to standard error; errors are ignored (there is nowhere left to report them).
pub fn write_err(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

fn output_failed(e: &std::io::Error) -> ! {
    if e.kind() == ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    write_err(format_args!("pipehook: cannot write the output: {e}\n"));
    std::process::exit(1);
}

/// The exit status of a process killed by SIGPIPE (128 + 13), as a shell reports it.
pub const SIGPIPE_STATUS: i32 = 141;

/// Installs a panic hook that turns the panic of `println!` on a closed standard output into a quiet exit with
/// [`SIGPIPE_STATUS`] (and of `eprintln!` on a closed standard error into exit code 1); every other panic goes
/// to the hook that was installed before.
pub fn quiet_broken_pipe() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        match broken_pipe_exit(message) {
            Some(code) => std::process::exit(code),
            None => previous(info),
        }
    }));
}

/// The exit code for the panic message of a print to a closed pipe, `None` for any other panic.
fn broken_pipe_exit(message: &str) -> Option<i32> {
    let broken = message.contains("Broken pipe") || message.contains("os error 32");
    if !broken {
        return None;
    }
    if message.starts_with("failed printing to stdout") {
        Some(SIGPIPE_STATUS)
    } else if message.starts_with("failed printing to stderr") {
        Some(1)
    } else {
        None
    }
}

/// Whether to colour what goes to a stream: only a terminal, and only when `NO_COLOR` is unset or empty
/// (<https://no-color.org>).
pub fn colour(is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// [`colour`] for standard error, where the logs go.
pub fn colour_stderr() -> bool {
    colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
    }

    #[test]
    fn only_print_panics_on_closed_pipes_exit_quietly() {
        assert_eq!(broken_pipe_exit("failed printing to stdout: Broken pipe (os error 32)"), Some(141));
        assert_eq!(broken_pipe_exit("failed printing to stderr: Broken pipe (os error 32)"), Some(1));
        assert_eq!(broken_pipe_exit("failed printing to stdout: No space left on device (os error 28)"), None);
        assert_eq!(broken_pipe_exit("index out of bounds"), None);
        assert_eq!(broken_pipe_exit("Broken pipe somewhere else"), None);
    }
}
