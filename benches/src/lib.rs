//! Shared helpers for Foundation's criterion benchmarks.
//!
//! Each benchmark file in `benches/` measures one of our components next to
//! a baseline in the same run (a plain atomic, raw tokio channels, direct
//! redb, or a peer crate), so that the ratio, not the absolute figure, is
//! what a report quotes. Run them with `cargo bench -p benches`.

pub mod actors;

use std::time::{Duration, Instant};

/// The runtime most benchmarks measure on: multi-threaded, two workers
/// (the development machine's cores), every driver enabled.
///
/// # Panics
///
/// When the runtime cannot be built (a benchmark cannot run without it).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Runs `work(iterations_per_thread)` on `threads` OS threads released
/// together, and returns the wall time until the last finishes.
///
/// Used for contended measurements with criterion's `iter_custom`.
pub fn on_threads(threads: usize, iterations: u64, work: impl Fn(u64) + Sync) -> Duration {
    let barrier = std::sync::Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                barrier.wait();
                work(iterations);
            });
        }
        barrier.wait();
        let start = Instant::now();
        // Leaving the scope joins every thread.
        start
    })
    .elapsed()
}

/// Runs `work` as a task inside `runtime` and returns the time it reports,
/// for criterion's `iter_custom`: callers measured from inside the runtime,
/// as actors calling actors are, rather than from the bench thread (where
/// every round trip also pays for waking a parked OS thread).
pub fn inside<F, Fut>(runtime: &tokio::runtime::Runtime, work: F) -> Duration
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Duration> + Send + 'static,
{
    let task = runtime.spawn(work());
    runtime
        .block_on(task)
        .expect("the measured task does not panic")
}
