//! The engine: how the store's statements reach the database, apart from what they say.
//!
//! Why it exists: SQLite has one writer. Its write transactions run one at a time, on the
//! one connection that writes, and every statement is a round trip to that connection's
//! thread (on PostgreSQL, over the network; there too one writer task carries every write of
//! an instance). A commit costs far more than the statements before it. Written one request
//! at a time, a busy desk's writes would queue behind each other's commits, and the store
//! could not meet the floors the benchmark sets (`bench/README.md`, "The targets"):
//!
//! - the intake's: follow-up messages answered (and relayed) at saturation at ≥ 10% of
//!   `/healthz` on SQLite and ≥ 2,000/s on PostgreSQL, with a p99 latency ≤ 5 ms at
//!   1,000 req/s on SQLite and ≤ 10 ms at 500 req/s on PostgreSQL;
//! - meeting creation's: new conversations (the broker answering at once) at ≥ 2,000/s on
//!   SQLite, and a burst of 1,000 first messages (the broker answering after 200 ms) all
//!   answered within 0.6 s and all their notifications sent within 3 s.
//!
//! Two things let it meet them, and they are this module:
//!
//! - **group commit** ([`writer`]): every write goes to one writer task, which runs the
//!   writes queued meanwhile in one transaction, each in a savepoint of its own, so that
//!   a group pays one commit and a failing write still fails alone;
//! - **batching** ([`batches`]): the jobs of concurrent requests that take the same steps
//!   (customers' messages, meeting claims, new meetings) are gathered into one write with
//!   one statement per step for all of them ([`placeholders`] writes their `VALUES` rows).
//!
//! The figures they serve are in `bench/RESULTS.md`: the table at its top (the last run:
//! on SQLite, follow-ups at about 15% of `/healthz`, p99 under 3 ms at 1,000 req/s, new
//! conversations just over 2,300/s, the burst answered in about 0.55 s; with one event
//! subscription, follow-ups below their floor: its "With one event subscription"). Its "What made the
//! difference" tells what batching bought ("Fewer statements per new meeting": new
//! conversations 1.9–2.2k/s → 2.7–3.0k/s, the burst 0.67 s → 0.53–0.57 s), its fifteenth
//! session's step 3 what the claims' batch bought, and that the meeting floors are met
//! "with little margin": a statement or a commit more per request shows there first.
//!
//! The queries beside this module (one file per table group) say what is written; they
//! reach the engine through [`Store::write`], [`Batches`] and [`rows_of_placeholders`],
//! and branch on [`Backend`] only where the two databases' SQL must differ.

mod batches;
mod checkpoints;
mod connection;
mod placeholders;
mod writer;

use std::future::Future;

use sqlx::AnyConnection;

use super::{Store, StoreError};

pub(super) use batches::Batches;
pub(super) use checkpoints::LogCheckpoints;
pub(super) use placeholders::rows_of_placeholders;
pub(super) use writer::Writer;

/// The database behind the `Any` driver, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Backend {
    Sqlite,
    Postgres,
}

/// A write's statements, run on the writer's transaction: what [`Store::write`] takes.
///
/// Written as an async closure, `async move |tx| { … }`: it owns what it captured, and the
/// future it returns borrows `tx` (the transaction, inside the write's savepoint) for as
/// long as it runs. `AsyncFnOnce` alone cannot say that future is `Send`, which the writer
/// task needs (its associated future type cannot be named on stable Rust); this trait
/// can, through the plain `FnOnce` every async closure also is, whose return type may
/// borrow the argument. Implemented for every such closure; nothing implements it by hand.
pub(super) trait WriteFn<'c, T>: FnOnce(&'c mut AnyConnection) -> Self::Future {
    type Future: Future<Output = Result<T, StoreError>> + Send + 'c;
}

impl<'c, T, F, Fut> WriteFn<'c, T> for F
where
    F: FnOnce(&'c mut AnyConnection) -> Fut,
    Fut: Future<Output = Result<T, StoreError>> + Send + 'c,
{
    type Future = Fut;
}

impl Store {
    /// Runs `write` in a transaction, committed with the writes of other requests (see
    /// [`writer`]), and returns its result once committed. A write that fails changes
    /// nothing, and only it fails.
    ///
    /// The `AsyncFnOnce` bound is what lets the compiler see a closure's argument as the
    /// transaction (`&mut AnyConnection`, for any lifetime); [`WriteFn`] adds that its
    /// future is `Send`.
    pub(super) async fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: AsyncFnOnce(&mut AnyConnection) -> Result<T, StoreError>
            + for<'c> WriteFn<'c, T>
            + Send
            + 'static,
    {
        self.writer.write(write).await
    }

    /// On SQLite, runs `reads` on a reader before a write that will change what they read,
    /// for the pages they bring into the system's cache. A write that finds a page missing
    /// holds SQLite's one write lock while the disk fetches it, and every customer's
    /// message waits behind it: an erasure's or a purge's rows are spread over the year,
    /// on pages nobody read for months, and with the disk busy copying the log into the
    /// database, a write of ten such rows held the lock for 20–40 ms (its thread waiting
    /// in the kernel for each read; `bench/RESULTS.md`, session 48). Read first, beside
    /// the writer, they are in memory when the write needs them. PostgreSQL has no one
    /// write lock to hold: nothing is read there.
    pub(super) async fn warm_up<'q>(
        &self,
        reads: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<(), StoreError> {
        if self.backend == Backend::Sqlite {
            reads.fetch_one(&self.reader).await?;
        }
        Ok(())
    }
}
