//! Desks: groups of experts, each with its own space in Webex, serving some business
//! addresses (SMS numbers, WhatsApp app ids) or first messages with some words. A
//! conversation belongs to one desk, chosen when it opens.
//!
//! Configured in the TOML file as `[[desk]]` entries; without any, today's `ICB_EXPERT_*`
//! variables make the one, default desk.

use std::collections::HashMap;

use serde::Deserialize;

use crate::config::ExpertTarget;
use crate::domain::{BusinessAddress, Destination, ReplyTemplate, ReplyTexts};

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
    /// The desk's own wording of customer texts (`[desk.texts]`).
    #[serde(default)]
    pub texts: DeskTexts,
}

/// `[desk.texts]`: templates with `{{ guest_url }}`, `{{ customer_name }}`, `{{ desk }}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeskTexts {
    /// The text with the guest link (else `ICB_REPLY_TEMPLATE`).
    pub reply: Option<String>,
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
        let mut served: HashMap<String, String> = HashMap::new();
        for config in configs {
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
            if desks
                .iter()
                .any(|d: &ExpertDesk| d.name.eq_ignore_ascii_case(name))
            {
                return Err(error(name, "name", "is used by two desks"));
            }
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
            let keywords = config
                .keywords
                .iter()
                .map(|k| k.trim().to_lowercase())
                .filter(|k| !k.is_empty())
                .collect();
            let reply = match &config.texts.reply {
                Some(raw) => Some(
                    ReplyTemplate::parse(raw)
                        .map_err(|e| error(name, "texts.reply", e.to_string()))?,
                ),
                None => None,
            };
            if config.default {
                if default.is_some() {
                    return Err(error(name, "default", "is set on two desks"));
                }
                default = Some(desks.len());
            }
            desks.push(ExpertDesk {
                name: name.to_string(),
                target,
                addresses,
                keywords,
                reply,
            });
        }
        let default = match (default, expert_target) {
            (Some(_), Some(_)) => {
                return Err(error(
                    DEFAULT_DESK,
                    "default",
                    "is set on a desk and by ICB_EXPERT_* too: keep one of them",
                ))
            }
            (Some(index), None) => index,
            (None, Some(target)) => {
                if desks.iter().any(|d| d.name == DEFAULT_DESK) {
                    return Err(error(
                        DEFAULT_DESK,
                        "name",
                        "is the name of the desk ICB_EXPERT_* make: choose another",
                    ));
                }
                desks.push(ExpertDesk {
                    name: DEFAULT_DESK.to_string(),
                    target: target.clone(),
                    addresses: Vec::new(),
                    keywords: Vec::new(),
                    reply: None,
                });
                desks.len() - 1
            }
            (None, None) if desks.is_empty() => {
                return Err(error(
                    DEFAULT_DESK,
                    "room_id",
                    "is missing: set ICB_EXPERT_ROOM_ID, ICB_EXPERT_EMAIL or ICB_EXPERT_ROOM_TITLE, or [[desk]] entries",
                ))
            }
            (None, None) => {
                return Err(error(
                    &desks[0].name,
                    "default",
                    "is set on no desk: exactly one desk has `default = true`",
                ))
            }
        };
        Ok(Self { desks, default })
    }

    /// The desks as configured, or, for the CLI's verbs (which never open a conversation)
    /// on a machine without expert settings, one placeholder default desk. `serve`
    /// validates them with [`Desks::configure`] before anything else.
    pub fn for_cli(configs: &[DeskConfig], expert_target: Option<&ExpertTarget>) -> Self {
        Self::configure(configs, expert_target).unwrap_or_else(|_| Self {
            desks: vec![ExpertDesk {
                name: DEFAULT_DESK.to_string(),
                target: ExpertTarget::RoomId(String::new()),
                addresses: Vec::new(),
                keywords: Vec::new(),
                reply: None,
            }],
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
}
