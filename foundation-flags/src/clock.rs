//! The wall clock that stamps audit entries and schedules ramps.
//!
//! Ramp steps are due at wall-clock times so that a schedule survives a
//! restart. Tests need that wall clock to move with paused tokio time, and
//! two `Flags` opened one after the other (a restart) to agree on it, so the
//! clock is a value passed in, not `SystemTime::now()` called everywhere.
//! This module is not for waiting; the ramp driver sleeps on tokio's clock.

use std::time::SystemTime;

/// A source of wall-clock time.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use foundation_flags::Clock;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let clock = Clock::following_tokio_time(start);
/// tokio::time::advance(Duration::from_secs(60)).await;
/// assert_eq!(clock.now(), start + Duration::from_secs(60));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Clock {
    kind: ClockKind,
}

#[derive(Debug, Clone)]
enum ClockKind {
    System,
    FollowingTokio {
        wall: SystemTime,
        instant: tokio::time::Instant,
    },
}

impl Clock {
    /// The operating system's wall clock (the default).
    pub fn system() -> Clock {
        Clock {
            kind: ClockKind::System,
        }
    }

    /// A wall clock that reads `start` now and then advances with tokio's
    /// clock, so paused time (`tokio::time::advance`) moves it. Clones share
    /// the starting point, so `Flags` reopened with a clone after a simulated
    /// restart see time continue.
    pub fn following_tokio_time(start: SystemTime) -> Clock {
        Clock {
            kind: ClockKind::FollowingTokio {
                wall: start,
                instant: tokio::time::Instant::now(),
            },
        }
    }

    /// The current wall-clock time.
    pub fn now(&self) -> SystemTime {
        match &self.kind {
            ClockKind::System => SystemTime::now(),
            ClockKind::FollowingTokio { wall, instant } => *wall + instant.elapsed(),
        }
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}
