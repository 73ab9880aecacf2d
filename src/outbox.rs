//! The delivery worker: sends what the outbox holds, retries with backoff, dead-letters.
//!
//! Rows are claimed with a lease, so a worker that dies mid-send leaves its rows to be
//! claimed again once the lease runs out (at-least-once delivery). Rows of one conversation
//! are sent in order; different conversations are sent concurrently.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::store::{OutboxEntry, OutboxRow, Store, StoreError};
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
const BATCH: i64 = 64;

#[derive(Clone)]
pub struct OutboxWorker {
    store: Store,
    webex: WebexClient,
    connect: Option<ConnectClient>,
    schedule: Arc<[Duration]>,
    metrics: Metrics,
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
        }
    }

    /// Gives a row up for good.
    async fn dead(&self, id: i64, error: &str) -> Result<(), StoreError> {
        self.metrics.dead_letter();
        self.store.outbox_dead(id, error).await
    }

    /// Claims the rows due now and delivers them. Returns how many it handled.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let rows = self
            .store
            .claim_due_outbox(now_ms(), LEASE.as_millis() as i64, BATCH)
            .await?;
        let count = rows.len();
        let mut by_conversation: BTreeMap<Option<String>, Vec<OutboxRow>> = BTreeMap::new();
        for row in rows {
            by_conversation
                .entry(row.conversation_id.clone())
                .or_default()
                .push(row);
        }
        let chains = by_conversation.into_values().map(|rows| async move {
            for row in rows {
                self.deliver(row).await?;
            }
            Ok::<_, StoreError>(())
        });
        for result in join_all(chains).await {
            result?;
        }
        Ok(count)
    }

    /// Runs until `stop` turns true; a send in progress is finished first.
    pub async fn run(self, wake: Arc<Notify>, stop: watch::Receiver<bool>) {
        worker::run_loop("outbox", wake, stop, || self.run_once()).await;
    }

    async fn deliver(&self, row: OutboxRow) -> Result<(), StoreError> {
        let result = match serde_json::from_str::<Delivery>(&row.payload) {
            Ok(delivery) => self.send(&row, delivery).await,
            Err(e) => {
                let error = format!("unreadable outbox payload: {e}");
                tracing::error!(outbox_id = row.id, kind = %row.kind, %error, "outbox row is dead");
                return self.dead(row.id, &error).await;
            }
        };
        match result {
            Ok(upstream_id) => {
                // At debug: under load, one line per relayed message would outnumber every
                // other line; failures are logged at warn and error.
                tracing::debug!(outbox_id = row.id, kind = %row.kind, attempts = row.attempts, "delivered");
                let opens_thread = row.kind == crate::store::EXPERT_NOTIFICATION;
                self.store
                    .outbox_sent(row.id, &upstream_id, now_ms(), opens_thread)
                    .await
            }
            Err(Failure::Upstream(error)) => self.failed(&row, &error).await,
            Err(Failure::NotConfigured(reason)) => {
                tracing::error!(outbox_id = row.id, kind = %row.kind, reason, "outbox row is dead");
                self.dead(row.id, reason).await
            }
            Err(Failure::Store(error)) => Err(error),
            Err(Failure::ThreadNotOpenYet) => {
                // Not a failure: wait for the notification, without using up attempts.
                let wait = self.retry_delay(1, None).unwrap_or(Duration::from_secs(1));
                let next = now_ms() + wait.as_millis() as i64;
                self.store.outbox_postpone(row.id, next).await
            }
        }
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

    async fn failed(&self, row: &OutboxRow, error: &UpstreamError) -> Result<(), StoreError> {
        let message = error.to_string();
        let delay = error
            .is_retryable()
            .then(|| self.retry_delay(row.attempts, error.retry_after()))
            .flatten();
        match delay {
            Some(delay) => {
                tracing::warn!(outbox_id = row.id, kind = %row.kind, attempts = row.attempts,
                    retry_in_ms = delay.as_millis() as u64, error = %message, "delivery failed, will retry");
                let next = now_ms() + delay.as_millis() as i64;
                self.store.outbox_retry_at(row.id, &message, next).await
            }
            None => {
                tracing::error!(outbox_id = row.id, kind = %row.kind, attempts = row.attempts,
                    error = %message, "delivery failed for good; the row is dead");
                self.dead(row.id, &message).await
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
