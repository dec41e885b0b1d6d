//! Leases on PostgreSQL beyond the conformance suite: expiry is judged by
//! the server's clock, so a node whose own clock runs far ahead cannot take
//! a live lease, and an expiry is the server's time of the grant plus the
//! ttl. (Leases expiring on their own in real time are exercised by
//! jido-workflow's node tests.)

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
    // A node whose clock is decades ahead (its store options carry it).
    let ahead = Arc::new(ManualClock::starting_at(
        SystemTime::UNIX_EPOCH + Duration::from_secs(4_102_444_800),
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
async fn expiry_is_the_server_time_plus_the_ttl() {
    let Some(cluster) = shared() else { return };
    let url = cluster.create_database().await.expect("a database");
    let store = open_postgres(&url, &PostgresOptions::new())
        .await
        .expect("opens");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    let driver = tokio::spawn(connection);
    let server_now = || async {
        let row = client
            .query_one("SELECT clock_timestamp()", &[])
            .await
            .expect("select");
        row.get::<_, SystemTime>(0)
    };
    let ttl = Duration::from_secs(30);
    let before = server_now().await;
    let lease = store
        .leases()
        .acquire("workflow/e", "a", ttl)
        .await
        .expect("acquire");
    let after = server_now().await;
    assert!(
        before + ttl <= lease.expires_at && lease.expires_at <= after + ttl,
        "the expiry is the server's time of the grant plus the ttl: {before:?} {:?} {after:?}",
        lease.expires_at
    );
    // A zero-ttl renewal expires it at the server's now: claimable at once.
    store
        .leases()
        .renew(&lease, Duration::ZERO)
        .await
        .expect("renew");
    let claimed = store
        .leases()
        .claim_expired("workflow/", "b", ttl, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert!(claimed[0].token > lease.token);
    store.close().await.expect("close");
    drop(client);
    driver
        .await
        .expect("joins")
        .expect("the connection ends cleanly");
}
