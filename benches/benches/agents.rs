//! jido-agents: durable actions per second with 1, 16 and 256 persistent
//! agents, against the same agents without persistence and against raw
//! `StateStore::put` from as many tasks; recovery of a TaskAgent with
//! 1,000 tasks queued, against loading its state straight from the store;
//! and a volatile agent's action against a bare actor call.
//!
//! Targets (issue 10): at 256 agents at least 100,000 durable actions/s and
//! at least 40% of the raw put rate; recovery under 1 ms; a volatile
//! action at most 1.2x a bare actor call.
//!
//! The stores live under the target directory, on the real disk, because
//! the fsync is what a durable action pays. On a shared machine compare
//! ratios within a run.

use benches::runtime;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use foundation_core::{
    Actor, ActorRef, ChildSpec, Context, Supervisor, SupervisorRef, TaskSupervisor,
};
use foundation_error::Error;
use foundation_persist::{Record, StateStore, Store, StoreOptions};
use futures::future::join_all;
use jido_agents::task::{
    PauseTasks, SubmitTask, Task, TaskAgent, TaskAgentArgs, TaskAgentState, TaskHandler, TaskRun,
    TaskStatusQuery,
};
use jido_agents::{Action, ActionContext, Agent, AgentEnv, AgentRef, AgentSpec, PersistentAgent};
use serde::{Deserialize, Serialize};

/// A counter agent whose whole state persists.
struct Tally {
    count: u64,
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
struct TallyState {
    count: u64,
}

impl Record for TallyState {
    const TYPE_TAG: &'static str = "bench_tally";
    const SCHEMA_VERSION: u32 = 1;
}

impl Agent for Tally {
    const KIND: &'static str = "tally";
    type Args = ();
    fn init(_: (), _env: &AgentEnv) -> Result<Self, Error> {
        Ok(Tally { count: 0 })
    }
}

impl PersistentAgent for Tally {
    type Snapshot = TallyState;
    fn snapshot(&self) -> TallyState {
        TallyState { count: self.count }
    }
    fn restore(&mut self, stored: TallyState) {
        self.count = stored.count;
    }
}

struct Increment;

impl Action<Tally> for Increment {
    const NAME: &'static str = "increment";
    type Output = u64;
    fn run(self, tally: &mut Tally, _ctx: &mut ActionContext<Tally>) -> Result<u64, Error> {
        tally.count += 1;
        Ok(tally.count)
    }
}

/// The same counter as a bare actor.
struct BareTally {
    count: u64,
}

impl Actor for BareTally {
    type Args = ();
    type Call = ();
    type Reply = u64;
    type Cast = ();
    type Info = ();
    async fn init(_: (), _ctx: &mut Context<Self>) -> Result<Self, Error> {
        Ok(BareTally { count: 0 })
    }
    async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) -> Result<u64, Error> {
        self.count += 1;
        Ok(self.count)
    }
}

fn bench_directory() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a directory under the target dir")
}

fn open_store(path: &Path) -> Store {
    Store::open(path, &StoreOptions::new()).expect("the bench store opens")
}

/// Starts `count` tally agents (persistent when given a store).
fn start_tallies(
    runtime: &tokio::runtime::Runtime,
    count: usize,
    store: Option<&Store>,
    tasks: &TaskSupervisor,
) -> (SupervisorRef, Vec<AgentRef<Tally>>) {
    runtime.block_on(async {
        let mut tree = Supervisor::builder("bench-tallies");
        let mut agents = Vec::with_capacity(count);
        for index in 0..count {
            let mut spec = AgentSpec::<Tally>::new(format!("tally-{index}"), (), tasks);
            if let Some(store) = store {
                spec.persistent(store);
            }
            let child = spec.child_spec().expect("a valid agent spec");
            agents.push(AgentRef::from(child.handle()));
            tree.child(child);
        }
        (tree.start().await.expect("the agents start"), agents)
    })
}

fn durable_actions(c: &mut Criterion) {
    let directory = bench_directory();
    let runtime = runtime();
    let tasks = TaskSupervisor::new("bench-work");
    let mut group = c.benchmark_group("agents_durable_actions");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    let raw_store = open_store(&directory.path().join("raw.redb"));
    let raw: StateStore<TallyState> = raw_store.state("raw").expect("a keyspace");
    let store = open_store(&directory.path().join("agents.redb"));
    for agents in [1usize, 16, 256] {
        // One iteration: every agent (or task) completes one action (put).
        group.throughput(Throughput::Elements(agents as u64));
        group.bench_function(
            format!("raw_state_store_put_{agents}_tasks_baseline"),
            |b| {
                b.iter_custom(|iterations| {
                    runtime.block_on(async {
                        let started = Instant::now();
                        join_all((0..agents).map(|writer| {
                            let raw = raw.clone();
                            async move {
                                let key = format!("tally-{writer}");
                                for n in 0..iterations {
                                    raw.put(&key, &TallyState { count: n })
                                        .await
                                        .expect("a durable put");
                                }
                            }
                        }))
                        .await;
                        started.elapsed()
                    })
                })
            },
        );
        for (label, persistent) in [("volatile", None), ("persistent", Some(&store))] {
            let (tree, refs) = start_tallies(&runtime, agents, persistent, &tasks);
            group.bench_function(format!("{label}_agents_{agents}"), |b| {
                b.iter_custom(|iterations| {
                    let refs = refs.clone();
                    benches::inside(&runtime, move || async move {
                        let started = Instant::now();
                        join_all(refs.iter().map(|agent| async move {
                            for _ in 0..iterations {
                                agent.run(Increment).await.expect("the action succeeds");
                            }
                        }))
                        .await;
                        started.elapsed()
                    })
                })
            });
            runtime.block_on(tree.shutdown()).expect("the agents stop");
        }
    }
    group.finish();
    runtime.block_on(store.close()).expect("the store closes");
    runtime
        .block_on(raw_store.close())
        .expect("the store closes");
}

/// Never runs: the agent stays paused.
struct Idle;

impl TaskHandler for Idle {
    async fn run(&self, _task: TaskRun) -> Result<serde_json::Value, Error> {
        Ok(serde_json::Value::Null)
    }
}

fn recovery(c: &mut Criterion) {
    const QUEUED: usize = 1_000;
    let directory = bench_directory();
    let runtime = runtime();
    let store = open_store(&directory.path().join("recovery.redb"));
    let tasks = TaskSupervisor::new("bench-work");
    let mut spec =
        AgentSpec::<TaskAgent<Idle>>::new("recovering", TaskAgentArgs::new(Idle), &tasks);
    spec.persistent(&store);
    let child = spec.child_spec().expect("a valid agent spec");
    let agent = AgentRef::from(child.handle());
    let tree = runtime.block_on(async {
        let mut tree = Supervisor::builder("bench-recovery");
        tree.intensity(u32::MAX, Duration::from_secs(1));
        tree.child(child);
        let tree = tree.start().await.expect("the agent starts");
        agent.run(PauseTasks {}).await.expect("paused");
        for index in 0..QUEUED {
            let task = Task::new(
                format!("task-{index:04}"),
                "idle",
                serde_json::json!({"n": index}),
            );
            agent.run(SubmitTask(task)).await.expect("queued");
        }
        tree
    });

    let mut group = c.benchmark_group("agents_recovery_1000_queued");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let keyspace: StateStore<TaskAgentState> =
        store.state("agents.task_agent").expect("a keyspace");
    group.bench_function("load_state_from_store_baseline", |b| {
        b.iter_custom(|iterations| {
            let keyspace = keyspace.clone();
            benches::inside(&runtime, move || async move {
                let started = Instant::now();
                for _ in 0..iterations {
                    let state = keyspace
                        .get("recovering")
                        .await
                        .expect("read")
                        .expect("present");
                    assert_eq!(state.queue.len(), QUEUED);
                }
                started.elapsed()
            })
        })
    });
    group.bench_function("kill_to_restored_answer", |b| {
        b.iter_custom(|iterations| {
            let agent = agent.clone();
            benches::inside(&runtime, move || async move {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let incarnation = agent.actor().incarnation();
                    let started = Instant::now();
                    agent.actor().kill();
                    loop {
                        // A call queued before the kill took effect fails;
                        // one queued after it waits for the restart.
                        if agent.actor().incarnation() > incarnation
                            && let Ok(status) = agent.run(TaskStatusQuery {}).await
                        {
                            assert_eq!(status.queued, QUEUED);
                            break;
                        }
                        tokio::task::yield_now().await;
                    }
                    total += started.elapsed();
                }
                total
            })
        })
    });
    group.finish();
    runtime.block_on(tree.shutdown()).expect("the agent stops");
    runtime.block_on(store.close()).expect("the store closes");
}

fn volatile_overhead(c: &mut Criterion) {
    let runtime = runtime();
    let tasks = TaskSupervisor::new("bench-work");
    let bare = ChildSpec::<BareTally>::new("bare", ());
    let bare_ref: ActorRef<BareTally> = bare.handle();
    let (tree, agents) = start_tallies(&runtime, 1, None, &tasks);
    let bare_tree = runtime.block_on(async {
        let mut tree = Supervisor::builder("bench-bare");
        tree.child(bare);
        tree.start().await.expect("the actor starts")
    });
    let agent = agents[0].clone();

    let mut group = c.benchmark_group("agents_volatile_action");
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare_actor_call_baseline", |b| {
        b.iter_custom(|iterations| {
            let bare_ref = bare_ref.clone();
            benches::inside(&runtime, move || async move {
                let started = Instant::now();
                for _ in 0..iterations {
                    bare_ref.call(()).await.expect("the call succeeds");
                }
                started.elapsed()
            })
        })
    });
    group.bench_function("volatile_agent_action", |b| {
        b.iter_custom(|iterations| {
            let agent = agent.clone();
            benches::inside(&runtime, move || async move {
                let started = Instant::now();
                for _ in 0..iterations {
                    agent.run(Increment).await.expect("the action succeeds");
                }
                started.elapsed()
            })
        })
    });
    group.finish();
    runtime.block_on(tree.shutdown()).expect("the agents stop");
    runtime
        .block_on(bare_tree.shutdown())
        .expect("the actor stops");
}

criterion_group!(benches, durable_actions, recovery, volatile_overhead);
criterion_main!(benches);
