//! The application: one supervision tree wiring every component, in the
//! plan's dependency order, under `rest_for_one` (3 restarts in 5 s).
//!
//! | # | child | what its start does |
//! | --- | --- | --- |
//! | 1 | `store` | probes the store: the redb file of the data directory (opened once per OS process, holding its lock) or a PostgreSQL database several nodes share (`cluster.rs`) |
//! | 2 | `flags` | opens the six rollout flags on the [`PersistFlagStore`](crate::flags::PersistFlagStore) (stored values, then `FOUNDATION_FLAG_*` overrides) |
//! | 3 | `errors` | a fresh `ErrorTracker` |
//! | 4 | `registry` | a fresh `Registry` (agents register in it) |
//! | 5 | `tasks` | reopens the application's `TaskSupervisor` |
//! | 6 | `signals` | a `SignalRouter` and its subscriber, the event log |
//! | 7 | `agents` | TaskAgent and MonitorAgent under their own supervisor, persistent or volatile by `use_persistent_agents`, swapped in place when the flag changes |
//! | 8 | `workflows` | jido-workflow's engine: WorkflowSupervisor, WorkflowRegistry, resumption of unfinished workflows |
//! | 9 | `coordinators` | CoordinatorV1 and CoordinatorV2 under their own supervisor, and the `use_v2_coordinator` router |
//! | 10 | `deploy` | deploy-monitor's `DeployMonitor` with the rollout plan, fed by the supervisor events, the signal router and the error tracker, driven by a `MonitorActor` |
//! | 11 | `http` | the axum server, run as a task of the task supervisor |
//!
//! Each child publishes what it started in a [`Slot`]; a child restarted by
//! `rest_for_one` publishes anew and every child after it restarts and
//! reads the new value. State lives in the store, so it survives.
//!
//! This module is not for HTTP (see `http`) or the command line.

pub mod cluster;
mod events;
mod executor;
mod parts;
pub(crate) mod recorder;
mod restarts;
mod slot;
pub(crate) mod spawn;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deploy_monitor::{DeployMonitor, PrometheusExport, RolloutPlan};
use foundation_core::registry::Registry;
use foundation_core::signal::SignalRouter;
use foundation_core::{EventBus, Strategy, Supervisor, SupervisorRef, TaskSupervisor};
use foundation_error::clock::SharedClock;
use foundation_error::{Error, ErrorCode, ErrorTracker, Result};
use foundation_flags::Flags;
use foundation_persist::{Store, StoreOptions};
use jido_agents::AgentRef;
use jido_agents::monitor::MonitorAgent;
use jido_agents::task::TaskAgent;
use jido_workflow::{WorkRegistry, WorkflowEngine};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

pub use events::{EventLog, EventLogSummary};
pub use executor::GatedExecutor;
pub use parts::{Coordinators, DemoTaskHandler};
pub use restarts::{RECENT_RESTARTS, RestartLog, RestartRecord};
pub use slot::Slot;

/// The store file inside a data directory.
pub const STORE_FILE: &str = "jido.redb";
/// The default address of the HTTP API.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4000";
/// Writes allowed per client and window by default.
pub const DEFAULT_WRITE_LIMIT: u64 = 1_000;
/// The window of the write limit.
pub const DEFAULT_WRITE_WINDOW: Duration = Duration::from_secs(1);
/// How long the tree may take to stop, by default.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

/// The TaskAgent type the application runs.
pub type AppTaskAgent = TaskAgent<DemoTaskHandler>;

/// Everything the children share: the stable handles and the slots.
pub struct Shared {
    /// The store (redb in the data directory, PostgreSQL, or in memory).
    pub store: Store,
    /// This node: its id (the owner of its leases) and its store's kind.
    pub node: cluster::Node,
    /// The one clock.
    pub clock: SharedClock,
    /// The application's task supervisor (child `tasks`).
    pub tasks: TaskSupervisor,
    /// Supervisor events of the tree, for the deployment monitor.
    pub events: EventBus,
    /// The recent restarts on `events` (`GET /api/v1/restarts`).
    pub restarts: RestartLog,
    /// The rollout plan.
    pub plan: RolloutPlan,
    /// The works workflows run.
    pub works: WorkRegistry,
    /// The HTTP settings.
    pub http: HttpSettings,
    /// The Prometheus handle `/metrics` renders, if installed.
    pub prometheus: Option<PrometheusHandle>,
    /// The flags (child `flags`).
    pub flags: Slot<Flags>,
    /// The error tracker (child `errors`).
    pub errors: Slot<ErrorTracker>,
    /// The registry (child `registry`).
    pub registry: Slot<Registry>,
    /// The signal router (child `signals`).
    pub signals: Slot<SignalRouter>,
    /// The event log subscribed to the router (child `signals`).
    pub event_log: Slot<foundation_core::ActorRef<EventLog>>,
    /// The task agent (child `agents`).
    pub task_agent: Slot<AgentRef<AppTaskAgent>>,
    /// The monitor agent (child `agents`).
    pub monitor_agent: Slot<AgentRef<MonitorAgent>>,
    /// The workflow engine (child `workflows`).
    pub engine: Slot<WorkflowEngine>,
    /// The coordinators, sharded, with their routers (child `coordinators`).
    pub coordinators: Slot<Arc<Coordinators>>,
    /// The deployment monitor (child `deploy`).
    pub monitor: Slot<DeployMonitor>,
    /// The address the HTTP server listens on (child `http`).
    pub address: watch::Sender<Option<SocketAddr>>,
    /// Fault injection: the share (percent) of starts routed to
    /// CoordinatorV2 that fail before reaching it (0: none).
    pub v2_start_faults: u8,
    /// Starts routed to CoordinatorV2 so far (for the fault injection).
    pub v2_starts: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// Whether the next start routed to CoordinatorV2 fails by fault
    /// injection: deterministically `v2_start_faults` of every 100, spread
    /// evenly (start n fails when `n * p / 100` steps up).
    pub fn inject_v2_fault(&self) -> bool {
        if self.v2_start_faults == 0 {
            return false;
        }
        let start = self
            .v2_starts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let percent = u64::from(self.v2_start_faults);
        (start + 1) * percent / 100 > start * percent / 100
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("store", &self.store.name())
            .field("listen", &self.http.listen)
            .finish_non_exhaustive()
    }
}

/// The HTTP API's settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpSettings {
    /// Where to listen (port 0: any free port, kept across restarts).
    pub listen: SocketAddr,
    /// The API token writes need.
    pub token: String,
    /// Writes allowed per client per window.
    pub write_limit: u64,
    /// The window of the write limit.
    pub write_window: Duration,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// How long `?wait=true` waits at most.
    pub max_wait: Duration,
}

/// Builds and starts an [`Application`].
#[derive(Debug)]
pub struct ApplicationBuilder {
    data_dir: Option<PathBuf>,
    store: Option<Store>,
    listen: SocketAddr,
    plan: Option<RolloutPlan>,
    clock: Option<SharedClock>,
    token: Option<String>,
    allow_remote: bool,
    write_limit: u64,
    write_window: Duration,
    intensity: (u32, Duration),
    store_options: StoreOptions,
    monitor_tick: Option<Duration>,
    v2_start_faults: u8,
    postgres: Option<String>,
    node_id: Option<String>,
    workflow_lease_ttl: Option<Duration>,
}

impl ApplicationBuilder {
    /// Keeps the state in the PostgreSQL database at `url`
    /// (`postgres://user@host:port/db`, or a libpq `host=... dbname=...`
    /// string), which several nodes may share; instead of the data
    /// directory's redb file. The store watches the flags and rollout
    /// records, and the node follows what other nodes change
    /// (`cluster.rs`).
    pub fn postgres(&mut self, url: impl Into<String>) -> &mut Self {
        self.postgres = Some(url.into());
        self
    }

    /// How long a workflow's lease, and the node's membership lease
    /// (`node/<id>`), last unless renewed (default 10 s, at least 300 ms):
    /// on a shared store a dead node's workflows resume on another node
    /// within about `ttl + ttl / 3`, and the node stops being listed as
    /// live within `ttl`.
    pub fn workflow_lease_ttl(&mut self, ttl: Duration) -> &mut Self {
        self.workflow_lease_ttl = Some(ttl);
        self
    }

    /// The node id: the owner of this node's leases (default
    /// `hostname-pid`). Each node sharing a store needs its own.
    pub fn node_id(&mut self, id: impl Into<String>) -> &mut Self {
        self.node_id = Some(id.into());
        self
    }

    /// Fault injection, for the demo and tests: fails `percent` of the
    /// starts routed to CoordinatorV2 with `service_unavailable` before they
    /// reach it, each recorded as a failed V2 request (the canary's error
    /// rate rises against its control). Off (0) by default; at most 100.
    pub fn inject_v2_start_faults(&mut self, percent: u8) -> &mut Self {
        self.v2_start_faults = percent.min(100);
        self
    }

    /// Keeps the store in `directory` (created if missing), as
    /// `directory/jido.redb`.
    pub fn data_dir(&mut self, directory: impl Into<PathBuf>) -> &mut Self {
        self.data_dir = Some(directory.into());
        self
    }

    /// Runs on an already open `store` (tests: an in-memory one).
    pub fn store(&mut self, store: Store) -> &mut Self {
        self.store = Some(store);
        self
    }

    /// The store options for a data directory (default: durable writes).
    pub fn store_options(&mut self, options: StoreOptions) -> &mut Self {
        self.store_options = options;
        self
    }

    /// Listens on `address` (default `127.0.0.1:4000`).
    pub fn listen(&mut self, address: SocketAddr) -> &mut Self {
        self.listen = address;
        self
    }

    /// Allows a non-loopback listen address (off by default).
    pub fn allow_remote(&mut self, allow: bool) -> &mut Self {
        self.allow_remote = allow;
        self
    }

    /// The rollout plan (default: deploy-monitor's five phases).
    pub fn plan(&mut self, plan: RolloutPlan) -> &mut Self {
        self.plan = Some(plan);
        self
    }

    /// The one clock (default: the system's).
    pub fn clock(&mut self, clock: SharedClock) -> &mut Self {
        self.clock = Some(clock);
        self
    }

    /// The API token writes need (required).
    pub fn token(&mut self, token: impl Into<String>) -> &mut Self {
        self.token = Some(token.into());
        self
    }

    /// Writes allowed per client per window (default 1,000 per second).
    pub fn write_limit(&mut self, limit: u64, window: Duration) -> &mut Self {
        self.write_limit = limit;
        self.write_window = window;
        self
    }

    /// The tree's restart intensity (default 3 in 5 s).
    pub fn intensity(&mut self, max_restarts: u32, period: Duration) -> &mut Self {
        self.intensity = (max_restarts, period);
        self
    }

    /// How often the deployment monitor ticks (default: its slot width).
    pub fn monitor_tick(&mut self, period: Duration) -> &mut Self {
        self.monitor_tick = Some(period);
        self
    }

    /// Opens the store and starts the tree.
    ///
    /// # Errors
    ///
    /// `invalid_config_value` for a missing token, a non-loopback address
    /// without `allow_remote`, or neither store nor data directory;
    /// `store_in_use` when another process holds the data directory; the
    /// store's and the children's start errors.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping it part-way may leave the data directory's
    /// store open in this process and the children started so far running
    /// until the supervisor handle is dropped.
    pub async fn start(&self) -> Result<Application> {
        let token = self
            .token
            .clone()
            .filter(|token| !token.trim().is_empty())
            .ok_or_else(|| {
                Error::new(ErrorCode::INVALID_CONFIG_VALUE, "the API token is missing")
            })?;
        if !self.listen.ip().is_loopback() && !self.allow_remote {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                format!(
                    "{} is not a loopback address; listening on it needs --allow-remote",
                    self.listen
                ),
            )
            .with_context("listen", self.listen));
        }
        let node_id = self
            .node_id
            .clone()
            .unwrap_or_else(cluster::default_node_id);
        cluster::check_node_id(&node_id)?;
        let store = match (&self.store, &self.postgres, &self.data_dir) {
            (Some(store), _, _) => store.clone(),
            (None, Some(url), _) => open_postgres_store(url, &self.store_options).await?,
            (None, None, Some(directory)) => open_store(directory, &self.store_options)?,
            (None, None, None) => {
                return Err(Error::new(
                    ErrorCode::INVALID_CONFIG_VALUE,
                    "the application needs a data directory or a store",
                ));
            }
        };
        let clock = self
            .clock
            .clone()
            .unwrap_or_else(foundation_error::clock::system);
        let plan = match &self.plan {
            Some(plan) => plan.clone(),
            None => RolloutPlan::default_plan(),
        };
        let works = crate::works::demo_works(&store)?;
        let events = EventBus::new();
        let node = cluster::Node::new(node_id, cluster::StoreKind::of(&store), clock.wall())
            .with_workflow_lease_ttl(self.workflow_lease_ttl);
        let shared = Arc::new(Shared {
            store,
            node,
            clock: Arc::clone(&clock),
            tasks: TaskSupervisor::new("jido_system_tasks"),
            restarts: RestartLog::new(&events),
            events: events.clone(),
            plan,
            works,
            http: HttpSettings {
                listen: self.listen,
                token,
                write_limit: self.write_limit,
                write_window: self.write_window,
                max_body_bytes: crate::http::MAX_BODY_BYTES,
                max_wait: Duration::from_secs(60),
            },
            prometheus: prometheus(),
            flags: Slot::new("flags"),
            errors: Slot::new("error tracker"),
            registry: Slot::new("registry"),
            signals: Slot::new("signal router"),
            event_log: Slot::new("event log"),
            task_agent: Slot::new("task agent"),
            monitor_agent: Slot::new("monitor agent"),
            engine: Slot::new("workflow engine"),
            coordinators: Slot::new("coordinators"),
            monitor: Slot::new("deployment monitor"),
            address: watch::channel(None).0,
            v2_start_faults: self.v2_start_faults,
            v2_starts: std::sync::atomic::AtomicU64::new(0),
        });
        let mut tree = Supervisor::builder("jido_system");
        tree.strategy(Strategy::RestForOne)
            .intensity(self.intensity.0, self.intensity.1)
            .clock(Arc::clone(&clock))
            .events(&events);
        parts::add_children(&mut tree, &shared, self.monitor_tick);
        let supervisor = tree.start().await?;
        Ok(Application { shared, supervisor })
    }
}

/// Opens the PostgreSQL store at `url` for a node: the shared records
/// watched, the store options' limits applied.
///
/// # Errors
///
/// foundation-persist-postgres' open errors (`invalid_config_value` for a
/// malformed url, `network_error`/`timeout` when unreachable,
/// `authentication_failed`, `unsupported_version`).
///
/// # Cancel safety
///
/// Dropping the future may leave the schema created; nothing else.
pub async fn open_postgres_store(url: &str, options: &StoreOptions) -> Result<Store> {
    let mut postgres = foundation_persist_postgres::PostgresOptions::new();
    postgres.store_options(cluster::watch_shared_records(options));
    foundation_persist_postgres::open_postgres(url, &postgres).await
}

/// Opens the store of a data directory, creating the directory.
///
/// # Errors
///
/// `store_in_use` (with a hint) when another process holds it; the I/O and
/// store errors otherwise.
pub fn open_store(directory: &Path, options: &StoreOptions) -> Result<Store> {
    std::fs::create_dir_all(directory)
        .map_err(|error| Error::from(error).with_context("data_dir", directory.display()))?;
    let path = directory.join(STORE_FILE);
    Store::open(&path, options).map_err(|error| {
        if error.code() == ErrorCode::STORE_IN_USE {
            Error::new(
                ErrorCode::STORE_IN_USE,
                format!(
                    "the data directory {} is in use by another jido-system process; stop it or pick another --data-dir",
                    directory.display()
                ),
            )
            .with_context("data_dir", directory.display())
        } else {
            error
        }
    })
}

/// The process-wide Prometheus recorder, installed on first use (`None`
/// when another recorder was installed first).
fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusExport::new().install().ok()?;
            deploy_monitor::metrics::describe();
            crate::metrics::describe();
            Some(handle)
        })
        .clone()
}

/// A running application: the tree and its shared state.
///
/// ```
/// use std::time::Duration;
/// use foundation_persist::{Store, StoreOptions};
/// use jido_system::Application;
///
/// # #[tokio::main]
/// # async fn main() -> foundation_error::Result<()> {
/// let mut builder = Application::builder();
/// builder
///     .store(Store::open_in_memory(&StoreOptions::new())?)
///     .listen("127.0.0.1:0".parse().expect("an address"))
///     .token("a-token-of-at-least-16-characters");
/// let app = builder.start().await?;
/// let address = app.listening(Duration::from_secs(10)).await?;
/// assert!(address.ip().is_loopback());
/// assert!(app.shared().engine.get().is_ok());
/// app.shutdown(Duration::from_secs(10)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Application {
    shared: Arc<Shared>,
    supervisor: SupervisorRef,
}

impl Application {
    /// A builder with safe defaults: loopback, durable store, the default
    /// plan, the system clock.
    pub fn builder() -> ApplicationBuilder {
        ApplicationBuilder {
            data_dir: None,
            store: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 4000)),
            plan: None,
            clock: None,
            token: None,
            allow_remote: false,
            write_limit: DEFAULT_WRITE_LIMIT,
            write_window: DEFAULT_WRITE_WINDOW,
            intensity: (3, Duration::from_secs(5)),
            store_options: StoreOptions::new(),
            monitor_tick: None,
            v2_start_faults: 0,
            postgres: None,
            node_id: None,
            workflow_lease_ttl: None,
        }
    }

    /// The shared state (slots, stable handles).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The top supervisor (`jido_system`).
    pub fn supervisor(&self) -> &SupervisorRef {
        &self.supervisor
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// The address the HTTP server listens on, once it does.
    pub fn address(&self) -> Option<SocketAddr> {
        *self.shared.address.borrow()
    }

    /// Waits at most `timeout` until the HTTP server listens; returns its
    /// address.
    ///
    /// # Errors
    ///
    /// `timeout` when it does not listen in time.
    ///
    /// # Cancel safety
    ///
    /// Safe: it only waits.
    pub async fn listening(&self, timeout: Duration) -> Result<SocketAddr> {
        let mut receiver = self.shared.address.subscribe();
        let address = tokio::time::timeout(timeout, receiver.wait_for(Option::is_some))
            .await
            .map_err(|_| {
                Error::new(
                    ErrorCode::TIMEOUT,
                    "the HTTP server did not start listening",
                )
            })?
            .map_err(|_| Error::new(ErrorCode::SHUT_DOWN, "the application ended"))?;
        address.ok_or_else(|| Error::new(ErrorCode::INTERNAL_ERROR, "no address"))
    }

    /// Stops the tree in reverse order (HTTP first, the store's users
    /// before the store), each child within its limit, then closes the
    /// store; in-flight workflow steps are journaled as interrupted and
    /// resume at the next start. Bounded by `timeout`.
    ///
    /// # Errors
    ///
    /// `timeout` when the tree did not stop in time (the process may exit
    /// anyway: every acknowledged write is durable); the store's close
    /// errors.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping it part-way leaves the tree part-stopped.
    pub async fn shutdown(&self, timeout: Duration) -> Result<()> {
        tokio::time::timeout(timeout, self.supervisor.shutdown())
            .await
            .map_err(|_| {
                Error::new(
                    ErrorCode::TIMEOUT,
                    format!("the application did not stop within {timeout:?}"),
                )
            })??;
        self.shared.node.release(&self.shared.store).await;
        tokio::time::timeout(timeout, self.shared.store.close())
            .await
            .map_err(|_| Error::new(ErrorCode::TIMEOUT, "the store did not close in time"))?
    }
}
