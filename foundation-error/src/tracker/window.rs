//! A lock-free sliding window of per-second counts.
//!
//! Each slot is one `AtomicU64` holding the second it counts (upper 40 bits)
//! and the count (lower 24 bits), so that recording is a single
//! compare-and-swap and a slot left over from an earlier lap of the ring is
//! recognised and restarted, never added to.

use std::sync::atomic::{AtomicU64, Ordering};

const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

pub(crate) struct SecondWindow {
    slots: Box<[AtomicU64]>,
}

impl SecondWindow {
    /// A window able to answer for the last `seconds` seconds.
    pub(crate) fn new(seconds: usize) -> SecondWindow {
        SecondWindow {
            slots: (0..seconds.max(1)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Counts one event in `second` (seconds since the tracker's epoch).
    /// A slot saturates at 16,777,215 events per second.
    pub(crate) fn record(&self, second: u64) {
        let slot = &self.slots[self.index(second)];
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let slot_second = current >> COUNT_BITS;
            let next = if slot_second == second {
                if current & COUNT_MASK == COUNT_MASK {
                    return;
                }
                current + 1
            } else if slot_second > second {
                // A later second already owns the slot; this event is older
                // than the window can hold.
                return;
            } else {
                (second << COUNT_BITS) | 1
            };
            match slot.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// The events counted in the `seconds` seconds ending with `now_second`
    /// (included), clamped to what the window holds.
    pub(crate) fn count(&self, now_second: u64, seconds: u64) -> u64 {
        let seconds = seconds.min(self.slots.len() as u64);
        let first = (now_second + 1).saturating_sub(seconds);
        (first..=now_second)
            .map(|second| {
                let value = self.slots[self.index(second)].load(Ordering::Relaxed);
                if value >> COUNT_BITS == second {
                    value & COUNT_MASK
                } else {
                    0
                }
            })
            .sum()
    }

    /// How many seconds the window holds.
    pub(crate) fn capacity_seconds(&self) -> u64 {
        self.slots.len() as u64
    }

    fn index(&self, second: u64) -> usize {
        (second % self.slots.len() as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_within_the_window_only() {
        let window = SecondWindow::new(10);
        window.record(0);
        window.record(0);
        window.record(5);
        assert_eq!(window.count(5, 10), 3);
        assert_eq!(window.count(5, 5), 1);
        // Second 10 reuses slot 0 and restarts it.
        window.record(10);
        assert_eq!(window.count(10, 10), 2);
        assert_eq!(window.count(10, 1), 1);
    }

    #[test]
    fn stale_laps_are_not_counted() {
        let window = SecondWindow::new(4);
        window.record(1);
        assert_eq!(window.count(9, 4), 0);
    }

    #[test]
    fn old_events_do_not_overwrite_newer_seconds() {
        let window = SecondWindow::new(4);
        window.record(8);
        window.record(4);
        assert_eq!(window.count(8, 4), 1);
    }
}
