//! Several nodes on one store: `GET /api/v1/cluster` in process, and real
//! `jido-system serve --store postgres://...` processes on one throwaway
//! PostgreSQL (foundation-persist-postgres' test harness): a flag set on
//! one node is served by the other, a rollback on one rolls the other
//! back, every node lists every node, and a workflow started on one node
//! completes and is visible from the other.
//!
//! Without PostgreSQL the process tests say loudly that they were skipped
//! (or fail, with `FOUNDATION_REQUIRE_POSTGRES=1`). Every wait polls the
//! API with a deadline; nothing sleeps.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use foundation_persist_postgres::testing::TestCluster;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::{Server, body, client, send};

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

    assert_eq!(a.token, b.token, "the nodes share one token file");
    // Membership: each node lists both.
    for node in [&a, &b] {
        eventually("both nodes listed", PROPAGATION, || async {
            let cluster = node.get("/api/v1/cluster").await;
            let ids: Vec<String> = cluster["nodes"]
                .as_array()?
                .iter()
                .filter(|node| node["live"] == true)
                .filter_map(|node| node["id"].as_str().map(str::to_owned))
                .collect();
            (cluster["store"] == "postgres" && ids == ["node-a", "node-b"]).then_some(())
        })
        .await;
    }

    // A flag set on A is served by B.
    a.write(
        Method::PUT,
        "/api/v1/flags/use_v2_coordinator",
        json!({"value": 40, "reason": "shared flags test"}),
    )
    .await;
    let (_, flag_delay) = eventually("the flag on node B", PROPAGATION, || async {
        (b.flag("use_v2_coordinator").await.as_deref() == Some("40%")).then_some(())
    })
    .await;
    eprintln!("a flag set on node A was served by node B after {flag_delay:?}");

    // A forced advance then a rollback on A: B follows both, and the
    // history is recorded once.
    a.write(
        Method::POST,
        "/api/v1/rollout/advance",
        json!({"reason": "into phase 1", "force": true}),
    )
    .await;
    eventually("phase 1 on node B", PROPAGATION, || async {
        (b.phase().await == Some(1)).then_some(())
    })
    .await;
    a.write(
        Method::POST,
        "/api/v1/rollout/rollback",
        json!({"reason": "rolled back on node A"}),
    )
    .await;
    let (_, rollback_delay) = eventually("the rollback on node B", PROPAGATION, || async {
        (b.phase().await == Some(0)).then_some(())
    })
    .await;
    eprintln!("a rollback on node A showed on node B after {rollback_delay:?}");
    let history = b.get("/api/v1/rollout").await["history"].clone();
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
    // B serves the phase's flags: phase 0 turns every rollout flag off.
    eventually("phase 0's flags on node B", PROPAGATION, || async {
        (b.flag("use_v2_coordinator").await.as_deref() == Some("off")).then_some(())
    })
    .await;

    // A durable workflow (CoordinatorV2, journaled) started on A
    // completes; B reads it from the store.
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
            let view = b.get(&format!("/api/v1/workflows/{id}")).await;
            (view["status"] == "completed").then_some(view)
        },
    )
    .await;
    assert_eq!(
        done["results"].as_object().map(|results| results.len()),
        Some(5),
        "{done}"
    );

    for mut node in [a, b] {
        node.child.start_kill().expect("stop the node");
        node.child.wait().await.expect("the node ends");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_nodes_workflow_finishes_on_another_node_after_its_lease_expires() {
    let Some(cluster) = TestCluster::shared().expect("the PostgreSQL test cluster starts") else {
        return;
    };
    let url = shared_database(cluster).await;
    let directory = tempfile::tempdir().expect("tempdir");
    let ttl = ["--lease-ttl", "2s"];
    let mut a = spawn_node_with(&url, "node-a", directory.path(), &ttl).await;
    let b = spawn_node_with(&url, "node-b", directory.path(), &ttl).await;
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
    let (done, failover) = eventually(
        "the workflow completes on node B",
        Duration::from_secs(60),
        || async {
            let view = b.get(&format!("/api/v1/workflows/{id}")).await;
            (view["status"] == "completed").then_some(view)
        },
    )
    .await;
    eprintln!(
        "node A's workflow completed on node B {failover:?} after A was killed (lease ttl 2 s)"
    );
    let results = done["results"].as_object().expect("results");
    assert_eq!(results.len(), 5, "{done}");
    // Node A's membership lapses with its lease (9 s without renewal).
    eventually("node A listed as expired", PROPAGATION, || async {
        let cluster = b.get("/api/v1/cluster").await;
        cluster["nodes"]
            .as_array()?
            .iter()
            .any(|node| node["id"] == "node-a" && node["live"] == false)
            .then_some(())
    })
    .await;

    // No recorded step ran again: each step's stored run count is the
    // count its recorded result saw.
    let store = foundation_persist_postgres::open_postgres(
        &url,
        &foundation_persist_postgres::PostgresOptions::new(),
    )
    .await
    .expect("the store opens");
    let counts = jido_system::works::execution_counts(&store).expect("keyspace");
    let stored = counts
        .list(&format!("{id}/"), None, 100)
        .await
        .expect("the run counts");
    let paths = [
        ("task1", "steps[0].parallel[0]"),
        ("task2", "steps[0].parallel[1]"),
        ("task3", "steps[0].parallel[2]"),
        ("task4", "steps[1].sequential[0]"),
        ("task5", "steps[1].sequential[1]"),
    ];
    for (task, result) in results {
        let recorded = result["executions"].as_u64().expect("executions");
        let path = paths
            .iter()
            .find(|(name, _)| name == task)
            .map(|(_, path)| format!("{id}/{path}"))
            .unwrap_or_else(|| panic!("an unknown task {task}"));
        let runs = stored
            .iter()
            .find(|entry| entry.key == path)
            .map(|entry| entry.value.count)
            .unwrap_or_else(|| panic!("no run count for {task}: {stored:?}"));
        assert_eq!(
            runs, recorded,
            "{task} ran again after its result was recorded"
        );
    }
    store.close().await.expect("close");
    let mut b = b;
    b.child.start_kill().expect("stop node B");
    b.child.wait().await.expect("node B ends");
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
