//! Events received on the Webex webhook, processed in the background like the outbox.

use super::sql::query;
use super::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct WebexEvent {
    /// The event's `data.id`: a message id or an attachment action id.
    pub id: String,
    pub resource: String,
    pub payload: String,
    pub attempts: i64,
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
        let inserted = self
            .write(move |mut tx| {
                Box::pin(async move {
                    query(
                    "INSERT INTO webex_events (id, resource, payload, next_attempt_at, received_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(resource)
                .bind(payload)
                .bind(now)
                .bind(now).execute(&mut tx).await
                })
            })
            .await?;
        Ok(inserted == 1)
    }

    /// Claims due events for `lease_ms`, oldest first.
    pub async fn claim_webex_events(
        &self,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<WebexEvent>, StoreError> {
        let rows = self
            .write(move |mut tx| {
                Box::pin(async move {
                    query(
                        "UPDATE webex_events SET leased_until = $1, attempts = attempts + 1
             WHERE id IN (
                 SELECT id FROM webex_events
                 WHERE state = 'pending' AND next_attempt_at <= $2
                   AND (leased_until IS NULL OR leased_until <= $3)
                 ORDER BY received_at, id LIMIT $4)
               -- Checked again on the row itself: on PostgreSQL a concurrent claimer waits
               -- for the first one's row locks, then sees its lease and skips the row.
               -- (`state || ''`: SQLite would otherwise look the rows up through the index
               -- on state, reading every pending row instead of the ids above.)
               AND state || '' = 'pending' AND (leased_until IS NULL OR leased_until <= $3)
             RETURNING id, resource, payload, attempts, received_at",
                    )
                    .bind(now + lease_ms)
                    .bind(now)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&mut tx)
                    .await
                })
            })
            .await?;
        let mut events = rows
            .iter()
            .map(|row| {
                Ok((
                    row.get::<i64>(4)?,
                    WebexEvent {
                        id: row.get(0)?,
                        resource: row.get(1)?,
                        payload: row.get(2)?,
                        attempts: row.get(3)?,
                    },
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        events.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
        Ok(events.into_iter().map(|(_, event)| event).collect())
    }

    /// Ends an event: `error` is `None` when it was handled, else why it never will be.
    pub async fn webex_event_finished(
        &self,
        id: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let (id, error) = (id.to_string(), error.map(str::to_string));
        self.write(move |mut tx| Box::pin(async move { query(
            "UPDATE webex_events SET state = $1, last_error = $2, leased_until = NULL WHERE id = $3",
        )
        .bind(if error.is_some() { "failed" } else { "done" })
        .bind(error)
        .bind(id).execute(&mut tx).await }))
        .await?;
        Ok(())
    }

    pub async fn webex_event_retry_at(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: i64,
    ) -> Result<(), StoreError> {
        let (id, error) = (id.to_string(), error.to_string());
        self.write(move |mut tx| {
            Box::pin(async move {
                query(
                "UPDATE webex_events SET next_attempt_at = $1, last_error = $2, leased_until = NULL
             WHERE id = $3",
            )
            .bind(next_attempt_at)
            .bind(error)
            .bind(id).execute(&mut tx).await
            })
        })
        .await?;
        Ok(())
    }
}
