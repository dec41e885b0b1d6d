//! foundation-core's signal router: routing one signal to 100 subscribed
//! handler actors, against the same fan-out done by hand (an `Arc` of the
//! signal pushed into 100 bounded tokio channels), in the same run.
//!
//! Handlers drain their queues on the runtime's two workers while the
//! bench thread routes. Every 50 routes the bench waits, untimed, until
//! every signal was handed over, so queues never fill and the measurement
//! stays on the delivery path (not the drop path).
//!
//! Target (issue 4): routing to 100 subscribers under 20 us.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use foundation_core::signal::{Delivery, Signal, SignalRouter};
use foundation_core::{Actor, Context, spawn};
use foundation_error::Error;
use tokio::sync::mpsc;

const SUBSCRIBERS: usize = 100;
const BATCH: u64 = 50;

struct Handler;

impl Actor for Handler {
    type Args = ();
    type Call = ();
    type Reply = ();
    type Cast = ();
    type Info = Delivery;

    async fn init(_: (), _ctx: &mut Context<Self>) -> Result<Self, Error> {
        Ok(Handler)
    }

    async fn handle_info(
        &mut self,
        delivery: Delivery,
        _ctx: &mut Context<Self>,
    ) -> Result<(), Error> {
        delivery.ack();
        Ok(())
    }
}

fn wait_until(done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "deliveries did not catch up");
        std::thread::yield_now();
    }
}

fn route(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let signal = Signal::new(
        "agent.task.completed",
        "/agents/7",
        serde_json::json!({"task": 42}),
    )
    .unwrap();
    let mut group = c.benchmark_group("signal_route_100_subscribers");

    // Baseline: the fan-out by hand.
    let received = Arc::new(AtomicU64::new(0));
    let senders: Vec<mpsc::Sender<Arc<Signal>>> = (0..SUBSCRIBERS)
        .map(|_| {
            let (sender, mut receiver) = mpsc::channel::<Arc<Signal>>(10_000);
            let received = Arc::clone(&received);
            rt.spawn(async move {
                while receiver.recv().await.is_some() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            });
            sender
        })
        .collect();
    group.bench_function("tokio_channels_baseline", |b| {
        b.iter_custom(|iterations| {
            let mut timed = Duration::ZERO;
            let mut sent = received.load(Ordering::Relaxed);
            for done in 0..iterations {
                let began = Instant::now();
                let shared = Arc::new(signal.clone());
                for sender in &senders {
                    sender.try_send(Arc::clone(&shared)).unwrap();
                }
                timed += began.elapsed();
                sent += SUBSCRIBERS as u64;
                if done % BATCH == BATCH - 1 || done + 1 == iterations {
                    wait_until(|| received.load(Ordering::Relaxed) >= sent);
                }
            }
            timed
        })
    });

    let router = SignalRouter::new("bench");
    // Subscribing spawns the subscription's forwarder on the runtime.
    let _runtime = rt.enter();
    let handlers: Vec<_> = (0..SUBSCRIBERS)
        .map(|index| {
            let handler = rt.block_on(spawn::<Handler>(())).unwrap();
            // Half exact subscriptions, half prefix patterns.
            let pattern = if index % 2 == 0 {
                "agent.task.completed"
            } else {
                "agent.task.*"
            };
            router.subscribe(pattern, &handler).unwrap();
            handler
        })
        .collect();
    group.bench_function("foundation_route", |b| {
        b.iter_custom(|iterations| {
            let mut timed = Duration::ZERO;
            for done in 0..iterations {
                let began = Instant::now();
                let report = router.route(signal.clone());
                timed += began.elapsed();
                debug_assert_eq!(report.delivered, SUBSCRIBERS);
                if done % BATCH == BATCH - 1 || done + 1 == iterations {
                    let routed = router.stats().routed;
                    wait_until(|| router.stats().delivered >= routed);
                }
            }
            timed
        })
    });
    assert_eq!(router.stats().dropped, 0);
    drop(handlers);
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = route
}
criterion_main!(benches);
