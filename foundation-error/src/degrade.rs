//! Graceful degradation: fall back, or serve a stale value, when a
//! dependency fails for infrastructure reasons.
//!
//! Both helpers degrade only on [`Category::Infrastructure`] errors. A
//! validation, business or system error is a real answer (or a bug) and is
//! passed through: hiding it behind a fallback would hide a defect.
//!
//! Ages are measured on the cache's [`Clock`] (by default the system's,
//! which follows paused tokio time). This module is not for retrying; see
//! [`retry`](crate::retry()).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::clock::{self, Clock, SharedClock};
use crate::code::Category;
use crate::error::Error;

/// Runs `operation`; on an infrastructure error runs `fallback` with that
/// error instead. Other errors are returned as they are.
///
/// ```
/// use foundation_error::{with_fallback, Error};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let price = with_fallback(
///     async { Err::<u32, _>(Error::timeout("pricing service is slow")) },
///     |_error| async { Ok(100) },
/// )
/// .await;
/// assert_eq!(price.unwrap(), 100);
///
/// let refused = with_fallback(
///     async { Err::<u32, _>(Error::business("account closed")) },
///     |_error| async { Ok(100) },
/// )
/// .await;
/// assert!(refused.is_err());
/// # }
/// ```
///
/// # Cancel safety
///
/// Dropping the future drops whichever of `operation` and `fallback` is
/// running; their own cancel safety applies.
pub async fn with_fallback<T, Op, Fallback, FallbackFuture>(
    operation: Op,
    fallback: Fallback,
) -> Result<T, Error>
where
    Op: Future<Output = Result<T, Error>>,
    Fallback: FnOnce(Error) -> FallbackFuture,
    FallbackFuture: Future<Output = Result<T, Error>>,
{
    match operation.await {
        Err(error) if error.category() == Category::Infrastructure => fallback(error).await,
        other => other,
    }
}

/// Whether a value from a [`StaleCache`] is fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Loaded within the time to live, or just now.
    Fresh,
    /// The source failed; this value is older than the time to live.
    Stale {
        /// How long ago the value was loaded.
        age: Duration,
    },
}

/// A value from a [`StaleCache`] and how fresh it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached<V> {
    /// The value.
    pub value: V,
    /// Fresh, or stale because the source failed.
    pub freshness: Freshness,
}

/// A cache that serves a stale value while its source errors.
///
/// Values younger than the time to live are served without calling the
/// source. Older ones are reloaded; when the reload fails with an
/// infrastructure error, the old value is served, marked stale, for at most
/// `max_stale` past its load. The cache holds at most `capacity` keys; when
/// full, the oldest entry is evicted.
///
/// ```
/// use std::time::Duration;
/// use foundation_error::{Error, Freshness, StaleCache};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let cache = StaleCache::new(Duration::from_secs(60));
/// let fresh = cache.get_or_load("eur", || async { Ok::<_, Error>(1.08) }).await.unwrap();
/// assert_eq!(fresh.freshness, Freshness::Fresh);
///
/// tokio::time::advance(Duration::from_secs(61)).await;
/// let stale = cache
///     .get_or_load("eur", || async { Err(Error::timeout("rates service down")) })
///     .await
///     .unwrap();
/// assert_eq!(stale.value, 1.08);
/// assert!(matches!(stale.freshness, Freshness::Stale { .. }));
/// # }
/// ```
#[derive(Debug)]
pub struct StaleCache<K, V> {
    ttl: Duration,
    max_stale: Duration,
    capacity: usize,
    clock: SharedClock,
    /// Each value with the clock's reading when it was loaded.
    entries: Mutex<HashMap<K, (V, Duration)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> StaleCache<K, V> {
    /// A cache with this time to live, stale values served for up to an
    /// hour, room for 10,000 keys, and the system clock.
    pub fn new(ttl: Duration) -> StaleCache<K, V> {
        StaleCache {
            ttl,
            max_stale: Duration::from_secs(3600),
            capacity: 10_000,
            clock: clock::system(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Sets the clock ages are measured on (default: [`clock::system`]).
    /// Set it before the first value is loaded: ages of values loaded on
    /// another clock are meaningless.
    #[must_use]
    pub fn clock(mut self, clock: impl Clock) -> StaleCache<K, V> {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets how long past its load a value may still be served stale.
    #[must_use]
    pub fn max_stale(mut self, max_stale: Duration) -> StaleCache<K, V> {
        self.max_stale = max_stale;
        self
    }

    /// Sets the number of keys held (at least 1).
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> StaleCache<K, V> {
        self.capacity = capacity.max(1);
        self
    }

    /// The cached value of `key`, loading it with `load` when missing or
    /// expired, and serving the old value when the load fails with an
    /// infrastructure error.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while `load` runs drops the load; the cache is
    /// unchanged (a value is stored only after a load succeeds).
    pub async fn get_or_load<F, Fut>(&self, key: K, load: F) -> Result<Cached<V>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, Error>>,
    {
        let now = self.clock.elapsed();
        let previous = self.lock().get(&key).cloned();
        if let Some((value, loaded_at)) = &previous
            && now.saturating_sub(*loaded_at) < self.ttl
        {
            return Ok(Cached {
                value: value.clone(),
                freshness: Freshness::Fresh,
            });
        }
        match load().await {
            Ok(value) => {
                self.insert(key, value.clone(), self.clock.elapsed());
                Ok(Cached {
                    value,
                    freshness: Freshness::Fresh,
                })
            }
            Err(error) if error.category() == Category::Infrastructure => match previous {
                Some((value, loaded_at)) if now.saturating_sub(loaded_at) <= self.max_stale => {
                    Ok(Cached {
                        value,
                        freshness: Freshness::Stale {
                            age: now.saturating_sub(loaded_at),
                        },
                    })
                }
                _ => Err(error),
            },
            Err(error) => Err(error),
        }
    }

    /// Forgets `key`.
    pub fn invalidate(&self, key: &K) {
        self.lock().remove(key);
    }

    /// The number of keys held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&self, key: K, value: V, loaded_at: Duration) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            let oldest = entries
                .iter()
                .min_by_key(|(_, (_, loaded_at))| *loaded_at)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, (value, loaded_at));
    }

    /// The entries; a panic in another holder (only a user's `Hash`, `Eq`
    /// or `Clone` can panic here) leaves the map consistent, so the poison
    /// is cleared rather than propagated.
    fn lock(&self) -> MutexGuard<'_, HashMap<K, (V, Duration)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
