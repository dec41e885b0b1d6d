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
//! This crate is not part of the product: nothing depends on it.

mod allowlist;
mod layering;
mod source;
mod tidy;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("layering") => layering::run(),
        Some("tidy") => tidy::run(),
        Some("help" | "--help" | "-h") | None => {
            eprintln!(
                "usage: cargo xtask <command>\n\ncommands:\n  layering   check the crate layers\n  tidy       check the code-level invariants"
            );
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("unknown command `{other}`; run `cargo xtask help`");
            ExitCode::from(2)
        }
    }
}
