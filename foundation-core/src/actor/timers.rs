//! An actor's timers to itself.
//!
//! Timers live inside the running instance (a heap of deadlines checked by
//! the run loop), not in tasks of their own: they cost no task, cannot
//! outlive the instance, and are cancelled simply by the instance ending.
//! An interval that falls behind skips the ticks it missed instead of
//! bursting.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use tokio::time::Instant;

use super::slots::Slots;

enum Timer<I> {
    Once(I),
    Every {
        period: Duration,
        make: Box<dyn Fn() -> I + Send>,
    },
}

pub(crate) struct Timers<I> {
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    timers: Slots<Timer<I>>,
    next_id: u64,
}

impl<I> Default for Timers<I> {
    fn default() -> Self {
        Timers {
            deadlines: BinaryHeap::new(),
            timers: Slots::new(),
            next_id: 0,
        }
    }
}

impl<I> Timers<I> {
    pub(crate) fn once(&mut self, at: Instant, info: I) -> u64 {
        self.insert(at, Timer::Once(info))
    }

    pub(crate) fn every(
        &mut self,
        first: Instant,
        period: Duration,
        make: Box<dyn Fn() -> I + Send>,
    ) -> u64 {
        self.insert(first, Timer::Every { period, make })
    }

    fn insert(&mut self, at: Instant, timer: Timer<I>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.timers.insert(id, timer);
        if self.deadlines.len() == self.deadlines.capacity() {
            // Grow by one, not to four: most actors hold one timer.
            self.deadlines.reserve_exact(1);
        }
        self.deadlines.push(Reverse((at, id)));
        id
    }

    pub(crate) fn cancel(&mut self, id: u64) -> bool {
        let cancelled = self.timers.remove(id).is_some();
        // Cancelled deadlines are skipped lazily; rebuild when they dominate
        // so that schedule-and-cancel loops cannot grow the heap.
        if cancelled && self.deadlines.len() > 2 * self.timers.len() + 16 {
            let live = &self.timers;
            self.deadlines
                .retain(|Reverse((_, id))| live.contains_key(*id));
        }
        cancelled
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.timers.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.timers.len()
    }

    /// The earliest live deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.deadlines.peek() {
            if self.timers.contains_key(*id) {
                return Some(*at);
            }
            self.deadlines.pop();
        }
        None
    }

    /// The info of a timer due at `now`, if any; intervals are rescheduled.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<I> {
        loop {
            let Reverse((at, id)) = *self.deadlines.peek()?;
            if at > now {
                return None;
            }
            self.deadlines.pop();
            match self.timers.get(id) {
                None => continue,
                Some(Timer::Once(_)) => match self.timers.remove(id) {
                    Some(Timer::Once(info)) => return Some(info),
                    _ => continue,
                },
                Some(Timer::Every { period, make }) => {
                    let info = make();
                    let mut next = at + *period;
                    if next <= now {
                        next = now + *period;
                    }
                    self.deadlines.push(Reverse((next, id)));
                    return Some(info);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_timers_fire_in_order_and_cancelled_ones_never() {
        let start = Instant::now();
        let mut timers = Timers::default();
        let late = timers.once(start + Duration::from_secs(2), "late");
        timers.once(start + Duration::from_secs(1), "early");
        let cancelled = timers.once(start + Duration::from_millis(500), "cancelled");
        assert!(timers.cancel(cancelled));
        assert_eq!(timers.next_deadline(), Some(start + Duration::from_secs(1)));
        assert_eq!(
            timers.pop_due(start + Duration::from_secs(3)),
            Some("early")
        );
        assert_eq!(timers.pop_due(start + Duration::from_secs(3)), Some("late"));
        assert_eq!(timers.pop_due(start + Duration::from_secs(3)), None);
        assert!(!timers.cancel(late));
        assert!(timers.is_empty());
    }

    #[test]
    fn intervals_skip_missed_ticks() {
        let start = Instant::now();
        let mut timers = Timers::default();
        timers.every(start, Duration::from_secs(1), Box::new(|| "tick"));
        assert_eq!(
            timers.pop_due(start + Duration::from_secs(10)),
            Some("tick")
        );
        assert_eq!(timers.pop_due(start + Duration::from_secs(10)), None);
        assert_eq!(
            timers.next_deadline(),
            Some(start + Duration::from_secs(11))
        );
    }

    #[test]
    fn schedule_and_cancel_loops_stay_bounded() {
        let start = Instant::now();
        let mut timers = Timers::default();
        for step in 0..10_000u64 {
            let id = timers.once(start + Duration::from_secs(step), step);
            timers.cancel(id);
        }
        assert!(timers.deadlines.len() < 100);
    }
}
