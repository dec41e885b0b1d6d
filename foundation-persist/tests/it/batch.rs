//! Write batches: several keyspaces, all or nothing.

use foundation_error::ErrorCode;
use foundation_persist::{Outcome, Store, StoreOptions};

use crate::support::{Task, bounded, each_kind};

#[tokio::test]
async fn a_batch_commits_across_keyspaces() {
    for (kind, store, _directory) in each_kind() {
        eprintln!("store kind: {kind}");
        let state = store.state::<Task>("state").unwrap();
        let journal = store.journal::<Task>("journal").unwrap();
        bounded(state.put("gone", &Task::new(0))).await.unwrap();

        let mut batch = store.batch();
        batch
            .put(&state, "a", &Task::new(1))
            .unwrap()
            .append(&journal, "s", &Task::new(2))
            .unwrap()
            .append(&journal, "s", &Task::new(3))
            .unwrap()
            .delete(&state, "gone")
            .unwrap()
            .truncate(&journal, "s", 1)
            .unwrap();
        assert_eq!(batch.len(), 5);
        let outcomes = bounded(batch.commit()).await.unwrap();
        assert!(matches!(outcomes[0], Outcome::Written { .. }));
        assert_eq!(outcomes[1], Outcome::Appended { sequence: 1 });
        assert_eq!(outcomes[2], Outcome::Appended { sequence: 2 });
        assert_eq!(outcomes[3], Outcome::Deleted { existed: true });
        assert_eq!(outcomes[4], Outcome::Truncated { removed: 1 });
        let left = bounded(journal.read("s", 1, 10)).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].record, Task::new(3));
    }
}

#[tokio::test]
async fn a_failed_precondition_applies_nothing_of_the_batch() {
    for (kind, store, _directory) in each_kind() {
        eprintln!("store kind: {kind}");
        let state = store.state::<Task>("state").unwrap();
        let journal = store.journal::<Task>("journal").unwrap();
        let version = bounded(state.put("k", &Task::new(1))).await.unwrap();

        let mut batch = store.batch();
        batch
            .append(&journal, "s", &Task::new(2))
            .unwrap()
            .put(&state, "other", &Task::new(3))
            .unwrap()
            // The first put in the batch moves "k" past `version`...
            .put(&state, "k", &Task::new(4))
            .unwrap()
            // ...so this compare-and-set, which sees the batch's own write, fails.
            .compare_and_set(&state, "k", Some(version), &Task::new(5))
            .unwrap();
        let error = bounded(batch.commit()).await.unwrap_err();
        assert_eq!(error.code(), ErrorCode::VERSION_CONFLICT);

        assert!(bounded(journal.read("s", 1, 10)).await.unwrap().is_empty());
        assert_eq!(bounded(state.get("other")).await.unwrap(), None);
        assert_eq!(bounded(state.get("k")).await.unwrap(), Some(Task::new(1)));
        let unchanged = bounded(state.get_versioned("k")).await.unwrap().unwrap();
        assert_eq!(unchanged.version, version, "the key kept its version");
        assert_eq!(bounded(journal.head("s")).await.unwrap().next_sequence, 1);
    }
}

#[tokio::test]
async fn a_batch_sees_its_own_appends() {
    for (kind, store, _directory) in each_kind() {
        eprintln!("store kind: {kind}");
        let journal = store.journal::<Task>("journal").unwrap();
        let mut batch = store.batch();
        batch
            .append_expecting(&journal, "s", 1, &Task::new(1))
            .unwrap()
            .append_expecting(&journal, "s", 2, &Task::new(2))
            .unwrap();
        bounded(batch.commit()).await.unwrap();
        let mut wrong = store.batch();
        wrong
            .append_expecting(&journal, "s", 3, &Task::new(3))
            .unwrap()
            .append_expecting(&journal, "s", 3, &Task::new(4))
            .unwrap();
        assert_eq!(
            bounded(wrong.commit()).await.unwrap_err().code(),
            ErrorCode::VERSION_CONFLICT
        );
        assert_eq!(bounded(journal.head("s")).await.unwrap().next_sequence, 3);
    }
}

#[tokio::test]
async fn keyspaces_of_another_store_are_refused() {
    let one = Store::open_in_memory(&StoreOptions::new()).unwrap();
    let two = Store::open_in_memory(&StoreOptions::new()).unwrap();
    let foreign = two.state::<Task>("state").unwrap();
    let mut batch = one.batch();
    let error = batch.put(&foreign, "k", &Task::new(1)).unwrap_err();
    assert_eq!(error.code(), ErrorCode::INVALID_INPUT);
    assert!(batch.is_empty());
    assert!(bounded(batch.commit()).await.unwrap().is_empty());
}
