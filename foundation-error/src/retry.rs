//! Retrying an operation with exponential backoff.
//!
//! Only retryable errors are retried: infrastructure errors whose code's
//! [`RetryStrategy`] is not `Never` (see [`ErrorCode::is_retryable`]).
//! Business and validation errors return at once. Delays sleep on tokio's
//! timer and the deadline is measured on the policy's
//! [`Clock`](crate::clock::Clock) (by default the system's, which follows
//! paused tokio time), so retries work under paused time in tests.
//!
//! [`ErrorCode::is_retryable`]: crate::ErrorCode::is_retryable

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{self, Clock, SharedClock};
use crate::code::{ErrorCode, RetryStrategy};
use crate::error::Error;

/// The context key under which the final error records the attempt count.
pub(crate) const ATTEMPTS_KEY: &str = "attempts";

/// Whether and how delays are randomised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// Exactly the computed delay.
    #[default]
    None,
    /// A uniformly random delay between zero and the computed delay ("full
    /// jitter"), which spreads out clients that failed together.
    Full,
}

/// How [`retry`] retries.
///
/// The defaults are the plan's: 3 attempts, a base delay of 100 ms doubling
/// each time, capped at 5 s, no jitter, no overall deadline, the system
/// clock.
///
/// ```
/// use std::time::Duration;
/// use foundation_error::RetryPolicy;
///
/// let policy = RetryPolicy::default();
/// assert_eq!(policy.backoff_delay(1), Duration::from_millis(100));
/// assert_eq!(policy.backoff_delay(2), Duration::from_millis(200));
/// assert_eq!(policy.backoff_delay(10), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    max_attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
    jitter: Jitter,
    deadline: Option<Duration>,
    /// `None` reads the system clock when a retry starts.
    clock: Option<SharedClock>,
}

/// Two policies are equal when they retry alike: same settings and the same
/// clock (the same shared instance, or both the system's).
impl PartialEq for RetryPolicy {
    fn eq(&self, other: &RetryPolicy) -> bool {
        let same_clock = match (&self.clock, &other.clock) {
            (None, None) => true,
            (Some(mine), Some(theirs)) => Arc::ptr_eq(mine, theirs),
            _ => false,
        };
        self.max_attempts == other.max_attempts
            && self.base_delay == other.base_delay
            && self.max_delay == other.max_delay
            && self.jitter == other.jitter
            && self.deadline == other.deadline
            && same_clock
    }
}

impl Eq for RetryPolicy {}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            jitter: Jitter::None,
            deadline: None,
            clock: None,
        }
    }
}

impl RetryPolicy {
    /// The default policy.
    pub fn new() -> RetryPolicy {
        RetryPolicy::default()
    }

    /// Sets the number of attempts, the first included (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> RetryPolicy {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the delay before the first retry.
    #[must_use]
    pub fn base_delay(mut self, delay: Duration) -> RetryPolicy {
        self.base_delay = delay;
        self
    }

    /// Sets the cap on any one delay.
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> RetryPolicy {
        self.max_delay = delay;
        self
    }

    /// Sets the jitter.
    #[must_use]
    pub fn jitter(mut self, jitter: Jitter) -> RetryPolicy {
        self.jitter = jitter;
        self
    }

    /// Sets an overall deadline, measured from the first attempt: an
    /// attempt still running when it passes is abandoned, and no retry is
    /// started that could not begin before it.
    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> RetryPolicy {
        self.deadline = Some(deadline);
        self
    }

    /// Sets the clock the deadline is measured on (default: the system
    /// clock, [`clock::system`]). Delays and the deadline's wake-up still
    /// sleep on tokio's timer.
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> RetryPolicy {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The number of attempts.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay before retry number `retry` (1 for the first retry) without
    /// jitter: `min(base * 2^(retry - 1), max)`.
    pub fn backoff_delay(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(63);
        let factor = 1u64 << exponent;
        let base = self.base_delay.as_nanos().min(u128::from(u64::MAX)) as u64;
        let delay = Duration::from_nanos(base.saturating_mul(factor));
        delay.min(self.max_delay)
    }

    /// The delay to wait after a failure of `code` before retry `retry`,
    /// jitter applied.
    pub fn delay_for(&self, code: ErrorCode, retry: u32) -> Duration {
        let delay = match code.retry_strategy() {
            RetryStrategy::FixedDelay(delay) => delay.min(self.max_delay),
            _ => self.backoff_delay(retry),
        };
        match self.jitter {
            Jitter::None => delay,
            Jitter::Full => {
                let nanos = delay.as_nanos().min(u128::from(u64::MAX)) as u64;
                Duration::from_nanos(fastrand::u64(0..=nanos))
            }
        }
    }
}

/// Runs `operation` until it succeeds, fails with an error that is not
/// retryable, or runs out of attempts (or of time, with a deadline).
///
/// The error returned after a failure records the number of attempts made
/// ([`Error::attempts`]).
///
/// # Cancel safety
///
/// Dropping the returned future drops the attempt in flight (its own
/// cancel safety applies: it may or may not have taken effect) or the delay
/// before the next one; no further attempt starts. Whether any attempt took
/// effect is then unknown to the caller: retry only operations that are
/// idempotent, or that can be checked afterwards.
///
/// ```
/// use foundation_error::{retry, Error, RetryPolicy};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let mut calls = 0;
/// let result = retry(&RetryPolicy::default(), || {
///     calls += 1;
///     let attempt = calls;
///     async move {
///         if attempt < 3 { Err(Error::timeout("slow")) } else { Ok(attempt) }
///     }
/// })
/// .await;
/// assert_eq!(result.unwrap(), 3);
///
/// let business = retry(&RetryPolicy::default(), || async {
///     Err::<(), _>(Error::business("insufficient funds"))
/// })
/// .await;
/// assert_eq!(business.unwrap_err().attempts(), Some(1));
/// # }
/// ```
pub async fn retry<T, F, Fut>(policy: &RetryPolicy, mut operation: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let clock = policy.clock.clone().unwrap_or_else(clock::system);
    let deadline = policy
        .deadline
        .map(|limit| clock.elapsed().saturating_add(limit));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = match deadline {
            Some(deadline) => {
                let remaining = deadline.saturating_sub(clock.elapsed());
                match tokio::time::timeout(remaining, operation()).await {
                    Ok(outcome) => outcome,
                    Err(_) => {
                        let error = Error::new(
                            ErrorCode::DEADLINE_EXCEEDED,
                            "the retry deadline passed during an attempt",
                        );
                        return Err(record_attempts(error, attempt));
                    }
                }
            }
            None => operation().await,
        };
        let error = match outcome {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        if !error.is_retryable() || attempt >= policy.max_attempts {
            return Err(record_attempts(error, attempt));
        }
        let delay = policy.delay_for(error.code(), attempt);
        if let Some(deadline) = deadline
            && clock.elapsed().saturating_add(delay) >= deadline
        {
            let error = error.with_context("retry_stopped", "deadline");
            return Err(record_attempts(error, attempt));
        }
        tokio::time::sleep(delay).await;
    }
}

fn record_attempts(error: Error, attempts: u32) -> Error {
    error.with_context(ATTEMPTS_KEY, attempts)
}
