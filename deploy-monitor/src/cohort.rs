//! Cohorts: which side of a percentage flag a request was routed to.
//!
//! A canary is judged against its control, so every health metric is kept
//! per cohort as well as overall. The cohort comes from the flag's own
//! bucketing ([`Cohort::of`]), so the monitor and the code that routed the
//! request agree on who is in the treatment.
//!
//! This module is not for bucketing itself; foundation-flags does that.

use foundation_flags::FlagHandle;
use serde::{Deserialize, Serialize};

/// The cohort a sample belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cohort {
    /// Not routed by a rollout flag (counted only in the overall figures).
    Unassigned,
    /// On the old path: the flag was off for this id.
    Control,
    /// On the new path: the flag was on for this id.
    Treatment,
}

/// How many cohorts there are.
pub(crate) const COHORTS: usize = 3;

impl Cohort {
    /// Every cohort, in index order.
    pub const ALL: [Cohort; COHORTS] = [Cohort::Unassigned, Cohort::Control, Cohort::Treatment];

    /// The cohort `id` falls in for `flag`: treatment when the flag is on for
    /// it (by the flag's own bucketing), control otherwise.
    ///
    /// ```
    /// use deploy_monitor::Cohort;
    /// use foundation_flags::{Flag, FlagValue, Flags};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> foundation_error::Result<()> {
    /// let mut builder = Flags::builder();
    /// builder.declare(Flag::new("use_v2_coordinator", "V2", FlagValue::On));
    /// let flags = builder.open().await?;
    /// let v2 = flags.handle("use_v2_coordinator")?;
    /// assert_eq!(Cohort::of(&v2, "workflow-7"), Cohort::Treatment);
    /// # Ok(())
    /// # }
    /// ```
    pub fn of(flag: &FlagHandle, id: &str) -> Cohort {
        if flag.is_enabled_for(id) {
            Cohort::Treatment
        } else {
            Cohort::Control
        }
    }

    /// The cohort's label value in metrics and reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            Cohort::Unassigned => "unassigned",
            Cohort::Control => "control",
            Cohort::Treatment => "treatment",
        }
    }

    pub(crate) const fn index(self) -> usize {
        match self {
            Cohort::Unassigned => 0,
            Cohort::Control => 1,
            Cohort::Treatment => 2,
        }
    }
}

impl std::fmt::Display for Cohort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
