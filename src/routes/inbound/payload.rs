//! The payload shapes accepted on `POST /webhooks/connect`, detected from their keys:
//! a flow's HTTP Request body, Outbound Webhook SMS and WhatsApp MO events, and delivery
//! receipts. Parsing is lenient about extra fields (the vendor adds fields over time) and
//! strict about the ones icbridge needs, naming any that is missing or invalid.

use serde_json::{Map, Value};

use crate::domain::{
    clean_text, one_line, Attachment, BusinessAddress, Channel, ConversationKey, CustomerAddress,
    DeliveryReceipt, InboundMessage, Location, Media, MediaType, MediaUrl, MessageId,
    MAX_ATTACHMENTS,
};

/// Longest message text kept; Webex Connect's own limit for SMS content.
const MAX_TEXT_CHARS: usize = 4096;
const MAX_NAME_CHARS: usize = 256;

#[derive(Debug)]
pub enum Inbound {
    Message(InboundMessage),
    Receipt(DeliveryReceipt),
    /// A well-formed event that asks nothing of icbridge (a non-MO WhatsApp event, ...).
    Ignored,
}

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("the body is not UTF-8")]
    NotUtf8,
    #[error("the body is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("expected a JSON object")]
    NotAnObject,
    #[error(
        "not a message icbridge understands: expected a flow body (`channel`, `from`, `text`), \
         a Webex Connect SMS (`oa`) or WhatsApp (`waid`) event, or a delivery receipt"
    )]
    Unrecognized,
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}` {reason}")]
    InvalidField { field: &'static str, reason: String },
    /// A part of a list or object field: `attachments[2].url`, `location.latitude`.
    #[error("field `{field}` {reason}")]
    InvalidPart { field: String, reason: String },
}

impl PayloadError {
    /// Not JSON at all (400), as opposed to JSON that is not a message (422).
    pub fn is_malformed(&self) -> bool {
        matches!(self, PayloadError::NotUtf8 | PayloadError::NotJson(_))
    }
}

pub fn parse(body: &[u8]) -> Result<Inbound, PayloadError> {
    let text = std::str::from_utf8(body).map_err(|_| PayloadError::NotUtf8)?;
    let value: Value = serde_json::from_str(text).map_err(PayloadError::NotJson)?;
    let Value::Object(object) = value else {
        return Err(PayloadError::NotAnObject);
    };
    let fields = Fields(&object);

    if let Some(notification) = object.get("deliveryInfoNotification") {
        return parse_receipt(notification).map(Inbound::Receipt);
    }
    if object.contains_key("waid") {
        return parse_whatsapp_mo(&fields);
    }
    if object.contains_key("oa") {
        return parse_sms_mo(&fields).map(Inbound::Message);
    }
    if object.contains_key("from") {
        return parse_flow(&fields).map(Inbound::Message);
    }
    Err(PayloadError::Unrecognized)
}

/// `fixtures/connect-sms-mo.json`: `oa` is the customer, `da` the business number.
fn parse_sms_mo(fields: &Fields) -> Result<InboundMessage, PayloadError> {
    build_message(
        fields,
        Channel::Sms,
        MessageFields {
            customer: "oa",
            business: Some("da"),
            text: "message",
            message_id: "tid",
            name: None,
            media: None,
        },
    )
}

/// `fixtures/vendor/connect-whatsapp-*.json`: `waid` is the customer, `appId` the business
/// account. Besides messages (`MO`), Webex Connect posts taps as events of their own: on a
/// reply button `reply` (`replyButtonIdentifier`, `replyButtonTitle`), on a template's quick
/// reply `postback` (`buttonPayload`, `buttonText`), on a list row `list`
/// (`listRowIdentifier`, `listRowTitle`); they carry no `message`, and the title is what the
/// customer said. Other events (`user_preference`, ...) ask nothing of icbridge.
fn parse_whatsapp_mo(fields: &Fields) -> Result<Inbound, PayloadError> {
    let event = fields.text("event")?.unwrap_or_else(|| "MO".into());
    let tap = match event.to_ascii_lowercase().as_str() {
        "mo" => None,
        "reply" => Some(("replyButtonIdentifier", "replyButtonTitle")),
        "postback" => Some(("buttonPayload", "buttonText")),
        "list" => Some(("listRowIdentifier", "listRowTitle")),
        _ => return Ok(Inbound::Ignored),
    };
    let names = MessageFields {
        customer: "waid",
        business: Some("appId"),
        text: "message",
        message_id: "tid",
        name: Some("username"),
        media: Some(MediaNames::CONNECT),
    };
    let Some((id_field, title_field)) = tap else {
        return build_message(fields, Channel::Whatsapp, names).map(Inbound::Message);
    };
    let identifier = fields.text(id_field)?;
    // The title is what the customer saw and tapped; a tap without one says its identifier.
    let (text_field, title) = match (fields.text(title_field)?, &identifier) {
        (Some(title), _) => (title_field, title),
        (None, Some(identifier)) => (id_field, identifier.clone()),
        (None, None) => return Err(PayloadError::MissingField(title_field)),
    };
    let mut message = build_message(
        fields,
        Channel::Whatsapp,
        MessageFields {
            text: text_field,
            media: None,
            ..names
        },
    )?;
    message.text = clean_text(&one_line(&title))
        .chars()
        .take(MAX_TEXT_CHARS)
        .collect();
    message.button = identifier;
    Ok(Inbound::Message(message))
}

/// `fixtures/flow-*.json`: the body a flow author types into an HTTP Request node.
fn parse_flow(fields: &Fields) -> Result<InboundMessage, PayloadError> {
    let raw_channel = fields.required("channel")?;
    let channel = Channel::parse(&raw_channel).ok_or_else(|| PayloadError::InvalidField {
        field: "channel",
        reason: format!("must be `sms` or `whatsapp`, not {raw_channel:?}"),
    })?;
    build_message(
        fields,
        channel,
        MessageFields {
            customer: "from",
            business: Some("to"),
            text: "text",
            message_id: "messageId",
            name: Some("name"),
            media: Some(MediaNames::FLOW),
        },
    )
}

/// The names of the fields a shape uses for each part of a message.
#[derive(Clone, Copy)]
struct MessageFields {
    customer: &'static str,
    business: Option<&'static str>,
    text: &'static str,
    message_id: &'static str,
    name: Option<&'static str>,
    media: Option<MediaNames>,
}

/// The names of an attachment's fields: Webex Connect's WhatsApp MO events use
/// `mime_type`, a flow body `mimeType`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct MediaNames {
    mime_type: &'static str,
    other_mime_type: &'static str,
}

impl MediaNames {
    const CONNECT: MediaNames = MediaNames {
        mime_type: "mime_type",
        other_mime_type: "mimeType",
    };
    const FLOW: MediaNames = MediaNames {
        mime_type: "mimeType",
        other_mime_type: "mime_type",
    };
}

fn build_message(
    fields: &Fields,
    channel: Channel,
    names: MessageFields,
) -> Result<InboundMessage, PayloadError> {
    let customer =
        CustomerAddress::parse(channel, &fields.required(names.customer)?).map_err(|e| {
            PayloadError::InvalidField {
                field: names.customer,
                reason: e.to_string(),
            }
        })?;
    let business = match names.business {
        Some(name) => match fields.text(name)? {
            Some(raw) => BusinessAddress::parse(&raw).map_err(|e| PayloadError::InvalidField {
                field: name,
                reason: e.to_string(),
            })?,
            None => BusinessAddress::default(),
        },
        None => BusinessAddress::default(),
    };
    // An empty text is a real message (a WhatsApp picture without caption); a missing one
    // means the sender's mapping is wrong. Control characters go (see `clean_text`).
    let text = clean_text(
        &fields
            .text_allow_empty(names.text)?
            .ok_or(PayloadError::MissingField(names.text))?,
    );
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(PayloadError::InvalidField {
            field: names.text,
            reason: format!("is longer than {MAX_TEXT_CHARS} characters"),
        });
    }
    let message_id = match fields.text(names.message_id)? {
        Some(raw) => MessageId::parse(&raw).map_err(|reason| PayloadError::InvalidField {
            field: names.message_id,
            reason,
        })?,
        None => None,
    };
    let customer_name = match names.name {
        Some(name) => fields
            .text_allow_empty(name)?
            .map(|n| {
                one_line(&n)
                    .chars()
                    .take(MAX_NAME_CHARS)
                    .collect::<String>()
            })
            .filter(|n| !n.is_empty()),
        None => None,
    };
    let media = match &names.media {
        Some(media_names) => parse_media(fields.0, media_names)?,
        None => Media::default(),
    };
    // A flow passes a tapped button's identifier on as `buttonId` (its text is the title).
    let button = match names.media {
        Some(MediaNames::FLOW) => fields.text("buttonId")?,
        _ => None,
    };
    Ok(InboundMessage {
        key: ConversationKey {
            channel,
            customer,
            business,
        },
        text,
        message_id,
        customer_name,
        media,
        button,
    })
}

/// `attachments` (a list, or Webex Connect's JSON string holding one) and `location` (an
/// object, or a JSON string holding one; empty when absent). Every item is checked: a
/// bad one refuses the whole message, naming the item.
fn parse_media(object: &Map<String, Value>, names: &MediaNames) -> Result<Media, PayloadError> {
    let attachments = match embedded_json(object.get("attachments"), "attachments")? {
        None => Vec::new(),
        Some(Value::Array(items)) => {
            if items.len() > MAX_ATTACHMENTS {
                return Err(PayloadError::InvalidField {
                    field: "attachments",
                    reason: format!("has more than {MAX_ATTACHMENTS} items"),
                });
            }
            items
                .iter()
                .enumerate()
                .map(|(index, item)| parse_attachment(index, item, names))
                .collect::<Result<_, _>>()?
        }
        Some(_) => {
            return Err(PayloadError::InvalidField {
                field: "attachments",
                reason: "must be a list of {url, type, caption}".into(),
            })
        }
    };
    let location = match embedded_json(object.get("location"), "location")? {
        None => None,
        Some(Value::Object(place)) => Some(parse_location(&place)?),
        Some(_) => {
            return Err(PayloadError::InvalidField {
                field: "location",
                reason: "must be an object with `latitude` and `longitude`".into(),
            })
        }
    };
    Ok(Media {
        attachments,
        location,
    })
}

/// A field that may hold JSON as a string; `None` when absent, null or an empty string.
fn embedded_json(
    value: Option<&Value>,
    field: &'static str,
) -> Result<Option<Value>, PayloadError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => {
            serde_json::from_str(text)
                .map(Some)
                .map_err(|_| PayloadError::InvalidField {
                    field,
                    reason: "holds a string that is not JSON".into(),
                })
        }
        Some(other) => Ok(Some(other.clone())),
    }
}

fn parse_attachment(
    index: usize,
    item: &Value,
    names: &MediaNames,
) -> Result<Attachment, PayloadError> {
    let part = |name: &str, reason: String| PayloadError::InvalidPart {
        field: format!("attachments[{index}].{name}"),
        reason,
    };
    let Value::Object(item) = item else {
        return Err(PayloadError::InvalidPart {
            field: format!("attachments[{index}]"),
            reason: "must be an object".into(),
        });
    };
    let text = |name: &str| match item.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(part(name, "must be a string".into())),
    };
    let url = text("url")?.ok_or_else(|| part("url", "is missing".into()))?;
    let url = MediaUrl::parse(url).map_err(|reason| part("url", reason))?;
    // A sticker gives its type inside `sticker`; a flow may pass Webex Connect's own list
    // through: both spellings are read. A type that is missing, or that icbridge cannot
    // read, does not cost the customer their message: the file is one of unknown type.
    let sticker = match item.get("sticker") {
        Some(Value::Object(sticker)) => Some(sticker),
        _ => None,
    };
    let given = |name: &str| {
        sticker
            .and_then(|sticker| sticker.get(name))
            .or_else(|| item.get(name))
            .and_then(Value::as_str)
    };
    let mime_type = given(names.mime_type)
        .or_else(|| given(names.other_mime_type))
        .and_then(|raw| MediaType::parse(raw).ok())
        .unwrap_or_else(MediaType::unknown);
    let caption =
        Attachment::caption(text("caption")?).map_err(|reason| part("caption", reason))?;
    Ok(Attachment {
        url,
        mime_type,
        caption,
        sticker: sticker.is_some(),
    })
}

fn parse_location(place: &Map<String, Value>) -> Result<Location, PayloadError> {
    let part = |name: &str, reason: String| PayloadError::InvalidPart {
        field: format!("location.{name}"),
        reason,
    };
    // Coordinates come as numbers or as text, depending on the sender.
    let coordinate = |name: &str| match place.get(name) {
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| part(name, "must be a number".into())),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| part(name, "must be a number".into())),
        None | Some(Value::Null) => Err(part(name, "is missing".into())),
        Some(_) => Err(part(name, "must be a number".into())),
    };
    let text = |name: &str| place.get(name).and_then(Value::as_str);
    Location::new(
        coordinate("latitude")?,
        coordinate("longitude")?,
        text("name"),
        text("address"),
    )
    .map_err(|(name, reason)| part(name, reason))
}

/// `fixtures/connect-delivery-receipt.json`.
fn parse_receipt(notification: &Value) -> Result<DeliveryReceipt, PayloadError> {
    let Value::Object(notification) = notification else {
        return Err(PayloadError::InvalidField {
            field: "deliveryInfoNotification",
            reason: "must be an object".into(),
        });
    };
    let outer = Fields(notification);
    let info = match notification.get("deliveryInfo") {
        Some(Value::Object(info)) => Some(info),
        Some(_) => {
            return Err(PayloadError::InvalidField {
                field: "deliveryInfo",
                reason: "must be an object".into(),
            })
        }
        None => None,
    };
    let empty = Map::new();
    let inner = Fields(info.unwrap_or(&empty));
    Ok(DeliveryReceipt {
        correlation_id: outer.text("correlationid")?,
        transid: outer.text("transid")?,
        code: inner.text("code")?,
        status: inner.text("deliveryStatus")?,
        channel: inner.text("deliveryChannel")?,
    })
}

/// Reads fields as text, accepting numbers too (`tid` or `da` may come unquoted).
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    /// The field as text without control characters (ids, addresses, codes); `None` when
    /// absent, null or blank.
    fn text(&self, name: &'static str) -> Result<Option<String>, PayloadError> {
        Ok(self
            .text_allow_empty(name)?
            .map(|text| text.chars().filter(|c| !c.is_control()).collect::<String>())
            .filter(|text| !text.trim().is_empty()))
    }

    fn text_allow_empty(&self, name: &'static str) -> Result<Option<String>, PayloadError> {
        let text = match self.0.get(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            // Whole numbers keep their digits; anything else (a fraction, or an integer
            // beyond 64 bits, which JSON parsers round) could not be told apart from
            // another id.
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            Some(Value::Number(_)) => {
                return Err(PayloadError::InvalidField {
                    field: name,
                    reason: "must be a string or a whole number of at most 64 bits \
                             (send larger ids as strings)"
                        .into(),
                })
            }
            Some(_) => {
                return Err(PayloadError::InvalidField {
                    field: name,
                    reason: "must be a string".into(),
                })
            }
        };
        // A flow variable the flow could not fill arrives as its literal name.
        if text.contains("$(") && name != "text" && name != "message" {
            return Err(PayloadError::InvalidField {
                field: name,
                reason: format!(
                    "looks like a flow variable that was not substituted ({text:?}); check its name, variables are case-sensitive"
                ),
            });
        }
        Ok(Some(text))
    }

    /// The field as [`Self::text`]; absent (or null) is missing, blank is empty.
    fn required(&self, name: &'static str) -> Result<String, PayloadError> {
        match self.text(name)? {
            Some(text) => Ok(text),
            None if self.text_allow_empty(name)?.is_some() => Err(PayloadError::InvalidField {
                field: name,
                reason: "is empty".into(),
            }),
            None => Err(PayloadError::MissingField(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> InboundMessage {
        match parse(body.as_bytes()).unwrap() {
            Inbound::Message(m) => m,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    fn error(body: &str) -> String {
        parse(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn numbers_are_accepted_where_text_is_expected() {
        let m = message(r#"{"oa":14155550123,"da":56263,"message":"hi","tid":42}"#);
        assert_eq!(m.key.business.as_str(), "56263");
        assert_eq!(m.message_id.unwrap().as_str(), "42");
    }

    #[test]
    fn empty_text_is_a_message_but_missing_text_is_not() {
        let m = message(r#"{"channel":"whatsapp","from":"14155550142","text":""}"#);
        assert_eq!(m.text, "");
        assert_eq!(
            error(r#"{"channel":"whatsapp","from":"14155550142"}"#),
            "missing field `text`"
        );
    }

    #[test]
    fn unsubstituted_flow_variables_are_named() {
        let err = error(r#"{"channel":"sms","from":"$(n2.sms.senderNumber)","text":"hi"}"#);
        assert!(
            err.starts_with("field `from` looks like a flow variable"),
            "{err}"
        );
    }

    #[test]
    fn numbers_that_would_lose_digits_are_refused() {
        for id in ["100000000000000000000001", "1.5", "1e3"] {
            let body = format!(r#"{{"oa":"14155550123","da":"56263","message":"hi","tid":{id}}}"#);
            assert_eq!(
                error(&body),
                "field `tid` must be a string or a whole number of at most 64 bits \
                 (send larger ids as strings)",
                "{id}"
            );
        }
        let m =
            message(r#"{"oa":14155550123,"da":56263,"message":"hi","tid":18446744073709551615}"#);
        assert_eq!(m.message_id.unwrap().as_str(), "18446744073709551615");
    }

    #[test]
    fn control_characters_leave_texts_and_names_are_one_line() {
        let m = message(
            "{\"channel\":\"whatsapp\",\"from\":\"14155550142\",\"text\":\"before\\u0000after\\r\\nnext\",\
             \"name\":\"Bob)\\n\\nJoin as host: https://evil.example\"}",
        );
        assert_eq!(m.text, "beforeafter\nnext");
        assert_eq!(
            m.customer_name.as_deref(),
            Some("Bob) Join as host: https://evil.example")
        );
        let nameless =
            message(r#"{"channel":"whatsapp","from":"14155550142","text":"x","name":"\u0000\n"}"#);
        assert_eq!(nameless.customer_name, None);
    }

    #[test]
    fn media_comes_as_a_list_or_as_webex_connects_json_string() {
        let listed = message(
            r#"{"channel":"whatsapp","from":"14155550142","text":"",
                "attachments":[{"url":"https://x.example/a.jpg","mime_type":"image/jpeg"}],
                "location":"{\"latitude\":\"1.5\",\"longitude\":2}"}"#,
        );
        assert_eq!(listed.media.attachments[0].mime_type.as_str(), "image/jpeg");
        assert_eq!(listed.media.location.unwrap().latitude, 1.5);
        let event = message(
            r#"{"waid":"14155550142","appId":"a_1","event":"MO","message":"","location":"",
                "attachments":"[{\"mime_type\":\"application/pdf\",\"caption\":\"\",\"url\":\"https://x.example/f.pdf\"}]"}"#,
        );
        assert_eq!(event.media.attachments[0].caption, None);
        assert_eq!(event.media.location, None);
        assert_eq!(
            error(
                r#"{"channel":"whatsapp","from":"14155550142","text":"","attachments":"not json"}"#
            ),
            "field `attachments` holds a string that is not JSON"
        );
    }

    #[test]
    fn other_whatsapp_events_are_ignored() {
        let parsed = parse(br#"{"waid":"14155550142","event":"DR","appId":"a"}"#).unwrap();
        assert!(matches!(parsed, Inbound::Ignored));
    }

    #[test]
    fn shapes_that_are_not_messages() {
        assert!(parse(b"[1,2]")
            .unwrap_err()
            .to_string()
            .contains("JSON object"));
        assert!(error(r#"{"hello":"world"}"#).starts_with("not a message"));
        assert!(parse(b"{not json").unwrap_err().is_malformed());
        assert!(parse(&[0xff, 0xfe]).unwrap_err().is_malformed());
        assert_eq!(
            error(r#"{"channel":"fax","from":"14155550142","text":"x"}"#),
            "field `channel` must be `sms` or `whatsapp`, not \"fax\""
        );
    }
}
