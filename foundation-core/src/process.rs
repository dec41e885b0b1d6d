//! Process identity: ids, exit reasons, and the type-erased handle that
//! supervisors, monitors and the registry hold.
//!
//! A *process* here is an actor's identity: its mailbox, which outlives
//! any one running instance. Under a supervisor an actor may crash and be
//! restarted many times; its [`ProcessRef`] (and typed
//! [`ActorRef`](crate::ActorRef)) stays the same and keeps working. The
//! process *ends* when its mailbox closes: it stopped and will not be
//! restarted. Monitors and registry entries follow the process, not the
//! instance.
//!
//! This module is not for sending typed messages; see `actor::handle`.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use foundation_error::Error;

/// A process's unique id within this OS process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessId(u64);

impl ProcessId {
    pub(crate) fn next() -> ProcessId {
        // A counter for identity, not shared mutable state: it only ever
        // hands out fresh numbers.
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ProcessId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The number behind the id.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.0)
    }
}

/// Why an actor instance (or a process) exited.
///
/// `Normal` and `Shutdown` are *normal* exits: a transient child is not
/// restarted after them. Every other reason is abnormal.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ExitReason {
    /// The actor finished its work and stopped itself.
    Normal,
    /// It was asked to stop (by its supervisor, or after the supervisor
    /// exceeded its restart intensity).
    Shutdown,
    /// It was aborted without running `terminate` (brutal kill, or a
    /// shutdown that outran its time limit).
    Killed,
    /// A handler panicked; the panic message.
    Panic(String),
    /// A handler (or `init`) returned this error.
    Error(Error),
}

impl ExitReason {
    /// Whether this is a normal exit (`Normal` or `Shutdown`).
    pub fn is_normal(&self) -> bool {
        matches!(self, ExitReason::Normal | ExitReason::Shutdown)
    }

    /// A short label for metrics: normal, shutdown, killed, panic, error.
    pub fn label(&self) -> &'static str {
        match self {
            ExitReason::Normal => "normal",
            ExitReason::Shutdown => "shutdown",
            ExitReason::Killed => "killed",
            ExitReason::Panic(_) => "panic",
            ExitReason::Error(_) => "error",
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Panic(message) => write!(f, "panic: {message}"),
            ExitReason::Error(error) => write!(f, "error: {error}"),
            other => f.write_str(other.label()),
        }
    }
}

/// The notification a monitor receives when its process ends.
#[derive(Debug, Clone)]
pub struct Down {
    /// The process that ended.
    pub process: ProcessId,
    /// Why it ended.
    pub reason: ExitReason,
}

/// Where a process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessStatus {
    /// Created; no instance has started yet (messages queue).
    Starting,
    /// An instance is running.
    Running,
    /// The instance exited; its supervisor is deciding or restarting
    /// (messages queue).
    Restarting,
    /// Its supervisor holds it stopped (`terminate_child`); sends fail at
    /// once, but the process has not ended: `restart_child` revives it.
    Stopped,
    /// The process ended; sends fail at once.
    Closed,
}

/// A hook run once when the process ends. Hooks run in the order they
/// were registered, on the thread that ends the process: a monitor set
/// after a registry entry (or signal subscription) fires only once that
/// entry is gone.
pub(crate) type ExitHook = Box<dyn FnOnce(&Down) + Send>;

/// What every mailbox offers, whatever its message types.
pub(crate) trait ProcessControl: Send + Sync + 'static {
    fn id(&self) -> ProcessId;
    fn status(&self) -> ProcessStatus;
    fn incarnation(&self) -> u64;
    /// Notified (all waiters) whenever an instance exits.
    fn instance_exit(&self) -> &tokio::sync::Notify;
    /// Holds the process stopped (sends fail) or releases it.
    fn set_stopped(&self, stopped: bool);
    /// Asks the running instance to stop with `reason` after the message it
    /// is handling; queued messages stay queued.
    fn request_stop(&self, reason: ExitReason) -> bool;
    /// Aborts the running instance without `terminate`.
    fn kill(&self) -> bool;
    /// Registers a hook for the end of the process; `Err` with the final
    /// exit reason when it has already ended.
    fn add_exit_hook(&self, hook: ExitHook) -> Result<u64, (ExitHook, ExitReason)>;
    /// Removes a hook; false when it already ran or never existed.
    fn remove_exit_hook(&self, key: u64) -> bool;
    /// The number of hooks (monitors, registry entries) waiting.
    fn exit_hook_count(&self) -> usize;
    /// Ends the process for good with `reason` (no instance may be running).
    fn close(&self, reason: ExitReason);
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// A type-erased, cloneable handle to a process.
///
/// Supervisors, monitors and the registry hold these; turn one back into a
/// typed [`ActorRef`](crate::ActorRef) with [`ProcessRef::downcast`].
#[derive(Clone)]
pub struct ProcessRef {
    pub(crate) inner: Arc<dyn ProcessControl>,
}

impl ProcessRef {
    /// The process id.
    pub fn id(&self) -> ProcessId {
        self.inner.id()
    }

    /// Where the process is in its life.
    pub fn status(&self) -> ProcessStatus {
        self.inner.status()
    }

    /// Whether the process has not ended (it may be restarting).
    pub fn is_alive(&self) -> bool {
        self.inner.status() != ProcessStatus::Closed
    }

    /// How many instances have started (1 for the first, +1 per restart).
    pub fn incarnation(&self) -> u64 {
        self.inner.incarnation()
    }

    /// The number of live monitors and registry entries watching this
    /// process.
    pub fn monitor_count(&self) -> usize {
        self.inner.exit_hook_count()
    }

    /// A one-shot notification of the end of this process.
    pub fn monitor(&self) -> crate::Monitor {
        crate::Monitor::new(self)
    }

    /// Asks the running instance to stop with `reason` (graceful: its
    /// `terminate` runs). An abnormal reason counts as a crash for its
    /// supervisor. Returns false when no instance is running.
    pub fn stop(&self, reason: ExitReason) -> bool {
        self.inner.request_stop(reason)
    }

    /// Aborts the running instance at its next await point, without
    /// `terminate`; its exit reason is `Killed`. Returns false when no
    /// instance is running.
    pub fn kill(&self) -> bool {
        self.inner.kill()
    }

    /// Waits until no instance is running, at most `timeout` (`None`: no
    /// limit); true when none is.
    pub(crate) async fn wait_instance_exit(&self, timeout: Option<std::time::Duration>) -> bool {
        let wait = async {
            loop {
                let notified = self.inner.instance_exit().notified();
                let mut notified = std::pin::pin!(notified);
                notified.as_mut().enable();
                if self.inner.status() != ProcessStatus::Running {
                    return;
                }
                notified.await;
            }
        };
        match timeout {
            Some(limit) => tokio::time::timeout(limit, wait).await.is_ok(),
            None => {
                wait.await;
                true
            }
        }
    }

    /// Waits until the instance `incarnation` is no longer the running one
    /// (it exited, or was replaced), at most `timeout`; true if so.
    pub(crate) async fn wait_instance_change(
        &self,
        incarnation: u64,
        timeout: std::time::Duration,
    ) -> bool {
        let changed = || {
            self.inner.status() != ProcessStatus::Running || self.inner.incarnation() != incarnation
        };
        let wait = async {
            loop {
                let notified = self.inner.instance_exit().notified();
                let mut notified = std::pin::pin!(notified);
                notified.as_mut().enable();
                if changed() {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    /// The typed handle, when the process is an actor of type `A`.
    pub fn downcast<A: crate::Actor>(&self) -> Option<crate::ActorRef<A>> {
        let any = Arc::clone(&self.inner).as_any();
        any.downcast::<crate::actor::Mailbox<A>>()
            .ok()
            .map(crate::ActorRef::from_mailbox)
    }
}

impl PartialEq for ProcessRef {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl Eq for ProcessRef {}

impl fmt::Debug for ProcessRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessRef")
            .field("id", &self.id())
            .field("status", &self.status())
            .finish()
    }
}
