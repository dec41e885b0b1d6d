//! Child specifications: how a supervisor starts, restarts and stops a
//! child.
//!
//! A [`ChildSpec`] owns the child's mailbox from the moment it is built, so
//! [`ChildSpec::handle`] gives a handle before the supervisor even starts,
//! and that handle stays valid through every restart. The supervisor works
//! with specs through the type-erased [`ErasedChild`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use foundation_error::{Error, ErrorCode};

use super::events::EventBus;
use crate::actor::{ActorOptions, ExitSink, Mailbox, prepare_instance};
use crate::panic::panic_message;
use crate::process::ProcessRef;
use crate::{Actor, ActorRef};

/// The default time a worker gets to stop before it is aborted.
pub const DEFAULT_WORKER_SHUTDOWN: Duration = Duration::from_secs(5);

/// When a child is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Always.
    Permanent,
    /// Only after an abnormal exit (not `Normal` or `Shutdown`).
    Transient,
    /// Never, also not when siblings are restarted under `OneForAll` or
    /// `RestForOne`; its spec is deleted when it exits.
    Temporary,
}

/// How a child is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Aborted at once; `terminate` does not run.
    BrutalKill,
    /// Asked to stop (its `terminate` runs), then aborted if it has not
    /// exited within this time. The default for workers: 5 s.
    Timeout(Duration),
    /// Asked to stop, and waited for as long as it takes. The default for
    /// supervisors, whose own children's limits bound their stop.
    Infinity,
}

/// Whether a child is a worker or a supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildKind {
    /// An ordinary actor.
    Worker,
    /// A supervisor.
    Supervisor,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a supervisor needs of a child, whatever its actor type.
pub(crate) trait ErasedChild: Send + Sync + 'static {
    fn id(&self) -> &Arc<str>;
    fn process(&self) -> ProcessRef;
    fn restart(&self) -> Restart;
    fn shutdown(&self) -> Shutdown;
    fn kind(&self) -> ChildKind;
    fn significant(&self) -> bool;
    /// Runs `init` (on the caller's task) and spawns the instance; returns
    /// its incarnation.
    fn start(&self, sink: ExitSink) -> BoxFuture<'_, Result<u64, Error>>;
    /// Offers the parent's event bus to a nested supervisor.
    fn inherit_events(&self, _bus: &EventBus) {}
    /// The same child with a new process (its old one ended for good).
    fn renew(&self) -> Arc<dyn ErasedChild>;
}

type Factory<A> = Arc<dyn Fn() -> <A as Actor>::Args + Send + Sync>;
type EventsHook = Arc<dyn Fn(&EventBus) + Send + Sync>;
/// Run on every new process of the child (a nested supervisor's: the hook
/// that ends its children with it).
pub(crate) type ProcessHook = Arc<dyn Fn(&ProcessRef) + Send + Sync>;

/// How to run one child under a supervisor.
///
/// ```
/// use std::time::Duration;
/// use foundation_core::{Actor, ChildSpec, Context, Restart, Shutdown, Supervisor};
/// use foundation_error::Error;
///
/// struct Worker;
/// impl Actor for Worker {
///     type Args = ();
///     type Call = ();
///     type Reply = &'static str;
///     type Cast = ();
///     type Info = ();
///     async fn init(_: (), _ctx: &mut Context<Self>) -> Result<Self, Error> { Ok(Worker) }
///     async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) -> Result<&'static str, Error> {
///         Ok("working")
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let mut worker = ChildSpec::<Worker>::new("worker", ());
/// worker.restart(Restart::Transient).shutdown(Shutdown::Timeout(Duration::from_secs(1)));
/// let handle = worker.handle();
///
/// let mut app = Supervisor::builder("app");
/// app.child(worker);
/// let app = app.start().await?;
/// assert_eq!(handle.call(()).await?, "working");
/// app.shutdown().await?;
/// # Ok(())
/// # }
/// ```
pub struct ChildSpec<A: Actor> {
    id: Arc<str>,
    factory: Factory<A>,
    mailbox: Arc<Mailbox<A>>,
    options: ActorOptions<A>,
    restart: Restart,
    shutdown: Option<Shutdown>,
    kind: ChildKind,
    significant: bool,
    on_events: Option<EventsHook>,
    on_new_process: Option<ProcessHook>,
}

impl<A: Actor> ChildSpec<A> {
    /// A permanent worker started from a clone of `args` every time.
    ///
    /// Specs can be written inline: the setters return `&mut ChildSpec`,
    /// which [`SupervisorBuilder::child`](crate::SupervisorBuilder::child)
    /// takes too.
    ///
    /// ```
    /// # use foundation_core::{Actor, ChildSpec, Context, Restart, Supervisor};
    /// # use foundation_error::Error;
    /// # struct Worker;
    /// # impl Actor for Worker {
    /// #     type Args = u32; type Call = (); type Reply = (); type Cast = (); type Info = ();
    /// #     async fn init(_: u32, _ctx: &mut Context<Self>) -> Result<Self, Error> { Ok(Worker) }
    /// # }
    /// let mut app = Supervisor::builder("app");
    /// app.child(ChildSpec::<Worker>::new("worker", 7).restart(Restart::Transient));
    /// ```
    pub fn new(id: impl Into<Arc<str>>, args: A::Args) -> ChildSpec<A>
    where
        A::Args: Clone,
    {
        ChildSpec::with_options(id, args, ActorOptions::default())
    }

    /// As [`ChildSpec::new`], with mailbox and start options.
    pub fn with_options(
        id: impl Into<Arc<str>>,
        args: A::Args,
        options: ActorOptions<A>,
    ) -> ChildSpec<A>
    where
        A::Args: Clone,
    {
        // The factory is shared between threads; the mutex makes arguments
        // that are only `Send` shareable. It is taken once per start.
        let args = std::sync::Mutex::new(args);
        ChildSpec::from_fn_with_options(
            id,
            move || {
                args.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
            },
            options,
        )
    }

    /// A permanent worker whose arguments `factory` makes, once per start
    /// (for arguments that are not `Clone`, or must be fresh each time).
    pub fn from_fn(
        id: impl Into<Arc<str>>,
        factory: impl Fn() -> A::Args + Send + Sync + 'static,
    ) -> ChildSpec<A> {
        ChildSpec::from_fn_with_options(id, factory, ActorOptions::default())
    }

    /// As [`ChildSpec::from_fn`], with mailbox and start options.
    pub fn from_fn_with_options(
        id: impl Into<Arc<str>>,
        factory: impl Fn() -> A::Args + Send + Sync + 'static,
        options: ActorOptions<A>,
    ) -> ChildSpec<A> {
        ChildSpec {
            id: id.into(),
            factory: Arc::new(factory),
            mailbox: Mailbox::new(&options),
            options,
            restart: Restart::Permanent,
            shutdown: None,
            kind: ChildKind::Worker,
            significant: false,
            on_events: None,
            on_new_process: None,
        }
    }

    /// Takes this spec's contents (its process included), leaving a copy
    /// with a new process of its own.
    fn take(&mut self) -> ChildSpec<A> {
        let fresh = ChildSpec {
            id: Arc::clone(&self.id),
            factory: Arc::clone(&self.factory),
            mailbox: Mailbox::new(&self.options),
            options: self.options.clone(),
            restart: self.restart,
            shutdown: self.shutdown,
            kind: self.kind,
            significant: self.significant,
            on_events: self.on_events.clone(),
            on_new_process: self.on_new_process.clone(),
        };
        std::mem::replace(self, fresh)
    }

    /// A handle to the child, valid before the start and across restarts.
    pub fn handle(&self) -> ActorRef<A> {
        ActorRef::from_mailbox(Arc::clone(&self.mailbox))
    }

    /// The child's id within its supervisor.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Sets the restart type (default `Permanent`).
    pub fn restart(&mut self, restart: Restart) -> &mut Self {
        self.restart = restart;
        self
    }

    /// Sets how the child is stopped (default 5 s for workers, `Infinity`
    /// for supervisors).
    pub fn shutdown(&mut self, shutdown: Shutdown) -> &mut Self {
        self.shutdown = Some(shutdown);
        self
    }

    /// Marks the child significant for the supervisor's auto-shutdown.
    pub fn significant(&mut self, significant: bool) -> &mut Self {
        self.significant = significant;
        self
    }

    pub(crate) fn supervisor_kind(
        &mut self,
        on_events: EventsHook,
        on_new_process: ProcessHook,
    ) -> &mut Self {
        self.kind = ChildKind::Supervisor;
        self.on_events = Some(on_events);
        self.on_new_process = Some(on_new_process);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        self.options.validate()?;
        if self.id.is_empty() {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                "a child id must not be empty",
            ));
        }
        if self.significant && self.restart == Restart::Permanent {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                "a significant child must be transient or temporary",
            )
            .with_context("child", &self.id));
        }
        if let Some(Shutdown::Timeout(limit)) = self.shutdown
            && limit.is_zero()
        {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                "a shutdown timeout must be longer than zero; use BrutalKill",
            )
            .with_context("child", &self.id));
        }
        Ok(())
    }

    pub(crate) fn erase(self) -> Arc<dyn ErasedChild> {
        let shutdown = self.shutdown.unwrap_or(match self.kind {
            ChildKind::Worker => Shutdown::Timeout(DEFAULT_WORKER_SHUTDOWN),
            ChildKind::Supervisor => Shutdown::Infinity,
        });
        Arc::new(ActorChild {
            id: self.id,
            factory: self.factory,
            mailbox: self.mailbox,
            options: self.options,
            restart: self.restart,
            shutdown,
            kind: self.kind,
            significant: self.significant,
            on_events: self.on_events,
            on_new_process: self.on_new_process,
        })
    }
}

/// Lets a spec configured inline (`ChildSpec::new(..).restart(..)`, a
/// `&mut ChildSpec`) be handed to a supervisor: the supervisor takes its
/// contents, process and handles included; what stays behind is a copy
/// with a new process, not added anywhere.
impl<A: Actor> From<&mut ChildSpec<A>> for ChildSpec<A> {
    fn from(spec: &mut ChildSpec<A>) -> ChildSpec<A> {
        spec.take()
    }
}

impl<A: Actor> std::fmt::Debug for ChildSpec<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("actor", &std::any::type_name::<A>())
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("kind", &self.kind)
            .field("significant", &self.significant)
            .finish()
    }
}

pub(crate) struct ActorChild<A: Actor> {
    pub(crate) id: Arc<str>,
    pub(crate) factory: Factory<A>,
    pub(crate) mailbox: Arc<Mailbox<A>>,
    pub(crate) options: ActorOptions<A>,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Shutdown,
    pub(crate) kind: ChildKind,
    pub(crate) significant: bool,
    on_events: Option<EventsHook>,
    on_new_process: Option<ProcessHook>,
}

impl<A: Actor> ActorChild<A> {
    /// A dynamic supervisor's child.
    pub(crate) fn dynamic(
        id: Arc<str>,
        factory: Factory<A>,
        mailbox: Arc<Mailbox<A>>,
        options: ActorOptions<A>,
        restart: Restart,
        shutdown: Shutdown,
    ) -> ActorChild<A> {
        ActorChild {
            id,
            factory,
            mailbox,
            options,
            restart,
            shutdown,
            kind: ChildKind::Worker,
            significant: false,
            on_events: None,
            on_new_process: None,
        }
    }
}

impl<A: Actor> ErasedChild for ActorChild<A> {
    fn id(&self) -> &Arc<str> {
        &self.id
    }

    fn process(&self) -> ProcessRef {
        self.mailbox.to_process_ref()
    }

    fn restart(&self) -> Restart {
        self.restart
    }

    fn shutdown(&self) -> Shutdown {
        self.shutdown
    }

    fn kind(&self) -> ChildKind {
        self.kind
    }

    fn significant(&self) -> bool {
        self.significant
    }

    fn start(&self, sink: ExitSink) -> BoxFuture<'_, Result<u64, Error>> {
        Box::pin(async move {
            let factory = &self.factory;
            let args = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| factory()))
                .map_err(|payload| {
                    Error::new(
                        ErrorCode::INITIALIZATION_FAILED,
                        format!("the factory of child {} panicked", self.id),
                    )
                    .with_context("panic", panic_message(payload.as_ref()))
                })?;
            let prepared =
                prepare_instance(&self.mailbox, args, self.options.start_timeout).await?;
            let incarnation = prepared.incarnation();
            prepared.launch(sink);
            Ok(incarnation)
        })
    }

    fn inherit_events(&self, bus: &EventBus) {
        if let Some(hook) = &self.on_events {
            hook(bus);
        }
    }

    fn renew(&self) -> Arc<dyn ErasedChild> {
        let mailbox = Mailbox::new(&self.options);
        if let Some(hook) = &self.on_new_process {
            hook(&mailbox.to_process_ref());
        }
        Arc::new(ActorChild {
            id: Arc::clone(&self.id),
            factory: Arc::clone(&self.factory),
            mailbox,
            options: self.options.clone(),
            restart: self.restart,
            shutdown: self.shutdown,
            kind: self.kind,
            significant: self.significant,
            on_events: self.on_events.clone(),
            on_new_process: self.on_new_process.clone(),
        })
    }
}
