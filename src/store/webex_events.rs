//! Events received on the Webex webhook, processed in the background like the outbox.

use super::engine::Backend;
use super::{Store, StoreError};

/// The PostgreSQL advisory lock claims of Webex events take turns on.
const WEBEX_EVENTS_CLAIM_LOCK: i64 = 0x1cb1_0000_0002;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebexEvent {
    /// The event's `data.id`: a message id or an attachment action id.
    pub id: String,
    pub resource: String,
    pub payload: String,
    pub attempts: i64,
    pub received_at: i64,
}

impl Store {
    /// Records an event once; returns false for a repeat of a recorded one.
    pub async fn record_webex_event(
        &self,
        id: &str,
        resource: &str,
        payload: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (id, resource, payload) = (id.to_string(), resource.to_string(), payload.to_string());
        self.write(async move |tx| {
            let inserted = sqlx::query(
                "INSERT INTO webex_events (id, resource, payload, next_attempt_at, received_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&id)
            .bind(&resource)
            .bind(&payload)
            .bind(now)
            .bind(now)
            .execute(tx)
            .await?
            .rows_affected();
            Ok(inserted == 1)
        })
        .await
    }

    /// Claims due events for `lease_ms`, oldest first.
    pub async fn claim_webex_events(
        &self,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<WebexEvent>, StoreError> {
        let backend = self.backend;
        let mut events: Vec<WebexEvent> = self
            .write(async move |tx| {
                // As the outbox's claims: instances take turns (see
                // `Store::claim_due_outbox`).
                if backend == Backend::Postgres {
                    sqlx::query("SELECT pg_advisory_xact_lock($1)")
                        .bind(WEBEX_EVENTS_CLAIM_LOCK)
                        .execute(&mut *tx)
                        .await?;
                }
                Ok(sqlx::query_as(
                    "UPDATE webex_events SET leased_until = $1, attempts = attempts + 1
                     WHERE id IN (
                         SELECT id FROM webex_events
                         WHERE state = 'pending' AND next_attempt_at <= $2
                           AND (leased_until IS NULL OR leased_until <= $2)
                         ORDER BY received_at, id LIMIT $3)
                       -- Checked again on the row itself: on PostgreSQL a concurrent
                       -- claimer waits for the first one's row locks, then sees its
                       -- lease and skips the row.
                       AND state = 'pending' AND (leased_until IS NULL OR leased_until <= $2)
                     RETURNING id, resource, payload, attempts, received_at",
                )
                .bind(now + lease_ms)
                .bind(now)
                .bind(limit)
                .fetch_all(tx)
                .await?)
            })
            .await?;
        events.sort_by(|a, b| (a.received_at, &a.id).cmp(&(b.received_at, &b.id)));
        Ok(events)
    }

    /// Ends an event: `error` is `None` when it was handled, else why it never will be.
    pub async fn webex_event_finished(
        &self,
        id: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let (id, error) = (id.to_string(), error.map(str::to_string));
        self.write(async move |tx| {
            sqlx::query(
                "UPDATE webex_events SET state = $1, last_error = $2, leased_until = NULL
                 WHERE id = $3",
            )
            .bind(if error.is_some() { "failed" } else { "done" })
            .bind(&error)
            .bind(&id)
            .execute(tx)
            .await?;
            Ok(())
        })
        .await
    }

    /// Puts an event back, due at `next_attempt_at`. A wait Webex asked for (not
    /// `attempt_counted`) uses up none of its attempts.
    pub async fn webex_event_retry_at(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: i64,
        attempt_counted: bool,
    ) -> Result<(), StoreError> {
        let (id, error) = (id.to_string(), error.to_string());
        self.write(async move |tx| {
            sqlx::query(
                "UPDATE webex_events SET next_attempt_at = $1, last_error = $2,
                                         leased_until = NULL, attempts = attempts - $3
                 WHERE id = $4",
            )
            .bind(next_attempt_at)
            .bind(&error)
            .bind(i64::from(!attempt_counted))
            .bind(&id)
            .execute(tx)
            .await?;
            Ok(())
        })
        .await
    }
}

/// A message found by listing a room, to be handled as if its event had arrived.
#[derive(Debug, Clone)]
pub struct CaughtUpEvent {
    /// The message's id, as a pushed event would name it (`data.id`).
    pub id: String,
    pub resource: String,
    pub payload: String,
}

impl Store {
    /// Until when icbridge has read room `room_id` (the newest listed message's time), if
    /// it ever has.
    pub async fn catch_up_cursor(&self, room_id: &str) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT seen_until FROM webex_catch_up WHERE room_id = $1")
                .bind(room_id)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    /// Records the messages a listing of `room_id` found as events, due now and handled in
    /// the order given (those already recorded, pushed or found before, are left alone) and moves the room's cursor to `seen_until`
    /// (never back), in one write. Returns how many were new.
    pub async fn record_caught_up(
        &self,
        room_id: &str,
        events: Vec<CaughtUpEvent>,
        seen_until: i64,
        now: i64,
    ) -> Result<usize, StoreError> {
        let room_id = room_id.to_string();
        self.write(async move |tx| {
            let mut new = 0;
            // Consecutive times ending now: they are handled in the order given.
            let first = now - events.len() as i64 + 1;
            for (index, event) in events.iter().enumerate() {
                let received_at = first + index as i64;
                new += sqlx::query(
                    "INSERT INTO webex_events (id, resource, payload, next_attempt_at, received_at)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                )
                .bind(&event.id)
                .bind(&event.resource)
                .bind(&event.payload)
                .bind(received_at)
                .bind(received_at)
                .execute(&mut *tx)
                .await?
                .rows_affected() as usize;
            }
            sqlx::query(
                "INSERT INTO webex_catch_up (room_id, seen_until, checked_at) VALUES ($1, $2, $3)
                 ON CONFLICT (room_id) DO UPDATE SET
                     seen_until = CASE WHEN webex_catch_up.seen_until > excluded.seen_until
                                       THEN webex_catch_up.seen_until ELSE excluded.seen_until END,
                     checked_at = excluded.checked_at",
            )
            .bind(&room_id)
            .bind(seen_until)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Ok(new)
        })
        .await
    }
}
