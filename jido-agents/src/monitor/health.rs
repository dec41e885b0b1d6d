//! Health arithmetic, free of I/O: metrics and their thresholds, the score
//! of a reading, a component and the whole, the bands, and the alert book
//! that raises one alert per breach.
//!
//! This module does not run checks (see `monitor::checks`) or hold the
//! agent (see `monitor::agent`).

use std::collections::VecDeque;

use foundation_error::{Error, ErrorCode};
use serde::{Deserialize, Serialize};

/// The most alerts kept (active and resolved); the oldest resolved go
/// first.
pub const MAX_ALERTS: usize = 1_000;

/// What a health check measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Metric {
    /// CPU use of this OS process, percent of all cores.
    Cpu,
    /// Resident memory of this OS process, percent of the machine's.
    Memory,
    /// Disk use, percent.
    Disk,
    /// Errors per minute.
    ErrorRate,
    /// A response or commit time, in milliseconds.
    ResponseTime,
    /// Supervised restarts within the check's window.
    AgentFailures,
}

impl Metric {
    /// The metric's name (an alert's type).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Cpu => "cpu",
            Metric::Memory => "memory",
            Metric::Disk => "disk",
            Metric::ErrorRate => "error_rate",
            Metric::ResponseTime => "response_time",
            Metric::AgentFailures => "agent_failures",
        }
    }
}

/// One measurement of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// What was measured.
    pub metric: Metric,
    /// The value, in the metric's unit.
    pub value: f64,
}

impl Reading {
    /// A reading.
    pub fn new(metric: Metric, value: f64) -> Reading {
        Reading { metric, value }
    }
}

/// The value above which a metric is in breach. The defaults are the
/// original system's: cpu 80, memory 85, disk 90, error rate 5.0,
/// response time 1,000 ms, agent failures 3.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    cpu: f64,
    memory: f64,
    disk: f64,
    error_rate: f64,
    response_time_ms: f64,
    agent_failures: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            cpu: 80.0,
            memory: 85.0,
            disk: 90.0,
            error_rate: 5.0,
            response_time_ms: 1_000.0,
            agent_failures: 3.0,
        }
    }
}

impl Thresholds {
    /// The defaults.
    pub fn new() -> Thresholds {
        Thresholds::default()
    }

    /// The threshold of `metric`.
    pub fn get(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Cpu => self.cpu,
            Metric::Memory => self.memory,
            Metric::Disk => self.disk,
            Metric::ErrorRate => self.error_rate,
            Metric::ResponseTime => self.response_time_ms,
            Metric::AgentFailures => self.agent_failures,
        }
    }

    /// Sets the threshold of `metric`.
    ///
    /// # Errors
    ///
    /// `invalid_config_value` unless the threshold is finite and above 0.
    pub fn set(&mut self, metric: Metric, threshold: f64) -> Result<&mut Self, Error> {
        if !threshold.is_finite() || threshold <= 0.0 {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                format!("the {} threshold must be finite and above 0", metric.name()),
            )
            .with_context("threshold", threshold));
        }
        let slot = match metric {
            Metric::Cpu => &mut self.cpu,
            Metric::Memory => &mut self.memory,
            Metric::Disk => &mut self.disk,
            Metric::ErrorRate => &mut self.error_rate,
            Metric::ResponseTime => &mut self.response_time_ms,
            Metric::AgentFailures => &mut self.agent_failures,
        };
        *slot = threshold;
        Ok(self)
    }
}

/// The score of one reading against its threshold: 100 up to half the
/// threshold, falling linearly to 50 at the threshold and to 0 at twice
/// the threshold. A reading that is not a number scores 0.
pub fn reading_score(value: f64, threshold: f64) -> f64 {
    if value.is_nan() || threshold <= 0.0 {
        return 0.0;
    }
    let ratio = value / threshold;
    let score = if ratio <= 0.5 {
        100.0
    } else if ratio <= 1.0 {
        100.0 - (ratio - 0.5) * 100.0
    } else {
        50.0 - (ratio - 1.0) * 50.0
    };
    score.clamp(0.0, 100.0)
}

/// A component's score: its worst reading (100 with no readings).
pub fn component_score(readings: &[Reading], thresholds: &Thresholds) -> f64 {
    readings
        .iter()
        .map(|reading| reading_score(reading.value, thresholds.get(reading.metric)))
        .fold(100.0, f64::min)
}

/// The overall score: the mean of the component scores (a failed check
/// counts 0; 100 with no components).
pub fn overall_score(component_scores: &[f64]) -> f64 {
    if component_scores.is_empty() {
        return 100.0;
    }
    component_scores.iter().sum::<f64>() / component_scores.len() as f64
}

/// A band of the health score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthBand {
    /// Below 25.
    Critical,
    /// 25 to below 50.
    Poor,
    /// 50 to below 75.
    Fair,
    /// 75 to below 90.
    Good,
    /// 90 and above.
    Excellent,
}

impl HealthBand {
    /// The band of `score`.
    pub fn of(score: f64) -> HealthBand {
        if score >= 90.0 {
            HealthBand::Excellent
        } else if score >= 75.0 {
            HealthBand::Good
        } else if score >= 50.0 {
            HealthBand::Fair
        } else if score >= 25.0 {
            HealthBand::Poor
        } else {
            HealthBand::Critical
        }
    }
}

/// How serious an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertSeverity {
    /// Over the threshold.
    Warning,
    /// At least one and a half times the threshold.
    Critical,
}

/// One breach of one metric of one component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// `alert-N`, unique within the agent.
    pub id: String,
    /// The metric's name.
    #[serde(rename = "type")]
    pub kind: String,
    /// The component whose check measured it.
    pub component: String,
    /// How serious.
    pub severity: AlertSeverity,
    /// A sentence for people.
    pub message: String,
    /// The value that breached.
    pub value: f64,
    /// The threshold it breached.
    pub threshold: f64,
    /// When it was raised (wall clock, milliseconds since the Unix epoch).
    pub created_at_ms: u64,
    /// Whether someone acknowledged it.
    pub acknowledged: bool,
    /// When the metric went back under its threshold, ending the breach.
    pub resolved_at_ms: Option<u64>,
}

/// The alerts of one monitor: one alert per breach, not one per check.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AlertBook {
    /// Alerts, oldest first.
    pub alerts: VecDeque<Alert>,
    /// The number of the next alert.
    pub next_id: u64,
}

impl AlertBook {
    /// Judges one reading: raises an alert when a breach begins, resolves
    /// the open one when it ends. Returns the alert raised, if any.
    pub fn evaluate(
        &mut self,
        component: &str,
        reading: Reading,
        threshold: f64,
        now_ms: u64,
    ) -> Option<&Alert> {
        let kind = reading.metric.name();
        let open = self.alerts.iter_mut().find(|alert| {
            alert.resolved_at_ms.is_none() && alert.component == component && alert.kind == kind
        });
        let breach = reading.value > threshold;
        match (breach, open) {
            (true, Some(_)) | (false, None) => None,
            (false, Some(alert)) => {
                alert.resolved_at_ms = Some(now_ms);
                None
            }
            (true, None) => {
                let severity = if reading.value >= threshold * 1.5 {
                    AlertSeverity::Critical
                } else {
                    AlertSeverity::Warning
                };
                self.next_id += 1;
                self.alerts.push_back(Alert {
                    id: format!("alert-{}", self.next_id),
                    kind: kind.to_owned(),
                    component: component.to_owned(),
                    severity,
                    message: format!(
                        "{component}: {kind} is {:.2}, over its threshold of {threshold:.2}",
                        reading.value
                    ),
                    value: reading.value,
                    threshold,
                    created_at_ms: now_ms,
                    acknowledged: false,
                    resolved_at_ms: None,
                });
                self.trim();
                self.alerts.back()
            }
        }
    }

    /// Marks alert `id` acknowledged and returns it.
    ///
    /// # Errors
    ///
    /// `data_not_found` for an unknown id.
    pub fn acknowledge(&mut self, id: &str) -> Result<&Alert, Error> {
        let alert = self
            .alerts
            .iter_mut()
            .find(|alert| alert.id == id)
            .ok_or_else(|| {
                Error::new(ErrorCode::DATA_NOT_FOUND, format!("no alert {id}"))
                    .with_context("alert", id)
            })?;
        alert.acknowledged = true;
        Ok(alert)
    }

    /// The alerts whose breach has not ended.
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.alerts
            .iter()
            .filter(|alert| alert.resolved_at_ms.is_none())
    }

    fn trim(&mut self) {
        while self.alerts.len() > MAX_ALERTS {
            match self
                .alerts
                .iter()
                .position(|alert| alert.resolved_at_ms.is_some())
            {
                Some(index) => {
                    self.alerts.remove(index);
                }
                None => {
                    self.alerts.pop_front();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_scores_fall_from_half_the_threshold() {
        assert_eq!(reading_score(10.0, 80.0), 100.0);
        assert_eq!(reading_score(40.0, 80.0), 100.0);
        assert_eq!(reading_score(80.0, 80.0), 50.0);
        assert_eq!(reading_score(160.0, 80.0), 0.0);
        assert_eq!(reading_score(f64::NAN, 80.0), 0.0);
    }

    #[test]
    fn trimming_drops_resolved_alerts_first() {
        let mut book = AlertBook::default();
        for round in 0..(MAX_ALERTS as u64 + 10) {
            let component = format!("c{round}");
            book.evaluate(&component, Reading::new(Metric::Cpu, 99.0), 80.0, round);
        }
        assert_eq!(book.alerts.len(), MAX_ALERTS);
        assert_eq!(book.alerts[0].id, "alert-11");
    }
}
