//! A booked consultation, as icbridge keeps it.

/// An appointment as stored, with its meeting's guest link.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Appointment {
    pub id: String,
    pub conversation_id: String,
    pub meeting_id: String,
    pub channel: String,
    pub customer: String,
    pub business: String,
    pub desk: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub note: Option<String>,
    /// `booked` or `cancelled`.
    pub state: String,
    pub request_digest: Option<String>,
    pub created_at: i64,
    pub cancelled_at: Option<i64>,
    pub guest_url: String,
    pub host_url: String,
    /// From when until when the links work (`nbf`, `exp`).
    pub links_from: i64,
    pub links_until: i64,
}
