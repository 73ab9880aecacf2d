//! A customer's message as icbridge reads it: which conversation it belongs to, its id,
//! its text (cleaned) and what came with it.

use std::fmt;

use super::{BusinessAddress, Channel, CustomerAddress, Media};

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
#[derive(Clone, PartialEq)]
pub struct InboundMessage {
    pub key: ConversationKey,
    /// The message text. Never log it.
    pub text: String,
    pub message_id: Option<MessageId>,
    /// The name the customer's WhatsApp profile or the flow gave, if any.
    pub customer_name: Option<String>,
    /// Files and a location sent with the text (links, never the bytes). Never log them.
    pub media: Media,
    /// The identifier of the button the customer tapped (a WhatsApp reply button, a
    /// template's quick reply, a list row); the text is then the button's title. The
    /// identifier decides what the tap answers.
    pub button: Option<String>,
}

impl fmt::Debug for InboundMessage {
    // The text and the name stay out of Debug output: it ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundMessage")
            .field("key", &self.key)
            .field("text_chars", &self.text.chars().count())
            .field("message_id", &self.message_id)
            .field("attachments", &self.media.attachments.len())
            .field("button", &self.button)
            .finish_non_exhaustive()
    }
}

/// Whether `c` ends a line in some writing convention: `\n`, `\r`, vertical tab, form feed,
/// NEL and the Unicode line and paragraph separators. Webex clients break lines at each.
pub fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// A customer's text as icbridge keeps it: every line break style becomes `\n` (`\r\n`
/// counts once), tabs stay, and every other control character (NUL included, which
/// PostgreSQL cannot store) is removed.
pub fn clean_text(raw: &str) -> String {
    let mut text = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() == Some(&'\n') {
            continue;
        }
        if is_line_break(c) {
            text.push('\n');
        } else if c == '\t' || !c.is_control() {
            text.push(c);
        }
    }
    text
}

/// A name on one line: line breaks, tabs and other control characters become spaces, runs
/// of spaces one, and the ends are trimmed. A name is shown inline, where a line break
/// would let it write lines of its own into the experts' messages.
pub fn one_line(raw: &str) -> String {
    raw.split(|c: char| c.is_control() || is_line_break(c) || c.is_whitespace())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_keep_lines_and_tabs_and_lose_other_control_characters() {
        assert_eq!(clean_text("before\u{0}after"), "beforeafter");
        assert_eq!(clean_text("a\r\nb\rc\nd"), "a\nb\nc\nd");
        assert_eq!(
            clean_text("a\u{2028}b\u{2029}c\u{85}d\u{0B}e\u{0C}f"),
            "a\nb\nc\nd\ne\nf"
        );
        assert_eq!(clean_text("tab\there\u{7}\u{1b}[31m"), "tab\there[31m");
        assert_eq!(clean_text("émoji 👍 漢字"), "émoji 👍 漢字");
    }

    #[test]
    fn names_are_one_line() {
        assert_eq!(
            one_line("Bob)\n\nJoin as host: https://evil.example/visit/FAKE"),
            "Bob) Join as host: https://evil.example/visit/FAKE"
        );
        assert_eq!(one_line(" Ann\r\u{2028}Lee\u{0}\t "), "Ann Lee");
    }
}
