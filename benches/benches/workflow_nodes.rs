//! jido-workflow on several engines sharing one PostgreSQL store (issue 15):
//!
//! - durable 5-step workflows (3 parallel + 2 sequential, no-op works) per
//!   second with 300 in flight: one engine on a redb file (the embedded
//!   baseline), one engine on PostgreSQL, and three engines in multi-node
//!   mode on the same PostgreSQL database, all in this one process (each
//!   engine with its own store and connection pool; the workflows are
//!   started round-robin, each waited for on the engine that started it);
//! - failover: from the moment an engine stops heartbeating (as a paused,
//!   partitioned or dead node does) to all of its 50 in-flight workflows
//!   having completed on the other engine, with a 1 s lease, against the
//!   lease time (target under 2x). The expected bound is ttl + ttl/3 (the
//!   claimer's heartbeat) + the resume; printed as a ratio after the run.
//!   Its baseline in the same run: the same takeover after a graceful
//!   shutdown (a hands its workflows over; no wait for the lease time).
//!
//! The PostgreSQL server is the throwaway cluster of the crate's test
//! harness, on the same disk as the redb file. Without PostgreSQL only the
//! redb case runs (the harness says so on stderr). The machine is shared:
//! compare ratios within a run.

#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use benches::runtime;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use foundation_persist::{Store, StoreOptions};
use foundation_persist_postgres::testing::TestCluster;
use foundation_persist_postgres::{PostgresOptions, open_postgres};
use futures::future::join_all;
use jido_workflow::{StepInput, WorkRegistry, WorkflowDefinition, WorkflowEngine, WorkflowStatus};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

const IN_FLIGHT: usize = 300;
const FAILOVER_WORKFLOWS: usize = 50;
const FAILOVER_TTL: Duration = Duration::from_secs(1);

const PLAN: &str = r#"{"name": "bench", "steps": [
  {"parallel": [
    {"task": {"id": "task1", "work": "noop"}},
    {"task": {"id": "task2", "work": "noop"}},
    {"task": {"id": "task3", "work": "noop"}}
  ]},
  {"sequential": [
    {"task": {"id": "task4", "work": "noop"}},
    {"task": {"id": "task5", "work": "noop"}}
  ]}
]}"#;

const GATED: &str = r#"{"name": "gated", "steps": [{"sequential": [
  {"task": {"id": "s1", "work": "noop"}},
  {"task": {"id": "s2", "work": "gated"}},
  {"task": {"id": "s3", "work": "noop"}}
]}]}"#;

fn works() -> WorkRegistry {
    let mut works = WorkRegistry::new();
    works.register("noop", |_input: StepInput| async { Ok(Value::Null) });
    works
}

fn cluster() -> Option<&'static TestCluster> {
    TestCluster::shared().unwrap()
}

async fn node(store: &Store, owner: &str, works: WorkRegistry, ttl: Duration) -> WorkflowEngine {
    let mut builder = WorkflowEngine::builder(store.clone(), works);
    builder.owner(owner).lease_ttl(ttl).multi_node(true);
    builder.start().await.unwrap()
}

/// Runs `IN_FLIGHT` workflows over `engines` (round-robin) `iterations`
/// times; returns the time taken.
async fn run_round(
    engines: &[WorkflowEngine],
    definition: &WorkflowDefinition,
    iterations: u64,
) -> Duration {
    let start = Instant::now();
    for _ in 0..iterations {
        let runs = (0..IN_FLIGHT).map(|index| {
            let engine = engines[index % engines.len()].clone();
            let definition = definition.clone();
            async move {
                let id = engine
                    .start_workflow(&definition, Value::Null)
                    .await
                    .unwrap();
                let info = engine.wait(&id, Duration::from_secs(120)).await.unwrap();
                assert_eq!(info.status, WorkflowStatus::Completed);
            }
        });
        join_all(runs).await;
    }
    start.elapsed()
}

fn throughput(c: &mut Criterion) {
    let runtime = runtime();
    let directory = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let definition = WorkflowDefinition::from_json(PLAN).unwrap();
    let redb = Store::open(directory.path().join("engine.redb"), &StoreOptions::new()).unwrap();
    let redb_engine = runtime
        .block_on(WorkflowEngine::builder(redb.clone(), works()).start())
        .unwrap();

    let mut group = c.benchmark_group("workflow_nodes");
    group.sample_size(10);
    group.throughput(Throughput::Elements(IN_FLIGHT as u64));
    group.bench_function("redb_1_engine_durable_5_step_300_in_flight", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(run_round(
                std::slice::from_ref(&redb_engine),
                &definition,
                iterations,
            ))
        });
    });

    let mut pg_parts = Vec::new();
    if let Some(cluster) = cluster() {
        let (one, three) = runtime.block_on(async {
            let url = cluster.create_database().await.unwrap();
            let store = open_postgres(&url, &PostgresOptions::new()).await.unwrap();
            let one = node(&store, "solo", works(), Duration::from_secs(10)).await;
            let url = cluster.create_database().await.unwrap();
            let mut three = Vec::new();
            for index in 0..3 {
                let store = open_postgres(&url, &PostgresOptions::new()).await.unwrap();
                three.push((
                    store.clone(),
                    node(
                        &store,
                        &format!("n{index}"),
                        works(),
                        Duration::from_secs(10),
                    )
                    .await,
                ));
            }
            ((store, one), three)
        });
        group.bench_function("postgres_1_engine_durable_5_step_300_in_flight", |b| {
            b.iter_custom(|iterations| {
                runtime.block_on(run_round(
                    std::slice::from_ref(&one.1),
                    &definition,
                    iterations,
                ))
            });
        });
        let engines: Vec<WorkflowEngine> = three.iter().map(|(_, engine)| engine.clone()).collect();
        group.bench_function("postgres_3_engines_durable_5_step_300_in_flight", |b| {
            b.iter_custom(|iterations| {
                runtime.block_on(run_round(&engines, &definition, iterations))
            });
        });
        pg_parts.push(one);
        pg_parts.extend(three);
    }
    group.finish();
    runtime.block_on(async {
        redb_engine.shutdown().await.unwrap();
        redb.close().await.unwrap();
        for (store, engine) in pg_parts {
            engine.shutdown().await.unwrap();
            store.close().await.unwrap();
        }
    });
}

/// Works for the failover: `gated` waits on `gate` (forever on the engine
/// that dies) after reporting on `entered`.
fn gated_works(
    entered: Option<mpsc::UnboundedSender<()>>,
    gate: Option<watch::Receiver<bool>>,
) -> WorkRegistry {
    let mut works = works();
    works.register("gated", move |_input: StepInput| {
        let entered = entered.clone();
        let gate = gate.clone();
        async move {
            if let Some(entered) = entered {
                let _ = entered.send(());
            }
            if let Some(mut gate) = gate {
                let _ = gate.wait_for(|open| *open).await;
            }
            Ok(Value::Null)
        }
    });
    works
}

/// How engine "a" lets its workflows go.
#[derive(Clone, Copy)]
enum Takeover {
    /// It stops heartbeating (a dead or paused node).
    Failover,
    /// It shuts down gracefully (hands its workflows over).
    Handover,
}

/// One takeover: engine "a" runs the workflows (their second step never
/// ends on it) and lets them go; returns the time until engine "b" has
/// completed all of them.
async fn one_takeover(cluster: &TestCluster, how: Takeover) -> Duration {
    let url = cluster.create_database().await.unwrap();
    let store_a = open_postgres(&url, &PostgresOptions::new()).await.unwrap();
    let store_b = open_postgres(&url, &PostgresOptions::new()).await.unwrap();
    let (entered, mut entries) = mpsc::unbounded_channel();
    let (_never, gate) = watch::channel(false);
    let a = node(
        &store_a,
        "a",
        gated_works(Some(entered), Some(gate)),
        FAILOVER_TTL,
    )
    .await;
    let b = node(&store_b, "b", gated_works(None, None), FAILOVER_TTL).await;
    let definition = WorkflowDefinition::from_json(GATED).unwrap();
    let mut ids = Vec::new();
    for _ in 0..FAILOVER_WORKFLOWS {
        ids.push(a.start_workflow(&definition, Value::Null).await.unwrap());
    }
    for _ in 0..FAILOVER_WORKFLOWS {
        entries.recv().await.unwrap();
    }
    let died = Instant::now();
    match how {
        Takeover::Failover => a.suspend_heartbeat(true),
        Takeover::Handover => a.shutdown().await.unwrap(),
    }
    for id in &ids {
        let info = b.wait(id, Duration::from_secs(60)).await.unwrap();
        assert_eq!(info.status, WorkflowStatus::Completed);
    }
    let failover = died.elapsed();
    if let Takeover::Failover = how {
        a.shutdown().await.unwrap();
    }
    b.shutdown().await.unwrap();
    store_a.close().await.unwrap();
    store_b.close().await.unwrap();
    failover
}

fn failover(c: &mut Criterion) {
    let Some(cluster) = cluster() else { return };
    let runtime = runtime();
    let samples: Mutex<Vec<Duration>> = Mutex::new(Vec::new());
    let mut group = c.benchmark_group("workflow_failover");
    group.sample_size(10);
    group.bench_function("postgres_failover_50_workflows_ttl_1s", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let one = one_takeover(cluster, Takeover::Failover).await;
                    samples.lock().unwrap().push(one);
                    total += one;
                }
                total
            })
        });
    });
    // The baseline in the same run: the same takeover when "a" shuts down
    // gracefully (it hands its workflows over; "b" resumes them at its
    // next heartbeat, without waiting for the lease time).
    group.bench_function(
        "postgres_handover_50_workflows_graceful_shutdown_baseline",
        |b| {
            b.iter_custom(|iterations| {
                runtime.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        total += one_takeover(cluster, Takeover::Handover).await;
                    }
                    total
                })
            });
        },
    );
    group.finish();
    let samples = samples.into_inner().unwrap();
    if let (Some(worst), false) = (samples.iter().max(), samples.is_empty()) {
        let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
        println!(
            "workflow_failover: mean {:.2} s = {:.2}x the lease time, worst {:.2} s = {:.2}x \
             ({} failovers; target under 2x)",
            mean.as_secs_f64(),
            mean.as_secs_f64() / FAILOVER_TTL.as_secs_f64(),
            worst.as_secs_f64(),
            worst.as_secs_f64() / FAILOVER_TTL.as_secs_f64(),
            samples.len()
        );
    }
}

criterion_group!(benches, throughput, failover);
criterion_main!(benches);
