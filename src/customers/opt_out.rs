//! Opting out: a customer who texts STOP (or one of its synonyms) gets nothing more from
//! icbridge until they text START; HELP gets the help text. Carriers require this of SMS;
//! a desk can switch it on for WhatsApp too. The words and the texts are the desk's.

use serde::Deserialize;

use super::texts::{HELP, OPTED_IN, OPTED_OUT};
use crate::domain::{Channel, ReplyTemplate, TextKind, TextValues};

/// The words of a whole message (trimmed, any case) that opt out, by default.
pub const STOP_WORDS: [&str; 6] = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
pub const START_WORDS: [&str; 2] = ["START", "UNSTOP"];
pub const HELP_WORDS: [&str; 2] = ["HELP", "INFO"];

/// `[desk.opt_out]` as written: the words (else the defaults above), and whether WhatsApp
/// messages count too (SMS always do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptOutConfig {
    pub stop: Option<Vec<String>>,
    pub start: Option<Vec<String>>,
    pub help: Option<Vec<String>>,
    #[serde(default)]
    pub whatsapp: bool,
}

/// `[desk.texts]` keys for the answers; each a template with `{{ customer_name }}` and
/// `{{ desk }}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptOutTextsConfig<'a> {
    pub opted_out: Option<&'a str>,
    pub opted_in: Option<&'a str>,
    pub help: Option<&'a str>,
}

/// What a customer's message asks, when it is one of the words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    Stop,
    Start,
    Help,
}

/// A desk's opt-out words and answers, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutPolicy {
    stop: Vec<String>,
    start: Vec<String>,
    help: Vec<String>,
    whatsapp: bool,
    opted_out: ReplyTemplate,
    opted_in: ReplyTemplate,
    help_text: ReplyTemplate,
}

/// A setting that cannot be used: its key and why.
pub type OptOutError = (&'static str, String);

impl Default for OptOutPolicy {
    fn default() -> Self {
        Self::configure(&OptOutConfig::default(), &OptOutTextsConfig::default())
            .expect("the defaults are valid")
    }
}

impl OptOutPolicy {
    pub fn configure(
        config: &OptOutConfig,
        texts: &OptOutTextsConfig<'_>,
    ) -> Result<Self, OptOutError> {
        let words = |key: &'static str, given: &Option<Vec<String>>, default: &[&str]| {
            let words: Vec<String> = match given {
                Some(given) => given.iter().map(|w| w.trim().to_uppercase()).collect(),
                None => default.iter().map(|w| w.to_string()).collect(),
            };
            if words
                .iter()
                .any(|w| w.is_empty() || w.len() > 64 || w.contains(char::is_whitespace))
            {
                return Err((
                    key,
                    "holds an empty word, a long one or one with spaces".to_string(),
                ));
            }
            Ok(words)
        };
        let stop = words("opt_out.stop", &config.stop, &STOP_WORDS)?;
        let start = words("opt_out.start", &config.start, &START_WORDS)?;
        let help = words("opt_out.help", &config.help, &HELP_WORDS)?;
        if stop.is_empty() {
            return Err(("opt_out.stop", "is empty: carriers require STOP".into()));
        }
        for (key, list) in [("opt_out.start", &start), ("opt_out.help", &help)] {
            if let Some(word) = list.iter().find(|w| stop.contains(w)) {
                return Err((key, format!("{word:?} is a stop word too")));
            }
        }
        if let Some(word) = help.iter().find(|w| start.contains(w)) {
            return Err(("opt_out.help", format!("{word:?} is a start word too")));
        }
        let text = |key: &'static str, given: Option<&str>, default: &str| {
            ReplyTemplate::parse_as(given.unwrap_or(default), TextKind::Notice)
                .map_err(|e| (key, e.to_string()))
        };
        Ok(Self {
            stop,
            start,
            help,
            whatsapp: config.whatsapp,
            opted_out: text("texts.opted_out", texts.opted_out, OPTED_OUT)?,
            opted_in: text("texts.opted_in", texts.opted_in, OPTED_IN)?,
            help_text: text("texts.help", texts.help, HELP)?,
        })
    }

    /// The keyword a message on `channel` is, if it is one.
    pub fn keyword(&self, channel: Channel, text: &str) -> Option<Keyword> {
        if channel == Channel::Whatsapp && !self.whatsapp {
            return None;
        }
        let word = text.trim().to_uppercase();
        if self.stop.contains(&word) {
            Some(Keyword::Stop)
        } else if self.start.contains(&word) {
            Some(Keyword::Start)
        } else if self.help.contains(&word) {
            Some(Keyword::Help)
        } else {
            None
        }
    }

    /// The answer to `keyword`.
    pub fn answer(&self, keyword: Keyword, desk: &str, customer_name: Option<&str>) -> String {
        let template = match keyword {
            Keyword::Stop => &self.opted_out,
            Keyword::Start => &self.opted_in,
            Keyword::Help => &self.help_text,
        };
        template.render(TextValues::notice(desk, customer_name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_messages_in_any_case_are_keywords_on_sms_and_where_switched_on_whatsapp() {
        let policy = OptOutPolicy::default();
        for (text, keyword) in [
            (" stop ", Some(Keyword::Stop)),
            ("StopAll", Some(Keyword::Stop)),
            ("Unsubscribe", Some(Keyword::Stop)),
            ("cancel", Some(Keyword::Stop)),
            ("END", Some(Keyword::Stop)),
            ("QUIT", Some(Keyword::Stop)),
            ("start", Some(Keyword::Start)),
            ("unstop", Some(Keyword::Start)),
            ("help\n", Some(Keyword::Help)),
            ("Info", Some(Keyword::Help)),
            ("please stop", None),
            ("stopped", None),
        ] {
            assert_eq!(policy.keyword(Channel::Sms, text), keyword, "{text}");
        }
        assert_eq!(policy.keyword(Channel::Whatsapp, "STOP"), None);
        let whatsapp = OptOutPolicy::configure(
            &OptOutConfig {
                whatsapp: true,
                ..OptOutConfig::default()
            },
            &OptOutTextsConfig::default(),
        )
        .unwrap();
        assert_eq!(
            whatsapp.keyword(Channel::Whatsapp, "stop"),
            Some(Keyword::Stop)
        );
    }

    #[test]
    fn a_desk_chooses_its_words_and_texts() {
        let policy = OptOutPolicy::configure(
            &OptOutConfig {
                stop: Some(vec!["arret".into(), "stop".into()]),
                ..OptOutConfig::default()
            },
            &OptOutTextsConfig {
                opted_out: Some("{{ desk }}: c'est noté, {{ customer_name }}."),
                ..OptOutTextsConfig::default()
            },
        )
        .unwrap();
        assert_eq!(policy.keyword(Channel::Sms, "Arret"), Some(Keyword::Stop));
        assert_eq!(policy.keyword(Channel::Sms, "cancel"), None);
        assert_eq!(
            policy.answer(Keyword::Stop, "clinic", Some("Ann")),
            "clinic: c'est noté, Ann."
        );
        assert_eq!(
            policy.answer(Keyword::Start, "clinic", None),
            "You will get our messages again. Reply STOP to stop them, HELP for help."
        );
    }

    #[test]
    fn bad_words_and_texts_name_their_key() {
        let with = |config: OptOutConfig| {
            OptOutPolicy::configure(&config, &OptOutTextsConfig::default())
                .unwrap_err()
                .0
        };
        assert_eq!(
            with(OptOutConfig {
                stop: Some(vec![]),
                ..OptOutConfig::default()
            }),
            "opt_out.stop"
        );
        assert_eq!(
            with(OptOutConfig {
                start: Some(vec!["stop".into()]),
                ..OptOutConfig::default()
            }),
            "opt_out.start"
        );
        assert_eq!(
            with(OptOutConfig {
                help: Some(vec!["two words".into()]),
                ..OptOutConfig::default()
            }),
            "opt_out.help"
        );
        let error = OptOutPolicy::configure(
            &OptOutConfig::default(),
            &OptOutTextsConfig {
                help: Some("Call {{ guest_url }}"),
                ..OptOutTextsConfig::default()
            },
        )
        .unwrap_err();
        assert_eq!(error.0, "texts.help");
    }
}
