//! Customers' messages: a message is stored, answered (keywords, opt-out, hours) and handed
//! to a desk; delivery receipts are recorded.

use super::meetings::Arrival;
use super::{new_id, Bridge, BridgeError, HANDOVER_SPACING_MS, RELEASE_BATCH, RENEW_BEFORE_EXPIRY};
use crate::customers::opt_out::Keyword;
use crate::delivery::window;
use crate::desks::expert_texts::{self, Offer};
use crate::desks::{AfterHours, ExpertDesk, OutOfHours};
use crate::domain::Answer;
use crate::domain::Conversation;
use crate::domain::DeliveryReceipt;
use crate::domain::{
    outbox_id_of, ConversationKey, Delivery, FollowUps, InboundMessage, LinkReply, Media,
    OutboxEntry, Purpose,
};
use crate::store::{
    KeywordMessage, KeywordOutcome, OptOutChange, OptedOutMessage, Recorded, StoreError,
    UnansweredMessage, WaitingMessage,
};
use serde::Serialize;
use std::time::Instant;

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
    pub(super) fn without_meeting(conversation_id: Option<String>, reply: String) -> Self {
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

impl Bridge {
    /// Stores the message, finds or makes the conversation's meeting, and answers.
    ///
    /// The message is stored first, so it is kept even when the broker fails. A repeat of
    /// an answered message (same sender, business address and message id) gets the same
    /// answer again. Of concurrent requests that need a new meeting, one claims it in the
    /// database and calls the broker; the others wait for that meeting.
    ///
    /// (A little over a page: the three steps' early answers, a repeat, an opt-out word, a
    /// booked slot, read in the order they are decided.)
    pub async fn handle_message(
        &self,
        message: &InboundMessage,
    ) -> Result<MessageReply, BridgeError> {
        let store = &self.inner.store;
        let started = Instant::now();
        let started_ms = self.now();

        if let Some(reply) = self.answer_without_conversation(message).await? {
            return Ok(reply);
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
        let arrival = Arrival {
            message,
            message_row,
            follow_ups: &follow_ups,
            started,
            started_ms,
        };
        self.answer_with_meeting(&arrival, desk, out_of_hours.as_ref())
            .await
    }

    /// A STOP, START or HELP, or a rating after a close: answered as such, whatever the
    /// conversation's state, and opening nothing.
    async fn answer_without_conversation(
        &self,
        message: &InboundMessage,
    ) -> Result<Option<MessageReply>, BridgeError> {
        // STOP, START and HELP are answered as such, whatever the conversation's state.
        if self
            .inner
            .desks
            .is_keyword_anywhere(message.key.channel, &message.text)
        {
            let desk = self.desk_for(message).await?;
            if let Some(keyword) = desk.keyword(message.key.channel, &message.text) {
                return Ok(Some(self.answer_keyword(message, desk, keyword).await?));
            }
        }

        // A rating after a close opens nothing: it answers the survey.
        if let Some(rating) = self.survey_answer(message) {
            if let Some(reply) = self.answer_survey(message, rating).await? {
                return Ok(Some(reply));
            }
        }

        Ok(None)
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
    pub(super) fn waiting(&self, message_row: i64, follow_ups: &FollowUps) -> UnansweredMessage {
        UnansweredMessage {
            row: message_row,
            valid_after: self.now() + RENEW_BEFORE_EXPIRY.as_millis() as i64,
            follow_ups: follow_ups.clone(),
        }
    }

    /// What a later message of a conversation causes once it is answered with the live
    /// meeting: the experts see it in the thread (in parts if it is long), and the customer
    /// may get the link again.
    pub(super) fn follow_ups(&self, message: &InboundMessage) -> FollowUps {
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
    pub(super) fn media_relays(message: &InboundMessage) -> Vec<OutboxEntry> {
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
}
