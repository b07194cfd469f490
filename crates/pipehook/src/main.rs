//! `pipehook`: see the library for everything; this only sets up the runtime and the exit code.

#[tokio::main]
async fn main() {
    let code = pipehook::cli::main().await;
    std::process::exit(code);
}
