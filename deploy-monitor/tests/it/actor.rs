//! The evaluation loop as an actor on its own timer.

use std::time::Duration;

use deploy_monitor::{MonitorActor, MonitorActorArgs, MonitorRequest, Outcome, PrometheusExport};

use crate::{TEST_PLAN, fixture};

#[tokio::test(start_paused = true)]
async fn the_actor_ticks_evaluates_and_publishes() {
    let fx = fixture(TEST_PLAN).await;
    let export = PrometheusExport::new();
    let mut args = MonitorActorArgs::new(fx.monitor.clone());
    args.prometheus = Some(export.handle());
    let actor = foundation_core::spawn::<MonitorActor>(args)
        .await
        .expect("spawn");
    // The actor's timer runs on tokio time; the monitor reads the manual
    // clock, so both move together here.
    for _ in 0..13 {
        for _ in 0..20 {
            fx.recorder.record_request(
                deploy_monitor::Cohort::Unassigned,
                Duration::from_millis(5),
                deploy_monitor::RequestOutcome::Success,
            );
        }
        fx.clock.advance(fx.monitor.slot_width());
        tokio::time::advance(fx.monitor.slot_width()).await;
        foundation_core::testkit::sync(&actor)
            .await
            .expect("the actor handled its tick");
    }
    let status = actor.call(MonitorRequest::Status).await.expect("status");
    assert_eq!(status.phase, 0);
    let last = fx.monitor.last_evaluation().expect("the actor evaluated");
    assert_eq!(last.judgement.outcome, Outcome::Pass);
    assert!(last.report.overall.requests >= 200);
    actor.stop(foundation_core::ExitReason::Shutdown);
}
