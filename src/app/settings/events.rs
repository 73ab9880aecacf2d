//! The event subscriptions: `[[event_subscription]]` entries of the TOML file, or the simple
//! case of `ICB_EVENTS_URL` with `ICB_EVENTS_SECRET` (a subscription named `default` that
//! takes every event, with nothing included).

use std::time::Duration;

use serde::Deserialize;

use super::vars::Vars;
use super::ConfigError;
use crate::domain::events::{Includes, Subscription, TypePattern, WebhookSecret};

/// The events' delivery settings.
#[derive(Debug, Clone)]
pub struct EventSettings {
    pub subscriptions: Vec<Subscription>,
    /// `EVENTS_RETRY_SCHEDULE`: the waits between an event's attempts. Longer than the
    /// customers' messages' by default (the Standard Webhooks specification's example, over
    /// three days): a receiver down for a day still gets everything.
    pub retry_schedule: Vec<Duration>,
}

/// The specification's example schedule after the first attempt.
const DEFAULT_SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,14h,20h,24h";

/// A `[[event_subscription]]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionEntry {
    name: String,
    url: String,
    /// The `whsec_` secret itself, or (`secret_env`) the environment variable holding it.
    secret: Option<String>,
    secret_env: Option<String>,
    #[serde(default)]
    events: Vec<String>,
    desks: Option<Vec<String>>,
    #[serde(default)]
    include: Includes,
}

impl EventSettings {
    pub(super) fn read(vars: &Vars, entries: &[SubscriptionEntry]) -> Result<Self, ConfigError> {
        let mut subscriptions = Vec::new();
        for entry in entries {
            let subscription =
                entry
                    .parse()
                    .map_err(|(key, reason)| ConfigError::Subscription {
                        name: entry.name.clone(),
                        key,
                        reason,
                    })?;
            if subscriptions
                .iter()
                .any(|s: &Subscription| s.name == subscription.name)
            {
                return Err(ConfigError::Subscription {
                    name: entry.name.clone(),
                    key: "name",
                    reason: "another entry has the same name".into(),
                });
            }
            subscriptions.push(subscription);
        }
        match (vars.url("EVENTS_URL")?, vars.text("EVENTS_SECRET")) {
            (None, None) => {}
            (Some(url), Some(secret)) => {
                if subscriptions.iter().any(|s| s.name == "default") {
                    return Err(ConfigError::Invalid {
                        key: "EVENTS_URL",
                        reason: "an [[event_subscription]] entry is named `default` already".into(),
                    });
                }
                subscriptions.push(Subscription {
                    name: "default".into(),
                    url,
                    secret: WebhookSecret::parse(&secret).map_err(|reason| {
                        ConfigError::Invalid {
                            key: "EVENTS_SECRET",
                            reason,
                        }
                    })?,
                    events: Vec::new(),
                    desks: None,
                    include: Includes::default(),
                })
            }
            (Some(_), None) => {
                return Err(ConfigError::Invalid {
                    key: "EVENTS_SECRET",
                    reason: "ICB_EVENTS_URL needs it (run `icbridge events secret` for one)".into(),
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    key: "EVENTS_URL",
                    reason: "ICB_EVENTS_SECRET is set without it".into(),
                })
            }
        }
        Ok(Self {
            subscriptions,
            retry_schedule: vars.duration_list("EVENTS_RETRY_SCHEDULE", DEFAULT_SCHEDULE)?,
        })
    }
}

impl SubscriptionEntry {
    /// The subscription, or the key that is wrong and why.
    fn parse(&self) -> Result<Subscription, (&'static str, String)> {
        let name_ok = self
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && self.name.starts_with(|c: char| c.is_ascii_alphabetic());
        if !name_ok || self.name.len() > 64 {
            return Err((
                "name",
                "must be a letter then letters, digits, `_` or `-` (at most 64)".into(),
            ));
        }
        let url = url::Url::parse(&self.url).map_err(|e| ("url", e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(("url", "must be an http or https URL".into()));
        }
        let secret_text = match (&self.secret, &self.secret_env) {
            (Some(secret), None) => secret.clone(),
            (None, Some(variable)) => std::env::var(variable)
                .map_err(|_| ("secret_env", format!("the variable {variable} is not set")))?,
            _ => return Err(("secret", "give one of `secret` and `secret_env`".into())),
        };
        let secret = WebhookSecret::parse(&secret_text).map_err(|reason| ("secret", reason))?;
        let events = self
            .events
            .iter()
            .map(|pattern| TypePattern::parse(pattern))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| ("events", reason))?;
        if let Some(desks) = &self.desks {
            if desks.is_empty() || desks.iter().any(|d| d.is_empty() || d.contains(',')) {
                return Err((
                    "desks",
                    "must list desk names (`default` for the default desk)".into(),
                ));
            }
        }
        Ok(Subscription {
            name: self.name.clone(),
            url,
            secret,
            events,
            desks: self.desks.clone(),
            include: self.include,
        })
    }
}
