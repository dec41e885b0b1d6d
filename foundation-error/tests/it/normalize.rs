use std::io;

use foundation_error::{Category, Error, ErrorCode};

#[test]
fn io_error_kinds_map_to_classified_codes() {
    let table = [
        (
            io::ErrorKind::TimedOut,
            ErrorCode::TIMEOUT,
            Category::Infrastructure,
        ),
        (
            io::ErrorKind::ConnectionRefused,
            ErrorCode::NETWORK_ERROR,
            Category::Infrastructure,
        ),
        (
            io::ErrorKind::ConnectionReset,
            ErrorCode::NETWORK_ERROR,
            Category::Infrastructure,
        ),
        (
            io::ErrorKind::ConnectionAborted,
            ErrorCode::NETWORK_ERROR,
            Category::Infrastructure,
        ),
        (
            io::ErrorKind::BrokenPipe,
            ErrorCode::NETWORK_ERROR,
            Category::Infrastructure,
        ),
        (
            io::ErrorKind::NotFound,
            ErrorCode::DATA_NOT_FOUND,
            Category::Validation,
        ),
        (
            io::ErrorKind::AlreadyExists,
            ErrorCode::ALREADY_EXISTS,
            Category::Validation,
        ),
        (
            io::ErrorKind::InvalidInput,
            ErrorCode::INVALID_INPUT,
            Category::Validation,
        ),
        (
            io::ErrorKind::PermissionDenied,
            ErrorCode::PERMISSION_DENIED,
            Category::System,
        ),
        (
            io::ErrorKind::InvalidData,
            ErrorCode::DATA_CORRUPTION,
            Category::System,
        ),
        (
            io::ErrorKind::UnexpectedEof,
            ErrorCode::DATA_CORRUPTION,
            Category::System,
        ),
        (
            io::ErrorKind::StorageFull,
            ErrorCode::RESOURCE_EXHAUSTED,
            Category::Infrastructure,
        ),
        (
            io::ErrorKind::OutOfMemory,
            ErrorCode::RESOURCE_EXHAUSTED,
            Category::Infrastructure,
        ),
        (
            io::ErrorKind::WouldBlock,
            ErrorCode::SERVICE_UNAVAILABLE,
            Category::Infrastructure,
        ),
        (
            io::ErrorKind::Other,
            ErrorCode::INTERNAL_ERROR,
            Category::System,
        ),
    ];
    for (kind, code, category) in table {
        let error = Error::from(io::Error::new(kind, "boom"));
        assert_eq!(error.code(), code, "{kind:?}");
        assert_eq!(error.category(), category, "{kind:?}");
        assert_eq!(error.message(), "boom");
        assert_eq!(
            error.cause_messages(),
            vec!["boom"],
            "the io error is kept as the cause"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn elapsed_timeouts_become_timeouts() {
    let elapsed = tokio::time::timeout(
        std::time::Duration::from_millis(1),
        std::future::pending::<()>(),
    )
    .await
    .unwrap_err();
    let error = Error::from(elapsed);
    assert_eq!(error.code(), ErrorCode::TIMEOUT);
    assert_eq!(error.category(), Category::Infrastructure);
}

#[test]
fn generic_wrap_keeps_the_cause() {
    let parse = "x".parse::<i32>().unwrap_err();
    let error = Error::wrap(parse);
    assert_eq!(error.code(), ErrorCode::INTERNAL_ERROR);
    assert_eq!(error.category(), Category::System);
    assert_eq!(
        error.cause_messages(),
        vec!["invalid digit found in string"]
    );
}

#[test]
fn display_renders_code_message_and_context() {
    let error = Error::new(ErrorCode::TIMEOUT, "payments did not answer")
        .with_context("service", "payments")
        .with_context("attempt", 2);
    assert_eq!(
        error.to_string(),
        "[4301 timeout] payments did not answer (service=payments, attempt=2)"
    );
}
