//! A conversation: one customer writing to one business address on one channel, as icbridge
//! keeps it, and what can become of it.

use super::ConversationKey;

/// A stored conversation with what the expert desk shows of it.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub id: String,
    pub key: ConversationKey,
    pub customer_name: Option<String>,
    pub open: bool,
    /// When it was closed, and by whom (`expert:…`, `admin:…`, `erasure`, …).
    pub closed_at: Option<i64>,
    pub closed_by: Option<String>,
    /// The Webex message that opened the conversation's thread, once delivered.
    pub thread_message_id: Option<String>,
    pub created_at: i64,
    /// When the newest meeting's links run out.
    pub links_expire_at: Option<i64>,
    /// The expert who took the conversation, if one did.
    pub assignee: Option<String>,
    /// The desk it belongs to (`None`: opened before desks, the default desk's).
    pub desk: Option<String>,
    /// Since when it has waited for its desk to open (out of hours), if it does.
    pub waiting_since: Option<i64>,
    /// How the customer rated it (1 to 5), once closed, if they answered the survey.
    pub rating: Option<i64>,
}

/// What became of an expert's `take`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakeOutcome {
    Taken,
    /// The expert had taken it already.
    AlreadyYours,
    /// Another expert has it (they were first).
    TakenBy(String),
    Closed,
    Unknown,
}
