//! The sliding window of health counters: a ring of time slots, each a
//! fixed array of atomic counters per cohort.
//!
//! Recording is lock-free and allocation-free: an acquire load of the
//! current slot's index and one relaxed `fetch_add` per counter (a request
//! is one add into its latency bucket, plus one for an error). The slot
//! index is moved by [`SlidingWindow::rotate`], which the monitor calls on
//! its timer (every slot width) and before each evaluation; it clears the
//! slots it reuses before publishing the new index (release/acquire, so no
//! add into a reused slot is lost to the clear). A recorder that loaded an
//! index just before a rotation adds into the previous slot, which is still
//! inside the window, so the error is at most one slot.
//!
//! Reading the window is cheap because it is incremental: a slot is copied
//! into running totals when it closes (once it is neither current nor the
//! one before, so in-flight adds have a whole slot width to land) and
//! subtracted when it leaves the window; a read adds the two live slots to
//! the totals.
//!
//! The window counts its last `window_slots` slots, the current one
//! included; right after a rotation the current slot is empty, so the data
//! judged covers between the window minus one slot and the whole window.
//!
//! This module is not for judging the counts (`health.rs`) nor for reading
//! other components (`sources/`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::cohort::{COHORTS, Cohort};
use crate::histogram::BUCKETS;

/// The counters of one cohort in one slot, by offset.
pub(crate) mod field {
    use crate::histogram::BUCKETS;

    /// Failed requests (recorded by the request recorder).
    pub(crate) const ERRORS: usize = BUCKETS;
    /// Supervisor restarts.
    pub(crate) const RESTARTS: usize = BUCKETS + 1;
    /// Deliveries attempted.
    pub(crate) const DELIVERY_ATTEMPTS: usize = BUCKETS + 2;
    /// Deliveries that succeeded.
    pub(crate) const DELIVERED: usize = BUCKETS + 3;
    /// State restores attempted.
    pub(crate) const RESTORE_ATTEMPTS: usize = BUCKETS + 4;
    /// State restores that succeeded.
    pub(crate) const RESTORED: usize = BUCKETS + 5;
    /// Errors counted by the error tracker (overall, no cohort).
    pub(crate) const TRACKED_ERRORS: usize = BUCKETS + 6;
    /// Counters per cohort.
    pub(crate) const COUNT: usize = BUCKETS + 7;
}

/// One time slot: which absolute slot number it holds, and its counters.
struct Slot {
    number: AtomicU64,
    cells: Box<[AtomicU64]>,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            number: AtomicU64::new(u64::MAX),
            cells: (0..COHORTS * field::COUNT)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    fn clear(&self, number: u64) {
        for cell in &self.cells {
            cell.store(0, Ordering::Relaxed);
        }
        self.number.store(number, Ordering::Release);
    }
}

/// Summed counters of the slots inside a window, per cohort.
#[derive(Debug, Clone)]
pub(crate) struct WindowCounts {
    cells: Vec<u64>,
    /// The time the counts cover (shorter than the window right after a
    /// start or a reset).
    pub(crate) covered: Duration,
}

impl WindowCounts {
    pub(crate) fn get(&self, cohort: Cohort, field: usize) -> u64 {
        self.cells[cohort.index() * field::COUNT + field]
    }

    pub(crate) fn sum(&self, field: usize) -> u64 {
        Cohort::ALL
            .iter()
            .map(|cohort| self.get(*cohort, field))
            .sum()
    }

    pub(crate) fn histogram(&self, cohort: Cohort) -> &[u64] {
        let start = cohort.index() * field::COUNT;
        &self.cells[start..start + BUCKETS]
    }

    pub(crate) fn merged_histogram(&self) -> Vec<u64> {
        (0..BUCKETS)
            .map(|bucket| {
                Cohort::ALL
                    .iter()
                    .map(|cohort| self.histogram(*cohort)[bucket])
                    .sum()
            })
            .collect()
    }
}

/// The ring of slots.
pub(crate) struct SlidingWindow {
    slots: Box<[Slot]>,
    slot_nanos: u64,
    window_slots: u64,
    current: AtomicUsize,
    rotation: Mutex<Rotation>,
}

struct Rotation {
    /// The absolute slot number now current.
    number: u64,
    /// The first slot number whose data counts (after a reset).
    first: u64,
    /// When counting started (after a reset), in clock nanoseconds.
    started_nanos: u64,
    /// Copies of the closed slots still inside the window, oldest first.
    /// A slot closes once it is neither current nor the one before, so a
    /// recorder that loaded an index before a rotation has a whole slot
    /// width to finish its add.
    closed: VecDeque<(u64, Box<[u64]>)>,
    /// The sum of `closed`.
    totals: Box<[u64]>,
}

impl Rotation {
    fn oldest(&self, window_slots: u64) -> u64 {
        self.number.saturating_sub(window_slots - 1).max(self.first)
    }
}

impl std::fmt::Debug for SlidingWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlidingWindow")
            .field("slots", &self.slots.len())
            .field("slot_nanos", &self.slot_nanos)
            .finish_non_exhaustive()
    }
}

fn zeros() -> Box<[u64]> {
    vec![0u64; COHORTS * field::COUNT].into_boxed_slice()
}

impl SlidingWindow {
    /// A window of `window` made of `window_slots` slots, starting at
    /// `now_nanos` (clock time). Two spare slots keep the slots being
    /// filled apart from the oldest one read.
    pub(crate) fn new(window: Duration, window_slots: u32, now_nanos: u64) -> SlidingWindow {
        let window_slots = u64::from(window_slots.max(1));
        let window_nanos = u64::try_from(window.as_nanos())
            .unwrap_or(u64::MAX)
            .max(window_slots);
        let slot_nanos = (window_nanos / window_slots).max(1);
        let slots: Box<[Slot]> = (0..window_slots + 2).map(|_| Slot::new()).collect();
        let number = now_nanos / slot_nanos;
        let index = (number % slots.len() as u64) as usize;
        slots[index].clear(number);
        SlidingWindow {
            slots,
            slot_nanos,
            window_slots,
            current: AtomicUsize::new(index),
            rotation: Mutex::new(Rotation {
                number,
                first: number,
                started_nanos: now_nanos,
                closed: VecDeque::new(),
                totals: zeros(),
            }),
        }
    }

    /// The width of one slot.
    pub(crate) fn slot_width(&self) -> Duration {
        Duration::from_nanos(self.slot_nanos)
    }

    /// Adds `amount` to `field` of `cohort` in the current slot.
    #[inline]
    pub(crate) fn add(&self, cohort: Cohort, field: usize, amount: u64) {
        let slot = &self.slots[self.current.load(Ordering::Acquire)];
        slot.cells[cohort.index() * field::COUNT + field].fetch_add(amount, Ordering::Relaxed);
    }

    /// The slot holding `number`, if it still does.
    fn slot(&self, number: u64) -> Option<&Slot> {
        let slot = &self.slots[(number % self.slots.len() as u64) as usize];
        (slot.number.load(Ordering::Acquire) == number).then_some(slot)
    }

    /// Moves the current slot to the one holding `now_nanos`: copies the
    /// slots that close into the running totals, drops the ones that leave
    /// the window from them, and clears the slots it reuses.
    pub(crate) fn rotate(&self, now_nanos: u64) {
        let mut guard = self.rotation.lock().unwrap_or_else(PoisonError::into_inner);
        let rotation = &mut *guard;
        let target = now_nanos / self.slot_nanos;
        let previous = rotation.number;
        if target <= previous {
            return;
        }
        // Live before: previous - 1 and previous; live after: target - 1 and
        // target. Copy the ones that close before their slots are reused.
        let mut closing = [previous.checked_sub(1), Some(previous)];
        if previous == 0 {
            closing[0] = None;
        }
        for number in closing.into_iter().flatten() {
            if number + 2 > target || number < rotation.first {
                continue;
            }
            if let Some(slot) = self.slot(number) {
                let copy: Box<[u64]> = slot
                    .cells
                    .iter()
                    .map(|cell| cell.load(Ordering::Relaxed))
                    .collect();
                for (total, value) in rotation.totals.iter_mut().zip(copy.iter()) {
                    *total += value;
                }
                rotation.closed.push_back((number, copy));
            }
        }
        let ring = self.slots.len() as u64;
        let start = (previous + 1).max(target.saturating_sub(ring - 1));
        for number in start..=target {
            self.slots[(number % ring) as usize].clear(number);
        }
        self.current
            .store((target % ring) as usize, Ordering::Release);
        rotation.number = target;
        let oldest = rotation.oldest(self.window_slots);
        while rotation
            .closed
            .front()
            .is_some_and(|(number, _)| *number < oldest)
        {
            if let Some((_, copy)) = rotation.closed.pop_front() {
                for (total, value) in rotation.totals.iter_mut().zip(copy.iter()) {
                    *total -= value;
                }
            }
        }
    }

    /// Forgets everything recorded so far (after a phase change, so the new
    /// phase is judged on its own data).
    pub(crate) fn reset(&self, now_nanos: u64) {
        self.rotate(now_nanos);
        let mut rotation = self.rotation.lock().unwrap_or_else(PoisonError::into_inner);
        for slot in self.slots.iter() {
            let number = slot.number.load(Ordering::Acquire);
            slot.clear(number);
        }
        rotation.first = rotation.number;
        rotation.started_nanos = now_nanos;
        rotation.closed.clear();
        rotation.totals = zeros();
    }

    /// The counts of the slots inside the window ending now: the running
    /// totals of the closed slots plus the two live ones.
    pub(crate) fn counts(&self, now_nanos: u64) -> WindowCounts {
        self.rotate(now_nanos);
        let rotation = self.rotation.lock().unwrap_or_else(PoisonError::into_inner);
        let oldest = rotation.oldest(self.window_slots);
        let mut cells = rotation.totals.to_vec();
        let live = [rotation.number.checked_sub(1), Some(rotation.number)];
        for number in live.into_iter().flatten() {
            if number < oldest {
                continue;
            }
            if let Some(slot) = self.slot(number) {
                for (total, cell) in cells.iter_mut().zip(slot.cells.iter()) {
                    *total += cell.load(Ordering::Relaxed);
                }
            }
        }
        let window_nanos = self.slot_nanos.saturating_mul(self.window_slots);
        let covered = now_nanos
            .saturating_sub(rotation.started_nanos)
            .min(window_nanos);
        WindowCounts {
            cells,
            covered: Duration::from_nanos(covered),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn old_slots_leave_the_window() {
        let window = SlidingWindow::new(Duration::from_secs(60), 6, 0);
        window.add(Cohort::Control, field::ERRORS, 5);
        assert_eq!(window.counts(SECOND).get(Cohort::Control, field::ERRORS), 5);
        window.rotate(30 * SECOND);
        window.add(Cohort::Control, field::ERRORS, 1);
        assert_eq!(window.counts(59 * SECOND).sum(field::ERRORS), 6);
        // At 60 s the first slot (0-10 s) has left the 60 s window.
        assert_eq!(window.counts(60 * SECOND).sum(field::ERRORS), 1);
        assert_eq!(window.counts(10_000 * SECOND).sum(field::ERRORS), 0);
    }

    #[test]
    fn reset_forgets_and_restarts_coverage() {
        let window = SlidingWindow::new(Duration::from_secs(60), 6, 0);
        window.add(Cohort::Treatment, field::RESTARTS, 3);
        window.reset(15 * SECOND);
        let counts = window.counts(20 * SECOND);
        assert_eq!(counts.sum(field::RESTARTS), 0);
        assert_eq!(counts.covered, Duration::from_secs(5));
    }

    proptest! {
        /// Whatever the rotation times, the window holds exactly the adds
        /// made in the slots that are not older than the window.
        #[test]
        fn window_sums_match_a_model(steps in proptest::collection::vec((0u64..25, 0u64..5), 1..60)) {
            let window = SlidingWindow::new(Duration::from_secs(60), 6, 0);
            let mut now = 0u64;
            let mut model: Vec<(u64, u64)> = Vec::new();
            for (advance_seconds, amount) in steps {
                now += advance_seconds * SECOND;
                window.rotate(now);
                window.add(Cohort::Unassigned, field::DELIVERED, amount);
                model.push((now / (10 * SECOND), amount));
                let current = now / (10 * SECOND);
                let expected: u64 = model
                    .iter()
                    .filter(|(slot, _)| *slot + 6 > current)
                    .map(|(_, amount)| amount)
                    .sum();
                prop_assert_eq!(window.counts(now).sum(field::DELIVERED), expected);
            }
        }
    }
}
