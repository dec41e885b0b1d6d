//! One configured limiter: its buckets in a sharded map, the hot-path
//! handle [`Limiter`], and the cleanup of expired windows.
//!
//! Buckets live in a [`DashMap`] keyed by the caller's key; a check takes a
//! shard's read lock to find its bucket and then counts with one
//! compare-and-swap on the bucket word (see `window.rs`), so checks on
//! different keys never wait for each other and checks on one key never
//! lose a count. Only a key's first check in a while takes a shard's write
//! lock, to insert its bucket.
//!
//! Expired windows are removed without a background task: every insertion
//! is counted, and once the insertions since the last sweep reach the number
//! of buckets that survived it (at least the configured sweep threshold),
//! the inserting check sweeps. Each sweep costs O(buckets) and is paid for
//! by as many insertions, so the amortised cost per check is O(1) and the
//! bucket count stays below about twice the number of keys seen in one
//! window (or twice the threshold). [`Limiter::sweep`] sweeps on demand.
//!
//! This module is not for looking limiters up by id (see `mod.rs`).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use dashmap::DashMap;
use foundation_error::{Error, ErrorCode};

use super::decision::{Decision, Status};
use super::window::WindowLayout;
use crate::clock::SharedClock;

/// The metric counting checks, by limiter and outcome (`allowed`, `denied`).
pub const RATE_LIMITER_CHECKS_TOTAL: &str = "foundation_rate_limiter_checks_total";

/// A handle on one configured limiter: the hot path.
///
/// Obtained once from [`RateLimiter::configure`](super::RateLimiter::configure)
/// or [`RateLimiter::limiter`](super::RateLimiter::limiter), it checks keys
/// without looking the limiter up by id. It is cheap to clone. When the
/// limiter is reconfigured, the handle follows the new limit and window;
/// once the limiter is removed, the handle's calls fail with
/// `data_not_found`.
///
/// ```
/// use std::time::Duration;
/// use foundation_core::rate_limiter::{Decision, RateLimiter};
///
/// let limiters = RateLimiter::new();
/// let login = limiters.configure("login", 2, Duration::from_secs(60))?;
/// assert_eq!(login.check("alice")?, Decision::Allowed { remaining: 1 });
/// assert_eq!(login.check("alice")?, Decision::Allowed { remaining: 0 });
/// assert!(!login.check("alice")?.is_allowed());
/// assert!(login.check("bob")?.is_allowed());
/// # Ok::<(), foundation_error::Error>(())
/// ```
#[derive(Clone)]
pub struct Limiter {
    slot: Arc<Slot>,
}

/// What a handle points at; `None` once the limiter was removed.
struct Slot {
    id: Arc<str>,
    state: ArcSwapOption<LimiterState>,
}

pub(crate) struct LimiterState {
    layout: WindowLayout,
    clock: SharedClock,
    buckets: DashMap<Box<str>, AtomicU64>,
    /// Windows before this index have been swept: checks never count in them.
    swept_before: AtomicU64,
    inserts_since_sweep: AtomicUsize,
    /// Insertions after which the next amortised sweep runs.
    sweep_after: AtomicUsize,
    min_sweep_after: usize,
    sweeping: AtomicBool,
    allowed: metrics::Counter,
    denied: metrics::Counter,
}

impl Limiter {
    pub(crate) fn new(id: Arc<str>, state: LimiterState) -> Limiter {
        Limiter {
            slot: Arc::new(Slot {
                id,
                state: ArcSwapOption::from_pointee(state),
            }),
        }
    }

    /// The limiter's id.
    pub fn id(&self) -> &str {
        &self.slot.id
    }

    /// Counts a check for `key` in the current window.
    ///
    /// Allowed while fewer than the limit were allowed for `key` in this
    /// window, exactly, however many threads check at once. Fails only when
    /// the limiter was removed.
    pub fn check(&self, key: &str) -> Result<Decision, Error> {
        let guard = self.slot.state.load();
        let state = self.live(guard.as_deref())?;
        Ok(state.check(key))
    }

    /// [`Limiter::check`] as a `Result`: `Ok(remaining)` or a `rate_limited`
    /// error with `retry_after_ms` in its context.
    pub fn enforce(&self, key: &str) -> Result<u64, Error> {
        self.check(key)?.into_result(&self.slot.id, key)
    }

    /// The state of `key`'s current window, without counting a check.
    pub fn status(&self, key: &str) -> Result<Status, Error> {
        let guard = self.slot.state.load();
        Ok(self.live(guard.as_deref())?.status(key))
    }

    /// Forgets `key`'s count, so its full limit is available at once. For
    /// tests and administrative overrides.
    pub fn reset(&self, key: &str) -> Result<(), Error> {
        let guard = self.slot.state.load();
        self.live(guard.as_deref())?.buckets.remove(key);
        Ok(())
    }

    /// Forgets every key's count.
    pub fn reset_all(&self) -> Result<(), Error> {
        let guard = self.slot.state.load();
        self.live(guard.as_deref())?.buckets.clear();
        Ok(())
    }

    /// Removes the buckets of windows that have ended; returns how many.
    ///
    /// Checks do this themselves, amortised; call it to release memory
    /// sooner, for example from a periodic task of your own.
    pub fn sweep(&self) -> usize {
        let guard = self.slot.state.load();
        guard.as_deref().map_or(0, LimiterState::sweep)
    }

    /// The number of buckets held (keys with a count in a recent window).
    pub fn bucket_count(&self) -> usize {
        let guard = self.slot.state.load();
        guard.as_deref().map_or(0, |state| state.buckets.len())
    }

    /// The limit per window, or `None` once the limiter was removed.
    pub fn limit(&self) -> Option<u64> {
        self.slot
            .state
            .load()
            .as_deref()
            .map(|state| state.layout.limit())
    }

    /// The window length, or `None` once the limiter was removed.
    pub fn window(&self) -> Option<Duration> {
        self.slot
            .state
            .load()
            .as_deref()
            .map(|state| state.layout.window())
    }

    /// Whether the limiter was removed.
    pub fn is_removed(&self) -> bool {
        self.slot.state.load().is_none()
    }

    pub(crate) fn same_config(&self, layout: &WindowLayout) -> bool {
        self.slot
            .state
            .load()
            .as_deref()
            .is_some_and(|state| state.layout == *layout)
    }

    pub(crate) fn replace(&self, state: LimiterState) {
        self.slot.state.store(Some(Arc::new(state)));
    }

    pub(crate) fn mark_removed(&self) {
        self.slot.state.store(None);
    }

    fn live<'a>(&self, state: Option<&'a LimiterState>) -> Result<&'a LimiterState, Error> {
        state.ok_or_else(|| {
            Error::new(
                ErrorCode::DATA_NOT_FOUND,
                format!(
                    "rate limiter '{}' was removed; configure it again for a new handle",
                    self.slot.id
                ),
            )
            .with_context("limiter", &*self.slot.id)
        })
    }
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let guard = self.slot.state.load();
        let mut debug = f.debug_struct("Limiter");
        debug.field("id", &self.slot.id);
        match guard.as_deref() {
            Some(state) => debug
                .field("limit", &state.layout.limit())
                .field("window", &state.layout.window())
                .field("buckets", &state.buckets.len()),
            None => debug.field("removed", &true),
        };
        debug.finish()
    }
}

impl LimiterState {
    pub(crate) fn new(
        id: &str,
        layout: WindowLayout,
        clock: SharedClock,
        min_sweep_after: usize,
    ) -> LimiterState {
        let counter = |outcome: &'static str| {
            metrics::counter!(
                RATE_LIMITER_CHECKS_TOTAL,
                "limiter" => id.to_owned(),
                "outcome" => outcome,
            )
        };
        LimiterState {
            layout,
            clock,
            buckets: DashMap::new(),
            swept_before: AtomicU64::new(0),
            inserts_since_sweep: AtomicUsize::new(0),
            sweep_after: AtomicUsize::new(min_sweep_after),
            min_sweep_after,
            sweeping: AtomicBool::new(false),
            allowed: counter("allowed"),
            denied: counter("denied"),
        }
    }

    fn check(&self, key: &str) -> Decision {
        let now = self.clock.elapsed_nanos();
        let mut inserted = false;
        let decision = match self.buckets.get(key) {
            // The floor is read under the shard lock: a sweep publishes it
            // before it takes the shard locks to remove buckets.
            Some(bucket) => self.layout.admit(&bucket, now, self.floor()),
            None => {
                let bucket = self.buckets.entry(Box::from(key)).or_insert_with(|| {
                    inserted = true;
                    AtomicU64::new(self.layout.empty(self.floor()))
                });
                self.layout.admit(&bucket, now, self.floor())
            }
        };
        match decision {
            Decision::Allowed { .. } => self.allowed.increment(1),
            Decision::Denied { .. } => self.denied.increment(1),
        }
        if inserted {
            self.after_insert();
        }
        decision
    }

    fn status(&self, key: &str) -> Status {
        let now = self.clock.elapsed_nanos();
        let word = self
            .buckets
            .get(key)
            .map(|bucket| bucket.load(Ordering::Acquire));
        self.layout.status(word, now, self.floor())
    }

    fn floor(&self) -> u64 {
        self.swept_before.load(Ordering::Acquire)
    }

    /// Counts an insertion and sweeps when enough have accumulated. Runs
    /// with no shard lock held: a sweep takes every shard's write lock.
    fn after_insert(&self) {
        let inserts = self.inserts_since_sweep.fetch_add(1, Ordering::Relaxed) + 1;
        if inserts < self.sweep_after.load(Ordering::Relaxed) {
            return;
        }
        if self
            .sweeping
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            self.sweep();
            self.sweeping.store(false, Ordering::Release);
        }
    }

    fn sweep(&self) -> usize {
        let current = self.layout.window_index(self.clock.elapsed_nanos());
        // Published before any bucket is removed (see `check`), so that a
        // check whose clock reading predates this sweep cannot recreate a
        // swept window with a fresh count.
        self.swept_before.fetch_max(current, Ordering::AcqRel);
        self.inserts_since_sweep.store(0, Ordering::Relaxed);
        let mut removed = 0;
        self.buckets.retain(|_, bucket| {
            let keep = self.layout.index_of(bucket.load(Ordering::Acquire)) >= current;
            removed += usize::from(!keep);
            keep
        });
        let live = self.buckets.len();
        let budget = live.max(self.min_sweep_after);
        self.sweep_after.store(budget, Ordering::Relaxed);
        if self.buckets.capacity() > budget.saturating_mul(4) {
            self.buckets.shrink_to_fit();
        }
        removed
    }
}
