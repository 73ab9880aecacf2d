//! The customer's messaging channel: SMS or WhatsApp.

use std::fmt;

/// The customer's messaging channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Sms,
    Whatsapp,
}

impl Channel {
    /// Accepts the spellings Webex Connect and flow authors use (`SMS`, `sms`, `WhatsApp`, ...).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "sms" => Some(Channel::Sms),
            "whatsapp" | "wa" => Some(Channel::Whatsapp),
            _ => None,
        }
    }

    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Whatsapp => "whatsapp",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            Channel::Sms => "SMS",
            Channel::Whatsapp => "WhatsApp",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
