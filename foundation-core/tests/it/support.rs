//! Test actors shared by the modules.

use std::sync::Arc;
use std::time::Duration;

use foundation_core::{Actor, Context, Down, ExitReason};
use foundation_error::{Error, ErrorCode};
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
    /// Replies after this long (tokio time).
    Slow(Duration),
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
            ProbeCall::Slow(delay) => {
                tokio::time::sleep(delay).await;
                Ok(self.count)
            }
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
