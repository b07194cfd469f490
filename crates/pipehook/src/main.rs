//! `pipehook`: see the library for everything; this only sets up the closed-pipe hook and the exit code. The
//! async runtime is started by [`pipehook::cli::main`] once it knows the command: a server command first takes
//! its secrets out of the environment, which is only sound while the process has one thread.

fn main() {
    // `pipehook ... | head`: a closed standard output ends the command quietly instead of with a panic.
    pipehook::client::term::quiet_broken_pipe();
    let code = pipehook::cli::main();
    std::process::exit(code);
}
