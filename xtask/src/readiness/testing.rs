//! Testing: no sleep and no `#[ignore]` in tests (tidy's rules, reused),
//! tests of time read a paused or manual clock, and the integration suite
//! passes (run).
//!
//! "Tests of time" reads test code (files under `tests/`, `#[cfg(test)]`
//! items, test functions; not benches or examples, which measure real
//! time on purpose) for reads of the real clock, `Instant::now()` and
//! `SystemTime::now()` (std's or tokio's), outside a test that runs on
//! paused time or a synchronous `#[test]` (no runtime: it cannot wait on
//! tokio time, so a reading there is only a base for arithmetic). A test
//! that needs time takes it from paused tokio time or a `ManualClock`,
//! through `foundation_error::clock`. This module is not
//! for the sleep rule itself (`tidy::sleep`).

use proc_macro2::Span;

use super::run::{self, Suite};
use super::{Category, CheckDef, Env, Finding, Kind, Outcome, Tree};
use crate::source::{self, Context, Rule};

pub(crate) fn checks() -> Vec<CheckDef> {
    let check = |name, kind, run| CheckDef {
        category: Category::Testing,
        name,
        kind,
        run,
    };
    vec![
        check(
            "No sleep or #[ignore] in tests",
            Kind::Static,
            no_sleep_or_ignore,
        ),
        check(
            "Tests of time use paused or manual clocks",
            Kind::Static,
            controlled_clocks,
        ),
        check("Integration tests pass", Kind::Build, integration),
    ]
}

fn no_sleep_or_ignore(env: &Env) -> Outcome {
    let allow = match &env.tree.allow {
        Ok(allow) => allow,
        Err(finding) => return Outcome::fail("the allow-list is unreadable", finding.clone()),
    };
    let findings: Vec<Finding> = env
        .tree
        .files
        .iter()
        .flat_map(|file| {
            let mut violations = crate::tidy::sleep::check(file, allow);
            violations.extend(crate::tidy::ignore::check(file, allow));
            violations
        })
        .map(|violation| Finding::new(violation.path, violation.line, violation.message))
        .collect();
    Outcome::from_findings("no sleep outside paused tests, no #[ignore]", findings)
}

struct RealClocks<'a> {
    path: &'a str,
    findings: Vec<Finding>,
}

impl Rule for RealClocks<'_> {
    fn call(&mut self, resolved: &[String], span: Span, context: Context) {
        if !context.in_test || context.in_paused_test || context.in_sync_test {
            return;
        }
        let reads_clock = resolved.len() >= 2
            && resolved[resolved.len() - 1] == "now"
            && matches!(
                resolved[resolved.len() - 2].as_str(),
                "Instant" | "SystemTime"
            );
        if reads_clock {
            self.findings.push(Finding::new(
                self.path,
                source::line(span),
                format!(
                    "`{}` in a test that is not on paused time: read time from paused tokio time or a ManualClock (foundation_error::clock)",
                    resolved.join("::")
                ),
            ));
        }
    }
}

/// The findings of "tests of time" on `tree`, and the test files read.
pub(crate) fn clock_findings(tree: &Tree) -> (usize, Vec<Finding>) {
    let mut read = 0;
    let mut findings = Vec::new();
    for file in &tree.files {
        let measuring = file
            .path
            .split('/')
            .any(|component| component == "benches" || component == "examples");
        if measuring {
            continue;
        }
        read += 1;
        let mut rule = RealClocks {
            path: &file.path,
            findings: Vec::new(),
        };
        source::walk(file, &mut rule);
        findings.extend(rule.findings);
    }
    (read, findings)
}

fn controlled_clocks(env: &Env) -> Outcome {
    let (read, findings) = clock_findings(&env.tree);
    Outcome::from_findings(
        format!("no real clock read in the test code of {read} files"),
        findings,
    )
}

/// The integration crate's whole test binary: the plan-05 full-system test
/// and the HTTP API's tests.
pub(crate) const INTEGRATION_SUITES: &[Suite] = &[Suite {
    package: "jido-system",
    module: "",
    function: None,
}];

fn integration(env: &Env) -> Outcome {
    run::run_suites(env, "integration", INTEGRATION_SUITES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::test_tree::fixture;

    const TESTS: &str = r#"//! Tests.
use std::time::Instant;

#[tokio::test]
async fn measures_real_time() {
    let started = Instant::now();
    let wall = std::time::SystemTime::now();
}

#[tokio::test(start_paused = true)]
async fn paused() {
    let started = tokio::time::Instant::now();
}

fn helper() -> Instant { Instant::now() }

#[test]
fn arithmetic_on_an_instant() {
    let base = Instant::now();
}
"#;

    #[test]
    fn real_clocks_in_tests_fail_unless_paused() {
        let (_d, env) = fixture(&[
            ("site/tests/it/time.rs", TESTS),
            ("site/benches/speed.rs", TESTS),
            (
                "site/src/lib.rs",
                "//! Library code may read the clock it is given.\npub fn now() -> std::time::Instant { std::time::Instant::now() }\n",
            ),
        ]);
        let (read, findings) = clock_findings(&env.tree);
        assert_eq!(read, 2);
        let places: Vec<(&str, usize)> = findings
            .iter()
            .map(|finding| (finding.path.as_str(), finding.line))
            .collect();
        assert_eq!(
            places,
            vec![
                ("site/tests/it/time.rs", 6),
                ("site/tests/it/time.rs", 7),
                ("site/tests/it/time.rs", 15)
            ]
        );
    }

    #[test]
    fn sleeps_and_ignores_fail_through_tidys_rules() {
        let (_d, bad) = fixture(&[(
            "site/tests/it.rs",
            "//! T.\n#[test]\n#[ignore]\nfn t() { std::thread::sleep(std::time::Duration::from_millis(1)); }\n",
        )]);
        let outcome = no_sleep_or_ignore(&bad);
        assert_eq!(outcome.findings.len(), 2, "{:#?}", outcome.findings);
        let (_d, good) = fixture(&[("site/tests/it.rs", "//! T.\n#[test]\nfn t() {}\n")]);
        assert!(no_sleep_or_ignore(&good).passed());
    }
}
