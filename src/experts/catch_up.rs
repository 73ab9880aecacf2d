//! Finding the messages whose webhook events never came.
//!
//! Webex documents no retry of a webhook delivery (icbridge assumes none): an event answered with anything but 2xx (the
//! database was busy, icbridge was down or being deployed, the webhook was disabled) is
//! gone. So the desk lists, in every room it serves, the messages the bot may see that
//! were posted since the newest one it has seen there, and records each one it never
//! recorded as if its event had arrived. An event's identity is its message's id, so a
//! message found here and pushed as well is handled once.
//!
//! What a listing gives comes from Webex over an authenticated call: it is authentic
//! whatever its age, and the replay window (which guards pushed events) does not apply.
//! Card presses cannot be listed (Webex has no list of attachment actions); a press whose
//! event was lost is lost, and the route tells the expert when it could not take one.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Desk, DeskError, RESOURCE_MESSAGES};
use crate::domain::Destination;
use crate::store::CaughtUpEvent;
use crate::upstream::webex::Message;
use crate::upstream::Upstream;

/// How far back the first listing of a room looks: no further than the ids of recorded
/// events are surely kept (`retention::cutoffs`), so nothing handled before is found as new.
const FIRST_LOOKBACK: Duration = crate::domain::replay::WEBEX_EVENT_MAX_AGE;
/// Each listing starts this much before the newest message seen (a message posted just
/// before another may show up in a listing just after it); what was seen again is
/// recognised by its id.
const OVERLAP_MS: i64 = 60_000;
/// The cursor of the listing of the bot's direct rooms (which rooms saw messages since).
const DIRECT_ROOMS: &str = "direct rooms";

/// A message found by a listing, kept in its event: the desk handles it as it would the
/// pushed event, without asking Webex for it again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaughtUp {
    pub message: Message,
}

/// What a catch-up found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CatchUpReport {
    /// Rooms listed.
    pub rooms: usize,
    /// Messages recorded that no event had brought.
    pub new: usize,
}

impl Desk {
    /// Lists the messages posted since the last listing in each experts' space (those that
    /// mention the bot: a bot may list no others there) and each direct room with the bot
    /// that saw messages since (all of them), and records those never recorded as events,
    /// to be handled like pushed ones, oldest first. Nothing while Webex asked to wait or
    /// refuses the token.
    pub async fn catch_up(&self) -> Result<CatchUpReport, DeskError> {
        if self.pauses.paused_until(Upstream::Webex).is_some()
            || self.pauses.refused_credentials().contains(&Upstream::Webex)
        {
            return Ok(CatchUpReport::default());
        }
        let now = self.clock.now_ms();
        let mut report = CatchUpReport::default();
        let mut spaces: Vec<&str> = self
            .places
            .all()
            .filter_map(|place| match place {
                Destination::RoomId(room) => Some(room.as_str()),
                Destination::PersonEmail(_) => None,
            })
            .collect();
        spaces.sort_unstable();
        spaces.dedup();
        for room in spaces {
            report.new += self.catch_up_room(room, true, now).await?;
            report.rooms += 1;
        }
        let since = self.cursor(DIRECT_ROOMS, now).await? - OVERLAP_MS;
        for room in self.webex.direct_rooms_since(since).await? {
            report.new += self.catch_up_room(&room.id, false, now).await?;
            report.rooms += 1;
        }
        self.events
            .record_caught_up(DIRECT_ROOMS, Vec::new(), now, now)
            .await?;
        if report.new > 0 {
            self.metrics.caught_up(report.new);
            tracing::warn!(
                messages = report.new,
                rooms = report.rooms,
                "found Webex messages whose events never came; handling them now"
            );
            self.wake.notify_one();
        }
        Ok(report)
    }

    /// Until when `room` was read, or (never read) how far back a first listing looks.
    async fn cursor(&self, room: &str, now: i64) -> Result<i64, DeskError> {
        Ok(self
            .events
            .catch_up_cursor(room)
            .await?
            .unwrap_or(now - FIRST_LOOKBACK.as_millis() as i64))
    }

    /// Records the messages of one room posted since its cursor; returns how many were new.
    async fn catch_up_room(
        &self,
        room: &str,
        mentioned_only: bool,
        now: i64,
    ) -> Result<usize, DeskError> {
        let bot = self.bot().await?.id.clone();
        let cursor = self.cursor(room, now).await?;
        let since = cursor - OVERLAP_MS;
        let mut found: Vec<(i64, Message)> = self
            .webex
            .messages_since(room, mentioned_only, since)
            .await?
            .into_iter()
            .filter_map(|message| {
                let created = crate::domain::clock::parse_rfc3339(message.created.as_deref()?)?;
                (created >= since).then_some((created, message))
            })
            .collect();
        let seen_until = found
            .iter()
            .map(|(created, _)| *created)
            .max()
            .unwrap_or(cursor)
            .max(cursor);
        found.retain(|(_, message)| message.person_id != bot);
        // Oldest first, so that they are handled in the order they were posted.
        found.sort_by_key(|(created, _)| *created);
        let events = found
            .into_iter()
            .map(|(_, message)| CaughtUpEvent {
                id: message.id.clone(),
                resource: RESOURCE_MESSAGES.to_string(),
                payload: event_of(message),
            })
            .collect();
        Ok(self
            .events
            .record_caught_up(room, events, seen_until, now)
            .await?)
    }
}

/// The event Webex would have pushed for `message`, with the message itself.
fn event_of(message: Message) -> String {
    json!({
        "resource": RESOURCE_MESSAGES,
        "event": "created",
        "actorId": message.person_id,
        "data": {
            "id": message.id,
            "roomId": message.room_id,
            "personId": message.person_id,
            "personEmail": message.person_email,
            "created": message.created,
        },
        "caughtUp": CaughtUp { message },
    })
    .to_string()
}
