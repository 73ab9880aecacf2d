//! The receivers of events: a subscription's URL, `POST`ed a Standard Webhooks request
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`, the JSON body as signed).

use std::time::Duration;

use super::{status_error, HttpClient, Upstream, UpstreamError};

/// How long a receiver has to answer. The Standard Webhooks specification recommends 15
/// to 30 s; the outbox lease must be longer than any one send (see `ICB_OUTBOX_LEASE`).
pub const RECEIVER_TIMEOUT: Duration = Duration::from_secs(15);

/// One signed request, as it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedEvent {
    pub webhook_id: String,
    /// The attempt's time (Unix seconds): receivers refuse one too far from their clock.
    pub timestamp_s: i64,
    pub signature: String,
    pub body: String,
}

#[derive(Clone)]
pub struct ReceiverClient {
    http: HttpClient,
}

impl ReceiverClient {
    pub fn new(http: HttpClient) -> Self {
        Self { http }
    }

    /// Sends one event. Any `2xx` is a success (the body is not read); anything else is an
    /// error whose status and `Retry-After` the worker acts on. Redirects are not
    /// followed (the specification counts a `3xx` as a failure).
    pub async fn deliver(&self, url: &url::Url, event: &SignedEvent) -> Result<(), UpstreamError> {
        let request = self
            .http
            .post(url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", &event.webhook_id)
            .header("webhook-timestamp", event.timestamp_s.to_string())
            .header("webhook-signature", &event.signature)
            .body(event.body.clone());
        let response = self.http.send(Upstream::Receiver, request).await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(status_error(Upstream::Receiver, response).await)
        }
    }
}
