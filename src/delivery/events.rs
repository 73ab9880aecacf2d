//! Delivering events to the subscriptions' receivers: each outbox row of kind `event` is
//! one event for one subscription, rendered for it, signed (Standard Webhooks) and sent.
//!
//! What a receiver answers governs only its own subscription: a `Retry-After` pauses its
//! deliveries (in this instance), a `410 Gone` disables it, and its rows are ordered by
//! their own lane, so a receiver that is slow or down never holds back a customer's
//! answer, the experts' messages or another receiver's events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::delivery::schedule;
use crate::domain::clock::Clock;
use crate::domain::events::{render, EventType, StoredEvent, Subscription};
use crate::domain::OutboxRow;
use crate::store::Outcome;
use crate::upstream::events::{ReceiverClient, SignedEvent};
use crate::upstream::UpstreamError;

use super::OutboxWorker;

/// What the worker needs to deliver events.
#[derive(Clone)]
pub struct EventDelivery {
    pub subscriptions: HashMap<String, Subscription>,
    pub client: ReceiverClient,
    /// The waits between an event's attempts (`ICB_EVENTS_RETRY_SCHEDULE`).
    pub schedule: Vec<Duration>,
    /// Until when each receiver that answered `Retry-After` (or `429`) waits (Unix ms).
    paused: Arc<Mutex<HashMap<String, i64>>>,
    /// Subscriptions whose receiver answered `410 Gone` to this instance: before sending
    /// to one, the database says whether it is still disabled (rows claimed with the one
    /// that got the `410` are not sent; an operator may have enabled it since).
    gone: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl EventDelivery {
    pub fn new(
        subscriptions: Vec<Subscription>,
        client: ReceiverClient,
        schedule: Vec<Duration>,
    ) -> Self {
        Self {
            subscriptions: subscriptions
                .into_iter()
                .map(|s| (s.name.clone(), s))
                .collect(),
            client,
            schedule,
            paused: Arc::default(),
            gone: Arc::default(),
        }
    }

    fn is_gone(&self, subscription: &str) -> bool {
        self.gone
            .lock()
            .expect("not poisoned")
            .contains(subscription)
    }

    fn set_gone(&self, subscription: &str, gone: bool) {
        let mut set = self.gone.lock().expect("not poisoned");
        if gone {
            set.insert(subscription.to_string());
        } else {
            set.remove(subscription);
        }
    }

    fn paused_until(&self, subscription: &str, now: i64) -> Option<i64> {
        let paused = self.paused.lock().expect("not poisoned");
        paused
            .get(subscription)
            .copied()
            .filter(|until| *until > now)
    }

    fn pause(&self, subscription: &str, until: i64) {
        let mut paused = self.paused.lock().expect("not poisoned");
        let entry = paused.entry(subscription.to_string()).or_insert(until);
        *entry = (*entry).max(until);
    }
}

/// How long a receiver's `Retry-After` is honoured at most: a receiver that asks for more
/// is tried again after this (and asked again).
const LONGEST_WAIT: Duration = Duration::from_secs(3600);

#[derive(serde::Deserialize)]
struct EventPayload {
    subscription: String,
}

impl OutboxWorker {
    /// Sends one event delivery and decides what becomes of its row.
    pub(super) async fn deliver_event(&self, row: &OutboxRow) -> Outcome {
        let Some(events) = &self.parts.events else {
            return self.dead("events are not configured in this instance".into());
        };
        let Ok(EventPayload { subscription: name }) = serde_json::from_str(&row.payload) else {
            return self.dead("unreadable event delivery".into());
        };
        let Some(subscription) = events.subscriptions.get(&name) else {
            return self.dead(format!("subscription {name:?} is no longer configured"));
        };
        let now = self.now();
        if events.is_gone(&name) {
            match self.parts.store.event_subscription_disabled(&name).await {
                Ok(true) => {
                    return self.dead(format!("subscription {name} is disabled (410 Gone)"))
                }
                Ok(false) => events.set_gone(&name, false),
                Err(error) => {
                    return Outcome::Postponed {
                        next_attempt_at: now + 1000,
                        reason: Some(format!("could not read the subscription: {error}")),
                    }
                }
            }
        }
        let Some(event) = row.event() else {
            return Outcome::Cancelled {
                reason: "its event was erased or is past the retention".into(),
            };
        };
        // A row never tried before (no attempt, no wait recorded) is the event's emission to
        // this subscription.
        if row.attempts == 1 && row.last_error.is_none() {
            self.parts.metrics.event_emitted(&event.kind, &name);
        }
        if let Some(until) = events.paused_until(&name, now) {
            return Outcome::Postponed {
                next_attempt_at: until,
                reason: Some(format!("the receiver of {name} asked to wait")),
            };
        }
        let body = match self.event_body(&event, subscription).await {
            Ok(body) => body,
            Err(error) => {
                return Outcome::Postponed {
                    next_attempt_at: now + 1000,
                    reason: Some(format!("could not read the transcript: {error}")),
                }
            }
        };
        // The attempt's real time, not the service's clock (which the sandbox and the tests
        // move): receivers compare it with their own clock (±5 minutes in the Standard
        // Webhooks libraries) to refuse replays.
        let timestamp_s = Clock::system().now_ms() / 1000;
        let signed = SignedEvent {
            webhook_id: event.webhook_id(),
            timestamp_s,
            signature: subscription
                .secret
                .sign(&event.webhook_id(), timestamp_s, &body),
            body,
        };
        match events.client.deliver(&subscription.url, &signed).await {
            Ok(()) => {
                let latency = (now - event.occurred_at).max(0) as f64 / 1000.0;
                self.parts.metrics.event_sent(&event.kind, &name, latency);
                Outcome::Sent {
                    upstream_id: signed.webhook_id,
                    at: now,
                    opens_thread: false,
                    scheduled: false,
                }
            }
            Err(error) => self.event_failed(row, &name, events, &error).await,
        }
    }

    /// The body `subscription` receives: rendered for its `include`, the transcript read
    /// now for a closed conversation when it asks for it.
    async fn event_body(
        &self,
        event: &StoredEvent,
        subscription: &Subscription,
    ) -> Result<String, crate::store::StoreError> {
        let mut body = render(event, &subscription.include);
        // (`get_mut`: indexing would add the keys it does not find.)
        let attachments = body
            .get_mut("data")
            .and_then(|data| data.get_mut("media"))
            .and_then(|media| media.get_mut("attachments"))
            .and_then(serde_json::Value::as_array_mut);
        if let Some(attachments) = attachments {
            for attachment in attachments {
                self.experts_file_link(attachment);
            }
        }
        let closed = event.kind == EventType::ConversationClosed.as_str();
        if let (true, true, Some(conversation)) = (
            closed,
            subscription.include.transcript,
            &event.conversation_id,
        ) {
            let transcript: Vec<serde_json::Value> = self
                .parts
                .store
                .transcript(conversation)
                .await?
                .into_iter()
                .map(|entry| {
                    let mut line = serde_json::json!({
                        "author": entry.author,
                        "at": crate::domain::events::rfc3339_ms(entry.at),
                        "text": entry.text,
                    });
                    if subscription.include.media {
                        if let Some(media) = entry.media.as_deref() {
                            line["media"] = serde_json::from_str(media).unwrap_or_default();
                        }
                    }
                    line
                })
                .collect();
            body["data"]["transcript"] = transcript.into();
        }
        Ok(body.to_string())
    }

    /// An expert's file (`webex_url`: Webex keeps it, behind the bot's token) as a signed
    /// link to icbridge's `/media/` (with `ICB_PUBLIC_URL`), or only its name and type.
    fn experts_file_link(&self, attachment: &mut serde_json::Value) {
        let Some(object) = attachment.as_object_mut() else {
            return;
        };
        let Some(serde_json::Value::String(webex_url)) = object.remove("webex_url") else {
            return;
        };
        if let Some(links) = &self.parts.media_links {
            let file = crate::domain::ExpertFile {
                url: webex_url,
                mime_type: object["mime_type"].as_str().unwrap_or_default().to_string(),
                name: object["name"].as_str().unwrap_or_default().to_string(),
            };
            object.insert("url".into(), links.link(&file, self.now()).into());
        }
    }

    async fn event_failed(
        &self,
        row: &OutboxRow,
        name: &str,
        events: &EventDelivery,
        error: &UpstreamError,
    ) -> Outcome {
        let now = self.now();
        self.parts.metrics.event_failed(name);
        if let UpstreamError::Status { status: 410, .. } = error {
            let reason = "the receiver answered 410 Gone";
            events.set_gone(name, true);
            match self
                .parts
                .store
                .disable_event_subscription(name, reason, now)
                .await
            {
                Ok(_) => tracing::error!(
                    subscription = name,
                    "{reason}: the subscription is disabled; \
                    `icbridge events enable {name}` enables it again"
                ),
                Err(store) => tracing::error!(subscription = name, error = %store,
                    "{reason}, but the subscription could not be disabled"),
            }
            return self.dead(format!("{error}: subscription disabled"));
        }
        let asked = match error {
            UpstreamError::Status {
                status,
                retry_after,
                ..
            } => retry_after
                .map(|wait| wait.until_ms(now))
                .or_else(|| (*status == 429).then_some(now + 5_000)),
            _ => None,
        };
        if let Some(until) = asked {
            let until = until.clamp(now, now + LONGEST_WAIT.as_millis() as i64);
            events.pause(name, until);
            tracing::warn!(subscription = name, wait_ms = until - now, error = %error,
                "an event receiver asked to wait: its events wait");
            return Outcome::RetryAt {
                error: error.to_string(),
                next_attempt_at: until,
            };
        }
        match schedule::backoff(&events.schedule, row.attempts) {
            Some(delay) => {
                tracing::warn!(outbox_id = row.id, subscription = name, attempts = row.attempts,
                    retry_in_ms = delay.as_millis() as u64, error = %error, "event delivery failed, will retry");
                Outcome::RetryAt {
                    error: error.to_string(),
                    next_attempt_at: now + delay.as_millis() as i64,
                }
            }
            None => {
                tracing::error!(outbox_id = row.id, subscription = name, attempts = row.attempts,
                    error = %error, "event delivery failed for good; the row is dead");
                self.dead(error.to_string())
            }
        }
    }
}
