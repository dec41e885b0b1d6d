//! Typed replies (`ask`, `ReplyPort`), the after-handler point
//! (`after_handle`, `reply_after`) and calls from plain threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use foundation_core::{Actor, ActorRef, Context, ExitReason, ReplyPort, SendErrorKind, spawn};
use foundation_error::{Error, ErrorCode};
use tokio::sync::Notify;

/// A ledger that "saves" in `after_handle`, and can be told to fail there.
struct Ledger {
    items: Vec<u64>,
    waiting: Vec<ReplyPort<u64>>,
    hooks: LedgerHooks,
}

#[derive(Clone, Default)]
struct LedgerHooks {
    /// How many times `after_handle` ran.
    saves: Arc<AtomicUsize>,
    /// Makes the next `after_handle` fail.
    fail_save: Arc<AtomicBool>,
    /// Kept ports whose caller had gone when they were answered.
    unanswered: Arc<AtomicUsize>,
}

enum LedgerCast {
    /// Appends; answers the new length at once.
    Push(u64, ReplyPort<usize>),
    /// Answers the total at once.
    Total(ReplyPort<u64>),
    /// Keeps the port; answered by `Release`.
    WaitForTotal(ReplyPort<u64>),
    /// Answers every kept port with the total.
    Release,
    /// Drops the port unanswered.
    Forget(ReplyPort<u64>),
    /// Appends; answers the save count only once `after_handle` succeeded.
    Durable(u64, ReplyPort<usize>),
    /// Waits for the notify before returning.
    Block(Arc<Notify>),
}

enum LedgerCall {
    /// Returns the number of saves seen when the handler ran.
    SavesSoFar,
    /// Appends, then fails: the append stays.
    PushThenFail(u64),
}

impl Actor for Ledger {
    type Args = LedgerHooks;
    type Call = LedgerCall;
    type Reply = usize;
    type Cast = LedgerCast;
    type Info = ();

    async fn init(hooks: LedgerHooks, _ctx: &mut Context<Self>) -> Result<Self, Error> {
        Ok(Ledger {
            items: Vec::new(),
            waiting: Vec::new(),
            hooks,
        })
    }

    async fn handle_call(
        &mut self,
        request: LedgerCall,
        _ctx: &mut Context<Self>,
    ) -> Result<usize, Error> {
        match request {
            LedgerCall::SavesSoFar => Ok(self.hooks.saves.load(Ordering::SeqCst)),
            LedgerCall::PushThenFail(item) => {
                self.items.push(item);
                Err(Error::business("refused after pushing"))
            }
        }
    }

    async fn handle_cast(
        &mut self,
        message: LedgerCast,
        ctx: &mut Context<Self>,
    ) -> Result<(), Error> {
        match message {
            LedgerCast::Push(item, reply) => {
                self.items.push(item);
                reply.send(Ok(self.items.len()));
            }
            LedgerCast::Total(reply) => {
                reply.send(Ok(self.items.iter().sum()));
            }
            LedgerCast::WaitForTotal(reply) => self.waiting.push(reply),
            LedgerCast::Release => {
                let total = self.items.iter().sum();
                for reply in self.waiting.drain(..) {
                    let closed = reply.is_closed();
                    let delivered = reply.send(Ok(total));
                    assert_eq!(closed, !delivered);
                    if !delivered {
                        self.hooks.unanswered.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            LedgerCast::Forget(reply) => drop(reply),
            LedgerCast::Durable(item, reply) => {
                self.items.push(item);
                // The save that makes this durable is the next one.
                let saves = self.hooks.saves.load(Ordering::SeqCst) + 1;
                ctx.reply_after(reply, Ok(saves));
            }
            LedgerCast::Block(gate) => gate.notified().await,
        }
        Ok(())
    }

    async fn after_handle(&mut self, _ctx: &mut Context<Self>) -> Result<(), Error> {
        if self.hooks.fail_save.swap(false, Ordering::SeqCst) {
            return Err(Error::new(ErrorCode::INTERNAL_ERROR, "the save failed"));
        }
        self.hooks.saves.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn ledger() -> (ActorRef<Ledger>, LedgerHooks) {
    let hooks = LedgerHooks::default();
    (spawn::<Ledger>(hooks.clone()).await.unwrap(), hooks)
}

#[tokio::test]
async fn each_request_has_its_own_reply_type() {
    let (ledger, _) = ledger().await;
    let length: usize = ledger
        .ask(|reply| LedgerCast::Push(3, reply))
        .await
        .unwrap();
    assert_eq!(length, 1);
    ledger
        .ask(|reply| LedgerCast::Push(4, reply))
        .await
        .unwrap();
    let total: u64 = ledger.ask(LedgerCast::Total).await.unwrap();
    assert_eq!(total, 7);
}

#[tokio::test(start_paused = true)]
async fn a_kept_reply_is_answered_later_while_the_mailbox_moves_on() {
    let (ledger, _) = ledger().await;
    let waiter = {
        let ledger = ledger.clone();
        tokio::spawn(async move { ledger.ask(LedgerCast::WaitForTotal).await })
    };
    // The waiter's request is queued before these, and does not block them.
    tokio::task::yield_now().await;
    ledger
        .ask(|reply| LedgerCast::Push(5, reply))
        .await
        .unwrap();
    ledger
        .ask(|reply| LedgerCast::Push(6, reply))
        .await
        .unwrap();
    assert!(!waiter.is_finished());
    ledger.cast(LedgerCast::Release).await.unwrap();
    assert_eq!(waiter.await.unwrap().unwrap(), 11);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_reply_fails_the_caller_at_once() {
    let (ledger, _) = ledger().await;
    let started = tokio::time::Instant::now();
    let error = ledger.ask(LedgerCast::Forget).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::PROCESS_CRASHED, "{error}");
    assert!(error.message().contains("dropped"), "{error}");
    // Not the call timeout: no time passed.
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn an_ask_queued_when_the_process_ends_fails_at_once() {
    let (ledger, _) = ledger().await;
    let gate = Arc::new(Notify::new());
    ledger
        .cast(LedgerCast::Block(Arc::clone(&gate)))
        .await
        .unwrap();
    let asking = {
        let ledger = ledger.clone();
        tokio::spawn(async move { ledger.ask(LedgerCast::Total).await })
    };
    tokio::task::yield_now().await;
    let monitor = ledger.monitor();
    ledger.stop(ExitReason::Normal);
    gate.notify_one();
    monitor.await;
    let started = tokio::time::Instant::now();
    let error = asking.await.unwrap().unwrap_err();
    assert_eq!(error.code(), ErrorCode::PROCESS_CRASHED, "{error}");
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test]
async fn an_ask_to_an_ended_process_fails_at_once() {
    let (ledger, _) = ledger().await;
    let monitor = ledger.monitor();
    ledger.stop(ExitReason::Normal);
    monitor.await;
    let error = ledger.ask(LedgerCast::Total).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::PROCESS_NOT_ALIVE);
}

#[tokio::test]
async fn after_handle_runs_before_the_call_reply_is_released() {
    let (ledger, hooks) = ledger().await;
    // The handler saw no save yet; by the time the reply arrives, the save
    // after it has run.
    assert_eq!(ledger.call(LedgerCall::SavesSoFar).await.unwrap(), 0);
    assert_eq!(hooks.saves.load(Ordering::SeqCst), 1);
    // It runs after casts too.
    ledger.cast(LedgerCast::Release).await.unwrap();
    assert_eq!(ledger.call(LedgerCall::SavesSoFar).await.unwrap(), 2);
}

#[tokio::test]
async fn reply_after_answers_once_after_handle_succeeded() {
    let (ledger, hooks) = ledger().await;
    let saves = ledger
        .ask(|reply| LedgerCast::Durable(1, reply))
        .await
        .unwrap();
    assert_eq!(saves, 1);
    assert_eq!(hooks.saves.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failed_after_handle_answers_held_replies_with_its_error_and_ends_the_instance() {
    let (ledger, hooks) = ledger().await;
    let monitor = ledger.monitor();
    hooks.fail_save.store(true, Ordering::SeqCst);
    let error = ledger
        .ask(|reply| LedgerCast::Durable(1, reply))
        .await
        .unwrap_err();
    assert_eq!(error.message(), "the save failed");
    let down = monitor.await;
    match down.reason {
        ExitReason::Error(error) => assert_eq!(error.message(), "the save failed"),
        other => panic!("expected the save's error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_failed_after_handle_fails_the_call_it_followed() {
    let (ledger, hooks) = ledger().await;
    hooks.fail_save.store(true, Ordering::SeqCst);
    let error = ledger.call(LedgerCall::SavesSoFar).await.unwrap_err();
    assert_eq!(error.message(), "the save failed");
    assert_eq!(error.code(), ErrorCode::INTERNAL_ERROR);
}

#[tokio::test]
async fn state_mutated_by_a_failing_handler_is_kept() {
    let (ledger, _) = ledger().await;
    let error = ledger.call(LedgerCall::PushThenFail(9)).await.unwrap_err();
    assert_eq!(error.message(), "refused after pushing");
    assert_eq!(ledger.ask(LedgerCast::Total).await.unwrap(), 9);
}

#[tokio::test]
async fn reply_port_reports_a_gone_caller() {
    let (ledger, hooks) = ledger().await;
    let gate = Arc::new(Notify::new());
    ledger
        .cast(LedgerCast::Block(Arc::clone(&gate)))
        .await
        .unwrap();
    // The caller gives up before the actor reaches the request.
    let error = ledger
        .ask_timeout(LedgerCast::WaitForTotal, Duration::from_millis(1))
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::TIMEOUT);
    gate.notify_one();
    // The kept port is closed: the release below answers nobody, and the
    // actor carries on.
    ledger.cast(LedgerCast::Release).await.unwrap();
    assert_eq!(ledger.ask(LedgerCast::Total).await.unwrap(), 0);
    assert_eq!(hooks.unanswered.load(Ordering::SeqCst), 1);
}

// ----- calls from plain threads -------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_threads_call_and_ask_without_a_runtime() {
    let (ledger, _) = ledger().await;
    let from_thread = {
        let ledger = ledger.clone();
        std::thread::spawn(move || {
            assert!(tokio::runtime::Handle::try_current().is_err());
            let length = ledger
                .ask_blocking(|reply| LedgerCast::Push(2, reply))
                .unwrap();
            let saves = ledger.call_blocking(LedgerCall::SavesSoFar).unwrap();
            let total = ledger.ask_blocking(LedgerCast::Total).unwrap();
            (length, saves, total)
        })
    };
    let (length, saves, total) = tokio::task::spawn_blocking(move || from_thread.join())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((length, saves, total), (1, 1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_call_times_out_and_fails_on_an_ended_process() {
    let (ledger, _) = ledger().await;
    let gate = Arc::new(Notify::new());
    ledger
        .cast(LedgerCast::Block(Arc::clone(&gate)))
        .await
        .unwrap();
    let blocked = ledger.clone();
    let error = tokio::task::spawn_blocking(move || {
        blocked.call_blocking_timeout(LedgerCall::SavesSoFar, Duration::from_millis(20))
    })
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(error.code(), ErrorCode::TIMEOUT);

    let monitor = ledger.monitor();
    ledger.stop(ExitReason::Normal);
    gate.notify_one();
    monitor.await;
    let ended = ledger.clone();
    let error = tokio::task::spawn_blocking(move || ended.ask_blocking(LedgerCast::Total))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::PROCESS_NOT_ALIVE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_cast_path_waits_for_room_within_its_timeout() {
    let mut options = foundation_core::ActorOptions::<Ledger>::new();
    options.capacity(1);
    let ledger = foundation_core::spawn_with::<Ledger>(LedgerHooks::default(), &options)
        .await
        .unwrap();
    let gate = Arc::new(Notify::new());
    // One message handled (blocked), one queued: the mailbox is full.
    ledger
        .cast(LedgerCast::Block(Arc::clone(&gate)))
        .await
        .unwrap();
    tokio::task::yield_now().await;
    let refused = loop {
        match ledger.try_cast(LedgerCast::Release) {
            Ok(()) => continue,
            Err(refused) => break refused,
        }
    };
    assert_eq!(refused.kind, SendErrorKind::Full);
    let full = ledger.clone();
    let error = tokio::task::spawn_blocking(move || {
        full.ask_blocking_timeout(LedgerCast::Total, Duration::from_millis(20))
    })
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(error.code(), ErrorCode::TIMEOUT);
    assert!(error.message().contains("stayed full"), "{error}");
    gate.notify_one();
}
