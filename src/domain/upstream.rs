//! The systems icbridge calls, by name: what pauses, credentials and metrics are kept by,
//! and where a desk's experts are (in Webex).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Upstream {
    InstantConnect,
    Webex,
    Connect,
    /// The receivers of events (the customer's CRM, EMR or portal): not one upstream but
    /// one per subscription, so never paused as a whole (not in [`Upstream::ALL`]).
    Receiver,
}

impl Upstream {
    pub const ALL: [Upstream; 3] = [Upstream::InstantConnect, Upstream::Webex, Upstream::Connect];

    pub fn parse(label: &str) -> Option<Self> {
        Upstream::ALL.into_iter().find(|u| u.label() == label)
    }

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Upstream::InstantConnect => "instant_connect",
            Upstream::Webex => "webex",
            Upstream::Connect => "connect",
            Upstream::Receiver => "events",
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Upstream::InstantConnect => "Instant Connect broker",
            Upstream::Webex => "Webex API",
            Upstream::Connect => "Webex Connect API",
            Upstream::Receiver => "event receiver",
        })
    }
}

/// Where a message from icbridge's expert notifications goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpertTarget {
    RoomId(String),
    Email(String),
    /// Resolved to a room id at start-up with `GET /rooms`.
    RoomTitle(String),
}
