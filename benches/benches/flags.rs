//! foundation-flags: the cost of evaluating a flag, against the `murmur3`
//! crate hashing the same key and against a `Mutex<HashMap>` lookup (the
//! naive flag table), in the same run.
//!
//! Targets (issue 5): `is_enabled_for` with a 20-byte id under 25 ns;
//! `is_enabled` under 5 ns. The flag is at 50% so that every
//! `is_enabled_for` really hashes (0% and 100% skip the hash).
//!
//! Run: `cargo bench -p benches --bench flags`.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Cursor;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use benches::on_threads;
use criterion::{Criterion, criterion_group, criterion_main};
use foundation_flags::{Flag, FlagValue, Flags, normalized_bucket};

const FLAG: &str = "use_v2_coordinator";
/// A 20-byte id.
const ID: &str = "user-000000000000042";

fn open_flags() -> Flags {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime builds");
    runtime.block_on(async {
        let mut builder = Flags::builder();
        for name in [
            "use_persistent_agents",
            FLAG,
            "use_new_error_handling",
            "use_sync_test_apis",
            "enforce_supervised_tasks",
            "use_reliable_messaging",
        ] {
            let value = if name == FLAG {
                FlagValue::percentage(50).expect("in range")
            } else {
                FlagValue::On
            };
            builder.declare(Flag::new(name, "benchmark flag", value));
        }
        builder.open().await.expect("the benchmark flags open")
    })
}

/// The naive flag table: a mutex around a map from name to value.
fn mutex_table() -> Mutex<HashMap<String, FlagValue>> {
    let mut table = HashMap::new();
    table.insert(
        FLAG.to_owned(),
        FlagValue::percentage(50).expect("in range"),
    );
    table.insert("use_reliable_messaging".to_owned(), FlagValue::On);
    Mutex::new(table)
}

/// The naive evaluation: lock, look up, build the key, hash it with the
/// `murmur3` crate.
fn naive_is_enabled_for(table: &Mutex<HashMap<String, FlagValue>>, name: &str, id: &str) -> bool {
    let value = match table.lock() {
        Ok(table) => table.get(name).copied(),
        Err(_) => None,
    };
    value.is_some_and(|value| {
        let key = format!("{name}:{id}");
        let hash = murmur3::murmur3_32(&mut Cursor::new(key.as_bytes()), 0).unwrap_or(0);
        value.is_enabled_in_bucket(hash % 100 + 1)
    })
}

fn is_enabled_for(c: &mut Criterion) {
    let flags = open_flags();
    let handle = flags.handle(FLAG).expect("declared");
    let table = mutex_table();
    let key = format!("{FLAG}:{ID}");
    assert_eq!(ID.len(), 20);
    assert_eq!(
        handle.is_enabled_for(ID),
        naive_is_enabled_for(&table, FLAG, ID),
        "both sides compute the same answer"
    );

    let mut group = c.benchmark_group("flags/is_enabled_for_20_byte_id");
    group.bench_function("handle", |b| {
        b.iter(|| handle.is_enabled_for(black_box(ID)))
    });
    group.bench_function("by_name", |b| {
        b.iter(|| flags.is_enabled_for(black_box(FLAG), black_box(ID)))
    });
    group.bench_function("snapshot_then_evaluate", |b| {
        b.iter(|| {
            flags
                .snapshot()
                .is_enabled_for(black_box(FLAG), black_box(ID))
        })
    });
    group.bench_function("hash_only_ours", |b| {
        b.iter(|| normalized_bucket(black_box(FLAG), black_box(ID)))
    });
    group.bench_function("hash_only_murmur3_crate_prebuilt_key_baseline", |b| {
        b.iter(|| {
            murmur3::murmur3_32(&mut Cursor::new(black_box(key.as_bytes())), 0).unwrap_or(0) % 100
                + 1
        })
    });
    group.bench_function("mutex_hashmap_lookup_baseline", |b| {
        b.iter(|| match table.lock() {
            Ok(table) => table.get(black_box(FLAG)).copied(),
            Err(_) => None,
        })
    });
    group.bench_function("mutex_hashmap_and_murmur3_crate_baseline", |b| {
        b.iter(|| naive_is_enabled_for(&table, black_box(FLAG), black_box(ID)))
    });
    group.finish();

    let mut group = c.benchmark_group("flags/is_enabled_for_20_byte_id/2_threads");
    group.bench_function("handle", |b| {
        b.iter_custom(|iterations| {
            on_threads(2, iterations, |n| {
                for _ in 0..n {
                    black_box(handle.is_enabled_for(black_box(ID)));
                }
            })
        })
    });
    group.bench_function("mutex_hashmap_and_murmur3_crate_baseline", |b| {
        b.iter_custom(|iterations| {
            on_threads(2, iterations, |n| {
                for _ in 0..n {
                    black_box(naive_is_enabled_for(&table, black_box(FLAG), black_box(ID)));
                }
            })
        })
    });
    group.finish();
}

fn is_enabled(c: &mut Criterion) {
    let flags = open_flags();
    let handle = flags.handle("use_reliable_messaging").expect("declared");
    let table = mutex_table();
    let atomic = AtomicBool::new(true);

    let mut group = c.benchmark_group("flags/is_enabled");
    group.bench_function("atomic_bool_load_baseline", |b| {
        b.iter(|| black_box(&atomic).load(Ordering::Acquire))
    });
    group.bench_function("handle", |b| b.iter(|| black_box(&handle).is_enabled()));
    group.bench_function("by_name", |b| {
        b.iter(|| flags.is_enabled(black_box("use_reliable_messaging")))
    });
    group.bench_function("snapshot_then_read", |b| {
        b.iter(|| {
            flags
                .snapshot()
                .is_enabled(black_box("use_reliable_messaging"))
        })
    });
    group.bench_function("mutex_hashmap_lookup_baseline", |b| {
        b.iter(|| match table.lock() {
            Ok(table) => table
                .get(black_box("use_reliable_messaging"))
                .is_some_and(|value| value.is_enabled()),
            Err(_) => false,
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = is_enabled_for, is_enabled
}
criterion_main!(benches);
