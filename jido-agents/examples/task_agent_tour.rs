//! A tour of jido-agents: a TaskAgent and a MonitorAgent on a file store
//! under one supervisor. Tasks by priority, typed and by name with JSON,
//! a validation error naming its parameter, a crash with tasks queued and
//! the restarted agent answering with its restored state, routing by
//! capability, and a health report with this process's CPU and memory.
//!
//! Run with `cargo run -p jido-agents --example task_agent_tour`.

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use foundation_core::registry::Registry;
use foundation_core::{Supervisor, TaskSupervisor, testkit};
use foundation_error::Error;
use foundation_error::clock::{SharedClock, TokioClock};
use foundation_persist::{Store, StoreOptions};
use jido_agents::monitor::{
    CheckNow, HealthQuery, MonitorAgent, MonitorArgs, ProcessCheck, StoreLatencyCheck,
};
use jido_agents::task::{
    PauseTasks, Priority, ResumeTasks, SubmitTask, Task, TaskAgent, TaskAgentArgs, TaskHandler,
    TaskRun, TaskStatusQuery,
};
use jido_agents::{AgentRef, AgentSpec, route};
use serde_json::json;

/// How long the tour waits for an event (work finishing, a restart).
const WAIT: Duration = Duration::from_secs(5);

/// The application's work: doubles a number.
struct Doubler;

impl TaskHandler for Doubler {
    async fn run(&self, task: TaskRun) -> Result<serde_json::Value, Error> {
        let number = task.input["n"]
            .as_i64()
            .ok_or_else(|| Error::validation("input.n must be a number"))?;
        Ok(json!(number * 2))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let directory = tempfile::tempdir()?;
    let store = Store::open(directory.path().join("agents.redb"), &StoreOptions::new())?;
    let clock: SharedClock = Arc::new(TokioClock::new());
    let tasks = TaskSupervisor::new("work");
    let registry = Registry::builder().index("capability").build();

    let mut task_spec =
        AgentSpec::<TaskAgent<Doubler>>::new("tasks-1", TaskAgentArgs::new(Doubler), &tasks);
    task_spec
        .persistent(&store)
        .registry(&registry)
        .clock(Arc::clone(&clock));
    let task_child = task_spec.child_spec()?;
    let task_agent = AgentRef::from(task_child.handle());

    let mut monitor_args = MonitorArgs::new();
    monitor_args
        .check(Arc::new(ProcessCheck::new(
            "this-process",
            Arc::clone(&clock),
        )))
        .check(Arc::new(StoreLatencyCheck::new(
            "store",
            &store,
            Arc::clone(&clock),
        )))
        .interval(Duration::from_secs(30));
    let mut monitor_spec = AgentSpec::<MonitorAgent>::new("monitor-1", monitor_args, &tasks);
    monitor_spec
        .persistent(&store)
        .registry(&registry)
        .clock(Arc::clone(&clock));
    let monitor_child = monitor_spec.child_spec()?;
    let monitor = AgentRef::from(monitor_child.handle());

    let mut app = Supervisor::builder("tour");
    app.child(tasks.child_spec("tasks"))
        .child(task_child)
        .child(monitor_child);
    let app = app.start().await?;

    // 1. Tasks, typed and by name; high priority goes first.
    task_agent.run(PauseTasks {}).await?;
    for n in 1..=3 {
        task_agent
            .run(SubmitTask(Task::new(
                format!("normal-{n}"),
                "double",
                json!({"n": n}),
            )))
            .await?;
    }
    let urgent = Task::new("urgent", "double", json!({"n": 100})).priority(Priority::High);
    let receipt = task_agent.run(SubmitTask(urgent)).await?;
    println!(
        "urgent task queued at position {} of {}",
        receipt.position, receipt.queued
    );
    let by_name = task_agent
        .run_json(
            "submit",
            json!({"id": "json-1", "type": "double", "input": {"n": 7}}),
        )
        .await?;
    println!("submitted by name: {by_name}");
    let invalid = task_agent
        .run_json(
            "submit",
            json!({"id": "bad", "type": "double", "timeout_ms": 10}),
        )
        .await;
    match invalid {
        Err(error) => println!(
            "rejected: {error} (parameter {:?})",
            error.context_value("parameter")
        ),
        Ok(accepted) => return Err(format!("a 10 ms timeout was accepted: {accepted}").into()),
    }

    // 2. A crash with 5 tasks queued: the restarted agent has them all.
    let before = task_agent.run(TaskStatusQuery {}).await?;
    let incarnation = task_agent.actor().incarnation();
    task_agent.actor().kill();
    let restarted = task_agent.clone();
    testkit::wait_for(move || restarted.actor().incarnation() > incarnation, WAIT).await?;
    let after = task_agent.run(TaskStatusQuery {}).await?;
    println!(
        "before the kill: {} queued; after the restart (incarnation {}): {} queued, same counters: {}",
        before.queued,
        task_agent.actor().incarnation(),
        after.queued,
        before.counters == after.counters
    );

    // 3. Resume and let the work run under the task supervisor.
    task_agent.run(ResumeTasks {}).await?;
    testkit::wait_for_state(
        task_agent.actor(),
        |server| server.agent().state().counters.processed == 5,
        WAIT,
    )
    .await?;
    let status = task_agent.run(TaskStatusQuery {}).await?;
    println!(
        "processed {} (average {:.3} ms, fastest {:?} us, slowest {:?} us)",
        status.counters.processed,
        status.average_duration_ms.unwrap_or_default(),
        status.counters.fastest_us,
        status.counters.slowest_us
    );

    // 4. Routing by capability.
    let routed = route::<TaskAgent<Doubler>>(&registry, "tasks")?;
    println!(
        "the agent offering \"tasks\" with the lowest load: {:?}",
        routed.actor().id()
    );

    // 5. Health: this OS process's CPU and memory, and the store's commit latency.
    monitor.run(CheckNow {}).await?;
    testkit::wait_for_state(
        monitor.actor(),
        |server| server.agent().state().rounds > 0,
        WAIT,
    )
    .await?;
    let report = monitor.run(HealthQuery {}).await?;
    println!("health {:.1} ({:?})", report.score, report.band);
    for (component, health) in &report.components {
        println!("  {component}: {:?}", health.readings);
    }

    app.shutdown().await?;
    store.close().await?;
    Ok(())
}
