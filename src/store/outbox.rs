//! Outbox rows: pending side effects, claimed by workers with a lease, each conversation's
//! in order.

use crate::domain::{AuditEntry, OutboxRow, OutboxState};
use sqlx::AnyConnection;

use super::audit::insert_audit;
use super::engine::{rows_of_placeholders, Backend};
use super::pauses::UPSTREAM_OF_ROW;
use super::{Store, StoreError};
use crate::domain::OutboxEntry;

/// A row's state as operators see it: a held row is pending, waiting for its customer
/// (spelled out in [`COLUMNS`] too).
const STATE: &str = "(CASE WHEN held = 1 THEN 'held' ELSE state END)";

/// Read with the row, its conversation's thread: the worker needs it for every message
/// it places in a thread; and for an event's delivery, the event (one read fewer each).
const COLUMNS: &str = "id, kind, conversation_id, payload, \
                       (CASE WHEN held = 1 THEN 'held' ELSE state END) AS state, attempts, next_attempt_at, \
                       last_error, upstream_id, created_at, \
                       (SELECT c.thread_message_id FROM conversations c \
                        WHERE c.id = outbox.conversation_id) AS thread_message_id, \
                       (SELECT c.desk FROM conversations c \
                        WHERE c.id = outbox.conversation_id) AS desk, \
                       (SELECT COUNT(*) FROM conversations c JOIN opt_outs o \
                          ON o.channel = c.channel \
                         AND o.customer = COALESCE(outbox.recipient, c.customer) \
                         AND o.business = c.business \
                        WHERE c.id = outbox.conversation_id) AS customer_opted_out, \
                       recipient, lane, event_id, CAST(scheduled AS BIGINT) AS scheduled, \
                       (SELECT e.type FROM events e WHERE e.id = outbox.event_id) AS event_type, \
                       (SELECT e.occurred_at FROM events e WHERE e.id = outbox.event_id) AS event_at, \
                       (SELECT e.conversation_id FROM events e WHERE e.id = outbox.event_id) AS event_conversation_id, \
                       (SELECT e.data FROM events e WHERE e.id = outbox.event_id) AS event_data";

/// The PostgreSQL advisory lock outbox claims take turns on (see
/// [`Store::claim_due_outbox`]).
pub const OUTBOX_CLAIM_LOCK: i64 = 0x1cb1_0000_0001;

/// Why a scheduled delivery was not sent (its `last_error`).
pub const STALE: &str = "cancelled: its appointment's slot was over before it could be sent";

/// What became of a claimed row's delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub id: i64,
    pub outcome: Outcome,
    /// An event's delivery (counted by the events' own metrics, not as a delivery).
    pub event: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered at `at`; the upstream knows it as `upstream_id`. A conversation's first
    /// delivered expert notification (`opens_thread`) becomes its thread.
    Sent {
        upstream_id: String,
        at: i64,
        opens_thread: bool,
        /// A scheduled delivery (an appointment's reminder): its sending is an event.
        scheduled: bool,
    },
    /// Failed; pending again, due at `next_attempt_at`.
    RetryAt { error: String, next_attempt_at: i64 },
    /// Pending again, due at `next_attempt_at`, its attempt not counted: it was not tried
    /// (an earlier row of its conversation must be retried first), or its upstream asked
    /// to wait or refused the credential (`reason`): a wait is not a failure.
    Postponed {
        next_attempt_at: i64,
        reason: Option<String>,
    },
    /// Given up for good.
    Dead { error: String },
    /// Not sent, and never will be: its customer opted out.
    Cancelled { reason: String },
    /// Not sent: a WhatsApp message outside the customer's 24-hour window. Held until the
    /// customer writes again, its attempt not counted. If it is its conversation's first
    /// held row, `first_held` is queued too (the template, a notice to the experts).
    Held {
        first_held: Vec<OutboxEntry>,
        at: i64,
    },
}

/// Holds row `id` until its customer writes again; queues `first_held` after it if no other
/// row of its conversation is held (one template, one notice per closed window).
async fn hold(
    tx: &mut AnyConnection,
    id: i64,
    first_held: &[OutboxEntry],
    now: i64,
) -> Result<(), StoreError> {
    let (conversation_id, others): (Option<String>, i64) = sqlx::query_as(
        "SELECT conversation_id,
                (SELECT COUNT(*) FROM outbox o
                 WHERE o.held = 1 AND o.conversation_id = outbox.conversation_id)
         FROM outbox WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE outbox SET held = 1, leased_until = NULL,
                           last_error = 'held: the customer has not written for 24 hours'
         WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if others == 0 {
        let rows: Vec<_> = first_held
            .iter()
            .map(|entry| (entry, conversation_id.as_deref(), now))
            .collect();
        super::outbox::insert_outbox_rows(tx, &rows).await?;
    }
    Ok(())
}

/// Notifications sent that open their conversation's thread (at most one a conversation
/// per round: the worker sends a conversation's rows in one chain, which opens its thread
/// once), in one statement. A thread already open stays.
async fn open_threads(tx: &mut AnyConnection, opened: &[(i64, String)]) -> Result<(), StoreError> {
    if opened.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE conversations SET thread_message_id = v.column2
         FROM (VALUES {}) AS v JOIN outbox o ON o.id = v.column1
         WHERE conversations.id = o.conversation_id AND conversations.thread_message_id IS NULL",
        rows_of_placeholders(opened.len(), 2, 1)
    );
    let mut query = sqlx::query(&sql);
    for (id, upstream_id) in opened {
        query = query.bind(*id).bind(upstream_id);
    }
    query.execute(tx).await?;
    Ok(())
}

/// Sent rows recorded by one statement at most (see `settle`).
const SENT_PER_STATEMENT: usize = 64;

/// Writes back what became of claimed rows.
async fn settle(tx: &mut AnyConnection, settlements: Vec<Settlement>) -> Result<(), StoreError> {
    let mut sent = Vec::new();
    let mut threads = Vec::new();
    let mut scheduled_sent = Vec::new();
    for Settlement { id, outcome, .. } in settlements {
        let query = match outcome {
            Outcome::Sent {
                upstream_id,
                at,
                opens_thread,
                scheduled,
            } => {
                if opens_thread {
                    threads.push((id, upstream_id.clone()));
                }
                if scheduled {
                    scheduled_sent.push(id);
                }
                sent.push((id, upstream_id, at));
                continue;
            }
            Outcome::RetryAt {
                error,
                next_attempt_at,
            } => sqlx::query(
                "UPDATE outbox SET next_attempt_at = $1, last_error = $2, leased_until = NULL
                 WHERE id = $3",
            )
            .bind(next_attempt_at)
            .bind(error),
            Outcome::Postponed {
                next_attempt_at,
                reason,
            } => sqlx::query(
                "UPDATE outbox SET next_attempt_at = $1, leased_until = NULL,
                                   attempts = attempts - 1, last_error = COALESCE($2, last_error)
                 WHERE id = $3",
            )
            .bind(next_attempt_at)
            .bind(reason),
            Outcome::Held { first_held, at } => {
                // Not an attempt: nothing was sent.
                sqlx::query("UPDATE outbox SET attempts = attempts - 1 WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                hold(tx, id, &first_held, at).await?;
                continue;
            }
            Outcome::Dead { error } => sqlx::query(
                "UPDATE outbox SET state = 'dead', last_error = $1, leased_until = NULL
                 WHERE id = $2",
            )
            .bind(error),
            Outcome::Cancelled { reason } => sqlx::query(
                "UPDATE outbox SET state = 'cancelled', last_error = $1, leased_until = NULL,
                                   attempts = attempts - 1
                 WHERE id = $2",
            )
            .bind(reason),
        };
        query.bind(id).execute(&mut *tx).await?;
    }
    open_threads(tx, &threads).await?;
    if sent.is_empty() {
        return Ok(());
    }
    // What was sent, most of a round, in few statements: of at most `SENT_PER_STATEMENT`
    // rows, since binding a statement's parameters costs SQLite (through sqlx) time that
    // grows with the square of their number.
    let sent_at = sent.iter().map(|(_, _, at)| *at).max().unwrap_or(0);
    for chunk in sent.chunks(SENT_PER_STATEMENT) {
        let sql = format!(
            "UPDATE outbox SET state = 'sent', upstream_id = v.column2, sent_at = v.column3,
                               leased_until = NULL, last_error = NULL
             FROM (VALUES {}) AS v WHERE outbox.id = v.column1",
            rows_of_placeholders(chunk.len(), 3, 1)
        );
        let mut query = sqlx::query(&sql);
        for (id, upstream_id, at) in chunk {
            query = query.bind(*id).bind(upstream_id).bind(*at);
        }
        query.execute(&mut *tx).await?;
    }
    // A reminder sent is `appointment.reminded`, recorded as it is settled.
    let reminded = super::events::reminders_sent(tx, &scheduled_sent).await?;
    super::events::record_events(tx, &reminded, sent_at).await?;
    Ok(())
}

impl Store {
    /// Claims up to `limit` due rows for `lease_ms`: until then no other worker takes them;
    /// after it (a worker that crashed mid-send), they are due again. A claim is recorded
    /// as the row's next attempt moving to the lease's end, so "claimed" and "waiting for a
    /// retry" are one condition: not due yet. Each claim counts as an attempt.
    ///
    /// A conversation's rows go out in the order they were queued: none is claimed while
    /// another row of its conversation is not due (claimed by a worker, or waiting for a
    /// retry); of the others, the oldest come first and come back in that order. Rows for
    /// a paused upstream wait (see `pause_upstream`), except that `probe` names an
    /// upstream whose refused credential is to be tried with one row.
    pub async fn claim_due_outbox(
        &self,
        now: i64,
        lease_ms: i64,
        limit: i64,
        probe: Option<&str>,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let probe = probe.map(str::to_string);
        let claim = format!(
            "UPDATE outbox SET next_attempt_at = $1, leased_until = $1, attempts = attempts + 1
             WHERE id IN (
                 SELECT id FROM outbox
                 WHERE state = 'pending' AND held = 0 AND next_attempt_at <= $2
                   AND (conversation_id IS NULL OR conversation_id NOT IN (
                       -- A row waiting for a retry holds up its conversation's others; a
                       -- scheduled row not yet tried does not.
                       SELECT conversation_id FROM outbox
                       WHERE state = 'pending' AND held = 0 AND next_attempt_at > $2
                         AND conversation_id IS NOT NULL
                         AND (scheduled = 0 OR attempts > 0)))
                   -- The same for the rows ordered by a lane (events, see `events`).
                   AND (lane IS NULL OR lane NOT IN (
                       SELECT lane FROM outbox
                       WHERE state = 'pending' AND held = 0 AND next_attempt_at > $2
                         AND lane IS NOT NULL))
                   AND {UPSTREAM_OF_ROW} NOT IN (
                       SELECT upstream FROM upstream_pauses
                       WHERE paused_until > $2
                          OR (credential_failing = 1 AND upstream IS DISTINCT FROM $4))
                   AND ($4 IS NULL OR {UPSTREAM_OF_ROW} = $4)
                 -- `+id`: SQLite would otherwise walk the whole table in id order (the
                 -- sent rows too) rather than the index of pending rows, then sort.
                 ORDER BY +id LIMIT $3)
               -- Checked again on the row itself: on PostgreSQL a concurrent claimer waits
               -- for the first one's row locks, then sees the row claimed and skips it.
               AND state = 'pending' AND held = 0 AND next_attempt_at <= $2
             RETURNING {COLUMNS}"
        );
        let backend = self.backend;
        let mut rows: Vec<OutboxRow> = self
            .write(async move |tx| {
                // Claims of several instances on one PostgreSQL database take turns: a
                // claim that began before another's commit would judge a conversation by
                // what it saw then, and take a later row of a conversation whose earlier
                // row the other just took (sending them out of order). Held until the
                // claim commits; SQLite runs one write at a time anyway.
                if backend == Backend::Postgres {
                    sqlx::query("SELECT pg_advisory_xact_lock($1)")
                        .bind(OUTBOX_CLAIM_LOCK)
                        .execute(&mut *tx)
                        .await?;
                }
                // A scheduled delivery (a reminder) found after its slot is over (the
                // service was down) is of no use any more: recorded as not sent.
                sqlx::query(
                    "UPDATE outbox SET state = 'cancelled', last_error = $1
                     WHERE state = 'pending' AND stale_after IS NOT NULL
                       AND stale_after <= $2",
                )
                .bind(STALE)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                Ok(sqlx::query_as(&claim)
                    .bind(now + lease_ms)
                    .bind(now)
                    .bind(limit)
                    .bind(probe)
                    .fetch_all(tx)
                    .await?)
            })
            .await?;
        rows.sort_by_key(|row| row.id);
        Ok(rows)
    }

    /// Writes back what became of claimed rows, in one transaction; a notification sent
    /// that opens its conversation's thread (see [`Outcome::Sent`]) records it.
    pub async fn settle_outbox(&self, settlements: &[Settlement]) -> Result<(), StoreError> {
        if settlements.is_empty() {
            return Ok(());
        }
        let settlements = settlements.to_vec();
        self.write(async move |tx| settle(tx, settlements).await)
            .await
    }

    /// Makes every dead row (of `kind`, queued since `since`, where given) due now with a
    /// fresh attempt count. Returns how many.
    /// `audit` is written with it, how many were revived before its detail.
    pub async fn revive_dead_outbox(
        &self,
        kind: Option<&str>,
        since: Option<i64>,
        mut audit: AuditEntry,
        now: i64,
    ) -> Result<u64, StoreError> {
        let kind = kind.map(str::to_string);
        self.write(async move |tx| {
            let revived = sqlx::query(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $1,
                                   leased_until = NULL
                 WHERE state = 'dead' AND ($2 IS NULL OR kind = $2)
                   AND ($3 IS NULL OR created_at >= $3)",
            )
            .bind(now)
            .bind(&kind)
            .bind(since)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let asked = audit.detail.take().unwrap_or_default();
            audit.detail = Some(format!("{revived} revived ({asked})"));
            insert_audit(tx, &audit).await?;
            Ok(revived)
        })
        .await
    }

    /// Queues a held copy of row `id` (a WhatsApp message refused with 7710, the window
    /// closed after all), with `first_held` if nothing else of its conversation is held.
    pub async fn hold_copy(
        &self,
        id: i64,
        first_held: &[OutboxEntry],
        now: i64,
    ) -> Result<(), StoreError> {
        let first_held = first_held.to_vec();
        self.write(async move |tx| {
            let copy: i64 = sqlx::query_scalar(
                "INSERT INTO outbox (kind, conversation_id, payload, next_attempt_at, created_at,
                                     recipient)
                 SELECT kind, conversation_id, payload, $1, $1, recipient FROM outbox WHERE id = $2
                 RETURNING id",
            )
            .bind(now)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            hold(tx, copy, &first_held, now).await
        })
        .await
    }

    /// When the oldest pending row to customers or experts was queued, if one is (events
    /// have their own figure: a receiver that is down is not the desk's backlog).
    pub async fn oldest_pending_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(created_at) FROM outbox WHERE state = 'pending' AND held = 0
                                                  AND kind != 'event'",
        )
        .fetch_one(&self.reader)
        .await?)
    }

    /// How many rows to customers and experts are pending, held or dead (events are
    /// counted by their own metrics; sent and cancelled rows, a year of them, are not
    /// counted: each of these reads only its state's partial index).
    pub async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {STATE}, COUNT(*) FROM outbox WHERE state = 'pending' AND kind != 'event'
             GROUP BY {STATE}
             UNION ALL
             SELECT 'dead', COUNT(*) FROM outbox WHERE state = 'dead' AND kind != 'event'"
        ))
        .fetch_all(&self.reader)
        .await?)
    }

    /// The outbox, newest first, optionally of one state.
    pub async fn list_outbox(
        &self,
        state: Option<OutboxState>,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        // Each state's rows as its index finds them (sent rows are most of the outbox: the
        // newest are found at once walking back from the last).
        let rows_in = match state {
            None => "TRUE",
            Some(OutboxState::Pending) => "state = 'pending' AND held = 0",
            Some(OutboxState::Held) => "held = 1",
            Some(OutboxState::Sent) => "state = 'sent'",
            Some(OutboxState::Dead) => "state = 'dead'",
            Some(OutboxState::Cancelled) => "state = 'cancelled'",
        };
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM outbox WHERE {rows_in} ORDER BY id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Makes a dead (or pending) row due now with a fresh attempt count. A cancelled row
    /// stays cancelled: its customer opted out.
    pub async fn revive_outbox(
        &self,
        id: i64,
        audit: AuditEntry,
        now: i64,
    ) -> Result<(), StoreError> {
        let updated = self
            .write(async move |tx| {
                let updated = sqlx::query(
                    "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $1,
                                       leased_until = NULL, held = 0
                     WHERE id = $2 AND state IN ('pending', 'dead')",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 1 {
                    insert_audit(tx, &audit).await?;
                }
                Ok(updated)
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

    /// Queues deliveries on their own.
    pub async fn enqueue(
        &self,
        entries: &[OutboxEntry],
        conversation_id: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let (entries, conversation_id) = (entries.to_vec(), conversation_id.map(str::to_string));
        self.write(async move |tx| {
            insert_outbox(tx, &entries, conversation_id.as_deref(), now).await
        })
        .await
    }
}

/// Queues deliveries of one conversation in the transaction that causes them.
pub(super) async fn insert_outbox(
    tx: &mut AnyConnection,
    entries: &[OutboxEntry],
    conversation_id: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let rows: Vec<_> = entries.iter().map(|e| (e, conversation_id, now)).collect();
    insert_outbox_rows(tx, &rows).await
}

/// Queues deliveries, each with its conversation and the time it was queued (and is first
/// due), in one statement.
pub(super) async fn insert_outbox_rows(
    tx: &mut AnyConnection,
    rows: &[(&OutboxEntry, Option<&str>, i64)],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    // A row is first due when it is queued.
    let sql = format!(
        "INSERT INTO outbox (kind, conversation_id, payload, next_attempt_at, created_at, recipient)
         VALUES {}",
        rows_of_placeholders(rows.len(), 6, 1)
    );
    let mut query = sqlx::query(&sql);
    for (entry, conversation_id, now) in rows {
        query = query
            .bind(&entry.kind)
            .bind(*conversation_id)
            .bind(&entry.payload)
            .bind(*now)
            .bind(*now)
            .bind(&entry.recipient);
    }
    query.execute(tx).await?;
    Ok(())
}

/// When scheduled deliveries are due, and after when they are no use.
#[derive(Debug, Clone, Copy)]
pub(super) struct Scheduled {
    pub due: i64,
    pub stale_after: i64,
}

/// Queues deliveries due at a later time (`scheduled.due`): they do not hold up the rows
/// of their conversation queued meanwhile, and are cancelled, not sent, if still pending
/// after `scheduled.stale_after`.
pub(super) async fn insert_scheduled(
    tx: &mut AnyConnection,
    entries: &[OutboxEntry],
    conversation_id: &str,
    scheduled: Scheduled,
    now: i64,
) -> Result<(), StoreError> {
    for entry in entries {
        sqlx::query(
            "INSERT INTO outbox (kind, conversation_id, payload, next_attempt_at, created_at,
                                 scheduled, stale_after, recipient)
             VALUES ($1, $2, $3, $4, $5, 1, $6, $7)",
        )
        .bind(&entry.kind)
        .bind(conversation_id)
        .bind(&entry.payload)
        .bind(scheduled.due)
        .bind(now)
        .bind(scheduled.stale_after)
        .bind(&entry.recipient)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
