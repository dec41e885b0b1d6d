//! The MonitorAgent: runs its health checks every interval (as work under
//! the task supervisor), scores the components and the whole, keeps a
//! history ring and the alert book, and persists all three.
//!
//! This module is not the arithmetic (see `monitor::health`) or the
//! checks (see `monitor::checks`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use foundation_error::clock::SharedClock;
use foundation_error::{Error, isolate};
use foundation_persist::Record;
use serde::{Deserialize, Serialize};

use super::checks::HealthCheck;
use super::health::{
    Alert, AlertBook, HealthBand, Reading, Thresholds, component_score, overall_score,
};
use crate::agent::{Action, ActionContext, Agent, AgentEnv};
use crate::persist::PersistentAgent;
use crate::server::AgentRef;
use crate::{ActionSet, metrics, validation_error};

/// The health history kept (and saved): 1,000 samples.
pub const DEFAULT_HISTORY: usize = 1_000;
/// The default check interval: 30 s.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// How long one check may take by default: 5 s.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// How a [`MonitorAgent`] is built.
#[derive(Clone)]
pub struct MonitorArgs {
    checks: Vec<Arc<dyn HealthCheck>>,
    thresholds: Thresholds,
    interval: Duration,
    check_timeout: Duration,
    history: usize,
}

impl std::fmt::Debug for MonitorArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let components: Vec<&str> = self.checks.iter().map(|check| check.component()).collect();
        f.debug_struct("MonitorArgs")
            .field("components", &components)
            .field("thresholds", &self.thresholds)
            .field("interval", &self.interval)
            .field("check_timeout", &self.check_timeout)
            .field("history", &self.history)
            .finish()
    }
}

impl Default for MonitorArgs {
    fn default() -> Self {
        MonitorArgs {
            checks: Vec::new(),
            thresholds: Thresholds::default(),
            interval: DEFAULT_CHECK_INTERVAL,
            check_timeout: DEFAULT_CHECK_TIMEOUT,
            history: DEFAULT_HISTORY,
        }
    }
}

impl MonitorArgs {
    /// No checks, the original's thresholds, every 30 s, 5 s per check, a
    /// history of 1,000.
    pub fn new() -> MonitorArgs {
        MonitorArgs::default()
    }

    /// Monitors a component (a later check with the same component name
    /// replaces it).
    pub fn check(&mut self, check: Arc<dyn HealthCheck>) -> &mut Self {
        self.checks
            .retain(|existing| existing.component() != check.component());
        self.checks.push(check);
        self
    }

    /// Sets the thresholds.
    pub fn thresholds(&mut self, thresholds: Thresholds) -> &mut Self {
        self.thresholds = thresholds;
        self
    }

    /// Sets the check interval (at least 1 ms).
    pub fn interval(&mut self, interval: Duration) -> &mut Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Sets how long one check may take (at least 1 ms).
    pub fn check_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.check_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Sets how many health samples are kept (at least 1).
    pub fn history(&mut self, samples: usize) -> &mut Self {
        self.history = samples.max(1);
        self
    }
}

/// The last judgement of one component.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ComponentHealth {
    /// Its score in the last round (0 when its check failed); `None`
    /// before its first check.
    pub score: Option<f64>,
    /// Its readings in the last round.
    pub readings: Vec<Reading>,
    /// When it was last checked (wall clock, ms since the Unix epoch).
    pub last_checked_ms: Option<u64>,
    /// The last check's error, if it failed.
    pub last_error: Option<String>,
    /// Failed checks in a row.
    pub consecutive_failures: u32,
}

/// One point of the health history.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HealthSample {
    /// When (wall clock, ms since the Unix epoch).
    pub at_ms: u64,
    /// The score, 0 to 100.
    pub score: f64,
    /// Its band.
    pub band: HealthBand,
}

/// The persisted state of a MonitorAgent (schema version 1).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MonitorState {
    /// The monitored components by name.
    pub components: BTreeMap<String, ComponentHealth>,
    /// The health history, oldest first.
    pub history: VecDeque<HealthSample>,
    /// The alert book.
    pub alerts: AlertBook,
    /// Completed check rounds.
    pub rounds: u64,
}

impl Record for MonitorState {
    const TYPE_TAG: &'static str = "jido_monitor_agent_state";
    const SCHEMA_VERSION: u32 = 1;
}

/// What `health` returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// The latest score (100 before the first round).
    pub score: f64,
    /// Its band.
    pub band: HealthBand,
    /// The components.
    pub components: BTreeMap<String, ComponentHealth>,
    /// Alerts whose breach has not ended.
    pub active_alerts: Vec<Alert>,
    /// Completed check rounds.
    pub rounds: u64,
}

/// An agent judging the health of registered components (see the module
/// docs). Persist it with [`AgentSpec::persistent`](crate::AgentSpec::persistent).
///
/// Actions: [`CheckNow`] (`check_now`), [`HealthQuery`] (`health`),
/// [`ListAlerts`] (`alerts`), [`AcknowledgeAlert`] (`acknowledge`).
pub struct MonitorAgent {
    state: MonitorState,
    args: MonitorArgs,
    clock: SharedClock,
    id: Arc<str>,
    round_in_flight: Option<u64>,
    next_round: u64,
}

impl std::fmt::Debug for MonitorAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorAgent")
            .field("id", &self.id)
            .field("rounds", &self.state.rounds)
            .field("round_in_flight", &self.round_in_flight)
            .finish()
    }
}

impl MonitorAgent {
    /// The state (components, history, alerts).
    pub fn state(&self) -> &MonitorState {
        &self.state
    }

    /// The latest score, 100 before the first round.
    pub fn score(&self) -> f64 {
        self.state
            .history
            .back()
            .map_or(100.0, |sample| sample.score)
    }

    /// The health report.
    pub fn report(&self) -> HealthReport {
        let score = self.score();
        HealthReport {
            score,
            band: HealthBand::of(score),
            components: self.state.components.clone(),
            active_alerts: self.state.alerts.active().cloned().collect(),
            rounds: self.state.rounds,
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock
            .wall()
            .duration_since(UNIX_EPOCH)
            .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    /// Starts a round unless one is running; true when it started.
    fn start_round(&mut self, ctx: &mut ActionContext<Self>) -> bool {
        if self.round_in_flight.is_some() {
            return false;
        }
        self.next_round += 1;
        let round = self.next_round;
        self.round_in_flight = Some(round);
        let checks = self.args.checks.clone();
        let timeout = self.args.check_timeout;
        let agent: AgentRef<MonitorAgent> = ctx.myself().clone();
        ctx.start_work(async move {
            let mut results = Vec::with_capacity(checks.len());
            for check in checks {
                let component = check.component().to_owned();
                let outcome = isolate(timeout, async move { check.check().await }).await;
                results.push((component, outcome));
            }
            if let Err(error) = agent
                .cast_until_delivered(RoundFinished { round, results })
                .await
            {
                tracing::debug!(%error, "a health round ended after its monitor");
            }
        });
        true
    }

    fn apply_round(&mut self, results: Vec<(String, Result<Vec<Reading>, Error>)>) {
        let now_ms = self.now_ms();
        let thresholds = self.args.thresholds;
        let mut scores = Vec::with_capacity(results.len());
        for (component, outcome) in results {
            let health = self.state.components.entry(component.clone()).or_default();
            health.last_checked_ms = Some(now_ms);
            match outcome {
                Ok(readings) => {
                    let score = component_score(&readings, &thresholds);
                    health.score = Some(score);
                    health.last_error = None;
                    health.consecutive_failures = 0;
                    for reading in &readings {
                        let threshold = thresholds.get(reading.metric);
                        if let Some(alert) = self
                            .state
                            .alerts
                            .evaluate(&component, *reading, threshold, now_ms)
                        {
                            tracing::warn!(agent = %self.id, alert = %alert.message, "health alert");
                            metrics::alert_raised(
                                <MonitorAgent as Agent>::KIND,
                                reading.metric.name(),
                            );
                        }
                    }
                    health.readings = readings;
                    scores.push(score);
                }
                Err(error) => {
                    health.score = Some(0.0);
                    health.readings.clear();
                    health.last_error = Some(error.to_string());
                    health.consecutive_failures += 1;
                    scores.push(0.0);
                }
            }
        }
        let score = overall_score(&scores);
        self.state.history.push_back(HealthSample {
            at_ms: now_ms,
            score,
            band: HealthBand::of(score),
        });
        while self.state.history.len() > self.args.history {
            self.state.history.pop_front();
        }
        self.state.rounds += 1;
        metrics::health_score(<MonitorAgent as Agent>::KIND, score);
    }
}

impl Agent for MonitorAgent {
    const KIND: &'static str = "monitor_agent";
    type Args = MonitorArgs;

    fn init(args: MonitorArgs, env: &AgentEnv) -> Result<Self, Error> {
        let mut state = MonitorState::default();
        for check in &args.checks {
            state
                .components
                .insert(check.component().to_owned(), ComponentHealth::default());
        }
        Ok(MonitorAgent {
            state,
            args,
            clock: Arc::clone(env.clock()),
            id: Arc::from(env.id()),
            round_in_flight: None,
            next_round: 0,
        })
    }

    fn actions(actions: &mut ActionSet<Self>) {
        actions
            .add::<CheckNow>()
            .add::<HealthQuery>()
            .add::<ListAlerts>()
            .add::<AcknowledgeAlert>();
    }

    fn capabilities(&self) -> Vec<String> {
        vec!["health".to_owned()]
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(self.args.interval)
    }

    fn tick(&mut self, ctx: &mut ActionContext<Self>) -> Result<(), Error> {
        self.start_round(ctx);
        Ok(())
    }

    /// A round whose work could not be started (the task supervisor is
    /// shut down) is forgotten, so the next tick tries again.
    fn on_action_error(&mut self, _action: &'static str, error: &Error) {
        if error.code() == foundation_error::ErrorCode::SHUT_DOWN {
            self.round_in_flight = None;
        }
    }
}

impl PersistentAgent for MonitorAgent {
    type Snapshot = MonitorState;

    fn snapshot(&self) -> MonitorState {
        self.state.clone()
    }

    /// Stored components are merged over the configured ones, so a
    /// component monitored before a restart stays listed.
    fn restore(&mut self, stored: MonitorState) {
        let configured = std::mem::take(&mut self.state.components);
        self.state = stored;
        for (name, health) in configured {
            self.state.components.entry(name).or_insert(health);
        }
    }

    /// Trims the history ring to its size before it is written.
    fn before_save(&self, snapshot: &mut MonitorState) -> Result<(), Error> {
        while snapshot.history.len() > self.args.history {
            snapshot.history.pop_front();
        }
        Ok(())
    }
}

/// Runs a check round now (`check_now`); false when one is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckNow {}

impl Action<MonitorAgent> for CheckNow {
    const NAME: &'static str = "check_now";
    type Output = bool;

    fn run(
        self,
        agent: &mut MonitorAgent,
        ctx: &mut ActionContext<MonitorAgent>,
    ) -> Result<bool, Error> {
        Ok(agent.start_round(ctx))
    }
}

/// The health report (`health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthQuery {}

impl Action<MonitorAgent> for HealthQuery {
    const NAME: &'static str = "health";
    type Output = HealthReport;

    fn run(
        self,
        agent: &mut MonitorAgent,
        _ctx: &mut ActionContext<MonitorAgent>,
    ) -> Result<HealthReport, Error> {
        Ok(agent.report())
    }
}

/// The alerts (`alerts`): active ones, or all kept ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListAlerts {
    /// Include alerts whose breach ended.
    #[serde(default)]
    pub include_resolved: bool,
}

impl Action<MonitorAgent> for ListAlerts {
    const NAME: &'static str = "alerts";
    type Output = Vec<Alert>;

    fn run(
        self,
        agent: &mut MonitorAgent,
        _ctx: &mut ActionContext<MonitorAgent>,
    ) -> Result<Vec<Alert>, Error> {
        Ok(agent
            .state
            .alerts
            .alerts
            .iter()
            .filter(|alert| self.include_resolved || alert.resolved_at_ms.is_none())
            .cloned()
            .collect())
    }
}

/// Acknowledges an alert by id (`acknowledge`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeAlert {
    /// The alert's id.
    pub id: String,
}

impl Action<MonitorAgent> for AcknowledgeAlert {
    const NAME: &'static str = "acknowledge";
    type Output = Alert;

    fn validate(&self) -> Result<(), Error> {
        if self.id.is_empty() {
            return Err(validation_error("id", "must not be empty"));
        }
        Ok(())
    }

    fn run(
        self,
        agent: &mut MonitorAgent,
        _ctx: &mut ActionContext<MonitorAgent>,
    ) -> Result<Alert, Error> {
        agent.state.alerts.acknowledge(&self.id).cloned()
    }
}

/// A check round finished (sent by the round's work).
struct RoundFinished {
    round: u64,
    results: Vec<(String, Result<Vec<Reading>, Error>)>,
}

impl Action<MonitorAgent> for RoundFinished {
    const NAME: &'static str = "round_finished";
    type Output = ();

    fn run(
        self,
        agent: &mut MonitorAgent,
        _ctx: &mut ActionContext<MonitorAgent>,
    ) -> Result<(), Error> {
        if agent.round_in_flight != Some(self.round) {
            return Ok(());
        }
        agent.round_in_flight = None;
        agent.apply_round(self.results);
        Ok(())
    }
}
