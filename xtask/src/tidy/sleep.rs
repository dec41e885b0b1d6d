//! No sleep in test code, except a tokio sleep inside a test that runs on
//! paused time.
//!
//! Test code is `#[cfg(test)]` items, test functions and the files under
//! `tests/`, `benches/` and `examples/`. A sleep is a call of a path,
//! resolved through the file's imports, that ends in `sleep` or
//! `sleep_until` and goes through `time` or `thread` (`tokio::time::sleep`,
//! `std::thread::sleep`, `time::sleep`). The one exception: a tokio sleep
//! written inside a function whose test attribute sets
//! `start_paused = true` (`#[tokio::test(start_paused = true)]`), where
//! sleeping only advances virtual time, deterministically. Helpers outside
//! such a test do not inherit it; `std::thread::sleep` is never allowed.

use proc_macro2::Span;

use super::Violation;
use crate::allowlist::AllowList;
use crate::source::{self, Context, Rule, SourceFile};

pub(crate) const RULE: &str = "sleep";

struct Sleeps<'a> {
    path: &'a str,
    found: Vec<Violation>,
}

impl Rule for Sleeps<'_> {
    fn call(&mut self, resolved: &[String], span: Span, context: Context) {
        if !context.in_test {
            return;
        }
        let Some((last, prefix)) = resolved.split_last() else {
            return;
        };
        if last != "sleep" && last != "sleep_until" {
            return;
        }
        let on_thread = prefix.iter().any(|segment| segment == "thread");
        let on_time = prefix.iter().any(|segment| segment == "time");
        if !on_thread && !on_time {
            return;
        }
        if on_time && !on_thread && context.in_paused_test {
            return;
        }
        self.found.push(Violation {
            path: self.path.to_owned(),
            line: source::line(span),
            rule: RULE,
            message: format!(
                "`{}` in test code: wait on an event (foundation_core::testkit) or advance paused time; a tokio sleep is allowed only inside a `start_paused = true` test",
                resolved.join("::")
            ),
        });
    }
}

pub(crate) fn check(file: &SourceFile, _allow: &AllowList) -> Vec<Violation> {
    let mut rule = Sleeps {
        path: &file.path,
        found: Vec::new(),
    };
    source::walk(file, &mut rule);
    rule.found
}

#[cfg(test)]
mod tests {
    use crate::tidy::test_tree::{places, violations_of};

    const TESTS: &str = r#"//! Tests.
use std::time::Duration;
use tokio::time::sleep;

#[tokio::test]
async fn real_time() {
    sleep(Duration::from_millis(10)).await;
}

#[tokio::test(start_paused = true)]
async fn paused() {
    tokio::time::sleep(Duration::from_secs(60)).await;
    std::thread::sleep(Duration::from_millis(1));
}

async fn helper() {
    tokio::time::sleep(Duration::from_secs(1)).await;
}
"#;

    #[test]
    fn sleeps_in_tests_are_named_unless_on_paused_time() {
        let violations = violations_of(super::RULE, &[("site/tests/it.rs", TESTS)]);
        let lines: Vec<usize> = places(&violations)
            .into_iter()
            .map(|(_, line)| line)
            .collect();
        assert_eq!(lines, vec![7, 13, 17], "{violations:#?}");
    }

    #[test]
    fn sleeps_in_library_code_and_cfg_test_modules() {
        let library = r#"//! A library that waits.
pub async fn backoff() {
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn t() {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
"#;
        let violations = violations_of(super::RULE, &[("site/src/lib.rs", library)]);
        assert_eq!(
            places(&violations),
            vec![("site/src/lib.rs".to_owned(), 10)]
        );
        let without_tests = library.split("#[cfg(test)]").next().unwrap_or_default();
        assert_eq!(
            violations_of(super::RULE, &[("site/src/lib.rs", without_tests)]),
            vec![]
        );
    }
}
