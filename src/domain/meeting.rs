//! A meeting and its links (host and guest), and the templates of the customer texts
//! that carry a link (`ReplyTemplate`, `ReplyTexts`); their default wording is in
//! `crate::customers::texts`.

use std::fmt;

use url::Url;

use super::{ConversationKey, Redirect};

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

/// The links of one Instant Connect meeting: the first host and guest links, and any more
/// asked for. The host links are for experts only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeetingLinks {
    pub host_url: Url,
    pub guest_url: Url,
    /// More host links, then more guest links (`numHost`, `numGuest` above 1).
    pub more: Vec<(LinkRole, Url)>,
}

impl MeetingLinks {
    /// A meeting's links from all the broker gave, if there is one of each role.
    pub fn from_all(links: Vec<(LinkRole, Url)>) -> Option<Self> {
        let (hosts, guests): (Vec<_>, Vec<_>) = links
            .into_iter()
            .partition(|(role, _)| *role == LinkRole::Host);
        let mut hosts = hosts.into_iter();
        let mut guests = guests.into_iter();
        let (_, host_url) = hosts.next()?;
        let (_, guest_url) = guests.next()?;
        Some(MeetingLinks {
            host_url,
            guest_url,
            more: hosts.chain(guests).collect(),
        })
    }

    /// Every link with its role, the first host and guest links first.
    pub fn all(&self) -> impl Iterator<Item = (LinkRole, &Url)> {
        [
            (LinkRole::Host, &self.host_url),
            (LinkRole::Guest, &self.guest_url),
        ]
        .into_iter()
        .chain(self.more.iter().map(|(role, url)| (*role, url)))
    }
}

/// Who a meeting link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRole {
    Host,
    Guest,
}

impl LinkRole {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkRole::Host => "host",
            LinkRole::Guest => "guest",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("must contain {{{{ guest_url }}}} (or {{guest_url}}), where the customer's link goes")]
    MissingGuestUrl,
    #[error("renders to {0} characters with a long link and name; an SMS can carry at most {max}", max = ReplyTemplate::MAX_CHARS)]
    TooLong(usize),
    #[error("uses {{{{ {0} }}}}; the variables are {1}")]
    UnknownVariable(String, &'static str),
    #[error("is not a valid template: {0}")]
    Syntax(String),
}

/// What a customer text is rendered with.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextValues<'a> {
    pub guest_url: &'a str,
    /// "there" when the customer gave no name ("Hello there").
    pub customer_name: Option<&'a str>,
    pub desk: &'a str,
    /// When the desk opens next, in its time zone (out-of-hours texts only).
    pub opens_at: &'a str,
}

impl<'a> TextValues<'a> {
    /// The values of a text without a link ([`TextKind::Notice`]).
    pub fn notice(desk: &'a str, customer_name: Option<&'a str>) -> Self {
        TextValues {
            customer_name,
            desk,
            ..TextValues::default()
        }
    }
}

/// Which customer text a template words: it decides the variables it may use and whether
/// it must carry the guest link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// The text with the guest link.
    Reply,
    /// Out of hours, when the conversation waits for the desk to open: there is no link yet.
    OutOfHours,
    /// Out of hours, when the meeting is made at once: the text carries its link.
    OutOfHoursWithLink,
    /// A text without a link: the answers to STOP, START and HELP.
    Notice,
}

impl TextKind {
    fn variables(self) -> &'static [&'static str] {
        match self {
            TextKind::Reply => &["guest_url", "customer_name", "desk"],
            TextKind::OutOfHours => &["opens_at", "customer_name", "desk"],
            TextKind::OutOfHoursWithLink => &["guest_url", "opens_at", "customer_name", "desk"],
            TextKind::Notice => &["customer_name", "desk"],
        }
    }

    fn variables_listed(self) -> &'static str {
        match self {
            TextKind::Reply => "guest_url, customer_name and desk",
            TextKind::OutOfHours => {
                "opens_at, customer_name and desk (no link: the conversation waits)"
            }
            TextKind::OutOfHoursWithLink => "guest_url, opens_at, customer_name and desk",
            TextKind::Notice => "customer_name and desk",
        }
    }

    fn needs_link(self) -> bool {
        matches!(self, TextKind::Reply | TextKind::OutOfHoursWithLink)
    }
}

/// A text sent to the customer: a template with named variables, `{{ guest_url }}`,
/// `{{ customer_name }}`, `{{ desk }}` and, out of hours, `{{ opens_at }}` (rendered by
/// minijinja, so conditions work too). The older form of `ICB_REPLY_TEMPLATE`, with
/// `{guest_url}`, means the same.
#[derive(Clone)]
pub struct ReplyTemplate {
    source: String,
    /// The template, compiled once when parsed: it is rendered for every message answered.
    compiled: std::sync::Arc<minijinja::Environment<'static>>,
}

/// The name of the one template in a [`ReplyTemplate`]'s environment.
const TEMPLATE: &str = "text";

impl fmt::Debug for ReplyTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReplyTemplate").field(&self.source).finish()
    }
}

impl PartialEq for ReplyTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for ReplyTemplate {}

impl ReplyTemplate {
    /// Webex Connect's SMS content limit.
    pub const MAX_CHARS: usize = 4000;
    /// Long-mode guest links are a JWE in the query string: about 700 characters in practice;
    /// leave room for larger ciphers.
    const LONGEST_LINK_CHARS: usize = 1200;
    /// The longest customer name icbridge keeps, and a desk name well past any real one.
    const LONGEST_NAME_CHARS: usize = 256;

    /// The text with the guest link.
    pub fn parse(raw: &str) -> Result<Self, TemplateError> {
        Self::parse_as(raw, TextKind::Reply)
    }

    /// A text of `kind`: its variables known, the link present where one is needed, short
    /// enough for an SMS with the longest link, name and opening time.
    pub fn parse_as(raw: &str, kind: TextKind) -> Result<Self, TemplateError> {
        let source = if raw.contains("{{") {
            raw.to_string()
        } else {
            raw.replace("{guest_url}", "{{ guest_url }}")
        };
        let mut environment = environment();
        environment
            .add_template_owned(TEMPLATE, source.clone())
            .map_err(|e| TemplateError::Syntax(e.to_string()))?;
        let used = environment
            .get_template(TEMPLATE)
            .map_err(|e| TemplateError::Syntax(e.to_string()))?
            .undeclared_variables(false);
        if let Some(unknown) = used
            .iter()
            .find(|v| !kind.variables().contains(&v.as_str()))
        {
            return Err(TemplateError::UnknownVariable(
                unknown.clone(),
                kind.variables_listed(),
            ));
        }
        if kind.needs_link() && !used.contains("guest_url") {
            return Err(TemplateError::MissingGuestUrl);
        }
        let template = Self {
            source,
            compiled: std::sync::Arc::new(environment),
        };
        let long_name = "n".repeat(Self::LONGEST_NAME_CHARS);
        let longest = template.try_render(TextValues {
            guest_url: &"x".repeat(Self::LONGEST_LINK_CHARS),
            customer_name: Some(&long_name),
            desk: &long_name,
            opens_at: &long_name,
        })?;
        let chars = longest.chars().count();
        if chars > Self::MAX_CHARS {
            return Err(TemplateError::TooLong(chars));
        }
        Ok(template)
    }

    pub fn render(&self, values: TextValues<'_>) -> String {
        // Checked when parsed: rendering cannot fail.
        self.try_render(values).unwrap_or_default()
    }

    fn try_render(&self, values: TextValues<'_>) -> Result<String, TemplateError> {
        self.compiled
            .get_template(TEMPLATE)
            .and_then(|template| {
                template.render(minijinja::context! {
                    guest_url => values.guest_url,
                    customer_name => values.customer_name.unwrap_or("there"),
                    desk => values.desk,
                    opens_at => values.opens_at,
                })
            })
            .map_err(|e| TemplateError::Syntax(e.to_string()))
    }
}

/// The customer's text with their guest link, in the wording of the conversation's desk
/// (`[desk.texts] reply`), else `ICB_REPLY_TEMPLATE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTexts {
    default: ReplyTemplate,
    by_desk: std::collections::HashMap<String, ReplyTemplate>,
    default_desk: String,
}

impl ReplyTexts {
    pub fn new(
        default: ReplyTemplate,
        by_desk: std::collections::HashMap<String, ReplyTemplate>,
        default_desk: String,
    ) -> Self {
        Self {
            default,
            by_desk,
            default_desk,
        }
    }

    /// The text for a conversation of `desk` (`None`: the default desk's).
    pub fn render(
        &self,
        desk: Option<&str>,
        guest_url: &str,
        customer_name: Option<&str>,
    ) -> String {
        let desk = desk.unwrap_or(&self.default_desk);
        self.by_desk
            .get(desk)
            .unwrap_or(&self.default)
            .render(TextValues {
                guest_url,
                customer_name,
                desk,
                opens_at: "",
            })
    }
}

/// Customer texts are plain text: nothing is escaped; a variable that is not given is an
/// error, not an empty string.
fn environment() -> minijinja::Environment<'static> {
    let mut environment = minijinja::Environment::new();
    environment.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    environment
}

/// A meeting the broker just made for a customer's conversation, as a new meeting and a
/// booking both store it: the conversation it opens (or joins), the claim it was made
/// under, and its links with the codes handed out for them.
#[derive(Debug, Clone)]
pub struct MadeMeeting {
    pub key: ConversationKey,
    pub customer_name: Option<String>,
    /// Used if the meeting opens a new conversation (an open one keeps its id).
    pub conversation_id: String,
    /// The desk of a new conversation (an open one keeps its own).
    pub desk: String,
    pub meeting_id: String,
    /// The subject the broker made the meeting for.
    pub sub: String,
    /// The claim on the customer's conversation the meeting was made under; it ends with
    /// the commit (its subject is this meeting's, and no later meeting's).
    pub claim_id: String,
    pub links: MeetingLinks,
    /// The codes handed out for its links (with ICB_PUBLIC_URL), stored with it.
    pub redirects: Vec<Redirect>,
}

/// A meeting as icbridge keeps it: made for a conversation, with the subject the broker
/// made it for (the same subject is the same meeting room) and its links, valid from
/// `not_before` (a booked consultation's) until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Meeting {
    pub id: String,
    pub conversation_id: String,
    pub sub: String,
    pub host_url: String,
    pub guest_url: String,
    pub not_before: Option<i64>,
    pub expires_at: i64,
    pub created_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(guest_url: &str) -> TextValues<'_> {
        TextValues {
            guest_url,
            customer_name: Some("Ann"),
            desk: "pediatrics",
            opens_at: "Mon 30 Mar 08:00 (Europe/Berlin)",
        }
    }

    #[test]
    fn reply_templates_need_the_link_and_fit_an_sms() {
        assert_eq!(
            ReplyTemplate::parse("Hello").unwrap_err(),
            TemplateError::MissingGuestUrl
        );
        let long = format!("{} {{guest_url}}", "a".repeat(3000));
        assert!(matches!(
            ReplyTemplate::parse(&long),
            Err(TemplateError::TooLong(_))
        ));
        let template =
            ReplyTemplate::parse("Join your video consultation: {{ guest_url }}").unwrap();
        assert_eq!(
            template.render(values("https://instant.webex.com/visit/ckmNR7I")),
            "Join your video consultation: https://instant.webex.com/visit/ckmNR7I"
        );
        // The older form means the same.
        assert_eq!(
            ReplyTemplate::parse("Join: {guest_url}")
                .unwrap()
                .render(values("L")),
            "Join: L"
        );
    }

    #[test]
    fn reply_templates_have_named_variables_and_nothing_else() {
        let template = ReplyTemplate::parse(
            "Hello {{ customer_name }}, the {{ desk }} team: {{ guest_url }} & more",
        )
        .unwrap();
        assert_eq!(
            template.render(values("https://l.example/g?a=1&b=2")),
            "Hello Ann, the pediatrics team: https://l.example/g?a=1&b=2 & more"
        );
        assert_eq!(
            ReplyTemplate::parse("{{ guest_link }}").unwrap_err(),
            TemplateError::UnknownVariable(
                "guest_link".into(),
                "guest_url, customer_name and desk"
            )
        );
        assert!(matches!(
            ReplyTemplate::parse("{{ guest_url "),
            Err(TemplateError::Syntax(_))
        ));
    }

    #[test]
    fn out_of_hours_texts_name_the_opening_and_carry_a_link_only_with_a_meeting() {
        let waiting = ReplyTemplate::parse_as(
            "{{ desk }} opens {{ opens_at }}; we will text you then.",
            TextKind::OutOfHours,
        )
        .unwrap();
        assert_eq!(
            waiting.render(values("L")),
            "pediatrics opens Mon 30 Mar 08:00 (Europe/Berlin); we will text you then."
        );
        assert!(matches!(
            ReplyTemplate::parse_as("Join: {{ guest_url }}", TextKind::OutOfHours),
            Err(TemplateError::UnknownVariable(name, _)) if name == "guest_url"
        ));
        assert_eq!(
            ReplyTemplate::parse_as("We open {{ opens_at }}.", TextKind::OutOfHoursWithLink)
                .unwrap_err(),
            TemplateError::MissingGuestUrl
        );
        assert!(matches!(
            ReplyTemplate::parse("{{ opens_at }} {{ guest_url }}"),
            Err(TemplateError::UnknownVariable(name, _)) if name == "opens_at"
        ));
    }
}
