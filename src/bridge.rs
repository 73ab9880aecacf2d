//! The heart of icbridge: a customer's message becomes a meeting, an answer and the
//! deliveries that follow from it.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::clock::{self, now_ms};
use crate::domain::{Channel, InboundMessage, ReplyTemplate, Vertical};
use crate::outbox::{Delivery, Purpose};
use crate::store::{Answer, NewMeeting, Recorded, Store, StoreError};
use crate::upstream::instant_connect::{InstantConnectClient, MeetingRequest};
use crate::upstream::webex::{Destination, NewMessage};
use crate::upstream::UpstreamError;

/// A meeting whose links run out sooner than this is not handed out again: the customer
/// and the expert need time to join.
pub const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// How much of the customer's message goes into the expert's notification.
const NOTIFICATION_TEXT_CHARS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How new meetings are made.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    pub ttl: Duration,
    pub vertical: Vertical,
    pub short_urls: bool,
    pub host_login: bool,
}

/// Where customer replies come from when icbridge sends them itself (`ICB_REPLY_MODE=connect`).
/// Unset senders fall back to the address the customer wrote to.
#[derive(Debug, Clone, Default)]
pub struct ReplySenders {
    pub sms_sender: Option<String>,
    pub whatsapp_app_id: Option<String>,
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

#[derive(Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    broker: InstantConnectClient,
    links: LinkOptions,
    reply_template: ReplyTemplate,
    experts: Destination,
    /// `Some` when icbridge sends the guest link to the customer itself.
    reply_senders: Option<ReplySenders>,
    outbox_wake: Arc<Notify>,
}

impl Bridge {
    pub fn new(
        store: Store,
        broker: InstantConnectClient,
        links: LinkOptions,
        reply_template: ReplyTemplate,
        experts: Destination,
        reply_senders: Option<ReplySenders>,
        outbox_wake: Arc<Notify>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                broker,
                links,
                reply_template,
                experts,
                reply_senders,
                outbox_wake,
            }),
        }
    }

    /// Stores the message, finds or makes the conversation's meeting, and answers.
    ///
    /// The message is stored first, so it is kept even when the broker fails. A repeat of
    /// an answered message (same channel and message id) gets the same answer again.
    pub async fn handle_message(
        &self,
        message: &InboundMessage,
    ) -> Result<MessageReply, BridgeError> {
        let inner = &self.inner;
        let recorded = inner.store.record_message(message, now_ms()).await?;
        if let Recorded::Repeat {
            answer: Some(answer),
            ..
        } = &recorded
        {
            tracing::info!(customer = %message.key.customer, conversation = %answer.conversation_id,
                "repeated message answered as before");
            return Ok(self.reply(answer));
        }
        let message_row = recorded.message_row();

        let valid_after = now_ms() + RENEW_BEFORE_EXPIRY.as_millis() as i64;
        if let Some(answer) = inner.store.live_meeting(&message.key, valid_after).await? {
            inner.store.answer_with(message_row, &answer).await?;
            return Ok(self.reply(&answer));
        }

        // No transaction is open during this call.
        let sub = Uuid::new_v4().to_string();
        let expires_at = now_ms() + inner.links.ttl.as_millis() as i64;
        let links = inner
            .broker
            .create_meeting(&MeetingRequest {
                sub: sub.clone(),
                expires_at: expires_at.div_euclid(1000),
                short_urls: inner.links.short_urls,
                vertical: inner.links.vertical,
                host_login: inner.links.host_login,
            })
            .await?;

        let mut deliveries = vec![Delivery::WebexMessage(NewMessage {
            destination: inner.experts.clone(),
            markdown: notification_markdown(message, links.host_url.as_str(), expires_at),
            parent_id: None,
        })
        .entry(Purpose::ExpertNotification)];
        if let Some(senders) = &inner.reply_senders {
            let text = inner.reply_template.render(links.guest_url.as_str());
            deliveries.push(customer_reply(message, senders, text).entry(Purpose::CustomerReply));
        }
        let answer = inner
            .store
            .store_meeting(NewMeeting {
                key: &message.key,
                customer_name: message.customer_name.as_deref(),
                conversation_id: Uuid::new_v4().to_string(),
                meeting_id: Uuid::new_v4().to_string(),
                sub,
                links: &links,
                expires_at,
                message_row,
                valid_after,
                deliveries,
                now: now_ms(),
            })
            .await?;
        if answer.opened_meeting {
            inner.outbox_wake.notify_one();
            tracing::info!(channel = %message.key.channel, customer = %message.key.customer,
                conversation = %answer.conversation_id, meeting = %answer.meeting_id, "meeting created");
        }
        Ok(self.reply(&answer))
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

fn customer_reply(message: &InboundMessage, senders: &ReplySenders, text: String) -> Delivery {
    let business = message.key.business.as_str().to_string();
    match message.key.channel {
        Channel::Sms => Delivery::Sms {
            from: senders.sms_sender.clone().unwrap_or(business),
            to: message.key.customer.as_str().to_string(),
            content: text,
        },
        Channel::Whatsapp => Delivery::Whatsapp {
            app_id: senders.whatsapp_app_id.clone().unwrap_or(business),
            waid: message.key.customer.as_str().to_string(),
            body: text,
        },
    }
}

/// The expert's notification: who, where, what they wrote, and the host link. Never the
/// guest link, never the full number.
pub fn notification_markdown(message: &InboundMessage, host_url: &str, expires_at: i64) -> String {
    let key = &message.key;
    let who = match &message.customer_name {
        Some(name) => format!("{} ({})", key.customer.masked(), escape_markdown(name)),
        None => key.customer.masked(),
    };
    let mut text: String = message.text.chars().take(NOTIFICATION_TEXT_CHARS).collect();
    if text.len() < message.text.len() {
        text.push('…');
    }
    let quoted = if text.trim().is_empty() {
        "> _(no text)_".to_string()
    } else {
        text.lines()
            .map(|line| format!("> {}", escape_markdown(line)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "**Video consultation request** · {channel} · {who}\n\n{quoted}\n\n\
         **[Join as host]({host_url})** · link valid until {expiry}",
        channel = key.channel.display_name(),
        expiry = clock::human(expires_at),
    )
}

/// Customers' words are shown as written, not as markdown (no links or formatting of
/// theirs in the experts' space).
fn escape_markdown(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '`'
                | '*'
                | '_'
                | '{'
                | '}'
                | '['
                | ']'
                | '('
                | ')'
                | '#'
                | '+'
                | '-'
                | '!'
                | '<'
                | '>'
                | '|'
                | '~'
        ) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BusinessAddress, ConversationKey, CustomerAddress};

    #[test]
    fn notification_masks_the_number_and_escapes_the_text() {
        let message = InboundMessage {
            key: ConversationKey {
                channel: Channel::Sms,
                customer: CustomerAddress::parse(Channel::Sms, "+14155550123").unwrap(),
                business: BusinessAddress::parse("56263").unwrap(),
            },
            text: "click [here](https://evil.example)".into(),
            message_id: None,
            customer_name: None,
        };
        let markdown = notification_markdown(
            &message,
            "https://instant.webex.com/visit/oCVp2LD",
            1_795_190_400_000,
        );
        assert_eq!(
            markdown,
            "**Video consultation request** · SMS · +1415•••0123\n\n\
             > click \\[here\\]\\(https://evil.example\\)\n\n\
             **[Join as host](https://instant.webex.com/visit/oCVp2LD)** · link valid until 2026-11-20 16:00 UTC"
        );
    }
}
