//! Retention: what is older than its cutoff is erased, anonymised or deleted, a slice at a
//! time.
//!
//! A year of history holds a day's worth of expired rows each day (tens of thousands of
//! messages, deliveries and receipts). Cleared in one transaction, they would hold
//! SQLite's one write lock for seconds while customers wait for their answers; cleared in
//! slices of [`SLICE`] rows, each a write of its own, the desk's writes run in between.
//! Each slice reads what is still to clear through a partial index of it (see the
//! migration `history_indexes`), so no slice walks what an earlier one cleared.

use std::time::Duration;

use sqlx::AnyConnection;

use super::engine::Backend;

use super::{Store, StoreError, ERASED};
use crate::domain::PurgeReport;

/// What retention removes: data received before `before`, and handled Webex events received
/// before `events_before` (kept at least as long as events may be replayed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeCutoffs {
    pub before: i64,
    pub events_before: i64,
    pub now: i64,
}

/// Rows one slice changes at most: a few milliseconds of writing on a year's database,
/// however cold its pages.
const SLICE: u64 = 200;
/// Conversations one slice anonymises: each with its messages (about ten), whose rows cost
/// more to change than the others' (each in more indexes): 500 conversations took 250 ms.
const CONVERSATION_SLICE: u64 = 10;

/// On SQLite, the pause after each full slice. Another process's writer (`serve` beside
/// `icbridge purge`) that found the lock taken looks again every millisecond (see
/// `engine::writer::begin`): without a pause the next slice could take the lock before it
/// looked, and the desk's writes would wait for the whole purge. Each slice still costs the
/// desk more than the milliseconds it holds the lock: after another process's commit SQLite
/// drops `serve`'s page cache, and its next writes read their pages again. At 25 ms, some 30
/// slices a second, the follow-ups' p99 during a day's purge on the benchmark's year was
/// 7.4–18.1 ms against a usual 4.5–6.9 ms (four runs of five over twice that); at 100 ms,
/// 6.1–6.9 ms (three runs). A day's worth (about 140 slices) then takes 14 s instead of 4:
/// the purge is no one's wait, the desk's answers are.
const SLICE_PAUSE: Duration = Duration::from_millis(100);

/// The kinds of rows retention clears, each a slice at a time.
#[derive(Debug, Clone, Copy)]
enum Expired {
    /// Texts, files and locations of messages received before the cutoff.
    MessageTexts,
    /// Conversations closed before the cutoff: their customer's number and name, and their
    /// messages' numbers and sender ids (which identified a message with its number, and
    /// another anonymised customer's message may have had the same).
    Conversations,
    Receipts,
    /// What was sent (or given up), as queued.
    OutboxPayloads,
    /// Handled Webex events (their cutoff is `events_before`).
    WebexEvents,
    /// Events for the systems of record, with their deliveries still waiting.
    Events,
}

impl Expired {
    /// Rows (conversations) one slice clears at most.
    fn slice(self) -> u64 {
        match self {
            Expired::Conversations => CONVERSATION_SLICE,
            _ => SLICE,
        }
    }

    /// The slice's rows (their ids; of conversations, for [`Expired::Conversations`]), with
    /// the cutoff as `$1` and the slice's size as `$2`. Where two statements take the same
    /// slice, it is chosen in an order of its own, so that both take the same rows.
    fn slice_ids(self) -> String {
        match self {
            Expired::MessageTexts => "SELECT id FROM messages
                 WHERE (body != '' OR media IS NOT NULL) AND received_at < $1 LIMIT $2"
                .into(),
            // As the partial index that finds what is left to anonymise says it
            // (`conversations_to_anonymise`): the number written out, and closed
            // conversations as those with `closed_at` (set only when one closes).
            Expired::Conversations => format!(
                "SELECT id FROM conversations
                 WHERE customer != '{ERASED}' AND closed_at < $1
                 ORDER BY closed_at, id LIMIT $2"
            ),
            Expired::Receipts => {
                "SELECT id FROM delivery_receipts WHERE received_at < $1 LIMIT $2".into()
            }
            Expired::OutboxPayloads => "SELECT id FROM outbox
                 WHERE payload != '{}' AND created_at < $1 AND state != 'pending' LIMIT $2"
                .into(),
            Expired::WebexEvents => "SELECT id FROM webex_events
                 WHERE received_at < $1 AND state != 'pending' LIMIT $2"
                .into(),
            Expired::Events => "SELECT id FROM events WHERE occurred_at < $1
                 ORDER BY occurred_at, id LIMIT $2"
                .into(),
        }
    }

    /// The statements that clear one slice, run in this order; the last one's count is how
    /// many were cleared.
    fn statements(self) -> Vec<String> {
        let slice = self.slice_ids();
        match self {
            Expired::MessageTexts => vec![format!(
                "UPDATE messages SET body = '', media = NULL WHERE id IN ({slice})"
            )],
            Expired::Conversations => vec![
                format!(
                    "UPDATE messages SET customer = '{ERASED}', author_email = NULL,
                                         external_id = NULL
                     WHERE conversation_id IN ({slice})"
                ),
                format!(
                    "UPDATE conversations SET customer = '{ERASED}', customer_name = NULL,
                                              closed_by = NULL
                     WHERE id IN ({slice})"
                ),
            ],
            Expired::Receipts => vec![format!(
                "DELETE FROM delivery_receipts WHERE id IN ({slice})"
            )],
            Expired::OutboxPayloads => vec![format!(
                "UPDATE outbox SET payload = '{{}}' WHERE id IN ({slice})"
            )],
            Expired::WebexEvents => vec![format!("DELETE FROM webex_events WHERE id IN ({slice})")],
            Expired::Events => vec![
                // A delivery still waiting for an event that old is of no use either.
                format!("DELETE FROM outbox WHERE event_id IN ({slice})"),
                format!("DELETE FROM events WHERE id IN ({slice})"),
            ],
        }
    }

    /// What the next slice's statements will read and change, read beforehand on SQLite
    /// (see `Store::warm_up`): the rows, and the index entries the change moves that the
    /// slice's own choice does not walk (a message's sender id, a conversation's number, a
    /// receipt's delivery).
    fn warm_up(self) -> String {
        let slice = self.slice_ids();
        match self {
            Expired::MessageTexts => {
                format!("SELECT SUM(length(body)) FROM messages WHERE id IN ({slice})")
            }
            Expired::Conversations => format!(
                "SELECT
                     (SELECT SUM(length(customer_name)) FROM conversations
                      WHERE id IN ({slice})),
                     (SELECT SUM(length(body)) FROM messages
                      WHERE conversation_id IN ({slice})),
                     (SELECT COUNT(*) FROM conversations c
                          JOIN messages m INDEXED BY messages_once
                            ON m.channel = c.channel AND m.customer = c.customer
                           AND m.business = c.business
                      WHERE c.id IN ({slice}) AND m.external_id IS NOT NULL),
                     (SELECT COUNT(*) FROM conversations INDEXED BY conversations_by_customer
                      WHERE customer IN (SELECT customer FROM conversations
                                         WHERE id IN ({slice})))"
            ),
            Expired::Receipts => format!(
                "SELECT
                     (SELECT SUM(length(payload)) FROM delivery_receipts WHERE id IN ({slice})),
                     (SELECT COUNT(*) FROM delivery_receipts INDEXED BY delivery_receipts_by_outbox
                      WHERE outbox_id IN (SELECT outbox_id FROM delivery_receipts
                                          WHERE id IN ({slice})))"
            ),
            Expired::OutboxPayloads => {
                format!("SELECT SUM(length(payload)) FROM outbox WHERE id IN ({slice})")
            }
            Expired::WebexEvents => {
                format!("SELECT SUM(length(payload)) FROM webex_events WHERE id IN ({slice})")
            }
            Expired::Events => format!(
                "SELECT
                     (SELECT SUM(length(data)) FROM events WHERE id IN ({slice})),
                     (SELECT SUM(length(payload)) FROM outbox WHERE event_id IN ({slice}))"
            ),
        }
    }

    /// Clears one slice of rows older than `cutoff`; returns how many.
    async fn clear_slice(self, tx: &mut AnyConnection, cutoff: i64) -> Result<u64, StoreError> {
        let mut cleared = 0;
        for statement in self.statements() {
            cleared = sqlx::query(&statement)
                .bind(cutoff)
                .bind(self.slice() as i64)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        Ok(cleared)
    }
}

impl Store {
    /// Applies retention: erases and anonymises what is older than the cutoffs, each kind
    /// of row a slice at a time.
    pub async fn purge(&self, cutoffs: PurgeCutoffs) -> Result<PurgeReport, StoreError> {
        let PurgeCutoffs {
            before,
            events_before,
            now,
        } = cutoffs;
        let mut report = PurgeReport {
            message_texts_erased: self.clear(Expired::MessageTexts, before).await?,
            conversations_anonymised: self.clear(Expired::Conversations, before).await?,
            receipts_deleted: self.clear(Expired::Receipts, before).await?,
            outbox_payloads_cleared: self.clear(Expired::OutboxPayloads, before).await?,
            webex_events_deleted: self.clear(Expired::WebexEvents, events_before).await?,
            events_deleted: self.clear(Expired::Events, before).await?,
            ..PurgeReport::default()
        };
        // The rest is few rows (held messages, sessions, the last day's meeting starts):
        // one write.
        (report.held_messages_dropped, report.sessions_deleted) = self
            .write(async move |tx| {
                // A WhatsApp message held for a customer who never wrote again is not kept
                // past the retention either: nothing of it was ever sent.
                let held = sqlx::query("DELETE FROM outbox WHERE held = 1 AND created_at < $1")
                    .bind(before)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let sessions =
                    sqlx::query("DELETE FROM console_sessions WHERE refresh_expires_at < $1")
                        .bind(now)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                // Starts older than a day no longer count against any hourly limit.
                sqlx::query("DELETE FROM meeting_starts WHERE started_at < $1")
                    .bind(now - 24 * 3_600_000)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "DELETE FROM meeting_limit_locks WHERE NOT EXISTS (
                         SELECT 1 FROM meeting_starts s
                         WHERE s.channel = meeting_limit_locks.channel
                           AND s.customer = meeting_limit_locks.customer)",
                )
                .execute(&mut *tx)
                .await?;
                Ok((held, sessions))
            })
            .await?;
        Ok(report)
    }

    /// Clears `expired` rows older than `cutoff`, a slice per write, until a slice finds
    /// fewer than it could take; returns how many.
    async fn clear(&self, expired: Expired, cutoff: i64) -> Result<u64, StoreError> {
        let mut cleared = 0;
        let (warm_up, size) = (expired.warm_up(), expired.slice() as i64);
        loop {
            self.warm_up(sqlx::query(&warm_up).bind(cutoff).bind(size))
                .await?;
            let slice = self
                .write(async move |tx| expired.clear_slice(tx, cutoff).await)
                .await?;
            cleared += slice;
            if slice < expired.slice() {
                return Ok(cleared);
            }
            if self.backend == Backend::Sqlite {
                tokio::time::sleep(SLICE_PAUSE).await;
            }
        }
    }
}
