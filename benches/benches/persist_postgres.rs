//! foundation-persist-postgres: durable puts through group commit with 1,
//! 16 and 256 concurrent writers on PostgreSQL, against the same workload
//! on a redb store in the same run.
//!
//! Each writer is an agent saving its own state after every action: writer
//! `w` writes key `agent-w`, and every put is acknowledged only once
//! committed (PostgreSQL: `synchronous_commit = on`, the WAL flushed;
//! redb: `Durability::Immediate`, the file fsynced).
//!
//! The PostgreSQL server is a throwaway cluster started by the crate's
//! test harness (initdb + pg_ctl into a temporary directory on the same
//! disk as the redb file), reached over a unix socket. Without PostgreSQL
//! installed, only the redb cases run (the harness says so on stderr). On
//! a shared machine both move with the other processes' I/O: compare the
//! ratio within a run.

use benches::runtime;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use foundation_persist::{Record, StateStore, Store, StoreOptions};
use foundation_persist_postgres::testing::TestCluster;
use foundation_persist_postgres::{PostgresOptions, open_postgres};
use futures::future::join_all;
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

/// One iteration: every writer completes one durable put.
fn bench_writers(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    agents: &StateStore<AgentState>,
    writers: u64,
) {
    group.throughput(Throughput::Elements(writers));
    group.bench_function(name, |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let started = Instant::now();
                join_all((0..writers).map(|writer| {
                    let agents = agents.clone();
                    async move {
                        for n in 0..iterations {
                            agents
                                .put(&format!("agent-{writer}"), &state(n))
                                .await
                                .expect("a durable put");
                        }
                    }
                }))
                .await;
                started.elapsed()
            })
        })
    });
}

fn durable_puts(c: &mut Criterion) {
    let runtime = runtime();
    let directory = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a directory under the target dir");
    let redb = Store::open(directory.path().join("baseline.redb"), &StoreOptions::new())
        .expect("the redb store opens");
    let redb_agents: StateStore<AgentState> = redb.state("agents").expect("a keyspace");

    let cluster = TestCluster::start().expect("the PostgreSQL cluster starts");
    let postgres: Option<Store> = cluster.as_ref().map(|cluster| {
        runtime.block_on(async {
            let url = cluster.create_database().await.expect("a database");
            let mut options = PostgresOptions::new();
            options.max_queued_writes(8192);
            open_postgres(&url, &options)
                .await
                .expect("the PostgreSQL store opens")
        })
    });

    let mut group = c.benchmark_group("persist_postgres_durable_put");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for writers in [1u64, 16, 256] {
        bench_writers(
            &mut group,
            &runtime,
            &format!("redb_{writers}_writers"),
            &redb_agents,
            writers,
        );
        if let Some(postgres) = &postgres {
            let agents: StateStore<AgentState> = postgres.state("agents").expect("a keyspace");
            bench_writers(
                &mut group,
                &runtime,
                &format!("postgres_{writers}_writers"),
                &agents,
                writers,
            );
        }
    }
    group.finish();
    runtime
        .block_on(redb.close())
        .expect("the redb store closes");
    if let Some(postgres) = postgres {
        runtime
            .block_on(postgres.close())
            .expect("the PostgreSQL store closes");
    }
    drop(cluster);
}

criterion_group!(benches, durable_puts);
criterion_main!(benches);
