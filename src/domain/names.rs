//! The names icbridge's API documents give the states and kinds it keeps as text (a
//! conversation's state, a delivery's, ...): used by the OpenAPI document and by views that
//! show stored values.

#![allow(dead_code)] // Documentation types: never built, only described.

use utoipa::ToSchema;

use super::Purpose;

/// A customer's channel (documentation only: the fields are text).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum ChannelName {
    Sms,
    Whatsapp,
}

/// A conversation's state.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum ConversationState {
    Open,
    Closed,
}

/// A delivery's state: `cancelled` was never sent (the customer opted out, or its
/// appointment was cancelled).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum DeliveryState {
    Pending,
    Held,
    Sent,
    Dead,
    Cancelled,
}

/// An appointment's state.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum AppointmentState {
    Booked,
    Cancelled,
}

/// A kind of delivery: `expert_notification`, `expert_notice`, `customer_reply`,
/// `opt_out_reply` or `event` (an event for one subscription).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum DeliveryKind {
    ExpertNotification,
    ExpertNotice,
    CustomerReply,
    OptOutReply,
    Event,
}

impl DeliveryKind {
    pub const ALL: [DeliveryKind; 5] = [
        DeliveryKind::ExpertNotification,
        DeliveryKind::ExpertNotice,
        DeliveryKind::CustomerReply,
        DeliveryKind::OptOutReply,
        DeliveryKind::Event,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::ExpertNotification => Purpose::EXPERT_NOTIFICATION,
            DeliveryKind::ExpertNotice => Purpose::EXPERT_NOTICE,
            DeliveryKind::CustomerReply => Purpose::CUSTOMER_REPLY,
            DeliveryKind::OptOutReply => Purpose::OPT_OUT_REPLY,
            DeliveryKind::Event => crate::domain::events::DELIVERY_KIND,
        }
    }
}
