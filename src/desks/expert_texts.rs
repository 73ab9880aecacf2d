//! What icbridge writes to experts in Webex: the notification card, relays, notices and
//! command answers. Customers' words are escaped, never rendered as markdown, and their
//! numbers are always masked.

use crate::domain::Conversation;
use serde_json::{json, Value};

use crate::customers::opt_out::Keyword;
use crate::domain::clock;
use crate::domain::{
    is_line_break, one_line, Attachment, Channel, ConversationKey, InboundMessage, Location,
    MediaKind,
};

/// Webex refuses a message whose markdown is longer than this many bytes (with a 400, which
/// no retry cures), so every message built here stays below it, counted after escaping.
pub const MAX_MARKDOWN_BYTES: usize = 7439;
/// What the lines of one relayed part may take: the limit less its heading, with room to
/// spare.
const RELAY_PART_BYTES: usize = MAX_MARKDOWN_BYTES - 200;
/// How much of a customer's message goes into a notification (its link and names take the
/// rest); the whole text is in the transcript.
const NOTIFICATION_TEXT_CHARS: usize = 1000;
const NOTIFICATION_TEXT_BYTES: usize = 4000;
/// Names are shown this long in `list`, which shows many conversations in one message.
const LIST_NAME_CHARS: usize = 40;

/// The values of the card's `Action.Submit` buttons.
pub const ACTION_NEW_LINK: &str = "new_link";
pub const ACTION_CLOSE: &str = "close";
pub const ACTION_TAKE: &str = "take";
pub const ACTION_TRANSFER: &str = "transfer";
pub const ACTION_ADD_GUEST: &str = "add_guest";

pub const NO_MEETING_FOR_GUEST: &str =
    "This conversation has no meeting whose links still work: `new link` makes one first.";

pub const HELP: &str =
    "I connect customers who text your SMS number or WhatsApp account with a video call.\n\n\
In a conversation's thread (mention me in a space):\n\
- write anything to send it to the customer\n\
- `close` closes the conversation; the customer's next message opens a new one\n\
- `new link` makes a new meeting and sends the customer its link\n\
- `take` makes the conversation yours: only your replies reach the customer; `release` hands it back\n\
- `transfer <desk>` moves the conversation to another desk's experts\n\
- `add guest` gives one more guest link for the meeting (an interpreter, a relative); `add guest +1415…` also sends it to that number\n\n\
Anywhere: `list` shows the open conversations, `help` shows this.";

/// What a notification offers the desk's experts.
#[derive(Debug, Clone, Copy)]
pub enum Offer<'a> {
    /// A meeting to join as host.
    Meeting { host_url: &'a str, expires_at: i64 },
    /// A customer who wrote out of hours, waiting since then (Unix ms) with no meeting yet:
    /// taking the conversation (or `new link`) makes one and sends the customer its link.
    Waiting { since: i64 },
}

/// A conversation's notification, which opens its thread: markdown for every client, and a
/// card with the same facts and the buttons "Join as host" (when there is a meeting),
/// "Take", "New link", "Close" and, with several desks, "Transfer".
pub fn notification(
    message: &InboundMessage,
    offer: Offer<'_>,
    other_desks: &[String],
) -> (String, Value) {
    let key = &message.key;
    let who = customer_label(key, message.customer_name.as_deref());
    let text = shortened(&message.text, NOTIFICATION_TEXT_CHARS);
    let quoted = quoted_parts(&text, NOTIFICATION_TEXT_BYTES)
        .into_iter()
        .next()
        .unwrap_or_default();
    let more = if quoted.len() < quote_all(&text).len() {
        "\n>\n> _(shortened; the whole message is in the transcript)_"
    } else {
        ""
    };
    // A picture without caption is a whole question: say what came with the text.
    let sent_with = message.media.summary();
    let (quoted, sent_with_line) = match (text.trim().is_empty(), sent_with.is_empty()) {
        (true, false) => (format!("_({sent_with})_"), String::new()),
        (false, false) => (quoted, format!("\n\n_with {sent_with}_")),
        _ => (quoted, String::new()),
    };
    let (offer_line, offer_fact) = match offer {
        Offer::Meeting {
            host_url,
            expires_at,
        } => {
            let expiry = clock::human(expires_at);
            (
                format!("**[Join as host]({host_url})** · link valid until {expiry}"),
                json!({"title": "Link valid until", "value": expiry}),
            )
        }
        Offer::Waiting { since } => {
            let since = clock::human(since);
            (
                format!(
                    "Wrote out of hours, waiting since {since}. No meeting yet: **Take** \
                     (or `take`) makes one and sends the customer the link."
                ),
                json!({"title": "Waiting since", "value": since}),
            )
        }
    };
    let markdown = format!(
        "**Video consultation request** · {channel} · {who}\n\n{quoted}{more}{sent_with_line}\n\n{offer_line}",
        channel = key.channel.display_name(),
    );
    let mut facts = vec![
        json!({"title": "Channel", "value": key.channel.display_name()}),
        json!({"title": "Customer", "value": who}),
        offer_fact,
    ];
    if !sent_with.is_empty() {
        facts.push(json!({"title": "Sent with", "value": sent_with}));
    }
    let card_text = match (text.trim().is_empty(), sent_with.is_empty()) {
        (false, _) => escape(&text),
        (true, false) => format!("({sent_with})"),
        (true, true) => "(no text)".to_string(),
    };
    let actions = card_actions(offer, other_desks);
    let card = json!({
        "contentType": "application/vnd.microsoft.card.adaptive",
        "content": {
            "type": "AdaptiveCard",
            "version": "1.2",
            "body": [
                {"type": "TextBlock", "text": "Video consultation request", "weight": "Bolder", "size": "Medium"},
                {"type": "FactSet", "facts": facts},
                {"type": "TextBlock", "text": card_text, "wrap": true},
            ],
            "actions": actions,
        },
    });
    (markdown, card)
}

/// The notification card's buttons: "Join as host" and "Add guest" when there is a
/// meeting, "Take", "New link", "Close", and "Transfer" with a choice of the other desks.
fn card_actions(offer: Offer<'_>, other_desks: &[String]) -> Vec<Value> {
    let mut actions = Vec::new();
    if let Offer::Meeting { host_url, .. } = offer {
        actions.push(json!({"type": "Action.OpenUrl", "title": "Join as host", "url": host_url}));
    }
    actions.extend([
        json!({"type": "Action.Submit", "title": "Take", "data": {"action": ACTION_TAKE}}),
        json!({"type": "Action.Submit", "title": "New link", "data": {"action": ACTION_NEW_LINK}}),
    ]);
    // One more guest link needs a meeting.
    if let Offer::Meeting { .. } = offer {
        actions.push(
            json!({"type": "Action.Submit", "title": "Add guest", "data": {"action": ACTION_ADD_GUEST}}),
        );
    }
    actions
        .push(json!({"type": "Action.Submit", "title": "Close", "data": {"action": ACTION_CLOSE}}));
    // With several desks: "Transfer", choosing the desk.
    if !other_desks.is_empty() {
        let choices: Vec<Value> = other_desks
            .iter()
            .map(|desk| json!({"title": desk, "value": desk}))
            .collect();
        actions.push(json!({
            "type": "Action.ShowCard", "title": "Transfer",
            "card": {
                "type": "AdaptiveCard",
                "body": [{"type": "Input.ChoiceSet", "id": "desk", "choices": choices, "value": other_desks[0]}],
                "actions": [{"type": "Action.Submit", "title": "Transfer", "data": {"action": ACTION_TRANSFER}}],
            },
        }));
    }
    actions
}

/// A later customer message, for the conversation's thread: one message, or for a text too
/// long for one Webex message, several parts to be posted in order.
pub fn customer_said(text: &str) -> Vec<String> {
    let parts = quoted_parts(text, RELAY_PART_BYTES);
    let count = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(index, quoted)| match count {
            1 => format!("**Customer:**\n\n{quoted}"),
            _ => format!("**Customer ({}/{count}):**\n\n{quoted}", index + 1),
        })
        .collect()
}

/// A message from a customer who opted out, for the experts: what `customer_said` gives,
/// saying that nothing goes back.
pub fn opted_out_customer_said(text: &str) -> Vec<String> {
    customer_said(text)
        .into_iter()
        .map(|part| {
            part.replacen(
                "**Customer",
                "**Customer who opted out** (nothing is sent to them until they text START) **",
                1,
            )
        })
        .collect()
}

/// The thread's note when the customer texts a keyword (`text`, as they wrote it).
pub fn keyword_note(keyword: Keyword, text: &str) -> String {
    let word = escape(&shortened(text.trim(), 40));
    match keyword {
        Keyword::Stop => format!(
            "🛑 **The customer texted {word}**: icbridge sends them nothing more (replies here \
             are not sent) until they text START. Messages still waiting to go to them were \
             cancelled."
        ),
        Keyword::Start => format!(
            "▶️ **The customer texted {word}**: they get messages again, replies here included."
        ),
        Keyword::Help => format!("ℹ️ The customer texted {word} and got the help text."),
    }
}

/// The customer opened their link (a person, not a link preview).
pub fn link_opened(at: i64) -> String {
    format!("👀 The customer opened the link at {}.", clock::human(at))
}

pub fn not_sent_opted_out() -> String {
    "Not sent: the customer opted out (STOP). They get messages again once they text START."
        .to_string()
}

/// A file the customer sent, as its own message in the thread (the file is attached to
/// it): what it is, which of how many, and its caption.
pub fn customer_file(attachment: &Attachment, index: usize, count: usize) -> String {
    // A file of a type WhatsApp does not list says which type it is.
    let noun = match attachment.kind() {
        MediaKind::File => format!("file ({})", escape(attachment.mime_type.as_str())),
        kind => kind.noun().to_string(),
    };
    let which = if count > 1 {
        format!(" ({}/{count})", index + 1)
    } else {
        String::new()
    };
    match &attachment.caption {
        Some(caption) => format!(
            "**Customer sent a {noun}{which}:**\n\n{}",
            quote_all(&shortened(caption, NOTIFICATION_TEXT_CHARS))
        ),
        None => format!("**Customer sent a {noun}{which}.**"),
    }
}

/// A file that could not be attached (too large, a type Webex refuses, a link that does
/// not answer): the experts still learn that it came.
pub fn customer_file_not_shown(markdown: &str, reason: &str) -> String {
    format!("{markdown}\n\n_The file cannot be shown here: {reason}._")
}

/// A place the customer shared: its name and address, linked to a map.
pub fn customer_location(place: &Location) -> String {
    format!(
        "**Customer shared a location:** [{}]({})",
        escape(&place.describe()),
        place.map_url()
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

/// The first line of a booked consultation's card, above the usual notification.
pub fn appointment_due(when: &str) -> String {
    format!("**Booked consultation** · {}\n\n", escape(when))
}

/// `close` of a conversation whose booked consultation is not over.
pub fn booked_not_closed(when: &str) -> String {
    format!(
        "Not closed: this conversation has a booked consultation on {}, and stays open for it. \
         It can be closed once the consultation is over; cancelling the appointment calls it off.",
        escape(when)
    )
}

pub fn appointment_cancelled(when: &str, by: &str, customer_told: bool) -> String {
    let customer = if customer_told {
        "The customer is told."
    } else {
        "The customer could not be told: on WhatsApp only within 24 hours of their last message."
    };
    format!(
        "The booked consultation of {} was cancelled by {}; its links no longer work. {customer}",
        escape(when),
        escape(by)
    )
}

/// One more guest link for the meeting, and where it went.
pub fn guest_added(guest_url: &str, sent_to: Option<&str>, by: &str) -> String {
    let sent = match sent_to {
        // Masked by icbridge (`+1415•••0123`): nothing in it to escape.
        Some(number) => format!("It is being sent to {number}."),
        None => "Share it with the guest.".to_string(),
    };
    format!(
        "{} added a guest: **[guest link]({guest_url})**. {sent}",
        escape(by)
    )
}

/// `add guest <number>` for a number that opted out (STOP): the link is not sent there.
pub fn guest_not_sent_opted_out(guest_url: &str, number: &str, by: &str) -> String {
    format!(
        "{} added a guest: **[guest link]({guest_url})**. It is not sent to {number}: that \
         number opted out (STOP). Share the link another way.",
        escape(by)
    )
}

pub fn closed(by: &str) -> String {
    format!(
        "Conversation closed by {}. The customer's next message opens a new one.",
        escape(by)
    )
}

/// The customer answered the survey asked when the conversation was closed.
pub fn rated(rating: i64) -> String {
    format!("The customer rated the consultation {rating}/5.")
}

pub const ALREADY_CLOSED: &str =
    "This conversation is closed; nothing was sent. The customer's next message opens a new one.";

pub const RELAY_NOT_CONFIGURED: &str = "Relaying to the customer is not configured \
     (ICB_CONNECT_API_URL and ICB_CONNECT_SERVICE_KEY); nothing was sent.";

pub const FILES_NOT_RELAYED: &str = "Files cannot reach the customer: icbridge has no public \
     address (ICB_PUBLIC_URL) for Webex Connect to fetch them from. Only the text was sent.";

/// A conversation was taken: only its assignee's replies reach the customer now.
pub fn taken(who: &str) -> String {
    format!(
        "✋ **Taken by {}**: only their replies reach the customer. `release` hands it back.",
        escape(who)
    )
}

pub fn released(who: &str) -> String {
    format!(
        "{} released the conversation: anyone can take it.",
        escape(who)
    )
}

/// Another expert was first (or holds it): their name, so the asker knows whom to ask.
pub fn taken_by_other(who: &str) -> String {
    format!("This conversation is taken by {}.", escape(who))
}

/// A reply by an expert who is not the conversation's assignee: not sent.
pub fn not_the_assignee(who: &str) -> String {
    format!(
        "Not sent to the customer: this conversation is taken by {}. Ask them to `release` it first.",
        escape(who)
    )
}

/// A reply icbridge found only by listing the space (its webhook event never came): it
/// reached the customer later than it was written.
pub fn relayed_late(written_at: &str) -> String {
    let written = crate::domain::clock::parse_rfc3339(written_at)
        .map(|ms| {
            crate::domain::clock::rfc3339(ms)
                .replace('T', " ")
                .replace('Z', " UTC")
        })
        .unwrap_or_else(|| escape(written_at));
    format!(
        "Sent to the customer late: this reply was written at {written}, but Webex did not \
         deliver it to icbridge then; icbridge found it when it next looked."
    )
}

/// A reply or a button press in a conversation's old thread, after it was transferred.
pub fn moved_to_another_desk(desk: &str) -> String {
    format!(
        "Not sent: this conversation was transferred to the desk **{}**. Reply in its \
         thread there.",
        escape(desk)
    )
}

/// An expert's reply longer than the customer's channel takes, refused
/// (`ICB_LONG_REPLIES=refuse`).
pub fn reply_too_long(channel: Channel, chars_over: usize) -> String {
    let limit = match channel {
        Channel::Sms => crate::domain::SMS_MAX_CHARS,
        Channel::Whatsapp => crate::domain::WHATSAPP_MAX_CHARS,
    };
    format!(
        "Not sent to the customer: your reply is {chars_over} characters longer than {} takes \
         ({limit} characters). Shorten it and send it again.",
        channel.display_name()
    )
}

/// A card's button press that icbridge could not take (Webex is not known to send it again, and
/// presses cannot be looked up later).
pub const PRESS_NOT_TAKEN: &str =
    "icbridge could not take that button press just now; please press it again.";

pub const NOT_TAKEN_BY_YOU: &str = "You have not taken this conversation: nothing to release.";
pub const ALREADY_YOURS: &str = "You have already taken this conversation.";

/// The note left in the old thread when a conversation moves to another desk.
pub fn transferred(to_desk: &str, by: &str) -> String {
    format!(
        "↪️ Transferred to **{}** by {}: the conversation goes on in that desk's space.",
        escape(to_desk),
        escape(by)
    )
}

/// The heading of the notification a desk gets for a conversation transferred to it.
pub fn transferred_from(from_desk: &str, by: &str) -> String {
    format!(
        "**Transferred from {}** by {}\n\n",
        escape(from_desk),
        escape(by)
    )
}

pub fn unknown_desk(asked: &str, desks: &[String]) -> String {
    format!(
        "There is no desk {:?}. Desks: {}.",
        one_line(asked),
        desks.join(", ")
    )
}

pub const ALREADY_AT_THAT_DESK: &str = "The conversation is at that desk already.";

/// The answer to someone who is not one of the experts.
pub const NOT_FOR_YOU: &str =
    "Sorry, I only take requests from the experts of this service, in their space.";

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
pub fn open_conversations(conversations: &[Conversation], now: i64) -> String {
    if conversations.is_empty() {
        return "No open conversations.".to_string();
    }
    let mut lines: Vec<String> = conversations
        .iter()
        .map(|c| {
            let expiry = match c.links_expire_at {
                Some(at) if at > now => format!("links valid until {}", clock::human(at)),
                Some(_) => "links expired".to_string(),
                None => "no meeting".to_string(),
            };
            let name = c
                .customer_name
                .as_deref()
                .map(|name| shortened(name, LIST_NAME_CHARS));
            let taken = match &c.assignee {
                Some(who) => format!(" · taken by {}", escape(who)),
                None => String::new(),
            };
            format!(
                "- {} · {} · opened {} · {expiry}{taken}",
                c.key.channel.display_name(),
                customer_label(&c.key, name.as_deref()),
                age(now - c.created_at),
            )
        })
        .collect();
    let heading = format!("**Open conversations ({})**\n\n", conversations.len());
    // Lines that do not fit in one Webex message are counted instead of shown.
    let mut shown = lines.len();
    let fits = |shown: usize, lines: &[String]| {
        heading.len() + lines[..shown].iter().map(|l| l.len() + 1).sum::<usize>() + 40
            <= MAX_MARKDOWN_BYTES
    };
    while !fits(shown, &lines) {
        shown -= 1;
    }
    if shown < lines.len() {
        let hidden = lines.len() - shown;
        lines.truncate(shown);
        lines.push(format!("- … and {hidden} more"));
    }
    format!("{heading}{}", lines.join("\n"))
}

/// The notice when a WhatsApp message to the customer is held: their 24-hour window is
/// closed. With a template, the customer was sent it; without, they must write first.
pub fn window_closed(template: Option<&str>) -> String {
    let why = "⚠️ The customer has not written for 24 hours, so WhatsApp no longer takes \
               free-form messages to them.";
    match template {
        Some(id) => format!(
            "{why} They were sent the approved template `{}` instead; **your message is held \
             and sent as soon as they answer.**",
            escape(id)
        ),
        None => format!(
            "{why} **The customer must write first**: your message is held and sent as soon \
             as they do. (An approved template, `ICB_WHATSAPP_TEMPLATE`, would reach them now.)"
        ),
    }
}

fn customer_label(key: &ConversationKey, name: Option<&str>) -> String {
    match name {
        // Names are one line when parsed; kept so here too, whatever their source.
        Some(name) => format!("{} ({})", key.customer.masked(), escape(&one_line(name))),
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

/// The text as a markdown quote, every line inside it: lines end at any line break style
/// a Webex client honours, not only at `\n`.
fn quote_all(text: &str) -> String {
    quoted_lines(text).join("\n")
}

fn quoted_lines(text: &str) -> Vec<String> {
    if text.trim().is_empty() {
        return vec!["> _(no text)_".to_string()];
    }
    text.replace("\r\n", "\n")
        .split(is_line_break)
        .map(|line| format!("> {}", escape(line)))
        .collect()
}

/// The quoted text in parts of at most `max_bytes` each, split between lines where it can
/// be and inside a line too long on its own.
fn quoted_parts(text: &str, max_bytes: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut part = String::new();
    for line in quoted_lines(text) {
        for piece in split_line(&line, max_bytes) {
            if !part.is_empty() && part.len() + 1 + piece.len() > max_bytes {
                parts.push(std::mem::take(&mut part));
            }
            if !part.is_empty() {
                part.push('\n');
            }
            part.push_str(&piece);
        }
    }
    parts.push(part);
    parts
}

/// A quoted line cut into pieces of at most `max_bytes`, each a quoted line of its own,
/// never inside a character or between a backslash and the character it escapes.
fn split_line(line: &str, max_bytes: usize) -> Vec<String> {
    if line.len() <= max_bytes {
        return vec![line.to_string()];
    }
    let body = &line[2..];
    let mut pieces = Vec::new();
    let mut piece = String::from("> ");
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        let mut unit = String::from(c);
        if c == '\\' {
            unit.extend(chars.next());
        }
        if piece.len() + unit.len() > max_bytes {
            pieces.push(std::mem::replace(&mut piece, String::from("> ")));
        }
        piece.push_str(&unit);
    }
    pieces.push(piece);
    pieces
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
            media: Default::default(),
            button: None,
        };
        let (markdown, card) = notification(
            &message,
            Offer::Meeting {
                host_url: "https://instant.webex.com/visit/oCVp2LD",
                expires_at: 1_795_190_400_000,
            },
            &[],
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
    fn every_line_break_style_stays_inside_the_quote() {
        let quoted = quote_all("one\rJoin as host: x\r\ntwo\u{2028}three\nfour");
        assert_eq!(quoted, "> one\n> Join as host: x\n> two\n> three\n> four");
    }

    #[test]
    fn long_texts_are_relayed_in_parts_that_webex_accepts() {
        let texts = [
            "😀".repeat(3000),
            "漢".repeat(3000),
            "*\n".repeat(1500),
            "*".repeat(4096),
            format!("{}\n{}", "a".repeat(4000), "\\".repeat(96)),
        ];
        for text in texts {
            let parts = customer_said(&text);
            for part in &parts {
                assert!(part.len() <= MAX_MARKDOWN_BYTES, "{} bytes", part.len());
                for line in part.lines().skip(2) {
                    assert!(line.starts_with("> "), "{line:?}");
                }
            }
            // Nothing is lost: the parts hold the whole text, in order.
            let joined: String = parts
                .iter()
                .flat_map(|part| part.lines().skip(2))
                .map(|line| line[2..].replace('\\', ""))
                .collect();
            let expected: String = text.replace(['\n', '\\'], "");
            assert_eq!(joined, expected);
        }
        assert_eq!(
            customer_said("hi"),
            vec!["**Customer:**\n\n> hi".to_string()]
        );
        assert!(customer_said(&"漢".repeat(3000))[0].starts_with("**Customer (1/2):**"));
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age(30_000), "just now");
        assert_eq!(age(12 * 60_000), "12 min ago");
        assert_eq!(age(5 * 3_600_000), "5 h ago");
        assert_eq!(age(72 * 3_600_000), "3 days ago");
    }
}
