//! `events secret|resend|enable`: the events for the systems of record.

use super::open_bridge;
use crate::app::cli::EventsCommand;
use crate::app::settings::Settings;
use crate::domain::audit::Actor;
use crate::domain::clock;
use crate::domain::events::WebhookSecret;

pub(super) async fn events(settings: Settings, command: EventsCommand) -> Result<(), String> {
    match command {
        // Nothing is stored: the secret is only ever in the configuration.
        EventsCommand::Secret => {
            println!("{}", WebhookSecret::generate());
            Ok(())
        }
        EventsCommand::Resend {
            since,
            subscription,
        } => {
            let since = clock::parse_rfc3339(&since)
                .ok_or_else(|| format!("--since: not an RFC 3339 time: {since:?}"))?;
            let bridge = open_bridge(&settings).await?;
            let queued = bridge
                .resend_events(since, subscription.as_deref(), &Actor::cli())
                .await
                .map_err(|e| e.to_string())?;
            println!("{queued} event deliveries queued again; a running icbridge sends them");
            Ok(())
        }
        EventsCommand::Enable { name } => {
            let bridge = open_bridge(&settings).await?;
            let enabled = bridge
                .enable_event_subscription(&name, &Actor::cli())
                .await
                .map_err(|e| e.to_string())?;
            if enabled {
                println!("subscription {name} is enabled: new events are queued for it again");
            } else {
                println!("subscription {name} was not disabled");
            }
            Ok(())
        }
    }
}
