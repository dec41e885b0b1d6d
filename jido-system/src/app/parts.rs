//! The children of the application tree: one actor type, [`Part`], whose
//! `init` starts one component and publishes it in its slot, and whose
//! `terminate` (or, after a kill, `Drop`) stops what it started.
//!
//! This module is not for the order or the strategy (`app/mod.rs`).

use std::sync::Arc;
use std::time::Duration;

use deploy_monitor::{DeployMonitor, MonitorActor, MonitorActorArgs};
use foundation_core::registry::Registry;
use foundation_core::signal::SignalRouter;
use foundation_core::{
    Actor, ActorRef, ChildSpec, Context, Down, ExitReason, Shutdown, Strategy, Supervisor,
    SupervisorBuilder, SupervisorRef,
};
use foundation_error::{Error, ErrorCode, ErrorTracker, Result};
use foundation_flags::Flags;
use foundation_persist::StateStore;
use jido_agents::monitor::{
    ErrorRateCheck, MonitorAgent, MonitorArgs, ProcessCheck, RestartRateCheck, StoreLatencyCheck,
};
use jido_agents::task::{TaskAgentArgs, TaskHandler, TaskRun};
use jido_agents::{AgentRef, AgentSpec};
use jido_workflow::WorkflowEngine;
use jido_workflow::coordinator::{
    CoordinatorRouter, CoordinatorV1, CoordinatorV1Args, CoordinatorV2, CoordinatorV2Args,
};
use serde_json::Value;

use super::events::EventLog;
use super::executor::GatedExecutor;
use super::recorder::MonitorFeed;
use super::{AppTaskAgent, Shared};
use crate::flags::{PersistFlagStore, USE_PERSISTENT_AGENTS};
use crate::works::ExecutionCount;

/// How long a child may take to stop before it is killed.
const PART_SHUTDOWN: Duration = Duration::from_secs(10);
/// How long a nested supervisor or the engine may take to stop.
const INNER_SHUTDOWN: Duration = Duration::from_secs(8);
/// The id of the application's coordinators (their saved state's key is
/// `v2/main-{shard}`).
const COORDINATOR_ID: &str = "main";
/// How many V1/V2 coordinator pairs share the starts. A CoordinatorV2
/// saves all the starts and ends waiting in its mailbox in one write, so
/// fewer shards batch more (`benches/benches/http.rs` prints the saves per
/// start: 2.00 before that batching, 1.67 to 1.68 with it at 64 shards,
/// 0.37 at 8 shards); shards by coordinator id also let the store's group
/// commit batch the starts of different shards. Measured with 64
/// connections on a loaded 2-core machine (other builds and benchmarks
/// running; the figures moved threefold between runs): 64 pairs 690 to
/// 2,450 starts/s against a bare axum handler doing one durable put at
/// 6,900 to 7,700/s in the same runs, 8 pairs 625 to 1,485/s against 7,300
/// to 11,400/s. The starts are bound by the workflows' own writes (start,
/// step, executions count, result), not by the coordinator. Since the
/// engine's start runs in parallel with the coordinator's save and ends
/// ride in the starts' saves (0.94 saves per start): 3,955 and 4,718
/// starts/s against bare axum's 12,525 and 21,094/s in the same loaded
/// runs, and 8,219/s against 20,148/s on a quiet machine.
pub(crate) const COORDINATOR_SHARDS: u32 = 64;

/// The coordinators, sharded by coordinator id: shard `i` is a
/// CoordinatorV1, a CoordinatorV2 and the `use_v2_coordinator` router over
/// them.
#[derive(Debug)]
pub struct Coordinators {
    /// The routers, one per shard.
    pub routers: Vec<CoordinatorRouter>,
    /// The CoordinatorV1 of each shard.
    pub v1: Vec<ActorRef<CoordinatorV1>>,
    /// The CoordinatorV2 (a persistent agent) of each shard.
    pub v2: Vec<ActorRef<jido_agents::AgentServer<CoordinatorV2>>>,
}

impl Coordinators {
    /// The router of `coordinator_id`'s shard (stable: murmur3 of the id).
    pub fn router(&self, coordinator_id: &str) -> &CoordinatorRouter {
        let hash = foundation_flags::murmur3_x86_32(coordinator_id.as_bytes(), 0) as usize;
        &self.routers[hash % self.routers.len()]
    }
}

/// Which component a [`Part`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum PartKind {
    /// Probes the store.
    Store,
    /// Opens the flags.
    Flags,
    /// A fresh error tracker.
    Errors,
    /// A fresh registry.
    Registry,
    /// The signal router and the event log.
    Signals,
    /// TaskAgent and MonitorAgent.
    Agents,
    /// The workflow engine.
    Workflows,
    /// The coordinators and their router.
    Coordinators,
    /// The deployment monitor.
    Deploy,
    /// The HTTP server.
    Http,
}

/// What a part started and must stop.
#[derive(Default)]
enum Owned {
    #[default]
    Nothing,
    Supervisor(SupervisorRef),
    /// The agents' tree, the watcher of `use_persistent_agents` (a task
    /// this part owns, see `spawn::owned`), and the mode the tree runs in
    /// (persistent or not).
    Agents(SupervisorRef, tokio::task::JoinHandle<()>, bool),
    Engine(WorkflowEngine),
    Router(SignalRouter, SupervisorRef),
    Http(crate::http::ServerHandle),
    /// The monitor's tree and its driver (a task this part owns).
    Deploy(SupervisorRef, tokio::task::JoinHandle<()>),
}

/// One child of the application tree.
pub(crate) struct Part {
    kind: PartKind,
    shared: Arc<Shared>,
    owned: Owned,
    /// The generations of what this instance published.
    generations: Vec<Option<u64>>,
}

impl std::fmt::Debug for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Part").field("kind", &self.kind).finish()
    }
}

/// Adds the eleven children, in dependency order, to `tree`.
pub(super) fn add_children(
    tree: &mut SupervisorBuilder,
    shared: &Arc<Shared>,
    monitor_tick: Option<Duration>,
) {
    let part = |id: &'static str, kind: PartKind| {
        let shared = Arc::clone(shared);
        let mut options = foundation_core::ActorOptions::<Part>::new();
        options.start_timeout(Duration::from_secs(30));
        let mut spec = ChildSpec::<Part>::from_fn_with_options(
            id,
            move || PartArgs {
                kind,
                shared: Arc::clone(&shared),
                monitor_tick,
            },
            options,
        );
        spec.shutdown(Shutdown::Timeout(PART_SHUTDOWN));
        spec
    };
    tree.child(part("store", PartKind::Store))
        .child(part("flags", PartKind::Flags))
        .child(part("errors", PartKind::Errors))
        .child(part("registry", PartKind::Registry))
        .child(shared.tasks.child_spec("tasks"))
        .child(part("signals", PartKind::Signals))
        .child(part("agents", PartKind::Agents))
        .child(part("workflows", PartKind::Workflows))
        .child(part("coordinators", PartKind::Coordinators))
        .child(part("deploy", PartKind::Deploy))
        .child(part("http", PartKind::Http));
}

/// What a part starts from.
#[derive(Clone)]
pub(crate) struct PartArgs {
    kind: PartKind,
    shared: Arc<Shared>,
    monitor_tick: Option<Duration>,
}

impl Actor for Part {
    type Args = PartArgs;
    type Call = ();
    type Reply = PartKind;
    type Cast = ();
    type Info = ();

    async fn init(args: PartArgs, ctx: &mut Context<Self>) -> Result<Self> {
        let shared = args.shared;
        let owned = match args.kind {
            PartKind::Store => {
                // A read through the store: fails when it was closed.
                let probe: StateStore<ExecutionCount> =
                    crate::works::execution_counts(&shared.store)?;
                probe.get("jido_system/probe").await?;
                Owned::Nothing
            }
            PartKind::Flags => start_flags(&shared).await?,
            PartKind::Errors => {
                let mut builder = ErrorTracker::builder();
                builder.clock(Arc::clone(&shared.clock));
                shared.errors.set(builder.build()?);
                Owned::Nothing
            }
            PartKind::Registry => {
                shared.registry.set(
                    Registry::builder()
                        .index("capability")
                        .index("kind")
                        .build(),
                );
                Owned::Nothing
            }
            PartKind::Signals => start_signals(&shared).await?,
            PartKind::Agents => {
                // Subscribed before the flag is read: no change is missed.
                let changes = shared.flags.get()?.subscribe();
                let persistent = shared.flags.get()?.is_enabled(USE_PERSISTENT_AGENTS);
                let supervisor = start_agents(&shared, persistent).await?;
                let watcher = watch_agent_mode(changes, ctx.myself());
                Owned::Agents(supervisor, watcher, persistent)
            }
            PartKind::Workflows => {
                let mut builder =
                    WorkflowEngine::builder(shared.store.clone(), shared.works.clone());
                builder
                    .clock(Arc::clone(&shared.clock))
                    .events(&shared.events)
                    .executor(Arc::new(GatedExecutor::new(Arc::clone(&shared))));
                if shared.node.store_kind().is_shared() {
                    // Several nodes on one store share the workflows
                    // through leases owned by node id (takeover of a dead
                    // node's work). On an embedded store the engine keeps
                    // its default owner, the same across restarts, so a
                    // restarted process resumes at once instead of waiting
                    // for the leases of its previous pid to expire.
                    builder.owner(shared.node.id()).multi_node(true);
                }
                if let Some(ttl) = shared.node.workflow_lease_ttl() {
                    builder.lease_ttl(ttl);
                }
                let engine = builder.start().await?;
                shared.engine.set(engine.clone());
                Owned::Engine(engine)
            }
            PartKind::Coordinators => start_coordinators(&shared).await?,
            PartKind::Deploy => start_deploy(&shared, args.monitor_tick).await?,
            PartKind::Http => Owned::Http(crate::http::serve(Arc::clone(&shared)).await?),
        };
        // A nested tree that ends (its restart intensity exceeded, or
        // killed) ends this part too, so the application's tree restarts it
        // and every part after it.
        match &owned {
            Owned::Supervisor(supervisor)
            | Owned::Agents(supervisor, _, _)
            | Owned::Router(_, supervisor)
            | Owned::Deploy(supervisor, _) => {
                ctx.monitor(supervisor.process());
            }
            Owned::Engine(engine) => {
                ctx.monitor(engine.supervisor().process());
            }
            Owned::Nothing | Owned::Http(_) => {}
        }
        Ok(Part {
            kind: args.kind,
            generations: Part::published(args.kind, &shared),
            shared,
            owned,
        })
    }

    async fn handle_down(&mut self, down: Down, _ctx: &mut Context<Self>) -> Result<()> {
        // A Down of an earlier instance's tree (stopped by its terminate)
        // may reach this instance; only this instance's own tree counts.
        let own = match &self.owned {
            Owned::Supervisor(supervisor)
            | Owned::Agents(supervisor, _, _)
            | Owned::Router(_, supervisor)
            | Owned::Deploy(supervisor, _) => Some(supervisor.process().id()),
            Owned::Engine(engine) => Some(engine.supervisor().process().id()),
            Owned::Nothing | Owned::Http(_) => None,
        };
        if own != Some(down.process) {
            return Ok(());
        }
        Err(Error::new(
            ErrorCode::DEPENDENCY_FAILED,
            format!(
                "the {:?} part's own tree ended ({:?}); restarting the part",
                self.kind, down.reason
            ),
        ))
    }

    async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) -> Result<PartKind> {
        Ok(self.kind)
    }

    /// A flag changed (from the agents' watcher): the agents part swaps
    /// its tree when `use_persistent_agents` no longer matches its mode.
    async fn handle_cast(&mut self, _: (), ctx: &mut Context<Self>) -> Result<()> {
        let Owned::Agents(supervisor, _, persistent) = &mut self.owned else {
            return Ok(());
        };
        let wanted = self.shared.flags.get()?.is_enabled(USE_PERSISTENT_AGENTS);
        if wanted == *persistent {
            return Ok(());
        }
        tracing::info!(
            persistent = wanted,
            "use_persistent_agents changed: restarting the agents in the new mode"
        );
        // The old tree first: two TaskAgents must not share one saved
        // state. Its Down reaches this part after the swap and is ignored.
        stop_supervisor(supervisor).await;
        let replacement = start_agents(&self.shared, wanted).await?;
        ctx.monitor(replacement.process());
        *supervisor = replacement;
        *persistent = wanted;
        self.generations = Part::published(self.kind, &self.shared);
        Ok(())
    }

    async fn terminate(&mut self, _reason: &ExitReason, _ctx: &mut Context<Self>) {
        self.withdraw();
        match std::mem::take(&mut self.owned) {
            Owned::Nothing => {}
            Owned::Supervisor(supervisor) => stop_supervisor(&supervisor).await,
            Owned::Agents(supervisor, watcher, _) => {
                watcher.abort();
                stop_supervisor(&supervisor).await;
            }
            Owned::Router(router, supervisor) => {
                stop_supervisor(&supervisor).await;
                router.shutdown().await;
            }
            Owned::Engine(engine) => {
                match tokio::time::timeout(INNER_SHUTDOWN, engine.shutdown()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "the workflow engine stopped with an error")
                    }
                    Err(_) => {
                        tracing::warn!("the workflow engine did not stop in time; killing it");
                        engine.supervisor().process().kill();
                    }
                }
            }
            Owned::Http(server) => server.stop(INNER_SHUTDOWN).await,
            Owned::Deploy(supervisor, driver) => {
                driver.abort();
                stop_supervisor(&supervisor).await;
            }
        }
    }
}

impl Part {
    /// The generations of what this part published, in [`withdraw`]'s order.
    ///
    /// [`withdraw`]: Part::withdraw
    fn published(kind: PartKind, shared: &Shared) -> Vec<Option<u64>> {
        match kind {
            PartKind::Flags => vec![shared.flags.generation()],
            PartKind::Errors => vec![shared.errors.generation()],
            PartKind::Registry => vec![shared.registry.generation()],
            PartKind::Signals => vec![shared.signals.generation(), shared.event_log.generation()],
            PartKind::Agents => vec![
                shared.task_agent.generation(),
                shared.monitor_agent.generation(),
            ],
            PartKind::Workflows => vec![shared.engine.generation()],
            PartKind::Coordinators => vec![shared.coordinators.generation()],
            PartKind::Deploy => vec![shared.monitor.generation()],
            PartKind::Http | PartKind::Store => Vec::new(),
        }
    }

    /// Withdraws what this part published (and nothing a later instance
    /// published since).
    fn withdraw(&self) {
        let shared = &self.shared;
        let generation = |index: usize| self.generations.get(index).copied().flatten();
        match self.kind {
            PartKind::Flags => drop(shared.flags.clear_if(generation(0))),
            PartKind::Errors => drop(shared.errors.clear_if(generation(0))),
            PartKind::Registry => drop(shared.registry.clear_if(generation(0))),
            PartKind::Signals => {
                shared.signals.clear_if(generation(0));
                shared.event_log.clear_if(generation(1));
            }
            PartKind::Agents => {
                shared.task_agent.clear_if(generation(0));
                shared.monitor_agent.clear_if(generation(1));
            }
            PartKind::Workflows => drop(shared.engine.clear_if(generation(0))),
            PartKind::Coordinators => drop(shared.coordinators.clear_if(generation(0))),
            PartKind::Deploy => drop(shared.monitor.clear_if(generation(0))),
            PartKind::Http | PartKind::Store => {}
        }
    }
}

impl Drop for Part {
    /// A killed part (no `terminate`) still takes what it started with it.
    fn drop(&mut self) {
        self.withdraw();
        match &self.owned {
            Owned::Nothing => {}
            Owned::Supervisor(supervisor) | Owned::Router(_, supervisor) => {
                supervisor.process().kill();
            }
            Owned::Agents(supervisor, watcher, _) => {
                watcher.abort();
                supervisor.process().kill();
            }
            Owned::Engine(engine) => {
                engine.supervisor().process().kill();
            }
            Owned::Http(server) => server.abort(),
            Owned::Deploy(supervisor, driver) => {
                driver.abort();
                supervisor.process().kill();
            }
        }
    }
}

async fn stop_supervisor(supervisor: &SupervisorRef) {
    match tokio::time::timeout(INNER_SHUTDOWN, supervisor.shutdown()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(%error, supervisor = supervisor.name(), "stopped with an error")
        }
        Err(_) => {
            tracing::warn!(
                supervisor = supervisor.name(),
                "did not stop in time; killing it"
            );
            supervisor.process().kill();
        }
    }
}

async fn start_flags(shared: &Arc<Shared>) -> Result<Owned> {
    let mut builder = Flags::builder();
    builder
        .declare_all(crate::flags::declarations())
        .store(PersistFlagStore::new(&shared.store)?)
        .clock(Arc::clone(&shared.clock))
        .process_environment();
    let flags = builder.open().await?;
    shared.flags.set(flags);
    Ok(Owned::Nothing)
}

async fn start_signals(shared: &Arc<Shared>) -> Result<Owned> {
    let mut builder = SignalRouter::builder("jido_system");
    builder.clock(Arc::clone(&shared.clock));
    let router = builder.build()?;
    let mut tree = Supervisor::builder("jido_system_signals");
    let log = ChildSpec::<EventLog>::new("event_log", ());
    let handle: ActorRef<EventLog> = log.handle();
    tree.child(log);
    let supervisor = tree.start().await?;
    router.subscribe("jido.*", &handle)?;
    shared.signals.set(router.clone());
    shared.event_log.set(handle);
    Ok(Owned::Router(router, supervisor))
}

/// The TaskAgent's handler: runs the demo work named by the task's type.
#[derive(Debug, Clone)]
pub struct DemoTaskHandler {
    counts: StateStore<ExecutionCount>,
}

impl TaskHandler for DemoTaskHandler {
    async fn run(&self, task: TaskRun) -> Result<Value> {
        crate::works::run(
            &task.kind,
            &self.counts,
            &task.input,
            &task.idempotency_key,
            &std::collections::BTreeMap::new(),
        )
        .await
    }
}

/// Watches the flags for the agents part: every change is passed to the
/// part, which swaps its tree when `use_persistent_agents` no longer
/// matches its mode (so a change takes effect without a restart of the
/// application's children). A task the agents part owns (aborted when the
/// part stops, started again by its restart), not under the task
/// supervisor: stopping and restarting the `tasks` child alone
/// (`terminate_child`/`restart_child` by hand) leaves it watching.
fn watch_agent_mode(
    mut changes: tokio::sync::broadcast::Receiver<foundation_flags::FlagChange>,
    part: ActorRef<Part>,
) -> tokio::task::JoinHandle<()> {
    // Owned by the agents part, not under the `tasks` child: a restart of
    // that child alone must not silence the flag.
    super::spawn::owned(async move {
        loop {
            match changes.recv().await {
                // Lagged: some changes were missed; the part re-reads the
                // flag, so one nudge covers them.
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if part.cast(()).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}

/// Starts TaskAgent and MonitorAgent under their own supervisor,
/// persistent in the store or volatile, and publishes them.
async fn start_agents(shared: &Arc<Shared>, persistent: bool) -> Result<SupervisorRef> {
    let registry = shared.registry.get()?;
    let errors = shared.errors.get()?;
    let handler = DemoTaskHandler {
        counts: crate::works::execution_counts(&shared.store)?,
    };
    let mut task_spec =
        AgentSpec::<AppTaskAgent>::new("task_agent", TaskAgentArgs::new(handler), &shared.tasks);
    task_spec
        .registry(&registry)
        .clock(Arc::clone(&shared.clock));
    let mut monitor_args = MonitorArgs::new();
    monitor_args
        .check(Arc::new(ProcessCheck::new(
            "process",
            Arc::clone(&shared.clock),
        )))
        .check(Arc::new(StoreLatencyCheck::new(
            "store",
            &shared.store,
            Arc::clone(&shared.clock),
        )))
        .check(Arc::new(ErrorRateCheck::new(
            "errors",
            errors,
            Duration::from_secs(60),
        )))
        .check(Arc::new(RestartRateCheck::new(
            "supervision",
            shared.events.subscribe(),
            Duration::from_secs(60),
            Arc::clone(&shared.clock),
        )))
        .interval(Duration::from_secs(30));
    let mut monitor_spec =
        AgentSpec::<MonitorAgent>::new("monitor_agent", monitor_args, &shared.tasks);
    monitor_spec
        .registry(&registry)
        .clock(Arc::clone(&shared.clock));
    if persistent {
        task_spec.persistent(&shared.store);
        monitor_spec.persistent(&shared.store);
    }
    let task_child = task_spec.child_spec()?;
    let monitor_child = monitor_spec.child_spec()?;
    let task_agent = AgentRef::from(task_child.handle());
    let monitor_agent = AgentRef::from(monitor_child.handle());
    let mut tree = Supervisor::builder("jido_system_agents");
    tree.strategy(Strategy::OneForOne)
        .intensity(3, Duration::from_secs(5))
        .clock(Arc::clone(&shared.clock))
        .events(&shared.events)
        .child(task_child)
        .child(monitor_child);
    let supervisor = tree.start().await?;
    shared.task_agent.set(task_agent);
    shared.monitor_agent.set(monitor_agent);
    Ok(supervisor)
}

async fn start_coordinators(shared: &Arc<Shared>) -> Result<Owned> {
    let flags = shared.flags.get()?;
    let engine = shared.engine.get()?;
    let feed: Arc<MonitorFeed> = Arc::new(MonitorFeed::new(Arc::clone(shared)));
    let mut tree = Supervisor::builder("jido_system_coordinators");
    tree.strategy(Strategy::OneForOne)
        .intensity(2 * COORDINATOR_SHARDS + 3, Duration::from_secs(5))
        .clock(Arc::clone(&shared.clock))
        .events(&shared.events);
    let mut coordinators = Coordinators {
        routers: Vec::new(),
        v1: Vec::new(),
        v2: Vec::new(),
    };
    for shard in 0..COORDINATOR_SHARDS {
        let id = format!("{COORDINATOR_ID}-{shard}");
        let v1 = CoordinatorV1::child_spec(CoordinatorV1Args {
            id: id.clone(),
            works: shared.works.clone(),
            tasks: shared.tasks.clone(),
            clock: Arc::clone(&shared.clock),
            recorder: Some(feed.clone()),
        });
        let v2 = CoordinatorV2::child_spec(CoordinatorV2Args {
            id,
            engine: engine.clone(),
            store: shared.store.clone(),
            clock: Arc::clone(&shared.clock),
            recorder: Some(feed.clone()),
        })?;
        coordinators.routers.push(CoordinatorRouter::new(
            flags.clone(),
            v1.handle(),
            v2.handle(),
        )?);
        coordinators.v1.push(v1.handle());
        coordinators.v2.push(v2.handle());
        tree.child(v1).child(v2);
    }
    let supervisor = tree.start().await?;
    shared.coordinators.set(Arc::new(coordinators));
    Ok(Owned::Supervisor(supervisor))
}

async fn start_deploy(shared: &Arc<Shared>, tick: Option<Duration>) -> Result<Owned> {
    let flags = shared.flags.get()?;
    let mut builder = DeployMonitor::builder();
    builder
        .plan(shared.plan.clone())
        .flags(flags)
        .store(shared.store.clone())
        .clock(Arc::clone(&shared.clock))
        .supervisor_events(&shared.events)
        .signal_router(shared.signals.get()?)
        .error_tracker(shared.errors.get()?);
    let monitor = builder.open().await?;
    let mut args = MonitorActorArgs::new(monitor.clone());
    args.prometheus = shared.prometheus.clone();
    args.tick = tick;
    let mut tree = Supervisor::builder("jido_system_deploy");
    tree.clock(Arc::clone(&shared.clock))
        .child(ChildSpec::<MonitorActor>::new("monitor", args));
    let supervisor = tree.start().await?;
    // The flags' ramp driver is a future the application runs under its
    // task supervisor (foundation-flags starts nothing itself).
    let driver = shared.flags.get()?.ramp_driver();
    // The same task holds this node's lease and, on a store other nodes
    // share, follows their flag and rollout changes (`cluster.rs`).
    let node = Arc::clone(shared);
    let follow = if shared.node.store_kind().is_shared() {
        Some(super::cluster::follow_store(
            shared.store.clone(),
            shared.flags.get()?,
            monitor.clone(),
        ))
    } else {
        None
    };
    // Owned by the deploy part, not under the `tasks` child (see
    // `spawn::owned`).
    let driver = super::spawn::owned(async move {
        let ramps = async {
            if let Err(error) = driver.run().await {
                tracing::warn!(%error, "the flag ramp driver stopped");
            }
        };
        let lease = super::cluster::keep_node_lease(&node.node, &node.store);
        let follow = async {
            match follow {
                Some(follow) => follow.await,
                None => std::future::pending().await,
            }
        };
        // The ramp driver may end (the flags gone); the others run until
        // the part aborts the task.
        tokio::join!(ramps, lease, follow);
    });
    shared.monitor.set(monitor);
    Ok(Owned::Deploy(supervisor, driver))
}
