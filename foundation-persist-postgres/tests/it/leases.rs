//! Leases on PostgreSQL beyond the conformance suite: expiry is judged by
//! the server's clock, so a node whose own clock runs far ahead cannot take
//! a live lease, and a lease expires on its own after its ttl.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use foundation_error::ErrorCode;
use foundation_error::clock::ManualClock;
use foundation_persist_postgres::{PostgresOptions, open_postgres};

use crate::cluster::shared;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_judged_by_the_server_clock_not_the_nodes() {
    let Some(cluster) = shared() else { return };
    let url = cluster.create_database().await.expect("a database");
    let honest = open_postgres(&url, &PostgresOptions::new())
        .await
        .expect("opens");
    // A node whose clock is a day ahead (its store options carry it).
    let ahead = Arc::new(ManualClock::starting_at(
        SystemTime::now() + Duration::from_secs(86_400),
    ));
    let mut options = PostgresOptions::new();
    options.clock(ahead);
    let skewed = open_postgres(&url, &options).await.expect("opens");

    let lease = honest
        .leases()
        .acquire("workflow/skew", "a", Duration::from_secs(30))
        .await
        .expect("acquire");
    let refused = skewed
        .leases()
        .acquire("workflow/skew", "b", Duration::from_secs(30))
        .await
        .expect_err("the lease is live by the server's clock");
    assert_eq!(refused.code(), ErrorCode::ALREADY_EXISTS, "{refused}");
    assert!(
        skewed
            .leases()
            .claim_expired("workflow/", "b", Duration::from_secs(30), 10)
            .await
            .expect("claim")
            .is_empty(),
        "nothing is expired by the server's clock"
    );
    honest
        .leases()
        .renew(&lease, Duration::from_secs(30))
        .await
        .expect("still held");
    honest.close().await.expect("close");
    skewed.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_expires_on_its_own_after_its_ttl() {
    let Some(cluster) = shared() else { return };
    let url = cluster.create_database().await.expect("a database");
    let store = open_postgres(&url, &PostgresOptions::new())
        .await
        .expect("opens");
    let leases = store.leases();
    let ttl = Duration::from_millis(200);
    let lease = leases
        .acquire("workflow/e", "a", ttl)
        .await
        .expect("acquire");
    // Polls the claim (the event is the server's clock passing the expiry),
    // bounded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let claimed = loop {
        let claimed = leases
            .claim_expired("workflow/", "b", Duration::from_secs(30), 10)
            .await
            .expect("claim");
        if !claimed.is_empty() {
            break claimed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(claimed.len(), 1);
    assert!(claimed[0].token > lease.token);
    assert_eq!(claimed[0].owner, "b");
    store.close().await.expect("close");
}
