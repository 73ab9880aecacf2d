//! Customers' data: `customer export|erase`, the `audit` log, and `purge` (retention).

use super::open_bridge;
use crate::app::cli::CustomerCommand;
use crate::app::settings::Settings;
use crate::domain::audit::Actor;
use crate::domain::clock;

pub(super) async fn customer(settings: Settings, command: CustomerCommand) -> Result<(), String> {
    let bridge = open_bridge(&settings).await?;
    let actor = Actor::cli();
    let json = match command {
        CustomerCommand::Export { number } => serde_json::to_string_pretty(
            &bridge
                .export_customer(&number, &actor)
                .await
                .map_err(|e| e.to_string())?,
        ),
        CustomerCommand::Erase { number } => {
            let erasure = bridge
                .erase_customer(&number, &actor)
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string_pretty(&erasure).expect("JSON"));
            if bridge.empty_database_log().await == Some(false) {
                eprintln!(
                    "the database's write-ahead log could not be emptied yet (reads kept \
                     it busy): `serve` empties it in its next quiet second, or after a minute of load"
                );
            }
            return Ok(());
        }
    };
    println!("{}", json.expect("JSON"));
    Ok(())
}

pub(super) async fn audit(settings: Settings, limit: i64) -> Result<(), String> {
    let bridge = open_bridge(&settings).await?;
    let entries = bridge
        .audit_log(limit.clamp(1, 10_000))
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "{:<20}  {:<32}  {:<8}  {:<40}  DETAIL",
        "AT", "WHO", "ACTION", "SUBJECT"
    );
    for entry in entries {
        println!(
            "{:<20}  {:<32}  {:<8}  {:<40}  {}",
            clock::rfc3339(entry.at),
            entry.actor,
            entry.action,
            entry.subject,
            entry.detail.as_deref().unwrap_or("-"),
        );
    }
    Ok(())
}

pub(super) async fn purge(settings: Settings) -> Result<(), String> {
    let bridge = open_bridge(&settings).await?;
    let report = bridge
        .purge(settings.data.retention)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "retention {}: {} message texts erased, {} conversations anonymised, {} receipts, \
         {} delivery payloads, {} held WhatsApp messages, {} Webex events, {} events for the \
         systems of record and {} expired sessions removed",
        humantime::format_duration(settings.data.retention),
        report.message_texts_erased,
        report.conversations_anonymised,
        report.receipts_deleted,
        report.outbox_payloads_cleared,
        report.held_messages_dropped,
        report.webex_events_deleted,
        report.events_deleted,
        report.sessions_deleted,
    );
    Ok(())
}
