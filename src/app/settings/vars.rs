//! The raw variables: which keys exist, the TOML file's, and typed reads of their text.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::ConfigError;
use crate::desks::DeskConfig;

pub(super) const PREFIX: &str = "ICB_";

/// Every variable icbridge reads, without the prefix. Unknown keys in the file are an error
/// (a typo must not silently fall back to a default); unknown `ICB_` variables are a warning.
pub(super) const KNOWN_KEYS: &[&str] = &[
    "MEDIA_MAX_MB",
    "MEDIA_LINK_TTL",
    "WHATSAPP_TEMPLATE",
    "WHATSAPP_TEMPLATE_PARAMS",
    "MEDIA_CA_FILE",
    "MEDIA_PRIVATE_ADDRESSES",
    "LISTEN",
    "LISTEN_BACKLOG",
    "OUTBOX_LEASE",
    "EVENTS_URL",
    "EVENTS_SECRET",
    "EVENTS_RETRY_SCHEDULE",
    "DATABASE_URL",
    "WEBEX_TOKEN",
    "IC_BASE_URL",
    "IC_JOIN_URL",
    "IC_TIMEOUT",
    "WEBEX_API_URL",
    "CONNECT_API_URL",
    "CONNECT_SMS_URL",
    "CONNECT_WHATSAPP_URL",
    "WEBEX_CATCH_UP_EVERY",
    "WEBEX_WEBHOOK_CHECK_EVERY",
    "LONG_REPLIES",
    "CONNECT_SERVICE_KEY",
    "SMS_SENDER",
    "WHATSAPP_APP_ID",
    "CONNECT_WEBHOOK_SECRET",
    "CONNECT_WEBHOOK_TOKEN",
    "WEBEX_WEBHOOK_SECRET",
    "EXPERT_ROOM_ID",
    "EXPERT_ROOM_TITLE",
    "EXPERT_EMAIL",
    "REPLY_MODE",
    "FOLLOWUP_REPLY",
    "SURVEY",
    "LINK_TTL",
    "VERTICAL",
    "SHORT_URLS",
    "HOST_LOGIN",
    "MEETING_HOSTS",
    "MEETING_GUESTS",
    "APPOINTMENT_REMINDER",
    "APPOINTMENT_EARLY_JOIN",
    "REPLY_TEMPLATE",
    "RETRY_SCHEDULE",
    "MAX_NEW_MEETINGS_PER_HOUR",
    "RETENTION",
    "ADMIN_TOKEN",
    "ADMIN_NAME",
    "PUBLIC_URL",
    "OAUTH_CLIENT_ID",
    "OAUTH_CLIENT_SECRET",
    "CONSOLE_ALLOWED",
    "WIDGET_BASE_URL",
    "LOG_FORMAT",
    "TRUSTED_PROXIES",
];

/// `value`, unless it is shorter than `minimum`.
pub(super) fn at_least(
    key: &'static str,
    value: Duration,
    minimum: Duration,
) -> Result<Duration, ConfigError> {
    if value < minimum {
        return Err(ConfigError::Invalid {
            key,
            reason: format!("must be at least {}", humantime::format_duration(minimum)),
        });
    }
    Ok(value)
}

pub(super) fn invalid(key: &'static str, value: &str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: format!("invalid value {value:?}, expected {expected}"),
    }
}

/// What a TOML file holds: its settings, and its `[[desk]]` and `[[event_subscription]]`
/// entries.
#[derive(Debug, Default)]
pub(super) struct FileParts {
    pub vars: BTreeMap<String, String>,
    pub desks: Vec<DeskConfig>,
    /// The `[[event_subscription]]` entries, as written (read by `events`).
    pub subscriptions: Option<toml::Value>,
    /// The file, as errors name it.
    pub shown: String,
}

/// The settings of a TOML file, and its entries.
pub(super) fn read_file(path: &Path) -> Result<FileParts, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: shown.clone(),
        source,
    })?;
    let mut table: toml::Table = text.parse().map_err(|source| ConfigError::ParseFile {
        path: shown.clone(),
        source: Box::new(source),
    })?;
    let desks = match table.remove("desk") {
        None => Vec::new(),
        Some(entries) => entries
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Desks {
                path: shown.clone(),
                reason: e.message().to_string(),
            })?,
    };
    let subscriptions = table.remove("event_subscription");
    let mut vars = BTreeMap::new();
    for (key, value) in table {
        let upper = key.to_ascii_uppercase();
        if !KNOWN_KEYS.contains(&upper.as_str()) {
            return Err(ConfigError::UnknownFileKey { path: shown, key });
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => return Err(ConfigError::UnsupportedFileValue { path: shown, key }),
        };
        vars.insert(upper, text);
    }
    Ok(FileParts {
        vars,
        desks,
        subscriptions,
        shown,
    })
}

/// Typed reads of the raw variables; an empty value counts as unset.
pub(super) struct Vars<'a>(pub(super) &'a BTreeMap<String, String>);

impl Vars<'_> {
    pub(super) fn text(&self, key: &str) -> Option<String> {
        self.0
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    pub(super) fn secret(&self, key: &str) -> Option<SecretString> {
        self.text(key).map(SecretString::from)
    }

    pub(super) fn url(&self, key: &'static str) -> Result<Option<Url>, ConfigError> {
        let Some(raw) = self.text(key) else {
            return Ok(None);
        };
        let url = Url::parse(&raw).map_err(|e| ConfigError::Invalid {
            key,
            reason: format!("invalid URL {raw:?}: {e}"),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(key, &raw, "an http or https URL"));
        }
        Ok(Some(url))
    }

    pub(super) fn boolean(&self, key: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.text(key).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(invalid(key, other, "true or false")),
        }
    }

    pub(super) fn number(&self, key: &'static str, default: u32) -> Result<u32, ConfigError> {
        match self.text(key) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|_| invalid(key, &raw, "a whole number")),
        }
    }

    pub(super) fn duration(
        &self,
        key: &'static str,
        default: &str,
    ) -> Result<Duration, ConfigError> {
        let raw = self.text(key).unwrap_or_else(|| default.to_string());
        parse_duration(key, &raw)
    }

    pub(super) fn duration_list(
        &self,
        key: &'static str,
        default: &str,
    ) -> Result<Vec<Duration>, ConfigError> {
        let raw = self.text(key).unwrap_or_else(|| default.to_string());
        let list = raw
            .split(',')
            .map(|part| parse_duration(key, part.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        if list.is_empty() {
            return Err(invalid(key, &raw, "a comma-separated list of durations"));
        }
        Ok(list)
    }
}

fn parse_duration(key: &'static str, raw: &str) -> Result<Duration, ConfigError> {
    let duration = humantime::parse_duration(raw).map_err(|e| ConfigError::Invalid {
        key,
        reason: format!("invalid duration {raw:?} ({e}); use units, e.g. 500ms, 4s, 2m, 1h"),
    })?;
    if duration.is_zero() {
        return Err(invalid(key, raw, "a duration above zero"));
    }
    Ok(duration)
}
