//! Backup of a live store, restore, and compaction.

use foundation_error::ErrorCode;
use foundation_persist::{Store, StoreOptions};
use futures::future::join_all;

use crate::support::{Task, bounded, temp_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_is_a_consistent_store_of_the_moment_it_was_taken() {
    let directory = temp_dir();
    let store = Store::open(directory.path().join("live.redb"), &StoreOptions::new()).unwrap();
    let tasks = store.state::<Task>("tasks").unwrap();
    let journal = store.journal::<Task>("log").unwrap();
    for id in 0..50 {
        bounded(tasks.put(&format!("t{id:02}"), &Task::new(id)))
            .await
            .unwrap();
        bounded(journal.append("s", &Task::new(id))).await.unwrap();
    }
    bounded(store.metadata().put("note", &Task::new(1000)))
        .await
        .unwrap();
    let note_version = bounded(store.metadata().get_versioned::<Task>("note"))
        .await
        .unwrap()
        .unwrap()
        .version;

    let backup_path = directory.path().join("backups/first.redb");
    let report = bounded(store.file().unwrap().backup(&backup_path))
        .await
        .unwrap();
    assert_eq!(report.path, backup_path);
    assert!(
        report.revision >= note_version.get(),
        "the backup's reservation covers every version in it"
    );
    // 51 state values, 50 records, 1 stream head, format and revision.
    assert_eq!(report.entries, 51 + 50 + 1 + 2);

    // The live store goes on; the backup does not change.
    bounded(tasks.put("after", &Task::new(99))).await.unwrap();
    let again = bounded(store.file().unwrap().backup(&backup_path))
        .await
        .unwrap_err();
    assert_eq!(again.code(), ErrorCode::ALREADY_EXISTS);

    let copy = Store::open(&backup_path, &StoreOptions::new()).unwrap();
    let copied = copy.state::<Task>("tasks").unwrap();
    assert_eq!(bounded(copied.list("", None, 100)).await.unwrap().len(), 50);
    assert_eq!(bounded(copied.get("after")).await.unwrap(), None);
    assert_eq!(
        bounded(copy.journal::<Task>("log").unwrap().read("s", 1, 100))
            .await
            .unwrap()
            .len(),
        50
    );
    assert_eq!(
        bounded(copy.metadata().get::<Task>("note")).await.unwrap(),
        Some(Task::new(1000))
    );
    let copied_note = bounded(copy.metadata().get_versioned::<Task>("note"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(copied_note.version, note_version, "versions are copied");
    let leftovers: Vec<_> = std::fs::read_dir(directory.path().join("backups"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no partial file is left: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_on_while_a_backup_runs() {
    let directory = temp_dir();
    let store = Store::open(directory.path().join("live.redb"), &StoreOptions::new()).unwrap();
    let tasks = store.state::<Task>("tasks").unwrap();
    let mut batch = store.batch();
    for id in 0..2000 {
        batch
            .put(&tasks, &format!("seed-{id:05}"), &Task::new(id))
            .unwrap();
    }
    bounded(batch.commit()).await.unwrap();

    let file = store.file().unwrap();
    let backup = file.backup(directory.path().join("copy.redb"));
    let writes = join_all((0..20).map(|id| {
        let tasks = tasks.clone();
        async move { tasks.put(&format!("during-{id}"), &Task::new(id)).await }
    }));
    let (backup, writes) = bounded(async { tokio::join!(backup, writes) }).await;
    let report = backup.unwrap();
    let written: Vec<_> = writes
        .into_iter()
        .enumerate()
        .map(|(id, write)| (format!("during-{id}"), write.unwrap()))
        .collect();
    // The copy holds exactly the writes up to its snapshot: a prefix of
    // the commit order (versions grow with it), none after.
    let copy = Store::open(&report.path, &StoreOptions::new()).unwrap();
    let copied = copy.state::<Task>("tasks").unwrap();
    let entries = bounded(copied.list("", None, 10_000)).await.unwrap();
    assert!(entries.len() >= 2000);
    assert!(
        entries
            .iter()
            .all(|entry| entry.version.get() <= report.revision)
    );
    let newest_copied = entries
        .iter()
        .filter(|entry| entry.key.starts_with("during-"))
        .map(|entry| entry.version)
        .max();
    for (key, version) in &written {
        let in_copy = entries.iter().any(|entry| &entry.key == key);
        let before_snapshot = newest_copied.is_some_and(|newest| *version <= newest);
        assert_eq!(
            in_copy, before_snapshot,
            "{key} ({version}): every write up to the snapshot, none after"
        );
    }
    assert_eq!(
        entries.len(),
        2000 + written
            .iter()
            .filter(|(_, version)| newest_copied.is_some_and(|newest| *version <= newest))
            .count()
    );
}

#[tokio::test]
async fn restore_replaces_the_contents_and_versions_keep_growing() {
    let directory = temp_dir();
    let store = Store::open(directory.path().join("live.redb"), &StoreOptions::new()).unwrap();
    let tasks = store.state::<Task>("tasks").unwrap();
    let journal = store.journal::<Task>("log").unwrap();
    let kept = bounded(tasks.put("kept", &Task::new(1))).await.unwrap();
    bounded(journal.append("s", &Task::new(1))).await.unwrap();
    let backup_path = directory.path().join("backup.redb");
    bounded(store.file().unwrap().backup(&backup_path))
        .await
        .unwrap();

    bounded(tasks.put("kept", &Task::new(2))).await.unwrap();
    let added_later = bounded(tasks.put("added-later", &Task::new(3)))
        .await
        .unwrap();
    bounded(journal.append("s", &Task::new(2))).await.unwrap();
    bounded(
        store
            .journal::<Task>("other-log")
            .unwrap()
            .append("x", &Task::new(4)),
    )
    .await
    .unwrap();
    let revision_before = added_later.get();

    let restored = bounded(store.file().unwrap().restore(&backup_path))
        .await
        .unwrap();
    assert!(restored > 0);
    let entry = bounded(tasks.get_versioned("kept")).await.unwrap().unwrap();
    assert_eq!(entry.value, Task::new(1));
    assert_eq!(entry.version, kept);
    assert_eq!(bounded(tasks.get("added-later")).await.unwrap(), None);
    assert_eq!(bounded(journal.read("s", 1, 10)).await.unwrap().len(), 1);
    assert!(
        bounded(store.journal::<Task>("other-log").unwrap().read("x", 1, 10))
            .await
            .unwrap()
            .is_empty()
    );
    let next = bounded(tasks.put("kept", &Task::new(5))).await.unwrap();
    assert!(
        next.get() > revision_before,
        "no version is handed out twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_what_is_not_a_backup() {
    let directory = temp_dir();
    let store = Store::open(directory.path().join("live.redb"), &StoreOptions::new()).unwrap();
    let missing = bounded(
        store
            .file()
            .unwrap()
            .restore(directory.path().join("missing.redb")),
    )
    .await
    .unwrap_err();
    assert_eq!(missing.code(), ErrorCode::DATA_NOT_FOUND);
    let garbage = directory.path().join("garbage.redb");
    std::fs::write(&garbage, vec![0x5a; 10_000]).unwrap();
    let error = bounded(store.file().unwrap().restore(&garbage))
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::DATA_CORRUPTION, "{error}");
    let opened = Store::open(&garbage, &StoreOptions::new()).unwrap_err();
    assert_eq!(opened.code(), ErrorCode::DATA_CORRUPTION, "{opened}");

    // The backup of an empty store restores: it holds only the format.
    let other = directory.path().join("empty-backup.redb");
    let empty = Store::open(directory.path().join("empty.redb"), &StoreOptions::new()).unwrap();
    let backup = bounded(empty.file().unwrap().backup(&other)).await.unwrap();
    assert_eq!(
        bounded(store.file().unwrap().restore(&backup.path))
            .await
            .unwrap(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_shrinks_the_file_and_keeps_the_data() {
    let directory = temp_dir();
    let store = Store::open(directory.path().join("live.redb"), &StoreOptions::new()).unwrap();
    let tasks = store.state::<Task>("tasks").unwrap();
    let big = |id: u64| Task {
        id,
        name: "big".into(),
        payload: vec![(id % 251) as u8; 16 * 1024],
    };
    let mut batch = store.batch();
    for id in 0..200 {
        batch.put(&tasks, &format!("k{id:04}"), &big(id)).unwrap();
    }
    bounded(batch.commit()).await.unwrap();
    let mut batch = store.batch();
    for id in 10..200 {
        batch.delete(&tasks, &format!("k{id:04}")).unwrap();
    }
    bounded(batch.commit()).await.unwrap();

    // Reads run alongside the compaction and see the same data.
    let reads = join_all((0..10).map(|id| {
        let tasks = tasks.clone();
        async move { tasks.get(&format!("k{id:04}")).await }
    }));
    let file = store.file().unwrap();
    let (report, reads) = bounded(async { tokio::join!(file.compact(), reads) }).await;
    let report = report.unwrap();
    for (id, read) in reads.into_iter().enumerate() {
        assert_eq!(read.unwrap(), Some(big(id as u64)));
    }
    let before = report.bytes_before.unwrap();
    let after = report.bytes_after.unwrap();
    assert!(
        after < before / 2,
        "compaction from {before} to {after} bytes"
    );
    for id in 0..10 {
        assert_eq!(
            bounded(tasks.get(&format!("k{id:04}"))).await.unwrap(),
            Some(big(id))
        );
    }
    bounded(tasks.put("after-compaction", &big(1)))
        .await
        .unwrap();
}
