//! The agent model: validation, hooks, directives, the JSON entry point,
//! capability routing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use foundation_core::registry::Registry;
use foundation_core::testkit;
use foundation_core::{ExitReason, TaskSupervisor};
use foundation_error::{Error, ErrorCode};
use jido_agents::{Action, ActionContext, ActionSet, Agent, AgentEnv, AgentSpec, route, route_any};
use serde_json::json;

use crate::support::{
    Add, AddThenFail, Chain, Counter, CounterArgs, Get, Halt, Replace, WAIT, counter_spec,
    supervise,
};

#[tokio::test(start_paused = true)]
async fn a_failed_validation_names_the_parameter_and_leaves_the_state() {
    let tasks = TaskSupervisor::new("work");
    let args = CounterArgs::new();
    let (tree, agent) = supervise(
        counter_spec(None, &tasks, args.clone())
            .child_spec()
            .unwrap(),
    )
    .await;

    assert_eq!(agent.run(Add { amount: 5 }).await.unwrap(), 5);
    let error = agent.run(Add { amount: 0 }).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::VALIDATION_FAILED);
    assert_eq!(error.context_value("parameter"), Some("amount"));
    assert_eq!(agent.run(Get {}).await.unwrap(), 5);

    // The JSON entry point names the parameter too, for missing, mistyped
    // and out-of-range values.
    for params in [
        json!({}),
        json!({"amount": "many"}),
        json!({"amount": 5000}),
    ] {
        let error = agent.run_json("add", params.clone()).await.unwrap_err();
        assert_eq!(error.code(), ErrorCode::VALIDATION_FAILED, "{params}");
        assert_eq!(error.context_value("parameter"), Some("amount"), "{params}");
    }
    assert_eq!(
        agent.run_json("add", json!({"amount": 2})).await.unwrap(),
        json!(7)
    );
    assert_eq!(agent.run_json("get", json!(null)).await.unwrap(), json!(7));
    let unknown = agent.run_json("launch", json!({})).await.unwrap_err();
    assert_eq!(unknown.code(), ErrorCode::DATA_NOT_FOUND);

    let hooks = args.hooks();
    assert_eq!(&hooks[..2], ["before:add", "after:add"]);
    assert_eq!(hooks[2], "error:add:validation_failed");
    tree.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn hooks_wrap_actions_and_errors() {
    let tasks = TaskSupervisor::new("work");
    let args = CounterArgs::new();
    let (tree, agent) = supervise(
        counter_spec(None, &tasks, args.clone())
            .child_spec()
            .unwrap(),
    )
    .await;

    let error = agent.run(AddThenFail(3)).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::BUSINESS_RULE_VIOLATION);
    assert_eq!(
        args.hooks(),
        [
            "before:add_then_fail",
            "error:add_then_fail:business_rule_violation"
        ]
    );
    tree.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn directives_set_state_enqueue_and_stop() {
    let tasks = TaskSupervisor::new("work");
    let args = CounterArgs::new();
    let mut spec = counter_spec(None, &tasks, args.clone())
        .child_spec()
        .unwrap();
    spec.restart(foundation_core::Restart::Temporary);
    let (tree, agent) = supervise(spec).await;

    agent.run(Replace(40)).await.unwrap();
    assert_eq!(
        agent
            .inspect(|counter| counter.label.clone())
            .await
            .unwrap(),
        "replaced"
    );
    assert_eq!(agent.run(Get {}).await.unwrap(), 40);

    // Follow-ups run after the action, through the mailbox.
    agent.run(Chain(3)).await.unwrap();
    testkit::wait_for_state(agent.actor(), |server| server.agent().value == 43, WAIT)
        .await
        .unwrap();

    let gone = agent.actor().monitor();
    assert_eq!(agent.run(Halt).await.unwrap(), "stopping");
    let down = tokio::time::timeout(WAIT, gone).await.unwrap();
    assert!(
        matches!(down.reason, ExitReason::Normal),
        "{:?}",
        down.reason
    );
    tree.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn route_picks_the_live_agent_with_the_capability_and_the_lowest_load() {
    let tasks = TaskSupervisor::new("work");
    let registry = Registry::builder().index("capability").build();
    let mut tree = foundation_core::Supervisor::builder("routing");
    let mut agents = Vec::new();
    for (id, capabilities) in [
        ("busy", vec!["counting", "summing"]),
        ("idle", vec!["counting"]),
        ("other", vec!["summing"]),
    ] {
        let mut args = CounterArgs::new();
        args.capabilities = capabilities.into_iter().map(str::to_owned).collect();
        let mut spec = AgentSpec::<Counter>::new(id, args, &tasks);
        spec.registry(&registry);
        let spec = spec.child_spec().unwrap();
        agents.push(jido_agents::AgentRef::from(spec.handle()));
        tree.child(spec);
    }
    let tree = tree.start().await.unwrap();
    agents[0].run(Add { amount: 9 }).await.unwrap();
    agents[1].run(Add { amount: 2 }).await.unwrap();

    let chosen = route::<Counter>(&registry, "counting").unwrap();
    assert_eq!(chosen.actor().id(), agents[1].actor().id());
    agents[1].run(Add { amount: 10 }).await.unwrap();
    let chosen = route::<Counter>(&registry, "counting").unwrap();
    assert_eq!(chosen.actor().id(), agents[0].actor().id());
    assert_eq!(route_any(&registry, "summing").unwrap().name, "other");

    let missing = route::<Counter>(&registry, "flying").unwrap_err();
    assert_eq!(missing.code(), ErrorCode::DATA_NOT_FOUND);

    // A stopped agent is no longer routed to.
    tree.terminate_child("other").await.unwrap();
    assert_eq!(route_any(&registry, "summing").unwrap().name, "busy");
    tree.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_bad_id_or_kind_is_refused_up_front() {
    let tasks = TaskSupervisor::new("work");
    let error = AgentSpec::<Counter>::new("", CounterArgs::new(), &tasks)
        .child_spec()
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::INVALID_CONFIG_VALUE);
}

/// Ticks every second while armed; counts the ticks that ran and the
/// times it was asked whether one is due.
#[derive(Debug)]
struct Ticker {
    armed: bool,
    ticks: u64,
    asked: Arc<AtomicU64>,
}

impl Agent for Ticker {
    const KIND: &'static str = "ticker";
    type Args = Arc<AtomicU64>;

    fn init(asked: Arc<AtomicU64>, _env: &AgentEnv) -> Result<Self, Error> {
        Ok(Ticker {
            armed: false,
            ticks: 0,
            asked,
        })
    }

    fn actions(actions: &mut ActionSet<Self>) {
        actions.add::<Arm>().add::<Ticks>();
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_secs(1))
    }

    fn tick_due(&self) -> bool {
        self.asked.fetch_add(1, Ordering::Relaxed);
        self.armed
    }

    fn tick(&mut self, _ctx: &mut ActionContext<Self>) -> Result<(), Error> {
        self.ticks += 1;
        self.armed = false;
        Ok(())
    }
}

/// Arms the next tick.
#[derive(serde::Deserialize)]
struct Arm;

impl Action<Ticker> for Arm {
    const NAME: &'static str = "arm";
    type Output = ();

    fn run(self, ticker: &mut Ticker, _ctx: &mut ActionContext<Ticker>) -> Result<(), Error> {
        ticker.armed = true;
        Ok(())
    }
}

/// How many ticks ran.
#[derive(serde::Deserialize)]
struct Ticks;

impl Action<Ticker> for Ticks {
    const NAME: &'static str = "ticks";
    type Output = u64;

    fn run(self, ticker: &mut Ticker, _ctx: &mut ActionContext<Ticker>) -> Result<u64, Error> {
        Ok(ticker.ticks)
    }
}

#[tokio::test(start_paused = true)]
async fn a_tick_that_is_not_due_does_not_run() {
    let tasks = TaskSupervisor::new("work");
    let asked = Arc::new(AtomicU64::new(0));
    let (tree, agent) = supervise(
        AgentSpec::<Ticker>::new("ticker-1", Arc::clone(&asked), &tasks)
            .child_spec()
            .unwrap(),
    )
    .await;

    // Idle: the interval fires, the agent is asked, no tick runs.
    testkit::wait_for(|| asked.load(Ordering::Relaxed) >= 3, WAIT)
        .await
        .unwrap();
    assert_eq!(agent.run(Ticks).await.unwrap(), 0);
    // Armed: the next tick runs once, then the agent is idle again.
    agent.run(Arm).await.unwrap();
    let armed_at = asked.load(Ordering::Relaxed);
    testkit::wait_for(|| asked.load(Ordering::Relaxed) >= armed_at + 3, WAIT)
        .await
        .unwrap();
    assert_eq!(agent.run(Ticks).await.unwrap(), 1);
    tree.shutdown().await.unwrap();
}
