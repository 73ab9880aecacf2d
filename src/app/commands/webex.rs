//! `webex register`: the bot's webhooks, pointed at this icbridge.

use super::CLI_TIMEOUT;
use crate::app::settings::Settings;
use crate::experts::webhooks::{self, HookState};
use crate::upstream::webex::WebexClient;
use crate::upstream::{self};

/// Makes the bot's two webhooks point at this icbridge: creates what is missing, corrects
/// what differs (a disabled one is re-activated), leaves the rest alone.
pub(super) async fn register_webhooks(
    settings: Settings,
    public_url: Option<url::Url>,
) -> Result<(), String> {
    let token = settings
        .webex
        .token
        .ok_or("set ICB_WEBEX_TOKEN (the bot's token)")?;
    let secret = settings
        .webex
        .webhook_secret
        .ok_or("set ICB_WEBEX_WEBHOOK_SECRET: Webex signs every event with it")?;
    let public_url = public_url.or(settings.http.public_url).ok_or(
        "give --public-url https://… (or set ICB_PUBLIC_URL): where Webex can reach icbridge",
    )?;
    let target_url = crate::app::webex_webhook_url(&public_url);
    let webex = WebexClient::new(
        upstream::HttpClient::new(CLI_TIMEOUT),
        settings.webex.api_url,
        token,
    );
    let wanted = webhooks::Wanted {
        target_url: Some(&target_url),
        secret: secrecy::ExposeSecret::expose_secret(&secret),
    };
    let reports = webhooks::reconcile(&webex, &wanted, webhooks::Mend::Yes)
        .await
        .map_err(|e| e.to_string())?;
    for report in reports {
        let done = match report.state {
            HookState::Unchanged => "unchanged",
            HookState::Created => "created",
            _ => "updated",
        };
        println!(
            "{done:<9} {} ({}) -> {target_url} [{}]",
            report.name,
            report.resource,
            report.id.as_deref().unwrap_or("new")
        );
    }
    Ok(())
}
