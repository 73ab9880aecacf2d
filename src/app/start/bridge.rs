//! The bridge as the settings describe it: for `serve`, and for the CLI's verbs.

use std::sync::Arc;

use secrecy::SecretString;
use tokio::sync::Notify;

use super::StartupError;
use crate::app::settings::{FollowupReply, LongReplies, ReplyMode, Settings};
use crate::bridge::{Bridge, BridgeParts, CustomerReplies, MeetingPolicy};
use crate::delivery::pauses::Pauses;
use crate::desks::Desks;
use crate::domain::clock::Clock;
use crate::domain::metrics::Metrics;
use crate::domain::ReplySenders;
use crate::store::Store;
use crate::upstream;
use crate::upstream::instant_connect::InstantConnectClient;

/// The bridge on the configured database (migrated), for the CLI's admin verbs: they do
/// what the admin API does. What they queue is delivered by a running `icbridge serve`.
pub async fn open_bridge(settings: &Settings) -> Result<Bridge, StartupError> {
    let store = super::store::open(settings).await?;
    cli_bridge(settings, store)
}

/// The bridge on the configured database as it is, not migrated: for `icbridge check`,
/// which only looks.
pub async fn connect_bridge(settings: &Settings) -> Result<Bridge, StartupError> {
    let store = Store::connect(&settings.data.database_url).await?;
    cli_bridge(settings, store)
}

/// A bridge of its own for one CLI verb: nothing wakes a worker, time is the system's.
fn cli_bridge(settings: &Settings, store: Store) -> Result<Bridge, StartupError> {
    let runtime = BridgeRuntime {
        metrics: Metrics::new(),
        clock: Clock::system(),
        outbox_wake: Default::default(),
        pauses: Pauses::new(store.clone(), Clock::system()),
    };
    bridge(settings, store, runtime)
}

/// What a bridge runs with besides the settings.
pub(super) struct BridgeRuntime {
    pub(super) metrics: Metrics,
    pub(super) clock: Clock,
    /// Woken when deliveries are queued.
    pub(super) outbox_wake: Arc<Notify>,
    /// Upstreams that asked to wait or refused the credential, shared with the workers.
    pub(super) pauses: Pauses,
}

/// The bridge as the settings describe it, for `serve` and for the CLI's verbs. It makes
/// no upstream call until asked to.
pub(super) fn bridge(
    settings: &Settings,
    store: Store,
    runtime: BridgeRuntime,
) -> Result<Bridge, StartupError> {
    // `serve` refuses to start without a token; the CLI's verbs never call the broker.
    let token = settings
        .webex
        .token
        .clone()
        .unwrap_or_else(|| SecretString::from(""));
    let broker = InstantConnectClient::new(
        upstream::HttpClient::new(settings.broker.timeout).with_metrics(runtime.metrics.clone()),
        settings.broker.base_url.clone(),
        settings.broker.join_url.clone(),
        token,
    );
    let connect_configured =
        settings.connect.urls().is_some() && settings.connect.service_key.is_some();
    let customer_replies = connect_configured.then(|| CustomerReplies {
        senders: ReplySenders {
            sms_sender: settings.connect.sms_sender.clone(),
            whatsapp_app_id: settings.connect.whatsapp_app_id.clone(),
        },
        send_links: settings.replies.mode() == ReplyMode::Connect,
        resend_link_on_followup: settings.replies.followup == FollowupReply::Link,
        whatsapp_template: settings.connect.whatsapp_template.clone(),
        survey: settings.replies.survey,
        refuse_long_replies: settings.replies.long_replies == LongReplies::Refuse,
    });
    let desks = Desks::for_cli(&settings.desks, settings.expert_target.as_ref());
    Ok(Bridge::new(BridgeParts {
        reply_texts: desks.reply_texts(settings.replies.template.clone()),
        desks,
        store,
        broker,
        policy: MeetingPolicy {
            ttl: settings.meetings.link_ttl,
            vertical: settings.meetings.vertical,
            short_urls: settings.meetings.short_urls,
            host_login: settings.meetings.host_login,
            hosts: settings.meetings.hosts,
            guests: settings.meetings.guests,
            appointment_reminder: settings.meetings.appointment_reminder,
            appointment_early_join: settings.meetings.appointment_early_join,
            broker_timeout: settings.broker.timeout,
            max_new_meetings_per_hour: settings.meetings.max_new_per_hour,
        },
        customer_replies,
        outbox_wake: runtime.outbox_wake,
        metrics: runtime.metrics,
        clock: runtime.clock,
        pauses: runtime.pauses,
        link_base: settings.http.public_url.clone(),
        event_includes: settings
            .events
            .subscriptions
            .iter()
            .map(|s| (s.name.clone(), s.include))
            .collect(),
    }))
}
