//! The events icbridge sends to subscriptions, as OpenAPI 3.1 `webhooks`: one entry per
//! event type, its body `{"type", "timestamp", "data"}` with the type's `data` schema, and
//! the Standard Webhooks headers. Written out from the table below rather than derived:
//! event data is rendered JSON (see `domain::events::render`), not a Rust type per event.

use serde_json::{json, Map, Value};

use crate::domain::events::EventType;

/// A `data` property: name, schema, whether every body has it, and what it says.
type Field = (&'static str, fn() -> Value, bool, &'static str);

fn string() -> Value {
    json!({"type": "string"})
}
fn time() -> Value {
    json!({"type": "string", "format": "date-time"})
}
fn seconds() -> Value {
    json!({"type": ["integer", "null"], "minimum": 0})
}
fn integer() -> Value {
    json!({"type": "integer"})
}
fn channel() -> Value {
    json!({"type": "string", "enum": ["sms", "whatsapp"]})
}
fn media() -> Value {
    json!({"type": "object", "properties": {
        "attachments": {"type": "array", "items": {"type": "object"}},
        "location": {"type": "object"}}})
}
fn links() -> Value {
    json!({"type": "object", "properties": {"host": {"type": "string", "format": "uri"},
        "guest": {"type": "string", "format": "uri"}}, "required": ["host", "guest"]})
}
fn transcript() -> Value {
    json!({"type": "array", "items": {"type": "object", "properties": {
        "author": {"type": "string", "enum": ["customer", "expert"]},
        "at": {"type": "string", "format": "date-time"},
        "text": {"type": "string"}, "media": media()}, "required": ["author", "at", "text"]}})
}
fn strings() -> Value {
    json!({"type": "array", "items": {"type": "string"}})
}

const CONVERSATION: &[Field] = &[
    (
        "conversation_id",
        string,
        true,
        "The conversation (icbridge's id).",
    ),
    (
        "desk",
        string,
        true,
        "The conversation's desk (`default` for the default desk).",
    ),
    (
        "customer",
        string,
        false,
        "The customer's number or WhatsApp id, masked (`+1415•••0123`) unless the subscription includes `customer_number`.",
    ),
];
const CUSTOMER: Field = (
    "customer",
    string,
    true,
    "The customer's number or WhatsApp id, masked (`+1415•••0123`) unless the subscription includes `customer_number`.",
);
const TEXT: Field = (
    "text",
    string,
    false,
    "The message's text: only with `include.texts`.",
);
const MEDIA: Field = (
    "media",
    media,
    false,
    "The message's files (`attachments`) and `location`: only with `include.media`. A customer's files: `url`, `mime_type`, `caption`, as Webex Connect gave them; an expert's: `name`, `mime_type` and `url`, a signed link to icbridge's `/media/` (with `ICB_PUBLIC_URL`; valid for `ICB_MEDIA_LINK_TTL`).",
);

/// Each type's own fields, after the conversation's where it has one.
fn fields(event: EventType) -> (bool, Vec<Field>) {
    use EventType::*;
    let about_conversation = !matches!(event, CustomerOptedOut | CustomerOptedIn | CustomerErased);
    let own: Vec<Field> = match event {
        ConversationOpened => vec![
            CUSTOMER,
            ("channel", channel, true, "How the customer wrote."),
            ("business", string, true, "The business number or WhatsApp app they wrote to."),
        ],
        MeetingCreated => vec![
            ("meeting_id", string, true, "The Instant Connect meeting."),
            ("expires_at", time, true, "When its links stop working."),
            ("links", links, false, "The host and guest links: only with `include.links` (who holds one can join)."),
        ],
        MessageReceived | MessageSent => vec![
            ("message_id", integer, true, "The message (icbridge's id)."),
            ("direction", string, true, "`inbound` (from the customer) or `outbound` (to them)."),
            ("author", string, true, "`customer` or `expert`."),
            ("channel", channel, false, "The conversation's channel."),
            CUSTOMER,
            TEXT,
            MEDIA,
        ],
        LinkOpened => vec![
            ("role", string, true, "`customer` (a guest link) or `expert` (a host link)."),
            ("meeting_id", string, false, "The meeting the link joins."),
            ("opened_at", time, false, "When it was first opened."),
        ],
        ConversationAssigned | ConversationReleased => vec![(
            "expert",
            string,
            false,
            "The expert who took it (or let it go), as Webex knows them.",
        )],
        ConversationTransferred => vec![
            ("from_desk", string, false, "The desk it left."),
            ("to_desk", string, false, "The desk it went to (also `desk`)."),
        ],
        ConversationClosed => vec![
            ("closed_by", string, false, "Who closed it."),
            ("closed_at", time, false, "When."),
            ("first_response_s", seconds, false, "Seconds from its opening to the first expert's answer (null: none)."),
            ("in_meeting_s", seconds, false, "Seconds in its meeting (null: not known)."),
            ("total_s", seconds, false, "Seconds from its opening to its close."),
            ("transcript", transcript, false, "Every message: only with `include.transcript` (texts as `include.texts` allows)."),
        ],
        RatingReceived => vec![("rating", integer, true, "The customer's rating.")],
        AppointmentBooked | AppointmentCancelled | AppointmentReminded => vec![
            ("appointment_id", string, true, "The booked consultation."),
            ("starts_at", time, false, "When its slot starts."),
            ("ends_at", time, false, "When it ends."),
        ],
        CustomerOptedOut | CustomerOptedIn => vec![
            CUSTOMER,
            ("channel", channel, true, "The channel they opted out of (or back into)."),
            ("business", string, true, "The business number they wrote STOP (or START) to."),
        ],
        CustomerErased => vec![
            CUSTOMER,
            ("conversations", strings, true, "The ids of the customer's conversations, so the receiving system can erase what it holds of them too."),
        ],
    };
    (about_conversation, own)
}

/// The schema name of a type's body.
pub fn schema_name(event: EventType) -> String {
    let mut name = String::from("Event");
    for part in event.as_str().split(['.', '_']) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            name.push(first.to_ascii_uppercase());
            name.push_str(chars.as_str());
        }
    }
    name
}

/// The body schema of one event type.
fn body_schema(event: EventType) -> Value {
    let (about_conversation, own) = fields(event);
    let all = about_conversation
        .then_some(CONVERSATION)
        .into_iter()
        .flatten()
        .copied()
        .chain(own);
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, schema, always, description) in all {
        let mut schema = schema();
        schema["description"] = description.into();
        properties.insert(name.to_string(), schema);
        if always {
            required.push(name);
        }
    }
    json!({
        "type": "object",
        "required": ["type", "timestamp", "data"],
        "properties": {
            "type": {"type": "string", "const": event.as_str()},
            "timestamp": {"type": "string", "format": "date-time",
                "description": "When it happened (the attempt's time is the `webhook-timestamp` header)."},
            "data": {"type": "object", "properties": properties, "required": required},
        },
    })
}

/// The Standard Webhooks headers every request carries.
fn headers() -> Value {
    json!([
        {"name": "webhook-id", "in": "header", "required": true,
         "description": "The event's id (`evt_…`): the same on every attempt and resend; receivers use it to process each event once.",
         "schema": {"type": "string", "pattern": "^evt_[0-9]+$"}},
        {"name": "webhook-timestamp", "in": "header", "required": true,
         "description": "The attempt's time, Unix seconds.",
         "schema": {"type": "string", "pattern": "^[0-9]+$"}},
        {"name": "webhook-signature", "in": "header", "required": true,
         "description": "`v1,` and the base64 HMAC-SHA256, keyed with the base64-decoded `whsec_` secret, of `{webhook-id}.{webhook-timestamp}.{body}`.",
         "schema": {"type": "string", "pattern": "^v1,"}},
    ])
}

/// The document's `webhooks` (one per event type) and the schemas they refer to.
pub fn webhooks() -> (Value, Map<String, Value>) {
    let mut webhooks = Map::new();
    let mut schemas = Map::new();
    for event in EventType::ALL {
        let name = schema_name(event);
        schemas.insert(name.clone(), body_schema(event));
        webhooks.insert(
            event.as_str().to_string(),
            json!({"post": {
                "operationId": format!("event_{}", event.as_str().replace('.', "_")),
                "tags": ["events"],
                "summary": format!("`{}`, to each subscription that takes it", event.as_str()),
                "parameters": headers(),
                "requestBody": {"required": true, "content": {"application/json": {
                    "schema": {"$ref": format!("#/components/schemas/{name}")}}}},
                "responses": {
                    "2XX": {"description": "Received. Any other answer is retried on the events' schedule (`ICB_EVENTS_RETRY_SCHEDULE`), after `Retry-After` when given."},
                    "410": {"description": "Gone: the subscription is disabled until `icbridge events enable NAME`."},
                },
            }}),
        );
    }
    (Value::Object(webhooks), schemas)
}

/// Adds the events to a generated OpenAPI document.
pub fn add_to(document: &mut Value) {
    let (webhooks, schemas) = webhooks();
    document["webhooks"] = webhooks;
    let components = &mut document["components"]["schemas"];
    if let Value::Object(existing) = components {
        existing.extend(schemas);
    }
}
