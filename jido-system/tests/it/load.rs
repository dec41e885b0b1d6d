//! A bounded load test on loopback: 2,000 workflow starts from 64
//! concurrent clients on a durable file store; every one completes and
//! none is lost.

use std::time::Duration;

use foundation_persist::StoreOptions;
use reqwest::Method;
use serde_json::json;

use crate::support::{Server, TOKEN, body, send};

const STARTS: usize = 2_000;
const CLIENTS: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_starts_from_64_clients_all_complete() {
    let directory = tempfile::tempdir().expect("tempdir");
    let store =
        jido_system::app::open_store(directory.path(), &StoreOptions::new()).expect("store");
    let server = Server::start_on(store, |builder| {
        builder.write_limit(1_000_000, Duration::from_secs(1));
    })
    .await;
    server.set_flag("use_v2_coordinator", json!(100)).await;
    server.set_flag("use_sync_test_apis", json!("on")).await;
    let definition = json!({"name": "load", "steps": [
        {"task": {"id": "only", "work": "process_data", "params": {"rows": 10}}}
    ]});
    let run = async {
        let mut clients = Vec::new();
        for client in 0..CLIENTS {
            let http = server.http.clone();
            let base = server.base.clone();
            let definition = definition.clone();
            clients.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for start in (client..STARTS).step_by(CLIENTS) {
                    let response = send(
                        &http,
                        &base,
                        Method::POST,
                        "/api/v1/workflows?wait=true",
                        Some(json!({"definition": definition, "idempotency_key": format!("load-{start}")})),
                        Some(TOKEN),
                    )
                    .await;
                    assert_eq!(response.status(), 201);
                    let answer = body(response).await;
                    assert_eq!(answer["workflow"]["status"], "completed", "{answer}");
                    ids.push(answer["id"].as_str().expect("id").to_owned());
                }
                ids
            }));
        }
        let mut ids = Vec::new();
        for client in clients {
            ids.extend(client.await.expect("a client"));
        }
        ids
    };
    let mut ids = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("the load test finishes within its bound");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), STARTS, "distinct workflows");

    // None lost: the store lists every one of them, completed.
    let mut completed = 0;
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(after) => format!("/api/v1/workflows?status=completed&limit=1000&after={after}"),
            None => "/api/v1/workflows?status=completed&limit=1000".to_owned(),
        };
        let page = body(server.anonymous(Method::GET, &path, None).await).await;
        completed += page["workflows"].as_array().map_or(0, Vec::len);
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(completed, STARTS);
    server.stop().await;
}
