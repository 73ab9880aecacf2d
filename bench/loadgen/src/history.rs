//! A year of a support desk's history, written straight into a fresh icbridge database
//! (`--fill-history`), so that the benchmark can measure icbridge on a full database.
//!
//! What is written is what icbridge itself writes for such a year (see `src/store`), with the
//! values its code puts in each column: walk-in conversations (a customer's message opens
//! one, its meeting, the experts' notification and the customer's link, an expert takes it,
//! they write back and forth, an expert closes it, later in the year the customer is asked
//! for a rating), booked consultations, opt-outs, exports, and Webex Connect's delivery
//! receipts. icbridge is configured as a desk that answers through Webex Connect would
//! configure it: `ICB_REPLY_MODE=connect`, `ICB_PUBLIC_URL` (own links), three desks, and
//! `ICB_SURVEY` turned on halfway through the year. No event subscription: `events` stays
//! empty.
//!
//! How: the history is planned first (customers, and when each conversation, booking,
//! opt-out and export happens), from the size alone with a seeded generator, so that every
//! run writes the same history and [`sample_customers`] names customers of it without
//! filling anything. Then it is told episode by episode in time order, on a thread of its
//! own, each episode with a generator of its own. An episode's rows wait in a queue per
//! table, ordered by time, until no later episode can write anything earlier: so every table
//! is written in time order and its ids grow with time, as a real desk's do. A row that names
//! another's id (a receipt its delivery, a survey the message that answered it) gets it once
//! that row has one. The writer takes the rows in chunks, one transaction each, the tables in
//! the order their foreign keys need: multi-row INSERTs on SQLite, COPY on PostgreSQL.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};
use std::error::Error;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, QueryBuilder, Sqlite};
use tokio::sync::mpsc;

/// Walk-in conversations of the default history; every other volume scales with them.
pub const DEFAULT_CONVERSATIONS: u64 = 200_000;

/// How much history to write.
#[derive(Debug, Clone)]
pub struct HistorySize {
    /// Walk-in conversations over the year (a booked consultation's conversation comes on
    /// top of them).
    pub conversations: u64,
}

impl Default for HistorySize {
    fn default() -> Self {
        Self {
            conversations: DEFAULT_CONVERSATIONS,
        }
    }
}

// --- Volumes. Counts are the default history's and scale with its conversations. ---

/// Each customer opens two conversations in the year on average: every customer one, the
/// rest spread at random (so some open one, some several).
const CONVERSATIONS_PER_CUSTOMER: u64 = 2;
/// Customers beyond this many would need numbers of more digits (see [`Customer::number`]).
const MAX_CUSTOMERS: u64 = 10_000_000;
/// The newest conversations are still open; a few of those wait for their desk to open.
const OPEN_CONVERSATIONS: u64 = 50;
const WAITING_CONVERSATIONS: u64 = 4;
/// Booked consultations, each with a conversation and a meeting of its own.
const APPOINTMENTS: u64 = 20_000;
/// Customers' data exported on request (the audit log's other entries).
const EXPORTS: u64 = 1_000;
/// Receipts Webex Connect sent for messages icbridge did not send (a flow's own replies).
const STRAY_RECEIPTS: u64 = 1_000;
/// Customers who texted STOP after their last conversation.
const OPT_OUT_SHARE: f64 = 0.02;
/// A customer's conversation goes to their usual desk; the others to any desk.
const HOME_DESK_SHARE: f64 = 0.8;
/// Messages of a conversation besides the first, alternately the expert's and the
/// customer's (with the first: 7 to 13, 10 on average; a rating adds one).
const FOLLOW_UPS: (i64, i64) = (6, 12);
/// Customers' later messages that carry a photo or a document (half of them without text).
const MEDIA_SHARE: f64 = 0.03;
/// Deliveries given up (`dead`); the notifications are all delivered.
const DEAD_SHARE: f64 = 0.0005;
/// Customers who open their link (the experts always do).
const GUEST_OPENS_LINK: f64 = 0.9;
/// Closes by an administrator rather than the conversation's expert.
const ADMINISTRATOR_CLOSES: f64 = 0.02;
/// With the survey on, conversations that icbridge closes when their meeting ended.
const MEETING_ENDED_CLOSES: f64 = 0.1;
/// `ICB_SURVEY` was turned on halfway through the year: conversations closed since were
/// asked for a rating (about half of all), and this share of those answered.
const SURVEY_FROM: i64 = YEAR / 2;
const SURVEY_ANSWERED: f64 = 0.6;
/// Appointments cancelled before their slot.
const APPOINTMENTS_CANCELLED: f64 = 0.05;

// --- Times, in milliseconds. ---

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const YEAR: i64 = 365 * DAY;
/// The newest conversation opened this long before the end of the year at least.
const NEWEST_CONVERSATION: i64 = 5 * MINUTE;
/// A closed conversation closed this long after it opened at most (an expert's close within
/// the hour, icbridge's a little after the link ran out): younger ones are still open.
const LONGEST_CONVERSATION: i64 = 65 * MINUTE;
/// `ICB_LINK_TTL`; a message later than 5 minutes before the end gets a new meeting, so
/// conversations' messages stay before [`LAST_MESSAGE`].
const LINK_TTL: i64 = HOUR;
const LAST_MESSAGE: i64 = 50 * MINUTE;
/// `ICB_OUTBOX_LEASE`: a sent row's `next_attempt_at` is its claim plus this.
const OUTBOX_LEASE: i64 = 30 * SECOND;
/// `ICB_APPOINTMENT_REMINDER` and `ICB_APPOINTMENT_EARLY_JOIN`.
const APPOINTMENT_REMINDER: i64 = 15 * MINUTE;
const APPOINTMENT_EARLY_JOIN: i64 = 10 * MINUTE;
/// `meeting_starts` older than a day are purged: only the last day's are kept.
const MEETING_STARTS_KEPT: i64 = DAY;

// --- Writing. ---

/// Rows handed to the writer at a time, in one transaction.
const CHUNK_ROWS: usize = 100_000;
/// Chunks ready for the writer while it writes one.
const CHUNKS_AHEAD: usize = 2;
/// SQLite's limit on a statement's parameters (`SQLITE_MAX_VARIABLE_NUMBER`).
const SQLITE_MAX_VARIABLES: usize = 32_766;
/// Rows per multi-row INSERT on SQLite (measured: 100 a little faster than 500).
const SQLITE_ROWS_PER_STATEMENT: usize = 100;
/// Bytes of COPY data sent to PostgreSQL at a time.
const COPY_BUFFER: usize = 1 << 20;
/// The migration that must have run: the history is written for the schema it completes.
/// (The next, `history_indexes`, adds only indexes: `bench/run --history` fills the database
/// as the previous version left it and times the upgrade.)
const LAST_MIGRATION: i64 = 20261208000028;

/// The seed of every generator of the history.
const SEED: u64 = 0x1cb_2026_0039;

/// What was written.
pub struct Filled {
    /// Rows written per table.
    pub rows: Vec<(&'static str, u64)>,
    pub took: Duration,
    /// SQLite: the database file's size once filled.
    pub database_bytes: Option<u64>,
}

impl Filled {
    fn count(&self, table: &str) -> u64 {
        self.rows
            .iter()
            .find(|(name, _)| *name == table)
            .map_or(0, |(_, count)| *count)
    }
}

impl fmt::Display for Filled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: u64 = self.rows.iter().map(|(_, count)| count).sum();
        writeln!(
            f,
            "history written in {:.1} s: {total} rows",
            self.took.as_secs_f64()
        )?;
        for (table, count) in &self.rows {
            writeln!(f, "  {table:<20} {count:>10}")?;
        }
        if let Some(bytes) = self.database_bytes {
            let messages = self.count("messages").max(1);
            writeln!(
                f,
                "SQLite file: {:.1} MiB, {} bytes per message",
                bytes as f64 / (1 << 20) as f64,
                bytes / messages
            )?;
        }
        Ok(())
    }
}

/// Fills `url` (`sqlite://…` or `postgres://…`), which icbridge has migrated and which holds
/// nothing yet, with a year of history ending at `now_ms`.
pub async fn fill(url: &str, size: &HistorySize, now_ms: i64) -> Result<Filled, Box<dyn Error>> {
    let started = Instant::now();
    let mut target = Target::open(url).await?;
    target.check_fresh().await?;
    let (chunks, mut ready) = mpsc::channel(CHUNKS_AHEAD);
    let conversations = size.conversations;
    // The story is told on a thread of its own while the writer writes what it told so far.
    let teller = std::thread::spawn(move || {
        let plan = Plan::new(conversations);
        Story::new(&plan, now_ms, chunks).tell()
    });
    let mut written = [0u64; TABLE_COUNT];
    let outcome = async {
        while let Some(chunk) = ready.recv().await {
            target.write(&chunk).await?;
            for (count, rows) in written.iter_mut().zip(&chunk.tables) {
                *count += rows.count as u64;
            }
        }
        Ok::<_, sqlx::Error>(())
    }
    .await;
    // A writer that failed stops the teller (its chunks have nowhere to go).
    drop(ready);
    let told = teller
        .join()
        .map_err(|_| "the history's generator panicked")?;
    outcome?;
    let last_ids = told.map_err(|_| "the history's generator stopped early")?;
    let database_bytes = target.finish(&last_ids).await?;
    let rows = TABLES
        .iter()
        .zip(written)
        .filter(|(table, _)| target.writes(table))
        .map(|(table, count)| (table.name, count))
        .collect();
    Ok(Filled {
        rows,
        took: started.elapsed(),
        database_bytes,
    })
}

/// `n` customers of the history as their SMS number (`+1646…`), spread over all of them:
/// customers with two conversations or more (messages, deliveries and receipts with them),
/// none open, who did not opt out.
pub fn sample_customers(size: &HistorySize, n: usize) -> Vec<String> {
    let plan = Plan::new(size.conversations);
    let mut closed = vec![0u32; plan.customers.len()];
    let mut excluded = vec![false; plan.customers.len()];
    for visit in &plan.walk_ins {
        match visit.state {
            State::Closed => closed[visit.customer] += 1,
            State::Open | State::Waiting => excluded[visit.customer] = true,
        }
    }
    for booking in plan.bookings.iter().filter(|b| b.open_at_end()) {
        excluded[booking.customer] = true;
    }
    for opt_out in &plan.opt_outs {
        excluded[opt_out.customer] = true;
    }
    let eligible: Vec<usize> = (0..plan.customers.len())
        .filter(|&customer| closed[customer] >= 2 && !excluded[customer])
        .collect();
    spread(&eligible, n)
        .map(|customer| plan.customers[customer].sms())
        .collect()
}

/// `n` closed walk-in conversations of the history ending at `now_ms` (their ids), spread
/// over the year: each with its messages, meeting and deliveries, for transcripts.
pub fn sample_conversations(size: &HistorySize, now_ms: i64, n: usize) -> Vec<String> {
    let plan = Plan::new(size.conversations);
    let start = now_ms - YEAR;
    let closed: Vec<usize> = (0..plan.walk_ins.len())
        .filter(|&index| plan.walk_ins[index].state == State::Closed)
        .collect();
    spread(&closed, n)
        .map(|index| walk_in_id(start + plan.walk_ins[index].at, index).1)
        .collect()
}

/// `n` of `items`, evenly spaced.
fn spread<T: Copy>(items: &[T], n: usize) -> impl Iterator<Item = T> + '_ {
    let n = n.min(items.len());
    (0..n).map(move |k| items[k * items.len() / n])
}

// --- A small deterministic generator (splitmix64): every run tells the same history. ---

#[derive(Clone)]
struct Rng(u64);

/// What an episode's generator is for (its seed's other half is the episode's number).
#[derive(Clone, Copy)]
enum Stream {
    Plan = 1,
    WalkIn,
    Booking,
    OptOut,
    StrayReceipt,
}

impl Rng {
    /// The generator of one episode: it tells the same story in every run, whatever else
    /// the history holds.
    fn of(stream: Stream, index: usize) -> Self {
        let mut rng = Rng(SEED ^ (stream as u64).wrapping_mul(0xA076_1D64_78BD_642F));
        rng.0 ^= mix64(index as u64);
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    /// In `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// In `low..high`.
    fn between(&mut self, low: i64, high: i64) -> i64 {
        low + self.below((high - low).max(1) as u64) as i64
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// One of `items`, each as likely as its weight.
    fn weighted<T: Copy>(&mut self, items: &[(T, u64)]) -> T {
        let total: u64 = items.iter().map(|(_, weight)| weight).sum();
        let mut at = self.below(total);
        for (item, weight) in items {
            if at < *weight {
                return *item;
            }
            at -= weight;
        }
        items[items.len() - 1].0
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut bytes = [0u8; N];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes()[..chunk.len()]);
        }
        bytes
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// splitmix64's finaliser: a bijection of `u64`, so distinct inputs give distinct outputs.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

// --- Ids as icbridge and its upstreams make them. ---

/// Conversations, meetings, claims and appointments: UUIDv7, time-ordered (as
/// `bridge::new_id`).
fn uuid_v7(at_ms: i64, rng: &mut Rng) -> String {
    let mut bytes: [u8; 16] = rng.bytes();
    bytes[..6].copy_from_slice(&(at_ms as u64).to_be_bytes()[2..]);
    bytes[6] = 0x70 | (bytes[6] & 0x0f);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// Meeting subjects, Webex Connect's message ids: random UUIDs.
fn uuid_v4(rng: &mut Rng) -> String {
    let mut bytes: [u8; 16] = rng.bytes();
    bytes[6] = 0x40 | (bytes[6] & 0x0f);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// A Webex message id: base64 (no padding) of `ciscospark://us/MESSAGE/<uuid>`.
fn webex_message_id(rng: &mut Rng) -> String {
    let uri = format!("ciscospark://us/MESSAGE/{}", uuid_v4(rng));
    base64(uri.as_bytes(), BASE64)
}

/// The code of one of icbridge's own links: 16 random bytes, base64url.
fn link_code(rng: &mut Rng) -> String {
    base64(&rng.bytes::<16>(), BASE64_URL)
}

/// An Instant Connect short link's code.
fn short_code(rng: &mut Rng) -> String {
    (0..7).map(|_| *rng.pick(BASE64_URL) as char).collect()
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 without padding.
fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let bits = group.iter().enumerate().fold(0u32, |bits, (i, byte)| {
            bits | u32::from(*byte) << (16 - 8 * i)
        });
        for i in 0..=group.len() {
            out.push(alphabet[(bits >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

// --- Times as icbridge writes them in texts. ---

/// A UTC instant's calendar fields.
struct Civil {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    millisecond: i64,
    /// 0 for Monday.
    weekday: i64,
}

/// The calendar date of a Unix-millisecond instant (Howard Hinnant's `civil_from_days`).
fn civil(ms: i64) -> Civil {
    let days = ms.div_euclid(DAY);
    let in_day = ms.rem_euclid(DAY);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    Civil {
        year: year_of_era + era * 400 + i64::from(month <= 2),
        month,
        day: day_of_year - (153 * shifted_month + 2) / 5 + 1,
        hour: in_day / HOUR,
        minute: in_day % HOUR / MINUTE,
        second: in_day % MINUTE / SECOND,
        millisecond: in_day % SECOND,
        // 1970-01-01 was a Thursday.
        weekday: (days + 3).rem_euclid(7),
    }
}

/// `2026-11-20 16:02 UTC` (`clock::human`).
fn human(ms: i64) -> String {
    let t = civil(ms);
    format!(
        "{}-{:02}-{:02} {:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

/// `2026-11-20T16:02:44Z` (`clock::rfc3339`).
fn rfc3339(ms: i64) -> String {
    let t = civil(ms);
    format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// `2026-11-20T16:02:44.301Z`, as Webex Connect's receipts say when.
fn rfc3339_ms(ms: i64) -> String {
    let t = civil(ms);
    format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millisecond
    )
}

/// `Tue 1 Dec 09:00 (UTC)`: a time in a desk's zone, as customers read it.
fn local_time(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = civil(ms);
    format!(
        "{} {} {} {:02}:{:02} (UTC)",
        DAYS[t.weekday as usize],
        t.day,
        MONTHS[t.month as usize - 1],
        t.hour,
        t.minute
    )
}

// --- The desk: its desks, experts and customers. ---

/// A `[[desk]]`: its name, the business addresses it serves and its experts.
struct Desk {
    name: &'static str,
    sms: &'static str,
    whatsapp: &'static str,
    /// Its experts, `expert<n>@desk.example`.
    experts: std::ops::Range<u32>,
}

const DESKS: [Desk; 3] = [
    Desk {
        name: "default",
        sms: "56263",
        whatsapp: "a_155054536910425280",
        experts: 1..9,
    },
    Desk {
        name: "billing",
        sms: "+14155550100",
        whatsapp: "a_155054536910425281",
        experts: 9..13,
    },
    Desk {
        name: "clinic",
        sms: "56264",
        whatsapp: "a_155054536910425282",
        experts: 13..17,
    },
];
/// The desk with opening hours, where out-of-hours conversations wait.
const CLINIC: usize = 2;
/// How customers' conversations and bookings spread over the desks.
const DESK_SHARES: [(usize, u64); 3] = [(0, 50), (1, 30), (2, 20)];
const BOOKING_DESK_SHARES: [(usize, u64); 3] = [(0, 15), (1, 25), (2, 60)];

impl Desk {
    fn expert(&self, rng: &mut Rng) -> String {
        let n = rng.between(i64::from(self.experts.start), i64::from(self.experts.end));
        format!("expert{n}@desk.example")
    }
}

struct Customer {
    /// The number's digits (country code first).
    number: u64,
    whatsapp: bool,
    /// The name WhatsApp gives (SMS gives none).
    name: Option<String>,
    home_desk: usize,
}

impl Customer {
    /// Customer `i`'s number: +1 646 and seven digits, spread over the range (7,777,777 is
    /// prime to 10^7, so distinct customers get distinct numbers); far from the numbers
    /// the benchmark's own phases write from.
    fn number(i: u64) -> u64 {
        16_460_000_000 + i * 7_777_777 % MAX_CUSTOMERS
    }

    /// The number as SMS stores it (E.164).
    fn sms(&self) -> String {
        format!("+{}", self.number)
    }

    /// The number as its channel stores it: WhatsApp ids are the digits alone.
    fn address(&self) -> String {
        if self.whatsapp {
            self.number.to_string()
        } else {
            self.sms()
        }
    }

    /// `+1646•••1234`, as icbridge shows a number.
    fn masked(&self) -> String {
        let digits = self.number.to_string();
        let shown = digits.len().saturating_sub(7).min(4);
        format!("+{}•••{}", &digits[..shown], &digits[digits.len() - 4..])
    }
}

/// One customer writing to one desk: everything a conversation's rows say about who.
struct Party<'p> {
    customer: &'p Customer,
    desk: &'static Desk,
    /// The customer's number as stored.
    address: String,
    business: &'static str,
}

impl<'p> Party<'p> {
    fn new(plan: &'p Plan, customer: usize, desk: usize) -> Self {
        let customer = &plan.customers[customer];
        let desk = &DESKS[desk];
        Party {
            customer,
            desk,
            address: customer.address(),
            business: if customer.whatsapp {
                desk.whatsapp
            } else {
                desk.sms
            },
        }
    }

    fn whatsapp(&self) -> bool {
        self.customer.whatsapp
    }

    fn channel(&self) -> &'static str {
        if self.whatsapp() {
            "whatsapp"
        } else {
            "sms"
        }
    }

    /// `+1646•••1234 (Name)`, as the experts' notification names the customer.
    fn label(&self) -> String {
        match &self.customer.name {
            Some(name) => format!("{} ({})", self.customer.masked(), markdown(name)),
            None => self.customer.masked(),
        }
    }

    /// A text to the customer on their channel (`ReplySenders::reply`, no sender set: from
    /// the address they wrote to).
    fn text(&self, text: &str) -> String {
        if self.whatsapp() {
            format!(
                r#"{{"type":"whatsapp","app_id":{},"waid":{},"body":{}}}"#,
                js(self.business),
                js(&self.address),
                js(text)
            )
        } else {
            format!(
                r#"{{"type":"sms","from":{},"to":{},"content":{}}}"#,
                js(self.business),
                js(&self.address),
                js(text)
            )
        }
    }

    /// A booked consultation's text: on WhatsApp the approved template (the customer's
    /// 24-hour window is usually closed), by SMS the text itself.
    fn about_the_slot(&self, text: &str, template: &str, url: &str, when: &str) -> String {
        if !self.whatsapp() {
            return self.text(text);
        }
        let name = self.customer.name.as_deref().unwrap_or("there");
        json!({
            "type": "whatsapp_template", "app_id": self.business, "waid": self.address,
            "template": template,
            "parameters": {"appointment": when, "link": url, "name": name},
        })
        .to_string()
    }
}

// --- Texts. ---

const CUSTOMER_SENTENCES: &[&str] = &[
    "Hello, I would like to talk to someone about my last invoice.",
    "Hi, can I get a video call with an advisor today?",
    "The payment did not go through and I think I was charged twice.",
    "My prescription needs to be renewed before Friday.",
    "I have a question about the results of my blood test.",
    "The app keeps asking me to log in again.",
    "Could you explain the new prices to me?",
    "I moved house and need to update my address.",
    "My daughter has had a fever since yesterday evening.",
    "Is it possible to move my appointment to next week?",
    "I am not sure which form I have to fill in.",
    "Thanks, that helps a lot.",
    "Yes, I can see you now.",
    "The sound is a bit choppy on my side.",
    "I will send you a photo of the letter.",
    "Sorry, I was on the train.",
    "One more question about the refund.",
    "When will the money be back on my account?",
    "The rash looks a little better today.",
    "Do I need to bring anything to the next visit?",
    "Good morning, I got a letter I do not understand.",
    "Can you call me in ten minutes instead?",
    "It says my contract ends in March, is that right?",
    "Okay, I will try that and write back.",
];

const EXPERT_SENTENCES: &[&str] = &[
    "Hello, thanks for your message, I am looking into it now.",
    "Could you tell me the number on the top right of the invoice?",
    "I can see the double charge, the second one will be refunded.",
    "The refund takes three to five working days.",
    "Please join the video call with the link we sent you.",
    "I have renewed the prescription, you can pick it up tomorrow.",
    "Your results look fine, nothing to worry about.",
    "Let us keep an eye on the fever and talk again tomorrow.",
    "I have updated your address in our system.",
    "You do not need to fill in anything else.",
    "Is there anything else I can help you with?",
    "Thank you, have a good day.",
    "I moved your appointment to Tuesday at ten.",
    "Could you send a photo of the letter?",
    "The new prices apply from next month on.",
    "No problem, take your time.",
];

const NOTES: &[&str] = &[
    "Follow-up on the lab results",
    "Second opinion requested by the customer",
    "Contract renewal, bring the offer",
    "Check the healing of the wound",
    "Questions about the annual statement",
];

const FIRST_NAMES: &[&str] = &[
    "Alice", "Bruno", "Chen", "Dana", "Emre", "Fatima", "Greta", "Hugo", "Ines", "Jonas", "Keiko",
    "Luca", "Maya", "Nils", "Olga", "Pavel", "Rosa", "Sami", "Tara", "Yusuf",
];
const LAST_NAMES: &[&str] = &[
    "Example",
    "Berger",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Novak",
    "Okafor",
    "Petrov",
];

/// A text of `low` to `high` characters made of `sentences`.
fn text_of(rng: &mut Rng, sentences: &[&str], low: i64, high: i64) -> String {
    let length = rng.between(low, high + 1) as usize;
    let mut text = String::new();
    while text.len() < length {
        if !text.is_empty() {
            text.push(' ');
        }
        let sentence: &&str = rng.pick(sentences);
        text.push_str(sentence);
    }
    if text.len() > high as usize {
        // Cut between words (the sentences are ASCII).
        let cut = text[..high as usize].rfind(' ').unwrap_or(high as usize);
        text.truncate(cut);
    }
    text
}

/// A customer's message: 20 to 200 characters.
fn customer_text(rng: &mut Rng) -> String {
    text_of(rng, CUSTOMER_SENTENCES, 20, 200)
}

fn expert_text(rng: &mut Rng) -> String {
    text_of(rng, EXPERT_SENTENCES, 20, 200)
}

fn person_name(rng: &mut Rng) -> String {
    format!("{} {}", rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES))
}

/// A JSON string.
fn js(text: &str) -> String {
    serde_json::to_string(text).expect("strings serialise")
}

/// Text shown literally in Webex markdown (`expert_texts::escape`).
fn markdown(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\`*_{}[]()#+-!<>|~".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// A message in the conversation's thread (`Delivery::ThreadMessage`).
fn thread_message(markdown: &str) -> String {
    format!(r#"{{"type":"thread_message","markdown":{}}}"#, js(markdown))
}

/// A customer's later message as the experts' thread shows it.
fn customer_said(text: &str) -> String {
    thread_message(&format!("**Customer:**\n\n> {}", markdown(text)))
}

/// The experts' notification of a new meeting (`expert_texts::notification`): markdown, and
/// the card with its buttons. `heading` goes first (a booked consultation's time).
fn notification(
    party: &Party,
    text: &str,
    host_url: &str,
    expires_at: i64,
    heading: &str,
) -> String {
    let who = party.label();
    let expiry = human(expires_at);
    let channel = if party.whatsapp() { "WhatsApp" } else { "SMS" };
    let markdown_text = format!(
        "{heading}**Video consultation request** · {channel} · {who}\n\n> {}\n\n\
         **[Join as host]({host_url})** · link valid until {expiry}",
        markdown(text)
    );
    let others: Vec<&str> = DESKS
        .iter()
        .map(|desk| desk.name)
        .filter(|&name| name != party.desk.name)
        .collect();
    let choices: Vec<_> = others
        .iter()
        .map(|name| json!({"title": name, "value": name}))
        .collect();
    let submit = |title: &str, action: &str| json!({"type": "Action.Submit", "title": title, "data": {"action": action}});
    let card = json!({
        "contentType": "application/vnd.microsoft.card.adaptive",
        "content": {
            "type": "AdaptiveCard",
            "version": "1.2",
            "body": [
                {"type": "TextBlock", "text": "Video consultation request", "weight": "Bolder", "size": "Medium"},
                {"type": "FactSet", "facts": [
                    {"title": "Channel", "value": channel},
                    {"title": "Customer", "value": who},
                    {"title": "Link valid until", "value": expiry},
                ]},
                {"type": "TextBlock", "text": markdown(text), "wrap": true},
            ],
            "actions": [
                {"type": "Action.OpenUrl", "title": "Join as host", "url": host_url},
                submit("Take", "take"),
                submit("New link", "new_link"),
                submit("Add guest", "add_guest"),
                submit("Close", "close"),
                {"type": "Action.ShowCard", "title": "Transfer", "card": {
                    "type": "AdaptiveCard",
                    "body": [{"type": "Input.ChoiceSet", "id": "desk", "choices": choices, "value": others[0]}],
                    "actions": [submit("Transfer", "transfer")],
                }},
            ],
        },
    });
    json!({"type": "notification", "markdown": markdown_text, "card": card}).to_string()
}

// --- The plan: who does what when, from the size alone. ---

/// Times in the plan count from the start of the year (0) to its end ([`YEAR`]).
struct Plan {
    customers: Vec<Customer>,
    /// Conversations a customer's message opened, oldest first.
    walk_ins: Vec<WalkIn>,
    /// Booked consultations, by when they were booked.
    bookings: Vec<Booking>,
    opt_outs: Vec<OptOut>,
    exports: Vec<Export>,
    stray_receipts: Vec<i64>,
}

struct WalkIn {
    at: i64,
    customer: usize,
    desk: usize,
    state: State,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open,
    /// Open, waiting for its desk to open: no meeting yet.
    Waiting,
}

struct Booking {
    /// When it was booked.
    at: i64,
    customer: usize,
    desk: usize,
    starts_at: i64,
    minutes: i64,
    cancelled_at: Option<i64>,
    /// When its expert closes its conversation, after the slot.
    closes_at: i64,
}

impl Booking {
    /// Whether its conversation is still open at the end of the year.
    fn open_at_end(&self) -> bool {
        self.cancelled_at.is_none() && self.closes_at >= YEAR
    }
}

struct OptOut {
    at: i64,
    customer: usize,
    desk: usize,
}

struct Export {
    at: i64,
    customer: usize,
    /// The customer's conversations by then.
    conversations: usize,
}

/// One thing that happens, at its time: what it writes may go on for a while.
#[derive(Clone, Copy)]
enum Episode {
    WalkIn(usize),
    Booking(usize),
    OptOut(usize),
    Export(usize),
    StrayReceipt(usize),
}

impl Plan {
    fn new(conversations: u64) -> Self {
        let conversations = conversations.max(1);
        let at_size = |default: u64| {
            ((default * conversations + DEFAULT_CONVERSATIONS / 2) / DEFAULT_CONVERSATIONS).max(1)
        };
        let mut rng = Rng::of(Stream::Plan, 0);
        let customer_count = (conversations / CONVERSATIONS_PER_CUSTOMER).max(1);
        assert!(
            customer_count <= MAX_CUSTOMERS,
            "at most {MAX_CUSTOMERS} customers"
        );
        let customers: Vec<Customer> = (0..customer_count)
            .map(|i| {
                // Half SMS, half WhatsApp; WhatsApp gives most customers' names.
                let whatsapp = i % 2 == 1;
                Customer {
                    number: Customer::number(i),
                    whatsapp,
                    name: (whatsapp && rng.chance(0.9)).then(|| person_name(&mut rng)),
                    home_desk: rng.weighted(&DESK_SHARES),
                }
            })
            .collect();
        let customer_count = customer_count as usize;

        // Conversations at uniformly random times; every customer opens one, the others
        // go to customers at random.
        let mut times: Vec<i64> = (0..conversations)
            .map(|_| rng.between(0, YEAR - NEWEST_CONVERSATION))
            .collect();
        times.sort_unstable();
        let mut owners: Vec<usize> = (0..customer_count)
            .chain(
                (customer_count..conversations as usize)
                    .map(|_| rng.below(customer_count as u64) as usize),
            )
            .collect();
        owners.truncate(times.len());
        rng.shuffle(&mut owners);
        let open_from = times
            .len()
            .saturating_sub(at_size(OPEN_CONVERSATIONS) as usize);
        let mut walk_ins: Vec<WalkIn> = times
            .iter()
            .zip(owners)
            .enumerate()
            .map(|(index, (&at, customer))| {
                let desk = if rng.chance(HOME_DESK_SHARE) {
                    customers[customer].home_desk
                } else {
                    rng.weighted(&DESK_SHARES)
                };
                let open = index >= open_from || at > YEAR - LONGEST_CONVERSATION;
                WalkIn {
                    at,
                    customer,
                    desk,
                    state: if open { State::Open } else { State::Closed },
                }
            })
            .collect();
        // A few of the open ones came out of the clinic's hours and wait for it.
        let open_count = walk_ins.len() - open_from;
        let waiting = (at_size(WAITING_CONVERSATIONS) as usize).min(open_count);
        for k in 0..waiting {
            let visit = &mut walk_ins[open_from + k * open_count / waiting];
            visit.state = State::Waiting;
            visit.desk = CLINIC;
        }
        // At most one open conversation per customer and business address.
        let mut open_keys = HashSet::new();
        for visit in walk_ins.iter_mut().filter(|v| v.state != State::Closed) {
            while !open_keys.insert((visit.customer, visit.desk)) {
                visit.customer = rng.below(customer_count as u64) as usize;
            }
        }

        let mut bookings: Vec<Booking> = (0..at_size(APPOINTMENTS))
            .map(|_| {
                let at = rng.between(0, YEAR - HOUR);
                let lead = rng.between(DAY, 14 * DAY);
                // Slots start on the quarter hour.
                let starts_at = (at + lead).div_euclid(15 * MINUTE) * 15 * MINUTE + 15 * MINUTE;
                let minutes = *rng.pick(&[15i64, 30, 30, 45, 60]);
                let cancelled_at = rng
                    .chance(APPOINTMENTS_CANCELLED)
                    .then(|| rng.between(at + MINUTE, starts_at - HOUR))
                    .filter(|&at| at < YEAR);
                let closes_at = starts_at + minutes * MINUTE + rng.between(2 * MINUTE, 20 * MINUTE);
                let mut booking = Booking {
                    at,
                    customer: rng.below(customer_count as u64) as usize,
                    desk: rng.weighted(&BOOKING_DESK_SHARES),
                    starts_at,
                    minutes,
                    cancelled_at,
                    closes_at,
                };
                if booking.open_at_end() {
                    while !open_keys.insert((booking.customer, booking.desk)) {
                        booking.customer = rng.below(customer_count as u64) as usize;
                    }
                }
                booking
            })
            .collect();
        bookings.sort_by_key(|booking| booking.at);

        // Each customer's conversations (their times), for opt-outs and exports.
        let mut visits: Vec<Vec<(i64, usize)>> = vec![Vec::new(); customer_count];
        for visit in &walk_ins {
            visits[visit.customer].push((visit.at, visit.desk));
        }
        // STOP comes after the customer's last conversation (and its rating) is over, from
        // customers with no booking and nothing open.
        let mut unavailable: HashSet<usize> = bookings.iter().map(|b| b.customer).collect();
        unavailable.extend(open_keys.iter().map(|(customer, _)| *customer));
        let wanted = (customer_count as f64 * OPT_OUT_SHARE).round() as usize;
        let mut opt_outs = Vec::with_capacity(wanted);
        for _ in 0..wanted * 20 {
            if opt_outs.len() == wanted {
                break;
            }
            let customer = rng.below(customer_count as u64) as usize;
            let Some(&(last, desk)) = visits[customer].last() else {
                continue;
            };
            let at = last + 4 * HOUR + rng.between(0, 7 * DAY);
            if at < YEAR - 10 * MINUTE && unavailable.insert(customer) {
                opt_outs.push(OptOut { at, customer, desk });
            }
        }
        opt_outs.sort_by_key(|opt_out| opt_out.at);

        let mut exports: Vec<Export> = (0..at_size(EXPORTS))
            .map(|_| {
                let at = rng.between(0, YEAR - MINUTE);
                let customer = rng.below(customer_count as u64) as usize;
                let conversations = visits[customer].partition_point(|(time, _)| *time < at);
                Export {
                    at,
                    customer,
                    conversations,
                }
            })
            .collect();
        exports.sort_by_key(|export| export.at);
        let mut stray_receipts: Vec<i64> = (0..at_size(STRAY_RECEIPTS))
            .map(|_| rng.between(0, YEAR - MINUTE))
            .collect();
        stray_receipts.sort_unstable();

        Plan {
            customers,
            walk_ins,
            bookings,
            opt_outs,
            exports,
            stray_receipts,
        }
    }

    /// Everything that happens, in the order it begins.
    fn episodes(&self) -> Vec<(i64, Episode)> {
        let mut episodes: Vec<(i64, Episode)> = Vec::new();
        episodes.extend(
            self.walk_ins
                .iter()
                .enumerate()
                .map(|(i, v)| (v.at, Episode::WalkIn(i))),
        );
        episodes.extend(
            self.bookings
                .iter()
                .enumerate()
                .map(|(i, b)| (b.at, Episode::Booking(i))),
        );
        episodes.extend(
            self.opt_outs
                .iter()
                .enumerate()
                .map(|(i, o)| (o.at, Episode::OptOut(i))),
        );
        episodes.extend(
            self.exports
                .iter()
                .enumerate()
                .map(|(i, e)| (e.at, Episode::Export(i))),
        );
        episodes.extend(
            self.stray_receipts
                .iter()
                .enumerate()
                .map(|(i, &at)| (at, Episode::StrayReceipt(i))),
        );
        episodes.sort_by_key(|(at, _)| *at);
        episodes
    }
}

/// A walk-in conversation's generator and id (its first draw, so that
/// [`sample_conversations`] finds the same id without telling the rest).
fn walk_in_id(created_at: i64, index: usize) -> (Rng, String) {
    let mut rng = Rng::of(Stream::WalkIn, index);
    let id = uuid_v7(created_at, &mut rng);
    (rng, id)
}

// --- The tables, in the order their foreign keys need them written. ---

struct Table {
    name: &'static str,
    /// `id` first when `serial`: an AUTOINCREMENT (BIGSERIAL) id, given in time order.
    columns: &'static [&'static str],
    serial: bool,
    /// Written by icbridge on PostgreSQL only.
    postgres_only: bool,
}

const CONVERSATIONS: usize = 0;
const MEETINGS: usize = 1;
const MEETING_LINKS: usize = 2;
const LINKS: usize = 3;
const MESSAGES: usize = 4;
const OUTBOX: usize = 5;
const RECEIPTS: usize = 6;
const SURVEYS: usize = 7;
const APPOINTMENTS_TABLE: usize = 8;
const OPT_OUTS: usize = 9;
const AUDIT_LOG: usize = 10;
const MEETING_STARTS: usize = 11;
const MEETING_LIMIT_LOCKS: usize = 12;
const TABLE_COUNT: usize = 13;

const fn table(name: &'static str, columns: &'static [&'static str]) -> Table {
    Table {
        name,
        columns,
        serial: false,
        postgres_only: false,
    }
}

const fn serial(name: &'static str, columns: &'static [&'static str]) -> Table {
    Table {
        name,
        columns,
        serial: true,
        postgres_only: false,
    }
}

const TABLES: [Table; TABLE_COUNT] = [
    table(
        "conversations",
        &[
            "id",
            "channel",
            "customer",
            "business",
            "customer_name",
            "state",
            "created_at",
            "closed_at",
            "thread_message_id",
            "closed_by",
            "assignee",
            "assigned_at",
            "desk",
            "waiting_since",
        ],
    ),
    table(
        "meetings",
        &[
            "id",
            "conversation_id",
            "sub",
            "host_url",
            "guest_url",
            "expires_at",
            "created_at",
            "not_before",
        ],
    ),
    serial(
        "meeting_links",
        &["id", "meeting_id", "role", "url", "sent_to", "created_at"],
    ),
    table(
        "links",
        &["code", "meeting_id", "role", "target", "opened_at", "extra"],
    ),
    serial(
        "messages",
        &[
            "id",
            "channel",
            "customer",
            "business",
            "external_id",
            "body",
            "received_at",
            "conversation_id",
            "meeting_id",
            "opened_meeting",
            "author",
            "author_email",
            "media",
        ],
    ),
    serial(
        "outbox",
        &[
            "id",
            "kind",
            "conversation_id",
            "payload",
            "state",
            "attempts",
            "next_attempt_at",
            "last_error",
            "upstream_id",
            "delivery_status",
            "delivery_code",
            "created_at",
            "sent_at",
            "scheduled",
            "stale_after",
            "recipient",
        ],
    ),
    serial(
        "delivery_receipts",
        &[
            "id",
            "correlation_id",
            "transid",
            "code",
            "status",
            "channel",
            "outbox_id",
            "payload",
            "received_at",
        ],
    ),
    table(
        "surveys",
        &[
            "conversation_id",
            "asked_at",
            "answered_at",
            "rating",
            "answer_message_id",
        ],
    ),
    table(
        "appointments",
        &[
            "id",
            "conversation_id",
            "meeting_id",
            "channel",
            "customer",
            "business",
            "desk",
            "starts_at",
            "ends_at",
            "note",
            "state",
            "idempotency_key",
            "request_digest",
            "created_at",
            "cancelled_at",
        ],
    ),
    table(
        "opt_outs",
        &["channel", "customer", "business", "opted_out_at"],
    ),
    serial(
        "audit_log",
        &["id", "at", "actor", "action", "subject", "detail"],
    ),
    serial(
        "meeting_starts",
        &["id", "channel", "customer", "claim_id", "started_at"],
    ),
    // The per-customer lock of the hourly meeting limit: an upsert on PostgreSQL only
    // (SQLite's writer holds the database's one write lock anyway); purged with the starts.
    Table {
        name: "meeting_limit_locks",
        columns: &["channel", "customer"],
        serial: false,
        postgres_only: true,
    },
];

// --- Rows waiting for their time. ---

/// A column's value as written.
enum Value {
    Null,
    Int(i64),
    Text(String),
}

/// A column's value as an episode writes it: known, or known once the row it names has
/// its id.
enum Cell {
    Known(Value),
    OutboxId(usize),
    MessageId(usize),
    Later(Box<dyn FnOnce(&Ids) -> Value>),
}

impl Cell {
    fn resolve(self, ids: &Ids) -> Value {
        match self {
            Cell::Known(value) => value,
            Cell::OutboxId(ticket) => Value::Int(ids.outbox[ticket]),
            Cell::MessageId(ticket) => Value::Int(ids.messages[ticket]),
            Cell::Later(value) => value(ids),
        }
    }
}

const NULL: Cell = Cell::Known(Value::Null);

impl From<i64> for Cell {
    fn from(n: i64) -> Self {
        Cell::Known(Value::Int(n))
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell::Known(Value::Text(text.to_string()))
    }
}

impl From<&String> for Cell {
    fn from(text: &String) -> Self {
        Cell::Known(Value::Text(text.clone()))
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell::Known(Value::Text(text))
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(value: Option<T>) -> Self {
        value.map_or(NULL, Into::into)
    }
}

/// A row's cells, in its table's column order (`id` left out: it is given when written).
macro_rules! cells {
    ($($value:expr),* $(,)?) => { vec![$(Cell::from($value)),*] };
}

/// The ids rows got when written, by the ticket they were queued with.
#[derive(Default)]
struct Ids {
    outbox: Vec<i64>,
    messages: Vec<i64>,
}

/// A row waiting in its table's queue.
struct Queued {
    at: i64,
    /// Queued earlier at the same time comes first.
    seq: u64,
    /// Where its id goes, for the rows that name it.
    ticket: Option<usize>,
    cells: Vec<Cell>,
}

// `BinaryHeap` is a max-heap: the earliest row compares greatest.
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Queued {}

/// Rows ready to write, per table (in [`TABLES`]' order).
struct Chunk {
    tables: Vec<Rows>,
}

impl Chunk {
    fn new() -> Self {
        Chunk {
            tables: TABLES
                .iter()
                .map(|table| Rows::new(table.columns.len()))
                .collect(),
        }
    }

    fn len(&self) -> usize {
        self.tables.iter().map(|rows| rows.count).sum()
    }
}

/// A table's rows in a chunk: their values one after the other, their texts in one buffer.
/// (A few large allocations: the writer's thread frees them, and glibc's allocator makes a
/// thread that frees millions of another thread's small ones wait on its locks.)
struct Rows {
    count: usize,
    columns: usize,
    values: Vec<Written>,
    text: String,
}

/// A value in [`Rows`]: a text is a range of its buffer.
#[derive(Clone, Copy)]
enum Written {
    Null,
    Int(i64),
    Text(usize, usize),
}

impl Rows {
    fn new(columns: usize) -> Self {
        Rows {
            count: 0,
            columns,
            values: Vec::new(),
            text: String::new(),
        }
    }

    fn push(&mut self, values: impl Iterator<Item = Value>) {
        for value in values {
            let written = match value {
                Value::Null => Written::Null,
                Value::Int(n) => Written::Int(n),
                Value::Text(text) => {
                    let start = self.text.len();
                    self.text.push_str(&text);
                    Written::Text(start, self.text.len())
                }
            };
            self.values.push(written);
        }
        self.count += 1;
    }

    /// The rows, `per_part` at a time.
    fn parts(&self, per_part: usize) -> impl Iterator<Item = &[Written]> {
        self.values.chunks(per_part * self.columns)
    }

    fn text(&self, start: usize, end: usize) -> &str {
        &self.text[start..end]
    }
}

// --- Telling the history. ---

/// A delivery queued in the outbox, as `insert_outbox_rows` and `insert_scheduled` write it.
struct Outgoing<'a> {
    kind: &'static str,
    conversation: Option<&'a str>,
    payload: String,
    /// The customer it goes to, through Webex Connect; none: the experts, through Webex.
    to: Option<&'a Party<'a>>,
    queued_at: i64,
    /// A scheduled delivery's due time, and after when it is no use.
    scheduled: Option<(i64, i64)>,
}

const EXPERT_NOTIFICATION: &str = "expert_notification";
const EXPERT_NOTICE: &str = "expert_notice";
const CUSTOMER_REPLY: &str = "customer_reply";
const OPT_OUT_REPLY: &str = "opt_out_reply";

/// The answer to STOP (`customers::texts::OPTED_OUT`).
const OPTED_OUT: &str = "You will get no more messages from us. Reply START to get them again.";

impl<'a> Outgoing<'a> {
    fn to_experts(kind: &'static str, conversation: &'a str, payload: String, at: i64) -> Self {
        Outgoing {
            kind,
            conversation: Some(conversation),
            payload,
            to: None,
            queued_at: at,
            scheduled: None,
        }
    }

    fn to_customer(
        party: &'a Party<'a>,
        conversation: Option<&'a str>,
        payload: String,
        at: i64,
    ) -> Self {
        Outgoing {
            kind: CUSTOMER_REPLY,
            conversation,
            payload,
            to: Some(party),
            queued_at: at,
            scheduled: None,
        }
    }
}

/// What becomes of a delivery.
enum Fate {
    /// Sent (or, rarely, given up).
    Sent,
    /// Not due yet.
    Pending,
    /// Not sent, for this reason.
    Cancelled(&'static str),
}

/// Why an appointment's scheduled deliveries were not sent (`bridge::appointments`).
const APPOINTMENT_CANCELLED: &str = "cancelled: the appointment was cancelled";

/// The links of a meeting made by the broker and handed out as icbridge's own.
struct Meeting {
    id: String,
    sub: String,
    host_code: String,
    guest_code: String,
    host_target: String,
    guest_target: String,
    not_before: Option<i64>,
    expires_at: i64,
    created_at: i64,
}

/// `ICB_PUBLIC_URL`.
const PUBLIC_URL: &str = "https://consult.desk.example";

impl Meeting {
    fn new(rng: &mut Rng, created_at: i64, not_before: Option<i64>, expires_at: i64) -> Self {
        Meeting {
            id: uuid_v7(created_at, rng),
            sub: uuid_v4(rng),
            host_code: link_code(rng),
            guest_code: link_code(rng),
            host_target: format!("https://instant.webex.com/visit/{}", short_code(rng)),
            guest_target: format!("https://instant.webex.com/visit/{}", short_code(rng)),
            not_before,
            expires_at,
            created_at,
        }
    }

    fn host_url(&self) -> String {
        format!("{PUBLIC_URL}/j/{}", self.host_code)
    }

    fn guest_url(&self) -> String {
        format!("{PUBLIC_URL}/j/{}", self.guest_code)
    }
}

/// Who closed a conversation.
enum Closer {
    Expert(String),
    Administrator,
    MeetingEnded,
}

impl Closer {
    /// `conversations.closed_by` (`Actor::shown`).
    fn shown(&self) -> String {
        match self {
            Closer::Expert(email) => email.clone(),
            Closer::Administrator => "an administrator".to_string(),
            Closer::MeetingEnded => "icbridge, as its meeting ended".to_string(),
        }
    }

    /// The audit log's actor (`Actor::audit_name`).
    fn actor(&self) -> String {
        match self {
            Closer::Expert(email) => format!("expert:{email}"),
            Closer::Administrator => "admin:ops".to_string(),
            Closer::MeetingEnded => "icbridge:meeting-ended".to_string(),
        }
    }
}

/// The story teller: tells the plan's episodes in time order and hands the rows to the
/// writer in chunks.
struct Story<'p> {
    plan: &'p Plan,
    /// The year's start and end (Unix ms).
    start: i64,
    now: i64,
    queues: Vec<BinaryHeap<Queued>>,
    seq: u64,
    /// The last id given, per table.
    last_ids: [i64; TABLE_COUNT],
    ids: Ids,
    /// Customers' message ids (Webex Connect's `tid`), distinct.
    tids: u64,
    /// Customers with a `meeting_limit_locks` row.
    locked: HashSet<usize>,
    chunk: Chunk,
    chunks: mpsc::Sender<Chunk>,
}

/// The writer went away.
struct Stopped;

impl<'p> Story<'p> {
    fn new(plan: &'p Plan, now: i64, chunks: mpsc::Sender<Chunk>) -> Self {
        Story {
            plan,
            start: now - YEAR,
            now,
            queues: (0..TABLE_COUNT).map(|_| BinaryHeap::new()).collect(),
            seq: 0,
            last_ids: [0; TABLE_COUNT],
            ids: Ids::default(),
            tids: 0,
            locked: HashSet::new(),
            chunk: Chunk::new(),
            chunks,
        }
    }

    /// Tells every episode; returns the last id of each table.
    fn tell(mut self) -> Result<[i64; TABLE_COUNT], Stopped> {
        for (at, episode) in self.plan.episodes() {
            // Nothing told from here on is earlier than this episode.
            self.release_before(self.start + at)?;
            match episode {
                Episode::WalkIn(index) => self.walk_in(index),
                Episode::Booking(index) => self.booking(index),
                Episode::OptOut(index) => self.opt_out(index),
                Episode::Export(index) => self.export(index),
                Episode::StrayReceipt(index) => self.stray_receipt(index),
            }
        }
        self.release_before(i64::MAX)?;
        self.ship()?;
        Ok(self.last_ids)
    }

    /// Queues a row of `table` written at `at`.
    fn push(&mut self, table: usize, at: i64, cells: Vec<Cell>) {
        self.queue(table, at, None, cells);
    }

    /// Queues a row whose id other rows name: they name it by the ticket returned.
    fn push_named(&mut self, table: usize, at: i64, cells: Vec<Cell>) -> usize {
        let ids = match table {
            OUTBOX => &mut self.ids.outbox,
            MESSAGES => &mut self.ids.messages,
            _ => unreachable!("only outbox rows and messages are named"),
        };
        ids.push(0);
        let ticket = ids.len() - 1;
        self.queue(table, at, Some(ticket), cells);
        ticket
    }

    fn queue(&mut self, table: usize, at: i64, ticket: Option<usize>, cells: Vec<Cell>) {
        debug_assert_eq!(
            cells.len() + usize::from(TABLES[table].serial),
            TABLES[table].columns.len(),
            "{}",
            TABLES[table].name
        );
        debug_assert!(at <= self.now, "{} in the future", TABLES[table].name);
        self.seq += 1;
        self.queues[table].push(Queued {
            at,
            seq: self.seq,
            ticket,
            cells,
        });
    }

    /// Moves the rows queued for before `before` into the chunk, each table in time order
    /// (its ids given in that order), the tables in [`TABLES`]' order so that what a row
    /// names is written first; ships the chunk once it is full.
    fn release_before(&mut self, before: i64) -> Result<(), Stopped> {
        for (table, definition) in TABLES.iter().enumerate() {
            while self.queues[table].peek().is_some_and(|row| row.at < before) {
                let row = self.queues[table].pop().expect("peeked");
                let mut id = None;
                if definition.serial {
                    self.last_ids[table] += 1;
                    let given = self.last_ids[table];
                    id = Some(Value::Int(given));
                    match (table, row.ticket) {
                        (OUTBOX, Some(ticket)) => self.ids.outbox[ticket] = given,
                        (MESSAGES, Some(ticket)) => self.ids.messages[ticket] = given,
                        _ => {}
                    }
                }
                let ids = &self.ids;
                let values = row.cells.into_iter().map(|cell| cell.resolve(ids));
                self.chunk.tables[table].push(id.into_iter().chain(values));
            }
        }
        if self.chunk.len() >= CHUNK_ROWS {
            self.ship()?;
        }
        Ok(())
    }

    fn ship(&mut self) -> Result<(), Stopped> {
        let chunk = std::mem::replace(&mut self.chunk, Chunk::new());
        self.chunks.blocking_send(chunk).map_err(|_| Stopped)
    }

    /// A conversation a customer's message opened: its meeting, the notification and the
    /// link, an expert taking it, the messages back and forth, the close and the rating.
    fn walk_in(&mut self, index: usize) {
        let plan = self.plan;
        let visit = &plan.walk_ins[index];
        let created = self.start + visit.at;
        let (mut rng, id) = walk_in_id(created, index);
        let party = Party::new(plan, visit.customer, visit.desk);
        let first = customer_text(&mut rng);
        if visit.state == State::Waiting {
            return self.waiting(&mut rng, &party, &id, created, &first);
        }
        let rng = &mut rng;
        let meeting = Meeting::new(rng, created, None, created + LINK_TTL);
        self.customer_message(
            &party,
            created,
            &first,
            None,
            Some(&id),
            Some((&meeting.id, true)),
        );
        let card = notification(&party, &first, &meeting.host_url(), meeting.expires_at, "");
        let thread = self.deliver(
            rng,
            Outgoing::to_experts(EXPERT_NOTIFICATION, &id, card, created),
            Fate::Sent,
        );
        let link = format!("Join your video consultation: {}", meeting.guest_url());
        let link = Outgoing::to_customer(&party, Some(&id), party.text(&link), created);
        self.deliver(rng, link, Fate::Sent);

        let expert = party.desk.expert(rng);
        let taken_at =
            Some(created + rng.between(20 * SECOND, 3 * MINUTE)).filter(|&t| t <= self.now);
        let guest_opened = rng
            .chance(GUEST_OPENS_LINK)
            .then(|| created + rng.between(30 * SECOND, 4 * MINUTE))
            .filter(|&t| t <= self.now);
        let host_opened = taken_at
            .map(|taken| taken + rng.between(5 * SECOND, MINUTE))
            .filter(|&t| t <= self.now);
        if let Some(at) = taken_at {
            let text = format!(
                "✋ **Taken by {}**: only their replies reach the customer. `release` hands it back.",
                markdown(&expert)
            );
            self.deliver(
                rng,
                Outgoing::to_experts(EXPERT_NOTICE, &id, thread_message(&text), at),
                Fate::Sent,
            );
        }
        if let Some(at) = guest_opened {
            let text = format!("👀 The customer opened the link at {}.", human(at));
            self.deliver(
                rng,
                Outgoing::to_experts(EXPERT_NOTICE, &id, thread_message(&text), at),
                Fate::Sent,
            );
        }

        let close = (visit.state == State::Closed).then(|| {
            if created >= self.start + SURVEY_FROM && rng.chance(MEETING_ENDED_CLOSES) {
                // With the survey on, icbridge closes what nobody closed once its link ran out.
                (
                    meeting.expires_at + rng.between(5 * SECOND, MINUTE),
                    Closer::MeetingEnded,
                )
            } else if rng.chance(ADMINISTRATOR_CLOSES) {
                (
                    created + rng.between(5 * MINUTE, HOUR),
                    Closer::Administrator,
                )
            } else {
                (
                    created + rng.between(5 * MINUTE, HOUR),
                    Closer::Expert(expert.clone()),
                )
            }
        });
        // The messages after the expert took it, before the close and the link's renewal.
        if let Some(taken) = taken_at {
            let until = match &close {
                Some((_, Closer::MeetingEnded)) | None => created + LAST_MESSAGE,
                Some((closed_at, _)) => (closed_at - 20 * SECOND).min(created + LAST_MESSAGE),
            }
            .min(self.now);
            let count = rng.between(FOLLOW_UPS.0, FOLLOW_UPS.1 + 1);
            let mut times: Vec<i64> = (0..count)
                .map(|_| rng.between(taken + 5 * SECOND, until))
                .filter(|&t| t < until)
                .collect();
            times.sort_unstable();
            for (k, at) in times.into_iter().enumerate() {
                if k % 2 == 0 {
                    self.expert_reply(rng, &party, &id, &expert, at);
                } else {
                    self.follow_up(rng, &party, &id, &meeting.id, at);
                }
            }
        }
        if let Some((closed_at, closer)) = &close {
            self.close(rng, &party, &id, *closed_at, closer, true);
        }
        let (closed_at, closed_by) = match &close {
            Some((at, closer)) => (Some(*at), Some(closer.shown())),
            None => (None, None),
        };
        self.push(
            CONVERSATIONS,
            created,
            cells![
                &id,
                party.channel(),
                &party.address,
                party.business,
                party.customer.name.as_deref(),
                if close.is_some() { "closed" } else { "open" },
                created,
                closed_at,
                thread,
                closed_by,
                taken_at.map(|_| expert.clone()),
                taken_at,
                party.desk.name,
                NULL,
            ],
        );
        self.meeting_rows(&id, &meeting, guest_opened, host_opened);
        if created >= self.now - MEETING_STARTS_KEPT {
            self.meeting_start(rng, visit.customer, &party, created);
        }
    }

    /// A conversation opened out of the clinic's hours: it waits for the desk to open, no
    /// meeting yet; the customer is told when it opens.
    fn waiting(&mut self, rng: &mut Rng, party: &Party, id: &str, created: i64, text: &str) {
        self.customer_message(party, created, text, None, Some(id), None);
        let opens = (created / DAY + 1) * DAY + 8 * HOUR;
        let reply = format!(
            "Thank you for your message. We are closed now and open again {}; we will send \
             you a link to a video consultation then.",
            local_time(opens)
        );
        let reply = Outgoing::to_customer(party, Some(id), party.text(&reply), created);
        self.deliver(rng, reply, Fate::Sent);
        self.push(
            CONVERSATIONS,
            created,
            cells![
                id,
                party.channel(),
                &party.address,
                party.business,
                party.customer.name.as_deref(),
                "open",
                created,
                NULL,
                NULL,
                NULL,
                NULL,
                NULL,
                party.desk.name,
                created,
            ],
        );
    }

    /// A booked consultation: its conversation and meeting at booking, the invitation, the
    /// reminder and the experts' card at their time, the slot, the close (or the
    /// cancellation).
    fn booking(&mut self, index: usize) {
        let plan = self.plan;
        let booking = &plan.bookings[index];
        let rng = &mut Rng::of(Stream::Booking, index);
        let party = Party::new(plan, booking.customer, booking.desk);
        let booked_at = self.start + booking.at;
        let starts_at = self.start + booking.starts_at;
        let ends_at = starts_at + booking.minutes * MINUTE;
        let cancelled_at = booking.cancelled_at.map(|at| self.start + at);
        let closes_at = Some(self.start + booking.closes_at)
            .filter(|&at| at <= self.now && cancelled_at.is_none());
        let id = uuid_v7(booked_at, rng);
        let conversation = uuid_v7(booked_at, rng);
        let links_from = starts_at - APPOINTMENT_EARLY_JOIN;
        // A cancellation ends the links at once.
        let expires_at = cancelled_at.unwrap_or(ends_at + APPOINTMENT_EARLY_JOIN);
        let meeting = Meeting::new(rng, booked_at, Some(links_from), expires_at);
        let name = party
            .customer
            .name
            .clone()
            .unwrap_or_else(|| person_name(rng));
        let note = rng.chance(0.6).then(|| rng.pick(NOTES).to_string());
        let (when, from, guest_url) = (
            local_time(starts_at),
            local_time(links_from),
            meeting.guest_url(),
        );
        let desk = party.desk.name;

        let invitation = format!(
            "Hello {name}, your video consultation with {desk} is booked for {when}. \
             Join with this link from {from}: {guest_url}"
        );
        let payload = party.about_the_slot(&invitation, "appointment_booked", &guest_url, &when);
        let invitation = Outgoing::to_customer(&party, Some(&conversation), payload, booked_at);
        self.deliver(rng, invitation, Fate::Sent);
        // The reminder and the experts' card are queued now, due before the slot.
        let remind_at = starts_at - APPOINTMENT_REMINDER;
        let now = self.now;
        let fate = || match cancelled_at {
            Some(_) => Fate::Cancelled(APPOINTMENT_CANCELLED),
            None if remind_at <= now => Fate::Sent,
            None => Fate::Pending,
        };
        let reminder = format!(
            "Hello {name}, a reminder: your video consultation with {desk} starts {when}. Join here: {guest_url}"
        );
        let payload = party.about_the_slot(&reminder, "appointment_reminder", &guest_url, &when);
        let scheduled = Some((remind_at, ends_at));
        let reminder = Outgoing {
            scheduled,
            ..Outgoing::to_customer(&party, Some(&conversation), payload, booked_at)
        };
        self.deliver(rng, reminder, fate());
        let heading = format!("**Booked consultation** · {}\n\n", markdown(&when));
        let card = notification(
            &party,
            note.as_deref().unwrap_or(""),
            &meeting.host_url(),
            expires_at,
            &heading,
        );
        let card = Outgoing {
            scheduled,
            ..Outgoing::to_experts(EXPERT_NOTIFICATION, &conversation, card, booked_at)
        };
        let thread = self.deliver(rng, card, fate());
        self.audit(
            booked_at,
            "admin:crm",
            "book",
            &format!("appointment {id}"),
            Some(format!("{desk} at {}", rfc3339(starts_at))),
        );

        let mut guest_opened = None;
        let mut host_opened = None;
        if let Some(at) = cancelled_at {
            let notice = format!("Your video consultation with {desk} on {when} is cancelled.");
            let notice =
                Outgoing::to_customer(&party, Some(&conversation), party.text(&notice), at);
            self.deliver(rng, notice, Fate::Sent);
            self.audit(
                at,
                "admin:crm",
                "cancel",
                &format!("appointment {id}"),
                None,
            );
        } else {
            guest_opened = rng
                .chance(GUEST_OPENS_LINK)
                .then(|| links_from + rng.between(0, 13 * MINUTE))
                .filter(|&at| at <= self.now);
            host_opened =
                Some(links_from + rng.between(MINUTE, 12 * MINUTE)).filter(|&at| at <= self.now);
        }
        let expert = party.desk.expert(rng);
        if let Some(at) = closes_at {
            // A WhatsApp customer's window is closed by then: only SMS customers are asked.
            let survey = !party.whatsapp();
            self.close(
                rng,
                &party,
                &conversation,
                at,
                &Closer::Expert(expert.clone()),
                survey,
            );
        }
        let (state, closed_at, closed_by) = match (cancelled_at, closes_at) {
            (Some(at), _) => (
                "closed",
                Some(at),
                Some("appointment cancelled".to_string()),
            ),
            (None, Some(at)) => ("closed", Some(at), Some(expert)),
            (None, None) => ("open", None, None),
        };
        self.push(
            CONVERSATIONS,
            booked_at,
            cells![
                &conversation,
                party.channel(),
                &party.address,
                party.business,
                Some(name.as_str()),
                state,
                booked_at,
                closed_at,
                thread,
                closed_by,
                NULL,
                NULL,
                desk,
                NULL,
            ],
        );
        self.meeting_rows(&conversation, &meeting, guest_opened, host_opened);
        // The request's digest, as `book_appointment` keeps it for an Idempotency-Key.
        let request = json!({
            "channel": party.channel(), "customer": party.customer.sms(), "to": null,
            "name": name, "startsAt": rfc3339(starts_at), "durationMinutes": booking.minutes,
            "desk": desk, "note": note,
        });
        let digest = hex::encode(Sha256::digest(request.to_string()));
        let idempotency_key = rng.chance(0.7).then(|| format!("crm-{}", uuid_v4(rng)));
        let digest = idempotency_key.as_ref().map(|_| digest);
        self.push(
            APPOINTMENTS_TABLE,
            booked_at,
            cells![
                &id,
                &conversation,
                &meeting.id,
                party.channel(),
                &party.address,
                party.business,
                desk,
                starts_at,
                ends_at,
                note,
                if cancelled_at.is_some() {
                    "cancelled"
                } else {
                    "booked"
                },
                idempotency_key,
                digest,
                booked_at,
                cancelled_at,
            ],
        );
    }

    /// A customer who texted STOP after their last conversation: the message (in no
    /// conversation), the answer, the opt-out.
    fn opt_out(&mut self, index: usize) {
        let plan = self.plan;
        let opt_out = &plan.opt_outs[index];
        let rng = &mut Rng::of(Stream::OptOut, index);
        let party = Party::new(plan, opt_out.customer, opt_out.desk);
        let at = self.start + opt_out.at;
        self.customer_message(&party, at, "STOP", None, None, None);
        let answer = party.text(OPTED_OUT);
        let answer = Outgoing {
            kind: OPT_OUT_REPLY,
            ..Outgoing::to_customer(&party, None, answer, at)
        };
        self.deliver(rng, answer, Fate::Sent);
        self.push(
            OPT_OUTS,
            at,
            cells![party.channel(), &party.address, party.business, at],
        );
    }

    /// A customer's data exported on request (the admin API's caller).
    fn export(&mut self, index: usize) {
        let export = &self.plan.exports[index];
        let customer = &self.plan.customers[export.customer];
        let detail = format!("{} conversations", export.conversations);
        self.audit(
            self.start + export.at,
            "admin:ops",
            "export",
            &customer.masked(),
            Some(detail),
        );
    }

    /// A receipt for a message a flow sent itself: matched to no delivery, kept without
    /// its body.
    fn stray_receipt(&mut self, index: usize) {
        let rng = &mut Rng::of(Stream::StrayReceipt, index);
        let at = self.start + self.plan.stray_receipts[index];
        let correlation = rng
            .chance(0.5)
            .then(|| format!("flow-{}", rng.below(1_000_000)));
        let (code, status) = *rng.pick(&[("7500", "delivered"), ("7501", "submitted")]);
        let channel = *rng.pick(&["sms", "whatsapp"]);
        self.push(
            RECEIPTS,
            at,
            cells![
                correlation,
                uuid_v4(rng),
                code,
                status,
                channel,
                NULL,
                "{}",
                at
            ],
        );
    }

    /// A customer's message, with the meeting that answered it and whether it opened it.
    fn customer_message(
        &mut self,
        party: &Party,
        at: i64,
        body: &str,
        media: Option<String>,
        conversation: Option<&str>,
        answer: Option<(&str, bool)>,
    ) -> usize {
        // Webex Connect's `tid`: distinct for every message (a bijection of a counter).
        self.tids += 1;
        let tid = mix64(SEED ^ self.tids).to_string();
        let (meeting, opened) = answer.map_or((None, false), |(id, opened)| (Some(id), opened));
        self.push_named(
            MESSAGES,
            at,
            cells![
                party.channel(),
                &party.address,
                party.business,
                tid,
                body,
                at,
                conversation,
                meeting,
                i64::from(opened),
                "customer",
                NULL,
                media,
            ],
        )
    }

    /// A later message of the customer's: relayed to the thread (its text, its file).
    fn follow_up(
        &mut self,
        rng: &mut Rng,
        party: &Party,
        conversation: &str,
        meeting: &str,
        at: i64,
    ) {
        let file = rng.chance(MEDIA_SHARE).then(|| CustomerFile::new(rng));
        // Half the photos and documents come without a caption.
        let body = match file {
            Some(_) if rng.chance(0.5) => String::new(),
            _ => customer_text(rng),
        };
        let media = file.as_ref().map(CustomerFile::stored);
        self.customer_message(
            party,
            at,
            &body,
            media,
            Some(conversation),
            Some((meeting, false)),
        );
        if !body.is_empty() {
            let relay = Outgoing::to_experts(EXPERT_NOTICE, conversation, customer_said(&body), at);
            self.deliver(rng, relay, Fate::Sent);
        }
        if let Some(file) = file {
            let relay = Outgoing::to_experts(EXPERT_NOTICE, conversation, file.relay(), at);
            self.deliver(rng, relay, Fate::Sent);
        }
    }

    /// An expert's reply in the thread: kept in the transcript, sent to the customer.
    fn expert_reply(
        &mut self,
        rng: &mut Rng,
        party: &Party,
        conversation: &str,
        expert: &str,
        at: i64,
    ) {
        let text = expert_text(rng);
        self.push(
            MESSAGES,
            at,
            cells![
                party.channel(),
                &party.address,
                party.business,
                webex_message_id(rng),
                &text,
                at,
                conversation,
                NULL,
                0i64,
                "expert",
                expert,
                NULL,
            ],
        );
        let reply = Outgoing::to_customer(party, Some(conversation), party.text(&text), at);
        self.deliver(rng, reply, Fate::Sent);
    }

    /// Closes a conversation: the thread is told who closed it, the audit log records it,
    /// and with the survey on (and `survey`) the customer is asked for a rating.
    fn close(
        &mut self,
        rng: &mut Rng,
        party: &Party,
        conversation: &str,
        at: i64,
        closer: &Closer,
        survey: bool,
    ) {
        let text = format!(
            "Conversation closed by {}. The customer's next message opens a new one.",
            markdown(&closer.shown())
        );
        let notice = Outgoing::to_experts(EXPERT_NOTICE, conversation, thread_message(&text), at);
        self.deliver(rng, notice, Fate::Sent);
        let subject = format!("conversation {conversation}");
        self.audit(at, &closer.actor(), "close", &subject, None);
        if survey && at >= self.start + SURVEY_FROM {
            self.survey(rng, party, conversation, at);
        }
    }

    /// The rating asked with a close: the question (buttons on WhatsApp) and, from most
    /// customers, the answer, thanked and posted in the thread.
    fn survey(&mut self, rng: &mut Rng, party: &Party, conversation: &str, asked_at: i64) {
        let question = if party.whatsapp() {
            json!({
                "type": "whatsapp_buttons", "app_id": party.business, "waid": party.address,
                "body": "How was your consultation? Tap a button, or reply 1 (poor) to 5 (excellent).",
                "buttons": [
                    {"id": "rating-5", "title": "Good"},
                    {"id": "rating-3", "title": "OK"},
                    {"id": "rating-1", "title": "Poor"},
                ],
            })
            .to_string()
        } else {
            party.text("How was your consultation? Reply 1 (poor) to 5 (excellent).")
        };
        let question = Outgoing::to_customer(party, Some(conversation), question, asked_at);
        self.deliver(rng, question, Fate::Sent);
        let answered_at = asked_at + rng.between(MINUTE, 2 * HOUR);
        if !rng.chance(SURVEY_ANSWERED) || answered_at > self.now {
            self.push(
                SURVEYS,
                asked_at,
                cells![conversation, asked_at, NULL, NULL, NULL],
            );
            return;
        }
        // A tap answers with its button's title on WhatsApp; by SMS a digit.
        let (rating, answer) = if party.whatsapp() {
            let (rating, title) =
                rng.weighted(&[((5, "Good"), 6), ((3, "OK"), 3), ((1, "Poor"), 1)]);
            (rating, title.to_string())
        } else {
            let rating: i64 = rng.weighted(&[(5, 45), (4, 25), (3, 15), (2, 5), (1, 10)]);
            (rating, rating.to_string())
        };
        // Stored as a message no meeting answers, then kept in the closed conversation.
        let message =
            self.customer_message(party, answered_at, &answer, None, Some(conversation), None);
        let thanks = party.text("Thank you for your rating!");
        let thanks = Outgoing::to_customer(party, Some(conversation), thanks, answered_at);
        self.deliver(rng, thanks, Fate::Sent);
        let note = thread_message(&format!("The customer rated the consultation {rating}/5."));
        let note = Outgoing::to_experts(EXPERT_NOTICE, conversation, note, answered_at);
        self.deliver(rng, note, Fate::Sent);
        let mut survey = cells![conversation, asked_at, answered_at, rating];
        survey.push(Cell::MessageId(message));
        self.push(SURVEYS, answered_at, survey);
    }

    /// Queues a delivery and tells what became of it: sent (and Webex Connect's receipts
    /// for a customer's), rarely given up, pending or cancelled. Returns the upstream's id
    /// of a sent one (a notification's opens its conversation's thread).
    fn deliver(&mut self, rng: &mut Rng, out: Outgoing, fate: Fate) -> Option<String> {
        let due = out.scheduled.map_or(out.queued_at, |(due, _)| due);
        // The worker gathers rows for a few milliseconds, claims them and sends them.
        let claimed = due + rng.between(5, 400);
        let sent_at = claimed + rng.between(80, 1_500);
        let fate = match fate {
            Fate::Sent if sent_at > self.now => Fate::Pending,
            fate => fate,
        };
        let mut row = Settled::pending(due);
        let mut receipts = Vec::new();
        match fate {
            Fate::Pending => {}
            Fate::Cancelled(reason) => {
                row.state = "cancelled";
                row.last_error = Some(reason.to_string());
            }
            Fate::Sent if out.kind != EXPERT_NOTIFICATION && rng.chance(DEAD_SHARE) => {
                row.give_up(claimed, out.to.is_some());
            }
            Fate::Sent => {
                // Webex Connect names a message by a UUID, Webex by its message id.
                let upstream = match out.to {
                    Some(_) => uuid_v4(rng),
                    None => webex_message_id(rng),
                };
                row.state = "sent";
                row.attempts = 1;
                row.next_attempt_at = claimed + OUTBOX_LEASE;
                row.sent_at = Some(sent_at);
                if let Some(party) = out.to {
                    receipts = self.receipts(rng, party, sent_at);
                    if let Some(last) = receipts.last() {
                        row.delivery_status = Some(last.status);
                        row.delivery_code = Some(last.code);
                    }
                }
                row.upstream_id = Some(upstream);
            }
        }
        let upstream = row.upstream_id.clone();
        let to = out.to;
        let conversation = out.conversation.map(str::to_string);
        let ticket = self.push_named(OUTBOX, out.queued_at, row.cells(out));
        if let (Some(party), Some(transid)) = (to, &upstream) {
            for receipt in receipts {
                self.receipt(party, ticket, transid, conversation.as_deref(), receipt);
            }
        }
        upstream
    }

    /// What Webex Connect reports on a message to a customer: by SMS sometimes "submitted",
    /// then "delivered"; on WhatsApp "delivered", and often "read".
    fn receipts(&self, rng: &mut Rng, party: &Party, sent_at: i64) -> Vec<Receipt> {
        let mut receipts = Vec::with_capacity(2);
        if party.whatsapp() {
            let delivered = sent_at + rng.between(SECOND, 5 * SECOND);
            receipts.push(Receipt::DELIVERED.at(delivered));
            if rng.chance(0.5) {
                receipts.push(Receipt::READ.at(delivered + rng.between(10 * SECOND, 15 * MINUTE)));
            }
        } else {
            if rng.chance(0.5) {
                receipts.push(Receipt::SUBMITTED.at(sent_at + rng.between(SECOND, 3 * SECOND)));
            }
            receipts.push(Receipt::DELIVERED.at(sent_at + rng.between(3 * SECOND, 20 * SECOND)));
        }
        receipts.retain(|receipt| receipt.at <= self.now);
        receipts
    }

    /// A receipt matched to outbox row `ticket`, as `record_receipt` stores it: its body
    /// as Webex Connect sent it (the correlation id names the row).
    fn receipt(
        &mut self,
        party: &Party,
        ticket: usize,
        transid: &str,
        conversation: Option<&str>,
        receipt: Receipt,
    ) {
        let Receipt {
            at,
            code,
            status,
            description,
        } = receipt;
        let (channel, destination_type) = if party.whatsapp() {
            ("whatsapp", "waid")
        } else {
            ("sms", "msisdn")
        };
        let before_id = format!(
            r#"{{"deliveryInfoNotification":{{"deliveryInfo":{{"timeStamp":"{}","Description":"{description}","code":"{code}","deliveryChannel":"{channel}","additionalInfo":"","destination":{},"destinationType":"{destination_type}","deliveryStatus":"{description}"}},"subtid":"","transid":"{transid}","callbackData":{},"correlationid":"icb-"#,
            rfc3339_ms(at),
            js(&party.address),
            js(conversation.unwrap_or("")),
        );
        let correlation_id = Cell::Later(Box::new(move |ids: &Ids| {
            Value::Text(format!("icb-{}", ids.outbox[ticket]))
        }));
        let payload = Cell::Later(Box::new(move |ids: &Ids| {
            Value::Text(format!("{before_id}{}\"}}}}", ids.outbox[ticket]))
        }));
        self.push(
            RECEIPTS,
            at,
            vec![
                correlation_id,
                transid.into(),
                code.into(),
                status.into(),
                channel.into(),
                Cell::OutboxId(ticket),
                payload,
                at.into(),
            ],
        );
    }

    /// A meeting with its links (`meeting_links`) and icbridge's own codes for them
    /// (`links`), as `insert_meetings` and `insert_links` write them.
    fn meeting_rows(
        &mut self,
        conversation: &str,
        meeting: &Meeting,
        guest_opened: Option<i64>,
        host_opened: Option<i64>,
    ) {
        let at = meeting.created_at;
        let (host_url, guest_url) = (meeting.host_url(), meeting.guest_url());
        self.push(
            MEETINGS,
            at,
            cells![
                &meeting.id,
                conversation,
                &meeting.sub,
                &host_url,
                &guest_url,
                meeting.expires_at,
                at,
                meeting.not_before,
            ],
        );
        // Every link with its role, the host's first (`MeetingLinks::all`)…
        for (role, url) in [("host", &host_url), ("guest", &guest_url)] {
            self.push(MEETING_LINKS, at, cells![&meeting.id, role, url, NULL, at]);
        }
        // …and the codes handed out for them, the guest's first (`hand_out`).
        self.push(
            LINKS,
            at,
            cells![
                &meeting.guest_code,
                &meeting.id,
                "guest",
                &meeting.guest_target,
                guest_opened,
                0i64
            ],
        );
        self.push(
            LINKS,
            at,
            cells![
                &meeting.host_code,
                &meeting.id,
                "host",
                &meeting.host_target,
                host_opened,
                0i64
            ],
        );
    }

    /// A new meeting counted against the customer's hourly limit (the last day's are kept).
    fn meeting_start(&mut self, rng: &mut Rng, customer: usize, party: &Party, at: i64) {
        let claim = uuid_v7(at, rng);
        self.push(
            MEETING_STARTS,
            at,
            cells![party.channel(), &party.address, claim, at],
        );
        if self.locked.insert(customer) {
            self.push(
                MEETING_LIMIT_LOCKS,
                at,
                cells![party.channel(), &party.address],
            );
        }
    }

    fn audit(&mut self, at: i64, actor: &str, action: &str, subject: &str, detail: Option<String>) {
        self.push(AUDIT_LOG, at, cells![at, actor, action, subject, detail]);
    }
}

/// A receipt's code and status (`DeliveryReceipt::status`), and when it came.
#[derive(Clone, Copy)]
struct Receipt {
    at: i64,
    code: &'static str,
    status: &'static str,
    /// Webex Connect's word for it.
    description: &'static str,
}

impl Receipt {
    const SUBMITTED: Receipt = Receipt::of("7501", "submitted", "Submitted");
    const DELIVERED: Receipt = Receipt::of("7500", "delivered", "Delivered");
    const READ: Receipt = Receipt::of("7502", "read", "Read");

    const fn of(code: &'static str, status: &'static str, description: &'static str) -> Self {
        Receipt {
            at: 0,
            code,
            status,
            description,
        }
    }

    fn at(self, at: i64) -> Self {
        Receipt { at, ..self }
    }
}

/// What the worker wrote back on an outbox row.
struct Settled {
    state: &'static str,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    upstream_id: Option<String>,
    delivery_status: Option<&'static str>,
    delivery_code: Option<&'static str>,
    sent_at: Option<i64>,
}

/// `ICB_RETRY_SCHEDULE`'s waits: a delivery that fails every time is given up after them.
const RETRY_SCHEDULE_TOTAL: i64 = (1 + 5 + 30 + 120 + 600 + 1800 + 3600) * SECOND;
const RETRY_ATTEMPTS: i64 = 8;

impl Settled {
    /// Queued, not tried: first due when queued (or, scheduled, at its time).
    fn pending(due: i64) -> Self {
        Settled {
            state: "pending",
            attempts: 0,
            next_attempt_at: due,
            last_error: None,
            upstream_id: None,
            delivery_status: None,
            delivery_code: None,
            sent_at: None,
        }
    }

    /// Given up: Webex Connect refuses a bad number at once; Webex failed every retry.
    fn give_up(&mut self, claimed: i64, to_customer: bool) {
        self.state = "dead";
        if to_customer {
            self.attempts = 1;
            self.next_attempt_at = claimed + OUTBOX_LEASE;
            self.last_error = Some(
                r#"Webex Connect answered 400: {"code":"7101","description":"Invalid destination address"}"#
                    .to_string(),
            );
        } else {
            self.attempts = RETRY_ATTEMPTS;
            self.next_attempt_at = claimed + RETRY_SCHEDULE_TOTAL + OUTBOX_LEASE;
            self.last_error = Some("Webex answered 503 Service Unavailable".to_string());
        }
    }

    /// The row's cells, as `insert_outbox_rows` (or `insert_scheduled`) queued it and the
    /// worker settled it.
    fn cells(self, out: Outgoing) -> Vec<Cell> {
        let (scheduled, stale_after) = match out.scheduled {
            Some((_, stale_after)) => (1, Some(stale_after)),
            None => (0, None),
        };
        cells![
            out.kind,
            out.conversation,
            out.payload,
            self.state,
            self.attempts,
            self.next_attempt_at,
            self.last_error,
            self.upstream_id,
            self.delivery_status,
            self.delivery_code,
            out.queued_at,
            self.sent_at,
            scheduled,
            stale_after,
            out.to.map(|party| party.address.as_str()),
        ]
    }
}

/// A photo or document a customer sent with a message.
struct CustomerFile {
    url: String,
    mime_type: &'static str,
    noun: &'static str,
}

impl CustomerFile {
    fn new(rng: &mut Rng) -> Self {
        let (extension, mime_type, noun) = *rng.pick(&[
            ("jpg", "image/jpeg", "photo"),
            ("pdf", "application/pdf", "document"),
        ]);
        CustomerFile {
            url: format!(
                "https://media.connect.example/m/{}.{extension}",
                uuid_v4(rng)
            ),
            mime_type,
            noun,
        }
    }

    /// `messages.media` (`Media::to_stored`).
    fn stored(&self) -> String {
        json!({"attachments": [{"url": self.url, "mimeType": self.mime_type}]}).to_string()
    }

    /// The file in the experts' thread (`Delivery::ThreadFile`).
    fn relay(&self) -> String {
        json!({
            "type": "thread_file", "markdown": format!("**Customer sent a {}.**", self.noun),
            "url": self.url, "mime_type": self.mime_type,
        })
        .to_string()
    }
}

// --- Writing. ---

/// The database being filled.
enum Target {
    Sqlite {
        connection: SqliteConnection,
        path: PathBuf,
    },
    Postgres(PgConnection),
}

impl Target {
    async fn open(url: &str) -> Result<Self, Box<dyn Error>> {
        if url.starts_with("sqlite:") {
            // For this connection only, as a bulk load: no journal and no waiting for the
            // disk (a fill that fails is started again on a fresh file; `finish` turns the
            // log icbridge uses back on), which halves the time; and a page cache that holds
            // the indexes written at random places (upstream ids, numbers, message ids).
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(false)
                .journal_mode(SqliteJournalMode::Off)
                .synchronous(SqliteSynchronous::Off)
                .foreign_keys(true)
                .pragma("cache_size", "-1048576")
                .pragma("temp_store", "MEMORY");
            let path = options.get_filename().to_path_buf();
            let connection = SqliteConnection::connect_with(&options).await?;
            Ok(Target::Sqlite { connection, path })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let mut connection = PgConnection::connect(url).await?;
            // Commits need not wait for the log to reach the disk.
            sqlx::query("SET synchronous_commit = off")
                .execute(&mut connection)
                .await?;
            Ok(Target::Postgres(connection))
        } else {
            Err(format!("{url}: neither sqlite:// nor postgres://").into())
        }
    }

    async fn count(&mut self, sql: &str) -> Result<i64, sqlx::Error> {
        match self {
            Target::Sqlite { connection, .. } => {
                sqlx::query_scalar(sql).fetch_one(connection).await
            }
            Target::Postgres(connection) => sqlx::query_scalar(sql).fetch_one(connection).await,
        }
    }

    /// Migrated by icbridge as far as the schema the history is written for, and empty.
    async fn check_fresh(&mut self) -> Result<(), Box<dyn Error>> {
        let sql = format!("SELECT COUNT(*) FROM _sqlx_migrations WHERE version = {LAST_MIGRATION}");
        let migrated = self.count(&sql).await.map_err(|error| {
            format!("not migrated ({error}): run `icbridge migrate` on it first")
        })?;
        if migrated == 0 {
            return Err(format!(
                "migration {LAST_MIGRATION} has not run: migrate it with a current icbridge"
            )
            .into());
        }
        for table in &TABLES {
            let rows = self
                .count(&format!("SELECT COUNT(*) FROM {}", table.name))
                .await?;
            if rows > 0 {
                return Err(format!("not empty: {} has {rows} rows", table.name).into());
            }
        }
        Ok(())
    }

    /// Whether this database gets `table`'s rows.
    fn writes(&self, table: &Table) -> bool {
        !table.postgres_only || matches!(self, Target::Postgres(_))
    }

    /// Writes a chunk in one transaction, the tables in [`TABLES`]' order.
    async fn write(&mut self, chunk: &Chunk) -> Result<(), sqlx::Error> {
        let tables = TABLES
            .iter()
            .zip(&chunk.tables)
            .filter(|(_, rows)| rows.count > 0);
        match self {
            Target::Sqlite { connection, .. } => {
                let mut transaction = connection.begin().await?;
                // Foreign keys are checked when the transaction commits (a violation fails
                // the commit), not by each statement: see `insert`.
                sqlx::query("PRAGMA defer_foreign_keys = ON")
                    .execute(&mut *transaction)
                    .await?;
                for (table, rows) in tables.filter(|(table, _)| !table.postgres_only) {
                    insert(&mut transaction, table, rows).await?;
                }
                transaction.commit().await
            }
            Target::Postgres(connection) => {
                let mut transaction = connection.begin().await?;
                for (table, rows) in tables {
                    copy(&mut transaction, table, rows).await?;
                }
                transaction.commit().await
            }
        }
    }

    /// Finishes the database as icbridge will find it: PostgreSQL's sequences moved past
    /// the ids written (SQLite's AUTOINCREMENT followed them) and its planner's statistics
    /// gathered (as autovacuum would, a while later); SQLite in WAL mode again, as
    /// `icbridge migrate` left it. Returns SQLite's file size.
    async fn finish(
        &mut self,
        last_ids: &[i64; TABLE_COUNT],
    ) -> Result<Option<u64>, Box<dyn Error>> {
        match self {
            Target::Sqlite { connection, path } => {
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&mut *connection)
                    .await?;
                Ok(Some(std::fs::metadata(path)?.len()))
            }
            Target::Postgres(connection) => {
                for (table, last) in TABLES.iter().zip(last_ids) {
                    if table.serial && *last > 0 {
                        let sql = format!(
                            "SELECT setval(pg_get_serial_sequence('{}', 'id'), {last})",
                            table.name
                        );
                        sqlx::query(&sql).execute(&mut *connection).await?;
                    }
                }
                sqlx::query("ANALYZE").execute(&mut *connection).await?;
                Ok(None)
            }
        }
    }
}

/// SQLite: multi-row INSERTs, within its limit on parameters.
async fn insert(
    connection: &mut SqliteConnection,
    table: &Table,
    rows: &Rows,
) -> Result<(), sqlx::Error> {
    let per_statement = (SQLITE_MAX_VARIABLES / table.columns.len()).min(SQLITE_ROWS_PER_STATEMENT);
    // `OR FAIL`: a statement that breaks a constraint fails without undoing its earlier rows
    // (the fill stops anyway), so that SQLite keeps no statement journal, a copy of every
    // page each statement changes, which took a fifth of the time.
    let head = format!(
        "INSERT OR FAIL INTO {} ({}) ",
        table.name,
        table.columns.join(", ")
    );
    for part in rows.parts(per_statement) {
        let mut insert = QueryBuilder::<Sqlite>::new(&head);
        insert.push_values(part.chunks(rows.columns), |mut row, values| {
            for value in values {
                match *value {
                    Written::Null => row.push_bind(None::<i64>),
                    Written::Int(n) => row.push_bind(n),
                    Written::Text(start, end) => row.push_bind(rows.text(start, end)),
                };
            }
        });
        insert.build().execute(&mut *connection).await?;
    }
    Ok(())
}

/// PostgreSQL: COPY in its text format.
async fn copy(
    connection: &mut PgConnection,
    table: &Table,
    rows: &Rows,
) -> Result<(), sqlx::Error> {
    let statement = format!(
        "COPY {} ({}) FROM STDIN",
        table.name,
        table.columns.join(", ")
    );
    let mut copy = connection.copy_in_raw(&statement).await?;
    let mut buffer = Vec::with_capacity(COPY_BUFFER + 64 * 1024);
    for values in rows.parts(1) {
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                buffer.push(b'\t');
            }
            match *value {
                Written::Null => buffer.extend_from_slice(b"\\N"),
                Written::Int(n) => buffer.extend_from_slice(n.to_string().as_bytes()),
                Written::Text(start, end) => copy_escaped(&mut buffer, rows.text(start, end)),
            }
        }
        buffer.push(b'\n');
        if buffer.len() >= COPY_BUFFER {
            copy.send(buffer.as_slice()).await?;
            buffer.clear();
        }
    }
    if !buffer.is_empty() {
        copy.send(buffer.as_slice()).await?;
    }
    copy.finish().await?;
    Ok(())
}

/// Text in COPY's text format: backslashes, tabs and line breaks escaped.
fn copy_escaped(buffer: &mut Vec<u8>, text: &str) {
    for &byte in text.as_bytes() {
        match byte {
            b'\\' => buffer.extend_from_slice(b"\\\\"),
            b'\t' => buffer.extend_from_slice(b"\\t"),
            b'\n' => buffer.extend_from_slice(b"\\n"),
            b'\r' => buffer.extend_from_slice(b"\\r"),
            _ => buffer.push(byte),
        }
    }
}
