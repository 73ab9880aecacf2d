//! The replay window of pushed Webex events: an event whose message or press (its
//! `data.created`) is older than this, or further ahead, is refused, so that a captured
//! event cannot be replayed once its id is forgotten; ids are kept at least this long
//! (`customers::retention`).

use std::time::Duration;

/// How old a pushed Webex event's own time may be when it arrives.
pub const WEBEX_EVENT_MAX_AGE: Duration = Duration::from_secs(3600);
/// How far ahead of this machine's clock an event's time may be (clock skew).
pub const WEBEX_EVENT_MAX_SKEW: Duration = Duration::from_secs(5 * 60);
