//! A Webex webhook event as icbridge reads it, and how its age is judged: by the
//! message's or card press's own `data.created`, never by the webhook's registration time.

use serde::Deserialize;

use super::catch_up::CaughtUp;

pub const RESOURCE_MESSAGES: &str = "messages";
pub const RESOURCE_ACTIONS: &str = "attachmentActions";

/// The part of a Webex webhook event icbridge reads. Its top level is the webhook itself
/// (Webex's webhook object: its `created` is when the *webhook* was registered, weeks or
/// months before any event), so nothing here reads it; the event's own time is
/// `data.created`, when the message was posted or the card's button pressed.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    pub resource: String,
    pub event: String,
    #[serde(default)]
    pub actor_id: String,
    pub data: EventData,
    /// Set on events icbridge recorded itself for messages a listing found (see
    /// [`Desk::catch_up`](super::Desk::catch_up)): the message as Webex listed it.
    #[serde(default)]
    pub caught_up: Option<CaughtUp>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventData {
    pub id: String,
    /// An attachment action's card (its message), in `attachmentActions` events.
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    pub room_id: Option<String>,
    #[serde(default)]
    pub person_id: String,
    pub person_email: Option<String>,
    /// When the message was posted or the button pressed (RFC 3339); see
    /// [`WebhookEvent::age_problem`].
    #[serde(default)]
    pub created: Option<String>,
}

/// Why an event's time, `created` at `at`, is outside the replay window at `now`, if it
/// is: older than [`WEBEX_EVENT_MAX_AGE`], or further ahead than [`WEBEX_EVENT_MAX_SKEW`].
pub(super) fn outside_replay_window(created: &str, now: i64) -> Option<String> {
    let Some(created_ms) = crate::domain::clock::parse_rfc3339(created) else {
        return Some(format!(
            "the event's `data.created` is not a time: {created:?}"
        ));
    };
    let max_age = crate::domain::replay::WEBEX_EVENT_MAX_AGE;
    let max_skew = crate::domain::replay::WEBEX_EVENT_MAX_SKEW;
    if created_ms < now - max_age.as_millis() as i64 {
        Some(format!(
            "the event's message or action was created at {created}, more than {} ago; \
             pushed events are accepted for {} after that",
            humantime::format_duration(max_age),
            humantime::format_duration(max_age)
        ))
    } else if created_ms > now + max_skew.as_millis() as i64 {
        Some(format!(
            "the event's `data.created` ({created}) is in the future"
        ))
    } else {
        None
    }
}

impl WebhookEvent {
    /// Why the event is too old (or too far in the future) to be accepted at `now`, if it
    /// is: a captured event must not be replayable once its id has been forgotten. Judged
    /// by `data.created`; an event without one is judged when it is handled, by the time
    /// of the message or action it names (see `Desk::process`).
    pub fn age_problem(&self, now: i64) -> Option<String> {
        outside_replay_window(self.data.created.as_deref()?, now)
    }

    /// Whether the desk acts on this kind of event.
    pub fn is_handled(&self) -> bool {
        self.event == "created"
            && (self.resource == RESOURCE_MESSAGES || self.resource == RESOURCE_ACTIONS)
    }
}

/// What became of an event from the webhook.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    Recorded,
    /// Recorded before: Webex delivered it again.
    Duplicate,
    /// A kind of event the desk does not act on.
    Ignored,
    /// Outside the replay window, for this reason.
    Stale(String),
}
