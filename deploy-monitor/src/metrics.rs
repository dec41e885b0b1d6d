//! The names of the metrics deploy-monitor publishes, and
//! [`DeployMonitor::publish_metrics`](crate::DeployMonitor::publish_metrics),
//! which sets them from the latest evaluation.
//!
//! Prometheus naming: the `foundation_deploy_` prefix, base units
//! (seconds, ratios 0 to 1), counters ending in `_total`, and only
//! low-cardinality labels (`cohort`: overall, unassigned, control,
//! treatment; `check`; `outcome`; `kind`). This module is not for
//! rendering (`prometheus.rs`).

use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};

use crate::analysis::{Check, Outcome};
use crate::health::CohortHealth;
use crate::monitor::{DeployMonitor, ROLLBACK_KINDS};

/// Gauge: the current phase (0 is the baseline).
pub const PHASE: &str = "foundation_deploy_phase";
/// Gauge: 1 while the rollout is paused.
pub const PAUSED: &str = "foundation_deploy_paused";
/// Gauge: requests in the window, by cohort.
pub const WINDOW_REQUESTS: &str = "foundation_deploy_window_requests";
/// Gauge: error rate in the window (0 to 1), by cohort.
pub const ERROR_RATE: &str = "foundation_deploy_error_rate_ratio";
/// Gauge: supervisor restarts per second in the window, by cohort.
pub const RESTART_RATE: &str = "foundation_deploy_restarts_per_second";
/// Gauge: message delivery success in the window (0 to 1), by cohort.
pub const DELIVERY_SUCCESS: &str = "foundation_deploy_delivery_success_ratio";
/// Gauge: state recovery success in the window (0 to 1), by cohort.
pub const RECOVERY_SUCCESS: &str = "foundation_deploy_recovery_success_ratio";
/// Gauge: median request latency in the window, by cohort.
pub const LATENCY_P50: &str = "foundation_deploy_request_latency_p50_seconds";
/// Gauge: 95th percentile request latency in the window, by cohort.
pub const LATENCY_P95: &str = "foundation_deploy_request_latency_p95_seconds";
/// Gauge: 99th percentile request latency in the window, by cohort.
pub const LATENCY_P99: &str = "foundation_deploy_request_latency_p99_seconds";
/// Gauge: 1 for the latest outcome of each check, 0 for the others, by
/// check and outcome.
pub const CHECK_OUTCOME: &str = "foundation_deploy_check_outcome";
/// Counter: evaluations, by outcome.
pub const EVALUATIONS_TOTAL: &str = "foundation_deploy_evaluations_total";
/// Counter: rollbacks, by kind (automatic, manual, emergency).
pub const ROLLBACKS_TOTAL: &str = "foundation_deploy_rollbacks_total";

const OUTCOMES: [Outcome; 3] = [Outcome::Pass, Outcome::Fail, Outcome::Inconclusive];

/// Describes every metric to the installed recorder (units and help text).
pub fn describe() {
    describe_gauge!(PHASE, "The current rollout phase (0 is the baseline).");
    describe_gauge!(PAUSED, "1 while the rollout is paused.");
    describe_gauge!(WINDOW_REQUESTS, "Requests in the health window.");
    describe_gauge!(ERROR_RATE, "Error rate in the health window, 0 to 1.");
    describe_gauge!(
        RESTART_RATE,
        "Supervisor restarts per second in the health window."
    );
    describe_gauge!(
        DELIVERY_SUCCESS,
        "Message delivery success in the health window, 0 to 1."
    );
    describe_gauge!(
        RECOVERY_SUCCESS,
        "State recovery success in the health window, 0 to 1."
    );
    describe_gauge!(
        LATENCY_P50,
        Unit::Seconds,
        "Median request latency in the health window."
    );
    describe_gauge!(
        LATENCY_P95,
        Unit::Seconds,
        "95th percentile request latency in the health window."
    );
    describe_gauge!(
        LATENCY_P99,
        Unit::Seconds,
        "99th percentile request latency in the health window."
    );
    describe_gauge!(
        CHECK_OUTCOME,
        "1 for the latest outcome of each health check."
    );
    describe_counter!(EVALUATIONS_TOTAL, "Health evaluations, by outcome.");
    describe_counter!(ROLLBACKS_TOTAL, "Rollbacks, by kind.");
}

fn publish_cohort(label: &'static str, health: &CohortHealth) {
    gauge!(WINDOW_REQUESTS, "cohort" => label).set(health.requests as f64);
    let optional = |name: &'static str, value: Option<f64>| {
        // No data is NaN, which Prometheus understands as "no value".
        gauge!(name, "cohort" => label).set(value.unwrap_or(f64::NAN));
    };
    optional(ERROR_RATE, health.error_rate);
    optional(
        RESTART_RATE,
        health.restarts_per_minute.map(|rate| rate / 60.0),
    );
    optional(DELIVERY_SUCCESS, health.delivery_success);
    optional(RECOVERY_SUCCESS, health.recovery_success);
    optional(
        LATENCY_P50,
        health.latency.p50.map(|latency| latency.as_secs_f64()),
    );
    optional(
        LATENCY_P95,
        health.latency.p95.map(|latency| latency.as_secs_f64()),
    );
    optional(
        LATENCY_P99,
        health.latency.p99.map(|latency| latency.as_secs_f64()),
    );
}

impl DeployMonitor {
    /// Sets every metric of this crate from the latest state, through the
    /// `metrics` facade (the installed recorder, or a local one). The
    /// [`MonitorActor`](crate::MonitorActor) calls it on every tick.
    pub fn publish_metrics(&self) {
        let published = self.published().clone();
        gauge!(PHASE).set(f64::from(published.phase));
        gauge!(PAUSED).set(if published.paused { 1.0 } else { 0.0 });
        for (outcome, count) in OUTCOMES.iter().zip(published.evaluations) {
            counter!(EVALUATIONS_TOTAL, "outcome" => outcome.as_str()).absolute(count);
        }
        for (kind, count) in ROLLBACK_KINDS.iter().zip(published.rollbacks) {
            counter!(ROLLBACKS_TOTAL, "kind" => kind.as_str()).absolute(count);
        }
        let Some(evaluation) = published.last else {
            return;
        };
        publish_cohort("overall", &evaluation.report.overall);
        for health in &evaluation.report.cohorts {
            let label = health.cohort.map_or("overall", |cohort| cohort.as_str());
            publish_cohort(label, health);
        }
        for check in Check::ALL {
            let outcome = evaluation
                .judgement
                .check(check)
                .map(|result| result.outcome);
            for candidate in OUTCOMES {
                let value = if outcome == Some(candidate) { 1.0 } else { 0.0 };
                gauge!(CHECK_OUTCOME, "check" => check.as_str(), "outcome" => candidate.as_str())
                    .set(value);
            }
        }
    }
}
