//! The supervisor as an actor: it owns its children's run-time state,
//! learns of their exits through its mailbox, and applies the strategy,
//! restart types and intensity.
//!
//! Being an actor gives the supervisor what it gives its children: a handle
//! that survives its own restarts, caught panics, and a clean exit that its
//! parent sees (escalation is simply this actor exiting with `Shutdown`).
//! Its mailbox is unbounded: exit reports must never wait or be dropped,
//! and they are bounded by the number of children anyway.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use foundation_error::clock::SharedClock;
use foundation_error::{Error, ErrorCode};

use super::events::{EventBus, SupervisorEventKind};
use super::intensity::Intensity;
use super::spec::{ChildKind, ErasedChild, Restart, Shutdown};
use super::{AutoShutdown, ChildCounts, ChildInfo, ChildStatus, Strategy};
use crate::actor::{ExitSink, Mailbox};
use crate::metrics::SUPERVISOR_CHILDREN as CHILDREN;
use crate::process::{ExitReason, ProcessId, ProcessRef, ProcessStatus};
use crate::{Actor, ActorRef, Context};

/// How long to wait for an aborted instance to be gone. An instance stuck
/// in blocking code cannot be aborted; after this the supervisor carries
/// on without it and reports the start of a replacement as failed.
pub(crate) const ABORT_GRACE: Duration = Duration::from_secs(1);

/// Configuration and state that outlive any one supervisor instance.
pub(crate) struct SupervisorShared {
    pub(crate) name: Arc<str>,
    pub(crate) strategy: Strategy,
    pub(crate) max_restarts: u32,
    pub(crate) period: Duration,
    /// Measures the restart window and stamps events.
    pub(crate) clock: SharedClock,
    pub(crate) auto_shutdown: AutoShutdown,
    pub(crate) events: std::sync::OnceLock<EventBus>,
    /// The static children, in start order; kept across restarts, so
    /// children added at run time come back too.
    pub(crate) specs: Mutex<Vec<Arc<dyn ErasedChild>>>,
    /// Every child process this supervisor owns; closed when the
    /// supervisor's own process ends.
    pub(crate) owned: Mutex<HashMap<ProcessId, ProcessRef>>,
    pub(crate) next_key: std::sync::atomic::AtomicU64,
    pub(crate) dynamic: Option<DynamicLimits>,
}

pub(crate) struct DynamicLimits {
    pub(crate) max_children: Option<usize>,
    pub(crate) count: std::sync::atomic::AtomicUsize,
}

impl SupervisorShared {
    pub(crate) fn events(&self) -> &EventBus {
        self.events.get_or_init(EventBus::new)
    }

    pub(crate) fn next_key(&self) -> u64 {
        self.next_key
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn own(&self, process: &ProcessRef) {
        lock(&self.owned).insert(process.id(), process.clone());
    }

    /// Forgets `process`; whether it was owned.
    pub(crate) fn disown(&self, process: &ProcessRef) -> bool {
        lock(&self.owned).remove(&process.id()).is_some()
    }

    pub(crate) fn is_owned(&self, process: &ProcessRef) -> bool {
        lock(&self.owned).contains_key(&process.id())
    }

    /// Gives back a dynamic child's slot (`max_children`). A dynamic
    /// child's slot is held while its process is owned: it is given back
    /// exactly once, by whoever removes it from the owned processes.
    pub(crate) fn release_dynamic_slot(&self) {
        if let Some(limits) = &self.dynamic {
            limits
                .count
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // No critical section here runs user code.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The supervisor actor. Users hold it through a
/// [`SupervisorRef`](crate::SupervisorRef); the type is public only so that
/// supervisors can be children ([`ChildSpec<Supervisor>`](crate::ChildSpec)).
pub struct Supervisor {
    shared: Arc<SupervisorShared>,
    myself: Weak<Mailbox<Supervisor>>,
    children: BTreeMap<u64, Child>,
    ids: HashMap<Arc<str>, u64>,
    by_process: HashMap<ProcessId, u64>,
    intensity: Intensity,
    /// Children in `ChildState::Running`, kept as states change, so the
    /// gauge costs O(1) per message.
    running: usize,
}

struct Child {
    spec: Arc<dyn ErasedChild>,
    state: ChildState,
    dynamic: bool,
}

/// Moves `child` to `state`, keeping the count of running children.
fn transition(running: &mut usize, child: &mut Child, state: ChildState) {
    let was = matches!(child.state, ChildState::Running(_));
    let is = matches!(state, ChildState::Running(_));
    child.state = state;
    match (was, is) {
        (false, true) => *running += 1,
        (true, false) => *running = running.saturating_sub(1),
        _ => {}
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChildState {
    Running(u64),
    Restarting,
    Stopped,
}

/// A supervisor's start arguments (opaque).
#[derive(Clone)]
pub struct SupervisorArgs(pub(crate) Arc<SupervisorShared>);

/// A request to a supervisor (opaque; use [`SupervisorRef`](crate::SupervisorRef)).
pub struct SupervisorRequest(pub(crate) Request);

/// A supervisor's reply (opaque).
pub struct SupervisorReply(pub(crate) Reply);

/// A supervisor's internal notification (opaque).
pub struct SupervisorInfo(pub(crate) Info);

pub(crate) enum Request {
    WhichChildren,
    CountChildren,
    StartChild(Arc<dyn ErasedChild>),
    TerminateChild(String),
    RestartChild(String),
    DeleteChild(String),
    TerminateProcess(ProcessId),
}

pub(crate) enum Reply {
    Children(Vec<ChildInfo>),
    Counts(ChildCounts),
    Done,
}

pub(crate) enum Info {
    ChildExited {
        key: u64,
        incarnation: u64,
        reason: ExitReason,
    },
    Adopt {
        key: u64,
        spec: Arc<dyn ErasedChild>,
        incarnation: u64,
        /// The supervisor incarnation that accepted the child: a later one
        /// ends it instead of adopting it.
        accepted_by: u64,
    },
    RetryRestart {
        key: u64,
    },
}

/// The exit report of child `key`: to the supervisor if it is there, or,
/// when nobody will ever restart the child, the end of its process.
pub(crate) fn exit_sink(
    supervisor: Weak<Mailbox<Supervisor>>,
    key: u64,
    process: ProcessRef,
) -> ExitSink {
    ExitSink::Supervised(Box::new(move |reason, incarnation| {
        let delivered = supervisor.upgrade().is_some_and(|mailbox| {
            ActorRef::from_mailbox(mailbox)
                .try_send_info(SupervisorInfo(Info::ChildExited {
                    key,
                    incarnation,
                    reason: reason.clone(),
                }))
                .is_ok()
        });
        if !delivered {
            process.inner.close(reason);
        }
    }))
}

impl Actor for Supervisor {
    type Args = SupervisorArgs;
    type Call = SupervisorRequest;
    type Reply = SupervisorReply;
    type Cast = ();
    type Info = SupervisorInfo;

    async fn init(args: SupervisorArgs, ctx: &mut Context<Self>) -> Result<Self, Error> {
        let shared = args.0;
        let mut supervisor = Supervisor {
            intensity: Intensity::new(shared.max_restarts, shared.period),
            myself: Arc::downgrade(&ctx.myself().mailbox().clone()),
            children: BTreeMap::new(),
            ids: HashMap::new(),
            by_process: HashMap::new(),
            running: 0,
            shared,
        };
        let specs = lock(&supervisor.shared.specs).clone();
        supervisor.end_stale_children(&specs);
        for spec in specs {
            let key = supervisor.insert(spec, false, ChildState::Restarting);
            if let Err(error) = supervisor.start_child_instance(key).await {
                let id = supervisor.child_id(key);
                supervisor.stop_all().await;
                return Err(Error::new(
                    ErrorCode::INITIALIZATION_FAILED,
                    format!(
                        "supervisor {} could not start child {id}: {}",
                        supervisor.shared.name,
                        error.message()
                    ),
                )
                .with_context("supervisor", &supervisor.shared.name)
                .with_context("child", id)
                .with_cause(error));
            }
        }
        supervisor.update_gauge();
        Ok(supervisor)
    }

    async fn handle_call(
        &mut self,
        request: SupervisorRequest,
        _ctx: &mut Context<Self>,
    ) -> Result<SupervisorReply, Error> {
        let reply = match request.0 {
            Request::WhichChildren => Reply::Children(self.which_children()),
            Request::CountChildren => Reply::Counts(self.count_children()),
            Request::StartChild(spec) => {
                self.start_new_child(spec).await?;
                Reply::Done
            }
            Request::TerminateChild(id) => {
                let key = self.key_of(&id)?;
                self.terminate_child(key).await;
                Reply::Done
            }
            Request::RestartChild(id) => {
                let key = self.key_of(&id)?;
                self.restart_stopped_child(key).await?;
                Reply::Done
            }
            Request::DeleteChild(id) => {
                let key = self.key_of(&id)?;
                self.delete_stopped_child(key)?;
                Reply::Done
            }
            Request::TerminateProcess(process) => {
                let key = *self.by_process.get(&process).ok_or_else(|| {
                    Error::new(
                        ErrorCode::DATA_NOT_FOUND,
                        format!("process {process} is not a child of {}", self.shared.name),
                    )
                })?;
                self.stop_child(key).await;
                self.remove(key, ExitReason::Shutdown);
                Reply::Done
            }
        };
        self.update_gauge();
        Ok(SupervisorReply(reply))
    }

    async fn handle_info(
        &mut self,
        info: SupervisorInfo,
        ctx: &mut Context<Self>,
    ) -> Result<(), Error> {
        match info.0 {
            Info::ChildExited {
                key,
                incarnation,
                reason,
            } => self.on_child_exit(key, incarnation, reason, ctx).await,
            Info::Adopt {
                key,
                spec,
                incarnation,
                accepted_by,
            } => {
                let id = Arc::clone(spec.id());
                let process = spec.process();
                if accepted_by != ctx.myself().incarnation() && !self.shared.is_owned(&process) {
                    // The instance that accepted it is gone, and this
                    // instance's start already ended it and gave its slot
                    // back (`end_stale_children`): adopting it now would
                    // give the slot back twice.
                    process.inner.close(ExitReason::Shutdown);
                    self.update_gauge();
                    return Ok(());
                }
                self.insert_with_key(key, spec, true, ChildState::Running(incarnation));
                self.emit(
                    &id,
                    SupervisorEventKind::ChildStarted {
                        process: process.id(),
                        incarnation,
                    },
                );
                if accepted_by != ctx.myself().incarnation() {
                    // The instance that accepted it is gone, and its
                    // dynamic children end with it.
                    self.stop_child(key).await;
                    self.remove(key, ExitReason::Shutdown);
                }
            }
            Info::RetryRestart { key } => {
                if self.children.contains_key(&key) {
                    if self.intensity.record(self.shared.clock.elapsed()) {
                        self.restart_pending(key).await;
                    } else {
                        self.escalate(key, ctx);
                    }
                }
            }
        }
        self.update_gauge();
        Ok(())
    }

    async fn terminate(&mut self, _reason: &ExitReason, _ctx: &mut Context<Self>) {
        self.stop_all().await;
        // Dynamic children are not restarted with the supervisor: their
        // processes end here.
        let dynamic: Vec<u64> = self
            .children
            .iter()
            .filter(|(_, child)| child.dynamic)
            .map(|(key, _)| *key)
            .collect();
        for key in dynamic {
            self.remove(key, ExitReason::Shutdown);
        }
        self.update_gauge();
    }
}

impl Drop for Supervisor {
    /// When the supervisor instance is aborted, `terminate` does not run:
    /// its children must not outlive it, so they are aborted too.
    fn drop(&mut self) {
        for child in self.children.values() {
            if matches!(child.state, ChildState::Running(_)) {
                child.spec.process().kill();
            }
        }
    }
}

impl Supervisor {
    fn insert(&mut self, spec: Arc<dyn ErasedChild>, dynamic: bool, state: ChildState) -> u64 {
        let key = self.shared.next_key();
        self.insert_with_key(key, spec, dynamic, state);
        key
    }

    fn insert_with_key(
        &mut self,
        key: u64,
        spec: Arc<dyn ErasedChild>,
        dynamic: bool,
        state: ChildState,
    ) {
        let process = spec.process();
        self.shared.own(&process);
        spec.inherit_events(self.shared.events());
        if !dynamic {
            self.ids.insert(Arc::clone(spec.id()), key);
        }
        self.by_process.insert(process.id(), key);
        if matches!(state, ChildState::Running(_)) {
            self.running += 1;
        }
        self.children.insert(
            key,
            Child {
                spec,
                state,
                dynamic,
            },
        );
    }

    /// Removes a child for good and ends its process.
    fn remove(&mut self, key: u64, reason: ExitReason) {
        let Some(child) = self.children.remove(&key) else {
            return;
        };
        if matches!(child.state, ChildState::Running(_)) {
            self.running = self.running.saturating_sub(1);
        }
        let process = child.spec.process();
        self.by_process.remove(&process.id());
        let owned = self.shared.disown(&process);
        if child.dynamic {
            if owned {
                self.shared.release_dynamic_slot();
            }
        } else {
            self.ids.remove(child.spec.id());
            lock(&self.shared.specs).retain(|spec| !Arc::ptr_eq(spec, &child.spec));
        }
        process.inner.close(reason);
    }

    /// Ends the processes of children that a previous instance had and
    /// this one will not start: dynamic children (whose previous instance
    /// was aborted before its `terminate` could end them).
    fn end_stale_children(&self, specs: &[Arc<dyn ErasedChild>]) {
        let stale: Vec<ProcessRef> = {
            let mut owned = lock(&self.shared.owned);
            let stale: Vec<ProcessId> = owned
                .keys()
                .filter(|id| !specs.iter().any(|spec| spec.process().id() == **id))
                .copied()
                .collect();
            stale.iter().filter_map(|id| owned.remove(id)).collect()
        };
        for process in stale {
            self.shared.release_dynamic_slot();
            process.inner.close(ExitReason::Shutdown);
        }
    }

    fn child_id(&self, key: u64) -> String {
        self.children
            .get(&key)
            .map(|child| child.spec.id().to_string())
            .unwrap_or_default()
    }

    fn key_of(&self, id: &str) -> Result<u64, Error> {
        self.ids.get(id).copied().ok_or_else(|| {
            Error::new(
                ErrorCode::DATA_NOT_FOUND,
                format!("supervisor {} has no child {id}", self.shared.name),
            )
        })
    }

    fn emit(&self, child: &Arc<str>, kind: SupervisorEventKind) {
        self.shared
            .events()
            .emit(&self.shared.name, child, kind, self.shared.clock.as_ref());
    }

    fn update_gauge(&self) {
        debug_assert_eq!(
            self.running,
            self.children
                .values()
                .filter(|child| matches!(child.state, ChildState::Running(_)))
                .count()
        );
        metrics::gauge!(CHILDREN, "supervisor" => self.shared.name.to_string())
            .set(self.running as f64);
    }

    /// Starts an instance of child `key`, after making sure no earlier one
    /// is still running, in a new process if its old one ended for good.
    async fn start_child_instance(&mut self, key: u64) -> Result<u64, Error> {
        self.renew_if_ended(key);
        let Some(child) = self.children.get(&key) else {
            return Err(Error::new(ErrorCode::DATA_NOT_FOUND, "no such child"));
        };
        let spec = Arc::clone(&child.spec);
        let process = spec.process();
        if process.status() == ProcessStatus::Running {
            process.kill();
            if !process.wait_instance_exit(Some(ABORT_GRACE)).await {
                return Err(Error::new(
                    ErrorCode::INTERNAL_ERROR,
                    format!(
                        "the previous instance of child {} did not stop (blocking code?)",
                        spec.id()
                    ),
                ));
            }
        }
        process.inner.set_stopped(false);
        let sink = exit_sink(self.myself.clone(), key, process.clone());
        match spec.start(sink).await {
            Ok(incarnation) => {
                if let Some(child) = self.children.get_mut(&key) {
                    transition(&mut self.running, child, ChildState::Running(incarnation));
                }
                self.emit(
                    spec.id(),
                    SupervisorEventKind::ChildStarted {
                        process: process.id(),
                        incarnation,
                    },
                );
                Ok(incarnation)
            }
            Err(error) => {
                if let Some(child) = self.children.get_mut(&key) {
                    transition(&mut self.running, child, ChildState::Restarting);
                }
                Err(error)
            }
        }
    }

    /// Stops child `key` if it is running, per its shutdown policy.
    async fn stop_child(&mut self, key: u64) {
        let Some(child) = self.children.get_mut(&key) else {
            return;
        };
        if !matches!(child.state, ChildState::Running(_)) {
            return;
        }
        transition(&mut self.running, child, ChildState::Restarting);
        let spec = Arc::clone(&child.spec);
        let process = spec.process();
        let reason = match spec.shutdown() {
            Shutdown::BrutalKill => {
                process.kill();
                process.wait_instance_exit(Some(ABORT_GRACE)).await;
                ExitReason::Killed
            }
            Shutdown::Timeout(limit) => {
                process.stop(ExitReason::Shutdown);
                if process.wait_instance_exit(Some(limit)).await {
                    ExitReason::Shutdown
                } else {
                    process.kill();
                    process.wait_instance_exit(Some(ABORT_GRACE)).await;
                    ExitReason::Killed
                }
            }
            Shutdown::Infinity => {
                process.stop(ExitReason::Shutdown);
                process.wait_instance_exit(None).await;
                ExitReason::Shutdown
            }
        };
        self.emit(
            spec.id(),
            SupervisorEventKind::ChildExited {
                process: process.id(),
                reason,
            },
        );
    }

    /// Stops every running child, in reverse start order.
    async fn stop_all(&mut self) {
        let keys: Vec<u64> = self.children.keys().rev().copied().collect();
        for key in keys {
            self.stop_child(key).await;
        }
    }

    async fn on_child_exit(
        &mut self,
        key: u64,
        incarnation: u64,
        reason: ExitReason,
        ctx: &mut Context<Self>,
    ) {
        let Some(child) = self.children.get_mut(&key) else {
            return;
        };
        if child.state != ChildState::Running(incarnation) {
            // We stopped it ourselves, or it is an earlier incarnation.
            return;
        }
        transition(&mut self.running, child, ChildState::Restarting);
        let spec = Arc::clone(&child.spec);
        self.emit(
            spec.id(),
            SupervisorEventKind::ChildExited {
                process: spec.process().id(),
                reason: reason.clone(),
            },
        );
        let restart = match spec.restart() {
            Restart::Permanent => true,
            Restart::Transient => !reason.is_normal(),
            Restart::Temporary => false,
        };
        if !restart {
            self.retire(key, reason);
            if spec.significant() {
                self.check_auto_shutdown(ctx);
            }
            return;
        }
        if !self.intensity.record(self.shared.clock.elapsed()) {
            self.escalate(key, ctx);
            return;
        }
        match self.shared.strategy {
            Strategy::OneForOne => {}
            Strategy::OneForAll => {
                let others: Vec<u64> = self.children.keys().rev().copied().collect();
                for other in others {
                    self.stop_sibling(other).await;
                }
            }
            Strategy::RestForOne => {
                let later: Vec<u64> = self
                    .children
                    .range(key + 1..)
                    .rev()
                    .map(|(key, _)| *key)
                    .collect();
                for other in later {
                    self.stop_sibling(other).await;
                }
            }
        }
        self.restart_pending(key).await;
    }

    /// Stops a sibling for a group restart; a temporary one is removed.
    async fn stop_sibling(&mut self, key: u64) {
        let temporary = self
            .children
            .get(&key)
            .is_some_and(|child| child.spec.restart() == Restart::Temporary);
        self.stop_child(key).await;
        if temporary {
            self.remove(key, ExitReason::Shutdown);
        }
    }

    /// Restarts the children waiting for a restart: `key` itself, and for
    /// group strategies every later (or, for `OneForAll`, every) child not
    /// running. On a failure, schedules a retry from the failed child.
    async fn restart_pending(&mut self, key: u64) {
        let candidates: Vec<u64> = match self.shared.strategy {
            Strategy::OneForOne => vec![key],
            Strategy::OneForAll => self.children.keys().copied().collect(),
            Strategy::RestForOne => self.children.range(key..).map(|(key, _)| *key).collect(),
        };
        for candidate in candidates {
            let Some(child) = self.children.get(&candidate) else {
                continue;
            };
            if child.state != ChildState::Restarting {
                continue;
            }
            let spec = Arc::clone(&child.spec);
            match self.start_child_instance(candidate).await {
                Ok(incarnation) => self.emit(
                    spec.id(),
                    SupervisorEventKind::ChildRestarted {
                        process: spec.process().id(),
                        incarnation,
                    },
                ),
                Err(error) => {
                    self.emit(
                        spec.id(),
                        SupervisorEventKind::RestartFailed {
                            process: spec.process().id(),
                            error,
                        },
                    );
                    self.schedule_retry(candidate);
                    return;
                }
            }
        }
    }

    fn schedule_retry(&self, key: u64) {
        if let Some(mailbox) = self.myself.upgrade() {
            // The mailbox is unbounded; this fails only if we are ending.
            let _ = ActorRef::from_mailbox(mailbox)
                .try_send_info(SupervisorInfo(Info::RetryRestart { key }));
        }
    }

    fn escalate(&mut self, key: u64, ctx: &mut Context<Self>) {
        let id = self
            .children
            .get(&key)
            .map(|child| Arc::clone(child.spec.id()))
            .unwrap_or_else(|| Arc::from(""));
        self.emit(
            &id,
            SupervisorEventKind::IntensityExceeded {
                max_restarts: self.shared.max_restarts,
                period: self.shared.period,
            },
        );
        tracing::warn!(
            supervisor = %self.shared.name,
            child = %id,
            max_restarts = self.shared.max_restarts,
            period_ms = self.shared.period.as_millis() as u64,
            "restart intensity exceeded; stopping children and exiting"
        );
        // `terminate` stops the remaining children in reverse order.
        ctx.stop(ExitReason::Shutdown);
    }

    /// A child that exited and will not be restarted: its process ends for
    /// good with `reason` (monitors fire, registry names are freed).
    /// Temporary and dynamic children are removed; a static transient one
    /// keeps its spec, stopped, and `restart_child` starts it in a new
    /// process.
    fn retire(&mut self, key: u64, reason: ExitReason) {
        let Some(child) = self.children.get_mut(&key) else {
            return;
        };
        if child.dynamic || child.spec.restart() == Restart::Temporary {
            self.remove(key, reason);
        } else {
            transition(&mut self.running, child, ChildState::Stopped);
            child.spec.process().inner.close(reason);
        }
    }

    /// Gives child `key` a new process if its old one ended for good.
    fn renew_if_ended(&mut self, key: u64) {
        let Some(child) = self.children.get_mut(&key) else {
            return;
        };
        let old = child.spec.process();
        if old.is_alive() {
            return;
        }
        let renewed = child.spec.renew();
        let new = renewed.process();
        {
            let mut specs = lock(&self.shared.specs);
            for spec in specs.iter_mut() {
                if Arc::ptr_eq(spec, &child.spec) {
                    *spec = Arc::clone(&renewed);
                }
            }
        }
        child.spec = renewed;
        self.by_process.remove(&old.id());
        self.by_process.insert(new.id(), key);
        self.shared.disown(&old);
        self.shared.own(&new);
    }

    fn check_auto_shutdown(&mut self, ctx: &mut Context<Self>) {
        let shut_down = match self.shared.auto_shutdown {
            AutoShutdown::Never => false,
            AutoShutdown::AnySignificant => true,
            AutoShutdown::AllSignificant => !self.children.values().any(|child| {
                child.spec.significant()
                    && matches!(child.state, ChildState::Running(_) | ChildState::Restarting)
            }),
        };
        if shut_down {
            ctx.stop(ExitReason::Shutdown);
        }
    }

    fn which_children(&self) -> Vec<ChildInfo> {
        self.children
            .values()
            .map(|child| {
                let process = child.spec.process();
                let id = if child.dynamic {
                    format!("{}#{}", child.spec.id(), process.id().as_u64())
                } else {
                    child.spec.id().to_string()
                };
                ChildInfo {
                    id,
                    process,
                    kind: child.spec.kind(),
                    restart: child.spec.restart(),
                    status: match child.state {
                        ChildState::Running(_) => ChildStatus::Running,
                        ChildState::Restarting => ChildStatus::Restarting,
                        ChildState::Stopped => ChildStatus::Stopped,
                    },
                }
            })
            .collect()
    }

    fn count_children(&self) -> ChildCounts {
        let mut counts = ChildCounts::default();
        for child in self.children.values() {
            counts.specs += 1;
            if matches!(child.state, ChildState::Running(_)) {
                counts.active += 1;
            }
            match child.spec.kind() {
                ChildKind::Worker => counts.workers += 1,
                ChildKind::Supervisor => counts.supervisors += 1,
            }
        }
        counts
    }

    async fn start_new_child(&mut self, spec: Arc<dyn ErasedChild>) -> Result<(), Error> {
        if self.ids.contains_key(spec.id()) {
            return Err(Error::new(
                ErrorCode::ALREADY_EXISTS,
                format!(
                    "supervisor {} already has a child {}",
                    self.shared.name,
                    spec.id()
                ),
            ));
        }
        lock(&self.shared.specs).push(Arc::clone(&spec));
        let key = self.insert(Arc::clone(&spec), false, ChildState::Restarting);
        match self.start_child_instance(key).await {
            Ok(_) => Ok(()),
            Err(error) => {
                self.remove(key, ExitReason::Error(error.clone()));
                Err(error)
            }
        }
    }

    async fn terminate_child(&mut self, key: u64) {
        self.stop_child(key).await;
        let temporary = self
            .children
            .get(&key)
            .is_some_and(|child| child.spec.restart() == Restart::Temporary);
        if temporary {
            self.remove(key, ExitReason::Shutdown);
        } else if let Some(child) = self.children.get_mut(&key) {
            transition(&mut self.running, child, ChildState::Stopped);
            child.spec.process().inner.set_stopped(true);
        }
    }

    async fn restart_stopped_child(&mut self, key: u64) -> Result<(), Error> {
        let Some(child) = self.children.get(&key) else {
            return Err(Error::new(ErrorCode::DATA_NOT_FOUND, "no such child"));
        };
        if child.state != ChildState::Stopped {
            return Err(Error::new(
                ErrorCode::INVALID_STATE_TRANSITION,
                format!("child {} is not stopped", child.spec.id()),
            ));
        }
        self.start_child_instance(key).await.map(|_| ())
    }

    fn delete_stopped_child(&mut self, key: u64) -> Result<(), Error> {
        let Some(child) = self.children.get(&key) else {
            return Err(Error::new(ErrorCode::DATA_NOT_FOUND, "no such child"));
        };
        if child.state != ChildState::Stopped {
            return Err(Error::new(
                ErrorCode::INVALID_STATE_TRANSITION,
                format!(
                    "child {} must be terminated before it is deleted",
                    child.spec.id()
                ),
            ));
        }
        self.remove(key, ExitReason::Shutdown);
        Ok(())
    }
}
