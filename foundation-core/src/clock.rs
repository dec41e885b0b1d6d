//! Injectable monotonic clocks for the time-based services (the rate
//! limiter's windows and the circuit breaker's reset timeout).
//!
//! The default, [`TokioClock`], reads tokio's [`Instant`], so it follows
//! paused time in `#[tokio::test(start_paused = true)]` tests. [`ManualClock`]
//! moves only when told to, which makes tests on a multi-thread runtime
//! (where tokio's time cannot be paused) deterministic: no window can roll
//! in the middle of a race test.
//!
//! This module is not for timers or deadlines that must wake a task; those
//! use tokio's timer directly.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// A monotonic clock: the time elapsed since a fixed origin.
///
/// Implementations must never go backwards and must be cheap to read; the
/// rate limiter reads the clock on every check. Reading the OS clock is
/// the largest part of a check's cost; where that matters more than paused
/// test time, an implementation over a TSC-based clock (such as the
/// `quanta` crate's) is a few lines.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The time elapsed since this clock's origin.
    fn elapsed(&self) -> Duration;

    /// [`Clock::elapsed`] in whole nanoseconds, saturating after 584 years.
    fn elapsed_nanos(&self) -> u64 {
        u64::try_from(self.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The default clock: tokio's [`Instant`], measured from the clock's creation.
///
/// Under paused tokio time (current-thread runtimes in tests) it advances
/// only with `tokio::time::advance` or auto-advance. Outside a runtime it
/// reads the system's monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: Instant,
}

impl TokioClock {
    /// A clock whose origin is now.
    pub fn new() -> TokioClock {
        TokioClock {
            origin: Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }
}

/// A clock that moves only when [`ManualClock::advance`] is called.
///
/// Clones share one time, so a test keeps a clone and advances the clock
/// that a service was built with.
///
/// ```
/// use std::time::Duration;
/// use foundation_core::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let seen_by_service = clock.clone();
/// clock.advance(Duration::from_millis(250));
/// assert_eq!(seen_by_service.elapsed(), Duration::from_millis(250));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at its origin.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// Moves the clock forward by `by` (saturating after 584 years).
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // fetch_update with a closure that always returns Some cannot fail.
        let _previous = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some(now.saturating_add(by))
            });
    }
}

impl Clock for ManualClock {
    fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }

    fn elapsed_nanos(&self) -> u64 {
        self.nanos.load(Ordering::Acquire)
    }
}

/// A shared clock, as the services hold it.
pub(crate) type SharedClock = Arc<dyn Clock>;
