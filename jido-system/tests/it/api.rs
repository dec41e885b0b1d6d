//! The HTTP API's guards and error forms, on a real server on loopback:
//! auth, the body limit, malformed bodies, unknown flags and phases, the
//! write limit, the two error forms, idempotent starts, `?wait=true`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Server, body, plan_workflow};

/// The value of `key` in a portable error's context.
fn context<'a>(error: &'a Value, key: &str) -> Option<&'a str> {
    error["context"][key].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_open_on_loopback_and_writes_need_the_token() {
    let server = Server::start(|_| {}).await;
    server.set_flag("use_new_error_handling", json!("on")).await;

    let flags = server.anonymous(Method::GET, "/api/v1/flags", None).await;
    assert_eq!(flags.status(), 200);
    let flags = body(flags).await;
    assert_eq!(flags["flags"].as_array().map(Vec::len), Some(6));

    let write = json!({"value": "on", "reason": "no token"});
    let anonymous = server
        .anonymous(
            Method::PUT,
            "/api/v1/flags/use_sync_test_apis",
            Some(write.clone()),
        )
        .await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(body(anonymous).await["name"], "authentication_failed");

    let wrong = crate::support::send(
        &server.http,
        &server.base,
        Method::PUT,
        "/api/v1/flags/use_sync_test_apis",
        Some(write),
        Some("not-the-token-at-all-0000"),
    )
    .await;
    assert_eq!(wrong.status(), 401);
    let flags = body(server.anonymous(Method::GET, "/api/v1/flags", None).await).await;
    let sync = flags["flags"]
        .as_array()
        .and_then(|flags| {
            flags
                .iter()
                .find(|flag| flag["name"] == "use_sync_test_apis")
        })
        .cloned()
        .unwrap_or_default();
    assert_eq!(sync["value"], "off", "a refused write changed nothing");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_one_mebibyte_are_refused_with_413() {
    let server = Server::start(|_| {}).await;
    server.set_flag("use_new_error_handling", json!("on")).await;
    let reason = "x".repeat(1024 * 1024 + 10);
    let response = server
        .send(
            Method::PUT,
            "/api/v1/flags/use_sync_test_apis",
            Some(json!({"value": "on", "reason": reason})),
        )
        .await;
    assert_eq!(response.status(), 413);
    assert_eq!(body(response).await["name"], "payload_too_large");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_and_unknown_fields_are_400_naming_the_field() {
    let server = Server::start(|_| {}).await;
    server.set_flag("use_new_error_handling", json!("on")).await;
    let path = "/api/v1/flags/use_sync_test_apis";

    let unknown = server
        .send(
            Method::PUT,
            path,
            Some(json!({"value": "on", "reasn": "typo"})),
        )
        .await;
    assert_eq!(unknown.status(), 400);
    let unknown = body(unknown).await;
    assert_eq!(context(&unknown, "field"), Some("reasn"), "{unknown}");

    let missing = server
        .send(Method::PUT, path, Some(json!({"value": "on"})))
        .await;
    assert_eq!(missing.status(), 400);
    assert_eq!(context(&body(missing).await, "field"), Some("reason"));

    let bad_value = server
        .send(
            Method::PUT,
            path,
            Some(json!({"value": "maybe", "reason": "r"})),
        )
        .await;
    assert_eq!(bad_value.status(), 400);
    assert_eq!(context(&body(bad_value).await, "field"), Some("value"));

    let malformed = server
        .http
        .put(format!("{}{path}", server.base))
        .bearer_auth(crate::support::TOKEN)
        .body("{\"value\": ")
        .send()
        .await
        .expect("answer");
    assert_eq!(malformed.status(), 400);
    assert_eq!(body(malformed).await["name"], "format_error");

    let workflow = server
        .send(
            Method::POST,
            "/api/v1/workflows",
            Some(json!({"definition": {"name": "w", "steps": []}, "metadata": {}, "extra": 1})),
        )
        .await;
    assert_eq!(workflow.status(), 400);
    assert_eq!(context(&body(workflow).await, "field"), Some("extra"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_flags_routes_and_phases_are_refused() {
    let server = Server::start(|_| {}).await;
    server.set_flag("use_new_error_handling", json!("on")).await;
    let unknown = server
        .send(
            Method::PUT,
            "/api/v1/flags/no_such_flag",
            Some(json!({"value": "on", "reason": "r"})),
        )
        .await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(body(unknown).await["name"], "flag_not_found");

    let route = server.anonymous(Method::GET, "/api/v1/nothing", None).await;
    assert_eq!(route.status(), 404);
    assert_eq!(body(route).await["name"], "route_not_found");

    // Phase 0 is the baseline: there is nothing to roll back to.
    let rollback = server
        .send(
            Method::POST,
            "/api/v1/rollout/rollback",
            Some(json!({"reason": "r"})),
        )
        .await;
    assert!(rollback.status().is_client_error(), "{}", rollback.status());
    assert_ne!(rollback.status(), 404);

    // Past the last phase there is nothing to advance to.
    for _ in 0..5 {
        let advance = server
            .send(
                Method::POST,
                "/api/v1/rollout/advance",
                Some(json!({"reason": "walk", "force": true})),
            )
            .await;
        assert_eq!(advance.status(), 200);
    }
    let rollout = body(server.anonymous(Method::GET, "/api/v1/rollout", None).await).await;
    assert_eq!(rollout["phase"], 5);
    assert_eq!(rollout["history"].as_array().map(Vec::len), Some(5));
    let beyond = server
        .send(
            Method::POST,
            "/api/v1/rollout/advance",
            Some(json!({"reason": "beyond", "force": true})),
        )
        .await;
    assert!(beyond.status().is_client_error(), "{}", beyond.status());
    let emergency = server
        .send(
            Method::POST,
            "/api/v1/rollout/emergency-rollback",
            Some(json!({"reason": "stop"})),
        )
        .await;
    assert_eq!(emergency.status(), 200);
    assert_eq!(body(emergency).await["phase"], 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_over_the_limit_get_429_with_retry_after() {
    let server = Server::start(|builder| {
        builder.write_limit(2, std::time::Duration::from_secs(600));
    })
    .await;
    for _ in 0..2 {
        server.set_flag("use_sync_test_apis", json!("on")).await;
    }
    let limited = server
        .send(
            Method::PUT,
            "/api/v1/flags/use_sync_test_apis",
            Some(json!({"value": "off", "reason": "third"})),
        )
        .await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("a Retry-After header in seconds");
    assert!((1..=600).contains(&retry_after), "{retry_after}");
    // Reads are not limited.
    assert_eq!(
        server
            .anonymous(Method::GET, "/api/v1/flags", None)
            .await
            .status(),
        200
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_take_the_form_use_new_error_handling_selects() {
    let server = Server::start(|_| {}).await;
    let legacy = body(
        server
            .anonymous(Method::GET, "/api/v1/workflows/none", None)
            .await,
    )
    .await;
    assert!(legacy["error"].is_string(), "{legacy}");
    assert!(legacy.get("code").is_none());

    server.set_flag("use_new_error_handling", json!("on")).await;
    let portable = server
        .anonymous(Method::GET, "/api/v1/workflows/none", None)
        .await;
    assert_eq!(portable.status(), 404);
    let portable = body(portable).await;
    assert_eq!(portable["name"], "data_not_found");
    assert_eq!(portable["category"], "validation");
    assert!(portable["code"].is_number());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_returns_the_same_id_and_wait_needs_its_flag() {
    let server = Server::start(|_| {}).await;
    server.set_flag("use_v2_coordinator", json!(100)).await;
    let request = json!({"definition": plan_workflow(0), "metadata": {"by": "test"}, "idempotency_key": "order-42"});

    let refused = server
        .send(
            Method::POST,
            "/api/v1/workflows?wait=true",
            Some(request.clone()),
        )
        .await;
    assert_eq!(refused.status(), 422, "wait without use_sync_test_apis");

    let first = server
        .send(Method::POST, "/api/v1/workflows", Some(request.clone()))
        .await;
    assert_eq!(first.status(), 201);
    let first = body(first).await;
    assert_eq!(first["coordinator"], "v2");
    let again = server
        .send(Method::POST, "/api/v1/workflows", Some(request))
        .await;
    assert_eq!(again.status(), 200);
    let again = body(again).await;
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["existing"], true);

    server.set_flag("use_sync_test_apis", json!("on")).await;
    let id = first["id"].as_str().expect("an id");
    let done = server
        .anonymous(
            Method::GET,
            &format!("/api/v1/workflows/{id}?wait=true"),
            None,
        )
        .await;
    assert_eq!(done.status(), 200);
    let done = body(done).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(
        done["results"].as_object().map(|results| results.len()),
        Some(5)
    );
    // task4 failed once (fail_times 1) and was retried.
    assert_eq!(done["results"]["task4"]["executions"], 2);
    let listed = body(
        server
            .anonymous(Method::GET, "/api/v1/workflows?status=completed", None)
            .await,
    )
    .await;
    assert_eq!(listed["workflows"].as_array().map(Vec::len), Some(1));
    server.stop().await;
}

/// The Prometheus counter of application signals sent in `mode`.
async fn signals_sent(server: &Server, mode: &str) -> f64 {
    let text = server
        .anonymous(Method::GET, "/metrics", None)
        .await
        .text()
        .await
        .expect("metrics");
    text.lines()
        .filter(|line| {
            line.starts_with("jido_system_signals_sent_total")
                && line.contains(&format!("mode=\"{mode}\""))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_reach_the_workflow_acknowledged_under_use_reliable_messaging() {
    let server = Server::start(|_| {}).await;
    server.set_flag("use_v2_coordinator", json!(100)).await;
    server.set_flag("use_sync_test_apis", json!("on")).await;
    let definition = json!({"name": "approval", "steps": [
        {"task": {"id": "first", "work": "await_signal", "params": {"signal": "go"}}},
        {"task": {"id": "second", "work": "await_signal", "params": {"signal": "again"}}}
    ]});
    let started = body(
        server
            .send(
                Method::POST,
                "/api/v1/workflows",
                Some(json!({"definition": definition})),
            )
            .await,
    )
    .await;
    let id = started["id"].as_str().expect("id").to_owned();

    let before = signals_sent(&server, "fire_and_forget").await;
    let fire = server
        .send(
            Method::POST,
            &format!("/api/v1/workflows/{id}/signals/go"),
            Some(json!({"approved_by": "test"})),
        )
        .await;
    assert_eq!(fire.status(), 200);
    assert_eq!(signals_sent(&server, "fire_and_forget").await, before + 1.0);

    server.set_flag("use_reliable_messaging", json!("on")).await;
    let acknowledged_before = signals_sent(&server, "acknowledged").await;
    let reliable = server
        .send(
            Method::POST,
            &format!("/api/v1/workflows/{id}/signals/again"),
            Some(json!({"approved_by": "test"})),
        )
        .await;
    assert_eq!(reliable.status(), 200);
    let reliable = body(reliable).await;
    assert_eq!(
        reliable["delivered"], 1,
        "the event log acknowledged: {reliable}"
    );
    assert_eq!(
        signals_sent(&server, "acknowledged").await,
        acknowledged_before + 1.0
    );

    let done = body(
        server
            .anonymous(
                Method::GET,
                &format!("/api/v1/workflows/{id}?wait=true"),
                None,
            )
            .await,
    )
    .await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["results"]["first"]["approved_by"], "test");
    server.stop().await;
}
