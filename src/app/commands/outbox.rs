//! `outbox list|retry`: the deliveries to Webex and Webex Connect.

use super::open_bridge;
use crate::app::cli::{OutboxCommand, OutboxStatusArg};
use crate::app::settings::Settings;
use crate::domain::audit::Actor;
use crate::domain::clock::{self, Clock};
use crate::domain::OutboxState;

pub(super) async fn outbox(settings: Settings, command: OutboxCommand) -> Result<(), String> {
    let bridge = open_bridge(&settings).await?;
    match command {
        OutboxCommand::List { status, limit } => {
            let state = status.map(|status| match status {
                OutboxStatusArg::Pending => OutboxState::Pending,
                OutboxStatusArg::Held => OutboxState::Held,
                OutboxStatusArg::Dead => OutboxState::Dead,
                OutboxStatusArg::Sent => OutboxState::Sent,
                OutboxStatusArg::Cancelled => OutboxState::Cancelled,
            });
            let rows = bridge
                .deliveries(state, limit)
                .await
                .map_err(|e| e.to_string())?;
            let now = Clock::system().now_ms();
            for pause in bridge.upstream_pauses().await.map_err(|e| e.to_string())? {
                if pause.credential_refused() {
                    println!(
                        "{}: credential refused since {}, deliveries wait: {}",
                        pause.upstream,
                        clock::rfc3339(pause.updated_at),
                        pause.reason
                    );
                } else if pause.paused_until > now {
                    println!(
                        "{}: paused until {} (it asked to wait): {}",
                        pause.upstream,
                        clock::rfc3339(pause.paused_until),
                        pause.reason
                    );
                }
            }
            println!(
                "{:>6}  {:<20} {:<8} {:>8}  {:<20}  LAST ERROR",
                "ID", "KIND", "STATE", "ATTEMPTS", "CREATED"
            );
            for row in rows {
                println!(
                    "{:>6}  {:<20} {:<8} {:>8}  {:<20}  {}",
                    row.id,
                    row.kind,
                    row.state,
                    row.attempts,
                    clock::rfc3339(row.created_at),
                    row.last_error.as_deref().unwrap_or("-"),
                );
            }
            Ok(())
        }
        OutboxCommand::Retry { id: Some(id), .. } => {
            bridge
                .retry_delivery(id, &Actor::cli())
                .await
                .map_err(|e| e.to_string())?;
            println!("outbox row {id} is due now; a running icbridge delivers it");
            Ok(())
        }
        OutboxCommand::Retry {
            id: None,
            kind,
            since,
            ..
        } => {
            let since = since
                .map(|since| {
                    clock::parse_rfc3339(&since)
                        .ok_or_else(|| format!("--since: not an RFC 3339 time: {since:?}"))
                })
                .transpose()?;
            let revived = bridge
                .retry_dead_deliveries(kind.as_deref(), since, &Actor::cli())
                .await
                .map_err(|e| e.to_string())?;
            println!("{revived} dead rows are due now; a running icbridge delivers them");
            Ok(())
        }
    }
}
