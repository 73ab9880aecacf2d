//! Settings: an optional TOML file overlaid by `ICB_*` environment variables, grouped in
//! sections (`sections`): the HTTP server, the data, each upstream (broker, Webex, Webex
//! Connect), the replies, the meetings, the deliveries, the admin API, the console and
//! media; the desks and the log format stand alone.
//!
//! Every value is read as text first and then parsed by the field's own type (`vars`), so
//! an error always names the variable (`ICB_LINK_TTL: invalid duration "1x"`), whichever
//! layer it came from. Secrets are `SecretString`s: `Debug` of `Settings` never shows them.

mod events;
mod sections;
mod vars;

use std::collections::BTreeMap;
use std::path::Path;

pub use sections::{
    AdminSettings, BrokerSettings, ConnectSettings, ConsoleSettings, DataSettings,
    DeliverySettings, FollowupReply, HttpSettings, LogFormat, LongReplies, MediaSettings,
    MeetingSettings, ReplyMode, ReplySettings, WebexSettings,
};

use crate::desks::DeskConfig;
use crate::domain::ExpertTarget;
pub use events::EventSettings;
use events::SubscriptionEntry;
use vars::{read_file, FileParts, Vars, KNOWN_KEYS, PREFIX};

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
    #[error("config file {path}: [[event_subscription]] entries: {reason}")]
    Subscriptions { path: String, reason: String },
    #[error("[[event_subscription]] {name:?}: `{key}` {reason}")]
    Subscription {
        name: String,
        key: &'static str,
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub http: HttpSettings,
    pub data: DataSettings,
    pub broker: BrokerSettings,
    pub webex: WebexSettings,
    pub connect: ConnectSettings,
    pub replies: ReplySettings,
    pub meetings: MeetingSettings,
    pub delivery: DeliverySettings,
    pub admin: AdminSettings,
    pub console: ConsoleSettings,
    pub media: MediaSettings,
    /// Where events go (`[[event_subscription]]`, `ICB_EVENTS_*`).
    pub events: EventSettings,
    /// The default desk's experts: `ICB_EXPERT_ROOM_ID`, `ICB_EXPERT_EMAIL` or
    /// `ICB_EXPERT_ROOM_TITLE`.
    pub expert_target: Option<ExpertTarget>,
    /// The `[[desk]]` entries of the TOML file (validated at start-up, see `desks`).
    pub desks: Vec<DeskConfig>,
    /// `ICB_LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
    /// Things worth telling the operator once logging is up (unknown variables, ...).
    pub warnings: Vec<String>,
}

impl Settings {
    /// Reads the optional TOML file, then the process environment on top of it.
    pub fn load(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        let FileParts {
            mut vars,
            desks,
            subscriptions,
            shown,
        } = match config_file {
            Some(path) => read_file(path)?,
            None => FileParts::default(),
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
        let subscriptions: Vec<SubscriptionEntry> = match subscriptions {
            None => Vec::new(),
            Some(entries) => {
                entries
                    .try_into()
                    .map_err(|e: toml::de::Error| ConfigError::Subscriptions {
                        path: shown,
                        reason: e.message().to_string(),
                    })?
            }
        };
        settings.events = EventSettings::read(&Vars(&vars), &subscriptions)?;
        settings.warnings.extend(warnings);
        settings.desks = desks;
        Ok(settings)
    }

    /// Builds settings from `KEY -> value` pairs (keys without the `ICB_` prefix).
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let vars = Vars(vars);
        let mut warnings = Vec::new();
        let expert_target = expert_target(&vars, &mut warnings);
        // The meetings' section first: a wrong link lifetime or number of links is named
        // before the other sections' errors.
        let meetings = MeetingSettings::read(&vars)?;
        Ok(Settings {
            http: HttpSettings::read(&vars)?,
            data: DataSettings::read(&vars)?,
            broker: BrokerSettings::read(&vars)?,
            webex: WebexSettings::read(&vars)?,
            connect: ConnectSettings::read(&vars)?,
            replies: ReplySettings::read(&vars)?,
            meetings,
            delivery: DeliverySettings::read(&vars)?,
            admin: AdminSettings::read(&vars),
            console: ConsoleSettings::read(&vars)?,
            media: MediaSettings::read(&vars)?,
            events: EventSettings::read(&vars, &[])?,
            expert_target,
            desks: Vec::new(),
            log_format: sections::log_format(&vars)?,
            warnings,
        })
    }
}

/// The default desk's experts; with several set, the first of room id, email and title, and
/// a warning.
fn expert_target(vars: &Vars, warnings: &mut Vec<String>) -> Option<ExpertTarget> {
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
    expert_target
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::Vertical;
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
        assert_eq!((s.meetings.hosts, s.meetings.guests), (1, 1));
        assert_eq!(
            s.meetings.appointment_reminder,
            Duration::from_secs(15 * 60)
        );
        assert_eq!(
            s.meetings.appointment_early_join,
            Duration::from_secs(10 * 60)
        );
        let s = Settings::from_vars(&vars(&[("MEETING_GUESTS", "3")])).unwrap();
        assert_eq!(s.meetings.guests, 3);
        let err = Settings::from_vars(&vars(&[("MEETING_HOSTS", "20"), ("MEETING_GUESTS", "6")]))
            .unwrap_err();
        assert!(err.to_string().contains("at most 25"), "{err}");
        let err = Settings::from_vars(&vars(&[("MEETING_GUESTS", "0")])).unwrap_err();
        assert!(err.to_string().starts_with("ICB_MEETING_GUESTS"), "{err}");
        let err = Settings::from_vars(&vars(&[("MEETING_HOSTS", "300")])).unwrap_err();
        assert!(err.to_string().starts_with("ICB_MEETING_"), "{err}");
        let err = Settings::from_vars(&vars(&[
            ("MEETING_HOSTS", "4294967295"),
            ("MEETING_GUESTS", "1"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("at most 25"), "{err}");
    }

    #[test]
    fn defaults_match_the_design() {
        let s = Settings::from_vars(&vars(&[])).unwrap();
        assert_eq!(s.http.listen, "127.0.0.1:8080");
        assert_eq!(s.data.database_url, "sqlite://icbridge.db");
        assert_eq!(s.broker.base_url.as_str(), "https://mtg-broker-a.wbx2.com/");
        assert_eq!(s.webex.api_url.as_str(), "https://webexapis.com/v1");
        assert_eq!(s.meetings.link_ttl, Duration::from_secs(3600));
        assert_eq!(s.broker.timeout, Duration::from_secs(4));
        assert_eq!(s.meetings.vertical, Vertical::Gen);
        assert!(s.meetings.short_urls);
        assert!(!s.meetings.host_login);
        assert_eq!(s.replies.mode(), ReplyMode::Response);
        assert_eq!(s.delivery.retry_schedule.len(), 7);
        assert_eq!(s.meetings.max_new_per_hour, 5);
        assert_eq!(s.data.retention, Duration::from_secs(30 * 86_400));
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
        assert!(s.http.trusted_proxies.is_empty());
        let s =
            Settings::from_vars(&vars(&[("TRUSTED_PROXIES", "10.0.0.5, 172.28.0.0/16")])).unwrap();
        assert!(s
            .http
            .trusted_proxies
            .contains("172.28.3.4".parse().unwrap()));
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
            s.webex.token.as_ref().unwrap().expose_secret(),
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
        let FileParts { vars, desks, .. } = read_file(&path).unwrap();
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
        let FileParts { vars, desks, .. } = read_file(&path).unwrap();
        assert!(desks.is_empty());
        let s = Settings::from_vars(&vars).unwrap();
        assert_eq!(s.meetings.link_ttl, Duration::from_secs(7200));
        assert!(!s.meetings.short_urls);
        assert_eq!(s.connect.sms_sender.as_deref(), Some("56263"));

        std::fs::write(&path, "lsten = \"0.0.0.0:80\"\n").unwrap();
        let Err(err) = read_file(&path) else {
            panic!("an unknown key is refused")
        };
        assert!(err.to_string().contains("unknown key `lsten`"), "{err}");
    }

    #[test]
    fn event_subscriptions_are_read_and_bad_ones_refused_naming_entry_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("icbridge.toml");
        let secret = crate::domain::events::WebhookSecret::generate();
        std::fs::write(
            &path,
            format!(
                "[[event_subscription]]\nname = \"crm\"\nurl = \"https://crm.example/hooks\"\n\
                 secret = \"{secret}\"\nevents = [\"conversation.*\", \"rating.received\"]\n\
                 desks = [\"default\"]\ninclude = {{ texts = true }}\n"
            ),
        )
        .unwrap();
        let settings = Settings::load(Some(&path)).unwrap();
        let [crm] = &settings.events.subscriptions[..] else {
            panic!("one subscription")
        };
        assert_eq!(crm.name, "crm");
        assert!(crm.include.texts && !crm.include.customer_number);
        assert_eq!(crm.events.len(), 2);
        assert!(!format!("{settings:?}").contains(&secret[6..]));

        for (entry, expected) in [
            ("url = \"ftp://x\"\nsecret = \"SECRET\"", "`url`"),
            (
                "url = \"https://x\"\nsecret = \"nope\"",
                "`secret` must start with whsec_",
            ),
            (
                "url = \"https://x\"\nsecret = \"SECRET\"\nevents = [\"meeting.made\"]",
                "`events`",
            ),
            (
                "url = \"https://x\"\nsecret_env = \"ICB_TEST_NO_SUCH_VARIABLE\"",
                "`secret_env`",
            ),
        ] {
            std::fs::write(
                &path,
                format!(
                    "[[event_subscription]]\nname = \"crm\"\n{}\n",
                    entry.replace("SECRET", &secret)
                ),
            )
            .unwrap();
            let err = Settings::load(Some(&path)).unwrap_err().to_string();
            assert!(
                err.contains("[[event_subscription]] \"crm\"") && err.contains(expected),
                "{err}"
            );
        }
        std::fs::write(
            &path,
            "[[event_subscription]]\nname = \"crm\"\nurl = \"https://x\"\nsecrett = \"x\"\n",
        )
        .unwrap();
        let err = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("unknown field `secrett`"), "{err}");
    }
}
