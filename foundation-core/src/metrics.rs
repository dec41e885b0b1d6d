//! Every metric name foundation-core records, in one place.
//!
//! One naming convention (Prometheus's, as foundation-persist's `metrics`
//! module): names start `foundation_`, counters end `_total`, gauges name
//! what they count; the constant is the name without `foundation_`,
//! uppercased. Labels are given where each metric is described.
//!
//! The kernel's own metrics are defined here; the circuit breaker's, the
//! rate limiter's and the signal router's are defined next to their code
//! and re-exported here, so this module lists them all.
//!
//! This module is not for recording; the `metrics` facade does that, and
//! an application installs the exporter.

/// Gauge: live monitors across the OS process (monitors, actors' monitors,
/// registry entries, signal subscriptions watching a process). Also
/// readable in process with [`live_monitors`](crate::live_monitors).
pub const MONITORS_LIVE: &str = "foundation_monitors_live";

/// Counter: casts and info messages that could not be delivered because
/// their process ended for good.
pub const ACTOR_UNDELIVERED_TOTAL: &str = "foundation_actor_undelivered_total";

/// Counter: child restarts; labels `supervisor`, `child`.
pub const SUPERVISOR_RESTARTS_TOTAL: &str = "foundation_supervisor_restarts_total";

/// Counter: child starts (first starts and restarts); labels `supervisor`,
/// `child`.
pub const SUPERVISOR_CHILD_STARTS_TOTAL: &str = "foundation_supervisor_child_starts_total";

/// Counter: child exits; labels `supervisor`, `child`, `reason` (normal,
/// shutdown, killed, panic, error).
pub const SUPERVISOR_CHILD_EXITS_TOTAL: &str = "foundation_supervisor_child_exits_total";

/// Counter: restart intensity exceeded; label `supervisor`.
pub const SUPERVISOR_ESCALATIONS_TOTAL: &str = "foundation_supervisor_escalations_total";

/// Gauge: running children; label `supervisor`.
pub const SUPERVISOR_CHILDREN: &str = "foundation_supervisor_children";

pub use crate::circuit_breaker::{
    CIRCUIT_BREAKER_REJECTED_CALLS_TOTAL, CIRCUIT_BREAKER_STATE, CIRCUIT_BREAKER_TRANSITIONS_TOTAL,
};
pub use crate::rate_limiter::RATE_LIMITER_CHECKS_TOTAL;
pub use crate::signal::{
    SIGNALS_DELIVERED_TOTAL, SIGNALS_DROPPED_TOTAL, SIGNALS_FAILED_TOTAL, SIGNALS_ROUTED_TOTAL,
};
