//! foundation-persist's conformance suite, the one the memory and redb
//! stores pass, against PostgreSQL.

use foundation_persist::conformance;

use crate::cluster::{fresh_store, shared};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_contract_holds_on_postgres() {
    let Some(cluster) = shared() else { return };
    conformance::run_all(|| fresh_store(cluster)).await;
}
