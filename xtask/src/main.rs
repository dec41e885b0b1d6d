//! Developer automation for the Foundation workspace, run as `cargo xtask
//! <command>` (an alias in `.cargo/config.toml`).
//!
//! Commands:
//! - `layering`: checks that every workspace crate depends only on crates of
//!   a strictly lower layer (see ARCHITECTURE.md).
//! - `tidy`: checks the code-level invariants (where tasks and threads
//!   start, who knows redb, no sleeps or `#[ignore]` in tests, public enums
//!   `#[non_exhaustive]`), reading the code with `syn` and the allow-lists
//!   from ARCHITECTURE.md.
//!
//! - `readiness`: plan 05's pre-integration check and production readiness
//!   checklist (`--static` for the checks that need no build or server,
//!   `--url URL` for the checks against a running server, `--format json`).
//!
//! This crate is not part of the product: nothing depends on it.

mod allowlist;
mod layering;
mod readiness;
mod source;
mod tidy;

use std::path::Path;
use std::process::ExitCode;

/// The workspace root: the parent of this crate's folder.
pub(crate) fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("layering") => layering::run(),
        Some("tidy") => tidy::run(),
        Some("readiness") => readiness::run(args),
        Some("help" | "--help" | "-h") | None => {
            eprintln!(
                "usage: cargo xtask <command>\n\ncommands:\n  layering   check the crate layers\n  tidy       check the code-level invariants\n  readiness  the production readiness checklist ([--static] [--url URL] [--format json])"
            );
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("unknown command `{other}`; run `cargo xtask help`");
            ExitCode::from(2)
        }
    }
}
