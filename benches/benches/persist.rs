//! foundation-persist: durable puts through group commit with 1, 16 and 256
//! concurrent writers, against single-record durable redb commits (what
//! each write costs without group commit) in the same run; and read latency
//! against a direct redb read of the same record.
//!
//! Each writer is an agent saving its own state after every action: writer
//! `w` writes key `agent-w`, and every put is a durable commit acknowledged
//! only after its fsync. A second 256-writer case spreads each writer over
//! 64 keys (16,384 in all), so each commit dirties one B-tree leaf per
//! writer: that is redb's write amplification, not the writer's.
//!
//! Targets (issue 6): at 256 writers at least 20x the single-commit
//! baseline and at least 50,000 durable records per second.
//!
//! The databases live under the target directory, on the real disk (not a
//! tmpfs), because the fsync is what is measured. On a shared machine the
//! fsync cost moves with the other processes' I/O: compare ratios within a
//! run.

use benches::runtime;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use foundation_persist::{Record, StateStore, Store, StoreOptions};
use futures::FutureExt;
use futures::future::join_all;
use redb::{ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AgentState {
    queue: Vec<String>,
    completed: u64,
    errors: u32,
    status: String,
}

impl Record for AgentState {
    const TYPE_TAG: &'static str = "bench_agent_state";
    const SCHEMA_VERSION: u32 = 1;
}

fn state(n: u64) -> AgentState {
    AgentState {
        queue: vec![format!("task-{n}"), format!("task-{}", n + 1)],
        completed: n,
        errors: 0,
        status: "running".into(),
    }
}

const BASELINE_TABLE: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("baseline");

/// The baseline cycles over as many keys as the largest writer count.
const BASELINE_KEYS: u64 = 256;

fn bench_directory() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a directory under the target dir")
}

fn open_store(path: &Path) -> Store {
    Store::open(path, &StoreOptions::new()).expect("the bench store opens")
}

fn durable_puts(c: &mut Criterion) {
    let directory = bench_directory();
    let runtime = runtime();
    let mut group = c.benchmark_group("persist_durable_put");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    // Baseline: one durable redb commit per record, the cost each write
    // pays without group commit.
    let database = redb::Database::create(directory.path().join("baseline.redb"))
        .expect("the baseline database opens");
    let encoded = postcard::to_stdvec(&state(1)).expect("the state encodes");
    group.throughput(Throughput::Elements(1));
    group.bench_function("redb_single_commit_baseline", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            let key = format!("agent-{}", n % BASELINE_KEYS);
            let transaction = database.begin_write().expect("begin_write");
            {
                let mut table = transaction.open_table(BASELINE_TABLE).expect("open_table");
                table
                    .insert(key.as_str(), encoded.as_slice())
                    .expect("insert");
            }
            transaction.commit().expect("commit");
        })
    });

    let store = open_store(&directory.path().join("group.redb"));
    let agents: StateStore<AgentState> = store.state("agents").expect("a keyspace");
    for (name, writers, keys_per_writer) in [
        ("group_commit_1_writer", 1u64, 1u64),
        ("group_commit_16_writers", 16, 1),
        ("group_commit_256_writers", 256, 1),
        ("group_commit_256_writers_16384_keys", 256, 64),
    ] {
        // One iteration: every writer completes one durable put.
        group.throughput(Throughput::Elements(writers));
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                runtime.block_on(async {
                    let started = Instant::now();
                    let all = join_all((0..writers).map(|writer| {
                        let agents = agents.clone();
                        async move {
                            for n in 0..iterations {
                                let key = format!("agent-{writer}-{}", n % keys_per_writer);
                                agents.put(&key, &state(n)).await.expect("a durable put");
                            }
                        }
                    }));
                    all.await;
                    started.elapsed()
                })
            })
        });
    }
    group.finish();
    runtime.block_on(store.close()).expect("the store closes");
}

fn reads(c: &mut Criterion) {
    const RECORDS: u64 = 10_000;
    let directory = bench_directory();
    let runtime = runtime();
    let keys: Vec<String> = (0..RECORDS).map(|n| format!("agent-{n:05}")).collect();

    let database = redb::Database::create(directory.path().join("baseline.redb"))
        .expect("the baseline database opens");
    let transaction = database.begin_write().expect("begin_write");
    {
        let mut table = transaction.open_table(BASELINE_TABLE).expect("open_table");
        for (n, key) in keys.iter().enumerate() {
            let bytes = postcard::to_stdvec(&state(n as u64)).expect("the state encodes");
            table
                .insert(key.as_str(), bytes.as_slice())
                .expect("insert");
        }
    }
    transaction.commit().expect("commit");

    let store = open_store(&directory.path().join("store.redb"));
    let agents: StateStore<AgentState> = store.state("agents").expect("a keyspace");
    runtime.block_on(async {
        let mut batch = store.batch();
        for (n, key) in keys.iter().enumerate() {
            batch
                .put(&agents, key, &state(n as u64))
                .expect("a batch put");
        }
        batch.commit().await.expect("the batch commits");
    });

    let mut group = c.benchmark_group("persist_read");
    group.throughput(Throughput::Elements(1));
    group.bench_function("redb_direct_read_baseline", |b| {
        let mut n = 0usize;
        b.iter(|| {
            n = (n + 7919) % keys.len();
            let read = database.begin_read().expect("begin_read");
            let table = read.open_table(BASELINE_TABLE).expect("open_table");
            let value = table.get(keys[n].as_str()).expect("get").expect("present");
            let decoded: AgentState = postcard::from_bytes(value.value()).expect("decodes");
            black_box(decoded)
        })
    });
    group.bench_function("state_store_get", |b| {
        let mut n = 0usize;
        b.iter(|| {
            n = (n + 7919) % keys.len();
            // A read completes without waiting for anything (no compaction
            // runs), so one poll finishes it: no executor overhead is timed.
            let value = agents
                .get(&keys[n])
                .now_or_never()
                .expect("a read completes in one poll")
                .expect("the read succeeds")
                .expect("present");
            black_box(value)
        })
    });
    group.finish();
    runtime.block_on(store.close()).expect("the store closes");
}

criterion_group!(benches, durable_puts, reads);
criterion_main!(benches);
