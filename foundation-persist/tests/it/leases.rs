//! Leases on the built-in stores beyond the conformance suite: expiry on
//! the store's clock (a manual clock drives it), leases surviving a
//! reopen, and a restore that never takes tokens back.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use foundation_error::ErrorCode;
use foundation_error::clock::{Clock, ManualClock};
use foundation_persist::{Store, StoreOptions};

use crate::support::{Task, bounded, temp_dir};

fn options_with(clock: &Arc<ManualClock>) -> StoreOptions {
    let mut options = StoreOptions::new();
    options.clock(Arc::clone(clock) as _);
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_expire_on_the_store_clock() {
    let directory = temp_dir();
    let clock = Arc::new(ManualClock::starting_at(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    ));
    let options = options_with(&clock);
    let stores = [
        Store::open_in_memory(&options).expect("memory"),
        Store::open(directory.path().join("leases.redb"), &options).expect("file"),
    ];
    for store in stores {
        let leases = store.leases();
        let ttl = Duration::from_secs(10);
        let lease = bounded(leases.acquire("workflow/1", "a", ttl))
            .await
            .expect("acquire");
        assert_eq!(
            lease.expires_at,
            clock.wall() + ttl,
            "expiry is on the store clock"
        );
        clock.advance(Duration::from_secs(9));
        let error = bounded(leases.acquire("workflow/1", "b", ttl))
            .await
            .expect_err("still live");
        assert_eq!(error.code(), ErrorCode::ALREADY_EXISTS);
        assert!(
            bounded(leases.claim_expired("workflow/", "b", ttl, 10))
                .await
                .expect("claim")
                .is_empty()
        );
        clock.advance(Duration::from_secs(1));
        let claimed = bounded(leases.claim_expired("workflow/", "b", ttl, 10))
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1, "expired at its ttl on the store clock");
        assert!(claimed[0].token > lease.token);
        bounded(store.close()).await.expect("close");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_survive_reopening_and_restore_never_takes_tokens_back() {
    let directory = temp_dir();
    let path = directory.path().join("store.redb");
    let backup = directory.path().join("backup.redb");
    let ttl = Duration::from_secs(60);
    let store = Store::open(&path, &StoreOptions::new()).expect("opens");
    let values = store.state::<Task>("tasks").expect("keyspace");
    let old = bounded(store.leases().acquire("workflow/r", "a", ttl))
        .await
        .expect("acquire");
    bounded(values.put("t", &Task::new(1))).await.expect("put");
    bounded(store.file().expect("a file").backup(&backup))
        .await
        .expect("backup");
    let newer = bounded(store.leases().acquire("workflow/r", "a", ttl))
        .await
        .expect("re-grant");
    bounded(store.close()).await.expect("close");

    let store = Store::open(&path, &StoreOptions::new()).expect("reopens");
    let listed = bounded(store.leases().list("workflow/", None, 10))
        .await
        .expect("list");
    assert_eq!(listed, vec![newer.clone()], "leases are durable");
    bounded(store.file().expect("a file").restore(&backup))
        .await
        .expect("restore");
    let mut stale = store.batch();
    stale
        .fence(&old)
        .expect("fence")
        .put(
            &store.state::<Task>("tasks").expect("keyspace"),
            "t",
            &Task::new(2),
        )
        .expect("op");
    let error = bounded(stale.commit())
        .await
        .expect_err("the restore kept the live lease table");
    assert_eq!(error.code(), ErrorCode::VERSION_CONFLICT, "{error}");
    let mut current = store.batch();
    current
        .fence(&newer)
        .expect("fence")
        .put(
            &store.state::<Task>("tasks").expect("keyspace"),
            "t",
            &Task::new(3),
        )
        .expect("op");
    bounded(current.commit())
        .await
        .expect("the live token still fences in");
    bounded(store.close()).await.expect("close");
}

/// The rows of a store file's lease table, read with redb itself.
fn lease_rows(path: &std::path::Path) -> Vec<(String, u64, String)> {
    const LEASES: redb::TableDefinition<'static, &str, (u64, u64, &str)> =
        redb::TableDefinition::new("foundation/leases");
    let database = redb::Database::open(path).expect("the store file opens in redb");
    let read = redb::ReadableDatabase::begin_read(&database).expect("a read begins");
    let table = read.open_table(LEASES).expect("the lease table");
    redb::ReadableTable::iter(&table)
        .expect("iterates")
        .map(|entry| {
            let (name, value) = entry.expect("a row");
            let (token, _, owner) = value.value();
            (name.value().to_owned(), token, owner.to_owned())
        })
        .collect()
}

/// Lease churn (acquire, release, many names) leaves no rows behind, and
/// a name released and acquired again still gets a larger token: tokens
/// come from the store's counter, not from the row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_leases_leave_no_rows_and_their_tokens_never_repeat() {
    let directory = temp_dir();
    let path = directory.path().join("churn.redb");
    let store = Store::open(&path, &StoreOptions::new()).expect("opens");
    let leases = store.leases();
    let ttl = Duration::from_secs(60);
    let mut largest = 0;
    for round in 0..3 {
        for index in 0..50 {
            let lease = bounded(leases.acquire(&format!("workflow/{index}"), "a", ttl))
                .await
                .expect("acquire");
            assert!(lease.token > largest, "round {round}: tokens only grow");
            largest = lease.token;
            bounded(leases.release(&lease)).await.expect("release");
        }
    }
    let kept = bounded(leases.acquire("workflow/kept", "a", ttl))
        .await
        .expect("acquire");
    bounded(store.close()).await.expect("close");
    assert_eq!(
        lease_rows(&path),
        vec![("workflow/kept".to_owned(), kept.token, "a".to_owned())],
        "only the held lease has a row"
    );
}

/// A store file written before the token counter existed kept released
/// rows (empty owner) to remember their tokens: its first lease operation
/// starts the counter above every stored token and deletes those rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_lease_table_is_brought_to_the_counter() {
    const LEASES: redb::TableDefinition<'static, &str, (u64, u64, &str)> =
        redb::TableDefinition::new("foundation/leases");
    const SYSTEM: redb::TableDefinition<'static, &str, u64> =
        redb::TableDefinition::new("foundation/system");
    let directory = temp_dir();
    let path = directory.path().join("old.redb");
    let store = Store::open(&path, &StoreOptions::new()).expect("opens");
    let ttl = Duration::from_secs(60);
    let held = bounded(store.leases().acquire("workflow/held", "a", ttl))
        .await
        .expect("acquire");
    bounded(store.close()).await.expect("close");
    {
        // What the old code left: a released row with a large token, and
        // no counter.
        let database = redb::Database::open(&path).expect("opens in redb");
        let write = database.begin_write().expect("a write begins");
        {
            let mut leases = write.open_table(LEASES).expect("the lease table");
            leases.insert("workflow/old", (40, 0, "")).expect("insert");
            let mut system = write.open_table(SYSTEM).expect("the system table");
            system.remove("lease_token").expect("remove");
        }
        write.commit().expect("commit");
    }

    let store = Store::open(&path, &StoreOptions::new()).expect("reopens");
    let again = bounded(store.leases().acquire("workflow/old", "b", ttl))
        .await
        .expect("acquire");
    assert_eq!(again.token, 41, "above every stored token");
    bounded(store.close()).await.expect("close");
    let mut rows = lease_rows(&path);
    rows.sort();
    assert_eq!(
        rows,
        vec![
            ("workflow/held".to_owned(), held.token, "a".to_owned()),
            ("workflow/old".to_owned(), 41, "b".to_owned()),
        ]
    );
}
