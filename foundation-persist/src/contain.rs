//! The last line of defence against panics inside redb: the one place this
//! crate catches an unwinding panic.
//!
//! redb trusts a file that was shut down cleanly, and a file damaged outside
//! redb (a flipped bit, a stray write, a truncated copy) can make it panic:
//! "Malformed allocator state" on open, a slice index out of range inside a
//! B-tree page on a read. No such panic may reach a caller of this crate.
//! Every call into redb that touches stored bytes therefore runs inside
//! [`contain`], which turns a panic into `data_corruption` naming the store
//! and the operation. The sites are: opening a store (`store.rs`), each read
//! (`shared.rs`), each commit and flush of the writer and of inline writes
//! (`writer.rs`, `store.rs`), and backup, restore and compaction
//! (`store.rs`, `writer.rs`). A read that panics affects only that read; a
//! write that panics leaves the store refusing writes until it is reopened
//! (redb's in-memory state may be inconsistent after it).
//!
//! `cargo xtask tidy` allows `catch_unwind` in this file only.
//!
//! This module is not for classifying redb's errors (`classify.rs`), and
//! not a way to hide bugs of this crate: a panic of our own code caught
//! here is reported as corruption too, so there must be none.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use foundation_error::{Error, ErrorCode};

/// Runs `work`; a panic inside it becomes `data_corruption` naming `store`
/// and `operation`.
///
/// The closure is asserted unwind-safe: after a panic, nothing it borrowed
/// is used for writing again without a check (the write paths mark the
/// store failed, see `Shared::fail_writes`), and redb's read paths hold no
/// state that a later read would trust.
pub(crate) fn contain<R>(
    store: &str,
    operation: &'static str,
    work: impl FnOnce() -> Result<R, Error>,
) -> Result<R, Error> {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result,
        Err(payload) => Err(panicked(store, operation, payload.as_ref())),
    }
}

fn panicked(store: &str, operation: &'static str, payload: &(dyn Any + Send)) -> Error {
    let message = payload
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    Error::new(
        ErrorCode::DATA_CORRUPTION,
        format!(
            "the store's file is damaged: the storage engine failed while reading it ({message}); \
             restore a backup, or open with an integrity check to find the damage"
        ),
    )
    .with_context("store", store)
    .with_context("operation", operation)
    .with_context("panic", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_data_corruption_naming_the_store() {
        let error =
            contain::<()>("/data/store.redb", "read", || panic!("index out of range")).unwrap_err();
        assert_eq!(error.code(), ErrorCode::DATA_CORRUPTION);
        assert_eq!(error.context_value("store"), Some("/data/store.redb"));
        assert_eq!(error.context_value("operation"), Some("read"));
        assert_eq!(error.context_value("panic"), Some("index out of range"));
    }

    #[test]
    fn results_pass_through() {
        assert_eq!(contain("s", "read", || Ok(3)).unwrap(), 3);
        let error = contain::<()>("s", "read", || Err(Error::timeout("slow"))).unwrap_err();
        assert_eq!(error.code(), ErrorCode::TIMEOUT);
    }
}
