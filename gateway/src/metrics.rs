//! Prometheus metrics: sign-ins by outcome, the password-hash queue, request latency by route,
//! projection lag, and the scheduler's when it runs in the same process.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProjectionLabel {
    pub projection: &'static str,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms to about 8 s.
    Histogram::new(exponential_buckets(0.00025, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    pub sign_ins: Family<Outcome, Counter>,
    pub requests: Family<Route, Histogram, fn() -> Histogram>,
    pub hash_queue: Gauge,
    pub projection_lag: Family<ProjectionLabel, Gauge>,
    pub scheduler_accounts: Gauge,
    /// Unix seconds of the next due step, 0 when nothing is due.
    pub scheduler_next_due: Gauge,
    pub scheduler_actions: Family<ActionLabel, Counter>,
    pub mail_queued: Gauge,
    pub mail_failing: Gauge,
    pub mail_sent: Gauge,
    pub mail_sent_again: Gauge,
    pub mail_refused: Gauge,
    pub mail_oldest_queued: Gauge,
    pub recovery_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tenure");
        let sign_ins = Family::<Outcome, Counter>::default();
        registry.register("sign_ins", "Sign-in attempts by outcome", sign_ins.clone());
        let requests = Family::<Route, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register("request_duration_seconds", "HTTP request latency by route", requests.clone());
        let hash_queue = Gauge::default();
        registry.register("password_hash_queue", "Password hashes waiting or running", hash_queue.clone());
        let projection_lag = Family::<ProjectionLabel, Gauge>::default();
        registry.register("projection_lag_events", "Events the projection has yet to apply", projection_lag.clone());
        let scheduler_accounts = Gauge::default();
        registry.register("scheduler_accounts", "Accounts the scheduler tracks", scheduler_accounts.clone());
        let scheduler_next_due = Gauge::default();
        registry.register(
            "scheduler_next_due_timestamp_seconds",
            "When the scheduler's next step is due (Unix time; 0 when none)",
            scheduler_next_due.clone(),
        );
        let scheduler_actions = Family::<ActionLabel, Counter>::default();
        registry.register("scheduler_actions", "Steps the scheduler took, by kind", scheduler_actions.clone());
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let mail_queued = gauge(&mut registry, "mail_queued", "Mails in the outbox not sent yet");
        let mail_failing =
            gauge(&mut registry, "mail_failing", "Queued mails the mail server has refused at least once");
        let mail_sent = gauge(&mut registry, "mail_sent", "Mails sent (kept 30 days)");
        let mail_sent_again = gauge(
            &mut registry,
            "mail_sent_again",
            "Mails sent more than once, each time with the same Message-ID (a worker stopped between sending and recording it)",
        );
        let mail_refused = gauge(
            &mut registry,
            "mail_refused",
            "Mails the mail server refused for good (a 5xx reply), never sent (kept 30 days)",
        );
        let mail_oldest_queued =
            gauge(&mut registry, "mail_oldest_queued_seconds", "Age of the oldest mail not sent yet (0 when none)");
        let recovery_dropped = Counter::default();
        registry.register(
            "recovery_requests_dropped",
            "Recovery requests dropped because they arrived faster than they were worked",
            recovery_dropped.clone(),
        );
        Metrics {
            registry,
            recovery_dropped,
            mail_queued,
            mail_failing,
            mail_sent,
            mail_sent_again,
            mail_refused,
            mail_oldest_queued,
            sign_ins,
            requests,
            hash_queue,
            projection_lag,
            scheduler_accounts,
            scheduler_next_due,
            scheduler_actions,
        }
    }
}

impl Metrics {
    pub fn sign_in(&self, outcome: &'static str) {
        self.sign_ins.get_or_create(&Outcome { outcome }).inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("metrics encode into a String");
        text
    }
}
