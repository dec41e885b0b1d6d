//! Several nodes on one store: `GET /api/v1/cluster` in process, and real
//! `jido-system serve --store postgres://...` processes on one throwaway
//! PostgreSQL (foundation-persist-postgres' test harness): three nodes
//! share flags, the rollout phase and membership, and read each other's
//! workflows; a node killed with SIGKILL has its workflow finished by
//! another and leaves the live nodes within its lease time; and the
//! database restarted while three nodes take workflow starts loses no
//! acknowledged start, runs no recorded step twice, and every node
//! reconnects. A node takes a `verify-full` TLS URL (the harness's cluster
//! with `ssl = on`) and refuses an unreadable `sslrootcert` at start.
//!
//! Without PostgreSQL the process tests say loudly that they were skipped
//! (or fail, with `FOUNDATION_REQUIRE_POSTGRES=1`). Every wait polls the
//! API with a deadline; nothing sleeps.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use foundation_persist_postgres::testing::TestCluster;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::{Server, body, client, send};

/// The three nodes of the process tests.
const NODE_IDS: [&str; 3] = ["node-a", "node-b", "node-c"];

/// The bound on every wait for something to show on another node.
const PROPAGATION: Duration = Duration::from_secs(15);
/// How often a wait polls the API.
const POLL: Duration = Duration::from_millis(25);

/// Polls `check` every [`POLL`] until it returns `Some`, at most
/// `deadline`; returns the value and how long it took.
async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    // The one clock (real time here: these tests drive real processes).
    let clock = foundation_error::clock::system();
    let started = clock.elapsed();
    let mut ticks = tokio::time::interval(POLL);
    loop {
        ticks.tick().await;
        if let Some(value) = check().await {
            return (value, clock.elapsed().saturating_sub(started));
        }
        assert!(
            clock.elapsed().saturating_sub(started) < deadline,
            "{what} did not happen within {deadline:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_endpoint_lists_this_node_and_pages_the_workflow_leases() {
    let server = Server::start(|builder| {
        builder.node_id("api-node");
    })
    .await;
    let leases = server.app.store().leases();
    for id in ["w1", "w2", "w3"] {
        leases
            .acquire(
                &format!("workflow/{id}"),
                "api-node",
                Duration::from_secs(60),
            )
            .await
            .expect("a workflow lease");
    }
    let (cluster, _) = eventually("the node lease", PROPAGATION, || async {
        let cluster = body(
            server
                .anonymous(Method::GET, "/api/v1/cluster?limit=2", None)
                .await,
        )
        .await;
        let listed = cluster["nodes"]
            .as_array()
            .is_some_and(|nodes| nodes.iter().any(|node| node["id"] == "api-node"));
        listed.then_some(cluster)
    })
    .await;
    assert_eq!(cluster["node"], "api-node", "{cluster}");
    assert_eq!(cluster["store"], "memory", "{cluster}");
    let node = &cluster["nodes"][0];
    assert_eq!(
        (node["this_node"].as_bool(), node["live"].as_bool()),
        (Some(true), Some(true)),
        "{cluster}"
    );
    let page: Vec<&str> = cluster["leases"]
        .as_array()
        .expect("leases")
        .iter()
        .map(|lease| lease["workflow"].as_str().expect("a workflow id"))
        .collect();
    assert_eq!(page, ["w1", "w2"], "{cluster}");
    assert_eq!(cluster["leases"][0]["owner"], "api-node");
    assert_eq!(cluster["next"], "workflow/w2");
    let rest = body(
        server
            .anonymous(
                Method::GET,
                "/api/v1/cluster?limit=2&after=workflow/w2",
                None,
            )
            .await,
    )
    .await;
    assert_eq!(rest["leases"][0]["workflow"], "w3", "{rest}");
    assert_eq!(rest["next"], Value::Null, "{rest}");
    let refused = server
        .anonymous(Method::GET, "/api/v1/cluster?limit=0", None)
        .await;
    assert_eq!(refused.status(), 400);
    server.stop().await;
}

/// One `jido-system serve` process on a shared store.
struct Node {
    child: Child,
    base: String,
    /// The API token, read from the shared token file.
    token: String,
    /// The node's log (its stderr).
    log: std::path::PathBuf,
}

/// Starts a node named `id` on the PostgreSQL store `url`; returns once
/// it listens.
async fn spawn_node(url: &str, id: &str, directory: &Path) -> Node {
    spawn_node_with(url, id, directory, &[]).await
}

/// As [`spawn_node`], with extra `serve` arguments.
async fn spawn_node_with(url: &str, id: &str, directory: &Path, extra: &[&str]) -> Node {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(directory.join(format!("{id}.log")))
        .expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_jido-system"))
        .arg("serve")
        .arg("--store")
        .arg(url)
        .arg("--node-id")
        .arg(id)
        .arg("--data-dir")
        .arg(directory.join(id))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .args(extra)
        // One token file for every node: the first creates it (0600), the
        // others read it.
        .arg("--token-file")
        .arg(directory.join("shared-token"))
        .env_remove("JIDO_TOKEN")
        .env_remove("JIDO_STORE")
        .env_remove("JIDO_NODE_ID")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.expect("stdout") {
            if line.contains("listening on http://") {
                return line;
            }
        }
        let log = std::fs::read_to_string(directory.join(format!("{id}.log"))).unwrap_or_default();
        panic!("node {id} ended before listening: {log}");
    })
    .await
    .expect("the node listens in time");
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("an address")
        .to_owned();
    let token = std::fs::read_to_string(directory.join("shared-token"))
        .expect("the shared token file")
        .trim()
        .to_owned();
    Node {
        child,
        base: format!("http://{address}"),
        token,
        log: directory.join(format!("{id}.log")),
    }
}

impl Node {
    async fn get(&self, path: &str) -> Value {
        let response = send(
            &client(),
            &self.base,
            Method::GET,
            path,
            None,
            Some(&self.token),
        )
        .await;
        body(response).await
    }

    async fn write(&self, method: Method, path: &str, request: Value) -> Value {
        let response = send(
            &client(),
            &self.base,
            method,
            path,
            Some(request),
            Some(&self.token),
        )
        .await;
        let status = response.status();
        let answer = body(response).await;
        assert!(status.is_success(), "{path}: {status} {answer}");
        answer
    }

    async fn flag(&self, name: &str) -> Option<String> {
        let flags = self.get("/api/v1/flags").await;
        flags["flags"].as_array()?.iter().find_map(|flag| {
            (flag["name"] == name).then(|| flag["value"].as_str().unwrap_or_default().to_owned())
        })
    }

    async fn phase(&self) -> Option<u64> {
        self.get("/api/v1/rollout").await["phase"].as_u64()
    }

    /// The ids of the nodes this node lists as live, sorted (the store
    /// lists leases by name), or `None` when the listing failed.
    async fn live_nodes(&self) -> Option<Vec<String>> {
        let response = send(
            &client(),
            &self.base,
            Method::GET,
            "/api/v1/cluster",
            None,
            Some(&self.token),
        )
        .await;
        if !response.status().is_success() {
            return None;
        }
        let cluster = body(response).await;
        if cluster["store"] != "postgres" {
            return None;
        }
        Some(
            cluster["nodes"]
                .as_array()?
                .iter()
                .filter(|node| node["live"] == true)
                .filter_map(|node| node["id"].as_str().map(str::to_owned))
                .collect(),
        )
    }

    /// The ids of the live nodes this node lists whose lease expires at
    /// or after `at` (to the millisecond the API shows), sorted.
    async fn nodes_expiring_after(&self, at: SystemTime) -> Option<Vec<String>> {
        let cluster = self.get("/api/v1/cluster").await;
        let mut ids = Vec::new();
        for node in cluster["nodes"].as_array()? {
            let expires_at = humantime::parse_rfc3339(node["expires_at"].as_str()?).ok()?;
            if node["live"] == true && expires_at + Duration::from_millis(1) > at {
                ids.push(node["id"].as_str()?.to_owned());
            }
        }
        Some(ids)
    }

    /// Whether `/health` answers 200 with `ready: true`.
    async fn is_ready(&self) -> bool {
        let response = send(&client(), &self.base, Method::GET, "/health", None, None).await;
        response.status() == 200 && body(response).await["ready"] == true
    }

    /// The last lines of the node's log, for a failure's message.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().rev().take(40).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    async fn stop(mut self) {
        self.child.start_kill().expect("stop the node");
        self.child.wait().await.expect("the node ends");
    }
}

/// Waits until every node lists exactly `ids` as the live nodes.
async fn wait_for_membership(nodes: &[&Node], ids: &[&str], what: &str) -> Duration {
    let (_, took) = eventually(what, PROPAGATION, || async {
        for node in nodes {
            if node.live_nodes().await? != ids {
                return None;
            }
        }
        Some(())
    })
    .await;
    took
}

/// Waits until every node serves `flag` with `value`; returns how long.
async fn wait_for_flag(nodes: &[&Node], flag: &str, value: &str) -> Duration {
    let (_, took) = eventually(
        &format!("{flag} = {value} on every node"),
        PROPAGATION,
        || async {
            for node in nodes {
                if node.flag(flag).await.as_deref() != Some(value) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    took
}

/// Sets the flags that make starts durable (CoordinatorV2, journaled)
/// and errors classified, on `on`, and waits until every node serves them.
async fn durable_classified_starts(on: &Node, nodes: &[&Node]) {
    on.write(
        Method::PUT,
        "/api/v1/flags/use_v2_coordinator",
        json!({"value": 100, "reason": "durable workflows"}),
    )
    .await;
    on.write(
        Method::PUT,
        "/api/v1/flags/use_new_error_handling",
        json!({"value": "on", "reason": "classified errors"}),
    )
    .await;
    wait_for_flag(nodes, "use_v2_coordinator", "100%").await;
    wait_for_flag(nodes, "use_new_error_handling", "on").await;
}

/// The path of each task of [`plan_workflow`](crate::support::plan_workflow)
/// in the execution counts' keys.
const TASK_PATHS: [(&str, &str); 5] = [
    ("task1", "steps[0].parallel[0]"),
    ("task2", "steps[0].parallel[1]"),
    ("task3", "steps[0].parallel[2]"),
    ("task4", "steps[1].sequential[0]"),
    ("task5", "steps[1].sequential[1]"),
];

/// Checks that no recorded step of the completed workflow `done` ran
/// again: each step's stored run count (the demo works count every run)
/// is the count its recorded result saw.
async fn assert_no_step_ran_again(store: &foundation_persist::Store, done: &Value) {
    let id = done["id"].as_str().expect("a workflow id");
    let results = done["results"].as_object().expect("results");
    assert_eq!(results.len(), 5, "{done}");
    let counts = jido_system::works::execution_counts(store).expect("keyspace");
    let stored = counts
        .list(&format!("{id}/"), None, 100)
        .await
        .expect("the run counts");
    for (task, result) in results {
        let recorded = result["executions"].as_u64().expect("executions");
        let path = TASK_PATHS
            .iter()
            .find(|(name, _)| name == task)
            .map(|(_, path)| format!("{id}/{path}"))
            .unwrap_or_else(|| panic!("an unknown task {task}"));
        let runs = stored
            .iter()
            .find(|entry| entry.key == path)
            .map(|entry| entry.value.count)
            .unwrap_or_else(|| panic!("no run count for {id} {task}: {stored:?}"));
        assert_eq!(
            runs, recorded,
            "{id}: {task} ran again after its result was recorded"
        );
    }
}

/// The harness's database as a `postgres://` URL over TCP on loopback.
async fn shared_database(cluster: &TestCluster) -> String {
    let libpq = cluster.create_database().await.expect("a fresh database");
    let database = libpq
        .split_whitespace()
        .find_map(|part| part.strip_prefix("dbname="))
        .expect("the harness names the database");
    format!(
        "postgres://postgres@127.0.0.1:{}/{database}",
        cluster.port()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_one_postgres_share_flags_rollout_membership_and_workflows() {
    let Some(cluster) = TestCluster::shared().expect("the PostgreSQL test cluster starts") else {
        return;
    };
    let url = shared_database(cluster).await;
    let directory = tempfile::tempdir().expect("tempdir");
    let a = spawn_node(&url, "node-a", directory.path()).await;
    let b = spawn_node(&url, "node-b", directory.path()).await;
    let c = spawn_node(&url, "node-c", directory.path()).await;
    let nodes = [&a, &b, &c];

    assert!(
        a.token == b.token && b.token == c.token,
        "the nodes share one token file"
    );
    wait_for_membership(&nodes, &NODE_IDS, "every node lists the three").await;

    // A flag set on A is served by B and C.
    a.write(
        Method::PUT,
        "/api/v1/flags/use_v2_coordinator",
        json!({"value": 40, "reason": "shared flags test"}),
    )
    .await;
    let flag_delay = wait_for_flag(&[&b, &c], "use_v2_coordinator", "40%").await;
    eprintln!("a flag set on node A was served by nodes B and C after {flag_delay:?}");

    // A forced advance then a rollback on A: B and C follow both, and the
    // history is recorded once.
    a.write(
        Method::POST,
        "/api/v1/rollout/advance",
        json!({"reason": "into phase 1", "force": true}),
    )
    .await;
    eventually("phase 1 on nodes B and C", PROPAGATION, || async {
        (b.phase().await == Some(1) && c.phase().await == Some(1)).then_some(())
    })
    .await;
    a.write(
        Method::POST,
        "/api/v1/rollout/rollback",
        json!({"reason": "rolled back on node A"}),
    )
    .await;
    let (_, rollback_delay) = eventually("the rollback on nodes B and C", PROPAGATION, || async {
        (b.phase().await == Some(0) && c.phase().await == Some(0)).then_some(())
    })
    .await;
    eprintln!("a rollback on node A showed on nodes B and C after {rollback_delay:?}");
    for node in [&b, &c] {
        let history = node.get("/api/v1/rollout").await["history"].clone();
        let mut kinds: Vec<(u64, &str)> = history
            .as_array()
            .expect("a history")
            .iter()
            .filter_map(|record| Some((record["id"].as_u64()?, record["kind"].as_str()?)))
            .collect();
        kinds.sort_unstable();
        assert_eq!(
            kinds,
            [(1, "forced_advance"), (2, "manual")],
            "each transition recorded once: {history}"
        );
    }
    // B and C serve the phase's flags: phase 0 turns every rollout flag off.
    wait_for_flag(&[&b, &c], "use_v2_coordinator", "off").await;

    // A durable workflow (CoordinatorV2, journaled) started on A
    // completes; C reads it from the store.
    a.write(
        Method::PUT,
        "/api/v1/flags/use_v2_coordinator",
        json!({"value": 100, "reason": "durable workflows"}),
    )
    .await;
    let started = a
        .write(
            Method::POST,
            "/api/v1/workflows",
            json!({"definition": crate::support::plan_workflow(10)}),
        )
        .await;
    let id = started["id"].as_str().expect("an id").to_owned();
    let (done, _) = eventually(
        "the workflow completes",
        Duration::from_secs(60),
        || async {
            let view = c.get(&format!("/api/v1/workflows/{id}")).await;
            (view["status"] == "completed").then_some(view)
        },
    )
    .await;
    assert_eq!(
        done["results"].as_object().map(|results| results.len()),
        Some(5),
        "{done}"
    );

    for node in [a, b, c] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_nodes_workflow_finishes_on_another_node_and_it_leaves_the_live_nodes() {
    let Some(cluster) = TestCluster::shared().expect("the PostgreSQL test cluster starts") else {
        return;
    };
    let url = shared_database(cluster).await;
    let directory = tempfile::tempdir().expect("tempdir");
    let lease_ttl = Duration::from_secs(2);
    let ttl = ["--lease-ttl", "2s"];
    let mut a = spawn_node_with(&url, "node-a", directory.path(), &ttl).await;
    let b = spawn_node_with(&url, "node-b", directory.path(), &ttl).await;
    let c = spawn_node_with(&url, "node-c", directory.path(), &ttl).await;
    wait_for_membership(&[&a, &b, &c], &NODE_IDS, "every node lists the three").await;
    let cluster_view = b.get("/api/v1/cluster").await;
    assert_eq!(cluster_view["node_lease_ttl_ms"], 2000, "{cluster_view}");
    a.write(
        Method::PUT,
        "/api/v1/flags/use_v2_coordinator",
        json!({"value": 100, "reason": "durable workflows"}),
    )
    .await;
    let started = a
        .write(
            Method::POST,
            "/api/v1/workflows",
            json!({"definition": crate::support::plan_workflow(1500)}),
        )
        .await;
    let id = started["id"].as_str().expect("an id").to_owned();
    // A holds the workflow's lease while it runs.
    eventually("node A holds the workflow's lease", PROPAGATION, || async {
        let cluster = b.get("/api/v1/cluster").await;
        cluster["leases"]
            .as_array()?
            .iter()
            .any(|lease| lease["workflow"] == id.as_str() && lease["owner"] == "node-a")
            .then_some(())
    })
    .await;
    let running = a.get(&format!("/api/v1/workflows/{id}")).await;
    assert_eq!(running["status"], "running", "killed mid-run: {running}");

    a.child.start_kill().expect("SIGKILL");
    a.child.wait().await.expect("node A ends");
    // Node A's membership lapses with its lease: its last renewal was
    // before the kill, so its lease expires within one lease time of it.
    // The bound allows as much again for the API round trips of a loaded
    // machine (a fixed 9 s membership lease would fail it).
    let (_, left) = eventually("node A no longer listed as live", PROPAGATION, || async {
        let (b_live, c_live) = (b.live_nodes().await?, c.live_nodes().await?);
        let expected = ["node-b", "node-c"];
        (b_live == expected && c_live == expected).then_some(())
    })
    .await;
    eprintln!("node A left the live nodes {left:?} after it was killed (lease ttl 2 s)");
    assert!(
        left < lease_ttl * 2,
        "node A was listed as live {left:?} after its death, lease ttl {lease_ttl:?}"
    );
    let (done, failover) = eventually(
        "the workflow completes on node B or C",
        Duration::from_secs(60),
        || async {
            let view = b.get(&format!("/api/v1/workflows/{id}")).await;
            (view["status"] == "completed").then_some(view)
        },
    )
    .await;
    eprintln!(
        "node A's workflow completed on another node {:?} after A was killed (lease ttl 2 s)",
        left + failover
    );
    let cluster_view = c.get("/api/v1/cluster").await;
    assert!(
        cluster_view["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .any(|node| node["id"] == "node-a" && node["live"] == false),
        "node A is listed as expired: {cluster_view}"
    );

    let store = foundation_persist_postgres::open_postgres(
        &url,
        &foundation_persist_postgres::PostgresOptions::new(),
    )
    .await
    .expect("the store opens");
    assert_no_step_ran_again(&store, &done).await;
    store.close().await.expect("close");
    for node in [b, c] {
        node.stop().await;
    }
}

/// How many acknowledged starts each node takes in the restart test.
const STARTS_PER_NODE: usize = 40;
/// The bound on one start request: a start must be answered (201 or a
/// classified 503), never hang.
const START_BOUND: Duration = Duration::from_secs(30);

/// What one node's start loop saw.
#[derive(Debug, Default)]
struct StartLoad {
    /// The ids of the acknowledged (201) starts.
    acknowledged: Vec<String>,
    /// The error names of the refused (503) starts.
    refused: Vec<String>,
    /// The longest any start took to be answered.
    slowest: Duration,
}

/// Sends workflow starts to `node` one after another, paced every 10 ms,
/// until [`STARTS_PER_NODE`] were acknowledged; counts each in `acks`.
/// A refusal must be a 503 with a classified infrastructure error; any
/// other answer, or none within [`START_BOUND`], fails the test.
async fn start_load(node: Arc<Node>, acks: Arc<AtomicUsize>) -> StartLoad {
    let http = reqwest::Client::builder()
        .timeout(START_BOUND)
        .build()
        .expect("HTTP client");
    let mut load = StartLoad::default();
    let mut pace = tokio::time::interval(Duration::from_millis(10));
    let deadline = Duration::from_secs(180);
    let clock = foundation_error::clock::system();
    let began = clock.elapsed();
    while load.acknowledged.len() < STARTS_PER_NODE {
        pace.tick().await;
        assert!(
            clock.elapsed().saturating_sub(began) < deadline,
            "{}: only {} of {STARTS_PER_NODE} starts acknowledged within {deadline:?} ({} refused)",
            node.base,
            load.acknowledged.len(),
            load.refused.len()
        );
        let sent = clock.elapsed();
        let response = http
            .post(format!("{}/api/v1/workflows", node.base))
            .bearer_auth(&node.token)
            .json(&json!({"definition": crate::support::plan_workflow(50)}))
            .send()
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "a start was not answered within {START_BOUND:?}: {error}\n{}",
                    node.log_tail()
                )
            });
        let status = response.status();
        let answer = body(response).await;
        load.slowest = load.slowest.max(clock.elapsed().saturating_sub(sent));
        match status.as_u16() {
            201 => {
                let id = answer["id"].as_str().expect("an id").to_owned();
                load.acknowledged.push(id);
                acks.fetch_add(1, Ordering::Relaxed);
            }
            503 => {
                assert_eq!(
                    answer["category"], "infrastructure",
                    "a refused start is a classified, retryable error: {answer}"
                );
                load.refused
                    .push(answer["name"].as_str().unwrap_or_default().to_owned());
            }
            _ => panic!("a start answered {status}: {answer}\n{}", node.log_tail()),
        }
    }
    load
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_restarted_under_load_loses_no_acknowledged_start_and_every_node_reconnects() {
    // A cluster of its own: the restart would disturb the other tests.
    let Some(cluster) = TestCluster::start().expect("a PostgreSQL cluster starts") else {
        return;
    };
    let cluster = Arc::new(cluster);
    let url = shared_database(&cluster).await;
    let directory = tempfile::tempdir().expect("tempdir");
    let lease_ttl = Duration::from_secs(2);
    let ttl = ["--lease-ttl", "2s"];
    let a = Arc::new(spawn_node_with(&url, "node-a", directory.path(), &ttl).await);
    let b = Arc::new(spawn_node_with(&url, "node-b", directory.path(), &ttl).await);
    let c = Arc::new(spawn_node_with(&url, "node-c", directory.path(), &ttl).await);
    let nodes = [&*a, &*b, &*c];
    wait_for_membership(&nodes, &NODE_IDS, "every node lists the three").await;
    durable_classified_starts(&a, &nodes).await;

    // Starts go to all three nodes; the database restarts once a third
    // of them were acknowledged.
    let acks = Arc::new(AtomicUsize::new(0));
    let loads: Vec<_> = [&a, &b, &c]
        .into_iter()
        .map(|node| tokio::spawn(start_load(Arc::clone(node), Arc::clone(&acks))))
        .collect();
    eventually(
        "a third of the starts acknowledged",
        Duration::from_secs(120),
        || async { (acks.load(Ordering::Relaxed) >= STARTS_PER_NODE).then_some(()) },
    )
    .await;
    let acknowledged_before = acks.load(Ordering::Relaxed);
    let restarting = Arc::clone(&cluster);
    tokio::time::timeout(
        Duration::from_secs(90),
        tokio::task::spawn_blocking(move || restarting.restart()),
    )
    .await
    .expect("the restart ends in time")
    .expect("joins")
    .expect("the server restarts");
    // Read after the restart returned: a lease renewed after this expires
    // at or after it plus the lease time (the database's clock is this
    // machine's); one renewed before the restart expires earlier.
    let restarted_at = foundation_error::clock::system().wall();
    eprintln!("the database restarted after {acknowledged_before} acknowledged starts");

    // Every node reconnects: ready, and listing the three as live with a
    // lease each renewed through the restarted database.
    let (_, reconnected) = eventually(
        "every node ready and listing the three, renewed after the restart",
        Duration::from_secs(60),
        || async {
            for node in nodes {
                if !node.is_ready().await
                    || node.nodes_expiring_after(restarted_at + lease_ttl).await? != NODE_IDS
                {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    eprintln!(
        "every node was ready and listed the three, each renewed, {reconnected:?} after the restart"
    );

    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    let mut slowest = Duration::ZERO;
    for load in loads {
        let load = load.await.expect("the start loop ends");
        acknowledged.extend(load.acknowledged);
        refused.extend(load.refused);
        slowest = slowest.max(load.slowest);
    }
    let names: BTreeSet<&str> = refused.iter().map(String::as_str).collect();
    eprintln!(
        "{} starts acknowledged, {} refused with 503 ({names:?}); the slowest answer took {slowest:?}",
        acknowledged.len(),
        refused.len()
    );
    assert_eq!(acknowledged.len(), 3 * STARTS_PER_NODE);
    assert_eq!(
        acknowledged.iter().collect::<BTreeSet<_>>().len(),
        acknowledged.len(),
        "every acknowledged start is its own workflow"
    );

    // Every acknowledged start completes with its results, and no
    // recorded step ran again.
    let store = foundation_persist_postgres::open_postgres(
        &url,
        &foundation_persist_postgres::PostgresOptions::new(),
    )
    .await
    .expect("the store opens");
    let (_, completed_in) = eventually(
        "every acknowledged workflow completes",
        Duration::from_secs(180),
        || async {
            for (index, id) in acknowledged.iter().enumerate() {
                let view = nodes[index % 3]
                    .get(&format!("/api/v1/workflows/{id}"))
                    .await;
                match view["status"].as_str() {
                    Some("completed") => {}
                    Some("failed" | "cancelled") => panic!(
                        "an acknowledged start ended {view}\n{}",
                        nodes[index % 3].log_tail()
                    ),
                    _ => return None,
                }
            }
            Some(())
        },
    )
    .await;
    eprintln!("every acknowledged workflow had completed {completed_in:?} after the loads ended");
    for id in &acknowledged {
        let done = c.get(&format!("/api/v1/workflows/{id}")).await;
        assert_no_step_ran_again(&store, &done).await;
    }
    store.close().await.expect("close");

    // A flag changed after the restart still reaches every node.
    c.write(
        Method::PUT,
        "/api/v1/flags/use_sync_test_apis",
        json!({"value": "on", "reason": "after the restart"}),
    )
    .await;
    let flag_delay = wait_for_flag(&[&*a, &*b], "use_sync_test_apis", "on").await;
    eprintln!("a flag set on node C after the restart reached A and B after {flag_delay:?}");

    for node in [a, b, c] {
        let node = Arc::into_inner(node).expect("the start loops ended");
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_a_tls_store_url_and_refuses_an_unreadable_root_file_at_start() {
    let Some(cluster) =
        TestCluster::shared_tls().expect("the PostgreSQL test cluster with TLS starts")
    else {
        return;
    };
    let ca = cluster.ca_file().expect("a TLS cluster has a CA");
    let plain = shared_database(cluster).await;
    let directory = tempfile::tempdir().expect("tempdir");
    // verify-full demands TLS and checks the certificate and the host name
    // (127.0.0.1 is one of its names): the node serves only if it did.
    let url = format!("{plain}?sslmode=verify-full&sslrootcert={}", ca.display());
    let node = spawn_node(&url, "tls-node", directory.path()).await;
    wait_for_membership(&[&node], &["tls-node"], "the node over TLS lists itself").await;
    node.write(
        Method::PUT,
        "/api/v1/flags/use_v2_coordinator",
        json!({"value": 40, "reason": "over TLS"}),
    )
    .await;
    wait_for_flag(&[&node], "use_v2_coordinator", "40%").await;
    node.stop().await;

    let output = Command::new(env!("CARGO_BIN_EXE_jido-system"))
        .arg("serve")
        .arg("--store")
        .arg(format!(
            "{plain}?sslmode=verify-full&sslrootcert=/nonexistent/jido-ca.pem"
        ))
        .arg("--data-dir")
        .arg(directory.path().join("refused"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env_remove("JIDO_STORE")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output)
        .await
        .expect("serve exits in time")
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("invalid_config_value") && stderr.contains("/nonexistent/jido-ca.pem"),
        "the error is classified and names the file: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_backup_and_restore_refuse_a_postgres_store() {
    let directory = tempfile::tempdir().expect("tempdir");
    for (command, tool) in [("backup", "pg_dump"), ("restore", "pg_restore")] {
        let output = Command::new(env!("CARGO_BIN_EXE_jido-system"))
            .arg(command)
            .arg(directory.path().join("copy.redb"))
            .arg("--data-dir")
            .arg(directory.path())
            .env("JIDO_STORE", "postgres://jido@127.0.0.1:5432/jido")
            .output()
            .await
            .expect("the binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(6), "{command}: {stderr}");
        assert!(
            stderr.contains("operation_not_permitted"),
            "{command}: {stderr}"
        );
        assert!(stderr.contains(tool), "{command} names {tool}: {stderr}");
    }
    assert!(
        std::fs::read_dir(directory.path())
            .expect("the directory")
            .next()
            .is_none(),
        "nothing was written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_not_ready_while_the_database_is_down_and_says_why() {
    // A cluster of its own: stopping it would disturb the other tests.
    let Some(cluster) = TestCluster::start().expect("a PostgreSQL cluster starts") else {
        return;
    };
    let cluster = Arc::new(cluster);
    let url = shared_database(&cluster).await;
    let directory = tempfile::tempdir().expect("tempdir");
    let node = spawn_node(&url, "node-a", directory.path()).await;
    eventually("the node is ready", PROPAGATION, || async {
        node.is_ready().await.then_some(())
    })
    .await;

    let stopping = Arc::clone(&cluster);
    tokio::time::timeout(
        Duration::from_secs(90),
        tokio::task::spawn_blocking(move || stopping.stop()),
    )
    .await
    .expect("the stop ends in time")
    .expect("joins")
    .expect("the server stops");
    let (health, _) = eventually("health says the store is down", PROPAGATION, || async {
        let response = send(&client(), &node.base, Method::GET, "/health", None, None).await;
        let status = response.status();
        let health = body(response).await;
        (status == 503).then_some(health)
    })
    .await;
    assert_eq!(health["ready"], false, "{health}");
    assert_eq!(health["components"]["store"], false, "{health}");
    let reason = health["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("store"),
        "the reason names the store: {health}"
    );

    let starting = Arc::clone(&cluster);
    tokio::time::timeout(
        Duration::from_secs(90),
        tokio::task::spawn_blocking(move || starting.start_again()),
    )
    .await
    .expect("the start ends in time")
    .expect("joins")
    .expect("the server starts again");
    eventually("the node is ready again", PROPAGATION, || async {
        node.is_ready().await.then_some(())
    })
    .await;
    node.stop().await;
}
