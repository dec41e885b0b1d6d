//! The metric names of this crate (Prometheus naming, through the `metrics`
//! facade; only the application installs an exporter).
//!
//! Labels come from bounded sets (an agent's kind, an outcome, a metric
//! name), never agent or task ids.
//!
//! This module is not a metrics registry: it names metrics and records
//! them, nothing else.

/// Actions handled, by `kind` and `outcome` (`ok` or `error`).
pub const ACTIONS_TOTAL: &str = "jido_agent_actions_total";
/// Saves of persisted agent state, by `kind`.
pub const SAVES_TOTAL: &str = "jido_agent_saves_total";
/// Saves that failed (the action failed with them), by `kind`.
pub const SAVE_FAILURES_TOTAL: &str = "jido_agent_save_failures_total";
/// Stored agent states that could not be decoded at start, by `kind`.
pub const STATE_CORRUPTIONS_TOTAL: &str = "jido_agent_state_corruptions_total";
/// Work that could not be started under the task supervisor, by `kind`.
pub const SPAWN_FAILURES_TOTAL: &str = "jido_agent_spawn_failures_total";
/// Tasks TaskAgents finished successfully, by `kind`.
pub const TASKS_PROCESSED_TOTAL: &str = "jido_agent_tasks_processed_total";
/// Tasks TaskAgents finished with an error, by `kind`.
pub const TASKS_FAILED_TOTAL: &str = "jido_agent_tasks_failed_total";
/// How long tasks ran (all attempts of a run), by `kind`.
pub const TASK_DURATION_SECONDS: &str = "jido_agent_task_duration_seconds";
/// The latest health score (0-100) a MonitorAgent computed, by `kind`
/// (one monitor per node is the expected set-up).
pub const HEALTH_SCORE: &str = "jido_agent_health_score";
/// Alerts MonitorAgents raised, by `kind` and `type` (the metric).
pub const ALERTS_TOTAL: &str = "jido_agent_alerts_total";

/// The action counters of one agent instance, registered once at its
/// start (so the recorder must be installed before agents start).
pub(crate) struct ActionCounters {
    ok: metrics::Counter,
    error: metrics::Counter,
}

impl ActionCounters {
    pub(crate) fn new(kind: &'static str) -> ActionCounters {
        ActionCounters {
            ok: metrics::counter!(ACTIONS_TOTAL, "kind" => kind, "outcome" => "ok"),
            error: metrics::counter!(ACTIONS_TOTAL, "kind" => kind, "outcome" => "error"),
        }
    }

    pub(crate) fn record(&self, ok: bool) {
        if ok {
            self.ok.increment(1);
        } else {
            self.error.increment(1);
        }
    }
}

pub(crate) fn saved(kind: &'static str) {
    metrics::counter!(SAVES_TOTAL, "kind" => kind).increment(1);
}

pub(crate) fn save_failed(kind: &'static str) {
    metrics::counter!(SAVE_FAILURES_TOTAL, "kind" => kind).increment(1);
}

pub(crate) fn state_corrupt(kind: &'static str) {
    metrics::counter!(STATE_CORRUPTIONS_TOTAL, "kind" => kind).increment(1);
}

pub(crate) fn spawn_failed(kind: &'static str) {
    metrics::counter!(SPAWN_FAILURES_TOTAL, "kind" => kind).increment(1);
}

pub(crate) fn task_finished(kind: &'static str, succeeded: bool, duration: std::time::Duration) {
    let name = if succeeded {
        TASKS_PROCESSED_TOTAL
    } else {
        TASKS_FAILED_TOTAL
    };
    metrics::counter!(name, "kind" => kind).increment(1);
    metrics::histogram!(TASK_DURATION_SECONDS, "kind" => kind).record(duration.as_secs_f64());
}

pub(crate) fn health_score(kind: &'static str, score: f64) {
    metrics::gauge!(HEALTH_SCORE, "kind" => kind).set(score);
}

pub(crate) fn alert_raised(kind: &'static str, metric: &'static str) {
    metrics::counter!(ALERTS_TOTAL, "kind" => kind, "type" => metric).increment(1);
}
