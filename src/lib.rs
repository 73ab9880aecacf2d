//! icbridge: turns a customer's SMS or WhatsApp message into a Webex Instant Connect video
//! consultation. See README.md for what it does and how to run it.

pub mod audit;
pub mod bridge;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod console;
pub mod customer_data;
pub mod desk;
pub mod desks;
pub mod domain;
pub mod expert_messages;
pub mod hours;
pub mod inbound;
pub mod media_links;
pub mod metrics;
pub mod openings;
pub mod opt_out;
pub mod outbox;
pub mod pauses;
pub mod proxies;
pub mod retention;
pub mod routes;
pub mod sandbox;
pub mod startup;
pub mod store;
pub mod survey;
pub mod telemetry;
pub mod upstream;
pub mod whatsapp_window;
pub mod worker;
