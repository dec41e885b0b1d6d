//! Server faults under load: the server restarted (`pg_ctl restart`) and
//! connections killed (`pg_terminate_backend`) while writers run. Each
//! checks the backend's promise: every failure is a classified
//! infrastructure error, no acknowledged write is lost, and the store
//! reconnects and goes on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foundation_error::{Category, Error};
use foundation_persist::conformance::ConformanceRecord;
use foundation_persist::{Journal, StateStore, Store};
use foundation_persist_postgres::testing::TestCluster;
use foundation_persist_postgres::{PostgresOptions, open_postgres};
use tokio::sync::watch;

use crate::cluster::shared;

const WRITERS: u64 = 8;
/// The bound on every wait of these tests.
const WAIT: Duration = Duration::from_secs(120);

fn record(id: u64) -> ConformanceRecord {
    ConformanceRecord {
        id,
        text: format!("record-{id}"),
        bytes: Vec::new(),
    }
}

/// What the writers saw acknowledged, and how they failed.
#[derive(Default)]
struct Seen {
    /// Per writer: the last acknowledged put's id.
    last_put: BTreeMap<u64, u64>,
    /// Per writer: acknowledged appends, (sequence, id).
    appends: BTreeMap<u64, Vec<(u64, u64)>>,
    failures: Vec<Error>,
}

/// Writers putting and appending in a loop until stopped.
struct Load {
    seen: Arc<Mutex<Seen>>,
    acks: watch::Receiver<u64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(store: &Store) -> Load {
        let values = store
            .state::<ConformanceRecord>("values")
            .expect("keyspace");
        let journal = store.journal::<ConformanceRecord>("log").expect("keyspace");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (acks_sender, acks) = watch::channel(0u64);
        let acks_sender = Arc::new(acks_sender);
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..WRITERS)
            .map(|writer| {
                let (values, journal): (StateStore<ConformanceRecord>, Journal<ConformanceRecord>) =
                    (values.clone(), journal.clone());
                let (seen, acks, stop) = (seen.clone(), acks_sender.clone(), stop.clone());
                tokio::spawn(async move {
                    let key = format!("writer-{writer}");
                    let mut id = 0;
                    while !stop.load(Ordering::Acquire) {
                        id += 1;
                        match values.put(&key, &record(id)).await {
                            Ok(_) => {
                                seen.lock()
                                    .expect("not poisoned")
                                    .last_put
                                    .insert(writer, id);
                                acks.send_modify(|count| *count += 1);
                            }
                            Err(error) => seen.lock().expect("not poisoned").failures.push(error),
                        }
                        match journal.append(&key, &record(id)).await {
                            Ok(sequence) => {
                                seen.lock()
                                    .expect("not poisoned")
                                    .appends
                                    .entry(writer)
                                    .or_default()
                                    .push((sequence, id));
                                acks.send_modify(|count| *count += 1);
                            }
                            Err(error) => seen.lock().expect("not poisoned").failures.push(error),
                        }
                    }
                })
            })
            .collect();
        Load {
            seen,
            acks,
            stop,
            tasks,
        }
    }

    fn acknowledged(&self) -> u64 {
        *self.acks.borrow()
    }

    /// Waits (bounded) until `count` writes in all were acknowledged.
    async fn wait_for_acks(&mut self, count: u64) {
        tokio::time::timeout(WAIT, self.acks.wait_for(|acks| *acks >= count))
            .await
            .unwrap_or_else(|_| panic!("{count} acknowledged writes within {WAIT:?}"))
            .expect("the writers are running");
    }

    /// Stops the writers and checks that every acknowledged write is in
    /// the store and that every failure was classified.
    async fn stop_and_check(self, store: &Store) -> Seen {
        self.stop.store(true, Ordering::Release);
        for task in self.tasks {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("a writer stops in time")
                .expect("a writer does not panic");
        }
        let seen = Arc::try_unwrap(self.seen)
            .ok()
            .expect("the writers are gone")
            .into_inner()
            .expect("not poisoned");
        for failure in &seen.failures {
            assert_eq!(failure.category(), Category::Infrastructure, "{failure}");
            assert!(failure.is_retryable(), "{failure}");
        }
        let values = store
            .state::<ConformanceRecord>("values")
            .expect("keyspace");
        let journal = store.journal::<ConformanceRecord>("log").expect("keyspace");
        for (writer, last) in &seen.last_put {
            let stored = values
                .get(&format!("writer-{writer}"))
                .await
                .expect("get")
                .expect("an acknowledged put is there");
            // A later put may have been committed without an answer
            // (outcome unknown), never an earlier one.
            assert!(
                stored.id >= *last,
                "writer {writer}: stored {} < acknowledged {last}",
                stored.id
            );
        }
        for (writer, appends) in &seen.appends {
            let records = journal
                .read(&format!("writer-{writer}"), 1, 10_000)
                .await
                .expect("read");
            let stored: BTreeMap<u64, u64> = records
                .iter()
                .map(|entry| (entry.sequence, entry.record.id))
                .collect();
            for (sequence, id) in appends {
                assert_eq!(
                    stored.get(sequence),
                    Some(id),
                    "writer {writer}: the acknowledged append {sequence} is there"
                );
            }
        }
        let mut codes: Vec<_> = seen
            .failures
            .iter()
            .map(|failure| failure.code().name())
            .collect();
        codes.sort_unstable();
        codes.dedup();
        eprintln!("{} failures (classified: {codes:?})", seen.failures.len());
        seen
    }
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("an admin connection");
    tokio::spawn(connection);
    client
}

async fn start_time(url: &str) -> String {
    admin(url)
        .await
        .query_one("SELECT pg_postmaster_start_time()::text", &[])
        .await
        .expect("select")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_under_load_loses_no_acknowledged_write() {
    // A cluster of its own: the restart would disturb the other tests.
    let Some(cluster) = TestCluster::start().expect("a cluster starts") else {
        return;
    };
    let cluster = Arc::new(cluster);
    let url = cluster.create_database().await.expect("a database");
    let store = open_postgres(&url, &PostgresOptions::new())
        .await
        .expect("opens");
    let before = start_time(&url).await;
    let mut load = Load::start(&store);
    load.wait_for_acks(200).await;

    let restarting = cluster.clone();
    tokio::task::spawn_blocking(move || restarting.restart())
        .await
        .expect("joins")
        .expect("the server restarts");
    assert_ne!(start_time(&url).await, before, "the server was restarted");

    // The store reconnects: writes are acknowledged again.
    let after_restart = load.acknowledged();
    load.wait_for_acks(after_restart + 200).await;
    load.stop_and_check(&store).await;
    store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_mid_write_lose_no_acknowledged_write() {
    let Some(cluster) = shared() else { return };
    let url = cluster.create_database().await.expect("a database");
    let database = url
        .rsplit("dbname=")
        .next()
        .expect("the url names its database")
        .to_owned();
    let store = open_postgres(&url, &PostgresOptions::new())
        .await
        .expect("opens");
    let killer = admin(&cluster.url("postgres")).await;
    let mut load = Load::start(&store);
    load.wait_for_acks(100).await;
    for _ in 0..5 {
        let row = killer
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&database],
            )
            .await
            .expect("terminate");
        let killed: i64 = row.get(0);
        assert!(killed > 0, "the store's connections were killed");
        let now = load.acknowledged();
        load.wait_for_acks(now + 50).await;
    }
    load.stop_and_check(&store).await;
    store.close().await.expect("close");
}

/// Two stores on one database (two nodes) whose batches lock two keys in
/// opposite orders: PostgreSQL detects the deadlock and aborts one
/// transaction; the writer runs that batch again, so both batches commit
/// and neither caller sees the deadlock.
///
/// Made certain with a gate: each batch writes its first key, then the
/// gate key (held by the test until both batches wait on it, each holding
/// its first key), then the other's first key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_between_nodes_is_retried_inside_the_backend() {
    let Some(cluster) = shared() else { return };
    let url = cluster.create_database().await.expect("a database");
    let first = open_postgres(&url, &PostgresOptions::new())
        .await
        .expect("opens");
    let second = open_postgres(&url, &PostgresOptions::new())
        .await
        .expect("opens");
    let values_first = first
        .state::<ConformanceRecord>("values")
        .expect("keyspace");
    let values_second = second
        .state::<ConformanceRecord>("values")
        .expect("keyspace");
    for key in ["a", "b", "gate"] {
        values_first.put(key, &record(0)).await.expect("put");
    }

    // Hold the gate.
    let mut holder = admin(&url).await;
    let hold = holder.transaction().await.expect("begin");
    hold.execute(
        "SELECT 1 FROM foundation_persist_state WHERE key = 'gate' FOR UPDATE",
        &[],
    )
    .await
    .expect("lock");

    let mut batch_first = first.batch();
    batch_first
        .put(&values_first, "a", &record(1))
        .expect("op")
        .put(&values_first, "gate", &record(1))
        .expect("op")
        .put(&values_first, "b", &record(1))
        .expect("op");
    let mut batch_second = second.batch();
    batch_second
        .put(&values_second, "b", &record(2))
        .expect("op")
        .put(&values_second, "gate", &record(2))
        .expect("op")
        .put(&values_second, "a", &record(2))
        .expect("op");
    let committing_first = tokio::spawn(async move { batch_first.commit().await });
    let committing_second = tokio::spawn(async move { batch_second.commit().await });

    // Both batches wait on the gate, each holding its first key (a bounded
    // poll of the server's own view); then the gate opens and they collide.
    let observer = admin(&url).await;
    let waiting = async {
        loop {
            let row = observer
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .expect("select");
            if row.get::<_, i64>(0) >= 2 {
                break;
            }
        }
    };
    tokio::time::timeout(WAIT, waiting)
        .await
        .expect("both batches wait on the gate");
    hold.commit().await.expect("release");

    let outcome_first = tokio::time::timeout(WAIT, committing_first)
        .await
        .expect("in time")
        .expect("joins");
    let outcome_second = tokio::time::timeout(WAIT, committing_second)
        .await
        .expect("in time")
        .expect("joins");
    assert!(outcome_first.is_ok(), "{outcome_first:?}");
    assert!(outcome_second.is_ok(), "{outcome_second:?}");
    let a = values_first.get("a").await.expect("get").expect("there");
    let b = values_first.get("b").await.expect("get").expect("there");
    assert_eq!(
        a.id, b.id,
        "each batch committed whole; the later one wins both keys"
    );

    // The server did detect a deadlock (and no other test makes one).
    assert!(
        cluster.server_log().contains("deadlock detected"),
        "PostgreSQL detected the deadlock: {}",
        cluster.server_log()
    );
    first.close().await.expect("close");
    second.close().await.expect("close");
}

/// A transaction that outlives the commit timeout is answered `timeout`
/// with `commit_outcome=unknown`, never success; its connection is not
/// reused, and the store serves the next writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_past_its_timeout_is_reported_as_unknown_never_as_success() {
    let Some(cluster) = shared() else { return };
    let url = cluster.create_database().await.expect("a database");
    let store = open_postgres(&url, &PostgresOptions::new())
        .await
        .expect("opens");
    let values = store
        .state::<ConformanceRecord>("values")
        .expect("keyspace");
    values.put("gate", &record(0)).await.expect("put");

    // A held row makes the next write wait past a short commit timeout.
    let mut holder = admin(&url).await;
    let hold = holder.transaction().await.expect("begin");
    hold.execute(
        "SELECT 1 FROM foundation_persist_state WHERE key = 'gate' FOR UPDATE",
        &[],
    )
    .await
    .expect("lock");
    let mut options = PostgresOptions::new();
    options.commit_timeout(Duration::from_millis(300));
    let impatient = open_postgres(&url, &options).await.expect("opens");
    let impatient_values = impatient
        .state::<ConformanceRecord>("values")
        .expect("keyspace");
    let error = impatient_values
        .put("gate", &record(1))
        .await
        .expect_err("the row is held past the commit timeout");
    assert_eq!(
        error.code(),
        foundation_error::ErrorCode::TIMEOUT,
        "{error}"
    );
    assert_eq!(error.context_value("commit_outcome"), Some("unknown"));
    hold.commit().await.expect("release");

    // The impatient store goes on with fresh connections.
    impatient_values
        .put("other", &record(2))
        .await
        .expect("a later write commits");
    assert_eq!(
        values
            .get("other")
            .await
            .expect("get")
            .map(|value| value.id),
        Some(2)
    );
    impatient.close().await.expect("close");
    store.close().await.expect("close");
}

/// A read blocked past the read timeout (the table locked by someone
/// else) fails with `timeout`; the store reads again once it is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_past_its_timeout_fails_with_timeout() {
    let Some(cluster) = shared() else { return };
    let url = cluster.create_database().await.expect("a database");
    let mut options = PostgresOptions::new();
    options.read_timeout(Duration::from_millis(300));
    let store = open_postgres(&url, &options).await.expect("opens");
    let values = store
        .state::<ConformanceRecord>("values")
        .expect("keyspace");
    values.put("k", &record(1)).await.expect("put");

    let mut holder = admin(&url).await;
    let hold = holder.transaction().await.expect("begin");
    hold.batch_execute("LOCK TABLE foundation_persist_state IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let error = values.get("k").await.expect_err("the table is locked");
    assert_eq!(
        error.code(),
        foundation_error::ErrorCode::TIMEOUT,
        "{error}"
    );
    assert_eq!(error.context_value("operation"), Some("get"));
    hold.commit().await.expect("release");

    assert_eq!(
        values.get("k").await.expect("get").map(|value| value.id),
        Some(1)
    );
    store.close().await.expect("close");
}
