//! Scheduled ramps: a flag raised (or lowered) from one percentage to
//! another in steps at an interval.
//!
//! A [`RampPlan`] says what to do; a [`RampState`] is a running ramp as the
//! store keeps it (its current percentage and the wall-clock time its next
//! step is due), so a ramp survives a restart. The step arithmetic lives
//! here; the writes live in `registry.rs` and the driver that runs steps
//! when they fall due lives in `driver.rs`.
//!
//! Semantics:
//! - Starting a ramp sets the flag to `from` at once; each step moves it by
//!   `step` towards `to`; the step that reaches `to` completes the ramp.
//! - A ramp never skips steps: if the service was down when steps fell due,
//!   the next step runs as soon as it can and the one after an interval
//!   later.
//! - Pausing keeps the ramp; resuming schedules the next step one interval
//!   after the resume.
//! - Any other write to the flag (set, bulk apply, reset) cancels its ramp,
//!   so an operator or a rollback always wins over a schedule.

use std::time::{Duration, SystemTime};

use foundation_error::{Error, ErrorCode, Result};
use serde::{Deserialize, Serialize};

use crate::declaration::validate_name;
use crate::value::Percentage;

/// The shortest interval between steps.
pub const MIN_RAMP_INTERVAL: Duration = Duration::from_secs(1);
/// The longest interval between steps (a year).
pub const MAX_RAMP_INTERVAL: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// What a ramp does.
///
/// ```
/// use std::time::Duration;
/// use foundation_flags::RampPlan;
///
/// // 10% now, then 20%, 30%, 40%, 50%, one step every ten minutes.
/// let plan = RampPlan::new("new_checkout", 10, 50, 10, Duration::from_secs(600)).unwrap();
/// assert_eq!(plan.steps(), 4);
/// assert!(RampPlan::new("new_checkout", 10, 50, 0, Duration::from_secs(600)).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredRampPlan")]
pub struct RampPlan {
    flag: String,
    from: Percentage,
    to: Percentage,
    step: u8,
    interval: Duration,
}

impl RampPlan {
    /// A ramp of `flag` from `from` to `to` percent, `step` points at a time,
    /// one step every `interval`.
    ///
    /// Errors ([`ErrorCode::RANGE_ERROR`] or [`ErrorCode::INVALID_INPUT`]):
    /// a percentage above 100, `from == to`, a step outside 1..=100, an
    /// interval outside [`MIN_RAMP_INTERVAL`]..=[`MAX_RAMP_INTERVAL`], an
    /// invalid flag name.
    pub fn new(
        flag: impl Into<String>,
        from: u32,
        to: u32,
        step: u32,
        interval: Duration,
    ) -> Result<RampPlan> {
        let flag = flag.into();
        validate_name(&flag)?;
        let from = Percentage::new(from)?;
        let to = Percentage::new(to)?;
        let invalid = |message: String| {
            Error::new(ErrorCode::INVALID_INPUT, message).with_context("flag", &flag)
        };
        if from == to {
            return Err(invalid(format!(
                "a ramp of `{flag}` must go somewhere: from and to are both {from}"
            )));
        }
        let step = match u8::try_from(step) {
            Ok(step @ 1..=100) => step,
            _ => {
                return Err(Error::new(
                    ErrorCode::RANGE_ERROR,
                    format!("a ramp step of {step} points is out of range 1..=100"),
                )
                .with_context("flag", &flag));
            }
        };
        if !(MIN_RAMP_INTERVAL..=MAX_RAMP_INTERVAL).contains(&interval) {
            return Err(invalid(format!(
                "a ramp interval of {interval:?} is outside {MIN_RAMP_INTERVAL:?}..={MAX_RAMP_INTERVAL:?}"
            )));
        }
        Ok(RampPlan {
            flag,
            from,
            to,
            step,
            interval,
        })
    }

    /// The flag.
    pub fn flag(&self) -> &str {
        &self.flag
    }

    /// The percentage the ramp starts at.
    pub fn from(&self) -> Percentage {
        self.from
    }

    /// The percentage the ramp ends at.
    pub fn to(&self) -> Percentage {
        self.to
    }

    /// Points per step.
    pub fn step(&self) -> u8 {
        self.step
    }

    /// Time between steps.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How many steps follow the start.
    pub fn steps(&self) -> u32 {
        let distance = u32::from(self.from.get().abs_diff(self.to.get()));
        distance.div_ceil(u32::from(self.step))
    }

    /// The percentage after `current`, clamped at `to`.
    pub(crate) fn next_after(&self, current: Percentage) -> Percentage {
        let (current, to, step) = (current.get(), self.to.get(), self.step);
        let next = if self.from < self.to {
            current.saturating_add(step).min(to)
        } else {
            current.saturating_sub(step).max(to)
        };
        // Both bounds lie in 0..=100, so `next` does too.
        Percentage::new(u32::from(next)).unwrap_or(self.to)
    }
}

/// The fields of a plan as stored, validated by [`RampPlan::new`] when a
/// store decodes one, so a corrupt plan is a decoding error, never a ramp
/// that cannot finish.
#[derive(Deserialize)]
struct StoredRampPlan {
    flag: String,
    from: Percentage,
    to: Percentage,
    step: u8,
    interval: Duration,
}

impl TryFrom<StoredRampPlan> for RampPlan {
    type Error = Error;

    fn try_from(stored: StoredRampPlan) -> Result<RampPlan> {
        RampPlan::new(
            stored.flag,
            u32::from(stored.from.get()),
            u32::from(stored.to.get()),
            u32::from(stored.step),
            stored.interval,
        )
    }
}

/// A running ramp, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RampState {
    /// What the ramp does.
    pub plan: RampPlan,
    /// The percentage the flag was last set to by the ramp.
    pub current: Percentage,
    /// When the next step is due (wall clock).
    pub next_step_at: SystemTime,
    /// Whether the ramp is paused.
    pub paused: bool,
    /// Who started it.
    pub started_by: String,
    /// Why it was started.
    pub reason: String,
}

impl RampState {
    pub(crate) fn start(
        plan: RampPlan,
        now: SystemTime,
        started_by: String,
        reason: String,
    ) -> RampState {
        RampState {
            current: plan.from,
            next_step_at: now + plan.interval,
            plan,
            paused: false,
            started_by,
            reason,
        }
    }

    /// Whether a step is due at `now`.
    pub fn is_due(&self, now: SystemTime) -> bool {
        !self.paused && self.next_step_at <= now
    }

    /// Steps once at `now`: returns the new percentage and whether the ramp
    /// is complete. The next step is due one interval after this one was,
    /// or one interval from now if that is already past (no bursts).
    pub(crate) fn step(&mut self, now: SystemTime) -> (Percentage, bool) {
        self.current = self.plan.next_after(self.current);
        let on_schedule = self.next_step_at + self.plan.interval;
        self.next_step_at = if on_schedule > now {
            on_schedule
        } else {
            now + self.plan.interval
        };
        (self.current, self.current == self.plan.to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn percent(value: u32) -> Percentage {
        Percentage::new(value).unwrap()
    }

    #[test]
    fn steps_up_and_down_clamped() {
        let up = RampPlan::new("f", 10, 45, 10, MIN_RAMP_INTERVAL).unwrap();
        assert_eq!(up.steps(), 4);
        assert_eq!(up.next_after(percent(40)), percent(45));
        let down = RampPlan::new("f", 100, 0, 30, MIN_RAMP_INTERVAL).unwrap();
        assert_eq!(down.steps(), 4);
        assert_eq!(down.next_after(percent(10)), percent(0));
    }

    #[test]
    fn invalid_plans() {
        let second = Duration::from_secs(1);
        assert_eq!(
            RampPlan::new("f", 10, 101, 1, second).unwrap_err().code(),
            ErrorCode::RANGE_ERROR
        );
        assert_eq!(
            RampPlan::new("f", 10, 10, 1, second).unwrap_err().code(),
            ErrorCode::INVALID_INPUT
        );
        assert_eq!(
            RampPlan::new("f", 10, 20, 101, second).unwrap_err().code(),
            ErrorCode::RANGE_ERROR
        );
        assert_eq!(
            RampPlan::new("f", 10, 20, 5, Duration::from_millis(10))
                .unwrap_err()
                .code(),
            ErrorCode::INVALID_INPUT
        );
        assert!(RampPlan::new("bad name", 10, 20, 5, second).is_err());
    }

    #[test]
    fn overdue_steps_do_not_burst() {
        let plan = RampPlan::new("f", 0, 100, 10, Duration::from_secs(60)).unwrap();
        let start = SystemTime::UNIX_EPOCH;
        let mut state = RampState::start(plan, start, "t".into(), "r".into());
        // On time: the cadence is kept exactly.
        let (current, done) = state.step(start + Duration::from_secs(61));
        assert_eq!((current, done), (percent(10), false));
        assert_eq!(state.next_step_at, start + Duration::from_secs(120));
        // An hour late: one step now, the next an interval later.
        let late = start + Duration::from_secs(3600);
        state.step(late);
        assert_eq!(state.current, percent(20));
        assert_eq!(state.next_step_at, late + Duration::from_secs(60));
    }
}
