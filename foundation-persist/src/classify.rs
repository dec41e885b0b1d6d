//! Storage failures become classified [`Error`]s.
//!
//! Every redb error this crate meets passes through [`storage_error`], so
//! the mapping is written once: I/O errors by their kind (a full disk is
//! `resource_exhausted`), a held file lock is `store_in_use`, corruption is
//! `data_corruption`, a closed or failed store is `service_unavailable`.
//! No redb type leaves this crate; the redb error is kept only as the
//! cause's message.
//!
//! This module is not for codec errors (`codec.rs`) or for conflicts of
//! compare-and-set (`apply.rs`).

use foundation_error::{Error, ErrorCode};

/// Maps any redb error to the one error type, tagged with the operation.
pub(crate) fn storage_error(error: impl Into<redb::Error>, operation: &'static str) -> Error {
    let error: redb::Error = error.into();
    let mapped = match error {
        redb::Error::Io(io) => io_error(io),
        redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => Error::new(
            ErrorCode::STORE_IN_USE,
            "the store file is open in another process (or another handle of this one); close it there first",
        ),
        redb::Error::Corrupted(detail) => Error::new(
            ErrorCode::DATA_CORRUPTION,
            format!("the store file is corrupt: {detail}"),
        ),
        redb::Error::UpgradeRequired(version) => Error::new(
            ErrorCode::UNSUPPORTED_VERSION,
            format!("the store file has redb file format {version}, which this redb cannot open"),
        )
        .with_context("file_format", version),
        redb::Error::ValueTooLarge(bytes) => Error::new(
            ErrorCode::INVALID_INPUT,
            format!("a value of {bytes} bytes is larger than the storage engine accepts"),
        ),
        redb::Error::PreviousIo => Error::new(
            ErrorCode::STORAGE_FAILURE,
            "an earlier I/O error left the store unable to write; close and reopen it to recover",
        ),
        redb::Error::DatabaseClosed => closed(),
        redb::Error::RepairAborted => Error::new(
            ErrorCode::INITIALIZATION_FAILED,
            "the repair of the store file after a crash was aborted",
        ),
        redb::Error::TransactionInProgress
        | redb::Error::ReadTransactionStillInUse(_)
        | redb::Error::WouldBlock
        | redb::Error::PersistentSavepointExists
        | redb::Error::EphemeralSavepointExists => Error::new(
            ErrorCode::SERVICE_UNAVAILABLE,
            "the store is busy with a long read (a backup, for example); retry when it finishes",
        ),
        other => Error::new(
            ErrorCode::INTERNAL_ERROR,
            format!("the storage engine failed: {other}"),
        ),
    };
    mapped.with_context("operation", operation)
}

/// An I/O error of the store's file. The kinds the error model knows keep
/// their codes (a full disk is `resource_exhausted`, a read-only file
/// system `permission_denied`); any other failure of the disk (EIO on a
/// write, a read or an fsync) is an infrastructure storage failure,
/// `storage_failure`, not a bug of ours. After a failed write or fsync
/// redb refuses further writes (`PreviousIo`, also `storage_failure`)
/// until the store is reopened: the OS may have dropped the dirty pages,
/// so nothing written since the last good fsync can be trusted.
fn io_error(io: std::io::Error) -> Error {
    let raw_os_error = io.raw_os_error();
    let error = Error::from(io);
    if error.code() != ErrorCode::INTERNAL_ERROR {
        return error;
    }
    let mut storage_failure = Error::new(
        ErrorCode::STORAGE_FAILURE,
        "the disk failed an I/O operation on the store file; the store refuses writes until it \
         is reopened, and the disk should be checked",
    )
    .with_context("storage_failure", "io")
    .with_cause(error);
    if let Some(raw) = raw_os_error {
        storage_failure = storage_failure.with_context("os_error", raw);
    }
    storage_failure
}

/// The error every operation on a closed store returns.
pub(crate) fn closed() -> Error {
    Error::new(ErrorCode::SERVICE_UNAVAILABLE, "the store is closed")
}

#[cfg(test)]
mod tests {
    use std::io;

    use foundation_error::Category;

    use super::*;

    #[test]
    fn full_disk_is_resource_exhausted() {
        for error in [
            redb::Error::Io(io::Error::from(io::ErrorKind::StorageFull)),
            redb::Error::from(redb::StorageError::Io(io::Error::from_raw_os_error(28))),
            redb::Error::from(redb::CommitError::Storage(redb::StorageError::Io(
                io::Error::from(io::ErrorKind::QuotaExceeded),
            ))),
        ] {
            let mapped = storage_error(error, "commit");
            assert_eq!(mapped.code(), ErrorCode::RESOURCE_EXHAUSTED, "{mapped}");
            assert_eq!(mapped.context_value("operation"), Some("commit"));
        }
    }

    /// Issue 9, defect 6: EIO was `internal_error` ("a bug").
    #[test]
    fn disk_failures_are_infrastructure_storage_failures() {
        const EIO: i32 = 5;
        for error in [
            redb::Error::Io(io::Error::from_raw_os_error(EIO)),
            redb::Error::from(redb::CommitError::Storage(redb::StorageError::Io(
                io::Error::from_raw_os_error(EIO),
            ))),
            redb::Error::Io(io::Error::other("injected storage fault")),
        ] {
            let mapped = storage_error(error, "commit");
            assert_eq!(mapped.code(), ErrorCode::STORAGE_FAILURE, "{mapped}");
            assert_eq!(mapped.category(), Category::Infrastructure);
            assert!(!mapped.is_retryable(), "a failed disk is not retried");
            assert_eq!(mapped.context_value("storage_failure"), Some("io"));
        }
        let eio = storage_error(redb::Error::Io(io::Error::from_raw_os_error(EIO)), "sync");
        assert_eq!(eio.context_value("os_error"), Some("5"));
    }

    #[test]
    fn lock_conflicts_are_store_in_use() {
        let mapped = storage_error(redb::DatabaseError::DatabaseAlreadyOpen, "open");
        assert_eq!(mapped.code(), ErrorCode::STORE_IN_USE);
    }

    #[test]
    fn corruption_and_failed_stores_are_classified() {
        let corrupt = storage_error(redb::StorageError::Corrupted("bad page".into()), "read");
        assert_eq!(corrupt.code(), ErrorCode::DATA_CORRUPTION);
        let previous = storage_error(redb::StorageError::PreviousIo, "begin_write");
        assert_eq!(previous.code(), ErrorCode::STORAGE_FAILURE);
        assert_eq!(previous.category(), Category::Infrastructure);
        let closed = storage_error(redb::StorageError::DatabaseClosed, "read");
        assert_eq!(closed.code(), ErrorCode::SERVICE_UNAVAILABLE);
        let io = storage_error(
            redb::StorageError::Io(io::Error::from(io::ErrorKind::PermissionDenied)),
            "open",
        );
        assert_eq!(io.code(), ErrorCode::PERMISSION_DENIED);
    }
}
