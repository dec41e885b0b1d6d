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
