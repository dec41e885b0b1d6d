//! `use_persistent_agents` takes effect without a restart of the
//! application's children: the agents part swaps its TaskAgent and
//! MonitorAgent for ones in the new mode when the flag changes.

use std::sync::Arc;
use std::time::Duration;

use foundation_core::SupervisorEventKind;
use foundation_core::testkit::{EventCollector, wait_for, wait_until};
use foundation_persist::StateStore;
use jido_agents::task::{SubmitTask, Task, TaskAgentState, TaskStatusQuery};
use jido_system::app::Shared;
use serde_json::json;

use crate::support::Server;

async fn submit(shared: &Shared, id: &str) {
    let task: Task =
        serde_json::from_value(json!({"id": id, "type": "process_data", "input": {"rows": 1}}))
            .expect("a task");
    shared
        .task_agent
        .get()
        .expect("the task agent")
        .run(SubmitTask(task))
        .await
        .expect("the task is accepted");
}

/// Waits until the task agent has no queued or running task, so that a
/// persistent agent has saved everything it will save.
async fn settled(shared: &Shared) {
    let agent = shared.task_agent.get().expect("the task agent");
    wait_until(
        || {
            let agent = agent.clone();
            async move {
                agent
                    .run(TaskStatusQuery {})
                    .await
                    .is_ok_and(|status| status.queued == 0 && status.in_progress.is_empty())
            }
        },
        Duration::from_secs(30),
    )
    .await
    .expect("the task agent finishes its tasks");
}

/// Waits until the agents part published agents anew.
async fn swapped(shared: &Arc<Shared>, before: Option<u64>) {
    wait_for(
        || shared.task_agent.generation() != before && shared.task_agent.is_set(),
        Duration::from_secs(30),
    )
    .await
    .expect("the agents are swapped for the new mode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_persistent_agents_takes_effect_without_a_restart() {
    let server = Server::start(|_| {}).await;
    let shared = Arc::clone(server.app.shared());
    let saved: StateStore<TaskAgentState> =
        shared.store.state("agents.task_agent").expect("keyspace");
    let mut events = EventCollector::new(&shared.events);

    submit(&shared, "volatile-1").await;
    assert!(
        saved.get("task_agent").await.expect("read").is_none(),
        "off: the TaskAgent saves nothing"
    );

    let before = shared.task_agent.generation();
    server.set_flag("use_persistent_agents", json!("on")).await;
    swapped(&shared, before).await;
    submit(&shared, "persistent-1").await;
    settled(&shared).await;
    let stored = saved
        .get_versioned("task_agent")
        .await
        .expect("read")
        .expect("on: the TaskAgent saves its state");

    let before = shared.task_agent.generation();
    server.set_flag("use_persistent_agents", json!("off")).await;
    swapped(&shared, before).await;
    submit(&shared, "volatile-2").await;
    settled(&shared).await;
    let after = saved
        .get_versioned("task_agent")
        .await
        .expect("read")
        .expect("the saved state stays");
    assert_eq!(after.version, stored.version, "off again: nothing saved");

    let restarted = events.count(|event| {
        &*event.supervisor == "jido_system"
            && matches!(
                event.kind,
                SupervisorEventKind::ChildRestarted { .. }
                    | SupervisorEventKind::ChildExited { .. }
            )
    });
    assert_eq!(restarted, 0, "no child of the application restarted");
    server.stop().await;
}
