//! Foundation's runtime kernel: Erlang/OTP's supervision semantics on tokio.
//!
//! Everything an application spawns goes through this crate: actors,
//! supervisors, supervised tasks. Around them it provides the registry,
//! monitors, a reliable signal router and a test kit.
//!
//! | module | what it gives |
//! | --- | --- |
//! | [`Actor`], [`ActorRef`], [`spawn`] | gen_server-style actors: calls, casts, info, timers, `terminate` |
//! | [`Supervisor`], [`DynamicSupervisor`], [`ChildSpec`] | supervision trees with OTP's strategies, restart types and intensity |
//! | [`Monitor`] | a one-shot notification of a process's end |
//! | [`registry`] | unique names with metadata and indexed queries |
//! | [`TaskSupervisor`] | supervised futures whose panics are errors for their awaiter |
//! | [`signal`] | CloudEvents-shaped signals routed by type pattern, with acknowledgements |
//! | [`rate_limiter`] | fixed-window limiters, exact under concurrency, no actor or global lock on the check path |
//! | [`circuit_breaker`] | closed/open/half-open breakers running the caller's future on the caller's task |
//! | [`clock`] | the injectable clock the services measure time on |
//! | `testkit` (feature `test-util`) | bounded, event-driven waits for tests |
//!
//! # The semantics, in one place
//!
//! - **Processes and instances.** An actor's *process* is its mailbox and
//!   identity; an *instance* is one run of `init`..`terminate`. Under a
//!   supervisor a process lives through many instances, and every handle
//!   ([`ActorRef`], [`ProcessRef`]) stays valid across restarts. Monitors
//!   and registry entries follow the process: they fire, or vanish, when it
//!   ends for good, not on a restart.
//! - **Nothing waits forever.** `call` defaults to 5 s, `cast` waits for
//!   room at most 5 s, `init` at most 5 s (60 s for a supervisor starting
//!   its children), supervisor control calls 30 s; the test kit's waits
//!   default to 1 s. A call to an ended process fails at once.
//! - **Bounded by default.** Mailboxes hold 1,024 messages unless told
//!   otherwise; unbounded only through `unbounded_mailbox()`.
//! - **Crashes.** A panic in a handler is caught and ends the instance with
//!   [`ExitReason::Panic`] (this needs `panic = "unwind"`, Rust's default;
//!   with `panic = "abort"` the OS process aborts). Every call queued on a
//!   crashing instance, and the one it was handling, gets an error reply at
//!   once. Queued casts and info messages are kept for the restarted
//!   instance; if the process ends for good they go to the
//!   [`ActorOptions::on_undelivered`] hook and are counted.
//! - **Supervision.** Children start in order and stop in reverse order,
//!   each within its [`Shutdown`] limit, then aborted; a replacement's
//!   `init` begins only after the old instance's `terminate` finished;
//!   restarts are counted in one sliding window per supervisor (default 3
//!   in 5 s), and exceeding it stops the children and exits the supervisor
//!   with `Shutdown`, which its parent sees as a child failure.
//!
//! # Example
//!
//! ```
//! use foundation_core::{Actor, ChildSpec, Context, Supervisor};
//! use foundation_error::Error;
//!
//! struct Greeter;
//! impl Actor for Greeter {
//!     type Args = ();
//!     type Call = String;
//!     type Reply = String;
//!     type Cast = ();
//!     type Info = ();
//!     async fn init(_: (), _ctx: &mut Context<Self>) -> Result<Self, Error> { Ok(Greeter) }
//!     async fn handle_call(&mut self, name: String, _ctx: &mut Context<Self>) -> Result<String, Error> {
//!         Ok(format!("hello, {name}"))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let greeter = ChildSpec::<Greeter>::new("greeter", ());
//! let handle = greeter.handle();
//! let mut app = Supervisor::builder("app");
//! app.child(greeter);
//! let app = app.start().await?;
//!
//! assert_eq!(handle.call("ada".into()).await?, "hello, ada");
//! assert_eq!(app.count_children().await?.active, 1);
//! app.shutdown().await?;
//! assert!(!handle.is_alive());
//! # Ok(())
//! # }
//! ```

mod actor;
pub mod circuit_breaker;
pub mod clock;
pub mod metrics;
mod monitor;
mod panic;
mod process;
pub mod rate_limiter;
pub mod registry;
pub mod signal;
mod supervisor;
mod task;
#[cfg(feature = "test-util")]
pub mod testkit;

pub use actor::{
    Actor, ActorOptions, ActorRef, Capacity, Context, DEFAULT_CALL_TIMEOUT, DEFAULT_CAPACITY,
    DEFAULT_SEND_TIMEOUT, DEFAULT_START_TIMEOUT, MonitorRef, ReplyPort, SendError, SendErrorKind,
    TimerRef, Undelivered, spawn, spawn_with,
};
pub use circuit_breaker::{
    CircuitBreaker, CircuitBreakerBuilder, CircuitBreakerRegistry, CircuitState, StateChange,
    TransitionReason,
};
pub use clock::{Clock, ManualClock, TokioClock};
pub use foundation_error::{Error, Result};
pub use monitor::{Monitor, live_monitors};
pub use process::{Down, ExitReason, ProcessId, ProcessRef, ProcessStatus};
pub use rate_limiter::{Decision, Limiter, RateLimiter, RateLimiterBuilder, Status};
pub use supervisor::{
    AutoShutdown, ChildCounts, ChildInfo, ChildKind, ChildSpec, ChildStatus,
    DEFAULT_CONTROL_TIMEOUT, DEFAULT_EVENT_CAPACITY, DEFAULT_MAX_RESTARTS, DEFAULT_RESTART_PERIOD,
    DEFAULT_SUPERVISOR_START_TIMEOUT, DEFAULT_WORKER_SHUTDOWN, DynamicSupervisor,
    DynamicSupervisorBuilder, EventBus, Restart, Shutdown, Strategy, Supervisor, SupervisorBuilder,
    SupervisorEvent, SupervisorEventKind, SupervisorRef,
};
pub use task::{TaskHandle, TaskSupervisor, TaskSupervisorActor};
