//! A conversation: one customer writing to one business address on one channel, as icbridge
//! keeps it, and what can become of it.

use super::CustomerAddress;

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

/// The answer a message got: which meeting, and whether the message opened it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub conversation_id: String,
    pub meeting_id: String,
    pub guest_url: String,
    pub host_url: String,
    pub expires_at: i64,
    pub opened_meeting: bool,
    /// The desk of the conversation (`None`: the default desk's).
    pub desk: Option<String>,
}

/// One line of a conversation's transcript.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TranscriptEntry {
    /// `customer` or `expert`.
    pub author: String,
    pub author_email: Option<String>,
    /// Empty once erased by retention.
    pub text: String,
    /// The files and location the message carried, as stored (see `Media::to_stored`).
    pub media: Option<String>,
    pub at: i64,
}

/// A line of the console's queue.
#[derive(Debug, Clone)]
pub struct QueueItem {
    pub conversation: Conversation,
    pub last_message: Option<String>,
    pub last_message_at: Option<i64>,
    pub host_url: Option<String>,
    /// When the customer first opened the newest meeting's link (icbridge's own links).
    pub link_opened_at: Option<i64>,
    /// The start of its booked consultation, if it has one that is not over.
    pub booked_for: Option<i64>,
}

/// The conversation a waiting message was kept in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub conversation_id: String,
    /// `None`: a conversation from before desks, the default desk's.
    pub desk: Option<String>,
    /// This message opened the conversation.
    pub opened_conversation: bool,
    /// The conversation started waiting with this message (it was not waiting before).
    pub started_waiting: bool,
}

/// A rating as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RatingRecord {
    pub conversation_id: String,
    pub channel: String,
    /// The customer's number as stored: shown masked only.
    pub customer: String,
    pub desk: Option<String>,
    pub rating: i64,
    pub asked_at: i64,
    pub answered_at: i64,
}

impl RatingRecord {
    /// The customer's number, masked (`+1415•••0123`).
    pub fn customer_masked(&self) -> String {
        CustomerAddress::from_stored(self.customer.clone()).masked()
    }
}
