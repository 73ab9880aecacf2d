//! icbridge's own links (`/j/<code>`): the codes handed out for a meeting's links, and
//! where each leads.

/// A code icbridge hands out, and the Instant Connect link it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub code: String,
    /// `guest` or `host`.
    pub role: &'static str,
    pub target: String,
    /// Beyond the meeting's first host and guest links (another guest's, another host's).
    pub extra: bool,
}

/// A link of a meeting, as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MeetingLinkRecord {
    pub meeting_id: String,
    /// `host` or `guest`.
    pub role: String,
    pub url: String,
    /// The masked number an added guest's link was sent to.
    pub sent_to: Option<String>,
    pub created_at: i64,
}

/// A handed-out link as a visit finds it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LinkRecord {
    pub target: String,
    pub role: String,
    /// 1 for a link beyond the meeting's first host and guest links.
    pub extra: i64,
    pub conversation_id: String,
    /// When the meeting was made: when its links were sent.
    pub created_at: i64,
    pub expires_at: i64,
    /// Before this the links do not work yet (a booked consultation's).
    pub not_before: Option<i64>,
    pub desk: Option<String>,
    pub opened_at: Option<i64>,
    /// 1 while the conversation is open and this is its newest meeting, else 0.
    pub current: i64,
}
