//! Errors PostgreSQL itself raises during our writes: a real serialization
//! failure (SQLSTATE 40001) between two transactions, serialization
//! failures that outlast the writer's retries, and a full disk (SQLSTATE
//! 53100). Each checks the error model of `classify.rs` and `writer.rs`:
//! the error's code, whether it was retried, that nothing of the failed
//! batch is applied, and that every request of it (the failing one shares
//! its group commit with others) gets the same clear answer.
//!
//! The serialization failures and the full disk that outlast the retries
//! are raised by a trigger the test installs (`RAISE ... USING ERRCODE`):
//! the server's own error path, with the real SQLSTATE, without filling a
//! disk (a size-limited filesystem needs a root-only mount).

use std::time::Duration;

use foundation_error::{Category, Error, ErrorCode};
use foundation_persist::StateStore;
use foundation_persist::conformance::ConformanceRecord;
use foundation_persist_postgres::{PostgresOptions, open_postgres};

use crate::cluster::shared;

/// The bound on every wait of these tests.
const WAIT: Duration = Duration::from_secs(120);

/// Concurrent writers next to the failing one.
const BYSTANDERS: u64 = 16;

fn record(id: u64) -> ConformanceRecord {
    ConformanceRecord {
        id,
        text: format!("record-{id}"),
        bytes: Vec::new(),
    }
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("an admin connection");
    tokio::spawn(connection);
    client
}

/// Waits (bounded) until `count` sessions of the database wait on a lock.
async fn wait_for_lock_waiters(observer: &tokio_postgres::Client, count: i64) {
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
            if row.get::<_, i64>(0) >= count {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, waiting)
        .await
        .expect("the write waits on the held row");
}

/// The writer's transactions run at REPEATABLE READ (the database's
/// default, as an operator may set it). A write blocked on a row that
/// another transaction updates and commits fails inside PostgreSQL with
/// 40001 ("could not serialize access due to concurrent update"); the
/// writer runs the batch again with a fresh snapshot, and the caller sees
/// only success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_serialization_failure_is_retried_and_the_write_commits() {
    let Some(cluster) = shared() else { return };
    let url = cluster.create_database().await.expect("a database");
    let owner = admin(&url).await;
    owner
        .batch_execute(
            "DO $$ BEGIN EXECUTE format(\
               'ALTER DATABASE %I SET default_transaction_isolation = ''repeatable read''', \
               current_database()); END $$",
        )
        .await
        .expect("repeatable read by default");
    let store = open_postgres(&url, &PostgresOptions::new())
        .await
        .expect("opens");
    let values = store
        .state::<ConformanceRecord>("values")
        .expect("keyspace");
    values.put("k", &record(0)).await.expect("put");

    // Another session updates the row and holds it.
    let mut other = admin(&url).await;
    let holding = other.transaction().await.expect("begin");
    holding
        .execute(
            "UPDATE foundation_persist_state SET envelope = envelope WHERE key = 'k'",
            &[],
        )
        .await
        .expect("update");

    // Our write takes its snapshot, then waits on the row.
    let writing = {
        let values = values.clone();
        tokio::spawn(async move { values.put("k", &record(1)).await })
    };
    wait_for_lock_waiters(&owner, 1).await;
    holding.commit().await.expect("the other update commits");

    let written = tokio::time::timeout(WAIT, writing)
        .await
        .expect("in time")
        .expect("joins");
    assert!(written.is_ok(), "retried after 40001: {written:?}");
    assert_eq!(
        values.get("k").await.expect("get").map(|value| value.id),
        Some(1)
    );
    let log = cluster.server_log();
    assert!(
        log.contains("could not serialize access due to concurrent update"),
        "PostgreSQL raised the serialization failure: {log}"
    );
    store.close().await.expect("close");
}

/// What happened to one concurrent writer.
struct Answer {
    key: String,
    id: u64,
    result: Result<(), Error>,
}

/// Installs a trigger that raises `sqlstate` for every write of a key
/// starting with `doomed`, counting its firings in a sequence.
async fn install_failing_trigger(client: &tokio_postgres::Client, sqlstate: &str, message: &str) {
    client
        .batch_execute(&format!(
            "CREATE SEQUENCE doomed_firings; \
             CREATE FUNCTION doomed() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN \
               IF starts_with(NEW.key, 'doomed') THEN \
                 PERFORM nextval('doomed_firings'); \
                 RAISE EXCEPTION '{message}' USING ERRCODE = '{sqlstate}'; \
               END IF; \
               RETURN NEW; \
             END $$; \
             CREATE TRIGGER doomed BEFORE INSERT OR UPDATE ON foundation_persist_state \
               FOR EACH ROW EXECUTE FUNCTION doomed();"
        ))
        .await
        .expect("the trigger is installed");
}

async fn firings(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM doomed_firings",
            &[],
        )
        .await
        .expect("select")
        .get(0)
}

/// Runs the doomed write and `BYSTANDERS` other writes in one group
/// commit, and returns every answer, the doomed one first.
///
/// Made certain with a gate: a write of the key `gate` (held by this test
/// in a transaction of its own) blocks the writer's batch; meanwhile each
/// write is polled once, which queues it (the backend sends a request on
/// its first poll); then the gate opens, the gate's batch commits, and the
/// writer takes every queued request into the next batch.
async fn doomed_among_bystanders(url: &str, values: &StateStore<ConformanceRecord>) -> Vec<Answer> {
    values.put("gate", &record(0)).await.expect("put");
    let mut holder = admin(url).await;
    let hold = holder.transaction().await.expect("begin");
    hold.execute(
        "SELECT 1 FROM foundation_persist_state WHERE key = 'gate' FOR UPDATE",
        &[],
    )
    .await
    .expect("lock");
    let gate = {
        let values = values.clone();
        tokio::spawn(async move { values.put("gate", &record(1)).await })
    };
    wait_for_lock_waiters(&admin(url).await, 1).await;

    let keys: Vec<(String, u64)> = std::iter::once("doomed".to_owned())
        .chain((0..BYSTANDERS).map(|writer| format!("bystander-{writer}")))
        .enumerate()
        .map(|(index, key)| (key, 100 + index as u64))
        .collect();
    let records: Vec<ConformanceRecord> = keys.iter().map(|(_, id)| record(*id)).collect();
    let mut writes: Vec<_> = keys
        .iter()
        .zip(&records)
        .map(|((key, _), value)| Box::pin(values.put(key, value)))
        .collect();
    for write in &mut writes {
        assert!(
            futures::poll!(write.as_mut()).is_pending(),
            "the write is queued behind the gate's batch"
        );
    }
    hold.commit().await.expect("the gate opens");
    tokio::time::timeout(WAIT, gate)
        .await
        .expect("in time")
        .expect("joins")
        .expect("the gate's batch commits");
    let mut answers = Vec::new();
    for ((key, id), write) in keys.iter().zip(writes) {
        let result = tokio::time::timeout(WAIT, write)
            .await
            .expect("every write is answered in time")
            .map(drop);
        answers.push(Answer {
            key: key.clone(),
            id: *id,
            result,
        });
    }
    answers
}

/// The batch failed as a whole: every request of it (the bystanders
/// too) is answered with the same classified error saying that nothing
/// was applied, and nothing of it was.
async fn check_answers(values: &StateStore<ConformanceRecord>, answers: &[Answer]) {
    let doomed = answers[0]
        .result
        .as_ref()
        .expect_err("the doomed write fails");
    for answer in answers {
        let stored = values
            .get(&answer.key)
            .await
            .expect("get")
            .map(|value| value.id);
        assert_eq!(
            stored, None,
            "{} (id {}) was not applied",
            answer.key, answer.id
        );
        let error = answer
            .result
            .as_ref()
            .expect_err("every request of the failed batch is refused");
        assert_eq!(error.code(), doomed.code(), "{}: {error}", answer.key);
        assert_eq!(
            error.context_value("sqlstate"),
            doomed.context_value("sqlstate"),
            "{}: {error}",
            answer.key
        );
        assert_eq!(
            error.context_value("commit_outcome"),
            Some("not_committed"),
            "the error says nothing was applied: {error}"
        );
    }
}

/// Serialization failures on every attempt: the writer retries the batch
/// (bounded), then answers `service_unavailable` (retryable) naming
/// 40001; nothing of the batch is applied, and the batch's other requests
/// get the same answer. Writes after it commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serialization_failures_past_the_retries_are_service_unavailable_and_apply_nothing() {
    let Some(cluster) = shared() else { return };
    let url = cluster.create_database().await.expect("a database");
    let store = open_postgres(&url, &PostgresOptions::new())
        .await
        .expect("opens");
    let values = store
        .state::<ConformanceRecord>("values")
        .expect("keyspace");
    values.put("warm", &record(0)).await.expect("put");
    let client = admin(&url).await;
    install_failing_trigger(
        &client,
        "40001",
        "could not serialize access due to read/write dependencies among transactions",
    )
    .await;

    let answers = doomed_among_bystanders(&url, &values).await;
    let doomed = answers[0]
        .result
        .as_ref()
        .expect_err("the doomed write fails");
    assert_eq!(doomed.code(), ErrorCode::SERVICE_UNAVAILABLE, "{doomed}");
    assert_eq!(doomed.category(), Category::Infrastructure, "retryable");
    assert_eq!(doomed.context_value("sqlstate"), Some("40001"), "{doomed}");
    assert_eq!(doomed.context_value("attempts"), Some("3"), "{doomed}");
    assert_eq!(firings(&client).await, 3, "the batch was tried three times");
    check_answers(&values, &answers).await;

    client
        .batch_execute("DROP TRIGGER doomed ON foundation_persist_state")
        .await
        .expect("drop");
    values
        .put("doomed", &record(7))
        .await
        .expect("the store goes on");
    store.close().await.expect("close");
}

/// A full disk: `resource_exhausted` naming 53100, not retried (a full
/// disk does not clear in milliseconds), nothing of the batch applied,
/// every other request of the batch answered alike; once there is room
/// again the store writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_resource_exhausted_not_retried_and_applies_nothing() {
    let Some(cluster) = shared() else { return };
    let url = cluster.create_database().await.expect("a database");
    let store = open_postgres(&url, &PostgresOptions::new())
        .await
        .expect("opens");
    let values = store
        .state::<ConformanceRecord>("values")
        .expect("keyspace");
    values.put("warm", &record(0)).await.expect("put");
    let client = admin(&url).await;
    install_failing_trigger(
        &client,
        "53100",
        "could not extend file: No space left on device",
    )
    .await;

    let answers = doomed_among_bystanders(&url, &values).await;
    let doomed = answers[0]
        .result
        .as_ref()
        .expect_err("the doomed write fails");
    assert_eq!(doomed.code(), ErrorCode::RESOURCE_EXHAUSTED, "{doomed}");
    assert_eq!(doomed.context_value("sqlstate"), Some("53100"), "{doomed}");
    assert_eq!(doomed.context_value("attempts"), Some("1"), "{doomed}");
    assert_eq!(firings(&client).await, 1, "not retried");
    check_answers(&values, &answers).await;

    client
        .batch_execute("DROP TRIGGER doomed ON foundation_persist_state")
        .await
        .expect("drop");
    values
        .put("doomed", &record(7))
        .await
        .expect("the store goes on");
    assert_eq!(
        values
            .get("doomed")
            .await
            .expect("get")
            .map(|value| value.id),
        Some(7)
    );
    store.close().await.expect("close");
}
