//! foundation-persist's integration tests, one binary with a module per
//! area. They drive the public API as a user would; the crash test re-runs
//! this binary as a child process and kills it.
//!
//! Every wait is bounded: store calls are wrapped in [`support::bounded`],
//! and child processes are read with timeouts. Nothing sleeps for
//! synchronisation.

mod batch;
mod codec;
mod concurrency;
#[cfg(feature = "conformance")]
mod conformance;
mod crash;
#[cfg(feature = "fault-injection")]
mod faults;
mod hostile;
mod in_use;
mod journal;
mod leases;
mod maintenance;
mod metrics;
mod round_trip;
mod state;

mod support {
    use std::future::Future;
    use std::time::Duration;

    use foundation_persist::Record;
    use serde::{Deserialize, Serialize};

    /// The bound on any single awaited store call in these tests: far above
    /// what a call takes, low enough that a hang fails the test instead of
    /// the CI run.
    pub(crate) const BOUND: Duration = Duration::from_secs(60);

    /// Awaits `future`, failing the test if it takes longer than [`BOUND`].
    pub(crate) async fn bounded<F: Future>(future: F) -> F::Output {
        match tokio::time::timeout(BOUND, future).await {
            Ok(output) => output,
            Err(_) => panic!("a store call did not finish within {BOUND:?}"),
        }
    }

    /// A record used across the tests.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub(crate) struct Task {
        pub(crate) id: u64,
        pub(crate) name: String,
        pub(crate) payload: Vec<u8>,
    }

    impl Record for Task {
        const TYPE_TAG: &'static str = "task";
        const SCHEMA_VERSION: u32 = 1;
    }

    impl Task {
        pub(crate) fn new(id: u64) -> Task {
            Task {
                id,
                name: format!("task-{id}"),
                payload: (0..(id % 64) as u8).collect(),
            }
        }
    }

    pub(crate) fn temp_dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("a temporary directory can be created")
    }

    /// One store of each kind: in memory (writes inline) and on disk
    /// (writes through the group-committing writer thread). The directory
    /// must outlive the file store.
    pub(crate) fn each_kind() -> Vec<(
        &'static str,
        foundation_persist::Store,
        Option<tempfile::TempDir>,
    )> {
        use foundation_persist::{Store, StoreOptions};
        let directory = temp_dir();
        let file = Store::open(directory.path().join("store.redb"), &StoreOptions::new())
            .expect("a file store opens");
        let memory = Store::open_in_memory(&StoreOptions::new()).expect("a memory store opens");
        vec![("memory", memory, None), ("file", file, Some(directory))]
    }
}
