//! A desk's business hours, decided here: weekly opening times in the desk's time zone
//! (daylight saving included, from the IANA database bundled with `jiff`), dates it is
//! closed, and what the desk does and says to a message that needs a meeting while it is
//! closed (`after_hours`: queue it or make the meeting; the out-of-hours texts).

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::customers::texts;
use crate::domain::{ReplyTemplate, TemplateError, TextKind, TextValues};

/// How far ahead the next opening is looked for: a desk closed longer than this has none.
const LOOK_AHEAD_DAYS: i64 = 366;

#[derive(Debug, Clone)]
pub struct OpeningHours {
    zone_name: String,
    zone: TimeZone,
    /// (day, opens, closes); empty: always open.
    weekly: Vec<(Weekday, Time, Time)>,
    closed: Vec<Date>,
}

/// The same hours: the zone is known by its name.
impl PartialEq for OpeningHours {
    fn eq(&self, other: &Self) -> bool {
        self.zone_name == other.zone_name
            && self.weekly == other.weekly
            && self.closed == other.closed
    }
}

impl Eq for OpeningHours {}

/// A setting that cannot be read: the key and why.
pub type HoursError = (&'static str, String);

impl OpeningHours {
    /// Open at every hour of every day.
    pub fn always() -> Self {
        Self {
            zone_name: "UTC".into(),
            zone: TimeZone::UTC,
            weekly: Vec::new(),
            closed: Vec::new(),
        }
    }

    /// `timezone` (IANA, e.g. `Europe/Berlin`), `hours` like `mon-fri 08:00-18:00` or
    /// `sat,sun 10:00-12:00` (none: always open), `closed` dates like `2026-12-25`.
    pub fn parse(
        timezone: Option<&str>,
        hours: &[String],
        closed: &[String],
    ) -> Result<Self, HoursError> {
        let zone_name = timezone.unwrap_or("UTC").trim().to_string();
        let zone = TimeZone::get(&zone_name).map_err(|_| {
            (
                "timezone",
                format!("{zone_name:?} is not an IANA time zone (e.g. \"Europe/Berlin\")"),
            )
        })?;
        let mut weekly = Vec::new();
        for line in hours {
            weekly.extend(parse_line(line).map_err(|reason| ("hours", reason))?);
        }
        let closed = closed
            .iter()
            .map(|raw| {
                raw.trim()
                    .parse::<Date>()
                    .map_err(|_| ("closed", format!("{raw:?} is not a date like 2026-12-25")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            zone_name,
            zone,
            weekly,
            closed,
        })
    }

    /// Open at every hour of every day (no `hours`, no `closed` dates).
    pub fn is_always_open(&self) -> bool {
        self.weekly.is_empty() && self.closed.is_empty()
    }

    /// Whether `now_ms` (Unix ms) falls on one of the `closed` dates, in the desk's zone.
    pub fn is_closed_date(&self, now_ms: i64) -> bool {
        Timestamp::from_millisecond(now_ms).is_ok_and(|now| {
            self.closed
                .contains(&now.to_zoned_datetime(self.zone.clone()).date())
        })
    }

    /// Whether the desk is open at `now_ms` (Unix ms).
    pub fn is_open(&self, now_ms: i64) -> bool {
        let Ok(now) = Timestamp::from_millisecond(now_ms) else {
            return false;
        };
        let local = now.to_zoned_datetime(self.zone.clone());
        if self.closed.contains(&local.date()) {
            return false;
        }
        if self.weekly.is_empty() {
            return true;
        }
        let time = local.time();
        self.weekly
            .iter()
            .any(|(day, opens, closes)| *day == local.weekday() && *opens <= time && time < *closes)
    }

    /// When the desk next opens after `now_ms` (Unix ms), if it is closed now and opens
    /// within a year.
    pub fn next_opening(&self, now_ms: i64) -> Option<i64> {
        if self.is_open(now_ms) {
            return None;
        }
        let now = Timestamp::from_millisecond(now_ms).ok()?;
        let today = now.to_zoned_datetime(self.zone.clone()).date();
        for offset in 0..LOOK_AHEAD_DAYS {
            let date = today.checked_add(offset.days()).ok()?;
            if self.closed.contains(&date) {
                continue;
            }
            let mut openings: Vec<i64> = if self.weekly.is_empty() {
                // Always open, except on closed dates: it opens at midnight.
                vec![self.instant(date, Time::midnight())?]
            } else {
                self.weekly
                    .iter()
                    .filter(|(day, _, _)| *day == date.weekday())
                    .filter_map(|(_, opens, _)| self.instant(date, *opens))
                    .collect()
            };
            openings.sort_unstable();
            if let Some(opening) = openings.into_iter().find(|at| *at > now_ms) {
                return Some(opening);
            }
        }
        None
    }

    /// `Mon 30 Mar 08:00 (Europe/Berlin)`: an instant in the desk's zone, for customers.
    pub fn local_time(&self, at_ms: i64) -> String {
        match Timestamp::from_millisecond(at_ms) {
            Ok(at) => format!(
                "{} ({})",
                at.to_zoned_datetime(self.zone.clone())
                    .strftime("%a %-d %b %H:%M"),
                self.zone_name
            ),
            Err(_) => String::new(),
        }
    }

    /// A local time of a date as Unix ms; a time that does not exist that day (the hour
    /// skipped when clocks go forward) is taken as the one just after it.
    fn instant(&self, date: Date, time: Time) -> Option<i64> {
        let zoned = date
            .to_datetime(time)
            .to_zoned_datetime(self.zone.clone())
            .ok()?;
        Some(zoned.timestamp().as_millisecond())
    }
}

/// `mon-fri 08:00-18:00`, `sat,sun 10:00-12:00`, `sun 00:00-24:00`.
fn parse_line(line: &str) -> Result<Vec<(Weekday, Time, Time)>, String> {
    let bad = || format!("{line:?} is not like \"mon-fri 08:00-18:00\"");
    let (days, times) = line.trim().split_once(' ').ok_or_else(bad)?;
    let (opens, closes) = times.trim().split_once('-').ok_or_else(bad)?;
    let opens = parse_time(opens).ok_or_else(bad)?;
    let closes = parse_time(closes).ok_or_else(bad)?;
    if closes <= opens {
        return Err(format!(
            "{line:?}: closes before it opens (write times past midnight as a second range)"
        ));
    }
    let mut parsed = Vec::new();
    for part in days.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (
                    parse_day(first).ok_or_else(bad)?,
                    parse_day(last).ok_or_else(bad)?,
                );
                let mut day = first;
                loop {
                    parsed.push((day, opens, closes));
                    if day == last {
                        break;
                    }
                    day = day.next();
                }
            }
            None => parsed.push((parse_day(part).ok_or_else(bad)?, opens, closes)),
        }
    }
    Ok(parsed)
}

fn parse_day(raw: &str) -> Option<Weekday> {
    Some(match raw.trim().to_ascii_lowercase().as_str() {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    })
}

/// `08:00`; `24:00` is the end of the day.
fn parse_time(raw: &str) -> Option<Time> {
    let raw = raw.trim();
    if raw == "24:00" {
        return Some(Time::MAX);
    }
    let (hour, minute) = raw.split_once(':')?;
    Time::new(hour.parse().ok()?, minute.parse().ok()?, 0, 0).ok()
}

/// A `[[desk]]` entry's keys about hours, as written.
pub(super) struct HoursConfig<'a> {
    pub timezone: Option<&'a str>,
    pub hours: &'a [String],
    pub closed: &'a [String],
    pub after_hours: Option<&'a str>,
    /// `texts.after_hours` and `texts.closed`.
    pub after_hours_text: Option<&'a str>,
    pub closed_text: Option<&'a str>,
}

/// What a desk does with a message that needs a meeting while it is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterHours {
    /// No meeting: the conversation waits, and the desk gets it when it opens.
    Queue,
    /// The meeting is made as usual; the customer is told when the desk opens.
    Meeting,
}

impl AfterHours {
    fn parse(raw: Option<&str>) -> Option<Self> {
        match raw.map(str::trim) {
            None | Some("queue") => Some(AfterHours::Queue),
            Some("meeting") => Some(AfterHours::Meeting),
            Some(_) => None,
        }
    }

    fn text_kind(self) -> TextKind {
        match self {
            AfterHours::Queue => TextKind::OutOfHours,
            AfterHours::Meeting => TextKind::OutOfHoursWithLink,
        }
    }

    /// The wording of a desk that words none itself: (`after_hours`, `closed`).
    fn default_texts(self) -> (&'static str, &'static str) {
        match self {
            AfterHours::Queue => (texts::QUEUED_AFTER_HOURS, texts::QUEUED_ON_CLOSED_DATE),
            AfterHours::Meeting => (texts::LINK_AFTER_HOURS, texts::LINK_ON_CLOSED_DATE),
        }
    }
}

/// A desk's hours and what it does and says outside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OutOfHoursPolicy {
    pub(super) hours: OpeningHours,
    after_hours: AfterHours,
    /// The text out of hours, and on closed dates.
    text: ReplyTemplate,
    closed_text: ReplyTemplate,
}

impl OutOfHoursPolicy {
    pub(super) fn always_open() -> Self {
        let (text, closed) = AfterHours::Queue.default_texts();
        let parse =
            |raw| ReplyTemplate::parse_as(raw, TextKind::OutOfHours).expect("valid default");
        Self {
            hours: OpeningHours::always(),
            after_hours: AfterHours::Queue,
            text: parse(text),
            closed_text: parse(closed),
        }
    }

    /// A desk's hours and out-of-hours texts as written; a refusal names the key.
    pub(super) fn configure(config: &HoursConfig<'_>) -> Result<Self, (&'static str, String)> {
        let hours = OpeningHours::parse(config.timezone, config.hours, config.closed)?;
        let after_hours = AfterHours::parse(config.after_hours).ok_or((
            "after_hours",
            "must be \"queue\" or \"meeting\"".to_string(),
        ))?;
        let (default_text, default_closed) = after_hours.default_texts();
        let template = |key: &'static str, raw: &str| {
            ReplyTemplate::parse_as(raw, after_hours.text_kind()).map_err(|e| {
                let reason = match e {
                    TemplateError::MissingGuestUrl => format!(
                        "{e}: with `after_hours = \"meeting\"` the customer gets the link out of hours"
                    ),
                    e => e.to_string(),
                };
                (key, reason)
            })
        };
        let text = template(
            "texts.after_hours",
            config.after_hours_text.unwrap_or(default_text),
        )?;
        let closed_text = match (config.closed_text, config.after_hours_text) {
            (Some(closed), _) => template("texts.closed", closed)?,
            // A desk that words its out-of-hours text words its holidays the same way.
            (None, Some(_)) => text.clone(),
            (None, None) => template("texts.closed", default_closed)?,
        };
        Ok(Self {
            hours,
            after_hours,
            text,
            closed_text,
        })
    }

    /// `None` while the desk is open at `now` (Unix ms); else what it does and says.
    pub(super) fn at(&self, now: i64) -> Option<OutOfHours> {
        if self.hours.is_open(now) {
            return None;
        }
        let opens_at = self.hours.next_opening(now);
        let text = if self.hours.is_closed_date(now) {
            &self.closed_text
        } else {
            &self.text
        };
        Some(OutOfHours {
            after_hours: self.after_hours,
            opens_at,
            opens_at_text: opens_at
                .map(|at| self.hours.local_time(at))
                .unwrap_or_else(|| "later".to_string()),
            text: text.clone(),
        })
    }
}

/// A message that needs a meeting, at a time its desk is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfHours {
    pub after_hours: AfterHours,
    /// The next opening (Unix ms), if within a year.
    pub opens_at: Option<i64>,
    /// The opening as the customer reads it, in the desk's zone.
    pub(super) opens_at_text: String,
    text: ReplyTemplate,
}

impl OutOfHours {
    /// The customer's text: `guest_url` is the link with `after_hours = "meeting"`.
    pub fn text(&self, desk: &str, customer_name: Option<&str>, guest_url: &str) -> String {
        self.text.render(TextValues {
            guest_url,
            customer_name,
            desk,
            opens_at: &self.opens_at_text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> i64 {
        rfc3339.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn berlin() -> OpeningHours {
        OpeningHours::parse(
            Some("Europe/Berlin"),
            &["mon-fri 08:00-18:00".into(), "sat 09:00-12:00".into()],
            &["2026-12-25".into()],
        )
        .unwrap()
    }

    #[test]
    fn opening_hours_follow_daylight_saving_time() {
        let hours = berlin();
        // Friday 27 March 2026, CET (UTC+1): 07:30 UTC is 08:30 in Berlin.
        assert!(hours.is_open(at("2026-03-27T07:30:00Z")));
        assert!(!hours.is_open(at("2026-03-27T06:30:00Z")));
        // Monday 30 March, CEST (UTC+2): 06:30 UTC is 08:30 in Berlin.
        assert!(hours.is_open(at("2026-03-30T06:30:00Z")));
        assert!(!hours.is_open(at("2026-03-30T16:30:00Z")));
        // Saturday evening: next opening Monday 08:00 CEST, 06:00 UTC.
        let next = hours.next_opening(at("2026-03-28T20:00:00Z")).unwrap();
        assert_eq!(next, at("2026-03-30T06:00:00Z"));
        assert_eq!(hours.local_time(next), "Mon 30 Mar 08:00 (Europe/Berlin)");
        assert_eq!(hours.next_opening(at("2026-03-30T06:30:00Z")), None);
    }

    #[test]
    fn closed_dates_are_closed_all_day() {
        let hours = berlin();
        // Friday 25 December 2026, 10:00 in Berlin.
        assert!(!hours.is_open(at("2026-12-25T09:00:00Z")));
        assert_eq!(
            hours.next_opening(at("2026-12-25T09:00:00Z")),
            Some(at("2026-12-26T08:00:00Z"))
        );
        let always = OpeningHours::parse(None, &[], &["2026-12-25".into()]).unwrap();
        assert!(always.is_open(at("2026-12-24T23:59:00Z")));
        assert!(!always.is_open(at("2026-12-25T12:00:00Z")));
        assert_eq!(
            always.next_opening(at("2026-12-25T12:00:00Z")),
            Some(at("2026-12-26T00:00:00Z"))
        );
    }

    #[test]
    fn bad_settings_name_their_key() {
        assert_eq!(
            OpeningHours::parse(Some("Mars/Olympus"), &[], &[])
                .unwrap_err()
                .0,
            "timezone"
        );
        for bad in [
            "mon-fri",
            "someday 08:00-18:00",
            "mon 18:00-08:00",
            "mon 25:00-26:00",
        ] {
            assert_eq!(
                OpeningHours::parse(None, &[bad.into()], &[]).unwrap_err().0,
                "hours",
                "{bad}"
            );
        }
        assert_eq!(
            OpeningHours::parse(None, &[], &["25.12.2026".into()])
                .unwrap_err()
                .0,
            "closed"
        );
        let night = OpeningHours::parse(None, &["sun 20:00-24:00".into()], &[]).unwrap();
        assert!(night.is_open(at("2026-03-29T23:59:00Z")));
    }
}
