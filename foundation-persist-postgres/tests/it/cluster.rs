//! Helpers: the shared cluster and fresh stores on it.

use foundation_persist::Store;
use foundation_persist_postgres::testing::TestCluster;
use foundation_persist_postgres::{PostgresOptions, open_postgres};

/// The shared cluster, or `None` when the tests are skipped (the harness
/// said so on stderr).
pub(crate) fn shared() -> Option<&'static TestCluster> {
    TestCluster::shared().expect("the PostgreSQL test cluster starts")
}

/// A fresh, empty database on `cluster`, opened as a store.
pub(crate) async fn fresh_store(cluster: &TestCluster) -> Store {
    let url = cluster.create_database().await.expect("a fresh database");
    open_postgres(&url, &PostgresOptions::new())
        .await
        .expect("the store opens")
}
