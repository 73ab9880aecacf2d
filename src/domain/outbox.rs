//! The outbox as operators and the delivery worker see it: a queued delivery, its state,
//! and the pauses upstreams asked for.

/// An outbox row as the worker and the operator see it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
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
    /// The desk of the row's conversation: whose experts its messages go to.
    pub desk: Option<String>,
    /// 1 when the row's recipient (its conversation's customer, unless it names another
    /// number) opted out (STOP) of the conversation's business number, else 0.
    pub customer_opted_out: i64,
    /// The customer number or WhatsApp id it goes to, when it is a message to a customer
    /// (none on rows queued before recipients were kept: their conversation's customer).
    pub recipient: Option<String>,
    /// What orders rows that belong to no conversation's order: an event's subscription
    /// and conversation.
    pub lane: Option<String>,
    /// The event an event delivery sends, read with the row (`None` once it is erased or
    /// past the retention).
    pub event_id: Option<i64>,
    /// 1 for a delivery due at a later time (an appointment's reminder).
    pub scheduled: i64,
    pub event_type: Option<String>,
    pub event_at: Option<i64>,
    pub event_conversation_id: Option<String>,
    pub event_data: Option<String>,
}

impl OutboxRow {
    /// The event an event delivery sends, as read with it.
    pub fn event(&self) -> Option<crate::domain::events::StoredEvent> {
        Some(crate::domain::events::StoredEvent {
            id: self.event_id?,
            kind: self.event_type.clone()?,
            occurred_at: self.event_at?,
            conversation_id: self.event_conversation_id.clone(),
            data: self.event_data.clone()?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    Pending,
    /// A WhatsApp message waiting for the customer to write again (24-hour window).
    Held,
    Sent,
    Dead,
    /// Never sent: its customer opted out.
    Cancelled,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Held => "held",
            OutboxState::Sent => "sent",
            OutboxState::Dead => "dead",
            OutboxState::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(OutboxState::Pending),
            "held" => Some(OutboxState::Held),
            "sent" => Some(OutboxState::Sent),
            "dead" => Some(OutboxState::Dead),
            "cancelled" => Some(OutboxState::Cancelled),
            _ => None,
        }
    }
}

/// A pause of deliveries to one upstream.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UpstreamPause {
    /// `webex`, `connect` or `instant_connect`.
    pub upstream: String,
    pub paused_until: i64,
    /// 1 while the credential is refused: deliveries wait for a successful probe.
    pub credential_failing: i64,
    pub reason: String,
    pub updated_at: i64,
}

impl UpstreamPause {
    pub fn credential_refused(&self) -> bool {
        self.credential_failing != 0
    }
}
