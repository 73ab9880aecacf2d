//! Retention: message texts older than `ICB_RETENTION` are erased and conversations closed
//! before it anonymised (hourly while `serve` runs, see `app::loops`, and by
//! `icbridge purge`).

use std::time::Duration;

use crate::domain::replay::{WEBEX_EVENT_MAX_AGE, WEBEX_EVENT_MAX_SKEW};
use crate::store::PurgeCutoffs;

/// The cutoffs for a retention of `retention` at `now`. Webex event ids are kept longer
/// than the replay window, whatever the retention: a repeat of a recorded event is
/// recognised by its id.
pub fn cutoffs(retention: Duration, now: i64) -> PurgeCutoffs {
    let before = now - retention.as_millis() as i64;
    let replayable_since = now - (WEBEX_EVENT_MAX_AGE + WEBEX_EVENT_MAX_SKEW).as_millis() as i64;
    PurgeCutoffs {
        before,
        events_before: before.min(replayable_since),
        now,
    }
}
