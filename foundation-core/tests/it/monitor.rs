use foundation_core::{Actor, ActorRef, Context, Down, ExitReason, ProcessRef, spawn};
use foundation_error::Error;

use crate::support::{Probe, ProbeArgs, ProbeCast};

/// Monitors whatever it is told to, and counts the downs it receives.
struct Watcher {
    downs: usize,
}

enum WatcherCall {
    Watch(ProcessRef),
    /// Monitors the process, stops it, waits until its `Down` is queued
    /// for this instance, then crashes before handling it.
    WatchStopAndCrash(ProcessRef),
    LiveMonitors,
    Downs,
}

impl Actor for Watcher {
    type Args = ();
    type Call = WatcherCall;
    type Reply = usize;
    type Cast = ();
    type Info = ();

    async fn init(_: (), _ctx: &mut Context<Self>) -> Result<Self, Error> {
        Ok(Watcher { downs: 0 })
    }

    async fn handle_call(
        &mut self,
        call: WatcherCall,
        ctx: &mut Context<Self>,
    ) -> Result<usize, Error> {
        Ok(match call {
            WatcherCall::Watch(process) => {
                ctx.monitor(process);
                ctx.monitor_count()
            }
            WatcherCall::WatchStopAndCrash(process) => {
                ctx.monitor(process.clone());
                // Registered after the actor's own monitor, so it fires
                // after that monitor queued its `Down`.
                let gone = process.monitor();
                process.stop(ExitReason::Normal);
                gone.wait_timeout(std::time::Duration::from_secs(5)).await?;
                ctx.stop(ExitReason::Error(Error::system(
                    "crashed with a Down queued",
                )));
                0
            }
            WatcherCall::LiveMonitors => ctx.monitor_count(),
            WatcherCall::Downs => self.downs,
        })
    }

    async fn handle_down(&mut self, _down: Down, _ctx: &mut Context<Self>) -> Result<(), Error> {
        self.downs += 1;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_monitored_actors_die_and_no_monitor_is_left() {
    let watcher = spawn::<Watcher>(()).await.unwrap();
    let mut targets: Vec<ActorRef<Probe>> = Vec::new();
    let mut plain_monitors = Vec::new();
    for index in 0..1_000 {
        let target = spawn::<Probe>(ProbeArgs::named(&format!("t{index}")))
            .await
            .unwrap();
        watcher
            .call(WatcherCall::Watch(target.process()))
            .await
            .unwrap();
        plain_monitors.push(target.monitor());
        targets.push(target);
    }
    let live: usize = targets.iter().map(ActorRef::monitor_count).sum();
    assert_eq!(live, 2_000);
    assert_eq!(
        watcher.call(WatcherCall::LiveMonitors).await.unwrap(),
        1_000
    );

    for (index, target) in targets.iter().enumerate() {
        if index % 2 == 0 {
            target.cast(ProbeCast::Panic).await.unwrap();
        } else {
            target.stop(ExitReason::Normal);
        }
    }
    for monitor in plain_monitors {
        monitor
            .wait_timeout(std::time::Duration::from_secs(10))
            .await
            .unwrap();
    }
    foundation_core::testkit::wait_for_state(
        &watcher,
        |watcher| watcher.downs == 1_000,
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap();
    let live: usize = targets.iter().map(ActorRef::monitor_count).sum();
    assert_eq!(live, 0);
    assert_eq!(watcher.call(WatcherCall::LiveMonitors).await.unwrap(), 0);
    assert_eq!(watcher.call(WatcherCall::Downs).await.unwrap(), 1_000);
}

#[tokio::test]
async fn dropping_a_monitor_releases_it() {
    let target = spawn::<Probe>(ProbeArgs::named("t")).await.unwrap();
    let monitors: Vec<_> = (0..10).map(|_| target.monitor()).collect();
    assert_eq!(target.monitor_count(), 10);
    drop(monitors);
    assert_eq!(target.monitor_count(), 0);
}

#[tokio::test]
async fn monitoring_an_ended_process_resolves_at_once() {
    let target = spawn::<Probe>(ProbeArgs::named("t")).await.unwrap();
    let first = target.monitor();
    target.cast(ProbeCast::Fail).await.unwrap();
    let down = first.await;
    assert_eq!(down.reason.label(), "error");
    let late = target.monitor();
    assert_eq!(late.await.reason.label(), "error");
    assert_eq!(target.monitor_count(), 0);
}

#[tokio::test]
async fn a_watcher_that_dies_releases_its_monitors() {
    let watcher = spawn::<Watcher>(()).await.unwrap();
    let target = spawn::<Probe>(ProbeArgs::named("t")).await.unwrap();
    watcher
        .call(WatcherCall::Watch(target.process()))
        .await
        .unwrap();
    assert_eq!(target.monitor_count(), 1);
    let gone = watcher.monitor();
    watcher.stop(ExitReason::Normal);
    gone.await;
    assert_eq!(target.monitor_count(), 0);
}

/// Keeps the `MonitorRef` it gets, and releases it on request.
struct Keeper {
    kept: Option<foundation_core::MonitorRef>,
}

impl Actor for Keeper {
    type Args = ();
    type Call = Option<ProcessRef>;
    type Reply = bool;
    type Cast = ();
    type Info = ();

    async fn init(_: (), _ctx: &mut Context<Self>) -> Result<Self, Error> {
        Ok(Keeper { kept: None })
    }

    /// `Some`: monitor it and keep the ref; `None`: demonitor the kept one.
    async fn handle_call(
        &mut self,
        call: Option<ProcessRef>,
        ctx: &mut Context<Self>,
    ) -> Result<bool, Error> {
        Ok(match call {
            Some(process) => {
                self.kept = Some(ctx.monitor(process));
                true
            }
            None => self.kept.take().is_some_and(|kept| ctx.demonitor(kept)),
        })
    }
}

#[tokio::test]
async fn an_actor_stores_its_monitor_ref_and_releases_it_later() {
    let keeper = spawn::<Keeper>(()).await.unwrap();
    let target = spawn::<Probe>(ProbeArgs::named("t")).await.unwrap();
    assert!(keeper.call(Some(target.process())).await.unwrap());
    assert_eq!(target.monitor_count(), 1);
    assert!(keeper.call(None).await.unwrap());
    assert_eq!(target.monitor_count(), 0);
    assert!(!keeper.call(None).await.unwrap());
}

#[tokio::test]
async fn process_refs_and_supervisor_refs_can_be_monitored() {
    let target = spawn::<Probe>(ProbeArgs::named("t")).await.unwrap();
    let monitor = target.process().monitor();
    target.stop(ExitReason::Normal);
    assert!(monitor.await.reason.is_normal());

    let app = foundation_core::Supervisor::builder("app")
        .start()
        .await
        .unwrap();
    let monitor = app.monitor();
    app.shutdown().await.unwrap();
    assert!(monitor.await.reason.is_normal());
}

#[tokio::test(start_paused = true)]
async fn a_down_queued_for_a_crashed_instance_never_reaches_its_successor() {
    let spec = foundation_core::ChildSpec::<Watcher>::new("watcher", ());
    let watcher = spec.handle();
    let mut builder = foundation_core::Supervisor::builder("app");
    builder.child(spec);
    let _app = builder.start().await.unwrap();
    let target = spawn::<Probe>(ProbeArgs::named("t")).await.unwrap();
    let before = watcher.incarnation();

    watcher
        .call(WatcherCall::WatchStopAndCrash(target.process()))
        .await
        .unwrap();
    foundation_core::testkit::wait_for(
        || watcher.incarnation() > before,
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();

    // The restarted instance never monitored anything, so the `Down` its
    // predecessor left queued is not its to handle.
    assert_eq!(watcher.call(WatcherCall::Downs).await.unwrap(), 0);
    assert_eq!(watcher.call(WatcherCall::LiveMonitors).await.unwrap(), 0);
}

#[tokio::test]
async fn an_actor_monitoring_an_ended_process_gets_its_down() {
    let watcher = spawn::<Watcher>(()).await.unwrap();
    let target = spawn::<Probe>(ProbeArgs::named("t")).await.unwrap();
    let gone = target.monitor();
    target.stop(ExitReason::Normal);
    gone.await;
    watcher
        .call(WatcherCall::Watch(target.process()))
        .await
        .unwrap();
    foundation_core::testkit::wait_for_state(
        &watcher,
        |watcher| watcher.downs == 1,
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(watcher.call(WatcherCall::LiveMonitors).await.unwrap(), 0);
}
