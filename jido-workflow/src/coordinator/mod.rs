//! The coordinators: the thin, persistent [`CoordinatorV2`] that starts
//! workflows on the engine and counts how they end; the legacy
//! [`CoordinatorV1`] the plan migrates from (workflows in its own memory,
//! no journal); and the [`CoordinatorRouter`] that routes `start_workflow`
//! by the flag `use_v2_coordinator` and migrates in-flight V1 workflows to
//! V2.
//!
//! CoordinatorV2 is a jido-agents `PersistentAgent` (its state saved by
//! the agent runtime before every reply), reached through
//! [`CoordinatorV2Ref`]; the legacy CoordinatorV1 is a plain
//! `foundation_core::Actor` with nothing saved.
//!
//! Both report request outcomes and state recoveries to a
//! [`CoordinatorRecorder`] when the application wires one (deploy-monitor
//! implements it; this crate does not depend on deploy-monitor).
//!
//! This module is not for running workflows (see `process`).

mod router;
mod v1;
mod v2;

use std::fmt;
use std::time::Duration;

pub use router::{CoordinatorRouter, CoordinatorVersion, Routed, USE_V2_COORDINATOR};
pub use v1::{CoordinatorV1, CoordinatorV1Args, V1Call, V1Reply, V1Workflow};
pub use v2::{
    ActiveWorkflow, CoordinatorState, CoordinatorStats, CoordinatorV2, CoordinatorV2Args,
    CoordinatorV2Ref, CoordinatorV2Start, END_FLUSH_INTERVAL, PendingStart, PendingStatus,
    START_TIMEOUT, StartMigrated, StartWorkflow, Stats, WhenFinished, WorkflowEnded,
};

/// Where coordinators report what the deployment monitor judges: request
/// outcomes per cohort and state recoveries. Every method has an empty
/// default body.
pub trait CoordinatorRecorder: Send + Sync + fmt::Debug + 'static {
    /// A request (`start_workflow`) served by `cohort` (`"v1"` or `"v2"`).
    fn record_request(&self, cohort: &str, succeeded: bool, duration: Duration) {
        let _ = (cohort, succeeded, duration);
    }

    /// A coordinator's state was recovered at start (`succeeded` false when
    /// loading failed).
    fn record_restore(&self, component: &str, succeeded: bool, duration: Duration) {
        let _ = (component, succeeded, duration);
    }
}
