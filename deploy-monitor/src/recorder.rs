//! [`Recorder`]: the handle the application records requests, restores and
//! deliveries through.
//!
//! Agents, workflows and the HTTP layer each keep a clone and call it on
//! their hot path. A request is one or two atomic additions into the
//! current window slot (its latency bucket, and the error counter when it
//! failed): no lock, no allocation, no clock read (the slot is moved by the
//! monitor's timer).
//!
//! This module is not for reading other components' counters; the adapters
//! in `sources/` do that.

use std::sync::Arc;
use std::time::Duration;

use crate::cohort::Cohort;
use crate::histogram::{bucket_of, micros};
use crate::window::{SlidingWindow, field};

/// Records health samples into the monitor's window. Cheap to clone; clones
/// record into the same window.
///
/// ```
/// use std::time::Duration;
/// use deploy_monitor::{Cohort, RequestOutcome};
/// # fn record(recorder: &deploy_monitor::Recorder) {
/// recorder.record_request(Cohort::Treatment, Duration::from_millis(12), RequestOutcome::Success);
/// recorder.record_restore(Cohort::Unassigned, true);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Recorder {
    window: Arc<SlidingWindow>,
}

/// Whether a request succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestOutcome {
    /// It succeeded.
    Success,
    /// It failed; counts towards the error rate.
    Error,
}

impl Recorder {
    pub(crate) fn new(window: Arc<SlidingWindow>) -> Recorder {
        Recorder { window }
    }

    /// Records one request: its cohort, how long it took, and whether it
    /// failed. One atomic add (two for a failure).
    #[inline]
    pub fn record_request(&self, cohort: Cohort, latency: Duration, outcome: RequestOutcome) {
        self.window.add(cohort, bucket_of(micros(latency)), 1);
        if outcome == RequestOutcome::Error {
            self.window.add(cohort, field::ERRORS, 1);
        }
    }

    /// Records one state restore (a persistent agent or workflow loading
    /// its state after a restart) and whether it succeeded.
    pub fn record_restore(&self, cohort: Cohort, succeeded: bool) {
        self.window.add(cohort, field::RESTORE_ATTEMPTS, 1);
        if succeeded {
            self.window.add(cohort, field::RESTORED, 1);
        }
    }

    /// Records one message delivery attempt and whether it was delivered
    /// (for deliveries that do not go through a signal router the monitor
    /// reads).
    pub fn record_delivery(&self, cohort: Cohort, delivered: bool) {
        self.window.add(cohort, field::DELIVERY_ATTEMPTS, 1);
        if delivered {
            self.window.add(cohort, field::DELIVERED, 1);
        }
    }

    /// Records supervisor restarts attributed to `cohort` (for restarts not
    /// seen on an event bus the monitor reads).
    pub fn record_restarts(&self, cohort: Cohort, restarts: u64) {
        self.window.add(cohort, field::RESTARTS, restarts);
    }
}
