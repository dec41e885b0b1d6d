//! State keyspaces: get, put, delete, list, compare-and-set, versions,
//! input validation, and the closed store.

use foundation_error::{Category, ErrorCode};
use std::time::Duration;

use foundation_persist::{Durability, Store, StoreOptions};

use crate::support::{Task, bounded, each_kind, temp_dir};

#[tokio::test]
async fn put_get_delete_round_trip() {
    let store = Store::open_in_memory(&StoreOptions::new()).unwrap();
    let tasks = store.state::<Task>("tasks").unwrap();
    assert_eq!(bounded(tasks.get("t1")).await.unwrap(), None);
    let version = bounded(tasks.put("t1", &Task::new(1))).await.unwrap();
    let entry = bounded(tasks.get_versioned("t1")).await.unwrap().unwrap();
    assert_eq!(entry.version, version);
    assert_eq!(entry.value, Task::new(1));
    assert!(bounded(tasks.delete("t1")).await.unwrap());
    assert!(!bounded(tasks.delete("t1")).await.unwrap());
    assert_eq!(bounded(tasks.get("t1")).await.unwrap(), None);
    bounded(store.close()).await.unwrap();
}

#[tokio::test]
async fn versions_grow_and_never_repeat_across_delete() {
    for (kind, store, _directory) in each_kind() {
        eprintln!("store kind: {kind}");
        let tasks = store.state::<Task>("tasks").unwrap();
        let first = bounded(tasks.put("k", &Task::new(1))).await.unwrap();
        let second = bounded(tasks.put("k", &Task::new(2))).await.unwrap();
        assert!(second > first);
        bounded(tasks.delete("k")).await.unwrap();
        let third = bounded(tasks.put("k", &Task::new(3))).await.unwrap();
        assert!(third > second);
        // A compare-and-set holding the version from before the delete fails.
        let error = bounded(tasks.compare_and_set("k", Some(first), &Task::new(4)))
            .await
            .unwrap_err();
        assert_eq!(error.code(), ErrorCode::VERSION_CONFLICT);
    }
}

#[tokio::test]
async fn compare_and_set_and_delete_check_versions() {
    for (kind, store, _directory) in each_kind() {
        eprintln!("store kind: {kind}");
        let tasks = store.state::<Task>("tasks").unwrap();
        let created = bounded(tasks.compare_and_set("k", None, &Task::new(1)))
            .await
            .unwrap();
        let again = bounded(tasks.compare_and_set("k", None, &Task::new(1)))
            .await
            .unwrap_err();
        assert_eq!(again.code(), ErrorCode::VERSION_CONFLICT);
        assert_eq!(again.context_value("keyspace"), Some("tasks"));
        assert_eq!(again.context_value("key"), Some("k"));
        assert_eq!(again.context_value("expected_version"), Some("absent"));

        let updated = bounded(tasks.compare_and_set("k", Some(created), &Task::new(2)))
            .await
            .unwrap();
        let stale = bounded(tasks.compare_and_delete("k", created))
            .await
            .unwrap_err();
        assert_eq!(stale.code(), ErrorCode::VERSION_CONFLICT);
        assert_eq!(bounded(tasks.get("k")).await.unwrap(), Some(Task::new(2)));
        bounded(tasks.compare_and_delete("k", updated))
            .await
            .unwrap();
        assert_eq!(bounded(tasks.get("k")).await.unwrap(), None);
        let absent = bounded(tasks.compare_and_set("k", Some(updated), &Task::new(3)))
            .await
            .unwrap_err();
        assert_eq!(absent.code(), ErrorCode::VERSION_CONFLICT);
    }
}

#[tokio::test]
async fn list_by_prefix_pages_in_key_order() {
    let store = Store::open_in_memory(&StoreOptions::new()).unwrap();
    let tasks = store.state::<Task>("tasks").unwrap();
    let mut batch = store.batch();
    for id in 0..25 {
        batch
            .put(&tasks, &format!("agent-{id:02}"), &Task::new(id))
            .unwrap();
    }
    batch.put(&tasks, "agenda", &Task::new(99)).unwrap();
    batch.put(&tasks, "other-1", &Task::new(100)).unwrap();
    bounded(batch.commit()).await.unwrap();

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = bounded(tasks.list("agent-", after.as_deref(), 10))
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        after = page.last().map(|entry| entry.key.clone());
        seen.extend(page.into_iter().map(|entry| (entry.key, entry.value.id)));
    }
    let expected: Vec<_> = (0..25).map(|id| (format!("agent-{id:02}"), id)).collect();
    assert_eq!(seen, expected);
    assert_eq!(bounded(tasks.list("", None, 100)).await.unwrap().len(), 27);
    assert!(
        bounded(tasks.list("zzz", None, 10))
            .await
            .unwrap()
            .is_empty()
    );
    let too_many = bounded(tasks.list("", None, 1_000_000)).await.unwrap_err();
    assert_eq!(too_many.code(), ErrorCode::INVALID_INPUT);
}

#[tokio::test]
async fn keyspaces_are_separate() {
    let store = Store::open_in_memory(&StoreOptions::new()).unwrap();
    let left = store.state::<Task>("left").unwrap();
    let right = store.state::<Task>("right").unwrap();
    bounded(left.put("k", &Task::new(1))).await.unwrap();
    assert_eq!(bounded(right.get("k")).await.unwrap(), None);
}

#[tokio::test]
async fn bad_input_is_refused_with_invalid_input() {
    let mut options = StoreOptions::new();
    options.max_value_bytes(64);
    let store = Store::open_in_memory(&options).unwrap();
    assert_eq!(
        store.state::<Task>("Bad Name").unwrap_err().code(),
        ErrorCode::INVALID_INPUT
    );
    let tasks = store.state::<Task>("tasks").unwrap();
    for error in [
        bounded(tasks.put("", &Task::new(1))).await.unwrap_err(),
        bounded(tasks.put(&"k".repeat(2000), &Task::new(1)))
            .await
            .unwrap_err(),
        bounded(tasks.get("")).await.unwrap_err(),
        bounded(tasks.put(
            "big",
            &Task {
                id: 1,
                name: String::new(),
                payload: vec![7; 1000],
            },
        ))
        .await
        .unwrap_err(),
    ] {
        assert_eq!(error.code(), ErrorCode::INVALID_INPUT, "{error}");
        assert_eq!(error.category(), Category::Validation);
    }
    assert!(
        bounded(store.state::<Task>("tasks").unwrap().list("", None, 10))
            .await
            .unwrap()
            .is_empty(),
        "nothing written"
    );
}

#[tokio::test]
async fn a_closed_store_answers_service_unavailable() {
    let directory = temp_dir();
    let path = directory.path().join("nested/dirs/store.redb");
    let store = Store::open(&path, &StoreOptions::new()).unwrap();
    let file = store.file().unwrap();
    assert_eq!(file.path(), path.as_path());
    let tasks = store.state::<Task>("tasks").unwrap();
    bounded(tasks.put("k", &Task::new(1))).await.unwrap();
    bounded(store.close()).await.unwrap();
    assert!(store.is_closed());
    for error in [
        bounded(tasks.put("k", &Task::new(2))).await.unwrap_err(),
        bounded(tasks.get("k")).await.map(drop).unwrap_err(),
        bounded(file.compact()).await.map(drop).unwrap_err(),
        bounded(file.backup(directory.path().join("b.redb")))
            .await
            .map(drop)
            .unwrap_err(),
    ] {
        assert_eq!(error.code(), ErrorCode::SERVICE_UNAVAILABLE, "{error}");
    }
    bounded(store.close()).await.unwrap();

    // The file was released: it reopens, with the write.
    let reopened = Store::open(&path, &StoreOptions::new()).unwrap();
    let tasks = reopened.state::<Task>("tasks").unwrap();
    assert_eq!(bounded(tasks.get("k")).await.unwrap(), Some(Task::new(1)));
}

#[tokio::test]
async fn dropping_the_last_handle_commits_and_releases_the_file() {
    let directory = temp_dir();
    let path = directory.path().join("store.redb");
    {
        let store = Store::open(&path, &StoreOptions::new()).unwrap();
        let tasks = store.state::<Task>("tasks").unwrap();
        bounded(tasks.put("k", &Task::new(5))).await.unwrap();
        drop(store);
        // `tasks` still holds the store open.
        bounded(tasks.put("j", &Task::new(6))).await.unwrap();
    }
    let store = Store::open(&path, &StoreOptions::new()).unwrap();
    let tasks = store.state::<Task>("tasks").unwrap();
    assert_eq!(bounded(tasks.get("j")).await.unwrap(), Some(Task::new(6)));
}

#[tokio::test]
async fn deferred_durability_acknowledges_at_once_and_flushes_at_close() {
    let directory = temp_dir();
    let path = directory.path().join("deferred.redb");
    let mut options = StoreOptions::new();
    options.durability(Durability::Deferred {
        flush_after: Duration::from_secs(3600),
    });
    let store = Store::open(&path, &options).unwrap();
    let tasks = store.state::<Task>("tasks").unwrap();
    for id in 0..20 {
        bounded(tasks.put(&format!("k{id:02}"), &Task::new(id)))
            .await
            .unwrap();
    }
    assert_eq!(bounded(tasks.list("", None, 100)).await.unwrap().len(), 20);
    // Compaction makes the deferred commits durable first.
    bounded(store.file().unwrap().compact()).await.unwrap();
    bounded(tasks.put("after", &Task::new(99))).await.unwrap();
    bounded(store.close()).await.unwrap();

    let store = Store::open(&path, &StoreOptions::new()).unwrap();
    let tasks = store.state::<Task>("tasks").unwrap();
    assert_eq!(bounded(tasks.list("", None, 100)).await.unwrap().len(), 21);
}
