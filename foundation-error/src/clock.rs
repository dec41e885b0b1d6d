//! The one injectable clock of the workspace: monotonic time for windows,
//! deadlines and latencies, and wall time for stamps that must survive a
//! restart (audit entries, ramp schedules, alert times).
//!
//! Every crate reads time through a [`Clock`] it was given, so one paused or
//! manual clock drives a whole test of actors, flags, rollbacks and
//! workflows together:
//!
//! - [`TokioClock`] (the default) reads tokio's `Instant`, so it follows
//!   paused time in `#[tokio::test(start_paused = true)]` tests; its wall
//!   time is the system's, or a fixed start that then advances with tokio's
//!   clock ([`TokioClock::following`]).
//! - [`ManualClock`] moves only when told to, for tests on a multi-thread
//!   runtime where tokio's time cannot be paused.
//!
//! This module is not for timers that must wake a task: those sleep on
//! tokio's timer, which paused time also drives.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// A source of monotonic and wall-clock time.
///
/// Implementations must never let [`Clock::elapsed`] go backwards and must
/// be cheap to read: the rate limiter reads it on every check.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Monotonic time elapsed since this clock's origin.
    fn elapsed(&self) -> Duration;

    /// [`Clock::elapsed`] in whole nanoseconds, saturating after 584 years.
    fn elapsed_nanos(&self) -> u64 {
        u64::try_from(self.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The current wall-clock time. Not monotonic for the system clock (the
    /// operator may set it back); use [`Clock::elapsed`] to measure.
    fn wall(&self) -> SystemTime;
}

/// A clock shared by the services that read it.
pub type SharedClock = Arc<dyn Clock>;

/// A shared clock is a clock, so a builder that takes `impl Clock` also takes
/// the one [`SharedClock`] a whole application runs on.
impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn elapsed(&self) -> Duration {
        (**self).elapsed()
    }

    fn elapsed_nanos(&self) -> u64 {
        (**self).elapsed_nanos()
    }

    fn wall(&self) -> SystemTime {
        (**self).wall()
    }
}

/// The default clock: the system clock (a [`TokioClock`] with system wall
/// time), as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(TokioClock::new())
}

/// The default clock: tokio's `Instant`, measured from the clock's creation.
///
/// Under paused tokio time it advances only with `tokio::time::advance` or
/// auto-advance. Outside a runtime it reads the system's monotonic clock.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use foundation_error::clock::{Clock, TokioClock};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let clock = TokioClock::following(start);
/// tokio::time::advance(Duration::from_secs(60)).await;
/// assert_eq!(clock.elapsed(), Duration::from_secs(60));
/// assert_eq!(clock.wall(), start + Duration::from_secs(60));
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: Instant,
    wall_origin: Option<SystemTime>,
}

impl TokioClock {
    /// A clock whose origin is now, with the system's wall time.
    pub fn new() -> TokioClock {
        TokioClock {
            origin: Instant::now(),
            wall_origin: None,
        }
    }

    /// A clock whose wall time reads `start` now and then advances with
    /// tokio's clock, so paused time moves it. Copies share the origin, so
    /// two services built from copies (a simulated restart) agree on it.
    pub fn following(start: SystemTime) -> TokioClock {
        TokioClock {
            origin: Instant::now(),
            wall_origin: Some(start),
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

    fn wall(&self) -> SystemTime {
        match self.wall_origin {
            None => SystemTime::now(),
            Some(start) => after(start, self.elapsed()),
        }
    }
}

/// A clock that moves only when [`ManualClock::advance`] is called.
///
/// Clones share one time, so a test keeps a clone and advances the clock
/// that a service was built with. Its wall time is its start (by default
/// 2023-11-14T22:13:20Z, Unix time 1,700,000,000) plus the time advanced.
///
/// ```
/// use std::time::Duration;
/// use foundation_error::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let seen_by_service = clock.clone();
/// let wall = clock.wall();
/// clock.advance(Duration::from_millis(250));
/// assert_eq!(seen_by_service.elapsed(), Duration::from_millis(250));
/// assert_eq!(seen_by_service.wall(), wall + Duration::from_millis(250));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
    wall_origin: SystemTime,
}

/// The default wall start of a [`ManualClock`]: Unix time 1,700,000,000.
pub const MANUAL_CLOCK_EPOCH: Duration = Duration::from_secs(1_700_000_000);

impl ManualClock {
    /// A clock standing at its origin, with wall time [`MANUAL_CLOCK_EPOCH`].
    pub fn new() -> ManualClock {
        ManualClock::starting_at(SystemTime::UNIX_EPOCH + MANUAL_CLOCK_EPOCH)
    }

    /// A clock standing at its origin whose wall time reads `start`.
    pub fn starting_at(start: SystemTime) -> ManualClock {
        ManualClock {
            nanos: Arc::new(AtomicU64::new(0)),
            wall_origin: start,
        }
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

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }

    fn elapsed_nanos(&self) -> u64 {
        self.nanos.load(Ordering::Acquire)
    }

    fn wall(&self) -> SystemTime {
        after(self.wall_origin, self.elapsed())
    }
}

/// `start + by`, saturating at the largest time the platform represents
/// instead of panicking.
fn after(start: SystemTime, by: Duration) -> SystemTime {
    start.checked_add(by).unwrap_or_else(|| {
        // Halve until it fits: the platform's maximum is not a constant.
        let mut step = by;
        let mut time = start;
        while !step.is_zero() {
            if let Some(next) = time.checked_add(step) {
                time = next;
            } else {
                step /= 2;
            }
        }
        time
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let clock = TokioClock::new();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(clock.elapsed(), Duration::from_secs(3));
    }

    #[test]
    fn manual_clock_saturates() {
        let clock = ManualClock::new();
        clock.advance(Duration::MAX);
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.elapsed_nanos(), u64::MAX);
        assert!(clock.wall() > SystemTime::UNIX_EPOCH + MANUAL_CLOCK_EPOCH);
    }

    #[test]
    fn shared_clock_is_object_safe() {
        let manual = ManualClock::new();
        let shared: SharedClock = Arc::new(manual.clone());
        manual.advance(Duration::from_secs(2));
        assert_eq!(shared.elapsed(), Duration::from_secs(2));
        assert!(system().elapsed() < Duration::from_secs(60));
    }
}
