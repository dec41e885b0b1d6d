//! The application tree: killing an early child restarts every child
//! after it (rest_for_one) and the state survives; the plan's workflow
//! completes after its task agent, its workflow process and the
//! coordinator are killed.

use std::time::Duration;

use foundation_core::SupervisorEventKind;
use foundation_core::testkit::EventCollector;
use reqwest::Method;
use serde_json::json;

use crate::support::{Server, body, plan_workflow};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_an_early_child_restarts_everything_after_it_and_state_survives() {
    let server = Server::start(|_| {}).await;
    server.set_flag("use_v2_coordinator", json!(100)).await;
    server.set_flag("use_sync_test_apis", json!("on")).await;
    let started = body(
        server
            .send(
                Method::POST,
                "/api/v1/workflows?wait=true",
                Some(json!({"definition": plan_workflow(0)})),
            )
            .await,
    )
    .await;
    assert_eq!(started["workflow"]["status"], "completed", "{started}");
    let shared = server.app.shared().clone();
    let old_engine = shared
        .engine
        .get()
        .expect("engine")
        .supervisor()
        .process()
        .id();

    let mut events = EventCollector::new(&shared.events);
    let children = server
        .app
        .supervisor()
        .which_children()
        .await
        .expect("children");
    let flags = children
        .iter()
        .find(|child| child.id == "flags")
        .expect("the flags child");
    assert!(flags.process.kill());
    let waited = events
        .wait_for(
            |events| {
                events.iter().any(|event| {
                    &*event.supervisor == "jido_system"
                        && &*event.child == "http"
                        && matches!(event.kind, SupervisorEventKind::ChildRestarted { .. })
                })
            },
            Duration::from_secs(30),
        )
        .await
        .map(|_| ());
    if let Err(error) = waited {
        let seen: Vec<String> = events
            .events()
            .iter()
            .map(|event| format!("{}/{}: {:?}", event.supervisor, event.child, event.kind))
            .collect();
        panic!("every child after flags restarts: {error}; events: {seen:#?}");
    }
    let restarted: Vec<String> = events
        .events()
        .iter()
        .filter(|event| {
            &*event.supervisor == "jido_system"
                && matches!(event.kind, SupervisorEventKind::ChildRestarted { .. })
        })
        .map(|event| event.child.to_string())
        .collect();
    for child in [
        "flags",
        "errors",
        "registry",
        "tasks",
        "signals",
        "agents",
        "workflows",
        "coordinators",
        "deploy",
        "http",
    ] {
        assert!(
            restarted.iter().any(|name| name == child),
            "{child} restarted: {restarted:?}"
        );
    }
    assert!(
        !restarted.iter().any(|name| name == "store"),
        "the store is before the flags"
    );
    let new_engine = shared
        .engine
        .get()
        .expect("engine")
        .supervisor()
        .process()
        .id();
    assert_ne!(old_engine, new_engine, "a new engine");

    // The state survived: the flags, the finished workflow; and the new tree works.
    let flags = body(server.anonymous(Method::GET, "/api/v1/flags", None).await).await;
    let v2 = flags["flags"]
        .as_array()
        .and_then(|flags| {
            flags
                .iter()
                .find(|flag| flag["name"] == "use_v2_coordinator")
        })
        .cloned()
        .unwrap_or_default();
    assert_eq!(v2["value"], "100%");
    let id = started["id"].as_str().expect("id");
    let old = body(
        server
            .anonymous(Method::GET, &format!("/api/v1/workflows/{id}"), None)
            .await,
    )
    .await;
    assert_eq!(old["status"], "completed");
    let again = body(
        server
            .send(
                Method::POST,
                "/api/v1/workflows?wait=true",
                Some(json!({"definition": plan_workflow(0)})),
            )
            .await,
    )
    .await;
    assert_eq!(again["workflow"]["status"], "completed", "{again}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_workflow_completes_after_its_agent_process_and_coordinator_are_killed() {
    let server = Server::start(|_| {}).await;
    server.set_flag("use_v2_coordinator", json!(100)).await;
    let shared = server.app.shared().clone();
    let volatile = shared.task_agent.generation();
    server.set_flag("use_persistent_agents", json!("on")).await;
    // The agents part swaps its tree for persistent agents (the flag was
    // off): wait for the new ones before killing them.
    foundation_core::testkit::wait_for(
        || shared.task_agent.generation() != volatile && shared.task_agent.is_set(),
        std::time::Duration::from_secs(30),
    )
    .await
    .expect("the agents run in persistent mode");
    server.set_flag("use_sync_test_apis", json!("on")).await;
    let started = body(
        server
            .send(
                Method::POST,
                "/api/v1/workflows",
                Some(json!({"definition": plan_workflow(300)})),
            )
            .await,
    )
    .await;
    let id = started["id"].as_str().expect("id").to_owned();
    let task_agent = shared.task_agent.get().expect("task agent");
    assert!(task_agent.actor().kill());
    if let Some(process) = shared.engine.get().expect("engine").process(&id) {
        process.kill();
    }
    for coordinator in &shared.coordinators.get().expect("coordinators").v2 {
        assert!(coordinator.kill());
    }

    let done = server
        .anonymous(
            Method::GET,
            &format!("/api/v1/workflows/{id}?wait=true"),
            None,
        )
        .await;
    assert_eq!(done.status(), 200);
    let done = body(done).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        done["results"].as_object().map(|results| results.len()),
        Some(5)
    );
    let agents = body(server.anonymous(Method::GET, "/api/v1/agents", None).await).await;
    assert_eq!(agents["agents"][0]["alive"], true, "{agents}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_process_restart_inside_the_engine_is_on_the_application_bus() {
    let server = Server::start(|_| {}).await;
    let shared = server.app.shared().clone();
    let engine = shared.engine.get().expect("the engine");
    let mut events = EventCollector::new(&shared.events);
    let definition = jido_workflow::WorkflowDefinition::from_json(
        r#"{"name": "slow", "steps": [{"task": {"id": "only", "work": "process_data", "params": {"delay_ms": 1000}}}]}"#,
    )
    .expect("a definition");
    let id = engine
        .start_workflow(&definition, json!({}))
        .await
        .expect("a start");
    let process = engine.process(&id).expect("the workflow's process");
    assert!(process.kill());
    events
        .wait_for(
            |events| {
                events.iter().any(|event| {
                    &*event.supervisor == "workflows"
                        && matches!(event.kind, SupervisorEventKind::ChildRestarted { .. })
                })
            },
            Duration::from_secs(30),
        )
        .await
        .expect("the engine's restart of the workflow process is on the application's bus");
    let restarts = body(
        server
            .anonymous(Method::GET, "/api/v1/restarts", None)
            .await,
    )
    .await;
    let listed = restarts["restarts"].as_array().expect("a list");
    assert!(
        listed
            .iter()
            .any(|restart| restart["supervisor"] == "workflows" && restart["kind"] == "restarted"),
        "GET /api/v1/restarts lists it: {restarts}"
    );
    let done = engine
        .wait(&id, Duration::from_secs(30))
        .await
        .expect("the workflow ends");
    assert_eq!(done.status, jido_workflow::WorkflowStatus::Completed);
    server.stop().await;
}

/// The HTTP server and the agents' flag watcher are not under the `tasks`
/// child: stopping and restarting that child alone (by hand, through the
/// supervisor) leaves the API answering and a flag change still reaches
/// the agents (the agents part swaps its tree for the new mode).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_the_tasks_child_alone_keeps_the_api_and_the_agents_flag_watcher() {
    let server = Server::start(|_| {}).await;
    let shared = server.app.shared().clone();
    let tree = server.app.supervisor();
    tree.terminate_child("tasks")
        .await
        .expect("the tasks child stops");
    tree.restart_child("tasks")
        .await
        .expect("the tasks child starts again");

    let flags = server.anonymous(Method::GET, "/api/v1/flags", None).await;
    assert_eq!(flags.status(), 200, "the API still answers");

    let before = shared.task_agent.generation();
    server.set_flag("use_persistent_agents", json!("on")).await;
    foundation_core::testkit::wait_for(
        || shared.task_agent.generation() != before && shared.task_agent.is_set(),
        Duration::from_secs(30),
    )
    .await
    .expect("the flag change reaches the agents part, which swaps its tree");
    server.stop().await;
}
