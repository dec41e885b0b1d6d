//! [`ReplyPort`]: a typed, one-shot answer to one request, which a handler
//! may give at once or keep (in its state) and give later.
//!
//! A request that wants a typed reply carries a port inside the actor's
//! `Cast` message (see [`ActorRef::ask`](crate::ActorRef::ask)); each
//! message variant names its own reply type, so callers never match a
//! shared reply enum. A port dropped unanswered answers its caller at once
//! with an error, so a forgotten or lost request never leaves a caller
//! waiting for its whole timeout.
//!
//! This module is not the call path's reply (`handle_call`'s return value),
//! nor a channel for more than one answer.

use std::fmt;

use foundation_error::{Error, ErrorCode};
use tokio::sync::oneshot;

/// The receiving side a caller waits on.
pub(crate) type ReplyReceiver<T> = oneshot::Receiver<Result<T, Error>>;

/// A typed, one-shot reply to one request (gen_server's `From` with
/// `gen_server:reply/2`; ractor's `RpcReplyPort`).
///
/// Answer it with [`ReplyPort::send`], from the handler that received it or
/// later from any task. If it is dropped unanswered (the handler forgot it,
/// the instance crashed with it in its state, or the process ended with the
/// request still queued), the caller gets a `process_crashed` error at
/// once. To answer only after [`Actor::after_handle`](crate::Actor::after_handle)
/// succeeded, hand it to [`Context::reply_after`](crate::Context::reply_after).
///
/// ```
/// use foundation_core::{Actor, Context, ReplyPort, spawn};
/// use foundation_error::Error;
///
/// struct Store(Vec<String>);
/// enum Message {
///     Push(String, ReplyPort<usize>),
///     Last(ReplyPort<Option<String>>),
/// }
/// impl Actor for Store {
///     type Args = ();
///     type Call = ();
///     type Reply = ();
///     type Cast = Message;
///     type Info = ();
///     async fn init(_: (), _ctx: &mut Context<Self>) -> Result<Self, Error> { Ok(Store(Vec::new())) }
///     async fn handle_cast(&mut self, message: Message, _ctx: &mut Context<Self>) -> Result<(), Error> {
///         match message {
///             Message::Push(item, reply) => {
///                 self.0.push(item);
///                 reply.send(Ok(self.0.len()));
///             }
///             Message::Last(reply) => {
///                 reply.send(Ok(self.0.last().cloned()));
///             }
///         }
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let store = spawn::<Store>(()).await?;
/// let length: usize = store.ask(|reply| Message::Push("a".into(), reply)).await?;
/// assert_eq!(length, 1);
/// assert_eq!(store.ask(Message::Last).await?, Some("a".to_string()));
/// # Ok(())
/// # }
/// ```
pub struct ReplyPort<T> {
    sender: Option<oneshot::Sender<Result<T, Error>>>,
}

impl<T> ReplyPort<T> {
    /// A port and the receiver its caller waits on.
    pub(crate) fn channel() -> (ReplyPort<T>, ReplyReceiver<T>) {
        let (sender, receiver) = oneshot::channel();
        (
            ReplyPort {
                sender: Some(sender),
            },
            receiver,
        )
    }

    /// Answers the caller; false when the caller has gone (it timed out,
    /// or its future was dropped), in which case the result is dropped.
    pub fn send(mut self, result: Result<T, Error>) -> bool {
        match self.sender.take() {
            Some(sender) => sender.send(result).is_ok(),
            None => false,
        }
    }

    /// Whether the caller has gone, so that answering is pointless.
    pub fn is_closed(&self) -> bool {
        self.sender.as_ref().is_none_or(oneshot::Sender::is_closed)
    }
}

/// The error a caller gets when its reply port is dropped unanswered.
pub(crate) fn dropped_reply_error() -> Error {
    Error::new(
        ErrorCode::PROCESS_CRASHED,
        "the reply was dropped unanswered (the handler dropped it, or its instance or process ended first)",
    )
}

impl<T> Drop for ReplyPort<T> {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            // The caller may have gone already; nothing to do then.
            let _ = sender.send(Err(dropped_reply_error()));
        }
    }
}

impl<T> fmt::Debug for ReplyPort<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyPort")
            .field("reply", &std::any::type_name::<T>())
            .field("closed", &self.is_closed())
            .finish()
    }
}
