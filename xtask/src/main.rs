//! Developer automation for the Foundation workspace, run as `cargo xtask
//! <command>` (an alias in `.cargo/config.toml`).
//!
//! Commands:
//! - `layering`: checks that every workspace crate depends only on crates of
//!   a strictly lower layer (see ARCHITECTURE.md).
//!
//! This crate is not part of the product: nothing depends on it.

mod layering;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("layering") => layering::run(),
        Some("help" | "--help" | "-h") | None => {
            eprintln!(
                "usage: cargo xtask <command>\n\ncommands:\n  layering   check the crate layers"
            );
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("unknown command `{other}`; run `cargo xtask help`");
            ExitCode::from(2)
        }
    }
}
