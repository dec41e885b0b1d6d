//! Normalisation: foreign errors become the one [`Error`] type.
//!
//! The rules are the plan's: timeouts and lost connections are
//! infrastructure, invalid input and not-found are validation, the rest are
//! system. The foreign error is always kept as the cause, so nothing is lost.
//! Business errors are never produced here: only domain code knows them.

use std::error::Error as StdError;
use std::io;

use crate::code::ErrorCode;
use crate::error::Error;

/// The code an [`io::ErrorKind`] maps to.
///
/// | kind | code |
/// | --- | --- |
/// | `TimedOut` | `timeout` (infrastructure) |
/// | `ConnectionRefused`, `ConnectionReset`, `ConnectionAborted`, `NotConnected`, `BrokenPipe`, `AddrInUse`, `AddrNotAvailable`, `NetworkUnreachable`, `NetworkDown`, `HostUnreachable` | `network_error` (infrastructure) |
/// | `WouldBlock`, `Interrupted`, `ResourceBusy` | `service_unavailable` (infrastructure) |
/// | `NotFound` | `data_not_found` (validation) |
/// | `AlreadyExists` | `already_exists` (validation) |
/// | `InvalidInput`, `InvalidFilename`, `NotADirectory`, `IsADirectory`, `DirectoryNotEmpty` | `invalid_input` (validation) |
/// | `PermissionDenied`, `ReadOnlyFilesystem` | `permission_denied` (system) |
/// | `InvalidData`, `UnexpectedEof` | `data_corruption` (system) |
/// | `OutOfMemory`, `StorageFull`, `QuotaExceeded`, `FileTooLarge` | `resource_exhausted` (infrastructure) |
/// | anything else | `internal_error` (system) |
pub fn io_error_code(kind: io::ErrorKind) -> ErrorCode {
    use io::ErrorKind as Kind;
    match kind {
        Kind::TimedOut => ErrorCode::TIMEOUT,
        Kind::ConnectionRefused
        | Kind::ConnectionReset
        | Kind::ConnectionAborted
        | Kind::NotConnected
        | Kind::BrokenPipe
        | Kind::AddrInUse
        | Kind::AddrNotAvailable
        | Kind::NetworkUnreachable
        | Kind::NetworkDown
        | Kind::HostUnreachable => ErrorCode::NETWORK_ERROR,
        Kind::WouldBlock | Kind::Interrupted | Kind::ResourceBusy => ErrorCode::SERVICE_UNAVAILABLE,
        Kind::NotFound => ErrorCode::DATA_NOT_FOUND,
        Kind::AlreadyExists => ErrorCode::ALREADY_EXISTS,
        Kind::InvalidInput
        | Kind::InvalidFilename
        | Kind::NotADirectory
        | Kind::IsADirectory
        | Kind::DirectoryNotEmpty => ErrorCode::INVALID_INPUT,
        Kind::PermissionDenied | Kind::ReadOnlyFilesystem => ErrorCode::PERMISSION_DENIED,
        Kind::InvalidData | Kind::UnexpectedEof => ErrorCode::DATA_CORRUPTION,
        Kind::OutOfMemory | Kind::StorageFull | Kind::QuotaExceeded | Kind::FileTooLarge => {
            ErrorCode::RESOURCE_EXHAUSTED
        }
        _ => ErrorCode::INTERNAL_ERROR,
    }
}

impl From<io::Error> for Error {
    fn from(error: io::Error) -> Error {
        let kind = error.kind();
        Error::new(io_error_code(kind), error.to_string())
            .with_context("io_kind", kind)
            .with_cause(error)
    }
}

impl From<tokio::time::error::Elapsed> for Error {
    fn from(error: tokio::time::error::Elapsed) -> Error {
        Error::new(ErrorCode::TIMEOUT, "the operation timed out").with_cause(error)
    }
}

impl From<tokio::task::JoinError> for Error {
    /// A cancelled task becomes `cancelled`; a panicked one
    /// `isolated_operation_failed` carrying the panic message.
    fn from(error: tokio::task::JoinError) -> Error {
        if error.is_cancelled() {
            return Error::new(ErrorCode::CANCELLED, "the task was cancelled");
        }
        match error.try_into_panic() {
            Ok(payload) => {
                let message = panic_message(payload.as_ref());
                Error::new(
                    ErrorCode::ISOLATED_OPERATION_FAILED,
                    format!("the task panicked: {message}"),
                )
                .with_context("panic", message)
            }
            Err(error) => Error::system("the task failed").with_cause(error),
        }
    }
}

impl Error {
    /// Wraps any foreign error as system/`internal_error`, keeping it as the
    /// cause. Use [`Error::wrap_as`] when you know a better code.
    pub fn wrap(error: impl StdError + Send + Sync + 'static) -> Error {
        Error::wrap_as(ErrorCode::INTERNAL_ERROR, error)
    }

    /// Wraps a foreign error under a chosen code, keeping it as the cause.
    pub fn wrap_as(code: ErrorCode, error: impl StdError + Send + Sync + 'static) -> Error {
        Error::new(code, error.to_string()).with_cause(error)
    }
}

/// Classifies the error of a foreign `Result` at a boundary (network,
/// database, parsing): the foreign error becomes the cause of an [`Error`]
/// with the given code and message.
///
/// ```
/// use foundation_error::{ErrorCode, ResultExt};
///
/// let parsed = "forty-two"
///     .parse::<u32>()
///     .classify(ErrorCode::FORMAT_ERROR, "port must be a number");
/// let error = parsed.unwrap_err();
/// assert_eq!(error.code(), ErrorCode::FORMAT_ERROR);
/// assert_eq!(error.cause_messages(), vec!["invalid digit found in string"]);
/// ```
pub trait ResultExt<T> {
    /// Maps the error to an [`Error`] of `code` with `message`, keeping the
    /// original as its cause.
    fn classify(
        self,
        code: ErrorCode,
        message: impl Into<std::borrow::Cow<'static, str>>,
    ) -> Result<T, Error>;
}

impl<T, E> ResultExt<T> for Result<T, E>
where
    E: StdError + Send + Sync + 'static,
{
    fn classify(
        self,
        code: ErrorCode,
        message: impl Into<std::borrow::Cow<'static, str>>,
    ) -> Result<T, Error> {
        self.map_err(|error| Error::new(code, message).with_cause(error))
    }
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}
