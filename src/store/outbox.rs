//! Outbox rows: pending side effects, claimed by workers with a lease.

use super::sql::{query, Db, Row};
use super::{Store, StoreError};

/// A side effect to deliver: its kind and its request as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub kind: String,
    pub payload: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    Pending,
    Sent,
    Dead,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sent => "sent",
            OutboxState::Dead => "dead",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(OutboxState::Pending),
            "sent" => Some(OutboxState::Sent),
            "dead" => Some(OutboxState::Dead),
            _ => None,
        }
    }
}

/// An outbox row as the worker and the operator see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub conversation_id: Option<String>,
    pub payload: String,
    pub state: String,
    /// Attempts started so far, including the current one for a claimed row.
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub upstream_id: Option<String>,
    pub created_at: i64,
    /// The Webex message that opened the row's conversation's thread, if it had been
    /// delivered when the row was read.
    pub thread_message_id: Option<String>,
}

/// Read with the row, its conversation's thread: the worker needs it for every message
/// it places in a thread, and reading it with the claim saves a read per message.
const COLUMNS: &str = "id, kind, conversation_id, payload, state, attempts, next_attempt_at, \
                       last_error, upstream_id, created_at, \
                       (SELECT c.thread_message_id FROM conversations c \
                        WHERE c.id = outbox.conversation_id)";

/// Reads a row selected as [`COLUMNS`].
fn from_row(row: &Row) -> Result<OutboxRow, StoreError> {
    Ok(OutboxRow {
        id: row.get(0)?,
        kind: row.get(1)?,
        conversation_id: row.get(2)?,
        payload: row.get(3)?,
        state: row.get(4)?,
        attempts: row.get(5)?,
        next_attempt_at: row.get(6)?,
        last_error: row.get(7)?,
        upstream_id: row.get(8)?,
        created_at: row.get(9)?,
        thread_message_id: row.get(10)?,
    })
}

pub(super) async fn insert(
    tx: &mut Db<'_>,
    entry: &OutboxEntry,
    conversation_id: Option<&str>,
    now: i64,
) -> Result<i64, StoreError> {
    query(
        "INSERT INTO outbox (kind, conversation_id, payload, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&entry.kind)
    .bind(conversation_id)
    .bind(&entry.payload)
    .bind(now)
    .bind(now)
    .insert(tx)
    .await?
    .ok_or(StoreError::NoRow)
}

/// What became of a claimed row's delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub id: i64,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered at `at`; the upstream knows it as `upstream_id`. A conversation's first
    /// delivered expert notification (`opens_thread`) becomes its thread.
    Sent {
        upstream_id: String,
        at: i64,
        opens_thread: bool,
    },
    /// Failed; pending again, due at `next_attempt_at`.
    RetryAt { error: String, next_attempt_at: i64 },
    /// Put back as if it had not been tried, due at `next_attempt_at`.
    Postponed { next_attempt_at: i64 },
    /// Given up for good.
    Dead { error: String },
}

async fn settle(tx: &mut Db<'_>, settlement: &Settlement) -> Result<(), StoreError> {
    let id = settlement.id;
    match &settlement.outcome {
        Outcome::Sent {
            upstream_id,
            at,
            opens_thread,
        } => {
            query(
                "UPDATE outbox SET state = 'sent', upstream_id = $1, sent_at = $2,
                                   leased_until = NULL, last_error = NULL
                 WHERE id = $3",
            )
            .bind(upstream_id)
            .bind(*at)
            .bind(id)
            .execute(tx)
            .await?;
            if *opens_thread {
                query(
                    "UPDATE conversations SET thread_message_id = $1
                     WHERE thread_message_id IS NULL
                       AND id = (SELECT conversation_id FROM outbox WHERE id = $2 AND kind = $3)",
                )
                .bind(upstream_id)
                .bind(id)
                .bind(super::EXPERT_NOTIFICATION)
                .execute(tx)
                .await?;
            }
        }
        Outcome::RetryAt {
            error,
            next_attempt_at,
        } => {
            query(
                "UPDATE outbox SET next_attempt_at = $1, last_error = $2, leased_until = NULL
                 WHERE id = $3",
            )
            .bind(*next_attempt_at)
            .bind(error)
            .bind(id)
            .execute(tx)
            .await?;
        }
        Outcome::Postponed { next_attempt_at } => {
            query(
                "UPDATE outbox SET next_attempt_at = $1, leased_until = NULL, attempts = attempts - 1
                 WHERE id = $2",
            )
            .bind(*next_attempt_at)
            .bind(id)
            .execute(tx)
            .await?;
        }
        Outcome::Dead { error } => {
            query(
                "UPDATE outbox SET state = 'dead', last_error = $1, leased_until = NULL WHERE id = $2",
            )
            .bind(error)
            .bind(id)
            .execute(tx)
            .await?;
        }
    }
    Ok(())
}

impl Store {
    /// Claims up to `limit` due rows for `lease_ms`: until then no other worker takes them;
    /// after it (a worker that crashed mid-send), they are due again. Each claim counts as
    /// an attempt.
    pub async fn claim_due_outbox(
        &self,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let claim = format!(
            "UPDATE outbox SET leased_until = $1, attempts = attempts + 1
             WHERE id IN (
                 SELECT id FROM outbox
                 WHERE state = 'pending' AND next_attempt_at <= $2
                   AND (leased_until IS NULL OR leased_until <= $3)
                 ORDER BY next_attempt_at, id LIMIT $4)
               -- Checked again on the row itself: on PostgreSQL a concurrent claimer waits
               -- for the first one's row locks, then sees its lease and skips the row.
               -- (`state || ''`: SQLite would otherwise look the rows up through the index
               -- on state, reading every pending row instead of the ids above.)
               AND state || '' = 'pending' AND (leased_until IS NULL OR leased_until <= $3)
             RETURNING {COLUMNS}"
        );
        let rows = self
            .write(move |mut tx| {
                Box::pin(async move {
                    query(&claim)
                        .bind(now + lease_ms)
                        .bind(now)
                        .bind(now)
                        .bind(limit)
                        .fetch_all(&mut tx)
                        .await
                })
            })
            .await?;
        let mut rows = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        rows.sort_by_key(|row| (row.next_attempt_at, row.id));
        Ok(rows)
    }

    /// Writes back what became of claimed rows, in one transaction: a round of deliveries
    /// costs one commit, not one per row. Settlements are applied in the order given, so
    /// that the first of a conversation's notifications delivered opens its thread.
    pub async fn settle_outbox(&self, settlements: Vec<Settlement>) -> Result<(), StoreError> {
        if settlements.is_empty() {
            return Ok(());
        }
        self.write(move |mut tx| {
            Box::pin(async move {
                for settlement in &settlements {
                    settle(&mut tx, settlement).await?;
                }
                Ok(())
            })
        })
        .await
    }

    /// How many rows are in each state.
    pub async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        query("SELECT state, COUNT(*) FROM outbox GROUP BY state")
            .fetch_all(&mut self.reader()?.db())
            .await?
            .iter()
            .map(|row| Ok((row.get(0)?, row.get(1)?)))
            .collect()
    }

    /// The outbox, newest first, optionally of one state.
    pub async fn list_outbox(
        &self,
        state: Option<OutboxState>,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = query(&format!(
            "SELECT {COLUMNS} FROM outbox WHERE ($1 IS NULL OR state = $2) ORDER BY id DESC LIMIT $3"
        ))
        .bind(state.map(OutboxState::as_str))
        .bind(state.map(OutboxState::as_str))
        .bind(limit)
        .fetch_all(&mut self.reader()?.db())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Makes a dead (or pending) row due now with a fresh attempt count.
    pub async fn revive_outbox(&self, id: i64, now: i64) -> Result<(), StoreError> {
        let updated = self
            .write(move |mut tx| {
                Box::pin(async move {
                    query(
                        "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $1,
                               leased_until = NULL
             WHERE id = $2 AND state != 'sent'",
                    )
                    .bind(now)
                    .bind(id)
                    .execute(&mut tx)
                    .await
                })
            })
            .await?;
        if updated == 0 {
            return Err(StoreError::NotFound {
                what: "pending or dead outbox row",
                id: id.to_string(),
            });
        }
        Ok(())
    }
}
