//! What the background workers (the outbox and the Webex desk) share: their loop and the
//! retry schedule.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{watch, Notify};

use crate::store::StoreError;

/// How often a worker looks for due work when nothing wakes it.
pub const IDLE_POLL: Duration = Duration::from_millis(500);

/// Runs `step` (one batch; returns how much it handled) until `stop` turns true. A batch
/// in progress is finished first. Busy: the next batch at once; idle: wait for a wake-up.
pub async fn run_loop<F, Fut>(
    name: &str,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    step: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<usize, StoreError>>,
{
    loop {
        if *stop.borrow() {
            return;
        }
        match step().await {
            Ok(handled) if handled > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::error!(worker = name, error = %e, "worker could not read its queue"),
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
            _ = stop.changed() => {}
        }
    }
}

/// The wait before the next attempt, or `None` when the schedule is used up. `attempts`
/// counts the attempts made so far (at least 1). The step gets ±20% jitter, so that rows
/// failing together do not retry together. (A wait an upstream asks for is not a failure:
/// it pauses the whole upstream, see `pauses`.)
pub fn backoff(schedule: &[Duration], attempts: i64) -> Option<Duration> {
    let step = *schedule.get(usize::try_from(attempts - 1).ok()?)?;
    Some(step.mul_f64(rand::thread_rng().gen_range(0.8..=1.2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_follows_the_schedule() {
        let schedule = [Duration::from_secs(1), Duration::from_secs(10)];
        for _ in 0..50 {
            let first = backoff(&schedule, 1).unwrap();
            assert!(first >= Duration::from_millis(800) && first <= Duration::from_millis(1200));
            let second = backoff(&schedule, 2).unwrap();
            assert!(second >= Duration::from_secs(8) && second <= Duration::from_secs(12));
        }
        assert_eq!(backoff(&schedule, 3), None);
        assert_eq!(backoff(&schedule, 0), None);
    }
}
