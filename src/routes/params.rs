//! Query parameters that say which one is wrong: a value that does not parse is refused
//! with `422 {"error":"invalid"}` (the query error handler in [`super::extractor_errors`])
//! and a message naming the parameter and what it must be.

use crate::domain::names::DeliveryKind;
use crate::domain::OutboxState;
use serde::{de, Deserialize, Deserializer};
use utoipa::ToSchema;

/// Reads a query parameter as text and parses it; what does not parse is refused naming
/// `name` and what it must be.
fn parse<'de, D: Deserializer<'de>, T>(
    deserializer: D,
    name: &str,
    expected: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, D::Error> {
    let raw = String::deserialize(deserializer)?;
    parse(&raw).ok_or_else(|| {
        de::Error::custom(format!(
            "query parameter `{name}` must be {expected}, not {raw:?}"
        ))
    })
}

/// `limit`: at most this many, 1 to 1000.
#[derive(Debug, Clone, Copy)]
pub struct Limit(i64);

impl Limit {
    pub const DEFAULT: i64 = 100;
    pub const MAX: i64 = 1000;

    /// The limit asked for, or the default.
    pub fn or_default(limit: Option<Limit>) -> i64 {
        limit.map_or(Self::DEFAULT, |Limit(limit)| limit)
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse(
            deserializer,
            "limit",
            "a whole number from 1 to 1000",
            |raw| {
                raw.parse()
                    .ok()
                    .filter(|limit| (1..=Self::MAX).contains(limit))
                    .map(Limit)
            },
        )
    }
}

/// Which conversations: `open`, `closed` or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ConversationStates {
    Open,
    Closed,
    All,
}

impl ConversationStates {
    /// The state to list, `None` for every one.
    pub fn only(self) -> Option<&'static str> {
        match self {
            ConversationStates::Open => Some("open"),
            ConversationStates::Closed => Some("closed"),
            ConversationStates::All => None,
        }
    }
}

impl<'de> Deserialize<'de> for ConversationStates {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse(
            deserializer,
            "state",
            "`open`, `closed` or `all`",
            |raw| match raw {
                "open" => Some(ConversationStates::Open),
                "closed" => Some(ConversationStates::Closed),
                "all" => Some(ConversationStates::All),
                _ => None,
            },
        )
    }
}

/// Which deliveries: `pending`, `held`, `sent`, `dead`, `cancelled` or `all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum DeliveryStates {
    Pending,
    Held,
    Sent,
    Dead,
    Cancelled,
    All,
}

impl DeliveryStates {
    /// The state to list, `None` for every one.
    pub fn only(self) -> Option<OutboxState> {
        match self {
            DeliveryStates::Pending => Some(OutboxState::Pending),
            DeliveryStates::Held => Some(OutboxState::Held),
            DeliveryStates::Sent => Some(OutboxState::Sent),
            DeliveryStates::Dead => Some(OutboxState::Dead),
            DeliveryStates::Cancelled => Some(OutboxState::Cancelled),
            DeliveryStates::All => None,
        }
    }
}

impl<'de> Deserialize<'de> for DeliveryStates {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse(
            deserializer,
            "state",
            "`pending`, `held`, `sent`, `dead`, `cancelled` or `all`",
            |raw| match raw {
                "pending" => Some(DeliveryStates::Pending),
                "held" => Some(DeliveryStates::Held),
                "sent" => Some(DeliveryStates::Sent),
                "dead" => Some(DeliveryStates::Dead),
                "cancelled" => Some(DeliveryStates::Cancelled),
                "all" => Some(DeliveryStates::All),
                _ => None,
            },
        )
    }
}

impl<'de> Deserialize<'de> for DeliveryKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse(
            deserializer,
            "kind",
            "`expert_notification`, `expert_notice`, `customer_reply`, `opt_out_reply` or `event`",
            |raw| Self::ALL.into_iter().find(|kind| kind.as_str() == raw),
        )
    }
}
