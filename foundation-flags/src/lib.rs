//! Runtime feature flags for Foundation.
//!
//! Flags are declared (name, description, default value, optional group
//! id) in code or TOML and hold one of three values: `Off`, `On`, or
//! `Percentage(0..=100)`. A percentage flag enables the ids whose bucket is
//! at most the percentage, bucketed exactly as Unleash does it
//! ([`normalized_bucket`]: murmur3 x86 32-bit, seed 0, of
//! `"{group_id}:{id}"`, `% 100 + 1`), so users keep their buckets when a
//! team moves from Unleash, and raising a percentage keeps everyone already
//! enabled.
//!
//! # Reading
//!
//! Reads are lock-free and never wait:
//! - [`FlagHandle`] (from [`Flags::handle`], once) is the hot path:
//!   `is_enabled` is one atomic load, `is_enabled_for(id)` an atomic load
//!   and a murmur3 of the id (the group id's part of the hash is computed
//!   once per flag).
//! - [`Flags::is_enabled`], [`Flags::is_enabled_for`] look the flag up by
//!   name first (a hash-map lookup with a hasher made for short names).
//! - [`Flags::evaluate`] returns [`EvaluationDetails`] in OpenFeature's
//!   terms (value, [`Reason`], [`EvaluationErrorCode`]); an undeclared flag
//!   gives the caller's default with `Reason::Error` and `FlagNotFound`.
//! - [`Flags::snapshot`] returns a consistent [`FlagSnapshot`] of every
//!   flag: read several flags from one snapshot when they must agree.
//!
//! Each single read sees whole writes. Two separate single reads can
//! straddle a bulk change; a snapshot cannot. Once a single read has seen a
//! write, every later snapshot contains all of it.
//!
//! # Writing
//!
//! Writes ([`Flags::set`], [`Flags::apply`] for several flags at once,
//! [`Flags::reset`], and the ramp operations) are serialised and
//! attributed ([`Attribution`]: who and why). Each is validated (an unknown
//! flag, a duplicate, a missing reason are classified errors that change
//! nothing), committed to the [`FlagStore`], then published, recorded as
//! [`AuditEntry`]s, broadcast to [`Flags::subscribe`]rs as one
//! [`FlagChange`], and counted in metrics (`foundation_flag_changes_total{flag}`
//! and the gauge `foundation_flag_rollout_percentage{flag}`, 0 to 100). Every
//! wait (the writer lock, each store call) has a timeout, 5 seconds unless
//! set. Writes need a tokio runtime with time enabled; reads need none.
//!
//! # Start-up precedence
//!
//! 1. the declared defaults;
//! 2. the values stored by earlier runs;
//! 3. the environment overrides `FOUNDATION_FLAG_<NAME>=on|off|<0-100>`
//!    (read from an injected list, or from the process environment on
//!    request).
//!
//! Overrides are audited but not stored, so removing the variable restores
//! the stored value at the next start. After start-up, writes win until the
//! next start. See [`FlagsBuilder`].
//!
//! # Ramps
//!
//! [`Flags::start_ramp`] raises (or lowers) a flag from one percentage to
//! another in steps at an interval; ramps can be paused, resumed and
//! cancelled, persist through the store (a restarted service continues the
//! schedule), and every step is an audited change. Another write to the
//! flag cancels its ramp. This crate spawns nothing: the application runs
//! the [`RampDriver`] future (from [`Flags::ramp_driver`]) under its own
//! supervisor, or calls [`Flags::advance_ramps`] from its own timer.
//!
//! # OpenFeature
//!
//! With the cargo feature `openfeature`, `FlagsProvider` implements the
//! `open-feature` crate's `FeatureProvider`.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use foundation_flags::{Attribution, AuditQuery, EvaluationContext, Flag, FlagValue, Flags, Reason};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> foundation_error::Result<()> {
//! let mut builder = Flags::builder();
//! builder
//!     .declare(Flag::new("use_v2_coordinator", "Route workflows to V2", FlagValue::Off))
//!     .declare(Flag::new("use_reliable_messaging", "Acknowledged delivery", FlagValue::Off));
//! let flags = builder.open().await?;
//!
//! let v2 = flags.handle("use_v2_coordinator")?;
//! flags
//!     .apply(
//!         [
//!             ("use_v2_coordinator", FlagValue::percentage(25)?),
//!             ("use_reliable_messaging", FlagValue::On),
//!         ],
//!         Attribution::new("rollout-plan", "phase 2"),
//!     )
//!     .await?;
//!
//! let details = v2.evaluate(EvaluationContext::for_key("coordinator-7"));
//! assert_eq!(details.reason, Reason::Split);
//! assert_eq!(details.value, details.bucket.unwrap() <= 25);
//! assert!(flags.is_enabled("use_reliable_messaging"));
//!
//! let audit = flags.audit_log(AuditQuery::recent(10)).await?;
//! assert_eq!(audit.len(), 2);
//! assert_eq!(audit[0].who, "rollout-plan");
//! # Ok(())
//! # }
//! ```
//!
//! This crate depends on foundation-error and third-party crates only; it
//! knows nothing of foundation-core or foundation-persist.

mod audit;
mod bucket;
mod builder;
mod declaration;
mod driver;
mod environment;
mod evaluation;
pub mod metrics;
#[cfg(feature = "openfeature")]
mod openfeature;
mod ramp;
mod registry;
mod store;
mod toml_file;
mod value;
mod writer;

pub use audit::{
    Attribution, AuditAction, AuditEntry, AuditQuery, FlagChange, MAX_REASON_LEN, MAX_WHO_LEN,
};
pub use bucket::{murmur3_x86_32, normalized_bucket};
pub use builder::{DEFAULT_TIMEOUT, FlagsBuilder};
pub use declaration::{ENVIRONMENT_PREFIX, Flag, MAX_GROUP_ID_LEN, MAX_NAME_LEN};
pub use driver::{MAX_DRIVER_SLEEP, RampDriver};
pub use environment::process_environment;
pub use evaluation::{EvaluationContext, EvaluationDetails, EvaluationErrorCode, Reason};
#[cfg(feature = "openfeature")]
pub use openfeature::{FlagsProvider, PROVIDER_NAME};
pub use ramp::{MAX_RAMP_INTERVAL, MIN_RAMP_INTERVAL, RampPlan, RampState};
pub use registry::{FlagHandle, FlagSnapshot, Flags};
pub use store::{
    DEFAULT_MEMORY_AUDIT_CAPACITY, FlagCommit, FlagStore, InMemoryFlagStore, RampUpdate,
    StoreFault, StoreFuture, StoredFlags, stale_commit,
};
pub use toml_file::{declarations_from_toml, declarations_from_toml_file};
pub use value::{FlagValue, Percentage};
pub use writer::WRITE_ATTEMPTS;
