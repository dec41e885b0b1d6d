//! The coordinators: the plan's integration test with the coordinator
//! killed too, the deferred reply, V1's losses, routing by the flag and
//! the V1 to V2 migration.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use foundation_core::testkit::{wait_for, wait_until};
use foundation_core::{ActorRef, Supervisor, SupervisorRef, TaskSupervisor};
use foundation_error::Error;
use foundation_error::clock::SharedClock;
use foundation_flags::{Attribution, Flag, FlagValue, Flags};
use foundation_persist::Store;
use jido_workflow::coordinator::{
    CoordinatorRecorder, CoordinatorRouter, CoordinatorStats, CoordinatorV1, CoordinatorV1Args,
    CoordinatorV2, CoordinatorV2Args, CoordinatorV2Ref, CoordinatorVersion, USE_V2_COORDINATOR,
    V1Call, V1Reply,
};
use jido_workflow::{WorkflowEngine, WorkflowStatus};
use serde_json::{Value, json};

use crate::support::{
    Executions, KillableExecutor, clock, memory_store, pause, plan, plan_works, recorded,
};

const CALL: Duration = Duration::from_secs(5);

/// Counts what the coordinators report.
#[derive(Debug, Default)]
struct Recorded {
    requests: Mutex<Vec<(String, bool)>>,
    restores: Mutex<Vec<(String, bool)>>,
}

impl CoordinatorRecorder for Recorded {
    fn record_request(&self, cohort: &str, succeeded: bool, _duration: Duration) {
        self.requests
            .lock()
            .expect("not poisoned")
            .push((cohort.to_owned(), succeeded));
    }

    fn record_restore(&self, component: &str, succeeded: bool, _duration: Duration) {
        self.restores
            .lock()
            .expect("not poisoned")
            .push((component.to_owned(), succeeded));
    }
}

async fn coordinators(
    store: &Store,
    engine: &WorkflowEngine,
    clock: &SharedClock,
) -> Result<(SupervisorRef, ActorRef<CoordinatorV1>, CoordinatorV2Ref), Error> {
    coordinators_recording(store, engine, clock, None).await
}

async fn coordinators_recording(
    store: &Store,
    engine: &WorkflowEngine,
    clock: &SharedClock,
    recorder: Option<Arc<Recorded>>,
) -> Result<(SupervisorRef, ActorRef<CoordinatorV1>, CoordinatorV2Ref), Error> {
    let v2 = CoordinatorV2::child_spec(CoordinatorV2Args {
        id: "integration_test".into(),
        engine: engine.clone(),
        store: store.clone(),
        clock: Arc::clone(clock),
        recorder: recorder
            .clone()
            .map(|recorder| recorder as Arc<dyn CoordinatorRecorder>),
    })?;
    let v1 = CoordinatorV1::child_spec(CoordinatorV1Args {
        id: "legacy".into(),
        works: engine.works().clone(),
        tasks: TaskSupervisor::new("v1_tasks"),
        clock: Arc::clone(clock),
        recorder: recorder.map(|recorder| recorder as Arc<dyn CoordinatorRecorder>),
    });
    let (v1_handle, v2_handle) = (v1.handle(), CoordinatorV2Ref::from(v2.handle()));
    let mut app = Supervisor::builder("coordinators");
    app.child(v1).child(v2);
    Ok((app.start().await?, v1_handle, v2_handle))
}

async fn stats(v2: &CoordinatorV2Ref) -> Result<CoordinatorStats, Error> {
    v2.stats().await
}

#[tokio::test(start_paused = true)]
async fn the_plan_survives_killing_the_task_agent_the_process_and_the_coordinator()
-> Result<(), Error> {
    let clock = clock();
    let store = memory_store();
    let executions = Executions::default();
    let executor = KillableExecutor::new();
    let mut builder = WorkflowEngine::builder(
        store.clone(),
        plan_works(
            &executions,
            pause(|| tokio::time::sleep(Duration::from_millis(100))),
        ),
    );
    builder.clock(Arc::clone(&clock)).executor(executor.clone());
    let engine = builder.start().await?;
    let recorded_outcomes = Arc::new(Recorded::default());
    let (app, _v1, v2) = coordinators_recording(
        &store,
        &engine,
        &clock,
        Some(Arc::clone(&recorded_outcomes)),
    )
    .await?;

    let id = v2.start_workflow(plan(), json!({"by": "plan"})).await?;
    // A deferred reply, asked before the kill (tests may spawn tasks).
    let asker = v2.clone();
    let workflow = id.clone();
    let finished = tokio::spawn(async move {
        asker
            .when_finished(&workflow, Duration::from_secs(600))
            .await
    });
    assert_eq!(stats(&v2).await?.active.len(), 1);
    wait_for(|| executions.total() >= 3, Duration::from_secs(1)).await?;

    assert!(executor.kill_all() > 0); // the task agent
    engine.process(&id).expect("running").kill(); // the workflow process
    let before = v2.actor().incarnation();
    v2.actor().kill(); // the coordinator
    wait_for(
        || v2.actor().incarnation() > before && v2.actor().is_alive(),
        Duration::from_secs(1),
    )
    .await?;

    let info = engine.wait(&id, Duration::from_secs(30)).await?;
    assert_eq!(info.status, WorkflowStatus::Completed);
    assert_eq!(info.results().len(), 5);
    let (succeeded, restarted) = recorded(&engine, &id).await;
    assert!(succeeded.len() == 5 && succeeded.values().all(|count| *count == 1));
    assert!(!restarted);
    // The restarted coordinator loaded its state and counts the end.
    foundation_core::testkit::wait_until(
        || async {
            stats(&v2)
                .await
                .is_ok_and(|stats| stats.completed_count == 1)
        },
        Duration::from_secs(1),
    )
    .await?;
    let stats = stats(&v2).await?;
    assert_eq!(stats.completed_count, 1);
    assert!(stats.active.is_empty());
    // The deferred reply from before the kill died with that instance;
    // asking the new one answers at once.
    let kept = finished.await.map_err(|_| {
        Error::new(
            foundation_error::ErrorCode::INTERNAL_ERROR,
            "the asking task panicked",
        )
    })?;
    assert!(
        kept.is_err(),
        "the port of the killed instance fails its caller"
    );
    let status = v2.when_finished(&id, CALL).await?;
    assert_eq!(status, WorkflowStatus::Completed);
    // Reported to the recorder: one request served by V2; V1's start and
    // V2's two (the first start and the recovery after the kill).
    let requests = recorded_outcomes
        .requests
        .lock()
        .expect("not poisoned")
        .clone();
    assert_eq!(requests, [("v2".to_owned(), true)]);
    let restores = recorded_outcomes
        .restores
        .lock()
        .expect("not poisoned")
        .clone();
    assert_eq!(
        restores
            .iter()
            .filter(|(component, ok)| component == "coordinator_v2" && *ok)
            .count(),
        2
    );
    assert_eq!(
        restores
            .iter()
            .filter(|(component, _)| component == "coordinator_v1")
            .count(),
        1
    );
    app.shutdown().await?;
    engine.shutdown().await
}

#[tokio::test(start_paused = true)]
async fn the_deferred_reply_answers_when_the_workflow_ends() -> Result<(), Error> {
    let clock = clock();
    let store = memory_store();
    let executions = Executions::default();
    let mut builder = WorkflowEngine::builder(
        store.clone(),
        plan_works(
            &executions,
            pause(|| tokio::time::sleep(Duration::from_secs(1))),
        ),
    );
    builder.clock(Arc::clone(&clock));
    let engine = builder.start().await?;
    let (app, _v1, v2) = coordinators(&store, &engine, &clock).await?;
    let id = v2.start_workflow(plan(), Value::Null).await?;
    let status = v2.when_finished(&id, Duration::from_secs(60)).await?;
    assert_eq!(status, WorkflowStatus::Completed);
    assert_eq!(executions.total(), 5);
    app.shutdown().await?;
    engine.shutdown().await
}

async fn flags() -> Result<Flags, Error> {
    let mut builder = Flags::builder();
    builder.declare(Flag::new(
        USE_V2_COORDINATOR,
        "Route workflows to V2",
        FlagValue::Off,
    ));
    builder.open().await
}

#[tokio::test(start_paused = true)]
async fn the_flag_routes_by_coordinator_id_and_v1_workflows_migrate_to_v2() -> Result<(), Error> {
    let clock = clock();
    let store = memory_store();
    let executions = Executions::default();
    let mut builder = WorkflowEngine::builder(
        store.clone(),
        plan_works(
            &executions,
            pause(|| tokio::time::sleep(Duration::from_secs(1))),
        ),
    );
    builder.clock(Arc::clone(&clock));
    let engine = builder.start().await?;
    let (app, v1, v2) = coordinators(&store, &engine, &clock).await?;
    let flags = flags().await?;
    let router = CoordinatorRouter::new(flags.clone(), v1.clone(), v2.clone())?;

    // Off: everything goes to V1.
    let mut on_v1 = Vec::new();
    for index in 0..3 {
        let routed = router
            .start_workflow(&format!("client-{index}"), plan(), json!({"index": index}))
            .await?;
        assert_eq!(routed.version, CoordinatorVersion::V1);
        on_v1.push(routed.workflow_id);
    }
    // Let V1 finish the parallel group of each and start its task4.
    wait_for(|| executions.total() == 12, Duration::from_secs(5)).await?;

    // 50%: the bucket decides, the same way every time.
    flags
        .set(
            USE_V2_COORDINATOR,
            FlagValue::percentage(50)?,
            Attribution::new("test", "canary"),
        )
        .await?;
    let versions: Vec<CoordinatorVersion> = (0..100)
        .map(|index| router.route(&format!("client-{index}")))
        .collect();
    assert!(
        versions.contains(&CoordinatorVersion::V1) && versions.contains(&CoordinatorVersion::V2)
    );
    assert!((0..100).all(|index| router.route(&format!("client-{index}")) == versions[index]));

    // 100%: new starts go to V2; V1's in-flight workflows migrate.
    flags
        .set(
            USE_V2_COORDINATOR,
            FlagValue::On,
            Attribution::new("test", "full rollout"),
        )
        .await?;
    let routed = router
        .start_workflow("client-0", plan(), Value::Null)
        .await?;
    assert_eq!(routed.version, CoordinatorVersion::V2);
    let moved = router.migrate_v1_to_v2().await?;
    assert_eq!(moved.len(), 3);
    for (old, new) in &moved {
        assert!(on_v1.contains(old));
        let info = engine.wait(new, Duration::from_secs(60)).await?;
        assert_eq!(info.status, WorkflowStatus::Completed);
        assert_eq!(info.results().len(), 5);
        assert_eq!(info.metadata["migrated"], json!(true));
        assert_eq!(
            info.metadata["original_step"],
            json!("steps[1].sequential[0]")
        );
        assert_eq!(info.metadata["v1_id"], json!(old));
        assert!(info.metadata.get("index").is_some());
    }
    engine
        .wait(&routed.workflow_id, Duration::from_secs(60))
        .await?;
    // Completed tasks did not run again: V1 ran 4 tasks of each of 3
    // workflows (task4 was in flight), V2 ran task4 and task5 of each, and
    // the new V2 workflow's 5.
    assert_eq!(executions.total(), 3 * 4 + 3 * 2 + 5);
    match v1.call_timeout(V1Call::Stats, CALL).await? {
        V1Reply::Stats { in_flight, .. } => assert_eq!(in_flight, 0),
        other => panic!("unexpected reply {other:?}"),
    }
    let stats = stats(&v2).await?;
    assert_eq!(stats.completed_count, 4);
    app.shutdown().await?;
    engine.shutdown().await
}

#[tokio::test(start_paused = true)]
async fn a_killed_v1_loses_its_workflows() -> Result<(), Error> {
    let clock = clock();
    let store = memory_store();
    let executions = Executions::default();
    let engine = crate::support::engine(
        &store,
        plan_works(
            &executions,
            pause(|| tokio::time::sleep(Duration::from_secs(1))),
        ),
        &clock,
    )
    .await;
    let (app, v1, _v2) = coordinators(&store, &engine, &clock).await?;
    let V1Reply::Started(id) = v1
        .call_timeout(
            V1Call::StartWorkflow {
                definition: plan(),
                metadata: Value::Null,
            },
            CALL,
        )
        .await?
    else {
        panic!("not started");
    };
    let before = v1.incarnation();
    v1.kill();
    wait_for(
        || v1.incarnation() > before && v1.is_alive(),
        Duration::from_secs(1),
    )
    .await?;
    match v1
        .call_timeout(V1Call::Status { workflow: id }, CALL)
        .await?
    {
        V1Reply::Status(status) => assert_eq!(status, None, "V1 keeps nothing across a crash"),
        other => panic!("unexpected reply {other:?}"),
    }
    app.shutdown().await?;
    engine.shutdown().await
}

#[tokio::test(start_paused = true)]
async fn a_refused_start_leaves_nothing_active_and_is_recorded_as_failed() -> Result<(), Error> {
    let clock = clock();
    let store = memory_store();
    let executions = Executions::default();
    let engine = crate::support::engine(
        &store,
        plan_works(
            &executions,
            pause(|| tokio::time::sleep(Duration::from_millis(10))),
        ),
        &clock,
    )
    .await;
    let recorded_outcomes = Arc::new(Recorded::default());
    let (app, _v1, v2) = coordinators_recording(
        &store,
        &engine,
        &clock,
        Some(Arc::clone(&recorded_outcomes)),
    )
    .await?;
    let unknown = jido_workflow::WorkflowDefinition::from_json(
        r#"{"name": "unknown", "steps": [{"task": {"id": "t", "work": "nowhere"}}]}"#,
    )?;
    let refused = v2.start_workflow(unknown, Value::Null).await.unwrap_err();
    assert_ne!(refused.code(), foundation_error::ErrorCode::TIMEOUT);
    let stats = stats(&v2).await?;
    assert!(stats.active.is_empty());
    assert_eq!((stats.completed_count, stats.failed_count), (0, 0));
    // An unknown workflow: the deferred reply says so at once.
    assert_eq!(
        v2.when_finished("no-such-workflow", CALL)
            .await
            .unwrap_err()
            .code(),
        foundation_error::ErrorCode::DATA_NOT_FOUND
    );
    // A good start after it, counted when it ends.
    let id = v2.start_workflow(plan(), Value::Null).await?;
    assert_eq!(
        v2.when_finished(&id, Duration::from_secs(60)).await?,
        WorkflowStatus::Completed
    );
    let requests = recorded_outcomes
        .requests
        .lock()
        .expect("not poisoned")
        .clone();
    assert_eq!(
        requests,
        [("v2".to_owned(), false), ("v2".to_owned(), true)]
    );
    app.shutdown().await?;
    engine.shutdown().await
}

#[tokio::test(start_paused = true)]
async fn a_start_under_a_given_id_makes_that_workflow_once() -> Result<(), Error> {
    let clock = clock();
    let store = memory_store();
    let executions = Executions::default();
    let engine = crate::support::engine(
        &store,
        plan_works(
            &executions,
            pause(|| tokio::time::sleep(Duration::from_millis(10))),
        ),
        &clock,
    )
    .await;
    let (app, _v1, v2) = coordinators(&store, &engine, &clock).await?;
    let id = v2
        .start_workflow_with_id("reserved-1", plan(), Value::Null)
        .await?;
    assert_eq!(id, "reserved-1");
    // The same id again, while it runs and after it ended: refused, and
    // counted once.
    let again = v2
        .start_workflow_with_id("reserved-1", plan(), Value::Null)
        .await
        .unwrap_err();
    assert_eq!(again.code(), foundation_error::ErrorCode::ALREADY_EXISTS);
    assert_eq!(
        v2.when_finished(&id, Duration::from_secs(60)).await?,
        WorkflowStatus::Completed
    );
    let late = v2
        .start_workflow_with_id("reserved-1", plan(), Value::Null)
        .await
        .unwrap_err();
    assert_eq!(late.code(), foundation_error::ErrorCode::ALREADY_EXISTS);
    // The refused start's entry was withdrawn before its caller heard.
    let stats = stats(&v2).await?;
    assert!(stats.active.is_empty(), "{:?}", stats.active);
    assert_eq!((stats.completed_count, stats.failed_count), (1, 0));
    assert_eq!(executions.total(), 5);
    let empty = v2
        .start_workflow_with_id("", plan(), Value::Null)
        .await
        .unwrap_err();
    assert_eq!(empty.code(), foundation_error::ErrorCode::INVALID_INPUT);
    app.shutdown().await?;
    engine.shutdown().await
}

/// A store backend that counts (and on command fails, or holds until
/// released) the writes of CoordinatorV2's saved state, and on command
/// fails the engine's journal writes, over an in-memory store.
#[derive(Debug)]
struct WatchedBackend {
    inner: Arc<dyn foundation_persist::Backend>,
    saves: std::sync::atomic::AtomicU64,
    fail: std::sync::atomic::AtomicBool,
    /// Fails every write with a journal append (the engine's).
    fail_journal: std::sync::atomic::AtomicBool,
    /// While true, a coordinator save waits until it turns false.
    hold: tokio::sync::watch::Sender<bool>,
    /// Coordinator saves that began waiting on `hold`.
    held: std::sync::atomic::AtomicU64,
}

impl WatchedBackend {
    fn saves(&self) -> u64 {
        self.saves.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn held(&self) -> u64 {
        self.held.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn is_journal_write(op: &foundation_persist::backend::Op) -> bool {
    matches!(op, foundation_persist::backend::Op::Append { .. })
}

fn is_coordinator_save(op: &foundation_persist::backend::Op) -> bool {
    matches!(op, foundation_persist::backend::Op::Put { keyspace, .. } if keyspace.name() == "agents.coordinator_v2")
}

impl foundation_persist::Backend for WatchedBackend {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn write(
        &self,
        ops: Vec<foundation_persist::backend::Op>,
    ) -> foundation_persist::backend::BackendFuture<'_, Vec<foundation_persist::Outcome>> {
        if self.fail_journal.load(std::sync::atomic::Ordering::SeqCst)
            && ops.iter().any(is_journal_write)
        {
            return Box::pin(std::future::ready(Err(Error::new(
                foundation_error::ErrorCode::STORAGE_FAILURE,
                "injected: the engine's journal write fails",
            ))));
        }
        if ops.iter().any(is_coordinator_save) {
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Box::pin(std::future::ready(Err(Error::new(
                    foundation_error::ErrorCode::STORAGE_FAILURE,
                    "injected: the coordinator's save fails",
                ))));
            }
            if *self.hold.borrow() {
                self.held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut released = self.hold.subscribe();
                return Box::pin(async move {
                    // The sender lives as long as the backend.
                    let _ = released.wait_for(|hold| !*hold).await;
                    self.saves.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    self.inner.write(ops).await
                });
            }
            self.saves.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.write(ops)
    }

    fn get<'a>(
        &'a self,
        keyspace: &'a foundation_persist::backend::StateKeyspace,
        key: &'a str,
    ) -> foundation_persist::backend::BackendFuture<
        'a,
        Option<foundation_persist::backend::StoredValue>,
    > {
        self.inner.get(keyspace, key)
    }

    fn list<'a>(
        &'a self,
        keyspace: &'a foundation_persist::backend::StateKeyspace,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> foundation_persist::backend::BackendFuture<'a, Vec<foundation_persist::backend::StoredEntry>>
    {
        self.inner.list(keyspace, prefix, after, limit)
    }

    fn read_journal<'a>(
        &'a self,
        journal: &'a foundation_persist::backend::JournalKeyspace,
        stream: &'a str,
        from: u64,
        limit: usize,
    ) -> foundation_persist::backend::BackendFuture<'a, Vec<(u64, Vec<u8>)>> {
        self.inner.read_journal(journal, stream, from, limit)
    }

    fn journal_head<'a>(
        &'a self,
        journal: &'a foundation_persist::backend::JournalKeyspace,
        stream: &'a str,
    ) -> foundation_persist::backend::BackendFuture<'a, foundation_persist::StreamHead> {
        self.inner.journal_head(journal, stream)
    }

    fn list_streams<'a>(
        &'a self,
        journal: &'a foundation_persist::backend::JournalKeyspace,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> foundation_persist::backend::BackendFuture<'a, Vec<String>> {
        self.inner.list_streams(journal, prefix, after, limit)
    }

    fn acquire_lease(
        &self,
        name: String,
        owner: String,
        ttl: Duration,
    ) -> foundation_persist::backend::BackendFuture<'_, foundation_persist::Lease> {
        self.inner.acquire_lease(name, owner, ttl)
    }

    fn renew_leases(
        &self,
        leases: Vec<foundation_persist::Lease>,
        ttl: Duration,
    ) -> foundation_persist::backend::BackendFuture<'_, Vec<Result<foundation_persist::Lease, Error>>>
    {
        self.inner.renew_leases(leases, ttl)
    }

    fn release_lease(
        &self,
        lease: foundation_persist::Lease,
    ) -> foundation_persist::backend::BackendFuture<'_, ()> {
        self.inner.release_lease(lease)
    }

    fn claim_expired_leases(
        &self,
        prefix: String,
        owner: String,
        ttl: Duration,
        limit: usize,
    ) -> foundation_persist::backend::BackendFuture<'_, Vec<foundation_persist::Lease>> {
        self.inner.claim_expired_leases(prefix, owner, ttl, limit)
    }

    fn list_leases(
        &self,
        prefix: String,
        after: Option<String>,
        limit: usize,
    ) -> foundation_persist::backend::BackendFuture<'_, Vec<foundation_persist::Lease>> {
        self.inner.list_leases(prefix, after, limit)
    }

    fn changes(&self) -> Result<foundation_persist::Changes, Error> {
        self.inner.changes()
    }

    fn close(&self) -> foundation_persist::backend::BackendFuture<'_, ()> {
        self.inner.close()
    }

    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn watched_store() -> (Store, Arc<WatchedBackend>) {
    let backend = Arc::new(WatchedBackend {
        inner: Arc::clone(memory_store().backend()),
        saves: std::sync::atomic::AtomicU64::new(0),
        fail: std::sync::atomic::AtomicBool::new(false),
        fail_journal: std::sync::atomic::AtomicBool::new(false),
        hold: tokio::sync::watch::channel(false).0,
        held: std::sync::atomic::AtomicU64::new(0),
    });
    let store = Store::with_backend(
        Arc::clone(&backend) as Arc<dyn foundation_persist::Backend>,
        &foundation_persist::StoreOptions::new(),
    );
    (store, backend)
}

#[tokio::test(start_paused = true)]
async fn starts_waiting_in_the_mailbox_share_one_save() -> Result<(), Error> {
    const STARTS: usize = 20;
    let clock = clock();
    let (store, watched) = watched_store();
    let executions = Executions::default();
    // Steps that outlast the test: no workflow ends while it counts.
    let engine = crate::support::engine(
        &store,
        plan_works(
            &executions,
            pause(|| tokio::time::sleep(Duration::from_secs(3600))),
        ),
        &clock,
    )
    .await;
    let (app, _v1, v2) = coordinators(&store, &engine, &clock).await?;
    let before = watched.saves();
    let mut starts = tokio::task::JoinSet::new();
    for _ in 0..STARTS {
        let v2 = v2.clone();
        starts.spawn(async move { v2.start_workflow(plan(), Value::Null).await });
    }
    let mut ids = std::collections::BTreeSet::new();
    while let Some(started) = starts.join_next().await {
        ids.insert(started.expect("a start task")?);
    }
    assert_eq!(ids.len(), STARTS);
    let saves = watched.saves() - before;
    assert!(
        saves < STARTS as u64 / 4,
        "{STARTS} starts queued together took {saves} saves of the coordinator"
    );
    let stats = stats(&v2).await?;
    assert_eq!(
        stats.active.len(),
        STARTS,
        "every start is active and saved"
    );
    app.shutdown().await?;
    engine.shutdown().await
}

#[tokio::test(start_paused = true)]
async fn a_start_the_store_refuses_answers_the_store_error_and_starts_nothing() -> Result<(), Error>
{
    let clock = clock();
    let (store, watched) = watched_store();
    let executions = Executions::default();
    let engine = crate::support::engine(
        &store,
        plan_works(
            &executions,
            pause(|| tokio::time::sleep(Duration::from_millis(10))),
        ),
        &clock,
    )
    .await;
    let (app, _v1, v2) = coordinators(&store, &engine, &clock).await?;
    // The coordinator's save and the engine's start record both fail.
    watched
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    watched
        .fail_journal
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let refused = v2.start_workflow(plan(), Value::Null).await.unwrap_err();
    assert_eq!(
        refused.code(),
        foundation_error::ErrorCode::STORAGE_FAILURE,
        "{refused}"
    );
    let listed = engine.list(&jido_workflow::ListFilter::new()).await?;
    assert!(listed.workflows.is_empty(), "nothing started");
    assert!(stats(&v2).await?.active.is_empty());
    watched
        .fail
        .store(false, std::sync::atomic::Ordering::SeqCst);
    watched
        .fail_journal
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let id = v2.start_workflow(plan(), Value::Null).await?;
    assert_eq!(
        v2.when_finished(&id, Duration::from_secs(60)).await?,
        WorkflowStatus::Completed
    );
    app.shutdown().await?;
    engine.shutdown().await
}

/// The coordinator's save and the engine's start run in parallel. When
/// the engine's start is durable but the save fails, the start succeeds
/// (the workflow exists and runs; an error would invite a second start)
/// and the coordinator adopts the workflow at a later save: its end is
/// counted, once.
#[tokio::test(start_paused = true)]
async fn a_save_that_fails_after_the_start_answers_success_and_the_workflow_is_adopted()
-> Result<(), Error> {
    let clock = clock();
    let (store, watched) = watched_store();
    let executions = Executions::default();
    let engine = crate::support::engine(
        &store,
        plan_works(
            &executions,
            pause(|| tokio::time::sleep(Duration::from_millis(10))),
        ),
        &clock,
    )
    .await;
    let (app, _v1, v2) = coordinators(&store, &engine, &clock).await?;
    watched
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let first = v2.start_workflow(plan(), Value::Null).await?;
    assert!(
        engine.summary_status(&first).await?.is_some(),
        "a success means the workflow is durable in the engine"
    );
    watched
        .fail
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let second = v2.start_workflow(plan(), Value::Null).await?;
    for id in [&first, &second] {
        assert_eq!(
            v2.when_finished(id, Duration::from_secs(60)).await?,
            WorkflowStatus::Completed
        );
    }
    wait_until(
        || async {
            stats(&v2)
                .await
                .is_ok_and(|stats| stats.completed_count == 2)
        },
        Duration::from_secs(60),
    )
    .await?;
    let stats = stats(&v2).await?;
    assert!(stats.active.is_empty(), "{stats:?}");
    assert_eq!(stats.completed_count, 2, "each end counted once: {stats:?}");
    let listed = engine.list(&jido_workflow::ListFilter::new()).await?;
    assert_eq!(listed.workflows.len(), 2, "each workflow started once");
    app.shutdown().await?;
    engine.shutdown().await
}

/// The coordinator killed while its save is on its way, after the engine
/// started the workflow: the start still succeeds, and the coordinator's
/// next instance adopts the workflow and counts its end once.
#[tokio::test(start_paused = true)]
async fn a_coordinator_killed_during_its_save_adopts_the_started_workflow_in_its_next_instance()
-> Result<(), Error> {
    let clock = clock();
    let (store, watched) = watched_store();
    let executions = Executions::default();
    let engine = crate::support::engine(
        &store,
        plan_works(
            &executions,
            pause(|| tokio::time::sleep(Duration::from_millis(10))),
        ),
        &clock,
    )
    .await;
    let (app, _v1, v2) = coordinators(&store, &engine, &clock).await?;
    watched.hold.send_replace(true);
    let starting = {
        let v2 = v2.clone();
        tokio::spawn(async move { v2.start_workflow(plan(), Value::Null).await })
    };
    wait_for(|| watched.held() == 1, Duration::from_secs(10)).await?;
    wait_until(
        || async {
            engine
                .list(&jido_workflow::ListFilter::new())
                .await
                .is_ok_and(|listed| listed.workflows.len() == 1)
        },
        Duration::from_secs(10),
    )
    .await?;
    let incarnation = v2.actor().incarnation();
    assert!(v2.actor().kill(), "the coordinator is killed mid-save");
    watched.hold.send_replace(false);
    let id = starting.await.expect("the start task")?;
    assert_eq!(
        v2.when_finished(&id, Duration::from_secs(60)).await?,
        WorkflowStatus::Completed
    );
    wait_until(
        || async {
            stats(&v2)
                .await
                .is_ok_and(|stats| stats.completed_count == 1)
        },
        Duration::from_secs(60),
    )
    .await?;
    assert!(
        v2.actor().incarnation() > incarnation,
        "a new instance counted it"
    );
    let stats = stats(&v2).await?;
    assert!(stats.active.is_empty(), "{stats:?}");
    assert_eq!(stats.completed_count, 1, "{stats:?}");
    app.shutdown().await?;
    engine.shutdown().await
}
