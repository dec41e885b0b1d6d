//! Opening: the schema is created once, kept across opens, and a newer
//! one is refused; bad addresses are classified errors.

use std::time::Duration;

use foundation_error::ErrorCode;
use foundation_persist::conformance::ConformanceRecord;
use foundation_persist_postgres::{PostgresOptions, SCHEMA_VERSION, open_postgres};

use crate::cluster::shared;

fn record(id: u64) -> ConformanceRecord {
    ConformanceRecord {
        id,
        text: format!("record-{id}"),
        bytes: vec![1, 2, 3],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_and_versions_survive_reopening() {
    let Some(cluster) = shared() else { return };
    let url = cluster.create_database().await.expect("a database");
    let store = open_postgres(&url, &PostgresOptions::new())
        .await
        .expect("opens");
    let values = store
        .state::<ConformanceRecord>("values")
        .expect("keyspace");
    let journal = store.journal::<ConformanceRecord>("log").expect("keyspace");
    let version = values.put("k", &record(1)).await.expect("put");
    journal.append("s", &record(2)).await.expect("append");
    store.close().await.expect("close");

    let store = open_postgres(&url, &PostgresOptions::new())
        .await
        .expect("reopens");
    let values = store
        .state::<ConformanceRecord>("values")
        .expect("keyspace");
    let journal = store.journal::<ConformanceRecord>("log").expect("keyspace");
    let entry = values
        .get_versioned("k")
        .await
        .expect("get")
        .expect("still there");
    assert_eq!((entry.version, entry.value), (version, record(1)));
    let later = values.put("k", &record(3)).await.expect("put");
    assert!(later > version, "versions keep growing across opens");
    assert_eq!(journal.append("s", &record(4)).await.expect("append"), 2);
    store.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_refused_and_left_alone() {
    let Some(cluster) = shared() else { return };
    let url = cluster.create_database().await.expect("a database");
    let store = open_postgres(&url, &PostgresOptions::new())
        .await
        .expect("opens");
    store.close().await.expect("close");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    let driver = tokio::spawn(connection);
    let newer = SCHEMA_VERSION + 1;
    client
        .execute(
            "UPDATE foundation_persist_schema SET version = $1",
            &[&newer],
        )
        .await
        .expect("update");
    let error = open_postgres(&url, &PostgresOptions::new())
        .await
        .expect_err("a newer schema");
    assert_eq!(error.code(), ErrorCode::UNSUPPORTED_VERSION, "{error}");
    let row = client
        .query_one("SELECT version FROM foundation_persist_schema", &[])
        .await
        .expect("select");
    assert_eq!(
        row.get::<_, i32>(0),
        newer,
        "the refused database is untouched"
    );
    drop(client);
    driver
        .await
        .expect("joins")
        .expect("the connection ends cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_addresses_are_classified() {
    let Some(cluster) = shared() else { return };
    let malformed = open_postgres("host='unterminated", &PostgresOptions::new())
        .await
        .expect_err("malformed");
    assert_eq!(
        malformed.code(),
        ErrorCode::INVALID_CONFIG_VALUE,
        "{malformed}"
    );

    let missing = open_postgres(&cluster.url("no_such_database"), &PostgresOptions::new())
        .await
        .expect_err("no such database");
    assert_eq!(missing.code(), ErrorCode::INVALID_CONFIG_VALUE, "{missing}");
    assert_eq!(missing.context_value("sqlstate"), Some("3D000"));

    // A port nothing listens on: the socket file does not exist.
    let mut options = PostgresOptions::new();
    options.connect_timeout(Duration::from_secs(2));
    let unreachable = open_postgres(
        &format!(
            "host=/nonexistent-socket-dir port={} user=postgres",
            cluster.port()
        ),
        &options,
    )
    .await
    .expect_err("nothing listens");
    assert_eq!(
        unreachable.code(),
        ErrorCode::NETWORK_ERROR,
        "{unreachable}"
    );
    assert!(unreachable.is_retryable());

    let invalid = open_postgres(
        &cluster.url("postgres"),
        PostgresOptions::new().max_connections(1),
    )
    .await
    .expect_err("one connection is too few");
    assert_eq!(invalid.code(), ErrorCode::INVALID_CONFIG_VALUE, "{invalid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_database_is_migrated_to_leases_and_keeps_its_data() {
    let Some(cluster) = shared() else { return };
    let url = cluster.create_database().await.expect("a database");
    let store = open_postgres(&url, &PostgresOptions::new())
        .await
        .expect("opens");
    let values = store
        .state::<ConformanceRecord>("values")
        .expect("keyspace");
    let version = values.put("k", &record(1)).await.expect("put");
    store.close().await.expect("close");
    // Turn it back into a version 1 database: no lease table, no batch
    // functions.
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    let driver = tokio::spawn(connection);
    client
        .batch_execute(
            "DROP TABLE foundation_persist_leases; \
             DROP FUNCTION foundation_persist_apply; \
             DROP FUNCTION foundation_persist_apply_op; \
             DROP SEQUENCE foundation_persist_lease_tokens; \
             UPDATE foundation_persist_schema SET version = 1",
        )
        .await
        .expect("downgrade");

    let store = open_postgres(&url, &PostgresOptions::new())
        .await
        .expect("a version 1 database opens");
    let row = client
        .query_one("SELECT version FROM foundation_persist_schema", &[])
        .await
        .expect("select");
    assert_eq!(row.get::<_, i32>(0), SCHEMA_VERSION, "migrated");
    assert_eq!(SCHEMA_VERSION, 4);
    let values = store
        .state::<ConformanceRecord>("values")
        .expect("keyspace");
    let entry = values
        .get_versioned("k")
        .await
        .expect("get")
        .expect("the data is kept");
    assert_eq!(entry.version, version);
    let lease = store
        .leases()
        .acquire("workflow/1", "a", Duration::from_secs(10))
        .await
        .expect("the lease table exists");
    assert_eq!(lease.token, 1);
    let written = values
        .put("k", &record(2))
        .await
        .expect("the batch functions exist");
    assert!(written > version);
    store.close().await.expect("close");
    drop(client);
    driver
        .await
        .expect("joins")
        .expect("the connection ends cleanly");
}
