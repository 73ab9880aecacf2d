//! The heart of icbridge: a customer's message becomes a meeting, an answer and the
//! deliveries that follow from it. Routes, the experts' desk, the console and the CLI all
//! act through the bridge: what a conversation is and what may happen to it is decided
//! here, once.

use crate::domain::Meeting;
use crate::domain::{
    Answer, AuditEntry, Erasure, MeetingLinkRecord, OutboxRow, OutboxState, PurgeReport, QueueItem,
    Redirect, TranscriptEntry, UpstreamPause,
};
use crate::domain::{Conversation, TakeOutcome};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use tokio::sync::Notify;
use url::Url;
use uuid::Uuid;

use crate::customers::data::CustomerExport;
use crate::customers::opt_out::Keyword;
use crate::customers::retention;
use crate::delivery::pauses::Pauses;
use crate::delivery::window;
use crate::desks::expert_texts::{self, Offer};
use crate::desks::{AfterHours, Desks, ExpertDesk, OutOfHours};
use crate::domain::audit::{Action, Actor};
use crate::domain::clock::{self, Clock};
use crate::domain::metrics::{DatabaseFigures, Metrics};
use crate::domain::DeliveryReceipt;
use crate::domain::{
    outbox_id_of, AddressError, Channel, ConversationKey, CustomerAddress, Delivery, ExpertFile,
    FollowUps, InboundMessage, LinkReply, LinkRole, Media, MeetingLinks, OutboxEntry, Purpose,
    ReplySenders, ReplyTexts, Vertical, WhatsappTemplate,
};
use crate::store::{
    Claim, ExpertMessage, KeywordMessage, KeywordOutcome, MeetingClaim, NewMeeting, OptOutChange,
    OptedOutMessage, Recorded, StartLimit, Store, StoreError, UnansweredMessage, WaitingMessage,
};
use crate::upstream::instant_connect::{self, InstantConnectClient, MeetingRequest};
use crate::upstream::{Upstream, UpstreamError, Verdict};

mod appointments;
mod guests;
mod rating;

pub use appointments::{AppointmentError, AppointmentOutcome, AppointmentRequest};
pub use guests::AddGuestOutcome;

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

/// The answer to a message, as `POST /webhooks/connect` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageReply {
    /// Absent only for a STOP, START or HELP from a customer without an open conversation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// False when the message needed a meeting while its desk was closed: `reply` is then
    /// the desk's out-of-hours text (with the next opening). A conversation whose meeting
    /// is still live goes on as usual after closing time.
    pub open: bool,
    /// Present, and true, while the customer is opted out (they texted STOP): `reply` is
    /// then the confirmation of their STOP, or empty (nothing is to be sent to them).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub opted_out: bool,
    /// The meeting's id; absent while the conversation waits for its desk to open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meeting_id: Option<String>,
    /// The customer's link; absent while the conversation waits for its desk to open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_url: Option<String>,
    /// The text for the customer.
    pub reply: String,
    /// Whether this message opened a new meeting.
    pub created: bool,
    /// When the links run out; absent while the conversation waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

impl MessageReply {
    /// The answer to a message that got no meeting (a keyword, an opted-out customer, a
    /// closed desk): `reply` only, the desk open and the customer not opted out unless set.
    fn without_meeting(conversation_id: Option<String>, reply: String) -> Self {
        MessageReply {
            conversation_id,
            open: true,
            opted_out: false,
            meeting_id: None,
            guest_url: None,
            reply,
            created: false,
            expires_at: None,
        }
    }
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
}

#[derive(Clone)]
pub struct Bridge {
    inner: Arc<BridgeParts>,
}

/// What became of a request for a new meeting (`new link`).
#[derive(Debug, PartialEq, Eq)]
pub enum NewLinkOutcome {
    Created,
    /// Another request is creating a meeting for the conversation right now.
    InProgress,
    Closed,
}

/// What became of a request to move a conversation to another desk.
#[derive(Debug, PartialEq, Eq)]
pub enum TransferOutcome {
    Transferred,
    /// No desk of that name; the desks there are.
    UnknownDesk(Vec<String>),
    AlreadyThere,
    Closed,
}

/// What a visit to one of icbridge's links (`/j/<code>`) gets.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkVisit {
    /// On to the meeting: Instant Connect's link.
    Redirect(String),
    /// A link preview's or scanner's fetch of a live link: title and description only.
    Preview,
    /// The consultation it was for has ended: closed, replaced by a newer link, or expired.
    Ended,
    /// A booked consultation's link before it works: from when it does, in the desk's time.
    NotYet {
        from: String,
    },
    Unknown,
}

/// The length of a link's code: 16 random bytes, base64url.
const LINK_CODE_CHARS: usize = 22;

/// What became of a request to close a conversation.
#[derive(Debug, PartialEq, Eq)]
pub enum CloseOutcome {
    Closed,
    AlreadyClosed,
    /// Not closed: it has a booked consultation that is not over (it stays open for it;
    /// cancelling the appointment closes it).
    Booked {
        appointment_id: String,
        starts_at: i64,
    },
}

/// A conversation with its meetings and transcript.
#[derive(Debug, Clone)]
pub struct ConversationDetail {
    pub conversation: Conversation,
    pub meetings: Vec<Meeting>,
    /// Every link of its meetings, with its role, oldest first.
    pub links: Vec<MeetingLinkRecord>,
    pub transcript: Vec<TranscriptEntry>,
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

    // ---- Reading, for the admin API, the CLI, the console and the desk ----

    pub async fn conversation(&self, id: &str) -> Result<Option<Conversation>, BridgeError> {
        self.inner
            .store
            .conversation(id)
            .await
            .map_err(BridgeError::from)
    }

    /// The conversation a Webex message of the bot's (a notification, a thread) is about.
    pub async fn conversation_of_webex_message(
        &self,
        message_id: &str,
    ) -> Result<Option<Conversation>, BridgeError> {
        self.inner
            .store
            .conversation_by_webex_message(message_id)
            .await
            .map_err(BridgeError::from)
    }

    /// Conversations, newest first: `open`, `closed` or (`None`) all of them.
    pub async fn conversations(
        &self,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Conversation>, BridgeError> {
        self.inner
            .store
            .conversations(state, limit)
            .await
            .map_err(BridgeError::from)
    }

    /// Open conversations, oldest first.
    pub async fn open_conversations(&self, limit: i64) -> Result<Vec<Conversation>, BridgeError> {
        self.inner
            .store
            .open_conversations(limit)
            .await
            .map_err(BridgeError::from)
    }

    pub async fn conversation_detail(
        &self,
        id: &str,
    ) -> Result<Option<ConversationDetail>, BridgeError> {
        let store = &self.inner.store;
        let Some(conversation) = store.conversation(id).await? else {
            return Ok(None);
        };
        Ok(Some(ConversationDetail {
            conversation,
            meetings: store.meetings_of(id).await?,
            links: store.meeting_links_of(id).await?,
            transcript: store.transcript(id).await?,
        }))
    }

    /// The console's queue: open conversations, newest activity first.
    pub async fn queue(&self, limit: i64) -> Result<Vec<QueueItem>, BridgeError> {
        self.inner
            .store
            .queue(limit, self.now())
            .await
            .map_err(BridgeError::from)
    }

    pub async fn deliveries(
        &self,
        state: Option<OutboxState>,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, BridgeError> {
        self.inner
            .store
            .list_outbox(state, limit)
            .await
            .map_err(BridgeError::from)
    }

    /// Makes a dead (or waiting) delivery due now with a fresh retry schedule.
    pub async fn retry_delivery(&self, id: i64, actor: &Actor) -> Result<(), BridgeError> {
        let audit = self.audit_entry(actor, Action::Retry, format!("delivery {id}"), None);
        self.inner
            .store
            .revive_outbox(id, audit, self.now())
            .await
            .map_err(|error| match error {
                StoreError::NotFound { .. } => BridgeError::UnknownDelivery(id),
                other => other.into(),
            })?;
        self.wake_outbox();
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ready(&self) -> Result<(), BridgeError> {
        self.inner.store.ping().await.map_err(BridgeError::from)
    }

    /// What the metrics show of the database: deliveries by state, the oldest pending
    /// one, and the upstreams' pauses.
    pub async fn database_figures(&self) -> Result<DatabaseFigures, BridgeError> {
        let store = &self.inner.store;
        Ok(DatabaseFigures {
            outbox_rows: store.outbox_counts().await?,
            oldest_pending_at: store.oldest_pending_at().await?,
            pauses: self
                .upstream_pauses()
                .await?
                .into_iter()
                .map(|pause| {
                    let refused = pause.credential_refused();
                    (pause.upstream, pause.paused_until, refused)
                })
                .collect(),
            now: self.now(),
        })
    }

    /// The upstreams' pauses (waits asked for, refused credentials), from the database.
    pub async fn upstream_pauses(&self) -> Result<Vec<UpstreamPause>, BridgeError> {
        self.inner.pauses.refresh().await.map_err(BridgeError::from)
    }

    /// Makes every dead delivery (of `kind`, queued since `since`) due now with a fresh
    /// retry schedule; returns how many.
    pub async fn retry_dead_deliveries(
        &self,
        kind: Option<&str>,
        since: Option<i64>,
        actor: &Actor,
    ) -> Result<u64, BridgeError> {
        let asked = format!(
            "kind {}, since {}",
            kind.unwrap_or("any"),
            since.map(clock::rfc3339).unwrap_or_else(|| "ever".into())
        );
        let audit = self.audit_entry(actor, Action::Retry, "dead deliveries".into(), Some(asked));
        let revived = self
            .inner
            .store
            .revive_dead_outbox(kind, since, audit, self.now())
            .await?;
        self.wake_outbox();
        Ok(revived)
    }

    // ---- icbridge's own links ----

    /// A visit to link `code`: on to the meeting while it is the open conversation's live
    /// one, else the ended page. The first opening of a guest link that is not a
    /// preview's fetch is recorded, posted in the thread (once) and timed.
    pub async fn visit_link(&self, code: &str, preview: bool) -> Result<LinkVisit, BridgeError> {
        let shaped = code.len() == LINK_CODE_CHARS
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !shaped {
            return Ok(LinkVisit::Unknown);
        }
        let store = &self.inner.store;
        let Some(link) = store.link(code).await? else {
            return Ok(LinkVisit::Unknown);
        };
        let now = self.now();
        if link.current == 0 || link.expires_at <= now {
            return Ok(LinkVisit::Ended);
        }
        if preview {
            return Ok(LinkVisit::Preview);
        }
        if let Some(from) = link.not_before.filter(|from| *from > now) {
            let desk = self.inner.desks.of(link.desk.as_deref());
            return Ok(LinkVisit::NotYet {
                from: desk.local_time(from),
            });
        }
        if link.role == "guest" && link.extra == 0 && link.opened_at.is_none() {
            let notice = Self::to_thread(expert_texts::link_opened(now));
            if store
                .record_opening(code, &link.conversation_id, notice, now)
                .await?
            {
                self.inner
                    .metrics
                    .link_opened((now - link.created_at) as f64 / 1000.0);
                self.wake_outbox();
                tracing::info!(conversation = %link.conversation_id, "the customer opened the link");
            }
        }
        Ok(LinkVisit::Redirect(link.target))
    }

    // ---- Customers' data, and who did what ----

    /// The audit row of what `actor` does now; written with the change it records.
    fn audit_entry(
        &self,
        actor: &Actor,
        action: Action,
        subject: String,
        detail: Option<String>,
    ) -> AuditEntry {
        AuditEntry {
            at: self.now(),
            actor: actor.audit_name(),
            action: action.as_str().to_string(),
            subject,
            detail,
        }
    }

    /// The newest `limit` rows of the audit log.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>, BridgeError> {
        self.inner
            .store
            .audit_entries(limit)
            .await
            .map_err(BridgeError::from)
    }

    /// A number as SMS (`+…`) and WhatsApp (digits) store it.
    fn customer_forms(number: &str) -> Result<[String; 2], BridgeError> {
        let sms =
            CustomerAddress::parse(Channel::Sms, number).map_err(BridgeError::InvalidNumber)?;
        let whatsapp = CustomerAddress::parse(Channel::Whatsapp, number)
            .map_err(BridgeError::InvalidNumber)?;
        Ok([sms.as_str().to_string(), whatsapp.as_str().to_string()])
    }

    /// Everything held about the customer with this number, on both channels. Audited.
    pub async fn export_customer(
        &self,
        number: &str,
        actor: &Actor,
    ) -> Result<CustomerExport, BridgeError> {
        let forms = Self::customer_forms(number)?;
        let records = self.inner.store.customer_records(&forms).await?;
        let export = CustomerExport::new(forms.clone(), &records, self.now());
        let detail = format!("{} conversations", export.conversations.len());
        let audit = self.audit_entry(actor, Action::Export, Self::masked(&forms), Some(detail));
        self.inner.store.record_audit(audit).await?;
        Ok(export)
    }

    /// Erases what is held about the customer with this number (see
    /// `Store::erase_customer`). Audited, by the number masked.
    pub async fn erase_customer(
        &self,
        number: &str,
        actor: &Actor,
    ) -> Result<Erasure, BridgeError> {
        let forms = Self::customer_forms(number)?;
        let audit = self.audit_entry(actor, Action::Erase, Self::masked(&forms), None);
        let erasure = self
            .inner
            .store
            .erase_customer(&forms, ERASED_REASON, audit, self.now())
            .await?;
        tracing::info!(customer = %CustomerAddress::from_stored(forms[0].clone()),
            conversations = erasure.conversations, messages = erasure.messages, "customer erased");
        Ok(erasure)
    }

    fn masked(forms: &[String; 2]) -> String {
        CustomerAddress::from_stored(forms[0].clone()).masked()
    }

    /// Applies a retention of `retention` now.
    pub async fn purge(&self, retention: Duration) -> Result<PurgeReport, BridgeError> {
        self.inner
            .store
            .purge(retention::cutoffs(retention, self.now()))
            .await
            .map_err(BridgeError::from)
    }

    // ---- What experts (in Webex, in the console) and administrators do ----

    /// Closes a conversation, telling the experts' thread who closed it. The expert's
    /// `close`, the console, the admin API and the CLI all come here.
    pub async fn close(&self, id: &str, actor: &Actor) -> Result<CloseOutcome, BridgeError> {
        let store = &self.inner.store;
        if let Some(booked) = store.booked_appointment_of(id, self.now()).await? {
            return Ok(CloseOutcome::Booked {
                appointment_id: booked.id,
                starts_at: booked.starts_at,
            });
        }
        let closed_by = actor.shown();
        let notice = Self::to_thread(expert_texts::closed(&closed_by));
        let audit = self.audit_entry(actor, Action::Close, format!("conversation {id}"), None);
        let survey = self.survey_for(id).await?;
        if store
            .close_conversation(id, &closed_by, &[notice], survey, audit, self.now())
            .await?
        {
            self.wake_outbox();
            tracing::info!(conversation = %id, "conversation closed");
            return Ok(CloseOutcome::Closed);
        }
        match store.conversation(id).await? {
            Some(_) => Ok(CloseOutcome::AlreadyClosed),
            None => Err(BridgeError::UnknownConversation(id.to_string())),
        }
    }

    /// Makes `who` (an expert's Webex email or id) the conversation's assignee, telling the
    /// thread; the expert's `take`, the card's Take button and the console come here.
    pub async fn take(&self, id: &str, who: &str) -> Result<TakeOutcome, BridgeError> {
        let notice = Self::to_thread(expert_texts::taken(who));
        let outcome = self
            .inner
            .store
            .take_conversation(id, who, &[notice], self.now())
            .await?;
        if outcome == TakeOutcome::Taken {
            self.wake_outbox();
            tracing::info!(conversation = %id, "conversation taken");
            if let Some(conversation) = self.inner.store.conversation(id).await? {
                let waited = (self.now() - conversation.created_at) as f64 / 1000.0;
                self.inner
                    .metrics
                    .conversation_taken(&self.desk_of(&conversation), waited);
                // A customer who wrote out of hours has no meeting yet: the expert who
                // takes the conversation gets one, and the customer its link.
                if conversation.links_expire_at.is_none() {
                    self.meeting_for_taker(id).await?;
                }
            }
        }
        Ok(outcome)
    }

    /// Makes the meeting of a conversation taken without one. The take stands when the
    /// broker fails: the thread says so, and `new link` tries again.
    async fn meeting_for_taker(&self, id: &str) -> Result<(), BridgeError> {
        match self.new_link(id).await {
            Ok(_) => Ok(()),
            Err(BridgeError::Store(error)) => Err(error.into()),
            Err(error) => {
                tracing::warn!(conversation = %id, %error, "no meeting for a taken conversation");
                let notice = Self::to_thread(expert_texts::link_failed(&error.to_string()));
                self.inner
                    .store
                    .enqueue(&[notice], Some(id), self.now())
                    .await?;
                self.wake_outbox();
                Ok(())
            }
        }
    }

    /// The desks, as configured.
    pub fn desks(&self) -> &Desks {
        &self.inner.desks
    }

    /// The desk a conversation belongs to (conversations from before desks: the default).
    pub fn desk_of(&self, conversation: &Conversation) -> String {
        conversation
            .desk
            .clone()
            .unwrap_or_else(|| self.inner.desks.default_desk().name.clone())
    }

    /// Moves a conversation to another desk: a note in the old thread, and the other desk
    /// gets a notification (the newest meeting's host link, the customer's last message),
    /// which opens the conversation's thread there. `transfer <desk>` and the card come here.
    pub async fn transfer(
        &self,
        id: &str,
        to: &str,
        actor: &Actor,
    ) -> Result<TransferOutcome, BridgeError> {
        let by = actor.shown();
        let by = by.as_str();
        let desks = &self.inner.desks;
        let Some(target) = desks.find(to) else {
            let names = desks.all().iter().map(|d| d.name.clone()).collect();
            return Ok(TransferOutcome::UnknownDesk(names));
        };
        let store = &self.inner.store;
        let conversation = self.known_conversation(id).await?;
        if !conversation.open {
            return Ok(TransferOutcome::Closed);
        }
        let current = self.desk_of(&conversation);
        if current == target.name {
            return Ok(TransferOutcome::AlreadyThere);
        }
        let meeting = store.meetings_of(id).await?.pop();
        let last_words = store
            .transcript(id)
            .await?
            .into_iter()
            .rev()
            .find(|line| line.author == "customer")
            .map(|line| line.text)
            .unwrap_or_default();
        let message = InboundMessage {
            key: conversation.key.clone(),
            text: last_words,
            message_id: None,
            customer_name: conversation.customer_name.clone(),
            media: Default::default(),
            button: None,
        };
        let offer = match &meeting {
            Some(meeting) => Offer::Meeting {
                host_url: &meeting.host_url,
                expires_at: meeting.expires_at,
            },
            None => Offer::Waiting {
                since: conversation.created_at,
            },
        };
        let (markdown, card) =
            expert_texts::notification(&message, offer, &self.other_desks(&target.name));
        let markdown = expert_texts::transferred_from(&current, by) + &markdown;
        let mut deliveries = Vec::new();
        if let Some(thread) = conversation.thread_message_id.clone() {
            let note = Delivery::DeskThreadMessage {
                markdown: expert_texts::transferred(&target.name, by),
                desk: Some(current),
                thread_message_id: thread,
            };
            deliveries.push(note.entry(Purpose::ExpertNotice));
        }
        deliveries
            .push(Delivery::Notification { markdown, card }.entry(Purpose::ExpertNotification));
        let detail = format!("to desk {}", target.name);
        let audit = self.audit_entry(
            actor,
            Action::Transfer,
            format!("conversation {id}"),
            Some(detail),
        );
        if !store
            .transfer_conversation(id, &target.name, &deliveries, audit, self.now())
            .await?
        {
            return Ok(TransferOutcome::Closed);
        }
        self.wake_outbox();
        tracing::info!(conversation = %id, desk = %target.name, "conversation transferred");
        Ok(TransferOutcome::Transferred)
    }

    async fn known_conversation(&self, id: &str) -> Result<Conversation, BridgeError> {
        self.inner
            .store
            .conversation(id)
            .await?
            .ok_or_else(|| BridgeError::UnknownConversation(id.to_string()))
    }

    /// The desks a conversation of `desk` could move to.
    fn other_desks(&self, desk: &str) -> Vec<String> {
        self.inner
            .desks
            .all()
            .iter()
            .filter(|d| d.name != desk)
            .map(|d| d.name.clone())
            .collect()
    }

    /// Clears the assignee if it is `who`; returns whether it was.
    pub async fn release(&self, id: &str, who: &str) -> Result<bool, BridgeError> {
        let notice = Self::to_thread(expert_texts::released(who));
        let released = self
            .inner
            .store
            .release_conversation(id, who, &[notice], self.now())
            .await?;
        if released {
            self.wake_outbox();
        }
        Ok(released)
    }

    /// Relays an expert's reply (its text and files) to the customer and keeps it in the
    /// transcript, the files named. Returns false when it was relayed before (a repeated
    /// event).
    pub async fn relay_to_customer(
        &self,
        conversation: &Conversation,
        webex_message_id: &str,
        text: &str,
        files: &[ExpertFile],
        author_email: Option<&str>,
    ) -> Result<bool, BridgeError> {
        let Some(replies) = self.inner.customer_replies.as_ref() else {
            return Ok(false);
        };
        let to_customer = if files.is_empty() {
            vec![replies.senders.reply(&conversation.key, text.to_string())]
        } else {
            replies
                .senders
                .reply_with_files(&conversation.key, text, files)
        };
        // Too long for the channel, and the operator wants such replies refused: the
        // expert is told, and nothing is sent or kept.
        let over = to_customer
            .iter()
            .map(Delivery::chars_over_limit)
            .max()
            .unwrap_or(0);
        if replies.refuse_long_replies && over > 0 {
            let notice = expert_texts::reply_too_long(conversation.key.channel, over);
            self.inner
                .store
                .enqueue(
                    &[Self::to_thread(notice)],
                    Some(&conversation.id),
                    self.now(),
                )
                .await?;
            self.wake_outbox();
            return Ok(false);
        }
        let deliveries: Vec<OutboxEntry> =
            if self.inner.store.is_opted_out(&conversation.key).await? {
                // Kept in the transcript; the expert is told it did not go (the outbox would not
                // send it anyway).
                vec![Self::to_thread(expert_texts::not_sent_opted_out())]
            } else {
                to_customer
                    .into_iter()
                    .flat_map(|delivery| delivery.entries(Purpose::CustomerReply))
                    .collect()
            };
        let mut transcript = text.to_string();
        for file in files {
            transcript.push_str(&format!("\n[file: {}]", file.name));
        }
        let relayed = self
            .inner
            .store
            .record_expert_message(
                ExpertMessage {
                    conversation,
                    message_id: webex_message_id,
                    text: transcript.trim_start(),
                    author_email,
                },
                &deliveries,
                self.now(),
            )
            .await?;
        self.wake_outbox();
        Ok(relayed)
    }

    /// Makes a new meeting for an open conversation at an expert's request: the new host
    /// link goes to the thread, the new guest link to the customer (when icbridge can
    /// reach them).
    pub async fn new_link(&self, id: &str) -> Result<NewLinkOutcome, BridgeError> {
        let store = &self.inner.store;
        let conversation = self.known_conversation(id).await?;
        if !conversation.open {
            return Ok(NewLinkOutcome::Closed);
        }
        let key = &conversation.key;
        let claim_id = new_id();
        let now = self.now();
        let Claim::Claimed { sub, .. } = store
            .claim_meeting(MeetingClaim {
                key: key.clone(),
                claim_id: claim_id.clone(),
                new_sub: Uuid::new_v4().to_string(),
                arrived_at: now,
                now,
                until: now + CLAIM_LEASE.as_millis() as i64,
                limit: None,
                message: None,
            })
            .await?
        else {
            return Ok(NewLinkOutcome::InProgress);
        };
        let result = async {
            let (expires_at, links, redirects) = self.make_links(&sub).await?;
            let customer = self.to_customer(
                key,
                self.inner.reply_texts.render(
                    conversation.desk.as_deref(),
                    links.guest_url.as_str(),
                    conversation.customer_name.as_deref(),
                ),
            );
            let thread = Self::to_thread(expert_texts::new_link(
                links.host_url.as_str(),
                expires_at,
                !customer.is_empty(),
            ));
            store
                .store_meeting(NewMeeting {
                    key: key.clone(),
                    customer_name: conversation.customer_name.clone(),
                    conversation_id: conversation.id.clone(),
                    desk: self.desk_of(&conversation),
                    meeting_id: new_id(),
                    sub: sub.clone(),
                    links,
                    expires_at,
                    message_row: None,
                    // Whatever meeting is live, the expert asked for a new one.
                    valid_after: i64::MAX,
                    claim_id: claim_id.clone(),
                    deliveries: std::iter::once(thread).chain(customer).collect(),
                    redirects,
                    now: self.now(),
                })
                .await?;
            Ok::<_, BridgeError>(())
        }
        .await;
        match result {
            Ok(()) => {
                self.inner.metrics.meeting_created();
                self.wake_outbox();
                tracing::info!(conversation = %conversation.id, "new meeting at an expert's request");
                Ok(NewLinkOutcome::Created)
            }
            Err(error) => {
                let failed_at = matches!(error, BridgeError::Upstream(_)).then(|| self.now());
                store.release_claim(key, &claim_id, failed_at).await?;
                Err(error)
            }
        }
    }

    // ---- Customers' messages ----

    /// Stores the message, finds or makes the conversation's meeting, and answers.
    ///
    /// The message is stored first, so it is kept even when the broker fails. A repeat of
    /// an answered message (same sender, business address and message id) gets the same
    /// answer again. Of concurrent requests that need a new meeting, one claims it in the
    /// database and calls the broker; the others wait for that meeting.
    pub async fn handle_message(
        &self,
        message: &InboundMessage,
    ) -> Result<MessageReply, BridgeError> {
        let store = &self.inner.store;
        let started = Instant::now();
        let started_ms = self.now();

        // STOP, START and HELP are answered as such, whatever the conversation's state.
        if self
            .inner
            .desks
            .is_keyword_anywhere(message.key.channel, &message.text)
        {
            let desk = self.desk_for(message).await?;
            if let Some(keyword) = desk.keyword(message.key.channel, &message.text) {
                return Ok(self.answer_keyword(message, desk, keyword).await?);
            }
        }

        // A rating after a close opens nothing: it answers the survey.
        if let Some(rating) = self.survey_answer(message) {
            if let Some(reply) = self.answer_survey(message, rating).await? {
                return Ok(reply);
            }
        }

        // The common case, a later message of a conversation with a live meeting, is
        // stored, answered and relayed to the experts in one transaction.
        let valid_after = started_ms + RENEW_BEFORE_EXPIRY.as_millis() as i64;
        let follow_ups = self.follow_ups(message);
        let (message_row, is_repeat) = match store
            .record_message(message, valid_after, &follow_ups, started_ms)
            .await?
        {
            Recorded::Answered(live) => {
                self.wake_outbox();
                return Ok(self.reply(&live, message.customer_name.as_deref(), None));
            }
            Recorded::Repeat {
                answer: Some(answer),
                ..
            } => {
                tracing::info!(customer = %message.key.customer, conversation = %answer.conversation_id,
                    "repeated message answered as before");
                // Answered with the slot the first time (see below), it is again.
                if let Some(ahead) = self.appointment_ahead(&message.key).await? {
                    if ahead.appointment.meeting_id == answer.meeting_id {
                        return Ok(ahead.reply());
                    }
                }
                return Ok(self.reply(&answer, message.customer_name.as_deref(), None));
            }
            Recorded::Repeat { message_row, .. } => (message_row, true),
            Recorded::New { message_row } => (message_row, false),
        };

        // A customer who opted out gets nothing; the experts see what they wrote.
        if store.is_opted_out(&message.key).await? {
            return Ok(self.keep_from_opted_out(message, message_row).await?);
        }

        // A customer whose booked consultation's links do not work yet is told when it is
        // (the live meeting above never is one of those), and gets no new meeting.
        if let Some(ahead) = self.appointment_ahead(&message.key).await? {
            return Ok(self
                .answer_ahead_of_slot(message, message_row, ahead)
                .await?);
        }

        // A repeat may already be answerable. A new message is not: its conversation had
        // no live meeting a moment ago, and the claim below answers it with one stored since.
        if is_repeat {
            if let Some(answer) = self
                .existing_answer(&message.key, message_row, &follow_ups)
                .await?
            {
                return Ok(self.reply(&answer, message.customer_name.as_deref(), None));
            }
        }
        // A message that needs a meeting goes by its desk's hours.
        let desk = self.desk_for(message).await?;
        let out_of_hours = desk.out_of_hours(started_ms);
        if let Some(closed) = &out_of_hours {
            if closed.after_hours == AfterHours::Queue {
                return self
                    .wait_for_opening(message, message_row, desk, closed, started_ms)
                    .await;
            }
        }
        let reply = |answer: &Answer| {
            self.reply(
                answer,
                message.customer_name.as_deref(),
                out_of_hours.as_ref(),
            )
        };
        let claim_id = new_id();
        let new_sub = Uuid::new_v4().to_string();
        let sub = loop {
            let now = self.now();
            let claim = MeetingClaim {
                key: message.key.clone(),
                claim_id: claim_id.clone(),
                new_sub: new_sub.clone(),
                arrived_at: started_ms,
                now,
                until: now + CLAIM_LEASE.as_millis() as i64,
                limit: self.start_limit(now),
                message: Some(self.waiting(message_row, &follow_ups)),
            };
            match store.claim_meeting(claim).await? {
                Claim::Claimed { sub, over_limit } => {
                    if let Some(oldest) = over_limit {
                        store.release_claim(&message.key, &claim_id, None).await?;
                        return Err(self.over_limit(message, oldest));
                    }
                    break sub;
                }
                // The previous holder stored its meeting since the message found none.
                Claim::Answered(answer) => {
                    self.wake_outbox();
                    return Ok(reply(&answer));
                }
                Claim::Busy { failed_at } => {
                    if failed_at.is_some_and(|failed| failed >= started_ms)
                        || started.elapsed() >= WAIT_FOR_OTHER_REQUEST
                    {
                        return Err(BridgeError::MeetingUnavailable);
                    }
                    // The next try answers with the holder's meeting once it is stored.
                    tokio::time::sleep(CLAIM_POLL).await;
                }
            }
        };

        match self
            .open_meeting(
                message,
                message_row,
                &claim_id,
                &sub,
                desk,
                out_of_hours.as_ref(),
            )
            .await
        {
            Ok(answer) => Ok(reply(&answer)),
            Err(error) => {
                let failed_at = matches!(error, BridgeError::Upstream(_)).then(|| self.now());
                store
                    .release_claim(&message.key, &claim_id, failed_at)
                    .await?;
                Err(error)
            }
        }
    }

    /// A customer's STOP, START or HELP: recorded once, answered with the desk's text
    /// (through Webex Connect when icbridge sends replies; the answer to a STOP is the one
    /// message an opted-out customer gets), and noted in their open conversation's thread.
    async fn answer_keyword(
        &self,
        message: &InboundMessage,
        desk: &ExpertDesk,
        keyword: Keyword,
    ) -> Result<MessageReply, StoreError> {
        let store = &self.inner.store;
        let key = &message.key;
        let now = self.now();
        let text = desk.keyword_answer(keyword, message.customer_name.as_deref());
        // Recorded as a message that no meeting may answer.
        let recorded = store
            .record_message(message, i64::MAX, &FollowUps::default(), now)
            .await?;
        let outcome = match recorded {
            Recorded::New { message_row } => {
                let answer = self.answer_to_customer(key, text.clone(), Purpose::OptOutReply);
                let change = match keyword {
                    Keyword::Stop => OptOutChange::Out,
                    Keyword::Start => OptOutChange::In,
                    Keyword::Help => OptOutChange::Nothing,
                };
                let outcome = store
                    .record_keyword(KeywordMessage {
                        key: key.clone(),
                        message_row,
                        change,
                        answer,
                        thread_note: Self::to_thread(expert_texts::keyword_note(
                            keyword,
                            &message.text,
                        )),
                        cancel_reason: crate::delivery::OPTED_OUT.to_string(),
                        now,
                    })
                    .await?;
                self.wake_outbox();
                tracing::info!(customer = %key.customer, ?keyword, changed = outcome.changed,
                    cancelled = outcome.cancelled, "opt-out keyword answered");
                outcome
            }
            // Answered before: the same answer, nothing queued again.
            _ => KeywordOutcome {
                conversation_id: store.open_conversation(key).await?.map(|c| c.id),
                opted_out: store.is_opted_out(key).await?,
                changed: false,
                cancelled: 0,
            },
        };
        Ok(MessageReply {
            opted_out: outcome.opted_out,
            ..MessageReply::without_meeting(outcome.conversation_id, text)
        })
    }

    /// A message from a customer who opted out: kept in their conversation (opened, without
    /// a meeting, if none is open) and shown to the experts as such; no meeting, no reply.
    async fn keep_from_opted_out(
        &self,
        message: &InboundMessage,
        message_row: i64,
    ) -> Result<MessageReply, StoreError> {
        let desk = self.desk_for(message).await?;
        let relay = expert_texts::opted_out_customer_said(&message.text)
            .into_iter()
            .map(Self::to_thread)
            .chain(Self::media_relays(message))
            .collect();
        let conversation_id = new_id();
        let id = self
            .inner
            .store
            .keep_opted_out_message(OptedOutMessage {
                key: &message.key,
                customer_name: message.customer_name.as_deref(),
                conversation_id: &conversation_id,
                desk: &desk.name,
                message_row,
                relay,
                now: self.now(),
            })
            .await?;
        self.wake_outbox();
        tracing::info!(customer = %message.key.customer, conversation = %id,
            "message from a customer who opted out: kept, not answered");
        Ok(MessageReply {
            opted_out: true,
            ..MessageReply::without_meeting(Some(id), String::new())
        })
    }

    /// The desk of the conversation a message is in: its open conversation's (it may have
    /// been transferred), else the one routing chooses for a new conversation.
    async fn desk_for(&self, message: &InboundMessage) -> Result<&ExpertDesk, StoreError> {
        let desks = &self.inner.desks;
        // With one desk there is nothing to look up.
        if desks.all().len() > 1 {
            if let Some(open) = self.inner.store.open_conversation(&message.key).await? {
                return Ok(desks.of(open.desk.as_deref()));
            }
        }
        Ok(desks.route(&message.key.business, &message.text))
    }

    /// Out of hours, at a desk that queues: the message is kept in its conversation, which
    /// waits for the desk to open, and no meeting is made. The customer is told when the
    /// desk opens, once: when the conversation starts waiting.
    async fn wait_for_opening(
        &self,
        message: &InboundMessage,
        message_row: i64,
        desk: &ExpertDesk,
        closed: &OutOfHours,
        now: i64,
    ) -> Result<MessageReply, BridgeError> {
        let text = closed.text(&desk.name, message.customer_name.as_deref(), "");
        let tell_customer = self
            .inner
            .customer_replies
            .as_ref()
            .is_some_and(|replies| replies.send_links);
        let deliveries = if tell_customer {
            self.to_customer(&message.key, text.clone())
                .into_iter()
                .collect()
        } else {
            Vec::new()
        };
        let waiting = self
            .inner
            .store
            .wait_for_opening(WaitingMessage {
                key: message.key.clone(),
                customer_name: message.customer_name.clone(),
                conversation_id: new_id(),
                desk: desk.name.clone(),
                message_row,
                deliveries,
                now,
            })
            .await?;
        if waiting.started_waiting {
            let metrics = &self.inner.metrics;
            if waiting.opened_conversation {
                metrics.conversation_opened(&desk.name);
            }
            metrics.conversation_out_of_hours(&desk.name);
            self.wake_outbox();
            tracing::info!(customer = %message.key.customer, conversation = %waiting.conversation_id,
                desk = %desk.name, "out of hours: the conversation waits for its desk to open");
        }
        Ok(MessageReply {
            open: false,
            ..MessageReply::without_meeting(Some(waiting.conversation_id), text)
        })
    }

    /// Hands the conversations that waited out of hours to their desks once these are open:
    /// a notification each in the desk's space, longest waiting first (one a second), with
    /// what the customer wrote meanwhile. Each conversation is handed over once, also with
    /// several instances. Returns how many were.
    pub async fn release_waiting(&self) -> Result<usize, BridgeError> {
        let store = &self.inner.store;
        let mut released = 0;
        for stored_desk in store.desks_with_waiting().await? {
            let desk = self.inner.desks.of(stored_desk.as_deref());
            if !desk.is_open(self.now()) {
                continue;
            }
            let waiting = store
                .waiting_conversations(stored_desk.as_deref(), RELEASE_BATCH)
                .await?;
            let now = self.now();
            for (place, conversation) in (0..).zip(&waiting) {
                let due = now + place * HANDOVER_SPACING_MS;
                if self.hand_over(conversation, &desk.name, due).await? {
                    released += 1;
                }
            }
        }
        if released > 0 {
            self.wake_outbox();
        }
        Ok(released)
    }

    /// One waiting conversation's notification, and the files its customer sent meanwhile,
    /// due at `due`.
    async fn hand_over(
        &self,
        conversation: &Conversation,
        desk: &str,
        due: i64,
    ) -> Result<bool, StoreError> {
        let Some(since) = conversation.waiting_since else {
            return Ok(false);
        };
        let store = &self.inner.store;
        let mut texts = Vec::new();
        let mut media = Media::default();
        for line in store.transcript(&conversation.id).await? {
            if line.author != "customer" || line.at < since {
                continue;
            }
            if !line.text.trim().is_empty() {
                texts.push(line.text);
            }
            let sent = Media::from_stored(line.media.as_deref());
            media.attachments.extend(sent.attachments);
            media.location = sent.location.or(media.location);
        }
        let message = InboundMessage {
            key: conversation.key.clone(),
            text: texts.join("\n"),
            message_id: None,
            customer_name: conversation.customer_name.clone(),
            media,
            button: None,
        };
        let (markdown, card) =
            expert_texts::notification(&message, Offer::Waiting { since }, &self.other_desks(desk));
        let deliveries: Vec<OutboxEntry> = std::iter::once(
            Delivery::Notification { markdown, card }.entry(Purpose::ExpertNotification),
        )
        .chain(Self::media_relays(&message))
        .collect();
        let handed = store
            .end_waiting(&conversation.id, since, &deliveries, due)
            .await?;
        if handed {
            tracing::info!(conversation = %conversation.id, desk, "desk open: waiting conversation handed over");
        }
        Ok(handed)
    }

    /// The answer this message can get without a new meeting (see
    /// [`Store::answer_waiting`]). A message answered here for the first time gets the
    /// deliveries of any later message (the experts see it in the thread), also when it is a
    /// repeat: an earlier delivery of it was stored but never answered (a 503), and was shown
    /// to nobody.
    async fn existing_answer(
        &self,
        key: &ConversationKey,
        message_row: i64,
        follow_ups: &FollowUps,
    ) -> Result<Option<Answer>, StoreError> {
        let waiting = self.waiting(message_row, follow_ups);
        let answer = self
            .inner
            .store
            .answer_waiting(key, &waiting, self.now())
            .await?;
        if answer.is_some() {
            self.wake_outbox();
        }
        Ok(answer)
    }

    /// The message (stored as `message_row`, with the `follow_ups` it causes once
    /// answered), waiting for a meeting valid for a while yet.
    fn waiting(&self, message_row: i64, follow_ups: &FollowUps) -> UnansweredMessage {
        UnansweredMessage {
            row: message_row,
            valid_after: self.now() + RENEW_BEFORE_EXPIRY.as_millis() as i64,
            follow_ups: follow_ups.clone(),
        }
    }

    /// What a later message of a conversation causes once it is answered with the live
    /// meeting: the experts see it in the thread (in parts if it is long), and the customer
    /// may get the link again.
    fn follow_ups(&self, message: &InboundMessage) -> FollowUps {
        let link_reply = self
            .inner
            .customer_replies
            .as_ref()
            .filter(|replies| replies.send_links && replies.resend_link_on_followup)
            .map(|replies| LinkReply {
                senders: replies.senders.clone(),
                texts: self.inner.reply_texts.clone(),
                customer_name: message.customer_name.clone(),
            });
        // A picture without caption has no text to relay: only the picture.
        let text = if message.text.trim().is_empty() && !message.media.is_empty() {
            Vec::new()
        } else {
            expert_texts::customer_said(&message.text)
        };
        FollowUps {
            relays: text
                .into_iter()
                .map(Self::to_thread)
                .chain(Self::media_relays(message))
                .collect(),
            link_reply,
        }
    }

    /// The files and the location a message carries, each as its own message in the
    /// experts' thread, after its text.
    fn media_relays(message: &InboundMessage) -> Vec<OutboxEntry> {
        let attachments = &message.media.attachments;
        let files = attachments.iter().enumerate().map(|(index, attachment)| {
            Delivery::ThreadFile {
                markdown: expert_texts::customer_file(attachment, index, attachments.len()),
                url: attachment.url.clone(),
                mime_type: attachment.mime_type.clone(),
            }
            .entry(Purpose::ExpertNotice)
        });
        let place = message
            .media
            .location
            .iter()
            .map(|place| Self::to_thread(expert_texts::customer_location(place)));
        files.chain(place).collect()
    }

    /// Records a delivery receipt for a message icbridge sent. When WhatsApp refused a
    /// message because the customer's 24-hour window closed (clocks differ), a copy is held
    /// until the customer writes, and the template (once, if configured) and a notice to
    /// the experts follow, as for a message judged outside the window when sent.
    pub async fn handle_receipt(
        &self,
        receipt: &DeliveryReceipt,
        payload: &str,
    ) -> Result<(), BridgeError> {
        let store = &self.inner.store;
        let status = receipt.status();
        let outbox_id = receipt.correlation_id.as_deref().and_then(outbox_id_of);
        let matched = store
            .record_receipt(receipt, outbox_id, status.as_str(), payload, self.now())
            .await?;
        tracing::info!(outbox_id = ?matched.as_ref().map(|m| m.outbox_id), code = ?receipt.code,
            status = status.as_str(), "delivery receipt recorded");
        let Some(matched) = matched else {
            return Ok(());
        };
        if !receipt.is_whatsapp_window_closed()
            || matched.repeated
            || matched.kind != Purpose::CUSTOMER_REPLY
        {
            return Ok(());
        }
        let Some(conversation_id) = &matched.conversation_id else {
            return Ok(());
        };
        // Only a free-form message is refused for the window (a template is not).
        let Ok(Delivery::Whatsapp { app_id, waid, .. }) =
            serde_json::from_str::<Delivery>(&matched.payload)
        else {
            return Ok(());
        };
        tracing::warn!(conversation = %conversation_id,
            "WhatsApp message refused: the customer's 24-hour window is closed; it is held");
        let template = self
            .inner
            .customer_replies
            .as_ref()
            .and_then(|replies| replies.whatsapp_template.as_ref());
        let first_held =
            window::first_held(store, template, conversation_id, &app_id, &waid).await?;
        store
            .hold_copy(matched.outbox_id, &first_held, self.now())
            .await?;
        self.wake_outbox();
        Ok(())
    }

    /// Under this request's claim: reserves one of the customer's meetings of the hour,
    /// calls the broker, stores the meeting with its deliveries.
    async fn open_meeting(
        &self,
        message: &InboundMessage,
        message_row: i64,
        claim_id: &str,
        sub: &str,
        desk: &ExpertDesk,
        out_of_hours: Option<&OutOfHours>,
    ) -> Result<Answer, BridgeError> {
        let inner = &self.inner;
        let (expires_at, links, redirects) = self.make_links(sub).await?;
        let desk = desk.name.clone();
        // Used if the meeting opens a new conversation (an open one keeps its id).
        let conversation_id = new_id();
        let (markdown, card) = expert_texts::notification(
            message,
            Offer::Meeting {
                host_url: links.host_url.as_str(),
                expires_at,
            },
            &self.other_desks(&desk),
        );
        let mut deliveries =
            vec![Delivery::Notification { markdown, card }.entry(Purpose::ExpertNotification)];
        if inner
            .customer_replies
            .as_ref()
            .is_some_and(|r| r.send_links)
        {
            let name = message.customer_name.as_deref();
            let text = match out_of_hours {
                Some(closed) => closed.text(&desk, name, links.guest_url.as_str()),
                None => inner
                    .reply_texts
                    .render(Some(&desk), links.guest_url.as_str(), name),
            };
            deliveries.extend(self.to_customer(&message.key, text));
        }
        // The notification opens the thread; the customer's files follow it there.
        deliveries.extend(Self::media_relays(message));
        let answer = inner
            .store
            .store_meeting(NewMeeting {
                key: message.key.clone(),
                customer_name: message.customer_name.clone(),
                conversation_id: conversation_id.clone(),
                desk: desk.clone(),
                meeting_id: new_id(),
                sub: sub.to_string(),
                links,
                expires_at,
                message_row: Some(message_row),
                valid_after: self.now() + RENEW_BEFORE_EXPIRY.as_millis() as i64,
                claim_id: claim_id.to_string(),
                deliveries,
                redirects,
                now: self.now(),
            })
            .await?;
        if answer.opened_meeting {
            inner.metrics.meeting_created();
            if answer.conversation_id == conversation_id {
                inner.metrics.conversation_opened(&desk);
                if out_of_hours.is_some() {
                    inner.metrics.conversation_out_of_hours(&desk);
                }
            }
            self.wake_outbox();
            tracing::info!(channel = %message.key.channel, customer = %message.key.customer,
                conversation = %answer.conversation_id, meeting = %answer.meeting_id, "meeting created");
        }
        Ok(answer)
    }

    /// How many new meetings a customer may open per hour, from now: reserved by the claim
    /// that opens one, atomically per customer, across instances.
    fn start_limit(&self, now: i64) -> Option<StartLimit> {
        let max = self.inner.policy.max_new_meetings_per_hour;
        (max > 0).then_some(StartLimit {
            max: i64::from(max),
            window_start: now - HOUR_MS,
        })
    }

    /// The refusal of a new meeting when the customer opened too many this hour (the
    /// oldest of them at `oldest`).
    fn over_limit(&self, message: &InboundMessage, oldest: i64) -> BridgeError {
        let limit = self.inner.policy.max_new_meetings_per_hour;
        let retry_after = Duration::from_millis((oldest + HOUR_MS - self.now()).max(1000) as u64);
        tracing::warn!(customer = %message.key.customer, limit, "new meeting refused: hourly limit reached");
        BridgeError::RateLimited { retry_after }
    }

    /// New links from the broker for the meeting `sub`, and when they expire (Unix ms). No
    /// transaction is open during this call. While the broker asked to wait, it is not
    /// called.
    async fn make_links(
        &self,
        sub: &str,
    ) -> Result<(i64, MeetingLinks, Vec<Redirect>), BridgeError> {
        let expires_at = self.now() + self.inner.policy.ttl.as_millis() as i64;
        let request = self.meeting_request(sub, None, expires_at);
        let links = self.new_meeting_links(&request).await?;
        let (links, redirects) = self.hand_out(links);
        Ok((expires_at, links, redirects))
    }

    /// What to ask the broker for: the meeting `sub`'s links, valid from `not_before` (if
    /// given) until `expires_at` (Unix ms), as many of each role as configured.
    fn meeting_request(
        &self,
        sub: &str,
        not_before: Option<i64>,
        expires_at: i64,
    ) -> MeetingRequest {
        let policy = &self.inner.policy;
        MeetingRequest {
            sub: sub.to_string(),
            not_before: not_before.map(|at| at.div_euclid(1000)),
            expires_at: expires_at.div_euclid(1000),
            short_urls: policy.short_urls,
            vertical: policy.vertical,
            host_login: policy.host_login,
            hosts: policy.hosts,
            guests: policy.guests,
        }
    }

    /// A new meeting's links (see [`Self::call_broker`]).
    async fn new_meeting_links(
        &self,
        request: &MeetingRequest,
    ) -> Result<MeetingLinks, BridgeError> {
        Ok(instant_connect::meeting_links(
            self.call_broker(request).await?,
        )?)
    }

    /// The links `request` asks for, with quick retries (see [`Self::with_retries`]); not
    /// asked for while the broker asked to wait; its failures and recoveries noted.
    async fn call_broker(
        &self,
        request: &MeetingRequest,
    ) -> Result<Vec<(LinkRole, Url)>, BridgeError> {
        if let Some(until) = self.inner.pauses.paused_until(Upstream::InstantConnect) {
            let retry_after = Duration::from_millis((until - self.now()).max(1000) as u64);
            return Err(BridgeError::Paused { retry_after });
        }
        match self.with_retries(request).await {
            Ok(result) => {
                self.inner
                    .pauses
                    .works_again(Upstream::InstantConnect)
                    .await?;
                Ok(result)
            }
            Err(error) => {
                let until = self.inner.pauses.note(&error).await?;
                match (error.verdict(), until) {
                    (Some(Verdict::SlowDown(_)), Some(until)) => Err(BridgeError::Paused {
                        retry_after: Duration::from_millis((until - self.now()).max(1000) as u64),
                    }),
                    _ => Err(error.into()),
                }
            }
        }
    }

    /// The links to hand out for a meeting's: with `ICB_PUBLIC_URL`, icbridge's own (a code
    /// each, 128 random bits), and what they redirect to; else the meeting's own.
    fn hand_out(&self, links: MeetingLinks) -> (MeetingLinks, Vec<Redirect>) {
        if self.inner.link_base.is_none() {
            return (links, Vec::new());
        }
        let mut redirects = Vec::new();
        let mut own = |role: LinkRole, target: &Url, extra: bool| {
            let (url, redirect) = self
                .own_link(role, target, extra)
                .expect("a public URL is set");
            redirects.push(redirect);
            url
        };
        let guest_url = own(LinkRole::Guest, &links.guest_url, false);
        let host_url = own(LinkRole::Host, &links.host_url, false);
        let more = links
            .more
            .iter()
            .map(|(role, url)| (*role, own(*role, url, true)))
            .collect();
        (
            MeetingLinks {
                host_url,
                guest_url,
                more,
            },
            redirects,
        )
    }

    /// With `ICB_PUBLIC_URL`, icbridge's own link for `target` (`ICB_PUBLIC_URL/j/<code>`,
    /// a code of 128 random bits) and what it redirects to.
    fn own_link(&self, role: LinkRole, target: &Url, extra: bool) -> Option<(Url, Redirect)> {
        let base = self.inner.link_base.as_ref()?;
        let code = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        // Under the public URL's own path, if it has one (behind a proxy's prefix).
        let mut url = base.clone();
        url.path_segments_mut()
            .expect("the public URL is a base URL")
            .pop_if_empty()
            .extend(["j", &code]);
        let redirect = Redirect {
            code,
            role: role.as_str(),
            target: target.to_string(),
            extra,
        };
        Some((url, redirect))
    }

    /// Calls the broker, retrying quickly what a retry can fix, within [`BROKER_BUDGET`] in
    /// all so that Webex Connect (10 s timeout) gets an answer in time.
    async fn with_retries(
        &self,
        request: &MeetingRequest,
    ) -> Result<Vec<(LinkRole, Url)>, UpstreamError> {
        let deadline = Instant::now() + BROKER_BUDGET;
        let mut attempt = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeout = self.inner.policy.broker_timeout.min(remaining);
            let error = match self.inner.broker.call(request, timeout).await {
                Ok(result) => return Ok(result),
                Err(error) => error,
            };
            attempt += 1;
            let delay = match error.verdict() {
                // A refused token is not tried again now.
                Some(Verdict::CredentialRefused) => return Err(error),
                // A wait the broker asked for is waited, if an answer still fits after it.
                Some(Verdict::SlowDown(Some(asked))) => {
                    let now = self.now();
                    Duration::from_millis((asked.until_ms(now) - now).max(0) as u64)
                }
                _ => QUICK_RETRY_DELAY * attempt,
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            // Another attempt is only worth it if it can still get an answer in time.
            let fits = delay + MIN_ATTEMPT_TIME <= remaining;
            if !error.is_retryable() || attempt > BROKER_RETRIES || !fits {
                return Err(error);
            }
            tracing::warn!(%error, attempt, delay_ms = delay.as_millis() as u64, "broker call failed, retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// A message's answer: the desk's reply with the link, or out of hours its out-of-hours
    /// text.
    fn reply(
        &self,
        answer: &Answer,
        customer_name: Option<&str>,
        out_of_hours: Option<&OutOfHours>,
    ) -> MessageReply {
        let texts = &self.inner.reply_texts;
        let desk = answer.desk.as_deref();
        let reply = match out_of_hours {
            Some(closed) => {
                let desk = self.inner.desks.of(desk).name.as_str();
                closed.text(desk, customer_name, &answer.guest_url)
            }
            None => texts.render(desk, &answer.guest_url, customer_name),
        };
        MessageReply {
            conversation_id: Some(answer.conversation_id.clone()),
            open: out_of_hours.is_none(),
            opted_out: false,
            meeting_id: Some(answer.meeting_id.clone()),
            guest_url: Some(answer.guest_url.clone()),
            reply,
            created: answer.opened_meeting,
            expires_at: Some(clock::rfc3339(answer.expires_at)),
        }
    }
}
