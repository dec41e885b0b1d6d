//! The agent model: validation, hooks, directives, the JSON entry point,
//! capability routing.

use foundation_core::registry::Registry;
use foundation_core::testkit;
use foundation_core::{ExitReason, TaskSupervisor};
use foundation_error::ErrorCode;
use jido_agents::{AgentSpec, route, route_any};
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
