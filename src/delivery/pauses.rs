//! When an upstream says "slow down" or "your credential is gone".
//!
//! A `429` or `503` with `Retry-After` (or Webex Connect's `7020`) is a wait asked of every
//! call with that credential, not only the one refused: all deliveries to that upstream
//! wait until then. A refused credential (`401`, ...) stops deliveries to it until a probe
//! shows it works again. Both are recorded in the database, so that every instance sharing
//! it respects them, and kept here too, for the checks made before each call.

use crate::domain::UpstreamPause;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::domain::clock::Clock;
use crate::store::{Store, StoreError};
use crate::upstream::{Upstream, UpstreamError, Verdict};

/// The longest wait an upstream may ask for; longer ones are cut to it (and logged).
pub const MAX_PAUSE: Duration = Duration::from_secs(3600);
/// The wait after Webex Connect's tenant rate limit (`7020`), which names none.
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(30);
/// How often a refused credential is tried again, and its error logged at most.
pub const PROBE_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Pauses {
    store: Store,
    clock: Clock,
    /// The pauses as last read or recorded, by upstream.
    known: Arc<Mutex<HashMap<Upstream, UpstreamPause>>>,
    /// When a refused credential was last logged, by upstream.
    logged: Arc<Mutex<HashMap<Upstream, i64>>>,
}

impl Pauses {
    pub fn new(store: Store, clock: Clock) -> Self {
        Self {
            store,
            clock,
            known: Arc::default(),
            logged: Arc::default(),
        }
    }

    /// Records what a failed call says about its whole upstream, if anything. Returns the
    /// time until which calls to it wait (`None`: the error is the call's own business).
    pub async fn note(&self, error: &UpstreamError) -> Result<Option<i64>, StoreError> {
        let Some(verdict) = error.verdict() else {
            return Ok(None);
        };
        let upstream = error.upstream();
        let now = self.clock.now_ms();
        // A `Retry-After` of zero, or a date already past, asks for no wait at all: the
        // call failed like any other and is retried on its own schedule (counted as an
        // attempt), never at once and for ever.
        if let Verdict::SlowDown(Some(asked)) = verdict {
            if asked.until_ms(now) <= now {
                tracing::warn!(upstream = upstream.label(), error = %error,
                    "upstream asked to wait for no time; retried on the schedule");
                return Ok(None);
            }
        }
        let (until, credential_refused) =
            match verdict {
                Verdict::SlowDown(asked) => {
                    let longest = now + MAX_PAUSE.as_millis() as i64;
                    let until = asked
                        .map(|asked| asked.until_ms(now))
                        .unwrap_or(now + DEFAULT_PAUSE.as_millis() as i64);
                    if until > longest {
                        tracing::warn!(upstream = upstream.label(), asked_s = (until - now) / 1000,
                        "an upstream asked to wait longer than the maximum; waiting the maximum");
                    }
                    tracing::warn!(upstream = upstream.label(), wait_ms = until.min(longest) - now,
                    error = %error, "upstream asked to slow down: its deliveries wait");
                    (until.min(longest).max(now), false)
                }
                Verdict::CredentialRefused => {
                    self.log_refused(upstream, error, now);
                    // Deliveries wait for the next probe. The broker is called by requests,
                    // each of them a probe of its own: they are not held back.
                    let probe_at = match upstream {
                        Upstream::InstantConnect => now,
                        _ => now + PROBE_EVERY.as_millis() as i64,
                    };
                    (probe_at, true)
                }
            };
        let reason = error.to_string();
        self.store
            .pause_upstream(upstream.label(), until, credential_refused, &reason, now)
            .await?;
        self.refresh().await?;
        Ok(Some(until))
    }

    /// A call to `upstream` succeeded (a probe, or a request to the broker): a refused
    /// credential works again, and a wait asked for is over.
    pub async fn works_again(&self, upstream: Upstream) -> Result<(), StoreError> {
        let paused = self
            .known
            .lock()
            .expect("not poisoned")
            .contains_key(&upstream);
        if paused {
            tracing::info!(
                upstream = upstream.label(),
                "the upstream works again; deliveries resume"
            );
            self.store
                .resume_upstream(upstream.label(), self.clock.now_ms())
                .await?;
            self.refresh().await?;
        }
        Ok(())
    }

    /// Makes the probes of the refused credentials due now, rather than when a previous run
    /// planned them: the usual fix of a refused token is a new one and a restart.
    pub async fn probe_refused_now(&self) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let refused: Vec<UpstreamPause> = self
            .refresh()
            .await?
            .into_iter()
            .filter(UpstreamPause::credential_refused)
            .collect();
        for pause in &refused {
            self.store.probe_upstream_now(&pause.upstream, now).await?;
        }
        self.refresh().await?;
        Ok(())
    }

    /// Until when calls to `upstream` wait, if they do, as last known here.
    pub fn paused_until(&self, upstream: Upstream) -> Option<i64> {
        let now = self.clock.now_ms();
        self.known
            .lock()
            .expect("not poisoned")
            .get(&upstream)
            .map(|pause| pause.paused_until)
            .filter(|until| *until > now)
    }

    /// The upstreams whose credential is refused, as last known here.
    pub fn refused_credentials(&self) -> Vec<Upstream> {
        self.known
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|(_, pause)| pause.credential_refused())
            .map(|(upstream, _)| *upstream)
            .collect()
    }

    /// Reads the pauses recorded in the database (by any instance); returns them.
    pub async fn refresh(&self) -> Result<Vec<UpstreamPause>, StoreError> {
        let pauses = self.store.upstream_pauses().await?;
        let known = pauses
            .iter()
            .filter_map(|pause| Some((Upstream::parse(&pause.upstream)?, pause.clone())))
            .collect();
        *self.known.lock().expect("not poisoned") = known;
        Ok(pauses)
    }

    /// A refused credential is logged once, then at most once per [`PROBE_EVERY`].
    fn log_refused(&self, upstream: Upstream, error: &UpstreamError, now: i64) {
        let mut logged = self.logged.lock().expect("not poisoned");
        let last = logged.get(&upstream).copied();
        if last.is_none_or(|last| now - last >= PROBE_EVERY.as_millis() as i64) {
            logged.insert(upstream, now);
            tracing::error!(upstream = upstream.label(), error = %error,
                "the upstream refuses icbridge's credential: its deliveries wait (pending) until it works again");
        }
    }
}
