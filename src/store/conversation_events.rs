//! What the systems of record hear of a conversation after it opened: experts' messages,
//! link openings, taking, releasing, transfers, the close and the rating. Each event is
//! built here from what the change's own transaction reads, and recorded in it.

use serde_json::json;
use sqlx::AnyConnection;

use super::StoreError;
use crate::domain::events::{rfc3339_ms, EventType, NewEvent};
use crate::domain::ExpertFile;

/// The desk of conversation `id` as the transaction sees it (`None`: the default desk, or
/// an unknown conversation).
pub(super) async fn desk_of(
    tx: &mut AnyConnection,
    id: &str,
) -> Result<Option<String>, StoreError> {
    let desk: Option<Option<String>> =
        sqlx::query_scalar("SELECT desk FROM conversations WHERE id = $1")
            .bind(id)
            .fetch_optional(tx)
            .await?;
    Ok(desk.flatten())
}

/// `message.sent`: an expert's message to the customer, stored as row `message_row`. Its
/// text and files go only to subscriptions that include them; the expert's address never.
pub(super) fn message_sent(
    conversation_id: &str,
    desk: Option<&str>,
    customer: &str,
    channel: &str,
    message_row: i64,
    text: &str,
    files: &[ExpertFile],
) -> NewEvent {
    let mut data = json!({
        "message_id": message_row,
        "direction": "outbound",
        "author": "expert",
        "channel": channel,
        "text": text,
    });
    if !files.is_empty() {
        // The Webex link (`webex_url`) needs the bot's token: when sent, it becomes a signed
        // link to icbridge's `/media/`, or is left out (see `delivery::events`).
        let attachments: Vec<_> = files
            .iter()
            .map(|file| {
                json!({"name": file.name, "mime_type": file.mime_type, "webex_url": file.url})
            })
            .collect();
        data["media"] = json!({ "attachments": attachments });
    }
    NewEvent::about_conversation(
        EventType::MessageSent,
        conversation_id,
        desk,
        Some(customer),
        data,
    )
}

/// `link.opened`: the first opening of icbridge's link `code` (read in the transaction
/// that recorded it), or `None` if the code is unknown.
pub(super) async fn link_opened(
    tx: &mut AnyConnection,
    code: &str,
    now: i64,
) -> Result<Option<NewEvent>, StoreError> {
    let found: Option<(String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT l.role, l.meeting_id, t.conversation_id, c.desk
         FROM links l JOIN meetings t ON t.id = l.meeting_id
                      JOIN conversations c ON c.id = t.conversation_id
         WHERE l.code = $1",
    )
    .bind(code)
    .fetch_optional(tx)
    .await?;
    Ok(found.map(|(role, meeting_id, conversation_id, desk)| {
        let role = if role == "host" { "expert" } else { "customer" };
        NewEvent::about_conversation(
            EventType::LinkOpened,
            &conversation_id,
            desk.as_deref(),
            None,
            json!({
                "role": role,
                "meeting_id": meeting_id,
                "opened_at": rfc3339_ms(now),
            }),
        )
    }))
}

/// `conversation.assigned` or `conversation.released`: `expert` (the business's own staff,
/// as stored) took or released conversation `id`.
pub(super) async fn assignment(
    tx: &mut AnyConnection,
    kind: EventType,
    id: &str,
    expert: &str,
) -> Result<NewEvent, StoreError> {
    let desk = desk_of(tx, id).await?;
    Ok(NewEvent::about_conversation(
        kind,
        id,
        desk.as_deref(),
        None,
        json!({ "expert": expert }),
    ))
}

/// `conversation.transferred` from `from_desk` to `to_desk` (the event's desk).
pub(super) fn transferred(id: &str, from_desk: Option<&str>, to_desk: &str) -> NewEvent {
    NewEvent::about_conversation(
        EventType::ConversationTransferred,
        id,
        Some(to_desk),
        None,
        json!({
            "from_desk": from_desk.unwrap_or(crate::domain::events::DEFAULT_DESK),
            "to_desk": to_desk,
        }),
    )
}

/// `conversation.closed`, read after the close in its transaction: who closed it and how
/// long things took, in seconds (`null` when it did not happen): to the first expert
/// message, in the meeting (from the expert's first opening of a host link to the close),
/// and in all.
pub(super) async fn closed(tx: &mut AnyConnection, id: &str) -> Result<NewEvent, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Closed {
        desk: Option<String>,
        created_at: i64,
        closed_at: Option<i64>,
        closed_by: Option<String>,
        first_expert_message_at: Option<i64>,
        host_opened_at: Option<i64>,
    }
    let closed: Closed = sqlx::query_as(
        "SELECT c.desk, c.created_at, c.closed_at, c.closed_by,
                (SELECT MIN(m.received_at) FROM messages m
                 WHERE m.conversation_id = c.id AND m.author = 'expert')
                    AS first_expert_message_at,
                (SELECT MIN(l.opened_at) FROM links l JOIN meetings t ON t.id = l.meeting_id
                 WHERE t.conversation_id = c.id AND l.role = 'host') AS host_opened_at
         FROM conversations c WHERE c.id = $1",
    )
    .bind(id)
    .fetch_one(tx)
    .await?;
    let closed_at = closed.closed_at.unwrap_or(closed.created_at);
    let seconds = |from: i64, to: i64| (to - from).max(0) / 1000;
    Ok(NewEvent::about_conversation(
        EventType::ConversationClosed,
        id,
        closed.desk.as_deref(),
        None,
        json!({
            "closed_by": closed.closed_by,
            "closed_at": rfc3339_ms(closed_at),
            "first_response_s": closed
                .first_expert_message_at
                .map(|at| seconds(closed.created_at, at)),
            "in_meeting_s": closed.host_opened_at.map(|at| seconds(at, closed_at)),
            "total_s": seconds(closed.created_at, closed_at),
        }),
    ))
}

/// `rating.received`: the customer rated conversation `id`.
pub(super) async fn rating_received(
    tx: &mut AnyConnection,
    id: &str,
    rating: i64,
) -> Result<NewEvent, StoreError> {
    let desk = desk_of(tx, id).await?;
    Ok(NewEvent::about_conversation(
        EventType::RatingReceived,
        id,
        desk.as_deref(),
        None,
        json!({ "rating": rating }),
    ))
}
