//! Desks opening: the conversations that waited out of hours are handed to their desks,
//! checked every little while as long as `serve` runs; and, with `ICB_SURVEY`, meetings
//! ending: their conversations are closed and their customers asked for a rating.

use std::time::Duration;

use tokio::sync::watch;

use crate::bridge::Bridge;

/// How soon after a desk opens its waiting conversations reach it, at most.
const EVERY: Duration = Duration::from_secs(15);

/// Hands waiting conversations to their desks, and closes those whose meetings ended, every
/// 15 seconds until `stop`.
pub async fn openings(bridge: Bridge, mut stop: watch::Receiver<bool>) {
    loop {
        match bridge.release_waiting().await {
            Ok(0) => {}
            Ok(released) => tracing::info!(released, "waiting conversations handed to their desks"),
            Err(e) => tracing::error!(error = %e, "waiting conversations could not be handed over"),
        }
        match bridge.close_ended_meetings().await {
            Ok(0) => {}
            Ok(closed) => tracing::info!(closed, "conversations closed as their meetings ended"),
            Err(e) => {
                tracing::error!(error = %e, "conversations of ended meetings could not be closed")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// How often retention is applied while `serve` runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Applies retention (`ICB_RETENTION`) once an hour until `stop`.
pub async fn retention(bridge: Bridge, retention: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        match bridge.purge(retention).await {
            Ok(report) if report != Default::default() => {
                tracing::info!(?report, "retention applied")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "retention could not be applied"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RETENTION_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}
