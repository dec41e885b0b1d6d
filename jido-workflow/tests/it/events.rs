//! The engine's supervisor events on an application's bus: a killed
//! workflow process's restart is published there.

use std::sync::Arc;
use std::time::Duration;

use foundation_core::testkit::EventCollector;
use foundation_core::{EventBus, SupervisorEventKind};
use foundation_error::Error;
use jido_workflow::{WorkflowEngine, WorkflowStatus};
use serde_json::Value;

use crate::support::{Executions, clock, memory_store, pause, plan, plan_works};

#[tokio::test(start_paused = true)]
async fn a_workflow_process_restart_is_published_on_the_given_bus() -> Result<(), Error> {
    let clock = clock();
    let store = memory_store();
    let executions = Executions::default();
    let bus = EventBus::new();
    let mut builder = WorkflowEngine::builder(
        store,
        plan_works(
            &executions,
            pause(|| tokio::time::sleep(Duration::from_secs(1))),
        ),
    );
    builder.clock(Arc::clone(&clock)).events(&bus);
    let engine = builder.start().await?;
    let mut events = EventCollector::new(&bus);
    let id = engine.start_workflow(&plan(), Value::Null).await?;
    let process = engine.process(&id).expect("the workflow's process runs");
    assert!(process.kill());
    events
        .wait_for(
            |events| {
                events.iter().any(|event| {
                    &*event.supervisor == "workflows"
                        && matches!(event.kind, SupervisorEventKind::ChildRestarted { .. })
                })
            },
            Duration::from_secs(10),
        )
        .await?;
    let done = engine.wait(&id, Duration::from_secs(60)).await?;
    assert_eq!(done.status, WorkflowStatus::Completed);
    engine.shutdown().await
}
