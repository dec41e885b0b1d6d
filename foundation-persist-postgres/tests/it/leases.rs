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

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("an admin connection");
    tokio::spawn(connection);
    client
}

async fn lease_rows(client: &tokio_postgres::Client) -> Vec<(String, i64, Option<String>)> {
    client
        .query(
            "SELECT name, token, owner FROM foundation_persist_leases ORDER BY name",
            &[],
        )
        .await
        .expect("select")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

/// Lease churn (acquire, release, many names) leaves no rows behind, and a
/// name released and acquired again still gets a larger token: tokens
/// come from a sequence, not from the row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_leases_leave_no_rows_and_their_tokens_never_repeat() {
    let Some(cluster) = shared() else { return };
    let url = cluster.create_database().await.expect("a database");
    let store = open_postgres(&url, &PostgresOptions::new())
        .await
        .expect("opens");
    let leases = store.leases();
    let ttl = Duration::from_secs(60);
    let mut largest = 0;
    for round in 0..3 {
        for index in 0..50 {
            let lease = leases
                .acquire(&format!("workflow/{index}"), "a", ttl)
                .await
                .expect("acquire");
            assert!(lease.token > largest, "round {round}: tokens only grow");
            largest = lease.token;
            leases.release(&lease).await.expect("release");
        }
    }
    let kept = leases
        .acquire("workflow/kept", "a", ttl)
        .await
        .expect("acquire");
    let client = admin(&url).await;
    assert_eq!(
        lease_rows(&client).await,
        vec![(
            "workflow/kept".to_owned(),
            i64::try_from(kept.token).expect("a bigint"),
            Some("a".to_owned())
        )],
        "only the held lease has a row"
    );
    store.close().await.expect("close");
}

/// A version 3 database kept released rows (`owner` NULL) to remember
/// their tokens: the migration to version 4 starts the token sequence
/// above every stored token and deletes those rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_3_lease_table_is_migrated_to_the_token_sequence() {
    let Some(cluster) = shared() else { return };
    let url = cluster.create_database().await.expect("a database");
    let store = open_postgres(&url, &PostgresOptions::new())
        .await
        .expect("opens");
    let ttl = Duration::from_secs(60);
    let held = store
        .leases()
        .acquire("workflow/held", "a", ttl)
        .await
        .expect("acquire");
    store.close().await.expect("close");
    let client = admin(&url).await;
    client
        .batch_execute(
            "DROP SEQUENCE foundation_persist_lease_tokens; \
             INSERT INTO foundation_persist_leases (name, owner, token, expires_at) \
               VALUES ('workflow/old', NULL, 40, now()); \
             UPDATE foundation_persist_schema SET version = 3",
        )
        .await
        .expect("what version 3 left");

    let store = open_postgres(&url, &PostgresOptions::new())
        .await
        .expect("a version 3 database opens");
    let again = store
        .leases()
        .acquire("workflow/old", "b", ttl)
        .await
        .expect("acquire");
    assert_eq!(again.token, 41, "above every stored token");
    assert_eq!(
        lease_rows(&client).await,
        vec![
            (
                "workflow/held".to_owned(),
                i64::try_from(held.token).expect("a bigint"),
                Some("a".to_owned())
            ),
            ("workflow/old".to_owned(), 41, Some("b".to_owned())),
        ]
    );
    store.close().await.expect("close");
}

/// Concurrent acquires and releases of one store share transactions (the
/// lease task's group commit), and each still gets its own answer: 200
/// distinct names are all granted with distinct tokens, of 50 owners
/// racing for one name exactly one wins and the others are refused naming
/// it, and the releases delete their rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lease_operations_share_transactions_and_keep_their_answers() {
    let Some(cluster) = shared() else { return };
    let url = cluster.create_database().await.expect("a database");
    let store = open_postgres(&url, &PostgresOptions::new())
        .await
        .expect("opens");
    let leases = store.leases();
    let ttl = Duration::from_secs(60);
    let names: Vec<String> = (0..200)
        .map(|index| format!("workflow/{index:03}"))
        .collect();
    let granted = futures::future::join_all(names.iter().map(|name| {
        let leases = leases.clone();
        async move { leases.acquire(name, "a", ttl).await }
    }))
    .await;
    let mut tokens = std::collections::BTreeSet::new();
    for (name, lease) in names.iter().zip(&granted) {
        let lease = lease.as_ref().expect("a free name is granted");
        assert_eq!(&lease.name, name);
        assert_eq!(lease.owner, "a");
        assert!(tokens.insert(lease.token), "tokens never repeat");
    }
    // Every row remembers the transaction that wrote it (xmin).
    let client = admin(&url).await;
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT xmin::text) FROM foundation_persist_leases",
            &[],
        )
        .await
        .expect("select");
    let (rows, transactions): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(rows, 200);
    assert!(
        transactions <= 50,
        "200 concurrent acquires took {transactions} transactions"
    );

    let racers = futures::future::join_all((0..50).map(|index| {
        let leases = leases.clone();
        async move {
            leases
                .acquire("workflow/contested", &format!("owner-{index}"), ttl)
                .await
        }
    }))
    .await;
    let winners: Vec<_> = racers
        .iter()
        .filter_map(|answer| answer.as_ref().ok())
        .collect();
    assert_eq!(winners.len(), 1, "exactly one of 50 racers wins");
    let winner = &winners[0].owner;
    for answer in &racers {
        if let Err(error) = answer {
            assert_eq!(error.code(), ErrorCode::ALREADY_EXISTS, "{error}");
            assert_eq!(
                error.context_value("owner"),
                Some(winner.as_str()),
                "{error}"
            );
        }
    }

    let released = futures::future::join_all(granted.iter().map(|lease| {
        let leases = leases.clone();
        async move {
            let lease = lease.as_ref().expect("granted above");
            leases.release(lease).await
        }
    }))
    .await;
    for release in &released {
        assert!(release.is_ok(), "{release:?}");
    }
    let rows = lease_rows(&client).await;
    assert_eq!(rows.len(), 1, "only the contested lease is held: {rows:?}");
    assert_eq!(rows[0].2.as_deref(), Some(winner.as_str()));
    // A released name is granted again with a larger token.
    let again = leases
        .acquire("workflow/000", "b", ttl)
        .await
        .expect("released, so free");
    assert!(tokens.iter().all(|token| *token < again.token));
    store.close().await.expect("close");
}
