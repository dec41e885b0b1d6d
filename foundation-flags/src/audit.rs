//! Who changed which flag, when and why: [`Attribution`] going in,
//! [`AuditEntry`] and [`FlagChange`] coming out.
//!
//! Every write is attributed; every effect of a write (a value set, a ramp
//! started, stepped, paused, resumed or cancelled, an environment override
//! at start-up) becomes one audit entry with a sequence number. The entries
//! of one write are stored in one commit and broadcast as one
//! [`FlagChange`]. This module is not for storing entries; see `store.rs`.

use std::sync::Arc;
use std::time::SystemTime;

use foundation_error::{Error, ErrorCode, Result};
use serde::{Deserialize, Serialize};

use crate::value::FlagValue;

/// The longest `who` accepted, in bytes.
pub const MAX_WHO_LEN: usize = 256;
/// The longest reason accepted, in bytes.
pub const MAX_REASON_LEN: usize = 1024;

/// Who makes a change and why; required by every write.
///
/// ```
/// use foundation_flags::Attribution;
///
/// let by = Attribution::new("alice@ops", "INC-42: disable the new checkout");
/// assert_eq!(by.who(), "alice@ops");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    who: String,
    reason: String,
}

impl Attribution {
    /// An attribution; both parts are checked (non-empty, bounded) by the write.
    pub fn new(who: impl Into<String>, reason: impl Into<String>) -> Attribution {
        Attribution {
            who: who.into(),
            reason: reason.into(),
        }
    }

    /// Who makes the change: a person, a service, a rollout plan.
    pub fn who(&self) -> &str {
        &self.who
    }

    /// Why.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |what: &str, max: usize| {
            Error::new(
                ErrorCode::INVALID_INPUT,
                format!("a flag change needs {what} of 1 to {max} bytes"),
            )
        };
        if self.who.trim().is_empty() || self.who.len() > MAX_WHO_LEN {
            return Err(invalid("a `who`", MAX_WHO_LEN));
        }
        if self.reason.trim().is_empty() || self.reason.len() > MAX_REASON_LEN {
            return Err(invalid("a reason", MAX_REASON_LEN));
        }
        Ok(())
    }
}

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditAction {
    /// A value set by [`Flags::set`](crate::Flags::set).
    Set,
    /// A value set as part of [`Flags::apply`](crate::Flags::apply).
    BulkApply,
    /// A value reset to the declared default.
    Reset,
    /// An environment override applied at start-up (not stored as the
    /// flag's value: it applies again at every start while it is set).
    EnvironmentOverride,
    /// A ramp started; the flag was set to the ramp's first percentage.
    RampStarted,
    /// A ramp stepped the flag; the last step completes the ramp.
    RampStep,
    /// A ramp was paused (the value is unchanged).
    RampPaused,
    /// A ramp was resumed (the value is unchanged).
    RampResumed,
    /// A ramp was cancelled, by request or because another write took the
    /// flag over (the value is unchanged by this entry).
    RampCancelled,
}

impl AuditAction {
    /// The snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuditAction::Set => "set",
            AuditAction::BulkApply => "bulk_apply",
            AuditAction::Reset => "reset",
            AuditAction::EnvironmentOverride => "environment_override",
            AuditAction::RampStarted => "ramp_started",
            AuditAction::RampStep => "ramp_step",
            AuditAction::RampPaused => "ramp_paused",
            AuditAction::RampResumed => "ramp_resumed",
            AuditAction::RampCancelled => "ramp_cancelled",
        }
    }
}

/// One recorded effect of a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditEntry {
    /// Increases by one per entry, across restarts (the store remembers the last).
    pub sequence: u64,
    /// The flag.
    pub flag: String,
    /// What happened.
    pub action: AuditAction,
    /// The value before.
    pub old_value: FlagValue,
    /// The value after (equal to `old_value` for ramp control entries).
    pub new_value: FlagValue,
    /// Who made the change.
    pub who: String,
    /// Why.
    pub reason: String,
    /// When, by the wall time of the flags' clock
    /// ([`FlagsBuilder::clock`](crate::FlagsBuilder::clock)).
    pub at: SystemTime,
}

impl AuditEntry {
    /// Whether the entry changed the flag's value.
    pub fn changed_value(&self) -> bool {
        self.old_value != self.new_value
    }
}

/// The entries of one write, as subscribers receive them: all of a bulk
/// change arrives in one `FlagChange`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagChange {
    version: u64,
    entries: Arc<[AuditEntry]>,
}

impl FlagChange {
    pub(crate) fn new(version: u64, entries: Arc<[AuditEntry]>) -> FlagChange {
        FlagChange { version, entries }
    }

    /// The snapshot version that made this change visible.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The entries, in sequence order.
    pub fn entries(&self) -> &[AuditEntry] {
        &self.entries
    }

    /// Whether the write changed nothing (an empty bulk apply).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Which audit entries [`Flags::audit_log`](crate::Flags::audit_log) returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditQuery {
    /// Only entries of this flag.
    pub flag: Option<String>,
    /// At most this many, the most recent ones.
    pub limit: usize,
}

impl AuditQuery {
    /// The most recent `limit` entries of every flag.
    pub fn recent(limit: usize) -> AuditQuery {
        AuditQuery { flag: None, limit }
    }

    /// Only entries of `flag`.
    #[must_use]
    pub fn for_flag(mut self, flag: impl Into<String>) -> AuditQuery {
        self.flag = Some(flag.into());
        self
    }

    /// Whether `entry` passes the flag filter.
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        self.flag.as_deref().is_none_or(|flag| flag == entry.flag)
    }
}
