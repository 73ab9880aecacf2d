//! Reading conversations, the queue, deliveries and the database's figures: for the admin
//! API, the CLI, the console and the desk.

use super::{Bridge, BridgeError};
use crate::domain::audit::{Action, Actor};
use crate::domain::clock;
use crate::domain::metrics::DatabaseFigures;
use crate::domain::Conversation;
use crate::domain::Meeting;
use crate::domain::{
    MeetingLinkRecord, OutboxRow, OutboxState, QueueItem, TranscriptEntry, UpstreamPause,
};
use crate::store::StoreError;

/// A conversation with its meetings and transcript.
#[derive(Debug, Clone)]
pub struct ConversationDetail {
    pub conversation: Conversation,
    pub meetings: Vec<Meeting>,
    /// Every link of its meetings, with its role, oldest first.
    pub links: Vec<MeetingLinkRecord>,
    pub transcript: Vec<TranscriptEntry>,
}

impl Bridge {
    pub async fn conversation(&self, id: &str) -> Result<Option<Conversation>, BridgeError> {
        self.inner
            .store
            .conversation(id)
            .await
            .map_err(BridgeError::from)
    }

    /// The conversation a Webex message of the bot's (a notification, a thread) is about.
    pub async fn conversation_of_webex_message(
        &self,
        message_id: &str,
    ) -> Result<Option<Conversation>, BridgeError> {
        self.inner
            .store
            .conversation_by_webex_message(message_id)
            .await
            .map_err(BridgeError::from)
    }

    /// Conversations, newest first: `open`, `closed` or (`None`) all of them.
    pub async fn conversations(
        &self,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Conversation>, BridgeError> {
        self.inner
            .store
            .conversations(state, limit)
            .await
            .map_err(BridgeError::from)
    }

    /// Open conversations, oldest first.
    pub async fn open_conversations(&self, limit: i64) -> Result<Vec<Conversation>, BridgeError> {
        self.inner
            .store
            .open_conversations(limit)
            .await
            .map_err(BridgeError::from)
    }

    pub async fn conversation_detail(
        &self,
        id: &str,
    ) -> Result<Option<ConversationDetail>, BridgeError> {
        let store = &self.inner.store;
        let Some(conversation) = store.conversation(id).await? else {
            return Ok(None);
        };
        Ok(Some(ConversationDetail {
            conversation,
            meetings: store.meetings_of(id).await?,
            links: store.meeting_links_of(id).await?,
            transcript: store.transcript(id).await?,
        }))
    }

    /// The console's queue: open conversations, newest activity first.
    pub async fn queue(&self, limit: i64) -> Result<Vec<QueueItem>, BridgeError> {
        self.inner
            .store
            .queue(limit, self.now())
            .await
            .map_err(BridgeError::from)
    }

    pub async fn deliveries(
        &self,
        state: Option<OutboxState>,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, BridgeError> {
        self.inner
            .store
            .list_outbox(state, limit)
            .await
            .map_err(BridgeError::from)
    }

    /// Makes a dead (or waiting) delivery due now with a fresh retry schedule.
    pub async fn retry_delivery(&self, id: i64, actor: &Actor) -> Result<(), BridgeError> {
        let audit = self.audit_entry(actor, Action::Retry, format!("delivery {id}"), None);
        self.inner
            .store
            .revive_outbox(id, audit, self.now())
            .await
            .map_err(|error| match error {
                StoreError::NotFound { .. } => BridgeError::UnknownDelivery(id),
                other => other.into(),
            })?;
        self.wake_outbox();
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ready(&self) -> Result<(), BridgeError> {
        self.inner.store.ping().await.map_err(BridgeError::from)
    }

    /// What the metrics show of the database: deliveries by state, the oldest pending
    /// one, and the upstreams' pauses.
    pub async fn database_figures(&self) -> Result<DatabaseFigures, BridgeError> {
        let store = &self.inner.store;
        Ok(DatabaseFigures {
            outbox_rows: store.outbox_counts().await?,
            oldest_pending_at: store.oldest_pending_at().await?,
            oldest_undelivered_event_at: store.oldest_undelivered_event_at().await?,
            pauses: self
                .upstream_pauses()
                .await?
                .into_iter()
                .map(|pause| {
                    let refused = pause.credential_refused();
                    (pause.upstream, pause.paused_until, refused)
                })
                .collect(),
            now: self.now(),
        })
    }

    /// The upstreams' pauses (waits asked for, refused credentials), from the database.
    pub async fn upstream_pauses(&self) -> Result<Vec<UpstreamPause>, BridgeError> {
        self.inner.pauses.refresh().await.map_err(BridgeError::from)
    }

    /// Makes every dead delivery (of `kind`, queued since `since`) due now with a fresh
    /// retry schedule; returns how many.
    pub async fn retry_dead_deliveries(
        &self,
        kind: Option<&str>,
        since: Option<i64>,
        actor: &Actor,
    ) -> Result<u64, BridgeError> {
        let asked = format!(
            "kind {}, since {}",
            kind.unwrap_or("any"),
            since.map(clock::rfc3339).unwrap_or_else(|| "ever".into())
        );
        let audit = self.audit_entry(actor, Action::Retry, "dead deliveries".into(), Some(asked));
        let revived = self
            .inner
            .store
            .revive_dead_outbox(kind, since, audit, self.now())
            .await?;
        self.wake_outbox();
        Ok(revived)
    }
}
