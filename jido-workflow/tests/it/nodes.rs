//! Several engines on one PostgreSQL store (the throwaway cluster of
//! `foundation_persist_postgres::testing`; skipped loudly without
//! PostgreSQL, a failure with `FOUNDATION_REQUIRE_POSTGRES=1`):
//!
//! - two engines in this process: one stops heartbeating while its
//!   workflows' second step runs; the other claims and finishes them; the
//!   first one's late results are refused by the fence and it gives them
//!   up; no recorded step runs twice;
//! - three engines in this process, each with its own store, while the
//!   database is restarted under load: every acknowledged start
//!   completes, no recorded step runs again, every engine reconnects;
//! - three node processes (this test binary re-executed with an
//!   environment variable selecting the node role, as in
//!   `real_process.rs`) share 1,000 workflows with a 2 s lease: one is
//!   SIGKILLed mid-step, one is SIGSTOPped past its lease and then
//!   SIGCONTinued (its writes are refused and it gives the work up); all
//!   1,000 complete and no step re-runs after its result was recorded
//!   (the executions side file against the journals).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use foundation_error::{Error, ErrorCode};
use foundation_persist::Store;
use foundation_persist_postgres::testing::TestCluster;
use foundation_persist_postgres::{PostgresOptions, open_postgres};
use jido_workflow::{ListFilter, StepInput, WorkRegistry, WorkflowEngine, WorkflowStatus};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStderr;
use tokio::sync::{mpsc, watch};

use crate::lease::three_steps;
use crate::support::{Executions, PLAN_WORKS, plan, recorded};

const NODE: &str = "JIDO_WORKFLOW_NODE_ROLE";
const NODE_URL: &str = "JIDO_WORKFLOW_NODE_URL";
const NODE_SIDE: &str = "JIDO_WORKFLOW_NODE_SIDE";
const WORKFLOWS: usize = 1_000;
const NODE_TTL: Duration = Duration::from_secs(2);

fn cluster() -> Option<&'static TestCluster> {
    TestCluster::shared().expect("the PostgreSQL test cluster starts")
}

async fn pg_store(url: &str) -> Result<Store, Error> {
    open_postgres(url, &PostgresOptions::new()).await
}

async fn pg_node(store: &Store, owner: &str, works: WorkRegistry, ttl: Duration) -> WorkflowEngine {
    let mut builder = WorkflowEngine::builder(store.clone(), works);
    builder.owner(owner).lease_ttl(ttl).multi_node(true);
    builder.start().await.expect("the engine starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_on_postgres_fail_over_and_the_stale_one_gives_up() {
    if std::env::var_os(NODE).is_some() {
        return;
    }
    let Some(cluster) = cluster() else { return };
    let url = cluster.create_database().await.expect("a database");
    let store_a = pg_store(&url).await.expect("opens");
    let store_b = pg_store(&url).await.expect("opens");
    let ttl = Duration::from_secs(1);
    let executions = Executions::default();
    let (entered, mut entries) = mpsc::unbounded_channel();
    let (open, gate) = watch::channel(false);
    let a = pg_node(
        &store_a,
        "a",
        crate::lease::works(&executions, Some(entered), Some(gate)),
        ttl,
    )
    .await;
    let b = pg_node(
        &store_b,
        "b",
        crate::lease::works(&executions, None, None),
        ttl,
    )
    .await;
    let count = 20;
    let mut ids = Vec::new();
    for _ in 0..count {
        ids.push(
            a.start_workflow(&three_steps(), Value::Null)
                .await
                .expect("starts"),
        );
    }
    for _ in 0..count {
        tokio::time::timeout(Duration::from_secs(30), entries.recv())
            .await
            .expect("s2 runs on a in time")
            .expect("s2 runs on a");
    }
    a.suspend_heartbeat(true);
    for id in &ids {
        let info = b
            .wait(id, Duration::from_secs(60))
            .await
            .expect("b finishes it");
        assert_eq!(info.status, WorkflowStatus::Completed, "{id}");
    }
    assert!(b.leases_claimed() >= count as u64);
    open.send_replace(true);
    for _ in 0..200 {
        if a.leases_lost() == count as u64 {
            break;
        }
        a.heartbeats(1, Duration::from_secs(30))
            .await
            .expect("a's heartbeat ticks");
    }
    assert_eq!(a.leases_lost(), count as u64, "a gave every workflow up");
    for id in &ids {
        assert!(a.process(id).is_none(), "{id}");
        let (succeeded, restarted) = recorded(&b, id).await;
        assert_eq!(succeeded.len(), 3, "{id}: {succeeded:?}");
        assert!(succeeded.values().all(|count| *count == 1), "{id}");
        assert!(!restarted, "{id}: a recorded step started again");
        assert_eq!(executions.of(&format!("{id}/s1")), 1, "{id}: s1 ran once");
        assert_eq!(executions.of(&format!("{id}/s3")), 1, "{id}: s3 ran once");
    }
    a.shutdown().await.expect("shuts down");
    b.shutdown().await.expect("shuts down");
    store_a.close().await.expect("closes");
    store_b.close().await.expect("closes");
}

/// What one engine's start loop saw during the restart test.
#[derive(Default)]
struct Starts {
    /// Acknowledged starts.
    acknowledged: Vec<String>,
    /// Acknowledged starts after the restart finished.
    after_restart: usize,
    /// Refused starts (the server was away): each must be a classified
    /// error.
    refused: Vec<Error>,
}

/// Three engines in multi-node mode, each with its own store on one
/// database, start and run workflows in a loop while the database is
/// restarted (`pg_ctl restart -m fast`: every connection is cut). Every
/// acknowledged start completes, no recorded step runs again, and every
/// engine reconnects: each acknowledges starts after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_engines_survive_a_database_restart_under_load() {
    if std::env::var_os(NODE).is_some() {
        return;
    }
    // A cluster of its own: the restart would disturb the other tests.
    let Some(cluster) = TestCluster::start().expect("a cluster starts") else {
        return;
    };
    let cluster = Arc::new(cluster);
    let url = cluster.create_database().await.expect("a database");
    let ttl = Duration::from_secs(2);
    let executions = Executions::default();
    let mut stores = Vec::new();
    let mut engines = Vec::new();
    for owner in ["a", "b", "c"] {
        let store = pg_store(&url).await.expect("opens");
        engines.push(
            pg_node(
                &store,
                owner,
                crate::lease::works(&executions, None, None),
                ttl,
            )
            .await,
        );
        stores.push(store);
    }
    let (restarted, restarted_seen) = watch::channel(false);
    // Acknowledged starts: in all, and per engine after the restart.
    let (progress, progress_seen) = watch::channel((0usize, [0usize; 3]));
    let progress = Arc::new(progress);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loops: Vec<_> = engines
        .iter()
        .enumerate()
        .map(|(index, engine)| {
            let (engine, restarted, progress, stop) = (
                engine.clone(),
                restarted_seen.clone(),
                Arc::clone(&progress),
                Arc::clone(&stop),
            );
            tokio::spawn(async move {
                let mut starts = Starts::default();
                while !stop.load(std::sync::atomic::Ordering::Acquire) {
                    let after = *restarted.borrow();
                    match engine.start_workflow(&three_steps(), Value::Null).await {
                        Ok(id) => {
                            starts.acknowledged.push(id);
                            if after {
                                starts.after_restart += 1;
                            }
                            progress.send_modify(|(total, after_restart)| {
                                *total += 1;
                                if after {
                                    after_restart[index] += 1;
                                }
                            });
                        }
                        Err(error) => {
                            starts.refused.push(error);
                            // A client backs off: until the engine's
                            // next heartbeat tick.
                            let _ = engine.heartbeats(1, Duration::from_secs(30)).await;
                        }
                    }
                }
                starts
            })
        })
        .collect();
    let wait_progress = |done: fn(&(usize, [usize; 3])) -> bool, when: &'static str| {
        let mut seen = progress_seen.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(120), seen.wait_for(done))
                .await
                .unwrap_or_else(|_| panic!("starts are acknowledged in time {when}"))
                .map(|_| ())
                .expect("the start loops run");
        }
    };
    wait_progress(|(total, _)| *total >= 60, "before the restart").await;

    let restarting = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || restarting.restart())
        .await
        .expect("joins")
        .expect("the server restarts");
    restarted.send_replace(true);
    // Every engine reconnects: each acknowledges starts again.
    wait_progress(
        |(_, after_restart)| after_restart.iter().all(|count| *count >= 20),
        "after the restart, on every engine",
    )
    .await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    let mut all = Vec::new();
    for (engine, started) in loops.into_iter().enumerate() {
        let starts = tokio::time::timeout(Duration::from_secs(120), started)
            .await
            .expect("the start loop ends in time")
            .expect("joins");
        assert!(
            starts.after_restart > 0,
            "engine {engine} reconnected and acknowledged starts after the restart"
        );
        for error in &starts.refused {
            assert!(
                matches!(error.category(), foundation_error::Category::Infrastructure)
                    || error.code() == ErrorCode::TIMEOUT,
                "engine {engine}: a start refused during the restart is a classified, \
                 retryable error: {error}"
            );
        }
        all.extend(starts.acknowledged);
    }

    // Every acknowledged start completes (on whichever engine holds it),
    // re-checked on each heartbeat of the first engine, bounded.
    let mut pending = all.clone();
    for _ in 0..300 {
        let mut still = Vec::new();
        for id in pending {
            let info = engines[0].status(&id).await.expect("status reads");
            if !info.status.is_terminal() {
                still.push(id);
            } else {
                assert_eq!(info.status, WorkflowStatus::Completed, "{id}");
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        engines[0]
            .heartbeats(1, Duration::from_secs(30))
            .await
            .expect("the heartbeat ticks");
    }
    assert!(
        pending.is_empty(),
        "acknowledged starts never completed: {pending:?}"
    );
    for id in &all {
        let (succeeded, restarted_after_success) = recorded(&engines[0], id).await;
        assert_eq!(succeeded.len(), 3, "{id}: {succeeded:?}");
        assert!(succeeded.values().all(|count| *count == 1), "{id}");
        assert!(
            !restarted_after_success,
            "{id}: a recorded step started again"
        );
    }
    for engine in engines {
        engine.shutdown().await.expect("shuts down");
    }
    for store in stores {
        store.close().await.expect("closes");
    }
}

fn workflow_id(index: usize) -> String {
    format!("node-wf-{index:04}")
}

/// The engine a node process runs, for its works.
static NODE_ENGINE: std::sync::OnceLock<WorkflowEngine> = std::sync::OnceLock::new();

/// The plan's works for a node process: each lasts two heartbeats of its
/// engine (about 1.3 s with the 2 s lease; an event of the engine, so that
/// kills and stops land mid-step), then appends its idempotency key to the
/// side file before it returns, and reports it on stderr.
fn node_works(side: &Path, owner: &str) -> WorkRegistry {
    let side = Arc::new(side.to_owned());
    let owner: Arc<str> = owner.into();
    let mut works = WorkRegistry::new();
    for name in PLAN_WORKS {
        let side = Arc::clone(&side);
        let owner = Arc::clone(&owner);
        works.register(name, move |input: StepInput| {
            let side = Arc::clone(&side);
            let owner = Arc::clone(&owner);
            async move {
                if let Some(engine) = NODE_ENGINE.get() {
                    engine.heartbeats(2, Duration::from_secs(60)).await?;
                }
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&*side)?;
                file.write_all(format!("{}\n", input.idempotency_key).as_bytes())?;
                eprintln!("executed {owner} {}", input.idempotency_key);
                Ok(json!({"step": input.step_id}))
            }
        });
    }
    works
}

/// The node role: an engine in multi-node mode on the shared database;
/// node k starts the workflows whose index is k modulo 3; every node then
/// reports its lease
/// counters on stderr until every workflow has ended. Not a test of its
/// own: outside a node process it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_role() -> Result<(), Error> {
    let Some(owner) = std::env::var_os(NODE) else {
        return Ok(());
    };
    let owner = owner.to_string_lossy().into_owned();
    let url = std::env::var(NODE_URL)
        .map_err(|_| Error::new(ErrorCode::INVALID_CONFIG_VALUE, "no database url"))?;
    let side = PathBuf::from(
        std::env::var_os(NODE_SIDE)
            .ok_or_else(|| Error::new(ErrorCode::INVALID_CONFIG_VALUE, "no side file"))?,
    );
    let store = pg_store(&url).await?;
    let mut builder = WorkflowEngine::builder(store.clone(), node_works(&side, &owner));
    builder
        .owner(owner.as_str())
        .lease_ttl(NODE_TTL)
        .multi_node(true);
    let engine = builder.start().await?;
    let _ = NODE_ENGINE.set(engine.clone());
    engine.resumed(Duration::from_secs(60)).await?;
    eprintln!("ready {owner}");
    // Each node starts a third of the workflows (as requests spread over
    // nodes would), so every node runs some.
    let node: usize = owner
        .strip_prefix("node")
        .and_then(|number| number.parse().ok())
        .unwrap_or(0);
    {
        let definition = plan();
        for index in (0..WORKFLOWS).filter(|index| index % 3 == node) {
            match engine
                .start_workflow_with_id(&workflow_id(index), &definition, Value::Null)
                .await
            {
                Ok(()) => {}
                Err(error) if error.code() == ErrorCode::ALREADY_EXISTS => {}
                Err(error) => return Err(error),
            }
        }
        eprintln!("started {owner}");
    }
    let mut reported = (u64::MAX, u64::MAX);
    let mut unfinished = ListFilter::new();
    unfinished
        .status(WorkflowStatus::Pending)
        .status(WorkflowStatus::Running)
        .status(WorkflowStatus::Waiting)
        .limit(1);
    for _ in 0..1_000 {
        let counters = (engine.leases_lost(), engine.leases_claimed());
        if counters != reported {
            eprintln!("leases {owner} lost={} claimed={}", counters.0, counters.1);
            reported = counters;
        }
        let page = engine.list(&unfinished).await?;
        let mut all_there = true;
        for index in WORKFLOWS - 3..WORKFLOWS {
            all_there &= engine.summary_status(&workflow_id(index)).await?.is_some();
        }
        if page.workflows.is_empty() && all_there {
            eprintln!("done {owner} lost={} claimed={}", counters.0, counters.1);
            engine.shutdown().await?;
            return store.close().await;
        }
        engine.heartbeats(1, Duration::from_secs(30)).await?;
    }
    Err(Error::timeout("the workflows did not all end"))
}

/// A node process and its stderr lines.
struct NodeProcess {
    child: tokio::process::Child,
    lines: Lines<BufReader<ChildStderr>>,
}

fn spawn_node(owner: &str, url: &str, side: &Path) -> Result<NodeProcess, Error> {
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "nodes::node_role",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(NODE, owner)
        .env(NODE_URL, url)
        .env(NODE_SIDE, side)
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| Error::new(ErrorCode::INTERNAL_ERROR, "the node has no stderr"))?;
    Ok(NodeProcess {
        child,
        lines: BufReader::new(stderr).lines(),
    })
}

/// What the parent learned from the nodes' lines.
#[derive(Debug, Default)]
struct Seen {
    executed: HashMap<String, usize>,
    lost: HashMap<String, u64>,
    done: HashMap<String, bool>,
    started: usize,
    lines: usize,
}

impl Seen {
    fn take(&mut self, line: &str) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("started"), Some(_)) => self.started += 1,
            (Some("executed"), Some(owner)) => {
                *self.executed.entry(owner.to_owned()).or_default() += 1;
            }
            (Some("leases" | "done"), Some(owner)) => {
                if let Some(lost) = line
                    .split_whitespace()
                    .find_map(|word| word.strip_prefix("lost="))
                    .and_then(|lost| lost.parse().ok())
                {
                    self.lost.insert(owner.to_owned(), lost);
                }
                if line.starts_with("done") {
                    self.done.insert(owner.to_owned(), true);
                }
            }
            _ => eprintln!("node: {line}"),
        }
    }
}

/// Reads lines from every live node until `until` holds, at most
/// `timeout`. A `stopped` node is not read (a stopped process writes
/// nothing; its pipe fills at most).
async fn read_until(
    nodes: &mut [Option<NodeProcess>],
    seen: &mut Seen,
    stopped: Option<usize>,
    timeout: Duration,
    until: impl Fn(&Seen) -> bool,
) -> Result<(), Error> {
    let reading = async {
        while !until(seen) {
            read_some(nodes, seen, stopped).await?;
        }
        Ok::<(), Error>(())
    };
    match tokio::time::timeout(timeout, reading).await {
        Ok(result) => result,
        Err(_) => Err(Error::timeout(format!(
            "the nodes did not get there in time: {seen:?}"
        ))),
    }
}

/// Reads the next line of whichever live node speaks first (and any other
/// line that is ready), or notes a node's exit.
async fn read_some(
    nodes: &mut [Option<NodeProcess>],
    seen: &mut Seen,
    stopped: Option<usize>,
) -> Result<(), Error> {
    let (sender, mut receiver) = mpsc::unbounded_channel();
    let mut reads = Vec::new();
    for (index, node) in nodes.iter_mut().enumerate() {
        if Some(index) == stopped {
            continue;
        }
        if let Some(node) = node {
            let sender = sender.clone();
            reads.push(Box::pin(async move {
                // `next_line` is cancel safe: the reads that lose the race
                // keep their buffered input for the next call.
                let line = node.lines.next_line().await;
                let _ = sender.send((index, line));
            }));
        }
    }
    drop(sender);
    if reads.is_empty() {
        return Err(Error::new(
            ErrorCode::INTERNAL_ERROR,
            format!("no node left to read: {seen:?}"),
        ));
    }
    futures::future::select_all(reads).await;
    while let Ok((index, line)) = receiver.try_recv() {
        seen.lines += 1;
        match line? {
            Some(line) => seen.take(&line),
            None => {
                // The node's stderr closed: it exited.
                if let Some(mut node) = nodes[index].take() {
                    let status = node.child.wait().await?;
                    assert!(status.success(), "node {index} failed: {status}");
                }
            }
        }
    }
    Ok(())
}

fn signal(node: &NodeProcess, name: &str) -> Result<(), Error> {
    let pid = node
        .child
        .id()
        .ok_or_else(|| Error::new(ErrorCode::INTERNAL_ERROR, "the node has exited"))?;
    let status = std::process::Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()?;
    if !status.success() {
        return Err(Error::new(
            ErrorCode::INTERNAL_ERROR,
            format!("kill -{name} failed"),
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_node_processes_share_1000_workflows_through_kill_and_stop() -> Result<(), Error> {
    if std::env::var_os(NODE).is_some() {
        return Ok(());
    }
    let Some(cluster) = cluster() else {
        return Ok(());
    };
    let url = cluster.create_database().await?;
    let directory = tempfile::tempdir()?;
    let side = directory.path().join("executions.log");
    let mut nodes = Vec::new();
    for index in 0..3 {
        nodes.push(Some(spawn_node(&format!("node{index}"), &url, &side)?));
    }
    let mut seen = Seen::default();
    // SIGKILL node0 mid-step, once every node has started its workflows
    // and executed some steps.
    read_until(
        &mut nodes,
        &mut seen,
        None,
        Duration::from_secs(180),
        |seen| {
            seen.started == 3
                && (0..3).all(|index| {
                    seen.executed
                        .get(&format!("node{index}"))
                        .copied()
                        .unwrap_or(0)
                        >= 20
                })
        },
    )
    .await?;
    if let Some(mut node0) = nodes[0].take() {
        node0.child.start_kill()?;
        tokio::time::timeout(Duration::from_secs(10), node0.child.wait())
            .await
            .map_err(|_| Error::timeout("the killed node did not exit"))??;
    }
    // SIGSTOP node1 past its lease time while it runs steps, then resume
    // it: the workflows it held were claimed meanwhile, so its renewals
    // and fenced writes are refused and it gives them up.
    let before = seen.executed.get("node1").copied().unwrap_or(0);
    read_until(
        &mut nodes,
        &mut seen,
        None,
        Duration::from_secs(120),
        |seen| seen.executed.get("node1").copied().unwrap_or(0) >= before + 20,
    )
    .await?;
    let node1 = nodes[1]
        .as_ref()
        .ok_or_else(|| Error::new(ErrorCode::INTERNAL_ERROR, "node1 ended early"))?;
    signal(node1, "STOP")?;
    // Stopped past its lease: until every lease node1 held has been
    // claimed by the others (the store says so; read between node2's
    // lines, which keep coming meanwhile).
    let observer = pg_store(&url).await?;
    let held_by_node1 = |leases: &[foundation_persist::Lease]| {
        leases.iter().filter(|lease| lease.owner == "node1").count()
    };
    let at_stop = held_by_node1(&observer.leases().list("workflow/", None, 10_000).await?);
    assert!(at_stop > 0, "node1 held no lease when it was stopped");
    let waiting = async {
        loop {
            let leases = observer.leases().list("workflow/", None, 10_000).await?;
            if held_by_node1(&leases) == 0 {
                return Ok::<(), Error>(());
            }
            read_some(&mut nodes, &mut seen, Some(1)).await?;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), waiting)
        .await
        .map_err(|_| Error::timeout("node1's leases were not claimed while it was stopped"))??;
    observer.close().await?;
    let node1 = nodes[1]
        .as_ref()
        .ok_or_else(|| Error::new(ErrorCode::INTERNAL_ERROR, "node1 ended early"))?;
    signal(node1, "CONT")?;
    read_until(
        &mut nodes,
        &mut seen,
        None,
        Duration::from_secs(300),
        |seen| seen.lost.get("node1").copied().unwrap_or(0) > 0,
    )
    .await?;
    // Everything ends; every remaining node exits cleanly.
    read_until(
        &mut nodes,
        &mut seen,
        None,
        Duration::from_secs(300),
        |seen| {
            seen.done.get("node1").copied().unwrap_or(false)
                && seen.done.get("node2").copied().unwrap_or(false)
        },
    )
    .await?;
    for node in nodes.iter_mut() {
        if let Some(mut node) = node.take() {
            let status = tokio::time::timeout(Duration::from_secs(60), node.child.wait())
                .await
                .map_err(|_| Error::timeout("a node did not exit"))??;
            assert!(status.success(), "a node failed: {status}");
        }
    }

    // Audit: every workflow completed, each step recorded once, none
    // started again after its record, no step ran more often than it was
    // started.
    let store = pg_store(&url).await?;
    let engine = WorkflowEngine::builder(store.clone(), WorkRegistry::new())
        .start()
        .await?;
    let mut executed: HashMap<String, u32> = HashMap::new();
    for line in std::fs::read_to_string(&side)?
        .lines()
        .filter(|line| !line.is_empty())
    {
        *executed.entry(line.to_owned()).or_default() += 1;
    }
    let mut reruns = 0;
    for index in 0..WORKFLOWS {
        let id = workflow_id(index);
        let info = engine.status(&id).await?;
        assert_eq!(info.status, WorkflowStatus::Completed, "{id}");
        let (succeeded, restarted) = recorded(&engine, &id).await;
        assert_eq!(succeeded.len(), 5, "{id}");
        assert!(
            succeeded.values().all(|count| *count == 1),
            "{id}: {succeeded:?}"
        );
        assert!(
            !restarted,
            "{id}: a step started again after its result was recorded"
        );
        let history = engine.history(&id).await?;
        for step in &info.steps {
            let key = format!("{id}/{}", step.path);
            let runs = executed.get(&key).copied().unwrap_or(0);
            let starts = history
                .iter()
                .filter(|entry| {
                    entry.kind == "step_started" && entry.step.as_deref() == Some(&step.id)
                })
                .count() as u32;
            assert!(runs >= 1, "{key} never ran");
            assert!(
                runs <= starts,
                "{key} ran {runs} times but was started {starts} times"
            );
            reruns += runs - 1;
        }
    }
    eprintln!(
        "3 nodes, 1 SIGKILL, 1 SIGSTOP past the lease: node1 gave up {} workflows; {reruns} steps \
         re-ran (in flight at a takeover), none after their record",
        seen.lost.get("node1").copied().unwrap_or(0)
    );
    engine.shutdown().await?;
    store.close().await
}
