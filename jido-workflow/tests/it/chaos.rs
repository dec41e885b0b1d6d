//! The plan's chaos test, deterministic: 100 concurrent workflows, 20
//! random kills every 100-500 ms of virtual time (seeded), every workflow
//! completes and every step is recorded exactly once.

use std::sync::Arc;
use std::time::Duration;

use foundation_error::Error;
use jido_workflow::{WorkflowEngine, WorkflowStatus};
use serde_json::json;

use crate::support::{
    Executions, KillableExecutor, clock, memory_store, plan, plan_works, recorded,
};

#[tokio::test(start_paused = true)]
async fn a_hundred_workflows_survive_twenty_random_kills() -> Result<(), Error> {
    let mut rng = fastrand::Rng::with_seed(0x0c4a05);
    let clock = clock();
    let executions = Executions::default();
    let executor = KillableExecutor::new();
    let mut builder = WorkflowEngine::builder(
        memory_store(),
        plan_works(&executions, Duration::from_secs(2)),
    );
    builder.clock(Arc::clone(&clock)).executor(executor.clone());
    let engine = builder.start().await?;

    let mut ids = Vec::new();
    for index in 0..100 {
        ids.push(
            engine
                .start_workflow(&plan(), json!({"index": index}))
                .await?,
        );
    }
    let (mut task_kills, mut process_kills) = (0, 0);
    for _ in 0..20 {
        // The chaos schedule runs on virtual time.
        tokio::time::sleep(Duration::from_millis(rng.u64(100..=500))).await;
        if rng.bool() {
            executor.kill_all();
            task_kills += 1;
        } else {
            let id = &ids[rng.usize(..ids.len())];
            if let Some(process) = engine.process(id) {
                process.kill();
            }
            process_kills += 1;
        }
    }
    assert!(task_kills > 0 && process_kills > 0);

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
    engine.shutdown().await
}
