//! Measures what an integrity check on open costs: writes a store of about
//! 100 MB (or the size in MB given as the first argument) into a temporary
//! directory, then times a plain open and an open with
//! `StoreOptions::check_integrity_on_open`, each after a clean close.
//!
//! ```text
//! cargo run --release -p foundation-persist --example integrity_cost -- 100
//! ```
//!
//! The figures depend on the disk and on the page cache (the file was just
//! written, so it is usually cached): read them as an order of magnitude.

#![allow(clippy::print_stdout)] // An example reports to its user on stdout.

use std::time::Instant;

use foundation_persist::{Record, Store, StoreOptions};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Blob {
    bytes: Vec<u8>,
}

impl Record for Blob {
    const TYPE_TAG: &'static str = "integrity_cost_blob";
    const SCHEMA_VERSION: u32 = 1;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let megabytes: usize = match std::env::args().nth(1) {
        Some(argument) => argument.parse()?,
        None => 100,
    };
    let directory = tempfile::tempdir()?;
    let path = directory.path().join("integrity.redb");
    let store = Store::open(&path, &StoreOptions::new())?;
    let blobs = store.state::<Blob>("blobs")?;
    const VALUE_BYTES: usize = 4096;
    const PER_BATCH: usize = 256;
    let values = megabytes * (1 << 20) / VALUE_BYTES;
    for first in (0..values).step_by(PER_BATCH) {
        let mut batch = store.batch();
        for n in first..(first + PER_BATCH).min(values) {
            let bytes = (0..VALUE_BYTES).map(|i| (i ^ n) as u8).collect();
            batch.put(&blobs, &format!("blob-{n:08}"), &Blob { bytes })?;
        }
        batch.commit().await?;
    }
    store.close().await?;
    drop((blobs, store));
    let size = std::fs::metadata(&path)?.len();

    let started = Instant::now();
    Store::open(&path, &StoreOptions::new())?.close().await?;
    let plain = started.elapsed();

    let mut checked = StoreOptions::new();
    checked.check_integrity_on_open(true);
    let started = Instant::now();
    Store::open(&path, &checked)?.close().await?;
    let with_check = started.elapsed();

    println!(
        "store of {:.1} MB: plain open {plain:?}, open with integrity check {with_check:?}",
        size as f64 / 1e6
    );
    Ok(())
}
