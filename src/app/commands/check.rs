//! `check`: the configuration and the upstreams' credentials, one line per check.

use std::process::ExitCode;

use super::CLI_TIMEOUT;
use crate::app::settings::Settings;
use crate::desks::{Desks, DEFAULT_DESK};
use crate::domain::clock::{self, Clock};
use crate::experts::webhooks;
use crate::upstream::webex::WebexClient;
use crate::upstream::{self};

/// The checks' lines, and whether one failed.
#[derive(Default)]
struct Report {
    failed: bool,
}

impl Report {
    /// Prints a check as `ok` or `failed` with its detail.
    fn line(&mut self, ok: bool, what: &str, detail: String) {
        self.failed |= !ok;
        println!("{:<7} {what}: {detail}", if ok { "ok" } else { "failed" });
    }

    fn exit_code(&self) -> ExitCode {
        if self.failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// Runs every check and prints each as `ok` or `failed` with the reason.
pub(super) async fn check(settings: Settings) -> ExitCode {
    let mut report = Report::default();
    webhook_auth(&settings, &mut report);
    database(&settings, &mut report).await;
    let Some(token) = settings.webex.token.clone() else {
        report.line(false, "webex token", "set ICB_WEBEX_TOKEN".into());
        report.line(false, "expert target", "not checked without a token".into());
        return report.exit_code();
    };
    let webex = WebexClient::new(
        upstream::HttpClient::new(CLI_TIMEOUT),
        settings.webex.api_url.clone(),
        token,
    );
    match webex.me().await {
        Ok(me) => report.line(
            true,
            "webex token",
            format!("{} ({})", me.display_name, me.emails.join(", ")),
        ),
        Err(e) => report.line(false, "webex token", e.to_string()),
    }
    webex_webhooks(&settings, &webex, &mut report).await;
    if settings.expert_target.is_none() && settings.desks.is_empty() {
        report.line(
            false,
            "expert target",
            "set ICB_EXPERT_ROOM_ID, ICB_EXPERT_EMAIL or ICB_EXPERT_ROOM_TITLE".into(),
        );
        return report.exit_code();
    }
    desks(&settings, &webex, &mut report).await;
    report.exit_code()
}

/// How `/webhooks/connect` tells Webex Connect's requests.
fn webhook_auth(settings: &Settings, report: &mut Report) {
    let auth = match (
        &settings.connect.webhook_secret,
        &settings.connect.webhook_token,
    ) {
        (Some(_), Some(_)) => Some("X-Hub-Signature secret and bearer token set"),
        (Some(_), None) => Some("X-Hub-Signature secret set"),
        (None, Some(_)) => Some("bearer token set"),
        (None, None) => None,
    };
    match auth {
        Some(detail) => report.line(true, "webhook auth", detail.into()),
        None => report.line(
            false,
            "webhook auth",
            "set ICB_CONNECT_WEBHOOK_SECRET or ICB_CONNECT_WEBHOOK_TOKEN".into(),
        ),
    }
}

/// Whether the database answers (it is not migrated), and the credentials a running
/// icbridge found refused.
async fn database(settings: &Settings, report: &mut Report) {
    match crate::app::connect_bridge(settings).await {
        Ok(bridge) => match bridge.ready().await {
            Ok(()) => {
                report.line(true, "database", "reachable".into());
                // What a running icbridge found: credentials the upstreams refuse.
                for pause in bridge.upstream_pauses().await.unwrap_or_default() {
                    if pause.credential_refused() {
                        let detail = format!(
                            "refused since {} ({}); deliveries wait until it works again",
                            clock::rfc3339(pause.updated_at),
                            pause.reason
                        );
                        report.line(false, &format!("{} credential", pause.upstream), detail);
                    }
                }
            }
            Err(e) => report.line(false, "database", e.to_string()),
        },
        Err(e) => report.line(false, "database", e.to_string()),
    }
}

/// The webhooks that bring experts' replies: only looked at, never changed here.
async fn webex_webhooks(settings: &Settings, webex: &WebexClient, report: &mut Report) {
    let Some(secret) = &settings.webex.webhook_secret else {
        // Optional: without it, experts are notified but cannot answer from Webex.
        report.line(
            true,
            "webex webhooks",
            "not used: ICB_WEBEX_WEBHOOK_SECRET is not set, so experts cannot answer from \
             Webex (set it and run `icbridge webex register`)"
                .into(),
        );
        return;
    };
    let target_url = settings
        .http
        .public_url
        .as_ref()
        .map(crate::app::webex_webhook_url);
    let wanted = webhooks::Wanted {
        target_url: target_url.as_deref(),
        secret: secrecy::ExposeSecret::expose_secret(secret),
    };
    match webhooks::reconcile(webex, &wanted, webhooks::Mend::No).await {
        Ok(reports) => {
            for hook in reports {
                let detail = match &hook.id {
                    Some(id) => format!("{} [{id}]", hook.state),
                    None => format!(
                        "{} (run `icbridge webex register --public-url …`)",
                        hook.state
                    ),
                };
                report.line(
                    hook.state.is_active(),
                    &format!("webex webhook {}", hook.resource),
                    detail,
                );
            }
        }
        Err(e) => report.line(false, "webex webhooks", e.to_string()),
    }
}

/// Each desk's experts: the default desk of ICB_EXPERT_* as before, the [[desk]] entries
/// by name.
async fn desks(settings: &Settings, webex: &WebexClient, report: &mut Report) {
    let desks = match Desks::configure(&settings.desks, settings.expert_target.as_ref()) {
        Ok(desks) => desks,
        Err(e) => return report.line(false, "desks", e.to_string()),
    };
    for desk in desks.all() {
        let what = if desk.name == DEFAULT_DESK && settings.expert_target.is_some() {
            "expert target".to_string()
        } else {
            format!("desk {}", desk.name)
        };
        let hours = desk
            .hours_now(Clock::system().now_ms())
            .map(|hours| format!("; {hours}"))
            .unwrap_or_default();
        match webex.resolve(&desk.target).await {
            Ok(destination) => report.line(true, &what, format!("{destination:?}{hours}")),
            Err(e) => report.line(false, &what, e.to_string()),
        }
    }
}
