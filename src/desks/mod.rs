//! Desks: groups of experts, each with its own space in Webex, serving some business
//! addresses (SMS numbers, WhatsApp app ids) or first messages with some words. A
//! conversation belongs to one desk, chosen when it opens.
//!
//! Configured in the TOML file as `[[desk]]` entries; without any, today's `ICB_EXPERT_*`
//! variables make the one, default desk.

pub mod expert_texts;
pub mod hours;

pub use hours::{AfterHours, OutOfHours};

use std::collections::HashMap;

use serde::Deserialize;

use crate::customers::opt_out::{Keyword, OptOutConfig, OptOutPolicy, OptOutTextsConfig};
use crate::customers::survey::{SurveyTexts, SurveyTextsConfig};
use crate::desks::hours::{HoursConfig, OutOfHoursPolicy};
use crate::domain::ExpertTarget;
use crate::domain::{BusinessAddress, Channel, Destination, ReplyTemplate, ReplyTexts};

/// No opt-out keyword is longer (checked at start-up).
const MAX_KEYWORD_BYTES: usize = 64;

/// The name of the desk `ICB_EXPERT_*` make.
pub const DEFAULT_DESK: &str = "default";

/// A `[[desk]]` entry as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeskConfig {
    pub name: String,
    pub room_id: Option<String>,
    pub room_title: Option<String>,
    pub email: Option<String>,
    /// SMS numbers and short codes, WhatsApp app ids: conversations to these go here.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Words of a first message (case-insensitive, whole words) that bring it here.
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub default: bool,
    /// The IANA time zone of `hours` and `closed` (default UTC).
    pub timezone: Option<String>,
    /// When the desk is open, like `mon-fri 08:00-18:00`; none: always.
    #[serde(default)]
    pub hours: Vec<String>,
    /// Dates it is closed all day, like `2026-12-25`.
    #[serde(default)]
    pub closed: Vec<String>,
    /// What a message that needs a meeting gets out of hours: `queue` (the default: no
    /// meeting, the conversation waits for the opening) or `meeting` (made at once).
    pub after_hours: Option<String>,
    /// `[desk.opt_out]`: the STOP, START and HELP words, and whether WhatsApp has them.
    #[serde(default)]
    pub opt_out: OptOutConfig,
    /// The desk's own wording of customer texts (`[desk.texts]`).
    #[serde(default)]
    pub texts: DeskTexts,
}

/// `[desk.texts]`: templates with `{{ guest_url }}`, `{{ customer_name }}`, `{{ desk }}`
/// and, out of hours, `{{ opens_at }}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeskTexts {
    /// The text with the guest link (else `ICB_REPLY_TEMPLATE`).
    pub reply: Option<String>,
    /// Out of hours.
    pub after_hours: Option<String>,
    /// On a `closed` date (else `after_hours`).
    pub closed: Option<String>,
    /// The answer to STOP (and its synonyms).
    pub opted_out: Option<String>,
    /// The answer to START.
    pub opted_in: Option<String>,
    /// The answer to HELP.
    pub help: Option<String>,
    /// The survey's question by SMS, after a close (`ICB_SURVEY`): asks for 1 to 5.
    pub survey_question: Option<String>,
    /// The survey's question on WhatsApp, above its buttons.
    pub survey_whatsapp_question: Option<String>,
    /// The thanks for a rating.
    pub survey_thanks: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("desk {desk:?}: `{key}` {reason}")]
pub struct DeskError {
    pub desk: String,
    pub key: &'static str,
    pub reason: String,
}

fn error(desk: &str, key: &'static str, reason: impl Into<String>) -> DeskError {
    DeskError {
        desk: desk.to_string(),
        key,
        reason: reason.into(),
    }
}

/// One validated desk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpertDesk {
    pub name: String,
    pub target: ExpertTarget,
    addresses: Vec<String>,
    keywords: Vec<String>,
    /// The desk's reply text, if it words it its own way.
    reply: Option<ReplyTemplate>,
    out_of_hours: OutOfHoursPolicy,
    opt_out: OptOutPolicy,
    survey: SurveyTexts,
}

impl ExpertDesk {
    fn new(name: &str, target: ExpertTarget) -> Self {
        Self {
            name: name.to_string(),
            target,
            addresses: Vec::new(),
            keywords: Vec::new(),
            reply: None,
            out_of_hours: OutOfHoursPolicy::always_open(),
            opt_out: OptOutPolicy::default(),
            survey: SurveyTexts::default(),
        }
    }

    /// The desk's wording of the survey.
    pub fn survey(&self) -> &SurveyTexts {
        &self.survey
    }

    /// The opt-out keyword a message on `channel` is, at this desk, if it is one.
    pub fn keyword(&self, channel: Channel, text: &str) -> Option<Keyword> {
        self.opt_out.keyword(channel, text)
    }

    /// The desk's answer to an opt-out keyword.
    pub fn keyword_answer(&self, keyword: Keyword, customer_name: Option<&str>) -> String {
        self.opt_out.answer(keyword, &self.name, customer_name)
    }

    /// Whether the desk keeps hours at all.
    pub fn keeps_hours(&self) -> bool {
        !self.out_of_hours.hours.is_always_open()
    }

    /// An instant in the desk's time zone, for customers: `Mon 30 Mar 08:00 (Europe/Berlin)`.
    pub fn local_time(&self, at: i64) -> String {
        self.out_of_hours.hours.local_time(at)
    }

    pub fn is_open(&self, now: i64) -> bool {
        self.out_of_hours.hours.is_open(now)
    }

    /// For people checking the setup: `open now`, or when it opens; `None` without hours.
    pub fn hours_now(&self, now: i64) -> Option<String> {
        if !self.keeps_hours() {
            return None;
        }
        Some(match self.out_of_hours(now) {
            None => "open now".to_string(),
            Some(closed) => format!("closed now, opens {}", closed.opens_at_text),
        })
    }

    /// `None` while the desk is open at `now` (Unix ms); else what it does and says.
    pub fn out_of_hours(&self, now: i64) -> Option<OutOfHours> {
        self.out_of_hours.at(now)
    }
}

impl ExpertDesk {
    /// One `[[desk]]` entry, checked against the desks before it (`earlier`) and the
    /// addresses they serve (`served`, to which this desk's are added).
    fn configure(
        config: &DeskConfig,
        earlier: &[ExpertDesk],
        served: &mut HashMap<String, String>,
    ) -> Result<Self, DeskError> {
        let name = config.name.trim();
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        if !valid_name {
            return Err(error(
                name,
                "name",
                "must be letters, digits, `-` and `_` (experts type it: `transfer <name>`)",
            ));
        }
        if earlier.iter().any(|d| d.name.eq_ignore_ascii_case(name)) {
            return Err(error(name, "name", "is used by two desks"));
        }
        let target = target_of(name, config)?;
        let addresses = addresses_of(name, config, served)?;
        let keywords = config
            .keywords
            .iter()
            .map(|k| k.trim().to_lowercase())
            .filter(|k| !k.is_empty())
            .collect();
        let reply = match &config.texts.reply {
            Some(raw) => Some(
                ReplyTemplate::parse(raw).map_err(|e| error(name, "texts.reply", e.to_string()))?,
            ),
            None => None,
        };
        let out_of_hours = OutOfHoursPolicy::configure(&HoursConfig {
            timezone: config.timezone.as_deref(),
            hours: &config.hours,
            closed: &config.closed,
            after_hours: config.after_hours.as_deref(),
            after_hours_text: config.texts.after_hours.as_deref(),
            closed_text: config.texts.closed.as_deref(),
        })
        .map_err(|(key, reason)| error(name, key, reason))?;
        let opt_out = OptOutPolicy::configure(
            &config.opt_out,
            &OptOutTextsConfig {
                opted_out: config.texts.opted_out.as_deref(),
                opted_in: config.texts.opted_in.as_deref(),
                help: config.texts.help.as_deref(),
            },
        )
        .map_err(|(key, reason)| error(name, key, reason))?;
        let survey = SurveyTexts::configure(&SurveyTextsConfig {
            question: config.texts.survey_question.as_deref(),
            whatsapp_question: config.texts.survey_whatsapp_question.as_deref(),
            thanks: config.texts.survey_thanks.as_deref(),
        })
        .map_err(|(key, reason)| error(name, key, reason))?;
        Ok(ExpertDesk {
            addresses,
            keywords,
            reply,
            out_of_hours,
            opt_out,
            survey,
            ..ExpertDesk::new(name, target)
        })
    }
}

/// Where a desk's experts are: exactly one of `room_id`, `room_title` and `email`.
fn target_of(name: &str, config: &DeskConfig) -> Result<ExpertTarget, DeskError> {
    let targets = [
        config.room_id.clone().map(ExpertTarget::RoomId),
        config.room_title.clone().map(ExpertTarget::RoomTitle),
        config.email.clone().map(ExpertTarget::Email),
    ];
    let mut targets = targets.into_iter().flatten();
    let target = targets.next().ok_or_else(|| {
        error(
            name,
            "room_id",
            "is missing: give `room_id`, `room_title` or `email`",
        )
    })?;
    if targets.next().is_some() {
        return Err(error(
            name,
            "room_id",
            "and `room_title`/`email`: give only one of them",
        ));
    }
    Ok(target)
}

/// A desk's addresses, comparable, none empty and none served by an earlier desk
/// (`served`, to which they are added).
fn addresses_of(
    name: &str,
    config: &DeskConfig,
    served: &mut HashMap<String, String>,
) -> Result<Vec<String>, DeskError> {
    let mut addresses = Vec::new();
    for raw in &config.addresses {
        let address = comparable(raw);
        if address.is_empty() {
            return Err(error(name, "addresses", "holds an empty address"));
        }
        if let Some(other) = served.insert(address.clone(), name.to_string()) {
            return Err(error(
                name,
                "addresses",
                format!("{raw:?} is served by desk {other:?} too"),
            ));
        }
        addresses.push(address);
    }
    Ok(addresses)
}

/// Which desk is the default: the one that says `default = true`, or the one `ICB_EXPERT_*`
/// make (added to `desks`), never both and never none.
fn default_desk(
    desks: &mut Vec<ExpertDesk>,
    marked: Option<usize>,
    expert_target: Option<&ExpertTarget>,
) -> Result<usize, DeskError> {
    match (marked, expert_target) {
        (Some(_), Some(_)) => Err(error(
            DEFAULT_DESK,
            "default",
            "is set on a desk and by ICB_EXPERT_* too: keep one of them",
        )),
        (Some(index), None) => Ok(index),
        (None, Some(target)) => {
            if desks.iter().any(|d| d.name == DEFAULT_DESK) {
                return Err(error(
                    DEFAULT_DESK,
                    "name",
                    "is the name of the desk ICB_EXPERT_* make: choose another",
                ));
            }
            desks.push(ExpertDesk::new(DEFAULT_DESK, target.clone()));
            Ok(desks.len() - 1)
        }
        (None, None) if desks.is_empty() => Err(error(
            DEFAULT_DESK,
            "room_id",
            "is missing: set ICB_EXPERT_ROOM_ID, ICB_EXPERT_EMAIL or ICB_EXPERT_ROOM_TITLE, \
             or [[desk]] entries",
        )),
        (None, None) => Err(error(
            &desks[0].name,
            "default",
            "is set on no desk: exactly one desk has `default = true`",
        )),
    }
}

/// The desks, validated: names unique, one target each, no address served twice, exactly
/// one default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desks {
    desks: Vec<ExpertDesk>,
    default: usize,
}

impl Desks {
    /// The configured desks; `expert_target` (`ICB_EXPERT_*`) is the default desk unless
    /// one of them says `default = true`.
    pub fn configure(
        configs: &[DeskConfig],
        expert_target: Option<&ExpertTarget>,
    ) -> Result<Self, DeskError> {
        let mut desks = Vec::new();
        let mut default = None;
        // Each address to the desk that serves it: no address is served twice.
        let mut served: HashMap<String, String> = HashMap::new();
        for config in configs {
            let desk = ExpertDesk::configure(config, &desks, &mut served)?;
            if config.default {
                if default.is_some() {
                    return Err(error(&desk.name, "default", "is set on two desks"));
                }
                default = Some(desks.len());
            }
            desks.push(desk);
        }
        let default = default_desk(&mut desks, default, expert_target)?;
        Ok(Self { desks, default })
    }

    /// The desks as configured, or, for the CLI's verbs (which never open a conversation)
    /// on a machine without expert settings, one placeholder default desk. `serve`
    /// validates them with [`Desks::configure`] before anything else.
    pub fn for_cli(configs: &[DeskConfig], expert_target: Option<&ExpertTarget>) -> Self {
        Self::configure(configs, expert_target).unwrap_or_else(|_| Self {
            desks: vec![ExpertDesk::new(
                DEFAULT_DESK,
                ExpertTarget::RoomId(String::new()),
            )],
            default: 0,
        })
    }

    /// The desks' wordings of the reply, `default` for those without their own.
    pub fn reply_texts(&self, default: ReplyTemplate) -> ReplyTexts {
        ReplyTexts::new(
            default,
            self.desks
                .iter()
                .filter_map(|d| Some((d.name.clone(), d.reply.clone()?)))
                .collect(),
            self.default_desk().name.clone(),
        )
    }

    pub fn all(&self) -> &[ExpertDesk] {
        &self.desks
    }

    pub fn default_desk(&self) -> &ExpertDesk {
        &self.desks[self.default]
    }

    /// Whether a message on `channel` is an opt-out keyword at any desk (else no message
    /// needs its desk looked up for one).
    pub fn is_keyword_anywhere(&self, channel: Channel, text: &str) -> bool {
        // Keywords are single, short words: most messages are ruled out at once.
        let text = text.trim();
        text.len() <= MAX_KEYWORD_BYTES
            && self
                .desks
                .iter()
                .any(|d| d.keyword(channel, text).is_some())
    }

    /// The desk a conversation of `desk` belongs to (`None`, or a desk no longer
    /// configured: the default).
    pub fn of(&self, desk: Option<&str>) -> &ExpertDesk {
        desk.and_then(|name| self.desks.iter().find(|d| d.name == name))
            .unwrap_or_else(|| self.default_desk())
    }

    pub fn find(&self, name: &str) -> Option<&ExpertDesk> {
        self.desks
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(name.trim()))
    }

    /// The desk a new conversation belongs to: the one serving its business address, else
    /// the first whose keyword is a word of the first message, else the default.
    pub fn route(&self, business: &BusinessAddress, first_message: &str) -> &ExpertDesk {
        let address = comparable(business.as_str());
        if let Some(desk) = self.desks.iter().find(|d| d.addresses.contains(&address)) {
            return desk;
        }
        let words: Vec<String> = first_message
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        self.desks
            .iter()
            .find(|d| d.keywords.iter().any(|k| words.contains(k)))
            .unwrap_or_else(|| self.default_desk())
    }
}

/// An address as desks compare it: `+1 (415) 555-0100` and `14155550100` are the same.
fn comparable(raw: &str) -> String {
    raw.chars()
        .filter(|c| !matches!(c, ' ' | '+' | '-' | '(' | ')' | '.'))
        .collect::<String>()
        .to_lowercase()
}

/// Where each desk's experts are, resolved at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskPlaces {
    places: HashMap<String, Destination>,
    default: String,
}

impl DeskPlaces {
    pub fn new(places: HashMap<String, Destination>, default: String) -> Self {
        Self { places, default }
    }

    /// Where a conversation of `desk` is (the default desk's place for conversations
    /// opened before desks, or of a desk no longer configured).
    pub fn of(&self, desk: Option<&str>) -> &Destination {
        desk.and_then(|name| self.places.get(name))
            .unwrap_or_else(|| &self.places[&self.default])
    }

    pub fn all(&self) -> impl Iterator<Item = &Destination> {
        self.places.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desk(name: &str) -> DeskConfig {
        DeskConfig {
            name: name.into(),
            room_id: Some(format!("room-{name}")),
            ..DeskConfig::default()
        }
    }

    fn two_desks() -> Desks {
        let mut pediatrics = desk("pediatrics");
        pediatrics.addresses = vec!["+1 415 555 0100".into(), "a_kids".into()];
        pediatrics.keywords = vec!["Child".into(), "baby".into()];
        let mut general = desk("general");
        general.default = true;
        Desks::configure(&[pediatrics, general], None).unwrap()
    }

    fn route(desks: &Desks, business: &str, text: &str) -> String {
        desks
            .route(&BusinessAddress::parse(business).unwrap(), text)
            .name
            .clone()
    }

    #[test]
    fn conversations_go_by_address_then_keyword_then_to_the_default() {
        let desks = two_desks();
        assert_eq!(route(&desks, "14155550100", "hello"), "pediatrics");
        assert_eq!(route(&desks, "a_kids", "hello"), "pediatrics");
        assert_eq!(route(&desks, "56263", "My CHILD has a rash"), "pediatrics");
        assert_eq!(route(&desks, "56263", "childhood memories"), "general");
        assert_eq!(route(&desks, "56263", "hello"), "general");
    }

    #[test]
    fn the_expert_variables_make_the_default_desk() {
        let target = ExpertTarget::RoomId("room".into());
        let desks = Desks::configure(&[desk("mortgages")], Some(&target)).unwrap();
        assert_eq!(desks.default_desk().name, DEFAULT_DESK);
        assert_eq!(desks.default_desk().target, target);
        let alone = Desks::configure(&[], Some(&target)).unwrap();
        assert_eq!(alone.all().len(), 1);
    }

    #[test]
    fn a_desk_words_its_reply_its_own_way() {
        let mut pediatrics = desk("pediatrics");
        pediatrics.texts.reply = Some("Hi {{ customer_name }}, {{ desk }}: {{ guest_url }}".into());
        let target = ExpertTarget::RoomId("room".into());
        let desks = Desks::configure(&[pediatrics], Some(&target)).unwrap();
        let texts = desks.reply_texts(ReplyTemplate::parse("Join: {guest_url}").unwrap());
        assert_eq!(
            texts.render(Some("pediatrics"), "L", None),
            "Hi there, pediatrics: L"
        );
        assert_eq!(texts.render(None, "L", Some("Ann")), "Join: L");
        let mut bad = desk("bad");
        bad.texts.reply = Some("Hi {{ phone }} {{ guest_url }}".into());
        let error = Desks::configure(&[bad], Some(&target)).unwrap_err();
        assert_eq!(error.key, "texts.reply");
        assert!(error.reason.contains("phone"), "{error}");
    }

    #[test]
    fn bad_desks_are_named_with_their_key() {
        let target = ExpertTarget::RoomId("room".into());
        let mut one = desk("one");
        one.default = true;
        let mut two = desk("two");
        two.default = true;
        assert_eq!(
            Desks::configure(&[one.clone(), two], None)
                .unwrap_err()
                .to_string(),
            "desk \"two\": `default` is set on two desks"
        );
        assert_eq!(
            Desks::configure(&[one.clone()], Some(&target))
                .unwrap_err()
                .key,
            "default"
        );
        let mut a = desk("a");
        a.addresses = vec!["+1 415 555 0100".into()];
        let mut b = desk("b");
        b.addresses = vec!["14155550100".into()];
        assert_eq!(
            Desks::configure(&[a, b], Some(&target))
                .unwrap_err()
                .to_string(),
            "desk \"b\": `addresses` \"14155550100\" is served by desk \"a\" too"
        );
        let mut no_target = desk("x");
        no_target.room_id = None;
        assert_eq!(
            Desks::configure(&[no_target], Some(&target))
                .unwrap_err()
                .key,
            "room_id"
        );
        assert_eq!(
            Desks::configure(&[desk("same"), desk("Same")], Some(&target))
                .unwrap_err()
                .key,
            "name"
        );
        assert_eq!(
            Desks::configure(&[desk("two words")], Some(&target))
                .unwrap_err()
                .key,
            "name"
        );
        assert_eq!(
            Desks::configure(&[desk("a")], None).unwrap_err().key,
            "default"
        );
    }

    fn berlin_desk() -> DeskConfig {
        let mut clinic = desk("clinic");
        clinic.default = true;
        clinic.timezone = Some("Europe/Berlin".into());
        clinic.hours = vec!["mon-fri 08:00-18:00".into()];
        clinic.closed = vec!["2026-12-25".into()];
        clinic
    }

    fn at(rfc3339: &str) -> i64 {
        crate::domain::clock::parse_rfc3339(rfc3339).unwrap()
    }

    #[test]
    fn out_of_hours_a_desk_says_when_it_opens_and_words_closed_dates_apart() {
        let mut clinic = berlin_desk();
        clinic.texts.closed = Some("Merry Christmas! {{ desk }} opens {{ opens_at }}.".into());
        let desks = Desks::configure(&[clinic], None).unwrap();
        let clinic = desks.default_desk();
        assert!(clinic.keeps_hours());
        // Tuesday 1 December 2026, 10:00 in Berlin: open.
        assert_eq!(clinic.out_of_hours(at("2026-12-01T09:00:00Z")), None);
        // 20:00: closed, open again Wednesday at 08:00.
        let evening = clinic.out_of_hours(at("2026-12-01T19:00:00Z")).unwrap();
        assert_eq!(evening.after_hours, AfterHours::Queue);
        assert_eq!(evening.opens_at, Some(at("2026-12-02T07:00:00Z")));
        assert_eq!(
            evening.text("clinic", None, ""),
            "Thank you for your message. We are closed now and open again Wed 2 Dec 08:00 \
             (Europe/Berlin); we will send you a link to a video consultation then."
        );
        // Christmas Day, a Friday, at 10:00: the closed-date text.
        let christmas = clinic.out_of_hours(at("2026-12-25T09:00:00Z")).unwrap();
        assert_eq!(
            christmas.text("clinic", None, ""),
            "Merry Christmas! clinic opens Mon 28 Dec 08:00 (Europe/Berlin)."
        );
        // A desk without hours is always open.
        let always =
            Desks::configure(&[desk("x")], Some(&ExpertTarget::RoomId("r".into()))).unwrap();
        assert!(!always.default_desk().keeps_hours());
    }

    #[test]
    fn hours_settings_are_checked_naming_the_desk_and_key() {
        let check = |change: &dyn Fn(&mut DeskConfig)| {
            let mut clinic = berlin_desk();
            change(&mut clinic);
            Desks::configure(&[clinic], None).unwrap_err()
        };
        let error = check(&|d| d.timezone = Some("Europe/Berlinn".into()));
        assert_eq!((error.desk.as_str(), error.key), ("clinic", "timezone"));
        assert_eq!(
            check(&|d| d.hours = vec!["weekdays 8-18".into()]).key,
            "hours"
        );
        assert_eq!(
            check(&|d| d.closed = vec!["25/12/2026".into()]).key,
            "closed"
        );
        let error = check(&|d| d.after_hours = Some("later".into()));
        assert_eq!(
            error.to_string(),
            "desk \"clinic\": `after_hours` must be \"queue\" or \"meeting\""
        );
        // Waiting conversations have no link yet; a desk that meets after hours sends one.
        let error = check(&|d| d.texts.after_hours = Some("Join {{ guest_url }}".into()));
        assert_eq!(error.key, "texts.after_hours");
        assert!(error.reason.contains("guest_url"), "{error}");
        let error = check(&|d| {
            d.after_hours = Some("meeting".into());
            d.texts.closed = Some("We open {{ opens_at }}.".into());
        });
        assert_eq!(error.key, "texts.closed");
        assert!(
            error.reason.contains("after_hours = \"meeting\""),
            "{error}"
        );
        let error = check(&|d| d.texts.after_hours = Some("{{ opens_at }} {{ phone }}".into()));
        assert!(error.reason.contains("phone"), "{error}");
        let error = check(&|d| d.texts.after_hours = Some("x".repeat(4001)));
        assert!(
            error.reason.contains("an SMS can carry at most 4000"),
            "{error}"
        );
    }
}
