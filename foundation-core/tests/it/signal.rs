use std::sync::Arc;
use std::time::Duration;

use foundation_core::signal::{AckOutcome, Delivery, Signal, SignalRouter};
use foundation_core::testkit::{wait_for, wait_for_state};
use foundation_core::{Actor, ActorRef, Context, ExitReason, spawn};
use foundation_error::{Error, ErrorCode};
use serde_json::json;
use tokio::sync::Notify;

/// How a handler treats what it receives.
#[derive(Clone)]
enum Behaviour {
    Ack,
    /// Handles without acknowledging.
    Ignore,
    /// Waits for the gate before acknowledging.
    Slow(Arc<Notify>),
    /// Panics on the signal.
    Crash,
}

struct Handler {
    behaviour: Behaviour,
    seen: Vec<String>,
}

impl Actor for Handler {
    type Args = Behaviour;
    type Call = ();
    type Reply = Vec<String>;
    type Cast = ();
    type Info = Delivery;

    async fn init(behaviour: Behaviour, _ctx: &mut Context<Self>) -> Result<Self, Error> {
        Ok(Handler {
            behaviour,
            seen: Vec::new(),
        })
    }

    async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) -> Result<Vec<String>, Error> {
        Ok(self.seen.clone())
    }

    async fn handle_info(
        &mut self,
        delivery: Delivery,
        _ctx: &mut Context<Self>,
    ) -> Result<(), Error> {
        self.seen.push(delivery.signal().signal_type.clone());
        match &self.behaviour {
            Behaviour::Ack => delivery.ack(),
            Behaviour::Ignore => drop(delivery),
            Behaviour::Slow(gate) => {
                gate.notified().await;
                delivery.ack();
            }
            Behaviour::Crash => panic!("handler crashed on {}", delivery.signal().signal_type),
        }
        Ok(())
    }
}

fn signal(signal_type: &str) -> Signal {
    Signal::new(signal_type, "/tests", json!({ "n": 1 })).unwrap()
}

async fn handler(behaviour: Behaviour) -> ActorRef<Handler> {
    spawn::<Handler>(behaviour).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn exact_and_prefix_patterns_route_to_the_right_handlers() {
    let router = SignalRouter::new("patterns");
    let exact = handler(Behaviour::Ack).await;
    let prefix = handler(Behaviour::Ack).await;
    let everything = handler(Behaviour::Ack).await;
    router.subscribe("agent.task.completed", &exact).unwrap();
    router.subscribe("agent.task.*", &prefix).unwrap();
    router.subscribe("*", &everything).unwrap();

    assert_eq!(router.route(signal("agent.task.completed")).matched, 3);
    assert_eq!(router.route(signal("agent.task.failed")).matched, 2);
    assert_eq!(router.route(signal("agent.taskforce")).matched, 1);
    let report = router.route_sync(signal("system.boot")).await;
    assert_eq!(report.acknowledged(), 1);

    assert_eq!(exact.call(()).await.unwrap(), ["agent.task.completed"]);
    assert_eq!(
        prefix.call(()).await.unwrap(),
        ["agent.task.completed", "agent.task.failed"]
    );
    assert_eq!(everything.call(()).await.unwrap().len(), 4);
    let stats = router.stats();
    assert_eq!(
        (stats.routed, stats.delivered, stats.dropped, stats.failed),
        (7, 7, 0, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn invalid_patterns_and_signals_are_rejected() {
    let router = SignalRouter::new("invalid");
    let target = handler(Behaviour::Ack).await;
    for pattern in ["", "a*b", "a.*.c"] {
        let error = router.subscribe(pattern, &target).unwrap_err();
        assert_eq!(error.code(), ErrorCode::INVALID_INPUT, "{pattern}");
    }
    assert!(Signal::new("", "/x", json!(null)).is_err());
    assert!(Signal::new("a.*", "/x", json!(null)).is_err());
    assert!(Signal::new("a", "", json!(null)).is_err());
    let bad = SignalRouter::builder("bad")
        .max_queue(10)
        .warn_queue(11)
        .build();
    assert_eq!(bad.unwrap_err().code(), ErrorCode::INVALID_CONFIG_VALUE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_handlers_that_die_leave_nothing_behind() {
    let router = SignalRouter::new("leak");
    let mut handlers = Vec::new();
    for index in 0..1_000 {
        let target = handler(Behaviour::Ack).await;
        router
            .subscribe(
                if index % 2 == 0 {
                    "leak.test"
                } else {
                    "leak.*"
                },
                &target,
            )
            .unwrap();
        handlers.push(target);
    }
    assert_eq!(router.subscription_count(), 1_000);
    assert_eq!(router.forwarder_count(), 1_000);
    assert_eq!(
        handlers.iter().map(ActorRef::monitor_count).sum::<usize>(),
        1_000
    );
    let mut gone = Vec::new();
    for target in &handlers {
        gone.push(target.monitor());
        target.stop(ExitReason::Normal);
    }
    for monitor in gone {
        monitor.wait_timeout(Duration::from_secs(10)).await.unwrap();
    }
    assert_eq!(router.subscription_count(), 0);
    assert_eq!(
        handlers.iter().map(ActorRef::monitor_count).sum::<usize>(),
        0
    );
    wait_for(|| router.forwarder_count() == 0, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(router.route(signal("leak.test")).matched, 0);
}

#[tokio::test(start_paused = true)]
async fn route_sync_reports_every_handler_outcome() {
    let router = SignalRouter::new("sync");
    let gate = Arc::new(Notify::new());
    let acking = handler(Behaviour::Ack).await;
    let ignoring = handler(Behaviour::Ignore).await;
    let slow = handler(Behaviour::Slow(Arc::clone(&gate))).await;
    let crashing = handler(Behaviour::Crash).await;
    let ids = [
        router.subscribe("job.*", &acking).unwrap(),
        router.subscribe("job.*", &ignoring).unwrap(),
        router.subscribe("job.*", &slow).unwrap(),
        router.subscribe("job.*", &crashing).unwrap(),
    ];
    let started = tokio::time::Instant::now();
    let report = router.route_sync(signal("job.done")).await;
    // The slow handler holds the call up for its full second, no longer.
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    let outcomes: Vec<_> = report
        .outcomes
        .iter()
        .map(|(id, _, outcome)| (*id, *outcome))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (ids[0], AckOutcome::Acknowledged),
            (ids[1], AckOutcome::NotAcknowledged),
            (ids[2], AckOutcome::TimedOut),
            (ids[3], AckOutcome::HandlerDied),
        ]
    );
    gate.notify_one();
    // The crashed handler's subscription is gone with it.
    assert_eq!(router.subscription_count(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_overall_timeout_bounds_route_sync() {
    let router = SignalRouter::new("overall");
    let gate = Arc::new(Notify::new());
    let slow = handler(Behaviour::Slow(gate)).await;
    router.subscribe("x", &slow).unwrap();
    let started = tokio::time::Instant::now();
    let report = router
        .route_sync_with(signal("x"), Duration::from_secs(10), Duration::from_secs(2))
        .await;
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(report.count(AckOutcome::TimedOut), 1);
}

#[tokio::test(start_paused = true)]
async fn a_slow_handler_blocks_neither_the_router_nor_other_handlers() {
    let router = SignalRouter::new("isolation");
    let gate = Arc::new(Notify::new());
    let slow = handler(Behaviour::Slow(Arc::clone(&gate))).await;
    let fast = handler(Behaviour::Ack).await;
    router.subscribe("tick", &slow).unwrap();
    router.subscribe("tick", &fast).unwrap();
    for _ in 0..20 {
        let report = router.route(signal("tick"));
        assert_eq!((report.delivered, report.dropped), (2, 0));
    }
    wait_for_state(&fast, |fast| fast.seen.len() == 20, Duration::from_secs(1))
        .await
        .unwrap();
    // The slow handler is still stuck on the first signal; the router and
    // the fast handler never waited for it.
    assert_eq!(slow.status(), foundation_core::ProcessStatus::Running);
    gate.notify_waiters();
}

#[tokio::test(start_paused = true)]
async fn a_full_handler_queue_drops_and_counts() {
    let mut builder = SignalRouter::builder("drops");
    builder.max_queue(100).warn_queue(50);
    let router = builder.build().unwrap();
    let gate = Arc::new(Notify::new());
    let stuck = handler(Behaviour::Slow(Arc::clone(&gate))).await;
    router.subscribe("flood", &stuck).unwrap();
    // `route` never awaits, so nothing drains the queue during the loop.
    let mut dropped = 0;
    for _ in 0..130 {
        dropped += router.route(signal("flood")).dropped;
    }
    assert_eq!(dropped, 30);
    assert_eq!(router.stats().dropped, 30);
}

#[tokio::test(start_paused = true)]
async fn subscribing_a_dead_handler_fails_and_unsubscribe_releases_the_monitor() {
    let router = SignalRouter::new("lifecycle");
    let target = handler(Behaviour::Ack).await;
    let id = router.subscribe("a", &target).unwrap();
    assert_eq!(target.monitor_count(), 1);
    assert!(router.unsubscribe(id));
    assert!(!router.unsubscribe(id));
    assert_eq!(target.monitor_count(), 0);
    let gone = target.monitor();
    target.stop(ExitReason::Normal);
    gone.await;
    let error = router.subscribe("a", &target).unwrap_err();
    assert_eq!(error.code(), ErrorCode::PROCESS_NOT_ALIVE);
    assert_eq!(router.subscription_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn signals_are_stamped_and_timed_by_the_injected_clock() {
    let clock = foundation_core::clock::ManualClock::new();
    let stamped = Signal::new_at("clock.tick", "/tests", json!(null), &clock).unwrap();
    assert_eq!(stamped.time, foundation_error::clock::Clock::wall(&clock));

    let router = SignalRouter::builder("clocked")
        .clock(clock.clone())
        .build()
        .unwrap();
    let report = router.route_sync(stamped).await;
    assert_eq!(report.outcomes.len(), 0);
    assert_eq!(
        report.elapsed,
        Duration::ZERO,
        "the manual clock did not move"
    );
}

#[test]
fn signals_round_trip_through_postcard_and_json() {
    let mut signal = Signal::new(
        "agent.task.completed",
        "/agents/7",
        json!({ "task": 42, "tags": ["a", "b"], "ratio": 0.5, "none": null }),
    )
    .unwrap();
    let bytes = postcard::to_allocvec(&signal).unwrap();
    let back: Signal = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, signal);

    let json = serde_json::to_value(&signal).unwrap();
    assert_eq!(json["data"]["task"], 42, "JSON keeps data a JSON value");
    assert_eq!(serde_json::from_value::<Signal>(json).unwrap(), signal);

    signal.data = serde_json::Value::Null;
    let bytes = postcard::to_allocvec(&signal).unwrap();
    assert_eq!(postcard::from_bytes::<Signal>(&bytes).unwrap(), signal);
}
