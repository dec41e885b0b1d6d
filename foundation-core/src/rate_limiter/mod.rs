//! Fixed-window rate limiting, exact under concurrency.
//!
//! A [`RateLimiter`] holds named limiters, each a limit per window (say 100
//! per second). [`RateLimiter::check`]`(limiter, key)` counts one request of
//! `key` (a user, an IP, a tenant) in the current window and answers
//! [`Decision::Allowed`] with the remaining count or [`Decision::Denied`]
//! with the time until the window ends. Windows are fixed and aligned:
//! a key's bucket is `(limiter, key, window_start)` with `window_start = now
//! - now mod window`, `now` being the time on the limiter's [`Clock`] (by
//! default tokio's clock, measured from when the `RateLimiter` was built).
//!
//! Guarantees:
//! - Exact: however many threads check one key at once, at most `limit`
//!   checks are allowed per window, and exactly `limit` when at least that
//!   many arrive (the check and the increment are one compare-and-swap).
//! - No actor and no global lock on the hot path: a check reads the clock,
//!   finds its bucket in a sharded map under a shard's read lock and counts
//!   with one atomic operation. [`Limiter`] is a handle for that hot path,
//!   obtained once; checking by id adds one lock-free map lookup.
//! - Bounded memory without a background task: checks sweep expired
//!   windows, amortised (see [`Limiter::sweep`]), and [`RateLimiter::sweep`]
//!   sweeps on demand.
//! - Invalid configuration (a zero limit or window) is an
//!   `invalid_config_value` error; an unknown limiter is `data_not_found`.
//! - Metrics: the counter `foundation_rate_limiter_checks_total{limiter,
//!   outcome}` with `outcome` = `allowed` or `denied`, per limiter (never
//!   per key). Its handles bind to the `metrics` recorder installed when
//!   the limiter is configured.
//!
//! A fixed window allows a burst of up to twice the limit across a window
//! boundary (the end of one window and the start of the next); that is the
//! original system's contract. This module is not a token bucket or GCRA
//! (smooth rates), not distributed (counts live in this process), and not a
//! queue: a denied check is not retried for you.
//!
//! ```
//! use std::time::Duration;
//! use foundation_core::rate_limiter::{Decision, RateLimiter};
//! use foundation_error::ErrorCode;
//!
//! let limiters = RateLimiter::new();
//! limiters.configure("api", 100, Duration::from_secs(1))?;
//!
//! assert_eq!(limiters.check("api", "tenant-7")?, Decision::Allowed { remaining: 99 });
//! assert_eq!(limiters.status("api", "tenant-7")?.remaining, 99);
//!
//! let unknown = limiters.check("nope", "tenant-7").unwrap_err();
//! assert_eq!(unknown.code(), ErrorCode::DATA_NOT_FOUND);
//! let invalid = limiters.configure("broken", 0, Duration::from_secs(1)).unwrap_err();
//! assert_eq!(invalid.code(), ErrorCode::INVALID_CONFIG_VALUE);
//! # Ok::<(), foundation_error::Error>(())
//! ```

mod decision;
mod limiter;
mod window;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use foundation_error::{Error, ErrorCode};

use crate::clock::{Clock, SharedClock, TokioClock};

pub use decision::{Decision, Status};
pub use limiter::{Limiter, RATE_LIMITER_CHECKS_TOTAL};

use limiter::LimiterState;
use window::WindowLayout;

/// The default minimum number of bucket insertions between two amortised
/// sweeps of one limiter.
pub const DEFAULT_SWEEP_THRESHOLD: usize = 1024;

/// Named fixed-window rate limiters sharing one clock.
///
/// Cheap to clone; clones share the limiters. See the [module
/// documentation](self) for the guarantees.
#[derive(Clone)]
pub struct RateLimiter {
    shared: Arc<Shared>,
}

struct Shared {
    clock: SharedClock,
    sweep_threshold: usize,
    /// Read without locking on every check by id; replaced whole (rarely)
    /// under `write` when a limiter is configured or removed.
    limiters: ArcSwap<HashMap<Arc<str>, Limiter>>,
    write: Mutex<()>,
}

/// Builds a [`RateLimiter`].
///
/// ```
/// use foundation_core::clock::ManualClock;
/// use foundation_core::rate_limiter::RateLimiter;
///
/// let clock = ManualClock::new();
/// let limiters = RateLimiter::builder().clock(clock.clone()).build()?;
/// # Ok::<(), foundation_error::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RateLimiterBuilder {
    clock: Option<SharedClock>,
    sweep_threshold: usize,
}

impl RateLimiterBuilder {
    /// Sets the clock windows are measured on (default: a [`TokioClock`]
    /// created by `build`).
    pub fn clock(&mut self, clock: impl Clock) -> &mut Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Sets the minimum number of new buckets between two amortised sweeps
    /// of a limiter (default [`DEFAULT_SWEEP_THRESHOLD`], at least 1).
    pub fn sweep_threshold(&mut self, insertions: usize) -> &mut Self {
        self.sweep_threshold = insertions;
        self
    }

    /// Builds the rate limiter; fails on a zero sweep threshold.
    pub fn build(&self) -> Result<RateLimiter, Error> {
        if self.sweep_threshold == 0 {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                "the sweep threshold must be at least 1",
            )
            .with_context("field", "sweep_threshold"));
        }
        metrics::describe_counter!(
            RATE_LIMITER_CHECKS_TOTAL,
            "Rate limiter checks, by limiter and outcome (allowed or denied)."
        );
        let clock = self
            .clock
            .clone()
            .unwrap_or_else(|| Arc::new(TokioClock::new()));
        Ok(RateLimiter {
            shared: Arc::new(Shared {
                clock,
                sweep_threshold: self.sweep_threshold,
                limiters: ArcSwap::from_pointee(HashMap::new()),
                write: Mutex::new(()),
            }),
        })
    }
}

impl Default for RateLimiterBuilder {
    fn default() -> Self {
        RateLimiterBuilder {
            clock: None,
            sweep_threshold: DEFAULT_SWEEP_THRESHOLD,
        }
    }
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter::new()
    }
}

impl RateLimiter {
    /// A rate limiter on tokio's clock with the default sweep threshold.
    pub fn new() -> RateLimiter {
        RateLimiter::builder()
            .build()
            .expect("the default sweep threshold is valid")
    }

    /// A builder, to choose the clock or the sweep threshold.
    pub fn builder() -> RateLimiterBuilder {
        RateLimiterBuilder::default()
    }

    /// Configures limiter `id` to allow `limit` checks per key per `window`,
    /// and returns its handle.
    ///
    /// Configuring an existing id with the same limit and window changes
    /// nothing (counts are kept). With a different limit or window, the
    /// limiter starts over with empty counts, and existing handles follow
    /// the new configuration.
    ///
    /// Fails with `invalid_config_value` on an empty id, a zero limit, a
    /// zero window, or a limit too large for the window (more than about
    /// one per nanosecond).
    pub fn configure(&self, id: &str, limit: u64, window: Duration) -> Result<Limiter, Error> {
        if id.is_empty() {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                "a rate limiter needs a non-empty id",
            )
            .with_context("field", "id"));
        }
        let layout =
            WindowLayout::new(limit, window).map_err(|error| error.with_context("limiter", id))?;
        let _write = self
            .shared
            .write
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let limiters = self.shared.limiters.load();
        if let Some(existing) = limiters.get(id) {
            if !existing.same_config(&layout) {
                existing.replace(self.new_state(id, layout));
            }
            return Ok(existing.clone());
        }
        let id: Arc<str> = Arc::from(id);
        let state = self.new_state(&id, layout);
        let limiter = Limiter::new(Arc::clone(&id), state);
        let mut updated = HashMap::clone(&limiters);
        updated.insert(id, limiter.clone());
        self.shared.limiters.store(Arc::new(updated));
        Ok(limiter)
    }

    /// The handle of limiter `id`, or `data_not_found`.
    pub fn limiter(&self, id: &str) -> Result<Limiter, Error> {
        self.shared
            .limiters
            .load()
            .get(id)
            .cloned()
            .ok_or_else(|| unknown(id))
    }

    /// Counts a check of `key` against limiter `id`; see [`Limiter::check`].
    ///
    /// Fails with `data_not_found` when no limiter `id` is configured.
    pub fn check(&self, id: &str, key: &str) -> Result<Decision, Error> {
        match self.shared.limiters.load().get(id) {
            Some(limiter) => limiter.check(key),
            None => Err(unknown(id)),
        }
    }

    /// [`RateLimiter::check`] as a `Result`: `Ok(remaining)` or a
    /// `rate_limited` error.
    pub fn enforce(&self, id: &str, key: &str) -> Result<u64, Error> {
        match self.shared.limiters.load().get(id) {
            Some(limiter) => limiter.enforce(key),
            None => Err(unknown(id)),
        }
    }

    /// The remaining count and reset time of `key` under limiter `id`,
    /// without counting a check.
    pub fn status(&self, id: &str, key: &str) -> Result<Status, Error> {
        match self.shared.limiters.load().get(id) {
            Some(limiter) => limiter.status(key),
            None => Err(unknown(id)),
        }
    }

    /// Forgets `key`'s count under limiter `id` (for tests).
    pub fn reset(&self, id: &str, key: &str) -> Result<(), Error> {
        match self.shared.limiters.load().get(id) {
            Some(limiter) => limiter.reset(key),
            None => Err(unknown(id)),
        }
    }

    /// Removes limiter `id` and its counts; its handles fail from now on.
    ///
    /// Fails with `data_not_found` when no limiter `id` is configured.
    pub fn remove(&self, id: &str) -> Result<(), Error> {
        let _write = self
            .shared
            .write
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let limiters = self.shared.limiters.load();
        let Some(removed) = limiters.get(id) else {
            return Err(unknown(id));
        };
        removed.mark_removed();
        let mut updated = HashMap::clone(&limiters);
        updated.remove(id);
        self.shared.limiters.store(Arc::new(updated));
        Ok(())
    }

    /// The configured limiter ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .shared
            .limiters
            .load()
            .keys()
            .map(|id| id.to_string())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Sweeps every limiter's expired windows; returns the buckets removed.
    pub fn sweep(&self) -> usize {
        self.shared
            .limiters
            .load()
            .values()
            .map(Limiter::sweep)
            .sum()
    }

    /// The number of buckets held across all limiters.
    pub fn bucket_count(&self) -> usize {
        self.shared
            .limiters
            .load()
            .values()
            .map(Limiter::bucket_count)
            .sum()
    }

    fn new_state(&self, id: &str, layout: WindowLayout) -> LimiterState {
        LimiterState::new(
            id,
            layout,
            Arc::clone(&self.shared.clock),
            self.shared.sweep_threshold,
        )
    }
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("clock", &self.shared.clock)
            .field("limiters", &self.ids())
            .finish()
    }
}

fn unknown(id: &str) -> Error {
    Error::new(
        ErrorCode::DATA_NOT_FOUND,
        format!("no rate limiter is configured under '{id}'"),
    )
    .with_context("limiter", id)
}
