//! The crate's metric names (Prometheus naming), recorded through the
//! `metrics` facade. Only the application installs an exporter.
//!
//! This module is not for status queries (see `engine`).

/// Counter: workflows started.
pub const STARTED_TOTAL: &str = "jido_workflow_started_total";
/// Counter: workflows that ended, labelled `status`
/// (completed, failed, cancelled).
pub const FINISHED_TOTAL: &str = "jido_workflow_finished_total";
/// Counter: step attempts that ended, labelled `outcome`
/// (succeeded, failed, retried, interrupted).
pub const STEP_ATTEMPTS_TOTAL: &str = "jido_workflow_step_attempts_total";
/// Counter: workflow process instances that resumed from a journal with
/// at least one event after the start.
pub const RESUMED_TOTAL: &str = "jido_workflow_resumed_total";
/// Counter: workflows the resumer could not start (each is logged).
pub const RESUME_FAILURES_TOTAL: &str = "jido_workflow_resume_failures_total";
/// Counter: step outcomes (labelled `outcome`: result, failure, or
/// interrupted) that could not reach their workflow process because its
/// instance had ended; the next instance re-runs the step from the journal.
pub const UNDELIVERED_OUTCOMES_TOTAL: &str = "jido_workflow_undelivered_step_outcomes_total";
/// Counter: workflows an engine gave up because their lease was taken
/// over (a refused fenced write or renewal); their new owner runs them.
pub const LEASE_LOST_TOTAL: &str = "jido_workflow_lease_lost_total";
/// Counter: expired workflow leases the heartbeat claimed (multi-node).
pub const LEASES_CLAIMED_TOTAL: &str = "jido_workflow_leases_claimed_total";
/// Counter: heartbeat renewals that failed as a whole (the store was
/// unreachable or slow); the next heartbeat tries again.
pub const LEASE_RENEW_FAILURES_TOTAL: &str = "jido_workflow_lease_renew_failures_total";
