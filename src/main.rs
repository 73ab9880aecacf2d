//! The `icbridge` binary: parses the command line and hands it to `app::commands`.

use clap::Parser;

use icbridge::app::cli::Cli;

// HTTP requests run on actix's own workers, one per core; this runtime runs the
// background workers (the outbox, the Webex desk, retention) and their connections.
#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    icbridge::app::commands::run(cli).await
}
