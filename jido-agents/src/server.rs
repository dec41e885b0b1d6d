//! The actor glue: an [`Agent`] runs as the foundation-core actor
//! [`AgentServer`], started from an [`AgentSpec`] under a supervisor and
//! reached through an [`AgentRef`].
//!
//! One action is handled at a time, in mailbox order: validation, the
//! before-action hook, the action, its `SetState` directive, the save (for
//! a persistent agent), then the other directives, the after-action hook
//! and the reply. Because the save is awaited inside the handler, a reply
//! is released only once the state it reports is durable.
//!
//! Everything that touches foundation-core's actor API lives in this
//! module, so that a change of that API is a change here only. This
//! module is not where agents or actions are declared (see `agent`).

use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use foundation_core::registry::{Metadata, Registry, Value};
use foundation_core::{
    Actor, ActorOptions, ActorRef, ChildSpec, Context, DEFAULT_CALL_TIMEOUT, ExitReason,
    SendErrorKind, TaskSupervisor,
};
use foundation_error::clock::{SharedClock, TokioClock};
use foundation_error::{Error, ErrorCode};
use foundation_persist::Store;

use crate::action::{ActionSet, AnyOutput};
use crate::agent::{ActionContext, Agent, AgentEnv, Directive, PendingAction, Shared, Work};
use crate::metrics;
use crate::persist::{OnCorruptState, PersistentAgent, Persister, StorePersister};

/// The name `on_start`'s directives are committed under; the action hooks
/// do not run for it.
const START: &str = "start";

/// The registry attribute holding an agent's capabilities.
pub const CAPABILITY_ATTRIBUTE: &str = "capability";
/// The registry attribute holding an agent's load.
pub const LOAD_ATTRIBUTE: &str = "load";
/// The registry attribute holding an agent's kind.
pub const KIND_ATTRIBUTE: &str = "kind";

/// The longest agent kind ([`Agent::KIND`]), so that `agents.KIND` names a
/// keyspace.
pub const MAX_KIND_BYTES: usize = 57;

/// The longest agent id.
pub const MAX_AGENT_ID_BYTES: usize = 256;

type PersisterFactory<A> =
    fn(&Store, Arc<str>, OnCorruptState) -> Result<Box<dyn Persister<A>>, Error>;

fn store_persister<A: PersistentAgent>(
    store: &Store,
    id: Arc<str>,
    on_corrupt: OnCorruptState,
) -> Result<Box<dyn Persister<A>>, Error> {
    Ok(Box::new(StorePersister::<A>::new(store, id, on_corrupt)?))
}

/// Describes one agent: its id, arguments and runtime; turns into a child
/// spec for a supervisor.
///
/// ```
/// use foundation_core::{Supervisor, TaskSupervisor};
/// use jido_agents::{Action, ActionContext, Agent, AgentEnv, AgentSpec};
/// use foundation_error::Error;
///
/// struct Echo;
/// impl Agent for Echo {
///     const KIND: &'static str = "echo";
///     type Args = ();
///     fn init(_: (), _env: &AgentEnv) -> Result<Self, Error> { Ok(Echo) }
/// }
/// struct Say(String);
/// impl Action<Echo> for Say {
///     const NAME: &'static str = "say";
///     type Output = String;
///     fn run(self, _: &mut Echo, _: &mut ActionContext<Echo>) -> Result<String, Error> { Ok(self.0) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let tasks = TaskSupervisor::new("work");
/// let spec = AgentSpec::<Echo>::new("echo-1", (), &tasks).child_spec()?;
/// let echo = jido_agents::AgentRef::from(spec.handle());
/// let mut app = Supervisor::builder("app");
/// app.child(spec);
/// let app = app.start().await?;
/// assert_eq!(echo.run(Say("hi".into())).await?, "hi");
/// app.shutdown().await?;
/// # Ok(())
/// # }
/// ```
pub struct AgentSpec<A: Agent> {
    id: Arc<str>,
    args: A::Args,
    clock: SharedClock,
    tasks: TaskSupervisor,
    registry: Option<Registry>,
    store: Option<(Store, PersisterFactory<A>)>,
    on_corrupt: OnCorruptState,
    options: ActorOptions<AgentServer<A>>,
}

impl<A: Agent> std::fmt::Debug for AgentSpec<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSpec")
            .field("kind", &A::KIND)
            .field("id", &self.id)
            .field("persistent", &self.store.is_some())
            .field("on_corrupt", &self.on_corrupt)
            .finish()
    }
}

impl<A: Agent> AgentSpec<A> {
    /// An agent `id` of kind `A`, built from `args`, whose work runs under
    /// `tasks`. Volatile until [`persistent`](AgentSpec::persistent).
    pub fn new(id: impl Into<Arc<str>>, args: A::Args, tasks: &TaskSupervisor) -> AgentSpec<A> {
        AgentSpec {
            id: id.into(),
            args,
            clock: Arc::new(TokioClock::new()),
            tasks: tasks.clone(),
            registry: None,
            store: None,
            on_corrupt: OnCorruptState::default(),
            options: ActorOptions::default(),
        }
    }

    /// Reads time through `clock` (default: a [`TokioClock`]).
    pub fn clock(&mut self, clock: SharedClock) -> &mut Self {
        self.clock = clock;
        self
    }

    /// Publishes the agent in `registry` under its id, with its kind,
    /// capabilities and load, for [`route`](crate::route). The load is
    /// republished after an action that changed it, which takes the
    /// registry's write lock for that moment.
    pub fn registry(&mut self, registry: &Registry) -> &mut Self {
        self.registry = Some(registry.clone());
        self
    }

    /// What to do when the stored state cannot be decoded (default: fail
    /// the start with `data_corruption`).
    pub fn on_corrupt_state(&mut self, policy: OnCorruptState) -> &mut Self {
        self.on_corrupt = policy;
        self
    }

    /// Mailbox and start options of the agent's actor.
    pub fn actor_options(&mut self, options: ActorOptions<AgentServer<A>>) -> &mut Self {
        self.options = options;
        self
    }

    fn check(&self) -> Result<(), Error> {
        if self.id.is_empty() || self.id.len() > MAX_AGENT_ID_BYTES {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                format!("an agent id is 1 to {MAX_AGENT_ID_BYTES} bytes long"),
            )
            .with_context("kind", A::KIND));
        }
        let kind_byte =
            |byte: u8| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"_-.".contains(&byte);
        if A::KIND.is_empty() || A::KIND.len() > MAX_KIND_BYTES || !A::KIND.bytes().all(kind_byte) {
            return Err(Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                format!("an agent kind is 1 to {MAX_KIND_BYTES} characters of a-z, 0-9, '_', '-' and '.'"),
            )
            .with_context("kind", A::KIND));
        }
        Ok(())
    }

    fn start_with(&self, args: A::Args) -> AgentStart<A> {
        AgentStart {
            args,
            env: AgentEnv {
                id: Arc::clone(&self.id),
                clock: Arc::clone(&self.clock),
                tasks: self.tasks.clone(),
                registry: self.registry.clone(),
            },
            store: self.store.clone(),
            on_corrupt: self.on_corrupt,
        }
    }
}

impl<A: PersistentAgent> AgentSpec<A> {
    /// Persists the agent's projection in `store` (keyspace `agents.KIND`,
    /// key = the agent's id): loaded at every start, saved after every
    /// action that changed it, before the reply.
    pub fn persistent(&mut self, store: &Store) -> &mut Self {
        self.store = Some((store.clone(), store_persister::<A>));
        self
    }
}

impl<A: Agent> AgentSpec<A>
where
    A::Args: Clone + Sync,
{
    /// A permanent child spec for a supervisor; the spec's handle
    /// ([`ChildSpec::handle`]) becomes an [`AgentRef`] with `From`.
    ///
    /// # Errors
    ///
    /// `invalid_config_value` for an empty or over-long id, or a kind that
    /// cannot name a keyspace.
    pub fn child_spec(&self) -> Result<ChildSpec<AgentServer<A>>, Error> {
        self.check()?;
        Ok(ChildSpec::with_options(
            Arc::clone(&self.id),
            self.start_with(self.args.clone()),
            self.options.clone(),
        ))
    }

    /// The start arguments, for a
    /// [`DynamicSupervisor`](foundation_core::DynamicSupervisor) of agents.
    ///
    /// # Errors
    ///
    /// As for [`child_spec`](AgentSpec::child_spec).
    pub fn start_args(&self) -> Result<AgentStart<A>, Error> {
        self.check()?;
        Ok(self.start_with(self.args.clone()))
    }
}

/// What an agent's actor starts from (see [`AgentSpec::start_args`]).
pub struct AgentStart<A: Agent> {
    args: A::Args,
    env: AgentEnv,
    store: Option<(Store, PersisterFactory<A>)>,
    on_corrupt: OnCorruptState,
}

impl<A: Agent> Clone for AgentStart<A>
where
    A::Args: Clone,
{
    fn clone(&self) -> Self {
        AgentStart {
            args: self.args.clone(),
            env: self.env.clone(),
            store: self.store.clone(),
            on_corrupt: self.on_corrupt,
        }
    }
}

impl<A: Agent> std::fmt::Debug for AgentStart<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentStart")
            .field("kind", &A::KIND)
            .field("env", &self.env)
            .finish()
    }
}

/// A request to an agent (opaque; built by [`AgentRef`]).
pub struct AgentCall<A: Agent>(CallKind<A>);

enum CallKind<A: Agent> {
    Run(PendingAction<A>),
    Json {
        name: String,
        params: serde_json::Value,
    },
}

/// A fire-and-forget message to an agent (opaque; built by [`AgentRef`]).
pub struct AgentCast<A: Agent>(CastKind<A>);

enum CastKind<A: Agent> {
    Run(PendingAction<A>),
    Drain,
}

/// The agent's own timer messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentInfo {
    /// Time for [`Agent::tick`].
    Tick,
}

/// The actor running one agent.
pub struct AgentServer<A: Agent> {
    agent: A,
    env: AgentEnv,
    myself: AgentRef<A>,
    shared: Arc<Shared<A>>,
    counters: metrics::ActionCounters,
    actions: ActionSet<A>,
    persister: Option<Box<dyn Persister<A>>>,
    followups: VecDeque<PendingAction<A>>,
    drain_scheduled: bool,
    published_load: Option<u64>,
}

impl<A: Agent> AgentServer<A> {
    /// The agent's state.
    pub fn agent(&self) -> &A {
        &self.agent
    }

    /// The agent's environment.
    pub fn env(&self) -> &AgentEnv {
        &self.env
    }

    async fn execute(
        &mut self,
        action: PendingAction<A>,
        ctx: &mut Context<Self>,
    ) -> Result<AnyOutput, Error> {
        let outcome = self.execute_inner(action, ctx).await;
        self.counters.record(outcome.is_ok());
        outcome
    }

    async fn execute_inner(
        &mut self,
        action: PendingAction<A>,
        ctx: &mut Context<Self>,
    ) -> Result<AnyOutput, Error> {
        let name = action.name();
        let prepared = action
            .inner
            .validate()
            .and_then(|()| self.agent.before_action(name));
        if let Err(error) = prepared {
            self.agent.on_action_error(name, &error);
            return Err(error);
        }
        let mut actx = ActionContext::new(&self.shared);
        match action.inner.run(&mut self.agent, &mut actx) {
            Ok(output) => {
                self.commit(name, actx.directives, ctx).await?;
                Ok(output)
            }
            Err(error) => {
                if let Some(persister) = &mut self.persister {
                    persister.revert(&mut self.agent);
                }
                self.agent.on_action_error(name, &error);
                Err(error)
            }
        }
    }

    /// Applies an action's directives around its save.
    async fn commit(
        &mut self,
        name: &'static str,
        directives: Vec<Directive<A>>,
        ctx: &mut Context<Self>,
    ) -> Result<(), Error> {
        let hooks = name != START;
        let mut after_save = Vec::new();
        for directive in directives {
            match directive {
                Directive::SetState(state) => self.agent = *state,
                other => after_save.push(other),
            }
        }
        if let Some(persister) = &mut self.persister
            && let Err(error) = persister.save(&self.agent).await
        {
            persister.revert(&mut self.agent);
            if hooks {
                self.agent.on_action_error(name, &error);
            }
            return Err(error);
        }
        for directive in after_save {
            match directive {
                Directive::Enqueue(action) => self.followups.push_back(action),
                Directive::StartWork(work) => self.launch(name, work),
                Directive::Stop => ctx.stop(ExitReason::Normal),
                Directive::SetState(_) => {}
            }
        }
        if hooks {
            self.agent.after_action(name);
        }
        self.publish();
        self.schedule_drain();
        Ok(())
    }

    fn launch(&mut self, name: &'static str, work: Work) {
        if let Err(error) = self.env.tasks.spawn(work) {
            metrics::spawn_failed(A::KIND);
            tracing::error!(
                agent = %self.env.id,
                kind = A::KIND,
                action = name,
                %error,
                "the work of an action could not be started"
            );
            self.agent.on_action_error(name, &error);
        }
    }

    fn schedule_drain(&mut self) {
        if self.drain_scheduled || self.followups.is_empty() {
            return;
        }
        // When the mailbox is full the next handled message retries.
        if self
            .myself
            .actor
            .try_cast(AgentCast(CastKind::Drain))
            .is_ok()
        {
            self.drain_scheduled = true;
        }
    }

    fn metadata(&self, load: u64) -> Metadata {
        let capabilities: Vec<Value> = self
            .agent
            .capabilities()
            .into_iter()
            .map(Value::Text)
            .collect();
        let mut metadata = Metadata::new();
        metadata.insert(KIND_ATTRIBUTE.to_owned(), Value::Text(A::KIND.to_owned()));
        metadata.insert(CAPABILITY_ATTRIBUTE.to_owned(), Value::List(capabilities));
        metadata.insert(LOAD_ATTRIBUTE.to_owned(), load_value(load));
        metadata
    }

    fn register(&mut self, ctx: &Context<Self>) -> Result<(), Error> {
        let Some(registry) = self.env.registry.clone() else {
            return Ok(());
        };
        let load = self.agent.load();
        let metadata = self.metadata(load);
        match registry.lookup(&self.env.id) {
            Some(existing) if existing.process.id() == ctx.id() => {
                registry.update_metadata(&self.env.id, metadata)?;
            }
            _ => registry.register(Arc::clone(&self.env.id).to_string(), ctx.myself(), metadata)?,
        }
        self.published_load = Some(load);
        Ok(())
    }

    fn publish(&mut self) {
        let Some(registry) = &self.env.registry else {
            return;
        };
        let load = self.agent.load();
        if self.published_load == Some(load) {
            return;
        }
        let updated = registry.update_metadata_with(&self.env.id, |metadata| {
            metadata.insert(LOAD_ATTRIBUTE.to_owned(), load_value(load));
        });
        if updated.is_ok() {
            self.published_load = Some(load);
        }
    }
}

fn load_value(load: u64) -> Value {
    Value::Int(i64::try_from(load).unwrap_or(i64::MAX))
}

impl<A: Agent> Actor for AgentServer<A> {
    type Args = AgentStart<A>;
    type Call = AgentCall<A>;
    type Reply = AnyOutput;
    type Cast = AgentCast<A>;
    type Info = AgentInfo;

    async fn init(start: AgentStart<A>, ctx: &mut Context<Self>) -> Result<Self, Error> {
        let env = start.env;
        let agent = A::init(start.args, &env)?;
        let myself = AgentRef {
            actor: ctx.myself(),
        };
        let shared = Arc::new(Shared {
            env: env.clone(),
            myself: myself.clone(),
        });
        let mut server = AgentServer {
            agent,
            env,
            myself,
            shared,
            counters: metrics::ActionCounters::new(A::KIND),
            actions: ActionSet::of(),
            persister: None,
            followups: VecDeque::new(),
            drain_scheduled: false,
            published_load: None,
        };
        if let Some((store, factory)) = start.store {
            let mut persister = factory(&store, Arc::clone(&server.env.id), start.on_corrupt)?;
            persister.load(&mut server.agent).await?;
            server.persister = Some(persister);
        }
        let mut actx = ActionContext::new(&server.shared);
        server.agent.on_start(&mut actx)?;
        server.commit(START, actx.directives, ctx).await?;
        server.register(ctx)?;
        if let Some(period) = server.agent.tick_interval() {
            ctx.send_interval(period, AgentInfo::Tick);
        }
        Ok(server)
    }

    async fn handle_call(
        &mut self,
        request: AgentCall<A>,
        ctx: &mut Context<Self>,
    ) -> Result<AnyOutput, Error> {
        self.schedule_drain();
        match request.0 {
            CallKind::Run(action) => self.execute(action, ctx).await,
            CallKind::Json { name, params } => {
                let action = match self.actions.decode(&name, params) {
                    Ok(action) => action,
                    Err(error) => {
                        self.counters.record(false);
                        return Err(error.with_context("agent", &*self.env.id));
                    }
                };
                self.execute(action, ctx).await
            }
        }
    }

    async fn handle_cast(
        &mut self,
        message: AgentCast<A>,
        ctx: &mut Context<Self>,
    ) -> Result<(), Error> {
        let action = match message.0 {
            CastKind::Run(action) => Some(action),
            CastKind::Drain => {
                self.drain_scheduled = false;
                self.followups.pop_front()
            }
        };
        if let Some(action) = action {
            let name = action.name();
            if let Err(error) = self.execute(action, ctx).await {
                tracing::debug!(agent = %self.env.id, action = name, %error, "a cast action failed");
            }
        }
        self.schedule_drain();
        Ok(())
    }

    async fn handle_info(
        &mut self,
        message: AgentInfo,
        ctx: &mut Context<Self>,
    ) -> Result<(), Error> {
        match message {
            AgentInfo::Tick => {
                self.schedule_drain();
                if !self.agent.tick_due() {
                    return Ok(());
                }
                let outcome = match self.agent.before_action("tick") {
                    Ok(()) => {
                        let mut actx = ActionContext::new(&self.shared);
                        match self.agent.tick(&mut actx) {
                            Ok(()) => self.commit("tick", actx.directives, ctx).await,
                            Err(error) => {
                                if let Some(persister) = &mut self.persister {
                                    persister.revert(&mut self.agent);
                                }
                                self.agent.on_action_error("tick", &error);
                                Err(error)
                            }
                        }
                    }
                    Err(error) => {
                        self.agent.on_action_error("tick", &error);
                        Err(error)
                    }
                };
                self.counters.record(outcome.is_ok());
                if let Err(error) = outcome {
                    tracing::warn!(agent = %self.env.id, %error, "an agent's tick failed");
                }
                Ok(())
            }
        }
    }
}

/// A handle to an agent, valid across its restarts. Cheap to clone.
pub struct AgentRef<A: Agent> {
    actor: ActorRef<AgentServer<A>>,
}

impl<A: Agent> Clone for AgentRef<A> {
    fn clone(&self) -> Self {
        AgentRef {
            actor: self.actor.clone(),
        }
    }
}

impl<A: Agent> std::fmt::Debug for AgentRef<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentRef")
            .field("kind", &A::KIND)
            .field("process", &self.actor.id())
            .finish()
    }
}

impl<A: Agent> From<ActorRef<AgentServer<A>>> for AgentRef<A> {
    fn from(actor: ActorRef<AgentServer<A>>) -> Self {
        AgentRef { actor }
    }
}

impl<A: Agent> AgentRef<A> {
    /// Runs `action` and returns its output once the state it leaves is
    /// durable (for a persistent agent). Waits at most 5 s.
    ///
    /// # Errors
    ///
    /// The action's error (a validation error names the parameter);
    /// the store's error when the save failed (the persisted state is then
    /// the last saved one); `timeout`; `process_not_alive`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future after the request was queued does not withdraw
    /// it: the action still runs and is saved; only its reply is lost.
    pub async fn run<Act: crate::Action<A>>(&self, action: Act) -> Result<Act::Output, Error> {
        self.run_timeout(action, DEFAULT_CALL_TIMEOUT).await
    }

    /// As [`run`](AgentRef::run), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As for [`run`](AgentRef::run).
    ///
    /// # Cancel safety
    ///
    /// As for [`run`](AgentRef::run).
    pub async fn run_timeout<Act: crate::Action<A>>(
        &self,
        action: Act,
        timeout: Duration,
    ) -> Result<Act::Output, Error> {
        let output = self
            .actor
            .call_timeout(
                AgentCall(CallKind::Run(PendingAction::new(action))),
                timeout,
            )
            .await?;
        downcast::<Act::Output>(output, Act::NAME)
    }

    /// Runs the action registered as `name` with JSON parameters (a JSON
    /// object, or null for none) and returns its output as JSON. Waits at
    /// most 5 s.
    ///
    /// # Errors
    ///
    /// `data_not_found` for an unknown action; `validation_failed` naming
    /// the parameter for parameters that do not decode or validate;
    /// otherwise as for [`run`](AgentRef::run).
    ///
    /// # Cancel safety
    ///
    /// As for [`run`](AgentRef::run).
    pub async fn run_json(
        &self,
        name: &str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, Error> {
        let output = self
            .actor
            .call(AgentCall(CallKind::Json {
                name: name.to_owned(),
                params,
            }))
            .await?;
        downcast::<serde_json::Value>(output, "json")
    }

    /// Queues `action` without waiting for it to run; waits at most 5 s
    /// for room in the mailbox. Its output is discarded; its failure goes
    /// to the agent's error hook.
    ///
    /// # Errors
    ///
    /// `mailbox_full` or `process_not_alive`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it returns may or may not have queued
    /// the action.
    pub async fn cast<Act: crate::Action<A>>(&self, action: Act) -> Result<(), Error> {
        self.actor
            .cast(AgentCast(CastKind::Run(PendingAction::new(action))))
            .await
            .map_err(Error::from)
    }

    /// Queues `action`, retrying while the mailbox stays full, until it is
    /// queued or the agent's process has ended. For work reporting back.
    ///
    /// # Errors
    ///
    /// `process_not_alive` once the process ended for good.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it returns may or may not have queued
    /// the action.
    pub async fn cast_until_delivered<Act: crate::Action<A>>(
        &self,
        action: Act,
    ) -> Result<(), Error> {
        let mut message = AgentCast(CastKind::Run(PendingAction::new(action)));
        loop {
            match self.actor.cast(message).await {
                Ok(()) => return Ok(()),
                Err(error)
                    if matches!(error.kind, SendErrorKind::Full | SendErrorKind::Timeout) =>
                {
                    message = error.into_inner();
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Reads the agent's state through `read`, in mailbox order. Waits at
    /// most 5 s.
    ///
    /// # Errors
    ///
    /// `timeout`, `process_not_alive`.
    ///
    /// # Cancel safety
    ///
    /// Reads only; dropping the future loses nothing.
    pub async fn inspect<R, F>(&self, read: F) -> Result<R, Error>
    where
        R: Send + 'static,
        F: FnOnce(&A) -> R + Send + 'static,
    {
        self.actor.inspect(move |server| read(&server.agent)).await
    }

    /// The underlying actor handle (for monitors, the test kit, stops).
    pub fn actor(&self) -> &ActorRef<AgentServer<A>> {
        &self.actor
    }

    /// Whether the agent's process is alive.
    pub fn is_alive(&self) -> bool {
        self.actor.is_alive()
    }
}

fn downcast<T: 'static>(output: AnyOutput, action: &str) -> Result<T, Error> {
    let output: Box<dyn Any + Send> = output;
    output.downcast::<T>().map(|boxed| *boxed).map_err(|_| {
        Error::new(
            ErrorCode::INTERNAL_ERROR,
            format!("action {action} replied with an unexpected type"),
        )
    })
}
