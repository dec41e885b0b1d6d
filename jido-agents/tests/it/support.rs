//! Shared test agents and helpers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use foundation_core::{ChildSpec, Supervisor, SupervisorRef, TaskSupervisor};
use foundation_error::{Error, ErrorCode};
use foundation_persist::{Migrations, Record, Store, StoreOptions};
use jido_agents::{
    Action, ActionContext, ActionSet, Agent, AgentEnv, AgentRef, AgentServer, AgentSpec,
    PersistentAgent, validation_error,
};
use serde::{Deserialize, Serialize};

pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// A counter with a persisted value and label, and a hook log that is not
/// persisted.
#[derive(Debug)]
pub(crate) struct Counter {
    pub(crate) value: u64,
    pub(crate) label: String,
    pub(crate) hooks: Arc<Mutex<Vec<String>>>,
    pub(crate) capabilities: Vec<String>,
    pub(crate) loaded: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct CounterArgs {
    pub(crate) hooks: Arc<Mutex<Vec<String>>>,
    pub(crate) capabilities: Vec<String>,
}

impl CounterArgs {
    pub(crate) fn new() -> CounterArgs {
        CounterArgs {
            hooks: Arc::new(Mutex::new(Vec::new())),
            capabilities: vec!["counting".to_owned()],
        }
    }

    pub(crate) fn hooks(&self) -> Vec<String> {
        self.hooks
            .lock()
            .expect("the hook log is not poisoned")
            .clone()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CounterState {
    pub(crate) value: u64,
    pub(crate) label: String,
}

impl Record for CounterState {
    const TYPE_TAG: &'static str = "test_counter_state";
    const SCHEMA_VERSION: u32 = 1;
}

impl Counter {
    fn log(&self, entry: String) {
        self.hooks
            .lock()
            .expect("the hook log is not poisoned")
            .push(entry);
    }
}

impl Agent for Counter {
    const KIND: &'static str = "counter";
    type Args = CounterArgs;

    fn init(args: CounterArgs, _env: &AgentEnv) -> Result<Self, Error> {
        Ok(Counter {
            value: 0,
            label: "default".to_owned(),
            hooks: args.hooks,
            capabilities: args.capabilities,
            loaded: false,
        })
    }

    fn actions(actions: &mut ActionSet<Self>) {
        actions.add::<Add>().add::<Get>();
    }

    fn capabilities(&self) -> Vec<String> {
        self.capabilities.clone()
    }

    fn load(&self) -> u64 {
        self.value
    }

    fn before_action(&mut self, action: &'static str) -> Result<(), Error> {
        self.log(format!("before:{action}"));
        Ok(())
    }

    fn after_action(&mut self, action: &'static str) {
        self.log(format!("after:{action}"));
    }

    fn on_action_error(&mut self, action: &'static str, error: &Error) {
        self.log(format!("error:{action}:{}", error.code().name()));
    }
}

impl PersistentAgent for Counter {
    type Snapshot = CounterState;

    fn snapshot(&self) -> CounterState {
        CounterState {
            value: self.value,
            label: self.label.clone(),
        }
    }

    fn restore(&mut self, stored: CounterState) {
        self.value = stored.value;
        self.label = stored.label;
    }

    fn after_load(&mut self) -> Result<(), Error> {
        self.loaded = true;
        Ok(())
    }
}

/// Adds `amount` (1 to 1,000).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Add {
    pub(crate) amount: u64,
}

impl Action<Counter> for Add {
    const NAME: &'static str = "add";
    type Output = u64;

    fn validate(&self) -> Result<(), Error> {
        if !(1..=1_000).contains(&self.amount) {
            return Err(validation_error("amount", "must be 1 to 1000"));
        }
        Ok(())
    }

    fn run(self, counter: &mut Counter, _ctx: &mut ActionContext<Counter>) -> Result<u64, Error> {
        counter.value += self.amount;
        Ok(counter.value)
    }
}

/// Reads the value.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Get {}

impl Action<Counter> for Get {
    const NAME: &'static str = "get";
    type Output = u64;

    fn run(self, counter: &mut Counter, _ctx: &mut ActionContext<Counter>) -> Result<u64, Error> {
        Ok(counter.value)
    }
}

/// Changes the value, then fails.
pub(crate) struct AddThenFail(pub(crate) u64);

impl Action<Counter> for AddThenFail {
    const NAME: &'static str = "add_then_fail";
    type Output = ();

    fn run(self, counter: &mut Counter, _ctx: &mut ActionContext<Counter>) -> Result<(), Error> {
        counter.value += self.0;
        Err(Error::new(ErrorCode::BUSINESS_RULE_VIOLATION, "refused"))
    }
}

/// Replaces the whole state through the `SetState` directive.
pub(crate) struct Replace(pub(crate) u64);

impl Action<Counter> for Replace {
    const NAME: &'static str = "replace";
    type Output = ();

    fn run(self, counter: &mut Counter, ctx: &mut ActionContext<Counter>) -> Result<(), Error> {
        ctx.set_state(Counter {
            value: self.0,
            label: "replaced".to_owned(),
            hooks: Arc::clone(&counter.hooks),
            capabilities: counter.capabilities.clone(),
            loaded: counter.loaded,
        });
        Ok(())
    }
}

/// Enqueues `times` follow-up additions of 1.
pub(crate) struct Chain(pub(crate) u64);

impl Action<Counter> for Chain {
    const NAME: &'static str = "chain";
    type Output = ();

    fn run(self, _counter: &mut Counter, ctx: &mut ActionContext<Counter>) -> Result<(), Error> {
        for _ in 0..self.0 {
            ctx.enqueue(Add { amount: 1 });
        }
        Ok(())
    }
}

/// Stops the agent after the reply.
pub(crate) struct Halt;

impl Action<Counter> for Halt {
    const NAME: &'static str = "halt";
    type Output = &'static str;

    fn run(
        self,
        _counter: &mut Counter,
        ctx: &mut ActionContext<Counter>,
    ) -> Result<&'static str, Error> {
        ctx.stop();
        Ok("stopping")
    }
}

/// Panics inside the agent.
pub(crate) struct Explode;

impl Action<Counter> for Explode {
    const NAME: &'static str = "explode";
    type Output = ();

    fn run(self, _counter: &mut Counter, _ctx: &mut ActionContext<Counter>) -> Result<(), Error> {
        panic!("exploded on purpose")
    }
}

/// A supervisor with one agent.
pub(crate) async fn supervise<A: Agent>(
    spec: ChildSpec<AgentServer<A>>,
) -> (SupervisorRef, AgentRef<A>) {
    let agent = AgentRef::from(spec.handle());
    let mut tree = Supervisor::builder("agents-test");
    tree.intensity(100, Duration::from_secs(1));
    tree.child(spec);
    let tree = tree.start().await.expect("the supervisor starts");
    (tree, agent)
}

pub(crate) fn memory_store() -> Store {
    Store::open_in_memory(&StoreOptions::new()).expect("an in-memory store opens")
}

pub(crate) fn counter_spec(
    store: Option<&Store>,
    tasks: &TaskSupervisor,
    args: CounterArgs,
) -> AgentSpec<Counter> {
    let mut spec = AgentSpec::<Counter>::new("counter-1", args, tasks);
    if let Some(store) = store {
        spec.persistent(store);
    }
    spec
}

/// Version 1 of a profile agent's projection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProfileV1 {
    pub(crate) name: String,
}

impl Record for ProfileV1 {
    const TYPE_TAG: &'static str = "test_profile";
    const SCHEMA_VERSION: u32 = 1;
}

/// Version 2: the name split, an email added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProfileV2 {
    pub(crate) first_name: String,
    pub(crate) last_name: String,
    pub(crate) email: Option<String>,
}

impl Record for ProfileV2 {
    const TYPE_TAG: &'static str = "test_profile";
    const SCHEMA_VERSION: u32 = 2;

    fn migrations(migrations: &mut Migrations) {
        migrations.add(1, |old: ProfileV1| {
            let mut parts = old.name.splitn(2, ' ');
            ProfileV2 {
                first_name: parts.next().unwrap_or_default().to_owned(),
                last_name: parts.next().unwrap_or_default().to_owned(),
                email: None,
            }
        });
    }
}
