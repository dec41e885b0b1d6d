//! Many concurrent writers: all acknowledged writes are readable, writes
//! share commits, and futures are `Send`.

use std::time::Duration;

use foundation_error::ErrorCode;
use foundation_persist::{Store, StoreOptions};
use futures::future::join_all;

use crate::support::{Task, bounded, temp_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_writers_are_all_readable() {
    let directory = temp_dir();
    let path = directory.path().join("store.redb");
    let store = Store::open(&path, &StoreOptions::new()).unwrap();
    let tasks = store.state::<Task>("tasks").unwrap();
    let journal = store.journal::<Task>("log").unwrap();

    let writes = (0..1000u64).map(|id| {
        let tasks = tasks.clone();
        let journal = journal.clone();
        async move {
            if id % 2 == 0 {
                tasks
                    .put(&format!("task-{id:04}"), &Task::new(id))
                    .await
                    .map(drop)
            } else {
                journal
                    .append("shared-stream", &Task::new(id))
                    .await
                    .map(drop)
            }
        }
    });
    for result in bounded(join_all(writes)).await {
        result.unwrap();
    }

    let stored = bounded(tasks.list("task-", None, 1000)).await.unwrap();
    assert_eq!(stored.len(), 500);
    for entry in &stored {
        assert_eq!(entry.key, format!("task-{:04}", entry.value.id));
        assert_eq!(entry.value, Task::new(entry.value.id));
    }
    let appended = bounded(journal.read("shared-stream", 1, 1000))
        .await
        .unwrap();
    assert_eq!(appended.len(), 500);
    let sequences: Vec<_> = appended.iter().map(|entry| entry.sequence).collect();
    assert_eq!(
        sequences,
        (1..=500).collect::<Vec<_>>(),
        "gapless, in order"
    );
    let mut ids: Vec<_> = appended.iter().map(|entry| entry.record.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..1000).filter(|id| id % 2 == 1).collect::<Vec<_>>());
    let mut versions: Vec<_> = stored.iter().map(|entry| entry.version).collect();
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(versions.len(), 500, "every write got its own version");

    // And all of it survives a reopen.
    bounded(store.close()).await.unwrap();
    let store = Store::open(&path, &StoreOptions::new()).unwrap();
    let tasks = store.state::<Task>("tasks").unwrap();
    assert_eq!(
        bounded(tasks.list("task-", None, 1000))
            .await
            .unwrap()
            .len(),
        500
    );
}

#[tokio::test]
async fn a_write_that_waits_past_its_timeout_is_not_applied() {
    let mut options = StoreOptions::new();
    options.write_timeout(Duration::ZERO);
    let directory = temp_dir();
    let store = Store::open(directory.path().join("store.redb"), &options).unwrap();
    let tasks = store.state::<Task>("tasks").unwrap();
    let error = bounded(tasks.put("k", &Task::new(1))).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::TIMEOUT);
    assert!(error.is_retryable());
    assert_eq!(bounded(tasks.get("k")).await.unwrap(), None);
}

/// An in-memory store writes inline, so under paused tokio time a write
/// completes in its first poll and never lets the clock auto-advance to a
/// pending timer.
#[tokio::test(start_paused = true)]
async fn in_memory_stores_never_move_paused_time() {
    use futures::FutureExt;
    let store = Store::open_in_memory(&StoreOptions::new()).unwrap();
    let tasks = store.state::<Task>("tasks").unwrap();
    let journal = store.journal::<Task>("log").unwrap();
    // A registered timer is what paused time would jump to while a write
    // waited on another thread (as a file store's write does).
    let timer = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(timer);
    assert!(
        (&mut timer).now_or_never().is_none(),
        "the timer is registered"
    );
    let started = tokio::time::Instant::now();
    for id in 0..20 {
        tasks.put(&format!("k{id}"), &Task::new(id)).await.unwrap();
        journal.append("s", &Task::new(id)).await.unwrap();
        assert!(
            tasks.get("k0").now_or_never().is_some(),
            "a read completes in one poll"
        );
        assert!(
            tasks.put("k0", &Task::new(0)).now_or_never().is_some(),
            "a write completes in one poll"
        );
    }
    let mut batch = store.batch();
    batch.put(&tasks, "b", &Task::new(1)).unwrap();
    batch.commit().await.unwrap();
    assert!(store.file().is_none(), "an in-memory store has no file");
    assert_eq!(
        tokio::time::Instant::now(),
        started,
        "the clock did not move"
    );
    assert!(
        (&mut timer).now_or_never().is_none(),
        "the timer is still pending"
    );
    store.close().await.unwrap();
    assert_eq!(tokio::time::Instant::now(), started);
}

#[tokio::test]
async fn store_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let store = Store::open_in_memory(&StoreOptions::new()).unwrap();
    let tasks = store.state::<Task>("tasks").unwrap();
    let journal = store.journal::<Task>("log").unwrap();
    let task = Task::new(1);
    assert_send(&tasks.put("k", &task));
    assert_send(&tasks.get("k"));
    assert_send(&tasks.list("", None, 1));
    assert_send(&journal.append("s", &task));
    assert_send(&journal.read("s", 1, 1));
    assert_send(&store.batch().commit());
    assert_send(&store.close());
}
