//! Errors at the HTTP edge: the one mapping from an error code to an HTTP
//! status ([`status_for`]), and the two bodies the flag
//! `use_new_error_handling` chooses between: the portable classified form
//! (`PortableError` JSON: code, name, category, severity, message,
//! context) or the legacy plain form (`{"error": "message"}`).
//!
//! This module is not for producing errors; handlers return the
//! `foundation_error::Error` their components gave them.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use foundation_error::{Category, Error, ErrorCode, PortableError, RetryStrategy, Severity};
use serde_json::json;

/// A request body larger than the limit (1 MiB by default): 413.
pub const PAYLOAD_TOO_LARGE: ErrorCode = ErrorCode::application(
    6413,
    "payload_too_large",
    Category::Validation,
    Severity::Low,
    RetryStrategy::Never,
);

/// A path no route serves: 404.
pub const ROUTE_NOT_FOUND: ErrorCode = ErrorCode::application(
    6404,
    "route_not_found",
    Category::Validation,
    Severity::Low,
    RetryStrategy::Never,
);

/// A method the route does not serve: 405.
pub const METHOD_NOT_ALLOWED: ErrorCode = ErrorCode::application(
    6405,
    "method_not_allowed",
    Category::Validation,
    Severity::Low,
    RetryStrategy::Never,
);

/// The application codes of this crate (for `PortableError::into_error`).
pub const APPLICATION_CODES: [ErrorCode; 3] =
    [PAYLOAD_TOO_LARGE, ROUTE_NOT_FOUND, METHOD_NOT_ALLOWED];

/// The HTTP status of an error code: the one mapping of the workspace.
///
/// | status | codes |
/// | --- | --- |
/// | 400 | validation category (bad input, malformed or unknown fields, out of range) except those below |
/// | 401 | `authentication_failed` |
/// | 403 | `permission_denied`, `config_update_forbidden` |
/// | 404 | `data_not_found`, `flag_not_found`, `config_not_found`, `route_not_found` |
/// | 405 | `method_not_allowed` |
/// | 409 | `already_exists`, `version_conflict`, `store_in_use` |
/// | 413 | `payload_too_large` |
/// | 422 | business category (a rule of the rollout or a workflow's state forbids it) |
/// | 429 | `rate_limited` |
/// | 503 | infrastructure category otherwise (unavailable, restarting, timeouts) |
/// | 500 | everything else (system errors) |
pub fn status_for(code: ErrorCode) -> StatusCode {
    const BY_CODE: [(ErrorCode, StatusCode); 14] = [
        (ErrorCode::AUTHENTICATION_FAILED, StatusCode::UNAUTHORIZED),
        (ErrorCode::PERMISSION_DENIED, StatusCode::FORBIDDEN),
        (ErrorCode::CONFIG_UPDATE_FORBIDDEN, StatusCode::FORBIDDEN),
        (ErrorCode::DATA_NOT_FOUND, StatusCode::NOT_FOUND),
        (ErrorCode::FLAG_NOT_FOUND, StatusCode::NOT_FOUND),
        (ErrorCode::CONFIG_NOT_FOUND, StatusCode::NOT_FOUND),
        (ROUTE_NOT_FOUND, StatusCode::NOT_FOUND),
        (METHOD_NOT_ALLOWED, StatusCode::METHOD_NOT_ALLOWED),
        (ErrorCode::ALREADY_EXISTS, StatusCode::CONFLICT),
        (ErrorCode::VERSION_CONFLICT, StatusCode::CONFLICT),
        (ErrorCode::STORE_IN_USE, StatusCode::CONFLICT),
        (PAYLOAD_TOO_LARGE, StatusCode::PAYLOAD_TOO_LARGE),
        (ErrorCode::RATE_LIMITED, StatusCode::TOO_MANY_REQUESTS),
        (
            ErrorCode::DEADLINE_EXCEEDED,
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    ];
    if let Some((_, status)) = BY_CODE
        .iter()
        .find(|(known, _)| known.number() == code.number())
    {
        return *status;
    }
    match code.category() {
        Category::Validation => StatusCode::BAD_REQUEST,
        Category::Business => StatusCode::UNPROCESSABLE_ENTITY,
        Category::Infrastructure => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error on its way to the client, in the form the flags chose.
#[derive(Debug)]
pub struct ApiError {
    error: Error,
    portable: bool,
}

impl ApiError {
    /// `error` in the portable form (`portable`) or the legacy one.
    pub fn new(error: Error, portable: bool) -> ApiError {
        ApiError { error, portable }
    }

    /// The error.
    pub fn error(&self) -> &Error {
        &self.error
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_for(self.error.code());
        let retry_after = self
            .error
            .context_value("retry_after_ms")
            .and_then(|millis| millis.parse::<u64>().ok())
            .map(|millis| millis.div_ceil(1000).max(1));
        let mut response = if self.portable {
            (status, Json(PortableError::from(&self.error))).into_response()
        } else {
            (status, Json(json!({"error": self.error.message()}))).into_response()
        };
        if let Some(seconds) = retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
