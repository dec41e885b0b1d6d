//! Test actors and helpers shared by the modules.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use foundation_core::{Actor, Context, Down, ExitReason};
use foundation_error::{Error, ErrorCode};
use metrics_util::debugging::{DebugValue, Snapshotter};
use tokio::sync::{Notify, mpsc};

/// A counter that can be told to misbehave.
pub(crate) struct Probe {
    pub(crate) count: u64,
    pub(crate) events: Option<mpsc::UnboundedSender<String>>,
    pub(crate) name: String,
}

#[derive(Clone, Default)]
pub(crate) struct ProbeArgs {
    pub(crate) name: String,
    pub(crate) start: u64,
    pub(crate) events: Option<mpsc::UnboundedSender<String>>,
    pub(crate) fail_init: bool,
}

impl ProbeArgs {
    pub(crate) fn named(name: &str) -> ProbeArgs {
        ProbeArgs {
            name: name.to_owned(),
            ..ProbeArgs::default()
        }
    }

    pub(crate) fn reporting(name: &str, events: &mpsc::UnboundedSender<String>) -> ProbeArgs {
        ProbeArgs {
            name: name.to_owned(),
            events: Some(events.clone()),
            ..ProbeArgs::default()
        }
    }
}

pub(crate) enum ProbeCall {
    Get,
    Add(u64),
    Fail,
    Panic,
    /// Never replies: the instance stays busy until it is stopped.
    Hang,
}

pub(crate) enum ProbeCast {
    Add(u64),
    Panic,
    Fail,
    Stop(ExitReason),
    Block(Arc<Notify>),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ProbeInfo {
    Tick(&'static str),
}

impl Probe {
    fn report(&self, event: String) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }
}

impl Actor for Probe {
    type Args = ProbeArgs;
    type Call = ProbeCall;
    type Reply = u64;
    type Cast = ProbeCast;
    type Info = ProbeInfo;

    async fn init(args: ProbeArgs, _ctx: &mut Context<Self>) -> Result<Self, Error> {
        if let Some(events) = &args.events {
            let _ = events.send(format!("init {}", args.name));
        }
        if args.fail_init {
            return Err(Error::new(ErrorCode::INITIALIZATION_FAILED, "told to fail"));
        }
        Ok(Probe {
            count: args.start,
            events: args.events,
            name: args.name,
        })
    }

    async fn handle_call(
        &mut self,
        request: ProbeCall,
        _ctx: &mut Context<Self>,
    ) -> Result<u64, Error> {
        match request {
            ProbeCall::Get => Ok(self.count),
            ProbeCall::Add(amount) => {
                self.count += amount;
                Ok(self.count)
            }
            ProbeCall::Fail => Err(Error::business("refused")),
            ProbeCall::Panic => panic!("probe {} panicked on purpose", self.name),
            ProbeCall::Hang => std::future::pending().await,
        }
    }

    async fn handle_cast(
        &mut self,
        message: ProbeCast,
        ctx: &mut Context<Self>,
    ) -> Result<(), Error> {
        match message {
            ProbeCast::Add(amount) => self.count += amount,
            ProbeCast::Panic => panic!("probe {} panicked on purpose", self.name),
            ProbeCast::Fail => return Err(Error::system("cast failed on purpose")),
            ProbeCast::Stop(reason) => ctx.stop(reason),
            ProbeCast::Block(gate) => gate.notified().await,
        }
        Ok(())
    }

    async fn handle_info(
        &mut self,
        message: ProbeInfo,
        _ctx: &mut Context<Self>,
    ) -> Result<(), Error> {
        let ProbeInfo::Tick(label) = message;
        self.report(format!("tick {label}"));
        Ok(())
    }

    async fn handle_down(&mut self, down: Down, _ctx: &mut Context<Self>) -> Result<(), Error> {
        self.report(format!("down {} {}", down.process, down.reason.label()));
        Ok(())
    }

    async fn terminate(&mut self, reason: &ExitReason, _ctx: &mut Context<Self>) {
        self.report(format!("terminate {} {}", self.name, reason.label()));
    }
}

/// Receives the next event, failing the test after 5 s of (tokio) time.
pub(crate) async fn next_event(events: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event within 5 s")
        .expect("the event channel is open")
}

// ----- helpers of the rate limiter and circuit breaker tests -----

/// Yields to the scheduler until `condition` holds, at most 10,000 times.
pub(crate) async fn yield_until(condition: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if condition() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the condition did not hold after 10,000 yields");
}

/// Polls a future outside any runtime, at most 1,000 times.
pub(crate) fn block_on_without_runtime<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = TaskContext::from_waker(Waker::noop());
    for _ in 0..1_000 {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
    }
    panic!("the future did not complete without a runtime");
}

/// Sorted `(name, value)` label pairs.
pub(crate) type Labels = Vec<(String, String)>;

/// A snapshot of a debugging recorder (taking one resets its values).
pub(crate) struct Metrics(Vec<(String, Labels, DebugValue)>);

impl Metrics {
    pub(crate) fn take(snapshotter: &Snapshotter) -> Metrics {
        let metrics = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let mut labels: Labels = key
                    .key()
                    .labels()
                    .map(|label| (label.key().to_owned(), label.value().to_owned()))
                    .collect();
                labels.sort();
                (key.key().name().to_owned(), labels, value)
            })
            .collect();
        Metrics(metrics)
    }

    /// Takes every metric named `name` out of the snapshot: its labels
    /// (sorted) and value, sorted by labels.
    pub(crate) fn named(&mut self, name: &str) -> Vec<(Labels, DebugValue)> {
        let (named, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|(metric, _, _)| metric == name);
        self.0 = rest;
        let mut found: Vec<_> = named
            .into_iter()
            .map(|(_, labels, value)| (labels, value))
            .collect();
        found.sort_by(|left, right| left.0.cmp(&right.0));
        found
    }
}

/// The labels as owned pairs, for comparisons.
pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
    let mut labels: Labels = pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    labels.sort();
    labels
}
