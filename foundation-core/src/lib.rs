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
//! | [`Monitor`], [`live_monitors`] | a one-shot notification of a process's end |
//! | [`ReplyPort`], [`ActorRef::ask`] | typed replies per request, answered at once or later |
//! | [`metrics`] | every metric name the crate records |
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
//! - **Nothing waits forever.** `call` and `ask` default to 5 s, `cast`
//!   waits for room at most 5 s, `init` at most 5 s (60 s for a supervisor
//!   starting its children), supervisor control calls 30 s; the test kit's
//!   waits default to 1 s. A call to an ended process fails at once. One
//!   exception: a nested supervisor's default [`Shutdown::Infinity`] waits
//!   for its children's own shutdown limits, so it is bounded only if they
//!   are (give it a `Shutdown::Timeout` to bound it outright).
//! - **Cancel safety.** Dropping a `cast`/`send_info` future sends nothing;
//!   dropping a `call`/`ask` future after its request was queued does not
//!   take the request back (it is handled, the answer discarded); dropping
//!   a supervisor control future (`start_child`, `terminate_child`, ...)
//!   likewise leaves the queued request to run. Each method says so.
//! - **Bounded by default.** Mailboxes hold 1,024 messages unless told
//!   otherwise; unbounded only through `unbounded_mailbox()`.
//! - **Crashes.** A panic in a handler is caught and ends the instance with
//!   [`ExitReason::Panic`] (this needs `panic = "unwind"`, Rust's default;
//!   with `panic = "abort"` the OS process aborts). Every call queued on a
//!   crashing instance, and the one it was handling, gets an error reply at
//!   once. Queued casts and info messages are kept for the restarted
//!   instance; if the process ends for good they go to the
//!   [`ActorOptions::on_undelivered`] hook and are counted.
//! - **When a supervised process ends for good (no limbo).** A process
//!   lives on only while something may still run it. It ends for good,
//!   at once (handles fail with `process_not_alive`, monitors fire with
//!   the exit reason, registry names are freed), when: its child will not
//!   be restarted (a `Transient` child after a normal exit, a `Temporary`
//!   one after any exit); a top-level supervisor's start fails (every
//!   child it has, started, prepared or not yet started); a dynamic
//!   child's supervisor instance ends (also one accepted by `start_child`
//!   just before, whose adoption the next instance refuses); its
//!   supervisor's process ends. A static transient child keeps its spec:
//!   `restart_child` (or a restart of its supervisor) starts it in a *new*
//!   process, which [`SupervisorRef::which_children`] hands out; old
//!   handles stay ended, as in OTP. Only `terminate_child` keeps a process
//!   [`ProcessStatus::Stopped`] (sends fail, monitors wait) for
//!   `restart_child` to revive it.
//! - **Replies.** `call` answers with `handle_call`'s result; [`ActorRef::ask`]
//!   sends a [`ReplyPort`] inside a cast, which the handler answers at once
//!   or keeps and answers later; a port dropped unanswered answers its
//!   caller with `process_crashed` at once. Plain threads use
//!   `call_blocking`/`ask_blocking`, which need no runtime.
//! - **After each handler.** [`Actor::after_handle`] runs after every
//!   handler that returned, before its replies are released (the
//!   `handle_call` result and answers queued with
//!   [`Context::reply_after`]). If it fails, those replies carry its error
//!   and the instance ends with [`ExitReason::Error`]. The actor owns its
//!   state: what a handler changed before returning `Err` (or before
//!   `after_handle` failed) is kept by this instance, not rolled back; an
//!   actor that must not keep it (a persistent agent) restores it itself,
//!   or lets the instance end so that its restart reloads durable state.
//!   A panic drops the instance and its state.
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
pub use foundation_error::{Error, Result};
pub use monitor::{Monitor, live_monitors};
pub use process::{Down, ExitReason, ProcessId, ProcessRef, ProcessStatus};
pub use supervisor::{
    AutoShutdown, ChildCounts, ChildInfo, ChildKind, ChildSpec, ChildStatus,
    DEFAULT_CONTROL_TIMEOUT, DEFAULT_EVENT_CAPACITY, DEFAULT_MAX_RESTARTS, DEFAULT_RESTART_PERIOD,
    DEFAULT_SUPERVISOR_START_TIMEOUT, DEFAULT_WORKER_SHUTDOWN, DynamicSupervisor,
    DynamicSupervisorBuilder, EventBus, Restart, Shutdown, Strategy, Supervisor, SupervisorBuilder,
    SupervisorEvent, SupervisorEventKind, SupervisorRef,
};
pub use task::{TaskHandle, TaskSupervisor, TaskSupervisorActor};
