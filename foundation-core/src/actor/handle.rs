//! [`ActorRef`], the typed handle users hold to talk to an actor.
//!
//! A handle points at the actor's mailbox, not at one running instance, so
//! it stays valid across restarts under a supervisor. Every send either
//! succeeds, fails at once (the process ended), or fails after a bounded
//! wait; an undeliverable message comes back inside the error.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use foundation_error::{Error, ErrorCode};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::blocking::{deadline_after, wait_blocking};
use super::mailbox::{Envelope, Mailbox, Refused};
use super::reply::{ReplyPort, ReplyReceiver};
use super::{Actor, DEFAULT_CALL_TIMEOUT, DEFAULT_SEND_TIMEOUT};
use crate::monitor::Monitor;
use crate::process::{ExitReason, ProcessId, ProcessRef, ProcessStatus};

/// A typed, cloneable handle to an actor. Valid across restarts.
pub struct ActorRef<A: Actor> {
    mailbox: Arc<Mailbox<A>>,
}

impl<A: Actor> Clone for ActorRef<A> {
    fn clone(&self) -> Self {
        ActorRef {
            mailbox: Arc::clone(&self.mailbox),
        }
    }
}

impl<A: Actor> PartialEq for ActorRef<A> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.mailbox, &other.mailbox)
    }
}

impl<A: Actor> Eq for ActorRef<A> {}

impl<A: Actor> fmt::Debug for ActorRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorRef")
            .field("actor", &std::any::type_name::<A>())
            .field("id", &self.mailbox.id())
            .finish()
    }
}

/// Why a message could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendErrorKind {
    /// The mailbox is full (`try_cast`, `try_send_info`).
    Full,
    /// The process has ended.
    Closed,
    /// The mailbox stayed full until the send timeout.
    Timeout,
}

/// A message that could not be sent, handed back with the reason.
pub struct SendError<T> {
    /// Why.
    pub kind: SendErrorKind,
    /// The message, unsent.
    pub message: T,
}

impl<T> SendError<T> {
    /// The unsent message.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// The classified error, dropping the message.
    pub fn into_error(self) -> Error {
        Error::from(self)
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            SendErrorKind::Full => f.write_str("the mailbox is full"),
            SendErrorKind::Closed => f.write_str("the process has ended"),
            SendErrorKind::Timeout => f.write_str("the mailbox stayed full until the send timeout"),
        }
    }
}

impl<T> std::error::Error for SendError<T> {}

impl<T> From<SendError<T>> for Error {
    fn from(error: SendError<T>) -> Error {
        let code = match error.kind {
            SendErrorKind::Full => ErrorCode::MAILBOX_FULL,
            SendErrorKind::Closed => ErrorCode::PROCESS_NOT_ALIVE,
            SendErrorKind::Timeout => ErrorCode::TIMEOUT,
        };
        Error::new(code, error.to_string())
    }
}

impl<A: Actor> ActorRef<A> {
    pub(crate) fn from_mailbox(mailbox: Arc<Mailbox<A>>) -> ActorRef<A> {
        ActorRef { mailbox }
    }

    pub(crate) fn mailbox(&self) -> &Arc<Mailbox<A>> {
        &self.mailbox
    }

    /// Sends a request and waits for the reply, at most
    /// [`DEFAULT_CALL_TIMEOUT`].
    ///
    /// Fails at once when the process has ended; with `process_crashed`
    /// when the instance exits before replying; with `timeout` when no
    /// reply comes in time; with the handler's own error when it returns
    /// one. For a reply type per request, or a reply the handler gives
    /// later, see [`ask`](Self::ask).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it waits for room in the mailbox sends
    /// nothing. Dropping it once the request is queued does not take the
    /// request back: the actor still handles it (its effects happen) and
    /// the reply is discarded. Which of the two happened is unknown to the
    /// caller; a request that must not run twice needs an idempotency key
    /// or a follow-up query. The same holds for a call that timed out.
    pub async fn call(&self, request: A::Call) -> Result<A::Reply, Error> {
        self.call_timeout(request, DEFAULT_CALL_TIMEOUT).await
    }

    /// [`call`](Self::call) with an explicit timeout, which covers waiting
    /// for room in the mailbox too.
    pub async fn call_timeout(
        &self,
        request: A::Call,
        timeout: Duration,
    ) -> Result<A::Reply, Error> {
        let deadline = Instant::now() + timeout;
        let (reply, response) = oneshot::channel();
        if let Err(refused) = self
            .mailbox
            .push(Envelope::Call(request, reply), deadline)
            .await
        {
            return Err(self.call_refused(refused, timeout));
        }
        self.answer(wait_for_reply(response, deadline).await, timeout)
    }

    fn call_refused(&self, refused: Refused<Envelope<A>>, timeout: Duration) -> Error {
        match refused {
            Refused::Closed(_) => Error::new(
                ErrorCode::PROCESS_NOT_ALIVE,
                format!("process {} has ended", self.id()),
            ),
            Refused::Timeout(_) | Refused::Full(_) => Error::new(
                ErrorCode::TIMEOUT,
                format!("the mailbox of process {} stayed full", self.id()),
            )
            .with_context("timeout_ms", timeout.as_millis()),
        }
    }

    /// Sends a cast, waiting for room at most [`DEFAULT_SEND_TIMEOUT`].
    /// A refused cast comes back inside the [`SendError`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the message is queued in one step once there is room,
    /// so a dropped future has sent nothing (the message is dropped with
    /// it), and a completed one has queued the message.
    pub async fn cast(&self, message: A::Cast) -> Result<(), SendError<A::Cast>> {
        self.cast_timeout(message, DEFAULT_SEND_TIMEOUT).await
    }

    /// Sends a cast, waiting for room at most `timeout`. Cancel safe, as
    /// [`cast`](Self::cast).
    pub async fn cast_timeout(
        &self,
        message: A::Cast,
        timeout: Duration,
    ) -> Result<(), SendError<A::Cast>> {
        let deadline = Instant::now() + timeout;
        self.mailbox
            .push(Envelope::Cast(message), deadline)
            .await
            .map_err(|refused| unwrap_refused(refused, cast_message))
    }

    /// Sends a cast only if there is room now; a full mailbox hands the
    /// message back. It does not wait, so there is nothing to cancel: on
    /// `Ok` the message is queued, on `Err` it was not.
    pub fn try_cast(&self, message: A::Cast) -> Result<(), SendError<A::Cast>> {
        self.mailbox
            .try_push(Envelope::Cast(message))
            .map_err(|refused| unwrap_refused(refused, cast_message))
    }

    /// Sends an info message, waiting for room at most
    /// [`DEFAULT_SEND_TIMEOUT`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`cast`](Self::cast): a dropped future has sent
    /// nothing.
    pub async fn send_info(&self, message: A::Info) -> Result<(), SendError<A::Info>> {
        let deadline = Instant::now() + DEFAULT_SEND_TIMEOUT;
        self.mailbox
            .push(Envelope::Info(message), deadline)
            .await
            .map_err(|refused| unwrap_refused(refused, info_message))
    }

    /// Sends an info message only if there is room now.
    pub fn try_send_info(&self, message: A::Info) -> Result<(), SendError<A::Info>> {
        self.mailbox
            .try_push(Envelope::Info(message))
            .map_err(|refused| unwrap_refused(refused, info_message))
    }

    /// Sends a request that carries its own typed reply port, and waits
    /// for the answer, at most [`DEFAULT_CALL_TIMEOUT`].
    ///
    /// `make` wraps the [`ReplyPort`] in one of the actor's `Cast`
    /// messages; the handler answers through the port, at once or later
    /// (it may keep the port in its state, as gen_server's `noreply` with
    /// `gen_server:reply/2`). The request rides the cast path: it waits for
    /// room like a cast, and a crashed instance's queued requests stay
    /// queued for the restarted instance. Fails at once when the process
    /// has ended, when the port is dropped unanswered (`process_crashed`:
    /// the handler dropped it, the instance crashed holding it, or the
    /// process ended with the request queued), and with `timeout` when no
    /// answer comes in time. (An [`on_undelivered`](crate::ActorOptions::on_undelivered)
    /// hook receives such a queued request, port included; dropping it
    /// answers the caller.)
    ///
    /// # Cancel safety
    ///
    /// As [`call`](Self::call): a future dropped while waiting for room
    /// sent nothing; once queued, the request is handled anyway and the
    /// handler sees [`ReplyPort::is_closed`] (its `send` returns false).
    pub async fn ask<T>(&self, make: impl FnOnce(ReplyPort<T>) -> A::Cast) -> Result<T, Error>
    where
        T: Send + 'static,
    {
        self.ask_timeout(make, DEFAULT_CALL_TIMEOUT).await
    }

    /// [`ask`](Self::ask) with an explicit timeout, which covers waiting
    /// for room in the mailbox too.
    pub async fn ask_timeout<T>(
        &self,
        make: impl FnOnce(ReplyPort<T>) -> A::Cast,
        timeout: Duration,
    ) -> Result<T, Error>
    where
        T: Send + 'static,
    {
        let deadline = Instant::now() + timeout;
        let (port, response) = ReplyPort::channel();
        if let Err(refused) = self
            .mailbox
            .push(Envelope::Cast(make(port)), deadline)
            .await
        {
            return Err(self.call_refused(refused, timeout));
        }
        self.answer(wait_for_reply(response, deadline).await, timeout)
    }

    /// [`call`](Self::call) from a plain thread, with no tokio runtime on
    /// it (CLI tools, FFI, synchronous tests): the thread parks until the
    /// reply comes, at most [`DEFAULT_CALL_TIMEOUT`].
    ///
    /// Do not call it from an async task: it blocks the task's worker
    /// thread (on a current-thread runtime the actor cannot run, and the
    /// call fails with `timeout`). Inside a runtime use `call`, or this
    /// from `spawn_blocking`.
    ///
    /// A blocking call cannot be cancelled; a timed-out one leaves the
    /// request queued, as [`call`](Self::call) describes.
    pub fn call_blocking(&self, request: A::Call) -> Result<A::Reply, Error> {
        self.call_blocking_timeout(request, DEFAULT_CALL_TIMEOUT)
    }

    /// [`call_blocking`](Self::call_blocking) with an explicit timeout,
    /// which covers waiting for room in the mailbox too.
    pub fn call_blocking_timeout(
        &self,
        request: A::Call,
        timeout: Duration,
    ) -> Result<A::Reply, Error> {
        let deadline = deadline_after(timeout);
        let (reply, response) = oneshot::channel();
        if let Err(refused) = self
            .mailbox
            .push_blocking(Envelope::Call(request, reply), deadline)
        {
            return Err(self.call_refused(refused, timeout));
        }
        self.answer(wait_blocking(response, deadline), timeout)
    }

    /// [`ask`](Self::ask) from a plain thread, with no tokio runtime on it;
    /// see [`call_blocking`](Self::call_blocking) for where not to use it.
    pub fn ask_blocking<T>(&self, make: impl FnOnce(ReplyPort<T>) -> A::Cast) -> Result<T, Error>
    where
        T: Send + 'static,
    {
        self.ask_blocking_timeout(make, DEFAULT_CALL_TIMEOUT)
    }

    /// [`ask_blocking`](Self::ask_blocking) with an explicit timeout.
    pub fn ask_blocking_timeout<T>(
        &self,
        make: impl FnOnce(ReplyPort<T>) -> A::Cast,
        timeout: Duration,
    ) -> Result<T, Error>
    where
        T: Send + 'static,
    {
        let deadline = deadline_after(timeout);
        let (port, response): (ReplyPort<T>, ReplyReceiver<T>) = ReplyPort::channel();
        if let Err(refused) = self
            .mailbox
            .push_blocking(Envelope::Cast(make(port)), deadline)
        {
            return Err(self.call_refused(refused, timeout));
        }
        self.answer(wait_blocking(response, deadline), timeout)
    }

    /// Turns what waiting for a reply gave into the caller's result.
    fn answer<T>(
        &self,
        waited: Option<Result<Result<T, Error>, oneshot::error::RecvError>>,
        timeout: Duration,
    ) -> Result<T, Error> {
        match waited {
            Some(Ok(result)) => result,
            Some(Err(_dropped)) => Err(Error::new(
                ErrorCode::PROCESS_CRASHED,
                format!("process {} exited before replying", self.id()),
            )),
            None => Err(Error::new(
                ErrorCode::TIMEOUT,
                format!("process {} did not reply in time", self.id()),
            )
            .with_context("timeout_ms", timeout.as_millis())),
        }
    }

    /// Runs `inspect` against the actor's state after every message sent
    /// before it has been handled, and returns its result (at most
    /// [`DEFAULT_CALL_TIMEOUT`]). Meant for tests and debugging, like
    /// `sys:get_state`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future once the inspection is queued does not withdraw
    /// it; it runs (it only reads) and its result is discarded.
    pub async fn inspect<R, F>(&self, inspect: F) -> Result<R, Error>
    where
        F: FnOnce(&A) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.inspect_timeout(inspect, DEFAULT_CALL_TIMEOUT).await
    }

    /// [`inspect`](Self::inspect) with an explicit timeout.
    pub async fn inspect_timeout<R, F>(&self, inspect: F, timeout: Duration) -> Result<R, Error>
    where
        F: FnOnce(&A) -> R + Send + 'static,
        R: Send + 'static,
    {
        let deadline = Instant::now() + timeout;
        let (sender, receiver) = oneshot::channel();
        let envelope = Envelope::Inspect(Box::new(move |actor: &A| {
            let _ = sender.send(inspect(actor));
        }));
        if let Err(refused) = self.mailbox.push(envelope, deadline).await {
            return Err(self.call_refused(refused, timeout));
        }
        match tokio::time::timeout_at(deadline, receiver).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_dropped)) => Err(Error::new(
                ErrorCode::PROCESS_CRASHED,
                format!("process {} exited before the inspection ran", self.id()),
            )),
            Err(_elapsed) => Err(Error::new(
                ErrorCode::TIMEOUT,
                format!("process {} did not reach the inspection in time", self.id()),
            )),
        }
    }

    /// Asks the running instance to stop with `reason`; see
    /// [`ProcessRef::stop`].
    pub fn stop(&self, reason: ExitReason) -> bool {
        self.process().stop(reason)
    }

    /// Aborts the running instance; see [`ProcessRef::kill`].
    pub fn kill(&self) -> bool {
        self.process().kill()
    }

    /// A one-shot notification of the end of this process.
    pub fn monitor(&self) -> Monitor {
        Monitor::new(&self.process())
    }

    /// The process id.
    pub fn id(&self) -> ProcessId {
        self.mailbox.id()
    }

    /// Where the process is in its life.
    pub fn status(&self) -> ProcessStatus {
        self.process().status()
    }

    /// Whether the process has not ended (it may be restarting).
    pub fn is_alive(&self) -> bool {
        !self.mailbox.is_closed()
    }

    /// How many instances have started.
    pub fn incarnation(&self) -> u64 {
        self.process().incarnation()
    }

    /// The number of live monitors and registry entries on this process.
    pub fn monitor_count(&self) -> usize {
        self.process().monitor_count()
    }

    /// The type-erased handle.
    pub fn process(&self) -> ProcessRef {
        self.mailbox.to_process_ref()
    }
}

impl<A: Actor> From<ActorRef<A>> for ProcessRef {
    fn from(actor: ActorRef<A>) -> ProcessRef {
        actor.process()
    }
}

impl<A: Actor> From<&ActorRef<A>> for ProcessRef {
    fn from(actor: &ActorRef<A>) -> ProcessRef {
        actor.process()
    }
}

/// Waits for a reply until `deadline`; `None` on timeout.
///
/// Most replies arrive within one scheduling round (the actor runs as soon
/// as the caller yields), so the caller checks, yields once and checks
/// again before arming a timer: registering and removing a timer in tokio's
/// wheel cost more than the rest of a local call.
async fn wait_for_reply<T>(
    mut response: oneshot::Receiver<T>,
    deadline: Instant,
) -> Option<Result<T, oneshot::error::RecvError>> {
    use std::future::Future;
    use std::task::Poll;

    for round in 0..2 {
        let ready = std::future::poll_fn(|cx| {
            Poll::Ready(match std::pin::Pin::new(&mut response).poll(cx) {
                Poll::Ready(result) => Some(result),
                Poll::Pending => None,
            })
        })
        .await;
        if let Some(result) = ready {
            return Some(result);
        }
        if round == 0 {
            tokio::task::yield_now().await;
        }
    }
    tokio::time::timeout_at(deadline, response).await.ok()
}

fn cast_message<A: Actor>(envelope: Envelope<A>) -> A::Cast {
    match envelope {
        Envelope::Cast(message) => message,
        _ => unreachable!("a cast envelope is handed back as it was sent"),
    }
}

fn info_message<A: Actor>(envelope: Envelope<A>) -> A::Info {
    match envelope {
        Envelope::Info(message) => message,
        _ => unreachable!("an info envelope is handed back as it was sent"),
    }
}

fn unwrap_refused<A: Actor, T>(
    refused: Refused<Envelope<A>>,
    unwrap: fn(Envelope<A>) -> T,
) -> SendError<T> {
    let (kind, envelope) = match refused {
        Refused::Full(envelope) => (SendErrorKind::Full, envelope),
        Refused::Closed(envelope) => (SendErrorKind::Closed, envelope),
        Refused::Timeout(envelope) => (SendErrorKind::Timeout, envelope),
    };
    SendError {
        kind,
        message: unwrap(envelope),
    }
}
