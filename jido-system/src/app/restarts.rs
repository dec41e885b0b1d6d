//! [`RestartLog`]: the recent restarts (and failed restarts, exceeded
//! intensities) of every supervisor that publishes on the application's
//! event bus, the workflow engine's included, for `GET /api/v1/restarts`
//! and the dashboard's list.
//!
//! It starts no task: it holds a subscription to the bus from the
//! application's start and drains it when read, keeping the newest
//! [`RECENT_RESTARTS`]. Events the bus dropped because nobody read for a
//! long time are counted as lost.
//!
//! This module is not for judging restarts (deploy-monitor's restart
//! source does).

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use foundation_core::{EventBus, SupervisorEvent, SupervisorEventKind};
use tokio::sync::broadcast::{self, error::TryRecvError};

/// How many restarts the log keeps.
pub const RECENT_RESTARTS: usize = 100;

/// One restart, as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestartRecord {
    /// The supervisor's name (`workflows` for workflow processes).
    pub supervisor: String,
    /// The child's id.
    pub child: String,
    /// `restarted`, `restart_failed` or `intensity_exceeded`.
    pub kind: &'static str,
    /// When (wall time, milliseconds since the Unix epoch).
    pub at_ms: u64,
}

/// The recent restarts on one event bus.
#[derive(Debug)]
pub struct RestartLog {
    state: Mutex<LogState>,
}

#[derive(Debug)]
struct LogState {
    receiver: broadcast::Receiver<SupervisorEvent>,
    recent: VecDeque<RestartRecord>,
    lost: u64,
}

impl RestartLog {
    /// A log of the restarts published on `bus` from now on.
    pub fn new(bus: &EventBus) -> RestartLog {
        RestartLog {
            state: Mutex::new(LogState {
                receiver: bus.subscribe(),
                recent: VecDeque::new(),
                lost: 0,
            }),
        }
    }

    /// The recent restarts, oldest first, and how many events the bus
    /// dropped before they were read.
    pub fn recent(&self) -> (Vec<RestartRecord>, u64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match state.receiver.try_recv() {
                Ok(event) => {
                    let kind = match event.kind {
                        SupervisorEventKind::ChildRestarted { .. } => "restarted",
                        SupervisorEventKind::RestartFailed { .. } => "restart_failed",
                        SupervisorEventKind::IntensityExceeded { .. } => "intensity_exceeded",
                        _ => continue,
                    };
                    if state.recent.len() == RECENT_RESTARTS {
                        state.recent.pop_front();
                    }
                    let at_ms = event
                        .wall
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |since| {
                            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
                        });
                    state.recent.push_back(RestartRecord {
                        supervisor: event.supervisor.to_string(),
                        child: event.child.to_string(),
                        kind,
                        at_ms,
                    });
                }
                Err(TryRecvError::Lagged(missed)) => state.lost += missed,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        (state.recent.iter().cloned().collect(), state.lost)
    }
}
