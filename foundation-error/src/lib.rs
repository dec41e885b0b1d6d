//! The one error model of Foundation.
//!
//! Every crate of the workspace reports failures as [`Error`]: a stable
//! [`ErrorCode`] (which fixes the [`Category`] and the default [`Severity`]),
//! a message a person can act on, key-value context, a correlation id, a
//! timestamp and the cause chain. Around it this crate provides what the
//! plan's stage 04 asks for:
//!
//! - normalisation of foreign errors ([`From<std::io::Error>`], tokio's
//!   elapsed timeout and join errors, [`Error::wrap`], [`ResultExt::classify`]);
//! - a [portable](PortableError) serde form;
//! - [scoped context](scope()) that errors created inside a scope pick up;
//! - [`retry`] with exponential backoff that only retries infrastructure
//!   errors;
//! - [`isolate`], which runs an operation on its own task so a panic or a
//!   hang becomes a classified error;
//! - graceful degradation with [`with_fallback`] and [`StaleCache`];
//! - the [`ErrorTracker`], which counts errors in sliding windows and raises
//!   [`ErrorAlert`]s ([`metrics`] names what it reports);
//! - the one injectable [`clock`] (monotonic and wall time) every crate
//!   reads time through.
//!
//! This crate depends on no other crate of ours.
//!
//! ```
//! use foundation_error::{Category, Error, ErrorCode};
//!
//! fn open_config(path: &str) -> Result<String, Error> {
//!     std::fs::read_to_string(path)
//!         .map_err(|io| Error::from(io).with_context("path", path))
//! }
//!
//! let error = open_config("/definitely/not/here.toml").unwrap_err();
//! assert_eq!(error.code(), ErrorCode::DATA_NOT_FOUND);
//! assert_eq!(error.category(), Category::Validation);
//! assert!(error.to_string().starts_with("[3401 data_not_found]"));
//! ```

pub mod clock;
mod code;
mod degrade;
mod error;
mod isolate;
pub mod metrics;
mod normalize;
mod portable;
mod retry;
mod scope;
mod tracker;

pub use code::{APPLICATION_CODES, Category, ErrorCode, RetryStrategy, Severity};
pub use degrade::{Cached, Freshness, StaleCache, with_fallback};
pub use error::Error;
pub use isolate::{DEFAULT_ISOLATION_TIMEOUT, isolate, isolate_default};
pub use normalize::{ResultExt, io_error_code, panic_message};
pub use portable::PortableError;
pub use retry::{Jitter, RetryPolicy, retry};
pub use scope::{ErrorContext, MAX_BREADCRUMBS, breadcrumb, current as current_scope, scope};
pub use tracker::{AlertRule, ErrorAlert, ErrorTracker, ErrorTrackerBuilder, MAX_ALERT_THRESHOLD};

/// `Result` with the one error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
