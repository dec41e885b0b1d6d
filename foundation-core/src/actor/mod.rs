//! Actors: stateful servers in the manner of Erlang's gen_server.
//!
//! An [`Actor`] is initialised from arguments, then handles calls
//! (request-reply), casts (fire-and-forget), info messages (its own timers,
//! or raw messages from others) and monitor notifications, one at a time,
//! and finally runs `terminate`. Messages are typed by the actor's
//! associated types; handlers are plain `async fn`s (no boxing per message).
//!
//! Semantics, in short (the crate docs have the full list):
//! - Mailboxes are bounded by default ([`DEFAULT_CAPACITY`]); a cast waits
//!   for room up to [`DEFAULT_SEND_TIMEOUT`]; `try_cast` hands the message
//!   back when full; unbounded only when asked for by name.
//! - `call` waits at most [`DEFAULT_CALL_TIMEOUT`] (5 s) unless given
//!   another timeout; a call to an ended process fails at once.
//! - A panic in a handler is caught and ends the instance with
//!   [`ExitReason::Panic`]. Building with `panic = "abort"` disables this:
//!   the whole OS process aborts instead.
//! - When an instance exits abnormally, every call still queued gets an
//!   error reply at once, and the call being handled gets one too; queued
//!   casts and info messages are **kept** for the restarted instance. When
//!   the process ends for good, they are handed to the undelivered hook
//!   (see [`ActorOptions::on_undelivered`]) and counted in
//!   `foundation_actor_undelivered_total`.
//!
//! This module is not for supervision (see `supervisor`) or naming (see
//! `registry`).

mod blocking;
mod context;
mod handle;
mod mailbox;
mod reply;
mod run;
mod slots;
mod timers;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use foundation_error::{Error, ErrorCode};

use crate::process::{Down, ExitReason};

pub use context::{Context, MonitorRef, TimerRef};
pub use handle::{ActorRef, SendError, SendErrorKind};
pub(crate) use mailbox::Mailbox;
pub use reply::ReplyPort;
pub(crate) use run::{ExitSink, prepare_instance, start_instance};

/// The default mailbox capacity.
pub const DEFAULT_CAPACITY: usize = 1024;

/// How long `call` waits for a reply unless told otherwise: 5 s, as
/// gen_server.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `cast` and `send_info` wait for room in a full mailbox.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `init` may take before the start fails.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(5);

/// A stateful server.
///
/// Implement the handlers you need; the defaults accept casts, info and
/// down notifications and ignore them, and fail calls.
///
/// - `handle_call`'s error goes back to the caller; the actor carries on.
/// - `handle_cast`'s and `handle_info`'s error ends the instance with
///   [`ExitReason::Error`] (let it crash: its supervisor restarts it).
/// - [`Context::stop`] ends the instance after the current handler.
///
/// ```
/// use foundation_core::{Actor, Context, spawn};
/// use foundation_error::Error;
///
/// struct Counter(u64);
///
/// impl Actor for Counter {
///     type Args = u64;
///     type Call = ();
///     type Reply = u64;
///     type Cast = u64;
///     type Info = ();
///
///     async fn init(start: u64, _ctx: &mut Context<Self>) -> Result<Self, Error> {
///         Ok(Counter(start))
///     }
///     async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) -> Result<u64, Error> {
///         Ok(self.0)
///     }
///     async fn handle_cast(&mut self, add: u64, _ctx: &mut Context<Self>) -> Result<(), Error> {
///         self.0 += add;
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let counter = spawn::<Counter>(40).await?;
/// counter.cast(2).await?;
/// assert_eq!(counter.call(()).await?, 42);
/// # Ok(())
/// # }
/// ```
pub trait Actor: Sized + Send + 'static {
    /// What `init` is built from (a supervisor's child factory makes a new
    /// one for every restart).
    type Args: Send + 'static;
    /// Requests that expect a reply.
    type Call: Send + 'static;
    /// The reply to a call.
    type Reply: Send + 'static;
    /// Fire-and-forget messages.
    type Cast: Send + 'static;
    /// Info messages: the actor's own timers, or raw sends from others.
    type Info: Send + 'static;

    /// Builds the state. Runs before the actor handles any message; an
    /// error (or panic, or a timeout) fails the start.
    fn init(
        args: Self::Args,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<Self, Error>> + Send;

    /// Handles a call; the result goes back to the caller.
    fn handle_call(
        &mut self,
        request: Self::Call,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<Self::Reply, Error>> + Send {
        let _ = (request, ctx);
        async {
            Err(Error::new(
                ErrorCode::INVALID_INPUT,
                format!("{} does not accept calls", std::any::type_name::<Self>()),
            ))
        }
    }

    /// Handles a cast. An error ends the instance.
    fn handle_cast(
        &mut self,
        message: Self::Cast,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = (message, ctx);
        async { Ok(()) }
    }

    /// Handles an info message (a timer firing, or a raw send). An error
    /// ends the instance.
    fn handle_info(
        &mut self,
        message: Self::Info,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = (message, ctx);
        async { Ok(()) }
    }

    /// Handles the end of a process this actor monitors (see
    /// [`Context::monitor`]). An error ends the instance.
    fn handle_down(
        &mut self,
        down: Down,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = (down, ctx);
        async { Ok(()) }
    }

    /// Runs after every handler (`handle_call`, `handle_cast`,
    /// `handle_info`, `handle_down`) that returned, whatever it returned,
    /// and before that handler's replies are released: the `handle_call`
    /// result and the answers queued with [`Context::reply_after`]. A
    /// persistent actor saves its state here, so that it acknowledges only
    /// what is durable. The default does nothing.
    ///
    /// On `Err`, every held reply is answered with that error instead and
    /// the instance ends with [`ExitReason::Error`] (its supervisor
    /// restarts it, from durable state). A panic here drops the held
    /// replies (their callers get `process_crashed`) and ends the instance
    /// with [`ExitReason::Panic`]. It does not run after `init`, an
    /// inspection, or a handler that panicked.
    fn after_handle(
        &mut self,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Runs once when the instance exits for any reason except `Killed`,
    /// before a supervisor starts its replacement.
    fn terminate(
        &mut self,
        reason: &ExitReason,
        ctx: &mut Context<Self>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (reason, ctx);
        async {}
    }
}

/// A cast or info message that could not be delivered because its process
/// ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum Undelivered<A: Actor> {
    /// A cast.
    Cast(A::Cast),
    /// An info message.
    Info(A::Info),
}

type UndeliveredHook<A> = Arc<dyn Fn(Undelivered<A>) + Send + Sync>;

/// How large a mailbox is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Capacity {
    /// At most this many messages not yet handled (queued, or being
    /// handled); senders wait for room.
    Bounded(usize),
    /// No bound: a slow actor can grow its queue without limit. Only when
    /// asked for by name.
    Unbounded,
}

/// How an actor's process is set up.
pub struct ActorOptions<A: Actor> {
    pub(crate) capacity: Capacity,
    pub(crate) start_timeout: Duration,
    pub(crate) undelivered: Option<UndeliveredHook<A>>,
}

impl<A: Actor> Default for ActorOptions<A> {
    fn default() -> Self {
        ActorOptions {
            capacity: Capacity::Bounded(DEFAULT_CAPACITY),
            start_timeout: DEFAULT_START_TIMEOUT,
            undelivered: None,
        }
    }
}

impl<A: Actor> Clone for ActorOptions<A> {
    fn clone(&self) -> Self {
        ActorOptions {
            capacity: self.capacity,
            start_timeout: self.start_timeout,
            undelivered: self.undelivered.clone(),
        }
    }
}

impl<A: Actor> std::fmt::Debug for ActorOptions<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorOptions")
            .field("capacity", &self.capacity)
            .field("start_timeout", &self.start_timeout)
            .field("undelivered_hook", &self.undelivered.is_some())
            .finish()
    }
}

impl<A: Actor> ActorOptions<A> {
    /// The defaults: a bounded mailbox of [`DEFAULT_CAPACITY`], a start
    /// timeout of [`DEFAULT_START_TIMEOUT`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Bounds the mailbox to `capacity` messages (at least 1, checked at
    /// start).
    pub fn capacity(&mut self, capacity: usize) -> &mut Self {
        self.capacity = Capacity::Bounded(capacity);
        self
    }

    /// Makes the mailbox unbounded.
    pub fn unbounded_mailbox(&mut self) -> &mut Self {
        self.capacity = Capacity::Unbounded;
        self
    }

    /// Sets how long `init` may take.
    pub fn start_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.start_timeout = timeout;
        self
    }

    /// Receives casts and info messages still queued when the process ends
    /// for good.
    pub fn on_undelivered(
        &mut self,
        hook: impl Fn(Undelivered<A>) + Send + Sync + 'static,
    ) -> &mut Self {
        self.undelivered = Some(Arc::new(hook));
        self
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.capacity == Capacity::Bounded(0) {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                "a mailbox capacity must be at least 1",
            ));
        }
        if self.start_timeout.is_zero() {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                "a start timeout must be longer than zero",
            ));
        }
        Ok(())
    }
}

/// Starts an unsupervised actor with the default options.
///
/// `init` runs on the caller's task; the actor then runs on its own task.
/// When it exits, for any reason, its process ends: monitors fire and
/// sends fail. Put actors that must come back under a
/// [`Supervisor`](crate::Supervisor).
pub async fn spawn<A: Actor>(args: A::Args) -> Result<ActorRef<A>, Error> {
    spawn_with(args, &ActorOptions::default()).await
}

/// Starts an unsupervised actor with these options.
pub async fn spawn_with<A: Actor>(
    args: A::Args,
    options: &ActorOptions<A>,
) -> Result<ActorRef<A>, Error> {
    options.validate()?;
    let mailbox = Mailbox::new(options);
    match start_instance(&mailbox, args, options.start_timeout, ExitSink::Standalone).await {
        Ok(_join) => Ok(ActorRef::from_mailbox(mailbox)),
        Err(error) => {
            mailbox.close_for_good(ExitReason::Error(error.clone()));
            Err(error)
        }
    }
}
