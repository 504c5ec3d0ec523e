//! What the running agent or operator counts, for Prometheus: attempts, skips,
//! escalations, circuits and pauses, and how long signals, attempts and journal
//! writes take. The loop counts as it decides; the gauges that depend on the clock
//! (a circuit open until a time, a pause until another) are read from the engine at
//! each scrape, so they are never stale.
//!
//! Families (every name is in [`FAMILIES`], which the Grafana dashboard's test reads):
//! `salve_attempts_total{policy,action,result}`, `salve_skips_total{policy,reason}`,
//! `salve_escalations_total{policy}`, `salve_attempt_duration_seconds{action}`,
//! `salve_signal_to_decision_seconds`, `salve_journal_write_seconds`,
//! `salve_journal_write_errors_total`, `salve_circuit_open{policy,target}`,
//! `salve_paused{policy,target}`, `salve_policies`, `salve_reloads_total{result}`,
//! `salve_build_info{version}`.

use crate::engine::{Outcome, OutcomeResult, PolicyStatus, SkipReason, Timestamp};
use crate::policy::Policy;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Every family `/metrics` exports, as Prometheus names it (counters with `_total`).
pub const FAMILIES: &[&str] = &[
    "salve_attempts_total",
    "salve_skips_total",
    "salve_escalations_total",
    "salve_attempt_duration_seconds",
    "salve_signal_to_decision_seconds",
    "salve_journal_write_seconds",
    "salve_journal_write_errors_total",
    "salve_circuit_open",
    "salve_paused",
    "salve_policies",
    "salve_reloads_total",
    "salve_build_info",
];

/// The `Content-Type` of what [`Metrics::encode`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    policy: String,
    action: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SkipLabels {
    policy: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabel {
    policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    policy: String,
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// One process's metrics. Shared (`Arc`) by the loop, the journal's thread and the
/// HTTP listener; every update is a few atomic operations.
pub struct Metrics {
    registry: Registry,
    attempts: Family<AttemptLabels, Counter>,
    skips: Family<SkipLabels, Counter>,
    escalations: Family<PolicyLabel, Counter>,
    /// By the policy's actions, not the policy: a histogram is a dozen series, and a
    /// thousand policies' worth made a scrape half a megabyte. How long an attempt takes
    /// is its actions' doing; how often each policy acts is `salve_attempts_total`.
    attempt_duration: Histograms<ActionLabel>,
    decision_lag: Histogram,
    journal_write: Histogram,
    journal_errors: Counter,
    circuit_open: Family<TargetLabels, Gauge>,
    paused: Family<TargetLabels, Gauge>,
    policies: Gauge,
    reloads: Family<ResultLabel, Counter>,
    /// The last journal write failed: not ready (`/readyz`) until one succeeds.
    journal_failing: AtomicBool,
    /// Scrapes set the engine's gauges afresh and encode them under this lock, so two
    /// at once cannot interleave a clear and an encode.
    scrape: Mutex<()>,
}

/// Attempts take from tens of milliseconds (a restart) to minutes (a rollout and its
/// verify).
const ATTEMPT_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// A decision takes microseconds; a queue backed up behind a stalled loop, seconds.
const LAG_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
/// An append and fsync: a fraction of a millisecond on an SSD, seconds on a disk in
/// trouble.
const JOURNAL_BUCKETS: [f64; 12] = [
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

fn attempt_buckets() -> Histogram {
    Histogram::new(ATTEMPT_BUCKETS)
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("salve");
        let attempts = Family::<AttemptLabels, Counter>::default();
        registry.register(
            "attempts",
            "Attempts finished, by policy, its actions and the attempt's result (ok, failed, timed_out, not_applicable, unknown, not_verified)",
            attempts.clone(),
        );
        let skips = Family::<SkipLabels, Counter>::default();
        registry.register(
            "skips",
            "Decisions not to act, by policy and reason (cooldown, circuit_open, paused, ...)",
            skips.clone(),
        );
        let escalations = Family::<PolicyLabel, Counter>::default();
        registry.register(
            "escalations",
            "Escalations decided: a circuit opened, a storm, a drain that could not be made",
            escalations.clone(),
        );
        let attempt_duration: Histograms<ActionLabel> =
            Family::new_with_constructor(attempt_buckets);
        registry.register_with_unit(
            "attempt_duration",
            "How long attempts took, from the decision to act to the outcome",
            Unit::Seconds,
            attempt_duration.clone(),
        );
        let decision_lag = Histogram::new(LAG_BUCKETS);
        registry.register_with_unit(
            "signal_to_decision",
            "From a signal entering the loop's queue to the engine's decision on it (wait in the queue included)",
            Unit::Seconds,
            decision_lag.clone(),
        );
        let journal_write = Histogram::new(JOURNAL_BUCKETS);
        registry.register_with_unit(
            "journal_write",
            "One journal record appended and fsync'd",
            Unit::Seconds,
            journal_write.clone(),
        );
        let journal_errors = Counter::default();
        registry.register(
            "journal_write_errors",
            "Journal records that could not be written",
            journal_errors.clone(),
        );
        let circuit_open = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "circuit_open",
            "1 while a policy's circuit on a target is open (maxAttempts reached in its window)",
            circuit_open.clone(),
        );
        let paused = Family::<TargetLabels, Gauge>::default();
        registry.register(
            "paused",
            "1 while a policy on a target is paused by a person (salve pause)",
            paused.clone(),
        );
        let policies = Gauge::default();
        registry.register("policies", "Policies loaded", policies.clone());
        let reloads = Family::<ResultLabel, Counter>::default();
        registry.register(
            "reloads",
            "Policy reloads, by result (ok, refused: the last good policies were kept)",
            reloads.clone(),
        );
        registry.register(
            "build",
            "The running salve's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics {
            registry,
            attempts,
            skips,
            escalations,
            attempt_duration,
            decision_lag,
            journal_write,
            journal_errors,
            circuit_open,
            paused,
            policies,
            reloads,
            journal_failing: AtomicBool::new(false),
            scrape: Mutex::new(()),
        }
    }

    pub fn attempt_finished(&self, policy: &Policy, outcome: &Outcome, took: Duration) {
        let result = match (outcome.result, outcome.verified) {
            (OutcomeResult::Ok, Some(false)) => "not_verified",
            (result, _) => result.as_str(),
        };
        self.attempts
            .get_or_create(&AttemptLabels {
                policy: policy.name().to_string(),
                action: actions_of(policy),
                result: result.to_string(),
            })
            .inc();
        self.attempt_duration
            .get_or_create(&ActionLabel {
                action: actions_of(policy),
            })
            .observe(took.as_secs_f64());
    }

    pub fn skipped(&self, policy: &str, reason: SkipReason) {
        self.skips
            .get_or_create(&SkipLabels {
                policy: policy.to_string(),
                reason: reason.as_str().to_string(),
            })
            .inc();
    }

    pub fn escalated(&self, policy: &str) {
        self.escalations
            .get_or_create(&PolicyLabel {
                policy: policy.to_string(),
            })
            .inc();
    }

    pub fn decided(&self, lag: Duration) {
        self.decision_lag.observe(lag.as_secs_f64());
    }

    /// One journal write, from the journal's own thread.
    pub fn journal_written(&self, took: Duration, ok: bool) {
        self.journal_write.observe(took.as_secs_f64());
        if !ok {
            self.journal_errors.inc();
        }
        self.journal_failing.store(!ok, Ordering::Relaxed);
    }

    pub fn journal_failing(&self) -> bool {
        self.journal_failing.load(Ordering::Relaxed)
    }

    pub fn policies_loaded(&self, count: usize) {
        self.policies.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub fn reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "refused" };
        self.reloads
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }

    /// The Prometheus text format of every family, the engine's gauges set from
    /// `status` at `now` first. A target the engine no longer knows leaves the gauges.
    pub fn encode(&self, status: &[PolicyStatus], now: Timestamp) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.circuit_open.clear();
        self.paused.clear();
        // A selector's own line names no target: its objects' lines follow it.
        for line in status.iter().filter(|line| !line.selector) {
            let labels = TargetLabels {
                policy: line.policy.clone(),
                target: line.target.clone(),
            };
            let open = line.circuit_open_until.is_some_and(|until| until > now);
            let paused = line.paused_until.is_some_and(|until| until > now);
            self.circuit_open
                .get_or_create(&labels)
                .set(i64::from(open));
            self.paused.get_or_create(&labels).set(i64::from(paused));
        }
        let mut text = String::with_capacity(4096 + status.len() * 160);
        // Writing into a String cannot fail; the encoder's only error is the writer's.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

/// A policy's actions as one label value: `restart`, `phpFpmEdit+restart`.
fn actions_of(policy: &Policy) -> String {
    let names: Vec<&str> = policy.spec.actions.iter().map(|a| a.name()).collect();
    names.join("+")
}

#[cfg(test)]
mod tests;
