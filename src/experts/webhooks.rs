//! icbridge's two Webex webhooks (`messages` and `attachmentActions`, both `created`): what
//! `icbridge webex register` sets up, what `icbridge check` reports, and what the watchdog
//! keeps right while `serve` runs.
//!
//! Webex documents no retry of a delivery (icbridge assumes none), and disables a webhook after 100 deliveries within five
//! minutes got no 2xx answer; it does not enable it again by itself (its webhooks guide,
//! "Disabled Webhooks"). A disabled webhook is found here and re-activated
//! (`PUT /webhooks/{id}` with `status: active`).

use std::fmt;

use super::{RESOURCE_ACTIONS, RESOURCE_MESSAGES};
use crate::upstream::webex::{WebexClient, Webhook};
use crate::upstream::UpstreamError;

/// The webhooks icbridge needs: their names and resources.
pub const EXPECTED: [(&str, &str); 2] = [
    ("icbridge messages", RESOURCE_MESSAGES),
    ("icbridge card actions", RESOURCE_ACTIONS),
];

/// What a webhook should look like. Without the target URL (no `ICB_PUBLIC_URL`), where a
/// webhook points is not judged and a missing one cannot be made.
pub struct Wanted<'a> {
    pub target_url: Option<&'a str>,
    pub secret: &'a str,
}

/// Whether [`reconcile`] mends what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mend {
    /// Only report (`icbridge check`).
    No,
    /// Re-activate disabled webhooks; with a target URL, also create missing ones and
    /// correct wrong ones.
    Yes,
}

/// What became of one expected webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookState {
    /// Active and right; nothing done.
    Unchanged,
    /// It was disabled (by Webex, after failed deliveries) and is active again.
    Reactivated,
    /// It pointed elsewhere or had another secret, and was corrected.
    Corrected,
    /// It was missing and was created.
    Created,
    /// Found wrong and left so: why.
    Wrong(String),
    /// Not found, and not created (no target URL, or only reporting).
    Missing,
}

impl HookState {
    /// Whether the webhook is active and right now.
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            HookState::Unchanged
                | HookState::Reactivated
                | HookState::Corrected
                | HookState::Created
        )
    }

    /// Whether it was just made active (events may have been lost before).
    pub fn was_mended(&self) -> bool {
        matches!(
            self,
            HookState::Reactivated | HookState::Corrected | HookState::Created
        )
    }
}

impl fmt::Display for HookState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookState::Unchanged => f.write_str("active"),
            HookState::Reactivated => f.write_str("re-activated (it was disabled)"),
            HookState::Corrected => f.write_str("corrected"),
            HookState::Created => f.write_str("created"),
            HookState::Wrong(why) => write!(f, "{why}"),
            HookState::Missing => f.write_str("missing"),
        }
    }
}

/// One expected webhook, as found (and maybe mended).
#[derive(Debug, Clone)]
pub struct HookReport {
    pub name: &'static str,
    pub resource: &'static str,
    /// Its Webex id, when it exists.
    pub id: Option<String>,
    pub state: HookState,
}

/// Lists the bot's webhooks and judges each expected one; with [`Mend::Yes`], mends what
/// it can.
pub async fn reconcile(
    webex: &WebexClient,
    wanted: &Wanted<'_>,
    mend: Mend,
) -> Result<Vec<HookReport>, UpstreamError> {
    let existing = webex.webhooks().await?;
    let mut reports = Vec::new();
    for (name, resource) in EXPECTED {
        let found = find(&existing, name, resource, wanted.target_url);
        let state = match (found, wanted.target_url, mend) {
            (None, Some(target_url), Mend::Yes) => {
                webex
                    .create_webhook(&webhook(name, resource, target_url, wanted))
                    .await?;
                HookState::Created
            }
            (None, _, _) => HookState::Missing,
            (Some(hook), _, _) => {
                let problems = problems(hook, wanted);
                match (problems.is_empty(), mend) {
                    (true, _) => HookState::Unchanged,
                    (false, Mend::No) => HookState::Wrong(problems.join("; ")),
                    (false, Mend::Yes) => {
                        let only_inactive = problems.len() == 1 && is_inactive(hook);
                        let target_url = wanted.target_url.unwrap_or(&hook.target_url);
                        webex
                            .update_webhook(&hook.id, &webhook(name, resource, target_url, wanted))
                            .await?;
                        if only_inactive {
                            HookState::Reactivated
                        } else {
                            HookState::Corrected
                        }
                    }
                }
            }
        };
        reports.push(HookReport {
            name,
            resource,
            id: found.map(|hook| hook.id.clone()),
            state,
        });
    }
    Ok(reports)
}

/// The webhook for `resource`: the one with icbridge's name, or one that points at
/// icbridge (someone may have registered it under another name).
fn find<'a>(
    existing: &'a [Webhook],
    name: &str,
    resource: &str,
    target_url: Option<&str>,
) -> Option<&'a Webhook> {
    let candidates = || {
        existing
            .iter()
            .filter(move |hook| hook.resource == resource && hook.event == "created")
    };
    candidates()
        .find(|hook| Some(hook.target_url.as_str()) == target_url)
        .or_else(|| candidates().find(|hook| hook.name == name))
}

fn is_inactive(hook: &Webhook) -> bool {
    hook.status
        .as_deref()
        .is_some_and(|status| status != "active")
}

/// What is wrong with a webhook, in words; empty when nothing is.
fn problems(hook: &Webhook, wanted: &Wanted<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    if is_inactive(hook) {
        problems.push(format!(
            "{} (Webex disables a webhook whose deliveries fail)",
            hook.status.as_deref().unwrap_or_default()
        ));
    }
    if let Some(target_url) = wanted.target_url {
        if hook.target_url != target_url {
            problems.push(format!("points at {} instead", hook.target_url));
        }
    }
    // Webex shows the secret to the webhook's owner; an absent one cannot sign events.
    match hook.secret.as_deref() {
        None | Some("") => problems.push("has no secret".into()),
        Some(secret) if secret != wanted.secret => {
            problems.push("has another secret than ICB_WEBEX_WEBHOOK_SECRET".into())
        }
        Some(_) => {}
    }
    problems
}

fn webhook(name: &str, resource: &str, target_url: &str, wanted: &Wanted<'_>) -> Webhook {
    Webhook {
        id: String::new(),
        name: name.to_string(),
        target_url: target_url.to_string(),
        resource: resource.to_string(),
        event: "created".to_string(),
        filter: None,
        secret: Some(wanted.secret.to_string()),
        status: None,
    }
}
