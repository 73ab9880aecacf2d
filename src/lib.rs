//! icbridge: turns a customer's SMS or WhatsApp message into a Webex Instant Connect video
//! consultation. See README.md for what it does and how to run it, and its "Layout" section
//! for where each part lives.

pub mod app;
pub mod bridge;
pub mod customers;
pub mod delivery;
pub mod desks;
pub mod domain;
pub mod experts;
pub mod routes;
pub mod store;
pub mod upstream;
