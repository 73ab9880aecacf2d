//! A customer's data on request: everything held about them, and erasing it.

use super::audit::insert_audit;
use super::conversations::{ConversationRow, SELECT};
use super::events::{customer_erased, erase_customer_events, record_events};
use crate::domain::Conversation;
use crate::domain::{AuditEntry, CustomerRecords, Erasure};
use sqlx::AnyConnection;

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

/// Reads, on a reader, the pages that [`erase_conversation_contents`] changes for
/// conversation `$1`: its messages, deliveries and receipts, and the entries that erasing
/// them moves in the indexes of texts (`messages_with_text`), sender ids (`messages_once`)
/// and payloads (`outbox_with_payload`): see `Store::warm_up`.
const WARM_CONVERSATION: &str = "SELECT
    (SELECT SUM(length(body)) FROM messages WHERE conversation_id = $1),
    (SELECT SUM(length(payload)) FROM outbox WHERE conversation_id = $1),
    (SELECT SUM(length(payload)) FROM delivery_receipts
     WHERE outbox_id IN (SELECT id FROM outbox WHERE conversation_id = $1)),
    (SELECT COUNT(*) FROM messages INDEXED BY messages_with_text
     WHERE (body != '' OR media IS NOT NULL)
       AND received_at IN (SELECT received_at FROM messages WHERE conversation_id = $1)),
    (SELECT COUNT(*) FROM conversations c
         JOIN messages m INDEXED BY messages_once
           ON m.channel = c.channel AND m.customer = c.customer AND m.business = c.business
     WHERE c.id = $1 AND m.external_id IS NOT NULL),
    (SELECT COUNT(*) FROM outbox INDEXED BY outbox_with_payload
     WHERE payload != '{}'
       AND created_at IN (SELECT created_at FROM outbox WHERE conversation_id = $1))";

/// The same for the erasure's last write (`$1`, `$2`: the number's two forms): the
/// customer's conversations, and their entries in the indexes by state and of what is
/// left to anonymise, which closing them and taking their number moves. (`'erased'` as that
/// partial index says it: a query names a partial index only where its terms match.) Each
/// `INDEXED BY` fails the erasure loudly, in the suite, if a migration renames the index.
const WARM_CUSTOMER: &str = "SELECT
    (SELECT SUM(length(customer_name)) FROM conversations
     WHERE customer IN ($1, $2)),
    (SELECT COUNT(*) FROM conversations INDEXED BY conversations_by_state
     WHERE (state, created_at) IN (SELECT state, created_at FROM conversations
                                   WHERE customer IN ($1, $2))),
    (SELECT COUNT(*) FROM conversations INDEXED BY conversations_to_anonymise
     WHERE customer != 'erased'
       AND closed_at IN (SELECT closed_at FROM conversations WHERE customer IN ($1, $2)))";

/// Erases the messages `selection` finds that are not erased yet (so that a message erased
/// twice is counted once), `marker` the placeholder of what replaces a number.
fn erase_messages(selection: &str, marker: &str) -> String {
    format!(
        "UPDATE messages SET body = '', media = NULL, author_email = NULL,
                             customer = {marker}, external_id = NULL
         WHERE {selection}
           AND (customer != {marker} OR body != '' OR media IS NOT NULL
                OR author_email IS NOT NULL OR external_id IS NOT NULL)"
    )
}

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

    /// Erases the customer whose address is one of `forms`: the texts, files and locations
    /// of their messages (and of the experts' in their conversations), their name, the
    /// content of every delivery and receipt about them; their number is replaced as
    /// retention does; open conversations are closed and what waited to be sent is
    /// cancelled; their opt-outs are forgotten. On SQLite (which overwrites what it
    /// deletes: `secure_delete`) the write-ahead log is asked to be emptied in the next
    /// quiet second ([`Store::empty_log`] empties it at once).
    ///
    /// Each conversation's messages, deliveries and receipts go first, a conversation per
    /// write: on a year's database one customer's rows sit on a few hundred pages, and one
    /// write for all of them held the writer (and every customer's message queued behind
    /// it) for tens of milliseconds. The last write then does everything else and whatever
    /// the first ones did not see (a message that arrived meanwhile), and closes the
    /// conversations: until it has run they still carry the number, so an erasure that
    /// failed halfway is finished by running it again. `audit` is written in that last
    /// write, its detail the erasure's counts.
    /// (One function on purpose, though long: the statements read in the order they run,
    /// one per table they touch.)
    pub async fn erase_customer(
        &self,
        forms: &[String; 2],
        cancel_reason: &str,
        mut audit: AuditEntry,
        now: i64,
    ) -> Result<Erasure, StoreError> {
        let [sms, whatsapp] = forms.clone();
        let cancel_reason = cancel_reason.to_string();
        let conversations: Vec<String> = sqlx::query_scalar(CONVERSATIONS_OF)
            .bind(&sms)
            .bind(&whatsapp)
            .fetch_all(&self.reader)
            .await?;
        let mut ahead = Erasure::default();
        for conversation in conversations {
            self.warm_up(sqlx::query(WARM_CONVERSATION).bind(&conversation))
                .await?;
            let part = self
                .write(async move |tx| erase_conversation_contents(tx, &conversation).await)
                .await?;
            ahead.messages += part.messages;
            ahead.deliveries += part.deliveries;
            ahead.receipts += part.receipts;
        }
        self.warm_up(sqlx::query(WARM_CUSTOMER).bind(&sms).bind(&whatsapp))
            .await?;
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
                let messages = sqlx::query(&erase_messages(MESSAGES_OF, "$3"))
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
                let erasure = Erasure {
                    messages: ahead.messages + erasure.messages,
                    deliveries: ahead.deliveries + erasure.deliveries,
                    receipts: ahead.receipts + erasure.receipts,
                    ..erasure
                };
                audit.detail = serde_json::to_string(&erasure).ok();
                insert_audit(tx, &audit).await?;
                Ok(erasure)
            })
            .await?;
        // The log still holds the pages as they were: emptied in the next quiet second.
        if let Some(log) = &self.log {
            log.ask();
        }
        Ok(erasure)
    }
}

/// The contents of one conversation of an erased customer (`conversation`): its messages'
/// texts, files and number, and the content of its deliveries and their receipts; what is
/// erased already is left alone, so the count is of what this write changed. A delivery
/// still waiting to go is left to the erasure's last write, which cancels it first: its
/// content emptied here could otherwise be sent, empty, meanwhile.
async fn erase_conversation_contents(
    tx: &mut AnyConnection,
    conversation: &str,
) -> Result<Erasure, StoreError> {
    let receipts = sqlx::query(
        "UPDATE delivery_receipts SET payload = '{}', transid = NULL
         WHERE payload != '{}'
           AND outbox_id IN (SELECT id FROM outbox WHERE conversation_id = $1
                                                    AND state != 'pending')",
    )
    .bind(conversation)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let deliveries = sqlx::query(
        "UPDATE outbox SET payload = '{}', recipient = NULL
         WHERE conversation_id = $1 AND state != 'pending'
           AND (payload != '{}' OR recipient IS NOT NULL)",
    )
    .bind(conversation)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let messages = sqlx::query(&erase_messages("conversation_id = $1", "$2"))
        .bind(conversation)
        .bind(ERASED)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    Ok(Erasure {
        messages,
        deliveries,
        receipts,
        ..Erasure::default()
    })
}
