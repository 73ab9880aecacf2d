//! The heart of icbridge: a customer's message becomes a meeting, an answer and the
//! deliveries that follow from it. Routes, the experts' desk, the console and the CLI all
//! act through the bridge: what a conversation is and what may happen to it is decided
//! here, once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use url::Url;
use uuid::Uuid;

use crate::delivery::pauses::Pauses;
use crate::desks::Desks;
use crate::domain::clock::Clock;
use crate::domain::metrics::Metrics;
use crate::domain::{
    AddressError, ConversationKey, Delivery, OutboxEntry, Purpose, ReplySenders, ReplyTexts,
    Vertical, WhatsappTemplate,
};
use crate::store::{Store, StoreError};
use crate::upstream::instant_connect::InstantConnectClient;
use crate::upstream::UpstreamError;

mod actions;
mod appointments;
mod customer_data;
mod events;
mod guests;
mod meetings;
mod messages;
mod own_links;
mod rating;
mod reads;

pub use actions::{CloseOutcome, NewLinkOutcome, TransferOutcome};
pub use appointments::{AppointmentError, AppointmentOutcome, AppointmentRequest};
pub use events::{EventsPage, EventsRequest};
pub use guests::AddGuestOutcome;
pub use messages::MessageReply;
pub use own_links::LinkVisit;
pub use reads::ConversationDetail;

/// A meeting whose links run out sooner than this is not handed out again: the customer
/// and the expert need time to join.
pub const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// The whole time the broker may take for one message, retries included: Webex Connect
/// gives up on a webhook after 10 s.
pub const BROKER_BUDGET: Duration = Duration::from_secs(8);
/// Retries after the first broker call.
const BROKER_RETRIES: u32 = 2;
/// Wait before a quick retry (times the attempt number) when the broker names none.
const QUICK_RETRY_DELAY: Duration = Duration::from_millis(200);
/// A retry with less time left than this is not started.
const MIN_ATTEMPT_TIME: Duration = Duration::from_millis(500);
/// How long a claim to create a meeting holds: past the broker budget, so only a crashed
/// claimant's claim runs out.
pub(super) const CLAIM_LEASE: Duration = Duration::from_secs(10);
/// How long a request waits for another request's meeting before answering 503.
pub(super) const WAIT_FOR_OTHER_REQUEST: Duration = Duration::from_secs(9);
pub(super) const CLAIM_POLL: Duration = Duration::from_millis(20);
const HOUR_MS: i64 = 3_600_000;
/// Why deliveries about an erased customer were not sent (their `last_error`).
const ERASED_REASON: &str = "cancelled: the customer's data was erased";
/// Waiting conversations handed to a desk in one go, at most; the next round takes more.
const RELEASE_BATCH: i64 = 100;
/// Between the notifications of waiting conversations handed over at once: the worker
/// sends conversations side by side, and one a second keeps them in order in the space.
const HANDOVER_SPACING_MS: i64 = 1000;

/// A new id for a conversation, meeting, claim or appointment: time-ordered (UUIDv7), so
/// that new rows go at the end of the indexes they are keys of rather than anywhere in
/// them, and a commit writes fewer pages. (A meeting's subject stays random, as the broker
/// asks: it is inside the link.)
fn new_id() -> String {
    Uuid::now_v7().to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("another request for this conversation could not get a meeting in time")]
    MeetingUnavailable,
    #[error("this customer opened too many meetings in the last hour")]
    RateLimited { retry_after: Duration },
    #[error("the video service asked to wait; no meeting can be made for now")]
    Paused { retry_after: Duration },
    #[error("no conversation with id {0}")]
    UnknownConversation(String),
    #[error("`number` {0}")]
    InvalidNumber(AddressError),
    #[error("no pending or dead delivery with id {0}")]
    UnknownDelivery(i64),
    #[error("no event subscription named {0:?}")]
    UnknownSubscription(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BridgeError {
    /// The database did not answer in time; the same request can succeed later.
    pub fn is_busy(&self) -> bool {
        matches!(self, BridgeError::Store(error) if error.is_busy())
    }
}

/// How new meetings are made, and how many a customer may open.
#[derive(Debug, Clone)]
pub struct MeetingPolicy {
    pub ttl: Duration,
    /// One broker call's timeout (`ICB_IC_TIMEOUT`).
    pub broker_timeout: Duration,
    pub max_new_meetings_per_hour: u32,
    pub vertical: Vertical,
    pub short_urls: bool,
    pub host_login: bool,
    /// Links per meeting of each role.
    pub hosts: u8,
    pub guests: u8,
    /// Booked consultations: when the reminder and the card go, and how long around the
    /// slot the links work.
    pub appointment_reminder: Duration,
    pub appointment_early_join: Duration,
}

/// How icbridge writes to customers through the Webex Connect API, when it is configured.
#[derive(Debug, Clone, Default)]
pub struct CustomerReplies {
    pub senders: ReplySenders,
    /// Send the guest link when a message opens a meeting (`ICB_REPLY_MODE=connect`).
    pub send_links: bool,
    /// And again for every later message (`ICB_FOLLOWUP_REPLY=link`).
    pub resend_link_on_followup: bool,
    /// The approved template for WhatsApp customers whose 24-hour window is closed.
    pub whatsapp_template: Option<WhatsappTemplate>,
    /// Ask the customer for a rating once their conversation is closed (`ICB_SURVEY`).
    pub survey: bool,
    /// Refuse an expert's reply too long for the customer's channel, rather than send it in
    /// numbered parts (`ICB_LONG_REPLIES=refuse`).
    pub refuse_long_replies: bool,
}

/// Everything the bridge works with.
pub struct BridgeParts {
    pub store: Store,
    pub broker: InstantConnectClient,
    pub policy: MeetingPolicy,
    /// The customer's text with the guest link, in each desk's wording.
    pub reply_texts: ReplyTexts,
    /// `Some` when the Webex Connect API is configured.
    pub customer_replies: Option<CustomerReplies>,
    /// Woken when deliveries are queued.
    pub outbox_wake: Arc<Notify>,
    pub metrics: Metrics,
    pub clock: Clock,
    /// Upstreams that asked to wait or refused the credential.
    pub pauses: Pauses,
    /// Which desk a new conversation belongs to.
    pub desks: Desks,
    /// `ICB_PUBLIC_URL`: when set, the links icbridge hands out are its own,
    /// `ICB_PUBLIC_URL/j/<code>`, redirecting to Instant Connect's while they may be used.
    pub link_base: Option<Url>,
    /// What each event subscription receives beyond the default, by name (for reading
    /// stored events as it would get them).
    pub event_includes: std::collections::HashMap<String, crate::domain::events::Includes>,
}

#[derive(Clone)]
pub struct Bridge {
    inner: Arc<BridgeParts>,
}

impl Bridge {
    pub fn new(parts: BridgeParts) -> Self {
        Self {
            inner: Arc::new(parts),
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    fn now(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Whether icbridge can write to customers (the Webex Connect API is configured).
    pub fn can_reach_customers(&self) -> bool {
        self.inner.customer_replies.is_some()
    }

    fn wake_outbox(&self) {
        self.inner.outbox_wake.notify_one();
    }

    /// Queues deliveries on their own and wakes the worker.
    pub async fn enqueue(
        &self,
        deliveries: &[(Delivery, Purpose)],
        conversation_id: Option<&str>,
    ) -> Result<(), BridgeError> {
        let entries: Vec<OutboxEntry> = deliveries
            .iter()
            .map(|(delivery, purpose)| delivery.entry(*purpose))
            .collect();
        self.inner
            .store
            .enqueue(&entries, conversation_id, self.now())
            .await?;
        self.wake_outbox();
        Ok(())
    }

    /// A message in a conversation's thread in the experts' space.
    fn to_thread(markdown: String) -> OutboxEntry {
        Delivery::ThreadMessage { markdown }.entry(Purpose::ExpertNotice)
    }

    /// The answer to a customer's message, sent by icbridge when it sends replies
    /// (`ICB_REPLY_MODE=connect`); else the flow sends the answer's `reply`.
    fn answer_to_customer(
        &self,
        key: &ConversationKey,
        text: String,
        purpose: Purpose,
    ) -> Vec<OutboxEntry> {
        match &self.inner.customer_replies {
            Some(replies) if replies.send_links => {
                replies.senders.reply(key, text).entries(purpose)
            }
            _ => Vec::new(),
        }
    }

    /// A message to the customer (in parts when too long for the channel), if the Webex
    /// Connect API is configured.
    fn to_customer(&self, key: &ConversationKey, text: String) -> Vec<OutboxEntry> {
        match &self.inner.customer_replies {
            Some(replies) => replies
                .senders
                .reply(key, text)
                .entries(Purpose::CustomerReply),
            None => Vec::new(),
        }
    }
}
