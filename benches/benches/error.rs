//! foundation-error: the cost of tracking an error (against a plain atomic
//! increment) and of creating and dropping one (against `std::io::Error`).
//!
//! Target (issue 2): `ErrorTracker::track` under 100 ns per call on one
//! thread.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use benches::on_threads;
use criterion::{Criterion, criterion_group, criterion_main};
use foundation_error::{Error, ErrorCode, ErrorTracker};

fn tracker(c: &mut Criterion) {
    let tracker = ErrorTracker::new();
    let error = Error::new(ErrorCode::TIMEOUT, "database timeout");
    let counter = AtomicU64::new(0);

    let mut group = c.benchmark_group("error_tracker/1_thread");
    group.bench_function("atomic_increment_baseline", |b| {
        b.iter(|| counter.fetch_add(1, Ordering::Relaxed))
    });
    group.bench_function("track", |b| b.iter(|| tracker.track(black_box(&error))));
    group.finish();

    let mut group = c.benchmark_group("error_tracker/2_threads");
    group.bench_function("atomic_increment_baseline", |b| {
        b.iter_custom(|iterations| {
            on_threads(2, iterations, |n| {
                for _ in 0..n {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
    });
    group.bench_function("track", |b| {
        b.iter_custom(|iterations| {
            on_threads(2, iterations, |n| {
                for _ in 0..n {
                    tracker.track(black_box(&error));
                }
            })
        })
    });
    group.finish();
}

fn create_and_drop(c: &mut Criterion) {
    let mut group = c.benchmark_group("error_create_drop");
    group.bench_function("std_io_error_baseline", |b| {
        b.iter(|| black_box(std::io::Error::other(black_box("database timeout"))))
    });
    group.bench_function("error_new", |b| {
        b.iter(|| {
            black_box(Error::new(
                ErrorCode::TIMEOUT,
                black_box("database timeout"),
            ))
        })
    });
    group.bench_function("error_with_context", |b| {
        b.iter(|| {
            black_box(
                Error::new(ErrorCode::TIMEOUT, black_box("database timeout"))
                    .with_context("table", "orders"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, tracker, create_and_drop);
criterion_main!(benches);
