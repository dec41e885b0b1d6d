use std::sync::Arc;
use std::time::Duration;

use foundation_core::testkit::{EventCollector, crash_and_wait_restart, sync, wait_for};
use foundation_core::{
    ActorRef, AutoShutdown, ChildKind, ChildSpec, ChildStatus, ExitReason, ProcessStatus, Restart,
    Shutdown, Strategy, Supervisor, SupervisorEventKind, SupervisorRef,
};
use foundation_error::ErrorCode;
use tokio::sync::{Notify, mpsc};

use crate::support::{Probe, ProbeArgs, ProbeCall, ProbeCast, next_event};

const WAIT: Duration = Duration::from_secs(5);

struct Tree {
    supervisor: SupervisorRef,
    children: Vec<ActorRef<Probe>>,
    events: mpsc::UnboundedReceiver<String>,
}

/// a: permanent, b: transient, c: temporary, d: permanent.
async fn four_children(strategy: Strategy) -> Tree {
    let (events, received) = mpsc::unbounded_channel();
    let mut builder = Supervisor::builder("matrix");
    builder
        .strategy(strategy)
        .intensity(10, Duration::from_secs(5));
    let mut children = Vec::new();
    for (name, restart) in [
        ("a", Restart::Permanent),
        ("b", Restart::Transient),
        ("c", Restart::Temporary),
        ("d", Restart::Permanent),
    ] {
        let events = events.clone();
        let mut spec =
            ChildSpec::<Probe>::from_fn(name, move || ProbeArgs::reporting(name, &events));
        spec.restart(restart);
        children.push(spec.handle());
        builder.child(spec);
    }
    let supervisor = builder.start().await.unwrap();
    Tree {
        supervisor,
        children,
        events: received,
    }
}

/// Each child's (status, incarnation) once the supervisor is idle again.
async fn settle(tree: &mut Tree) -> Vec<(ProcessStatus, u64)> {
    // Two round trips: the exit report and any retry are handled by then.
    tree.supervisor.count_children().await.unwrap();
    tree.supervisor.count_children().await.unwrap();
    tree.children
        .iter()
        .map(|child| (child.status(), child.incarnation()))
        .collect()
}

async fn crash(child: &ActorRef<Probe>) {
    child.cast(ProbeCast::Panic).await.unwrap();
}

use ProcessStatus::{Closed, Running, Stopped};

#[tokio::test(start_paused = true)]
async fn one_for_one_restarts_only_the_crashed_child() {
    let mut tree = four_children(Strategy::OneForOne).await;
    crash(&tree.children[1]).await;
    wait_for(|| tree.children[1].incarnation() == 2, WAIT)
        .await
        .unwrap();
    assert_eq!(
        settle(&mut tree).await,
        vec![(Running, 1), (Running, 2), (Running, 1), (Running, 1)]
    );
}

#[tokio::test(start_paused = true)]
async fn one_for_one_never_restarts_a_temporary_child() {
    let mut tree = four_children(Strategy::OneForOne).await;
    crash(&tree.children[2]).await;
    wait_for(|| tree.children[2].status() == Closed, WAIT)
        .await
        .unwrap();
    assert_eq!(
        settle(&mut tree).await,
        vec![(Running, 1), (Running, 1), (Closed, 1), (Running, 1)]
    );
    assert_eq!(tree.supervisor.count_children().await.unwrap().specs, 3);
}

#[tokio::test(start_paused = true)]
async fn a_transient_child_that_exits_normally_is_not_restarted() {
    for strategy in [
        Strategy::OneForOne,
        Strategy::OneForAll,
        Strategy::RestForOne,
    ] {
        let mut tree = four_children(strategy).await;
        tree.children[1]
            .cast(ProbeCast::Stop(ExitReason::Normal))
            .await
            .unwrap();
        wait_for(|| tree.children[1].status() == Closed, WAIT)
            .await
            .unwrap();
        assert_eq!(
            settle(&mut tree).await,
            vec![(Running, 1), (Closed, 1), (Running, 1), (Running, 1)],
            "{strategy:?}"
        );
        // Its process ended for good: it refuses messages at once.
        let error = tree.children[1].call(ProbeCall::Get).await.unwrap_err();
        assert_eq!(error.code(), ErrorCode::PROCESS_NOT_ALIVE);
    }
}

#[tokio::test(start_paused = true)]
async fn one_for_all_restarts_everyone_but_the_temporary_child() {
    let mut tree = four_children(Strategy::OneForAll).await;
    crash(&tree.children[0]).await;
    wait_for(|| tree.children[3].incarnation() == 2, WAIT)
        .await
        .unwrap();
    assert_eq!(
        settle(&mut tree).await,
        vec![(Running, 2), (Running, 2), (Closed, 1), (Running, 2)]
    );
}

#[tokio::test(start_paused = true)]
async fn group_strategies_do_not_react_to_a_temporary_child_exit() {
    for strategy in [Strategy::OneForAll, Strategy::RestForOne] {
        let mut tree = four_children(strategy).await;
        crash(&tree.children[2]).await;
        wait_for(|| tree.children[2].status() == Closed, WAIT)
            .await
            .unwrap();
        assert_eq!(
            settle(&mut tree).await,
            vec![(Running, 1), (Running, 1), (Closed, 1), (Running, 1)],
            "{strategy:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn rest_for_one_restarts_the_child_and_the_ones_after_it() {
    let mut tree = four_children(Strategy::RestForOne).await;
    crash(&tree.children[1]).await;
    wait_for(|| tree.children[3].incarnation() == 2, WAIT)
        .await
        .unwrap();
    assert_eq!(
        settle(&mut tree).await,
        vec![(Running, 1), (Running, 2), (Closed, 1), (Running, 2)]
    );
}

#[tokio::test(start_paused = true)]
async fn children_start_in_order_and_stop_in_reverse() {
    let mut tree = four_children(Strategy::OneForOne).await;
    for name in ["a", "b", "c", "d"] {
        assert_eq!(next_event(&mut tree.events).await, format!("init {name}"));
    }
    tree.supervisor.shutdown().await.unwrap();
    for name in ["d", "c", "b", "a"] {
        assert_eq!(
            next_event(&mut tree.events).await,
            format!("terminate {name} shutdown")
        );
    }
    for child in &tree.children {
        assert_eq!(child.status(), Closed);
    }
}

#[tokio::test(start_paused = true)]
async fn the_old_instance_terminates_before_the_new_one_initialises() {
    let mut tree = four_children(Strategy::OneForOne).await;
    for _ in 0..4 {
        next_event(&mut tree.events).await;
    }
    tree.children[0].cast(ProbeCast::Fail).await.unwrap();
    assert_eq!(next_event(&mut tree.events).await, "terminate a error");
    assert_eq!(next_event(&mut tree.events).await, "init a");
}

#[tokio::test(start_paused = true)]
async fn handles_stay_valid_and_queued_casts_survive_a_restart() {
    let mut tree = four_children(Strategy::OneForOne).await;
    let a = tree.children[0].clone();
    a.call(ProbeCall::Add(5)).await.unwrap();
    let gate = Arc::new(Notify::new());
    a.cast(ProbeCast::Block(Arc::clone(&gate))).await.unwrap();
    a.cast(ProbeCast::Panic).await.unwrap();
    a.cast(ProbeCast::Add(2)).await.unwrap();
    a.cast(ProbeCast::Add(3)).await.unwrap();
    gate.notify_one();
    wait_for(|| a.incarnation() == 2, WAIT).await.unwrap();
    // The restarted instance starts from its args (count 0) and handles
    // the casts that were queued behind the crash.
    assert_eq!(a.call(ProbeCall::Get).await.unwrap(), 5);
    let _ = settle(&mut tree).await;
}

#[tokio::test(start_paused = true)]
async fn the_fourth_crash_within_the_period_escalates_to_the_parent() {
    let (events, _received) = mpsc::unbounded_channel();
    let mut inner = Supervisor::builder("inner");
    let mut worker =
        ChildSpec::<Probe>::from_fn("worker", move || ProbeArgs::reporting("w", &events));
    worker.restart(Restart::Permanent);
    let worker_handle = worker.handle();
    inner.child(worker);
    let (inner_spec, inner_ref) = inner.into_child_spec("inner").unwrap();

    let mut outer = Supervisor::builder("outer");
    outer.intensity(3, Duration::from_secs(5));
    outer.child(inner_spec);
    let outer = outer.start().await.unwrap();
    let mut collected = EventCollector::new(&outer.event_bus());

    // Three crashes within the period are absorbed by the inner supervisor.
    for expected in 2..=4 {
        crash_and_wait_restart(&worker_handle, WAIT).await.unwrap();
        assert_eq!(worker_handle.incarnation(), expected);
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert_eq!(inner_ref.process().incarnation(), 1);

    // The fourth within 5 s exceeds 3 restarts: the inner supervisor gives
    // up, the outer one restarts it, and the worker comes back under the
    // same handle.
    worker_handle.cast(ProbeCast::Panic).await.unwrap();
    wait_for(|| inner_ref.process().incarnation() == 2, WAIT)
        .await
        .unwrap();
    wait_for(|| worker_handle.status() == Running, WAIT)
        .await
        .unwrap();
    assert_eq!(worker_handle.call(ProbeCall::Get).await.unwrap(), 0);
    let escalations = collected.count(|event| {
        matches!(event.kind, SupervisorEventKind::IntensityExceeded { .. })
            && &*event.supervisor == "inner"
    });
    assert_eq!(escalations, 1);
    let inner_exits = collected.count(|event| {
        matches!(event.kind, SupervisorEventKind::ChildExited { .. }) && &*event.child == "inner"
    });
    assert_eq!(inner_exits, 1);
}

#[tokio::test(start_paused = true)]
async fn crashes_spread_wider_than_the_period_never_escalate() {
    let mut builder = Supervisor::builder("steady");
    builder.intensity(3, Duration::from_secs(5));
    let worker = ChildSpec::<Probe>::from_fn("worker", || ProbeArgs::named("w"));
    let handle = worker.handle();
    builder.child(worker);
    let supervisor = builder.start().await.unwrap();
    for round in 0..20u64 {
        crash_and_wait_restart(&handle, WAIT).await.unwrap();
        assert_eq!(handle.incarnation(), round + 2);
        tokio::time::advance(Duration::from_secs(2)).await;
    }
    assert_eq!(supervisor.process().status(), Running);
}

#[tokio::test(start_paused = true)]
async fn exceeding_the_intensity_stops_a_top_level_supervisor_and_its_children() {
    let mut builder = Supervisor::builder("fragile");
    builder.intensity(1, Duration::from_secs(5));
    let worker = ChildSpec::<Probe>::from_fn("worker", || ProbeArgs::named("w"));
    let handle = worker.handle();
    builder.child(worker);
    let supervisor = builder.start().await.unwrap();
    let monitor = supervisor.process();
    let down = monitor_down(&monitor);
    crash_and_wait_restart(&handle, WAIT).await.unwrap();
    handle.cast(ProbeCast::Panic).await.unwrap();
    let down = down.wait_timeout(WAIT).await.unwrap();
    assert!(matches!(down.reason, ExitReason::Shutdown));
    assert_eq!(handle.status(), Closed);
}

fn monitor_down(process: &foundation_core::ProcessRef) -> foundation_core::Monitor {
    foundation_core::Monitor::new(process)
}

/// An actor whose terminate never finishes.
struct Stubborn;

impl foundation_core::Actor for Stubborn {
    type Args = mpsc::UnboundedSender<String>;
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = ();
    async fn init(
        events: Self::Args,
        _ctx: &mut foundation_core::Context<Self>,
    ) -> Result<Self, foundation_error::Error> {
        let _ = events.send("init stubborn".to_owned());
        Ok(Stubborn)
    }
    async fn terminate(&mut self, _reason: &ExitReason, _ctx: &mut foundation_core::Context<Self>) {
        std::future::pending::<()>().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_child_that_ignores_shutdown_is_aborted_after_its_timeout() {
    let (events, mut received) = mpsc::unbounded_channel();
    let mut builder = Supervisor::builder("patient");
    let first = events.clone();
    builder.child(ChildSpec::<Probe>::from_fn("first", move || {
        ProbeArgs::reporting("first", &first)
    }));
    let mut stubborn = ChildSpec::<Stubborn>::from_fn("stubborn", move || events.clone());
    stubborn.shutdown(Shutdown::Timeout(Duration::from_secs(2)));
    builder.child(stubborn);
    let supervisor = builder.start().await.unwrap();
    let mut collected = EventCollector::new(&supervisor.event_bus());

    let started = tokio::time::Instant::now();
    supervisor.shutdown().await.unwrap();
    // The stubborn child (stopped first, being last) took its full 2 s.
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    let reasons: Vec<(String, &'static str)> = collected
        .events()
        .iter()
        .filter_map(|event| match &event.kind {
            SupervisorEventKind::ChildExited { reason, .. } => {
                Some((event.child.to_string(), reason.label()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("stubborn".to_owned(), "killed"),
            ("first".to_owned(), "shutdown")
        ]
    );
    assert_eq!(next_event(&mut received).await, "init first");
}

#[tokio::test(start_paused = true)]
async fn a_failing_child_init_fails_the_start_and_names_the_child() {
    let (events, mut received) = mpsc::unbounded_channel();
    let mut builder = Supervisor::builder("broken");
    let ok_events = events.clone();
    builder.child(ChildSpec::<Probe>::from_fn("fine", move || {
        ProbeArgs::reporting("fine", &ok_events)
    }));
    builder.child(ChildSpec::<Probe>::from_fn("bad", move || ProbeArgs {
        fail_init: true,
        ..ProbeArgs::reporting("bad", &events)
    }));
    let error = builder.start().await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::INITIALIZATION_FAILED);
    assert_eq!(error.context_value("child"), Some("bad"));
    assert!(error.message().contains("bad"), "{error}");
    assert_eq!(next_event(&mut received).await, "init fine");
    assert_eq!(next_event(&mut received).await, "init bad");
    assert_eq!(next_event(&mut received).await, "terminate fine shutdown");
}

#[tokio::test(start_paused = true)]
async fn invalid_specs_are_rejected() {
    let mut builder = Supervisor::builder("dup");
    builder.child(ChildSpec::<Probe>::from_fn("x", || ProbeArgs::named("x")));
    builder.child(ChildSpec::<Probe>::from_fn("x", || ProbeArgs::named("x")));
    assert_eq!(
        builder.start().await.unwrap_err().code(),
        ErrorCode::ALREADY_EXISTS
    );

    let mut builder = Supervisor::builder("significant");
    let mut spec = ChildSpec::<Probe>::from_fn("x", || ProbeArgs::named("x"));
    spec.restart(Restart::Transient).significant(true);
    builder.child(spec);
    assert_eq!(
        builder.start().await.unwrap_err().code(),
        ErrorCode::INVALID_CONFIG_VALUE
    );

    let mut builder = Supervisor::builder("zero");
    builder.intensity(3, Duration::ZERO);
    assert_eq!(
        builder.start().await.unwrap_err().code(),
        ErrorCode::INVALID_CONFIG_VALUE
    );
}

#[tokio::test(start_paused = true)]
async fn introspection_and_control() {
    let mut tree = four_children(Strategy::OneForOne).await;
    let supervisor = tree.supervisor.clone();
    let children = supervisor.which_children().await.unwrap();
    let ids: Vec<&str> = children.iter().map(|child| child.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c", "d"]);
    assert!(
        children
            .iter()
            .all(|child| child.status == ChildStatus::Running)
    );
    assert!(children.iter().all(|child| child.kind == ChildKind::Worker));
    let counts = supervisor.count_children().await.unwrap();
    assert_eq!((counts.specs, counts.active, counts.workers), (4, 4, 4));

    supervisor.terminate_child("a").await.unwrap();
    assert_eq!(tree.children[0].status(), Stopped);
    assert_eq!(supervisor.count_children().await.unwrap().active, 3);
    assert_eq!(
        supervisor.delete_child("b").await.unwrap_err().code(),
        ErrorCode::INVALID_STATE_TRANSITION
    );
    supervisor.restart_child("a").await.unwrap();
    assert_eq!(tree.children[0].incarnation(), 2);
    assert_eq!(tree.children[0].call(ProbeCall::Get).await.unwrap(), 0);

    supervisor.terminate_child("a").await.unwrap();
    supervisor.delete_child("a").await.unwrap();
    assert_eq!(tree.children[0].status(), Closed);
    assert_eq!(
        supervisor.restart_child("a").await.unwrap_err().code(),
        ErrorCode::DATA_NOT_FOUND
    );

    // Terminating a temporary child deletes it.
    supervisor.terminate_child("c").await.unwrap();
    assert_eq!(tree.children[2].status(), Closed);

    let extra = ChildSpec::<Probe>::from_fn("e", || ProbeArgs::named("e"));
    let extra_handle = extra.handle();
    supervisor.start_child(extra).await.unwrap();
    assert_eq!(extra_handle.call(ProbeCall::Add(1)).await.unwrap(), 1);
    let duplicate = ChildSpec::<Probe>::from_fn("e", || ProbeArgs::named("e"));
    assert_eq!(
        supervisor.start_child(duplicate).await.unwrap_err().code(),
        ErrorCode::ALREADY_EXISTS
    );
    let ids: Vec<String> = supervisor
        .which_children()
        .await
        .unwrap()
        .into_iter()
        .map(|child| child.id)
        .collect();
    assert_eq!(ids, ["b", "d", "e"]);
    let _ = settle(&mut tree).await;
}

#[tokio::test(start_paused = true)]
async fn any_significant_child_exit_shuts_the_supervisor_down() {
    let mut builder = Supervisor::builder("job");
    builder.auto_shutdown(AutoShutdown::AnySignificant);
    let mut main = ChildSpec::<Probe>::from_fn("main", || ProbeArgs::named("main"));
    main.restart(Restart::Transient).significant(true);
    let main_handle = main.handle();
    let helper = ChildSpec::<Probe>::from_fn("helper", || ProbeArgs::named("helper"));
    let helper_handle = helper.handle();
    builder.child(main).child(helper);
    let supervisor = builder.start().await.unwrap();
    let down = supervisor.process();
    let down = monitor_down(&down);
    main_handle
        .cast(ProbeCast::Stop(ExitReason::Normal))
        .await
        .unwrap();
    let down = down.wait_timeout(WAIT).await.unwrap();
    assert!(matches!(down.reason, ExitReason::Shutdown));
    assert_eq!(helper_handle.status(), Closed);
}

#[tokio::test(start_paused = true)]
async fn supervisor_events_and_the_sync_barrier() {
    let tree = four_children(Strategy::OneForOne).await;
    let mut collected = EventCollector::new(&tree.supervisor.event_bus());
    crash_and_wait_restart(&tree.children[3], WAIT)
        .await
        .unwrap();
    sync(&tree.children[3]).await.unwrap();
    collected
        .wait_for(
            |events| {
                events.iter().any(|event| {
                    matches!(
                        event.kind,
                        SupervisorEventKind::ChildRestarted { incarnation: 2, .. }
                    )
                })
            },
            WAIT,
        )
        .await
        .unwrap();
    let kinds: Vec<&str> = collected
        .events()
        .iter()
        .map(|event| match event.kind {
            SupervisorEventKind::ChildExited { .. } => "exited",
            SupervisorEventKind::ChildStarted { .. } => "started",
            SupervisorEventKind::ChildRestarted { .. } => "restarted",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["exited", "started", "restarted"]);
    assert!(collected.events().iter().all(|event| &*event.child == "d"));
}

#[tokio::test(start_paused = true)]
async fn the_restart_window_runs_on_the_supervisors_clock() {
    let clock = Arc::new(foundation_core::clock::ManualClock::new());
    let mut builder = Supervisor::builder("clocked");
    builder
        .intensity(1, Duration::from_secs(5))
        .clock(clock.clone());
    let worker = ChildSpec::<Probe>::new("worker", ProbeArgs::named("worker"));
    let handle = worker.handle();
    builder.child(worker);
    let app = builder.start().await.unwrap();
    let mut events = EventCollector::new(&app.event_bus());

    // Restarts 10 s apart on the manual clock never exceed 1 in 5 s,
    // whatever tokio's clock says.
    for expected in 2..=4 {
        clock.advance(Duration::from_secs(10));
        assert_eq!(
            crash_and_wait_restart(&handle, WAIT).await.unwrap(),
            expected
        );
    }
    let stamps: Vec<Duration> = events
        .events()
        .iter()
        .filter(|event| matches!(event.kind, SupervisorEventKind::ChildRestarted { .. }))
        .map(|event| event.at)
        .collect();
    assert_eq!(
        stamps,
        [10, 20, 30].map(Duration::from_secs).to_vec(),
        "events are stamped on the supervisor's clock"
    );

    // A second restart at the same manual instant exceeds it, however
    // much tokio time passes.
    let monitor = app.monitor();
    tokio::time::advance(Duration::from_secs(60)).await;
    handle.stop(ExitReason::Error(foundation_error::Error::system("again")));
    monitor.wait_timeout(WAIT).await.unwrap();
    assert!(!handle.is_alive());
}

#[tokio::test(start_paused = true)]
async fn child_specs_are_written_inline() {
    let mut builder = Supervisor::builder("inline");
    builder
        .child(ChildSpec::<Probe>::new("a", ProbeArgs::named("a")).restart(Restart::Transient))
        .child(
            ChildSpec::<Probe>::from_fn("b", || ProbeArgs::named("b"))
                .shutdown(Shutdown::BrutalKill),
        );
    let app = builder.start().await.unwrap();
    let children = app.which_children().await.unwrap();
    assert_eq!(children.len(), 2);
    assert_eq!(children[0].restart, Restart::Transient);
    let a = children[0].process.downcast::<Probe>().unwrap();
    assert_eq!(a.call(ProbeCall::Add(3)).await.unwrap(), 3);
    app.shutdown().await.unwrap();
    assert!(!a.is_alive());
}
