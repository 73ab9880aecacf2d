//! Retention: message texts older than `ICB_RETENTION` are erased and conversations closed
//! before it anonymised, once an hour while `serve` runs (and by `icbridge purge`).

use std::time::Duration;

use tokio::sync::watch;

use crate::clock::now_ms;
use crate::store::Store;

const EVERY: Duration = Duration::from_secs(3600);

pub async fn run(store: Store, retention: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        let now = now_ms();
        match store.purge(now - retention.as_millis() as i64, now).await {
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
