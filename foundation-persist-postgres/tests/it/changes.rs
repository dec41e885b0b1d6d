//! The change feed on PostgreSQL: the conformance checks, a change
//! committed by one node heard by another, and a resync after the
//! listening connection is cut.

use std::time::Duration;

use foundation_persist::conformance::{self, ConformanceRecord, WATCHED_KEYSPACE};
use foundation_persist::{Change, Changes, Store, StoreOptions};
use foundation_persist_postgres::testing::TestCluster;
use foundation_persist_postgres::{PostgresOptions, open_postgres};

use crate::cluster::shared;

/// The bound on every wait for a change.
const WAIT: Duration = Duration::from_secs(30);

fn watching() -> PostgresOptions {
    let mut store = StoreOptions::new();
    store.watch(WATCHED_KEYSPACE);
    let mut options = PostgresOptions::new();
    options.store_options(store);
    options
}

async fn open(url: &str) -> Store {
    open_postgres(url, &watching())
        .await
        .expect("the store opens")
}

async fn fresh_watching_store(cluster: &TestCluster) -> Store {
    let url = cluster.create_database().await.expect("a fresh database");
    open(&url).await
}

fn record(id: u64) -> ConformanceRecord {
    ConformanceRecord {
        id,
        text: format!("record-{id}"),
        bytes: Vec::new(),
    }
}

/// The next change, failing the test after [`WAIT`].
async fn next(changes: &mut Changes) -> Change {
    changes
        .next(WAIT)
        .await
        .expect("the feed is open")
        .unwrap_or_else(|| panic!("no change within {WAIT:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_feed_conforms_on_postgres() {
    let Some(cluster) = shared() else { return };
    conformance::run_change_feed(|| fresh_watching_store(cluster)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_committed_by_one_node_is_heard_by_another() {
    let Some(cluster) = shared() else { return };
    let url = cluster.create_database().await.expect("a fresh database");
    let (first, second) = (open(&url).await, open(&url).await);
    let mut heard = second.changes().expect("a feed");
    let values = first
        .state::<ConformanceRecord>(WATCHED_KEYSPACE)
        .expect("keyspace");
    values.put("shared", &record(1)).await.expect("put");
    assert_eq!(
        next(&mut heard).await,
        Change::Key {
            keyspace: WATCHED_KEYSPACE.into(),
            key: "shared".into()
        }
    );
    first.close().await.expect("close");
    second.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_listening_connection_reconnects_and_resyncs() {
    let Some(cluster) = shared() else { return };
    let url = cluster.create_database().await.expect("a fresh database");
    let store = open(&url).await;
    let mut changes = store.changes().expect("a feed");
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("an admin connection");
    let driver = tokio::spawn(connection);
    let cut = admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE query LIKE 'LISTEN foundation_persist_changes%' AND pid <> pg_backend_pid() \
             AND datname = current_database()",
            &[],
        )
        .await
        .expect("terminate the listener");
    assert_eq!(cut, 1, "exactly one listening connection (this store's)");
    assert_eq!(
        next(&mut changes).await,
        Change::Resync,
        "the feed says changes may have been missed once it listens again"
    );
    store
        .state::<ConformanceRecord>(WATCHED_KEYSPACE)
        .expect("keyspace")
        .put("after", &record(2))
        .await
        .expect("put");
    assert_eq!(
        next(&mut changes).await,
        Change::Key {
            keyspace: WATCHED_KEYSPACE.into(),
            key: "after".into()
        },
        "changes are heard again after the reconnect"
    );
    drop(admin);
    driver.abort();
    store.close().await.expect("close");
}
