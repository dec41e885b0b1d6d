//! A tour of foundation-flags: declare flags (in code and TOML), evaluate
//! them, apply a rollout phase as one atomic change, read the audit log,
//! and ramp a flag from 10% to 50% on a schedule.
//!
//! Run with `cargo run -p foundation-flags --example flags_tour`.
//!
//! The ramp's interval is a minute; the tour runs on paused tokio time (and
//! a wall clock that follows it), so it finishes at once.

#![allow(clippy::print_stdout)]

use std::time::{Duration, SystemTime};

use foundation_error::Error;
use foundation_error::clock::TokioClock;
use foundation_flags::{
    Attribution, AuditQuery, EvaluationContext, Flag, FlagValue, Flags, InMemoryFlagStore,
    RampPlan, declarations_from_toml,
};

const PLAN_FLAGS: &str = r#"
[flags.use_v2_coordinator]
description = "Route new workflows to the V2 coordinator"
default = "off"

[flags.use_reliable_messaging]
description = "Acknowledged message delivery"
default = "off"
"#;

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), Error> {
    // 1. Declare: two flags from TOML, one in code. Start-up order:
    //    defaults, then stored values, then FOUNDATION_FLAG_* overrides.
    let store = InMemoryFlagStore::new();
    let mut builder = Flags::builder();
    builder
        .declare_all(declarations_from_toml("plan.toml", PLAN_FLAGS)?)
        .declare(Flag::new(
            "new_checkout",
            "Serve the new checkout page",
            FlagValue::Off,
        ))
        .store(store.clone())
        .environment([("FOUNDATION_FLAG_NEW_CHECKOUT", "5")])
        .clock(TokioClock::following(SystemTime::now()));
    let flags = builder.open().await?;
    println!("declared:   {:?}", flags.snapshot());

    // 2. Evaluate: a handle for the hot path, details for the curious.
    let checkout = flags.handle("new_checkout")?;
    let enabled = (0..10_000)
        .filter(|n| checkout.is_enabled_for(&format!("user-{n}")))
        .count();
    println!("evaluate:   new_checkout at 5% enables {enabled} of 10000 users");
    let details = flags.evaluate("new_checkout", EvaluationContext::for_key("user-42"), false);
    println!(
        "            user-42: {} ({}, bucket {:?})",
        details.value,
        details.reason.as_str(),
        details.bucket
    );
    let missing = flags.evaluate("no_such_flag", EvaluationContext::default(), true);
    println!(
        "            no_such_flag: caller's default {} ({}, {:?})",
        missing.value,
        missing.reason.as_str(),
        missing.error_code.map(|code| code.as_str())
    );

    // 3. Bulk apply: a rollout phase sets two flags in one change; a
    //    snapshot sees both or neither.
    let phase = flags
        .apply(
            [
                ("use_v2_coordinator", FlagValue::percentage(25)?),
                ("use_reliable_messaging", FlagValue::On),
            ],
            Attribution::new("rollout-plan", "phase 2: V2 coordinator canary"),
        )
        .await?;
    println!(
        "bulk apply: version {} with {} entries",
        phase.version(),
        phase.entries().len()
    );

    // 4. Ramp: 10% now, then +10 points every minute up to 50%.
    let driver = tokio::spawn(flags.ramp_driver().run());
    let plan = RampPlan::new("new_checkout", 10, 50, 10, Duration::from_secs(60))?;
    flags
        .start_ramp(plan, Attribution::new("alice", "checkout launch"))
        .await?;
    let mut changes = flags.subscribe();
    while flags.snapshot().ramp("new_checkout").is_some() {
        let change = tokio::time::timeout(Duration::from_secs(3600), changes.recv())
            .await
            .map_err(|_| Error::timeout("the ramp did not step within an hour"))?
            .map_err(|error| Error::system(format!("change stream: {error}")))?;
        for entry in change.entries() {
            println!(
                "ramp:       {} {} -> {}",
                entry.flag, entry.old_value, entry.new_value
            );
        }
    }

    // 5. Audit: every change, who made it and why, read back from the store.
    println!("audit log:");
    for entry in flags.audit_log(AuditQuery::recent(20)).await? {
        println!(
            "  #{:<2} {:<22} {:<20} {:>4} -> {:<4} by {:<12} {}",
            entry.sequence,
            entry.flag,
            entry.action.as_str(),
            entry.old_value.to_string(),
            entry.new_value.to_string(),
            entry.who,
            entry.reason
        );
    }

    drop(flags);
    driver
        .await
        .map_err(|error| Error::system(format!("ramp driver: {error}")))??;
    println!("stored:     {:?}", store.stored().values);
    Ok(())
}
