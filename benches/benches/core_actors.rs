//! foundation-core's actor kernel against a raw tokio task with channels
//! (the baseline), ractor 0.16 and kameo 0.22, in the same run, on a
//! two-worker multi-thread runtime.
//!
//! - `actor_tell`: 10,000 fire-and-forget messages to one actor, then one
//!   request as a barrier (all handled). Mailboxes: ours bounded 1,024,
//!   tokio bounded 1,024, ractor unbounded, kameo its default.
//! - `actor_call`: one request-reply round trip from a task on the runtime
//!   (actors calling actors), by `call` and by `ask` (a typed reply port
//!   riding the cast path); `actor_call_from_outside`: the same from the
//!   bench thread through `block_on`, where each round trip also wakes
//!   parked OS threads; `actor_call_blocking`: from a plain thread with
//!   each library's blocking API (ours: `call_blocking`, `ask_blocking`),
//!   against tokio's `blocking_send`/`blocking_recv`.
//! - `actor_spawn`: starting 1,000 actors, each ready to answer: ours
//!   under a dynamic supervisor and unsupervised, ractor's and kameo's
//!   (unsupervised) spawns, and a tokio task with a channel.
//! - `actor_restart`: from a panic to the replacement answering a call:
//!   ours under a supervisor, kameo under its supervisor, and a
//!   hand-written tokio respawn loop. ractor has no restarts in its core.
//!   `foundation_error_exit` crashes by returning an error instead, which
//!   shows what the panic's unwinding costs.
//!
//! Targets (issue 3): tell at least 1.5x ractor's and at least 60% of raw
//! tokio; call no slower than ractor's; supervised spawn under 2 us; restart
//! under 20 us. Memory per idle actor is measured by `actor_memory`.

#![allow(clippy::unwrap_used, missing_docs)]

use benches::runtime;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use benches::actors::{
    Counter, CounterCast, KameoAdd, KameoCounter, KameoGet, KameoPanic, KameoSupervisor,
    RactorCounter, RactorMessage, RawMessage, silence_panics, spawn_raw_counter,
};
use benches::inside;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use foundation_core::{ChildSpec, DynamicSupervisor, Supervisor, spawn};
use kameo::actor::Spawn;
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

const MESSAGES: u64 = 10_000;
const SPAWNS: u64 = 1_000;

fn tell(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("actor_tell");
    group.throughput(Throughput::Elements(MESSAGES));

    let (raw, _raw_task) = rt.block_on(async { spawn_raw_counter() });
    group.bench_function("tokio_mpsc_baseline", |b| {
        b.to_async(&rt).iter(|| async {
            for _ in 0..MESSAGES {
                raw.send(RawMessage::Add(1)).await.unwrap();
            }
            let (reply, count) = oneshot::channel();
            raw.send(RawMessage::Get(reply)).await.unwrap();
            count.await.unwrap()
        })
    });

    let ours = rt.block_on(spawn::<Counter>(())).unwrap();
    group.bench_function("foundation", |b| {
        b.to_async(&rt).iter(|| async {
            for _ in 0..MESSAGES {
                ours.cast(CounterCast::Add(1)).await.unwrap();
            }
            ours.call(()).await.unwrap()
        })
    });

    let (ractor_ref, _ractor_task) = rt
        .block_on(ractor::Actor::spawn(None, RactorCounter, ()))
        .unwrap();
    group.bench_function("ractor", |b| {
        b.to_async(&rt).iter(|| async {
            for _ in 0..MESSAGES {
                ractor_ref.cast(RactorMessage::Add(1)).unwrap();
            }
            ractor::call!(ractor_ref, RactorMessage::Get).unwrap()
        })
    });

    let kameo_ref = rt.block_on(async {
        let actor = KameoCounter::spawn(());
        actor.wait_for_startup().await;
        actor
    });
    group.bench_function("kameo", |b| {
        b.to_async(&rt).iter(|| async {
            for _ in 0..MESSAGES {
                kameo_ref.tell(KameoAdd(1)).await.unwrap();
            }
            kameo_ref.ask(KameoGet).await.unwrap()
        })
    });
    group.finish();
}

fn call(c: &mut Criterion) {
    let rt = runtime();
    let (raw, _raw_task) = rt.block_on(async { spawn_raw_counter() });
    let ours = rt.block_on(spawn::<Counter>(())).unwrap();
    let (ractor_ref, _ractor_task) = rt
        .block_on(ractor::Actor::spawn(None, RactorCounter, ()))
        .unwrap();
    let kameo_ref = rt.block_on(async {
        let actor = KameoCounter::spawn(());
        actor.wait_for_startup().await;
        actor
    });

    // The caller is a task on the runtime, as when actors call actors.
    let mut group = c.benchmark_group("actor_call");
    group.bench_function("tokio_mpsc_oneshot_baseline", |b| {
        b.iter_custom(|iterations| {
            let raw = raw.clone();
            inside(&rt, move || async move {
                let began = Instant::now();
                for _ in 0..iterations {
                    let (reply, count) = oneshot::channel();
                    raw.send(RawMessage::Get(reply)).await.unwrap();
                    count.await.unwrap();
                }
                began.elapsed()
            })
        })
    });
    group.bench_function("foundation", |b| {
        b.iter_custom(|iterations| {
            let ours = ours.clone();
            inside(&rt, move || async move {
                let began = Instant::now();
                for _ in 0..iterations {
                    ours.call(()).await.unwrap();
                }
                began.elapsed()
            })
        })
    });
    group.bench_function("foundation_ask", |b| {
        b.iter_custom(|iterations| {
            let ours = ours.clone();
            inside(&rt, move || async move {
                let began = Instant::now();
                for _ in 0..iterations {
                    ours.ask(CounterCast::Get).await.unwrap();
                }
                began.elapsed()
            })
        })
    });
    group.bench_function("ractor", |b| {
        b.iter_custom(|iterations| {
            let ractor_ref = ractor_ref.clone();
            inside(&rt, move || async move {
                let began = Instant::now();
                for _ in 0..iterations {
                    ractor::call!(ractor_ref, RactorMessage::Get).unwrap();
                }
                began.elapsed()
            })
        })
    });
    group.bench_function("kameo", |b| {
        b.iter_custom(|iterations| {
            let kameo_ref = kameo_ref.clone();
            inside(&rt, move || async move {
                let began = Instant::now();
                for _ in 0..iterations {
                    kameo_ref.ask(KameoGet).await.unwrap();
                }
                began.elapsed()
            })
        })
    });
    group.finish();

    // The caller is the bench thread, outside the runtime: every round
    // trip also wakes a parked OS thread, on both sides.
    let mut group = c.benchmark_group("actor_call_from_outside");
    group.bench_function("tokio_mpsc_oneshot_baseline", |b| {
        b.to_async(&rt).iter(|| async {
            let (reply, count) = oneshot::channel();
            raw.send(RawMessage::Get(reply)).await.unwrap();
            count.await.unwrap()
        })
    });
    group.bench_function("foundation", |b| {
        b.to_async(&rt)
            .iter(|| async { ours.call(()).await.unwrap() })
    });
    group.bench_function("ractor", |b| {
        b.to_async(&rt)
            .iter(|| async { ractor::call!(ractor_ref, RactorMessage::Get).unwrap() })
    });
    group.bench_function("kameo", |b| {
        b.to_async(&rt)
            .iter(|| async { kameo_ref.ask(KameoGet).await.unwrap() })
    });
    group.finish();

    // The caller is a plain thread with no runtime (a CLI, FFI, a sync
    // test): each side's blocking API, no `block_on`.
    let mut group = c.benchmark_group("actor_call_blocking");
    group.bench_function("tokio_mpsc_oneshot_baseline", |b| {
        b.iter(|| {
            let (reply, count) = oneshot::channel();
            raw.blocking_send(RawMessage::Get(reply)).unwrap();
            count.blocking_recv().unwrap()
        })
    });
    group.bench_function("foundation_call", |b| {
        b.iter(|| ours.call_blocking(()).unwrap())
    });
    group.bench_function("foundation_ask", |b| {
        b.iter(|| ours.ask_blocking(CounterCast::Get).unwrap())
    });
    group.bench_function("kameo", |b| {
        b.iter(|| kameo_ref.ask(KameoGet).blocking_send().unwrap())
    });
    group.finish();
}

/// Times `SPAWNS` starts per iteration; cleanup is not timed.
fn spawn_batches<S, C>(rt: &Runtime, iterations: u64, start: S, cleanup: C) -> Duration
where
    S: AsyncFnMut() -> Vec<Box<dyn std::any::Any + Send>>,
    C: AsyncFnMut(Vec<Box<dyn std::any::Any + Send>>),
{
    let (mut start, mut cleanup) = (start, cleanup);
    rt.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iterations {
            let began = Instant::now();
            let spawned = start().await;
            total += began.elapsed();
            cleanup(spawned).await;
        }
        total
    })
}

fn spawn_cost(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("actor_spawn");
    group.throughput(Throughput::Elements(SPAWNS));
    group.sample_size(10);

    group.bench_function("tokio_task_and_channel_baseline", |b| {
        b.iter_custom(|iterations| {
            spawn_batches(
                &rt,
                iterations,
                async || {
                    (0..SPAWNS)
                        .map(|_| Box::new(spawn_raw_counter()) as Box<dyn std::any::Any + Send>)
                        .collect()
                },
                async |spawned| drop(spawned),
            )
        })
    });

    group.bench_function("foundation_supervised", |b| {
        b.iter_custom(|iterations| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let supervisor = DynamicSupervisor::<Counter>::builder("bench")
                        .start()
                        .await
                        .unwrap();
                    let began = Instant::now();
                    for _ in 0..SPAWNS {
                        supervisor.start_child(()).await.unwrap();
                    }
                    total += began.elapsed();
                    supervisor.shutdown().await.unwrap();
                }
                total
            })
        })
    });

    group.bench_function("foundation_unsupervised", |b| {
        b.iter_custom(|iterations| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let began = Instant::now();
                    let mut actors = Vec::with_capacity(SPAWNS as usize);
                    for _ in 0..SPAWNS {
                        actors.push(spawn::<Counter>(()).await.unwrap());
                    }
                    total += began.elapsed();
                    for actor in actors {
                        let gone = actor.monitor();
                        actor.stop(foundation_core::ExitReason::Normal);
                        gone.await;
                    }
                }
                total
            })
        })
    });

    group.bench_function("ractor", |b| {
        b.iter_custom(|iterations| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let began = Instant::now();
                    let mut actors = Vec::with_capacity(SPAWNS as usize);
                    for _ in 0..SPAWNS {
                        actors.push(ractor::Actor::spawn(None, RactorCounter, ()).await.unwrap());
                    }
                    total += began.elapsed();
                    for (actor, task) in actors {
                        actor.stop(None);
                        task.await.unwrap();
                    }
                }
                total
            })
        })
    });

    group.bench_function("kameo", |b| {
        b.iter_custom(|iterations| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let began = Instant::now();
                    let mut actors = Vec::with_capacity(SPAWNS as usize);
                    for _ in 0..SPAWNS {
                        let actor = KameoCounter::spawn(());
                        actor.wait_for_startup().await;
                        actors.push(actor);
                    }
                    total += began.elapsed();
                    for actor in actors {
                        let _ = actor.stop_gracefully().await;
                        actor.wait_for_shutdown().await;
                    }
                }
                total
            })
        })
    });
    group.finish();
}

/// Calls until an answer comes: while the replacement starts, calls fail
/// (the crashed instance's queued calls get errors) and are retried.
async fn first_answer<F, Fut>(mut call: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1_000_000 {
        if call().await {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("no answer after a million attempts: the actor did not come back");
}

fn restart(c: &mut Criterion) {
    silence_panics();
    let rt = runtime();
    let mut group = c.benchmark_group("actor_restart");

    // Baseline: a loop that awaits the task's JoinHandle and respawns it
    // with a fresh channel, which callers fetch from a shared slot.
    let slot: Arc<Mutex<Option<mpsc::Sender<RawMessage>>>> = Arc::new(Mutex::new(None));
    {
        let slot = Arc::clone(&slot);
        let (ready, is_ready) = oneshot::channel();
        rt.spawn(async move {
            let mut ready = Some(ready);
            loop {
                let (sender, task) = spawn_raw_counter();
                *slot.lock().unwrap() = Some(sender);
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
                let _ = task.await;
            }
        });
        rt.block_on(is_ready).unwrap();
    }
    group.bench_function("tokio_respawn_baseline", |b| {
        b.iter_custom(|iterations| {
            let slot = Arc::clone(&slot);
            inside(&rt, move || async move {
                let began = Instant::now();
                for _ in 0..iterations {
                    let current = slot.lock().unwrap().clone().unwrap();
                    current.send(RawMessage::Panic).await.unwrap();
                    first_answer(|| async {
                        let sender = slot.lock().unwrap().clone().unwrap();
                        let (reply, count) = oneshot::channel();
                        sender.send(RawMessage::Get(reply)).await.is_ok() && count.await.is_ok()
                    })
                    .await;
                }
                began.elapsed()
            })
        })
    });

    let mut builder = Supervisor::builder("bench");
    builder.intensity(u32::MAX, Duration::from_secs(1));
    let spec = ChildSpec::<Counter>::new("counter", ());
    let ours = spec.handle();
    builder.child(spec);
    let _supervisor = rt.block_on(builder.start()).unwrap();
    type Crash = (&'static str, fn() -> CounterCast);
    let crashes: [Crash; 2] = [
        ("foundation", || CounterCast::Panic),
        // The same restart when the instance exits with an error instead
        // of a panic: the restart machinery without the unwinding.
        ("foundation_error_exit", || CounterCast::Fail),
    ];
    for (name, crash) in crashes {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let ours = ours.clone();
                inside(&rt, move || async move {
                    let began = Instant::now();
                    for _ in 0..iterations {
                        ours.cast(crash()).await.unwrap();
                        first_answer(|| async { ours.call(()).await.is_ok() }).await;
                    }
                    began.elapsed()
                })
            })
        });
    }

    let kameo_child = rt.block_on(async {
        let supervisor = KameoSupervisor::spawn(());
        supervisor.wait_for_startup().await;
        let child = KameoCounter::supervise(&supervisor, ())
            .restart_policy(kameo::supervision::RestartPolicy::Permanent)
            .restart_limit(u32::MAX, Duration::from_secs(1))
            .spawn()
            .await;
        (supervisor, child)
    });
    group.bench_function("kameo", |b| {
        b.iter_custom(|iterations| {
            let child = kameo_child.1.clone();
            inside(&rt, move || async move {
                let began = Instant::now();
                for _ in 0..iterations {
                    child.tell(KameoPanic).await.unwrap();
                    first_answer(|| async { child.ask(KameoGet).await.is_ok() }).await;
                }
                began.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = tell, call, spawn_cost, restart
}
criterion_main!(benches);
