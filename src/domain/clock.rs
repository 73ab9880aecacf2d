//! Wall-clock time as icbridge stores it (Unix milliseconds), from a clock that tests can
//! set and move: leases, retries, expiries and windows are decided by it, so a test
//! advances time instead of waiting for it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Clone, Debug)]
pub struct Clock {
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    System,
    /// Stands still until moved (tests).
    Manual(Arc<AtomicI64>),
    /// The system's clock, moved ahead by an offset (the sandbox's "two days later").
    Ahead(Arc<AtomicI64>),
}

impl Clock {
    pub fn system() -> Self {
        Self { kind: Kind::System }
    }

    /// A clock that stands at `now_ms` until it is moved with [`Clock::advance`].
    pub fn manual(now_ms: i64) -> Self {
        Self {
            kind: Kind::Manual(Arc::new(AtomicI64::new(now_ms))),
        }
    }

    /// The system's clock, which [`Clock::advance`] moves ahead.
    pub fn movable() -> Self {
        Self {
            kind: Kind::Ahead(Arc::new(AtomicI64::new(0))),
        }
    }

    pub fn now_ms(&self) -> i64 {
        match &self.kind {
            Kind::System => system_now_ms(),
            Kind::Manual(now) => now.load(Ordering::SeqCst),
            Kind::Ahead(offset) => system_now_ms() + offset.load(Ordering::SeqCst),
        }
    }

    /// Whether [`Clock::advance`] can move this clock.
    pub fn is_movable(&self) -> bool {
        !matches!(self.kind, Kind::System)
    }

    /// Puts a manual clock at `now_ms` (tests that need a given day and hour).
    pub fn set(&self, now_ms: i64) {
        let Kind::Manual(value) = &self.kind else {
            panic!("only a manual clock can be set");
        };
        value.store(now_ms, Ordering::SeqCst);
    }

    /// Moves a manual or movable clock forward. The system's clock cannot be moved.
    pub fn advance(&self, by: Duration) {
        let (Kind::Manual(value) | Kind::Ahead(value)) = &self.kind else {
            panic!("only a manual or movable clock can be moved");
        };
        value.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

fn system_now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// `2026-11-20T16:02:41Z`, for APIs.
pub fn rfc3339(ms: i64) -> String {
    to_datetime(ms)
        .format(&Rfc3339)
        .expect("any instant formats")
}

/// `2026-11-20 16:02 UTC`, for people.
pub fn human(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    to_datetime(ms)
        .format(&format)
        .expect("any instant formats")
}

/// Unix milliseconds of an RFC 3339 time (`2026-11-20T15:03:10.000Z`), if it is one.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}

fn to_datetime(ms: i64) -> OffsetDateTime {
    // Whole seconds: sub-second precision means nothing to a link's expiry.
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = Clock::manual(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.clone().advance(Duration::from_secs(2));
        assert_eq!(clock.now_ms(), 3_000);
    }
}
