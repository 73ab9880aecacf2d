//! What each subcommand does, one file per group of verbs: `serve` (and `migrate`),
//! `link`, `check`, `conversations`, `appointments`, `customers` (a customer's
//! data, the audit log, retention), `outbox`, `events` and `webex`.
//!
//! The verbs act through the bridge, as the admin API does; none opens the database itself.

mod appointments;
mod check;
mod conversations;
mod customers;
mod events;
mod link;
mod outbox;
mod serve;
mod webex;

use std::process::ExitCode;
use std::time::Duration;

use crate::app::cli::{AuditCommand, Cli, Command, WebexCommand};
use crate::app::settings::Settings;
use crate::app::telemetry;

/// Timeout of the upstream calls the verbs make.
const CLI_TIMEOUT: Duration = Duration::from_secs(15);

pub async fn run(cli: Cli) -> ExitCode {
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("icbridge: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let result = match cli.command {
        Command::Serve { sandbox } => serve::serve(settings, sandbox).await,
        Command::Migrate => serve::migrate(settings).await,
        Command::Link {
            sub,
            vertical,
            long,
            host_login,
            ttl,
            json,
        } => {
            let link = link::Link {
                sub,
                vertical,
                long,
                host_login,
                ttl,
            };
            link::link(settings, link, json).await
        }
        Command::Check => return check::check(settings).await,
        Command::Outbox { command } => outbox::outbox(settings, command).await,
        Command::Conversations { command } => conversations::conversations(settings, command).await,
        Command::Appointments { command } => appointments::appointments(settings, command).await,
        Command::Purge => customers::purge(settings).await,
        Command::Customer { command } => customers::customer(settings, command).await,
        Command::Audit {
            command: AuditCommand::List { limit },
        } => customers::audit(settings, limit).await,
        Command::Events { command } => events::events(settings, command).await,
        Command::Webex {
            command: WebexCommand::Register { public_url },
        } => webex::register_webhooks(settings, public_url).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("icbridge: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The bridge on the configured database (migrated), for the admin verbs: they do what the
/// admin API does. What they queue is delivered by a running `icbridge serve`.
async fn open_bridge(settings: &Settings) -> Result<crate::bridge::Bridge, String> {
    crate::app::open_bridge(settings)
        .await
        .map_err(|e| e.to_string())
}
