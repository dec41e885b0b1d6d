//! PostgreSQL and pool failures become classified [`Error`]s.
//!
//! Every driver error passes through [`database_error`] (or
//! [`pool_error`] for the connection pool), so the mapping is written
//! once, by SQLSTATE class when the server answered and by the kind of
//! failure when it did not:
//!
//! | failure | code |
//! | --- | --- |
//! | connection lost, refused, reset (class 08, an I/O error, a closed connection, a TLS handshake cut short) | `network_error` (retryable) |
//! | TLS demanded (`sslmode` `require` or stricter) but not offered by the server | `invalid_config_value` |
//! | the server's TLS certificate failed verification (`verify-ca`, `verify-full`, a root file) | `authentication_failed` |
//! | server shutting down, restarting or in recovery (57P01..57P03) | `service_unavailable` (retryable) |
//! | disk full, out of memory, too many connections (class 53) | `resource_exhausted` |
//! | serialization failure, deadlock (40001, 40P01) | `service_unavailable` once retries ran out |
//! | statement or lock timeout (57014, 55P03, 25P03) | `timeout` |
//! | authentication (class 28) | `authentication_failed` |
//! | a missing database (3D000) | `invalid_config_value` |
//! | data corrupted (XX001, XX002) | `data_corruption` |
//! | anything else | `internal_error` |
//!
//! Every error names the store's address (`store`) and the operation; a
//! server error carries its SQLSTATE (`sqlstate`). No driver type leaves
//! this crate.
//!
//! This module is not for version conflicts (those are answers, built in
//! `ops.rs`) or for retrying (`writer.rs` decides).

use deadpool_postgres::PoolError;
use foundation_error::{Error, ErrorCode};
use tokio_postgres::error::SqlState;

/// What a driver error means for retrying inside this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The connection failed or the server went away: nothing more can
    /// be sent on this connection; a fresh one may work.
    Connection,
    /// A serialization failure or a deadlock: the transaction was rolled
    /// back and may be retried as a whole.
    Serialization,
    /// Anything else.
    Other,
}

/// The kind of a driver error.
pub(crate) fn kind(error: &tokio_postgres::Error) -> Kind {
    if let Some(TlsFailure::NotOffered | TlsFailure::Certificate(_)) = tls_failure(error) {
        // Another connection will meet the same server and settings.
        return Kind::Other;
    }
    match error.code() {
        Some(code)
            if *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            Kind::Serialization
        }
        Some(code) if is_connection_state(code) => Kind::Connection,
        Some(_) => Kind::Other,
        None => Kind::Connection,
    }
}

fn is_connection_state(code: &SqlState) -> bool {
    code.code().starts_with("08")
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
}

/// Maps a driver error to the one error type, naming the store and the
/// operation.
pub(crate) fn database_error(
    error: tokio_postgres::Error,
    store: &str,
    operation: &'static str,
) -> Error {
    // A server error's own words (severity, message, detail), or the
    // driver's description of a failed connection.
    let message = error
        .as_db_error()
        .map_or_else(|| error.to_string(), ToString::to_string);
    let tls = if error.code().is_none() {
        tls_failure(&error)
    } else {
        None
    };
    let mapped = match (error.code(), tls) {
        (None, Some(failure)) => match failure {
            TlsFailure::NotOffered => Error::new(
                ErrorCode::INVALID_CONFIG_VALUE,
                "the connection string demands TLS (sslmode require, verify-ca or verify-full) \
                 but the PostgreSQL server did not offer it (its ssl is off, or this is a unix \
                 socket, where PostgreSQL never offers TLS)",
            )
            .with_context("field", "sslmode"),
            TlsFailure::Certificate(reason) => Error::new(
                ErrorCode::AUTHENTICATION_FAILED,
                format!("PostgreSQL's TLS certificate failed verification: {reason}"),
            )
            .with_context("field", "sslrootcert"),
            TlsFailure::Handshake => Error::new(
                ErrorCode::NETWORK_ERROR,
                "the TLS handshake with PostgreSQL failed",
            )
            .with_context(
                "reason",
                std::error::Error::source(&error).map_or_else(String::new, ToString::to_string),
            ),
        },
        (None, None) => Error::new(
            ErrorCode::NETWORK_ERROR,
            "the connection to PostgreSQL failed or was lost",
        ),
        (Some(code), _) => {
            let sqlstate = code.code();
            let class = &sqlstate[..2.min(sqlstate.len())];
            let code_of = if *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
            {
                (
                    ErrorCode::SERVICE_UNAVAILABLE,
                    "PostgreSQL is shutting down, restarting or recovering",
                )
            } else if class == "08" {
                (
                    ErrorCode::NETWORK_ERROR,
                    "the connection to PostgreSQL failed",
                )
            } else if class == "53" {
                (
                    ErrorCode::RESOURCE_EXHAUSTED,
                    "PostgreSQL ran out of a resource (disk, memory or connections)",
                )
            } else if *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
            {
                (
                    ErrorCode::SERVICE_UNAVAILABLE,
                    "PostgreSQL kept refusing the transaction (serialization failure or deadlock); nothing was applied",
                )
            } else if *code == SqlState::QUERY_CANCELED
                || *code == SqlState::LOCK_NOT_AVAILABLE
                || *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
            {
                (ErrorCode::TIMEOUT, "a PostgreSQL statement timed out")
            } else if class == "28" {
                (
                    ErrorCode::AUTHENTICATION_FAILED,
                    "PostgreSQL refused the credentials",
                )
            } else if *code == SqlState::INVALID_CATALOG_NAME {
                (
                    ErrorCode::INVALID_CONFIG_VALUE,
                    "the PostgreSQL database does not exist",
                )
            } else if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED {
                (
                    ErrorCode::DATA_CORRUPTION,
                    "PostgreSQL reports corrupted data",
                )
            } else {
                (ErrorCode::INTERNAL_ERROR, "a PostgreSQL statement failed")
            };
            Error::new(code_of.0, code_of.1).with_context("sqlstate", sqlstate)
        }
    };
    mapped
        .with_context("store", store)
        .with_context("operation", operation)
        .with_context("cause", message)
}

/// What a failed TLS negotiation means.
#[derive(Debug)]
enum TlsFailure {
    /// The driver demanded TLS and the server answered that it has none
    /// (or there was no host name to verify against).
    NotOffered,
    /// rustls refused the server's certificate; why.
    Certificate(String),
    /// Anything else in the handshake (a cut connection, an alert).
    Handshake,
}

/// The TLS failure `error` is, if it is one. The driver's error kind is
/// private; its TLS errors read "error performing TLS handshake", with the
/// reason as source: the driver's own words when the server has no TLS,
/// the connector's error (an I/O error wrapping rustls's) otherwise.
fn tls_failure(error: &tokio_postgres::Error) -> Option<TlsFailure> {
    if !error
        .to_string()
        .starts_with("error performing TLS handshake")
    {
        return None;
    }
    let reason = std::error::Error::source(error).map(ToString::to_string);
    if reason.as_deref().is_some_and(|reason| {
        reason.contains("server does not support TLS") || reason.contains("no hostname provided")
    }) {
        return Some(TlsFailure::NotOffered);
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let rustls_error = cause.downcast_ref::<rustls::Error>().or_else(|| {
            cause
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::InvalidCertificate(reason)) = rustls_error {
            return Some(TlsFailure::Certificate(reason.to_string()));
        }
        source = cause.source();
    }
    Some(TlsFailure::Handshake)
}

/// Maps a pool error (a timeout waiting for a connection, a failed
/// connect, a closed pool).
pub(crate) fn pool_error(error: PoolError, store: &str) -> Error {
    match error {
        PoolError::Backend(error) => database_error(error, store, "connect"),
        PoolError::Timeout(kind) => Error::new(
            ErrorCode::TIMEOUT,
            "no PostgreSQL connection became available in time",
        )
        .with_context("store", store)
        .with_context("waiting_for", format!("{kind:?}")),
        PoolError::Closed => crate::closed(store),
        other => Error::new(
            ErrorCode::INTERNAL_ERROR,
            "the PostgreSQL connection pool failed",
        )
        .with_context("store", store)
        .with_context("cause", other.to_string()),
    }
}

/// Whether a pool error means "this connection or server is gone" (so a
/// fresh attempt may work).
pub(crate) fn pool_kind(error: &PoolError) -> Kind {
    match error {
        PoolError::Backend(error) => kind(error),
        _ => Kind::Other,
    }
}
