//! Idempotent starts: a server killed (by the test-only fault hook) right
//! after it reserved an idempotency key and before the start starts the
//! workflow exactly once on the retry after the restart; a key reused with
//! another request is refused with 409.

use std::os::unix::process::ExitStatusExt;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    Server, body, client, plan_workflow, send, serve_command, spawn_command, spawn_server,
};

fn token(data_dir: &std::path::Path) -> String {
    std::fs::read_to_string(data_dir.join("token"))
        .expect("the token file")
        .trim()
        .to_owned()
}

async fn listed(http: &reqwest::Client, base: &str) -> Vec<Value> {
    let listing = body(send(http, base, Method::GET, "/api/v1/workflows", None, None).await).await;
    listing["workflows"].as_array().cloned().expect("a listing")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_between_the_key_and_the_start_starts_the_workflow_once() {
    let directory = tempfile::tempdir().expect("tempdir");
    let data = directory.path().join("data");
    let log = directory.path().join("server.log");
    let mut command = serve_command(&data, &log);
    command.env("JIDO_FAULT_CRASH_AFTER", "idempotency_reservation");
    let mut first = spawn_command(command, &log).await;
    let token = token(&data);
    let http = client();
    for (flag, value) in [
        ("use_v2_coordinator", json!(100)),
        ("use_sync_test_apis", json!("on")),
    ] {
        let response = send(
            &http,
            &first.base,
            Method::PUT,
            &format!("/api/v1/flags/{flag}"),
            Some(json!({"value": value, "reason": "test"})),
            Some(&token),
        )
        .await;
        assert_eq!(response.status(), 200);
    }
    let request = json!({"definition": plan_workflow(0), "metadata": {"order": 7}, "idempotency_key": "order-7"});
    let crashed = http
        .post(format!("{}/api/v1/workflows", first.base))
        .bearer_auth(&token)
        .json(&request)
        .send()
        .await;
    assert!(
        crashed.is_err(),
        "the server died before answering: {crashed:?}"
    );
    let status = first.child.wait().await.expect("the server ends");
    assert_eq!(
        status.signal(),
        Some(6),
        "aborted by the fault hook right after the reservation: {status}"
    );

    let second = spawn_server(&data, &log).await;
    assert!(
        listed(&http, &second.base).await.is_empty(),
        "the crash came before the start"
    );
    let retried = send(
        &http,
        &second.base,
        Method::POST,
        "/api/v1/workflows",
        Some(request.clone()),
        Some(&token),
    )
    .await;
    assert_eq!(
        retried.status(),
        201,
        "the retry started the reserved workflow"
    );
    let retried = body(retried).await;
    let id = retried["id"].as_str().expect("an id").to_owned();
    assert_eq!(retried["existing"], false);
    let again = send(
        &http,
        &second.base,
        Method::POST,
        "/api/v1/workflows",
        Some(request.clone()),
        Some(&token),
    )
    .await;
    assert_eq!(again.status(), 200);
    let again = body(again).await;
    assert_eq!(again["id"], id.as_str());
    assert_eq!(again["existing"], true);

    let done = body(
        send(
            &http,
            &second.base,
            Method::GET,
            &format!("/api/v1/workflows/{id}?wait=true"),
            None,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(done["status"], "completed", "{done}");
    let workflows = listed(&http, &second.base).await;
    assert_eq!(workflows.len(), 1, "exactly one workflow: {workflows:?}");
    assert_eq!(workflows[0]["id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_reused_with_another_request_is_refused_with_409() {
    let server = Server::start(|_| {}).await;
    server.set_flag("use_v2_coordinator", json!(100)).await;
    server.set_flag("use_new_error_handling", json!("on")).await;
    let request =
        json!({"definition": plan_workflow(0), "metadata": {"by": "a"}, "idempotency_key": "k-1"});
    let first = server
        .send(Method::POST, "/api/v1/workflows", Some(request.clone()))
        .await;
    assert_eq!(first.status(), 201);
    let first = body(first).await;

    let other_metadata =
        json!({"definition": plan_workflow(0), "metadata": {"by": "b"}, "idempotency_key": "k-1"});
    let refused = server
        .send(Method::POST, "/api/v1/workflows", Some(other_metadata))
        .await;
    assert_eq!(refused.status(), 409);
    let refused = body(refused).await;
    assert_eq!(refused["name"], "already_exists", "{refused}");
    let other_definition =
        json!({"definition": plan_workflow(5), "metadata": {"by": "a"}, "idempotency_key": "k-1"});
    let refused = server
        .send(Method::POST, "/api/v1/workflows", Some(other_definition))
        .await;
    assert_eq!(refused.status(), 409);

    let same = body(
        server
            .send(Method::POST, "/api/v1/workflows", Some(request))
            .await,
    )
    .await;
    assert_eq!(same["id"], first["id"]);

    // A key on legacy CoordinatorV1 is bound the same way.
    server.set_flag("use_v2_coordinator", json!("off")).await;
    let legacy = json!({"definition": plan_workflow(0), "idempotency_key": "k-2"});
    let first = server
        .send(Method::POST, "/api/v1/workflows", Some(legacy.clone()))
        .await;
    assert_eq!(first.status(), 201);
    let first = body(first).await;
    assert_eq!(first["coordinator"], "v1");
    let again = body(
        server
            .send(Method::POST, "/api/v1/workflows", Some(legacy))
            .await,
    )
    .await;
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["existing"], true);
    let refused = server
        .send(Method::POST, "/api/v1/workflows", Some(json!({"definition": plan_workflow(0), "metadata": {"x": 1}, "idempotency_key": "k-2"})))
        .await;
    assert_eq!(refused.status(), 409);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idempotency_key_header_names_the_workflow_as_the_body_field_does() {
    let server = Server::start(|_| {}).await;
    server.set_flag("use_v2_coordinator", json!(100)).await;
    let start = |key: &'static str, body_key: Option<&'static str>| {
        let mut request = json!({"definition": plan_workflow(0)});
        if let Some(body_key) = body_key {
            request["idempotency_key"] = json!(body_key);
        }
        server
            .http
            .post(format!("{}/api/v1/workflows", server.base))
            .bearer_auth(crate::support::TOKEN)
            .header("Idempotency-Key", key)
            .json(&request)
            .send()
    };
    let first = start("h-1", None).await.expect("an answer");
    assert_eq!(first.status(), 201);
    let first = body(first).await;
    let again = start("h-1", Some("h-1")).await.expect("an answer");
    assert_eq!(again.status(), 200);
    assert_eq!(body(again).await["id"], first["id"]);
    let differ = start("h-1", Some("h-2")).await.expect("an answer");
    assert_eq!(differ.status(), 400, "header and body disagree");
    server.stop().await;
}
