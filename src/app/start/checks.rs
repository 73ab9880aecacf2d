//! The settings `serve` refuses to start with.

use super::StartupError;
use crate::app::settings::{ReplyMode, Settings};

const NO_EXPERTS: &str =
    "set ICB_EXPERT_ROOM_ID, ICB_EXPERT_EMAIL or ICB_EXPERT_ROOM_TITLE: where experts are notified";

/// Refuses to serve with a configuration that cannot work, naming what to set.
pub(super) fn serve_settings(settings: &Settings) -> Result<(), StartupError> {
    let mut missing = Vec::new();
    if settings.webex.token.is_none() {
        missing.push(
            "set ICB_WEBEX_TOKEN: the Webex bot token, for Instant Connect and the Webex API"
                .to_string(),
        );
    }
    if settings.connect.webhook_secret.is_none() && settings.connect.webhook_token.is_none() {
        missing.push(
            "set ICB_CONNECT_WEBHOOK_SECRET (Outbound Webhooks, X-Hub-Signature) or \
             ICB_CONNECT_WEBHOOK_TOKEN (a flow's HTTP Request node, Authorization: Bearer): \
             /webhooks/connect refuses every request without one"
                .to_string(),
        );
    }
    if settings.expert_target.is_none() && settings.desks.is_empty() {
        missing.push(NO_EXPERTS.to_string());
    }
    if settings.replies.mode() == ReplyMode::Connect {
        if settings.connect.urls().is_none() {
            missing.push(
                "ICB_REPLY_MODE=connect needs ICB_CONNECT_API_URL (or both ICB_CONNECT_SMS_URL \
                 and ICB_CONNECT_WHATSAPP_URL)"
                    .to_string(),
            );
        }
        if settings.connect.service_key.is_none() {
            missing.push("ICB_REPLY_MODE=connect needs ICB_CONNECT_SERVICE_KEY".to_string());
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(StartupError::Config(missing.join("; ")))
    }
}
