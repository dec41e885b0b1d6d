//! A tour of the kernel: a supervision tree whose worker crashes and comes
//! back under the same handle, typed replies (answered at once, after a
//! checkpoint, or kept and answered later), a call from a plain thread, a
//! registry query, a monitor, supervised tasks, and a signal routed with
//! acknowledgements.
//!
//! Run with `cargo run -p foundation-core --example supervision_tour`.

#![allow(clippy::print_stdout)]

use std::time::Duration;

use foundation_core::registry::{Query, Registry};
use foundation_core::signal::{Delivery, Signal, SignalRouter};
use foundation_core::{
    Actor, ChildSpec, Context, ExitReason, ReplyPort, Strategy, Supervisor, SupervisorEventKind,
    TaskSupervisor,
};
use foundation_error::Error;

/// Counts the work it is given; panics when the work is "poison".
/// "Checkpoints" its count after every message (`after_handle`).
struct Worker {
    done: u64,
    checkpoints: u64,
    /// Callers waiting for the count to reach a target.
    waiting: Vec<(u64, ReplyPort<u64>)>,
}

enum Work {
    Item(&'static str),
    /// Answers the number of checkpoints, once the one after this message
    /// is taken.
    Checkpoints(ReplyPort<u64>),
    /// Answers when the count reaches the target (the port is kept).
    WhenDone(u64, ReplyPort<u64>),
}

impl Actor for Worker {
    type Args = ();
    type Call = ();
    type Reply = u64;
    type Cast = Work;
    type Info = Delivery;

    async fn init(_: (), _ctx: &mut Context<Self>) -> Result<Self, Error> {
        Ok(Worker {
            done: 0,
            checkpoints: 0,
            waiting: Vec::new(),
        })
    }

    async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) -> Result<u64, Error> {
        Ok(self.done)
    }

    async fn handle_cast(&mut self, work: Work, ctx: &mut Context<Self>) -> Result<(), Error> {
        match work {
            Work::Item("poison") => panic!("cannot digest poison"),
            Work::Item(_) => self.done += 1,
            Work::Checkpoints(reply) => ctx.reply_after(reply, Ok(self.checkpoints + 1)),
            Work::WhenDone(target, reply) => self.waiting.push((target, reply)),
        }
        Ok(())
    }

    async fn after_handle(&mut self, _ctx: &mut Context<Self>) -> Result<(), Error> {
        // A persistent actor would save its state here; replies wait for it.
        self.checkpoints += 1;
        let done = self.done;
        for (_, reply) in self.waiting.extract_if(.., |(target, _)| *target <= done) {
            reply.send(Ok(done));
        }
        Ok(())
    }

    async fn handle_info(
        &mut self,
        delivery: Delivery,
        _ctx: &mut Context<Self>,
    ) -> Result<(), Error> {
        self.done += 1;
        delivery.ack();
        Ok(())
    }

    async fn terminate(&mut self, reason: &ExitReason, _ctx: &mut Context<Self>) {
        println!("  worker terminating after {} items: {reason}", self.done);
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    std::panic::set_hook(Box::new(|info| println!("  (panic: {info})")));

    // 1. A supervision tree: a task supervisor, then the worker.
    let tasks = TaskSupervisor::new("background");
    let worker = ChildSpec::<Worker>::new("worker", ());
    let handle = worker.handle();
    let mut tree = Supervisor::builder("app");
    tree.strategy(Strategy::RestForOne)
        .intensity(3, Duration::from_secs(5))
        .child(tasks.child_spec("tasks"))
        .child(worker);
    let app = tree.start().await?;
    let mut events = app.subscribe();
    println!("started: {:?}", app.count_children().await?);

    // 2. Work, a crash, and the same handle answering after the restart.
    handle.cast(Work::Item("apple")).await?;
    handle.cast(Work::Item("poison")).await?;
    handle.cast(Work::Item("pear")).await?;
    while let Ok(event) = tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
        let Ok(event) = event else { break };
        println!(
            "event: {} / {}: {:?}",
            event.supervisor, event.child, event.kind
        );
        if matches!(event.kind, SupervisorEventKind::ChildRestarted { .. }) {
            break;
        }
    }
    println!(
        "after the restart: incarnation {}, items done {} (the queued pear survived the crash)",
        handle.incarnation(),
        handle.call(()).await?
    );

    // 3. Typed replies: one kept until the count reaches 4, one answered
    //    after the checkpoint that follows it, and a call from a plain
    //    thread with no runtime.
    let waiter = {
        let handle = handle.clone();
        tokio::spawn(async move { handle.ask(|reply| Work::WhenDone(4, reply)).await })
    };
    for item in ["plum", "fig", "kiwi"] {
        handle.cast(Work::Item(item)).await?;
    }
    println!(
        "count reached: {}",
        waiter
            .await
            .map_err(|error| Error::system(error.to_string()))??
    );
    println!(
        "checkpoints so far: {}",
        handle.ask(Work::Checkpoints).await?
    );
    let from_thread = handle.clone();
    let done = tokio::task::spawn_blocking(move || {
        std::thread::spawn(move || from_thread.call_blocking(()))
            .join()
            .map_err(|_| Error::system("the plain thread panicked"))?
    })
    .await
    .map_err(|error| Error::system(error.to_string()))??;
    println!("a plain thread's call_blocking: {done} items done");

    // 4. The registry, queried by capability.
    let registry = Registry::builder().index("capability").build();
    registry.register(
        "digester",
        &handle,
        [("capability".to_owned(), vec!["fruit", "vegetables"].into())].into(),
    )?;
    let found = registry.query(&Query::new().eq("capability", "fruit"));
    println!("registry: {} match capability=fruit", found.len());

    // 5. A signal routed with acknowledgements.
    let router = SignalRouter::new("main");
    router.subscribe("produce.*", &handle)?;
    let signal = Signal::new(
        "produce.arrived",
        "/market",
        serde_json::json!({ "crates": 3 }),
    )?;
    let report = router.route_sync(signal).await;
    println!(
        "signal acknowledged by {} of {} handlers",
        report.acknowledged(),
        report.outcomes.len()
    );

    // 6. A supervised task whose panic is an error, not a crash.
    let task = tasks.spawn(async { "background work done" })?;
    println!("task: {}", task.await?);

    // 7. Shut down: children stop in reverse order; the registry entry
    //    disappears with its process.
    let monitor = handle.monitor();
    app.shutdown().await?;
    let down = monitor.wait_timeout(Duration::from_secs(1)).await?;
    println!(
        "worker's process ended: {}; registry now holds {}",
        down.reason,
        registry.count()
    );
    Ok(())
}
