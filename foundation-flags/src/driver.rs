//! The [`RampDriver`]: the future that runs ramp steps when they fall due.
//!
//! This crate spawns nothing. The application runs the driver's
//! [`run`](RampDriver::run) future wherever it runs long-lived work: under
//! a foundation-core supervisor (restarted if it fails), or with
//! `tokio::spawn` in a small service. The driver holds the flags weakly:
//! when every [`Flags`] clone is dropped it returns `Ok(())`. It sleeps on
//! tokio's clock (so paused time drives it in tests) and wakes early when a
//! ramp is started, paused, resumed or cancelled.
//!
//! This module is not for step arithmetic (`ramp.rs`) or writes
//! (`writer.rs`).

use std::sync::{Arc, Weak};
use std::time::Duration;

use foundation_error::Result;
use tokio::sync::Notify;

use crate::registry::{Flags, Shared};

/// The longest the driver sleeps before re-reading the wall clock, so a
/// clock adjustment delays a step by at most this much.
pub const MAX_DRIVER_SLEEP: Duration = Duration::from_secs(60);

/// Runs ramp steps when they fall due. Obtain one with [`Flags::ramp_driver`].
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use foundation_error::clock::TokioClock;
/// use foundation_flags::{Attribution, Flag, FlagValue, Flags, RampPlan};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> foundation_error::Result<()> {
/// let mut builder = Flags::builder();
/// builder
///     .declare(Flag::new("beta", "Beta features", FlagValue::Off))
///     .clock(TokioClock::following(SystemTime::UNIX_EPOCH));
/// let flags = builder.open().await?;
///
/// // In an application: run it under a supervisor. Here: a plain task.
/// let driver = tokio::spawn(flags.ramp_driver().run());
///
/// let plan = RampPlan::new("beta", 0, 100, 50, Duration::from_secs(60))?;
/// flags.start_ramp(plan, Attribution::new("alice", "gradual launch")).await?;
/// tokio::time::sleep(Duration::from_secs(121)).await;
/// assert_eq!(flags.value("beta")?, FlagValue::percentage(100)?);
///
/// drop(flags); // the driver returns once the flags are gone
/// assert!(driver.await.unwrap().is_ok());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RampDriver {
    shared: Weak<Shared>,
    wakeup: Arc<Notify>,
}

impl Flags {
    /// The driver of this flags' ramps; see [`RampDriver`].
    pub fn ramp_driver(&self) -> RampDriver {
        RampDriver {
            shared: Arc::downgrade(&self.shared),
            wakeup: Arc::clone(&self.shared.ramp_wakeup),
        }
    }
}

impl RampDriver {
    /// Runs due steps, then sleeps until the next one is due (or a ramp
    /// changes), forever.
    ///
    /// Returns `Ok(())` when the flags have been dropped, and the error when
    /// a step could not be stored (the step is then not applied; it runs
    /// when the driver runs again, so restarting the driver, as a supervisor
    /// does, retries it).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future (aborting the driver's task) between steps loses
    /// nothing: due steps run when a driver runs again. Dropped during a
    /// step's store commit, that step's outcome is settled by the next
    /// write, as for any write (see [`Flags::advance_ramps`]).
    pub async fn run(self) -> Result<()> {
        loop {
            let wakeup = self.wakeup.notified();
            let mut wakeup = std::pin::pin!(wakeup);
            // Registered before reading the state, so a change made after
            // the read still wakes us.
            wakeup.as_mut().enable();

            let Some(shared) = self.shared.upgrade() else {
                return Ok(());
            };
            let flags = Flags { shared };
            flags.advance_ramps().await?;
            let sleep = flags.snapshot().next_ramp_step_at().map(|due| {
                due.duration_since(flags.clock().wall())
                    .unwrap_or(Duration::ZERO)
                    .min(MAX_DRIVER_SLEEP)
            });
            // Not kept while sleeping: the driver must not keep the flags alive.
            drop(flags);

            match sleep {
                Some(sleep) => {
                    tokio::select! {
                        () = tokio::time::sleep(sleep) => {}
                        () = &mut wakeup => {}
                    }
                }
                None => wakeup.await,
            }
        }
    }
}
