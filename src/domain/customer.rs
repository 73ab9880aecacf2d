//! Everything icbridge holds about one customer (their data on request), what an erasure
//! removed, and what a retention run did.

use serde::Serialize;

use super::{Conversation, Meeting};

/// Everything stored about a customer, oldest first in each list.
#[derive(Debug, Clone, Default)]
pub struct CustomerRecords {
    pub conversations: Vec<Conversation>,
    pub meetings: Vec<MeetingRecord>,
    pub messages: Vec<MessageRecord>,
    pub deliveries: Vec<DeliveryRecord>,
    pub receipts: Vec<ReceiptRecord>,
    pub opt_outs: Vec<OptOutRecord>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MeetingRecord {
    #[sqlx(flatten)]
    pub meeting: Meeting,
    /// The booked consultation it was made for, if any.
    pub appointment_id: Option<String>,
    pub starts_at: Option<i64>,
    pub ends_at: Option<i64>,
    pub appointment_state: Option<String>,
    pub note: Option<String>,
}

/// A message from the customer or, in their conversations, to them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRecord {
    pub conversation_id: Option<String>,
    pub channel: String,
    pub business: String,
    pub author: String,
    pub author_email: Option<String>,
    pub body: String,
    pub media: Option<String>,
    pub received_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRecord {
    pub id: i64,
    pub conversation_id: Option<String>,
    pub kind: String,
    pub state: String,
    pub payload: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReceiptRecord {
    pub outbox_id: Option<i64>,
    pub code: Option<String>,
    pub status: Option<String>,
    pub payload: String,
    pub received_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OptOutRecord {
    pub channel: String,
    pub business: String,
    pub opted_out_at: i64,
}

/// What erasing a customer's data did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Erasure {
    /// Conversations whose number and name were replaced (open ones were closed).
    pub conversations: u64,
    /// Messages whose text, files and location were erased.
    pub messages: u64,
    /// Deliveries whose content was erased.
    pub deliveries: u64,
    /// Of those, deliveries still waiting to go, cancelled.
    pub deliveries_cancelled: u64,
    /// Delivery receipts whose content was erased.
    pub receipts: u64,
    /// Opt-outs forgotten: a new message from the number is a new customer.
    pub opt_outs: u64,
}

/// What one retention run changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub message_texts_erased: u64,
    pub conversations_anonymised: u64,
    pub receipts_deleted: u64,
    pub outbox_payloads_cleared: u64,
    /// WhatsApp messages held for a customer who did not write again within the retention.
    pub held_messages_dropped: u64,
    pub webex_events_deleted: u64,
    /// Events for the systems of record that occurred before the retention.
    pub events_deleted: u64,
    pub sessions_deleted: u64,
}
