//! Hostile and damaged files (issue 9, defects 4 and 5): a file that is
//! not a store is refused with `data_corruption` and left byte-identical;
//! flipped bits anywhere in a store file never panic the caller, and every
//! failure they cause is `data_corruption` naming the store.

use std::path::Path;

use foundation_error::ErrorCode;
use foundation_persist::{Store, StoreOptions};

use crate::support::{Task, bounded, temp_dir};

fn assert_refused_untouched(path: &Path) {
    let before = std::fs::read(path).expect("the file is readable");
    let error = Store::open(path, &StoreOptions::new()).expect_err("the file is refused");
    assert_eq!(error.code(), ErrorCode::DATA_CORRUPTION, "{error}");
    assert!(
        error.context_value("path").is_some(),
        "the error names the store: {error}"
    );
    let after = std::fs::read(path).expect("the file is still readable");
    assert!(before == after, "the refused file was modified");
}

#[test]
fn an_empty_file_is_refused_and_left_untouched() {
    let directory = temp_dir();
    let path = directory.path().join("empty.redb");
    std::fs::write(&path, b"").expect("the file is written");
    assert_refused_untouched(&path);
    assert_eq!(std::fs::metadata(&path).expect("it exists").len(), 0);
}

#[test]
fn a_file_of_garbage_is_refused_and_left_untouched() {
    let directory = temp_dir();
    let path = directory.path().join("garbage.redb");
    std::fs::write(&path, b"this is a text file, not a database\n".repeat(200))
        .expect("the file is written");
    assert_refused_untouched(&path);
}

#[test]
fn another_applications_redb_file_is_refused_and_left_untouched() {
    const THEIRS: redb::TableDefinition<'static, &str, u64> = redb::TableDefinition::new("theirs");
    let directory = temp_dir();
    let path = directory.path().join("foreign.redb");
    {
        let database = redb::Database::create(&path).expect("a redb file is created");
        let transaction = database.begin_write().expect("a write begins");
        {
            let mut table = transaction.open_table(THEIRS).expect("the table opens");
            table.insert("answer", 42).expect("the insert succeeds");
        }
        transaction.commit().expect("the commit succeeds");
    }
    assert_refused_untouched(&path);
    // Still theirs: it opens and holds their data.
    let database = redb::Database::open(&path).expect("their file still opens");
    let read = redb::ReadableDatabase::begin_read(&database).expect("a read begins");
    let table = read.open_table(THEIRS).expect("their table is there");
    assert_eq!(
        table.get("answer").expect("read").map(|v| v.value()),
        Some(42)
    );
}

#[tokio::test]
async fn only_a_missing_path_creates_a_store() {
    let directory = temp_dir();
    let path = directory.path().join("nested").join("new.redb");
    let store = Store::open(&path, &StoreOptions::new()).expect("a missing path creates a store");
    bounded(store.close()).await.expect("the store closes");
    // Reopening the store it created works.
    let store = Store::open(&path, &StoreOptions::new()).expect("the store reopens");
    bounded(store.close()).await.expect("the store closes");
}

/// Writes a small store, closes it cleanly and returns its bytes.
async fn pristine_store(path: &Path) -> Vec<u8> {
    let store = Store::open(path, &StoreOptions::new()).expect("the store opens");
    let state = store.state::<Task>("state").expect("a keyspace");
    let journal = store.journal::<Task>("journal").expect("a keyspace");
    for n in 0..300 {
        bounded(state.put(&format!("key-{n:04}"), &Task::new(n)))
            .await
            .expect("the put succeeds");
    }
    for n in 0..100 {
        bounded(journal.append("stream", &Task::new(n)))
            .await
            .expect("the append succeeds");
    }
    bounded(store.close()).await.expect("the store closes");
    std::fs::read(path).expect("the store file is readable")
}

/// Opens a damaged store and reads everything; returns the errors met.
/// Any panic escaping the store fails the test.
async fn open_and_read_all(path: &Path) -> Vec<foundation_error::Error> {
    let mut errors = Vec::new();
    let store = match Store::open(path, &StoreOptions::new()) {
        Ok(store) => store,
        Err(error) => {
            errors.push(error);
            return errors;
        }
    };
    let state = store.state::<Task>("state").expect("a keyspace");
    let journal = store.journal::<Task>("journal").expect("a keyspace");
    for n in (0..300).step_by(7) {
        if let Err(error) = bounded(state.get(&format!("key-{n:04}"))).await {
            errors.push(error);
        }
    }
    if let Err(error) = bounded(state.list("", None, 1000)).await {
        errors.push(error);
    }
    if let Err(error) = bounded(journal.read("stream", 1, 1000)).await {
        errors.push(error);
    }
    if let Err(error) = bounded(state.put("after-damage", &Task::new(1))).await {
        errors.push(error);
    }
    if let Err(error) = bounded(store.close()).await {
        errors.push(error);
    }
    errors
}

/// Flips one bit at each of a deterministic spread of the store's non-zero
/// bytes (headers, allocator state, B-tree pages, values) and opens and
/// reads the damaged copy. Before the fix, some of these panicked inside
/// redb ("Malformed allocator state", slice index out of range).
#[tokio::test]
async fn flipped_bits_never_panic_and_are_data_corruption() {
    let directory = temp_dir();
    let pristine_path = directory.path().join("pristine.redb");
    let pristine = pristine_store(&pristine_path).await;
    let nonzero: Vec<usize> = (0..pristine.len())
        .filter(|&at| pristine[at] != 0)
        .collect();
    assert!(nonzero.len() > 100, "the store holds data");
    let step = (nonzero.len() / 400).max(1);
    let mut damaged_runs = 0;
    for (round, &at) in nonzero.iter().step_by(step).enumerate() {
        let path = directory.path().join(format!("damaged-{round}.redb"));
        let mut bytes = pristine.clone();
        bytes[at] ^= 1 << (round % 8);
        std::fs::write(&path, &bytes).expect("the copy is written");
        let errors = open_and_read_all(&path).await;
        if !errors.is_empty() {
            damaged_runs += 1;
        }
        for error in errors {
            assert!(
                [
                    ErrorCode::DATA_CORRUPTION,
                    ErrorCode::UNSUPPORTED_VERSION,
                    ErrorCode::TYPE_MISMATCH
                ]
                .contains(&error.code()),
                "a flip at byte {at}: {error}"
            );
            if error.code() == ErrorCode::DATA_CORRUPTION {
                assert!(
                    error.context_value("store").is_some() || error.context_value("path").is_some(),
                    "a flip at byte {at}: the error names the store: {error}"
                );
            }
        }
        std::fs::remove_file(&path).expect("the copy is removed");
    }
    assert!(damaged_runs > 0, "some flips were detected");
}
