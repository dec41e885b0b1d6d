//! Group commit: concurrent writes share transactions, and a batch keeps
//! each request's precondition in order.

use foundation_error::ErrorCode;
use foundation_persist::conformance::ConformanceRecord;
use futures::future::join_all;

use crate::cluster::shared;

fn record(id: u64) -> ConformanceRecord {
    ConformanceRecord {
        id,
        text: format!("record-{id}"),
        bytes: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_transactions() {
    let Some(cluster) = shared() else { return };
    let url = cluster.create_database().await.expect("a database");
    let store = foundation_persist_postgres::open_postgres(
        &url,
        &foundation_persist_postgres::PostgresOptions::new(),
    )
    .await
    .expect("opens");
    let values = store
        .state::<ConformanceRecord>("values")
        .expect("keyspace");
    let writes = join_all((0..256u64).map(|id| {
        let values = values.clone();
        async move { values.put(&format!("key-{id:03}"), &record(id)).await }
    }))
    .await;
    for write in &writes {
        assert!(write.is_ok(), "{write:?}");
    }
    // Every row remembers the transaction that wrote it (xmin).
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT xmin::text) FROM foundation_persist_state",
            &[],
        )
        .await
        .expect("select");
    let (rows, transactions): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(rows, 256);
    assert!(
        transactions <= 64,
        "256 concurrent puts took {transactions} transactions"
    );
    store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_compare_and_sets_have_one_winner() {
    let Some(cluster) = shared() else { return };
    let store = crate::cluster::fresh_store(cluster).await;
    let values = store
        .state::<ConformanceRecord>("values")
        .expect("keyspace");
    let journal = store.journal::<ConformanceRecord>("log").expect("keyspace");
    let start = values.put("k", &record(0)).await.expect("put");
    for round in 1..=3u64 {
        let current = values
            .get_versioned("k")
            .await
            .expect("get")
            .expect("there")
            .version;
        let attempts = join_all((0..64u64).map(|id| {
            let values = values.clone();
            async move {
                values
                    .compare_and_set("k", Some(current), &record(round * 100 + id))
                    .await
            }
        }))
        .await;
        let winners: Vec<_> = attempts.iter().filter(|attempt| attempt.is_ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one winner");
        for attempt in &attempts {
            if let Err(error) = attempt {
                assert_eq!(error.code(), ErrorCode::VERSION_CONFLICT, "{error}");
            }
        }
        let appends = join_all((0..64u64).map(|_| {
            let journal = journal.clone();
            async move { journal.append_expecting("s", round, &record(round)).await }
        }))
        .await;
        assert_eq!(
            appends.iter().filter(|append| append.is_ok()).count(),
            1,
            "round {round}: one append gets the expected sequence"
        );
    }
    assert!(
        values
            .get_versioned("k")
            .await
            .expect("get")
            .expect("there")
            .version
            > start
    );
    store.close().await.expect("close");
}

/// On a current-thread runtime the writer task cannot run while the test
/// task queues, so a queue of 4 takes exactly 4 of 32 writes; the others
/// are refused at once with `queue_full`, not applied.
#[tokio::test(flavor = "current_thread")]
async fn a_full_queue_refuses_writes_with_queue_full() {
    let Some(cluster) = shared() else { return };
    let url = cluster.create_database().await.expect("a database");
    let store = foundation_persist_postgres::open_postgres(
        &url,
        foundation_persist_postgres::PostgresOptions::new().max_queued_writes(4),
    )
    .await
    .expect("opens");
    let values = store
        .state::<ConformanceRecord>("values")
        .expect("keyspace");
    let writes = join_all((0..32u64).map(|id| {
        let values = values.clone();
        async move { values.put(&format!("key-{id:02}"), &record(id)).await }
    }))
    .await;
    let accepted = writes.iter().filter(|write| write.is_ok()).count();
    assert_eq!(accepted, 4, "{writes:?}");
    for write in &writes {
        if let Err(error) = write {
            assert_eq!(error.code(), ErrorCode::QUEUE_FULL, "{error}");
            assert!(error.is_retryable());
        }
    }
    let stored = values.list("key-", None, 100).await.expect("list");
    assert_eq!(stored.len(), 4, "refused writes were not applied");
    store.close().await.expect("close");
}
