//! When a supervised process ends for good (issue 9, defects 1, 2 and 7):
//! a failed supervisor start, a dynamic child adopted by an instance that
//! is gone, a child that will not be restarted. In each case handles fail
//! at once, monitors fire and registry names are freed.

use std::sync::Arc;
use std::time::Duration;

use foundation_core::registry::{Metadata, Registry};
use foundation_core::testkit::wait_for;
use foundation_core::{
    ChildSpec, DynamicSupervisor, ExitReason, ProcessStatus, Restart, SendErrorKind, Shutdown,
    Supervisor,
};
use foundation_error::ErrorCode;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::support::{Probe, ProbeArgs, ProbeCall, ProbeCast};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(start_paused = true)]
async fn a_failed_supervisor_start_ends_every_child_process() {
    let mut builder = Supervisor::builder("broken");
    let fine = ChildSpec::<Probe>::new("fine", ProbeArgs::named("fine"));
    let bad = ChildSpec::<Probe>::new(
        "bad",
        ProbeArgs {
            fail_init: true,
            ..ProbeArgs::named("bad")
        },
    );
    let later = ChildSpec::<Probe>::new("later", ProbeArgs::named("later"));
    let handles = [fine.handle(), bad.handle(), later.handle()];
    let monitors: Vec<_> = handles.iter().map(|handle| handle.monitor()).collect();
    builder.child(fine).child(bad).child(later);

    let error = builder.start().await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::INITIALIZATION_FAILED);
    for monitor in monitors {
        monitor.wait_timeout(WAIT).await.unwrap();
    }
    let started = Instant::now();
    for handle in &handles {
        assert!(!handle.is_alive());
        assert_eq!(handle.status(), ProcessStatus::Closed);
        let error = handle.call(ProbeCall::Get).await.unwrap_err();
        assert_eq!(error.code(), ErrorCode::PROCESS_NOT_ALIVE);
        let refused = handle.try_cast(ProbeCast::Add(1)).unwrap_err();
        assert_eq!(refused.kind, SendErrorKind::Closed);
    }
    // The calls failed at once, not after their timeout.
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_dynamic_child_ends_with_the_supervisor_instance_that_accepted_it() {
    let mut dynamic = DynamicSupervisor::<Probe>::builder("jobs");
    dynamic.shutdown(Shutdown::Infinity).max_children(2);
    let (spec, jobs) = dynamic.into_child_spec("jobs").unwrap();
    let mut root = Supervisor::builder("root");
    root.child(spec);
    let root = root.start().await.unwrap();

    // The jobs supervisor gets stuck stopping a blocked child...
    let blocked = jobs.start_child(ProbeArgs::named("blocked")).await.unwrap();
    let gate = Arc::new(Notify::new());
    blocked
        .cast(ProbeCast::Block(Arc::clone(&gate)))
        .await
        .unwrap();
    let terminating = {
        let (jobs, blocked) = (jobs.clone(), blocked.clone());
        tokio::spawn(async move { jobs.terminate_child(&blocked).await })
    };
    tokio::task::yield_now().await;
    // ... while a new child is accepted (its adoption is queued behind) ...
    let accepted = jobs
        .start_child(ProbeArgs::named("accepted"))
        .await
        .unwrap();
    let monitor = accepted.monitor();
    // ... and then that supervisor instance is killed and restarted.
    let incarnation = jobs.supervisor().process().incarnation();
    assert!(jobs.supervisor().process().kill());
    wait_for(
        || jobs.supervisor().process().incarnation() == incarnation + 1,
        WAIT,
    )
    .await
    .unwrap();

    let down = monitor.wait_timeout(WAIT).await.unwrap();
    assert!(down.reason.is_normal() || matches!(down.reason, ExitReason::Killed));
    assert!(!accepted.is_alive());
    assert!(!blocked.is_alive());
    assert_eq!(jobs.count_children().await.unwrap().specs, 0);
    assert!(terminating.await.unwrap().is_err());
    // Both slots came back once each: two children fit, a third does not.
    // (The new instance ended the accepted child at its start, then
    // handled its queued adoption: that gave the slot back a second time,
    // the count wrapped below zero and the next start overflowed.)
    let first = jobs.start_child(ProbeArgs::named("first")).await.unwrap();
    let second = jobs.start_child(ProbeArgs::named("second")).await.unwrap();
    let refused = jobs
        .start_child(ProbeArgs::named("third"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::RESOURCE_EXHAUSTED);
    assert!(first.is_alive() && second.is_alive());
    root.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_transient_child_that_exits_normally_ends_for_good() {
    let registry = Registry::new();
    let mut builder = Supervisor::builder("app");
    let mut spec = ChildSpec::<Probe>::new("worker", ProbeArgs::named("worker"));
    spec.restart(Restart::Transient);
    let worker = spec.handle();
    builder.child(spec);
    let app = builder.start().await.unwrap();
    registry
        .register("worker", &worker, Metadata::new())
        .unwrap();
    let monitor = worker.monitor();

    worker
        .cast(ProbeCast::Stop(ExitReason::Normal))
        .await
        .unwrap();
    let down = monitor.wait_timeout(WAIT).await.unwrap();
    assert!(
        matches!(down.reason, ExitReason::Normal),
        "{:?}",
        down.reason
    );
    assert!(!worker.is_alive());
    assert!(registry.whereis("worker").is_none());
    assert_eq!(
        worker.call(ProbeCall::Get).await.unwrap_err().code(),
        ErrorCode::PROCESS_NOT_ALIVE
    );

    // The spec is kept; restarting it starts a new process.
    app.restart_child("worker").await.unwrap();
    let children = app.which_children().await.unwrap();
    let fresh = children[0].process.downcast::<Probe>().unwrap();
    assert_ne!(fresh.id(), worker.id());
    assert_eq!(fresh.call(ProbeCall::Add(2)).await.unwrap(), 2);
    app.shutdown().await.unwrap();
    assert!(!fresh.is_alive());
}

#[tokio::test(start_paused = true)]
async fn a_temporary_child_ends_for_good_after_any_exit() {
    for reason in [ExitReason::Normal, ExitReason::Shutdown] {
        let registry = Registry::new();
        let mut builder = Supervisor::builder("app");
        let mut spec = ChildSpec::<Probe>::new("once", ProbeArgs::named("once"));
        spec.restart(Restart::Temporary);
        let once = spec.handle();
        builder.child(spec);
        let app = builder.start().await.unwrap();
        registry.register("once", &once, Metadata::new()).unwrap();
        let monitor = once.monitor();
        once.cast(ProbeCast::Stop(reason.clone())).await.unwrap();
        let down = monitor.wait_timeout(WAIT).await.unwrap();
        assert_eq!(down.reason.label(), reason.label());
        assert!(!once.is_alive());
        assert!(registry.whereis("once").is_none());
        assert_eq!(app.count_children().await.unwrap().specs, 0);
        app.shutdown().await.unwrap();
    }
    // And after a crash.
    let mut builder = Supervisor::builder("app");
    let mut spec = ChildSpec::<Probe>::new("once", ProbeArgs::named("once"));
    spec.restart(Restart::Temporary);
    let once = spec.handle();
    builder.child(spec);
    let app = builder.start().await.unwrap();
    let monitor = once.monitor();
    once.cast(ProbeCast::Panic).await.unwrap();
    let down = monitor.wait_timeout(WAIT).await.unwrap();
    assert_eq!(down.reason.label(), "panic");
    app.shutdown().await.unwrap();
}
