//! Events for the systems of record (`events`), the subscriptions that take them
//! (`event_subscriptions`), and their deliveries: one outbox row per event and
//! subscription, queued in the transaction that records the event.

use sqlx::AnyConnection;

use super::engine::rows_of_placeholders;
use super::{Store, StoreError};
use crate::domain::events::{EventType, NewEvent, StoredEvent, Subscription};

/// The outbox `kind` of an event's delivery.
pub const EVENT_KIND: &str = crate::domain::events::DELIVERY_KIND;

/// The lane (after the subscription's name) of events about a customer rather than a
/// conversation.
const CUSTOMERS_LANE: &str = "customers";

/// An event delivery's payload names its subscription; the body is rendered when it is
/// sent, from the stored event and the subscription's `include`.
pub fn event_payload(subscription: &str) -> String {
    serde_json::json!({ "subscription": subscription }).to_string()
}

/// Stores `events` (while any subscription is configured, enabled or not) and (by the
/// table's trigger) queues each for every enabled subscription
/// that takes its type and desk, in the caller's transaction: an event is as durable as what
/// caused it. Each delivery's lane is its subscription and conversation, so that a
/// receiver's events arrive in order and a receiver that is down holds back no one else.
pub(super) async fn record_events(
    tx: &mut AnyConnection,
    events: &[NewEvent],
    now: i64,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    // Without any subscription nothing is stored: no one would receive it, and a message's
    // text would be kept twice for nothing. Asked before the insert is built: binding a
    // batch's events costs SQLite more than this question (a batch of 32 messages' events
    // took 210 µs of the writer's time to insert nothing).
    let subscriptions: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT 1 FROM event_subscriptions LIMIT 1) s")
            .fetch_one(&mut *tx)
            .await?;
    if subscriptions == 0 {
        return Ok(());
    }
    // The deliveries are queued by the table's trigger (`events_queue`, migration
    // 20261208000028), row by row in this statement: one statement for the whole batch.
    let sql = format!(
        "INSERT INTO events (type, occurred_at, conversation_id, customer, desk, data)
         VALUES {}",
        rows_of_placeholders(events.len(), 6, 1)
    );
    let mut insert = sqlx::query(&sql);
    for event in events {
        insert = insert
            .bind(event.kind.as_str())
            .bind(now)
            .bind(&event.conversation_id)
            .bind(&event.customer)
            .bind(&event.desk)
            .bind(serde_json::Value::Object(event.data.clone()).to_string());
    }
    insert.execute(tx).await?;
    Ok(())
}

/// `,a,b,`: a list as `event_subscriptions` keeps it, found with `LIKE '%,a,%'`.
fn listed<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<&str> = items.collect();
    format!(",{},", items.join(","))
}

/// A page of stored events (`GET /api/events`).
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only events at or after this instant (Unix ms).
    pub since: i64,
    /// Only events after this id (the previous page's last).
    pub after_id: i64,
    /// Only these types; empty: all.
    pub types: Vec<EventType>,
    pub limit: i64,
}

impl Store {
    /// Records events on their own (when nothing else is written with them).
    pub async fn record_events(&self, events: Vec<NewEvent>, now: i64) -> Result<(), StoreError> {
        self.write(async move |tx| record_events(tx, &events, now).await)
            .await
    }

    /// Writes the configured subscriptions' filters, removing those no longer configured.
    /// A subscription disabled by a `410` stays disabled unless its URL changed. Returns
    /// the names of those still disabled.
    pub async fn sync_event_subscriptions(
        &self,
        subscriptions: &[Subscription],
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String, String, Option<String>, Option<String>)> = subscriptions
            .iter()
            .map(|s| {
                let types = (!s.events.is_empty()).then(|| {
                    listed(
                        EventType::ALL
                            .into_iter()
                            .filter(|t| s.events.iter().any(|p| p.matches(*t)))
                            .map(EventType::as_str),
                    )
                });
                let desks = s
                    .desks
                    .as_ref()
                    .map(|desks| listed(desks.iter().map(String::as_str)));
                (s.name.clone(), s.url.to_string(), types, desks)
            })
            .collect();
        self.write(async move |tx| {
            let names: Vec<&str> = rows.iter().map(|row| row.0.as_str()).collect();
            let configured = listed(names.into_iter());
            sqlx::query("DELETE FROM event_subscriptions WHERE $1 NOT LIKE '%,' || name || ',%'")
                .bind(configured)
                .execute(&mut *tx)
                .await?;
            for (name, url, types, desks) in &rows {
                sqlx::query(
                    "INSERT INTO event_subscriptions (name, url, types, desks) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (name) DO UPDATE SET
                         types = excluded.types, desks = excluded.desks, url = excluded.url,
                         disabled_at = CASE WHEN event_subscriptions.url = excluded.url
                                            THEN event_subscriptions.disabled_at END,
                         reason = CASE WHEN event_subscriptions.url = excluded.url
                                       THEN event_subscriptions.reason END",
                )
                .bind(name)
                .bind(url)
                .bind(types)
                .bind(desks)
                .execute(&mut *tx)
                .await?;
            }
            Ok(sqlx::query_scalar(
                "SELECT name FROM event_subscriptions WHERE disabled_at IS NOT NULL ORDER BY name",
            )
            .fetch_all(&mut *tx)
            .await?)
        })
        .await
    }

    /// A receiver answered `410 Gone`: its subscription gets nothing more, and what was
    /// queued for it is dead (revivable with `icbridge outbox retry` once it is enabled).
    /// Returns whether it was enabled until now.
    pub async fn disable_event_subscription(
        &self,
        name: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (name, reason) = (name.to_string(), reason.to_string());
        self.write(async move |tx| {
            let disabled = sqlx::query(
                "UPDATE event_subscriptions SET disabled_at = $1, reason = $2
                 WHERE name = $3 AND disabled_at IS NULL",
            )
            .bind(now)
            .bind(&reason)
            .bind(&name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "UPDATE outbox SET state = 'dead', last_error = $1, leased_until = NULL
                 WHERE state = 'pending' AND kind = $2 AND payload = $3",
            )
            .bind(format!("subscription disabled: {reason}"))
            .bind(EVENT_KIND)
            .bind(event_payload(&name))
            .execute(&mut *tx)
            .await?;
            Ok(disabled > 0)
        })
        .await
    }

    /// Enables a subscription a `410` disabled. Returns whether it was disabled.
    pub async fn enable_event_subscription(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.write(async move |tx| {
            Ok(sqlx::query(
                "UPDATE event_subscriptions SET disabled_at = NULL, reason = NULL
                 WHERE name = $1 AND disabled_at IS NOT NULL",
            )
            .bind(&name)
            .execute(tx)
            .await?
            .rows_affected()
                > 0)
        })
        .await
    }

    /// Stored events in the order they happened, a page at a time.
    pub async fn events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let types =
            (!query.types.is_empty()).then(|| listed(query.types.iter().map(|t| t.as_str())));
        Ok(sqlx::query_as(
            "SELECT id, type, occurred_at, conversation_id, data FROM events
             WHERE occurred_at >= $1 AND id > $2
               AND ($3 IS NULL OR $3 LIKE '%,' || type || ',%')
             ORDER BY id LIMIT $4",
        )
        .bind(query.since)
        .bind(query.after_id)
        .bind(types)
        .bind(query.limit)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Queues the stored events since `since` again, for one subscription or every enabled
    /// one that takes them (each with its own `webhook-id` as before: receivers that got
    /// them already recognise them). Returns how many deliveries were queued.
    pub async fn resend_events(
        &self,
        since: i64,
        subscription: Option<&str>,
        now: i64,
    ) -> Result<u64, StoreError> {
        let subscription = subscription.map(str::to_string);
        self.write(async move |tx| {
            Ok(sqlx::query(&format!(
                "INSERT INTO outbox (kind, payload, next_attempt_at, created_at, lane, event_id)
                 SELECT '{EVENT_KIND}', '{{\"subscription\":\"' || s.name || '\"}}', $1, $1,
                        s.name || ':' || COALESCE(e.conversation_id, '{CUSTOMERS_LANE}'),
                        e.id
                 FROM events e
                 JOIN event_subscriptions s
                   ON s.disabled_at IS NULL
                  AND (s.types IS NULL OR s.types LIKE '%,' || e.type || ',%')
                  AND (s.desks IS NULL OR e.conversation_id IS NULL
                       OR s.desks LIKE '%,' || COALESCE(e.desk, 'default') || ',%')
                 WHERE e.occurred_at >= $2 AND ($3 IS NULL OR s.name = $3)
                 ORDER BY e.id, s.name"
            ))
            .bind(now)
            .bind(since)
            .bind(&subscription)
            .execute(tx)
            .await?
            .rows_affected())
        })
        .await
    }

    /// How many events of each type and subscription wait to be delivered, and since when
    /// the oldest waits (for the metrics).
    pub async fn oldest_undelivered_event_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(created_at) FROM outbox WHERE state = 'pending' AND kind = $1",
        )
        .bind(EVENT_KIND)
        .fetch_one(&self.reader)
        .await?)
    }
}

/// A conversation was opened (by its customer's first message, or an appointment).
pub(super) fn conversation_opened(
    conversation_id: &str,
    key: &crate::domain::ConversationKey,
    desk: Option<&str>,
) -> NewEvent {
    NewEvent::about_conversation(
        EventType::ConversationOpened,
        conversation_id,
        desk,
        Some(key.customer.as_str()),
        serde_json::json!({
            "channel": key.channel.as_str(),
            "business": key.business.as_str(),
        }),
    )
}

/// A meeting was made for a conversation; its links only for subscriptions that include
/// them.
pub(super) fn meeting_created(
    conversation_id: &str,
    desk: Option<&str>,
    meeting_id: &str,
    links: &crate::domain::MeetingLinks,
    expires_at: i64,
) -> NewEvent {
    NewEvent::about_conversation(
        EventType::MeetingCreated,
        conversation_id,
        desk,
        None,
        serde_json::json!({
            "meeting_id": meeting_id,
            "expires_at": crate::domain::events::rfc3339_ms(expires_at),
            "links": {"host": links.host_url.as_str(), "guest": links.guest_url.as_str()},
        }),
    )
}

/// `message.received` for customers' messages just attached to their conversation (each
/// message once: the caller passes only rows that had no conversation before).
pub(super) async fn messages_received(
    tx: &mut AnyConnection,
    message_rows: &[i64],
) -> Result<Vec<NewEvent>, StoreError> {
    if message_rows.is_empty() {
        return Ok(Vec::new());
    }
    #[derive(sqlx::FromRow)]
    struct Received {
        id: i64,
        channel: String,
        customer: String,
        body: String,
        media: Option<String>,
        conversation_id: String,
        desk: Option<String>,
    }
    let sql = format!(
        "SELECT m.id, m.channel, m.customer, m.body, m.media, m.conversation_id, c.desk
         FROM messages m JOIN conversations c ON c.id = m.conversation_id
         WHERE m.id IN ({}) ORDER BY m.id",
        (1..=message_rows.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut query = sqlx::query_as::<_, Received>(&sql);
    for row in message_rows {
        query = query.bind(*row);
    }
    Ok(query
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|m| {
            message_received(
                m.id,
                &m.conversation_id,
                m.desk.as_deref(),
                (&m.channel, &m.customer),
                &m.body,
                m.media.as_deref(),
            )
        })
        .collect())
}

/// `message.received` for customer message `message_row` (channel and customer address as
/// stored), now in its conversation.
pub(super) fn message_received(
    message_row: i64,
    conversation_id: &str,
    desk: Option<&str>,
    (channel, customer): (&str, &str),
    text: &str,
    media: Option<&str>,
) -> NewEvent {
    let mut data = serde_json::json!({
        "message_id": message_row,
        "direction": "inbound",
        "author": "customer",
        "channel": channel,
        "text": text,
    });
    if let Some(media) = media {
        data["media"] = serde_json::from_str(media).unwrap_or_default();
    }
    NewEvent::about_conversation(
        EventType::MessageReceived,
        conversation_id,
        desk,
        Some(customer),
        data,
    )
}

/// Of `message_rows`, those not attached to a conversation yet.
pub(super) async fn unattached(
    tx: &mut AnyConnection,
    message_rows: &[i64],
) -> Result<Vec<i64>, StoreError> {
    if message_rows.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT id FROM messages WHERE conversation_id IS NULL AND id IN ({})",
        (1..=message_rows.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut query = sqlx::query_scalar::<_, i64>(&sql);
    for row in message_rows {
        query = query.bind(*row);
    }
    Ok(query.fetch_all(tx).await?)
}

/// `appointment.booked` or `appointment.cancelled`: the appointment, its slot and desk.
pub(super) fn appointment_event(
    kind: EventType,
    appointment: &crate::domain::Appointment,
) -> NewEvent {
    NewEvent::about_conversation(
        kind,
        &appointment.conversation_id,
        Some(&appointment.desk),
        Some(&appointment.customer),
        serde_json::json!({
            "appointment_id": appointment.id,
            "starts_at": crate::domain::events::rfc3339_ms(appointment.starts_at),
            "ends_at": crate::domain::events::rfc3339_ms(appointment.ends_at),
        }),
    )
}

/// `appointment.reminded` for the reminders among the outbox rows just sent: the
/// scheduled rows to the customer of a conversation with a booked appointment.
pub(super) async fn reminders_sent(
    tx: &mut AnyConnection,
    sent_rows: &[i64],
) -> Result<Vec<NewEvent>, StoreError> {
    if sent_rows.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT a.id, a.conversation_id, a.meeting_id, a.channel, a.customer, a.business,
                a.desk, a.starts_at, a.ends_at, a.note, a.state, a.request_digest,
                a.created_at, a.cancelled_at, m.guest_url, m.host_url,
                COALESCE(m.not_before, a.starts_at) AS links_from, m.expires_at AS links_until
         FROM outbox o
         JOIN appointments a ON a.conversation_id = o.conversation_id AND a.state = 'booked'
         JOIN meetings m ON m.id = a.meeting_id
         WHERE o.scheduled = 1 AND o.kind = '{}' AND o.id IN ({})
         ORDER BY o.id",
        crate::domain::Purpose::CUSTOMER_REPLY,
        (1..=sent_rows.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut query = sqlx::query_as::<_, crate::domain::Appointment>(&sql);
    for row in sent_rows {
        query = query.bind(*row);
    }
    Ok(query
        .fetch_all(tx)
        .await?
        .iter()
        .map(|a| appointment_event(EventType::AppointmentReminded, a))
        .collect())
}

/// `customer.opted_out` or `customer.opted_in`: the customer, the channel and the business
/// address.
pub(super) fn opt_out_changed(opted_out: bool, key: &crate::domain::ConversationKey) -> NewEvent {
    let kind = if opted_out {
        EventType::CustomerOptedOut
    } else {
        EventType::CustomerOptedIn
    };
    NewEvent::about_customer(
        kind,
        Some(key.customer.as_str()),
        serde_json::json!({
            "channel": key.channel.as_str(),
            "business": key.business.as_str(),
        }),
    )
}

/// Deletes the events about the customer whose address is one of `forms` (theirs, and
/// those of their conversations) and their deliveries, in an erasure's transaction,
/// before the conversations lose the number. Returns the ids of their conversations.
pub(super) async fn erase_customer_events(
    tx: &mut AnyConnection,
    forms: &[String; 2],
) -> Result<Vec<String>, StoreError> {
    let conversations: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM conversations WHERE customer IN ($1, $2) ORDER BY created_at, id",
    )
    .bind(&forms[0])
    .bind(&forms[1])
    .fetch_all(&mut *tx)
    .await?;
    // A union of what each index finds (PostgreSQL reads the whole table for an `OR`).
    let theirs = "SELECT e.id FROM events e JOIN conversations c ON e.conversation_id = c.id
                  WHERE c.customer IN ($1, $2)
                  UNION ALL
                  SELECT id FROM events WHERE conversation_id IS NULL AND customer IN ($1, $2)";
    sqlx::query(&format!("DELETE FROM outbox WHERE event_id IN ({theirs})"))
        .bind(&forms[0])
        .bind(&forms[1])
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("DELETE FROM events WHERE id IN ({theirs})"))
        .bind(&forms[0])
        .bind(&forms[1])
        .execute(&mut *tx)
        .await?;
    Ok(conversations)
}

/// `customer.erased`: which conversations were erased, and whose: the number masked
/// (`+1415•••0123`) for every subscription, since an erasure leaves nothing of it in the
/// database; receivers match the conversations' ids.
pub(super) fn customer_erased(customer: &str, conversations: &[String]) -> NewEvent {
    NewEvent::about_customer(
        EventType::CustomerErased,
        None,
        serde_json::json!({
            "conversations": conversations,
            "customer": crate::domain::events::mask_customer(customer),
        }),
    )
}

impl Store {
    /// The subscriptions written at start-up, by name.
    pub async fn event_subscription_names(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT name FROM event_subscriptions ORDER BY name")
                .fetch_all(&self.reader)
                .await?,
        )
    }
}

impl Store {
    /// Whether subscription `name` is disabled (a receiver's `410`).
    pub async fn event_subscription_disabled(&self, name: &str) -> Result<bool, StoreError> {
        let disabled: Option<Option<i64>> =
            sqlx::query_scalar("SELECT disabled_at FROM event_subscriptions WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.reader)
                .await?;
        Ok(matches!(disabled, Some(Some(_))))
    }
}
