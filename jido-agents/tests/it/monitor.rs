//! The MonitorAgent: scores and bands, alert de-duplication under paused
//! time, acknowledgement, the persisted ring, and the real checks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use foundation_core::{TaskSupervisor, testkit};
use foundation_error::clock::{SharedClock, TokioClock};
use foundation_error::{Error, ErrorCode, ErrorTracker};
use jido_agents::monitor::{
    AcknowledgeAlert, AlertSeverity, CheckFuture, ErrorRateCheck, HealthBand, HealthCheck,
    HealthQuery, ListAlerts, Metric, MonitorAgent, MonitorArgs, ProcessCheck, Reading,
    RestartRateCheck, StoreLatencyCheck, Thresholds, component_score, overall_score,
};
use jido_agents::{AgentRef, AgentSpec};

use crate::support::{WAIT, memory_store, supervise};

/// A check reporting whatever the test sets; `None` fails the check.
struct Dial {
    component: &'static str,
    metric: Metric,
    value: Arc<Mutex<Option<f64>>>,
}

impl Dial {
    fn new(
        component: &'static str,
        metric: Metric,
        value: f64,
    ) -> (Arc<Dial>, Arc<Mutex<Option<f64>>>) {
        let cell = Arc::new(Mutex::new(Some(value)));
        (
            Arc::new(Dial {
                component,
                metric,
                value: Arc::clone(&cell),
            }),
            cell,
        )
    }
}

impl HealthCheck for Dial {
    fn component(&self) -> &str {
        self.component
    }

    fn check(&self) -> CheckFuture<'_> {
        let value = *self.value.lock().unwrap();
        let metric = self.metric;
        Box::pin(async move {
            value
                .map(|value| vec![Reading::new(metric, value)])
                .ok_or_else(|| Error::new(ErrorCode::SERVICE_UNAVAILABLE, "the dial is off"))
        })
    }
}

#[test]
fn scores_map_to_the_original_bands() {
    let thresholds = Thresholds::default();
    let score = |metric, value| component_score(&[Reading::new(metric, value)], &thresholds);
    assert_eq!(
        HealthBand::of(score(Metric::Cpu, 40.0)),
        HealthBand::Excellent
    );
    assert_eq!(
        HealthBand::of(score(Metric::Cpu, 48.0)),
        HealthBand::Excellent
    ); // 90
    assert_eq!(HealthBand::of(score(Metric::Cpu, 52.0)), HealthBand::Good); // 85
    assert_eq!(
        HealthBand::of(score(Metric::Memory, 85.0)),
        HealthBand::Fair
    ); // 50
    assert_eq!(
        HealthBand::of(score(Metric::ErrorRate, 7.5)),
        HealthBand::Poor
    ); // 25
    assert_eq!(
        HealthBand::of(score(Metric::ResponseTime, 1_600.0)),
        HealthBand::Critical
    );
    assert_eq!(HealthBand::of(89.99), HealthBand::Good);
    assert_eq!(HealthBand::of(75.0), HealthBand::Good);
    assert_eq!(HealthBand::of(24.99), HealthBand::Critical);
    assert_eq!(overall_score(&[100.0, 50.0, 0.0]), 50.0);
    assert_eq!(overall_score(&[]), 100.0);
    let mut custom = Thresholds::new();
    custom.set(Metric::Cpu, 50.0).unwrap();
    assert_eq!(custom.get(Metric::Cpu), 50.0);
    assert_eq!(
        custom.set(Metric::Cpu, -1.0).unwrap_err().code(),
        ErrorCode::INVALID_CONFIG_VALUE
    );
}

async fn rounds(agent: &AgentRef<MonitorAgent>, count: u64) {
    testkit::wait_for_state(
        agent.actor(),
        move |server| server.agent().state().rounds >= count,
        WAIT,
    )
    .await
    .unwrap();
}

fn monitor_spec(
    args: MonitorArgs,
    tasks: &TaskSupervisor,
    store: &foundation_persist::Store,
) -> AgentSpec<MonitorAgent> {
    let mut spec = AgentSpec::<MonitorAgent>::new("monitor-1", args, tasks);
    spec.persistent(store);
    spec
}

#[tokio::test(start_paused = true)]
async fn one_alert_per_breach_on_the_interval_and_acknowledged_by_id() {
    let store = memory_store();
    let tasks = TaskSupervisor::new("work");
    let (cpu, cpu_value) = Dial::new("node", Metric::Cpu, 20.0);
    let (db, db_value) = Dial::new("db", Metric::ResponseTime, 100.0);
    let mut args = MonitorArgs::new();
    args.check(cpu).check(db).interval(Duration::from_secs(10));
    let spec = monitor_spec(args, &tasks, &store);
    let (tree, agent) = supervise(spec.child_spec().unwrap()).await;

    tokio::time::advance(Duration::from_secs(10)).await;
    rounds(&agent, 1).await;
    let report = agent.run(HealthQuery {}).await.unwrap();
    assert_eq!((report.score, report.band), (100.0, HealthBand::Excellent));
    assert!(report.active_alerts.is_empty());

    // The cpu breaches for three rounds: one alert.
    *cpu_value.lock().unwrap() = Some(90.0);
    for round in 2..=4 {
        tokio::time::advance(Duration::from_secs(10)).await;
        rounds(&agent, round).await;
    }
    let alerts = agent.run(ListAlerts::default()).await.unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = &alerts[0];
    assert_eq!(
        (alert.kind.as_str(), alert.component.as_str()),
        ("cpu", "node")
    );
    assert_eq!((alert.value, alert.threshold), (90.0, 80.0));
    assert_eq!(alert.severity, AlertSeverity::Warning);
    assert!(!alert.acknowledged);
    let report = agent.run(HealthQuery {}).await.unwrap();
    assert_eq!(report.score, (43.75 + 100.0) / 2.0);
    assert_eq!(report.band, HealthBand::Fair);

    let acknowledged = agent
        .run(AcknowledgeAlert {
            id: alert.id.clone(),
        })
        .await
        .unwrap();
    assert!(acknowledged.acknowledged);
    let unknown = agent
        .run(AcknowledgeAlert {
            id: "alert-99".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), ErrorCode::DATA_NOT_FOUND);

    // The breach ends, then a new one begins: a second alert. A failing
    // check scores 0.
    *cpu_value.lock().unwrap() = Some(10.0);
    tokio::time::advance(Duration::from_secs(10)).await;
    rounds(&agent, 5).await;
    *cpu_value.lock().unwrap() = Some(130.0);
    *db_value.lock().unwrap() = None;
    tokio::time::advance(Duration::from_secs(10)).await;
    rounds(&agent, 6).await;
    let all = agent
        .run(ListAlerts {
            include_resolved: true,
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert!(all[0].resolved_at_ms.is_some() && all[0].acknowledged);
    assert_eq!(all[1].severity, AlertSeverity::Critical);
    let report = agent.run(HealthQuery {}).await.unwrap();
    assert_eq!(report.band, HealthBand::Critical);
    assert!(report.components["db"].last_error.is_some());

    // Restarted, the history, components and alerts are back.
    testkit::crash_and_wait_restart(agent.actor(), WAIT)
        .await
        .unwrap();
    let restored = agent.run(HealthQuery {}).await.unwrap();
    assert_eq!(restored.rounds, 6);
    assert_eq!(restored.active_alerts.len(), 1);
    assert!(
        agent
            .run(ListAlerts {
                include_resolved: true
            })
            .await
            .unwrap()[0]
            .acknowledged
    );
    tree.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_history_is_a_ring_trimmed_before_saving() {
    let store = memory_store();
    let tasks = TaskSupervisor::new("work");
    let (cpu, _) = Dial::new("node", Metric::Cpu, 20.0);
    let mut args = MonitorArgs::new();
    args.check(cpu).interval(Duration::from_secs(1)).history(5);
    let (tree, agent) = supervise(monitor_spec(args, &tasks, &store).child_spec().unwrap()).await;
    for round in 1..=8 {
        tokio::time::advance(Duration::from_secs(1)).await;
        rounds(&agent, round).await;
    }
    let stored = store
        .state::<jido_agents::monitor::MonitorState>("agents.monitor_agent")
        .unwrap()
        .get("monitor-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.history.len(), 5);
    assert_eq!(stored.rounds, 8);
    tree.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_error_restart_and_store_checks_read_their_sources() {
    let clock: SharedClock = Arc::new(TokioClock::new());
    let tracker = ErrorTracker::new();
    for _ in 0..12 {
        tracker.track(&Error::timeout("slow"));
    }
    let errors = ErrorRateCheck::new("errors", tracker, Duration::from_secs(60));
    let readings = errors.check().await.unwrap();
    assert_eq!(readings, [Reading::new(Metric::ErrorRate, 12.0)]);

    let store = memory_store();
    let latency = StoreLatencyCheck::new("store", &store, Arc::clone(&clock));
    let readings = latency.check().await.unwrap();
    assert_eq!(readings[0].metric, Metric::ResponseTime);
    assert!(readings[0].value >= 0.0);

    // Restarts of a supervised child, counted within the window.
    let bus = foundation_core::EventBus::new();
    let restarts = RestartRateCheck::new(
        "agents",
        bus.subscribe(),
        Duration::from_secs(60),
        Arc::clone(&clock),
    );
    let tasks = TaskSupervisor::new("work");
    let spec = crate::support::counter_spec(None, &tasks, crate::support::CounterArgs::new());
    let mut tree = foundation_core::Supervisor::builder("watched");
    tree.events(&bus).intensity(10, Duration::from_secs(1));
    let child = spec.child_spec().unwrap();
    let handle = child.handle();
    tree.child(child);
    let tree = tree.start().await.unwrap();
    for _ in 0..4 {
        testkit::crash_and_wait_restart(&handle, WAIT)
            .await
            .unwrap();
    }
    assert_eq!(
        restarts.check().await.unwrap(),
        [Reading::new(Metric::AgentFailures, 4.0)]
    );
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(
        restarts.check().await.unwrap(),
        [Reading::new(Metric::AgentFailures, 0.0)]
    );
    tree.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg(target_os = "linux")]
async fn the_process_check_reads_this_process_from_proc() {
    let clock: SharedClock = Arc::new(TokioClock::new());
    let process = ProcessCheck::new("self", clock);
    let first = process.check().await.unwrap();
    assert_eq!(first.len(), 1, "no cpu reading before a second sample");
    assert_eq!(first[0].metric, Metric::Memory);
    assert!(first[0].value > 0.0 && first[0].value < 100.0);
    // Burn some CPU, then read again.
    let mut spin = 0u64;
    for step in 0..20_000_000u64 {
        spin = spin.wrapping_add(std::hint::black_box(step));
    }
    std::hint::black_box(spin);
    let second = process.check().await.unwrap();
    let cpu = second
        .iter()
        .find(|reading| reading.metric == Metric::Cpu)
        .unwrap();
    assert!(cpu.value >= 0.0 && cpu.value <= 100.0 * 1.01, "{cpu:?}");
}
