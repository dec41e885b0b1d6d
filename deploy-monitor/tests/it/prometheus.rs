//! The rendered Prometheus text parses with a real parser, and the names
//! follow the conventions.

use deploy_monitor::{PrometheusExport, metrics as names};

use crate::{TEST_PLAN, failing, fixture};

#[tokio::test(start_paused = true)]
async fn the_rendered_text_parses_and_follows_the_naming_conventions() {
    let fx = fixture(TEST_PLAN).await;
    fx.monitor
        .force_advance("alice", "start")
        .await
        .expect("advance");
    for _ in 0..3 {
        fx.interval(&failing()).await;
    }
    fx.monitor
        .emergency_rollback("carol", "drill")
        .await
        .expect("rollback");
    let export = PrometheusExport::new();
    metrics::with_local_recorder(export.recorder(), || {
        names::describe();
        fx.monitor.publish_metrics();
    });
    export.run_upkeep();
    let text = export.render();
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("the exposition parses");
    assert!(!scrape.samples.is_empty());
    for sample in &scrape.samples {
        assert!(
            sample.metric.starts_with("foundation_deploy_"),
            "{}",
            sample.metric
        );
        for label in sample.labels.keys().map(|key| key.as_str()) {
            assert!(
                ["cohort", "check", "outcome", "kind"].contains(&label),
                "label {label} on {}",
                sample.metric
            );
        }
    }
    let value = |metric: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|sample| {
                sample.metric == metric
                    && label.is_none_or(|(key, value)| sample.labels.get(key) == Some(value))
            })
            .map(|sample| match sample.value {
                prometheus_parse::Value::Counter(value)
                | prometheus_parse::Value::Gauge(value)
                | prometheus_parse::Value::Untyped(value) => value,
                _ => f64::NAN,
            })
    };
    assert_eq!(value(names::PHASE, None), Some(0.0));
    assert_eq!(
        value(names::ROLLBACKS_TOTAL, Some(("kind", "automatic"))),
        Some(1.0)
    );
    assert_eq!(
        value(names::ROLLBACKS_TOTAL, Some(("kind", "emergency"))),
        Some(1.0)
    );
    let error_rate = value(names::ERROR_RATE, Some(("cohort", "overall"))).expect("published");
    assert!((error_rate - 0.2).abs() < 1e-9, "{error_rate}");
    let error_rate_failed = scrape.samples.iter().find(|sample| {
        sample.metric == names::CHECK_OUTCOME
            && sample.labels.get("check") == Some("error_rate")
            && sample.labels.get("outcome") == Some("fail")
    });
    assert!(
        matches!(error_rate_failed.map(|sample| &sample.value), Some(prometheus_parse::Value::Gauge(value)) if *value == 1.0),
        "{error_rate_failed:?}"
    );
    assert!(value(names::LATENCY_P99, Some(("cohort", "overall"))).expect("published") > 0.0);
    // Counters end in _total; ratios and seconds carry their unit.
    assert!(
        text.contains("# TYPE foundation_deploy_rollbacks_total counter"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE foundation_deploy_evaluations_total counter"),
        "{text}"
    );
    assert!(!text.contains("_total_total"));
    for name in [
        names::ERROR_RATE,
        names::DELIVERY_SUCCESS,
        names::RECOVERY_SUCCESS,
    ] {
        assert!(name.ends_with("_ratio"));
    }
    for name in [names::LATENCY_P50, names::LATENCY_P95, names::LATENCY_P99] {
        assert!(name.ends_with("_seconds"));
    }
}
