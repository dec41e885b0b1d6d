//! The HTTP API on loopback with 64 concurrent connections, against a bare
//! axum handler in the same run: `GET /api/v1/flags` (and its p50/p99
//! latency, printed), and workflow starts per second on a durable file
//! store against a bare axum handler doing one durable `StateStore::put`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::{get, post};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use foundation_persist::{Record, StateStore, Store, StoreOptions};
use jido_system::Application;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const CONNECTIONS: usize = 64;
const TOKEN: &str = "bench-token-0123456789abcdef";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Started {
    id: String,
}

impl Record for Started {
    const TYPE_TAG: &'static str = "bench_started";
    const SCHEMA_VERSION: u32 = 1;
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A bare axum server: the flags list as a static JSON value, and a start
/// that does one durable put.
async fn bare(store: Store) -> String {
    let flags = json!({"flags": (0..6).map(|n| json!({"name": format!("flag_{n}"), "value": "off", "description": "a flag of the same shape"})).collect::<Vec<_>>(), "version": 0});
    let puts: StateStore<Started> = store.state("bench_starts").expect("keyspace");
    let router = axum::Router::new()
        .route(
            "/api/v1/flags",
            get(move || {
                let flags = flags.clone();
                async move { Json(flags) }
            }),
        )
        .route(
            "/api/v1/workflows",
            post(move |Json(_body): Json<Value>| {
                let puts = puts.clone();
                async move {
                    let id = uuid_like();
                    match puts.put(&id, &Started { id: id.clone() }).await {
                        Ok(_) => (axum::http::StatusCode::CREATED, Json(json!({"id": id}))),
                        Err(error) => (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            Json(json!({"error": error.to_string()})),
                        ),
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("w{:016x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// `iterations` requests spread over 64 concurrent connections; the total time.
async fn load(client: &reqwest::Client, base: &str, iterations: u64, start: bool) -> Duration {
    let begin = Instant::now();
    let per_connection = iterations.div_ceil(CONNECTIONS as u64);
    let mut tasks = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let client = client.clone();
        let base = base.to_owned();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_connection {
                let response = if start {
                    client
                        .post(format!("{base}/api/v1/workflows"))
                        .bearer_auth(TOKEN)
                        .json(&json!({"definition": {"name": "bench", "steps": [
                            {"task": {"id": "only", "work": "process_data", "params": {"rows": 10}}}]}}))
                        .send()
                        .await
                } else {
                    client.get(format!("{base}/api/v1/flags")).send().await
                };
                let response = response.expect("an answer");
                assert!(response.status().is_success(), "{}", response.status());
                // The body is read to complete the exchange; its content is not measured.
                let _ = response.bytes().await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("a connection");
    }
    begin.elapsed()
}

async fn percentiles(client: &reqwest::Client, base: &str, label: &str) {
    let sink = Arc::new(std::sync::Mutex::new(Vec::new()));
    let per_connection = 300;
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let client = client.clone();
        let base = base.to_owned();
        let sink = Arc::clone(&sink);
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_connection {
                let sent = Instant::now();
                let response = client
                    .get(format!("{base}/api/v1/flags"))
                    .send()
                    .await
                    .expect("answer");
                // The body is read to complete the exchange; its content is not measured.
                let _ = response.bytes().await;
                sink.lock().expect("lock").push(sent.elapsed());
            }
        }));
    }
    for task in tasks {
        task.await.expect("a connection");
    }
    let mut all = sink.lock().expect("lock").clone();
    all.sort();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    eprintln!(
        "{label}: GET /api/v1/flags, {} requests over {CONNECTIONS} connections: p50 {:?}, p99 {:?}",
        all.len(),
        at(0.50),
        at(0.99)
    );
}

fn http(c: &mut Criterion) {
    let runtime = runtime();
    let directory = tempfile::tempdir().expect("tempdir");
    let (app, base, bare_base) = runtime.block_on(async {
        let store =
            jido_system::app::open_store(&directory.path().join("system"), &StoreOptions::new())
                .expect("store");
        let mut builder = Application::builder();
        builder
            .store(store)
            .listen("127.0.0.1:0".parse().expect("address"))
            .token(TOKEN)
            .write_limit(100_000_000, Duration::from_secs(1));
        let app = builder.start().await.expect("the application starts");
        let address = app
            .listening(Duration::from_secs(30))
            .await
            .expect("listens");
        let flags = app.shared().flags.get().expect("flags");
        flags
            .set(
                "use_v2_coordinator",
                foundation_flags::FlagValue::On,
                foundation_flags::Attribution::new("bench", "durable starts"),
            )
            .await
            .expect("flag");
        let bare_store = Store::open(directory.path().join("bare.redb"), &StoreOptions::new())
            .expect("bare store");
        let bare_base = bare(bare_store).await;
        (app, format!("http://{address}"), bare_base)
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .expect("client");
    runtime.block_on(percentiles(&client, &bare_base, "bare axum"));
    runtime.block_on(percentiles(&client, &base, "jido-system"));

    let mut group = c.benchmark_group("http_get_flags_64_connections");
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare_axum", |b| {
        b.iter_custom(|iterations| runtime.block_on(load(&client, &bare_base, iterations, false)));
    });
    group.bench_function("jido_system", |b| {
        b.iter_custom(|iterations| runtime.block_on(load(&client, &base, iterations, false)));
    });
    group.finish();

    let mut group = c.benchmark_group("http_durable_start_64_connections");
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare_axum_one_put", |b| {
        b.iter_custom(|iterations| runtime.block_on(load(&client, &bare_base, iterations, true)));
    });
    group.bench_function("jido_system_workflow_start", |b| {
        b.iter_custom(|iterations| runtime.block_on(load(&client, &base, iterations, true)));
    });
    group.finish();
    if let Some(prometheus) = &app.shared().prometheus {
        // How many saves of CoordinatorV2's state the starts took (its
        // flush saves every start and end waiting in its mailbox at once).
        let text = prometheus.render();
        let value = |prefix: &str| -> f64 {
            text.lines()
                .filter(|line| line.starts_with(prefix))
                .filter_map(|line| line.split_whitespace().last()?.parse::<f64>().ok())
                .sum()
        };
        let saves = value("jido_agent_saves_total{kind=\"coordinator_v2\"}");
        let started = value("jido_workflow_started_total");
        eprintln!(
            "CoordinatorV2 saves: {saves} for {started} workflow starts ({:.2} per start, ends included)",
            saves / started.max(1.0)
        );
        // Where a start's time goes: the store's commits (both stores of
        // the run share the recorder: their mean duration and operations
        // per commit), the API's own request durations, and
        // CoordinatorV2's actions per start.
        for prefix in [
            "foundation_persist_commit_duration_seconds_sum",
            "foundation_persist_commit_duration_seconds_count",
            "foundation_persist_batch_size_sum",
            "foundation_persist_batch_size_count",
            "jido_system_http_request_duration_seconds_sum",
            "jido_system_http_request_duration_seconds_count",
            "jido_agent_actions_total{kind=\"coordinator_v2\"",
        ] {
            for line in text.lines().filter(|line| line.starts_with(prefix)) {
                eprintln!("{line}");
            }
        }
    }
    runtime.block_on(async {
        // The benchmark is over; a slow stop changes no figure.
        let _ = app.shutdown(Duration::from_secs(30)).await;
    });
}

criterion_group!(benches, http);
criterion_main!(benches);
