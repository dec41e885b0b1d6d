//! [`MonitorFeed`]: jido-workflow's `CoordinatorRecorder` seam implemented
//! on deploy-monitor's `Recorder`, so that coordinator requests (with the
//! cohort of `use_v2_coordinator` that routed them) and state recoveries
//! feed the health windows.
//!
//! This module is not for judging health (deploy-monitor does).

use std::sync::Arc;
use std::time::Duration;

use deploy_monitor::{Cohort, RequestOutcome};
use foundation_flags::FlagValue;
use jido_workflow::coordinator::CoordinatorRecorder;

use super::Shared;
use crate::flags::USE_V2_COORDINATOR;

/// Feeds coordinator reports to the deployment monitor (once it runs;
/// reports before that are dropped).
pub(crate) struct MonitorFeed {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MonitorFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorFeed").finish_non_exhaustive()
    }
}

impl MonitorFeed {
    /// A feed reading the monitor from `shared`.
    pub(crate) fn new(shared: Arc<Shared>) -> MonitorFeed {
        MonitorFeed { shared }
    }

    /// The cohort of a request served by `version` (`"v1"`/`"v2"`): control
    /// or treatment while `use_v2_coordinator` is a partial percentage,
    /// unassigned otherwise.
    fn cohort(&self, version: &str) -> Cohort {
        let partial = self.shared.flags.get().ok().and_then(|flags| {
            match flags.value(USE_V2_COORDINATOR).ok()? {
                FlagValue::Percentage(percentage) => {
                    let value = percentage.get();
                    (value > 0 && value < 100).then_some(())
                }
                _ => None,
            }
        });
        match (partial, version) {
            (Some(()), "v2") => Cohort::Treatment,
            (Some(()), _) => Cohort::Control,
            _ => Cohort::Unassigned,
        }
    }
}

impl CoordinatorRecorder for MonitorFeed {
    fn record_request(&self, cohort: &str, succeeded: bool, duration: Duration) {
        if let Ok(monitor) = self.shared.monitor.get() {
            let outcome = if succeeded {
                RequestOutcome::Success
            } else {
                RequestOutcome::Error
            };
            monitor
                .recorder()
                .record_request(self.cohort(cohort), duration, outcome);
        }
    }

    fn record_restore(&self, _component: &str, succeeded: bool, _duration: Duration) {
        if let Ok(monitor) = self.shared.monitor.get() {
            monitor
                .recorder()
                .record_restore(Cohort::Unassigned, succeeded);
        }
    }
}
