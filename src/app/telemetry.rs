//! Logging: human-readable text or JSON lines, filtered by `RUST_LOG` (default
//! [`DEFAULT_FILTER`]).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::app::settings::LogFormat;

/// `info`, without the HTTP server's connection-level errors: actix's dispatcher logs a
/// client's malformed request (a bad header, a broken chunk) or a client gone mid-answer
/// at ERROR, though nothing is wrong with icbridge. The client gets its `400`; the log
/// keeps ERROR for icbridge's own failures. `RUST_LOG=info,actix_http=trace` shows them.
pub const DEFAULT_FILTER: &str = "info,actix_http::h1::dispatcher=off";

pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for people at a terminal, not for journald or docker logs.
        .with_ansi(std::io::stderr().is_terminal());
    // Ignore "already set": tests may initialise more than once.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
