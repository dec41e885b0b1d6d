//! The dynamic supervisor: many children of one actor type, added at run
//! time, supervised one-for-one.
//!
//! Starting a child does not go through the supervisor's mailbox: the
//! caller runs `init` itself, tells the supervisor to adopt the new
//! instance (before the instance can run, so its exit report can never
//! overtake the adoption), and launches it. That keeps a supervised spawn
//! as cheap as an unsupervised one. Restarts, stops and intensity are the
//! supervisor's, as for static children.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use foundation_error::{Error, ErrorCode};

use super::server::{DynamicLimits, Info, Supervisor, SupervisorInfo, exit_sink};
use super::spec::{ActorChild, DEFAULT_WORKER_SHUTDOWN, ErasedChild, Restart, Shutdown};
use super::{ChildCounts, ChildInfo, ChildSpec, EventBus, SupervisorBuilder, SupervisorRef};
use crate::actor::{ActorOptions, Mailbox, prepare_instance};
use crate::{Actor, ActorRef};

/// Configures a [`DynamicSupervisor`].
pub struct DynamicSupervisorBuilder<A: Actor> {
    supervisor: SupervisorBuilder,
    max_children: Option<usize>,
    restart: Restart,
    shutdown: Shutdown,
    options: ActorOptions<A>,
}

impl<A: Actor> DynamicSupervisorBuilder<A> {
    /// Sets the restart intensity (default 3 in 5 s).
    pub fn intensity(&mut self, max_restarts: u32, period: Duration) -> &mut Self {
        self.supervisor.intensity(max_restarts, period);
        self
    }

    /// Limits the number of children; `start_child` beyond it fails with
    /// `resource_exhausted`.
    pub fn max_children(&mut self, max_children: usize) -> &mut Self {
        self.max_children = Some(max_children);
        self
    }

    /// Sets the children's restart type (default `Permanent`).
    pub fn restart(&mut self, restart: Restart) -> &mut Self {
        self.restart = restart;
        self
    }

    /// Sets how children are stopped (default 5 s, then aborted).
    pub fn shutdown(&mut self, shutdown: Shutdown) -> &mut Self {
        self.shutdown = shutdown;
        self
    }

    /// Sets the children's mailbox and start options.
    pub fn child_options(&mut self, options: ActorOptions<A>) -> &mut Self {
        self.options = options;
        self
    }

    /// Sets the clock of the restart-intensity window and event stamps;
    /// see [`SupervisorBuilder::clock`].
    pub fn clock(&mut self, clock: foundation_error::clock::SharedClock) -> &mut Self {
        self.supervisor.clock(clock);
        self
    }

    /// Sends events on `bus`.
    pub fn events(&mut self, bus: &EventBus) -> &mut Self {
        self.supervisor.events(bus);
        self
    }

    fn validate(&self) -> Result<(), Error> {
        self.options.validate()?;
        if self.max_children == Some(0) {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                "max_children must be at least 1",
            ));
        }
        Ok(())
    }

    fn limits(&self) -> DynamicLimits {
        DynamicLimits {
            max_children: self.max_children,
            count: AtomicUsize::new(0),
        }
    }

    fn template(&self, supervisor: SupervisorRef) -> DynamicSupervisor<A> {
        DynamicSupervisor {
            template: Arc::new(Template {
                restart: self.restart,
                shutdown: self.shutdown,
                options: self.options.clone(),
            }),
            supervisor,
        }
    }

    /// Starts it as a top-level supervisor.
    ///
    /// # Cancel safety
    ///
    /// The start runs on the caller's task; dropping the future abandons
    /// it, and the supervisor's process ends.
    pub async fn start(&self) -> Result<DynamicSupervisor<A>, Error> {
        self.validate()?;
        let (shared, options) = self.supervisor.build_parts(Some(self.limits()))?;
        let supervisor = SupervisorRef::start_top_level(
            shared,
            options,
            self.supervisor.control_timeout_value(),
        )
        .await?;
        Ok(self.template(supervisor))
    }

    /// Makes it the child `id` of another supervisor.
    pub fn into_child_spec(
        &self,
        id: impl Into<Arc<str>>,
    ) -> Result<(ChildSpec<Supervisor>, DynamicSupervisor<A>), Error> {
        self.validate()?;
        let (shared, options) = self.supervisor.build_parts(Some(self.limits()))?;
        let (spec, supervisor) =
            SupervisorRef::child_spec(shared, options, id, self.supervisor.control_timeout_value());
        Ok((spec, self.template(supervisor)))
    }
}

struct Template<A: Actor> {
    restart: Restart,
    shutdown: Shutdown,
    options: ActorOptions<A>,
}

/// A supervisor of many children of one actor type, started at run time.
///
/// ```
/// use foundation_core::{Actor, Context, DynamicSupervisor};
/// use foundation_error::Error;
///
/// struct Job(u32);
/// impl Actor for Job {
///     type Args = u32;
///     type Call = ();
///     type Reply = u32;
///     type Cast = ();
///     type Info = ();
///     async fn init(id: u32, _ctx: &mut Context<Self>) -> Result<Self, Error> { Ok(Job(id)) }
///     async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) -> Result<u32, Error> {
///         Ok(self.0)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let mut builder = DynamicSupervisor::<Job>::builder("jobs");
/// builder.max_children(100);
/// let jobs = builder.start().await?;
/// let job = jobs.start_child(7).await?;
/// assert_eq!(job.call(()).await?, 7);
/// assert_eq!(jobs.count_children().await?.active, 1);
/// jobs.terminate_child(&job).await?;
/// assert!(!job.is_alive());
/// # Ok(())
/// # }
/// ```
pub struct DynamicSupervisor<A: Actor> {
    template: Arc<Template<A>>,
    supervisor: SupervisorRef,
}

impl<A: Actor> Clone for DynamicSupervisor<A> {
    fn clone(&self) -> Self {
        DynamicSupervisor {
            template: Arc::clone(&self.template),
            supervisor: self.supervisor.clone(),
        }
    }
}

impl<A: Actor> std::fmt::Debug for DynamicSupervisor<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicSupervisor")
            .field("supervisor", &self.supervisor)
            .field("actor", &std::any::type_name::<A>())
            .finish()
    }
}

impl<A: Actor> DynamicSupervisor<A> {
    /// A builder for a dynamic supervisor named `name`.
    pub fn builder(name: impl Into<Arc<str>>) -> DynamicSupervisorBuilder<A> {
        DynamicSupervisorBuilder {
            supervisor: Supervisor::builder(name),
            max_children: None,
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout(DEFAULT_WORKER_SHUTDOWN),
            options: ActorOptions::default(),
        }
    }

    /// The underlying supervisor (introspection, events, shutdown).
    pub fn supervisor(&self) -> &SupervisorRef {
        &self.supervisor
    }

    /// Every child.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, Error> {
        self.supervisor.which_children().await
    }

    /// Child counts.
    pub async fn count_children(&self) -> Result<ChildCounts, Error> {
        self.supervisor.count_children().await
    }

    /// Stops a child and removes it; its process ends.
    pub async fn terminate_child(&self, child: &ActorRef<A>) -> Result<(), Error> {
        self.supervisor
            .actor()
            .call_timeout(
                super::server::SupervisorRequest(super::server::Request::TerminateProcess(
                    child.id(),
                )),
                self.supervisor.control_timeout,
            )
            .await
            .map(|_| ())
    }

    /// Stops the supervisor and every child.
    pub async fn shutdown(&self) -> Result<(), Error> {
        self.supervisor.shutdown().await
    }
}

impl<A: Actor> DynamicSupervisor<A>
where
    A::Args: Clone + Sync,
{
    /// Starts a child from `args` (kept, and cloned for every restart) and
    /// returns its handle once its `init` has succeeded.
    ///
    /// The child belongs to the supervisor instance running when it was
    /// accepted: if that instance ends (even just after this returned
    /// `Ok`), the child's process ends with it; while the supervisor is
    /// restarting, this fails with `service_unavailable`.
    ///
    /// # Cancel safety
    ///
    /// `init` runs on the caller's task: dropping the future during it
    /// ends the new process (its `init` is abandoned at that await point)
    /// and nothing is added. Once this returns, the child is adopted.
    pub async fn start_child(&self, args: A::Args) -> Result<ActorRef<A>, Error> {
        let shared = Arc::clone(self.supervisor.shared());
        if !self.supervisor.process().is_alive() {
            return Err(shut_down(&shared.name));
        }
        let Some(limits) = &shared.dynamic else {
            return Err(Error::new(
                ErrorCode::INTERNAL_ERROR,
                "a dynamic supervisor without dynamic limits",
            ));
        };
        let reserved = limits.count.fetch_add(1, Ordering::AcqRel) + 1;
        if let Some(max) = limits.max_children
            && reserved > max
        {
            limits.count.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::new(
                ErrorCode::RESOURCE_EXHAUSTED,
                format!("supervisor {} has reached max_children", shared.name),
            )
            .with_severity(foundation_error::Severity::Medium)
            .with_context("max_children", max));
        }
        let mailbox = Mailbox::new(&self.template.options);
        let prepared =
            match prepare_instance(&mailbox, args.clone(), self.template.options.start_timeout)
                .await
            {
                Ok(prepared) => prepared,
                Err(error) => {
                    limits.count.fetch_sub(1, Ordering::AcqRel);
                    mailbox.close_for_good(crate::ExitReason::Error(error.clone()));
                    return Err(error);
                }
            };
        let spec: Arc<dyn ErasedChild> = Arc::new(ActorChild::dynamic(
            Arc::clone(&shared.name),
            Arc::new(move || args.clone()),
            Arc::clone(&mailbox),
            self.template.options.clone(),
            self.template.restart,
            self.template.shutdown,
        ));
        let process = mailbox.to_process_ref();
        let key = shared.next_key();
        // The running supervisor instance accepts the child; if it is
        // restarting, none can.
        let supervisor_process = self.supervisor.process();
        let accepted_by = supervisor_process.incarnation();
        if supervisor_process.status() != crate::ProcessStatus::Running {
            limits.count.fetch_sub(1, Ordering::AcqRel);
            drop(prepared);
            return Err(Error::new(
                ErrorCode::SERVICE_UNAVAILABLE,
                format!("supervisor {} is restarting", shared.name),
            ));
        }
        shared.own(&process);
        let adopt = SupervisorInfo(Info::Adopt {
            key,
            spec,
            incarnation: prepared.incarnation(),
            accepted_by,
        });
        if self.supervisor.actor().try_send_info(adopt).is_err() {
            // The slot goes back with the ownership, once: a supervisor
            // instance that started meanwhile may have ended it already.
            if shared.disown(&process) {
                limits.count.fetch_sub(1, Ordering::AcqRel);
            }
            // Dropping the prepared instance ends its process.
            drop(prepared);
            return Err(shut_down(&shared.name));
        }
        let supervisor = Arc::downgrade(self.supervisor.actor().mailbox());
        prepared.launch(exit_sink(supervisor, key, process));
        Ok(ActorRef::from_mailbox(mailbox))
    }
}

fn shut_down(name: &str) -> Error {
    Error::new(
        ErrorCode::SHUT_DOWN,
        format!("supervisor {name} is not running"),
    )
}
