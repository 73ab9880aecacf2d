//! The sections of [`Settings`](super::Settings), each read from its variables by its own
//! `read`. Every field's variable is `ICB_` and the name its doc comment gives.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::vars::{at_least, invalid, Vars};
use super::ConfigError;
use crate::domain::{ReplyTemplate, Vertical, WhatsappTemplate};
use crate::routes::proxies::TrustedProxies;
use crate::upstream::connect::ConnectUrls;

/// Where icbridge listens and how it is reached.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// `LISTEN`: the address the HTTP server binds.
    pub listen: String,
    /// `LISTEN_BACKLOG`: how many connections the kernel queues before icbridge accepts
    /// them.
    pub listen_backlog: u32,
    /// `PUBLIC_URL`: icbridge's own address as the outside sees it (links, files, the
    /// console, Webex's webhooks).
    pub public_url: Option<Url>,
    /// `TRUSTED_PROXIES`: the proxies whose `X-Forwarded-For` names the client; none by
    /// default: a client is its peer's address.
    pub trusted_proxies: TrustedProxies,
}

impl HttpSettings {
    pub(super) fn read(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            listen: vars
                .text("LISTEN")
                .unwrap_or_else(|| "127.0.0.1:8080".into()),
            listen_backlog: vars.number("LISTEN_BACKLOG", 4096)?,
            public_url: vars.url("PUBLIC_URL")?,
            trusted_proxies: TrustedProxies::parse(
                &vars.text("TRUSTED_PROXIES").unwrap_or_default(),
            )
            .map_err(|reason| ConfigError::Invalid {
                key: "TRUSTED_PROXIES",
                reason,
            })?,
        })
    }
}

/// Where customers' data is kept, and for how long.
#[derive(Debug, Clone)]
pub struct DataSettings {
    /// `DATABASE_URL`: `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// `RETENTION`: message texts older than this are erased, closed conversations
    /// anonymised.
    pub retention: Duration,
}

impl DataSettings {
    pub(super) fn read(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            database_url: vars
                .text("DATABASE_URL")
                .unwrap_or_else(|| "sqlite://icbridge.db".into()),
            retention: vars.duration("RETENTION", "30days")?,
        })
    }
}

/// The Instant Connect broker, which makes the meetings (with the Webex token).
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// `IC_BASE_URL`.
    pub base_url: Url,
    /// `IC_JOIN_URL`: where long-mode links point (`{join}/gen/v1/talk?...`); the broker
    /// only returns ciphers.
    pub join_url: Url,
    /// `IC_TIMEOUT`: one broker call's timeout.
    pub timeout: Duration,
}

impl BrokerSettings {
    pub(super) fn read(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            base_url: vars.url("IC_BASE_URL")?.unwrap_or_else(|| {
                Url::parse("https://mtg-broker-a.wbx2.com").expect("valid default")
            }),
            join_url: vars
                .url("IC_JOIN_URL")?
                .unwrap_or_else(|| Url::parse("https://instant.webex.com").expect("valid default")),
            timeout: vars.duration("IC_TIMEOUT", "4s")?,
        })
    }
}

/// The Webex API: the bot that notifies experts, and their events.
#[derive(Debug, Clone)]
pub struct WebexSettings {
    /// `WEBEX_TOKEN`: the bot's token, for Instant Connect and the Webex API.
    pub token: Option<SecretString>,
    /// `WEBEX_API_URL`.
    pub api_url: Url,
    /// `WEBEX_WEBHOOK_SECRET`: what Webex signs the experts' events with.
    pub webhook_secret: Option<SecretString>,
    /// `WEBEX_CATCH_UP_EVERY`: how often the rooms the desk serves are listed for
    /// messages whose Webex events never came (default 5 minutes).
    pub catch_up_every: Duration,
    /// `WEBEX_WEBHOOK_CHECK_EVERY`: how often icbridge's Webex webhooks are checked and
    /// mended (default 1 minute).
    pub webhook_check_every: Duration,
}

impl WebexSettings {
    pub(super) fn read(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            token: vars.secret("WEBEX_TOKEN"),
            api_url: vars
                .url("WEBEX_API_URL")?
                .unwrap_or_else(|| Url::parse("https://webexapis.com/v1").expect("valid default")),
            webhook_secret: vars.secret("WEBEX_WEBHOOK_SECRET"),
            catch_up_every: at_least(
                "WEBEX_CATCH_UP_EVERY",
                vars.duration("WEBEX_CATCH_UP_EVERY", "5m")?,
                Duration::from_secs(10),
            )?,
            webhook_check_every: at_least(
                "WEBEX_WEBHOOK_CHECK_EVERY",
                vars.duration("WEBEX_WEBHOOK_CHECK_EVERY", "1m")?,
                Duration::from_secs(10),
            )?,
        })
    }
}

/// Webex Connect: customers' SMS and WhatsApp messages, both ways.
#[derive(Debug, Clone)]
pub struct ConnectSettings {
    /// `CONNECT_API_URL`: both hosts, unless each has its own setting.
    pub api_url: Option<Url>,
    /// `CONNECT_SMS_URL`: the SMS API host, when it is not `ICB_CONNECT_API_URL`.
    pub sms_url: Option<Url>,
    /// `CONNECT_WHATSAPP_URL`: the WhatsApp (messaging API v1) host, when it is not
    /// `ICB_CONNECT_API_URL`.
    pub whatsapp_url: Option<Url>,
    /// `CONNECT_SERVICE_KEY`.
    pub service_key: Option<SecretString>,
    /// `SMS_SENDER`: the number icbridge writes SMS from.
    pub sms_sender: Option<String>,
    /// `WHATSAPP_APP_ID`: the WhatsApp app icbridge writes from.
    pub whatsapp_app_id: Option<String>,
    /// `CONNECT_WEBHOOK_SECRET`: Outbound Webhooks' `X-Hub-Signature` secret.
    pub webhook_secret: Option<SecretString>,
    /// `CONNECT_WEBHOOK_TOKEN`: a flow's HTTP Request node's bearer token.
    pub webhook_token: Option<SecretString>,
    /// `WHATSAPP_TEMPLATE` (and `WHATSAPP_TEMPLATE_PARAMS`): the approved template that
    /// reaches a WhatsApp customer outside the 24-hour window.
    pub whatsapp_template: Option<WhatsappTemplate>,
}

impl ConnectSettings {
    pub(super) fn read(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            api_url: vars.url("CONNECT_API_URL")?,
            sms_url: vars.url("CONNECT_SMS_URL")?,
            whatsapp_url: vars.url("CONNECT_WHATSAPP_URL")?,
            service_key: vars.secret("CONNECT_SERVICE_KEY"),
            sms_sender: vars.text("SMS_SENDER"),
            whatsapp_app_id: vars.text("WHATSAPP_APP_ID"),
            webhook_secret: vars.secret("CONNECT_WEBHOOK_SECRET"),
            webhook_token: vars.secret("CONNECT_WEBHOOK_TOKEN"),
            whatsapp_template: whatsapp_template(vars)?,
        })
    }

    /// Webex Connect's API hosts: each its own setting, else `ICB_CONNECT_API_URL`; `None`
    /// unless both are known.
    pub fn urls(&self) -> Option<ConnectUrls> {
        let default = self.api_url.as_ref();
        Some(ConnectUrls {
            sms: self.sms_url.as_ref().or(default)?.clone(),
            whatsapp: self.whatsapp_url.as_ref().or(default)?.clone(),
        })
    }
}

fn whatsapp_template(vars: &Vars) -> Result<Option<WhatsappTemplate>, ConfigError> {
    match vars.text("WHATSAPP_TEMPLATE") {
        None if vars.text("WHATSAPP_TEMPLATE_PARAMS").is_some() => Err(ConfigError::Invalid {
            key: "WHATSAPP_TEMPLATE_PARAMS",
            reason: "is set without ICB_WHATSAPP_TEMPLATE".into(),
        }),
        None => Ok(None),
        Some(id) => WhatsappTemplate::parse(&id, vars.text("WHATSAPP_TEMPLATE_PARAMS").as_deref())
            .map(Some)
            .map_err(|reason| ConfigError::Invalid {
                key: "WHATSAPP_TEMPLATE_PARAMS",
                reason,
            }),
    }
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

/// What customers are answered, and how.
#[derive(Debug, Clone)]
pub struct ReplySettings {
    /// `REPLY_MODE`; `None` when it is not set: see [`ReplySettings::mode`].
    pub mode: Option<ReplyMode>,
    /// `FOLLOWUP_REPLY`: whether later messages of a conversation get the live guest link
    /// again (`ICB_REPLY_MODE=connect` only).
    pub followup: FollowupReply,
    /// `LONG_REPLIES`: `split` (default) or `refuse`.
    pub long_replies: LongReplies,
    /// `SURVEY`: whether a customer is asked for a rating once their conversation is
    /// closed (needs the Webex Connect API).
    pub survey: bool,
    /// `REPLY_TEMPLATE`: the text around the guest link.
    pub template: ReplyTemplate,
}

impl ReplySettings {
    pub(super) fn read(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            mode: match vars.text("REPLY_MODE").as_deref() {
                None => None,
                Some("response") => Some(ReplyMode::Response),
                Some("connect") => Some(ReplyMode::Connect),
                Some(other) => return Err(invalid("REPLY_MODE", other, "`response` or `connect`")),
            },
            followup: match vars.text("FOLLOWUP_REPLY").as_deref() {
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
            template: ReplyTemplate::parse(
                &vars
                    .text("REPLY_TEMPLATE")
                    .unwrap_or_else(|| crate::customers::texts::GUEST_LINK_REPLY.into()),
            )
            .map_err(|reason| ConfigError::Invalid {
                key: "REPLY_TEMPLATE",
                reason: reason.to_string(),
            })?,
        })
    }

    /// How the guest link reaches the customer. Unset, it is `response` (a flow sends it).
    pub fn mode(&self) -> ReplyMode {
        self.mode.unwrap_or(ReplyMode::Response)
    }
}

/// The meetings icbridge makes, and their links.
#[derive(Debug, Clone)]
pub struct MeetingSettings {
    /// `LINK_TTL`: how long links work (renewed 5 minutes before they expire).
    pub link_ttl: Duration,
    /// `VERTICAL`: the meeting page's template, `gen` or `hc`.
    pub vertical: Vertical,
    /// `SHORT_URLS`.
    pub short_urls: bool,
    /// `HOST_LOGIN`: the host's short link asks the host to sign in.
    pub host_login: bool,
    /// `MEETING_HOSTS`, `MEETING_GUESTS`: links per meeting of each role (`numHost`,
    /// `numGuest`; at most 25 in all).
    pub hosts: u8,
    pub guests: u8,
    /// `APPOINTMENT_REMINDER`: how long before a booked consultation its customer is
    /// reminded and its desk gets the card.
    pub appointment_reminder: Duration,
    /// `APPOINTMENT_EARLY_JOIN`: how long before a booked consultation's start (and after
    /// its end) its links work.
    pub appointment_early_join: Duration,
    /// `MAX_NEW_MEETINGS_PER_HOUR`: how many meetings one customer may open per hour (0 =
    /// no limit).
    pub max_new_per_hour: u32,
}

impl MeetingSettings {
    pub(super) fn read(vars: &Vars) -> Result<Self, ConfigError> {
        let (hosts, guests) = links_per_meeting(vars)?;
        Ok(Self {
            link_ttl: link_ttl(vars)?,
            vertical: match vars.text("VERTICAL") {
                None => Vertical::Gen,
                Some(raw) => Vertical::parse(&raw)
                    .ok_or_else(|| invalid("VERTICAL", &raw, "`gen` or `hc`"))?,
            },
            short_urls: vars.boolean("SHORT_URLS", true)?,
            host_login: vars.boolean("HOST_LOGIN", false)?,
            hosts,
            guests,
            appointment_reminder: vars.duration("APPOINTMENT_REMINDER", "15m")?,
            appointment_early_join: vars.duration("APPOINTMENT_EARLY_JOIN", "10m")?,
            max_new_per_hour: vars.number("MAX_NEW_MEETINGS_PER_HOUR", 5)?,
        })
    }
}

fn link_ttl(vars: &Vars) -> Result<Duration, ConfigError> {
    let link_ttl = vars.duration("LINK_TTL", "1h")?;
    if link_ttl < Duration::from_secs(10 * 60) {
        return Err(ConfigError::Invalid {
            key: "LINK_TTL",
            reason: "must be at least 10m: links are renewed 5 minutes before they expire".into(),
        });
    }
    if link_ttl > Duration::from_secs(30 * 24 * 3600) {
        return Err(ConfigError::Invalid {
            key: "LINK_TTL",
            reason: "must be at most 30 days".into(),
        });
    }
    Ok(link_ttl)
}

/// `MEETING_HOSTS` and `MEETING_GUESTS`: at least one of each, at most 25 in all.
fn links_per_meeting(vars: &Vars) -> Result<(u8, u8), ConfigError> {
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
    // Saturating: two numbers near u32::MAX must not wrap round to a small sum.
    if meeting_hosts.saturating_add(meeting_guests) > 25 {
        return Err(ConfigError::Invalid {
            key: "MEETING_GUESTS",
            reason: "with ICB_MEETING_HOSTS, at most 25 links: the broker's limit".into(),
        });
    }
    Ok((meeting_hosts as u8, meeting_guests as u8))
}

/// How deliveries are retried and shared between instances.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// `RETRY_SCHEDULE`: the waits between a delivery's attempts.
    pub retry_schedule: Vec<Duration>,
    /// `OUTBOX_LEASE`: how long a delivery claimed by a worker is reserved for it.
    pub outbox_lease: Duration,
}

impl DeliverySettings {
    pub(super) fn read(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            retry_schedule: vars.duration_list("RETRY_SCHEDULE", "1s,5s,30s,2m,10m,30m,1h")?,
            outbox_lease: vars.duration("OUTBOX_LEASE", "30s")?,
        })
    }
}

/// The admin API's bearer token.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// `ADMIN_TOKEN`: without it, the admin API refuses every request.
    pub token: Option<SecretString>,
    /// `ADMIN_NAME`: who the token's holder is, in the audit log (`admin:<name>`).
    pub name: String,
}

impl AdminSettings {
    pub(super) fn read(vars: &Vars) -> Self {
        Self {
            token: vars.secret("ADMIN_TOKEN"),
            name: vars
                .text("ADMIN_NAME")
                .unwrap_or_else(|| "admin".to_string()),
        }
    }
}

/// The experts' console: a Webex integration to log in with (and `ICB_PUBLIC_URL`).
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// `OAUTH_CLIENT_ID`.
    pub oauth_client_id: Option<String>,
    /// `OAUTH_CLIENT_SECRET`.
    pub oauth_client_secret: Option<SecretString>,
    /// `CONSOLE_ALLOWED`: who may use the console: emails and `@domain`s, lower-case.
    /// Empty: anyone who can log in to Webex with the integration.
    pub allowed: Vec<String>,
    /// `WIDGET_BASE_URL`: where the Space Widget's `bundle.js` and `main.css` are.
    pub widget_base_url: Url,
}

impl ConsoleSettings {
    pub(super) fn read(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            oauth_client_id: vars.text("OAUTH_CLIENT_ID"),
            oauth_client_secret: vars.secret("OAUTH_CLIENT_SECRET"),
            allowed: vars
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
        })
    }
}

/// Customers' files, handed to Webex, and experts' files, linked to customers.
#[derive(Debug, Clone)]
pub struct MediaSettings {
    /// `MEDIA_MAX_MB`: the largest customer file icbridge downloads to hand to Webex, in
    /// bytes.
    pub max_bytes: u64,
    /// `MEDIA_LINK_TTL`: how long a link to an expert's file (`ICB_PUBLIC_URL/media/...`)
    /// works.
    pub link_ttl: Duration,
    /// `MEDIA_CA_FILE`: certificates (PEM) also trusted when downloading customers' files:
    /// for media hosts behind a private CA.
    pub ca_file: Option<PathBuf>,
    /// `MEDIA_PRIVATE_ADDRESSES`: fetch customers' file links that point at loopback,
    /// link-local or private addresses (default false: a customer's link must not reach
    /// icbridge's own network).
    pub private_addresses: bool,
}

impl MediaSettings {
    pub(super) fn read(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            max_bytes: match vars.number("MEDIA_MAX_MB", 25)? {
                0 => return Err(invalid("MEDIA_MAX_MB", "0", "at least 1")),
                // Webex takes files of up to 100 MB.
                mb @ 1..=100 => u64::from(mb) * 1024 * 1024,
                mb => return Err(invalid("MEDIA_MAX_MB", &mb.to_string(), "at most 100")),
            },
            ca_file: vars.text("MEDIA_CA_FILE").map(PathBuf::from),
            private_addresses: vars.boolean("MEDIA_PRIVATE_ADDRESSES", false)?,
            link_ttl: vars.duration("MEDIA_LINK_TTL", "1h")?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

pub(super) fn log_format(vars: &Vars) -> Result<LogFormat, ConfigError> {
    match vars.text("LOG_FORMAT").as_deref() {
        None | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(invalid("LOG_FORMAT", other, "`text` or `json`")),
    }
}
