//! [`Slot`]: where a child of the application tree publishes the service it
//! started, for the children after it (and the HTTP handlers) to read.
//!
//! Each publication has a generation, unique in the process, so that an
//! instance that ends withdraws only what it published itself: a killed
//! instance dropped after its replacement has published must not withdraw
//! the replacement's value.
//!
//! This module is not for lifecycle; the tree's order does that: a child
//! restarted by `rest_for_one` republishes, and every child after it is
//! restarted and reads the new value.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use foundation_error::{Error, ErrorCode, Result};

/// The next publication's generation.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// A published service, absent while its child is not running.
#[derive(Debug)]
pub struct Slot<T> {
    name: &'static str,
    value: RwLock<Option<(u64, T)>>,
}

impl<T: Clone> Slot<T> {
    /// An empty slot named `name` (the name appears in errors).
    pub fn new(name: &'static str) -> Slot<T> {
        Slot {
            name,
            value: RwLock::new(None),
        }
    }

    /// The published value.
    ///
    /// # Errors
    ///
    /// `service_unavailable` (retryable) while nothing is published: its
    /// child is starting or restarting.
    pub fn get(&self) -> Result<T> {
        self.value
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(_, value)| value.clone())
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::SERVICE_UNAVAILABLE,
                    format!("{} is not running (starting or restarting)", self.name),
                )
                .with_context("component", self.name)
            })
    }

    /// Whether a value is published.
    pub fn is_set(&self) -> bool {
        self.value
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Publishes `value`, replacing any earlier one; returns its generation.
    pub fn set(&self, value: T) -> u64 {
        let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
        *self.value.write().unwrap_or_else(PoisonError::into_inner) = Some((generation, value));
        generation
    }

    /// The generation of the published value, if any.
    pub fn generation(&self) -> Option<u64> {
        self.value
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(generation, _)| *generation)
    }

    /// Withdraws the value if it is still the one of `generation`; returns
    /// it.
    pub fn clear_if(&self, generation: Option<u64>) -> Option<T> {
        let mut value = self.value.write().unwrap_or_else(PoisonError::into_inner);
        match (&*value, generation) {
            (Some((current, _)), Some(generation)) if *current == generation => {
                value.take().map(|(_, value)| value)
            }
            _ => None,
        }
    }
}
