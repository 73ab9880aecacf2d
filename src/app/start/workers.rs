//! The two background workers `serve` runs besides the HTTP server: the desk (experts'
//! events from Webex) and the outbox worker (every delivery). The smaller loops, desks
//! opening and retention, are in `app::loops`.

use std::sync::Arc;

use tokio::sync::Notify;

use super::clients::Clients;
use super::{webex_webhook_url, Shared};
use crate::app::settings::Settings;
use crate::delivery::media_links::MediaLinks;
use crate::delivery::{EventDelivery, OutboxParts, OutboxWorker};
use crate::experts::{Desk, DeskParts, WebhookSettings};
use crate::upstream::events::{ReceiverClient, RECEIVER_TIMEOUT};
use crate::upstream::HttpClient;

/// The desk: relays experts' replies and commands from Webex, and watches its webhooks.
pub(super) fn desk(settings: &Settings, shared: &Shared, clients: &Clients) -> Desk {
    Desk::new(DeskParts {
        bridge: shared.bridge.clone(),
        webex: clients.webex.clone(),
        events: shared.store.clone(),
        places: clients.places.clone(),
        schedule: settings.delivery.retry_schedule.clone(),
        clock: shared.clock.clone(),
        wake: Arc::new(Notify::new()),
        pauses: shared.pauses.clone(),
        files_relayable: settings.http.public_url.is_some(),
        metrics: shared.metrics.clone(),
        webhooks: settings
            .webex
            .webhook_secret
            .clone()
            .map(|secret| WebhookSettings {
                target_url: settings.http.public_url.as_ref().map(webex_webhook_url),
                secret,
            }),
        catch_up_every: settings.webex.catch_up_every,
        webhook_check_every: settings.webex.webhook_check_every,
    })
}

/// The outbox worker: sends what the bridge and the desk queue, with the clients.
pub(super) fn outbox(
    settings: &Settings,
    shared: &Shared,
    clients: Clients,
    media_links: Option<MediaLinks>,
) -> OutboxWorker {
    OutboxWorker::new(OutboxParts {
        media_links,
        store: shared.store.clone(),
        webex: clients.webex,
        connect: clients.connect,
        media: clients.media,
        whatsapp_template: settings.connect.whatsapp_template.clone(),
        places: clients.places,
        schedule: settings.delivery.retry_schedule.clone(),
        lease: settings.delivery.outbox_lease,
        metrics: shared.metrics.clone(),
        clock: shared.clock.clone(),
        pauses: shared.pauses.clone(),
        events: event_delivery(settings, shared),
    })
}

/// What the worker needs for the event subscriptions (`None` without any).
fn event_delivery(settings: &Settings, shared: &Shared) -> Option<EventDelivery> {
    let subscriptions = settings.events.subscriptions.clone();
    if subscriptions.is_empty() {
        return None;
    }
    // Receivers are the customer's own systems, often on a private network; a redirect is
    // a failure (the Standard Webhooks specification), not followed.
    let http =
        HttpClient::for_links(RECEIVER_TIMEOUT, &[], true).with_metrics(shared.metrics.clone());
    Some(EventDelivery::new(
        subscriptions,
        ReceiverClient::new(http),
        settings.events.retry_schedule.clone(),
    ))
}
