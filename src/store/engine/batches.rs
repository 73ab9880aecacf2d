//! Writes of concurrent requests gathered into one. Every statement is a round trip (to the
//! SQLite connection's thread, or over the network to PostgreSQL), and a busy desk records
//! many messages and opens many meetings at once: the jobs queued meanwhile are written as
//! one write with one statement per step for all of them (committed with the other writes
//! of its group, see [`super::writer`]). A batch that fails is written again one job at a
//! time, so that a failing job fails alone.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use crate::store::{Store, StoreError};

/// A job and who waits for its outcome.
struct Waiting<J, R> {
    job: J,
    done: oneshot::Sender<Result<R, StoreError>>,
}

/// Hands jobs to the task that writes them in batches.
pub(in crate::store) struct Batches<J, R> {
    jobs: mpsc::UnboundedSender<Waiting<J, R>>,
}

impl<J, R> Clone for Batches<J, R> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
        }
    }
}

impl<J, R> Batches<J, R>
where
    J: Clone + Send + 'static,
    R: Send + 'static,
{
    /// Starts the task that writes batches of at most `max` jobs with `write`, on the
    /// current runtime, for `store` (a handle without batches, so that the task ends with
    /// the last handle that has them). `write` writes its jobs in one write and returns each
    /// job's outcome, in their order.
    pub(in crate::store) fn start<W, Fut>(store: Store, max: usize, write: W) -> Self
    where
        W: Fn(Store, Vec<J>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<R>, StoreError>> + Send + 'static,
    {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(store, max, write, queue));
        Self { jobs }
    }

    /// Writes `job` with the others queued meanwhile; returns its outcome once committed.
    pub(in crate::store) async fn write(&self, job: J) -> Result<R, StoreError> {
        let (done, outcome) = oneshot::channel();
        self.jobs
            .send(Waiting { job, done })
            .map_err(|_| StoreError::WriterStopped)?;
        outcome.await.map_err(|_| StoreError::WriterStopped)?
    }
}

/// Takes what is queued (at most a batch), writes it, answers each waiter; until every
/// handle is gone.
async fn write_batches<J, R, W, Fut>(
    store: Store,
    max: usize,
    write: W,
    mut queue: mpsc::UnboundedReceiver<Waiting<J, R>>,
) where
    J: Clone,
    W: Fn(Store, Vec<J>) -> Fut,
    Fut: Future<Output = Result<Vec<R>, StoreError>>,
{
    let mut batch = Vec::with_capacity(max);
    while queue.recv_many(&mut batch, max).await > 0 {
        let waiting = std::mem::take(&mut batch);
        let jobs: Vec<J> = waiting.iter().map(|w| w.job.clone()).collect();
        match write(store.clone(), jobs).await {
            Ok(outcomes) => {
                for (waiting, outcome) in waiting.into_iter().zip(outcomes) {
                    let _ = waiting.done.send(Ok(outcome));
                }
            }
            Err(error) if waiting.len() == 1 => {
                if let Some(alone) = waiting.into_iter().next() {
                    let _ = alone.done.send(Err(error));
                }
            }
            Err(error) => {
                tracing::debug!(%error, jobs = waiting.len(),
                    "a batch failed; writing its jobs one by one");
                for Waiting { job, done } in waiting {
                    let outcome = write(store.clone(), vec![job]).await;
                    let _ = done.send(outcome.map(|mut one| one.remove(0)));
                }
            }
        }
    }
}
