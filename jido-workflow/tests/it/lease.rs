//! Workflow leases on the store: a running workflow holds `workflow/<id>`
//! and releases it when it ends; in multi-node mode, two engines on one
//! store fail over: when one stops heartbeating, the other claims its
//! workflows after the lease time and finishes them, and the first one's
//! next (fenced) write is refused, so it gives the work up. Deterministic:
//! paused tokio time drives the engines and the store's lease clock. The
//! same scenario on PostgreSQL and with real OS processes is in
//! `nodes.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use foundation_error::clock::SharedClock;
use foundation_persist::{Store, StoreOptions};
use jido_workflow::{StepInput, WorkRegistry, WorkflowDefinition, WorkflowEngine, WorkflowStatus};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::support::{Executions, clock, memory_store, recorded};

const TTL: Duration = Duration::from_secs(3);
const WAIT: Duration = Duration::from_secs(600);

pub(crate) fn three_steps() -> WorkflowDefinition {
    WorkflowDefinition::from_json(
        r#"{"name": "three", "steps": [{"sequential": [
            {"task": {"id": "s1", "work": "quick"}},
            {"task": {"id": "s2", "work": "gated"}},
            {"task": {"id": "s3", "work": "quick"}}]}]}"#,
    )
    .expect("a valid definition")
}

/// Works for an engine: `quick` returns at once; `gated` reports that it
/// entered on `entered` and waits until `gate` opens (`None`: returns at
/// once). Every execution is recorded in `executions` as
/// `workflow/step id`.
pub(crate) fn works(
    executions: &Executions,
    entered: Option<mpsc::UnboundedSender<String>>,
    gate: Option<watch::Receiver<bool>>,
) -> WorkRegistry {
    let mut works = WorkRegistry::new();
    let quick = executions.clone();
    works.register("quick", move |input: StepInput| {
        let executions = quick.clone();
        async move {
            executions.record(&format!("{}/{}", input.workflow_id, input.step_id));
            Ok(json!(input.step_id))
        }
    });
    let gated = executions.clone();
    works.register("gated", move |input: StepInput| {
        let executions = gated.clone();
        let entered = entered.clone();
        let gate = gate.clone();
        async move {
            executions.record(&format!("{}/{}", input.workflow_id, input.step_id));
            if let Some(entered) = entered {
                let _ = entered.send(input.idempotency_key.clone());
            }
            if let Some(mut gate) = gate {
                let _ = gate.wait_for(|open| *open).await;
            }
            Ok(json!(input.step_id))
        }
    });
    works
}

async fn node(
    store: &Store,
    owner: &str,
    works: WorkRegistry,
    clock: &SharedClock,
) -> WorkflowEngine {
    let mut builder = WorkflowEngine::builder(store.clone(), works);
    builder
        .clock(Arc::clone(clock))
        .owner(owner)
        .lease_ttl(TTL)
        .multi_node(true);
    builder.start().await.expect("the engine starts")
}

#[tokio::test(start_paused = true)]
async fn a_single_node_engine_holds_no_store_lease() {
    let store = memory_store();
    let executions = Executions::default();
    let (entered, mut entries) = mpsc::unbounded_channel();
    let (open, gate) = watch::channel(false);
    let mut builder =
        WorkflowEngine::builder(store.clone(), works(&executions, Some(entered), Some(gate)));
    builder.clock(clock());
    let engine = builder.start().await.expect("starts");
    let id = engine
        .start_workflow(&three_steps(), Value::Null)
        .await
        .expect("starts");
    entries.recv().await.expect("s2 runs");
    let held = store.leases().list("", None, 10).await.expect("list");
    assert!(held.is_empty(), "{held:?}");
    assert!(engine.held_leases().is_empty());
    // A second start of the running id is refused without a lease.
    let again = engine
        .start_workflow_with_id(&id, &three_steps(), Value::Null)
        .await
        .expect_err("a duplicate id is refused");
    assert_eq!(again.code(), foundation_error::ErrorCode::ALREADY_EXISTS);
    open.send_replace(true);
    let info = engine.wait(&id, WAIT).await.expect("ends");
    assert_eq!(info.status, WorkflowStatus::Completed);
    engine.shutdown().await.expect("shuts down");
}

#[tokio::test(start_paused = true)]
async fn a_running_workflow_holds_its_lease_and_releases_it_at_the_end() {
    let store = memory_store();
    let executions = Executions::default();
    let (entered, mut entries) = mpsc::unbounded_channel();
    let (open, gate) = watch::channel(false);
    let mut builder =
        WorkflowEngine::builder(store.clone(), works(&executions, Some(entered), Some(gate)));
    builder.clock(clock()).multi_node(true);
    let engine = builder.start().await.expect("starts");
    let id = engine
        .start_workflow(&three_steps(), Value::Null)
        .await
        .expect("starts");
    entries.recv().await.expect("s2 runs");
    let held = store
        .leases()
        .list("workflow/", None, 10)
        .await
        .expect("list");
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].name, format!("workflow/{id}"));
    assert_eq!(held[0].owner, "local");
    assert_eq!(engine.held_leases(), held);
    open.send_replace(true);
    let info = engine.wait(&id, WAIT).await.expect("ends");
    assert_eq!(info.status, WorkflowStatus::Completed);
    // Released by the ending instance (event: the store's listing).
    let mut released = false;
    for _ in 0..100 {
        if store
            .leases()
            .list("workflow/", None, 10)
            .await
            .expect("list")
            .is_empty()
        {
            released = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(released, "the finished workflow's lease was released");
    assert!(engine.held_leases().is_empty());
    assert_eq!(engine.leases_lost(), 0);
    engine.shutdown().await.expect("shuts down");
}

#[tokio::test(start_paused = true)]
async fn engine_settings_are_checked() {
    let store = memory_store();
    for ttl in [Duration::from_millis(10), Duration::from_secs(2 * 86_400)] {
        let mut builder = WorkflowEngine::builder(store.clone(), WorkRegistry::new());
        builder.lease_ttl(ttl);
        let error = builder.start().await.expect_err("a bad lease time");
        assert_eq!(
            error.code(),
            foundation_error::ErrorCode::INVALID_CONFIG_VALUE
        );
    }
    let mut builder = WorkflowEngine::builder(store.clone(), WorkRegistry::new());
    builder.owner("");
    assert!(builder.start().await.is_err(), "an empty owner");
    let engine = WorkflowEngine::builder(store, WorkRegistry::new())
        .start()
        .await
        .expect("starts");
    assert!(
        engine.heartbeats(1, WAIT).await.is_err(),
        "single-node has no heartbeat"
    );
    engine.shutdown().await.expect("shuts down");
}

/// Two engines on one store: "a" starts the workflows and stops
/// heartbeating while their second step runs; "b" claims them after the
/// lease time and finishes them; "a"'s late results are refused by the
/// fence and "a" gives the workflows up without reporting them ended.
#[tokio::test(start_paused = true)]
async fn a_paused_engine_loses_its_workflows_to_another_and_gives_them_up() {
    let clock = clock();
    let mut options = StoreOptions::new();
    options.clock(Arc::clone(&clock));
    let store = Store::open_in_memory(&options).expect("opens");
    let executions = Executions::default();
    let (entered, mut entries) = mpsc::unbounded_channel();
    let (open, gate) = watch::channel(false);
    let a = node(
        &store,
        "a",
        works(&executions, Some(entered), Some(gate)),
        &clock,
    )
    .await;
    let b = node(&store, "b", works(&executions, None, None), &clock).await;
    let reported_on_a = Arc::new(AtomicU32::new(0));
    let reports = Arc::clone(&reported_on_a);
    a.on_finished(Arc::new(move |_, _| {
        reports.fetch_add(1, Ordering::AcqRel);
    }));

    let count = 5;
    let mut ids = Vec::new();
    for _ in 0..count {
        ids.push(
            a.start_workflow(&three_steps(), Value::Null)
                .await
                .expect("starts"),
        );
    }
    for _ in 0..count {
        entries.recv().await.expect("s2 runs on a");
    }
    a.suspend_heartbeat(true);

    for id in &ids {
        let info = b.wait(id, WAIT).await.expect("b finishes it");
        assert_eq!(info.status, WorkflowStatus::Completed, "{id}");
    }
    assert_eq!(b.leases_lost(), 0);
    // a's works finish now; their results are refused by the fence.
    open.send_replace(true);
    for _ in 0..100 {
        if a.leases_lost() == count {
            break;
        }
        a.heartbeats(1, WAIT).await.expect("a's heartbeat ticks");
    }
    assert_eq!(a.leases_lost(), count, "a gave every workflow up");
    for id in &ids {
        assert!(a.process(id).is_none(), "a's process of {id} stopped");
    }
    assert_eq!(
        reported_on_a.load(Ordering::Acquire),
        0,
        "a reported no workflow ended"
    );
    for id in &ids {
        let (succeeded, restarted) = recorded(&b, id).await;
        assert_eq!(succeeded.len(), 3, "{id}: {succeeded:?}");
        assert!(succeeded.values().all(|count| *count == 1), "{id}");
        assert!(!restarted, "{id}: a recorded step started again");
        assert_eq!(executions.of(&format!("{id}/s1")), 1, "s1 ran once (on a)");
        assert_eq!(
            executions.of(&format!("{id}/s2")),
            2,
            "s2 was in flight on a and ran again on b"
        );
        assert_eq!(executions.of(&format!("{id}/s3")), 1, "s3 ran once (on b)");
    }
    let leases = store
        .leases()
        .list("workflow/", None, 100)
        .await
        .expect("list");
    assert!(
        leases.is_empty(),
        "b released every finished workflow: {leases:?}"
    );
    a.shutdown().await.expect("a shuts down");
    b.shutdown().await.expect("b shuts down");
}

/// Engine "a" runs a workflow on a store shared with engine "b" (which
/// watches the hand-over keyspace when `announced`), then shuts down just
/// after one of b's beats; b finishes the workflow. Returns how long that
/// took from a's shutdown and how many leases b claimed.
async fn hand_over(announced: bool) -> (Duration, u64) {
    let clock = clock();
    let mut options = StoreOptions::new();
    options.clock(Arc::clone(&clock));
    if announced {
        options.watch(jido_workflow::HANDOVER_KEYSPACE);
    }
    let store = Store::open_in_memory(&options).expect("opens");
    let executions = Executions::default();
    let (entered, mut entries) = mpsc::unbounded_channel();
    let (_open, gate) = watch::channel(false);
    let a = node(
        &store,
        "a",
        works(&executions, Some(entered), Some(gate)),
        &clock,
    )
    .await;
    let b = node(&store, "b", works(&executions, None, None), &clock).await;
    let id = a
        .start_workflow(&three_steps(), Value::Null)
        .await
        .expect("starts");
    entries.recv().await.expect("s2 runs on a");
    // Just after b's beat, so that only a hand-over's notification can
    // make b claim before its next beat.
    b.heartbeats(1, WAIT).await.expect("b beats");
    let before = clock.elapsed();
    a.shutdown().await.expect("a shuts down");
    let info = b.wait(&id, WAIT).await.expect("b finishes it");
    assert_eq!(info.status, WorkflowStatus::Completed);
    let elapsed = clock.elapsed().saturating_sub(before);
    let claimed = b.leases_claimed();
    b.shutdown().await.expect("b shuts down");
    (elapsed, claimed)
}

/// A multi-node engine that shuts down hands its unfinished workflows
/// over: the other engine resumes them at its next heartbeat, without
/// waiting for the lease time.
#[tokio::test(start_paused = true)]
async fn a_graceful_shutdown_hands_the_workflows_over() {
    let (elapsed, _) = hand_over(false).await;
    assert!(
        elapsed < TTL,
        "handed over within a heartbeat, not after the lease time: {elapsed:?}"
    );
}

/// Announced on a watched store, the hand-over is claimed at b's next
/// poll, before its next beat.
#[tokio::test(start_paused = true)]
async fn an_announced_hand_over_is_claimed_before_the_next_beat() {
    let (elapsed, claimed) = hand_over(true).await;
    assert_eq!(claimed, 1);
    assert!(
        elapsed < TTL / 3,
        "claimed at a poll after the announcement, before b's next beat: {elapsed:?}"
    );
}
