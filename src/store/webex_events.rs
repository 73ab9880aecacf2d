//! Events received on the Webex webhook, processed in the background like the outbox.

use super::{Store, StoreError};

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
        self.write(move |tx| {
            Box::pin(async move {
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
        let mut events: Vec<WebexEvent> = self
            .write(move |tx| {
                Box::pin(async move {
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
        self.write(move |tx| {
            Box::pin(async move {
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
        self.write(move |tx| {
            Box::pin(async move {
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
        })
        .await
    }
}
