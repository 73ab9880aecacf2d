//! The delivery worker: sends what the outbox holds, retries with backoff, dead-letters.
//!
//! Rows are claimed with a lease, so a worker that dies mid-send leaves its rows to be
//! claimed again once the lease runs out (at-least-once delivery). Rows of one conversation
//! are sent in order; different conversations are sent concurrently.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{join3, join_all};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::store::{OutboxEntry, OutboxRow, Outcome, Settlement, Store, StoreError};
use crate::upstream::connect::{ConnectClient, SmsRequest, WhatsappRequest};
use crate::upstream::webex::{Destination, NewMessage, WebexClient};
use crate::upstream::UpstreamError;
use crate::worker;

/// Why a row exists; shown to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A new meeting's host link for the experts.
    ExpertNotification,
    /// Something else the experts should know about a conversation.
    ExpertNotice,
    CustomerReply,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::ExpertNotification => crate::store::EXPERT_NOTIFICATION,
            Purpose::ExpertNotice => "expert_notice",
            Purpose::CustomerReply => CUSTOMER_REPLY,
        }
    }
}

const CUSTOMER_REPLY: &str = "customer_reply";

/// The correlation id sent with a message to Webex Connect: the outbox row's id, prefixed so
/// that receipts for messages others sent (a flow's own replies) never match a row.
pub fn correlation_id(outbox_id: i64) -> String {
    format!("{CORRELATION_PREFIX}{outbox_id}")
}

/// The outbox row a receipt's correlation id names, if icbridge made it.
pub fn outbox_id_of(correlation_id: &str) -> Option<i64> {
    correlation_id
        .strip_prefix(CORRELATION_PREFIX)?
        .parse()
        .ok()
}

const CORRELATION_PREFIX: &str = "icb-";

/// Whether an outbox row of this kind went to the customer.
pub fn is_customer_reply(kind: &str) -> bool {
    kind == CUSTOMER_REPLY
}

/// The request a row makes, stored as JSON. Correlation ids are filled in at send time
/// from the row itself (its id, its conversation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Delivery {
    WebexMessage(NewMessage),
    /// A message in the row's conversation's thread in the experts' space. The thread is
    /// looked up when sending: it exists once the conversation's first notification is sent.
    ThreadMessage {
        destination: Destination,
        markdown: String,
    },
    Sms {
        from: String,
        to: String,
        content: String,
    },
    Whatsapp {
        app_id: String,
        waid: String,
        body: String,
    },
}

impl Delivery {
    pub fn entry(&self, purpose: Purpose) -> OutboxEntry {
        OutboxEntry {
            kind: purpose.as_str().to_string(),
            payload: serde_json::to_string(self).expect("deliveries serialise"),
        }
    }
}

/// How long a claimed row stays reserved for the worker that claimed it: longer than any
/// single send can take (client timeouts are 10 s). A worker that dies mid-send delays
/// its rows by at most this much.
const LEASE: Duration = Duration::from_secs(30);
/// Rows claimed, and sent concurrently, per round. Each round costs a claim and a
/// write-back; at 64 the outbox fell further behind follow-ups at saturation
/// (bench/RESULTS.md).
pub const BATCH: usize = 128;
/// Full rounds one [`OutboxWorker::run_once`] delivers back to back.
const ROUNDS_PER_RUN: usize = 8;

/// Threads opened by the notifications of a round, by conversation: the rows of the next
/// round were claimed before that round's write-back, so without a thread of their own.
type OpenedThreads = HashMap<String, String>;

#[derive(Clone)]
pub struct OutboxWorker {
    store: Store,
    webex: WebexClient,
    connect: Option<ConnectClient>,
    schedule: Arc<[Duration]>,
    metrics: Metrics,
    rounds_per_run: usize,
    /// Rows claimed during the last round of a run, for the next run.
    claimed_ahead: Arc<Mutex<Vec<OutboxRow>>>,
}

impl OutboxWorker {
    pub fn new(
        store: Store,
        webex: WebexClient,
        connect: Option<ConnectClient>,
        schedule: Vec<Duration>,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            webex,
            connect,
            schedule: schedule.into(),
            metrics,
            rounds_per_run: ROUNDS_PER_RUN,
            claimed_ahead: Arc::default(),
        }
    }

    /// At most `rounds` full rounds per [`run_once`](Self::run_once), instead of
    /// [`ROUNDS_PER_RUN`]: lets tests see what a run leaves claimed ahead.
    pub fn with_rounds_per_run(mut self, rounds: usize) -> Self {
        self.rounds_per_run = rounds.max(1);
        self
    }

    /// Claims the rows due now, delivers them and writes back what became of them.
    /// Returns how many it handled.
    ///
    /// A full round suggests more is due: while it is sent, the next round is claimed and
    /// the round before is written back, so that the worker does not wait for a commit
    /// between rounds. Each conversation's rows are still sent in order: a round starts
    /// once the one before has been sent. After [`ROUNDS_PER_RUN`] full rounds the run
    /// ends with everything it sent written back, keeping what it claimed last for the
    /// next run.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        self.run_rounds(None).await
    }

    /// [`run_once`](Self::run_once), ending after the current round once `stop` turns true.
    async fn run_rounds(&self, stop: Option<&watch::Receiver<bool>>) -> Result<usize, StoreError> {
        let ahead = std::mem::take(&mut *self.claimed_ahead.lock().expect("not poisoned"));
        let mut rows = if ahead.is_empty() {
            self.claim().await?
        } else {
            ahead
        };
        let mut handled = 0;
        let mut unsettled = Vec::new();
        let mut round = 0;
        loop {
            round += 1;
            handled += rows.len();
            let claim_next = rows.len() == BATCH;
            let next = async {
                if claim_next {
                    self.claim().await
                } else {
                    Ok(Vec::new())
                }
            };
            let (delivered, settled, next) = join3(
                self.deliver_round(rows),
                self.store.settle_outbox(std::mem::take(&mut unsettled)),
                next,
            )
            .await;
            let (settlements, opened, error) = delivered;
            unsettled = settlements;
            let (mut next, claim_error) = match next {
                Ok(rows) => (rows, None),
                Err(error) => (Vec::new(), Some(error)),
            };
            place_in_opened_threads(&mut next, &opened);
            let failed = settled.err().or(error).or(claim_error);
            let stopping = stop.is_some_and(|stop| *stop.borrow());
            if failed.is_some() || next.is_empty() || round >= self.rounds_per_run || stopping {
                // Claimed rows are kept even when something failed: they are leased.
                *self.claimed_ahead.lock().expect("not poisoned") = next;
                // What was sent is written back even after an error, or it would be sent
                // again once its lease ran out.
                self.store.settle_outbox(unsettled).await?;
                return match failed {
                    Some(error) => Err(error),
                    None => Ok(handled),
                };
            }
            rows = next;
        }
    }

    async fn claim(&self) -> Result<Vec<OutboxRow>, StoreError> {
        self.store
            .claim_due_outbox(now_ms(), LEASE.as_millis() as i64, BATCH as i64)
            .await
    }

    /// Delivers a round of rows: each conversation's in order, different conversations
    /// concurrently. Returns what became of each row delivered, the threads opened, and
    /// the first error reading the store.
    async fn deliver_round(
        &self,
        rows: Vec<OutboxRow>,
    ) -> (Vec<Settlement>, OpenedThreads, Option<StoreError>) {
        let count = rows.len();
        let mut by_conversation: BTreeMap<Option<String>, Vec<OutboxRow>> = BTreeMap::new();
        for row in rows {
            by_conversation
                .entry(row.conversation_id.clone())
                .or_default()
                .push(row);
        }
        let chains = by_conversation
            .into_values()
            .map(|rows| self.deliver_in_order(rows));
        // What was delivered is written back even when another chain could not read the
        // store: otherwise its rows would be sent again once their lease ran out.
        let mut settlements = Vec::with_capacity(count);
        let mut opened = OpenedThreads::new();
        let mut first_error = None;
        for (settled, thread, error) in join_all(chains).await {
            settlements.extend(settled);
            opened.extend(thread);
            first_error = first_error.or(error);
        }
        (settlements, opened, first_error)
    }

    /// Runs until `stop` turns true; the round being sent is finished first. Rows claimed
    /// ahead are put back, due at once, for the next start (or another instance).
    pub async fn run(self, wake: Arc<Notify>, stop: watch::Receiver<bool>) {
        let stopping = stop.clone();
        worker::run_loop("outbox", wake, stop, || self.run_rounds(Some(&stopping))).await;
        let ahead = std::mem::take(&mut *self.claimed_ahead.lock().expect("not poisoned"));
        let now = now_ms();
        let released = ahead
            .iter()
            .map(|row| Settlement {
                id: row.id,
                outcome: Outcome::Postponed {
                    next_attempt_at: now,
                },
            })
            .collect();
        if let Err(error) = self.store.settle_outbox(released).await {
            tracing::warn!(%error, rows = ahead.len(),
                "could not put back the rows claimed ahead; they are due again when their lease runs out");
        }
    }

    /// Delivers one conversation's rows one after the other. A row's outcome is written
    /// back with the round's, so a notification delivered here opens the thread of the
    /// rows after it in memory first; the thread it opened is returned with the outcomes.
    /// Stops at the first row the store could not be read for.
    async fn deliver_in_order(
        &self,
        rows: Vec<OutboxRow>,
    ) -> (
        Vec<Settlement>,
        Option<(String, String)>,
        Option<StoreError>,
    ) {
        let mut settled = Vec::with_capacity(rows.len());
        let mut opened_thread = None;
        let conversation_id = rows.first().and_then(|row| row.conversation_id.clone());
        let mut error = None;
        for mut row in rows {
            if row.thread_message_id.is_none() {
                row.thread_message_id.clone_from(&opened_thread);
            }
            let had_thread = row.thread_message_id.is_some();
            let id = row.id;
            match self.deliver(row).await {
                Ok(outcome) => {
                    if let Outcome::Sent {
                        upstream_id,
                        opens_thread: true,
                        ..
                    } = &outcome
                    {
                        if !had_thread {
                            opened_thread = Some(upstream_id.clone());
                        }
                    }
                    settled.push(Settlement { id, outcome });
                }
                Err(failure) => {
                    error = Some(failure);
                    break;
                }
            }
        }
        let opened = conversation_id.zip(opened_thread);
        (settled, opened, error)
    }

    /// Sends one row and decides what becomes of it.
    async fn deliver(&self, row: OutboxRow) -> Result<Outcome, StoreError> {
        let result = match serde_json::from_str::<Delivery>(&row.payload) {
            Ok(delivery) => self.send(&row, delivery).await,
            Err(e) => {
                let error = format!("unreadable outbox payload: {e}");
                tracing::error!(outbox_id = row.id, kind = %row.kind, %error, "outbox row is dead");
                return Ok(self.dead(error));
            }
        };
        match result {
            Ok(upstream_id) => {
                // At debug: under load, one line per relayed message would outnumber every
                // other line; failures are logged at warn and error.
                tracing::debug!(outbox_id = row.id, kind = %row.kind, attempts = row.attempts, "delivered");
                Ok(Outcome::Sent {
                    upstream_id,
                    at: now_ms(),
                    opens_thread: row.kind == crate::store::EXPERT_NOTIFICATION,
                })
            }
            Err(Failure::Upstream(error)) => Ok(self.failed(&row, &error)),
            Err(Failure::NotConfigured(reason)) => {
                tracing::error!(outbox_id = row.id, kind = %row.kind, reason, "outbox row is dead");
                Ok(self.dead(reason.to_string()))
            }
            Err(Failure::Store(error)) => Err(error),
            Err(Failure::ThreadNotOpenYet) => {
                // Not a failure: wait for the notification, without using up attempts.
                let wait = self.retry_delay(1, None).unwrap_or(Duration::from_secs(1));
                Ok(Outcome::Postponed {
                    next_attempt_at: now_ms() + wait.as_millis() as i64,
                })
            }
        }
    }

    /// Gives a row up for good.
    fn dead(&self, error: String) -> Outcome {
        self.metrics.dead_letter();
        Outcome::Dead { error }
    }

    async fn send(&self, row: &OutboxRow, delivery: Delivery) -> Result<String, Failure> {
        let correlation_id = correlation_id(row.id);
        let callback_data = row.conversation_id.clone().unwrap_or_default();
        match delivery {
            Delivery::WebexMessage(message) => Ok(self.webex.post_message(&message).await?),
            Delivery::ThreadMessage {
                destination,
                markdown,
            } => {
                let message = self.in_thread(row, destination, markdown).await?;
                Ok(self.webex.post_message(&message).await?)
            }
            Delivery::Sms { from, to, content } => {
                let connect = self.connect.as_ref().ok_or(Failure::NOT_CONFIGURED)?;
                let request = SmsRequest {
                    from,
                    to,
                    content,
                    correlation_id,
                    callback_data,
                };
                Ok(connect.send_sms(&request).await?)
            }
            Delivery::Whatsapp { app_id, waid, body } => {
                let connect = self.connect.as_ref().ok_or(Failure::NOT_CONFIGURED)?;
                let request = WhatsappRequest {
                    app_id,
                    waid,
                    body,
                    correlation_id,
                    callback_data,
                };
                Ok(connect.send_whatsapp(&request).await?)
            }
        }
    }

    /// Places a thread message under its conversation's thread. Without a thread (the
    /// notification failed for good) it goes to the space on its own, saying who it is about.
    async fn in_thread(
        &self,
        row: &OutboxRow,
        destination: Destination,
        markdown: String,
    ) -> Result<NewMessage, Failure> {
        let (parent_id, markdown) = match &row.thread_message_id {
            Some(thread) => (Some(thread.clone()), markdown),
            // The thread may have opened since the row was claimed.
            None => {
                self.placement(row.conversation_id.as_deref(), markdown)
                    .await?
            }
        };
        Ok(NewMessage {
            destination,
            markdown,
            parent_id,
            attachments: Vec::new(),
        })
    }

    /// The thread a conversation's message goes under, and its text.
    async fn placement(
        &self,
        conversation_id: Option<&str>,
        markdown: String,
    ) -> Result<(Option<String>, String), Failure> {
        let Some(conversation_id) = conversation_id else {
            return Ok((None, markdown));
        };
        let Some(conversation) = self.store.conversation(conversation_id).await? else {
            return Ok((None, markdown));
        };
        match conversation.thread_message_id {
            Some(thread) => Ok((Some(thread), markdown)),
            None if self.store.notification_pending(&conversation.id).await? => {
                Err(Failure::ThreadNotOpenYet)
            }
            None => {
                let about = format!(
                    "{} · {}",
                    conversation.key.channel.display_name(),
                    conversation.key.customer.masked()
                );
                Ok((None, format!("**{about}**\n\n{markdown}")))
            }
        }
    }

    fn failed(&self, row: &OutboxRow, error: &UpstreamError) -> Outcome {
        let message = error.to_string();
        let delay = error
            .is_retryable()
            .then(|| self.retry_delay(row.attempts, error.retry_after()))
            .flatten();
        match delay {
            Some(delay) => {
                tracing::warn!(outbox_id = row.id, kind = %row.kind, attempts = row.attempts,
                    retry_in_ms = delay.as_millis() as u64, error = %message, "delivery failed, will retry");
                Outcome::RetryAt {
                    error: message,
                    next_attempt_at: now_ms() + delay.as_millis() as i64,
                }
            }
            None => {
                tracing::error!(outbox_id = row.id, kind = %row.kind, attempts = row.attempts,
                    error = %message, "delivery failed for good; the row is dead");
                self.dead(message)
            }
        }
    }

    fn retry_delay(&self, attempts: i64, retry_after: Option<Duration>) -> Option<Duration> {
        worker::backoff(&self.schedule, attempts, retry_after)
    }
}

enum Failure {
    Upstream(UpstreamError),
    NotConfigured(&'static str),
    Store(StoreError),
    /// A thread message whose thread does not exist yet.
    ThreadNotOpenYet,
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Store(error)
    }
}

impl Failure {
    const NOT_CONFIGURED: Failure = Failure::NotConfigured(
        "customer replies need ICB_CONNECT_API_URL and ICB_CONNECT_SERVICE_KEY",
    );
}

impl From<UpstreamError> for Failure {
    fn from(error: UpstreamError) -> Self {
        Failure::Upstream(error)
    }
}

/// Places rows claimed before the write-back of the round that opened their
/// conversation's thread under that thread.
fn place_in_opened_threads(rows: &mut [OutboxRow], opened: &OpenedThreads) {
    for row in rows
        .iter_mut()
        .filter(|row| row.thread_message_id.is_none())
    {
        if let Some(thread) = row.conversation_id.as_ref().and_then(|id| opened.get(id)) {
            row.thread_message_id = Some(thread.clone());
        }
    }
}
