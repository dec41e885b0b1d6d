//! Starting an instance and running it: `init` on the starter's task, then
//! the message loop on a task of its own, then `terminate`, then the exit
//! report.
//!
//! The loop serves the system lane first (stop requests, monitor
//! notifications), then due timers, then user messages in batches. Every
//! handler runs under a panic guard. Whatever ends the instance (a return,
//! a panic, an abort), an exit guard puts unhandled messages back, fails
//! queued calls, and reports the exit exactly once: to the mailbox for an
//! unsupervised actor (the process ends), or to the supervisor.

use std::mem;
use std::sync::Arc;
use std::time::Duration;

use foundation_error::{Error, ErrorCode};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Actor;
use super::context::Context;
use super::mailbox::{Envelope, Mailbox, SystemMessage, crashed_error};
use crate::panic::{catch, panic_message};
use crate::process::{Down, ExitReason};

/// Handled messages are given back to senders in chunks of this size.
const RELEASE_EVERY: usize = 64;

/// Who learns about an instance's exit.
pub(crate) enum ExitSink {
    /// Nobody restarts it: the process ends with the instance.
    Standalone,
    /// A supervisor: called with the exit reason and the incarnation.
    Supervised(Box<dyn FnOnce(ExitReason, u64) + Send>),
}

/// Runs `init` on the caller's task (bounded by `start_timeout`, panics
/// caught), then spawns the message loop. The mailbox must have no running
/// instance.
pub(crate) async fn start_instance<A: Actor>(
    mailbox: &Arc<Mailbox<A>>,
    args: A::Args,
    start_timeout: Duration,
    sink: ExitSink,
) -> Result<JoinHandle<()>, Error> {
    Ok(prepare_instance(mailbox, args, start_timeout)
        .await?
        .launch(sink))
}

/// An initialised instance, marked running, whose loop is not spawned yet.
/// Dropping it without [`Prepared::launch`] ends the process.
pub(crate) struct Prepared<A: Actor> {
    actor: A,
    guard: ExitGuard<A>,
    runtime: tokio::runtime::Handle,
}

impl<A: Actor> Prepared<A> {
    pub(crate) fn incarnation(&self) -> u64 {
        self.guard.incarnation
    }

    /// Spawns the message loop; `sink` learns of its exit.
    pub(crate) fn launch(mut self, sink: ExitSink) -> JoinHandle<()> {
        self.guard.sink = Some(sink);
        let incarnation = self.guard.incarnation;
        let mailbox = Arc::clone(&self.guard.ctx.mailbox);
        let join = self.runtime.spawn(run(self.actor, self.guard));
        mailbox.set_abort_handle(incarnation, join.abort_handle());
        join
    }
}

/// Runs `init` on the caller's task and marks the instance running.
pub(crate) async fn prepare_instance<A: Actor>(
    mailbox: &Arc<Mailbox<A>>,
    args: A::Args,
    start_timeout: Duration,
) -> Result<Prepared<A>, Error> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
        Error::new(
            ErrorCode::SERVICE_UNAVAILABLE,
            "starting an actor needs a running tokio runtime",
        )
    })?;
    let mut ctx = Context::new(Arc::clone(mailbox));
    let actor = match tokio::time::timeout(start_timeout, catch(A::init(args, &mut ctx))).await {
        Ok(Ok(Ok(actor))) => actor,
        Ok(Ok(Err(error))) => return Err(error),
        Ok(Err(panic)) => {
            return Err(Error::new(
                ErrorCode::INITIALIZATION_FAILED,
                format!("init of {} panicked: {panic}", std::any::type_name::<A>()),
            )
            .with_context("panic", panic));
        }
        Err(_elapsed) => {
            return Err(Error::new(
                ErrorCode::TIMEOUT,
                format!(
                    "init of {} did not finish in time",
                    std::any::type_name::<A>()
                ),
            )
            .with_context("timeout_ms", start_timeout.as_millis()));
        }
    };
    // Answers `init` queued with `reply_after` go out now that it succeeded.
    ctx.release_held(None);
    let incarnation = mailbox.begin_instance();
    Ok(Prepared {
        actor,
        guard: ExitGuard {
            ctx,
            sink: None,
            incarnation,
            reason: None,
        },
        runtime,
    })
}

/// Owns the instance's context; reports the exit when dropped, so that an
/// abort reports too.
struct ExitGuard<A: Actor> {
    ctx: Context<A>,
    sink: Option<ExitSink>,
    incarnation: u64,
    reason: Option<ExitReason>,
}

impl<A: Actor> Drop for ExitGuard<A> {
    fn drop(&mut self) {
        let reason = match (self.reason.take(), &self.sink) {
            (Some(reason), _) => reason,
            // Never launched: the starter gave up on it.
            (None, None) => ExitReason::Shutdown,
            (None, Some(_)) => ExitReason::Killed,
        };
        let batch = mem::take(&mut self.ctx.batch);
        let unreleased = mem::take(&mut self.ctx.unreleased);
        let mailbox = Arc::clone(&self.ctx.mailbox);
        mailbox.instance_exited(batch, unreleased, &reason);
        match self.sink.take() {
            Some(ExitSink::Standalone) | None => mailbox.close_for_good(reason),
            Some(ExitSink::Supervised(report)) => report(reason, self.incarnation),
        }
    }
}

async fn run<A: Actor>(mut actor: A, mut guard: ExitGuard<A>) {
    let reason = serve(&mut actor, &mut guard.ctx).await;
    // A panicking terminate changes nothing: the instance is ending anyway.
    let _ = catch(actor.terminate(&reason, &mut guard.ctx)).await;
    guard.reason = Some(reason);
    drop(actor);
    drop(guard);
}

enum Next<A: Actor> {
    Stop(ExitReason),
    Down(Down),
    Timer(A::Info),
    User(Envelope<A>),
}

async fn serve<A: Actor>(actor: &mut A, ctx: &mut Context<A>) -> ExitReason {
    loop {
        if let Some(reason) = ctx.stop.take() {
            return reason;
        }
        // Each handler runs with `after_handle` under one panic guard.
        let outcome = match next(ctx).await {
            Next::Stop(reason) => return reason,
            Next::Down(down) => {
                if !ctx.forget_monitors_of(down.process) {
                    continue;
                }
                catch(async {
                    let handled = actor.handle_down(down, ctx).await;
                    (handled, actor.after_handle(ctx).await)
                })
                .await
            }
            Next::Timer(info) | Next::User(Envelope::Info(info)) => {
                catch(async {
                    let handled = actor.handle_info(info, ctx).await;
                    (handled, actor.after_handle(ctx).await)
                })
                .await
            }
            Next::User(Envelope::Cast(message)) => {
                catch(async {
                    let handled = actor.handle_cast(message, ctx).await;
                    (handled, actor.after_handle(ctx).await)
                })
                .await
            }
            Next::User(Envelope::Inspect(inspect)) => {
                let state: &A = actor;
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inspect(state))) {
                    Ok(()) => continue,
                    Err(payload) => return ExitReason::Panic(panic_message(payload.as_ref())),
                }
            }
            Next::User(Envelope::Call(request, reply)) => {
                let outcome = catch(async {
                    let handled = actor.handle_call(request, ctx).await;
                    (handled, actor.after_handle(ctx).await)
                })
                .await;
                match outcome {
                    Ok((result, Ok(()))) => {
                        // The caller may have timed out; its loss.
                        let _ = reply.send(result);
                        ctx.release_held(None);
                        continue;
                    }
                    Ok((_, Err(error))) => {
                        let _ = reply.send(Err(error.clone()));
                        ctx.release_held(Some(&error));
                        return ExitReason::Error(error);
                    }
                    Err(panic) => {
                        let reason = ExitReason::Panic(panic);
                        let _ = reply.send(Err(crashed_error(ctx.id(), &reason)));
                        // Dropped ports answer their callers at once.
                        ctx.held.clear();
                        return reason;
                    }
                }
            }
        };
        match outcome {
            Ok((handled, Ok(()))) => {
                ctx.release_held(None);
                if let Err(error) = handled {
                    return ExitReason::Error(error);
                }
            }
            Ok((_, Err(error))) => {
                ctx.release_held(Some(&error));
                return ExitReason::Error(error);
            }
            Err(panic) => {
                ctx.held.clear();
                return ExitReason::Panic(panic);
            }
        }
    }
}

async fn next<A: Actor>(ctx: &mut Context<A>) -> Next<A> {
    loop {
        if ctx.mailbox.system_pending()
            && let Some(message) = ctx.mailbox.pop_system()
        {
            return match message {
                SystemMessage::Stop(reason) => Next::Stop(reason),
                SystemMessage::Down(down) => Next::Down(down),
            };
        }
        if !ctx.timers.is_empty()
            && let Some(info) = ctx.timers.pop_due(Instant::now())
        {
            return Next::Timer(info);
        }
        if let Some(envelope) = ctx.batch.pop_front() {
            ctx.unreleased += 1;
            if ctx.unreleased >= RELEASE_EVERY {
                ctx.mailbox.release(mem::take(&mut ctx.unreleased));
            }
            // Cooperate with tokio's scheduler: a long burst of messages
            // whose handlers never wait must not starve other tasks.
            tokio::task::consume_budget().await;
            return Next::User(envelope);
        }
        ctx.mailbox.release(mem::take(&mut ctx.unreleased));
        if ctx.mailbox.refill(&mut ctx.batch) || ctx.mailbox.system_pending() {
            continue;
        }
        match ctx.timers.next_deadline() {
            Some(deadline) => {
                tokio::select! {
                    biased;
                    () = ctx.mailbox.wait_for_work() => {}
                    () = tokio::time::sleep_until(deadline) => {}
                }
            }
            None => ctx.mailbox.wait_for_work().await,
        }
    }
}
