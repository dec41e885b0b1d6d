//! Circuit breakers by id: [`CircuitBreakerRegistry`], for code that names a
//! dependency rather than holding its breaker, and for listing states.
//!
//! Lookups read an immutable map through `arc-swap`, so calling by id adds
//! no lock to the call path; inserting and removing (rare) copy the map.
//!
//! This module is not for the breaker itself (see `mod.rs`).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use foundation_error::{Error, ErrorCode};

use super::{CircuitBreaker, CircuitState};

/// Circuit breakers by id. Cheap to clone; clones share the breakers.
///
/// ```
/// use foundation_core::circuit_breaker::{CircuitBreaker, CircuitBreakerRegistry, CircuitState};
/// use foundation_error::{Error, ErrorCode};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let breakers = CircuitBreakerRegistry::new();
/// breakers.insert(CircuitBreaker::new("search")?)?;
/// let hits = breakers.call("search", async { Ok::<_, Error>(12) }).await?;
/// assert_eq!(hits, 12);
/// assert_eq!(breakers.states(), vec![("search".to_owned(), CircuitState::Closed)]);
/// let unknown = breakers.call("nope", async { Ok::<_, Error>(()) }).await.unwrap_err();
/// assert_eq!(unknown.code(), ErrorCode::DATA_NOT_FOUND);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct CircuitBreakerRegistry {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    breakers: ArcSwap<HashMap<Arc<str>, CircuitBreaker>>,
    write: Mutex<()>,
}

impl CircuitBreakerRegistry {
    /// An empty registry.
    pub fn new() -> CircuitBreakerRegistry {
        CircuitBreakerRegistry::default()
    }

    /// Adds `breaker` under its id; fails with `already_exists` when the id
    /// is taken.
    pub fn insert(&self, breaker: CircuitBreaker) -> Result<(), Error> {
        let _write = self
            .shared
            .write
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let breakers = self.shared.breakers.load();
        if breakers.contains_key(breaker.id()) {
            return Err(Error::new(
                ErrorCode::ALREADY_EXISTS,
                format!(
                    "a circuit breaker is already registered under '{}'",
                    breaker.id()
                ),
            )
            .with_context("breaker", breaker.id()));
        }
        let mut updated = HashMap::clone(&breakers);
        updated.insert(Arc::from(breaker.id()), breaker);
        self.shared.breakers.store(Arc::new(updated));
        Ok(())
    }

    /// The breaker registered under `id`, or `data_not_found`.
    pub fn get(&self, id: &str) -> Result<CircuitBreaker, Error> {
        self.shared
            .breakers
            .load()
            .get(id)
            .cloned()
            .ok_or_else(|| unknown(id))
    }

    /// Removes and returns the breaker registered under `id`, or fails with
    /// `data_not_found`. Clones held elsewhere keep working.
    pub fn remove(&self, id: &str) -> Result<CircuitBreaker, Error> {
        let _write = self
            .shared
            .write
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let breakers = self.shared.breakers.load();
        let mut updated = HashMap::clone(&breakers);
        let removed = updated.remove(id).ok_or_else(|| unknown(id))?;
        self.shared.breakers.store(Arc::new(updated));
        Ok(removed)
    }

    /// Runs `operation` through the breaker registered under `id`; see
    /// [`CircuitBreaker::call`]. Fails with `data_not_found` (without
    /// polling the operation) when there is none.
    ///
    /// # Cancel safety
    ///
    /// As [`CircuitBreaker::call`]'s: dropping the future drops the
    /// operation, and the abandoned call does not count.
    pub async fn call<T, F>(&self, id: &str, operation: F) -> Result<T, Error>
    where
        F: Future<Output = Result<T, Error>>,
    {
        let breaker = self.get(id)?;
        breaker.call(operation).await
    }

    /// Every breaker's id and state, sorted by id.
    pub fn states(&self) -> Vec<(String, CircuitState)> {
        let mut states: Vec<(String, CircuitState)> = self
            .shared
            .breakers
            .load()
            .iter()
            .map(|(id, breaker)| (id.to_string(), breaker.state()))
            .collect();
        states.sort_unstable_by(|left, right| left.0.cmp(&right.0));
        states
    }
}

impl fmt::Debug for CircuitBreakerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let breakers = self.shared.breakers.load();
        let mut ids: Vec<&str> = breakers.keys().map(|id| &**id).collect();
        ids.sort_unstable();
        f.debug_struct("CircuitBreakerRegistry")
            .field("breakers", &ids)
            .finish()
    }
}

fn unknown(id: &str) -> Error {
    Error::new(
        ErrorCode::DATA_NOT_FOUND,
        format!("no circuit breaker is registered under '{id}'"),
    )
    .with_context("breaker", id)
}
