//! Every text a customer reads from icbridge, in one place: the answers to their messages,
//! the texts of booked consultations and invitations, and the pages their links open.
//!
//! A desk may word most of these its own way (`[desk.texts]` in the desks file, see the
//! README's "Desks"); what is here is what a customer reads when nobody did. Templates use
//! `{{ guest_url }}`, `{{ customer_name }}`, `{{ desk }}` and `{{ opens_at }}`
//! (`crate::domain::ReplyTemplate`). What experts read is in `crate::desks::expert_texts`.

/// The answer to a customer's first message: their guest link (`ICB_REPLY_TEMPLATE`, a
/// desk's `texts.reply`).
pub const GUEST_LINK_REPLY: &str = "Join your video consultation: {{ guest_url }}";

/// Out of hours, when the desk queues the conversation until it opens (`after_hours =
/// "queue"`, the default): on an ordinary day, and on a closed date.
pub const QUEUED_AFTER_HOURS: &str = "Thank you for your message. We are closed now and open \
     again {{ opens_at }}; we will send you a link to a video consultation then.";
pub const QUEUED_ON_CLOSED_DATE: &str = "Thank you for your message. We are closed today and \
     open again {{ opens_at }}; we will send you a link to a video consultation then.";

/// Out of hours, when the desk makes the meeting at once (`after_hours = "meeting"`).
pub const LINK_AFTER_HOURS: &str = "Thank you for your message. We are closed now and open \
     again {{ opens_at }}, when an expert will join you here: {{ guest_url }}";
pub const LINK_ON_CLOSED_DATE: &str = "Thank you for your message. We are closed today and \
     open again {{ opens_at }}, when an expert will join you here: {{ guest_url }}";

/// The answers to STOP, START and HELP (`crate::customers::opt_out`).
pub const OPTED_OUT: &str = "You will get no more messages from us. Reply START to get them again.";
pub const OPTED_IN: &str =
    "You will get our messages again. Reply STOP to stop them, HELP for help.";
pub const HELP: &str = "This number connects you with our experts by video: write your question \
                        to start. Reply STOP to stop our messages, START to get them again.";

/// The rating after the call (`crate::customers::survey`): the question by SMS, the same
/// with reply buttons on WhatsApp, and the thanks for an answer.
pub const SURVEY_QUESTION: &str = "How was your consultation? Reply 1 (poor) to 5 (excellent).";
pub const SURVEY_WHATSAPP_QUESTION: &str =
    "How was your consultation? Tap a button, or reply 1 (poor) to 5 (excellent).";
pub const SURVEY_THANKS: &str = "Thank you for your rating!";

/// The text a guest added by an expert (`add guest`) gets, unless a WhatsApp template is
/// configured for it.
pub fn guest_invitation(guest_url: &str) -> String {
    format!("You are invited to join a video consultation: {guest_url}")
}

/// A booked consultation's invitation: when it is, and from when its link works.
pub fn appointment_booked(
    name: Option<&str>,
    desk: &str,
    when: &str,
    from: &str,
    url: &str,
) -> String {
    format!(
        "{}, your video consultation with {desk} is booked for {when}. \
         Join with this link from {from}: {url}",
        hello(name)
    )
}

/// The reminder shortly before a booked consultation (`ICB_APPOINTMENT_REMINDER`).
pub fn appointment_reminder(name: Option<&str>, desk: &str, when: &str, url: &str) -> String {
    format!(
        "{}, a reminder: your video consultation with {desk} starts {when}. Join here: {url}",
        hello(name)
    )
}

/// The answer to a customer who writes before their booked consultation.
pub fn appointment_ahead(desk: &str, when: &str, from: &str, url: &str) -> String {
    format!(
        "Your video consultation with {desk} is booked for {when}. \
         The link works from {from}: {url}"
    )
}

pub fn appointment_cancelled(desk: &str, when: &str) -> String {
    format!("Your video consultation with {desk} on {when} is cancelled.")
}

fn hello(name: Option<&str>) -> String {
    format!("Hello {}", name.unwrap_or("there"))
}

/// The page a link preview (a messenger fetching the link to show a card) gets: it says
/// what the link is without opening the meeting.
pub const LINK_PREVIEW_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Video consultation</title>\
<meta name=\"description\" content=\"Your link to a video consultation. Open it to join.\">\
<meta property=\"og:title\" content=\"Video consultation\">\
<meta property=\"og:description\" content=\"Your link to a video consultation. Open it to join.\">\
</head><body><h1>Video consultation</h1><p>Your link to a video consultation. Open it to join.</p></body></html>";

/// The page of a link whose meeting is over or was replaced (and of an unknown link).
pub const LINK_ENDED_PAGE: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>This consultation link has ended</title></head>\
<body style=\"font-family: sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem\">\
<h1>This consultation link has ended</h1>\
<p>The video consultation it was for is over, or a newer link was sent to you.</p>\
<p>To talk to us again, send us a new message: you will get a new link.</p></body></html>";

/// The page of a booked consultation's link opened too early: when to come back (`from` is
/// icbridge's own wording of a time, escaped all the same).
pub fn link_not_yet_page(from: &str) -> String {
    let from = from
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>Your consultation has not started yet</title></head>\
<body style=\"font-family: sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem\">\
<h1>Your consultation has not started yet</h1>\
<p>This link works from {from}. Please open it again then.</p></body></html>"
    )
}
