//! The MonitorAgent: health checks of registered components, run on an
//! interval under the task supervisor; a health score 0-100 with bands;
//! alerts, one per breach, acknowledged by id.
//!
//! Scoring: a reading scores 100 up to half its threshold, 50 at the
//! threshold and 0 at twice it; a component scores its worst reading (0
//! when its check failed or timed out); the whole scores the mean of its
//! components. Bands: excellent (>= 90), good (>= 75), fair (>= 50), poor
//! (>= 25), critical. Thresholds default to the original's: cpu 80,
//! memory 85, disk 90, error rate 5.0 per minute, response time 1,000 ms,
//! agent failures 3.
//!
//! Persisted: the monitored components, the health history (a ring of
//! 1,000, trimmed before saving) and the alert book. Checks themselves are
//! code: the application passes them again at every start.
//!
//! Not here: no disk check is implemented (reading disk use needs
//! `statvfs`, i.e. a libc binding this crate does not take); the `disk`
//! threshold applies to readings of an application's own check.

mod agent;
mod checks;
mod health;

pub use agent::{
    AcknowledgeAlert, CheckNow, ComponentHealth, DEFAULT_CHECK_INTERVAL, DEFAULT_CHECK_TIMEOUT,
    DEFAULT_HISTORY, HealthQuery, HealthReport, HealthSample, ListAlerts, MonitorAgent,
    MonitorArgs, MonitorState,
};
pub use checks::{
    CheckFuture, ErrorRateCheck, HealthCheck, ProcessCheck, ProcessSample, RestartRateCheck,
    StoreLatencyCheck,
};
pub use health::{
    Alert, AlertBook, AlertSeverity, HealthBand, MAX_ALERTS, Metric, Reading, Thresholds,
    component_score, overall_score, reading_score,
};
