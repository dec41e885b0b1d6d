//! The same counter actor written four ways, for like-for-like
//! comparisons: on Foundation, as a raw tokio task with channels (the
//! baseline), on ractor and on kameo.
//!
//! Each counts the values it is told to add, answers a request for the
//! count, and panics when told to (for restart measurements).

use foundation_core::{Actor, Context, ReplyPort};
use foundation_error::Error;
use tokio::sync::{mpsc, oneshot};

/// A message of the counter.
pub enum CounterCast {
    /// Add to the count.
    Add(u64),
    /// Panic (restart benchmarks).
    Panic,
    /// Fail with an error: a crash without unwinding (restart benchmarks).
    Fail,
    /// Reply with the count through a typed port (`ask` benchmarks).
    Get(ReplyPort<u64>),
}

/// The counter on Foundation.
pub struct Counter {
    count: u64,
}

impl Actor for Counter {
    type Args = ();
    type Call = ();
    type Reply = u64;
    type Cast = CounterCast;
    type Info = ();

    async fn init(_: (), _ctx: &mut Context<Self>) -> Result<Self, Error> {
        Ok(Counter { count: 0 })
    }

    async fn handle_call(&mut self, _: (), _ctx: &mut Context<Self>) -> Result<u64, Error> {
        Ok(self.count)
    }

    async fn handle_cast(
        &mut self,
        message: CounterCast,
        _ctx: &mut Context<Self>,
    ) -> Result<(), Error> {
        match message {
            CounterCast::Add(amount) => self.count += amount,
            CounterCast::Panic => panic!("told to panic"),
            CounterCast::Fail => return Err(Error::system("told to fail")),
            CounterCast::Get(reply) => {
                reply.send(Ok(self.count));
            }
        }
        Ok(())
    }
}

/// The baseline's messages.
pub enum RawMessage {
    /// Add to the count.
    Add(u64),
    /// Reply with the count.
    Get(oneshot::Sender<u64>),
    /// Panic.
    Panic,
}

/// The counter as a raw tokio task: a bounded mpsc channel of 1,024 and a
/// loop.
pub fn spawn_raw_counter() -> (mpsc::Sender<RawMessage>, tokio::task::JoinHandle<()>) {
    let (sender, mut receiver) = mpsc::channel::<RawMessage>(1024);
    let task = tokio::spawn(async move {
        let mut count = 0u64;
        while let Some(message) = receiver.recv().await {
            match message {
                RawMessage::Add(amount) => count += amount,
                RawMessage::Get(reply) => {
                    let _ = reply.send(count);
                }
                RawMessage::Panic => panic!("told to panic"),
            }
        }
    });
    (sender, task)
}

/// The counter's messages on ractor.
pub enum RactorMessage {
    /// Add to the count.
    Add(u64),
    /// Reply with the count.
    Get(ractor::RpcReplyPort<u64>),
}

/// The counter on ractor.
pub struct RactorCounter;

impl ractor::Actor for RactorCounter {
    type Msg = RactorMessage;
    type State = u64;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ractor::ActorRef<Self::Msg>,
        _: (),
    ) -> Result<u64, ractor::ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _myself: ractor::ActorRef<Self::Msg>,
        message: RactorMessage,
        count: &mut u64,
    ) -> Result<(), ractor::ActorProcessingErr> {
        match message {
            RactorMessage::Add(amount) => *count += amount,
            RactorMessage::Get(reply) => {
                let _ = reply.send(*count);
            }
        }
        Ok(())
    }
}

/// The counter on kameo.
pub struct KameoCounter {
    count: u64,
}

impl kameo::Actor for KameoCounter {
    type Args = ();
    type Error = kameo::error::Infallible;

    async fn on_start(_: (), _: kameo::actor::ActorRef<Self>) -> Result<Self, Self::Error> {
        Ok(KameoCounter { count: 0 })
    }
}

/// Add to the count (kameo).
pub struct KameoAdd(pub u64);
/// Reply with the count (kameo).
pub struct KameoGet;
/// Panic (kameo).
pub struct KameoPanic;

impl kameo::message::Message<KameoAdd> for KameoCounter {
    type Reply = ();

    async fn handle(
        &mut self,
        message: KameoAdd,
        _ctx: &mut kameo::message::Context<Self, Self::Reply>,
    ) -> Self::Reply {
        self.count += message.0;
    }
}

impl kameo::message::Message<KameoGet> for KameoCounter {
    type Reply = u64;

    async fn handle(
        &mut self,
        _: KameoGet,
        _ctx: &mut kameo::message::Context<Self, Self::Reply>,
    ) -> Self::Reply {
        self.count
    }
}

impl kameo::message::Message<KameoPanic> for KameoCounter {
    type Reply = ();

    async fn handle(
        &mut self,
        _: KameoPanic,
        _ctx: &mut kameo::message::Context<Self, Self::Reply>,
    ) -> Self::Reply {
        panic!("told to panic");
    }
}

/// A do-nothing kameo supervisor for the restart benchmark.
pub struct KameoSupervisor;

impl kameo::Actor for KameoSupervisor {
    type Args = ();
    type Error = kameo::error::Infallible;

    async fn on_start(_: (), _: kameo::actor::ActorRef<Self>) -> Result<Self, Self::Error> {
        Ok(KameoSupervisor)
    }
}

/// Silences the panic hook, so that restart benchmarks measure restarts,
/// not the printing of panic messages.
pub fn silence_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}
