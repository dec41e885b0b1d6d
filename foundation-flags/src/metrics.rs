//! The metrics foundation-flags reports, through the `metrics` facade.
//!
//! Names follow the workspace convention (Prometheus naming,
//! `foundation_<crate>_...`, counters end in `_total`, base units):
//!
//! - `foundation_flag_changes_total{flag}`: a counter of value changes
//!   (audit entries whose new value differs from the old).
//! - `foundation_flag_rollout_percentage{flag}`: a gauge of each flag's
//!   current share of ids enabled, 0 to 100 (Off is 0, On is 100), set for
//!   every flag at start-up and on every change.
//!
//! Labels are declared flag names, a bounded set. This module is not for
//! deciding what counts as a change; the writer does.

use crate::audit::AuditEntry;
use crate::value::FlagValue;

/// The counter of flag value changes.
pub const FLAG_CHANGES_TOTAL: &str = "foundation_flag_changes_total";
/// The gauge of each flag's rollout percentage (0 to 100).
pub const FLAG_ROLLOUT_PERCENTAGE: &str = "foundation_flag_rollout_percentage";

pub(crate) fn describe() {
    metrics::describe_counter!(
        FLAG_CHANGES_TOTAL,
        metrics::Unit::Count,
        "Feature flag value changes, by flag."
    );
    metrics::describe_gauge!(
        FLAG_ROLLOUT_PERCENTAGE,
        metrics::Unit::Percent,
        "The share of ids each feature flag enables, 0 to 100 (off 0, on 100)."
    );
}

pub(crate) fn set_percentage(flag: &str, value: FlagValue) {
    metrics::gauge!(FLAG_ROLLOUT_PERCENTAGE, "flag" => flag.to_owned())
        .set(f64::from(value.rollout_percentage()));
}

pub(crate) fn record_change(entry: &AuditEntry) {
    metrics::counter!(FLAG_CHANGES_TOTAL, "flag" => entry.flag.clone()).increment(1);
    set_percentage(&entry.flag, entry.new_value);
}
