//! Events for the customer's systems of record (a CRM, an EMR, a portal), sent as
//! Standard Webhooks (<https://www.standardwebhooks.com>): what happened to a consultation,
//! as a JSON body `{"type", "timestamp", "data"}`, signed with the subscription's
//! `whsec_` secret.
//!
//! An event is stored once, with everything any subscription may be sent; what one
//! subscription receives is [`render`]ed from it by its [`Includes`]: texts, media, meeting
//! links, the transcript and full numbers leave icbridge only when a subscription asks
//! for them.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use serde::Deserialize;
use sha2::Sha256;

use super::mask_digits;

/// The outbox `kind` of an event's delivery to one subscription.
pub const DELIVERY_KIND: &str = "event";

/// What happened. The names are the `type` of the body, and what subscriptions filter on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    ConversationOpened,
    MeetingCreated,
    MessageReceived,
    MessageSent,
    LinkOpened,
    ConversationAssigned,
    ConversationReleased,
    ConversationTransferred,
    ConversationClosed,
    RatingReceived,
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentReminded,
    CustomerOptedOut,
    CustomerOptedIn,
    CustomerErased,
}

impl EventType {
    pub const ALL: [EventType; 16] = [
        EventType::ConversationOpened,
        EventType::MeetingCreated,
        EventType::MessageReceived,
        EventType::MessageSent,
        EventType::LinkOpened,
        EventType::ConversationAssigned,
        EventType::ConversationReleased,
        EventType::ConversationTransferred,
        EventType::ConversationClosed,
        EventType::RatingReceived,
        EventType::AppointmentBooked,
        EventType::AppointmentCancelled,
        EventType::AppointmentReminded,
        EventType::CustomerOptedOut,
        EventType::CustomerOptedIn,
        EventType::CustomerErased,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ConversationOpened => "conversation.opened",
            EventType::MeetingCreated => "meeting.created",
            EventType::MessageReceived => "message.received",
            EventType::MessageSent => "message.sent",
            EventType::LinkOpened => "link.opened",
            EventType::ConversationAssigned => "conversation.assigned",
            EventType::ConversationReleased => "conversation.released",
            EventType::ConversationTransferred => "conversation.transferred",
            EventType::ConversationClosed => "conversation.closed",
            EventType::RatingReceived => "rating.received",
            EventType::AppointmentBooked => "appointment.booked",
            EventType::AppointmentCancelled => "appointment.cancelled",
            EventType::AppointmentReminded => "appointment.reminded",
            EventType::CustomerOptedOut => "customer.opted_out",
            EventType::CustomerOptedIn => "customer.opted_in",
            EventType::CustomerErased => "customer.erased",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A subscription's `events` entry: a type (`conversation.closed`), a group
/// (`conversation.*`) or everything (`*`). Parsing refuses a pattern that matches no type,
/// so a typo is found at start-up rather than by a receiver that never hears of anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypePattern(String);

impl TypePattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let pattern = TypePattern(text.trim().to_string());
        if EventType::ALL.iter().any(|t| pattern.matches(*t)) {
            Ok(pattern)
        } else {
            Err(format!(
                "{text:?} matches no event type (types are {}; `group.*` and `*` match several)",
                EventType::ALL.map(EventType::as_str).join(", ")
            ))
        }
    }

    pub fn matches(&self, event: EventType) -> bool {
        let name = event.as_str();
        match self.0.strip_suffix('*') {
            Some("") => true,
            Some(group) => group.ends_with('.') && name.starts_with(group),
            None => name == self.0,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a subscription receives beyond the default (ids, times, masked numbers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Includes {
    /// Meeting links (`meeting.created`): who holds one can join the meeting.
    pub links: bool,
    /// Message texts (`message.received`, `message.sent`).
    pub texts: bool,
    /// Customers' and experts' files, as signed `/media/` links.
    pub media: bool,
    /// The whole transcript in `conversation.closed`.
    pub transcript: bool,
    /// Customers' full numbers (otherwise masked: `+1415•••0123`).
    pub customer_number: bool,
}

impl Includes {
    /// The options that let personal data leave icbridge, for the start-up log.
    pub fn personal_data(&self) -> Vec<&'static str> {
        [
            (self.texts, "texts"),
            (self.media, "media"),
            (self.transcript, "transcript"),
            (self.customer_number, "customer_number"),
            (self.links, "links"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// A Standard Webhooks signing secret: `whsec_` and the base64 of 24 to 64 random bytes.
/// `Debug` never shows it.
pub struct WebhookSecret(SecretBox<Vec<u8>>);

impl WebhookSecret {
    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text
            .trim()
            .strip_prefix("whsec_")
            .ok_or("must start with whsec_ (run `icbridge events secret` for one)")?;
        let bytes = BASE64
            .decode(encoded)
            .map_err(|_| "is not whsec_ followed by base64")?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(format!(
                "must hold 24 to 64 bytes (Standard Webhooks), not {}",
                bytes.len()
            ));
        }
        Ok(Self(SecretBox::new(Box::new(bytes))))
    }

    /// A fresh secret of 32 random bytes.
    pub fn generate() -> String {
        let bytes: [u8; 32] = rand::random();
        format!("whsec_{}", BASE64.encode(bytes))
    }

    /// The `webhook-signature` header's value: `v1,` and the base64 of HMAC-SHA256 over
    /// `{id}.{timestamp}.{body}`.
    pub fn sign(&self, webhook_id: &str, timestamp_s: i64, body: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret())
            .expect("HMAC takes keys of any length");
        mac.update(format!("{webhook_id}.{timestamp_s}.").as_bytes());
        mac.update(body.as_bytes());
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

impl WebhookSecret {
    /// Whether one of the `v1` signatures of a `webhook-signature` header (a space-separated
    /// list) is this secret's over `{id}.{timestamp}.{body}`, compared in constant time.
    pub fn verifies(&self, webhook_id: &str, timestamp_s: &str, body: &[u8], header: &str) -> bool {
        header.split(' ').any(|signature| {
            let Some(encoded) = signature.strip_prefix("v1,") else {
                return false;
            };
            let Ok(expected) = BASE64.decode(encoded) else {
                return false;
            };
            let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret())
                .expect("HMAC takes keys of any length");
            mac.update(format!("{webhook_id}.{timestamp_s}.").as_bytes());
            mac.update(body);
            mac.verify_slice(&expected).is_ok()
        })
    }
}

impl Clone for WebhookSecret {
    fn clone(&self) -> Self {
        Self(SecretBox::new(Box::new(self.0.expose_secret().clone())))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(redacted)")
    }
}

/// Where events go, and which (`[[event_subscription]]`, or `ICB_EVENTS_URL` with
/// `ICB_EVENTS_SECRET` as the subscription `default`).
#[derive(Debug, Clone)]
pub struct Subscription {
    pub name: String,
    pub url: url::Url,
    pub secret: WebhookSecret,
    /// Empty: every type.
    pub events: Vec<TypePattern>,
    /// Only these desks' conversations (the default desk is `default`); `None`: all.
    pub desks: Option<Vec<String>>,
    pub include: Includes,
}

/// The desk name a subscription's `desks` uses for conversations of the default desk.
pub const DEFAULT_DESK: &str = "default";

impl Subscription {
    /// Whether an event of `event` type about a conversation of `desk` is queued for it.
    /// Events about a customer rather than a conversation (opt-outs, erasure) reach every
    /// subscription that takes their type.
    pub fn wants(&self, event: EventType, desk: Option<&str>, has_desk: bool) -> bool {
        let type_wanted = self.events.is_empty() || self.events.iter().any(|p| p.matches(event));
        let desk_wanted = match (&self.desks, has_desk) {
            (None, _) | (_, false) => true,
            (Some(desks), true) => desks
                .iter()
                .any(|d| d.as_str() == desk.unwrap_or(DEFAULT_DESK)),
        };
        type_wanted && desk_wanted
    }
}

/// The subscriptions' filters, as the store needs them to queue each event for the
/// subscriptions that want it.
#[derive(Debug, Clone, Default)]
pub struct EventRoutes(pub Vec<Subscription>);

/// An event about to be stored: its type, what it is about (a conversation, or a customer
/// for opt-outs and erasure), and its data with everything any subscription may see.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: EventType,
    pub conversation_id: Option<String>,
    /// The customer's address as stored (found by an erasure; never sent unmasked unless a
    /// subscription includes `customer_number`).
    pub customer: Option<String>,
    /// The conversation's desk; `has_desk` is false for events about a customer.
    pub desk: Option<String>,
    pub has_desk: bool,
    pub data: serde_json::Map<String, serde_json::Value>,
}

impl NewEvent {
    /// An event about a conversation. `data` gets the conversation's id and desk.
    pub fn about_conversation(
        kind: EventType,
        conversation_id: &str,
        desk: Option<&str>,
        customer: Option<&str>,
        data: serde_json::Value,
    ) -> Self {
        let mut data = object(data);
        data.insert("conversation_id".into(), conversation_id.into());
        data.insert("desk".into(), desk.unwrap_or(DEFAULT_DESK).into());
        if let Some(customer) = customer {
            data.insert(CUSTOMER.into(), customer.into());
        }
        Self {
            kind,
            conversation_id: Some(conversation_id.to_string()),
            customer: customer.map(str::to_string),
            desk: desk.map(str::to_string),
            has_desk: true,
            data,
        }
    }

    /// An event about a customer (opt-out, erasure): no desk, every subscription of its type.
    pub fn about_customer(
        kind: EventType,
        customer: Option<&str>,
        data: serde_json::Value,
    ) -> Self {
        let mut data = object(data);
        if let Some(customer) = customer {
            data.insert(CUSTOMER.into(), customer.into());
        }
        Self {
            kind,
            conversation_id: None,
            customer: customer.map(str::to_string),
            desk: None,
            has_desk: false,
            data,
        }
    }
}

fn object(data: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match data {
        serde_json::Value::Object(map) => map,
        serde_json::Value::Null => serde_json::Map::new(),
        other => panic!("event data must be a JSON object, not {other}"),
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredEvent {
    pub id: i64,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub occurred_at: i64,
    pub conversation_id: Option<String>,
    pub data: String,
}

impl StoredEvent {
    /// The `webhook-id`: the same on every attempt and every resend of this event.
    pub fn webhook_id(&self) -> String {
        webhook_id(self.id)
    }
}

pub fn webhook_id(event_id: i64) -> String {
    format!("evt_{event_id}")
}

/// The data keys the include options govern.
const CUSTOMER: &str = "customer";
const TEXT: &str = "text";
const MEDIA: &str = "media";
const LINKS: &str = "links";

/// The body one subscription receives for `event`: `{"type", "timestamp", "data"}` with
/// what its `include` does not ask for left out (texts, media, links) or masked (numbers).
/// `transcript` is added to `conversation.closed` by the caller when included (it is read
/// when sent, not stored twice).
pub fn render(event: &StoredEvent, include: &Includes) -> serde_json::Value {
    let mut data: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&event.data).unwrap_or_default();
    if !include.texts {
        data.remove(TEXT);
    }
    if !include.media {
        data.remove(MEDIA);
    }
    if !include.links {
        data.remove(LINKS);
    }
    if !include.customer_number {
        if let Some(serde_json::Value::String(number)) = data.get_mut(CUSTOMER) {
            *number = mask_customer(number);
        }
    }
    serde_json::json!({
        "type": event.kind,
        "timestamp": rfc3339_ms(event.occurred_at),
        "data": data,
    })
}

/// A customer's address as events show it without `customer_number`: a phone number with
/// its prefix and last four digits, anything else (a WhatsApp id) the same way.
pub fn mask_customer(address: &str) -> String {
    if address.contains('•') {
        // Masked already (`customer.erased` keeps no more).
        return address.to_string();
    }
    match address.strip_prefix('+') {
        Some(digits) => format!("+{}", mask_digits(digits)),
        None if address.is_ascii() => mask_digits(address),
        None => "•••".to_string(),
    }
}

/// `2026-12-06T05:16:28.123Z`.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks libraries' published test vector (their `test_sign_function`).
    #[test]
    fn signs_the_specifications_test_vector() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                r#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn verifies_its_own_signatures_among_others() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let header = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= \
                      v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert!(secret.verifies("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body, header));
        assert!(!secret.verifies("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265331", body, header));
        assert!(!secret.verifies("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body, "v1,x"));
    }

    #[test]
    fn secrets_are_checked_and_never_shown() {
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_err());
        assert!(WebhookSecret::parse("whsec_not base64!").is_err());
        let fresh = WebhookSecret::generate();
        let parsed = WebhookSecret::parse(&fresh).unwrap();
        assert_eq!(format!("{parsed:?}"), "WebhookSecret(redacted)");
        assert_ne!(fresh, WebhookSecret::generate());
    }

    #[test]
    fn patterns_match_types_groups_and_everything() {
        let group = TypePattern::parse("conversation.*").unwrap();
        assert!(group.matches(EventType::ConversationClosed));
        assert!(!group.matches(EventType::MessageSent));
        assert!(TypePattern::parse("*")
            .unwrap()
            .matches(EventType::CustomerErased));
        assert!(TypePattern::parse("conversation.close").is_err());
        assert!(TypePattern::parse("conv*").is_err());
    }

    #[test]
    fn renders_only_what_is_included() {
        let event = StoredEvent {
            id: 7,
            kind: "message.received".into(),
            occurred_at: 1_765_000_000_123,
            conversation_id: Some("c1".into()),
            data: r#"{"customer":"+14155550123","text":"hi","media":[1],"links":{}}"#.into(),
        };
        let body = render(&event, &Includes::default());
        assert_eq!(
            body,
            serde_json::json!({"type": "message.received",
                "timestamp": "2025-12-06T05:46:40.123Z",
                "data": {"customer": "+1415•••0123"}})
        );
        let all = Includes {
            texts: true,
            media: true,
            links: true,
            customer_number: true,
            transcript: true,
        };
        assert_eq!(render(&event, &all)["data"]["customer"], "+14155550123");
        // What is stored masked (`customer.erased`) is shown as it is.
        assert_eq!(mask_customer("+1415•••0123"), "+1415•••0123");
        assert_eq!(mask_customer("+12•••34"), "+12•••34");
        assert_eq!(render(&event, &all)["data"]["text"], "hi");
    }
}
