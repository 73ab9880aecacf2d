//! Prometheus metrics of one running icbridge, served at `GET /metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
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
    outbox_rows: IntGaugeVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
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
        let outbox_rows = IntGaugeVec::new(
            Opts::new(
                "icbridge_outbox_rows",
                "Outbox rows by state (read from the database at each scrape)",
            ),
            &["state"],
        )
        .expect("valid metric");
        for metric in [
            Box::new(intake.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(meetings_created.clone()),
            Box::new(upstream_duration.clone()),
            Box::new(dead_letters.clone()),
            Box::new(outbox_rows.clone()),
        ] {
            registry.register(metric).expect("metric names are unique");
        }
        Self {
            registry,
            intake,
            meetings_created,
            upstream_duration,
            dead_letters,
            outbox_rows,
        }
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

    /// `upstream`: its label (`webex`, …); `status`: `2xx`, `4xx`, `5xx`, … or `error` when
    /// no answer came.
    pub fn upstream_request(&self, upstream: &str, status: &str, seconds: f64) {
        self.upstream_duration
            .with_label_values(&[upstream, status])
            .observe(seconds);
    }

    /// The Prometheus text format, with the outbox's current row counts.
    pub fn render(&self, outbox_rows: &[(String, i64)]) -> String {
        self.outbox_rows.reset();
        for state in ["pending", "sent", "dead"] {
            self.outbox_rows.with_label_values(&[state]).set(0);
        }
        for (state, count) in outbox_rows {
            self.outbox_rows.with_label_values(&[state]).set(*count);
        }
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding does not fail");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}
