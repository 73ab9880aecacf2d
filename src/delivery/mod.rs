//! Delivering what the outbox holds: the worker, the consent it asks before each send
//! (opt-out and WhatsApp's 24-hour window), its retry schedule, the pauses upstreams ask
//! for, and the signed links to experts' files.

pub mod consent;
pub mod events;
pub mod media_links;
pub mod pauses;
pub mod schedule;
pub mod window;
mod worker;

pub use consent::{OPTED_OUT, RECIPIENT_OUTSIDE_WINDOW, SURVEY_OUTSIDE_WINDOW};
pub use events::EventDelivery;
pub use worker::*;
