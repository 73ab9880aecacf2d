//! A customer's data on request: everything held about them, and erasing it.

use super::audit::insert_audit;
use super::conversations::{ConversationRow, SELECT};
use super::events::{customer_erased, erase_customer_events, record_events};
use crate::domain::Conversation;
use crate::domain::{AuditEntry, CustomerRecords, Erasure};

use super::{Store, StoreError, ERASED};

/// The conversations of a customer (`$1`, `$2`: their number's SMS and WhatsApp forms).
const CONVERSATIONS_OF: &str = "SELECT id FROM conversations WHERE customer IN ($1, $2)";
// The sets below are unions of what each index finds, not `a OR b` filters: PostgreSQL
// reads a whole table for `x IN (…) OR y IN (…)`.

/// A customer's messages: those of their conversations, and those outside any (by
/// number: a message's number is its conversation's).
const MESSAGES_OF: &str = "id IN (
    SELECT m.id FROM messages m JOIN conversations c ON m.conversation_id = c.id
    WHERE c.customer IN ($1, $2)
    UNION ALL
    SELECT id FROM messages WHERE conversation_id IS NULL AND customer IN ($1, $2))";
/// The deliveries about a customer: those of their conversations, and those sent to their
/// number from any other (an `add guest` invitation).
const DELIVERY_IDS: &str = "
    SELECT o.id FROM outbox o JOIN conversations c ON o.conversation_id = c.id
    WHERE c.customer IN ($1, $2)
    UNION
    SELECT id FROM outbox WHERE recipient IN ($1, $2)";

impl Store {
    /// Everything stored about the customer whose address is one of `forms`.
    pub async fn customer_records(
        &self,
        forms: &[String; 2],
    ) -> Result<CustomerRecords, StoreError> {
        let [sms, whatsapp] = forms;
        let db = &self.reader;
        Ok(CustomerRecords {
            conversations: sqlx::query_as::<_, ConversationRow>(&format!(
                "{SELECT} WHERE c.customer IN ($1, $2) ORDER BY c.created_at, c.id"
            ))
            .bind(sms)
            .bind(whatsapp)
            .fetch_all(db)
            .await?
            .into_iter()
            .map(Conversation::try_from)
            .collect::<Result<_, _>>()?,
            meetings: sqlx::query_as(&format!(
                "SELECT m.id, m.conversation_id, m.sub, m.host_url, m.guest_url, m.not_before,
                        m.expires_at, m.created_at, a.id AS appointment_id, a.starts_at, a.ends_at,
                        a.state AS appointment_state, a.note
                 FROM meetings m LEFT JOIN appointments a ON a.meeting_id = m.id
                 WHERE m.conversation_id IN ({CONVERSATIONS_OF})
                 ORDER BY m.created_at, m.id"
            ))
            .bind(sms)
            .bind(whatsapp)
            .fetch_all(db)
            .await?,
            messages: sqlx::query_as(&format!(
                "SELECT conversation_id, channel, business, author, author_email, body, media,
                        received_at
                 FROM messages WHERE {MESSAGES_OF} ORDER BY id"
            ))
            .bind(sms)
            .bind(whatsapp)
            .fetch_all(db)
            .await?,
            deliveries: sqlx::query_as(&format!(
                "SELECT id, conversation_id, kind,
                        (CASE WHEN held = 1 THEN 'held' ELSE state END) AS state, payload,
                        attempts, last_error, created_at, sent_at
                 FROM outbox WHERE id IN ({DELIVERY_IDS}) ORDER BY id"
            ))
            .bind(sms)
            .bind(whatsapp)
            .fetch_all(db)
            .await?,
            receipts: sqlx::query_as(&format!(
                "SELECT outbox_id, code, status, payload, received_at FROM delivery_receipts
                 WHERE outbox_id IN ({DELIVERY_IDS})
                 ORDER BY id"
            ))
            .bind(sms)
            .bind(whatsapp)
            .fetch_all(db)
            .await?,
            opt_outs: sqlx::query_as(
                "SELECT channel, business, opted_out_at FROM opt_outs
                 WHERE customer IN ($1, $2) ORDER BY opted_out_at",
            )
            .bind(sms)
            .bind(whatsapp)
            .fetch_all(db)
            .await?,
        })
    }

    /// Erases the customer whose address is one of `forms`, in one transaction: the texts,
    /// files and locations of their messages (and of the experts' in their conversations),
    /// their name, the content of every delivery and receipt about them; their number is
    /// replaced as retention does; open conversations are closed and what waited to be sent
    /// is cancelled; their opt-outs are forgotten. On SQLite (which overwrites what it
    /// deletes: `secure_delete`) the write-ahead log is asked to be emptied at the next
    /// checkpoint ([`Store::empty_log`] empties it at once).
    ///
    /// `audit` is written in the same transaction, its detail the erasure's counts.
    /// (One function on purpose, though long: one transaction whose statements read in the
    /// order they run, one per table it touches.)
    pub async fn erase_customer(
        &self,
        forms: &[String; 2],
        cancel_reason: &str,
        mut audit: AuditEntry,
        now: i64,
    ) -> Result<Erasure, StoreError> {
        let [sms, whatsapp] = forms.clone();
        let cancel_reason = cancel_reason.to_string();
        let erasure = self
            .write(async move |tx| {
                // Their events go, before their conversations lose the number; what is
                // left is that they were erased.
                let erased = erase_customer_events(tx, &[sms.clone(), whatsapp.clone()]).await?;
                let deliveries_cancelled = sqlx::query(&format!(
                    "UPDATE outbox SET state = 'cancelled', held = 0, leased_until = NULL,
                                       last_error = $3
                     WHERE state = 'pending' AND id IN ({DELIVERY_IDS})"
                ))
                .bind(&sms)
                .bind(&whatsapp)
                .bind(&cancel_reason)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                // Receipts of their deliveries (one matched to no delivery keeps no body).
                let receipts = sqlx::query(&format!(
                    "UPDATE delivery_receipts SET payload = '{{}}', transid = NULL
                     WHERE payload != '{{}}'
                       AND outbox_id IN ({DELIVERY_IDS})"
                ))
                .bind(&sms)
                .bind(&whatsapp)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let deliveries = sqlx::query(&format!(
                    "UPDATE outbox SET payload = '{{}}', recipient = NULL
                     WHERE (payload != '{{}}' OR recipient IS NOT NULL) AND id IN ({DELIVERY_IDS})"
                ))
                .bind(&sms)
                .bind(&whatsapp)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                // The sender's message id goes too: it identified the message with the
                // number, and another erased customer's message may have had the same.
                let messages = sqlx::query(&format!(
                    "UPDATE messages SET body = '', media = NULL, author_email = NULL,
                                         customer = $3, external_id = NULL
                     WHERE {MESSAGES_OF}"
                ))
                .bind(&sms)
                .bind(&whatsapp)
                .bind(ERASED)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let conversations = sqlx::query(
                    "UPDATE conversations
                     SET customer = $3, customer_name = NULL, state = 'closed',
                         closed_at = COALESCE(closed_at, $4),
                         closed_by = COALESCE(closed_by, 'erasure'), waiting_since = NULL
                     WHERE customer IN ($1, $2)",
                )
                .bind(&sms)
                .bind(&whatsapp)
                .bind(ERASED)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query(
                    "UPDATE appointments
                     SET customer = $3, note = NULL, state = 'cancelled',
                         cancelled_at = COALESCE(cancelled_at, $4)
                     WHERE customer IN ($1, $2)",
                )
                .bind(&sms)
                .bind(&whatsapp)
                .bind(ERASED)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let opt_outs = sqlx::query("DELETE FROM opt_outs WHERE customer IN ($1, $2)")
                    .bind(&sms)
                    .bind(&whatsapp)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                for table in ["meeting_claims", "meeting_starts", "meeting_limit_locks"] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE customer IN ($1, $2)"))
                        .bind(&sms)
                        .bind(&whatsapp)
                        .execute(&mut *tx)
                        .await?;
                }
                record_events(tx, &[customer_erased(&sms, &erased)], now).await?;
                let erasure = Erasure {
                    conversations,
                    messages,
                    deliveries,
                    deliveries_cancelled,
                    receipts,
                    opt_outs,
                };
                audit.detail = serde_json::to_string(&erasure).ok();
                insert_audit(tx, &audit).await?;
                Ok(erasure)
            })
            .await?;
        // The log still holds the pages as they were: emptied at the checkpoint's next tick.
        if let Some(log) = &self.log {
            log.ask();
        }
        Ok(erasure)
    }
}
