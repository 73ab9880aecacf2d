//! `conversations list|show|close`: the admin API's conversation verbs.

use super::open_bridge;
use crate::app::cli::{ConversationStateArg, ConversationsCommand};
use crate::app::settings::Settings;
use crate::bridge::CloseOutcome;
use crate::domain::audit::Actor;
use crate::domain::clock;
use crate::routes::admin::ConversationDetailView;

pub(super) async fn conversations(
    settings: Settings,
    command: ConversationsCommand,
) -> Result<(), String> {
    let bridge = open_bridge(&settings).await?;
    match command {
        ConversationsCommand::List { state, limit } => {
            let state = match state {
                ConversationStateArg::Open => Some("open"),
                ConversationStateArg::Closed => Some("closed"),
                ConversationStateArg::All => None,
            };
            let list = bridge
                .conversations(state, limit)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "{:<36}  {:<8} {:<14} {:<6}  {:<16} {:<20}  {:<20}  TAKEN BY",
                "ID", "CHANNEL", "CUSTOMER", "STATE", "DESK", "CREATED", "LINKS UNTIL"
            );
            for c in list {
                let links = match (c.links_expire_at, c.waiting_since) {
                    (Some(until), _) => clock::rfc3339(until),
                    (None, Some(_)) => "waits for opening".into(),
                    (None, None) => "-".into(),
                };
                println!(
                    "{:<36}  {:<8} {:<14} {:<6}  {:<16} {:<20}  {:<20}  {}",
                    c.id,
                    c.key.channel.as_str(),
                    c.key.customer.masked(),
                    if c.open { "open" } else { "closed" },
                    bridge.desk_of(&c),
                    clock::rfc3339(c.created_at),
                    links,
                    c.assignee.as_deref().unwrap_or("-"),
                );
            }
            Ok(())
        }
        ConversationsCommand::Show { id } => {
            let detail = bridge
                .conversation_detail(&id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no conversation with id {id}"))?;
            let view = ConversationDetailView::from(&detail);
            println!("{}", serde_json::to_string_pretty(&view).expect("JSON"));
            Ok(())
        }
        ConversationsCommand::Close { id } => {
            // The experts' thread is told, as when an expert closes it.
            let outcome = bridge
                .close(&id, &Actor::cli())
                .await
                .map_err(|e| e.to_string())?;
            match outcome {
                CloseOutcome::Closed => println!("closed"),
                CloseOutcome::AlreadyClosed => println!("already closed"),
                CloseOutcome::Booked { appointment_id, .. } => {
                    return Err(format!(
                        "not closed: it has booked consultation {appointment_id}; \
                         `icbridge appointments cancel {appointment_id}` calls it off"
                    ))
                }
            }
            Ok(())
        }
    }
}
