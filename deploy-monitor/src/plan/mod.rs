//! The rollout plan: phases (flag values, validation text, minimum
//! duration, optional thresholds) and the analysis settings, read from
//! TOML with Argo Rollouts' vocabulary.
//!
//! ```toml
//! [analysis]            # optional; Argo's names
//! interval = "1m"       # how often the health is judged
//! window = "1m"         # the sliding window each judgement covers
//! count = 5             # consecutive passes before an automatic advance
//! failureLimit = 3      # consecutive failed checks before a rollback
//! inconclusiveLimit = 5 # consecutive inconclusive checks before a pause
//! consecutiveErrorLimit = 4 # consecutive measurement errors before a pause
//! initialDelay = "0s"   # no judgement this soon after a phase change
//! dryRun = false        # judge and report, never act
//! autoAdvance = false   # advance after `count` passes (manual otherwise)
//! cooldown = "10m"      # no automatic action this soon after a rollback
//! advanceQuietPeriod = "1h" # no advance this soon after a rollback
//!
//! [thresholds]          # optional; the defaults of every phase
//! maxErrorRate = 0.05
//!
//! [[phase]]
//! name = "Phase 4: Production Canary"
//! minDuration = "2days"
//! validation = "Error rate stable, performance normal"
//! flags = { use_v2_coordinator = 10, use_persistent_agents = "on" }
//! thresholds = { maxErrorRate = 0.02 }  # optional, overrides for this phase
//! ```
//!
//! A flag that any phase names is a *rollout flag*; a phase that does not
//! name it sets it off, so every phase is a complete assignment and a
//! rollback restores exactly the previous phase. Phase 0 is the implicit
//! baseline: every rollout flag off.
//!
//! This module is not for applying phases (`monitor.rs` does that).

mod parse;

use std::time::Duration;

use foundation_error::Result;
use foundation_flags::FlagValue;

use crate::analysis::Thresholds;

/// The default plan's TOML text: stage 05's five phases over its six flags.
pub const DEFAULT_PLAN_TOML: &str = include_str!("default.toml");

/// How the health is judged and acted on, in Argo Rollouts' terms.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisSettings {
    /// How often the health is judged. Default one minute.
    pub interval: Duration,
    /// The sliding window each judgement covers. Default one minute.
    pub window: Duration,
    /// Consecutive passing checks before an automatic advance. Default 5.
    pub count: u32,
    /// Consecutive failed checks before an automatic rollback. Default 3.
    pub failure_limit: u32,
    /// Consecutive inconclusive checks before the rollout pauses and an
    /// alert is raised. Default 5.
    pub inconclusive_limit: u32,
    /// Consecutive evaluations with a measurement error (lost events)
    /// before the rollout pauses and an alert is raised. Default 4.
    pub consecutive_error_limit: u32,
    /// No judgement counts this soon after a phase change. Default zero.
    pub initial_delay: Duration,
    /// Judge and report, never act. Default false.
    pub dry_run: bool,
    /// Advance after `count` consecutive passes once the phase's minimum
    /// duration has passed. Default false (advance is manual).
    pub auto_advance: bool,
    /// No automatic rollback or advance this soon after a rollback, so the
    /// rollout does not flap. Default ten minutes.
    pub cooldown: Duration,
    /// No advance (unless forced) this soon after a rollback: the
    /// original's rule. Default one hour.
    pub advance_quiet_period: Duration,
}

impl Default for AnalysisSettings {
    fn default() -> Self {
        AnalysisSettings {
            interval: Duration::from_secs(60),
            window: Duration::from_secs(60),
            count: 5,
            failure_limit: 3,
            inconclusive_limit: 5,
            consecutive_error_limit: 4,
            initial_delay: Duration::ZERO,
            dry_run: false,
            auto_advance: false,
            cooldown: Duration::from_secs(600),
            advance_quiet_period: Duration::from_secs(3600),
        }
    }
}

/// One phase of the rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// The phase's name.
    pub name: String,
    /// Every rollout flag's value in this phase, in plan order.
    pub flags: Vec<(String, FlagValue)>,
    /// What must be true before moving on (for people).
    pub validation: String,
    /// How long the phase must be healthy before an advance.
    pub min_duration: Duration,
    /// The thresholds of this phase (the plan's, with its overrides).
    pub thresholds: Thresholds,
}

/// A validated rollout plan.
///
/// ```
/// use deploy_monitor::RolloutPlan;
/// use foundation_flags::FlagValue;
///
/// let plan = RolloutPlan::default_plan();
/// assert_eq!(plan.phases().len(), 5);
/// assert_eq!(plan.flags().len(), 6);
/// let canary = plan.phase(4).expect("phase 4 exists");
/// assert!(canary.flags.contains(&("use_v2_coordinator".to_owned(), FlagValue::percentage(10)?)));
///
/// let error = RolloutPlan::from_toml("[[phase]]\nname = \"one\"\nminDuration = \"soon\"\n").unwrap_err();
/// assert!(error.message().contains("phase 1 (\"one\")"));
/// assert!(error.message().contains("minDuration"));
/// # Ok::<(), foundation_error::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutPlan {
    analysis: AnalysisSettings,
    thresholds: Thresholds,
    flags: Vec<String>,
    phases: Vec<Phase>,
}

impl RolloutPlan {
    /// Parses and validates a plan.
    ///
    /// # Errors
    ///
    /// `format_error` for text that is not TOML; `invalid_config_structure`
    /// for an unknown key or a value of the wrong type,
    /// `missing_required_field` for a missing one and `invalid_config_value`
    /// for a value out of range, each naming the phase (number and name)
    /// and the key.
    pub fn from_toml(text: &str) -> Result<RolloutPlan> {
        parse::plan(text)
    }

    /// Stage 05's plan ([`DEFAULT_PLAN_TOML`]).
    pub fn default_plan() -> RolloutPlan {
        parse::plan(DEFAULT_PLAN_TOML).expect("the default plan is valid (a unit test parses it)")
    }

    /// The analysis settings.
    pub fn analysis(&self) -> &AnalysisSettings {
        &self.analysis
    }

    /// Changes the analysis settings (say, dry run for a rehearsal).
    pub fn analysis_mut(&mut self) -> &mut AnalysisSettings {
        &mut self.analysis
    }

    /// The rollout flags, in the order the plan first names them.
    pub fn flags(&self) -> &[String] {
        &self.flags
    }

    /// The phases, phase 1 first.
    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    /// Phase `number` (1-based), or `None` (also for 0, the baseline).
    pub fn phase(&self, number: usize) -> Option<&Phase> {
        number
            .checked_sub(1)
            .and_then(|index| self.phases.get(index))
    }

    /// The name of phase `number` ("baseline" for 0).
    pub fn phase_name(&self, number: usize) -> &str {
        self.phase(number)
            .map_or("baseline", |phase| phase.name.as_str())
    }

    /// The flag values of phase `number` (every rollout flag off for 0).
    pub fn values(&self, number: usize) -> Vec<(String, FlagValue)> {
        match self.phase(number) {
            Some(phase) => phase.flags.clone(),
            None => self
                .flags
                .iter()
                .map(|flag| (flag.clone(), FlagValue::Off))
                .collect(),
        }
    }

    /// The thresholds of phase `number` (the plan's defaults for 0).
    pub fn thresholds(&self, number: usize) -> &Thresholds {
        match self.phase(number) {
            Some(phase) => &phase.thresholds,
            None => &self.thresholds,
        }
    }
}
