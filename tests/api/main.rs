//! The integration suite: one binary, each test with its own temporary database and local
//! stand-ins (wiremock) of every upstream.
//!
//! Tests written with `db_test!` run twice: on SQLite, and on PostgreSQL when
//! `ICB_TEST_POSTGRES_URL` is set (a fresh database per test, dropped after it). Without it,
//! the PostgreSQL variants are reported as ignored.

/// Declares `async fn name(db) { … }` as two tests, `name::sqlite` and `name::postgres`,
/// with `db` the [`helpers::TestDb`] to use.
macro_rules! db_test {
    (async fn $name:ident($db:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let $db = crate::helpers::TestDb::Sqlite;
                $body
            }

            #[tokio::test]
            #[cfg_attr(
                not(icb_postgres),
                ignore = "PostgreSQL: set ICB_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test)"
            )]
            async fn postgres() {
                let $db = crate::helpers::TestDb::Postgres;
                $body
            }
        }
    };
}

mod appointments;
mod auth;
mod broker;
mod channel_limits;
mod cli;
mod concurrency;
mod console;
mod console_browser;
mod crash;
mod customers;
mod database;
mod desk;
mod desks;
mod errors;
mod events;
mod events_conversation;
mod events_ops;
mod expert_files;
mod guests;
mod helpers;
mod hostile;
mod hours;
mod https_host;
mod intake;
mod links;
mod media;
mod meetings;
mod migrations;
mod multi_instance;
mod notifications;
mod operations;
mod opt_out;
mod outbox;
mod pauses;
mod replies;
mod sandbox;
mod soak;
mod statements;
mod stored;
mod survey;
mod take;
mod vendor_samples;
mod webex_contract;
mod webex_standin;
mod window;
