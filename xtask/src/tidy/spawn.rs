//! No tokio task or OS thread is started outside the allowed sites.
//!
//! A start is a call of a spawning function named by its path (resolved
//! through the file's imports): `tokio::spawn`, `tokio::task::spawn*`,
//! `std::thread::spawn`, or any path through `thread`, `task`, `Handle`,
//! `Runtime`, `JoinSet`, `LocalSet` or `Builder` ending in `spawn`,
//! `spawn_blocking` or `spawn_local`; or a method call named `spawn`,
//! `spawn_blocking`, `spawn_local`, `spawn_on`, `spawn_local_on`,
//! `spawn_blocking_on` or `spawn_scoped`, whatever the receiver (tidy
//! reads syntax, not types, so a call of `TaskSupervisor::spawn` is a site
//! too), except on a `std::process::Command` (a process, not a thread).
//! A bare `spawn(...)` not imported from tokio or std (foundation-core's
//! actor `spawn`) is not a start.
//!
//! Test code is exempt (`#[cfg(test)]`, test functions, `tests/`,
//! `benches/`, `examples/`).

use proc_macro2::Span;

use super::Violation;
use crate::allowlist::AllowList;
use crate::source::{self, Context, Rule, SourceFile};

pub(crate) const RULE: &str = "spawn";

const SPAWN_FUNCTIONS: &[&str] = &["spawn", "spawn_blocking", "spawn_local"];
const SPAWN_METHODS: &[&str] = &[
    "spawn",
    "spawn_blocking",
    "spawn_local",
    "spawn_on",
    "spawn_local_on",
    "spawn_blocking_on",
    "spawn_scoped",
];
const RUNTIME_SEGMENTS: &[&str] = &[
    "tokio", "thread", "task", "Handle", "Runtime", "JoinSet", "LocalSet", "Builder",
];

struct Spawns<'a> {
    path: &'a str,
    found: Vec<Violation>,
}

impl Spawns<'_> {
    fn report(&mut self, span: Span, what: String) {
        self.found.push(Violation {
            path: self.path.to_owned(),
            line: source::line(span),
            rule: RULE,
            message: format!(
                "{what} starts a task or thread outside the allowed spawn sites (ARCHITECTURE.md, \"Allowed spawn sites\")"
            ),
        });
    }
}

impl Rule for Spawns<'_> {
    fn call(&mut self, resolved: &[String], span: Span, context: Context) {
        if context.in_test {
            return;
        }
        let Some((last, prefix)) = resolved.split_last() else {
            return;
        };
        let through_runtime = prefix
            .iter()
            .any(|segment| RUNTIME_SEGMENTS.contains(&segment.as_str()));
        if SPAWN_FUNCTIONS.contains(&last.as_str()) && through_runtime {
            self.report(span, format!("`{}(...)`", resolved.join("::")));
        }
    }

    fn method_call(&mut self, call: &syn::ExprMethodCall, context: Context) {
        if context.in_test {
            return;
        }
        let method = call.method.to_string();
        if SPAWN_METHODS.contains(&method.as_str()) && !on_command(&call.receiver) {
            self.report(call.method.span(), format!("`.{method}(...)`"));
        }
    }
}

/// Whether the receiver chain starts at a `Command` (`Command::new(..)`).
fn on_command(receiver: &syn::Expr) -> bool {
    match receiver {
        syn::Expr::MethodCall(call) => on_command(&call.receiver),
        syn::Expr::Call(call) => match &*call.func {
            syn::Expr::Path(path) => path
                .path
                .segments
                .iter()
                .any(|segment| segment.ident == "Command"),
            _ => false,
        },
        syn::Expr::Reference(reference) => on_command(&reference.expr),
        syn::Expr::Paren(paren) => on_command(&paren.expr),
        _ => false,
    }
}

pub(crate) fn check(file: &SourceFile, allow: &AllowList) -> Vec<Violation> {
    if allow.allows_spawn_in(&file.path) {
        return Vec::new();
    }
    let mut rule = Spawns {
        path: &file.path,
        found: Vec::new(),
    };
    source::walk(file, &mut rule);
    rule.found
}

#[cfg(test)]
mod tests {
    use crate::tidy::test_tree::{places, violations_of};

    const BAD: &str = r#"//! Starts work everywhere.
use std::thread;
use tokio::task::spawn_blocking;

pub fn start(handle: tokio::runtime::Handle) {
    tokio::spawn(async {});
    thread::spawn(|| {});
    spawn_blocking(|| {});
    handle.spawn(async {});
    std::thread::Builder::new().name("x".into()).spawn(|| {});
}
"#;

    #[test]
    fn every_start_outside_a_site_is_named() {
        let violations = violations_of(super::RULE, &[("site/src/lib.rs", BAD)]);
        let lines: Vec<usize> = places(&violations)
            .into_iter()
            .map(|(_, line)| line)
            .collect();
        assert_eq!(lines, vec![6, 7, 8, 9, 10], "{violations:#?}");
        assert!(
            violations[0]
                .to_string()
                .starts_with("site/src/lib.rs:6: [spawn] `tokio::spawn(...)`")
        );
    }

    #[test]
    fn sites_tests_processes_and_the_actor_spawn_pass() {
        let good = r#"//! Fine.
use foundation_core::spawn;

pub async fn start() {
    let _ = spawn::<A>(()).await;
    let _ = std::process::Command::new("true").spawn();
    // tokio::spawn(async {}) in a comment
    let _text = "tokio::spawn(async {})";
}

#[cfg(test)]
mod tests {
    #[test]
    fn t() { std::thread::spawn(|| {}); }
}
"#;
        assert_eq!(
            violations_of(
                super::RULE,
                &[
                    ("site/src/lib.rs", good),
                    ("site/src/runtime.rs", BAD),
                    ("site/tests/it.rs", BAD),
                    ("site/examples/tour.rs", BAD),
                ]
            ),
            vec![]
        );
    }
}
