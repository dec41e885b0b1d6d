//! Health checks: the [`HealthCheck`] contract and four implementations:
//! a supervisor's restart rate ([`RestartRateCheck`]), an error tracker's
//! rate ([`ErrorRateCheck`]), a store's commit latency
//! ([`StoreLatencyCheck`]), and this OS process's CPU and memory read from
//! `/proc` ([`ProcessCheck`]).
//!
//! Checks are run by the MonitorAgent's work under the task supervisor,
//! never in its mailbox. This module does not judge readings (see
//! `monitor::health`).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use foundation_core::SupervisorEvent;
use foundation_core::SupervisorEventKind;
use foundation_error::clock::SharedClock;
use foundation_error::{Error, ErrorCode, ErrorTracker};
use foundation_persist::{Record, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::TryRecvError;

use super::health::{Metric, Reading};

/// A boxed check future.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Reading>, Error>> + Send + 'a>>;

/// A health check of one component.
pub trait HealthCheck: Send + Sync + 'static {
    /// The component's name (unique within a monitor).
    fn component(&self) -> &str;

    /// Measures the component. The monitor bounds it with its check
    /// timeout; an error (or a panic, or the timeout) scores the component
    /// 0 for the round.
    ///
    /// # Cancel safety
    ///
    /// The monitor drops the future when the timeout passes; a check must
    /// leave nothing half-done when dropped (a probe write that was
    /// submitted may still complete).
    fn check(&self) -> CheckFuture<'_>;
}

/// Supervised restarts within a window, from a supervisor's events
/// ([`Metric::AgentFailures`]).
///
/// Restarts are counted when a check sees them (events are taken from the
/// supervisor's event bus at each check), so the window is accurate to
/// one check interval. Events lost to a lagging subscription count as
/// restarts, to err on the side of an alert.
pub struct RestartRateCheck {
    component: String,
    events: Mutex<broadcast::Receiver<SupervisorEvent>>,
    seen: Mutex<VecDeque<Duration>>,
    window: Duration,
    clock: SharedClock,
}

impl std::fmt::Debug for RestartRateCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestartRateCheck")
            .field("component", &self.component)
            .field("window", &self.window)
            .finish()
    }
}

impl RestartRateCheck {
    /// Counts the restarts announced on `events` (from
    /// `SupervisorRef::subscribe`) within `window`.
    pub fn new(
        component: impl Into<String>,
        events: broadcast::Receiver<SupervisorEvent>,
        window: Duration,
        clock: SharedClock,
    ) -> RestartRateCheck {
        RestartRateCheck {
            component: component.into(),
            events: Mutex::new(events),
            seen: Mutex::new(VecDeque::new()),
            window,
            clock,
        }
    }

    fn count(&self) -> usize {
        let now = self.clock.elapsed();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match events.try_recv() {
                Ok(event) => {
                    if matches!(event.kind, SupervisorEventKind::ChildRestarted { .. }) {
                        seen.push_back(now);
                    }
                }
                Err(TryRecvError::Lagged(lost)) => {
                    for _ in 0..lost.min(10_000) {
                        seen.push_back(now);
                    }
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        while seen
            .front()
            .is_some_and(|at| now.saturating_sub(*at) >= self.window)
        {
            seen.pop_front();
        }
        seen.len()
    }
}

impl HealthCheck for RestartRateCheck {
    fn component(&self) -> &str {
        &self.component
    }

    fn check(&self) -> CheckFuture<'_> {
        let count = self.count();
        Box::pin(async move { Ok(vec![Reading::new(Metric::AgentFailures, count as f64)]) })
    }
}

/// Errors per minute over the last `window`, from an [`ErrorTracker`]
/// ([`Metric::ErrorRate`]).
#[derive(Debug)]
pub struct ErrorRateCheck {
    component: String,
    tracker: ErrorTracker,
    window: Duration,
}

impl ErrorRateCheck {
    /// Reads `tracker` over `window` (at least one second).
    pub fn new(
        component: impl Into<String>,
        tracker: ErrorTracker,
        window: Duration,
    ) -> ErrorRateCheck {
        ErrorRateCheck {
            component: component.into(),
            tracker,
            window: window.max(Duration::from_secs(1)),
        }
    }
}

impl HealthCheck for ErrorRateCheck {
    fn component(&self) -> &str {
        &self.component
    }

    fn check(&self) -> CheckFuture<'_> {
        let errors = self.tracker.recent_total(self.window) as f64;
        let per_minute = errors * 60.0 / self.window.as_secs_f64();
        Box::pin(async move { Ok(vec![Reading::new(Metric::ErrorRate, per_minute)]) })
    }
}

/// The value the store probe writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoreProbe {
    at_ms: u64,
}

impl Record for StoreProbe {
    const TYPE_TAG: &'static str = "jido_monitor_store_probe";
    const SCHEMA_VERSION: u32 = 1;
}

/// A store's commit latency: the time of one durable write to the store's
/// metadata (`jido.monitor.probe.COMPONENT`), in milliseconds
/// ([`Metric::ResponseTime`]).
#[derive(Debug)]
pub struct StoreLatencyCheck {
    component: String,
    key: String,
    store: Store,
    clock: SharedClock,
}

impl StoreLatencyCheck {
    /// Probes `store`.
    pub fn new(
        component: impl Into<String>,
        store: &Store,
        clock: SharedClock,
    ) -> StoreLatencyCheck {
        let component = component.into();
        StoreLatencyCheck {
            key: format!("jido.monitor.probe.{component}"),
            component,
            store: store.clone(),
            clock,
        }
    }
}

impl HealthCheck for StoreLatencyCheck {
    fn component(&self) -> &str {
        &self.component
    }

    fn check(&self) -> CheckFuture<'_> {
        Box::pin(async move {
            let at_ms = self
                .clock
                .wall()
                .duration_since(UNIX_EPOCH)
                .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0);
            let started = self.clock.elapsed();
            self.store
                .metadata()
                .put(&self.key, &StoreProbe { at_ms })
                .await?;
            let took = self.clock.elapsed().saturating_sub(started);
            Ok(vec![Reading::new(
                Metric::ResponseTime,
                took.as_secs_f64() * 1_000.0,
            )])
        })
    }
}

/// CPU and memory of this OS process, read from `/proc` (Linux):
/// [`Metric::Cpu`] as a percent of all cores since the previous check
/// (absent at the first check), [`Metric::Memory`] as resident memory in
/// percent of the machine's.
pub struct ProcessCheck {
    component: String,
    clock: SharedClock,
    ticks_per_second: f64,
    cores: f64,
    previous: Mutex<Option<(Duration, u64)>>,
}

impl std::fmt::Debug for ProcessCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessCheck")
            .field("component", &self.component)
            .field("ticks_per_second", &self.ticks_per_second)
            .field("cores", &self.cores)
            .finish()
    }
}

/// One reading of this OS process from `/proc`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessSample {
    /// CPU time used (user and system), in clock ticks.
    pub cpu_ticks: u64,
    /// Resident memory, in bytes.
    pub resident_bytes: u64,
    /// The machine's memory, in bytes.
    pub total_bytes: u64,
}

impl ProcessCheck {
    /// Measures this OS process; time between checks through `clock`.
    pub fn new(component: impl Into<String>, clock: SharedClock) -> ProcessCheck {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        ProcessCheck {
            component: component.into(),
            clock,
            ticks_per_second: clock_ticks_per_second() as f64,
            cores: cores as f64,
            previous: Mutex::new(None),
        }
    }

    /// Reads `/proc/self/stat`, `/proc/self/status` and `/proc/meminfo`.
    ///
    /// # Errors
    ///
    /// `service_unavailable` where `/proc` is missing (not Linux);
    /// `format_error` for contents that do not parse.
    pub fn sample() -> Result<ProcessSample, Error> {
        let stat = read_proc("/proc/self/stat")?;
        // Fields after the command name (which may hold spaces), from
        // field 3 (state); utime and stime are fields 14 and 15.
        let after_name = stat
            .rfind(')')
            .map(|end| &stat[end + 1..])
            .ok_or_else(|| unparsable("/proc/self/stat"))?;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = |index: usize| -> Result<u64, Error> {
            fields
                .get(index)
                .and_then(|field| field.parse::<u64>().ok())
                .ok_or_else(|| unparsable("/proc/self/stat"))
        };
        let cpu_ticks = ticks(11)? + ticks(12)?;
        let resident_kib = kib_field(&read_proc("/proc/self/status")?, "VmRSS:")
            .ok_or_else(|| unparsable("/proc/self/status"))?;
        let total_kib = kib_field(&read_proc("/proc/meminfo")?, "MemTotal:")
            .ok_or_else(|| unparsable("/proc/meminfo"))?;
        Ok(ProcessSample {
            cpu_ticks,
            resident_bytes: resident_kib * 1024,
            total_bytes: total_kib * 1024,
        })
    }

    fn readings(&self) -> Result<Vec<Reading>, Error> {
        let sample = ProcessCheck::sample()?;
        let now = self.clock.elapsed();
        let mut readings = Vec::with_capacity(2);
        let mut previous = self.previous.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((then, ticks)) = *previous {
            let seconds = now.saturating_sub(then).as_secs_f64();
            if seconds > 0.0 {
                let used = sample.cpu_ticks.saturating_sub(ticks) as f64 / self.ticks_per_second;
                readings.push(Reading::new(
                    Metric::Cpu,
                    used / seconds / self.cores * 100.0,
                ));
            }
        }
        *previous = Some((now, sample.cpu_ticks));
        if sample.total_bytes > 0 {
            readings.push(Reading::new(
                Metric::Memory,
                sample.resident_bytes as f64 / sample.total_bytes as f64 * 100.0,
            ));
        }
        Ok(readings)
    }
}

impl HealthCheck for ProcessCheck {
    fn component(&self) -> &str {
        &self.component
    }

    fn check(&self) -> CheckFuture<'_> {
        let readings = self.readings();
        Box::pin(async move { readings })
    }
}

fn read_proc(path: &str) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|error| {
        Error::new(
            ErrorCode::SERVICE_UNAVAILABLE,
            format!("{path} cannot be read (process metrics need Linux's /proc)"),
        )
        .with_cause(error)
    })
}

fn unparsable(path: &str) -> Error {
    Error::new(
        ErrorCode::FORMAT_ERROR,
        format!("{path} has an unexpected format"),
    )
}

/// The number of a `Name:   123 kB` line.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
}

/// The kernel's clock ticks per second (`AT_CLKTCK` from the auxiliary
/// vector); 100, the Linux default, when it cannot be read.
fn clock_ticks_per_second() -> u64 {
    const AT_CLKTCK: u64 = 17;
    const WORD: usize = std::mem::size_of::<u64>();
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else {
        return 100;
    };
    auxv.chunks_exact(2 * WORD)
        .find_map(|pair| {
            let key = u64::from_ne_bytes(pair[..WORD].try_into().ok()?);
            let value = u64::from_ne_bytes(pair[WORD..].try_into().ok()?);
            (key == AT_CLKTCK && value > 0).then_some(value)
        })
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_parse() {
        assert_eq!(
            kib_field("Name: x\nVmRSS:\t  2048 kB\n", "VmRSS:"),
            Some(2048)
        );
        assert_eq!(kib_field("MemTotal: 16 kB", "MemTotal:"), Some(16));
        assert_eq!(kib_field("nothing", "VmRSS:"), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn this_process_has_memory_and_a_clock_rate() {
        let sample = ProcessCheck::sample().unwrap();
        assert!(sample.resident_bytes > 0);
        assert!(sample.total_bytes >= sample.resident_bytes);
        assert!(clock_ticks_per_second() >= 1);
    }
}
