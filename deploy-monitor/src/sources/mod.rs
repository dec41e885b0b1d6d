//! Adapters that read other components' counters into the window: one
//! module per input, so that a change in the base touches one file.
//!
//! - `restarts.rs`: supervisor restart events from an `EventBus`;
//! - `delivery.rs`: the signal router's delivered and routed counters;
//! - `errors.rs`: the error tracker's totals.
//!
//! Each is drained by the monitor before every evaluation and on its timer:
//! events and counter deltas go into the current slot. This module is not
//! for the application's own samples (see `recorder.rs`).

mod delivery;
mod errors;
mod restarts;

pub(crate) use delivery::DeliverySource;
pub(crate) use errors::ErrorSource;
pub use restarts::RestartClassifier;
pub(crate) use restarts::RestartSource;

use crate::window::SlidingWindow;

/// The inputs a monitor reads, drained together.
#[derive(Default)]
pub(crate) struct Sources {
    pub(crate) restarts: Option<RestartSource>,
    pub(crate) delivery: Option<DeliverySource>,
    pub(crate) errors: Option<ErrorSource>,
}

/// What a drain found wrong with its inputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DrainReport {
    /// Restart events lost because the monitor fell behind the bus.
    pub(crate) lost_restart_events: u64,
}

impl Sources {
    pub(crate) fn drain(&mut self, window: &SlidingWindow) -> DrainReport {
        let mut report = DrainReport::default();
        if let Some(restarts) = &mut self.restarts {
            report.lost_restart_events = restarts.drain(window);
        }
        if let Some(delivery) = &mut self.delivery {
            delivery.drain(window);
        }
        if let Some(errors) = &mut self.errors {
            errors.drain(window);
        }
        report
    }
}
