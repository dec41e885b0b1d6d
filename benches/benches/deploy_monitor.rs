//! deploy-monitor: the cost of recording a request sample on the hot path,
//! against a bare atomic increment and against the `metrics` crate's
//! histogram record (on the Prometheus exporter's recorder), and the cost
//! of one health evaluation of every metric, in the same run.
//!
//! Targets (issue 11): recording under 50 ns; one evaluation (five metrics,
//! three cohorts plus overall, p50/p95/p99 from 240-bucket histograms, the
//! six checks) under 10 µs.
//!
//! Run: `cargo bench -p benches --bench deploy_monitor`.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use deploy_monitor::{Cohort, DeployMonitor, PrometheusExport, RequestOutcome, RolloutPlan};
use foundation_error::clock::ManualClock;
use foundation_flags::{Flag, FlagValue, Flags};
use foundation_persist::{Store, StoreOptions};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime builds")
}

fn open_monitor(runtime: &tokio::runtime::Runtime, clock: &ManualClock) -> DeployMonitor {
    runtime.block_on(async {
        let plan = RolloutPlan::default_plan();
        let mut builder = Flags::builder();
        for flag in plan.flags() {
            builder.declare(Flag::new(flag.as_str(), "benchmark flag", FlagValue::Off));
        }
        let flags = builder.open().await.expect("flags open");
        DeployMonitor::builder()
            .plan(plan)
            .flags(flags)
            .store(Store::open_in_memory(&StoreOptions::new()).expect("store"))
            .clock(Arc::new(clock.clone()))
            .open()
            .await
            .expect("monitor opens")
    })
}

fn record(c: &mut Criterion) {
    let runtime = runtime();
    let clock = ManualClock::new();
    let monitor = open_monitor(&runtime, &clock);
    let recorder = monitor.recorder();
    let latency = Duration::from_micros(12_345);

    let mut group = c.benchmark_group("deploy_monitor/record_request");
    let counter = AtomicU64::new(0);
    group.bench_function("baseline: bare atomic increment", |b| {
        b.iter(|| counter.fetch_add(black_box(1), Ordering::Relaxed));
    });
    group.bench_function("deploy-monitor Recorder::record_request (success)", |b| {
        b.iter(|| {
            recorder.record_request(
                black_box(Cohort::Treatment),
                black_box(latency),
                RequestOutcome::Success,
            )
        });
    });
    group.bench_function("deploy-monitor Recorder::record_request (error)", |b| {
        b.iter(|| {
            recorder.record_request(
                black_box(Cohort::Control),
                black_box(latency),
                RequestOutcome::Error,
            )
        });
    });
    let export = PrometheusExport::new();
    let histogram = metrics::with_local_recorder(export.recorder(), || {
        metrics::histogram!("bench_request_latency_seconds")
    });
    // The Prometheus recorder keeps every sample until its upkeep, so the
    // samples are recorded in chunks with an (untimed) upkeep between.
    group.bench_function(
        "baseline: metrics histogram record (Prometheus recorder)",
        |b| {
            b.iter_custom(|iterations| {
                let mut elapsed = Duration::ZERO;
                let mut left = iterations;
                while left > 0 {
                    let chunk = left.min(100_000);
                    let start = std::time::Instant::now();
                    for _ in 0..chunk {
                        histogram.record(black_box(latency.as_secs_f64()));
                    }
                    elapsed += start.elapsed();
                    export.run_upkeep();
                    left -= chunk;
                }
                elapsed
            });
        },
    );
    group.finish();
}

fn evaluate(c: &mut Criterion) {
    let runtime = runtime();
    let clock = ManualClock::new();
    let monitor = open_monitor(&runtime, &clock);
    let recorder = monitor.recorder();
    // A full window: every slot holds requests of every cohort with spread
    // latencies, restores and deliveries.
    for slot in 0..12u64 {
        for request in 0..2_000u64 {
            let cohort = Cohort::ALL[(request % 3) as usize];
            let outcome = if request % 97 == 0 {
                RequestOutcome::Error
            } else {
                RequestOutcome::Success
            };
            recorder.record_request(
                cohort,
                Duration::from_micros(50 + request * 37 + slot),
                outcome,
            );
        }
        recorder.record_restore(Cohort::Treatment, true);
        recorder.record_delivery(Cohort::Unassigned, true);
        clock.advance(monitor.slot_width());
        runtime.block_on(monitor.tick()).expect("tick");
    }
    let mut group = c.benchmark_group("deploy_monitor/evaluate");
    group.bench_function("baseline: an empty async call on the same runtime", |b| {
        b.iter(|| runtime.block_on(async { black_box(1) }));
    });
    group.bench_function(
        "evaluate_now: five metrics, three cohorts and overall, six checks",
        |b| {
            b.iter(|| {
                let evaluation = runtime
                    .block_on(monitor.evaluate_now())
                    .expect("evaluation");
                black_box(evaluation.judgement.outcome)
            });
        },
    );
    group.finish();
}

criterion_group!(benches, record, evaluate);
criterion_main!(benches);
