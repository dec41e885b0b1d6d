//! The metric names jido-system records (Prometheus naming); every other
//! crate's names come from its own `metrics` module.
//!
//! This module is not for exporting; `/metrics` renders the process-wide
//! Prometheus recorder.

/// HTTP requests answered, by `method`, `route` (the matched path
/// template) and `status` class (`2xx`, `4xx`, `5xx`).
pub const HTTP_REQUESTS_TOTAL: &str = "jido_system_http_requests_total";
/// HTTP request durations in seconds, by `route`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "jido_system_http_request_duration_seconds";
/// Workflow steps run outside the task supervisor because
/// `enforce_supervised_tasks` was off when the supervisor refused them.
pub const UNSUPERVISED_WORK_TOTAL: &str = "jido_system_unsupervised_work_total";
/// Signals the application routed, by `mode` (`acknowledged` or
/// `fire_and_forget`).
pub const SIGNALS_SENT_TOTAL: &str = "jido_system_signals_sent_total";

/// Describes every metric of this crate to the installed recorder.
pub fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS_TOTAL, "HTTP requests answered");
    metrics::describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "HTTP request durations"
    );
    metrics::describe_counter!(
        UNSUPERVISED_WORK_TOTAL,
        "workflow steps run outside the task supervisor (enforce_supervised_tasks off)"
    );
    metrics::describe_counter!(SIGNALS_SENT_TOTAL, "application signals routed");
}
