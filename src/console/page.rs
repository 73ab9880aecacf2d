//! The console's HTML: server-rendered, with one small script and no build step.

use serde_json::json;
use url::Url;

use crate::store::ConsoleSession;
use crate::upstream::webex::Destination;

pub const APP_JS: &str = include_str!("app.js");
pub const APP_CSS: &str = include_str!("console.css");

/// Only what the page needs: its own script and style, the Space Widget's, and the Webex
/// services the widget talks to.
pub fn content_security_policy(widget_base_url: &Url) -> String {
    let widget = widget_base_url.origin().ascii_serialization();
    format!(
        "default-src 'self'; script-src 'self' {widget}; style-src 'self' 'unsafe-inline' {widget}; \
         img-src 'self' data: blob: https:; font-src 'self' data: {widget}; media-src 'self' blob: https:; \
         connect-src 'self' https://*.webex.com https://*.wbx2.com https://*.ciscospark.com \
         wss://*.webex.com wss://*.wbx2.com wss://*.ciscospark.com {widget}; \
         frame-src https://*.webex.com; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// The console: the queue on the left, the experts' space on the right.
pub fn console(session: &ConsoleSession, experts: &Destination, widget_base_url: &Url) -> String {
    let (destination_id, destination_type) = match experts {
        Destination::RoomId(id) => (id.as_str(), "spaceId"),
        Destination::PersonEmail(email) => (email.as_str(), "email"),
    };
    let config = json!({
        "accessToken": session.access_token,
        "tokenGeneration": session.token_generation,
        "destinationId": destination_id,
        "destinationType": destination_type,
        "csrf": session.csrf_token,
    })
    .to_string()
    // Nothing inside the JSON can end the <script> element.
    .replace('<', "\\u003c");
    let widget = widget_base_url.as_str().trim_end_matches('/');
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>icbridge · experts</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/console/console.css">
<link rel="stylesheet" href="{widget}/main.css">
</head>
<body>
<header>
  <h1>icbridge</h1>
  <span class="who">{name} · {email}</span>
  <form method="post" action="/console/logout"><input type="hidden" name="csrf" value="{csrf}"><button type="submit">Sign out</button></form>
</header>
<main>
  <section class="queue" aria-labelledby="queue-title">
    <h2 id="queue-title">Queue</h2>
    <p id="queue-status" role="status">Loading…</p>
    <ul id="conversations"></ul>
  </section>
  <section class="space" aria-label="Experts' space">
    <div id="widget"></div>
  </section>
</main>
<script id="console-config" type="application/json">{config}</script>
<script src="{widget}/bundle.js"></script>
<script src="/console/app.js"></script>
</body>
</html>
"#,
        name = escape(&session.display_name),
        email = escape(&session.email),
        csrf = escape(&session.csrf_token),
    )
}

/// A short page for login problems and sign-out, with a way forward.
pub fn message(title: &str, text: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>icbridge · {title}</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/console/console.css"></head>
<body class="message">
<h1>{title}</h1>
<p>{text}</p>
<p><a href="/console/login">Sign in with Webex</a></p>
</body>
</html>
"#,
        title = escape(title),
        text = escape(text),
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
