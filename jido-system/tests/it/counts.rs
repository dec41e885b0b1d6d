//! `GET /api/v1/counts`: exact counts past the listing's page of 100,
//! CoordinatorV1's in-memory workflows counted too, and the counts cached
//! for at most `counts_max_age` (counted afresh after a restart).

use std::time::Duration;

use jido_workflow::{WorkflowDefinition, WorkflowStatus};
use reqwest::Method;
use serde_json::json;

use crate::support::{Server, body};

/// More than one page of the listing (100 by default).
const STARTED: u64 = 101;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_exact_past_one_page() {
    let server = Server::start(|builder| {
        builder.counts_max_age(Duration::ZERO);
    })
    .await;
    let engine = server.app.shared().engine.get().expect("the engine");
    let definition = counted_definition();
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

fn counted_definition() -> WorkflowDefinition {
    WorkflowDefinition::from_json(
        r#"{"name": "counted", "steps": [{"task": {"id": "only", "work": "process_data", "params": {"rows": 1}}}]}"#,
    )
    .expect("a definition")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_workflows_are_counted_in_memory() {
    let server = Server::start(|builder| {
        builder.counts_max_age(Duration::ZERO);
    })
    .await;
    // use_v2_coordinator is off: the start goes to CoordinatorV1.
    let started = server
        .send(
            Method::POST,
            "/api/v1/workflows",
            Some(json!({"definition": {"name": "legacy", "steps": [
                {"task": {"id": "only", "work": "process_data", "params": {"rows": 1}}}]}})),
        )
        .await;
    assert_eq!(started.status(), 201);
    let started = body(started).await;
    assert_eq!(started["coordinator"], "v1", "{started}");

    let counts = body(server.anonymous(Method::GET, "/api/v1/counts", None).await).await;
    let in_memory = &counts["in_memory_workflows"];
    let v1_total = ["running", "completed", "failed"]
        .iter()
        .map(|status| in_memory[*status].as_u64().expect("a count"))
        .sum::<u64>();
    assert_eq!(v1_total, 1, "the V1 workflow, in flight or ended: {counts}");
    assert_eq!(
        counts["workflows_total"], 1,
        "no durable workflow: {counts}"
    );
    for status in ["running", "completed", "failed"] {
        assert_eq!(
            counts["workflows"][status], in_memory[status],
            "the in-memory workflows are in the totals: {counts}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_cached_and_counted_afresh_after_a_restart() {
    let server = Server::start(|builder| {
        builder.counts_max_age(Duration::from_secs(3600));
    })
    .await;
    let shared = server.app.shared().clone();
    let engine = shared.engine.get().expect("the engine");
    let first = engine
        .start_workflow(&counted_definition(), json!({}))
        .await
        .expect("a start");
    engine
        .wait(&first, Duration::from_secs(30))
        .await
        .expect("the workflow ends");
    let counts = body(server.anonymous(Method::GET, "/api/v1/counts", None).await).await;
    assert_eq!(counts["workflows"]["completed"], 1, "{counts}");

    let second = engine
        .start_workflow(&counted_definition(), json!({}))
        .await
        .expect("a start");
    engine
        .wait(&second, Duration::from_secs(30))
        .await
        .expect("the workflow ends");
    let cached = body(server.anonymous(Method::GET, "/api/v1/counts", None).await).await;
    assert_eq!(
        cached["workflows"]["completed"], 1,
        "within counts_max_age the cached counts are served: {cached}"
    );
    assert!(cached["age_ms"].as_u64().is_some(), "{cached}");

    // A restart of the HTTP server counts afresh from the store.
    let tree = server.app.supervisor();
    tree.terminate_child("http").await.expect("http stops");
    tree.restart_child("http").await.expect("http starts again");
    let fresh = body(server.anonymous(Method::GET, "/api/v1/counts", None).await).await;
    assert_eq!(fresh["workflows"]["completed"], 2, "{fresh}");
    assert_eq!(fresh["workflows_total"], 2, "{fresh}");
    assert_eq!(fresh["age_ms"], 0, "{fresh}");
    server.stop().await;
}
