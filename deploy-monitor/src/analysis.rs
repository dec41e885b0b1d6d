//! The analysis: each health metric judged against its threshold as pass,
//! fail or inconclusive, and the checks combined into one outcome.
//!
//! Inconclusive (too few samples, no data, lost events) is never a pass and
//! never a fail, as Kayenta and Flagger treat "no data". A check is either
//! *required* (its inconclusive result makes the whole evaluation
//! inconclusive) or not (it can only fail the evaluation). By default only
//! the error rate is required: restores and deliveries are rare in healthy
//! systems, and the latency check needs a baseline.
//!
//! This module is not for acting on the outcome (`monitor.rs` does that).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cohort::Cohort;
use crate::health::HealthReport;

/// The result of a check or of an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Within its threshold, on enough samples.
    Pass,
    /// Beyond its threshold, on enough samples.
    Fail,
    /// Too few samples, no data, or a measurement error.
    Inconclusive,
}

impl Outcome {
    /// The outcome's label in metrics and reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Inconclusive => "inconclusive",
        }
    }
}

/// One health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Check {
    /// Overall error rate at most `max_error_rate`.
    ErrorRate,
    /// Supervisor restarts per minute at most `max_restarts_per_minute`.
    RestartFrequency,
    /// Message delivery success at least `min_delivery_success`.
    DeliverySuccess,
    /// State recovery success at least `min_recovery_success`.
    RecoverySuccess,
    /// Overall p99 latency at most `max_p99_ratio` times the phase's baseline.
    LatencyP99,
    /// Treatment error rate at most `max_cohort_error_margin` above control.
    CohortErrorRate,
}

impl Check {
    /// Every check, in evaluation order.
    pub const ALL: [Check; 6] = [
        Check::ErrorRate,
        Check::RestartFrequency,
        Check::DeliverySuccess,
        Check::RecoverySuccess,
        Check::LatencyP99,
        Check::CohortErrorRate,
    ];

    /// The check's name in plans, metrics and reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            Check::ErrorRate => "error_rate",
            Check::RestartFrequency => "restart_frequency",
            Check::DeliverySuccess => "delivery_success",
            Check::RecoverySuccess => "recovery_success",
            Check::LatencyP99 => "latency_p99",
            Check::CohortErrorRate => "cohort_error_rate",
        }
    }

    /// The check named `name`.
    pub fn from_name(name: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|check| check.as_str() == name)
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The thresholds of the checks. Defaults from the plan (stage 05).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Fail above this error rate (0 to 1). Default 0.05.
    pub max_error_rate: f64,
    /// Fail above this many restarts per minute. Default 10.
    pub max_restarts_per_minute: f64,
    /// Fail below this delivery success (0 to 1). Default 0.95.
    pub min_delivery_success: f64,
    /// Fail below this recovery success (0 to 1). Default 0.99.
    pub min_recovery_success: f64,
    /// Fail when p99 latency exceeds this multiple of the baseline. Default 2.
    pub max_p99_ratio: f64,
    /// The phase's p99 baseline; when `None`, the monitor uses the p99 it
    /// measured in the previous phase, and without that the latency check
    /// is inconclusive.
    pub baseline_p99: Option<Duration>,
    /// Fail when the treatment's error rate exceeds the control's by more
    /// than this (absolute, 0 to 1). Default 0.02.
    pub max_cohort_error_margin: f64,
    /// Requests needed for the error rate and latency checks. Default 100.
    pub min_requests: u64,
    /// Requests needed in each cohort for the cohort comparison. Default 100.
    pub min_cohort_requests: u64,
    /// Delivery attempts needed for the delivery check. Default 20.
    pub min_deliveries: u64,
    /// Restores needed for the recovery check. Default 1.
    pub min_restores: u64,
    /// Checks whose inconclusive result makes the evaluation inconclusive.
    /// Default: the error rate.
    pub required: Vec<Check>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            max_error_rate: 0.05,
            max_restarts_per_minute: 10.0,
            min_delivery_success: 0.95,
            min_recovery_success: 0.99,
            max_p99_ratio: 2.0,
            baseline_p99: None,
            max_cohort_error_margin: 0.02,
            min_requests: 100,
            min_cohort_requests: 100,
            min_deliveries: 20,
            min_restores: 1,
            required: vec![Check::ErrorRate],
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Which check.
    pub check: Check,
    /// Its outcome.
    pub outcome: Outcome,
    /// The measured value (a ratio, a rate per minute, or seconds), if any.
    pub value: Option<f64>,
    /// The threshold it was held against (same unit as `value`), if any.
    pub threshold: Option<f64>,
    /// The samples behind the value.
    pub samples: u64,
    /// Whether an inconclusive result makes the evaluation inconclusive.
    pub required: bool,
    /// A sentence for people: why this outcome.
    pub detail: String,
}

/// Every check of one evaluation and their combined outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// Fail if any check failed; otherwise inconclusive if a required check
    /// was; otherwise pass.
    pub outcome: Outcome,
    /// Each check, in [`Check::ALL`] order.
    pub checks: Vec<CheckResult>,
    /// Whether a measurement error (lost events) made a check inconclusive.
    pub measurement_error: bool,
}

impl Judgement {
    /// The result of `check`.
    pub fn check(&self, check: Check) -> Option<&CheckResult> {
        self.checks.iter().find(|result| result.check == check)
    }

    /// The failed checks, for people: "error_rate 0.080 > 0.050; ...".
    pub fn failures(&self) -> String {
        let failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|result| result.outcome == Outcome::Fail)
            .map(|result| result.detail.as_str())
            .collect();
        failed.join("; ")
    }
}

struct Judge<'a> {
    thresholds: &'a Thresholds,
    checks: Vec<CheckResult>,
}

impl Judge<'_> {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        check: Check,
        value: Option<f64>,
        threshold: f64,
        samples: u64,
        min_samples: u64,
        failed: impl Fn(f64) -> bool,
        comparison: &str,
    ) {
        let required = self.thresholds.required.contains(&check);
        let (outcome, detail) = match value {
            _ if samples < min_samples => (
                Outcome::Inconclusive,
                format!("{check}: {samples} samples, fewer than the {min_samples} needed"),
            ),
            None => (Outcome::Inconclusive, format!("{check}: no data")),
            Some(value) if failed(value) => (
                Outcome::Fail,
                format!("{check} {value:.3} {comparison} {threshold:.3} ({samples} samples)"),
            ),
            Some(value) => (
                Outcome::Pass,
                format!("{check} {value:.3} within {threshold:.3} ({samples} samples)"),
            ),
        };
        self.checks.push(CheckResult {
            check,
            outcome,
            value,
            threshold: Some(threshold),
            samples,
            required,
            detail,
        });
    }

    fn inconclusive(&mut self, check: Check, samples: u64, detail: String) {
        let required = self.thresholds.required.contains(&check);
        self.checks.push(CheckResult {
            check,
            outcome: Outcome::Inconclusive,
            value: None,
            threshold: None,
            samples,
            required,
            detail,
        });
    }
}

/// Judges `report` against `thresholds`; `baseline_p99` is the latency
/// baseline to use when the thresholds name none.
pub(crate) fn judge(
    report: &HealthReport,
    thresholds: &Thresholds,
    baseline_p99: Option<Duration>,
) -> Judgement {
    let overall = &report.overall;
    let mut judge = Judge {
        thresholds,
        checks: Vec::with_capacity(Check::ALL.len()),
    };
    judge.push(
        Check::ErrorRate,
        overall.error_rate,
        thresholds.max_error_rate,
        overall.requests,
        thresholds.min_requests,
        |rate| rate > thresholds.max_error_rate,
        ">",
    );
    let measurement_error = report.lost_restart_events > 0;
    if measurement_error {
        judge.inconclusive(
            Check::RestartFrequency,
            overall.restarts,
            format!(
                "restart_frequency: {} restart events were lost; the count is a lower bound",
                report.lost_restart_events
            ),
        );
    } else {
        judge.push(
            Check::RestartFrequency,
            overall.restarts_per_minute,
            thresholds.max_restarts_per_minute,
            overall.restarts,
            0,
            |rate| rate > thresholds.max_restarts_per_minute,
            ">",
        );
    }
    judge.push(
        Check::DeliverySuccess,
        overall.delivery_success,
        thresholds.min_delivery_success,
        overall.deliveries_attempted,
        thresholds.min_deliveries.max(1),
        |success| success < thresholds.min_delivery_success,
        "<",
    );
    judge.push(
        Check::RecoverySuccess,
        overall.recovery_success,
        thresholds.min_recovery_success,
        overall.restores_attempted,
        thresholds.min_restores.max(1),
        |success| success < thresholds.min_recovery_success,
        "<",
    );
    match thresholds.baseline_p99.or(baseline_p99) {
        Some(baseline) if !baseline.is_zero() => {
            let limit = baseline.as_secs_f64() * thresholds.max_p99_ratio;
            judge.push(
                Check::LatencyP99,
                overall.latency.p99.map(|p99| p99.as_secs_f64()),
                limit,
                overall.requests,
                thresholds.min_requests.max(1),
                |p99| p99 > limit,
                ">",
            );
        }
        _ => judge.inconclusive(
            Check::LatencyP99,
            overall.requests,
            "latency_p99: no baseline for this phase".to_owned(),
        ),
    }
    let treatment = report.cohort(Cohort::Treatment);
    let control = report.cohort(Cohort::Control);
    let samples = treatment.requests.min(control.requests);
    let margin = match (treatment.error_rate, control.error_rate) {
        (Some(treatment), Some(control)) => Some(treatment - control),
        _ => None,
    };
    judge.push(
        Check::CohortErrorRate,
        margin,
        thresholds.max_cohort_error_margin,
        samples,
        thresholds.min_cohort_requests.max(1),
        |margin| margin > thresholds.max_cohort_error_margin,
        ">",
    );
    if let Some(last) = judge.checks.last_mut()
        && last.outcome != Outcome::Inconclusive
    {
        last.detail = last.detail.replacen(
            "cohort_error_rate",
            "cohort_error_rate (treatment minus control)",
            1,
        );
    }
    let checks = judge.checks;
    let outcome = if checks.iter().any(|check| check.outcome == Outcome::Fail) {
        Outcome::Fail
    } else if checks
        .iter()
        .any(|check| check.required && check.outcome == Outcome::Inconclusive)
    {
        Outcome::Inconclusive
    } else {
        Outcome::Pass
    };
    Judgement {
        outcome,
        checks,
        measurement_error,
    }
}
