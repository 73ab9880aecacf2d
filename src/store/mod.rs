//! The database: the only module with SQL. Timestamps are Unix milliseconds.
//!
//! Transactions here are short and never wait on the network: callers make their upstream
//! calls before or after, never inside.

mod admin;
mod console;
mod conversations;
mod outbox;
mod sql;
mod sqlite;
mod webex_events;
mod writer;

use std::str::FromStr;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::MigrateDatabase;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, AnyConnection, AnyPool, Connection};

use crate::domain::{ConversationKey, InboundMessage, MeetingLinks};
use crate::inbound::DeliveryReceipt;

pub use admin::{MeetingInfo, PurgeCutoffs, PurgeReport, TranscriptEntry};
pub use console::{ConsoleSession, QueueItem};
pub use conversations::{ConversationInfo, ExpertMessage};
pub use outbox::{OutboxEntry, OutboxRow, OutboxState, Outcome, Settlement};
use sql::{query, Db, Row};
use sqlite::Readers;
pub use webex_events::WebexEvent;
use writer::SharedWriter;

/// `kind` of the outbox rows that notify experts; the first one delivered opens the
/// conversation's thread.
pub const EXPERT_NOTIFICATION: &str = "expert_notification";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("statement {0:?} lacks an argument")]
    MissingArgument(String),
    #[error("the statement returned no row")]
    NoRow,
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use sqlite://PATH (a file) or postgres://…")]
    UnsupportedUrl(String),
    #[error("no {what} with id {id}")]
    NotFound { what: &'static str, id: String },
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
    #[error("another write committed together with this one failed; nothing was written")]
    BatchAborted,
    #[error("the database writer stopped")]
    WriterStopped,
    #[error("cannot start the database writer: {0}")]
    WriterStart(std::io::Error),
}

/// The answer a message got: which meeting, and whether the message opened it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub conversation_id: String,
    pub meeting_id: String,
    pub guest_url: String,
    pub host_url: String,
    pub expires_at: i64,
    pub opened_meeting: bool,
}

/// What recording a message found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// First time this message is seen; it is answered with its conversation's live
    /// meeting, and that meeting's follow-up deliveries are queued.
    Answered(Answer),
    /// First time this message is seen; its conversation has no live meeting.
    New { message_row: i64 },
    /// The sender sent this message id before; `answer` is what it got, if it got one.
    Repeat {
        message_row: i64,
        answer: Option<Answer>,
    },
}

/// The outbound message a delivery receipt reports on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptMatch {
    pub outbox_id: i64,
    pub conversation_id: Option<String>,
    pub kind: String,
    /// A receipt with the same code was received before for this message.
    pub repeated: bool,
}

/// The outcome of trying to become the one request that creates a conversation's meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This request creates the meeting, with this subject: the one an earlier attempt
    /// that stored no meeting asked the broker for, so that a retry gets that meeting
    /// again rather than a second one.
    Claimed { sub: String },
    /// Another request is creating it; `failed_at` is set when the last one gave up.
    Busy { failed_at: Option<i64> },
}

/// A meeting the broker just made, to be stored with everything that follows from it.
#[derive(Debug)]
pub struct NewMeeting<'a> {
    pub key: &'a ConversationKey,
    pub customer_name: Option<&'a str>,
    /// Used if this opens a new conversation.
    pub conversation_id: String,
    pub meeting_id: String,
    pub sub: String,
    pub links: &'a MeetingLinks,
    pub expires_at: i64,
    /// The message that needed the meeting, answered with it; `None` when an expert asked.
    pub message_row: Option<i64>,
    /// A meeting still valid past this instant makes ours unnecessary (a concurrent
    /// request stored one first).
    pub valid_after: i64,
    /// The claim under which the meeting was made; released with the commit.
    pub claim_id: &'a str,
    /// Side effects to deliver once the meeting is stored.
    pub deliveries: Vec<OutboxEntry>,
    pub now: i64,
}

/// Reads an [`Answer`] from a row whose columns are, in order: conversation id, meeting id,
/// guest URL, host URL, expiry, whether the message opened the meeting.
fn answer_from_row(row: &Row) -> Result<Answer, StoreError> {
    Ok(Answer {
        conversation_id: row.get(0)?,
        meeting_id: row.get(1)?,
        guest_url: row.get(2)?,
        host_url: row.get(3)?,
        expires_at: row.get(4)?,
        opened_meeting: row.get::<i64>(5)? != 0,
    })
}

/// The open conversation's newest meeting, if it is still valid after `valid_after`, with
/// the conversation's last message (see [`append_to_conversation`]).
async fn live_meeting(
    db: &mut Db<'_>,
    key: &ConversationKey,
    valid_after: i64,
) -> Result<Option<(Answer, Option<i64>)>, StoreError> {
    let row = query(
        "SELECT c.id, t.id, t.guest_url, t.host_url, t.expires_at, 0, c.last_message_id
         FROM conversations c JOIN meetings t ON t.conversation_id = c.id
         WHERE c.channel = $1 AND c.customer = $2 AND c.business = $3 AND c.state = 'open'
           AND t.expires_at > $4
         ORDER BY t.expires_at DESC LIMIT 1",
    )
    .bind(key.channel.as_str())
    .bind(key.customer.as_str())
    .bind(key.business.as_str())
    .bind(valid_after)
    .fetch_optional(db)
    .await?;
    row.map(|row| Ok((answer_from_row(&row)?, row.get(6)?)))
        .transpose()
}

/// Records a message's answer, unless it has one already. Returns whether it was recorded.
async fn answer_message(
    tx: &mut Db<'_>,
    message_row: i64,
    answer: &Answer,
) -> Result<bool, StoreError> {
    let previous = last_message_of(tx, &answer.conversation_id).await?;
    let updated = query(
        "UPDATE messages SET conversation_id = $1, meeting_id = $2, opened_meeting = $3,
                             previous_message_id = $4
         WHERE id = $5 AND meeting_id IS NULL",
    )
    .bind(&answer.conversation_id)
    .bind(&answer.meeting_id)
    .bind(i64::from(answer.opened_meeting))
    .bind(previous)
    .bind(message_row)
    .execute(tx)
    .await?
        == 1;
    if updated {
        append_to_conversation(tx, &answer.conversation_id, message_row, previous).await?;
    }
    Ok(updated)
}

/// The last message of a conversation's chain.
async fn last_message_of(
    tx: &mut Db<'_>,
    conversation_id: &str,
) -> Result<Option<i64>, StoreError> {
    query("SELECT last_message_id FROM conversations WHERE id = $1")
        .bind(conversation_id)
        .fetch_optional(tx)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "conversation",
            id: conversation_id.to_string(),
        })?
        .get(0)
}

/// Makes a message that already names `previous` (its conversation's last message, as this
/// transaction read it) the conversation's last message.
///
/// A conversation's messages form a chain, each naming the one before it, so that they are
/// found without an index by conversation (migration 8 says why). On PostgreSQL another
/// transaction may have appended a message since `previous` was read: then the update
/// finds the conversation changed, and the message is chained after that one instead. On
/// SQLite the writer runs one transaction at a time, and the first update succeeds.
async fn append_to_conversation(
    tx: &mut Db<'_>,
    conversation_id: &str,
    message_row: i64,
    mut previous: Option<i64>,
) -> Result<(), StoreError> {
    loop {
        let appended = query(
            "UPDATE conversations SET last_message_id = $1
             WHERE id = $2 AND last_message_id IS NOT DISTINCT FROM $3",
        )
        .bind(message_row)
        .bind(conversation_id)
        .bind(previous)
        .execute(tx)
        .await?
            == 1;
        if appended {
            return Ok(());
        }
        previous = last_message_of(tx, conversation_id).await?;
        query("UPDATE messages SET previous_message_id = $1 WHERE id = $2")
            .bind(previous)
            .bind(message_row)
            .execute(tx)
            .await?;
    }
}

/// The database a store runs on. The SQL is the same; the migrations differ.
enum Database {
    Sqlite {
        url: String,
        readers: Readers,
        /// Every write goes through this one connection (see [`writer`]).
        writer: SharedWriter,
    },
    Postgres {
        pool: AnyPool,
    },
}

#[derive(Clone)]
pub struct Store {
    database: Arc<Database>,
}

/// A connection to read with, for one statement.
enum Reader<'a> {
    Sqlite(sqlite::Reader<'a>),
    Postgres(&'a AnyPool),
}

impl Reader<'_> {
    fn db(&mut self) -> Db<'_> {
        match self {
            Reader::Sqlite(reader) => reader.db(),
            Reader::Postgres(pool) => Db::Pool(pool),
        }
    }
}

impl Store {
    /// Opens the database at `url`: `sqlite://PATH` (created if missing) or
    /// `postgres://…` (several icbridge instances can share it).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let database = if url.starts_with("sqlite:") {
            // The writer and the readers are connections of their own: each would get an
            // in-memory database of its own.
            if is_in_memory(url) {
                return Err(StoreError::UnsupportedUrl(url.to_string()));
            }
            if !Any::database_exists(url).await? {
                Any::create_database(url).await?;
            }
            let path = SqliteConnectOptions::from_str(url)?
                .get_filename()
                .to_path_buf();
            Database::Sqlite {
                url: url.to_string(),
                readers: Readers::new(&path),
                writer: SharedWriter::start(&path, &sqlite::PRAGMAS)?,
            }
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Database::Postgres {
                pool: AnyPoolOptions::new()
                    .max_connections(16)
                    .connect(url)
                    .await?,
            }
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        Ok(Self {
            database: Arc::new(database),
        })
    }

    /// Runs `job` as one transaction and returns once it is committed: on SQLite in the
    /// writer's next batch (see [`writer`]), on PostgreSQL on a pooled connection.
    async fn write<T, F>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(Db<'c>) -> BoxFuture<'c, Result<T, StoreError>> + Send + 'static,
    {
        match &*self.database {
            Database::Sqlite { writer, .. } => writer.write(Box::new(job)).await,
            Database::Postgres { pool } => {
                let mut tx = pool.begin().await?;
                let output = job(Db::Postgres(&mut tx)).await?;
                tx.commit().await?;
                Ok(output)
            }
        }
    }

    /// A connection for one read: each read sees what was committed before it started.
    fn reader(&self) -> Result<Reader<'_>, StoreError> {
        Ok(match &*self.database {
            Database::Sqlite { readers, .. } => Reader::Sqlite(readers.get()?),
            Database::Postgres { pool } => Reader::Postgres(pool),
        })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &*self.database {
            Database::Sqlite { url, .. } => {
                // sqlx runs the migrations on a connection of its own; the writer and the
                // readers see the new schema at their next statement.
                let mut connection = AnyConnection::connect(url).await?;
                sqlx::migrate!("./migrations/sqlite")
                    .run(&mut connection)
                    .await?;
                connection.close().await?;
            }
            Database::Postgres { pool } => {
                sqlx::migrate!("./migrations/postgres").run(pool).await?
            }
        }
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        query("SELECT 1")
            .fetch_one(&mut self.reader()?.db())
            .await?;
        Ok(())
    }

    /// Stores a customer's message, once per (channel, customer, business address, message
    /// id), and answers it with
    /// its conversation's live meeting (valid after `valid_after`) if there is one: then
    /// the deliveries `followups` makes for that meeting are queued in the same
    /// transaction. A repeated message id writes nothing.
    ///
    /// The meeting is looked up inside the write: it cannot change in between, and the
    /// writer's connection reads it from its own cache instead of a reader's, which
    /// starts over after every commit.
    pub async fn record_message<F>(
        &self,
        message: &InboundMessage,
        valid_after: i64,
        followups: F,
        now: i64,
    ) -> Result<Recorded, StoreError>
    where
        F: FnOnce(&Answer) -> Vec<OutboxEntry> + Send + 'static,
    {
        let owned = message.clone();
        let stored = self
            .write(move |mut tx| {
                Box::pin(async move {
                    let message = owned;
                    let live = live_meeting(&mut tx, &message.key, valid_after).await?;
                    let (live, previous) = match live {
                        Some((live, previous)) => (Some(live), previous),
                        None => (None, None),
                    };
                    let key = &message.key;
                    let Some(message_row) = query(
                        "INSERT INTO messages (channel, customer, business, external_id, body,
                                               received_at, conversation_id, meeting_id,
                                               previous_message_id)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                         ON CONFLICT (channel, customer, business, external_id)
                             WHERE external_id IS NOT NULL DO NOTHING",
                    )
                    .bind(key.channel.as_str())
                    .bind(key.customer.as_str())
                    .bind(key.business.as_str())
                    .bind(message.message_id.as_ref().map(|id| id.as_str()))
                    .bind(&message.text)
                    .bind(now)
                    .bind(live.as_ref().map(|live| live.conversation_id.as_str()))
                    .bind(live.as_ref().map(|live| live.meeting_id.as_str()))
                    .bind(previous)
                    .insert(&mut tx)
                    .await?
                    else {
                        return Ok(None);
                    };
                    let Some(live) = live else {
                        return Ok(Some(Recorded::New { message_row }));
                    };
                    append_to_conversation(&mut tx, &live.conversation_id, message_row, previous)
                        .await?;
                    for entry in &followups(&live) {
                        outbox::insert(&mut tx, entry, Some(&live.conversation_id), now).await?;
                    }
                    Ok(Some(Recorded::Answered(live)))
                })
            })
            .await?;
        if let Some(recorded) = stored {
            return Ok(recorded);
        }
        let key = &message.key;
        let message_row: i64 = query(
            "SELECT id FROM messages
             WHERE channel = $1 AND customer = $2 AND business = $3 AND external_id = $4",
        )
        .bind(key.channel.as_str())
        .bind(key.customer.as_str())
        .bind(key.business.as_str())
        .bind(message.message_id.as_ref().map(|id| id.as_str()))
        .fetch_one(&mut self.reader()?.db())
        .await?
        .get(0)?;
        let answer = self.answer_of(message_row).await?;
        Ok(Recorded::Repeat {
            message_row,
            answer,
        })
    }

    pub async fn answer_of(&self, message_row: i64) -> Result<Option<Answer>, StoreError> {
        let row = query(
            "SELECT m.conversation_id, m.meeting_id, t.guest_url, t.host_url, t.expires_at,
                    m.opened_meeting
             FROM messages m JOIN meetings t ON t.id = m.meeting_id
             WHERE m.id = $1",
        )
        .bind(message_row)
        .fetch_optional(&mut self.reader()?.db())
        .await?;
        row.as_ref().map(answer_from_row).transpose()
    }

    /// The open conversation's newest meeting, if it is still valid after `valid_after`.
    pub async fn live_meeting(
        &self,
        key: &ConversationKey,
        valid_after: i64,
    ) -> Result<Option<Answer>, StoreError> {
        let live = live_meeting(&mut self.reader()?.db(), key, valid_after).await?;
        Ok(live.map(|(answer, _)| answer))
    }

    /// Answers a message with an existing meeting, queueing `deliveries` with the answer,
    /// unless a concurrent delivery of the same message was answered first: then that first
    /// answer is returned and kept, and nothing is queued.
    pub async fn answer_with(
        &self,
        message_row: i64,
        answer: &Answer,
        deliveries: Vec<OutboxEntry>,
        now: i64,
    ) -> Result<Answer, StoreError> {
        let owned = answer.clone();
        let answered = self
            .write(move |mut tx| {
                Box::pin(async move {
                    if !answer_message(&mut tx, message_row, &owned).await? {
                        return Ok(false);
                    }
                    for entry in &deliveries {
                        outbox::insert(&mut tx, entry, Some(&owned.conversation_id), now).await?;
                    }
                    Ok(true)
                })
            })
            .await?;
        if answered {
            return Ok(answer.clone());
        }
        Ok(self
            .answer_of(message_row)
            .await?
            .unwrap_or_else(|| answer.clone()))
    }

    /// Stores a new meeting in one transaction with its conversation (opened if none is
    /// open), the answer to the message that asked for it, and its outbox deliveries.
    ///
    /// If a concurrent request stored a live meeting for the conversation first, that one is
    /// kept and returned instead, so a conversation never has two live meetings.
    pub async fn store_meeting(&self, new: NewMeeting<'_>) -> Result<Answer, StoreError> {
        let key = new.key.clone();
        let customer_name = new.customer_name.map(str::to_string);
        let links = new.links.clone();
        let claim_id = new.claim_id.to_string();
        let NewMeeting {
            conversation_id,
            meeting_id,
            sub,
            expires_at,
            message_row,
            valid_after,
            deliveries,
            now,
            ..
        } = new;
        self.write(move |mut tx| {
            Box::pin(async move {
                // The open conversation: this one, unless one is open already.
                let conversation_id: String = query(
                    "INSERT INTO conversations (id, channel, customer, business, customer_name, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (channel, customer, business) WHERE state = 'open'
                         DO UPDATE SET channel = conversations.channel
                     RETURNING id",
                )
                .bind(&conversation_id)
                .bind(key.channel.as_str())
                .bind(key.customer.as_str())
                .bind(key.business.as_str())
                .bind(customer_name)
                .bind(now)
                .fetch_one(&mut tx)
                .await?
                .get(0)?;
                let inserted = query(
                    "INSERT INTO meetings (id, conversation_id, sub, host_url, guest_url, expires_at, created_at)
                     SELECT $1, $2, $3, $4, $5, $6, $7
                     WHERE NOT EXISTS (SELECT 1 FROM meetings WHERE conversation_id = $2 AND expires_at > $8)",
                )
                .bind(&meeting_id)
                .bind(&conversation_id)
                .bind(&sub)
                .bind(links.host_url.as_str())
                .bind(links.guest_url.as_str())
                .bind(expires_at)
                .bind(now)
                .bind(valid_after)
                .execute(&mut tx)
                .await?
                    == 1;
                let answer = if inserted {
                    for entry in &deliveries {
                        outbox::insert(&mut tx, entry, Some(&conversation_id), now).await?;
                    }
                    Answer {
                        conversation_id,
                        meeting_id,
                        guest_url: links.guest_url.to_string(),
                        host_url: links.host_url.to_string(),
                        expires_at,
                        opened_meeting: true,
                    }
                } else {
                    // Only after a claim ran out (its holder crashed or stalled) can another
                    // request have stored a live meeting first.
                    let existing = query(
                        "SELECT conversation_id, id, guest_url, host_url, expires_at, 0 FROM meetings
                         WHERE conversation_id = $1 AND expires_at > $2
                         ORDER BY expires_at DESC LIMIT 1",
                    )
                    .bind(&conversation_id)
                    .bind(valid_after)
                    .fetch_one(&mut tx)
                    .await?;
                    answer_from_row(&existing)?
                };
                if !inserted {
                    // The customer opened no meeting after all.
                    query("DELETE FROM meeting_starts WHERE claim_id = $1")
                        .bind(&claim_id)
                        .execute(&mut tx)
                        .await?;
                }
                if let Some(message_row) = message_row {
                    answer_message(&mut tx, message_row, &answer).await?;
                }
                // The claim ends, with the subject it kept (also when a later claimant of
                // a claim that ran out took the subject over: it is used now).
                query(
                    "DELETE FROM meeting_claims
                     WHERE channel = $1 AND customer = $2 AND business = $3
                       AND (claim_id = $4 OR sub = $5)",
                )
                .bind(key.channel.as_str())
                .bind(key.customer.as_str())
                .bind(key.business.as_str())
                .bind(claim_id)
                .bind(&sub)
                .execute(&mut tx)
                .await?;
                Ok(answer)
            })
        })
        .await
    }

    /// Tries to become the request that creates the conversation's meeting, until `until`.
    /// Succeeds when nobody holds the claim or the holder's claim ran out, unless the last
    /// holder gave up on a broker failure after `arrived_at`: a request that was waiting for
    /// that attempt shares its failure instead of trying again. The claim keeps the subject
    /// of an earlier claim that stored no meeting, or takes `new_sub`.
    pub async fn claim_meeting(
        &self,
        key: &ConversationKey,
        claim_id: &str,
        new_sub: &str,
        arrived_at: i64,
        now: i64,
        until: i64,
    ) -> Result<Claim, StoreError> {
        let (owned_key, owned_claim_id, new_sub) =
            (key.clone(), claim_id.to_string(), new_sub.to_string());
        let claimed = self
            .write(move |mut tx| {
                Box::pin(async move {
                    query(
                        "INSERT INTO meeting_claims
                             (channel, customer, business, claim_id, claimed_until, sub)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (channel, customer, business) DO UPDATE
                             SET claim_id = excluded.claim_id,
                                 claimed_until = excluded.claimed_until,
                                 failed_at = NULL,
                                 sub = COALESCE(meeting_claims.sub, excluded.sub)
                             WHERE meeting_claims.claimed_until <= $7
                               AND (meeting_claims.failed_at IS NULL OR meeting_claims.failed_at < $8)
                         RETURNING sub",
                    )
                    .bind(owned_key.channel.as_str())
                    .bind(owned_key.customer.as_str())
                    .bind(owned_key.business.as_str())
                    .bind(owned_claim_id)
                    .bind(until)
                    .bind(new_sub)
                    .bind(now)
                    .bind(arrived_at)
                    .fetch_all(&mut tx)
                    .await
                })
            })
            .await?;
        if let Some(row) = claimed.first() {
            return Ok(Claim::Claimed { sub: row.get(0)? });
        }
        let failed_at: Option<Option<i64>> = query(
            "SELECT failed_at FROM meeting_claims WHERE channel = $1 AND customer = $2 AND business = $3",
        )
        .bind(key.channel.as_str())
        .bind(key.customer.as_str())
        .bind(key.business.as_str())
        .fetch_optional(&mut self.reader()?.db())
        .await?
        .map(|row| row.get(0))
        .transpose()?;
        Ok(Claim::Busy {
            failed_at: failed_at.flatten(),
        })
    }

    /// Gives a claim up without a meeting; `failed_at` tells waiters the broker failed.
    pub async fn release_claim(
        &self,
        key: &ConversationKey,
        claim_id: &str,
        failed_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let (key, claim_id) = (key.clone(), claim_id.to_string());
        self.write(move |mut tx| {
            Box::pin(async move {
                query(
                    "UPDATE meeting_claims SET claimed_until = 0, failed_at = $1
                 WHERE channel = $2 AND customer = $3 AND business = $4 AND claim_id = $5",
                )
                .bind(failed_at)
                .bind(key.channel.as_str())
                .bind(key.customer.as_str())
                .bind(key.business.as_str())
                .bind(claim_id)
                .execute(&mut tx)
                .await
            })
        })
        .await?;
        Ok(())
    }

    /// Reserves one of the customer's (channel and number, any business address) `limit`
    /// new meetings per window for the claim `claim_id`: `Ok(None)` when reserved, or
    /// `Ok(Some(oldest))`, the oldest start within the window, when the limit is reached.
    /// Concurrent reservations for one customer wait for each other (the upsert on
    /// `meeting_limit_locks` locks the customer's row until the commit), so that together
    /// they never pass the limit.
    pub async fn reserve_meeting_start(
        &self,
        key: &ConversationKey,
        claim_id: &str,
        limit: i64,
        window_start: i64,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let (key, claim_id) = (key.clone(), claim_id.to_string());
        self.write(move |mut tx| {
            Box::pin(async move {
                let (channel, customer) = (key.channel.as_str(), key.customer.as_str());
                query(
                    "INSERT INTO meeting_limit_locks (channel, customer) VALUES ($1, $2)
                     ON CONFLICT (channel, customer) DO UPDATE SET channel = excluded.channel",
                )
                .bind(channel)
                .bind(customer)
                .execute(&mut tx)
                .await?;
                let row = query(
                    "SELECT COUNT(*), MIN(started_at) FROM meeting_starts
                     WHERE channel = $1 AND customer = $2 AND started_at > $3",
                )
                .bind(channel)
                .bind(customer)
                .bind(window_start)
                .fetch_one(&mut tx)
                .await?;
                let (started, oldest): (i64, Option<i64>) = (row.get(0)?, row.get(1)?);
                if started >= limit {
                    return Ok(Some(oldest.unwrap_or(now)));
                }
                query(
                    "INSERT INTO meeting_starts (channel, customer, claim_id, started_at)
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(channel)
                .bind(customer)
                .bind(claim_id)
                .bind(now)
                .execute(&mut tx)
                .await?;
                Ok(None)
            })
        })
        .await
    }

    /// Gives back the start reserved for a claim that opened no meeting.
    pub async fn release_meeting_start(&self, claim_id: &str) -> Result<(), StoreError> {
        let claim_id = claim_id.to_string();
        self.write(move |mut tx| {
            Box::pin(async move {
                query("DELETE FROM meeting_starts WHERE claim_id = $1")
                    .bind(claim_id)
                    .execute(&mut tx)
                    .await
            })
        })
        .await?;
        Ok(())
    }

    /// Stores a delivery receipt and updates the outbound message it reports on (found by
    /// `outbox_id`, from the receipt's correlation id, or by Webex Connect's transaction id).
    pub async fn record_receipt(
        &self,
        receipt: &DeliveryReceipt,
        outbox_id: Option<i64>,
        status: &str,
        payload: &str,
        now: i64,
    ) -> Result<Option<ReceiptMatch>, StoreError> {
        let (receipt, status, payload) = (receipt.clone(), status.to_string(), payload.to_string());
        self.write(move |mut tx| {
            Box::pin(async move {
                let (receipt, status, payload) = (&receipt, status.as_str(), payload.as_str());

                let matched = query(
                    "UPDATE outbox SET delivery_status = $1, delivery_code = $2
             WHERE id = (SELECT id FROM outbox
                         -- Only customer replies are sent through Webex Connect (and
                         -- indexed by its transaction id).
                         WHERE id = $3 OR (upstream_id = $4 AND kind = 'customer_reply')
                         ORDER BY id LIMIT 1)
             RETURNING id, conversation_id, kind",
                )
                .bind(status)
                .bind(&receipt.code)
                .bind(outbox_id)
                .bind(&receipt.transid)
                .fetch_optional(&mut tx)
                .await?;
                let matched = match matched {
                    Some(row) => {
                        let outbox_id: i64 = row.get(0)?;
                        let repeated: i64 = query(
                            "SELECT COUNT(*) FROM delivery_receipts
                     WHERE outbox_id = $1 AND code IS NOT DISTINCT FROM $2",
                        )
                        .bind(outbox_id)
                        .bind(&receipt.code)
                        .fetch_one(&mut tx)
                        .await?
                        .get(0)?;
                        Some(ReceiptMatch {
                            outbox_id,
                            conversation_id: row.get(1)?,
                            kind: row.get(2)?,
                            repeated: repeated > 0,
                        })
                    }
                    None => None,
                };
                query(
                    "INSERT INTO delivery_receipts
               (correlation_id, transid, code, status, channel, outbox_id, payload, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&receipt.correlation_id)
                .bind(&receipt.transid)
                .bind(&receipt.code)
                .bind(status)
                .bind(&receipt.channel)
                .bind(matched.as_ref().map(|m| m.outbox_id))
                .bind(payload)
                .bind(now)
                .execute(&mut tx)
                .await?;
                Ok(matched)
            })
        })
        .await
    }

    /// Queues one delivery on its own.
    pub async fn enqueue(
        &self,
        entry: &OutboxEntry,
        conversation_id: Option<&str>,
        now: i64,
    ) -> Result<i64, StoreError> {
        let (entry, conversation_id) = (entry.clone(), conversation_id.map(str::to_string));
        self.write(move |mut tx| {
            Box::pin(async move {
                let id = outbox::insert(&mut tx, &entry, conversation_id.as_deref(), now).await?;
                Ok(id)
            })
        })
        .await
    }
}

/// Whether `url` names an in-memory SQLite database (`sqlite::memory:`, `?mode=memory`).
fn is_in_memory(url: &str) -> bool {
    let (database, query) = url.split_once('?').unwrap_or((url, ""));
    let database = database
        .trim_start_matches("sqlite:")
        .trim_start_matches("//");
    database == ":memory:" || query.split('&').any(|pair| pair == "mode=memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_in_memory_sqlite_database_is_refused() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://x.db?mode=memory",
        ] {
            let refused = Store::connect(url).await;
            assert!(
                matches!(refused, Err(StoreError::UnsupportedUrl(ref u)) if u == url),
                "{url}: {:?}",
                refused.err()
            );
        }
    }
}
