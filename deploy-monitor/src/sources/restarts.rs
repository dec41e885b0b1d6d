//! Restart frequency from supervisor events: every `ChildRestarted` on the
//! bus counts one restart, in the cohort the classifier assigns.
//!
//! This module is not for deciding what a restart means; it only counts.

use std::sync::Arc;

use foundation_core::{EventBus, SupervisorEvent, SupervisorEventKind};
use tokio::sync::broadcast::{self, error::TryRecvError};

use crate::cohort::Cohort;
use crate::window::{SlidingWindow, field};

/// Decides which cohort a restart belongs to (say, by the child's name).
pub type RestartClassifier = Arc<dyn Fn(&SupervisorEvent) -> Cohort + Send + Sync>;

pub(crate) struct RestartSource {
    events: broadcast::Receiver<SupervisorEvent>,
    classify: Option<RestartClassifier>,
}

impl RestartSource {
    pub(crate) fn new(bus: &EventBus, classify: Option<RestartClassifier>) -> RestartSource {
        RestartSource {
            events: bus.subscribe(),
            classify,
        }
    }

    /// Counts the events queued since the last drain; returns how many were
    /// lost because the bus overtook this subscriber.
    pub(crate) fn drain(&mut self, window: &SlidingWindow) -> u64 {
        let mut lost = 0;
        loop {
            match self.events.try_recv() {
                Ok(event) => {
                    if matches!(event.kind, SupervisorEventKind::ChildRestarted { .. }) {
                        let cohort = self
                            .classify
                            .as_ref()
                            .map_or(Cohort::Unassigned, |classify| classify(&event));
                        window.add(cohort, field::RESTARTS, 1);
                    }
                }
                Err(TryRecvError::Lagged(missed)) => lost += missed,
                Err(TryRecvError::Empty | TryRecvError::Closed) => return lost,
            }
        }
    }
}
