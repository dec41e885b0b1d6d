//! Journal keyspaces: sequence numbers, reads from a sequence number,
//! truncation, expected appends and stream listing.

use foundation_error::ErrorCode;
use foundation_persist::{Store, StoreOptions};

use crate::support::{Task, bounded};

#[tokio::test]
async fn appends_number_each_stream_from_one() {
    let store = Store::open_in_memory(&StoreOptions::new()).unwrap();
    let journal = store.journal::<Task>("steps").unwrap();
    for id in 1..=5 {
        assert_eq!(
            bounded(journal.append("a", &Task::new(id))).await.unwrap(),
            id
        );
    }
    assert_eq!(
        bounded(journal.append("b", &Task::new(9))).await.unwrap(),
        1
    );
    let all = bounded(journal.read("a", 1, 100)).await.unwrap();
    let ids: Vec<_> = all
        .iter()
        .map(|entry| (entry.sequence, entry.record.id))
        .collect();
    assert_eq!(ids, vec![(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]);
    let tail = bounded(journal.read("a", 4, 100)).await.unwrap();
    assert_eq!(tail.len(), 2);
    assert_eq!(tail[0].sequence, 4);
    let limited = bounded(journal.read("a", 2, 2)).await.unwrap();
    assert_eq!(
        limited
            .iter()
            .map(|entry| entry.sequence)
            .collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert!(
        bounded(journal.read("missing", 1, 10))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn truncation_removes_a_prefix_and_never_reuses_numbers() {
    let store = Store::open_in_memory(&StoreOptions::new()).unwrap();
    let journal = store.journal::<Task>("steps").unwrap();
    for id in 1..=4 {
        bounded(journal.append("s", &Task::new(id))).await.unwrap();
    }
    assert_eq!(bounded(journal.truncate("s", 2)).await.unwrap(), 2);
    assert_eq!(
        bounded(journal.truncate("s", 2)).await.unwrap(),
        0,
        "idempotent"
    );
    let head = bounded(journal.head("s")).await.unwrap();
    assert_eq!((head.next_sequence, head.truncated_through), (5, 2));
    let rest = bounded(journal.read("s", 1, 10)).await.unwrap();
    assert_eq!(
        rest.iter().map(|entry| entry.sequence).collect::<Vec<_>>(),
        vec![3, 4]
    );

    // Truncating everything, and beyond the end, keeps the numbering.
    assert_eq!(bounded(journal.truncate("s", 100)).await.unwrap(), 2);
    let head = bounded(journal.head("s")).await.unwrap();
    assert_eq!((head.next_sequence, head.truncated_through), (5, 4));
    assert_eq!(
        bounded(journal.append("s", &Task::new(5))).await.unwrap(),
        5
    );
    assert_eq!(
        bounded(journal.truncate("never-written", 3)).await.unwrap(),
        0
    );
    let fresh = bounded(journal.head("never-written")).await.unwrap();
    assert_eq!((fresh.next_sequence, fresh.truncated_through), (1, 0));
}

#[tokio::test]
async fn expected_appends_refuse_a_stale_writer() {
    let store = Store::open_in_memory(&StoreOptions::new()).unwrap();
    let journal = store.journal::<Task>("steps").unwrap();
    assert_eq!(
        bounded(journal.append_expecting("s", 1, &Task::new(1)))
            .await
            .unwrap(),
        1
    );
    let stale = bounded(journal.append_expecting("s", 1, &Task::new(2)))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), ErrorCode::VERSION_CONFLICT);
    assert_eq!(stale.context_value("next_sequence"), Some("2"));
    assert_eq!(stale.context_value("keyspace"), Some("steps"));
    assert_eq!(bounded(journal.read("s", 1, 10)).await.unwrap().len(), 1);
}

#[tokio::test]
async fn streams_are_listed_by_prefix() {
    let store = Store::open_in_memory(&StoreOptions::new()).unwrap();
    let journal = store.journal::<Task>("steps").unwrap();
    for stream in ["wf-1", "wf-2", "wf-3", "other"] {
        bounded(journal.append(stream, &Task::new(1)))
            .await
            .unwrap();
    }
    assert_eq!(
        bounded(journal.streams("wf-", None, 10)).await.unwrap(),
        vec!["wf-1", "wf-2", "wf-3"]
    );
    assert_eq!(
        bounded(journal.streams("wf-", Some("wf-1"), 1))
            .await
            .unwrap(),
        vec!["wf-2"]
    );
}

#[tokio::test]
async fn journal_and_state_keyspaces_of_one_name_do_not_mix() {
    let store = Store::open_in_memory(&StoreOptions::new()).unwrap();
    let journal = store.journal::<Task>("same").unwrap();
    let state = store.state::<Task>("same").unwrap();
    bounded(journal.append("k", &Task::new(1))).await.unwrap();
    assert_eq!(bounded(state.get("k")).await.unwrap(), None);
}
