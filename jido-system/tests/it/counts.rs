//! `GET /api/v1/counts`: exact counts past the listing's page of 100.

use std::time::Duration;

use jido_workflow::{WorkflowDefinition, WorkflowStatus};
use reqwest::Method;
use serde_json::json;

use crate::support::{Server, body};

/// More than one page of the listing (100 by default).
const STARTED: u64 = 101;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_exact_past_one_page() {
    let server = Server::start(|_| {}).await;
    let engine = server.app.shared().engine.get().expect("the engine");
    let definition = WorkflowDefinition::from_json(
        r#"{"name": "counted", "steps": [{"task": {"id": "only", "work": "process_data", "params": {"rows": 1}}}]}"#,
    )
    .expect("a definition");
    let mut ids = Vec::new();
    for _ in 0..STARTED {
        ids.push(
            engine
                .start_workflow(&definition, json!({}))
                .await
                .expect("a start"),
        );
    }
    for id in &ids {
        let done = engine
            .wait(id, Duration::from_secs(30))
            .await
            .expect("the workflow ends");
        assert_eq!(done.status, WorkflowStatus::Completed);
    }
    let listed = body(
        server
            .anonymous(Method::GET, "/api/v1/workflows?status=completed", None)
            .await,
    )
    .await;
    assert!(listed["next"].is_string(), "the listing pages: {listed}");

    let counts = server.anonymous(Method::GET, "/api/v1/counts", None).await;
    assert_eq!(counts.status(), 200);
    let counts = body(counts).await;
    assert_eq!(counts["workflows"]["completed"], STARTED, "{counts}");
    assert_eq!(counts["workflows"]["running"], 0, "{counts}");
    assert_eq!(counts["workflows_total"], STARTED, "{counts}");
    assert_eq!(counts["agents"]["task_agent"], 1, "{counts}");
    assert_eq!(counts["agents"]["monitor_agent"], 1, "{counts}");
    assert_eq!(counts["agents_total"], 2, "{counts}");
    server.stop().await;
}
