//! How the sandbox joins `serve`: the settings pointed at the stand-ins, with stand-in
//! credentials, and the banner that tells a newcomer what to try.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use secrecy::SecretString;
use url::Url;

use super::events::SANDBOX_EVENTS_SECRET;
use super::{
    SandboxState, SANDBOX_ADMIN_TOKEN, SANDBOX_EXPERT_ROOM, SANDBOX_OAUTH_CLIENT, SANDBOX_TEMPLATE,
    SANDBOX_UPSTREAM_TOKEN, SANDBOX_WEBEX_WEBHOOK_SECRET, SANDBOX_WEBHOOK_TOKEN,
};
use crate::app::settings::{ReplyMode, Settings};
use crate::app::webex_webhook_url;
use crate::domain::events::{Includes, Subscription, WebhookSecret};
use crate::domain::{ExpertTarget, WhatsappTemplate};

/// What the sandbox chose for the operator, to show in the banner.
#[derive(Debug, Default)]
pub(super) struct Hints {
    /// The webhook bearer token for the sample curl, when `ICB_CONNECT_WEBHOOK_TOKEN` is
    /// not set.
    webhook_token: Option<String>,
    /// The sandbox set the admin API's token (none was configured).
    admin_token: bool,
}

/// Points every upstream at the stand-ins this process serves, with stand-in credentials.
pub(super) fn use_stand_ins(settings: &mut Settings, address: SocketAddr) -> Hints {
    let admin_token = settings.admin.token.is_none();
    let base = format!("http://{}/sandbox", client_address(address));
    let url = |path: &str| Url::parse(&format!("{base}{path}")).expect("a valid local URL");
    let upstream_token = || Some(SecretString::from(SANDBOX_UPSTREAM_TOKEN));
    settings.broker.base_url = url("/ic");
    settings.broker.join_url = url("");
    settings.webex.api_url = url("/webex/v1");
    // Webex Connect's two hosts, as in production: SMS and WhatsApp apart.
    settings.connect.api_url = None;
    settings.connect.sms_url = Some(url("/connect-sms"));
    settings.connect.whatsapp_url = Some(url("/connect"));
    settings.webex.token = upstream_token();
    settings.connect.service_key = upstream_token();
    // Unless ICB_REPLY_MODE says otherwise, icbridge sends the customer's reply itself, so
    // a newcomer sees the reply icbridge would send.
    settings.replies.mode.get_or_insert(ReplyMode::Connect);
    // The sandbox's experts' space is the default desk, unless a [[desk]] is.
    if !settings.desks.iter().any(|desk| desk.default) {
        settings.expert_target = Some(ExpertTarget::RoomId(SANDBOX_EXPERT_ROOM.into()));
    }
    // WhatsApp customers who have not written for a day get the stand-in's template.
    if settings.connect.whatsapp_template.is_none() {
        settings.connect.whatsapp_template = Some(
            WhatsappTemplate::parse(
                SANDBOX_TEMPLATE,
                Some("name={customer_name},link={guest_url}"),
            )
            .expect("the sandbox's template is valid"),
        );
    }
    // The admin API (appointments, ratings, customers' data) answers a known token.
    if settings.admin.token.is_none() {
        settings.admin.token = Some(SecretString::from(SANDBOX_ADMIN_TOKEN));
    }
    // Closing a conversation asks for a rating: the stand-in shows the question.
    settings.replies.survey = true;
    // The stand-in's webhooks are signed with a secret, so that the desk watches them (and
    // catches up on what a disabled one lost).
    if settings.webex.webhook_secret.is_none() {
        settings.webex.webhook_secret = Some(SecretString::from(SANDBOX_WEBEX_WEBHOOK_SECRET));
    }
    sandbox_subscription(settings, &base);
    // The console logs in through the Webex stand-in.
    settings.http.public_url = Some(url("").join("/").expect("a valid local URL"));
    settings.console.oauth_client_id = Some(SANDBOX_OAUTH_CLIENT.into());
    settings.console.oauth_client_secret = Some(SecretString::from(SANDBOX_UPSTREAM_TOKEN));
    tracing::warn!(
        "sandbox mode: upstreams are local stand-ins under {base}; nothing reaches Webex or customers"
    );
    let mut webhook_token = None;
    if settings.connect.webhook_token.is_none() {
        tracing::warn!(
            "sandbox mode: /webhooks/connect accepts the bearer token {:?} since ICB_CONNECT_WEBHOOK_TOKEN is not set",
            SANDBOX_WEBHOOK_TOKEN
        );
        settings.connect.webhook_token = Some(SecretString::from(SANDBOX_WEBHOOK_TOKEN));
        webhook_token = Some(SANDBOX_WEBHOOK_TOKEN.to_string());
    }
    Hints {
        webhook_token,
        admin_token,
    }
}

/// The stand-ins' state, for settings that point at them.
pub(super) fn state(settings: &Settings) -> SandboxState {
    let receiver = "/sandbox/events";
    let event_secrets = settings
        .events
        .subscriptions
        .iter()
        .filter(|s| s.url.path() == receiver)
        .map(|s| s.secret.clone())
        .collect();
    let state = SandboxState::new(
        &settings.webex.api_url,
        &settings
            .http
            .public_url
            .as_ref()
            .map(webex_webhook_url)
            .unwrap_or_default(),
        settings
            .webex
            .webhook_secret
            .as_ref()
            .map(secrecy::ExposeSecret::expose_secret)
            .unwrap_or_default(),
    );
    SandboxState {
        event_secrets,
        ..state
    }
}

/// Without any subscription, events go to the sandbox's own receiver (`/sandbox/events`),
/// with nothing included: what a subscription gets by default.
fn sandbox_subscription(settings: &mut Settings, base: &str) {
    if !settings.events.subscriptions.is_empty() {
        return;
    }
    settings.events.subscriptions.push(Subscription {
        name: "sandbox".into(),
        url: Url::parse(&format!("{base}/events")).expect("a valid local URL"),
        secret: WebhookSecret::parse(SANDBOX_EVENTS_SECRET).expect("a valid secret"),
        events: Vec::new(),
        desks: None,
        include: Includes::default(),
    });
}

/// What to print at start-up: a curl that posts a sample message.
pub(super) fn banner(hints: &Hints, address: SocketAddr) -> String {
    let base = format!("http://{}", client_address(address));
    let auth = match &hints.webhook_token {
        Some(token) => format!("-H 'Authorization: Bearer {token}' "),
        None => "-H \"Authorization: Bearer $ICB_CONNECT_WEBHOOK_TOKEN\" ".into(),
    };
    let admin = if hints.admin_token {
        format!(
            "The admin API (booked consultations: POST {base}/api/appointments) takes\n\
             -H 'Authorization: Bearer {SANDBOX_ADMIN_TOKEN}'.\n"
        )
    } else {
        String::new()
    };
    format!(
        "icbridge sandbox: the Instant Connect broker, Webex and Webex Connect are local stand-ins.\n\
         Post a sample WhatsApp message:\n\n  \
         curl -s {base}/webhooks/connect {auth}-H 'Content-Type: application/json' \\\n    \
         -d '{{\"channel\":\"whatsapp\",\"from\":\"14155550142\",\"to\":\"a_155054536910425280\",\"text\":\"Hello, can I get a video call with an advisor?\",\"name\":\"Alice Example\"}}'\n\n\
         Then see what icbridge sent (expert notification, customer reply):\n\n  \
         curl -s {base}/sandbox/messages\n\n\
         Photos, experts' files (POST {base}/sandbox/expert-reply) and WhatsApp's 24-hour window\n\
         (POST {base}/sandbox/clock): see the README.\n\
         Events (Standard Webhooks) go to {base}/sandbox/events, signed with\n\
         {SANDBOX_EVENTS_SECRET}, unless ICB_EVENTS_URL names a receiver of your own.\n{admin}"
    )
}

/// The address a local client uses to reach a listener (`0.0.0.0` is not connectable).
fn client_address(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        ip if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), address.port())
        }
        _ => address,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// The sandbox sends the customer's reply itself unless `ICB_REPLY_MODE` says otherwise.
    #[test]
    fn the_sandbox_defaults_the_reply_mode_to_connect() {
        let address = "127.0.0.1:8080".parse().unwrap();
        let mut settings = Settings::from_vars(&BTreeMap::new()).unwrap();
        use_stand_ins(&mut settings, address);
        assert_eq!(settings.replies.mode(), ReplyMode::Connect);
        let vars = BTreeMap::from([("REPLY_MODE".to_string(), "response".to_string())]);
        let mut settings = Settings::from_vars(&vars).unwrap();
        use_stand_ins(&mut settings, address);
        assert_eq!(settings.replies.mode(), ReplyMode::Response);
    }
}
