//! [`Slot`]: where a child of the application tree publishes the service it
//! started, for the children after it (and the HTTP handlers) to read.
//!
//! This module is not for lifecycle; the tree's order does that: a child
//! restarted by `rest_for_one` republishes, and every child after it is
//! restarted and reads the new value.

use std::sync::{PoisonError, RwLock};

use foundation_error::{Error, ErrorCode, Result};

/// A published service, absent while its child is not running.
#[derive(Debug)]
pub struct Slot<T> {
    name: &'static str,
    value: RwLock<Option<T>>,
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
            .clone()
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

    /// Publishes `value`, replacing any earlier one.
    pub fn set(&self, value: T) {
        *self.value.write().unwrap_or_else(PoisonError::into_inner) = Some(value);
    }

    /// Withdraws the value; returns it.
    pub fn clear(&self) -> Option<T> {
        self.value
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}
