//! Plans from TOML: the default plan, and pointed errors for bad ones.

use std::time::Duration;

use deploy_monitor::{Check, DeployMonitor, RolloutPlan};
use foundation_error::ErrorCode;
use foundation_flags::{Flag, FlagValue, Flags};
use foundation_persist::{Store, StoreOptions};

#[test]
fn the_default_plan_has_the_five_phases_and_six_flags_of_stage_05() {
    let plan = RolloutPlan::default_plan();
    let names: Vec<&str> = plan
        .phases()
        .iter()
        .map(|phase| phase.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "Phase 1: Development",
            "Phase 2: Staging - Basic",
            "Phase 3: Staging - State Persistence",
            "Phase 4: Production Canary",
            "Phase 5: Production Rollout",
        ]
    );
    let mut flags = plan.flags().to_vec();
    flags.sort();
    assert_eq!(
        flags,
        [
            "enforce_supervised_tasks",
            "use_new_error_handling",
            "use_persistent_agents",
            "use_reliable_messaging",
            "use_sync_test_apis",
            "use_v2_coordinator",
        ]
    );
    let value = |phase: usize, flag: &str| {
        plan.values(phase)
            .into_iter()
            .find(|(name, _)| name == flag)
            .map(|(_, value)| value)
    };
    assert_eq!(value(1, "use_reliable_messaging"), Some(FlagValue::Off));
    assert_eq!(value(2, "use_reliable_messaging"), Some(FlagValue::On));
    assert_eq!(value(3, "use_persistent_agents"), Some(FlagValue::On));
    assert_eq!(
        value(4, "use_v2_coordinator"),
        Some(FlagValue::percentage(10).expect("valid"))
    );
    assert_eq!(
        value(5, "use_v2_coordinator"),
        Some(FlagValue::percentage(100).expect("valid"))
    );
    assert_eq!(value(0, "use_sync_test_apis"), Some(FlagValue::Off));
    assert_eq!(
        plan.phases()[1].min_duration,
        Duration::from_secs(3 * 86_400)
    );
    assert_eq!(plan.analysis().failure_limit, 3);
    assert_eq!(plan.thresholds(4).max_restarts_per_minute, 10.0);
}

fn rejected(text: &str) -> foundation_error::Error {
    RolloutPlan::from_toml(text).expect_err("the plan is malformed")
}

#[test]
fn a_malformed_plan_is_rejected_naming_the_phase_and_the_key() {
    let ok_phase = "[[phase]]\nname = \"one\"\nminDuration = \"1h\"\nflags = { a = \"on\" }\n";
    let cases: &[(String, ErrorCode, &[&str])] = &[
        (
            format!("{ok_phase}[[phase]]\nname = \"two\"\nminDuration = \"soon\"\n"),
            ErrorCode::INVALID_CONFIG_VALUE,
            &["phase 2 (\"two\")", "`minDuration`", "\"soon\""],
        ),
        (
            format!(
                "{ok_phase}[[phase]]\nname = \"two\"\nminDuration = \"1h\"\nflags = {{ a = 101 }}\n"
            ),
            ErrorCode::INVALID_CONFIG_VALUE,
            &["phase 2 (\"two\"), [flags]", "`a`"],
        ),
        (
            format!(
                "{ok_phase}[[phase]]\nname = \"two\"\nminDuration = \"1h\"\nflags = {{ a = \"maybe\" }}\n"
            ),
            ErrorCode::INVALID_CONFIG_VALUE,
            &["phase 2 (\"two\"), [flags]", "`a`"],
        ),
        (
            format!("{ok_phase}[[phase]]\nname = \"two\"\nmin_duration = \"1h\"\n"),
            ErrorCode::INVALID_CONFIG_STRUCTURE,
            &["phase 2 (\"two\")", "`min_duration`", "unknown key"],
        ),
        (
            format!("{ok_phase}[[phase]]\nname = \"two\"\n"),
            ErrorCode::MISSING_REQUIRED_FIELD,
            &["phase 2 (\"two\")", "`minDuration`"],
        ),
        (
            format!("{ok_phase}[[phase]]\nminDuration = \"1h\"\n"),
            ErrorCode::MISSING_REQUIRED_FIELD,
            &["phase 2", "`name`"],
        ),
        (
            format!(
                "{ok_phase}[[phase]]\nname = \"two\"\nminDuration = \"1h\"\nthresholds = {{ maxErrorRate = 5 }}\n"
            ),
            ErrorCode::INVALID_CONFIG_VALUE,
            &["phase 2 (\"two\"), [thresholds]", "`maxErrorRate`"],
        ),
        (
            format!(
                "{ok_phase}[[phase]]\nname = \"two\"\nminDuration = \"1h\"\nthresholds = {{ required = [\"vibes\"] }}\n"
            ),
            ErrorCode::INVALID_CONFIG_VALUE,
            &["phase 2 (\"two\"), [thresholds]", "`required`", "vibes"],
        ),
        (
            format!("[analysis]\nfailureLimit = 0\n{ok_phase}"),
            ErrorCode::INVALID_CONFIG_VALUE,
            &["[analysis]", "`failureLimit`"],
        ),
        (
            format!("[analysis]\ndryRun = \"yes\"\n{ok_phase}"),
            ErrorCode::INVALID_CONFIG_STRUCTURE,
            &["[analysis]", "`dryRun`", "true or false"],
        ),
        (
            "[analysis]\ninterval = \"1m\"\n".to_owned(),
            ErrorCode::MISSING_REQUIRED_FIELD,
            &["`phase`"],
        ),
        (
            "[[phase]\nname = ".to_owned(),
            ErrorCode::FORMAT_ERROR,
            &["not valid TOML"],
        ),
    ];
    for (text, code, fragments) in cases {
        let error = rejected(text);
        assert_eq!(error.code(), *code, "{text}\n{error}");
        for fragment in *fragments {
            assert!(
                error.message().contains(fragment),
                "{fragment:?} missing from {:?}",
                error.message()
            );
        }
    }
}

#[test]
fn phase_thresholds_override_the_plans() {
    let plan = RolloutPlan::from_toml(
        "[thresholds]\nmaxErrorRate = 0.03\nrequired = [\"error_rate\", \"latency_p99\"]\n\
         [[phase]]\nname = \"one\"\nminDuration = \"1h\"\nflags = { a = true }\nthresholds = { maxErrorRate = 0.01, baselineP99 = \"50ms\" }\n\
         [[phase]]\nname = \"two\"\nminDuration = \"1h\"\nflags = { a = \"on\", b = \"25%\" }\n",
    )
    .expect("valid");
    assert_eq!(plan.thresholds(1).max_error_rate, 0.01);
    assert_eq!(
        plan.thresholds(1).baseline_p99,
        Some(Duration::from_millis(50))
    );
    assert_eq!(plan.thresholds(2).max_error_rate, 0.03);
    assert_eq!(
        plan.thresholds(2).required,
        [Check::ErrorRate, Check::LatencyP99]
    );
    assert_eq!(
        plan.values(1),
        [
            ("a".to_owned(), FlagValue::On),
            ("b".to_owned(), FlagValue::Off)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_plan_naming_an_undeclared_flag_is_refused_at_open() {
    let mut builder = Flags::builder();
    builder.declare(Flag::new(
        "use_sync_test_apis",
        "one of six",
        FlagValue::Off,
    ));
    let flags = builder.open().await.expect("flags");
    let error = DeployMonitor::builder()
        .plan(RolloutPlan::default_plan())
        .flags(flags)
        .store(Store::open_in_memory(&StoreOptions::new()).expect("store"))
        .open()
        .await
        .expect_err("five flags are missing");
    assert_eq!(error.code(), ErrorCode::FLAG_NOT_FOUND);
    assert!(error.message().contains("use_"), "{}", error.message());
}
