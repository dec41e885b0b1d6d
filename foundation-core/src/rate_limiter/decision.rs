//! What a rate-limit check answers ([`Decision`]) and what a status query
//! reports ([`Status`]).
//!
//! This module is not for the counting itself (see `window.rs`).

use std::time::Duration;

use foundation_error::{Error, ErrorCode};

/// The answer to one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The check was counted; `remaining` more are allowed in this window.
    Allowed {
        /// Checks still allowed in the current window after this one.
        remaining: u64,
    },
    /// The limit is reached; the window ends in `retry_after`.
    Denied {
        /// Time until the current window ends and the limit is available again.
        retry_after: Duration,
    },
}

impl Decision {
    /// Whether the check was allowed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }

    /// The decision as a `Result`: `Ok(remaining)`, or a `rate_limited`
    /// error (infrastructure, retried with backoff by
    /// [`foundation_error::retry`]) carrying the limiter, the key and
    /// `retry_after_ms`.
    pub fn into_result(self, limiter: &str, key: &str) -> Result<u64, Error> {
        match self {
            Decision::Allowed { remaining } => Ok(remaining),
            Decision::Denied { retry_after } => Err(Error::new(
                ErrorCode::RATE_LIMITED,
                format!("rate limit '{limiter}' reached for '{key}'"),
            )
            .with_context("limiter", limiter)
            .with_context("key", key)
            .with_context("retry_after_ms", retry_after.as_millis())),
        }
    }
}

/// The state of one key's current window, read without counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// The configured limit per window.
    pub limit: u64,
    /// Checks still allowed in the current window.
    pub remaining: u64,
    /// Time until the current window ends and the count resets.
    pub resets_in: Duration,
    /// The configured window length.
    pub window: Duration,
}
