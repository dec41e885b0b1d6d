//! The change feed: learning that a key of a *watched* state keyspace
//! changed, whoever wrote it.
//!
//! Watching is opt-in per keyspace, declared once per store with
//! [`StoreOptions::watch`](crate::StoreOptions::watch): a write to an
//! unwatched keyspace (workflow journals and states, the hot path) costs
//! nothing more than one flag check per operation. A consumer takes a feed
//! with [`Store::changes`](crate::Store::changes) and reads it with
//! [`Changes::next`]:
//!
//! - [`Change::Key`]: a committed `put` or `delete` of that key (also one
//!   inside a [`WriteBatch`](crate::WriteBatch)); a refused request
//!   (a compare-and-set conflict) reports nothing.
//! - [`Change::Resync`]: changes may have been missed (the consumer fell
//!   more than [`FEED_CAPACITY`] changes behind, or a server backend lost
//!   and re-established its notification connection): reload everything
//!   watched. Consumers that also poll now and then treat this as "poll
//!   now".
//!
//! What "whoever" covers depends on the backend: the memory and redb
//! backends are one process's store, so their feed is an in-process
//! broadcast published after each commit; a server backend (PostgreSQL)
//! reports the commits of every node writing the same database.
//!
//! A change says only *which* key changed, never its value: the consumer
//! reads the key (or everything watched) again. Several changes to one key
//! may arrive as one, or a change may arrive for a value the consumer has
//! already read; reloading must be idempotent.
//!
//! This module is not for the backends' delivery (each backend publishes
//! into a [`ChangeFeed`]) or for polling: a consumer that needs a bound
//! on staleness when the feed is down polls on its own timer.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use foundation_error::{Error, ErrorCode};
use tokio::sync::broadcast;

use crate::backend::Op;

/// How many changes a feed holds for its slowest reader before that reader
/// gets a [`Change::Resync`] instead of the changes it missed.
pub const FEED_CAPACITY: usize = 1024;

/// One event of a change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// A committed write (put or delete) of `key` in the watched state
    /// keyspace `keyspace`.
    Key {
        /// The keyspace name, as given to [`Store::state`](crate::Store::state).
        keyspace: String,
        /// The key.
        key: String,
    },
    /// Changes may have been missed: reload everything watched.
    Resync,
}

/// A consumer's end of a store's change feed. See the module
/// documentation.
#[derive(Debug)]
pub struct Changes {
    receiver: broadcast::Receiver<Change>,
    store: String,
}

impl Changes {
    /// The next change, or `None` when none arrived within `timeout`.
    ///
    /// # Errors
    ///
    /// `service_unavailable` once the store was closed (or dropped): no
    /// change will arrive any more.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a change is taken from the feed only when this future
    /// completes with it; dropping the future loses nothing.
    pub async fn next(&mut self, timeout: Duration) -> Result<Option<Change>, Error> {
        match tokio::time::timeout(timeout, self.receiver.recv()).await {
            Err(_elapsed) => Ok(None),
            Ok(Ok(change)) => Ok(Some(change)),
            // The count of missed changes does not matter: a resync reloads
            // everything.
            Ok(Err(broadcast::error::RecvError::Lagged(_missed))) => Ok(Some(Change::Resync)),
            Ok(Err(broadcast::error::RecvError::Closed)) => Err(Error::new(
                ErrorCode::SERVICE_UNAVAILABLE,
                "the store's change feed ended: the store was closed",
            )
            .with_context("store", &self.store)),
        }
    }

    /// A change that is already waiting, without waiting: `None` when
    /// there is none (or the feed ended).
    pub fn try_next(&mut self) -> Option<Change> {
        match self.receiver.try_recv() {
            Ok(change) => Some(change),
            Err(broadcast::error::TryRecvError::Lagged(_)) => Some(Change::Resync),
            Err(_) => None,
        }
    }
}

/// The publishing side of a change feed, held by a backend.
///
/// Publishing never waits and never fails: with no consumer the change is
/// dropped; a slow consumer gets [`Change::Resync`].
#[derive(Debug)]
pub struct ChangeFeed {
    sender: Mutex<Option<broadcast::Sender<Change>>>,
    store: String,
}

impl ChangeFeed {
    /// A feed for the store named `store` (as errors name it).
    pub fn new(store: impl Into<String>) -> ChangeFeed {
        let (sender, _) = broadcast::channel(FEED_CAPACITY);
        ChangeFeed {
            sender: Mutex::new(Some(sender)),
            store: store.into(),
        }
    }

    /// A new consumer, which sees every change published from now on.
    ///
    /// # Errors
    ///
    /// `service_unavailable` once the feed was closed.
    pub fn subscribe(&self) -> Result<Changes, Error> {
        let sender = self.sender.lock().unwrap_or_else(PoisonError::into_inner);
        match sender.as_ref() {
            Some(sender) => Ok(Changes {
                receiver: sender.subscribe(),
                store: self.store.clone(),
            }),
            None => Err(Error::new(
                ErrorCode::SERVICE_UNAVAILABLE,
                "the store is closed: it has no change feed any more",
            )
            .with_context("store", &self.store)),
        }
    }

    /// Publishes one change to every consumer.
    pub fn publish(&self, change: Change) {
        let sender = self.sender.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = sender.as_ref() {
            // No consumer is not an error: nobody is watching.
            let _ = sender.send(change);
        }
    }

    /// Publishes the changes of one committed request: every put and
    /// delete of a watched keyspace, in order.
    pub fn publish_committed(&self, ops: &[Op]) {
        for change in watched_changes(ops) {
            self.publish(change);
        }
    }

    /// Ends the feed: consumers get `service_unavailable` once they have
    /// read what was published before. Idempotent.
    pub fn close(&self) {
        self.sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

/// The changes a request makes to watched keyspaces, in order: one per
/// put or delete of a watched keyspace. Empty (and allocation-free) for a
/// request that touches no watched keyspace.
pub fn watched_changes(ops: &[Op]) -> Vec<Change> {
    let mut changes = Vec::new();
    for op in ops {
        let (keyspace, key) = match op {
            Op::Put { keyspace, key, .. } | Op::Delete { keyspace, key, .. } => (keyspace, key),
            _ => continue,
        };
        if keyspace.is_watched() {
            changes.push(Change::Key {
                keyspace: keyspace.name().to_owned(),
                key: key.clone(),
            });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_lagging_consumer_gets_a_resync_and_a_closed_feed_an_error() {
        let feed = ChangeFeed::new("test");
        let mut changes = feed.subscribe().expect("open feed");
        for index in 0..FEED_CAPACITY + 1 {
            feed.publish(Change::Key {
                keyspace: "k".into(),
                key: index.to_string(),
            });
        }
        assert_eq!(
            changes.next(Duration::from_secs(1)).await.expect("open"),
            Some(Change::Resync)
        );
        let mut empty = feed.subscribe().expect("open feed");
        assert_eq!(
            empty.next(Duration::from_secs(1)).await.expect("open"),
            None
        );
        feed.close();
        let error = empty
            .next(Duration::from_secs(1))
            .await
            .expect_err("closed");
        assert_eq!(error.code(), ErrorCode::SERVICE_UNAVAILABLE);
        assert!(feed.subscribe().is_err());
    }
}
