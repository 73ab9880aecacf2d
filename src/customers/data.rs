//! A customer's data as they may ask for it: every conversation, message, attachment
//! reference, delivery and receipt about them, as JSON (`icbridge customer export`,
//! `GET /api/customers/{number}/export`).

use crate::domain::{CustomerRecords, DeliveryRecord, MessageRecord, ReceiptRecord};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::clock;
use crate::domain::Conversation;

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerExport {
    /// The number asked about, as SMS (`+…`) and WhatsApp (digits) store it.
    pub addresses: [String; 2],
    #[schema(format = DateTime)]
    pub exported_at: String,
    pub conversations: Vec<ExportedConversation>,
    /// Messages kept outside any conversation (a STOP from someone without one).
    pub other_messages: Vec<ExportedMessage>,
    /// What was sent to the number from other customers' conversations (an invitation
    /// to join their meeting as a guest).
    pub other_deliveries: Vec<ExportedDelivery>,
    /// Business addresses the customer opted out of (STOP).
    pub opt_outs: Vec<ExportedOptOut>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportedConversation {
    pub id: String,
    #[schema(value_type = crate::domain::names::ChannelName)]
    pub channel: String,
    pub customer: String,
    pub business_address: String,
    pub customer_name: Option<String>,
    #[schema(value_type = crate::domain::names::ConversationState)]
    pub state: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub closed_at: Option<String>,
    pub closed_by: Option<String>,
    pub desk: Option<String>,
    pub assignee: Option<String>,
    /// Their rating after the call, 1 to 5.
    pub rating: Option<i64>,
    pub meetings: Vec<ExportedMeeting>,
    pub messages: Vec<ExportedMessage>,
    pub deliveries: Vec<ExportedDelivery>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportedMeeting {
    pub id: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// The booked consultation it was made for.
    pub appointment: Option<ExportedAppointment>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportedAppointment {
    pub id: String,
    #[schema(format = DateTime)]
    pub starts_at: String,
    #[schema(format = DateTime)]
    pub ends_at: String,
    /// `booked` or `cancelled`.
    #[schema(value_type = crate::domain::names::AppointmentState)]
    pub state: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportedMessage {
    /// `customer` or `expert`.
    pub author: String,
    pub author_email: Option<String>,
    pub text: String,
    /// The files (their links and types) and the location the message carried.
    #[schema(value_type = Option<Object>)]
    pub media: Option<Value>,
    #[schema(format = DateTime)]
    pub at: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportedDelivery {
    pub id: i64,
    #[schema(value_type = crate::domain::names::DeliveryKind)]
    pub kind: String,
    #[schema(value_type = crate::domain::names::DeliveryState)]
    pub state: String,
    /// What was (or was to be) sent, as queued.
    #[schema(value_type = Object)]
    pub content: Value,
    pub attempts: i64,
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub sent_at: Option<String>,
    pub receipts: Vec<ExportedReceipt>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportedReceipt {
    pub code: Option<String>,
    pub status: Option<String>,
    #[schema(format = DateTime)]
    pub received_at: String,
    /// The receipt as Webex Connect sent it.
    #[schema(value_type = Object)]
    pub content: Value,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportedOptOut {
    #[schema(value_type = crate::domain::names::ChannelName)]
    pub channel: String,
    pub business_address: String,
    #[schema(format = DateTime)]
    pub opted_out_at: String,
}

/// Stored JSON as JSON; anything else (never written by icbridge) as a string.
fn json(stored: &str) -> Value {
    serde_json::from_str(stored).unwrap_or_else(|_| Value::String(stored.to_string()))
}

fn message(record: &MessageRecord) -> ExportedMessage {
    ExportedMessage {
        author: record.author.clone(),
        author_email: record.author_email.clone(),
        text: record.body.clone(),
        media: record.media.as_deref().map(json),
        at: clock::rfc3339(record.received_at),
    }
}

fn delivery(record: &DeliveryRecord, receipts: &[ReceiptRecord]) -> ExportedDelivery {
    ExportedDelivery {
        id: record.id,
        kind: record.kind.clone(),
        state: record.state.clone(),
        content: json(&record.payload),
        attempts: record.attempts,
        last_error: record.last_error.clone(),
        created_at: clock::rfc3339(record.created_at),
        sent_at: record.sent_at.map(clock::rfc3339),
        receipts: receipts
            .iter()
            .filter(|r| r.outbox_id == Some(record.id))
            .map(|r| ExportedReceipt {
                code: r.code.clone(),
                status: r.status.clone(),
                received_at: clock::rfc3339(r.received_at),
                content: json(&r.payload),
            })
            .collect(),
    }
}

fn conversation(record: &Conversation, all: &CustomerRecords) -> ExportedConversation {
    let of_it = |id: &Option<String>| id.as_deref() == Some(record.id.as_str());
    ExportedConversation {
        id: record.id.clone(),
        channel: record.key.channel.as_str().to_string(),
        customer: record.key.customer.as_str().to_string(),
        business_address: record.key.business.as_str().to_string(),
        customer_name: record.customer_name.clone(),
        state: if record.open { "open" } else { "closed" }.to_string(),
        created_at: clock::rfc3339(record.created_at),
        closed_at: record.closed_at.map(clock::rfc3339),
        closed_by: record.closed_by.clone(),
        desk: record.desk.clone(),
        assignee: record.assignee.clone(),
        rating: record.rating,
        meetings: all
            .meetings
            .iter()
            .filter(|m| m.meeting.conversation_id == record.id)
            .map(|m| ExportedMeeting {
                id: m.meeting.id.clone(),
                created_at: clock::rfc3339(m.meeting.created_at),
                expires_at: clock::rfc3339(m.meeting.expires_at),
                appointment: match (&m.appointment_id, m.starts_at, m.ends_at) {
                    (Some(id), Some(starts_at), Some(ends_at)) => Some(ExportedAppointment {
                        id: id.clone(),
                        starts_at: clock::rfc3339(starts_at),
                        ends_at: clock::rfc3339(ends_at),
                        state: m.appointment_state.clone().unwrap_or_default(),
                        note: m.note.clone(),
                    }),
                    _ => None,
                },
            })
            .collect(),
        messages: all
            .messages
            .iter()
            .filter(|m| of_it(&m.conversation_id))
            .map(message)
            .collect(),
        deliveries: all
            .deliveries
            .iter()
            .filter(|d| of_it(&d.conversation_id))
            .map(|d| delivery(d, &all.receipts))
            .collect(),
    }
}

impl CustomerExport {
    pub fn new(addresses: [String; 2], records: &CustomerRecords, now: i64) -> Self {
        CustomerExport {
            addresses,
            exported_at: clock::rfc3339(now),
            conversations: records
                .conversations
                .iter()
                .map(|c| conversation(c, records))
                .collect(),
            other_messages: records
                .messages
                .iter()
                .filter(|m| m.conversation_id.is_none())
                .map(message)
                .collect(),
            other_deliveries: records
                .deliveries
                .iter()
                .filter(|d| {
                    !records
                        .conversations
                        .iter()
                        .any(|c| d.conversation_id.as_deref() == Some(c.id.as_str()))
                })
                .map(|d| delivery(d, &records.receipts))
                .collect(),
            opt_outs: records
                .opt_outs
                .iter()
                .map(|o| ExportedOptOut {
                    channel: o.channel.clone(),
                    business_address: o.business.clone(),
                    opted_out_at: clock::rfc3339(o.opted_out_at),
                })
                .collect(),
        }
    }

    /// Whether anything is held about the number.
    pub fn is_empty(&self) -> bool {
        self.conversations.is_empty()
            && self.other_messages.is_empty()
            && self.other_deliveries.is_empty()
            && self.opt_outs.is_empty()
    }
}
