//! Failure injection (feature `fault-injection`): writes or syncs fail after
//! N operations. The failed write returns a classified error, later writes
//! fail cleanly too, and after a reopen the store is consistent and has
//! every acknowledged write.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;

use foundation_error::{Category, ErrorCode};
use foundation_persist::{FaultInjection, Store, StoreOptions};
use futures::future::join_all;

use crate::support::{Task, bounded, temp_dir};

const LANES: u64 = 4;

#[derive(Debug, Clone, Copy)]
enum Fault {
    Writes,
    Syncs,
}

/// Writes in `LANES` concurrent lanes (each a state value and a journal
/// record per batch) until the injected fault stops them; returns the
/// acknowledged (lane, n) pairs and the first error of each lane.
async fn write_until_failure(
    store: &Store,
) -> (BTreeSet<(u64, u64)>, Vec<foundation_error::Error>) {
    let state = store
        .state::<Task>("state")
        .expect("the store call succeeds");
    let journal = store
        .journal::<Task>("journal")
        .expect("the store call succeeds");
    let lanes = (0..LANES).map(|lane| {
        let (store, state, journal) = (store.clone(), state.clone(), journal.clone());
        async move {
            let mut acknowledged = Vec::new();
            for n in 0..10_000 {
                let mut batch = store.batch();
                batch
                    .put(&state, &format!("l{lane}-{n:05}"), &Task::new(n))
                    .expect("the store call succeeds")
                    .append_expecting(&journal, &format!("l{lane}"), n + 1, &Task::new(n))
                    .expect("the store call succeeds");
                match batch.commit().await {
                    Ok(_) => acknowledged.push((lane, n)),
                    Err(error) => return (acknowledged, Some(error)),
                }
            }
            (acknowledged, None)
        }
    });
    let mut all = BTreeSet::new();
    let mut errors = Vec::new();
    for (acknowledged, error) in bounded(join_all(lanes)).await {
        all.extend(acknowledged);
        errors.extend(error);
    }
    (all, errors)
}

async fn verify_after_reopen(path: &Path, acknowledged: &BTreeSet<(u64, u64)>) {
    let store = Store::open(path, &StoreOptions::new()).expect("the store reopens after the fault");
    let state = store
        .state::<Task>("state")
        .expect("the store call succeeds");
    let journal = store
        .journal::<Task>("journal")
        .expect("the store call succeeds");
    for lane in 0..LANES {
        let values = bounded(state.list(&format!("l{lane}-"), None, 10_000))
            .await
            .expect("the store call succeeds");
        let in_state: BTreeSet<u64> = values
            .iter()
            .map(|entry| {
                assert_eq!(entry.key, format!("l{lane}-{:05}", entry.value.id));
                assert_eq!(entry.value, Task::new(entry.value.id));
                entry.value.id
            })
            .collect();
        let records = bounded(journal.read(&format!("l{lane}"), 1, 10_000))
            .await
            .expect("the store call succeeds");
        let in_journal: BTreeSet<u64> = records.iter().map(|entry| entry.record.id).collect();
        assert_eq!(in_state, in_journal, "a half-applied batch in lane {lane}");
        for &(acknowledged_lane, n) in acknowledged {
            if acknowledged_lane == lane {
                assert!(in_state.contains(&n), "acknowledged l{lane}-{n} was lost");
            }
        }
        if let Some(&highest) = in_state.last() {
            assert_eq!(in_state.len() as u64, highest + 1, "a gap in lane {lane}");
        }
    }
    bounded(store.close())
        .await
        .expect("the store call succeeds");
}

async fn inject(
    fault: Fault,
    after: u64,
    kind: io::ErrorKind,
    tear: bool,
) -> Vec<foundation_error::Error> {
    let directory = temp_dir();
    let path = directory.path().join("faulty.redb");
    let faults = FaultInjection::new();
    let mut options = StoreOptions::new();
    options.fault_injection(faults.clone());
    let store = Store::open(&path, &options).expect("the store call succeeds");
    faults.tear_failed_writes(tear);
    match fault {
        Fault::Writes => faults.fail_writes_after(after, kind),
        Fault::Syncs => faults.fail_syncs_after(after, kind),
    }
    let (acknowledged, errors) = write_until_failure(&store).await;
    assert!(faults.injected_failures() > 0, "the fault was hit");
    assert_eq!(errors.len() as u64, LANES, "every lane stopped on an error");

    // Later calls fail with a classified error too, without hanging.
    let late = bounded(
        store
            .state::<Task>("state")
            .expect("the store call succeeds")
            .put("late", &Task::new(1)),
    )
    .await
    .expect_err("the call fails");
    assert_eq!(late.category(), Category::Infrastructure, "{late}");
    faults.heal();
    bounded(store.close())
        .await
        .expect("the store call succeeds");
    drop(store);

    verify_after_reopen(&path, &acknowledged).await;
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_writes_lose_no_acknowledged_write() {
    for (after, tear) in [(0, false), (7, true), (40, false), (150, true)] {
        let errors = inject(Fault::Writes, after, io::ErrorKind::Other, tear).await;
        // A failing disk is an infrastructure storage failure, never
        // `internal_error` (issue 9, defect 6).
        for error in errors {
            assert_eq!(
                error.code(),
                ErrorCode::STORAGE_FAILURE,
                "after {after} writes: {error}"
            );
            assert_eq!(error.category(), Category::Infrastructure);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_syncs_lose_no_acknowledged_write() {
    for after in [0, 3, 25] {
        let errors = inject(Fault::Syncs, after, io::ErrorKind::Other, false).await;
        assert!(!errors.is_empty());
        for error in errors {
            assert_eq!(error.code(), ErrorCode::STORAGE_FAILURE, "{error}");
        }
    }
}

/// After a failed fsync the OS may have dropped the dirty pages: the store
/// refuses writes, even once the disk works again, until it is reopened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failed_fsync_writes_are_refused_until_reopened() {
    let directory = temp_dir();
    let path = directory.path().join("fsync.redb");
    let faults = FaultInjection::new();
    let mut options = StoreOptions::new();
    options.fault_injection(faults.clone());
    let store = Store::open(&path, &options).expect("the store opens");
    let state = store.state::<Task>("state").expect("a keyspace");
    bounded(state.put("before", &Task::new(1)))
        .await
        .expect("the put succeeds");
    faults.fail_syncs_after(0, io::ErrorKind::Other);
    let failed = bounded(state.put("failed", &Task::new(2)))
        .await
        .expect_err("the fsync fails");
    assert_eq!(failed.code(), ErrorCode::STORAGE_FAILURE, "{failed}");
    faults.heal();
    let refused = bounded(state.put("after", &Task::new(3)))
        .await
        .expect_err("writes are refused until the store is reopened");
    assert_eq!(refused.code(), ErrorCode::STORAGE_FAILURE, "{refused}");
    assert_eq!(
        bounded(state.get("before"))
            .await
            .expect("reads still work"),
        Some(Task::new(1))
    );
    bounded(store.close()).await.expect("the store closes");
    drop((state, store));

    let store = Store::open(&path, &StoreOptions::new()).expect("the store reopens");
    let state = store.state::<Task>("state").expect("a keyspace");
    assert_eq!(
        bounded(state.get("before"))
            .await
            .expect("the read succeeds"),
        Some(Task::new(1))
    );
    bounded(state.put("after", &Task::new(3)))
        .await
        .expect("a reopened store writes again");
    bounded(store.close()).await.expect("the store closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_resource_exhausted() {
    let errors = inject(Fault::Writes, 20, io::ErrorKind::StorageFull, false).await;
    assert!(
        errors
            .iter()
            .any(|error| error.code() == ErrorCode::RESOURCE_EXHAUSTED),
        "{errors:?}"
    );
    for error in &errors {
        assert!(
            [ErrorCode::RESOURCE_EXHAUSTED, ErrorCode::STORAGE_FAILURE].contains(&error.code()),
            "{error}"
        );
    }
    let errors = inject(Fault::Syncs, 2, io::ErrorKind::StorageFull, false).await;
    assert!(
        errors
            .iter()
            .any(|error| error.code() == ErrorCode::RESOURCE_EXHAUSTED)
    );
}
