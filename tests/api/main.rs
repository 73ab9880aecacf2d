//! The integration suite: one binary, each test with its own temporary database and local
//! stand-ins (wiremock) of every upstream.

mod auth;
mod broker;
mod cli;
mod concurrency;
mod console;
mod console_browser;
mod crash;
mod desk;
mod errors;
mod helpers;
mod intake;
mod meetings;
mod notifications;
mod outbox;
mod replies;
mod sandbox;
mod soak;
