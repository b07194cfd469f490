//! Logging: `tracing` to stderr, text or JSON, level from `RUST_LOG` (default `info`). Request ids and job
//! ids ride on spans, so every line inside a request or a job carries them.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    // Colour only on a terminal, and never with NO_COLOR set: escape codes must not end up in log files.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(crate::client::term::colour_stderr());
    // A second init (tests start several servers in one process) is harmless: the first one stays.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(true).try_init(),
    };
}
