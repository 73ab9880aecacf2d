//! What icbridge writes to experts in Webex: the notification card, relays, notices and
//! command answers. Customers' words are escaped, never rendered as markdown, and their
//! numbers are always masked.

use serde_json::{json, Value};

use crate::clock;
use crate::domain::{ConversationKey, InboundMessage};
use crate::store::ConversationInfo;

/// How much of a customer's message goes into a notification.
const NOTIFICATION_TEXT_CHARS: usize = 1000;
/// Webex's markdown limit is 7439 bytes; relayed texts stay well below it.
const RELAY_TEXT_CHARS: usize = 3000;

/// The values of the card's `Action.Submit` buttons.
pub const ACTION_NEW_LINK: &str = "new_link";
pub const ACTION_CLOSE: &str = "close";

pub const HELP: &str =
    "I connect customers who text your SMS number or WhatsApp account with a video call.\n\n\
In a conversation's thread (mention me in a space):\n\
- write anything to send it to the customer\n\
- `close` closes the conversation; the customer's next message opens a new one\n\
- `new link` makes a new meeting and sends the customer its link\n\n\
Anywhere: `list` shows the open conversations, `help` shows this.";

/// The new meeting's notification: markdown for every client, and a card with the same
/// facts and the buttons "Join as host", "New link" and "Close".
pub fn notification(message: &InboundMessage, host_url: &str, expires_at: i64) -> (String, Value) {
    let key = &message.key;
    let who = customer_label(key, message.customer_name.as_deref());
    let text = shortened(&message.text, NOTIFICATION_TEXT_CHARS);
    let expiry = clock::human(expires_at);
    let markdown = format!(
        "**Video consultation request** · {channel} · {who}\n\n{quoted}\n\n\
         **[Join as host]({host_url})** · link valid until {expiry}",
        channel = key.channel.display_name(),
        quoted = quote(&text),
    );
    let card = json!({
        "contentType": "application/vnd.microsoft.card.adaptive",
        "content": {
            "type": "AdaptiveCard",
            "version": "1.2",
            "body": [
                {"type": "TextBlock", "text": "Video consultation request", "weight": "Bolder", "size": "Medium"},
                {"type": "FactSet", "facts": [
                    {"title": "Channel", "value": key.channel.display_name()},
                    {"title": "Customer", "value": who},
                    {"title": "Link valid until", "value": expiry},
                ]},
                {"type": "TextBlock", "text": if text.trim().is_empty() { "(no text)".to_string() } else { escape(&text) }, "wrap": true},
            ],
            "actions": [
                {"type": "Action.OpenUrl", "title": "Join as host", "url": host_url},
                {"type": "Action.Submit", "title": "New link", "data": {"action": ACTION_NEW_LINK}},
                {"type": "Action.Submit", "title": "Close", "data": {"action": ACTION_CLOSE}},
            ],
        },
    });
    (markdown, card)
}

/// A later customer message, for the conversation's thread.
pub fn customer_said(text: &str) -> String {
    format!(
        "**Customer:**\n\n{}",
        quote(&shortened(text, RELAY_TEXT_CHARS))
    )
}

/// The new host link after `new link`.
pub fn new_link(host_url: &str, expires_at: i64, customer_told: bool) -> String {
    let customer = if customer_told {
        "The customer was sent the new guest link."
    } else {
        "Sending to customers is not configured: the customer gets the new link with their next message."
    };
    format!(
        "New meeting: **[Join as host]({host_url})** · link valid until {}\n\n{customer}",
        clock::human(expires_at)
    )
}

pub fn closed(by: &str) -> String {
    format!(
        "Conversation closed by {}. The customer's next message opens a new one.",
        escape(by)
    )
}

pub const ALREADY_CLOSED: &str =
    "This conversation is closed; nothing was sent. The customer's next message opens a new one.";

pub const RELAY_NOT_CONFIGURED: &str = "Relaying to the customer is not configured \
     (ICB_CONNECT_API_URL and ICB_CONNECT_SERVICE_KEY); nothing was sent.";

pub const NOT_IN_A_THREAD: &str =
    "`close` and `new link` work in a conversation's thread: reply to its notification.";

pub const LINK_IN_PROGRESS: &str = "A new meeting is being created for this conversation already.";

pub fn link_failed(error: &str) -> String {
    format!("No new meeting could be created: {}", escape(error))
}

pub fn unknown_command() -> String {
    format!("I did not understand that.\n\n{HELP}")
}

/// `list`: the open conversations, oldest first.
pub fn open_conversations(conversations: &[ConversationInfo], now: i64) -> String {
    if conversations.is_empty() {
        return "No open conversations.".to_string();
    }
    let lines: Vec<String> = conversations
        .iter()
        .map(|c| {
            let expiry = match c.links_expire_at {
                Some(at) if at > now => format!("links valid until {}", clock::human(at)),
                Some(_) => "links expired".to_string(),
                None => "no meeting".to_string(),
            };
            format!(
                "- {} · {} · opened {} · {expiry}",
                c.key.channel.display_name(),
                customer_label(&c.key, c.customer_name.as_deref()),
                age(now - c.created_at),
            )
        })
        .collect();
    format!(
        "**Open conversations ({})**\n\n{}",
        conversations.len(),
        lines.join("\n")
    )
}

/// The notice after WhatsApp refused a reply because the 24-hour window closed.
pub fn window_closed() -> String {
    "⚠️ The customer did not get the WhatsApp reply: their 24-hour window is closed (code 7710). \
     WhatsApp only lets free-form messages reach a customer within 24 hours of their last \
     message, so **the customer must write first**."
        .to_string()
}

fn customer_label(key: &ConversationKey, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{} ({})", key.customer.masked(), escape(name)),
        None => key.customer.masked(),
    }
}

/// How long ago, for people: "just now", "12 min ago", "5 h ago", "3 days ago".
fn age(ms: i64) -> String {
    let minutes = ms.max(0) / 60_000;
    match minutes {
        0 => "just now".to_string(),
        m if m < 60 => format!("{m} min ago"),
        m if m < 48 * 60 => format!("{} h ago", m / 60),
        m => format!("{} days ago", m / (24 * 60)),
    }
}

fn shortened(text: &str, max_chars: usize) -> String {
    let mut short: String = text.chars().take(max_chars).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

fn quote(text: &str) -> String {
    if text.trim().is_empty() {
        return "> _(no text)_".to_string();
    }
    text.lines()
        .map(|line| format!("> {}", escape(line)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Shows text as written, not as markdown: no links or formatting of the customer's.
fn escape(text: &str) -> String {
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
    use crate::domain::{BusinessAddress, Channel, CustomerAddress};

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
        let (markdown, card) = notification(
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
        assert_eq!(
            card["content"]["actions"][0]["url"],
            "https://instant.webex.com/visit/oCVp2LD"
        );
        assert!(!card.to_string().contains("4155550123"));
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age(30_000), "just now");
        assert_eq!(age(12 * 60_000), "12 min ago");
        assert_eq!(age(5 * 3_600_000), "5 h ago");
        assert_eq!(age(72 * 3_600_000), "3 days ago");
    }
}
