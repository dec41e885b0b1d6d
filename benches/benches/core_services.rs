//! foundation-core services: the rate limiter's check and the circuit
//! breaker's closed-state overhead, each against baselines in the same run.
//!
//! Rate limiter check, on one key that is always allowed (the limit is set
//! far above what the run can reach), uncontended and on 2 threads:
//! - `mutex_hashmap_baseline`: a `Mutex<HashMap<String, u64>>` counter with
//!   no clock and no window (the floor: a lookup and an increment);
//! - `mutex_fixed_window_baseline`: the naive exact fixed window, a
//!   `Mutex<HashMap<String, (window, count)>>` with the same clock read
//!   (`tokio::time::Instant::now`) as ours: the same contract, one lock;
//! - `governor_keyed_gcra`: the governor crate's keyed limiter, the peer
//!   Rust rate limiter. It is GCRA (a smooth rate with a burst), not a fixed
//!   window, and reads the TSC through quanta rather than the OS clock, so
//!   it is a reference point, not the same contract;
//! - `limiter_handle`: our [`Limiter::check`] (a configured handle);
//! - `check_by_id`: our [`RateLimiter::check`] (looks the limiter up by id).
//!
//! The 2-thread figures are the time per check on each thread (both run
//! the same number of checks at once), so twice as many checks complete in
//! that time.
//!
//! Circuit breaker, closed: awaiting a ready future directly against
//! awaiting it through [`CircuitBreaker::call`], inside a tokio runtime, and
//! polled on 2 threads without a runtime.
//!
//! Targets (issue 4): a check under 100 ns uncontended; breaker overhead
//! under 50 ns.

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::pin::pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use benches::on_threads;
use criterion::{Criterion, criterion_group, criterion_main};
use foundation_core::circuit_breaker::CircuitBreaker;
use foundation_core::rate_limiter::{Limiter, RateLimiter};
use foundation_error::Error;
use governor::{DefaultKeyedRateLimiter, Quota};

/// High enough never to deny within a benchmark run (8e9 per 10 s).
const LIMIT: u64 = 8_000_000_000;
const WINDOW: Duration = Duration::from_secs(10);
const KEY: &str = "tenant-42";

struct Contenders {
    mutex: Mutex<HashMap<String, u64>>,
    origin: tokio::time::Instant,
    windows: Mutex<HashMap<String, (u64, u64)>>,
    governor: DefaultKeyedRateLimiter<String>,
    governor_key: String,
    limiters: RateLimiter,
    limiter: Limiter,
}

impl Contenders {
    fn new() -> Contenders {
        let limiters = RateLimiter::new();
        let limiter = limiters
            .configure("api", LIMIT, WINDOW)
            .expect("a valid configuration");
        let per_second = NonZeroU32::new(1_000_000_000).expect("not zero");
        Contenders {
            mutex: Mutex::new(HashMap::new()),
            origin: tokio::time::Instant::now(),
            windows: Mutex::new(HashMap::new()),
            governor: DefaultKeyedRateLimiter::keyed(Quota::per_second(per_second)),
            governor_key: KEY.to_owned(),
            limiters,
            limiter,
        }
    }

    fn fixed_window_check(&self, key: &str) -> bool {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.origin);
        let window = u64::try_from(elapsed.as_nanos() / WINDOW.as_nanos()).unwrap_or(u64::MAX);
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let entry = match windows.get_mut(key) {
            Some(entry) => entry,
            None => windows.entry(key.to_owned()).or_insert((window, 0)),
        };
        if entry.0 != window {
            *entry = (window, 0);
        }
        if entry.1 >= LIMIT {
            return false;
        }
        entry.1 += 1;
        true
    }

    fn mutex_check(&self, key: &str) -> bool {
        let mut counts = self
            .mutex
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match counts.get_mut(key) {
            Some(count) if *count >= LIMIT => false,
            Some(count) => {
                *count += 1;
                true
            }
            None => {
                counts.insert(key.to_owned(), 1);
                true
            }
        }
    }
}

fn rate_limiter(c: &mut Criterion) {
    let contenders = Contenders::new();
    let other_key = "tenant-43";

    let mut group = c.benchmark_group("rate_limiter_check/1_thread");
    group.bench_function("mutex_hashmap_baseline", |b| {
        b.iter(|| contenders.mutex_check(black_box(KEY)))
    });
    group.bench_function("mutex_fixed_window_baseline", |b| {
        b.iter(|| contenders.fixed_window_check(black_box(KEY)))
    });
    group.bench_function("governor_keyed_gcra", |b| {
        b.iter(|| {
            contenders
                .governor
                .check_key(black_box(&contenders.governor_key))
                .is_ok()
        })
    });
    group.bench_function("limiter_handle", |b| {
        b.iter(|| contenders.limiter.check(black_box(KEY)))
    });
    group.bench_function("check_by_id", |b| {
        b.iter(|| contenders.limiters.check(black_box("api"), black_box(KEY)))
    });
    group.finish();

    let mut group = c.benchmark_group("rate_limiter_check/2_threads_one_key");
    group.bench_function("mutex_hashmap_baseline", |b| {
        b.iter_custom(|iterations| {
            on_threads(2, iterations, |n| {
                for _ in 0..n {
                    black_box(contenders.mutex_check(black_box(KEY)));
                }
            })
        })
    });
    group.bench_function("mutex_fixed_window_baseline", |b| {
        b.iter_custom(|iterations| {
            on_threads(2, iterations, |n| {
                for _ in 0..n {
                    black_box(contenders.fixed_window_check(black_box(KEY)));
                }
            })
        })
    });
    group.bench_function("governor_keyed_gcra", |b| {
        b.iter_custom(|iterations| {
            on_threads(2, iterations, |n| {
                for _ in 0..n {
                    let _ = black_box(
                        contenders
                            .governor
                            .check_key(black_box(&contenders.governor_key)),
                    );
                }
            })
        })
    });
    group.bench_function("limiter_handle", |b| {
        b.iter_custom(|iterations| {
            on_threads(2, iterations, |n| {
                for _ in 0..n {
                    let _ = black_box(contenders.limiter.check(black_box(KEY)));
                }
            })
        })
    });
    group.finish();

    // Two threads on two keys: contention on the map, not on one counter.
    let thread_keys = [KEY, other_key];
    let next_thread = std::sync::atomic::AtomicUsize::new(0);
    let key_for_thread =
        || thread_keys[next_thread.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 2];
    let mut group = c.benchmark_group("rate_limiter_check/2_threads_two_keys");
    group.bench_function("mutex_hashmap_baseline", |b| {
        b.iter_custom(|iterations| {
            on_threads(2, iterations, |n| {
                let key = key_for_thread();
                for _ in 0..n {
                    black_box(contenders.mutex_check(black_box(key)));
                }
            })
        })
    });
    group.bench_function("mutex_fixed_window_baseline", |b| {
        b.iter_custom(|iterations| {
            on_threads(2, iterations, |n| {
                let key = key_for_thread();
                for _ in 0..n {
                    black_box(contenders.fixed_window_check(black_box(key)));
                }
            })
        })
    });
    group.bench_function("limiter_handle", |b| {
        b.iter_custom(|iterations| {
            on_threads(2, iterations, |n| {
                let key = key_for_thread();
                for _ in 0..n {
                    let _ = black_box(contenders.limiter.check(black_box(key)));
                }
            })
        })
    });
    group.finish();
}

/// Polls a future that is ready at once, without a runtime.
fn poll_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut context) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("the benchmarked futures are ready at once"),
    }
}

fn circuit_breaker(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let breaker = CircuitBreaker::new("dependency").expect("a valid configuration");

    let mut group = c.benchmark_group("circuit_breaker_closed/tokio");
    group.bench_function("direct_await_baseline", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(async { Ok::<u64, Error>(black_box(1)) }.await) })
    });
    group.bench_function("breaker_call", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(breaker.call(async { Ok::<u64, Error>(black_box(1)) }).await)
        })
    });
    group.finish();

    let mut group = c.benchmark_group("circuit_breaker_closed/2_threads_polled");
    group.bench_function("direct_poll_baseline", |b| {
        b.iter_custom(|iterations| {
            on_threads(2, iterations, |n| {
                for _ in 0..n {
                    let _ = black_box(poll_ready(async { Ok::<u64, Error>(black_box(1)) }));
                }
            })
        })
    });
    group.bench_function("breaker_call", |b| {
        b.iter_custom(|iterations| {
            on_threads(2, iterations, |n| {
                for _ in 0..n {
                    let _ = black_box(poll_ready(
                        breaker.call(async { Ok::<u64, Error>(black_box(1)) }),
                    ));
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, rate_limiter, circuit_breaker);
criterion_main!(benches);
