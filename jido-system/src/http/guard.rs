//! The request guards, as axum extractors: [`Reader`] (open to loopback
//! clients, the token otherwise), [`Writer`] (the token, then the per-client
//! write limit), and [`JsonBody`] (the 1 MiB limit and JSON decoding that
//! names the field at fault). Each rejects with an [`ApiError`] in the form
//! `use_new_error_handling` selects.
//!
//! This module is not for what a request does (`api.rs`).

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use foundation_core::rate_limiter::Decision;
use foundation_error::{Error, ErrorCode};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::ApiState;
use super::error::{ApiError, PAYLOAD_TOO_LARGE};
use crate::flags::USE_NEW_ERROR_HANDLING;

impl ApiState {
    /// Whether errors use the portable form (`use_new_error_handling`; on
    /// while the flags are restarting).
    pub(crate) fn portable(&self) -> bool {
        self.shared
            .flags
            .get()
            .map_or(true, |flags| flags.is_enabled(USE_NEW_ERROR_HANDLING))
    }

    /// `error` in the selected form.
    pub(crate) fn fail(&self, error: Error) -> ApiError {
        if let Ok(tracker) = self.shared.errors.get() {
            tracker.track(&error);
        }
        ApiError::new(error, self.portable())
    }
}

/// The client: its address and whether it showed the token.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    /// The peer address (loopback when unknown, as in tests that drive the
    /// router without a socket).
    pub(crate) address: IpAddr,
    /// Whether `Authorization: Bearer TOKEN` matched.
    pub(crate) authorized: bool,
    /// Whether a token was shown at all.
    pub(crate) presented: bool,
}

impl Client {
    fn of(parts: &Parts, state: &ApiState) -> Client {
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([127, 0, 0, 1]), |info| info.0.ip());
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        let authorized = presented.is_some_and(|token| {
            bool::from(token.as_bytes().ct_eq(state.shared.http.token.as_bytes()))
        });
        Client {
            address,
            authorized,
            presented: presented.is_some(),
        }
    }

    /// Who to record in audit logs and transitions.
    pub(crate) fn who(&self) -> String {
        format!("api@{}", self.address)
    }
}

fn unauthorized(client: &Client) -> Error {
    let message = if client.presented {
        "the API token does not match"
    } else {
        "this request needs Authorization: Bearer TOKEN (the token is in the data directory's `token` file, or JIDO_TOKEN)"
    };
    Error::new(ErrorCode::AUTHENTICATION_FAILED, message)
}

/// A read: open to loopback clients; others need the token.
#[derive(Debug, Clone)]
pub(crate) struct Reader;

impl FromRequestParts<ApiState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Reader, ApiError> {
        let client = Client::of(parts, state);
        if client.address.is_loopback() || client.authorized {
            Ok(Reader)
        } else {
            Err(state.fail(unauthorized(&client)))
        }
    }
}

/// A write: needs the token, then a place in the client's write limit.
#[derive(Debug, Clone)]
pub(crate) struct Writer(pub(crate) Client);

impl FromRequestParts<ApiState> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Writer, ApiError> {
        let client = Client::of(parts, state);
        if !client.authorized {
            return Err(state.fail(unauthorized(&client)));
        }
        let key = client.address.to_string();
        match state.writes.check(&key) {
            Ok(Decision::Allowed { .. }) => Ok(Writer(client)),
            Ok(decision) => Err(state.fail(
                decision
                    .into_result(super::WRITE_LIMITER, &key)
                    .err()
                    .unwrap_or_else(|| Error::new(ErrorCode::RATE_LIMITED, "rate limited")),
            )),
            Err(error) => Err(state.fail(error)),
        }
    }
}

/// A JSON body of `T`, at most 1 MiB, unknown fields refused.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<ApiState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &ApiState) -> Result<JsonBody<T>, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    state.fail(
                        Error::new(
                            PAYLOAD_TOO_LARGE,
                            format!(
                                "the request body is larger than {} bytes",
                                state.shared.http.max_body_bytes
                            ),
                        )
                        .with_context("limit_bytes", state.shared.http.max_body_bytes),
                    )
                } else {
                    state.fail(Error::new(
                        ErrorCode::INVALID_INPUT,
                        format!("the request body could not be read: {rejection}"),
                    ))
                }
            })?;
        decode(&bytes)
            .map(JsonBody)
            .map_err(|error| state.fail(error))
    }
}

/// Decodes `bytes` as `T`; an error names the field at fault.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = inner.to_string();
        // serde names an unknown or missing field in backquotes.
        let named = message.split('`').nth(1).filter(|_| {
            message.starts_with("unknown field") || message.starts_with("missing field")
        });
        // The path names the field at fault (for an unknown field, the
        // field itself; for a missing one, its parent).
        let field = match (named, path.as_str()) {
            (Some(name), "." | "") => name.to_owned(),
            (Some(name), path) if !path.ends_with(name) => format!("{path}.{name}"),
            (_, path) => path.to_owned(),
        };
        let code = if inner.is_syntax() || inner.is_eof() {
            ErrorCode::FORMAT_ERROR
        } else {
            ErrorCode::VALIDATION_FAILED
        };
        let mut error = Error::new(
            code,
            if field.is_empty() || field == "." {
                format!("malformed JSON body: {message}")
            } else {
                format!("invalid field `{field}`: {message}")
            },
        );
        if !field.is_empty() && field != "." {
            error = error.with_context("field", field);
        }
        error
    })?;
    deserializer.end().map_err(|error| {
        Error::new(
            ErrorCode::FORMAT_ERROR,
            format!("malformed JSON body: {error}"),
        )
    })?;
    Ok(value)
}
