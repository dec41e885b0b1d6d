use std::time::Duration;

use foundation_core::testkit::wait_for;
use foundation_core::{ChildSpec, Supervisor, TaskSupervisor};
use foundation_error::ErrorCode;
use tokio::sync::oneshot;

use crate::support::{Probe, ProbeArgs};

#[tokio::test]
async fn results_pass_through_and_panics_are_errors_for_the_awaiter() {
    let tasks = TaskSupervisor::new("t");
    assert_eq!(tasks.spawn(async { 7 }).unwrap().await.unwrap(), 7);
    let crashed = tasks.spawn(async {
        let empty: Vec<u8> = Vec::new();
        empty[1]
    });
    let error = crashed.unwrap().await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::PROCESS_CRASHED);
    assert!(
        error
            .context_value("panic")
            .unwrap()
            .contains("index out of bounds")
    );
    // The awaiting task is still here to assert.
    assert_eq!(tasks.live_tasks(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_join_timeout_aborts_the_task() {
    let tasks = TaskSupervisor::new("t");
    let slow = tasks.spawn(std::future::pending::<()>()).unwrap();
    assert_eq!(tasks.live_tasks(), 1);
    let error = slow.join_timeout(Duration::from_secs(1)).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::TIMEOUT);
    wait_for(|| tasks.live_tasks() == 0, Duration::from_secs(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn shutdown_aborts_tasks_and_refuses_new_ones() {
    let tasks = TaskSupervisor::new("t");
    let (started, running) = oneshot::channel();
    let handle = tasks
        .spawn(async move {
            let _ = started.send(());
            std::future::pending::<()>().await;
        })
        .unwrap();
    running.await.unwrap();
    assert_eq!(tasks.live_tasks(), 1);
    tasks.shutdown().await;
    assert_eq!(tasks.live_tasks(), 0);
    assert_eq!(handle.await.unwrap_err().code(), ErrorCode::CANCELLED);
    let refused = tasks.spawn(async {}).unwrap_err();
    assert_eq!(refused.code(), ErrorCode::SHUT_DOWN);
}

#[test]
fn spawning_outside_a_runtime_is_an_error() {
    let tasks = TaskSupervisor::new("t");
    let error = tasks.spawn(async {}).unwrap_err();
    assert_eq!(error.code(), ErrorCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn tasks_stop_with_the_supervision_tree() {
    let tasks = TaskSupervisor::new("tree-tasks");
    let mut builder = Supervisor::builder("app");
    builder.child(ChildSpec::<Probe>::from_fn("store", || {
        ProbeArgs::named("store")
    }));
    builder.child(tasks.child_spec("tasks"));
    let app = builder.start().await.unwrap();
    let handle = tasks.spawn(std::future::pending::<()>()).unwrap();
    assert_eq!(tasks.live_tasks(), 1);
    app.shutdown().await.unwrap();
    assert_eq!(tasks.live_tasks(), 0);
    assert_eq!(handle.await.unwrap_err().code(), ErrorCode::CANCELLED);
    assert!(tasks.spawn(async {}).is_err());
}
