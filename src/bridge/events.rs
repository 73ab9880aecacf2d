//! The stored events for the systems of record, as the admin API and the CLI read and
//! send them again: a page of events as a subscription would get them, resending, and
//! enabling a subscription a `410` disabled.

use super::{Bridge, BridgeError};
use crate::domain::audit::{Action, Actor};
use crate::domain::clock;
use crate::domain::events::{render, EventType, Includes};
use crate::store::EventQuery;

/// Which stored events to read (`GET /api/events`).
#[derive(Debug, Clone, Default)]
pub struct EventsRequest {
    /// At or after this instant (Unix ms).
    pub since: i64,
    /// After this event id (the previous page's `next`).
    pub after: i64,
    /// Only these types; empty: all.
    pub types: Vec<EventType>,
    pub limit: i64,
    /// Rendered as this subscription receives them; `None`: with the default includes
    /// (no texts, media or links, masked numbers).
    pub subscription: Option<String>,
}

/// A page of events, each rendered (`type`, `timestamp`, `data`) with its `id` (the
/// `webhook-id`), and the cursor of the next page when this one is full.
#[derive(Debug, Clone)]
pub struct EventsPage {
    pub events: Vec<serde_json::Value>,
    pub next: Option<i64>,
}

impl Bridge {
    /// Stored events, oldest first, as `request.subscription` would get them.
    pub async fn events(&self, request: EventsRequest) -> Result<EventsPage, BridgeError> {
        let include = match &request.subscription {
            None => Includes::default(),
            Some(name) => *self
                .inner
                .event_includes
                .get(name)
                .ok_or_else(|| BridgeError::UnknownSubscription(name.clone()))?,
        };
        let stored = self
            .inner
            .store
            .events(&EventQuery {
                since: request.since,
                after_id: request.after,
                types: request.types,
                limit: request.limit,
            })
            .await?;
        let next = (stored.len() as i64 == request.limit)
            .then(|| stored.last().map(|event| event.id))
            .flatten();
        let events = stored
            .iter()
            .map(|event| {
                let mut body = render(event, &include);
                body["id"] = event.webhook_id().into();
                body
            })
            .collect();
        Ok(EventsPage { events, next })
    }

    /// Queues the stored events since `since` again (for `subscription`, or every enabled
    /// one that takes them); returns how many deliveries were queued.
    pub async fn resend_events(
        &self,
        since: i64,
        subscription: Option<&str>,
        actor: &Actor,
    ) -> Result<u64, BridgeError> {
        if let Some(name) = subscription {
            // As the serving instances configured them (the CLI may be configured without).
            let names = self.inner.store.event_subscription_names().await?;
            if !names.iter().any(|known| known == name) {
                return Err(BridgeError::UnknownSubscription(name.to_string()));
            }
        }
        let queued = self
            .inner
            .store
            .resend_events(since, subscription, self.now())
            .await?;
        let detail = format!(
            "since {}, subscription {}: {queued} deliveries queued",
            clock::rfc3339(since),
            subscription.unwrap_or("any")
        );
        let audit = self.audit_entry(actor, Action::Resend, "events".into(), Some(detail));
        self.inner.store.record_audit(audit).await?;
        self.wake_outbox();
        Ok(queued)
    }

    /// Enables subscription `name` after a `410` disabled it; returns whether it was
    /// disabled.
    pub async fn enable_event_subscription(
        &self,
        name: &str,
        actor: &Actor,
    ) -> Result<bool, BridgeError> {
        let names = self.inner.store.event_subscription_names().await?;
        if !names.iter().any(|known| known == name) {
            return Err(BridgeError::UnknownSubscription(name.to_string()));
        }
        let enabled = self.inner.store.enable_event_subscription(name).await?;
        let detail = if enabled {
            "enabled"
        } else {
            "was not disabled"
        };
        let audit = self.audit_entry(
            actor,
            Action::Enable,
            format!("event subscription {name}"),
            Some(detail.into()),
        );
        self.inner.store.record_audit(audit).await?;
        Ok(enabled)
    }
}
