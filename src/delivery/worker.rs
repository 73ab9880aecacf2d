//! The delivery worker: claims due outbox rows, sends each conversation's rows in order,
//! records what became of them; retries with backoff and dead-letters.
//!
//! Rows are claimed with a lease, so a worker that dies mid-send leaves its rows to be
//! claimed again once the lease runs out (at-least-once delivery). The store hands out a
//! conversation's rows only in order (none while an earlier one waits), and the worker
//! sends the rows of one conversation one after the other; different conversations are
//! sent side by side, and a slow one does not hold the others back.

use crate::domain::OutboxRow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use send::Failure;

use crate::delivery::consent::opted_out;
use crate::delivery::events::EventDelivery;
use crate::delivery::media_links::MediaLinks;
use crate::delivery::pauses::{Pauses, PROBE_EVERY};
use crate::delivery::schedule;
use crate::desks::DeskPlaces;
use crate::domain::clock::Clock;
use crate::domain::metrics::Metrics;
use crate::domain::{Delivery, Purpose, WhatsappTemplate};
use crate::store::{Outcome, Settlement, Store, StoreError, EVENT_KIND};
use crate::upstream::connect::ConnectClient;
use crate::upstream::media::MediaClient;
use crate::upstream::webex::WebexClient;
use crate::upstream::{Upstream, UpstreamError};

mod send;

/// Rows claimed at a time, and at most in flight.
pub const BATCH: usize = 512;
/// How often the pauses other instances recorded are read.
const PAUSES_REFRESH: Duration = Duration::from_secs(5);
/// How long newly queued rows are left to gather before the worker claims them: a claim
/// and a write-back are two writes whether they carry one row or a hundred, and on a busy
/// desk they share the database with the requests.
const GATHER: Duration = Duration::from_millis(5);

/// What the worker needs to deliver.
pub struct OutboxParts {
    pub store: Store,
    pub webex: WebexClient,
    /// `None` when the Webex Connect API is not configured.
    pub connect: Option<ConnectClient>,
    /// Where each desk's notifications and thread messages go.
    pub places: DeskPlaces,
    pub schedule: Vec<Duration>,
    /// How long a claimed row stays reserved for the worker that claimed it
    /// (`ICB_OUTBOX_LEASE`): longer than any single send can take (client timeouts are
    /// 10 s). A worker that dies mid-send delays its rows by at most this much.
    pub lease: Duration,
    pub metrics: Metrics,
    pub clock: Clock,
    /// Upstreams that asked to wait or refused the credential.
    pub pauses: Pauses,
    /// Downloads customers' files that Webex cannot fetch itself.
    pub media: MediaClient,
    /// The approved template sent when a customer's WhatsApp window is closed.
    pub whatsapp_template: Option<WhatsappTemplate>,
    /// Signs the links to experts' files (`None` without `ICB_PUBLIC_URL`).
    pub media_links: Option<MediaLinks>,
    /// The event subscriptions and their receivers' client (`None` without any).
    pub events: Option<EventDelivery>,
}

#[derive(Clone)]
pub struct OutboxWorker {
    pub(super) parts: Arc<OutboxParts>,
}

/// What one conversation's rows need: the rows, in order.
type Chain = Vec<OutboxRow>;

impl OutboxWorker {
    pub fn new(parts: OutboxParts) -> Self {
        Self {
            parts: Arc::new(parts),
        }
    }

    pub(super) fn now(&self) -> i64 {
        self.parts.clock.now_ms()
    }

    /// One pass: claims the rows due now, delivers them (each conversation's in order,
    /// conversations side by side) and records what became of them. Returns how many rows
    /// it handled. Tests drive the worker with this, one step at a time.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let rows = self.claim(BATCH).await?;
        let count = rows.len();
        let chains = by_conversation(rows)
            .into_iter()
            .map(|chain| self.deliver_in_order(chain));
        let settled: Vec<Settlement> = join_all(chains).await.into_iter().flatten().collect();
        self.settle(&settled).await?;
        Ok(count)
    }

    /// Records what became of the rows sent, and counts the deliveries sent (once
    /// recorded: a count that says so is one the row says too).
    async fn settle(&self, settled: &[Settlement]) -> Result<(), StoreError> {
        self.parts.store.settle_outbox(settled).await?;
        let sent = settled
            .iter()
            .filter(|s| !s.event && matches!(s.outcome, Outcome::Sent { .. }))
            .count();
        self.parts.metrics.rows_sent(sent as u64);
        Ok(())
    }

    /// Runs until `stop` turns true, then finishes what it is sending. The same steps as
    /// [`run_once`](Self::run_once), except that it does not wait for every conversation of
    /// a claim before it claims again: each conversation's rows are sent by a task of their
    /// own, so a slow answer holds back only its own conversation.
    pub async fn run(self, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
        let mut sending = Sending::new(self.clone());
        let mut probes = tokio::time::interval(PROBE_EVERY);
        let mut refreshes = tokio::time::interval(PAUSES_REFRESH);
        if !*stop.borrow() {
            probes.tick().await;
            if let Err(error) = self.probe_on_start_up().await {
                tracing::warn!(%error, "could not probe the credentials on start-up");
            }
        }
        loop {
            if *stop.borrow() {
                break;
            }
            if futures_util::FutureExt::now_or_never(probes.tick()).is_some() {
                if let Err(error) = self.probe_credentials().await {
                    tracing::warn!(%error, "could not probe the refused credentials");
                }
            }
            // Pauses recorded by other instances reach this one's requests (to the broker).
            if futures_util::FutureExt::now_or_never(refreshes.tick()).is_some() {
                if let Err(error) = self.parts.pauses.refresh().await {
                    tracing::warn!(%error, "could not read the upstreams' pauses");
                }
            }
            if let Err(error) = sending.start_due().await {
                tracing::error!(%error, "outbox worker could not claim rows");
            }
            // Only waiting is cancelled by the other branches, never recording: a task's
            // result, once taken, is always written back.
            let finished = tokio::select! {
                finished = sending.next_finished(), if sending.is_sending() => finished,
                _ = wake.notified() => {
                    // A burst of requests queues rows one after the other: let them gather
                    // for one claim rather than a claim each.
                    tokio::time::sleep(GATHER).await;
                    None
                }
                _ = tokio::time::sleep(schedule::IDLE_POLL) => None,
                _ = stop.changed() => None,
            };
            if finished.is_some() || sending.has_unrecorded() {
                // Other conversations finishing meanwhile are recorded with this one.
                tokio::time::sleep(GATHER).await;
                if let Err(error) = sending.record(finished).await {
                    tracing::warn!(%error, "outbox worker could not record deliveries yet; will try again");
                }
            }
        }
        // What is being sent is finished and recorded; a database that stays busy gets a
        // few more tries, then the rows are sent again once their lease runs out.
        let mut tries = 0;
        while sending.is_busy() {
            match sending.finish_some().await {
                Ok(_) => tries = 0,
                Err(error) if tries < 5 => {
                    tries += 1;
                    tracing::warn!(%error, "outbox worker could not record deliveries yet; will try again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => {
                    tracing::error!(%error, "outbox worker could not record deliveries; they are sent again once their lease runs out");
                    break;
                }
            }
        }
    }

    /// A worker that is driven step by step (see [`Sending`]).
    pub fn sending(&self) -> Sending {
        Sending::new(self.clone())
    }

    async fn claim(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let lease = self.parts.lease.as_millis() as i64;
        self.parts
            .store
            .claim_due_outbox(self.now(), lease, limit as i64, None)
            .await
    }

    /// Tries each refused credential whose pause is over once: Webex's with `GET
    /// /people/me`; Webex Connect's, which has no call for that, by delivering one of its
    /// rows. Deliveries resume when it works. The service does this on start-up and every
    /// [`PROBE_EVERY`]; tests call it directly.
    pub async fn probe_credentials(&self) -> Result<(), StoreError> {
        let pauses = &self.parts.pauses;
        pauses.refresh().await?;
        for upstream in pauses.refused_credentials() {
            if pauses.paused_until(upstream).is_some() {
                continue;
            }
            match upstream {
                Upstream::Webex => match self.parts.webex.me().await {
                    Ok(_) => pauses.works_again(upstream).await?,
                    Err(error) => self.still_refused(upstream, &error).await?,
                },
                Upstream::Connect => {
                    let lease = self.parts.lease.as_millis() as i64;
                    let rows = self
                        .parts
                        .store
                        .claim_due_outbox(self.now(), lease, 1, Some(upstream.label()))
                        .await?;
                    let settled = self.deliver_in_order(rows).await;
                    if settled
                        .iter()
                        .any(|s| matches!(s.outcome, Outcome::Sent { .. }))
                    {
                        pauses.works_again(upstream).await?;
                    }
                    self.settle(&settled).await?;
                }
                // The broker is called by requests, which find out themselves.
                Upstream::InstantConnect | Upstream::Receiver => {}
            }
        }
        Ok(())
    }

    /// What the service does on start-up: the refused credentials are probed at once (a
    /// replaced token works without waiting for the probe a previous run planned), and
    /// Webex's token is tried even if nothing says it fails yet, so that a token replaced by
    /// a wrong one shows in `/readyz` and the gauge before the first notification is
    /// refused. Only a refusal counts: Webex being unreachable says nothing of the token.
    pub async fn probe_on_start_up(&self) -> Result<(), StoreError> {
        let pauses = &self.parts.pauses;
        pauses.probe_refused_now().await?;
        let webex_probed = pauses.refused_credentials().contains(&Upstream::Webex);
        self.probe_credentials().await?;
        if webex_probed {
            return Ok(());
        }
        if let Err(error) = self.parts.webex.me().await {
            self.parts.pauses.note(&error).await?;
        }
        Ok(())
    }

    /// A probe failed: the credential stays refused until the next one.
    async fn still_refused(
        &self,
        upstream: Upstream,
        error: &UpstreamError,
    ) -> Result<(), StoreError> {
        if self.parts.pauses.note(error).await?.is_none() {
            // An error that says nothing of the credential (the network): try again later.
            let next = self.now() + PROBE_EVERY.as_millis() as i64;
            self.parts
                .store
                .pause_upstream(upstream.label(), next, true, &error.to_string(), self.now())
                .await?;
        }
        Ok(())
    }

    /// Delivers one conversation's rows one after the other. A notification delivered
    /// here opens the thread of the rows after it. After a row that will be retried, the
    /// rest are put back untried: they must not overtake it.
    async fn deliver_in_order(&self, chain: Chain) -> Vec<Settlement> {
        let mut settled = Vec::with_capacity(chain.len());
        let mut opened_thread = None;
        let mut waiting = false;
        for mut row in chain {
            if waiting {
                // An event says why it waits: its row then shows it was claimed before (see
                // `events`, which counts an event once, on its first attempt).
                let reason = (row.kind == EVENT_KIND).then(|| "waits for an earlier event".into());
                settled.push(Settlement {
                    id: row.id,
                    outcome: Outcome::Postponed {
                        next_attempt_at: self.now(),
                        reason,
                    },
                    event: row.kind == EVENT_KIND,
                });
                continue;
            }
            if row.thread_message_id.is_none() {
                row.thread_message_id.clone_from(&opened_thread);
            }
            let mut outcome = self.deliver(&row).await;
            match &mut outcome {
                Outcome::Sent {
                    upstream_id,
                    opens_thread: opens_thread @ true,
                    ..
                } => {
                    // The chain's first notification is the one that can open the thread.
                    *opens_thread = opened_thread.is_none();
                    opened_thread.get_or_insert_with(|| upstream_id.clone());
                }
                Outcome::RetryAt { .. } | Outcome::Postponed { .. } => waiting = true,
                _ => {}
            }
            settled.push(Settlement {
                id: row.id,
                outcome,
                event: row.kind == EVENT_KIND,
            });
        }
        settled
    }

    /// Sends one row and decides what becomes of it.
    async fn deliver(&self, row: &OutboxRow) -> Outcome {
        // Events go to the subscriptions' receivers, under their own rules (see `events`).
        if row.kind == EVENT_KIND {
            return self.deliver_event(row).await;
        }
        // Consent first: see `consent`, where it is decided for every send path.
        if let Some(refused) = opted_out(row) {
            return refused;
        }
        // An upstream that asked to wait gets no call before the time is up.
        if let Some(until) = self.parts.pauses.paused_until(upstream_of(row)) {
            return Outcome::Postponed {
                next_attempt_at: until,
                reason: Some(format!("{} asked to wait", upstream_of(row))),
            };
        }
        let delivery = match serde_json::from_str::<Delivery>(&row.payload) {
            Ok(delivery) => delivery,
            Err(e) => {
                let error = format!("unreadable outbox payload: {e}");
                tracing::error!(outbox_id = row.id, kind = %row.kind, %error, "outbox row is dead");
                return self.dead(error);
            }
        };
        if let Some(outcome) = self.held_for_the_window(row, &delivery).await {
            return outcome;
        }
        match self.send(row, delivery).await {
            Ok(upstream_id) => {
                tracing::debug!(outbox_id = row.id, kind = %row.kind, attempts = row.attempts, "delivered");
                Outcome::Sent {
                    upstream_id,
                    at: self.now(),
                    opens_thread: row.kind == Purpose::EXPERT_NOTIFICATION,
                    scheduled: row.scheduled == 1,
                }
            }
            Err(Failure::Upstream(error)) => match self.parts.pauses.note(&error).await {
                // A wait the upstream asked for, or a refused credential: not a failure of
                // this row, which waits with every other row for that upstream.
                Ok(Some(until)) => Outcome::Postponed {
                    next_attempt_at: until,
                    reason: Some(error.to_string()),
                },
                Ok(None) => self.failed(row, &error),
                Err(store) => {
                    tracing::warn!(error = %store, "could not record an upstream's pause");
                    self.failed(row, &error)
                }
            },
            Err(Failure::NoPublicUrl) => {
                let reason = "experts' files need ICB_PUBLIC_URL: Webex Connect fetches them there";
                tracing::error!(outbox_id = row.id, kind = %row.kind, reason, "outbox row is dead");
                self.dead(reason.to_string())
            }
            Err(Failure::NotConfigured) => {
                let reason =
                    "customer replies need ICB_CONNECT_API_URL and ICB_CONNECT_SERVICE_KEY";
                tracing::error!(outbox_id = row.id, kind = %row.kind, reason, "outbox row is dead");
                self.dead(reason.to_string())
            }
        }
    }

    /// Gives a row up for good.
    pub(super) fn dead(&self, error: String) -> Outcome {
        self.parts.metrics.dead_letter();
        Outcome::Dead { error }
    }

    fn failed(&self, row: &OutboxRow, error: &UpstreamError) -> Outcome {
        let message = error.to_string();
        let delay = error
            .is_retryable()
            .then(|| schedule::backoff(&self.parts.schedule, row.attempts))
            .flatten();
        match delay {
            Some(delay) => {
                tracing::warn!(outbox_id = row.id, kind = %row.kind, attempts = row.attempts,
                    retry_in_ms = delay.as_millis() as u64, error = %message, "delivery failed, will retry");
                Outcome::RetryAt {
                    error: message,
                    next_attempt_at: self.now() + delay.as_millis() as i64,
                }
            }
            None => {
                tracing::error!(outbox_id = row.id, kind = %row.kind, attempts = row.attempts,
                    error = %message, "delivery failed for good; the row is dead");
                self.dead(message)
            }
        }
    }
}

/// The upstream a row is delivered through.
fn upstream_of(row: &OutboxRow) -> Upstream {
    if Purpose::is_to_customer(&row.kind) {
        Upstream::Connect
    } else {
        Upstream::Webex
    }
}

/// Claimed rows grouped by conversation (or lane: an event's subscription and
/// conversation), each group in claim order (rows with neither each on their own).
fn by_conversation(rows: Vec<OutboxRow>) -> Vec<Chain> {
    let mut chains: BTreeMap<String, Chain> = BTreeMap::new();
    let mut alone = Vec::new();
    for row in rows {
        let order = match (&row.lane, &row.conversation_id) {
            (Some(lane), _) => Some(format!("lane:{lane}")),
            (None, Some(conversation)) => Some(conversation.clone()),
            (None, None) => None,
        };
        match order {
            Some(conversation) => chains.entry(conversation).or_default().push(row),
            None => alone.push(vec![row]),
        }
    }
    chains.into_values().chain(alone).collect()
}

/// The worker as it runs: conversations being sent, each by a task of its own.
pub struct Sending {
    worker: OutboxWorker,
    tasks: JoinSet<Vec<Settlement>>,
    /// How many rows each task is sending.
    rows_of_task: HashMap<tokio::task::Id, usize>,
    /// Outcomes the store could not take yet (busy): written with the next ones.
    unrecorded: Vec<Settlement>,
}

impl Sending {
    fn new(worker: OutboxWorker) -> Self {
        Self {
            worker,
            tasks: JoinSet::new(),
            rows_of_task: HashMap::new(),
            unrecorded: Vec::new(),
        }
    }

    /// Whether rows are being sent, or outcomes wait to be recorded.
    pub fn is_busy(&self) -> bool {
        !self.tasks.is_empty() || !self.unrecorded.is_empty()
    }

    fn is_sending(&self) -> bool {
        !self.tasks.is_empty()
    }

    fn has_unrecorded(&self) -> bool {
        !self.unrecorded.is_empty()
    }

    /// Claims due rows, as many as there is room for, and starts sending them. Returns
    /// how many it started.
    pub async fn start_due(&mut self) -> Result<usize, StoreError> {
        let room = BATCH.saturating_sub(self.rows_of_task.values().sum());
        if room == 0 {
            return Ok(0);
        }
        let rows = self.worker.claim(room).await?;
        let count = rows.len();
        for chain in by_conversation(rows) {
            let worker = self.worker.clone();
            let rows = chain.len();
            let task = self
                .tasks
                .spawn(async move { worker.deliver_in_order(chain).await });
            self.rows_of_task.insert(task.id(), rows);
        }
        Ok(count)
    }

    /// Waits until at least one conversation's rows are sent, and records what became of
    /// them and of any other conversation finished by then. Returns how many rows it
    /// recorded.
    pub async fn finish_some(&mut self) -> Result<usize, StoreError> {
        match self.next_finished().await {
            Some(finished) => self.record(Some(finished)).await,
            None => self.record(None).await,
        }
    }

    /// The next conversation whose rows are sent. Cancel-safe: nothing is lost when the
    /// wait is given up.
    async fn next_finished(&mut self) -> Option<TaskResult> {
        self.tasks.join_next_with_id().await
    }

    /// Records what became of `first` and of every other conversation finished by now, in
    /// one transaction.
    /// Outcomes the store could not take (a busy database) are kept and written with the
    /// next ones: a send that is not recorded would be sent again once its lease ran out.
    async fn record(&mut self, first: Option<TaskResult>) -> Result<usize, StoreError> {
        let mut finished: Vec<TaskResult> = first.into_iter().collect();
        while let Some(more) = self.tasks.try_join_next_with_id() {
            finished.push(more);
        }
        for result in finished {
            match result {
                Ok((task, settlements)) => {
                    self.rows_of_task.remove(&task);
                    self.unrecorded.extend(settlements);
                }
                // The task's rows stay leased: they are sent again once the lease runs out.
                Err(error) => {
                    self.rows_of_task.remove(&error.id());
                    tracing::error!(%error, "an outbox task failed");
                }
            }
        }
        self.worker.settle(&self.unrecorded).await?;
        Ok(std::mem::take(&mut self.unrecorded).len())
    }
}

type TaskResult = Result<(tokio::task::Id, Vec<Settlement>), tokio::task::JoinError>;
