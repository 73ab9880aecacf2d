//! Delivering what the outbox holds: the worker, its retry schedule, the pauses upstreams ask
//! for, WhatsApp's 24-hour window, and the signed links to experts' files.

pub mod media_links;
pub mod pauses;
pub mod schedule;
pub mod window;
mod worker;

pub use worker::*;
