//! Retention: message texts older than `ICB_RETENTION` are erased and conversations closed
//! before it anonymised, once an hour while `serve` runs (and by `icbridge purge`).

use std::time::Duration;

use tokio::sync::watch;

use crate::bridge::Bridge;
use crate::store::PurgeCutoffs;

const EVERY: Duration = Duration::from_secs(3600);

/// How old a Webex event may be when it arrives (its `created`): older ones are refused, so
/// that a captured event cannot be replayed later. Webex delivers events within seconds
/// and retries for minutes.
pub const WEBEX_EVENT_MAX_AGE: Duration = Duration::from_secs(3600);
/// How far ahead of this machine's clock an event's `created` may be (clock skew).
pub const WEBEX_EVENT_MAX_SKEW: Duration = Duration::from_secs(5 * 60);

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

pub async fn run(bridge: Bridge, retention: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        match bridge.purge(retention).await {
            Ok(report) if report != Default::default() => {
                tracing::info!(?report, "retention applied")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "retention could not be applied"),
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}
