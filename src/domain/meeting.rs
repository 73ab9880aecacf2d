use std::fmt;

use url::Url;

/// Instant Connect's UI template: general or healthcare ("start consultation").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vertical {
    Gen,
    Hc,
}

impl Vertical {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "gen" => Some(Vertical::Gen),
            "hc" => Some(Vertical::Hc),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Vertical::Gen => "gen",
            Vertical::Hc => "hc",
        }
    }
}

impl fmt::Display for Vertical {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two links of one Instant Connect meeting. The host link is for the expert only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingLinks {
    pub host_url: Url,
    pub guest_url: Url,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("must contain {{guest_url}}, where the customer's link goes")]
    MissingGuestUrl,
    #[error("renders to {0} characters with a long link; an SMS can carry at most {max}", max = ReplyTemplate::MAX_CHARS)]
    TooLong(usize),
}

/// The text sent to the customer, with `{guest_url}` where the link goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTemplate(String);

impl ReplyTemplate {
    pub const DEFAULT: &'static str = "Join your video consultation: {guest_url}";
    /// Webex Connect's SMS content limit.
    pub const MAX_CHARS: usize = 4000;
    /// Long-mode guest links are a JWE in the query string: about 700 characters in practice;
    /// leave room for larger ciphers.
    const LONGEST_LINK_CHARS: usize = 1200;

    pub fn parse(raw: &str) -> Result<Self, TemplateError> {
        if !raw.contains("{guest_url}") {
            return Err(TemplateError::MissingGuestUrl);
        }
        let template = Self(raw.to_string());
        let longest = template.render(&"x".repeat(Self::LONGEST_LINK_CHARS));
        let chars = longest.chars().count();
        if chars > Self::MAX_CHARS {
            return Err(TemplateError::TooLong(chars));
        }
        Ok(template)
    }

    pub fn render(&self, guest_url: &str) -> String {
        self.0.replace("{guest_url}", guest_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_needs_the_link_and_must_fit_an_sms() {
        assert_eq!(
            ReplyTemplate::parse("Hello").unwrap_err(),
            TemplateError::MissingGuestUrl
        );
        let long = format!("{} {{guest_url}}", "a".repeat(3000));
        assert!(matches!(
            ReplyTemplate::parse(&long),
            Err(TemplateError::TooLong(_))
        ));
        let template = ReplyTemplate::parse(ReplyTemplate::DEFAULT).unwrap();
        assert_eq!(
            template.render("https://instant.webex.com/visit/ckmNR7I"),
            "Join your video consultation: https://instant.webex.com/visit/ckmNR7I"
        );
    }
}
