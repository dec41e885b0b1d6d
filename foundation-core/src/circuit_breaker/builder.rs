//! Configuring a circuit breaker: [`CircuitBreakerBuilder`], its defaults
//! (the original system's) and their validation.
//!
//! This module is not for the running state machine (see `machine.rs`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use foundation_error::{Category, Error, ErrorCode};

use super::CircuitBreaker;
use super::state::MAX_COUNT;
use crate::clock::{Clock, SharedClock, TokioClock};

/// Consecutive failures that open a closed breaker, by default.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
/// Successful probes that close a half-open breaker, by default.
pub const DEFAULT_SUCCESS_THRESHOLD: u32 = 3;
/// How long a breaker stays open before it lets probes through, by default.
pub const DEFAULT_RESET_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one call may take before it fails as a timeout, by default.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Probe calls allowed at once while half-open, by default.
pub const DEFAULT_HALF_OPEN_PROBES: u32 = 1;

/// Decides whether an error returned by the protected operation counts
/// against the dependency's health.
pub type FailurePredicate = fn(&Error) -> bool;

/// The default [`FailurePredicate`]: infrastructure errors count (timeouts,
/// lost connections, unavailable services); validation, business and
/// system errors do not.
pub fn is_infrastructure_error(error: &Error) -> bool {
    error.category() == Category::Infrastructure
}

/// A breaker's settings, as built.
#[derive(Clone)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Consecutive failures that open the closed breaker.
    pub failure_threshold: u32,
    /// Consecutive successful probes that close the half-open breaker.
    pub success_threshold: u32,
    /// How long the breaker stays open before it admits probes.
    pub reset_timeout: Duration,
    /// How long one call may wait before it fails as a timeout.
    pub call_timeout: Duration,
    /// Probe calls admitted at once while half-open.
    pub half_open_probes: u32,
    /// Which errors of the operation count as failures.
    pub counts_as_failure: FailurePredicate,
}

impl fmt::Debug for BreakerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerConfig")
            .field("failure_threshold", &self.failure_threshold)
            .field("success_threshold", &self.success_threshold)
            .field("reset_timeout", &self.reset_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("half_open_probes", &self.half_open_probes)
            .finish_non_exhaustive()
    }
}

/// Builds a [`CircuitBreaker`].
///
/// Defaults: failure threshold 5, success threshold 3, reset timeout 60 s,
/// call timeout 5 s, 1 half-open probe, infrastructure errors count as
/// failures, tokio's clock.
///
/// ```
/// use std::time::Duration;
/// use foundation_core::circuit_breaker::CircuitBreaker;
///
/// let breaker = CircuitBreaker::builder("payments")
///     .failure_threshold(3)
///     .reset_timeout(Duration::from_secs(30))
///     .half_open_probes(2)
///     .build()?;
/// assert_eq!(breaker.config().success_threshold, 3);
/// # Ok::<(), foundation_error::Error>(())
/// ```
#[derive(Clone)]
pub struct CircuitBreakerBuilder {
    id: String,
    config: BreakerConfig,
    clock: Option<SharedClock>,
}

impl CircuitBreakerBuilder {
    pub(crate) fn new(id: impl Into<String>) -> CircuitBreakerBuilder {
        CircuitBreakerBuilder {
            id: id.into(),
            config: BreakerConfig {
                failure_threshold: DEFAULT_FAILURE_THRESHOLD,
                success_threshold: DEFAULT_SUCCESS_THRESHOLD,
                reset_timeout: DEFAULT_RESET_TIMEOUT,
                call_timeout: DEFAULT_CALL_TIMEOUT,
                half_open_probes: DEFAULT_HALF_OPEN_PROBES,
                counts_as_failure: is_infrastructure_error,
            },
            clock: None,
        }
    }

    /// Sets the number of consecutive failures that opens the breaker.
    pub fn failure_threshold(&mut self, failures: u32) -> &mut Self {
        self.config.failure_threshold = failures;
        self
    }

    /// Sets the number of consecutive successful probes that closes it.
    pub fn success_threshold(&mut self, successes: u32) -> &mut Self {
        self.config.success_threshold = successes;
        self
    }

    /// Sets how long the breaker stays open before it admits probes.
    pub fn reset_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.config.reset_timeout = timeout;
        self
    }

    /// Sets how long one call may wait before it fails as a timeout.
    pub fn call_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.config.call_timeout = timeout;
        self
    }

    /// Sets how many probe calls may run at once while half-open.
    pub fn half_open_probes(&mut self, probes: u32) -> &mut Self {
        self.config.half_open_probes = probes;
        self
    }

    /// Sets which errors returned by the operation count as failures
    /// (default [`is_infrastructure_error`]). Timeouts and panics always
    /// count.
    pub fn counts_as_failure(&mut self, predicate: FailurePredicate) -> &mut Self {
        self.config.counts_as_failure = predicate;
        self
    }

    /// Sets the clock the reset timeout is measured on (default: a
    /// [`TokioClock`] created by `build`). The call timeout always uses
    /// tokio's timer.
    pub fn clock(&mut self, clock: impl Clock) -> &mut Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Builds the breaker, closed.
    ///
    /// Fails with `invalid_config_value` on an empty id, a threshold or
    /// probe count of zero or above 4,194,303, or a zero timeout.
    pub fn build(&self) -> Result<CircuitBreaker, Error> {
        let config = &self.config;
        if self.id.is_empty() {
            return Err(invalid(
                &self.id,
                "id",
                "a circuit breaker needs a non-empty id",
            ));
        }
        for (field, value) in [
            ("failure_threshold", config.failure_threshold),
            ("success_threshold", config.success_threshold),
            ("half_open_probes", config.half_open_probes),
        ] {
            if value == 0 || value > MAX_COUNT {
                return Err(invalid(
                    &self.id,
                    field,
                    format!("{field} must lie in 1..={MAX_COUNT}, not {value}"),
                ));
            }
        }
        for (field, value) in [
            ("reset_timeout", config.reset_timeout),
            ("call_timeout", config.call_timeout),
        ] {
            if value.is_zero() {
                return Err(invalid(
                    &self.id,
                    field,
                    format!("{field} must be longer than zero"),
                ));
            }
        }
        let clock = self
            .clock
            .clone()
            .unwrap_or_else(|| Arc::new(TokioClock::new()));
        Ok(CircuitBreaker::from_parts(
            Arc::from(self.id.as_str()),
            config.clone(),
            clock,
        ))
    }
}

impl fmt::Debug for CircuitBreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerBuilder")
            .field("id", &self.id)
            .field("config", &self.config)
            .field("clock", &self.clock)
            .finish()
    }
}

fn invalid(
    id: &str,
    field: &'static str,
    message: impl Into<std::borrow::Cow<'static, str>>,
) -> Error {
    Error::new(ErrorCode::INVALID_CONFIG_VALUE, message)
        .with_context("breaker", id)
        .with_context("field", field)
}
