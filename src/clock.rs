//! Wall-clock time as stored: Unix milliseconds.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub fn now_ms() -> i64 {
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

fn to_datetime(ms: i64) -> OffsetDateTime {
    // Whole seconds: sub-second precision means nothing to a link's expiry.
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Unix milliseconds of an RFC 3339 time (`2026-11-20T15:03:10.000Z`), if it is one.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}
