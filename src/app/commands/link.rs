//! `link`: one Instant Connect meeting, made by hand.

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::CLI_TIMEOUT;
use crate::app::cli::VerticalArg;
use crate::app::settings::Settings;
use crate::domain::clock::{self, Clock};
use crate::domain::Vertical;
use crate::upstream::instant_connect::{InstantConnectClient, MeetingRequest};
use crate::upstream::{self};

/// The meeting asked for on the command line; what is not given comes from the settings.
pub(super) struct Link {
    pub sub: Option<String>,
    pub vertical: Option<VerticalArg>,
    pub long: bool,
    pub host_login: bool,
    pub ttl: Option<Duration>,
}

impl Link {
    fn request(self, settings: &Settings) -> MeetingRequest {
        let vertical = match self.vertical {
            Some(VerticalArg::Gen) => Vertical::Gen,
            Some(VerticalArg::Hc) => Vertical::Hc,
            None => settings.meetings.vertical,
        };
        MeetingRequest {
            sub: self.sub.unwrap_or_else(|| Uuid::new_v4().to_string()),
            expires_at: (Clock::system().now_ms()
                + self.ttl.unwrap_or(settings.meetings.link_ttl).as_millis() as i64)
                .div_euclid(1000),
            short_urls: settings.meetings.short_urls && !self.long,
            vertical,
            host_login: self.host_login || settings.meetings.host_login,
            not_before: None,
            hosts: 1,
            guests: 1,
        }
    }
}

/// Makes the meeting and prints its host and guest links.
pub(super) async fn link(settings: Settings, link: Link, as_json: bool) -> Result<(), String> {
    let request = link.request(&settings);
    let token = settings
        .webex
        .token
        .ok_or("set ICB_WEBEX_TOKEN (a Webex bot token or a personal access token)")?;
    let client = InstantConnectClient::new(
        upstream::HttpClient::new(CLI_TIMEOUT),
        settings.broker.base_url,
        settings.broker.join_url,
        token,
    );
    let links = client
        .create_meeting(&request, CLI_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let expires_at = clock::rfc3339(request.expires_at * 1000);
    if as_json {
        let body = json!({
            "sub": request.sub,
            "hostUrl": links.host_url.as_str(),
            "guestUrl": links.guest_url.as_str(),
            "expiresAt": expires_at,
        });
        println!("{body}");
    } else {
        println!("host:    {}", links.host_url);
        println!("guest:   {}", links.guest_url);
        println!("sub:     {}", request.sub);
        println!("expires: {expires_at}");
    }
    Ok(())
}
