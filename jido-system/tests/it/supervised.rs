//! `enforce_supervised_tasks`: while the task supervisor is stopped, a
//! workflow step runs unsupervised with the flag off (counted in
//! `jido_system_unsupervised_work_total`), and waits for the supervisor
//! with it on.

use std::time::Duration;

use jido_workflow::{WorkflowDefinition, WorkflowStatus};
use serde_json::json;

use crate::support::Server;

/// `jido_system_unsupervised_work_total` as the Prometheus handle renders
/// it (0 before the first count). Not through `/metrics`: the HTTP server
/// is a task of the task supervisor these tests stop.
fn unsupervised(server: &Server) -> f64 {
    let text = server
        .app
        .shared()
        .prometheus
        .as_ref()
        .expect("the Prometheus recorder")
        .render();
    text.lines()
        .find(|line| line.starts_with("jido_system_unsupervised_work_total"))
        .and_then(|line| line.split_whitespace().last())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

fn one_step() -> WorkflowDefinition {
    WorkflowDefinition::from_json(
        r#"{"name": "one_step", "steps": [{"task": {"id": "only", "work": "process_data", "params": {"rows": 10}}}]}"#,
    )
    .expect("a valid definition")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_runs_unsupervised_with_the_flag_off_and_waits_for_the_supervisor_with_it_on() {
    // One test, so that no other step runs unsupervised in this process
    // while it reads the process-wide counter.
    let server = Server::start(|_| {}).await;
    server
        .set_flag("enforce_supervised_tasks", json!("off"))
        .await;
    let shared = server.app.shared().clone();
    server
        .app
        .supervisor()
        .terminate_child("tasks")
        .await
        .expect("the task supervisor stops");
    assert!(shared.tasks.is_shut_down());
    let before = unsupervised(&server);
    let engine = shared.engine.get().expect("the engine");
    let id = engine
        .start_workflow(&one_step(), json!({}))
        .await
        .expect("a start");
    let done = engine
        .wait(&id, Duration::from_secs(30))
        .await
        .expect("the workflow ends");
    assert_eq!(done.status, WorkflowStatus::Completed);
    assert_eq!(unsupervised(&server) - before, 1.0, "one unsupervised step");
    server
        .app
        .supervisor()
        .restart_child("tasks")
        .await
        .expect("the task supervisor starts again");

    // The flag on: the step waits, nothing runs unsupervised, the
    // workflow's process is not failed.
    server
        .set_flag("enforce_supervised_tasks", json!("on"))
        .await;
    server
        .app
        .supervisor()
        .terminate_child("tasks")
        .await
        .expect("the task supervisor stops");
    let before = unsupervised(&server);
    let id = engine
        .start_workflow(&one_step(), json!({}))
        .await
        .expect("a start");
    let waiting = engine.wait(&id, Duration::from_millis(500)).await;
    assert!(
        waiting.is_err(),
        "no step runs without the task supervisor: {waiting:?}"
    );
    server
        .app
        .supervisor()
        .restart_child("tasks")
        .await
        .expect("the task supervisor starts again (the tree is alive)");
    let done = engine
        .wait(&id, Duration::from_secs(30))
        .await
        .expect("the workflow ends");
    assert_eq!(done.status, WorkflowStatus::Completed);
    assert_eq!(unsupervised(&server), before, "nothing ran unsupervised");
    server.stop().await;
}
