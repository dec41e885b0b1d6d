//! The metrics foundation-error reports, through the `metrics` facade.
//!
//! - `foundation_errors_total{code, category, severity}`: a counter of the
//!   errors an [`ErrorTracker`](crate::ErrorTracker) tracked. Labels are
//!   the code's name, its category and the error's severity, all bounded
//!   sets.
//!
//! Names follow the workspace's convention (Prometheus naming:
//! `foundation_<crate>_...`, counters end in `_total`, base units). This
//! module is not for recording; the tracker does that.

/// The counter of tracked errors, by code, category and severity.
pub const ERRORS_TOTAL: &str = "foundation_errors_total";
