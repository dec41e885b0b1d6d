//! [`HealthReport`]: the plan's five health metrics, computed from the
//! window's counts, per cohort and overall, each with its sample count.
//!
//! A metric with no samples is `None`, never zero: "no data" is its own
//! answer, which the analysis (`analysis.rs`) turns into an inconclusive
//! check. This module is not for judging the figures.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cohort::Cohort;
use crate::histogram;
use crate::window::{WindowCounts, field};

/// Latency quantiles of the requests in a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// The median.
    pub p50: Option<Duration>,
    /// The 95th percentile.
    pub p95: Option<Duration>,
    /// The 99th percentile.
    pub p99: Option<Duration>,
    /// The mean (from bucket midpoints).
    pub mean: Option<Duration>,
}

impl LatencySummary {
    fn of(counts: &[u64]) -> LatencySummary {
        let ([p50, p95, p99], mean) = histogram::summary(counts, [0.50, 0.95, 0.99]);
        LatencySummary {
            p50,
            p95,
            p99,
            mean,
        }
    }
}

/// The health of one cohort (or of everything) over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CohortHealth {
    /// The cohort, or `None` for the overall figures.
    pub cohort: Option<Cohort>,
    /// Requests recorded.
    pub requests: u64,
    /// Errors counted against them.
    pub errors: u64,
    /// `errors / requests`, 0 to 1; `None` without requests.
    pub error_rate: Option<f64>,
    /// Request latency quantiles.
    pub latency: LatencySummary,
    /// Supervisor restarts.
    pub restarts: u64,
    /// Restarts per minute over the time covered (at least one minute);
    /// `None` when no restart source is attached and none was recorded.
    pub restarts_per_minute: Option<f64>,
    /// Deliveries attempted.
    pub deliveries_attempted: u64,
    /// `delivered / attempted`, 0 to 1; `None` without attempts.
    pub delivery_success: Option<f64>,
    /// State restores attempted.
    pub restores_attempted: u64,
    /// `restored / attempted`, 0 to 1; `None` without attempts.
    pub recovery_success: Option<f64>,
}

/// Every health metric over the window ending at `at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// When (monotonic clock time of the monitor's clock).
    pub at: Duration,
    /// The time the figures cover (the window, or less right after a start
    /// or a phase change).
    pub covered: Duration,
    /// Everything together.
    pub overall: CohortHealth,
    /// Per cohort, in [`Cohort::ALL`] order.
    pub cohorts: Vec<CohortHealth>,
    /// Restart events lost because the monitor fell behind the event bus
    /// (the restart figure is then a lower bound).
    pub lost_restart_events: u64,
}

impl HealthReport {
    /// The figures of one cohort.
    pub fn cohort(&self, cohort: Cohort) -> &CohortHealth {
        &self.cohorts[cohort.index()]
    }
}

/// What the report needs to know besides the counts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReportInputs {
    pub(crate) at: Duration,
    pub(crate) restart_source: bool,
    pub(crate) error_tracker: bool,
    pub(crate) lost_restart_events: u64,
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 / whole as f64).clamp(0.0, 1.0))
}

pub(crate) fn report(counts: &WindowCounts, inputs: ReportInputs) -> HealthReport {
    // At least one minute, so that a burst right after a start or a phase
    // change is not extrapolated from a few seconds.
    let minutes = counts.covered.as_secs_f64().max(60.0) / 60.0;
    let per_minute =
        |restarts: u64| (inputs.restart_source || restarts > 0).then(|| restarts as f64 / minutes);
    let cohorts: Vec<CohortHealth> = Cohort::ALL
        .iter()
        .map(|&cohort| {
            let histogram = counts.histogram(cohort);
            let requests: u64 = histogram.iter().sum();
            let errors = counts.get(cohort, field::ERRORS);
            let restarts = counts.get(cohort, field::RESTARTS);
            let deliveries = counts.get(cohort, field::DELIVERY_ATTEMPTS);
            let restores = counts.get(cohort, field::RESTORE_ATTEMPTS);
            CohortHealth {
                cohort: Some(cohort),
                requests,
                errors,
                error_rate: ratio(errors, requests),
                latency: LatencySummary::of(histogram),
                restarts,
                restarts_per_minute: per_minute(restarts),
                deliveries_attempted: deliveries,
                delivery_success: ratio(counts.get(cohort, field::DELIVERED), deliveries),
                restores_attempted: restores,
                recovery_success: ratio(counts.get(cohort, field::RESTORED), restores),
            }
        })
        .collect();
    let merged = counts.merged_histogram();
    let requests: u64 = merged.iter().sum();
    // With a tracker attached, its count is the overall error figure (every
    // failure the application tracks); otherwise the failed requests.
    let errors = if inputs.error_tracker {
        counts.sum(field::TRACKED_ERRORS)
    } else {
        counts.sum(field::ERRORS)
    };
    let restarts = counts.sum(field::RESTARTS);
    let deliveries = counts.sum(field::DELIVERY_ATTEMPTS);
    let restores = counts.sum(field::RESTORE_ATTEMPTS);
    let overall = CohortHealth {
        cohort: None,
        requests,
        errors,
        error_rate: ratio(errors, requests),
        latency: LatencySummary::of(&merged),
        restarts,
        restarts_per_minute: per_minute(restarts),
        deliveries_attempted: deliveries,
        delivery_success: ratio(counts.sum(field::DELIVERED), deliveries),
        restores_attempted: restores,
        recovery_success: ratio(counts.sum(field::RESTORED), restores),
    };
    HealthReport {
        at: inputs.at,
        covered: counts.covered,
        overall,
        cohorts,
        lost_restart_events: inputs.lost_restart_events,
    }
}
