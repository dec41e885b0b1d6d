//! The engine: starts workflows, answers status and list, routes cancel
//! and signals, and resumes every unfinished workflow at start-up.
//!
//! Its supervision tree (one `rest_for_one` supervisor, `jido_workflow`):
//!
//! 1. `tasks`: the task supervisor the default executor runs works under;
//! 2. `workflows`: the WorkflowSupervisor, a dynamic supervisor of
//!    [`WorkflowProcess`]es (transient: a crashed workflow restarts, a
//!    finished one does not; 3 restarts in 5 s by default);
//! 3. `resumer`: on every start, restarts each workflow whose summary is
//!    not terminal and that has no process (in multi-node mode, only those
//!    whose lease it gets: free, expired or its own);
//! 4. `lease_heartbeat` (multi-node mode only, see `lease`): renews the
//!    leases of the running workflows and claims expired ones every third
//!    of the lease time, resuming the claimed workflows.
//!
//! When the WorkflowSupervisor gives up (more restarts than its intensity
//! allows), the top supervisor restarts it and, after it, the resumer,
//! which brings every unfinished workflow back from its journal. The top
//! supervisor's own intensity (`recovery_intensity`, 10 in 10 s by
//! default) bounds that.
//!
//! In multi-node mode a workflow process whose store fails in a way that
//! passes (a lost connection, a restarting database, a timeout) does not
//! crash: it steps aside (stops normally, its lease no longer renewed),
//! and once the lease expires a claim resumes it from its journal, here
//! or on another engine. A database restart fails every running workflow
//! at once; as crashes they would exhaust both intensities and the engine
//! would stop running workflows for good (the test
//! `three_engines_survive_a_database_restart_under_load` found this).
//!
//! The WorkflowRegistry is a `foundation_core::registry::Registry`: each
//! process registers its workflow id (unique keys).
//!
//! This module is not for how one workflow runs (see `process`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use foundation_core::registry::Registry;
use foundation_core::{
    Actor, ActorOptions, ActorRef, ChildSpec, Context, DynamicSupervisor, EventBus, Restart,
    Strategy, Supervisor, SupervisorBuilder, SupervisorRef, TaskSupervisor,
};
use foundation_error::clock::SharedClock;
use foundation_error::{Error, ErrorCode};
use foundation_persist::{Lease, Leases, MAX_READ_LIMIT, Store};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::definition::WorkflowDefinition;
use crate::executor::{StepExecutor, TaskExecutor};
use crate::lease::{
    DEFAULT_LEASE_TTL, Heartbeat, HeartbeatArgs, HeldLeases, MIN_LEASE_TTL, lease_name,
};
use crate::metrics;
use crate::process::{
    ProcessArgs, WorkflowCall, WorkflowProcess, WorkflowReply, info_from, launch_events, load,
};
use crate::record::{DefinitionRecord, Event, Keyspaces, Summary, to_json_text, wall_millis};
use crate::state::WorkflowState;
use crate::status::{
    HistoryEntry, ListFilter, WorkflowInfo, WorkflowPage, WorkflowStatus, time_from_millis,
};
use crate::work::WorkRegistry;

/// How long a call to a workflow process waits by default.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The default bound on tasks running at once in one workflow.
pub const DEFAULT_MAX_PARALLEL: usize = 16;

const MAX_CACHED_DEFINITIONS: usize = 1024;

/// What every workflow process of one engine shares.
pub(crate) struct Shared {
    pub(crate) keyspaces: Keyspaces,
    pub(crate) clock: SharedClock,
    pub(crate) works: WorkRegistry,
    pub(crate) executor: Arc<dyn StepExecutor>,
    pub(crate) registry: Registry,
    /// The store's leases.
    pub(crate) leases: Leases,
    /// This engine's owner id (its node id).
    pub(crate) owner: String,
    /// How long a workflow lease lasts unless renewed.
    pub(crate) lease_ttl: Duration,
    /// Whether the heartbeat renews and claims (multi-node mode).
    pub(crate) multi_node: bool,
    /// The leases the live processes hold, for the heartbeat.
    pub(crate) held: HeldLeases,
    /// While set, the heartbeat neither renews nor claims.
    pub(crate) heartbeat_suspended: AtomicBool,
    /// Counts heartbeat ticks (for event-driven waits).
    pub(crate) heartbeats: tokio::sync::watch::Sender<u64>,
    /// How many workflows this engine gave up because their lease was lost.
    pub(crate) leases_lost: AtomicU64,
    /// How many expired leases the heartbeat claimed.
    pub(crate) leases_claimed: AtomicU64,
    pub(crate) max_parallel: usize,
    waiters: Mutex<HashMap<String, Vec<oneshot::Sender<WorkflowInfo>>>>,
    pub(crate) next_run: AtomicU64,
    definitions: Mutex<HashMap<String, WorkflowDefinition>>,
    stored_definitions: Mutex<HashSet<String>>,
    listeners: Mutex<Vec<FinishListener>>,
    /// The workflows whose live process waits on a delay or a signal (no
    /// step work running), by id, with the instance that listed it; `list`
    /// reports them `waiting`. Only changes are written (one lock per
    /// transition), so a step costs nothing here.
    waiting: Mutex<HashMap<Arc<str>, u64>>,
}

/// Called with a workflow's id and final status when its process ends it
/// (possibly more than once for one workflow, after a crash at the end).
pub type FinishListener = Arc<dyn Fn(&str, WorkflowStatus) + Send + Sync>;

/// Drops a waiter's closed senders when its `wait` ends, however it ends.
struct WaitGuard<'a> {
    shared: &'a Shared,
    id: &'a str,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let mut waiters = self
            .shared
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(senders) = waiters.get_mut(self.id) {
            senders.retain(|sender| !sender.is_closed());
            if senders.is_empty() {
                waiters.remove(self.id);
            }
        }
    }
}

impl Shared {
    /// Hands the final state of workflow `id` to every `wait` on it
    /// (built only when someone waits).
    pub(crate) fn notify_finished(&self, id: &str, info: impl FnOnce() -> WorkflowInfo) {
        let senders = self
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        if let Some(senders) = senders {
            let info = info();
            for sender in senders {
                let _ = sender.send(info.clone());
            }
        }
    }

    /// Lists (or unlists) workflow `id` as waiting, for the instance
    /// `instance`; unlisting by an older instance is ignored.
    /// The id is shared with the process (no copy per waiting workflow).
    pub(crate) fn set_waiting(&self, id: &Arc<str>, instance: u64, waiting: bool) {
        let mut listed = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if waiting {
            listed.insert(Arc::clone(id), instance);
        } else if listed.get(&**id) == Some(&instance) {
            listed.remove(&**id);
        }
    }

    /// Whether workflow `id`'s live process waits on a delay or a signal.
    pub(crate) fn is_waiting(&self, id: &str) -> bool {
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(id)
    }

    pub(crate) fn listeners(&self) -> Vec<FinishListener> {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The definition version `hash`, from the cache or the store.
    pub(crate) async fn definition(&self, hash: &str) -> Result<WorkflowDefinition, Error> {
        if let Some(definition) = self.cached(hash) {
            return Ok(definition);
        }
        let record = self.keyspaces.definitions.get(hash).await?.ok_or_else(|| {
            Error::new(
                ErrorCode::DATA_NOT_FOUND,
                format!("no workflow definition {hash}"),
            )
        })?;
        let definition = WorkflowDefinition::from_json(&record.canonical)?;
        self.cache(&definition);
        Ok(definition)
    }

    fn cached(&self, hash: &str) -> Option<WorkflowDefinition> {
        self.definitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(hash)
            .cloned()
    }

    fn cache(&self, definition: &WorkflowDefinition) {
        let mut cache = self
            .definitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED_DEFINITIONS {
            cache.clear();
        }
        cache.insert(definition.hash().as_str().to_owned(), definition.clone());
    }
}

/// Builds a [`WorkflowEngine`].
pub struct WorkflowEngineBuilder {
    store: Store,
    works: WorkRegistry,
    clock: Option<SharedClock>,
    executor: Option<Arc<dyn StepExecutor>>,
    owner: String,
    lease_ttl: Duration,
    multi_node: bool,
    max_parallel: usize,
    intensity: (u32, Duration),
    recovery_intensity: (u32, Duration),
    events: Option<EventBus>,
}

impl std::fmt::Debug for WorkflowEngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowEngineBuilder")
            .field("works", &self.works)
            .field("owner", &self.owner)
            .field("lease_ttl", &self.lease_ttl)
            .field("multi_node", &self.multi_node)
            .field("max_parallel", &self.max_parallel)
            .finish()
    }
}

impl WorkflowEngineBuilder {
    /// Reads time from `clock` (default: the system clock). Durable
    /// deadlines are its wall time; timers sleep on tokio's timer.
    pub fn clock(&mut self, clock: SharedClock) -> &mut Self {
        self.clock = Some(clock);
        self
    }

    /// Runs works on `executor` (default: a [`TaskExecutor`] on the
    /// engine's own task supervisor).
    pub fn executor(&mut self, executor: Arc<dyn StepExecutor>) -> &mut Self {
        self.executor = Some(executor);
        self
    }

    /// Names this engine (node) as the owner of its workflow leases
    /// (default `"local"`). Engines sharing one store in multi-node mode
    /// need distinct owners.
    pub fn owner(&mut self, owner: impl Into<String>) -> &mut Self {
        self.owner = owner.into();
        self
    }

    /// How long a workflow lease lasts unless renewed (default 10 s, at
    /// least 300 ms). In multi-node mode the heartbeat renews and claims
    /// every third of it, so a dead engine's workflows resume elsewhere
    /// within about `ttl + ttl / 3`.
    pub fn lease_ttl(&mut self, ttl: Duration) -> &mut Self {
        self.lease_ttl = ttl;
        self
    }

    /// Multi-node mode (default off): several engines (distinct
    /// [`owner`](Self::owner)s) share one store (PostgreSQL). The engine
    /// then runs a heartbeat that renews its workflow leases and claims
    /// expired ones (resuming those workflows), resumes at start-up only
    /// the workflows whose lease it can get, and hands its unfinished
    /// workflows over on shutdown. Off, the engine owns every workflow of
    /// its store (embedded redb), still fencing stale instances.
    pub fn multi_node(&mut self, enabled: bool) -> &mut Self {
        self.multi_node = enabled;
        self
    }

    /// Bounds the tasks running at once in one workflow (default 16).
    pub fn max_parallel(&mut self, max_parallel: usize) -> &mut Self {
        self.max_parallel = max_parallel;
        self
    }

    /// The WorkflowSupervisor's restart intensity (default 3 in 5 s).
    pub fn intensity(&mut self, max_restarts: u32, period: Duration) -> &mut Self {
        self.intensity = (max_restarts, period);
        self
    }

    /// The top supervisor's restart intensity: how often the
    /// WorkflowSupervisor may itself be restarted (default 10 in 10 s).
    pub fn recovery_intensity(&mut self, max_restarts: u32, period: Duration) -> &mut Self {
        self.recovery_intensity = (max_restarts, period);
        self
    }

    /// Publishes the engine's supervisor events (children started, exited,
    /// restarted: workflow processes, the task supervisor, the resumer) on
    /// `bus`, an application's event bus (default: none).
    pub fn events(&mut self, bus: &EventBus) -> &mut Self {
        self.events = Some(bus.clone());
        self
    }

    /// Starts the engine: its supervision tree, then the resumption of
    /// every unfinished workflow (in the background, under the tree; see
    /// [`WorkflowEngine::resumed`]).
    ///
    /// # Errors
    ///
    /// `invalid_config_value` for a parallel bound of 0, an empty owner or
    /// a lease time below 300 ms or above a day; the store's errors
    /// opening the keyspaces; the supervisors' start errors.
    pub async fn start(&self) -> Result<WorkflowEngine, Error> {
        let (top, parts) = self.build()?;
        let supervisor = top.start().await?;
        Ok(parts.into_engine(supervisor))
    }

    /// Makes the engine's tree the child `id` of an application's
    /// supervisor; the returned engine works once the parent has started
    /// the child (and resumes unfinished workflows then).
    ///
    /// # Errors
    ///
    /// As for [`start`](Self::start), except the supervisors' start errors,
    /// which the parent reports.
    pub fn into_child_spec(
        &self,
        id: impl Into<Arc<str>>,
    ) -> Result<(ChildSpec<Supervisor>, WorkflowEngine), Error> {
        let (top, parts) = self.build()?;
        let (spec, supervisor) = top.into_child_spec(id)?;
        Ok((spec, parts.into_engine(supervisor)))
    }

    fn build(&self) -> Result<(SupervisorBuilder, EngineParts), Error> {
        if self.max_parallel == 0 {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                "max_parallel must be at least 1",
            ));
        }
        let clock = self
            .clock
            .clone()
            .unwrap_or_else(foundation_error::clock::system);
        let tasks = TaskSupervisor::new("jido_workflow_tasks");
        let executor = self
            .executor
            .clone()
            .unwrap_or_else(|| Arc::new(TaskExecutor::new(tasks.clone())));
        if self.owner.is_empty() || self.owner.len() > foundation_persist::lease::MAX_OWNER_BYTES {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                "the engine's owner id is 1 to 256 bytes long",
            ));
        }
        if self.lease_ttl < MIN_LEASE_TTL
            || self.lease_ttl > foundation_persist::lease::MAX_LEASE_TTL
        {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                "the workflow lease time is 300 ms to one day",
            )
            .with_context("lease_ttl_ms", self.lease_ttl.as_millis()));
        }
        let shared = Arc::new(Shared {
            keyspaces: Keyspaces::open(&self.store)?,
            clock,
            works: self.works.clone(),
            executor,
            registry: Registry::new(),
            leases: self.store.leases(),
            owner: self.owner.clone(),
            lease_ttl: self.lease_ttl,
            multi_node: self.multi_node,
            held: HeldLeases::default(),
            heartbeat_suspended: AtomicBool::new(false),
            heartbeats: tokio::sync::watch::channel(0).0,
            leases_lost: AtomicU64::new(0),
            leases_claimed: AtomicU64::new(0),
            max_parallel: self.max_parallel,
            waiters: Mutex::new(HashMap::new()),
            waiting: Mutex::new(HashMap::new()),
            next_run: AtomicU64::new(1),
            definitions: Mutex::new(HashMap::new()),
            stored_definitions: Mutex::new(HashSet::new()),
            listeners: Mutex::new(Vec::new()),
        });

        let mut options = ActorOptions::<WorkflowProcess>::new();
        options.unbounded_mailbox();
        let mut workflows = DynamicSupervisor::<WorkflowProcess>::builder("workflows");
        workflows
            .restart(Restart::Transient)
            .intensity(self.intensity.0, self.intensity.1)
            .child_options(options);
        if let Some(bus) = &self.events {
            workflows.events(bus);
        }
        let (workflows_spec, workflows) = workflows.into_child_spec("workflows")?;

        let resumed = Arc::new(tokio::sync::watch::channel(0u64).0);
        let resumer_args = ResumerArgs {
            shared: Arc::clone(&shared),
            workflows: workflows.clone(),
            resumed: Arc::clone(&resumed),
        };
        let resumer = ChildSpec::<Resumer>::new("resumer", resumer_args);

        let mut top = Supervisor::builder("jido_workflow");
        top.strategy(Strategy::RestForOne)
            .intensity(self.recovery_intensity.0, self.recovery_intensity.1)
            .child(tasks.child_spec("tasks"))
            .child(workflows_spec)
            .child(resumer);
        if let Some(bus) = &self.events {
            top.events(bus);
        }
        if self.multi_node {
            let heartbeat = HeartbeatArgs {
                shared: Arc::clone(&shared),
                workflows: workflows.clone(),
            };
            top.child(ChildSpec::<Heartbeat>::new("lease_heartbeat", heartbeat));
        }
        Ok((
            top,
            EngineParts {
                shared,
                workflows,
                tasks,
                resumed,
            },
        ))
    }
}

/// An engine's handles, before its tree is started.
struct EngineParts {
    shared: Arc<Shared>,
    workflows: DynamicSupervisor<WorkflowProcess>,
    tasks: TaskSupervisor,
    resumed: Arc<tokio::sync::watch::Sender<u64>>,
}

impl EngineParts {
    fn into_engine(self, supervisor: SupervisorRef) -> WorkflowEngine {
        WorkflowEngine {
            shared: self.shared,
            supervisor,
            workflows: self.workflows,
            tasks: self.tasks,
            resumed: self.resumed,
        }
    }
}

/// The durable workflow engine. Cheap to clone.
///
/// ```
/// use std::time::Duration;
/// use foundation_persist::{Store, StoreOptions};
/// use jido_workflow::{StepInput, WorkRegistry, WorkflowDefinition, WorkflowEngine, WorkflowStatus};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), foundation_error::Error> {
/// let mut works = WorkRegistry::new();
/// works.register("double", |input: StepInput| async move {
///     Ok(json!(input.params["n"].as_i64().unwrap_or(0) * 2))
/// });
/// let store = Store::open_in_memory(&StoreOptions::new())?;
/// let engine = WorkflowEngine::builder(store, works).start().await?;
///
/// let definition = WorkflowDefinition::from_json(r#"{"name": "demo", "steps": [
///     {"task": {"id": "a", "work": "double", "params": {"n": 21}}}]}"#)?;
/// let id = engine.start_workflow(&definition, json!({"by": "doc"})).await?;
/// let info = engine.wait(&id, Duration::from_secs(5)).await?;
/// assert_eq!(info.status, WorkflowStatus::Completed);
/// assert_eq!(info.results()["a"], json!(42));
/// engine.shutdown().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct WorkflowEngine {
    shared: Arc<Shared>,
    supervisor: SupervisorRef,
    workflows: DynamicSupervisor<WorkflowProcess>,
    tasks: TaskSupervisor,
    resumed: Arc<tokio::sync::watch::Sender<u64>>,
}

impl std::fmt::Debug for WorkflowEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowEngine")
            .field("supervisor", &self.supervisor)
            .field("running", &self.shared.registry.count())
            .finish()
    }
}

impl WorkflowEngine {
    /// A builder for an engine on `store` running `works`.
    pub fn builder(store: Store, works: WorkRegistry) -> WorkflowEngineBuilder {
        WorkflowEngineBuilder {
            store,
            works,
            clock: None,
            executor: None,
            owner: "local".into(),
            lease_ttl: DEFAULT_LEASE_TTL,
            multi_node: false,
            max_parallel: DEFAULT_MAX_PARALLEL,
            intensity: (3, Duration::from_secs(5)),
            recovery_intensity: (10, Duration::from_secs(10)),
            events: None,
        }
    }

    /// Calls `listener` whenever a workflow process ends its workflow
    /// (completed, failed or cancelled). Listeners run on the workflow's
    /// process and must not block (send a message, bump a counter).
    pub fn on_finished(&self, listener: FinishListener) {
        self.shared
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(listener);
    }

    /// The works this engine runs.
    pub fn works(&self) -> &WorkRegistry {
        &self.shared.works
    }

    /// The stored status of workflow `id` (`None`: no such workflow).
    /// Running workflows read `running` (see [`list`](Self::list)).
    ///
    /// # Errors
    ///
    /// The store's errors.
    pub async fn summary_status(&self, id: &str) -> Result<Option<WorkflowStatus>, Error> {
        Ok(self
            .shared
            .keyspaces
            .summaries
            .get(id)
            .await?
            .map(|summary| summary.status()))
    }

    /// The WorkflowRegistry: workflow id to process (unique keys).
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// The WorkflowSupervisor.
    pub fn workflows(&self) -> &DynamicSupervisor<WorkflowProcess> {
        &self.workflows
    }

    /// The top supervisor (`jido_workflow`).
    pub fn supervisor(&self) -> &SupervisorRef {
        &self.supervisor
    }

    /// The task supervisor of the default executor.
    pub fn tasks(&self) -> &TaskSupervisor {
        &self.tasks
    }

    /// The process of workflow `id`, while it runs.
    pub fn process(&self, id: &str) -> Option<ActorRef<WorkflowProcess>> {
        self.shared.registry.lookup_actor::<WorkflowProcess>(id)
    }

    /// A new workflow id: a UUID version 7 (32 hex digits) whose leading
    /// bits are the engine clock's wall time in milliseconds, so ids sort
    /// by start time. Workflows started together then have neighbouring
    /// keys in the store's journal and summaries, and their writes touch
    /// a few pages instead of one page per workflow (random ids cost the
    /// store several times more per workflow).
    pub fn new_workflow_id(&self) -> String {
        let random = uuid::Uuid::new_v4();
        let mut tail = [0u8; 10];
        tail.copy_from_slice(&random.as_bytes()[6..]);
        let millis = wall_millis(self.shared.clock.as_ref());
        uuid::Builder::from_unix_timestamp_millis(millis, &tail)
            .into_uuid()
            .simple()
            .to_string()
    }

    /// Starts a workflow of `definition` with `metadata` under a new id
    /// (see [`new_workflow_id`](Self::new_workflow_id)); returns the id
    /// once the workflow is durable and its process runs.
    ///
    /// # Errors
    ///
    /// `validation_failed` for a definition naming an unknown work; the
    /// store's errors; the supervisor's (the workflow is then recorded and
    /// resumes at the next start).
    ///
    /// # Cancel safety
    ///
    /// If dropped after the store has committed, the workflow exists and
    /// is resumed by the next start of the engine (or `resume_all`).
    pub async fn start_workflow(
        &self,
        definition: &WorkflowDefinition,
        metadata: Value,
    ) -> Result<String, Error> {
        let id = self.new_workflow_id();
        self.start_workflow_with_id(&id, definition, metadata)
            .await?;
        Ok(id)
    }

    /// As [`start_workflow`](Self::start_workflow) under a given id.
    ///
    /// # Errors
    ///
    /// `already_exists` when the id is taken; otherwise as for
    /// [`start_workflow`](Self::start_workflow).
    ///
    /// # Cancel safety
    ///
    /// As for [`start_workflow`](Self::start_workflow).
    pub async fn start_workflow_with_id(
        &self,
        id: &str,
        definition: &WorkflowDefinition,
        metadata: Value,
    ) -> Result<(), Error> {
        self.start_seeded(id, definition, metadata, &BTreeMap::new())
            .await
    }

    /// Starts a workflow whose tasks named in `completed` (task id to
    /// output) already ran elsewhere, as for a migration: their results
    /// are journaled with the start and they do not run again.
    ///
    /// # Errors
    ///
    /// `validation_failed` for a task id the definition does not have;
    /// otherwise as for [`start_workflow_with_id`](Self::start_workflow_with_id).
    ///
    /// # Cancel safety
    ///
    /// As for [`start_workflow`](Self::start_workflow).
    pub async fn start_seeded(
        &self,
        id: &str,
        definition: &WorkflowDefinition,
        metadata: Value,
        completed: &BTreeMap<String, Value>,
    ) -> Result<(), Error> {
        definition.check_works(&self.shared.works)?;
        let mut seeded = Vec::with_capacity(completed.len() * 2);
        for (task_id, output) in completed {
            let task = definition
                .tasks()
                .iter()
                .position(|task| task.id == *task_id)
                .ok_or_else(|| {
                    Error::new(
                        ErrorCode::VALIDATION_FAILED,
                        format!("no task {task_id:?} to seed"),
                    )
                    .with_context("field", "completed")
                })?;
            let task = u32::try_from(task)
                .map_err(|_| Error::new(ErrorCode::RANGE_ERROR, "too many tasks"))?;
            seeded.push(Event::StepStarted { task, attempt: 1 });
            seeded.push(Event::StepSucceeded {
                task,
                output: to_json_text(output),
            });
        }
        let shared = &self.shared;
        let keyspaces = &shared.keyspaces;
        // An engine running this workflow refuses a second start at once.
        if shared.registry.whereis(id).is_some() {
            return Err(Error::new(
                ErrorCode::ALREADY_EXISTS,
                format!("a workflow {id} exists already"),
            )
            .with_context("workflow", id));
        }
        // Multi-node mode: the lease first, so that the start is fenced
        // and no other engine can resume this workflow between its start
        // and its process taking over. A single-node engine holds no store
        // leases (its registry and the journal's first append guard the
        // id; see `process.rs`), which saves a read and two writes per
        // workflow.
        let lease = if shared.multi_node {
            Some(self.start_lease(id).await?)
        } else {
            None
        };
        let now = wall_millis(shared.clock.as_ref());
        let hash = definition.hash().as_str().to_owned();
        let metadata = to_json_text(&metadata);
        let mut batch = keyspaces.store.batch();
        if let Some(lease) = &lease {
            batch.fence(lease)?;
        }
        let known = shared
            .stored_definitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&hash);
        if !known {
            let record = DefinitionRecord {
                canonical: definition.canonical_json().to_owned(),
            };
            batch.put(&keyspaces.definitions, &hash, &record)?;
        }
        let started = Event::Started {
            definition: hash.clone(),
            name: definition.name().to_owned(),
            metadata: metadata.clone(),
            started_at_ms: now,
        };
        let mut events = Vec::with_capacity(1 + seeded.len());
        events.push(started);
        events.extend(seeded);
        // What the process would read back, built from what is written.
        let mut state = WorkflowState::new(definition.clone());
        for event in &events {
            state.apply_event(event)?;
        }
        // The first launch rides in the start's record: the tasks ready at
        // once are journaled as started, and the process runs them without
        // writing again (one durable write per workflow saved).
        let mut ready = Vec::new();
        let launched = if state.ready(&mut ready, shared.max_parallel) {
            Vec::new()
        } else {
            launch_events(&state, &ready, now)
        };
        for event in &launched {
            state.apply_event(event)?;
        }
        events.extend(launched);
        // One journal record: the start, the seeded results, the launch.
        let record = Event::record(events);
        state.count_record();
        let status = if state.status(true) == WorkflowStatus::Pending {
            WorkflowStatus::Pending
        } else {
            WorkflowStatus::Running
        };
        let summary = Summary {
            name: definition.name().to_owned(),
            definition: hash.clone(),
            status: status.code(),
            metadata,
            started_at_ms: now,
            updated_at_ms: now,
        };
        // The journal's first record guards the id: if the stream exists,
        // the append fails and the batch, summary included, is not
        // applied (so the summary needs no read of its own).
        batch.put(&keyspaces.summaries, id, &summary)?;
        batch.append_expecting(&keyspaces.journal, id, 1, &record)?;
        let committed = batch.commit().await;
        if committed.is_err() {
            // Not started here (or the outcome is unknown): hand the lease
            // on (it expires now), so that a claim resumes the workflow if
            // it does exist, and releases the lease if it does not. Best
            // effort: otherwise it expires after the lease time.
            if let Some(lease) = &lease {
                let _ = shared.leases.renew(lease, Duration::ZERO).await;
            }
        }
        committed.map_err(|error| {
            if error.code() == ErrorCode::VERSION_CONFLICT {
                Error::new(
                    ErrorCode::ALREADY_EXISTS,
                    format!("a workflow {id} exists already"),
                )
                .with_context("workflow", id)
            } else {
                error
            }
        })?;
        if !known {
            shared
                .stored_definitions
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(hash);
        }
        shared.cache(definition);
        ::metrics::counter!(metrics::STARTED_TOTAL).increment(1);
        self.workflows
            .start_child(ProcessArgs {
                shared: Arc::clone(shared),
                id: id.into(),
                claimed: None,
                fresh: Some(Arc::new(Mutex::new(Some(Box::new((
                    summary, state, lease,
                )))))),
            })
            .await
            .map(drop)
            .map_err(|error| error.with_context("workflow", id))
    }

    /// Multi-node mode: refuses a workflow that exists (before its lease
    /// is touched: a re-grant of a lease this engine holds would fence off
    /// the running instance), then acquires its lease.
    async fn start_lease(&self, id: &str) -> Result<Lease, Error> {
        let shared = &self.shared;
        let keyspaces = &shared.keyspaces;
        // An existing workflow is refused before its lease is touched: a
        // re-grant of a lease this engine holds would fence off the
        // running instance.
        if keyspaces.summaries.get(id).await?.is_some() {
            return Err(Error::new(
                ErrorCode::ALREADY_EXISTS,
                format!("a workflow {id} exists already"),
            )
            .with_context("workflow", id));
        }
        shared
            .leases
            .acquire(&lease_name(id), &shared.owner, shared.lease_ttl)
            .await
            .map_err(|error| {
                if error.code() == ErrorCode::ALREADY_EXISTS {
                    Error::new(
                        ErrorCode::ALREADY_EXISTS,
                        format!("a workflow {id} exists already (another engine runs it)"),
                    )
                    .with_context("workflow", id)
                } else {
                    error
                }
            })
    }

    /// The state of workflow `id`: from its process while it runs,
    /// otherwise replayed from its journal.
    ///
    /// # Errors
    ///
    /// `data_not_found` for an unknown id; the store's errors.
    ///
    /// # Cancel safety
    ///
    /// Reads only; dropping it changes nothing.
    pub async fn status(&self, id: &str) -> Result<WorkflowInfo, Error> {
        if let Some(process) = self.process(id)
            && let Ok(WorkflowReply::Info(info)) = process
                .call_timeout(WorkflowCall::Info, DEFAULT_CALL_TIMEOUT)
                .await
        {
            return Ok(*info);
        }
        let (summary, state) = load(&self.shared, id).await?;
        let mut info = info_from(id, &state, true);
        if state.finished.is_none() && summary.status() == WorkflowStatus::Pending {
            info.status = WorkflowStatus::Pending;
        }
        Ok(info)
    }

    /// Workflow `id`'s journal, event by event.
    ///
    /// # Errors
    ///
    /// `data_not_found` for an unknown id; the store's errors.
    pub async fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, Error> {
        let summary = self
            .shared
            .keyspaces
            .summaries
            .get(id)
            .await?
            .ok_or_else(|| Error::new(ErrorCode::DATA_NOT_FOUND, format!("no workflow {id}")))?;
        let definition = self.shared.definition(&summary.definition).await?;
        let mut entries = Vec::new();
        let mut from = 1;
        loop {
            let events = self
                .shared
                .keyspaces
                .journal
                .read(id, from, MAX_READ_LIMIT)
                .await?;
            let count = events.len();
            for entry in events {
                from = entry.sequence + 1;
                for event in entry.record.events() {
                    let (kind, task, attempt) = event.describe();
                    entries.push(HistoryEntry {
                        sequence: entry.sequence,
                        kind,
                        step: task.and_then(|task| {
                            Some(definition.tasks().get(task as usize)?.id.clone())
                        }),
                        attempt,
                    });
                }
            }
            if count < MAX_READ_LIMIT {
                return Ok(entries);
            }
        }
    }

    /// Waits until workflow `id` has ended, at most `timeout`; returns its
    /// final state.
    ///
    /// # Errors
    ///
    /// `timeout` when it has not ended in time; as for
    /// [`status`](Self::status).
    ///
    /// # Cancel safety
    ///
    /// Waits only; dropping it changes nothing.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<WorkflowInfo, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let _guard = WaitGuard {
            shared: &self.shared,
            id,
        };
        loop {
            // Registered before the check, so an end between the two is seen.
            let (sender, receiver) = oneshot::channel();
            self.shared
                .waiters
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(id.to_owned())
                .or_default()
                .push(sender);
            match self.shared.keyspaces.summaries.get(id).await? {
                Some(summary) if summary.status().is_terminal() => return self.status(id).await,
                Some(_) => {}
                None => {
                    return Err(Error::new(
                        ErrorCode::DATA_NOT_FOUND,
                        format!("no workflow {id}"),
                    ));
                }
            }
            match tokio::time::timeout_at(deadline, receiver).await {
                // The process sends its final state after the end is
                // durable: no need to read it back.
                Ok(Ok(info)) => return Ok(info),
                // The sender was dropped without an end: check the store.
                Ok(Err(_)) => {}
                Err(_) => {
                    return Err(Error::timeout(format!("workflow {id} did not end in time"))
                        .with_context("timeout_ms", timeout.as_millis()));
                }
            }
        }
    }

    /// Cancels workflow `id`: running steps are stopped, compensations run.
    ///
    /// # Errors
    ///
    /// `invalid_state_transition` when it has ended; `service_unavailable`
    /// (retryable) when its process is restarting.
    ///
    /// # Cancel safety
    ///
    /// The request is journaled by the process once received; dropping the
    /// future does not withdraw it.
    pub async fn cancel(&self, id: &str, reason: &str) -> Result<(), Error> {
        self.call(
            id,
            WorkflowCall::Cancel {
                reason: reason.to_owned(),
            },
        )
        .await
    }

    /// Delivers signal `name` with `payload` to workflow `id`; a step
    /// waiting for it completes with the payload; a signal no step waits
    /// for yet is kept for the next that does.
    ///
    /// # Errors
    ///
    /// As for [`cancel`](Self::cancel).
    ///
    /// # Cancel safety
    ///
    /// As for [`cancel`](Self::cancel).
    pub async fn signal(&self, id: &str, name: &str, payload: Value) -> Result<(), Error> {
        self.call(
            id,
            WorkflowCall::Signal {
                name: name.to_owned(),
                payload,
            },
        )
        .await
    }

    async fn call(&self, id: &str, request: WorkflowCall) -> Result<(), Error> {
        match self.process(id) {
            Some(process) => process
                .call_timeout(request, DEFAULT_CALL_TIMEOUT)
                .await
                .map(drop),
            None => {
                let summary = self
                    .shared
                    .keyspaces
                    .summaries
                    .get(id)
                    .await?
                    .ok_or_else(|| {
                        Error::new(ErrorCode::DATA_NOT_FOUND, format!("no workflow {id}"))
                    })?;
                if summary.status().is_terminal() {
                    Err(Error::new(
                        ErrorCode::INVALID_STATE_TRANSITION,
                        format!("workflow {id} has already ended"),
                    ))
                } else {
                    Err(Error::new(
                        ErrorCode::SERVICE_UNAVAILABLE,
                        format!("workflow {id} is not running right now; retry"),
                    ))
                }
            }
        }
    }

    /// One page of workflows matching `filter`, by id. Statuses are the
    /// stored ones, except that a workflow whose live process waits on a
    /// delay or a signal (no step work running) lists as `waiting`, as
    /// [`status`](Self::status) reports it.
    ///
    /// # Errors
    ///
    /// `invalid_input` for a limit over 1,000; the store's errors.
    pub async fn list(&self, filter: &ListFilter) -> Result<WorkflowPage, Error> {
        let limit = filter.limit.unwrap_or(100);
        if limit == 0 || limit > MAX_READ_LIMIT {
            return Err(Error::new(
                ErrorCode::INVALID_INPUT,
                format!("a page holds 1 to {MAX_READ_LIMIT} workflows"),
            ));
        }
        let mut workflows = Vec::new();
        let mut after = filter.after.clone();
        loop {
            let entries = self
                .shared
                .keyspaces
                .summaries
                .list("", after.as_deref(), MAX_READ_LIMIT)
                .await?;
            let count = entries.len();
            for entry in entries {
                after = Some(entry.key.clone());
                let summary = entry.value;
                let mut status = summary.status();
                if !status.is_terminal() && self.shared.is_waiting(&entry.key) {
                    status = WorkflowStatus::Waiting;
                }
                if (!filter.statuses.is_empty() && !filter.statuses.contains(&status))
                    || filter
                        .name
                        .as_ref()
                        .is_some_and(|name| *name != summary.name)
                {
                    continue;
                }
                workflows.push(WorkflowInfo {
                    id: entry.key,
                    name: summary.name,
                    definition: summary.definition,
                    status,
                    metadata: serde_json::from_str(&summary.metadata).unwrap_or(Value::Null),
                    started_at: time_from_millis(summary.started_at_ms),
                    steps: Vec::new(),
                });
                if workflows.len() == limit {
                    return Ok(WorkflowPage {
                        workflows,
                        next: after,
                    });
                }
            }
            if count < MAX_READ_LIMIT {
                return Ok(WorkflowPage {
                    workflows,
                    next: None,
                });
            }
        }
    }

    /// Starts a process for every workflow that has not ended and has
    /// none; returns how many were started. One that fails to start is
    /// logged, counted in `jido_workflow_resume_failures_total` and
    /// skipped. The engine does this itself on
    /// every start of its WorkflowSupervisor.
    ///
    /// # Errors
    ///
    /// The store's errors reading summaries; and, after trying every
    /// workflow, the last retryable error one of them failed to start
    /// with (the store was unavailable), so that the caller tries again.
    ///
    /// # Cancel safety
    ///
    /// Dropping it part-way leaves the workflows not yet started for the
    /// next call (or the next start of the engine).
    pub async fn resume_all(&self) -> Result<usize, Error> {
        resume_all(&self.shared, &self.workflows).await
    }

    /// Waits until the engine's resumer has finished its pass since the
    /// last start of the WorkflowSupervisor (at most `timeout`); returns
    /// how many passes have finished.
    ///
    /// # Errors
    ///
    /// `timeout`.
    ///
    /// # Cancel safety
    ///
    /// Waits only; dropping it changes nothing.
    pub async fn resumed(&self, timeout: Duration) -> Result<u64, Error> {
        let mut passes = self.resumed.subscribe();
        let waited = tokio::time::timeout(timeout, passes.wait_for(|count| *count > 0)).await;
        match waited {
            Ok(Ok(count)) => Ok(*count),
            _ => Err(Error::timeout("the engine did not finish resuming in time")),
        }
    }

    /// This engine's owner id (its node id).
    pub fn owner(&self) -> &str {
        &self.shared.owner
    }

    /// The leases this engine's live workflow processes hold, by workflow
    /// id (for dashboards; the store's [`Leases::list`] shows every
    /// engine's).
    pub fn held_leases(&self) -> Vec<Lease> {
        let held = self
            .shared
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut leases: Vec<Lease> = held.values().map(|held| held.lease.clone()).collect();
        leases.sort_by(|a, b| a.name.cmp(&b.name));
        leases
    }

    /// How many workflows this engine gave up because another engine (or
    /// a newer instance) took their lease over; also counted in
    /// [`metrics::LEASE_LOST_TOTAL`].
    pub fn leases_lost(&self) -> u64 {
        self.shared.leases_lost.load(Ordering::Acquire)
    }

    /// How many expired workflow leases this engine's heartbeat claimed
    /// (multi-node mode); also counted in [`metrics::LEASES_CLAIMED_TOTAL`].
    pub fn leases_claimed(&self) -> u64 {
        self.shared.leases_claimed.load(Ordering::Acquire)
    }

    /// Suspends (or resumes) the heartbeat's renewals and claims, in
    /// multi-node mode: while suspended, this engine's leases expire and
    /// other engines take its workflows over; its processes give them up
    /// at their next write. For draining a node and for failover tests
    /// (it is what a paused or partitioned node looks like to the others).
    pub fn suspend_heartbeat(&self, suspended: bool) {
        self.shared
            .heartbeat_suspended
            .store(suspended, Ordering::Release);
    }

    /// Waits until the heartbeat has ticked `ticks` more times (multi-node
    /// mode), at most `timeout`.
    ///
    /// # Errors
    ///
    /// `timeout`; `invalid_state_transition` when the engine is not in
    /// multi-node mode (it has no heartbeat).
    ///
    /// # Cancel safety
    ///
    /// Waits only.
    pub async fn heartbeats(&self, ticks: u64, timeout: Duration) -> Result<(), Error> {
        if !self.shared.multi_node {
            return Err(Error::new(
                ErrorCode::INVALID_STATE_TRANSITION,
                "the engine has no heartbeat (it is not in multi-node mode)",
            ));
        }
        let mut beats = self.shared.heartbeats.subscribe();
        let target = beats.borrow().saturating_add(ticks);
        match tokio::time::timeout(timeout, beats.wait_for(|beats| *beats >= target)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::timeout("the lease heartbeat did not tick in time")),
        }
    }

    /// Stops every workflow process (they resume at the next start; in
    /// multi-node mode their leases are handed over and the hand-over is
    /// announced in [`HANDOVER_KEYSPACE`](crate::HANDOVER_KEYSPACE), so that
    /// other engines resume them at their next poll, or beat) and the
    /// engine's tasks.
    ///
    /// # Errors
    ///
    /// The supervisor's shutdown errors.
    ///
    /// # Cancel safety
    ///
    /// The shutdown runs in the supervisor; dropping the future stops
    /// waiting for it, not the shutdown.
    pub async fn shutdown(&self) -> Result<(), Error> {
        let result = self.supervisor.shutdown().await;
        if self.shared.multi_node && result.is_ok() {
            crate::lease::announce_handover(&self.shared).await;
        }
        self.tasks.shutdown().await;
        result
    }
}

async fn resume_all(
    shared: &Arc<Shared>,
    workflows: &DynamicSupervisor<WorkflowProcess>,
) -> Result<usize, Error> {
    let mut after: Option<String> = None;
    let mut started = 0;
    let mut failed = 0usize;
    // A workflow that could not start because the store failed for now
    // makes the pass fail (after trying the others), so it is tried again.
    let mut retryable: Option<Error> = None;
    loop {
        let entries = shared
            .keyspaces
            .summaries
            .list("", after.as_deref(), MAX_READ_LIMIT)
            .await?;
        let count = entries.len();
        for entry in entries {
            after = Some(entry.key.clone());
            if entry.value.status().is_terminal() || shared.registry.whereis(&entry.key).is_some() {
                continue;
            }
            let args = ProcessArgs::resumed(Arc::clone(shared), entry.key.as_str().into());
            match workflows.start_child(args).await {
                Ok(_) => started += 1,
                // Started meanwhile by someone else: fine.
                Err(error) if error.code() == ErrorCode::ALREADY_EXISTS => {}
                // One workflow that cannot start (its journal unreadable,
                // say) must not keep the others down: log it, go on.
                Err(error) => {
                    tracing::warn!(workflow = %entry.key, %error, "could not resume workflow");
                    failed += 1;
                    if error.is_retryable() {
                        retryable = Some(error);
                    }
                }
            }
        }
        if count < MAX_READ_LIMIT {
            if failed > 0 {
                ::metrics::counter!(metrics::RESUME_FAILURES_TOTAL).increment(failed as u64);
            }
            return match retryable {
                Some(error) => Err(error.with_context("resumed", started)),
                None => Ok(started),
            };
        }
    }
}

#[derive(Clone)]
struct ResumerArgs {
    shared: Arc<Shared>,
    workflows: DynamicSupervisor<WorkflowProcess>,
    resumed: Arc<tokio::sync::watch::Sender<u64>>,
}

/// The first wait before the resumer tries again after the store failed
/// with a retryable error; doubled after each failure up to
/// [`RESUME_RETRY_MAX`].
const RESUME_RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between two of the resumer's attempts.
const RESUME_RETRY_MAX: Duration = Duration::from_secs(2);

/// Resumes unfinished workflows after each start of the WorkflowSupervisor
/// (it is started after it, under `rest_for_one`).
///
/// When the store fails with a retryable error (a database restarting, a
/// lost connection), the resumer does not crash: it tries the whole pass
/// again after a wait (100 ms, doubled up to 2 s), until the store
/// answers. Crashing would only restart it at once, exhaust the engine's
/// restart intensity within a short outage, and take the engine (and what
/// depends on it) down with the store. Any other error still crashes it.
struct Resumer {
    args: ResumerArgs,
    retry_delay: Duration,
}

impl Actor for Resumer {
    type Args = ResumerArgs;
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = ();

    async fn init(args: ResumerArgs, ctx: &mut Context<Self>) -> Result<Self, Error> {
        ctx.myself()
            .try_send_info(())
            .map_err(|error| error.into_error())?;
        Ok(Resumer {
            args,
            retry_delay: RESUME_RETRY_FIRST,
        })
    }

    async fn handle_info(&mut self, (): (), ctx: &mut Context<Self>) -> Result<(), Error> {
        match resume_all(&self.args.shared, &self.args.workflows).await {
            Ok(_) => {
                self.retry_delay = RESUME_RETRY_FIRST;
                self.args.resumed.send_modify(|passes| *passes += 1);
                Ok(())
            }
            Err(error) if error.is_retryable() => {
                tracing::warn!(%error, retry_in = ?self.retry_delay, "could not resume the workflows; trying again");
                ctx.send_after(self.retry_delay, ());
                self.retry_delay = (self.retry_delay * 2).min(RESUME_RETRY_MAX);
                Ok(())
            }
            Err(error) => Err(error),
        }
    }
}
