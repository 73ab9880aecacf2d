use std::fmt;

use super::{BusinessAddress, Channel, CustomerAddress};

/// A conversation is one customer writing to one business address on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConversationKey {
    pub channel: Channel,
    pub customer: CustomerAddress,
    pub business: BusinessAddress,
}

/// The sender's id of a message (`messageId` in flow JSON, `tid` from Webex Connect).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageId(String);

impl MessageId {
    pub const MAX_LEN: usize = 256;

    /// `None` for an empty id: such a message is simply not deduplicated.
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if trimmed.chars().count() > Self::MAX_LEN {
            return Err(format!("is longer than {} characters", Self::MAX_LEN));
        }
        Ok(Some(Self(trimmed.to_string())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A customer's message, whichever payload shape it arrived in.
#[derive(Clone, PartialEq, Eq)]
pub struct InboundMessage {
    pub key: ConversationKey,
    /// The message text. Never log it.
    pub text: String,
    pub message_id: Option<MessageId>,
    /// The name the customer's WhatsApp profile or the flow gave, if any.
    pub customer_name: Option<String>,
}

impl fmt::Debug for InboundMessage {
    // The text and the name stay out of Debug output: it ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundMessage")
            .field("key", &self.key)
            .field("text_chars", &self.text.chars().count())
            .field("message_id", &self.message_id)
            .finish_non_exhaustive()
    }
}
