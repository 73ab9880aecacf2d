//! What icbridge sends, as the outbox keeps it: a [`Delivery`] (the request, stored as JSON)
//! with its [`Purpose`], and the correlation ids that tie receipts back to it.

use serde::{Deserialize, Serialize};

use super::{Channel, ConversationKey, ExpertFile, MediaType, MediaUrl, ReplyTexts};

/// Where a Webex message goes: a space, or one person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Destination {
    #[serde(rename = "roomId")]
    RoomId(String),
    #[serde(rename = "toPersonEmail")]
    PersonEmail(String),
}

/// A message for Webex (`POST /messages`), in its field names. Markdown is limited to 7439
/// bytes by Webex; with a card, the markdown is the fallback for clients that cannot show
/// it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebexPost {
    #[serde(flatten)]
    pub destination: Destination,
    pub markdown: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub parent_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub attachments: Vec<serde_json::Value>,
    /// One link Webex fetches the file from (Webex takes one file per message).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub files: Vec<String>,
}

/// The request a delivery makes. Correlation ids are filled in at send time from the
/// outbox row itself (its id, its conversation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Delivery {
    /// A new meeting's notification for the experts (markdown, and a card for clients that
    /// show cards); the first one delivered opens its conversation's thread. Where the
    /// experts are is the delivering worker's setting, not the row's.
    Notification {
        markdown: String,
        card: serde_json::Value,
    },
    /// A message in the row's conversation's thread, to the experts. The thread is looked
    /// up when sending. (Rows written before 2026-11-30 also name a `destination`, which is
    /// ignored: the experts are where the worker is told they are.)
    ThreadMessage { markdown: String },
    /// A message in a given thread of a given desk's space: the note left in a
    /// conversation's old thread when it moves to another desk.
    DeskThreadMessage {
        markdown: String,
        desk: Option<String>,
        thread_message_id: String,
    },
    /// A customer's file in the row's conversation's thread: the markdown says what it is,
    /// the file is attached (by its link, or uploaded by icbridge when Webex cannot fetch
    /// the link itself).
    ThreadFile {
        markdown: String,
        url: MediaUrl,
        mime_type: MediaType,
    },
    /// A message to a given room: the bot's answers where it was asked (and notifications
    /// queued before 2026-11-30).
    WebexMessage(WebexPost),
    Sms {
        from: String,
        to: String,
        content: String,
        /// An expert's files, sent as links after the text (signed when sent).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        files: Vec<ExpertFile>,
    },
    /// An expert's file as a WhatsApp media message (image, document, video, audio), its
    /// link signed when sent; a type WhatsApp does not carry goes as a link in a text.
    WhatsappMedia {
        app_id: String,
        waid: String,
        file: ExpertFile,
        caption: Option<String>,
    },
    Whatsapp {
        app_id: String,
        waid: String,
        body: String,
    },
    /// A text with reply buttons (at most three), inside the 24-hour window only: the
    /// survey's question after a conversation is closed. The customer's tap comes back as a
    /// message whose text is the button's title.
    WhatsappButtons {
        app_id: String,
        waid: String,
        body: String,
        buttons: Vec<ReplyButton>,
    },
    /// An approved template, the only message that reaches a WhatsApp customer outside
    /// the 24-hour window; its variables are filled when it is queued.
    WhatsappTemplate {
        app_id: String,
        waid: String,
        template: String,
        parameters: std::collections::BTreeMap<String, String>,
    },
}

/// A WhatsApp reply button: `id` is ours, `title` (at most 20 characters) what the
/// customer sees and taps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyButton {
    pub id: String,
    pub title: String,
}

/// Why a delivery exists; shown to operators as the outbox row's `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A new meeting's host link for the experts; the first one delivered opens the
    /// conversation's thread.
    ExpertNotification,
    /// Something else the experts should know about a conversation.
    ExpertNotice,
    CustomerReply,
    /// The answer to a customer's STOP, START or HELP: the one kind of message a customer
    /// who opted out still gets (the confirmation that they did).
    OptOutReply,
}

impl Purpose {
    pub const EXPERT_NOTIFICATION: &'static str = "expert_notification";
    pub const EXPERT_NOTICE: &'static str = "expert_notice";
    pub const CUSTOMER_REPLY: &'static str = "customer_reply";
    pub const OPT_OUT_REPLY: &'static str = "opt_out_reply";

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::ExpertNotification => Self::EXPERT_NOTIFICATION,
            Purpose::ExpertNotice => Self::EXPERT_NOTICE,
            Purpose::CustomerReply => Self::CUSTOMER_REPLY,
            Purpose::OptOutReply => Self::OPT_OUT_REPLY,
        }
    }

    /// Whether rows of `kind` go to customers (through Webex Connect).
    pub fn is_to_customer(kind: &str) -> bool {
        kind == Self::CUSTOMER_REPLY || kind == Self::OPT_OUT_REPLY
    }
}

/// A delivery as the store queues it: its kind, its request as JSON, and the customer
/// number or WhatsApp id it goes to (none for the experts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub kind: String,
    pub payload: String,
    pub recipient: Option<String>,
}

/// The longest SMS Webex Connect sends (its SMS API's `content`; longer ones fail with
/// receipt code 7107).
pub const SMS_MAX_CHARS: usize = 4000;
/// The longest WhatsApp text message body (Webex Connect's WhatsApp FAQs).
pub const WHATSAPP_MAX_CHARS: usize = 4096;
/// The longest caption icbridge puts on a WhatsApp media message (WhatsApp's limit for
/// image, video and document captions); a longer text goes as a message of its own.
pub const WHATSAPP_MAX_CAPTION_CHARS: usize = 1024;
/// Room kept at the end of an SMS for each of an expert's files, whose links are added
/// when it is sent.
const SMS_FILE_LINK_CHARS: usize = 700;

impl Delivery {
    pub fn entry(&self, purpose: Purpose) -> OutboxEntry {
        OutboxEntry {
            kind: purpose.as_str().to_string(),
            payload: serde_json::to_string(self).expect("deliveries serialise"),
            recipient: self.recipient().map(str::to_string),
        }
    }

    /// The customer number (SMS) or WhatsApp id a message to a customer goes to.
    pub fn recipient(&self) -> Option<&str> {
        match self {
            Delivery::Sms { to, .. } => Some(to),
            Delivery::Whatsapp { waid, .. }
            | Delivery::WhatsappMedia { waid, .. }
            | Delivery::WhatsappButtons { waid, .. }
            | Delivery::WhatsappTemplate { waid, .. } => Some(waid),
            Delivery::Notification { .. }
            | Delivery::ThreadMessage { .. }
            | Delivery::DeskThreadMessage { .. }
            | Delivery::ThreadFile { .. }
            | Delivery::WebexMessage(_) => None,
        }
    }

    /// The outbox entries of this delivery, each fitting its channel (see
    /// [`Delivery::fit_channel`]).
    pub fn entries(self, purpose: Purpose) -> Vec<OutboxEntry> {
        self.fit_channel()
            .iter()
            .map(|delivery| delivery.entry(purpose))
            .collect()
    }

    /// The characters a text message to a customer has beyond what its channel takes
    /// (0 when it fits).
    pub fn chars_over_limit(&self) -> usize {
        match self {
            Delivery::Sms { content, files, .. } => content
                .chars()
                .count()
                .saturating_sub(SMS_MAX_CHARS - files.len() * SMS_FILE_LINK_CHARS),
            Delivery::Whatsapp { body, .. } => {
                body.chars().count().saturating_sub(WHATSAPP_MAX_CHARS)
            }
            _ => 0,
        }
    }

    /// The delivery as its channel takes it: an SMS longer than [`SMS_MAX_CHARS`] or a
    /// WhatsApp text longer than [`WHATSAPP_MAX_CHARS`] becomes several messages, numbered
    /// `(1/3) …`, cut between words where it can be, sent in order (an expert's files go
    /// with the last). Anything else is one message as it is.
    pub fn fit_channel(self) -> Vec<Delivery> {
        match self {
            Delivery::Sms {
                from,
                to,
                content,
                files,
            } if content.chars().count() > SMS_MAX_CHARS - files.len() * SMS_FILE_LINK_CHARS => {
                let max = SMS_MAX_CHARS - files.len() * SMS_FILE_LINK_CHARS;
                let parts = numbered_parts(&content, max);
                let last = parts.len() - 1;
                parts
                    .into_iter()
                    .enumerate()
                    .map(|(index, content)| Delivery::Sms {
                        from: from.clone(),
                        to: to.clone(),
                        content,
                        files: if index == last {
                            files.clone()
                        } else {
                            Vec::new()
                        },
                    })
                    .collect()
            }
            Delivery::Whatsapp { app_id, waid, body }
                if body.chars().count() > WHATSAPP_MAX_CHARS =>
            {
                numbered_parts(&body, WHATSAPP_MAX_CHARS)
                    .into_iter()
                    .map(|body| Delivery::Whatsapp {
                        app_id: app_id.clone(),
                        waid: waid.clone(),
                        body,
                    })
                    .collect()
            }
            other => vec![other],
        }
    }
}

/// `text` in parts of at most `max_chars` characters each, numbered `(1/3) `: cut after a
/// line break or a space where one falls in the second half of a part, else anywhere
/// between two characters.
pub fn numbered_parts(text: &str, max_chars: usize) -> Vec<String> {
    // "(99/99) " at most: room is kept for the number in every part.
    const NUMBER_CHARS: usize = 8;
    let room = max_chars - NUMBER_CHARS;
    let chars: Vec<char> = text.chars().collect();
    let mut pieces: Vec<String> = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let mut end = (start + room).min(chars.len());
        if end < chars.len() {
            let window = &chars[start + room / 2..end];
            let cut = window
                .iter()
                .rposition(|c| *c == '\n')
                .or_else(|| window.iter().rposition(|c| c.is_whitespace()));
            if let Some(cut) = cut {
                end = start + room / 2 + cut + 1;
            }
        }
        pieces.push(
            chars[start..end]
                .iter()
                .collect::<String>()
                .trim_end()
                .to_string(),
        );
        start = end;
    }
    let count = pieces.len();
    pieces
        .into_iter()
        .enumerate()
        .map(|(index, piece)| format!("({}/{count}) {piece}", index + 1))
        .collect()
}

/// Who icbridge writes to customers as, when the Webex Connect API is configured. Unset
/// senders fall back to the address the customer wrote to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplySenders {
    pub sms_sender: Option<String>,
    pub whatsapp_app_id: Option<String>,
}

impl ReplySenders {
    /// A message to the conversation's customer, on their channel.
    pub fn reply(&self, key: &ConversationKey, text: String) -> Delivery {
        let business = key.business.as_str().to_string();
        match key.channel {
            Channel::Sms => Delivery::Sms {
                from: self.sms_sender.clone().unwrap_or(business),
                to: key.customer.as_str().to_string(),
                content: text,
                files: Vec::new(),
            },
            Channel::Whatsapp => Delivery::Whatsapp {
                app_id: self.whatsapp_app_id.clone().unwrap_or(business),
                waid: key.customer.as_str().to_string(),
                body: text,
            },
        }
    }
}

impl ReplySenders {
    /// A question to the customer: by SMS its text, on WhatsApp with `buttons` to tap.
    pub fn question(
        &self,
        key: &ConversationKey,
        text: String,
        buttons: Vec<ReplyButton>,
    ) -> Delivery {
        match self.reply(key, text) {
            Delivery::Whatsapp { app_id, waid, body } => Delivery::WhatsappButtons {
                app_id,
                waid,
                body,
                buttons,
            },
            other => other,
        }
    }

    /// An expert's reply with files, on the customer's channel: by SMS, the text with the
    /// files' links; by WhatsApp, each file as a media message, the text as the first one's
    /// caption (or a text of its own first, when that file takes no caption).
    pub fn reply_with_files(
        &self,
        key: &ConversationKey,
        text: &str,
        files: &[ExpertFile],
    ) -> Vec<Delivery> {
        match self.reply(key, text.to_string()) {
            Delivery::Sms {
                from, to, content, ..
            } => vec![Delivery::Sms {
                from,
                to,
                content,
                files: files.to_vec(),
            }],
            Delivery::Whatsapp { app_id, waid, body } => {
                let takes_caption = body.chars().count() <= WHATSAPP_MAX_CAPTION_CHARS
                    && files.first().is_some_and(|file| {
                        file.media_type()
                            .is_some_and(|t| t.kind() != super::MediaKind::Audio)
                    });
                let text = (!body.trim().is_empty()).then_some(body);
                let mut deliveries = Vec::new();
                let mut caption = None;
                match text {
                    Some(text) if takes_caption => caption = Some(text),
                    Some(text) => deliveries.push(Delivery::Whatsapp {
                        app_id: app_id.clone(),
                        waid: waid.clone(),
                        body: text,
                    }),
                    None => {}
                }
                for file in files {
                    deliveries.push(Delivery::WhatsappMedia {
                        app_id: app_id.clone(),
                        waid: waid.clone(),
                        file: file.clone(),
                        caption: caption.take(),
                    });
                }
                deliveries
            }
            other => vec![other],
        }
    }
}

/// What a later message of a conversation causes once it is answered with the live
/// meeting: its text in the experts' thread, and maybe the guest link again.
#[derive(Debug, Clone, Default)]
pub struct FollowUps {
    pub relays: Vec<OutboxEntry>,
    pub link_reply: Option<LinkReply>,
}

/// The customer gets the live meeting's guest link again (`ICB_FOLLOWUP_REPLY=link`).
#[derive(Debug, Clone)]
pub struct LinkReply {
    pub senders: ReplySenders,
    pub texts: ReplyTexts,
    /// The name the message gave, for the text.
    pub customer_name: Option<String>,
}

impl FollowUps {
    /// The deliveries, for a conversation (of `desk`) whose live meeting's guest link is
    /// `guest_url`.
    pub fn entries(
        &self,
        key: &ConversationKey,
        guest_url: &str,
        desk: Option<&str>,
    ) -> Vec<OutboxEntry> {
        let mut entries = self.relays.clone();
        if let Some(link) = &self.link_reply {
            let text = link
                .texts
                .render(desk, guest_url, link.customer_name.as_deref());
            let reply = link.senders.reply(key, text);
            entries.push(reply.entry(Purpose::CustomerReply));
        }
        entries
    }
}

const CORRELATION_PREFIX: &str = "icb-";

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_ids_name_icbridges_own_rows_only() {
        assert_eq!(correlation_id(42), "icb-42");
        assert_eq!(outbox_id_of("icb-42"), Some(42));
        assert_eq!(outbox_id_of("flow-42"), None);
        assert_eq!(outbox_id_of("icb-x"), None);
    }

    #[test]
    fn long_texts_become_numbered_parts_that_fit() {
        let words = "word ".repeat(1000);
        let parts = numbered_parts(&words, SMS_MAX_CHARS);
        assert_eq!(parts.len(), 2);
        assert!(parts[0].starts_with("(1/2) word"));
        assert!(parts[1].starts_with("(2/2) word"));
        assert!(parts.iter().all(|p| p.chars().count() <= SMS_MAX_CHARS));
        // Cut between words: nothing lost but the spaces at the cuts.
        let rejoined: Vec<&str> = parts
            .iter()
            .flat_map(|p| p[6..].split_whitespace())
            .collect();
        assert_eq!(rejoined.len(), 1000);
        // A text without spaces is cut anywhere, in any script.
        let han = "漢".repeat(9000);
        let parts = numbered_parts(&han, WHATSAPP_MAX_CHARS);
        assert_eq!(parts.len(), 3);
        assert!(parts
            .iter()
            .all(|p| p.chars().count() <= WHATSAPP_MAX_CHARS));
        let total: usize = parts.iter().map(|p| p.chars().count() - 6).sum();
        assert_eq!(total, 9000);
    }

    #[test]
    fn a_text_that_fits_is_one_message() {
        let sms = Delivery::Sms {
            from: "56263".into(),
            to: "+14155550123".into(),
            content: "x".repeat(SMS_MAX_CHARS),
            files: Vec::new(),
        };
        assert_eq!(sms.clone().fit_channel(), vec![sms]);
    }

    #[test]
    fn a_webex_post_uses_webex_field_names() {
        let post = WebexPost {
            destination: Destination::RoomId("room".into()),
            markdown: "hi".into(),
            parent_id: Some("parent".into()),
            attachments: Vec::new(),
            files: Vec::new(),
        };
        assert_eq!(
            serde_json::to_value(&post).unwrap(),
            serde_json::json!({"roomId": "room", "markdown": "hi", "parentId": "parent"})
        );
    }
}
