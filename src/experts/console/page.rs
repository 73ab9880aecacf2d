//! The console's HTML: server-rendered from the templates in `templates/` (askama, which
//! escapes every value unless told otherwise), with one small script and no build step.

use crate::domain::ConsoleSession;
use askama::Template;
use serde_json::json;
use url::Url;

use crate::domain::Destination;

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

/// `templates/console.html`; every value is HTML-escaped except `config`.
#[derive(Template)]
#[template(path = "console.html")]
struct ConsolePage<'a> {
    name: &'a str,
    email: &'a str,
    csrf: &'a str,
    /// The Space Widget's base URL, without a trailing slash.
    widget: &'a str,
    /// JSON in which no `<` is left (the template does not escape it; see there).
    config: &'a str,
}

/// `templates/message.html`; every value is HTML-escaped.
#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    title: &'a str,
    text: &'a str,
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
    ConsolePage {
        name: &session.display_name,
        email: &session.email,
        csrf: &session.csrf_token,
        widget: widget_base_url.as_str().trim_end_matches('/'),
        config: &config,
    }
    .render()
    // Rendering fails only when a value's `Display` does; a `&str`'s never does.
    .expect("a page of plain strings renders")
}

/// A short page for login problems and sign-out, with a way forward.
pub fn message(title: &str, text: &str) -> String {
    MessagePage { title, text }
        .render()
        .expect("a page of plain strings renders")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_the_config_stays_json() {
        let hostile = r#"</script><img src=x onerror="alert('x')"> & co"#;
        let session = ConsoleSession {
            id_hash: String::new(),
            email: "erin@example.com".into(),
            display_name: hostile.into(),
            access_token: hostile.into(),
            access_expires_at: 0,
            refresh_token: String::new(),
            refresh_expires_at: 0,
            token_generation: 1,
            csrf_token: hostile.into(),
        };
        let widget = Url::parse("https://widgets.example.net/space/").unwrap();
        let page = console(&session, &Destination::RoomId("room".into()), &widget);
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains(
            "&#60;/script&#62;&#60;img src=x onerror=&#34;alert(&#39;x&#39;)&#34;&#62; &#38; co"
        ));
        let config = page
            .split(r#"<script id="console-config" type="application/json">"#)
            .nth(1)
            .and_then(|rest| rest.split("</script>").next())
            .unwrap();
        let config: serde_json::Value = serde_json::from_str(config).unwrap();
        assert_eq!(config["accessToken"], hostile);
        assert_eq!(config["csrf"], hostile);

        let message = message("Sign-in problem", "<b>x</b> & 'y'");
        assert!(
            message.contains("<p>&#60;b&#62;x&#60;/b&#62; &#38; &#39;y&#39;</p>"),
            "{message}"
        );
    }
}
