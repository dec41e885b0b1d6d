//! The plan's integration test on the TaskAgent executor: the steps run as
//! tasks of a persistent jido-agents TaskAgent; killing that agent really
//! interrupts them (they run again), and with the workflow process and the
//! coordinator killed too, all 5 results are present, each recorded once.

use std::sync::Arc;
use std::time::Duration;

use foundation_core::testkit::wait_for;
use foundation_core::{Supervisor, TaskSupervisor};
use foundation_error::Error;
use jido_agents::task::{TaskAgent, TaskAgentArgs, TaskStatusQuery};
use jido_agents::{AgentRef, AgentSpec};
use jido_workflow::coordinator::{CoordinatorV2, CoordinatorV2Args, CoordinatorV2Ref};
use jido_workflow::{StepHandler, TaskAgentExecutor, WorkflowEngine, WorkflowStatus};
use serde_json::json;

use crate::support::{Executions, clock, memory_store, pause, plan, plan_works, recorded};

#[tokio::test(start_paused = true)]
async fn the_plan_on_a_task_agent_survives_killing_the_agent_the_process_and_the_coordinator()
-> Result<(), Error> {
    let clock = clock();
    let store = memory_store();
    let executions = Executions::default();

    // The task agent that runs the steps.
    let tasks = TaskSupervisor::new("step_tasks");
    let handler = StepHandler::new();
    let mut args = TaskAgentArgs::new(handler.clone());
    args.max_concurrent(16);
    let mut spec = AgentSpec::<TaskAgent<StepHandler>>::new("workflow_steps", args, &tasks);
    spec.clock(Arc::clone(&clock)).persistent(&store);
    let child = spec.child_spec()?;
    let agent: AgentRef<TaskAgent<StepHandler>> = AgentRef::from(child.handle());
    let executor = Arc::new(TaskAgentExecutor::start(&handler, agent.clone(), &tasks)?);

    let mut builder = WorkflowEngine::builder(
        store.clone(),
        plan_works(
            &executions,
            pause(|| tokio::time::sleep(Duration::from_millis(100))),
        ),
    );
    builder.clock(Arc::clone(&clock)).executor(executor);
    let engine = builder.start().await?;
    let coordinator = CoordinatorV2::child_spec(CoordinatorV2Args {
        id: "task_agent_test".into(),
        engine: engine.clone(),
        store: store.clone(),
        clock: Arc::clone(&clock),
        recorder: None,
    })?;
    let v2 = CoordinatorV2Ref::from(coordinator.handle());
    let mut app = Supervisor::builder("app");
    app.child(child).child(coordinator);
    let app = app.start().await?;

    let id = v2.start_workflow(plan(), json!({"by": "plan"})).await?;
    wait_for(|| executions.total() >= 3, Duration::from_secs(1)).await?;
    // The three parallel steps are the agent's tasks in progress.
    let status = agent.run(TaskStatusQuery {}).await?;
    assert_eq!(status.in_progress.len(), 3, "{status:?}");

    // Kill the task agent: its next instance ends the runs of the dead one,
    // the steps report interrupted and the workflow runs them again.
    let before = agent.actor().incarnation();
    agent.actor().kill();
    wait_for(
        || agent.actor().incarnation() > before && agent.actor().is_alive(),
        Duration::from_secs(1),
    )
    .await?;
    wait_for(|| executions.total() >= 6, Duration::from_secs(1)).await?;

    // Then the workflow process and the coordinator.
    engine.process(&id).expect("running").kill();
    let before = v2.actor().incarnation();
    v2.actor().kill();
    wait_for(
        || v2.actor().incarnation() > before && v2.actor().is_alive(),
        Duration::from_secs(1),
    )
    .await?;

    let info = engine.wait(&id, Duration::from_secs(30)).await?;
    assert_eq!(info.status, WorkflowStatus::Completed);
    assert_eq!(info.results().len(), 5);
    let (succeeded, restarted) = recorded(&engine, &id).await;
    assert_eq!(succeeded.len(), 5);
    assert!(succeeded.values().all(|count| *count == 1), "{succeeded:?}");
    assert!(!restarted, "a recorded step ran again");
    assert_eq!(
        v2.when_finished(&id, Duration::from_secs(5)).await?,
        WorkflowStatus::Completed
    );
    app.shutdown().await?;
    engine.shutdown().await
}
