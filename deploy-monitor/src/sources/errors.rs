//! Errors from the error tracker: the delta of its totals (every code)
//! since the last drain, counted overall (the tracker knows no cohorts).
//!
//! This module is not for per-cohort error rates; those come from request
//! outcomes given to the `Recorder`.

use foundation_error::ErrorTracker;

use crate::cohort::Cohort;
use crate::window::{SlidingWindow, field};

pub(crate) struct ErrorSource {
    tracker: ErrorTracker,
    seen: u64,
}

impl ErrorSource {
    pub(crate) fn new(tracker: ErrorTracker) -> ErrorSource {
        let seen = total(&tracker);
        ErrorSource { tracker, seen }
    }

    pub(crate) fn drain(&mut self, window: &SlidingWindow) {
        let now = total(&self.tracker);
        let new = now.saturating_sub(self.seen);
        self.seen = now;
        if new > 0 {
            window.add(Cohort::Unassigned, field::TRACKED_ERRORS, new);
        }
    }
}

fn total(tracker: &ErrorTracker) -> u64 {
    tracker.totals().iter().map(|(_, count)| count).sum()
}
