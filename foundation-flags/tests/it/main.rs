//! foundation-flags' integration tests, one binary with a module per area.
//! Time-dependent tests run under paused tokio time; nothing sleeps for
//! real, and concurrent tests wait on events with bounds.

mod atomicity;
mod bucketing;
mod evaluation;
#[cfg(feature = "openfeature")]
mod openfeature;
mod persistence;
mod ramps;
mod reload;
mod stored;
mod toml_file;
mod writes;

mod support {
    use std::time::{Duration, SystemTime};

    use foundation_error::clock::TokioClock;
    use foundation_flags::{Attribution, Flag, FlagValue, Flags, FlagsBuilder};

    /// A fixed wall-clock start for tests: 2023-11-14T22:13:20Z.
    pub(crate) fn epoch() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    pub(crate) fn by(who: &str) -> Attribution {
        Attribution::new(who, format!("test change by {who}"))
    }

    pub(crate) fn percent(value: u32) -> FlagValue {
        FlagValue::percentage(value).expect("test percentages are in range")
    }

    /// The six flags of the rollout plan, all off.
    pub(crate) fn rollout_flags() -> Vec<Flag> {
        [
            "use_persistent_agents",
            "use_v2_coordinator",
            "use_new_error_handling",
            "use_sync_test_apis",
            "enforce_supervised_tasks",
            "use_reliable_messaging",
        ]
        .into_iter()
        .map(|name| Flag::new(name, format!("gates {name}"), FlagValue::Off))
        .collect()
    }

    /// A builder with the rollout flags and a clock that follows tokio time.
    pub(crate) fn builder() -> FlagsBuilder {
        let mut builder = Flags::builder();
        builder
            .declare_all(rollout_flags())
            .clock(TokioClock::following(epoch()));
        builder
    }

    pub(crate) async fn open() -> Flags {
        builder().open().await.expect("the test flags open")
    }
}
