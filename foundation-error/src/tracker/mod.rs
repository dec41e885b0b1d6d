//! The error tracker: counts errors by code and category in sliding windows
//! and raises alerts when a code fails too often.
//!
//! [`ErrorTracker::track`] never blocks and never awaits: it is a handful of
//! atomic operations (a snapshot load, two compare-and-swaps, a ring write
//! per alert rule and a metrics counter increment). Alerts go to subscribers
//! through a broadcast channel, which never waits either: a subscriber that
//! falls more than 64 alerts behind loses the oldest.
//!
//! Counts have one-second resolution. Time is read through the tracker's
//! [`Clock`](crate::clock::Clock) (by default the system's [`TokioClock`],
//! so the tracker follows paused time in tests; a [`ManualClock`] set with
//! [`ErrorTrackerBuilder::clock`] drives it by hand).
//!
//! [`TokioClock`]: crate::clock::TokioClock
//! [`ManualClock`]: crate::clock::ManualClock

mod rule;
mod window;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::broadcast;

use crate::clock::{self, Clock, SharedClock};
use crate::code::{Category, ErrorCode, Severity};
use crate::error::Error;

use rule::RuleState;
pub use rule::{AlertRule, ErrorAlert, MAX_ALERT_THRESHOLD};
use window::SecondWindow;

/// How many alerts a slow subscriber may fall behind before losing some.
const ALERT_CHANNEL_CAPACITY: usize = 64;

/// The shortest history the tracker keeps, whatever its rules.
const MIN_RETENTION: Duration = Duration::from_secs(15 * 60);

/// Counts errors and raises alerts. Cheap to clone; clones share state.
///
/// ```
/// use std::time::Duration;
/// use foundation_error::{Error, ErrorCode, ErrorTracker};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let tracker = ErrorTracker::new();
/// let mut alerts = tracker.subscribe();
/// for _ in 0..10 {
///     tracker.track(&Error::timeout("database timeout"));
/// }
/// let alert = alerts.try_recv().unwrap();
/// assert_eq!(alert.code, ErrorCode::TIMEOUT);
/// assert!(alert.count >= 10);
/// assert_eq!(tracker.recent_count(ErrorCode::TIMEOUT, Duration::from_secs(60)), 10);
/// # }
/// ```
#[derive(Clone)]
pub struct ErrorTracker {
    shared: Arc<Shared>,
}

struct Shared {
    clock: SharedClock,
    /// The clock's reading when the tracker was built, in nanoseconds.
    epoch: u64,
    retention_seconds: usize,
    rules: Vec<AlertRule>,
    /// Sorted by code number; replaced wholesale (rarely) when a code is
    /// seen for the first time.
    codes: ArcSwap<Vec<Arc<CodeStats>>>,
    /// Serialises the insertion of new codes.
    insert: Mutex<()>,
    categories: [SecondWindow; 4],
    alerts: broadcast::Sender<ErrorAlert>,
}

struct CodeStats {
    code: ErrorCode,
    window: SecondWindow,
    total: AtomicU64,
    rules: Vec<(usize, RuleState)>,
    /// One counter handle per severity, registered when first used.
    counters: [OnceLock<metrics::Counter>; 4],
}

/// Builds an [`ErrorTracker`].
#[derive(Debug, Clone)]
pub struct ErrorTrackerBuilder {
    rules: Vec<AlertRule>,
    retention: Duration,
    clock: Option<SharedClock>,
}

impl Default for ErrorTrackerBuilder {
    fn default() -> Self {
        ErrorTrackerBuilder {
            rules: vec![AlertRule::default()],
            retention: MIN_RETENTION,
            clock: None,
        }
    }
}

impl ErrorTrackerBuilder {
    /// Removes every alert rule, the default one included.
    pub fn clear_rules(&mut self) -> &mut Self {
        self.rules.clear();
        self
    }

    /// Adds an alert rule.
    pub fn rule(&mut self, rule: AlertRule) -> &mut Self {
        self.rules.push(rule);
        self
    }

    /// Sets how far back [`ErrorTracker::recent_count`] can look (at least
    /// 15 minutes, and at least the longest rule window).
    pub fn retention(&mut self, retention: Duration) -> &mut Self {
        self.retention = retention;
        self
    }

    /// Sets the clock windows are measured on (default: [`clock::system`],
    /// which follows paused tokio time).
    pub fn clock(&mut self, clock: impl Clock) -> &mut Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Builds the tracker; fails on a rule with a zero threshold or window.
    pub fn build(&self) -> Result<ErrorTracker, Error> {
        for rule in &self.rules {
            rule.validate()?;
        }
        let longest_rule = self
            .rules
            .iter()
            .map(AlertRule::window)
            .max()
            .unwrap_or_default();
        let retention = self.retention.max(MIN_RETENTION).max(longest_rule);
        // One extra slot covers the partial oldest second.
        let retention_seconds = usize::try_from(retention.as_secs()).unwrap_or(usize::MAX / 2) + 1;
        metrics::describe_counter!(
            crate::metrics::ERRORS_TOTAL,
            "Errors tracked, by code, category and severity."
        );
        let (alerts, _) = broadcast::channel(ALERT_CHANNEL_CAPACITY);
        let clock = self.clock.clone().unwrap_or_else(clock::system);
        let epoch = clock.elapsed_nanos();
        Ok(ErrorTracker {
            shared: Arc::new(Shared {
                clock,
                epoch,
                retention_seconds,
                rules: self.rules.clone(),
                codes: ArcSwap::from_pointee(Vec::new()),
                insert: Mutex::new(()),
                categories: std::array::from_fn(|_| SecondWindow::new(retention_seconds)),
                alerts,
            }),
        })
    }
}

impl Default for ErrorTracker {
    fn default() -> Self {
        ErrorTracker::new()
    }
}

impl ErrorTracker {
    /// A tracker with the default rule: 10 errors of one code within 5
    /// minutes raise an alert.
    pub fn new() -> ErrorTracker {
        ErrorTracker::builder()
            .build()
            .expect("the default rule is valid")
    }

    /// A builder, starting from the default rule.
    pub fn builder() -> ErrorTrackerBuilder {
        ErrorTrackerBuilder::default()
    }

    /// Records an error. Never blocks or waits.
    pub fn track(&self, error: &Error) {
        let now = self.now_nanos();
        let second = now / 1_000_000_000;
        let code = error.code();
        let stats = self.stats_for(code);
        stats.window.record(second);
        stats.total.fetch_add(1, Ordering::Relaxed);
        self.shared.categories[error.category().index()].record(second);
        stats.counter(error.severity()).increment(1);
        for (rule_index, state) in &stats.rules {
            let rule = &self.shared.rules[*rule_index];
            if state.observe(now, rule) {
                let window_seconds = rule.window().as_secs() + 1;
                let alert = ErrorAlert {
                    code,
                    count: stats.window.count(second, window_seconds),
                    threshold: rule.threshold(),
                    window: rule.window(),
                };
                // No subscriber is not an error: the alert is simply unseen.
                let _unseen = self.shared.alerts.send(alert);
            }
        }
    }

    /// Subscribes to alerts raised from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ErrorAlert> {
        self.shared.alerts.subscribe()
    }

    /// Errors of `code` within the last `window` (one-second resolution,
    /// the current second included; clamped to the retention).
    pub fn recent_count(&self, code: ErrorCode, window: Duration) -> u64 {
        let second = self.now_second();
        self.find(code)
            .map(|stats| stats.window.count(second, window_seconds(window)))
            .unwrap_or(0)
    }

    /// Errors of `category` within the last `window`.
    pub fn recent_count_by_category(&self, category: Category, window: Duration) -> u64 {
        self.shared.categories[category.index()].count(self.now_second(), window_seconds(window))
    }

    /// All errors within the last `window`.
    pub fn recent_total(&self, window: Duration) -> u64 {
        let second = self.now_second();
        self.shared
            .categories
            .iter()
            .map(|counts| counts.count(second, window_seconds(window)))
            .sum()
    }

    /// Errors of `code` since the tracker was created.
    pub fn total_count(&self, code: ErrorCode) -> u64 {
        self.find(code)
            .map(|stats| stats.total.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Every code seen so far with its total count, by code number.
    pub fn totals(&self) -> Vec<(ErrorCode, u64)> {
        self.shared
            .codes
            .load()
            .iter()
            .map(|stats| (stats.code, stats.total.load(Ordering::Relaxed)))
            .collect()
    }

    /// How far back counts reach.
    pub fn retention(&self) -> Duration {
        Duration::from_secs(
            self.shared.categories[0]
                .capacity_seconds()
                .saturating_sub(1),
        )
    }

    fn now_nanos(&self) -> u64 {
        self.shared
            .clock
            .elapsed_nanos()
            .saturating_sub(self.shared.epoch)
    }

    fn now_second(&self) -> u64 {
        self.now_nanos() / 1_000_000_000
    }

    fn find(&self, code: ErrorCode) -> Option<Arc<CodeStats>> {
        let codes = self.shared.codes.load();
        codes
            .binary_search_by_key(&code.number(), |stats| stats.code.number())
            .ok()
            .map(|index| Arc::clone(&codes[index]))
    }

    fn stats_for(&self, code: ErrorCode) -> Arc<CodeStats> {
        if let Some(stats) = self.find(code) {
            return stats;
        }
        let _guard = self
            .shared
            .insert
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Another thread may have inserted it while we waited.
        if let Some(stats) = self.find(code) {
            return stats;
        }
        let stats = Arc::new(self.new_stats(code));
        let mut codes = Vec::clone(&self.shared.codes.load());
        let position = codes.partition_point(|existing| existing.code.number() < code.number());
        codes.insert(position, Arc::clone(&stats));
        self.shared.codes.store(Arc::new(codes));
        stats
    }

    fn new_stats(&self, code: ErrorCode) -> CodeStats {
        let rules = self
            .shared
            .rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| rule.applies_to(code))
            .map(|(index, rule)| (index, RuleState::new(rule)))
            .collect();
        CodeStats {
            code,
            window: SecondWindow::new(self.shared.retention_seconds),
            total: AtomicU64::new(0),
            rules,
            counters: Default::default(),
        }
    }
}

impl CodeStats {
    fn counter(&self, severity: Severity) -> &metrics::Counter {
        let index = match severity {
            Severity::Low => 0,
            Severity::Medium => 1,
            Severity::High => 2,
            Severity::Critical => 3,
        };
        self.counters[index].get_or_init(|| {
            metrics::counter!(
                crate::metrics::ERRORS_TOTAL,
                "code" => self.code.name(),
                "category" => self.code.category().as_str(),
                "severity" => severity.as_str(),
            )
        })
    }
}

impl std::fmt::Debug for ErrorTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErrorTracker")
            .field("rules", &self.shared.rules)
            .field("retention", &self.retention())
            .field("codes_seen", &self.shared.codes.load().len())
            .finish()
    }
}

fn window_seconds(window: Duration) -> u64 {
    window.as_secs() + u64::from(window.subsec_nanos() > 0)
}
