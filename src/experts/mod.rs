//! The experts' side: Webex events and the experts' commands, finding what Webex never
//! delivered, keeping icbridge's webhooks working, and the web console.

mod catch_up;
pub mod console;
mod desk;
pub mod webhooks;

pub use catch_up::{CatchUpReport, CaughtUp};
pub use desk::*;
pub use webhooks::{HookReport, HookState};
