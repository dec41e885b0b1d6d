//! The agent model: [`Agent`] (typed state with hooks), [`Action`] (a named,
//! validated state transition), [`ActionContext`] and the [`Directive`]s an
//! action may leave for the runtime.
//!
//! Actions are synchronous state transitions: they run inside the agent's
//! mailbox and must not wait on I/O. Work that waits (a task, a health
//! check) is handed to the runtime with [`ActionContext::start_work`], runs under
//! the task supervisor, and reports back by sending the agent another
//! action. That keeps every agent answering while its work runs.
//!
//! This module is not the actor glue (see `server`) and knows nothing about
//! storage (see `persist`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use foundation_core::TaskSupervisor;
use foundation_core::registry::Registry;
use foundation_error::Error;
use foundation_error::clock::SharedClock;

use crate::server::AgentRef;

/// A boxed future the runtime runs under the task supervisor.
pub type Work = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// An agent: a supervised actor with typed state (the implementing type
/// itself), named actions and lifecycle hooks.
///
/// Every hook has an empty default body, so adding hooks later breaks no
/// implementer. The order around one action is: validation (the state is
/// untouched when it fails), [`before_action`](Agent::before_action), the
/// action, its directives, the save (persistent agents), then
/// [`after_action`](Agent::after_action) or
/// [`on_action_error`](Agent::on_action_error), then the reply.
///
/// ```
/// use jido_agents::{Action, ActionContext, Agent, AgentEnv, validation_error};
/// use foundation_error::Error;
///
/// struct Counter { value: u64 }
///
/// impl Agent for Counter {
///     const KIND: &'static str = "counter";
///     type Args = u64;
///     fn init(start: u64, _env: &AgentEnv) -> Result<Self, Error> {
///         Ok(Counter { value: start })
///     }
/// }
///
/// struct Add { amount: u64 }
///
/// impl Action<Counter> for Add {
///     const NAME: &'static str = "add";
///     type Output = u64;
///     fn validate(&self) -> Result<(), Error> {
///         if self.amount == 0 {
///             return Err(validation_error("amount", "must be at least 1"));
///         }
///         Ok(())
///     }
///     fn run(self, counter: &mut Counter, _ctx: &mut ActionContext<Counter>) -> Result<u64, Error> {
///         counter.value += self.amount;
///         Ok(counter.value)
///     }
/// }
/// ```
pub trait Agent: Sized + Send + 'static {
    /// The agent's kind, for example `"task_agent"`: names its keyspace
    /// (`agents.KIND`), its metrics label and its registry entry's `kind`.
    /// 1 to 57 characters of a-z, 0-9, '_', '-' and '.'.
    const KIND: &'static str;

    /// What the default state is built from (once per start).
    type Args: Send + 'static;

    /// Builds the default state. For a persistent agent the stored state
    /// is merged over it afterwards.
    fn init(args: Self::Args, env: &AgentEnv) -> Result<Self, Error>;

    /// Registers the actions callable by name with JSON parameters (the
    /// HTTP layer's entry point). The default registers none.
    fn actions(actions: &mut crate::ActionSet<Self>) {
        let _ = actions;
    }

    /// Runs once per start, after the state is loaded; its directives
    /// apply as an action's do (a persistent agent saves first).
    fn on_start(&mut self, ctx: &mut ActionContext<Self>) -> Result<(), Error> {
        let _ = ctx;
        Ok(())
    }

    /// The capabilities this agent offers, published in the registry.
    fn capabilities(&self) -> Vec<String> {
        Vec::new()
    }

    /// The agent's current load, published in the registry for
    /// [`route`](crate::route); lower is preferred.
    fn load(&self) -> u64 {
        0
    }

    /// Runs before an action that passed validation; an error fails the
    /// action without running it.
    fn before_action(&mut self, action: &'static str) -> Result<(), Error> {
        let _ = action;
        Ok(())
    }

    /// Runs after an action succeeded (and, for a persistent agent, after
    /// its save).
    fn after_action(&mut self, action: &'static str) {
        let _ = action;
    }

    /// Runs after an action failed: validation, `before_action`, the
    /// action itself, or its save.
    fn on_action_error(&mut self, action: &'static str, error: &Error) {
        let _ = (action, error);
    }

    /// How often [`tick`](Agent::tick) runs; `None` (the default): never.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// Whether a tick has anything to do now; when `false` the tick is
    /// skipped: no action runs, nothing is saved or counted. The default:
    /// always. An agent whose tick usually finds nothing to do answers
    /// cheaply here, so that an idle agent costs no snapshot per tick.
    fn tick_due(&self) -> bool {
        true
    }

    /// Runs every [`tick_interval`](Agent::tick_interval) when
    /// [`tick_due`](Agent::tick_due), as an action named `"tick"`.
    fn tick(&mut self, ctx: &mut ActionContext<Self>) -> Result<(), Error> {
        let _ = ctx;
        Ok(())
    }
}

/// A named action of agent `A`: its parameters are the fields of the
/// implementing type, checked by [`validate`](Action::validate) before it
/// runs.
pub trait Action<A: Agent>: Send + 'static {
    /// The action's name, unique within its agent.
    const NAME: &'static str;

    /// What the action returns to its caller.
    type Output: Send + 'static;

    /// Checks the parameters. A failure should be a
    /// [`validation_error`](crate::validation_error) naming the parameter;
    /// the state is not touched.
    fn validate(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Runs the action on the agent's state. It should either succeed or
    /// leave the state as it found it; for a persistent agent the
    /// persisted part is restored to the last saved one after a failure.
    fn run(self, agent: &mut A, ctx: &mut ActionContext<A>) -> Result<Self::Output, Error>;
}

/// What the runtime gives every agent: its id, the clock, the task
/// supervisor its work runs under and, optionally, the registry it is
/// published in. Cheap to clone.
#[derive(Clone)]
pub struct AgentEnv {
    pub(crate) id: Arc<str>,
    pub(crate) clock: SharedClock,
    pub(crate) tasks: TaskSupervisor,
    pub(crate) registry: Option<Registry>,
}

impl std::fmt::Debug for AgentEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentEnv")
            .field("id", &self.id)
            .field("tasks", &self.tasks.name())
            .field("registry", &self.registry.is_some())
            .finish()
    }
}

impl AgentEnv {
    /// The agent's id (its registry name and storage key).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The clock every time reading of the agent goes through.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The task supervisor the agent's work runs under.
    pub fn tasks(&self) -> &TaskSupervisor {
        &self.tasks
    }

    /// The registry the agent is published in, if any.
    pub fn registry(&self) -> Option<&Registry> {
        self.registry.as_ref()
    }
}

/// An action of agent `A` waiting to run: built from a typed [`Action`],
/// validated when it is about to run.
pub struct PendingAction<A: Agent> {
    pub(crate) inner: Box<dyn crate::action::ErasedAction<A>>,
}

impl<A: Agent> PendingAction<A> {
    /// Wraps a typed action; its output is discarded (used for follow-ups
    /// and casts).
    pub fn new<Act: Action<A>>(action: Act) -> PendingAction<A> {
        PendingAction {
            inner: Box::new(crate::action::Typed(action)),
        }
    }

    /// The action's name.
    pub fn name(&self) -> &'static str {
        self.inner.name()
    }
}

impl<A: Agent> std::fmt::Debug for PendingAction<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PendingAction").field(&self.name()).finish()
    }
}

/// What an action asks the runtime to do once it has succeeded (and, for a
/// persistent agent, once its state is saved).
#[non_exhaustive]
pub enum Directive<A: Agent> {
    /// Replace the whole state (before the save).
    SetState(Box<A>),
    /// Run this action after the current one, through the mailbox.
    Enqueue(PendingAction<A>),
    /// Run this work under the task supervisor (after the save; dropped if
    /// the save fails).
    StartWork(Work),
    /// Stop the agent normally after the reply.
    Stop,
}

impl<A: Agent> std::fmt::Debug for Directive<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Directive::SetState(_) => f.write_str("SetState"),
            Directive::Enqueue(action) => f.debug_tuple("Enqueue").field(action).finish(),
            Directive::StartWork(_) => f.write_str("StartWork"),
            Directive::Stop => f.write_str("Stop"),
        }
    }
}

/// What every action of one agent instance shares: built once per
/// instance, so that an action's context costs one reference count.
pub(crate) struct Shared<A: Agent> {
    pub(crate) env: AgentEnv,
    pub(crate) myself: AgentRef<A>,
}

/// What a running action can see and ask for besides the state.
pub struct ActionContext<A: Agent> {
    pub(crate) shared: Arc<Shared<A>>,
    pub(crate) directives: Vec<Directive<A>>,
}

impl<A: Agent> ActionContext<A> {
    pub(crate) fn new(shared: &Arc<Shared<A>>) -> ActionContext<A> {
        ActionContext {
            shared: Arc::clone(shared),
            directives: Vec::new(),
        }
    }

    /// The runtime environment (id, clock, task supervisor, registry).
    pub fn env(&self) -> &AgentEnv {
        &self.shared.env
    }

    /// A handle to this agent, valid across its restarts (for work that
    /// reports back).
    pub fn myself(&self) -> &AgentRef<A> {
        &self.shared.myself
    }

    /// Leaves a directive for the runtime.
    pub fn directive(&mut self, directive: Directive<A>) {
        self.directives.push(directive);
    }

    /// Replaces the whole state once the action returns.
    pub fn set_state(&mut self, state: A) {
        self.directive(Directive::SetState(Box::new(state)));
    }

    /// Runs `action` after this one.
    pub fn enqueue<Act: Action<A>>(&mut self, action: Act) {
        self.directive(Directive::Enqueue(PendingAction::new(action)));
    }

    /// Runs `work` under the task supervisor once the action's state is
    /// saved.
    pub fn start_work(&mut self, work: impl Future<Output = ()> + Send + 'static) {
        self.directive(Directive::StartWork(Box::pin(work)));
    }

    /// Stops the agent normally after the reply.
    pub fn stop(&mut self) {
        self.directive(Directive::Stop);
    }
}
