//! Foundation's runtime kernel: Erlang/OTP's supervision semantics on tokio.
//!
//! Work in progress: actors, monitors and supervision land first; the
//! registry, supervised tasks, test kit and services follow.

mod actor;
mod monitor;
mod panic;
mod process;
pub mod registry;
pub mod signal;
mod supervisor;
mod task;
#[cfg(feature = "test-util")]
pub mod testkit;

pub use actor::{
    Actor, ActorOptions, ActorRef, Capacity, Context, DEFAULT_CALL_TIMEOUT, DEFAULT_CAPACITY,
    DEFAULT_SEND_TIMEOUT, DEFAULT_START_TIMEOUT, SendError, SendErrorKind, TimerRef, Undelivered,
    spawn, spawn_with,
};
pub use monitor::{MONITORS_LIVE, Monitor};
pub use process::{Down, ExitReason, ProcessId, ProcessRef, ProcessStatus};
pub use supervisor::{
    AutoShutdown, CHILD_EXITS_TOTAL, CHILD_STARTS_TOTAL, CHILDREN, ChildCounts, ChildInfo,
    ChildKind, ChildSpec, ChildStatus, DEFAULT_CONTROL_TIMEOUT, DEFAULT_EVENT_CAPACITY,
    DEFAULT_MAX_RESTARTS, DEFAULT_RESTART_PERIOD, DEFAULT_SUPERVISOR_START_TIMEOUT,
    DEFAULT_WORKER_SHUTDOWN, DynamicSupervisor, DynamicSupervisorBuilder, ESCALATIONS_TOTAL,
    EventBus, RESTARTS_TOTAL, Restart, Shutdown, Strategy, Supervisor, SupervisorArgs,
    SupervisorBuilder, SupervisorEvent, SupervisorEventKind, SupervisorInfo, SupervisorRef,
    SupervisorReply, SupervisorRequest,
};
pub use task::{TaskHandle, TaskSupervisor, TaskSupervisorActor};
