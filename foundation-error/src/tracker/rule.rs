//! Alert rules and the lock-free state that evaluates them.
//!
//! A rule fires when `threshold` errors of one code fall within `window`.
//! Each (rule, code) pair keeps the timestamps of its last `threshold`
//! errors in a ring: the rule holds exactly when the oldest of them is no
//! older than the window, so evaluation is O(1) per tracked error. After
//! firing, the rule stays quiet for one window (no alert storms) and then
//! re-arms.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::code::ErrorCode;
use crate::error::Error;

/// The most errors a rule may require; bounds each rule's ring.
pub const MAX_ALERT_THRESHOLD: u32 = 100_000;

/// When the tracker raises an [`ErrorAlert`].
///
/// The default is the original system's: 10 errors of one code within 5
/// minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRule {
    code: Option<ErrorCode>,
    threshold: u32,
    window: Duration,
}

impl Default for AlertRule {
    fn default() -> Self {
        AlertRule::each_code(10, Duration::from_secs(300))
    }
}

impl AlertRule {
    /// Fires when any one code reaches `threshold` errors within `window`;
    /// each code is judged separately.
    pub fn each_code(threshold: u32, window: Duration) -> AlertRule {
        AlertRule {
            code: None,
            threshold,
            window,
        }
    }

    /// Fires when `code` reaches `threshold` errors within `window`.
    pub fn for_code(code: ErrorCode, threshold: u32, window: Duration) -> AlertRule {
        AlertRule {
            code: Some(code),
            threshold,
            window,
        }
    }

    /// The number of errors that fires the rule.
    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    /// The window the errors must fall within.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The one code this rule watches, or `None` for every code.
    pub fn code(&self) -> Option<ErrorCode> {
        self.code
    }

    pub(crate) fn applies_to(&self, code: ErrorCode) -> bool {
        self.code.is_none_or(|watched| watched == code)
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.threshold == 0 || self.threshold > MAX_ALERT_THRESHOLD {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                "an alert rule's threshold must be between 1 and 100,000",
            )
            .with_context("threshold", self.threshold));
        }
        if self.window.is_zero() {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                "an alert rule's window must be longer than zero",
            ));
        }
        Ok(())
    }
}

/// An alert: one code failed at least `threshold` times within `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorAlert {
    /// The failing code.
    pub code: ErrorCode,
    /// Errors of the code within the window when the alert fired
    /// (one-second resolution).
    pub count: u64,
    /// The rule's threshold.
    pub threshold: u32,
    /// The rule's window.
    pub window: Duration,
}

/// The evaluation state of one rule for one code.
pub(crate) struct RuleState {
    /// Timestamps (nanoseconds since the tracker's epoch, plus one so that
    /// zero means empty) of the last `threshold` errors.
    ring: Box<[AtomicU64]>,
    /// How many errors this state has seen.
    seen: AtomicU64,
    /// When the rule last fired, plus one; zero when it never did.
    last_fired: AtomicU64,
}

impl RuleState {
    pub(crate) fn new(rule: &AlertRule) -> RuleState {
        RuleState {
            ring: (0..rule.threshold).map(|_| AtomicU64::new(0)).collect(),
            seen: AtomicU64::new(0),
            last_fired: AtomicU64::new(0),
        }
    }

    /// Records an error at `now` (nanoseconds since the epoch) and says
    /// whether the rule fires for it.
    pub(crate) fn observe(&self, now: u64, rule: &AlertRule) -> bool {
        let stamp = now.saturating_add(1);
        let length = self.ring.len() as u64;
        let index = self.seen.fetch_add(1, Ordering::AcqRel);
        self.ring[(index % length) as usize].store(stamp, Ordering::Release);
        if index + 1 < length {
            return false;
        }
        let oldest = self.ring[((index + 1) % length) as usize].load(Ordering::Acquire);
        let window = u64::try_from(rule.window.as_nanos()).unwrap_or(u64::MAX);
        if oldest == 0 || stamp.saturating_sub(oldest) > window {
            return false;
        }
        let last = self.last_fired.load(Ordering::Acquire);
        if last != 0 && stamp.saturating_sub(last) < window {
            return false;
        }
        self.last_fired
            .compare_exchange(last, stamp, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn fires_once_per_window_and_rearms() {
        let rule = AlertRule::each_code(3, Duration::from_secs(10));
        let state = RuleState::new(&rule);
        assert!(!state.observe(0, &rule));
        assert!(!state.observe(SECOND, &rule));
        assert!(state.observe(2 * SECOND, &rule));
        assert!(!state.observe(3 * SECOND, &rule));
        assert!(!state.observe(11 * SECOND, &rule));
        // Ten seconds after firing, with three errors in the window again.
        assert!(state.observe(12 * SECOND, &rule));
    }

    #[test]
    fn spread_errors_never_fire() {
        let rule = AlertRule::each_code(3, Duration::from_secs(10));
        let state = RuleState::new(&rule);
        for step in 0..20 {
            assert!(!state.observe(step * 6 * SECOND, &rule));
        }
    }

    #[test]
    fn threshold_one_fires_on_the_first_error() {
        let rule = AlertRule::each_code(1, Duration::from_secs(10));
        let state = RuleState::new(&rule);
        assert!(state.observe(0, &rule));
        assert!(!state.observe(SECOND, &rule));
    }

    #[test]
    fn invalid_rules_are_rejected() {
        assert!(
            AlertRule::each_code(0, Duration::from_secs(1))
                .validate()
                .is_err()
        );
        assert!(AlertRule::each_code(1, Duration::ZERO).validate().is_err());
        assert!(AlertRule::default().validate().is_ok());
    }
}
