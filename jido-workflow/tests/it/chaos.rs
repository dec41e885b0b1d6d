//! The plan's chaos test, deterministic: 100 concurrent workflows started
//! through CoordinatorV2, 20 random kills (of the task agent, a workflow
//! process or the coordinator) every 100-500 ms of virtual time (seeded);
//! every workflow completes, every step is recorded exactly once, and the
//! coordinator counts 100 completions.

use std::sync::Arc;
use std::time::Duration;

use foundation_core::Supervisor;
use foundation_error::Error;
use jido_workflow::coordinator::{CoordinatorV2, CoordinatorV2Args, CoordinatorV2Ref};
use jido_workflow::{WorkflowEngine, WorkflowStatus};
use serde_json::json;

use crate::support::{
    Executions, KillableExecutor, clock, memory_store, pause, plan, plan_works, recorded,
};

#[tokio::test(start_paused = true)]
async fn a_hundred_workflows_survive_twenty_random_kills() -> Result<(), Error> {
    let mut rng = fastrand::Rng::with_seed(0x0c4a05);
    let clock = clock();
    let executions = Executions::default();
    let executor = KillableExecutor::new();
    let store = memory_store();
    let mut builder = WorkflowEngine::builder(
        store.clone(),
        plan_works(
            &executions,
            pause(|| tokio::time::sleep(Duration::from_secs(2))),
        ),
    );
    builder.clock(Arc::clone(&clock)).executor(executor.clone());
    let engine = builder.start().await?;
    let spec = CoordinatorV2::child_spec(CoordinatorV2Args {
        id: "chaos".into(),
        engine: engine.clone(),
        store: store.clone(),
        clock: Arc::clone(&clock),
        recorder: None,
    })?;
    let coordinator = CoordinatorV2Ref::from(spec.handle());
    let mut app = Supervisor::builder("chaos");
    app.intensity(100, Duration::from_secs(5)).child(spec);
    let app = app.start().await?;

    let mut ids = Vec::new();
    for index in 0..100 {
        ids.push(
            coordinator
                .start_workflow(plan(), json!({"index": index}))
                .await?,
        );
    }
    let (mut task_kills, mut process_kills, mut coordinator_kills) = (0, 0, 0);
    for _ in 0..20 {
        // The chaos schedule runs on virtual time.
        tokio::time::sleep(Duration::from_millis(rng.u64(100..=500))).await;
        let target = rng.u8(0..3);
        if target == 0 {
            executor.kill_all();
            task_kills += 1;
        } else if target == 1 {
            coordinator.actor().kill();
            coordinator_kills += 1;
        } else {
            let id = &ids[rng.usize(..ids.len())];
            if let Some(process) = engine.process(id) {
                process.kill();
            }
            process_kills += 1;
        }
    }
    assert!(task_kills > 0 && process_kills > 0 && coordinator_kills > 0);

    for id in &ids {
        let info = engine.wait(id, Duration::from_secs(600)).await?;
        assert_eq!(info.status, WorkflowStatus::Completed, "{id}");
        assert_eq!(info.results().len(), 5);
        let (succeeded, restarted) = recorded(&engine, id).await;
        assert_eq!(succeeded.len(), 5, "{id}");
        assert!(
            succeeded.values().all(|count| *count == 1),
            "{id}: {succeeded:?}"
        );
        assert!(!restarted, "{id}: a recorded step ran again");
    }
    // The kills made some works run more than once (at least once), and
    // no step ran fewer than once.
    assert!(executions.total() > 500, "{}", executions.total());
    // The coordinator, killed several times, counted every completion.
    foundation_core::testkit::wait_until(
        || async {
            coordinator
                .stats()
                .await
                .is_ok_and(|stats| stats.completed_count == 100 && stats.active.is_empty())
        },
        Duration::from_secs(1),
    )
    .await?;
    app.shutdown().await?;
    engine.shutdown().await
}
