//! The rating after the call (`ICB_SURVEY`): once a conversation is closed its customer is
//! asked one question, "Reply 1 to 5" by SMS, reply buttons on WhatsApp; an answer within
//! a day is their rating. The wording is the desk's (`[desk.texts]`); what counts as an
//! answer is the same everywhere.

use super::texts::{
    SURVEY_QUESTION as QUESTION, SURVEY_THANKS as THANKS,
    SURVEY_WHATSAPP_QUESTION as WHATSAPP_QUESTION,
};
use crate::domain::{Channel, ReplyButton, ReplyTemplate, TextKind, TextValues};

/// How long after the question an answer counts; later, a digit is a message like any other.
pub const ANSWER_WITHIN_MS: i64 = 24 * 3_600_000;

/// WhatsApp carries three buttons at most, not five: good, middling, poor, as the ratings
/// 5, 3 and 1. Titles are at most 20 characters. A tap comes back as a `reply` event naming
/// the button's id (`replyButtonIdentifier`) and title; the id decides.
const BUTTONS: [(&str, &str, i64); 3] = [
    ("rating-5", "Good", 5),
    ("rating-3", "OK", 3),
    ("rating-1", "Poor", 1),
];

/// The buttons of the WhatsApp question.
pub fn buttons() -> Vec<ReplyButton> {
    BUTTONS
        .iter()
        .map(|(id, title, _)| ReplyButton {
            id: id.to_string(),
            title: title.to_string(),
        })
        .collect()
}

/// The rating a message on `channel` gives, if it is an answer. A tapped button (`button`:
/// its identifier) answers by its identifier alone: one of the survey's buttons, also as a
/// template quick reply's payload, which Webex Connect may pass on base64-encoded; any other
/// button is no answer, whatever its title. A typed text answers with a digit from 1 to 5
/// (any channel), or on WhatsApp a button's title or id (any case). Anything else, "7"
/// included, is a message like any other.
pub fn rating_of(channel: Channel, text: &str, button: Option<&str>) -> Option<i64> {
    if let Some(button) = button {
        return BUTTONS
            .iter()
            .find(|(id, _, _)| *id == button || decoded(button).as_deref() == Some(*id))
            .map(|(_, _, rating)| *rating);
    }
    let text = text.trim();
    if let Some(digit @ 1..=5) = text.parse::<i64>().ok().filter(|_| text.len() == 1) {
        return Some(digit);
    }
    if channel != Channel::Whatsapp {
        return None;
    }
    BUTTONS
        .iter()
        .find(|(id, title, _)| text.eq_ignore_ascii_case(title) || text.eq_ignore_ascii_case(id))
        .map(|(_, _, rating)| *rating)
}

/// A payload as base64 (with or without padding, either alphabet) decodes to, if it does.
fn decoded(payload: &str) -> Option<String> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    use base64::Engine;
    let trimmed = payload.trim_end_matches('=');
    let bytes = URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| STANDARD_NO_PAD.decode(trimmed))
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// `[desk.texts]` keys for the survey; each a template with `{{ customer_name }}` and
/// `{{ desk }}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SurveyTextsConfig<'a> {
    /// The SMS question: it should ask for a reply from 1 to 5.
    pub question: Option<&'a str>,
    /// The WhatsApp question, shown above the buttons (at most 1024 characters).
    pub whatsapp_question: Option<&'a str>,
    pub thanks: Option<&'a str>,
}

/// A desk's wording of the survey, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurveyTexts {
    question: ReplyTemplate,
    whatsapp_question: ReplyTemplate,
    thanks: ReplyTemplate,
}

/// A setting that cannot be used: its key and why.
pub type SurveyTextError = (&'static str, String);

/// WhatsApp's limit on the text above reply buttons.
const MAX_WHATSAPP_QUESTION_CHARS: usize = 1024;

impl Default for SurveyTexts {
    fn default() -> Self {
        Self::configure(&SurveyTextsConfig::default()).expect("the defaults are valid")
    }
}

impl SurveyTexts {
    pub fn configure(texts: &SurveyTextsConfig<'_>) -> Result<Self, SurveyTextError> {
        let text = |key: &'static str, given: Option<&str>, default: &str| {
            ReplyTemplate::parse_as(given.unwrap_or(default), TextKind::Notice)
                .map_err(|e| (key, e.to_string()))
        };
        if let Some(question) = texts.whatsapp_question {
            // A customer's name is short; the text itself must leave room for it.
            if question.chars().count() > MAX_WHATSAPP_QUESTION_CHARS - 100 {
                return Err((
                    "texts.survey_whatsapp_question",
                    format!(
                        "is longer than {} characters (WhatsApp takes {MAX_WHATSAPP_QUESTION_CHARS} above its buttons)",
                        MAX_WHATSAPP_QUESTION_CHARS - 100
                    ),
                ));
            }
        }
        Ok(Self {
            question: text("texts.survey_question", texts.question, QUESTION)?,
            whatsapp_question: text(
                "texts.survey_whatsapp_question",
                texts.whatsapp_question,
                WHATSAPP_QUESTION,
            )?,
            thanks: text("texts.survey_thanks", texts.thanks, THANKS)?,
        })
    }

    /// The question, on the customer's channel.
    pub fn question(&self, channel: Channel, desk: &str, customer_name: Option<&str>) -> String {
        let template = match channel {
            Channel::Sms => &self.question,
            Channel::Whatsapp => &self.whatsapp_question,
        };
        let text = template.render(TextValues::notice(desk, customer_name));
        match channel {
            Channel::Sms => text,
            Channel::Whatsapp => text.chars().take(MAX_WHATSAPP_QUESTION_CHARS).collect(),
        }
    }

    pub fn thanks(&self, desk: &str, customer_name: Option<&str>) -> String {
        self.thanks.render(TextValues::notice(desk, customer_name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_from_1_to_5_answer_on_both_channels_and_titles_on_whatsapp() {
        for (channel, text, rating) in [
            (Channel::Sms, "5", Some(5)),
            (Channel::Sms, " 1\n", Some(1)),
            (Channel::Sms, "7", None),
            (Channel::Sms, "0", None),
            (Channel::Sms, "55", None),
            (Channel::Sms, "+5", None),
            (Channel::Sms, "Good", None),
            (Channel::Whatsapp, "3", Some(3)),
            (Channel::Whatsapp, "good", Some(5)),
            (Channel::Whatsapp, " OK ", Some(3)),
            (Channel::Whatsapp, "Poor", Some(1)),
            (Channel::Whatsapp, "rating-3", Some(3)),
            (Channel::Whatsapp, "9", None),
            (Channel::Whatsapp, "Good morning", None),
        ] {
            assert_eq!(
                rating_of(channel, text, None),
                rating,
                "{channel:?} {text:?}"
            );
        }
    }

    #[test]
    fn a_tapped_button_answers_by_its_identifier() {
        assert_eq!(
            rating_of(Channel::Whatsapp, "Good", Some("rating-5")),
            Some(5)
        );
        // A quick reply's payload, base64-encoded as Webex Connect shows it.
        assert_eq!(
            rating_of(Channel::Whatsapp, "Yes", Some("cmF0aW5nLTU")),
            Some(5)
        );
        assert_eq!(
            rating_of(Channel::Whatsapp, "Yes", Some("cmF0aW5nLTM=")),
            Some(3)
        );
        // Another button titled like one of ours is no answer.
        assert_eq!(
            rating_of(Channel::Whatsapp, "Good", Some("menu-good")),
            None
        );
    }

    #[test]
    fn the_buttons_fit_whatsapps_limits() {
        let buttons = buttons();
        assert!(buttons.len() <= 3);
        assert!(buttons.iter().all(|b| b.title.chars().count() <= 20));
        for button in &buttons {
            assert!(rating_of(Channel::Whatsapp, &button.title, None).is_some());
            assert!(rating_of(Channel::Whatsapp, &button.title, Some(&button.id)).is_some());
        }
    }

    #[test]
    fn a_desk_words_the_survey() {
        let texts = SurveyTexts::configure(&SurveyTextsConfig {
            thanks: Some("Merci {{ customer_name }} !"),
            ..SurveyTextsConfig::default()
        })
        .unwrap();
        assert_eq!(texts.thanks("clinic", Some("Ann")), "Merci Ann !");
        assert_eq!(
            texts.question(Channel::Sms, "clinic", None),
            "How was your consultation? Reply 1 (poor) to 5 (excellent)."
        );
        let error = SurveyTexts::configure(&SurveyTextsConfig {
            question: Some("Rate {{ guest_url }}"),
            ..SurveyTextsConfig::default()
        })
        .unwrap_err();
        assert_eq!(error.0, "texts.survey_question");
    }
}
