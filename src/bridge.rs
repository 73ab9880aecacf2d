//! The heart of icbridge: a customer's message becomes a meeting, an answer and the
//! deliveries that follow from it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::clock::{self, now_ms};
use crate::domain::{
    Channel, ConversationKey, InboundMessage, MeetingLinks, ReplyTemplate, Vertical,
};
use crate::expert_messages;
use crate::inbound::DeliveryReceipt;
use crate::metrics::Metrics;
use crate::outbox::{is_customer_reply, outbox_id_of, Delivery, Purpose};
use crate::store::{
    Answer, Claim, ConversationInfo, ExpertMessage, NewMeeting, OutboxEntry, Recorded, Store,
    StoreError,
};
use crate::upstream::instant_connect::{InstantConnectClient, MeetingRequest};
use crate::upstream::webex::{Destination, NewMessage};
use crate::upstream::UpstreamError;

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
const CLAIM_LEASE: Duration = Duration::from_secs(10);
/// How long a request waits for another request's meeting before answering 503.
const WAIT_FOR_OTHER_REQUEST: Duration = Duration::from_secs(9);
const CLAIM_POLL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("another request for this conversation could not get a meeting in time")]
    MeetingUnavailable,
    #[error("this customer opened too many meetings in the last hour")]
    RateLimited { retry_after: Duration },
    #[error(transparent)]
    Store(#[from] StoreError),
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
}

/// How icbridge writes to customers through the Webex Connect API, when it is configured.
/// Unset senders fall back to the address the customer wrote to.
#[derive(Debug, Clone, Default)]
pub struct CustomerReplies {
    pub sms_sender: Option<String>,
    pub whatsapp_app_id: Option<String>,
    /// Send the guest link when a message opens a meeting (`ICB_REPLY_MODE=connect`).
    pub send_links: bool,
    /// And again for every later message (`ICB_FOLLOWUP_REPLY=link`).
    pub resend_link_on_followup: bool,
}

/// The answer to a message, as `POST /webhooks/connect` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageReply {
    pub conversation_id: String,
    pub meeting_id: String,
    pub guest_url: String,
    pub reply: String,
    /// Whether this message opened a new meeting.
    pub created: bool,
    pub expires_at: String,
}

/// Everything the bridge works with.
pub struct BridgeParts {
    pub store: Store,
    pub broker: InstantConnectClient,
    pub policy: MeetingPolicy,
    pub reply_template: ReplyTemplate,
    /// Where expert notifications go.
    pub experts: Destination,
    /// `Some` when the Webex Connect API is configured.
    pub customer_replies: Option<CustomerReplies>,
    /// Woken when deliveries are queued.
    pub outbox_wake: Arc<Notify>,
    pub metrics: Metrics,
}

#[derive(Clone)]
pub struct Bridge {
    inner: Arc<BridgeParts>,
}

/// What became of an expert's `new link`.
#[derive(Debug)]
pub enum NewLinkOutcome {
    Created,
    /// Another request is creating a meeting for the conversation right now.
    InProgress,
    Closed,
}

impl Bridge {
    pub fn new(parts: BridgeParts) -> Self {
        Self {
            inner: Arc::new(parts),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn experts(&self) -> &Destination {
        &self.inner.experts
    }

    /// Whether icbridge can write to customers (the Webex Connect API is configured).
    pub fn can_reach_customers(&self) -> bool {
        self.inner.customer_replies.is_some()
    }

    pub fn wake_outbox(&self) {
        self.inner.outbox_wake.notify_one();
    }

    /// Queues deliveries on their own and wakes the worker.
    pub async fn enqueue(
        &self,
        deliveries: &[(Delivery, Purpose)],
        conversation_id: Option<&str>,
    ) -> Result<(), StoreError> {
        for (delivery, purpose) in deliveries {
            self.inner
                .store
                .enqueue(&delivery.entry(*purpose), conversation_id, now_ms())
                .await?;
        }
        self.inner.outbox_wake.notify_one();
        Ok(())
    }

    /// A message in a conversation's thread in the experts' space.
    pub fn to_thread(&self, markdown: String) -> (Delivery, Purpose) {
        (
            Delivery::ThreadMessage {
                destination: self.inner.experts.clone(),
                markdown,
            },
            Purpose::ExpertNotice,
        )
    }

    /// A message to the customer, if the Webex Connect API is configured.
    pub fn to_customer(&self, key: &ConversationKey, text: String) -> Option<(Delivery, Purpose)> {
        let replies = self.inner.customer_replies.as_ref()?;
        Some((customer_reply(key, replies, text), Purpose::CustomerReply))
    }

    /// Relays an expert's reply to the customer and keeps it in the transcript. Returns
    /// false when it was relayed before (a repeated event).
    pub async fn relay_to_customer(
        &self,
        conversation: &ConversationInfo,
        webex_message_id: &str,
        text: &str,
        author_email: Option<&str>,
    ) -> Result<bool, StoreError> {
        let Some(delivery) = self.to_customer(&conversation.key, text.to_string()) else {
            return Ok(false);
        };
        let relayed = self
            .inner
            .store
            .record_expert_message(
                ExpertMessage {
                    conversation,
                    message_id: webex_message_id,
                    text,
                    author_email,
                },
                &[delivery.0.entry(delivery.1)],
                now_ms(),
            )
            .await?;
        self.inner.outbox_wake.notify_one();
        Ok(relayed)
    }

    /// Closes a conversation for an expert, telling the thread. Returns false when it was
    /// not open.
    pub async fn close(
        &self,
        conversation: &ConversationInfo,
        closed_by: &str,
    ) -> Result<bool, StoreError> {
        let (notice, purpose) = self.to_thread(expert_messages::closed(closed_by));
        let closed = self
            .inner
            .store
            .close_conversation(
                &conversation.id,
                Some(closed_by),
                &[notice.entry(purpose)],
                now_ms(),
            )
            .await?;
        if closed {
            self.inner.outbox_wake.notify_one();
            tracing::info!(conversation = %conversation.id, "conversation closed by an expert");
        }
        Ok(closed)
    }

    /// Makes a new meeting for an open conversation at an expert's request: the new host
    /// link goes to the thread, the new guest link to the customer (when icbridge can
    /// reach them).
    pub async fn new_link(
        &self,
        conversation: &ConversationInfo,
    ) -> Result<NewLinkOutcome, BridgeError> {
        if !conversation.open {
            return Ok(NewLinkOutcome::Closed);
        }
        let store = &self.inner.store;
        let key = &conversation.key;
        let claim_id = Uuid::new_v4().to_string();
        let now = now_ms();
        let until = now + CLAIM_LEASE.as_millis() as i64;
        let new_sub = Uuid::new_v4().to_string();
        let Claim::Claimed { sub } = store
            .claim_meeting(key, &claim_id, &new_sub, now, now, until)
            .await?
        else {
            return Ok(NewLinkOutcome::InProgress);
        };
        let result = async {
            let (expires_at, links) = self.make_links(&sub).await?;
            let customer = self.to_customer(
                key,
                self.inner.reply_template.render(links.guest_url.as_str()),
            );
            let thread = self.to_thread(expert_messages::new_link(
                links.host_url.as_str(),
                expires_at,
                customer.is_some(),
            ));
            let deliveries = std::iter::once(thread)
                .chain(customer)
                .map(|(delivery, purpose)| delivery.entry(purpose))
                .collect();
            store
                .store_meeting(NewMeeting {
                    key,
                    customer_name: conversation.customer_name.as_deref(),
                    conversation_id: conversation.id.clone(),
                    meeting_id: Uuid::new_v4().to_string(),
                    sub: sub.clone(),
                    links: &links,
                    expires_at,
                    message_row: None,
                    // Whatever meeting is live, the expert asked for a new one.
                    valid_after: i64::MAX,
                    claim_id: &claim_id,
                    deliveries,
                    now: now_ms(),
                })
                .await?;
            Ok::<_, BridgeError>(())
        }
        .await;
        match result {
            Ok(()) => {
                self.inner.metrics.meeting_created();
                self.inner.outbox_wake.notify_one();
                tracing::info!(conversation = %conversation.id, "new meeting at an expert's request");
                Ok(NewLinkOutcome::Created)
            }
            Err(error) => {
                let failed_at = matches!(error, BridgeError::Upstream(_)).then(now_ms);
                store.release_claim(key, &claim_id, failed_at).await?;
                Err(error)
            }
        }
    }

    /// Stores the message, finds or makes the conversation's meeting, and answers.
    ///
    /// The message is stored first, so it is kept even when the broker fails. A repeat of
    /// an answered message (same channel and message id) gets the same answer again. Of
    /// concurrent requests that need a new meeting, one claims it in the database and calls
    /// the broker; the others wait for that meeting.
    pub async fn handle_message(
        &self,
        message: &InboundMessage,
    ) -> Result<MessageReply, BridgeError> {
        let store = &self.inner.store;
        let started = Instant::now();
        let started_ms = now_ms();

        // The common case, a later message of a conversation with a live meeting, is
        // stored, answered and relayed to the experts in one transaction.
        let valid_after = started_ms + RENEW_BEFORE_EXPIRY.as_millis() as i64;
        let followups = self.followups(message);
        let recorded = store
            .record_message(message, valid_after, followups, started_ms)
            .await?;
        let (message_row, is_repeat) = match recorded {
            Recorded::Answered(live) => {
                self.inner.outbox_wake.notify_one();
                return Ok(self.reply(&live));
            }
            Recorded::Repeat {
                answer: Some(answer),
                ..
            } => {
                tracing::info!(customer = %message.key.customer, conversation = %answer.conversation_id,
                    "repeated message answered as before");
                return Ok(self.reply(&answer));
            }
            Recorded::Repeat { message_row, .. } => (message_row, true),
            Recorded::New { message_row } => (message_row, false),
        };

        // A repeat may already be answerable. A new message is not: its conversation had
        // no live meeting a moment ago, and the claim below looks again once it holds.
        if is_repeat {
            if let Some(answer) = self.existing_answer(message, message_row, true).await? {
                return Ok(self.reply(&answer));
            }
        }
        let claim_id = Uuid::new_v4().to_string();
        let new_sub = Uuid::new_v4().to_string();
        let sub = loop {
            let now = now_ms();
            let until = now + CLAIM_LEASE.as_millis() as i64;
            match store
                .claim_meeting(&message.key, &claim_id, &new_sub, started_ms, now, until)
                .await?
            {
                Claim::Claimed { sub } => {
                    // The previous holder may have stored its meeting just before we
                    // claimed: look again, now that nobody else can be creating one.
                    match self
                        .existing_answer(message, message_row, is_repeat)
                        .await?
                    {
                        Some(answer) => {
                            store.release_claim(&message.key, &claim_id, None).await?;
                            return Ok(self.reply(&answer));
                        }
                        None => break sub,
                    }
                }
                Claim::Busy { failed_at } => {
                    if failed_at.is_some_and(|failed| failed >= started_ms) {
                        return Err(BridgeError::MeetingUnavailable);
                    }
                    if started.elapsed() >= WAIT_FOR_OTHER_REQUEST {
                        return Err(BridgeError::MeetingUnavailable);
                    }
                    tokio::time::sleep(CLAIM_POLL).await;
                    if let Some(answer) = self
                        .existing_answer(message, message_row, is_repeat)
                        .await?
                    {
                        return Ok(self.reply(&answer));
                    }
                }
            }
        };

        match self
            .open_meeting(message, message_row, &claim_id, &sub)
            .await
        {
            Ok(answer) => Ok(self.reply(&answer)),
            Err(error) => {
                let failed_at = matches!(error, BridgeError::Upstream(_)).then(now_ms);
                store.release_meeting_start(&claim_id).await?;
                store
                    .release_claim(&message.key, &claim_id, failed_at)
                    .await?;
                Err(error)
            }
        }
    }

    /// The answer this message can get without a new meeting: the one a concurrent delivery
    /// of the same message got, or the conversation's live meeting. A message answered here
    /// for the first time gets the deliveries of any later message (the experts see it in
    /// the thread), also when it is a repeat: an earlier delivery of it was stored but
    /// never answered (a 503), and was shown to nobody.
    async fn existing_answer(
        &self,
        message: &InboundMessage,
        message_row: i64,
        is_repeat: bool,
    ) -> Result<Option<Answer>, StoreError> {
        let store = &self.inner.store;
        if is_repeat {
            if let Some(answer) = store.answer_of(message_row).await? {
                return Ok(Some(answer));
            }
        }
        let valid_after = now_ms() + RENEW_BEFORE_EXPIRY.as_millis() as i64;
        let Some(live) = store.live_meeting(&message.key, valid_after).await? else {
            return Ok(None);
        };
        // Queued only if this call answers the message (see `Store::answer_with`).
        let followups = self.followups(message)(&live);
        let answer = store
            .answer_with(message_row, &live, followups, now_ms())
            .await?;
        self.inner.outbox_wake.notify_one();
        Ok(Some(answer))
    }

    /// What a later message of a conversation causes, given the conversation's live
    /// meeting: the experts see it in the thread, and the customer may get the link again.
    /// Built before the meeting is known, to run inside the transaction that finds it.
    fn followups(
        &self,
        message: &InboundMessage,
    ) -> impl FnOnce(&Answer) -> Vec<OutboxEntry> + Send + 'static {
        let relays: Vec<OutboxEntry> = expert_messages::customer_said(&message.text)
            .into_iter()
            .map(|part| {
                let (relay, purpose) = self.to_thread(part);
                relay.entry(purpose)
            })
            .collect();
        let link_again = self
            .inner
            .customer_replies
            .clone()
            .filter(|replies| replies.send_links && replies.resend_link_on_followup)
            .map(|replies| {
                (
                    replies,
                    message.key.clone(),
                    self.inner.reply_template.clone(),
                )
            });
        move |live| {
            let mut followups = relays;
            if let Some((replies, key, template)) = link_again {
                let text = template.render(&live.guest_url);
                followups.push(customer_reply(&key, &replies, text).entry(Purpose::CustomerReply));
            }
            followups
        }
    }

    /// Records a delivery receipt for a message icbridge sent. When WhatsApp refused a reply
    /// because the customer's 24-hour window closed, the experts are told in the
    /// conversation's thread that the customer must write first.
    pub async fn handle_receipt(
        &self,
        receipt: &DeliveryReceipt,
        payload: &str,
    ) -> Result<(), BridgeError> {
        let store = &self.inner.store;
        let status = receipt.status();
        let outbox_id = receipt.correlation_id.as_deref().and_then(outbox_id_of);
        let matched = store
            .record_receipt(receipt, outbox_id, status.as_str(), payload, now_ms())
            .await?;
        tracing::info!(outbox_id = ?matched.as_ref().map(|m| m.outbox_id), code = ?receipt.code,
            status = status.as_str(), "delivery receipt recorded");
        let Some(matched) = matched else {
            return Ok(());
        };
        if !receipt.is_whatsapp_window_closed()
            || matched.repeated
            || !is_customer_reply(&matched.kind)
        {
            return Ok(());
        }
        let Some(conversation_id) = &matched.conversation_id else {
            return Ok(());
        };
        tracing::warn!(conversation = %conversation_id,
            "WhatsApp reply refused: the customer's 24-hour window is closed");
        let notice = self.to_thread(expert_messages::window_closed());
        self.enqueue(&[notice], Some(conversation_id)).await?;
        Ok(())
    }

    /// Under this request's claim: checks the customer's limit, calls the broker, stores
    /// the meeting with its deliveries.
    async fn open_meeting(
        &self,
        message: &InboundMessage,
        message_row: i64,
        claim_id: &str,
        sub: &str,
    ) -> Result<Answer, BridgeError> {
        let inner = &self.inner;
        self.reserve_meeting_start(message, claim_id).await?;

        let (expires_at, links) = self.make_links(sub).await?;
        let (markdown, card) =
            expert_messages::notification(message, links.host_url.as_str(), expires_at);
        let mut deliveries = vec![Delivery::WebexMessage(NewMessage {
            destination: inner.experts.clone(),
            markdown,
            parent_id: None,
            attachments: vec![card],
        })
        .entry(Purpose::ExpertNotification)];
        if let Some(replies) = inner.customer_replies.as_ref().filter(|r| r.send_links) {
            let text = inner.reply_template.render(links.guest_url.as_str());
            deliveries
                .push(customer_reply(&message.key, replies, text).entry(Purpose::CustomerReply));
        }
        let answer = inner
            .store
            .store_meeting(NewMeeting {
                key: &message.key,
                customer_name: message.customer_name.as_deref(),
                conversation_id: Uuid::new_v4().to_string(),
                meeting_id: Uuid::new_v4().to_string(),
                sub: sub.to_string(),
                links: &links,
                expires_at,
                message_row: Some(message_row),
                valid_after: now_ms() + RENEW_BEFORE_EXPIRY.as_millis() as i64,
                claim_id,
                deliveries,
                now: now_ms(),
            })
            .await?;
        if answer.opened_meeting {
            inner.metrics.meeting_created();
            inner.outbox_wake.notify_one();
            tracing::info!(channel = %message.key.channel, customer = %message.key.customer,
                conversation = %answer.conversation_id, meeting = %answer.meeting_id, "meeting created");
        }
        Ok(answer)
    }

    /// Reserves one of the customer's new meetings of the hour for this claim, or refuses
    /// the meeting when the customer opened too many. Atomic per customer, across
    /// instances (see `Store::reserve_meeting_start`).
    async fn reserve_meeting_start(
        &self,
        message: &InboundMessage,
        claim_id: &str,
    ) -> Result<(), BridgeError> {
        let limit = self.inner.policy.max_new_meetings_per_hour;
        if limit == 0 {
            return Ok(());
        }
        let hour = Duration::from_secs(3600).as_millis() as i64;
        let now = now_ms();
        let Some(oldest) = self
            .inner
            .store
            .reserve_meeting_start(&message.key, claim_id, i64::from(limit), now - hour, now)
            .await?
        else {
            return Ok(());
        };
        let retry_after = Duration::from_millis((oldest + hour - now).max(1000) as u64);
        tracing::warn!(customer = %message.key.customer, limit, "new meeting refused: hourly limit reached");
        Err(BridgeError::RateLimited { retry_after })
    }

    /// New links from the broker for the meeting `sub`, and when they expire (Unix ms). No
    /// transaction is open during this call.
    async fn make_links(&self, sub: &str) -> Result<(i64, MeetingLinks), UpstreamError> {
        let policy = &self.inner.policy;
        let expires_at = now_ms() + policy.ttl.as_millis() as i64;
        let request = MeetingRequest {
            sub: sub.to_string(),
            expires_at: expires_at.div_euclid(1000),
            short_urls: policy.short_urls,
            vertical: policy.vertical,
            host_login: policy.host_login,
        };
        let links = self.create_meeting_with_retries(&request).await?;
        Ok((expires_at, links))
    }

    /// Calls the broker, retrying quickly what a retry can fix, within [`BROKER_BUDGET`] in
    /// all so that Webex Connect (10 s timeout) gets an answer in time.
    async fn create_meeting_with_retries(
        &self,
        request: &MeetingRequest,
    ) -> Result<MeetingLinks, UpstreamError> {
        let deadline = Instant::now() + BROKER_BUDGET;
        let mut attempt = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeout = self.inner.policy.broker_timeout.min(remaining);
            let error = match self.inner.broker.create_meeting(request, timeout).await {
                Ok(links) => return Ok(links),
                Err(error) => error,
            };
            attempt += 1;
            let delay = error.retry_after().unwrap_or(QUICK_RETRY_DELAY * attempt);
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

    fn reply(&self, answer: &Answer) -> MessageReply {
        MessageReply {
            conversation_id: answer.conversation_id.clone(),
            meeting_id: answer.meeting_id.clone(),
            guest_url: answer.guest_url.clone(),
            reply: self.inner.reply_template.render(&answer.guest_url),
            created: answer.opened_meeting,
            expires_at: clock::rfc3339(answer.expires_at),
        }
    }
}

fn customer_reply(key: &ConversationKey, replies: &CustomerReplies, text: String) -> Delivery {
    let business = key.business.as_str().to_string();
    match key.channel {
        Channel::Sms => Delivery::Sms {
            from: replies.sms_sender.clone().unwrap_or(business),
            to: key.customer.as_str().to_string(),
            content: text,
        },
        Channel::Whatsapp => Delivery::Whatsapp {
            app_id: replies.whatsapp_app_id.clone().unwrap_or(business),
            waid: key.customer.as_str().to_string(),
            body: text,
        },
    }
}
