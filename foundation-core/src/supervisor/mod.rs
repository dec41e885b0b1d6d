//! Supervisors: OTP supervision on tokio.
//!
//! A supervisor starts its children in order, watches them, restarts them
//! per its [`Strategy`] and their [`Restart`] type, and gives up (stopping
//! them in reverse order and exiting with `Shutdown`, which its own parent
//! sees as a child failure) when restarts exceed its intensity: at most
//! `max_restarts` within `period`, in one sliding window across all
//! children (default 3 in 5 s).
//!
//! Guarantees:
//! - Children start in order; a child whose `init` fails fails the whole
//!   start, with an error naming the child, after the children already
//!   started were stopped in reverse order. For a top-level supervisor
//!   every child's process then ends (handles fail at once, monitors
//!   fire); a nested one's children wait for their parent's retry.
//! - A child that will not be restarted (`Transient` after a normal exit,
//!   `Temporary` after any) ends its process for good: monitors fire with
//!   its reason and registry names are freed. A transient child keeps its
//!   spec, and `restart_child` starts it in a new process.
//! - Children stop in reverse order, each within its [`Shutdown`] limit,
//!   after which it is aborted.
//! - A restarted child's old instance has finished `terminate` before the
//!   new one's `init` begins.
//! - `Temporary` children are never restarted, also not under `OneForAll`
//!   or `RestForOne`; `Transient` ones only after an abnormal exit.
//! - Handles (from [`ChildSpec::handle`], [`SupervisorRef`] or a
//!   [`DynamicSupervisor`]) stay valid across restarts.
//! - Children added at run time with `start_child` are kept across the
//!   supervisor's own restarts (OTP forgets them); dynamic children are
//!   not (as OTP).
//!
//! This module is not for spawning plain futures; see `task`.

mod dynamic;
mod events;
mod intensity;
mod server;
mod spec;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use foundation_error::clock::{SharedClock, TokioClock};
use foundation_error::{Error, ErrorCode};
use tokio::sync::broadcast;

pub use dynamic::{DynamicSupervisor, DynamicSupervisorBuilder};
pub use events::{DEFAULT_EVENT_CAPACITY, EventBus, SupervisorEvent, SupervisorEventKind};
pub use server::Supervisor;
pub use spec::{ChildKind, ChildSpec, DEFAULT_WORKER_SHUTDOWN, Restart, Shutdown};

pub(crate) use self::server::DynamicLimits;
use self::server::{Reply, Request, SupervisorArgs, SupervisorRequest, SupervisorShared};
use crate::ActorRef;
use crate::actor::{ActorOptions, ExitSink, Mailbox, start_instance};
use crate::process::{ExitReason, ProcessRef};

/// The default restart intensity: 3 restarts ...
pub const DEFAULT_MAX_RESTARTS: u32 = 3;
/// ... within 5 s, as the original system.
pub const DEFAULT_RESTART_PERIOD: Duration = Duration::from_secs(5);
/// The default time a supervisor's control calls (start, terminate,
/// restart, delete a child) may take.
pub const DEFAULT_CONTROL_TIMEOUT: Duration = Duration::from_secs(30);
/// The default time a supervisor may take to start all its children.
pub const DEFAULT_SUPERVISOR_START_TIMEOUT: Duration = Duration::from_secs(60);

/// Which children restart when one exits abnormally (or, for permanent
/// children, at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    /// Only that child.
    OneForOne,
    /// Every child: the others are stopped in reverse order, then all are
    /// started in order.
    OneForAll,
    /// That child and the ones started after it.
    RestForOne,
}

/// When a supervisor stops on its own because significant children exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoShutdown {
    /// Never (the default); significant flags are not allowed.
    Never,
    /// When any significant child exits without being restarted.
    AnySignificant,
    /// When every significant child has exited without being restarted.
    AllSignificant,
}

/// Where a child is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChildStatus {
    /// An instance is running.
    Running,
    /// Not running; a restart is under way or pending.
    Restarting,
    /// Terminated by `terminate_child` (its process is held stopped), or a
    /// transient child that exited normally (its process ended for good);
    /// `restart_child` starts it again, in a new process in the second
    /// case.
    Stopped,
}

/// One child, as [`SupervisorRef::which_children`] reports it.
#[derive(Debug, Clone)]
pub struct ChildInfo {
    /// Its id (dynamic children: the template id and the process id).
    pub id: String,
    /// Its process.
    pub process: ProcessRef,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Its restart type.
    pub restart: Restart,
    /// Running, restarting or stopped.
    pub status: ChildStatus,
}

/// Child counts, as [`SupervisorRef::count_children`] reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChildCounts {
    /// All children.
    pub specs: usize,
    /// Running children.
    pub active: usize,
    /// Children that are supervisors.
    pub supervisors: usize,
    /// Children that are workers.
    pub workers: usize,
}

/// Configures and starts a [`Supervisor`].
///
/// ```
/// use std::time::Duration;
/// use foundation_core::{Strategy, Supervisor};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), foundation_error::Error> {
/// let mut builder = Supervisor::builder("app");
/// builder
///     .strategy(Strategy::RestForOne)
///     .intensity(3, Duration::from_secs(5));
/// let app = builder.start().await?;
/// assert_eq!(app.count_children().await?.specs, 0);
/// app.shutdown().await?;
/// # Ok(())
/// # }
/// ```
pub struct SupervisorBuilder {
    name: Arc<str>,
    strategy: Strategy,
    max_restarts: u32,
    period: Duration,
    clock: Option<SharedClock>,
    auto_shutdown: AutoShutdown,
    events: Option<EventBus>,
    children: Vec<Result<Arc<dyn spec::ErasedChild>, Error>>,
    start_timeout: Duration,
    control_timeout: Duration,
}

impl Supervisor {
    /// A builder for a supervisor named `name` (used in events and metric
    /// labels): `OneForOne`, 3 restarts in 5 s, no auto-shutdown.
    pub fn builder(name: impl Into<Arc<str>>) -> SupervisorBuilder {
        SupervisorBuilder {
            name: name.into(),
            strategy: Strategy::OneForOne,
            max_restarts: DEFAULT_MAX_RESTARTS,
            period: DEFAULT_RESTART_PERIOD,
            clock: None,
            auto_shutdown: AutoShutdown::Never,
            events: None,
            children: Vec::new(),
            start_timeout: DEFAULT_SUPERVISOR_START_TIMEOUT,
            control_timeout: DEFAULT_CONTROL_TIMEOUT,
        }
    }
}

impl SupervisorBuilder {
    /// Sets the restart strategy.
    pub fn strategy(&mut self, strategy: Strategy) -> &mut Self {
        self.strategy = strategy;
        self
    }

    /// Sets the restart intensity: at most `max_restarts` within `period`.
    pub fn intensity(&mut self, max_restarts: u32, period: Duration) -> &mut Self {
        self.max_restarts = max_restarts;
        self.period = period;
        self
    }

    /// Sets the clock the restart-intensity window is measured on and
    /// events are stamped with (default: a [`TokioClock`] made at the
    /// start, so paused tokio time drives it). Pass the application's one
    /// clock, or a [`ManualClock`](crate::clock::ManualClock) in tests.
    pub fn clock(&mut self, clock: SharedClock) -> &mut Self {
        self.clock = Some(clock);
        self
    }

    /// Sets when the supervisor stops on its own.
    pub fn auto_shutdown(&mut self, auto_shutdown: AutoShutdown) -> &mut Self {
        self.auto_shutdown = auto_shutdown;
        self
    }

    /// Sends this supervisor's events on `bus` (by default its parent's
    /// bus, or a bus of its own).
    pub fn events(&mut self, bus: &EventBus) -> &mut Self {
        self.events = Some(bus.clone());
        self
    }

    /// Sets how long starting all children may take (default 60 s).
    pub fn start_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.start_timeout = timeout;
        self
    }

    /// Sets how long control calls may take (default 30 s).
    pub fn control_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.control_timeout = timeout;
        self
    }

    /// Adds a child; children start in the order they are added. Takes a
    /// [`ChildSpec`] or one configured inline (`&mut ChildSpec`).
    pub fn child<A: crate::Actor>(&mut self, spec: impl Into<ChildSpec<A>>) -> &mut Self {
        let spec = spec.into();
        self.children.push(spec.validate().map(|()| spec.erase()));
        self
    }

    fn validate(&self) -> Result<Vec<Arc<dyn spec::ErasedChild>>, Error> {
        if self.period.is_zero() {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                "a supervisor's restart period must be longer than zero",
            )
            .with_context("supervisor", &self.name));
        }
        let mut specs = Vec::with_capacity(self.children.len());
        for child in &self.children {
            let spec = child
                .clone()
                .map_err(|error| error.with_context("supervisor", &self.name))?;
            if specs
                .iter()
                .any(|existing: &Arc<dyn spec::ErasedChild>| existing.id() == spec.id())
            {
                return Err(Error::new(
                    ErrorCode::ALREADY_EXISTS,
                    format!("two children are named {}", spec.id()),
                )
                .with_context("supervisor", &self.name));
            }
            if spec.significant() && self.auto_shutdown == AutoShutdown::Never {
                return Err(Error::new(
                    ErrorCode::INVALID_CONFIG_VALUE,
                    format!(
                        "child {} is significant, but the supervisor's auto_shutdown is Never",
                        spec.id()
                    ),
                )
                .with_context("supervisor", &self.name));
            }
            specs.push(spec);
        }
        Ok(specs)
    }

    fn shared(&self, dynamic: Option<DynamicLimits>) -> Result<Arc<SupervisorShared>, Error> {
        let specs = self.validate()?;
        let events = OnceLock::new();
        if let Some(bus) = &self.events {
            let _ = events.set(bus.clone());
        }
        Ok(Arc::new(SupervisorShared {
            name: Arc::clone(&self.name),
            strategy: self.strategy,
            max_restarts: self.max_restarts,
            period: self.period,
            clock: self
                .clock
                .clone()
                .unwrap_or_else(|| Arc::new(TokioClock::new())),
            auto_shutdown: self.auto_shutdown,
            events,
            specs: Mutex::new(specs),
            owned: Mutex::new(Default::default()),
            next_key: AtomicU64::new(0),
            dynamic,
        }))
    }

    fn options(&self) -> ActorOptions<Supervisor> {
        let mut options = ActorOptions::new();
        options
            .unbounded_mailbox()
            .start_timeout(self.start_timeout);
        options
    }

    pub(crate) fn build_parts(
        &self,
        dynamic: Option<DynamicLimits>,
    ) -> Result<(Arc<SupervisorShared>, ActorOptions<Supervisor>), Error> {
        Ok((self.shared(dynamic)?, self.options()))
    }

    pub(crate) fn control_timeout_value(&self) -> Duration {
        self.control_timeout
    }

    /// Starts the supervisor (and its children, in order) as a top-level
    /// supervisor: nothing restarts it. If a child's `init` fails, the
    /// children started so far are stopped and every child's process ends.
    ///
    /// # Cancel safety
    ///
    /// The start runs on the caller's task; dropping the future abandons
    /// it, and the supervisor's process ends, and with it every child
    /// process.
    pub async fn start(&self) -> Result<SupervisorRef, Error> {
        let (shared, options) = self.build_parts(None)?;
        SupervisorRef::start_top_level(shared, options, self.control_timeout).await
    }

    /// Makes this supervisor the child `id` of another supervisor; the
    /// returned handle works once the parent has started it.
    pub fn into_child_spec(
        &self,
        id: impl Into<Arc<str>>,
    ) -> Result<(ChildSpec<Supervisor>, SupervisorRef), Error> {
        let (shared, options) = self.build_parts(None)?;
        Ok(SupervisorRef::child_spec(
            shared,
            options,
            id,
            self.control_timeout,
        ))
    }
}

/// A handle to a running supervisor; valid across its restarts.
#[derive(Clone)]
pub struct SupervisorRef {
    actor: ActorRef<Supervisor>,
    shared: Arc<SupervisorShared>,
    control_timeout: Duration,
    top_level: bool,
}

impl std::fmt::Debug for SupervisorRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorRef")
            .field("name", &self.shared.name)
            .field("process", &self.actor.id())
            .finish()
    }
}

impl SupervisorRef {
    fn new(
        mailbox: Arc<Mailbox<Supervisor>>,
        shared: Arc<SupervisorShared>,
        control_timeout: Duration,
        top_level: bool,
    ) -> SupervisorRef {
        let supervisor = SupervisorRef {
            actor: ActorRef::from_mailbox(mailbox),
            shared,
            control_timeout,
            top_level,
        };
        end_children_with(&supervisor.actor.process(), &supervisor.shared);
        supervisor
    }

    pub(crate) async fn start_top_level(
        shared: Arc<SupervisorShared>,
        options: ActorOptions<Supervisor>,
        control_timeout: Duration,
    ) -> Result<SupervisorRef, Error> {
        options.validate()?;
        let mailbox = Mailbox::new(&options);
        // The hook that ends the children's processes is in place before
        // the start, so a failed start ends them too.
        let supervisor = SupervisorRef::new(Arc::clone(&mailbox), shared, control_timeout, true);
        let args = SupervisorArgs(Arc::clone(&supervisor.shared));
        // Ends the process if this future is dropped during the start.
        let mut abandoned = EndOnDrop(Some(Arc::clone(&mailbox)));
        let started =
            start_instance(&mailbox, args, options.start_timeout, ExitSink::Standalone).await;
        abandoned.0 = None;
        match started {
            Ok(_join) => Ok(supervisor),
            Err(error) => {
                mailbox.close_for_good(ExitReason::Error(error.clone()));
                Err(error)
            }
        }
    }

    pub(crate) fn child_spec(
        shared: Arc<SupervisorShared>,
        options: ActorOptions<Supervisor>,
        id: impl Into<Arc<str>>,
        control_timeout: Duration,
    ) -> (ChildSpec<Supervisor>, SupervisorRef) {
        let args = SupervisorArgs(Arc::clone(&shared));
        let for_events = Arc::downgrade(&shared);
        let mut spec = ChildSpec::with_options(id, args, options);
        let for_processes = Arc::downgrade(&shared);
        spec.supervisor_kind(
            Arc::new(move |bus| {
                if let Some(shared) = for_events.upgrade() {
                    let _ = shared.events.set(bus.clone());
                }
            }),
            // A new process of this supervisor (after its old one ended
            // for good) ends its children with it too.
            Arc::new(move |process| {
                if let Some(shared) = for_processes.upgrade() {
                    end_children_with(process, &shared);
                }
            }),
        );
        let supervisor = SupervisorRef::new(
            Arc::clone(spec.handle().mailbox()),
            shared,
            control_timeout,
            false,
        );
        (spec, supervisor)
    }

    pub(crate) fn shared(&self) -> &Arc<SupervisorShared> {
        &self.shared
    }

    pub(crate) fn actor(&self) -> &ActorRef<Supervisor> {
        &self.actor
    }

    /// Sends a control request and waits for its answer.
    ///
    /// Cancel safety, for every control method: dropping the future after
    /// the request was queued does not withdraw it; the supervisor carries
    /// it out (a child is started, terminated, restarted or deleted) and
    /// the answer is discarded. Read the outcome with `which_children`.
    /// A request that timed out is in the same state.
    async fn request(&self, request: Request) -> Result<Reply, Error> {
        let reply = self
            .actor
            .call_timeout(SupervisorRequest(request), self.control_timeout)
            .await?;
        Ok(reply.0)
    }

    /// The supervisor's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The supervisor's process.
    pub fn process(&self) -> ProcessRef {
        self.actor.process()
    }

    /// A one-shot notification of the end of this supervisor's process
    /// (for a top-level supervisor: after `shutdown`, or when it gave up;
    /// for a nested one: when its parent ends it for good).
    pub fn monitor(&self) -> crate::Monitor {
        self.actor.monitor()
    }

    /// Subscribes to this supervisor's events (and, when they share its
    /// bus, its nested supervisors').
    pub fn subscribe(&self) -> broadcast::Receiver<SupervisorEvent> {
        self.shared.events().subscribe()
    }

    /// The event bus this supervisor sends on.
    pub fn event_bus(&self) -> EventBus {
        self.shared.events().clone()
    }

    /// Every child, in start order.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, Error> {
        match self.request(Request::WhichChildren).await? {
            Reply::Children(children) => Ok(children),
            _ => Err(unexpected_reply()),
        }
    }

    /// Child counts.
    pub async fn count_children(&self) -> Result<ChildCounts, Error> {
        match self.request(Request::CountChildren).await? {
            Reply::Counts(counts) => Ok(counts),
            _ => Err(unexpected_reply()),
        }
    }

    /// Adds a child at the end and starts it; fails (and adds nothing) when
    /// the id is taken or its `init` fails.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future once the request is queued does not withdraw
    /// it: the child may still be added and started. Check with
    /// [`which_children`](Self::which_children).
    pub async fn start_child<A: crate::Actor>(
        &self,
        spec: impl Into<ChildSpec<A>>,
    ) -> Result<(), Error> {
        let spec = spec.into();
        spec.validate()?;
        self.request(Request::StartChild(spec.erase()))
            .await
            .map(|_| ())
    }

    /// Stops a child, per its shutdown policy, and keeps it stopped (a
    /// temporary child is deleted).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future once the request is queued does not withdraw
    /// it: the child is stopped anyway.
    pub async fn terminate_child(&self, id: &str) -> Result<(), Error> {
        self.request(Request::TerminateChild(id.to_owned()))
            .await
            .map(|_| ())
    }

    /// Starts a stopped child again: in its old process after
    /// `terminate_child`, in a new one (see [`which_children`](Self::which_children))
    /// when its process ended for good.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future once the request is queued does not withdraw
    /// it: the child may still be started.
    pub async fn restart_child(&self, id: &str) -> Result<(), Error> {
        self.request(Request::RestartChild(id.to_owned()))
            .await
            .map(|_| ())
    }

    /// Deletes a stopped child; its process ends.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future once the request is queued does not withdraw
    /// it: the child is deleted anyway.
    pub async fn delete_child(&self, id: &str) -> Result<(), Error> {
        self.request(Request::DeleteChild(id.to_owned()))
            .await
            .map(|_| ())
    }

    /// Stops the supervisor: its children stop in reverse order, then it
    /// exits with `Shutdown`. A top-level supervisor's process ends (every
    /// child process with it); a nested one's parent decides what happens
    /// next (a permanent child is restarted: use the parent's
    /// `terminate_child` to keep it down). Waits at most the control
    /// timeout.
    ///
    /// # Cancel safety
    ///
    /// The stop request is sent before the first wait, so dropping the
    /// future does not cancel the shutdown; it only stops waiting for it.
    pub async fn shutdown(&self) -> Result<(), Error> {
        let process = self.process();
        if process.status() == crate::ProcessStatus::Closed {
            return Ok(());
        }
        let monitor = self.actor.monitor();
        process.stop(ExitReason::Shutdown);
        let finished = async {
            if self.top_level {
                monitor.await;
            } else {
                process.wait_instance_exit(None).await;
            }
        };
        tokio::time::timeout(self.control_timeout, finished)
            .await
            .map_err(|_| {
                Error::new(
                    ErrorCode::TIMEOUT,
                    format!("supervisor {} did not stop in time", self.name()),
                )
                .with_context("timeout_ms", self.control_timeout.as_millis())
            })
    }
}

/// Ends a supervisor process whose start was abandoned.
struct EndOnDrop(Option<Arc<Mailbox<Supervisor>>>);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        if let Some(mailbox) = self.0.take() {
            mailbox.close_for_good(ExitReason::Shutdown);
        }
    }
}

/// Makes the end of `supervisor`'s process end every child process it has:
/// the ones it owns (running, restarting, stopped, dynamic) and static
/// children that never started. A fresh process cannot have ended yet, so
/// the hook always registers.
pub(crate) fn end_children_with(supervisor: &ProcessRef, shared: &Arc<SupervisorShared>) {
    let shared = Arc::downgrade(shared);
    let hook = Box::new(move |_: &crate::Down| {
        if let Some(shared) = shared.upgrade() {
            let mut children: Vec<ProcessRef> = server::lock(&shared.owned)
                .drain()
                .map(|(_, process)| process)
                .collect();
            children.extend(
                server::lock(&shared.specs)
                    .iter()
                    .map(|spec| spec.process()),
            );
            for process in children {
                process.inner.close(ExitReason::Shutdown);
            }
        }
    });
    // A fresh process has not ended, so the hook registers; if it ever had,
    // the hook runs now, so the children end all the same.
    if let Err((hook, reason)) = supervisor.inner.add_exit_hook(hook) {
        hook(&crate::Down {
            process: supervisor.id(),
            reason,
        });
    }
}

fn unexpected_reply() -> Error {
    Error::new(
        ErrorCode::INTERNAL_ERROR,
        "the supervisor answered with an unexpected reply",
    )
}
