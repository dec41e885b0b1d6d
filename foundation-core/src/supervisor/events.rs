//! Supervisor events and metrics.
//!
//! Every child start, exit and restart, every failed restart and every
//! escalation is sent on an [`EventBus`] (a tokio broadcast channel: a
//! subscriber that falls more than its capacity behind loses the oldest
//! events and is told so) and counted through the `metrics` facade.
//! deploy-monitor computes restart frequency from these.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use foundation_error::Error;
use foundation_error::clock::Clock;
use tokio::sync::broadcast;

use crate::metrics::{
    SUPERVISOR_CHILD_EXITS_TOTAL as CHILD_EXITS_TOTAL,
    SUPERVISOR_CHILD_STARTS_TOTAL as CHILD_STARTS_TOTAL,
    SUPERVISOR_ESCALATIONS_TOTAL as ESCALATIONS_TOTAL, SUPERVISOR_RESTARTS_TOTAL as RESTARTS_TOTAL,
};
use crate::process::{ExitReason, ProcessId};

/// The default number of events a subscriber may fall behind.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// What happened.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SupervisorEventKind {
    /// A child instance started (first start or restart).
    ChildStarted {
        /// The child's process.
        process: ProcessId,
        /// Its incarnation (1 for the first start).
        incarnation: u64,
    },
    /// A child instance exited (crashed, finished, or was stopped).
    ChildExited {
        /// The child's process.
        process: ProcessId,
        /// Why.
        reason: ExitReason,
    },
    /// A child was restarted after an exit (also for siblings restarted by
    /// `OneForAll` and `RestForOne`).
    ChildRestarted {
        /// The child's process.
        process: ProcessId,
        /// The new incarnation.
        incarnation: u64,
    },
    /// Restarting a child failed; it will be tried again while the restart
    /// intensity allows.
    RestartFailed {
        /// The child's process.
        process: ProcessId,
        /// Why the start failed.
        error: Error,
    },
    /// The restart intensity was exceeded: the supervisor stops its
    /// children and exits with `Shutdown`, which its parent sees.
    IntensityExceeded {
        /// The restart limit.
        max_restarts: u32,
        /// The window.
        period: Duration,
    },
}

/// One event of one supervisor.
#[derive(Debug, Clone)]
pub struct SupervisorEvent {
    /// The supervisor's name.
    pub supervisor: Arc<str>,
    /// The child concerned (for `IntensityExceeded`, the one whose exit
    /// exceeded it).
    pub child: Arc<str>,
    /// What happened.
    pub kind: SupervisorEventKind,
    /// When, on the supervisor's clock ([`Clock::elapsed`]; see
    /// `SupervisorBuilder::clock`).
    pub at: Duration,
    /// When, as wall time on the supervisor's clock ([`Clock::wall`]).
    pub wall: SystemTime,
}

/// A channel of supervisor events, shareable by a whole tree: a nested
/// supervisor without a bus of its own uses its parent's.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<SupervisorEvent>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

impl EventBus {
    /// A bus keeping up to [`DEFAULT_EVENT_CAPACITY`] events per subscriber.
    pub fn new() -> EventBus {
        EventBus::with_capacity(DEFAULT_EVENT_CAPACITY)
    }

    /// A bus keeping up to `capacity` events per subscriber (at least 1).
    pub fn with_capacity(capacity: usize) -> EventBus {
        let (sender, _) = broadcast::channel(capacity.max(1));
        EventBus { sender }
    }

    /// Subscribes to events sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<SupervisorEvent> {
        self.sender.subscribe()
    }

    pub(crate) fn emit(
        &self,
        supervisor: &Arc<str>,
        child: &Arc<str>,
        kind: SupervisorEventKind,
        clock: &dyn Clock,
    ) {
        record_metrics(supervisor, child, &kind);
        let event = SupervisorEvent {
            supervisor: Arc::clone(supervisor),
            child: Arc::clone(child),
            kind,
            at: clock.elapsed(),
            wall: clock.wall(),
        };
        // No subscriber is fine: the metrics above still count it.
        let _ = self.sender.send(event);
    }
}

fn record_metrics(supervisor: &Arc<str>, child: &Arc<str>, kind: &SupervisorEventKind) {
    let supervisor_label = supervisor.to_string();
    let child_label = child.to_string();
    match kind {
        SupervisorEventKind::ChildStarted { .. } => {
            metrics::counter!(CHILD_STARTS_TOTAL, "supervisor" => supervisor_label, "child" => child_label)
                .increment(1);
        }
        SupervisorEventKind::ChildExited { reason, .. } => {
            metrics::counter!(
                CHILD_EXITS_TOTAL,
                "supervisor" => supervisor_label,
                "child" => child_label,
                "reason" => reason.label(),
            )
            .increment(1);
        }
        SupervisorEventKind::ChildRestarted { .. } => {
            metrics::counter!(RESTARTS_TOTAL, "supervisor" => supervisor_label, "child" => child_label)
                .increment(1);
        }
        SupervisorEventKind::RestartFailed { .. } => {}
        SupervisorEventKind::IntensityExceeded { .. } => {
            metrics::counter!(ESCALATIONS_TOTAL, "supervisor" => supervisor_label).increment(1);
        }
    }
}
