//! The OpenAPI document is true: every operation it documents is routed
//! (answering neither `route_not_found` nor `method_not_allowed`), and
//! every endpoint of the API is documented.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::json;

use crate::support::{Server, body};

/// The endpoints of the API (issue 13, the dashboard's counts and
/// restarts; `/api/v1/cluster` from issue 15), as (method, path).
const ENDPOINTS: [(&str, &str); 20] = [
    ("get", "/health"),
    ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/flags"),
    ("put", "/api/v1/flags/{name}"),
    ("get", "/api/v1/rollout"),
    ("post", "/api/v1/rollout/advance"),
    ("post", "/api/v1/rollout/rollback"),
    ("post", "/api/v1/rollout/emergency-rollback"),
    ("post", "/api/v1/workflows"),
    ("get", "/api/v1/workflows"),
    ("get", "/api/v1/workflows/{id}"),
    ("post", "/api/v1/workflows/{id}/cancel"),
    ("post", "/api/v1/workflows/{id}/signals/{name}"),
    ("get", "/api/v1/agents"),
    ("get", "/api/v1/counts"),
    ("get", "/api/v1/restarts"),
    ("get", "/api/v1/alerts"),
    ("post", "/api/v1/alerts/{id}/ack"),
    ("get", "/api/v1/cluster"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_routes() {
    let server = Server::start(|_| {}).await;
    server.set_flag("use_new_error_handling", json!("on")).await;
    let document = body(
        server
            .anonymous(Method::GET, "/api/v1/openapi.json", None)
            .await,
    )
    .await;
    let paths = document["paths"].as_object().expect("paths");
    let mut documented = BTreeSet::new();
    for (path, operations) in paths {
        for method in operations.as_object().expect("operations").keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let expected: BTreeSet<(String, String)> = ENDPOINTS
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(documented, expected, "documented operations");

    for (method, path) in &documented {
        let concrete = path
            .replace("{name}", "use_sync_test_apis")
            .replace("{id}", "x");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method");
        let response = server
            .send(method.clone(), &concrete, Some(json!({})))
            .await;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let name = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|error| error["name"].as_str().map(str::to_owned))
            .unwrap_or_default();
        assert!(
            name != "route_not_found" && name != "method_not_allowed",
            "{method} {concrete} is documented but not routed: {status} {text}"
        );
    }
    // Every documented response body names a schema that exists.
    let schemas = document["components"]["schemas"]
        .as_object()
        .expect("schemas");
    for name in [
        "FlagsResponse",
        "RolloutResponse",
        "WorkflowView",
        "StartedResponse",
        "AlertsResponse",
        "ClusterResponse",
    ] {
        assert!(schemas.contains_key(name), "schema {name}");
    }
    server.stop().await;
}
