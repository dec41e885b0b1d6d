//! Replays a scripted incident: stage 05's plan is brought to its canary
//! phase (use_v2_coordinator at 10%), traffic is routed by the flag's own
//! bucketing, and the treatment's error rate rises minute by minute while
//! the control stays healthy. The monitor judges every minute, the cohort
//! comparison fails three times in a row, and the canary is rolled back
//! automatically; the rollback record and the Prometheus text are printed.
//!
//! Run it with `cargo run -p deploy-monitor --example canary_incident`.
//! Time is a manual clock, so the hour-long incident replays at once.

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use deploy_monitor::{
    Action, Check, Cohort, DeployMonitor, PrometheusExport, RequestOutcome, RolloutEvent,
    RolloutPlan,
};
use foundation_error::clock::ManualClock;
use foundation_flags::{Flag, FlagValue, Flags};
use foundation_persist::{Store, StoreOptions};

/// The treatment's error rate, in percent, in each minute of the script.
const TREATMENT_ERRORS_PERCENT: [u64; 8] = [1, 1, 2, 4, 7, 9, 12, 15];
/// The control's error rate, in percent, throughout.
const CONTROL_ERRORS_PERCENT: u64 = 1;
/// Requests per five-second slot.
const REQUESTS_PER_SLOT: u64 = 100;

#[tokio::main(flavor = "current_thread")]
async fn main() -> foundation_error::Result<()> {
    let plan = RolloutPlan::default_plan();
    let mut builder = Flags::builder();
    for flag in plan.flags() {
        builder.declare(Flag::new(
            flag.as_str(),
            "a stage 05 refactor flag",
            FlagValue::Off,
        ));
    }
    let flags = builder.open().await?;
    let clock = ManualClock::new();
    let monitor = DeployMonitor::builder()
        .plan(plan)
        .flags(flags.clone())
        .store(Store::open_in_memory(&StoreOptions::new())?)
        .clock(Arc::new(clock.clone()))
        .open()
        .await?;
    let mut events = monitor.subscribe();

    // Phases 1 to 3 were validated elsewhere; go straight to the canary.
    for _ in 0..4 {
        let record = monitor
            .force_advance("release-manager", "phases validated in staging (replay)")
            .await?;
        println!("phase {} -> {}: {}", record.from, record.to, record.to_name);
    }
    println!(
        "use_v2_coordinator = {}\n",
        flags.value("use_v2_coordinator")?
    );

    let v2 = flags.handle("use_v2_coordinator")?;
    let recorder = monitor.recorder();
    let mut request_id = 0u64;
    // Requests seen per cohort, so each cohort fails exactly its percentage.
    let mut seen = [0u64; 3];
    for (minute, treatment_percent) in TREATMENT_ERRORS_PERCENT.iter().enumerate() {
        let mut evaluation = None;
        while evaluation.is_none() {
            for _ in 0..REQUESTS_PER_SLOT {
                request_id += 1;
                let workflow = format!("workflow-{request_id}");
                let cohort = Cohort::of(&v2, &workflow);
                let (percent, counter) = match cohort {
                    Cohort::Treatment => (*treatment_percent, &mut seen[2]),
                    _ => (CONTROL_ERRORS_PERCENT, &mut seen[1]),
                };
                *counter += 1;
                let outcome = if *counter % 100 < percent {
                    RequestOutcome::Error
                } else {
                    RequestOutcome::Success
                };
                let latency = Duration::from_millis(15 + request_id % 20);
                recorder.record_request(cohort, latency, outcome);
            }
            clock.advance(monitor.slot_width());
            evaluation = monitor.tick().await?;
        }
        let Some(evaluation) = evaluation else {
            continue;
        };
        let treatment = evaluation.report.cohort(Cohort::Treatment);
        let control = evaluation.report.cohort(Cohort::Control);
        let cohort_check = evaluation.judgement.check(Check::CohortErrorRate);
        println!(
            "minute {}: overall {:.1}% of {} requests, treatment {:.1}% of {}, control {:.1}% of {}, p99 {:?}; cohort check {}; {:?}",
            minute + 1,
            evaluation.report.overall.error_rate.unwrap_or(f64::NAN) * 100.0,
            evaluation.report.overall.requests,
            treatment.error_rate.unwrap_or(f64::NAN) * 100.0,
            treatment.requests,
            control.error_rate.unwrap_or(f64::NAN) * 100.0,
            control.requests,
            evaluation.report.overall.latency.p99.unwrap_or_default(),
            cohort_check.map_or("-", |check| check.outcome.as_str()),
            evaluation.judgement.outcome,
        );
        if let Action::RolledBack(record) = &evaluation.action {
            println!(
                "\nROLLED BACK: phase {} -> {} ({})",
                record.from, record.to, record.to_name
            );
            println!("  who: {}\n  why: {}", record.who, record.reason);
            if let Some(evidence) = &record.evidence {
                for check in &evidence.checks {
                    println!("  {:?}: {}", check.outcome, check.detail);
                }
            }
            break;
        }
    }

    println!(
        "\nuse_v2_coordinator = {}",
        flags.value("use_v2_coordinator")?
    );
    while let Ok(event) = events.try_recv() {
        if let RolloutEvent::Transition(record) = event {
            println!(
                "event: transition {} ({}) to phase {}",
                record.id,
                record.kind.as_str(),
                record.to
            );
        }
    }
    let status = monitor.status().await?;
    let last_rollback = status.last_rollback_at.map_or_else(
        || "never".to_owned(),
        |at| humantime::format_rfc3339_seconds(at).to_string(),
    );
    println!(
        "status: phase {} ({}), last rollback at {last_rollback}",
        status.phase, status.phase_name
    );

    let export = PrometheusExport::new();
    metrics::with_local_recorder(export.recorder(), || {
        deploy_monitor::metrics::describe();
        monitor.publish_metrics();
    });
    println!(
        "\n{}",
        export
            .render()
            .lines()
            .filter(|line| line.contains("rollbacks_total")
                || line.contains("foundation_deploy_phase")
                || line.contains("error_rate_ratio"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    Ok(())
}
