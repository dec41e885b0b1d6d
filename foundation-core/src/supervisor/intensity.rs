//! Restart intensity: at most N restarts within P, counted in one sliding
//! window across all of a supervisor's children (as OTP does, and unlike
//! per-child counters).

use std::collections::VecDeque;
use std::time::Duration;

#[derive(Debug)]
pub(crate) struct Intensity {
    max_restarts: u32,
    period: Duration,
    restarts: VecDeque<Duration>,
}

impl Intensity {
    pub(crate) fn new(max_restarts: u32, period: Duration) -> Intensity {
        Intensity {
            max_restarts,
            period,
            restarts: VecDeque::new(),
        }
    }

    /// Records a restart at `now` (a reading of the supervisor's
    /// monotonic clock); false when it makes more than `max_restarts`
    /// within the period.
    pub(crate) fn record(&mut self, now: Duration) -> bool {
        while let Some(&oldest) = self.restarts.front() {
            if now.saturating_sub(oldest) >= self.period {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        self.restarts.push_back(now);
        self.restarts.len() <= self.max_restarts as usize
    }

    /// Restarts inside the window ending at `now`.
    #[cfg(test)]
    pub(crate) fn recent(&self, now: Duration) -> usize {
        self.restarts
            .iter()
            .filter(|&&at| now.saturating_sub(at) < self.period)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fourth_restart_within_the_period_exceeds_three() {
        let start = Duration::from_secs(100);
        let mut intensity = Intensity::new(3, Duration::from_secs(5));
        assert!(intensity.record(start));
        assert!(intensity.record(start + Duration::from_secs(1)));
        assert!(intensity.record(start + Duration::from_secs(2)));
        assert!(!intensity.record(start + Duration::from_secs(3)));
    }

    #[test]
    fn restarts_spread_wider_than_the_period_never_exceed() {
        let start = Duration::from_secs(100);
        let mut intensity = Intensity::new(3, Duration::from_secs(5));
        for step in 0..100u64 {
            assert!(intensity.record(start + Duration::from_secs(2 * step)));
        }
        assert!(intensity.recent(start + Duration::from_secs(198)) <= 3);
    }

    #[test]
    fn zero_restarts_allows_none() {
        let mut intensity = Intensity::new(0, Duration::from_secs(5));
        assert!(!intensity.record(Duration::ZERO));
    }
}
