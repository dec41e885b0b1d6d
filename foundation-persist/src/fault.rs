//! Fault injection for tests (feature `fault-injection`): a storage backend
//! that fails writes or syncs on command.
//!
//! [`FaultInjection`] is the switchboard a test holds; the store routes its
//! file I/O through a backend that consults it. After N more successful
//! writes (or syncs) every further one fails with the chosen I/O error kind
//! until the test calls [`FaultInjection::heal`]; a failing write can first
//! write half of its data, as a torn write would. This is how redb's own
//! crash tests work, and it lets tests check that a failed write is
//! reported, classified, and that nothing acknowledged is lost after a
//! reopen.
//!
//! This module is not for production use and not compiled without the
//! feature.

use std::fmt;
use std::io;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// Controls the failures of a store opened with
/// [`StoreOptions::fault_injection`](crate::StoreOptions::fault_injection).
///
/// Cheap to clone; clones control the same store.
#[derive(Clone, Default)]
pub struct FaultInjection {
    state: Arc<FaultState>,
}

struct FaultState {
    /// Writes (and length changes) that still succeed; negative: disarmed.
    writes_left: AtomicI64,
    /// Syncs that still succeed; negative: disarmed.
    syncs_left: AtomicI64,
    kind: Mutex<io::ErrorKind>,
    tear: AtomicBool,
    injected: AtomicU64,
}

impl Default for FaultState {
    fn default() -> Self {
        FaultState {
            writes_left: AtomicI64::new(-1),
            syncs_left: AtomicI64::new(-1),
            kind: Mutex::new(io::ErrorKind::Other),
            tear: AtomicBool::new(false),
            injected: AtomicU64::new(0),
        }
    }
}

impl fmt::Debug for FaultInjection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultInjection")
            .field(
                "writes_left",
                &self.state.writes_left.load(Ordering::Relaxed),
            )
            .field("syncs_left", &self.state.syncs_left.load(Ordering::Relaxed))
            .field("injected", &self.injected_failures())
            .finish()
    }
}

impl FaultInjection {
    /// A switchboard with no failure armed.
    pub fn new() -> FaultInjection {
        FaultInjection::default()
    }

    /// Lets `successful` more writes through, then fails every write (and
    /// file length change) with `kind`.
    pub fn fail_writes_after(&self, successful: u64, kind: io::ErrorKind) {
        self.set_kind(kind);
        self.state.writes_left.store(
            i64::try_from(successful).unwrap_or(i64::MAX),
            Ordering::SeqCst,
        );
    }

    /// Lets `successful` more syncs through, then fails every sync with
    /// `kind`.
    pub fn fail_syncs_after(&self, successful: u64, kind: io::ErrorKind) {
        self.set_kind(kind);
        self.state.syncs_left.store(
            i64::try_from(successful).unwrap_or(i64::MAX),
            Ordering::SeqCst,
        );
    }

    /// Whether a failing write first writes the first half of its data.
    pub fn tear_failed_writes(&self, tear: bool) {
        self.state.tear.store(tear, Ordering::SeqCst);
    }

    /// Disarms every failure.
    pub fn heal(&self) {
        self.state.writes_left.store(-1, Ordering::SeqCst);
        self.state.syncs_left.store(-1, Ordering::SeqCst);
    }

    /// How many operations failed because of this switchboard.
    pub fn injected_failures(&self) -> u64 {
        self.state.injected.load(Ordering::SeqCst)
    }

    fn set_kind(&self, kind: io::ErrorKind) {
        *self
            .state
            .kind
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = kind;
    }

    /// Counts one operation against `budget`; the error to fail it with,
    /// if its budget is spent.
    fn take(&self, budget: &AtomicI64) -> Option<io::Error> {
        let spent = budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| match left {
                left if left > 0 => Some(left - 1),
                _ => None,
            })
            .is_err();
        if spent && budget.load(Ordering::SeqCst) == 0 {
            self.state.injected.fetch_add(1, Ordering::SeqCst);
            let kind = *self
                .state
                .kind
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            Some(io::Error::new(kind, "injected storage fault"))
        } else {
            None
        }
    }
}

/// A file backend whose writes and syncs fail on command.
#[derive(Debug)]
pub(crate) struct FaultyBackend {
    inner: FileBackend,
    faults: FaultInjection,
}

impl FaultyBackend {
    pub(crate) fn new(inner: FileBackend, faults: FaultInjection) -> FaultyBackend {
        FaultyBackend { inner, faults }
    }
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        match self.faults.take(&self.faults.state.writes_left) {
            Some(error) => Err(error),
            None => self.inner.set_len(len),
        }
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        match self.faults.take(&self.faults.state.syncs_left) {
            Some(error) => Err(error),
            None => self.inner.sync_data(),
        }
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        match self.faults.take(&self.faults.state.writes_left) {
            Some(error) => {
                if self.faults.state.tear.load(Ordering::SeqCst) {
                    let _ = self.inner.write(offset, &data[..data.len() / 2]);
                }
                Err(error)
            }
            None => self.inner.write(offset, data),
        }
    }

    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_count_down_then_fail_until_healed() {
        let faults = FaultInjection::new();
        let budget = &faults.state.writes_left;
        assert!(faults.take(budget).is_none(), "disarmed");
        faults.fail_writes_after(2, io::ErrorKind::StorageFull);
        assert!(faults.take(budget).is_none());
        assert!(faults.take(budget).is_none());
        let error = faults.take(budget).expect("third write fails");
        assert_eq!(error.kind(), io::ErrorKind::StorageFull);
        assert!(faults.take(budget).is_some(), "keeps failing");
        assert_eq!(faults.injected_failures(), 2);
        faults.heal();
        assert!(faults.take(budget).is_none());
    }
}
