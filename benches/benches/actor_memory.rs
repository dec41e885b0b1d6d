//! Resident memory per idle actor: 100,000 idle actors of each kind, each
//! measured in a fresh process (the bench re-runs itself per contender), as
//! the growth of the resident set divided by the number of actors.
//!
//! Target (issue 3): at most 2.6 KB per idle actor (a BEAM process is
//! 2,616 bytes). Linux only (reads /proc/self/statm).

#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::process::Command;

use benches::actors::{Counter, KameoCounter, RactorCounter, spawn_raw_counter};
use foundation_core::{DynamicSupervisor, spawn};
use kameo::actor::Spawn;

const ACTORS: usize = 100_000;
const CONTENDERS: [&str; 5] = [
    "tokio_task_and_channel_baseline",
    "foundation_unsupervised",
    "foundation_supervised",
    "ractor",
    "kameo",
];

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn measure(contender: &str) -> Option<f64> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // The bookkeeping vector's pages are touched before measuring, so
        // they are not counted.
        let mut keep: Vec<Box<dyn std::any::Any + Send>> = Vec::with_capacity(ACTORS + 1);
        keep.resize_with(ACTORS + 1, || Box::new(()));
        keep.clear();
        let before = resident_bytes()?;
        match contender {
            "tokio_task_and_channel_baseline" => {
                for _ in 0..ACTORS {
                    keep.push(Box::new(spawn_raw_counter()));
                }
            }
            "foundation_unsupervised" => {
                for _ in 0..ACTORS {
                    keep.push(Box::new(spawn::<Counter>(()).await.unwrap()));
                }
            }
            "foundation_supervised" => {
                let supervisor = DynamicSupervisor::<Counter>::builder("memory")
                    .start()
                    .await
                    .unwrap();
                for _ in 0..ACTORS {
                    keep.push(Box::new(supervisor.start_child(()).await.unwrap()));
                }
                // Let the supervisor adopt every child before measuring.
                supervisor.count_children().await.unwrap();
                keep.push(Box::new(supervisor));
            }
            "ractor" => {
                for _ in 0..ACTORS {
                    keep.push(Box::new(
                        ractor::Actor::spawn(None, RactorCounter, ()).await.unwrap(),
                    ));
                }
            }
            "kameo" => {
                for _ in 0..ACTORS {
                    let actor = KameoCounter::spawn(());
                    actor.wait_for_startup().await;
                    keep.push(Box::new(actor));
                }
            }
            _ => return None,
        }
        // Let every task run once and go idle.
        tokio::task::yield_now().await;
        let after = resident_bytes()?;
        Some(after.saturating_sub(before) as f64 / ACTORS as f64)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(position) = args.iter().position(|arg| arg == "--measure") {
        let contender = args.get(position + 1).map(String::as_str).unwrap_or("");
        match measure(contender) {
            Some(bytes) => println!("{bytes:.0}"),
            None => println!("unavailable"),
        }
        return;
    }
    // `cargo bench` runs this with `--bench`; `cargo test` would run it
    // without: skip then, it is a measurement, not a test.
    if !args.iter().any(|arg| arg == "--bench") {
        return;
    }
    let me = std::env::current_exe().unwrap();
    println!("actor_memory: resident bytes per idle actor, {ACTORS} actors, fresh process each");
    let mut figures = Vec::new();
    for contender in CONTENDERS {
        let output = Command::new(&me)
            .args(["--measure", contender])
            .output()
            .unwrap();
        let figure = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        println!("  {contender:<34} {figure} bytes");
        figures.push((contender, figure.parse::<f64>().ok()));
    }
    let target = 2_616.0;
    if let Some((_, Some(ours))) = figures
        .iter()
        .find(|(name, _)| *name == "foundation_supervised")
    {
        println!(
            "  target: at most {target} bytes (a BEAM process); foundation_supervised is {:.0}% of it",
            ours / target * 100.0
        );
    }
}
