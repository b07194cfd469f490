//! `pipehook`: see the library for everything; this only sets up the runtime and the exit code.

#[tokio::main]
async fn main() {
    // `pipehook ... | head`: a closed standard output ends the command quietly instead of with a panic.
    pipehook::client::term::quiet_broken_pipe();
    let code = pipehook::cli::main().await;
    std::process::exit(code);
}
