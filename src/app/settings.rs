//! Settings: an optional TOML file overlaid by `ICB_*` environment variables.
//!
//! Every value is read as text first and then parsed by the field's own type, so an error
//! always names the variable (`ICB_LINK_TTL: invalid duration "1x"`), whichever layer it
//! came from. Secrets are `SecretString`s: `Debug` of `Settings` never shows them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::domain::ExpertTarget;
use crate::upstream::connect::ConnectUrls;

use crate::desks::DeskConfig;
use crate::domain::{ReplyTemplate, Vertical, WhatsappTemplate};
use crate::routes::proxies::TrustedProxies;

const PREFIX: &str = "ICB_";

/// Every variable icbridge reads, without the prefix. Unknown keys in the file are an error
/// (a typo must not silently fall back to a default); unknown `ICB_` variables are a warning.
const KNOWN_KEYS: &[&str] = &[
    "MEDIA_MAX_MB",
    "MEDIA_LINK_TTL",
    "WHATSAPP_TEMPLATE",
    "WHATSAPP_TEMPLATE_PARAMS",
    "MEDIA_CA_FILE",
    "MEDIA_PRIVATE_ADDRESSES",
    "LISTEN",
    "LISTEN_BACKLOG",
    "OUTBOX_LEASE",
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {source}")]
    ParseFile {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("config file {path}: unknown key `{key}` (keys are the ICB_ variable names without ICB_, lower-case)")]
    UnknownFileKey { path: String, key: String },
    #[error("config file {path}: `{key}` must be a string, number or boolean")]
    UnsupportedFileValue { path: String, key: String },
    #[error("{PREFIX}{key}: {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error("config file {path}: [[desk]] entries: {reason}")]
    Desks { path: String, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    /// The guest link goes back in the HTTP answer; the Webex Connect flow sends it.
    Response,
    /// icbridge sends the guest link through the Webex Connect messaging API.
    Connect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowupReply {
    /// Only the message that opens a meeting is answered automatically.
    None,
    /// Every later message is answered with the live guest link too.
    Link,
}

/// What becomes of an expert's reply too long for the customer's channel (an SMS takes
/// 4,000 characters, a WhatsApp text 4,096).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LongReplies {
    /// Sent as several numbered messages, in order.
    #[default]
    Split,
    /// Not sent; the expert is told in the thread.
    Refuse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    pub database_url: String,
    pub webex_token: Option<SecretString>,
    pub ic_base_url: Url,
    /// Where long-mode links point (`{join}/gen/v1/talk?...`); the broker only returns ciphers.
    pub ic_join_url: Url,
    pub ic_timeout: Duration,
    pub webex_api_url: Url,
    pub connect_api_url: Option<Url>,
    /// Webex Connect's SMS API host (`ICB_CONNECT_SMS_URL`), when it is not
    /// `ICB_CONNECT_API_URL`.
    pub connect_sms_url: Option<Url>,
    /// Webex Connect's WhatsApp (messaging API v1) host (`ICB_CONNECT_WHATSAPP_URL`), when
    /// it is not `ICB_CONNECT_API_URL`.
    pub connect_whatsapp_url: Option<Url>,
    pub connect_service_key: Option<SecretString>,
    pub sms_sender: Option<String>,
    pub whatsapp_app_id: Option<String>,
    pub connect_webhook_secret: Option<SecretString>,
    pub connect_webhook_token: Option<SecretString>,
    pub webex_webhook_secret: Option<SecretString>,
    /// How often the rooms the desk serves are listed for messages whose Webex events
    /// never came (`ICB_WEBEX_CATCH_UP_EVERY`, default 5 minutes).
    pub webex_catch_up_every: Duration,
    /// How often icbridge's Webex webhooks are checked and mended
    /// (`ICB_WEBEX_WEBHOOK_CHECK_EVERY`, default 1 minute).
    pub webex_webhook_check_every: Duration,
    pub expert_target: Option<ExpertTarget>,
    /// `None` when `ICB_REPLY_MODE` is not set: see [`Settings::reply_mode`].
    pub reply_mode: Option<ReplyMode>,
    /// Whether later messages of a conversation get the live guest link again
    /// (`ICB_REPLY_MODE=connect` only).
    pub followup_reply: FollowupReply,
    /// `ICB_LONG_REPLIES`: `split` (default) or `refuse`.
    pub long_replies: LongReplies,
    /// Whether a customer is asked for a rating once their conversation is closed (needs
    /// the Webex Connect API).
    pub survey: bool,
    pub link_ttl: Duration,
    pub vertical: Vertical,
    pub short_urls: bool,
    pub host_login: bool,
    /// Links per meeting of each role (`numHost`, `numGuest`; at most 25 in all).
    pub meeting_hosts: u8,
    pub meeting_guests: u8,
    /// How long before a booked consultation its customer is reminded and its desk gets
    /// the card.
    pub appointment_reminder: Duration,
    /// How long before a booked consultation's start (and after its end) its links work.
    pub appointment_early_join: Duration,
    pub reply_template: ReplyTemplate,
    pub retry_schedule: Vec<Duration>,
    /// Message texts older than this are erased, closed conversations anonymised.
    pub retention: Duration,
    /// How many meetings one customer may open per hour (0 = no limit).
    pub max_new_meetings_per_hour: u32,
    /// How many connections the kernel queues before icbridge accepts them.
    pub listen_backlog: u32,
    /// How long a delivery claimed by a worker is reserved for it.
    pub outbox_lease: Duration,
    pub admin_token: Option<SecretString>,
    /// Who the admin token's holder is, in the audit log (`admin:<name>`).
    pub admin_name: String,
    pub public_url: Option<Url>,
    pub oauth_client_id: Option<String>,
    pub oauth_client_secret: Option<SecretString>,
    /// Who may use the console: emails and `@domain`s, lower-case. Empty: anyone who can
    /// log in to Webex with the integration.
    pub console_allowed: Vec<String>,
    /// Where the Space Widget's `bundle.js` and `main.css` are.
    pub widget_base_url: Url,
    pub log_format: LogFormat,
    /// The proxies whose `X-Forwarded-For` names the client (`ICB_TRUSTED_PROXIES`); none
    /// by default: a client is its peer's address.
    pub trusted_proxies: TrustedProxies,
    /// The largest customer file icbridge downloads to hand to Webex, in bytes.
    pub media_max_bytes: u64,
    /// How long a link to an expert's file (`ICB_PUBLIC_URL/media/...`) works.
    pub media_link_ttl: Duration,
    /// The approved template that reaches a WhatsApp customer outside the 24-hour window.
    pub whatsapp_template: Option<WhatsappTemplate>,
    /// Certificates (PEM) also trusted when downloading customers' files: for media hosts
    /// behind a private CA.
    pub media_ca_file: Option<PathBuf>,
    /// Fetch customers' file links that point at loopback, link-local or private addresses
    /// (`ICB_MEDIA_PRIVATE_ADDRESSES`, default false: a customer's link must not reach
    /// icbridge's own network).
    pub media_private_addresses: bool,
    /// The `[[desk]]` entries of the TOML file (validated at start-up, see `desks`).
    pub desks: Vec<DeskConfig>,
    /// Things worth telling the operator once logging is up (unknown variables, ...).
    pub warnings: Vec<String>,
}

impl Settings {
    /// Reads the optional TOML file, then the process environment on top of it.
    pub fn load(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        let (mut vars, desks) = match config_file {
            Some(path) => read_file(path)?,
            None => (BTreeMap::new(), Vec::new()),
        };
        let mut warnings = Vec::new();
        for (name, value) in std::env::vars() {
            let Some(key) = name.strip_prefix(PREFIX) else {
                continue;
            };
            // Test and tooling variables share the prefix but are not settings.
            if key.starts_with("TEST_") {
                continue;
            }
            if !KNOWN_KEYS.contains(&key) {
                warnings.push(format!("ignoring unknown variable {name}"));
                continue;
            }
            vars.insert(key.to_string(), value);
        }
        let mut settings = Self::from_vars(&vars)?;
        settings.warnings.extend(warnings);
        settings.desks = desks;
        Ok(settings)
    }

    /// Builds settings from `KEY -> value` pairs (keys without the `ICB_` prefix).
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let vars = Vars(vars);
        let mut warnings = Vec::new();

        let expert_targets = [
            vars.text("EXPERT_ROOM_ID").map(ExpertTarget::RoomId),
            vars.text("EXPERT_EMAIL").map(ExpertTarget::Email),
            vars.text("EXPERT_ROOM_TITLE").map(ExpertTarget::RoomTitle),
        ];
        let mut expert_targets = expert_targets.into_iter().flatten();
        let expert_target = expert_targets.next();
        if expert_targets.next().is_some() {
            warnings.push(format!(
                "several expert targets are set; using {expert_target:?} \
                 (ICB_EXPERT_ROOM_ID wins over ICB_EXPERT_EMAIL over ICB_EXPERT_ROOM_TITLE)"
            ));
        }

        let link_ttl = vars.duration("LINK_TTL", "1h")?;
        if link_ttl < Duration::from_secs(10 * 60) {
            return Err(ConfigError::Invalid {
                key: "LINK_TTL",
                reason: "must be at least 10m: links are renewed 5 minutes before they expire"
                    .into(),
            });
        }
        if link_ttl > Duration::from_secs(30 * 24 * 3600) {
            return Err(ConfigError::Invalid {
                key: "LINK_TTL",
                reason: "must be at most 30 days".into(),
            });
        }

        let meeting_hosts = vars.number("MEETING_HOSTS", 1)?;
        let meeting_guests = vars.number("MEETING_GUESTS", 1)?;
        for (key, count) in [
            ("MEETING_HOSTS", meeting_hosts),
            ("MEETING_GUESTS", meeting_guests),
        ] {
            if count == 0 {
                return Err(invalid(key, "0", "at least 1"));
            }
        }
        if meeting_hosts + meeting_guests > 25 {
            return Err(ConfigError::Invalid {
                key: "MEETING_GUESTS",
                reason: "with ICB_MEETING_HOSTS, at most 25 links: the broker's limit".into(),
            });
        }

        Ok(Settings {
            listen: vars
                .text("LISTEN")
                .unwrap_or_else(|| "127.0.0.1:8080".into()),
            database_url: vars
                .text("DATABASE_URL")
                .unwrap_or_else(|| "sqlite://icbridge.db".into()),
            webex_token: vars.secret("WEBEX_TOKEN"),
            ic_base_url: vars.url("IC_BASE_URL")?.unwrap_or_else(|| {
                Url::parse("https://mtg-broker-a.wbx2.com").expect("valid default")
            }),
            ic_join_url: vars
                .url("IC_JOIN_URL")?
                .unwrap_or_else(|| Url::parse("https://instant.webex.com").expect("valid default")),
            ic_timeout: vars.duration("IC_TIMEOUT", "4s")?,
            webex_api_url: vars
                .url("WEBEX_API_URL")?
                .unwrap_or_else(|| Url::parse("https://webexapis.com/v1").expect("valid default")),
            connect_api_url: vars.url("CONNECT_API_URL")?,
            connect_sms_url: vars.url("CONNECT_SMS_URL")?,
            connect_whatsapp_url: vars.url("CONNECT_WHATSAPP_URL")?,
            connect_service_key: vars.secret("CONNECT_SERVICE_KEY"),
            sms_sender: vars.text("SMS_SENDER"),
            whatsapp_app_id: vars.text("WHATSAPP_APP_ID"),
            connect_webhook_secret: vars.secret("CONNECT_WEBHOOK_SECRET"),
            connect_webhook_token: vars.secret("CONNECT_WEBHOOK_TOKEN"),
            webex_webhook_secret: vars.secret("WEBEX_WEBHOOK_SECRET"),
            webex_catch_up_every: at_least(
                "WEBEX_CATCH_UP_EVERY",
                vars.duration("WEBEX_CATCH_UP_EVERY", "5m")?,
                Duration::from_secs(10),
            )?,
            webex_webhook_check_every: at_least(
                "WEBEX_WEBHOOK_CHECK_EVERY",
                vars.duration("WEBEX_WEBHOOK_CHECK_EVERY", "1m")?,
                Duration::from_secs(10),
            )?,
            expert_target,
            reply_mode: match vars.text("REPLY_MODE").as_deref() {
                None => None,
                Some("response") => Some(ReplyMode::Response),
                Some("connect") => Some(ReplyMode::Connect),
                Some(other) => return Err(invalid("REPLY_MODE", other, "`response` or `connect`")),
            },
            followup_reply: match vars.text("FOLLOWUP_REPLY").as_deref() {
                None | Some("none") => FollowupReply::None,
                Some("link") => FollowupReply::Link,
                Some(other) => return Err(invalid("FOLLOWUP_REPLY", other, "`none` or `link`")),
            },
            long_replies: match vars.text("LONG_REPLIES").as_deref() {
                None | Some("split") => LongReplies::Split,
                Some("refuse") => LongReplies::Refuse,
                Some(other) => return Err(invalid("LONG_REPLIES", other, "`split` or `refuse`")),
            },
            survey: vars.boolean("SURVEY", false)?,
            link_ttl,
            vertical: match vars.text("VERTICAL") {
                None => Vertical::Gen,
                Some(raw) => Vertical::parse(&raw)
                    .ok_or_else(|| invalid("VERTICAL", &raw, "`gen` or `hc`"))?,
            },
            short_urls: vars.boolean("SHORT_URLS", true)?,
            host_login: vars.boolean("HOST_LOGIN", false)?,
            meeting_hosts: meeting_hosts as u8,
            meeting_guests: meeting_guests as u8,
            appointment_reminder: vars.duration("APPOINTMENT_REMINDER", "15m")?,
            appointment_early_join: vars.duration("APPOINTMENT_EARLY_JOIN", "10m")?,
            reply_template: ReplyTemplate::parse(
                &vars
                    .text("REPLY_TEMPLATE")
                    .unwrap_or_else(|| ReplyTemplate::DEFAULT.into()),
            )
            .map_err(|reason| ConfigError::Invalid {
                key: "REPLY_TEMPLATE",
                reason: reason.to_string(),
            })?,
            retry_schedule: vars.duration_list("RETRY_SCHEDULE", "1s,5s,30s,2m,10m,30m,1h")?,
            max_new_meetings_per_hour: vars.number("MAX_NEW_MEETINGS_PER_HOUR", 5)?,
            listen_backlog: vars.number("LISTEN_BACKLOG", 4096)?,
            outbox_lease: vars.duration("OUTBOX_LEASE", "30s")?,
            retention: vars.duration("RETENTION", "30days")?,
            admin_token: vars.secret("ADMIN_TOKEN"),
            admin_name: vars
                .text("ADMIN_NAME")
                .unwrap_or_else(|| "admin".to_string()),
            public_url: vars.url("PUBLIC_URL")?,
            oauth_client_id: vars.text("OAUTH_CLIENT_ID"),
            oauth_client_secret: vars.secret("OAUTH_CLIENT_SECRET"),
            console_allowed: vars
                .text("CONSOLE_ALLOWED")
                .map(|list| {
                    list.split(',')
                        .map(|entry| entry.trim().to_ascii_lowercase())
                        .filter(|entry| !entry.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            widget_base_url: vars.url("WIDGET_BASE_URL")?.unwrap_or_else(|| {
                Url::parse("https://code.s4d.io/widget-space/production").expect("valid default")
            }),
            media_max_bytes: match vars.number("MEDIA_MAX_MB", 25)? {
                0 => return Err(invalid("MEDIA_MAX_MB", "0", "at least 1")),
                // Webex takes files of up to 100 MB.
                mb @ 1..=100 => u64::from(mb) * 1024 * 1024,
                mb => return Err(invalid("MEDIA_MAX_MB", &mb.to_string(), "at most 100")),
            },
            media_ca_file: vars.text("MEDIA_CA_FILE").map(PathBuf::from),
            media_private_addresses: vars.boolean("MEDIA_PRIVATE_ADDRESSES", false)?,
            desks: Vec::new(),
            media_link_ttl: vars.duration("MEDIA_LINK_TTL", "1h")?,
            whatsapp_template: match vars.text("WHATSAPP_TEMPLATE") {
                None if vars.text("WHATSAPP_TEMPLATE_PARAMS").is_some() => {
                    return Err(ConfigError::Invalid {
                        key: "WHATSAPP_TEMPLATE_PARAMS",
                        reason: "is set without ICB_WHATSAPP_TEMPLATE".into(),
                    })
                }
                None => None,
                Some(id) => Some(
                    WhatsappTemplate::parse(&id, vars.text("WHATSAPP_TEMPLATE_PARAMS").as_deref())
                        .map_err(|reason| ConfigError::Invalid {
                            key: "WHATSAPP_TEMPLATE_PARAMS",
                            reason,
                        })?,
                ),
            },
            log_format: match vars.text("LOG_FORMAT").as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => return Err(invalid("LOG_FORMAT", other, "`text` or `json`")),
            },
            trusted_proxies: TrustedProxies::parse(
                &vars.text("TRUSTED_PROXIES").unwrap_or_default(),
            )
            .map_err(|reason| ConfigError::Invalid {
                key: "TRUSTED_PROXIES",
                reason,
            })?,
            warnings,
        })
    }
}

impl Settings {
    /// Webex Connect's API hosts: each its own setting, else `ICB_CONNECT_API_URL`; `None`
    /// unless both are known.
    pub fn connect_urls(&self) -> Option<ConnectUrls> {
        let default = self.connect_api_url.as_ref();
        Some(ConnectUrls {
            sms: self.connect_sms_url.as_ref().or(default)?.clone(),
            whatsapp: self.connect_whatsapp_url.as_ref().or(default)?.clone(),
        })
    }

    /// How the guest link reaches the customer. Unset, it is `response` (a flow sends it).
    pub fn reply_mode(&self) -> ReplyMode {
        self.reply_mode.unwrap_or(ReplyMode::Response)
    }
}

/// `value`, unless it is shorter than `minimum`.
fn at_least(
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

fn invalid(key: &'static str, value: &str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: format!("invalid value {value:?}, expected {expected}"),
    }
}

/// The settings of a TOML file, and its `[[desk]]` entries.
fn read_file(path: &Path) -> Result<(BTreeMap<String, String>, Vec<DeskConfig>), ConfigError> {
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
    Ok((vars, desks))
}

/// Typed reads of the raw variables; an empty value counts as unset.
struct Vars<'a>(&'a BTreeMap<String, String>);

impl Vars<'_> {
    fn text(&self, key: &str) -> Option<String> {
        self.0
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    fn secret(&self, key: &str) -> Option<SecretString> {
        self.text(key).map(SecretString::from)
    }

    fn url(&self, key: &'static str) -> Result<Option<Url>, ConfigError> {
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

    fn boolean(&self, key: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.text(key).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(invalid(key, other, "true or false")),
        }
    }

    fn number(&self, key: &'static str, default: u32) -> Result<u32, ConfigError> {
        match self.text(key) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|_| invalid(key, &raw, "a whole number")),
        }
    }

    fn duration(&self, key: &'static str, default: &str) -> Result<Duration, ConfigError> {
        let raw = self.text(key).unwrap_or_else(|| default.to_string());
        parse_duration(key, &raw)
    }

    fn duration_list(
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

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn links_per_meeting_and_appointment_margins() {
        let s = Settings::from_vars(&vars(&[])).unwrap();
        assert_eq!((s.meeting_hosts, s.meeting_guests), (1, 1));
        assert_eq!(s.appointment_reminder, Duration::from_secs(15 * 60));
        assert_eq!(s.appointment_early_join, Duration::from_secs(10 * 60));
        let s = Settings::from_vars(&vars(&[("MEETING_GUESTS", "3")])).unwrap();
        assert_eq!(s.meeting_guests, 3);
        let err = Settings::from_vars(&vars(&[("MEETING_HOSTS", "20"), ("MEETING_GUESTS", "6")]))
            .unwrap_err();
        assert!(err.to_string().contains("at most 25"), "{err}");
        let err = Settings::from_vars(&vars(&[("MEETING_GUESTS", "0")])).unwrap_err();
        assert!(err.to_string().starts_with("ICB_MEETING_GUESTS"), "{err}");
        let err = Settings::from_vars(&vars(&[("MEETING_HOSTS", "300")])).unwrap_err();
        assert!(err.to_string().starts_with("ICB_MEETING_"), "{err}");
    }

    #[test]
    fn defaults_match_the_design() {
        let s = Settings::from_vars(&vars(&[])).unwrap();
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert_eq!(s.database_url, "sqlite://icbridge.db");
        assert_eq!(s.ic_base_url.as_str(), "https://mtg-broker-a.wbx2.com/");
        assert_eq!(s.webex_api_url.as_str(), "https://webexapis.com/v1");
        assert_eq!(s.link_ttl, Duration::from_secs(3600));
        assert_eq!(s.ic_timeout, Duration::from_secs(4));
        assert_eq!(s.vertical, Vertical::Gen);
        assert!(s.short_urls);
        assert!(!s.host_login);
        assert_eq!(s.reply_mode(), ReplyMode::Response);
        assert_eq!(s.retry_schedule.len(), 7);
        assert_eq!(s.max_new_meetings_per_hour, 5);
        assert_eq!(s.retention, Duration::from_secs(30 * 86_400));
        assert_eq!(s.expert_target, None);
    }

    #[test]
    fn errors_name_the_variable() {
        let err = Settings::from_vars(&vars(&[("LINK_TTL", "1x")])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ICB_LINK_TTL: invalid duration"),
            "{err}"
        );
        let err = Settings::from_vars(&vars(&[("VERTICAL", "dental")])).unwrap_err();
        assert!(err.to_string().starts_with("ICB_VERTICAL"), "{err}");
        let err = Settings::from_vars(&vars(&[("SHORT_URLS", "maybe")])).unwrap_err();
        assert!(err.to_string().starts_with("ICB_SHORT_URLS"), "{err}");
        let err = Settings::from_vars(&vars(&[("LINK_TTL", "4m")])).unwrap_err();
        assert!(err.to_string().contains("at least 10m"), "{err}");
        let err = Settings::from_vars(&vars(&[("REPLY_TEMPLATE", "no link here")])).unwrap_err();
        assert!(err.to_string().contains("{guest_url}"), "{err}");
    }

    #[test]
    fn trusted_proxies_are_none_by_default_and_a_wrong_entry_names_the_variable() {
        let s = Settings::from_vars(&vars(&[])).unwrap();
        assert!(s.trusted_proxies.is_empty());
        let s =
            Settings::from_vars(&vars(&[("TRUSTED_PROXIES", "10.0.0.5, 172.28.0.0/16")])).unwrap();
        assert!(s.trusted_proxies.contains("172.28.3.4".parse().unwrap()));
        let err =
            Settings::from_vars(&vars(&[("TRUSTED_PROXIES", "10.0.0.5, caddy")])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ICB_TRUSTED_PROXIES: \"caddy\" is not an IP address"),
            "{err}"
        );
    }

    #[test]
    fn debug_redacts_secrets() {
        let s = Settings::from_vars(&vars(&[
            ("WEBEX_TOKEN", "bot-token-very-secret"),
            ("CONNECT_WEBHOOK_SECRET", "hub-secret-value"),
        ]))
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("bot-token-very-secret"), "{shown}");
        assert!(!shown.contains("hub-secret-value"), "{shown}");
        assert_eq!(
            s.webex_token.as_ref().unwrap().expose_secret(),
            "bot-token-very-secret"
        );
    }

    #[test]
    fn expert_room_id_wins_and_warns() {
        let s = Settings::from_vars(&vars(&[
            ("EXPERT_ROOM_TITLE", "Video Experts"),
            ("EXPERT_ROOM_ID", "room-1"),
        ]))
        .unwrap();
        assert_eq!(s.expert_target, Some(ExpertTarget::RoomId("room-1".into())));
        assert_eq!(s.warnings.len(), 1);
    }

    #[test]
    fn desks_are_read_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("desks.toml");
        std::fs::write(
            &path,
            "expert_room_id = \"room-general\"\n\
             [[desk]]\nname = \"pediatrics\"\nroom_title = \"Pediatrics\"\n\
             addresses = [\"+14155550100\"]\nkeywords = [\"child\"]\n\
             [desk.texts]\nreply = \"Hi {{ customer_name }}: {{ guest_url }}\"\n",
        )
        .unwrap();
        let (vars, desks) = read_file(&path).unwrap();
        assert_eq!(vars["EXPERT_ROOM_ID"], "room-general");
        assert_eq!(desks[0].name, "pediatrics");
        assert_eq!(desks[0].room_title.as_deref(), Some("Pediatrics"));
        assert_eq!(desks[0].keywords, ["child"]);
        assert_eq!(
            desks[0].texts.reply.as_deref(),
            Some("Hi {{ customer_name }}: {{ guest_url }}")
        );
        std::fs::write(&path, "[[desk]]\nname = \"x\"\nroom = \"r\"\n").unwrap();
        let error = read_file(&path).unwrap_err().to_string();
        assert!(
            error.contains("[[desk]]") && error.contains("unknown field `room`"),
            "{error}"
        );
    }

    #[test]
    fn file_values_are_read_and_unknown_keys_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("icbridge.toml");
        std::fs::write(
            &path,
            "link_ttl = \"2h\"\nshort_urls = false\nsms_sender = 56263\n",
        )
        .unwrap();
        let (vars, desks) = read_file(&path).unwrap();
        assert!(desks.is_empty());
        let s = Settings::from_vars(&vars).unwrap();
        assert_eq!(s.link_ttl, Duration::from_secs(7200));
        assert!(!s.short_urls);
        assert_eq!(s.sms_sender.as_deref(), Some("56263"));

        std::fs::write(&path, "lsten = \"0.0.0.0:80\"\n").unwrap();
        let err = read_file(&path).unwrap_err();
        assert!(err.to_string().contains("unknown key `lsten`"), "{err}");
    }
}
