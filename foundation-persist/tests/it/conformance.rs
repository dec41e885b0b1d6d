//! The backend contract's conformance suite (feature `conformance`) run
//! against both built-in stores: redb in memory (inline writes) and a redb
//! file (group-committing writer thread).

use foundation_persist::{Store, StoreOptions, conformance};

use crate::support::temp_dir;

#[tokio::test]
async fn the_in_memory_store_conforms() {
    conformance::run_all(|| async {
        Store::open_in_memory(&StoreOptions::new()).expect("a memory store opens")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_store_conforms() {
    let directory = temp_dir();
    let mut stores = 0;
    conformance::run_all(|| {
        stores += 1;
        let path = directory.path().join(format!("conformance-{stores}.redb"));
        async move { Store::open(path, &StoreOptions::new()).expect("a file store opens") }
    })
    .await;
}

fn watching() -> StoreOptions {
    let mut options = StoreOptions::new();
    options.watch(conformance::WATCHED_KEYSPACE);
    options
}

#[tokio::test]
async fn the_in_memory_store_reports_watched_changes() {
    conformance::run_change_feed(|| async {
        Store::open_in_memory(&watching()).expect("a memory store opens")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_store_reports_watched_changes() {
    let directory = temp_dir();
    let mut stores = 0;
    conformance::run_change_feed(|| {
        stores += 1;
        let path = directory.path().join(format!("changes-{stores}.redb"));
        async move { Store::open(path, &watching()).expect("a file store opens") }
    })
    .await;
}
