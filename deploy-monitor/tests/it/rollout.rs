//! The rules: rollbacks after consecutive failures (once), inconclusive
//! handling, cohort comparison, dry run, cooldown, manual and emergency
//! rollbacks, advance rules, automatic advance, events.

use std::time::Duration;

use deploy_monitor::{Action, AlertReason, Check, Cohort, Outcome, RolloutEvent, TransitionKind};
use foundation_error::ErrorCode;
use foundation_flags::{AuditQuery, FlagValue};
use tokio::sync::broadcast::error::TryRecvError;

use crate::{TEST_PLAN, Traffic, failing, fixture, healthy};

fn drain_events(
    receiver: &mut tokio::sync::broadcast::Receiver<RolloutEvent>,
) -> Vec<RolloutEvent> {
    let mut events = Vec::new();
    loop {
        match receiver.try_recv() {
            Ok(event) => events.push(event),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return events,
            Err(TryRecvError::Lagged(missed)) => panic!("lost {missed} events"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_one_interval_spike_does_not_roll_back() {
    let fx = fixture(TEST_PLAN).await;
    fx.monitor
        .force_advance("alice", "start")
        .await
        .expect("advance");
    let mut events = fx.monitor.subscribe();
    let before = fx.interval(&healthy()).await;
    assert_eq!(before.judgement.outcome, Outcome::Pass);
    let spike = fx.interval(&failing()).await;
    assert_eq!(spike.judgement.outcome, Outcome::Fail);
    assert_eq!(spike.consecutive_failures, 1);
    for _ in 0..5 {
        let after = fx.interval(&healthy()).await;
        assert_eq!(after.judgement.outcome, Outcome::Pass);
        assert_eq!(after.action, Action::None);
    }
    assert_eq!(fx.monitor.status().await.expect("status").phase, 1);
    assert!(drain_events(&mut events).is_empty());
}

#[tokio::test(start_paused = true)]
async fn three_consecutive_failures_roll_back_exactly_once() {
    let fx = fixture(TEST_PLAN).await;
    fx.monitor
        .force_advance("alice", "start")
        .await
        .expect("advance");
    fx.monitor
        .force_advance("alice", "canary")
        .await
        .expect("advance");
    assert_eq!(fx.value("use_b"), FlagValue::percentage(10).expect("valid"));
    let mut events = fx.monitor.subscribe();

    let first = fx.interval(&failing()).await;
    let second = fx.interval(&failing()).await;
    assert_eq!(
        (first.action.clone(), second.action.clone()),
        (Action::None, Action::None)
    );
    let third = fx.interval(&failing()).await;
    let Action::RolledBack(record) = &third.action else {
        panic!("expected a rollback, got {:?}", third.action);
    };
    assert_eq!((record.from, record.to), (2, 1));
    assert_eq!(record.kind, TransitionKind::AutomaticRollback);
    assert_eq!(record.who, "deploy-monitor");
    assert!(
        record.reason.contains("3 consecutive failed checks"),
        "{}",
        record.reason
    );
    let evidence = record
        .evidence
        .as_ref()
        .expect("automatic rollbacks carry evidence");
    assert_eq!(evidence.consecutive, 3);
    assert_eq!(evidence.thresholds.max_error_rate, 0.05);
    let error_rate = evidence
        .checks
        .iter()
        .find(|check| check.check == Check::ErrorRate)
        .expect("checked");
    assert_eq!(error_rate.outcome, Outcome::Fail);
    assert!((error_rate.value.unwrap_or_default() - 0.2).abs() < 1e-9);
    assert_eq!(fx.value("use_b"), FlagValue::Off);
    assert_eq!(fx.value("use_a"), FlagValue::On);

    // The failures go on in phase 1: the cooldown stops a second rollback.
    let mut blocked = 0;
    for _ in 0..6 {
        let evaluation = fx.interval(&failing()).await;
        assert!(
            !matches!(evaluation.action, Action::RolledBack(_)),
            "{:?}",
            evaluation.action
        );
        if matches!(evaluation.action, Action::Blocked(_)) {
            blocked += 1;
        }
    }
    assert_eq!(
        blocked, 2,
        "the limit was reached twice within the cooldown"
    );
    let status = fx.monitor.status().await.expect("status");
    assert_eq!(status.phase, 1);

    let received = drain_events(&mut events);
    let rollbacks: Vec<_> = received
        .iter()
        .filter(
            |event| matches!(event, RolloutEvent::Transition(record) if record.kind.is_rollback()),
        )
        .collect();
    assert_eq!(rollbacks.len(), 1);
    assert!(received.iter().any(|event| matches!(
        event,
        RolloutEvent::Alert {
            reason: AlertReason::RollbackBlocked,
            ..
        }
    )));
    let history = fx.monitor.history(10).await.expect("history");
    assert_eq!(
        history
            .iter()
            .filter(|record| record.kind.is_rollback())
            .count(),
        1
    );

    // The flags' audit names the rollout, the phase, who and why.
    let audit = fx
        .flags
        .audit_log(AuditQuery::recent(1))
        .await
        .expect("audit");
    assert_eq!(audit[0].who, "deploy-monitor");
    assert!(
        audit[0]
            .reason
            .starts_with("rollout: phase 1 (one), by deploy-monitor, because 3 consecutive"),
        "{}",
        audit[0].reason
    );
}

#[tokio::test(start_paused = true)]
async fn no_data_rolls_nothing_back_advances_nothing_and_pauses_with_an_alert() {
    let mut plan = TEST_PLAN.replace("count = 3", "count = 1");
    plan = plan.replace("[analysis]", "[analysis]\nautoAdvance = true");
    let fx = fixture(&plan).await;
    fx.monitor
        .force_advance("alice", "start")
        .await
        .expect("advance");
    let mut events = fx.monitor.subscribe();
    for round in 1..=3 {
        let evaluation = fx.interval(&[]).await;
        assert_eq!(evaluation.judgement.outcome, Outcome::Inconclusive);
        assert_eq!(evaluation.consecutive_inconclusive, round);
        assert_eq!(evaluation.action, Action::None);
        let error_rate = evaluation
            .judgement
            .check(Check::ErrorRate)
            .expect("checked");
        assert_eq!(error_rate.value, None);
        assert_eq!(error_rate.samples, 0);
    }
    let fourth = fx.interval(&[]).await;
    assert_eq!(fourth.action, Action::Paused(AlertReason::Inconclusive));
    // Too few samples is no data either.
    let sparse = fx.interval(&[Traffic::new(Cohort::Unassigned, 1, 1)]).await;
    assert_eq!(sparse.judgement.outcome, Outcome::Inconclusive);
    let status = fx.monitor.status().await.expect("status");
    assert_eq!(status.phase, 1);
    assert!(status.paused.is_some());
    let received = drain_events(&mut events);
    assert!(
        received
            .iter()
            .any(|event| matches!(event, RolloutEvent::Paused { .. }))
    );
    assert!(received.iter().any(|event| matches!(
        event,
        RolloutEvent::Alert {
            reason: AlertReason::Inconclusive,
            ..
        }
    )));
    assert!(
        !received
            .iter()
            .any(|event| matches!(event, RolloutEvent::Transition(_)))
    );
    // Paused: healthy data advances nothing until resumed.
    fx.interval(&healthy()).await;
    assert_eq!(fx.monitor.status().await.expect("status").phase, 1);
    fx.monitor
        .resume("alice", "data is flowing again")
        .await
        .expect("resume");
    for _ in 0..7 {
        fx.interval(&healthy()).await;
    }
    assert_eq!(
        fx.monitor.status().await.expect("status").phase,
        2,
        "advanced automatically once healthy for 5m"
    );
}

#[tokio::test(start_paused = true)]
async fn a_treatment_worse_than_its_control_rolls_back_under_the_absolute_threshold() {
    let fx = fixture(TEST_PLAN).await;
    fx.monitor
        .force_advance("alice", "start")
        .await
        .expect("advance");
    fx.monitor
        .force_advance("alice", "canary")
        .await
        .expect("advance");
    // Per slot: treatment 50 requests, 4 failed (8%); control 450, 4.5 failed
    // on average (1%): alternate 4 and 5 via two flows.
    let traffic = [
        Traffic::new(Cohort::Treatment, 50, 4),
        Traffic::new(Cohort::Control, 200, 2),
        Traffic::new(Cohort::Control, 200, 2),
    ];
    let mut last = None;
    for _ in 0..3 {
        let evaluation = fx.interval(&traffic).await;
        let overall = evaluation.report.overall.error_rate.expect("data");
        assert!(overall < 0.05, "overall error rate {overall}");
        assert_eq!(
            evaluation
                .judgement
                .check(Check::ErrorRate)
                .expect("checked")
                .outcome,
            Outcome::Pass
        );
        let cohort = evaluation
            .judgement
            .check(Check::CohortErrorRate)
            .expect("checked");
        assert_eq!(cohort.outcome, Outcome::Fail, "{}", cohort.detail);
        let treatment = evaluation
            .report
            .cohort(Cohort::Treatment)
            .error_rate
            .expect("data");
        let control = evaluation
            .report
            .cohort(Cohort::Control)
            .error_rate
            .expect("data");
        assert!((treatment - 0.08).abs() < 1e-9 && (control - 0.01).abs() < 1e-9);
        last = Some(evaluation);
    }
    let last = last.expect("three evaluations");
    assert!(matches!(last.action, Action::RolledBack(ref record) if record.to == 1));
    assert_eq!(fx.value("use_b"), FlagValue::Off);
}

#[tokio::test(start_paused = true)]
async fn dry_run_judges_and_reports_without_acting() {
    let plan = TEST_PLAN.replace("[analysis]", "[analysis]\ndryRun = true");
    let fx = fixture(&plan).await;
    fx.monitor
        .force_advance("alice", "start")
        .await
        .expect("advance");
    let mut events = fx.monitor.subscribe();
    let mut actions = Vec::new();
    for _ in 0..3 {
        actions.push(fx.interval(&failing()).await.action);
    }
    assert_eq!(
        actions[2],
        Action::WouldTransition(TransitionKind::AutomaticRollback)
    );
    assert_eq!(fx.monitor.status().await.expect("status").phase, 1);
    assert_eq!(fx.value("use_a"), FlagValue::On);
    let received = drain_events(&mut events);
    assert!(
        matches!(
            received.as_slice(),
            [RolloutEvent::DryRun {
                kind: TransitionKind::AutomaticRollback,
                to: 0,
                ..
            }]
        ),
        "{received:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn manual_and_emergency_rollbacks_are_recorded_and_emitted() {
    let fx = fixture(TEST_PLAN).await;
    for _ in 0..3 {
        fx.monitor
            .force_advance("alice", "go")
            .await
            .expect("advance");
    }
    assert_eq!(fx.value("use_c"), FlagValue::On);
    let seen = fx.interval(&failing()).await;
    let mut events = fx.monitor.subscribe();
    let error = fx
        .monitor
        .rollback("bob", " ")
        .await
        .expect_err("a reason is required");
    assert_eq!(error.code(), ErrorCode::INVALID_INPUT);
    let manual = fx
        .monitor
        .rollback("bob", "INC-7: slow checkout")
        .await
        .expect("rollback");
    assert_eq!(
        (manual.kind, manual.from, manual.to),
        (TransitionKind::ManualRollback, 3, 2)
    );
    let evidence = manual.evidence.as_ref().expect("the latest evaluation");
    assert_eq!(evidence.report, seen.report);
    assert_eq!(evidence.outcome, Outcome::Fail);
    assert_eq!(evidence.consecutive, 1);
    assert_eq!(fx.value("use_c"), FlagValue::Off);
    assert_eq!(fx.value("use_b"), FlagValue::percentage(10).expect("valid"));
    let emergency = fx
        .monitor
        .emergency_rollback("carol", "INC-8: data loss")
        .await
        .expect("rollback");
    assert_eq!(
        (emergency.kind, emergency.to),
        (TransitionKind::EmergencyRollback, 0)
    );
    assert!(emergency.evidence.is_none(), "phase 2 was never evaluated");
    for flag in crate::TEST_FLAGS {
        assert_eq!(fx.value(flag), FlagValue::Off, "{flag}");
    }
    let received = drain_events(&mut events);
    assert_eq!(
        received,
        vec![
            RolloutEvent::Transition(manual.clone()),
            RolloutEvent::Transition(emergency.clone())
        ]
    );
    let history = fx.monitor.history(100).await.expect("history");
    assert_eq!(history.len(), 5);
    assert_eq!(history[3], manual);
    assert_eq!(history[4].who, "carol");
    assert_eq!(history[4].reason, "INC-8: data loss");
    let error = fx
        .monitor
        .rollback("bob", "again")
        .await
        .expect_err("nothing to roll back");
    assert_eq!(error.code(), ErrorCode::BUSINESS_RULE_VIOLATION);
}

#[tokio::test(start_paused = true)]
async fn advancing_needs_health_for_the_minimum_duration_and_no_rollback_in_the_last_hour() {
    let fx = fixture(TEST_PLAN).await;
    // Phase 0 has no minimum, but it must have passed a check.
    let refused = fx
        .monitor
        .advance("alice", "go")
        .await
        .expect_err("no check passed yet");
    assert_eq!(refused.code(), ErrorCode::BUSINESS_RULE_VIOLATION);
    fx.interval(&healthy()).await;
    fx.monitor
        .advance("alice", "go")
        .await
        .expect("healthy baseline");
    // Phase 1 needs five healthy minutes.
    for _ in 0..3 {
        fx.interval(&healthy()).await;
    }
    let refused = fx
        .monitor
        .advance("alice", "go")
        .await
        .expect_err("too early");
    assert!(
        refused.message().contains("of the 5m required"),
        "{}",
        refused.message()
    );
    for _ in 0..3 {
        fx.interval(&healthy()).await;
    }
    let advanced = fx
        .monitor
        .advance("alice", "go")
        .await
        .expect("healthy for 5m");
    assert_eq!((advanced.kind, advanced.to), (TransitionKind::Advance, 2));
    fx.monitor
        .rollback("bob", "looks wrong")
        .await
        .expect("rollback");
    for _ in 0..7 {
        fx.interval(&healthy()).await;
    }
    let refused = fx
        .monitor
        .advance("alice", "go")
        .await
        .expect_err("rolled back recently");
    assert!(
        refused.message().contains("no advance within 1h"),
        "{}",
        refused.message()
    );
    let forced = fx
        .monitor
        .force_advance("alice", "the rollback was a false alarm")
        .await
        .expect("forced");
    assert_eq!(forced.kind, TransitionKind::ForcedAdvance);
    fx.clock.advance(Duration::from_secs(3600));
    fx.interval(&healthy()).await;
    let refused = fx
        .monitor
        .advance("alice", "go")
        .await
        .expect_err("healthy for one check only");
    assert_eq!(refused.code(), ErrorCode::BUSINESS_RULE_VIOLATION);
}

#[tokio::test(start_paused = true)]
async fn the_latency_check_holds_p99_to_twice_the_previous_phase() {
    let fx = fixture(TEST_PLAN).await;
    fx.interval(&healthy()).await;
    fx.monitor
        .force_advance("alice", "go")
        .await
        .expect("advance");
    let baseline = fx
        .monitor
        .status()
        .await
        .expect("status")
        .baseline_p99
        .expect("captured from phase 0");
    assert!(
        baseline.as_micros().abs_diff(20_000) < 2_500,
        "{baseline:?}"
    );
    let slow = [Traffic {
        latency: Duration::from_millis(60),
        ..Traffic::new(Cohort::Unassigned, 20, 0)
    }];
    let evaluation = fx.interval(&slow).await;
    let latency = evaluation
        .judgement
        .check(Check::LatencyP99)
        .expect("checked");
    assert_eq!(latency.outcome, Outcome::Fail, "{}", latency.detail);
    let p99 = evaluation.report.overall.latency.p99.expect("data");
    assert!(p99.as_micros().abs_diff(60_000) < 7_500, "{p99:?}");
}

#[tokio::test(start_paused = true)]
async fn nothing_counts_inside_the_initial_delay_after_a_phase_change() {
    let plan = TEST_PLAN.replace("[analysis]", "[analysis]\ninitialDelay = \"2m\"");
    let fx = fixture(&plan).await;
    fx.monitor
        .force_advance("alice", "start")
        .await
        .expect("advance");
    let mut counted = Vec::new();
    for _ in 0..5 {
        let evaluation = fx.interval(&failing()).await;
        counted.push((evaluation.counted, evaluation.consecutive_failures));
    }
    assert_eq!(
        counted[..4],
        [(false, 0), (true, 1), (true, 2), (true, 0)],
        "the fourth evaluation rolled back and reset the count"
    );
    assert_eq!(fx.monitor.status().await.expect("status").phase, 0);
    assert!(!counted[4].0, "a new initial delay after the rollback");
}
