use clap::Parser;

use icbridge::cli::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    icbridge::commands::run(cli).await
}
