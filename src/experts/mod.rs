//! The experts' side: Webex events and the experts' commands, finding what Webex never
//! delivered, keeping icbridge's webhooks working, and the web console.

mod actions;
mod catch_up;
mod commands;
pub mod console;
mod desk;
mod events;
pub mod webhooks;

pub use catch_up::{CatchUpReport, CaughtUp};
pub use desk::*;
pub use events::{EventData, Received, WebhookEvent, RESOURCE_ACTIONS, RESOURCE_MESSAGES};
pub use webhooks::{HookReport, HookState};
