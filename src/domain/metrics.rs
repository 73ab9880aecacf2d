//! Prometheus metrics of one running icbridge, served at `GET /metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Counters and histograms, registered in a registry of their own (one per application,
/// so that tests running several applications in one process do not mix their counts).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    intake: IntCounterVec,
    meetings_created: IntCounter,
    upstream_duration: HistogramVec,
    dead_letters: IntCounter,
    sent: IntCounter,
    outbox_rows: IntGaugeVec,
    oldest_pending: IntGauge,
    paused: IntGaugeVec,
    credential_ok: IntGaugeVec,
    conversations_opened: IntCounterVec,
    conversations_taken: IntCounterVec,
    conversations_out_of_hours: IntCounterVec,
    link_opened: prometheus::Histogram,
    time_to_take: HistogramVec,
    ratings: HistogramVec,
    webhook_active: IntGaugeVec,
    caught_up: IntCounter,
    events_emitted: IntCounterVec,
    events_sent: IntCounterVec,
    event_failures: IntCounterVec,
    event_latency: HistogramVec,
    oldest_undelivered_event: IntGauge,
}

/// What the database says at a scrape.
#[derive(Debug, Default)]
pub struct DatabaseFigures {
    pub outbox_rows: Vec<(String, i64)>,
    /// When the oldest pending delivery was queued (Unix ms).
    pub oldest_pending_at: Option<i64>,
    /// By upstream label: until when it is paused (Unix ms), whether its credential is
    /// refused.
    pub pauses: Vec<(String, i64, bool)>,
    /// When the oldest event still to be delivered was queued (Unix ms).
    pub oldest_undelivered_event_at: Option<i64>,
    pub now: i64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, defined and registered. Long by nature, not by logic: one definition
    /// per metric with its name and help text, read top to bottom like the list in the
    /// README's "Metrics"; split up, the list would only be scattered.
    pub fn new() -> Self {
        let registry = Registry::new();
        let intake = IntCounterVec::new(
            Opts::new(
                "icbridge_intake_total",
                "Requests on /webhooks/connect by channel and outcome",
            ),
            &["channel", "outcome"],
        )
        .expect("valid metric");
        let meetings_created = IntCounter::new(
            "icbridge_meetings_created_total",
            "Instant Connect meetings created",
        )
        .expect("valid metric");
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "icbridge_upstream_request_duration_seconds",
                "Duration of requests to upstreams, by upstream and status class",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["upstream", "status"],
        )
        .expect("valid metric");
        let dead_letters = IntCounter::new(
            "icbridge_outbox_dead_letters_total",
            "Deliveries given up for good (the row is dead)",
        )
        .expect("valid metric");
        let sent = IntCounter::new(
            "icbridge_outbox_sent_total",
            "Deliveries to customers and experts recorded as sent (events have icbridge_event_*)",
        )
        .expect("valid metric");
        let outbox_rows = IntGaugeVec::new(
            Opts::new(
                "icbridge_outbox_rows",
                "Outbox rows to customers and experts still pending, held or dead (read from the database at each scrape; events have icbridge_event_*)",
            ),
            &["state"],
        )
        .expect("valid metric");
        let oldest_pending = IntGauge::new(
            "icbridge_outbox_oldest_pending_seconds",
            "Age of the oldest pending delivery (0 when none; read from the database)",
        )
        .expect("valid metric");
        let paused = IntGaugeVec::new(
            Opts::new(
                "icbridge_upstream_paused_seconds",
                "Seconds until deliveries to the upstream resume after it asked to wait or \
                 refused the credential (0: not paused; read from the database)",
            ),
            &["upstream"],
        )
        .expect("valid metric");
        let credential_ok = IntGaugeVec::new(
            Opts::new(
                "icbridge_upstream_credential_ok",
                "1 while the upstream accepts icbridge's credential, 0 while it refuses it",
            ),
            &["upstream"],
        )
        .expect("valid metric");
        let per_desk = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help), &["desk"]).expect("valid metric")
        };
        let conversations_opened = per_desk(
            "icbridge_conversations_opened_total",
            "Conversations opened, by the desk they went to",
        );
        let conversations_taken = per_desk(
            "icbridge_conversations_taken_total",
            "Conversations an expert took, by desk",
        );
        let conversations_out_of_hours = per_desk(
            "icbridge_conversations_out_of_hours_total",
            "Conversations that needed a meeting while their desk was closed, by desk",
        );
        let link_opened = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "icbridge_link_opened_seconds",
                "From a meeting's links being sent to the customer first opening theirs",
            )
            .buckets(vec![
                10.0,
                30.0,
                60.0,
                120.0,
                300.0,
                600.0,
                1800.0,
                3600.0,
                4.0 * 3600.0,
            ]),
        )
        .expect("valid metric");
        let time_to_take = HistogramVec::new(
            HistogramOpts::new(
                "icbridge_time_to_take_seconds",
                "From a conversation's first message to an expert taking it, by desk",
            )
            .buckets(vec![
                30.0,
                60.0,
                120.0,
                300.0,
                600.0,
                1800.0,
                3600.0,
                4.0 * 3600.0,
                24.0 * 3600.0,
            ]),
            &["desk"],
        )
        .expect("valid metric");
        // One bucket per rating: `le="3"` counts the ratings of 3 and below.
        let ratings = HistogramVec::new(
            HistogramOpts::new(
                "icbridge_ratings",
                "Customers' ratings (1 to 5) of closed conversations, by desk",
            )
            .buckets(vec![1.0, 2.0, 3.0, 4.0, 5.0]),
            &["desk"],
        )
        .expect("valid metric");
        let webhook_active = IntGaugeVec::new(
            Opts::new(
                "icbridge_webex_webhook_active",
                "1 while icbridge's Webex webhook for the resource is active and points at \
                 this icbridge, 0 while it is disabled, missing or wrong (checked every minute)",
            ),
            &["resource"],
        )
        .expect("valid metric");
        let caught_up = IntCounter::new(
            "icbridge_webex_messages_caught_up_total",
            "Webex messages icbridge never received as events and found by listing its rooms",
        )
        .expect("valid metric");
        let events_emitted = IntCounterVec::new(
            Opts::new(
                "icbridge_events_emitted_total",
                "Events queued for a subscription, by type and subscription (counted at their first attempt)",
            ),
            &["type", "subscription"],
        )
        .expect("valid metric");
        let events_sent = IntCounterVec::new(
            Opts::new(
                "icbridge_events_sent_total",
                "Events delivered to a subscription's receiver, by type and subscription",
            ),
            &["type", "subscription"],
        )
        .expect("valid metric");
        let event_failures = IntCounterVec::new(
            Opts::new(
                "icbridge_event_delivery_failures_total",
                "Failed attempts to deliver an event, by subscription",
            ),
            &["subscription"],
        )
        .expect("valid metric");
        let event_latency = HistogramVec::new(
            HistogramOpts::new(
                "icbridge_event_delivery_latency_seconds",
                "Time from an event to its delivery, by subscription",
            )
            .buckets(vec![
                0.05, 0.25, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0, 86400.0,
            ]),
            &["subscription"],
        )
        .expect("valid metric");
        let oldest_undelivered_event = IntGauge::new(
            "icbridge_event_oldest_undelivered_seconds",
            "Age of the oldest event not yet delivered to a subscription (0: none)",
        )
        .expect("valid metric");
        for metric in [
            Box::new(intake.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(webhook_active.clone()),
            Box::new(caught_up.clone()),
            Box::new(ratings.clone()),
            Box::new(conversations_opened.clone()),
            Box::new(conversations_taken.clone()),
            Box::new(conversations_out_of_hours.clone()),
            Box::new(link_opened.clone()),
            Box::new(time_to_take.clone()),
            Box::new(meetings_created.clone()),
            Box::new(upstream_duration.clone()),
            Box::new(dead_letters.clone()),
            Box::new(sent.clone()),
            Box::new(outbox_rows.clone()),
            Box::new(oldest_pending.clone()),
            Box::new(paused.clone()),
            Box::new(credential_ok.clone()),
            Box::new(events_emitted.clone()),
            Box::new(events_sent.clone()),
            Box::new(event_failures.clone()),
            Box::new(event_latency.clone()),
            Box::new(oldest_undelivered_event.clone()),
        ] {
            registry.register(metric).expect("metric names are unique");
        }
        Self {
            registry,
            intake,
            meetings_created,
            upstream_duration,
            dead_letters,
            sent,
            outbox_rows,
            oldest_pending,
            paused,
            credential_ok,
            conversations_opened,
            conversations_taken,
            conversations_out_of_hours,
            link_opened,
            time_to_take,
            ratings,
            webhook_active,
            caught_up,
            events_emitted,
            events_sent,
            event_failures,
            event_latency,
            oldest_undelivered_event,
        }
    }

    /// An event of `kind` was first tried for `subscription`.
    pub fn event_emitted(&self, kind: &str, subscription: &str) {
        self.events_emitted
            .with_label_values(&[kind, subscription])
            .inc();
    }

    /// An event of `kind` reached `subscription`'s receiver, `latency_s` after it happened.
    pub fn event_sent(&self, kind: &str, subscription: &str, latency_s: f64) {
        self.events_sent
            .with_label_values(&[kind, subscription])
            .inc();
        self.event_latency
            .with_label_values(&[subscription])
            .observe(latency_s);
    }

    /// An attempt to deliver an event to `subscription`'s receiver failed.
    pub fn event_failed(&self, subscription: &str) {
        self.event_failures.with_label_values(&[subscription]).inc();
    }

    /// Whether icbridge's Webex webhook for `resource` is active and right.
    pub fn webhook_active(&self, resource: &str, active: bool) {
        self.webhook_active
            .with_label_values(&[resource])
            .set(i64::from(active));
    }

    /// Messages found by a catch-up that no event had brought.
    pub fn caught_up(&self, count: usize) {
        self.caught_up.inc_by(count as u64);
    }

    /// A customer of `desk` rated their closed conversation.
    pub fn rated(&self, desk: &str, rating: i64) {
        self.ratings
            .with_label_values(&[desk])
            .observe(rating as f64);
    }

    pub fn conversation_opened(&self, desk: &str) {
        self.conversations_opened.with_label_values(&[desk]).inc();
    }

    /// A customer first opened their link, `seconds` after it was sent.
    pub fn link_opened(&self, seconds: f64) {
        self.link_opened.observe(seconds.max(0.0));
    }

    /// A conversation of `desk` needed a meeting while the desk was closed.
    pub fn conversation_out_of_hours(&self, desk: &str) {
        self.conversations_out_of_hours
            .with_label_values(&[desk])
            .inc();
    }

    /// A conversation of `desk` was taken `waited_seconds` after its first message.
    pub fn conversation_taken(&self, desk: &str, waited_seconds: f64) {
        self.conversations_taken.with_label_values(&[desk]).inc();
        self.time_to_take
            .with_label_values(&[desk])
            .observe(waited_seconds.max(0.0));
    }

    /// One request on `/webhooks/connect`. `channel` is `unknown` when it never got parsed.
    pub fn intake(&self, channel: &str, outcome: &str) {
        self.intake.with_label_values(&[channel, outcome]).inc();
    }

    pub fn meeting_created(&self) {
        self.meetings_created.inc();
    }

    pub fn dead_letter(&self) {
        self.dead_letters.inc();
    }

    pub fn rows_sent(&self, count: u64) {
        self.sent.inc_by(count);
    }

    /// `upstream`: its label (`webex`, …); `status`: `2xx`, `4xx`, `5xx`, … or `error` when
    /// no answer came.
    pub fn upstream_request(&self, upstream: &str, status: &str, seconds: f64) {
        self.upstream_duration
            .with_label_values(&[upstream, status])
            .observe(seconds);
    }

    /// The Prometheus text format, with what the database says now.
    pub fn render(&self, figures: &DatabaseFigures) -> String {
        self.outbox_rows.reset();
        // Sent rows are counted as they are sent (`icbridge_outbox_sent_total`): counting
        // a year of them at each scrape would read the whole outbox.
        for state in ["pending", "held", "dead"] {
            self.outbox_rows.with_label_values(&[state]).set(0);
        }
        for (state, count) in &figures.outbox_rows {
            self.outbox_rows.with_label_values(&[state]).set(*count);
        }
        let age = figures
            .oldest_pending_at
            .map_or(0, |at| (figures.now - at).max(0) / 1000);
        self.oldest_pending.set(age);
        let event_age = figures
            .oldest_undelivered_event_at
            .map_or(0, |at| (figures.now - at).max(0) / 1000);
        self.oldest_undelivered_event.set(event_age);
        for upstream in crate::domain::Upstream::ALL {
            let label = upstream.label();
            let pause = figures.pauses.iter().find(|(name, _, _)| name == label);
            let seconds = pause.map_or(0, |(_, until, _)| (until - figures.now).max(0) / 1000);
            let refused = pause.is_some_and(|(_, _, refused)| *refused);
            self.paused.with_label_values(&[label]).set(seconds);
            self.credential_ok
                .with_label_values(&[label])
                .set(i64::from(!refused));
        }
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding does not fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}
