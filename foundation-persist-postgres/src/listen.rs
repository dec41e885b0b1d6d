//! The change feed on PostgreSQL: `pg_notify` inside the write
//! transaction, one `LISTEN` connection per store.
//!
//! The writer adds one `pg_notify` statement to a transaction that commits
//! puts or deletes of watched keyspaces (`notify_statement`): PostgreSQL
//! delivers notifications only when their transaction commits, drops
//! those of a rolled-back savepoint (a refused request), and delivers them
//! to every session listening on the channel, on every node. One
//! dedicated connection per store (not from the pool) listens and
//! publishes what arrives into the store's
//! [`ChangeFeed`](foundation_persist::watch::ChangeFeed).
//!
//! When that connection fails (a restarted server, a network cut) the task
//! reconnects with a doubling backoff (100 ms to 5 s) and publishes
//! [`Change::Resync`] once it listens again: whatever was committed
//! meanwhile was not heard, so consumers reload. The listener is started
//! only for a store that watches at least one keyspace, and
//! [`open_postgres`](crate::open_postgres) returns once it listens, so no
//! commit after the open goes unheard while the connection holds.
//!
//! The task is an allowed spawn site (ARCHITECTURE.md); it ends when the
//! store is closed or dropped.
//!
//! This module is not for the write statements (`ops.rs`, `writer.rs`).

use std::sync::Arc;
use std::time::Duration;

use foundation_error::{Error, ErrorCode};
use foundation_persist::backend::Op;
use foundation_persist::watch::{Change, ChangeFeed, watched_changes};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Client, Config, Connection, Socket};

use crate::classify::database_error;
use crate::tls::Tls;

/// The notification channel every store of the crate uses.
pub(crate) const CHANNEL: &str = "foundation_persist_changes";

/// Notifies every payload of `$1` on [`CHANNEL`], inside the caller's
/// transaction.
pub(crate) const NOTIFY_STATEMENT: &str =
    "SELECT pg_notify('foundation_persist_changes', payload) FROM unnest($1::text[]) AS payload";

/// The first pause before reconnecting, doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The payloads to notify for the committed requests `requests`: one per
/// put or delete of a watched keyspace, `"{keyspace} {key}"` (a keyspace
/// name holds no space; a key is at most 1 KiB, far below PostgreSQL's
/// 8,000-byte payload limit). Empty, without allocating, when nothing
/// watched was written.
pub(crate) fn payloads<'a>(requests: impl Iterator<Item = &'a [Op]>) -> Vec<String> {
    let mut payloads = Vec::new();
    for ops in requests {
        for change in watched_changes(ops) {
            if let Change::Key { keyspace, key } = change {
                payloads.push(format!("{keyspace} {key}"));
            }
        }
    }
    payloads
}

/// The change a payload stands for; anything unreadable is a resync (the
/// consumer reloads, which is always correct).
fn parse(payload: &str) -> Change {
    match payload.split_once(' ') {
        Some((keyspace, key)) if !keyspace.is_empty() && !key.is_empty() => Change::Key {
            keyspace: keyspace.to_owned(),
            key: key.to_owned(),
        },
        _ => Change::Resync,
    }
}

type ListenConnection = Connection<Socket, <Tls as MakeTlsConnect<Socket>>::Stream>;

/// The listening task's handle and the means to stop it.
pub(crate) struct Listener {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl Listener {
    /// Connects, listens, and starts the task that publishes into `feed`.
    ///
    /// # Errors
    ///
    /// The connection's or the `LISTEN`'s classified error, or `timeout`
    /// after `connect_timeout`.
    pub(crate) async fn start(
        config: Config,
        tls: Tls,
        feed: Arc<ChangeFeed>,
        store: Arc<str>,
        connect_timeout: Duration,
    ) -> Result<Listener, Error> {
        let (client, connection) = listen(&config, &tls, &store, connect_timeout).await?;
        let (stop, stopped) = watch::channel(false);
        let task = Task {
            config,
            tls,
            feed,
            store,
            connect_timeout,
            stopped,
        };
        let handle = tokio::spawn(task.run(client, connection));
        Ok(Listener { stop, handle })
    }

    /// Stops the task and waits (bounded) for it to end.
    pub(crate) async fn stop(self, bound: Duration) {
        // The task may have ended already: nothing to stop then.
        let _ = self.stop.send(true);
        let mut handle = self.handle;
        if tokio::time::timeout(bound, &mut handle).await.is_err() {
            handle.abort();
        }
    }
}

/// One connection that has executed `LISTEN`.
async fn listen(
    config: &Config,
    tls: &Tls,
    store: &str,
    connect_timeout: Duration,
) -> Result<(Client, ListenConnection), Error> {
    let work = async {
        let (client, mut connection) = config
            .connect(tls.clone())
            .await
            .map_err(|error| database_error(error, store, "listen"))?;
        let listened = {
            let statement = format!("LISTEN {CHANNEL}");
            let listen = client.batch_execute(&statement);
            tokio::pin!(listen);
            loop {
                tokio::select! {
                    result = &mut listen => break result,
                    message = std::future::poll_fn(|context| connection.poll_message(context)) => {
                        match message {
                            // Notices before the LISTEN: nothing to publish yet.
                            Some(Ok(_)) => {}
                            Some(Err(error)) => return Err(database_error(error, store, "listen")),
                            None => {
                                return Err(Error::new(
                                    ErrorCode::NETWORK_ERROR,
                                    "the PostgreSQL listening connection closed before LISTEN",
                                )
                                .with_context("store", store));
                            }
                        }
                    }
                }
            }
        };
        listened.map_err(|error| database_error(error, store, "listen"))?;
        Ok((client, connection))
    };
    tokio::time::timeout(connect_timeout, work)
        .await
        .map_err(|_| {
            Error::new(
                ErrorCode::TIMEOUT,
                format!("listening for changes on PostgreSQL took longer than {connect_timeout:?}"),
            )
            .with_context("store", store)
        })?
}

struct Task {
    config: Config,
    tls: Tls,
    feed: Arc<ChangeFeed>,
    store: Arc<str>,
    connect_timeout: Duration,
    stopped: watch::Receiver<bool>,
}

impl Task {
    async fn run(mut self, mut client: Client, mut connection: ListenConnection) {
        loop {
            let failure = tokio::select! {
                _ = self.stopped.changed() => return,
                failure = publish(&self.feed, &mut connection) => failure,
            };
            drop(client);
            crate::metrics::record_listen_reconnect();
            tracing::warn!(store = %self.store, %failure, "the PostgreSQL change feed lost its connection; reconnecting");
            let mut backoff = FIRST_BACKOFF;
            loop {
                tokio::select! {
                    _ = self.stopped.changed() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                match listen(&self.config, &self.tls, &self.store, self.connect_timeout).await {
                    Ok((new_client, new_connection)) => {
                        client = new_client;
                        connection = new_connection;
                        // Commits made while nobody listened were not heard.
                        self.feed.publish(Change::Resync);
                        tracing::info!(store = %self.store, "the PostgreSQL change feed listens again");
                        break;
                    }
                    Err(error) => {
                        tracing::debug!(store = %self.store, %error, "reconnecting the change feed failed");
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
    }
}

/// Publishes the notifications of `connection` until it fails; returns
/// why.
async fn publish(feed: &ChangeFeed, connection: &mut ListenConnection) -> String {
    loop {
        match std::future::poll_fn(|context| connection.poll_message(context)).await {
            Some(Ok(AsyncMessage::Notification(notification))) => {
                feed.publish(parse(notification.payload()));
            }
            Some(Ok(_notice)) => {}
            Some(Err(error)) => return error.to_string(),
            None => return "the server closed the connection".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_back_as_the_change_they_stand_for() {
        assert_eq!(
            parse("flags rollout state"),
            Change::Key {
                keyspace: "flags".into(),
                key: "rollout state".into()
            }
        );
        assert_eq!(parse("flags"), Change::Resync);
        assert_eq!(parse(""), Change::Resync);
        assert_eq!(parse(" key"), Change::Resync);
    }
}
