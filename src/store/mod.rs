//! The database: all of icbridge's SQL, and only SQL. SQLite and PostgreSQL both go through
//! sqlx's `Any` driver with the same SQL text (`$1`-style parameters); only the migrations
//! differ, and the few statements that must (they branch on the backend). Rows are read by
//! column name into types. Timestamps are Unix milliseconds.
//!
//! What may enter it: statements, the rows they read and write, and the types that carry
//! them. It imports nothing of icbridge but [`crate::domain`] (the values every layer
//! shares) and its own `engine`: nothing from the routes, the bridge, the upstreams'
//! clients, the desks, the experts' or customers' modules, the delivery worker or the
//! application's wiring. What a caller must decide (what to answer, what to send, whether
//! an upstream is called) is decided before or after a call here, never inside one; a type
//! that two of those layers and the store share belongs in `domain`, not here. Check with
//! `grep -rn 'use crate::' src/store`: only `crate::domain` may appear (and `crate::store`
//! itself, where the engine names the store it serves).
//!
//! Its two halves:
//!
//! - the **engine**, `engine`: opening the database, group commit (one writer task, a
//!   savepoint per write), batching concurrent requests' jobs into one write, and the SQL
//!   text of a batch's rows; it knows no table;
//! - the **queries**, one file per table group, named for its tables: `conversations`,
//!   `intake` (customers' messages), `answers` (their answers), `claims` (meeting claims
//!   and starts), `meetings`, `links`, `outbox`, `receipts`, `appointments`, `surveys`,
//!   `opt_outs`, `waiting`, `pauses`, `customers`, `console`, `webex_events`, `events`
//!   (for the systems of record), `admin`.
//!   Each writes through `self.write(async move |tx| { … })` and reads on `self.reader`.
//!
//! Transactions here are short and never wait on the network: callers make their upstream
//! calls before or after, never inside. Writes are committed in groups by a writer task
//! (see `engine`); on SQLite it has the one connection that writes (SQLite runs one
//! write transaction at a time anyway), and reads go through a pool of their own, which
//! WAL never makes wait for the writer. sqlx runs each SQLite connection on a thread of its
//! own, so no statement blocks an async worker thread.

mod admin;
mod answers;
mod appointments;
mod audit;
mod claims;
mod console;
mod conversation_events;
mod conversations;
mod customers;
mod engine;
mod events;
mod intake;
mod links;
mod meetings;
mod opt_outs;
mod outbox;
mod pauses;
mod receipts;
mod retention;
mod surveys;
mod waiting;
mod webex_events;

use sqlx::AnyPool;

use crate::domain::{Answer, ConversationKey};
use engine::{Backend, Batches, LogCheckpoints, Writer};

pub use appointments::{Booking, NewAppointment};
pub use conversations::ExpertMessage;
pub use events::{event_payload, EventQuery, EVENT_KIND};
pub use retention::PurgeCutoffs;

pub use answers::UnansweredMessage;
pub use claims::{Claim, MeetingClaim, StartLimit};
pub use intake::Recorded;
pub use links::NewGuestLink;
pub use meetings::NewMeeting;
pub use opt_outs::{KeywordMessage, KeywordOutcome, OptOutChange, OptedOutMessage};
pub use outbox::{Outcome, Settlement, OUTBOX_CLAIM_LOCK};
pub use receipts::ReceiptMatch;
pub use surveys::{same_message, LatestSurvey, NewSurvey, Rating, RatingOutcome};
pub use waiting::WaitingMessage;
pub use webex_events::{CaughtUpEvent, WebexEvent};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("the database is busy: {0}")]
    Busy(sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use sqlite://PATH (a file) or postgres://…")]
    UnsupportedUrl(String),
    #[error("no {what} with id {id}")]
    NotFound { what: &'static str, id: String },
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
    #[error("the writes committed with this one failed: {reason}")]
    GroupFailed { busy: bool, reason: String },
    #[error("the database writer stopped")]
    WriterStopped,
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        let busy = match &error {
            sqlx::Error::PoolTimedOut => true,
            // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6), extended codes included.
            // PostgreSQL: lock_not_available (55P03), query_canceled (57014), and a
            // transaction chosen to end a deadlock (40P01) or a conflict (40001): the same
            // request goes through when tried again.
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                let code = code.as_ref();
                matches!(code, "55P03" | "57014" | "40P01" | "40001")
                    || code
                        .parse::<i32>()
                        .is_ok_and(|code| matches!(code & 0xff, 5 | 6))
            }),
            _ => false,
        };
        if busy {
            StoreError::Busy(error)
        } else {
            StoreError::Database(error)
        }
    }
}

impl StoreError {
    /// The database did not answer in time; the same request can succeed later.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            StoreError::Busy(_) | StoreError::GroupFailed { busy: true, .. }
        )
    }

    /// What a write learns when the transaction it was part of could not be committed.
    fn group_failed(error: &StoreError) -> Self {
        StoreError::GroupFailed {
            busy: error.is_busy(),
            reason: error.to_string(),
        }
    }
}

/// What the number of an anonymised (or erased) customer becomes.
const ERASED: &str = "erased";

#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// The writer's connections (one on SQLite); also what migrations run on.
    writer_pool: AnyPool,
    writer: Writer,
    /// Reads; on PostgreSQL the same pool as the writer's.
    reader: AnyPool,
    /// SQLite's log checkpoints (`None` on PostgreSQL).
    log: Option<LogCheckpoints>,
    /// The tasks that write concurrent requests' messages, claims and new meetings in batches
    /// (`None` in their own handle, which must not keep them running).
    batches: Option<Batched>,
}

#[derive(Clone)]
struct Batched {
    messages: Batches<intake::Job, Option<Recorded>>,
    claims: Batches<MeetingClaim, Claim>,
    meetings: Batches<NewMeeting, Answer>,
}

impl Store {
    fn new(
        backend: Backend,
        writer_pool: AnyPool,
        reader: AnyPool,
        log: Option<LogCheckpoints>,
    ) -> Self {
        let store = Self {
            backend,
            writer: Writer::start(writer_pool.clone(), backend, log.as_ref().map(|l| l.long())),
            writer_pool,
            reader,
            log,
            batches: None,
        };
        let batches = Batched {
            messages: Batches::start(store.clone(), intake::MAX_BATCH, intake::record_batch),
            claims: Batches::start(
                store.clone(),
                meetings::MAX_MEETINGS,
                claims::claim_meetings,
            ),
            meetings: Batches::start(
                store.clone(),
                meetings::MAX_MEETINGS,
                meetings::store_meetings,
            ),
        };
        Self {
            batches: Some(batches),
            ..store
        }
    }
}

/// A conversation's key as the database's columns give it back.
type Key = (String, String, String);

fn key_of(key: &ConversationKey) -> Key {
    (
        key.channel.as_str().to_string(),
        key.customer.as_str().to_string(),
        key.business.as_str().to_string(),
    )
}
