//! Running the test suites the build checks name: `cargo test -p CRATE
//! --all-features --test it FILTER`, each bounded (the whole process group
//! is killed at the bound), with progress on stderr while it runs.
//!
//! A suite is named by the test file and, when one test is meant, its
//! function; before running, the check reads the file (so a renamed test
//! fails the check instead of matching nothing), and after, it requires at
//! least one test to have run and none to have failed.
//!
//! Time here is the wall time of a child process (the bound, the elapsed
//! seconds shown), read with `std::time::Instant`: xtask is a developer
//! tool outside the product and its clock rule. This module is not for
//! deciding which suites matter; the category modules name them.

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{Env, Finding, Outcome, Tree};

/// How often a running suite's progress line is redrawn.
const POLL: Duration = Duration::from_millis(250);

/// Where progress goes: a line on stderr redrawn in place on a terminal,
/// a start and an end line otherwise; nothing in tests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Progress {
    enabled: bool,
    terminal: bool,
}

impl Progress {
    pub(crate) fn stderr() -> Progress {
        Progress {
            enabled: true,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// No progress (tests, and steps too short to show).
    #[cfg(test)]
    pub(crate) fn silent() -> Progress {
        Progress {
            enabled: false,
            terminal: false,
        }
    }

    /// Announces a slow step.
    pub(crate) fn start(&self, label: &str) {
        if self.enabled {
            eprintln!("⏳ {label}");
        }
    }

    /// Redraws the progress line of a running step (terminals only).
    fn tick(&self, label: &str, elapsed: Duration, detail: &str) {
        if self.enabled && self.terminal {
            let mut stderr = std::io::stderr().lock();
            // Progress is best effort: a closed stderr loses nothing else.
            let _ = write!(
                stderr,
                "\r\x1b[2K⏳ {label}: {} s{detail}",
                elapsed.as_secs()
            );
            let _ = stderr.flush();
        }
    }

    /// Ends a slow step.
    pub(crate) fn finish(&self, label: &str, elapsed: Duration, verdict: &str) {
        if self.enabled {
            if self.terminal {
                eprint!("\r\x1b[2K");
            }
            eprintln!("{verdict} {label} ({} s)", elapsed.as_secs());
        }
    }
}

/// A child process that ran to its end (or was killed at its bound).
#[derive(Debug)]
pub(crate) struct Ran {
    /// `None` when it was killed at the bound.
    pub(crate) status: Option<ExitStatus>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

/// Runs `command` in `directory`, killing its process group after `bound`.
/// Its output goes to temporary files, so nothing blocks on a full pipe;
/// `progress_of` turns the output so far into the progress detail.
pub(crate) fn run_bounded(
    mut command: Command,
    label: &str,
    bound: Duration,
    progress: Progress,
    progress_of: fn(&str) -> String,
) -> Result<Ran, String> {
    let stdout = tempfile::NamedTempFile::new()
        .map_err(|error| format!("cannot create a temporary file: {error}"))?;
    let stderr = tempfile::NamedTempFile::new()
        .map_err(|error| format!("cannot create a temporary file: {error}"))?;
    let clone = |file: &tempfile::NamedTempFile| {
        file.reopen()
            .map(Stdio::from)
            .map_err(|error| format!("cannot open a temporary file: {error}"))
    };
    command
        .stdin(Stdio::null())
        .stdout(clone(&stdout)?)
        .stderr(clone(&stderr)?);
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    progress.start(label);
    let started = Instant::now();
    // A child process, not a task or thread (written as a path call so
    // tidy's spawn rule sees the `Command`).
    let mut child =
        Command::spawn(&mut command).map_err(|error| format!("cannot start `{label}`: {error}"))?;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(error) => return Err(format!("cannot wait for `{label}`: {error}")),
        }
        let elapsed = started.elapsed();
        if elapsed >= bound {
            kill_group(&mut child);
            break None;
        }
        let so_far = std::fs::read_to_string(stdout.path()).unwrap_or_default();
        progress.tick(label, elapsed, &progress_of(&so_far));
        std::thread::sleep(POLL);
    };
    let elapsed = started.elapsed();
    let read = |file: &tempfile::NamedTempFile| {
        std::fs::read(file.path())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    };
    let ran = Ran {
        status,
        stdout: read(&stdout),
        stderr: read(&stderr),
        elapsed,
    };
    let verdict = match ran.status {
        Some(status) if status.success() => "✔",
        _ => "✘",
    };
    progress.finish(label, elapsed, verdict);
    Ok(ran)
}

/// Kills the child's whole process group (cargo and the test binary it
/// started), then reaps the child.
fn kill_group(child: &mut std::process::Child) {
    #[cfg(unix)]
    {
        // The group id is the child's pid (`process_group(0)`). Failing to
        // run `kill` leaves the direct kill below.
        let _ = Command::new("kill")
            .args(["-KILL", &format!("-{}", child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One test suite: a test file of a crate's `tests/it/` binary and,
/// optionally, one test function in it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Suite {
    /// The crate's package (and folder) name.
    pub(crate) package: &'static str,
    /// The module of `tests/it/` (`persistent` for `tests/it/persistent.rs`);
    /// empty for the whole `it` binary.
    pub(crate) module: &'static str,
    /// One test function of that module; `None` runs the whole module.
    pub(crate) function: Option<&'static str>,
}

impl Suite {
    fn file(&self) -> String {
        let module = if self.module.is_empty() {
            "main"
        } else {
            self.module
        };
        format!("{}/tests/it/{module}.rs", self.package)
    }

    fn filter(&self) -> String {
        match self.function {
            Some(function) => format!("{}::{function}", self.module),
            None if self.module.is_empty() => String::new(),
            None => format!("{}::", self.module),
        }
    }

    /// The command line, as a person would type it.
    pub(crate) fn command_line(&self) -> String {
        let exact = if self.function.is_some() {
            " --exact"
        } else {
            ""
        };
        let filter = self.filter();
        if filter.is_empty() {
            format!("cargo test -p {} --all-features --test it", self.package)
        } else {
            format!(
                "cargo test -p {} --all-features --test it -- {filter}{exact}",
                self.package
            )
        }
    }

    /// Whether the suite exists in the tree: its file parsed, its function
    /// there as a test.
    pub(crate) fn missing(&self, tree: &Tree) -> Option<Finding> {
        let path = self.file();
        let Some(file) = tree.file(&path) else {
            return Some(Finding::new(
                path,
                0,
                format!(
                    "the test file of suite `{}` is not in the tree",
                    self.command_line()
                ),
            ));
        };
        let function = self.function?;
        let found = file.syntax.items.iter().any(|item| match item {
            syn::Item::Fn(item) => {
                item.sig.ident == function && crate::source::is_test_function(&item.attrs)
            }
            _ => false,
        });
        (!found).then(|| {
            Finding::new(
                path,
                0,
                format!("no test function `{function}` (renamed? update the readiness suite list)"),
            )
        })
    }
}

/// The counts of passed and failed tests, and the failed tests' names,
/// from libtest's output.
pub(crate) fn test_counts(stdout: &str) -> (usize, usize, Vec<String>) {
    let mut passed = 0;
    let mut failed = 0;
    let mut failures = Vec::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(';') {
                let mut words = part.split_whitespace().rev();
                let (Some(what), Some(number)) = (words.next(), words.next()) else {
                    continue;
                };
                let number: usize = number.parse().unwrap_or(0);
                match what {
                    "passed" => passed += number,
                    "failed" => failed += number,
                    _ => {}
                }
            }
        } else if let Some(name) = line
            .strip_prefix("test ")
            .and_then(|rest| rest.strip_suffix(" ... FAILED"))
        {
            failures.push(name.to_owned());
        }
    }
    (passed, failed, failures)
}

fn tests_done(stdout: &str) -> String {
    let done = stdout
        .lines()
        .filter(|line| line.starts_with("test ") && line.contains(" ... "))
        .count();
    format!(", {done} test(s) done")
}

/// Runs `suites` in the workspace at `root`, each bounded by the env's
/// suite timeout; passes when every suite exists, ran at least one test
/// and had no failure.
pub(crate) fn run_suites(env: &Env, what: &str, suites: &[Suite]) -> Outcome {
    run_suites_at(&env.tree.root, env, what, suites)
}

fn run_suites_at(root: &Path, env: &Env, what: &str, suites: &[Suite]) -> Outcome {
    let mut findings = Vec::new();
    let mut total_passed = 0;
    let mut total_seconds = 0;
    for suite in suites {
        if let Some(missing) = suite.missing(&env.tree) {
            findings.push(missing);
            continue;
        }
        let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        command
            .current_dir(root)
            .env("CARGO_TERM_COLOR", "never")
            .args([
                "test",
                "-p",
                suite.package,
                "--all-features",
                "--test",
                "it",
            ]);
        let filter = suite.filter();
        if !filter.is_empty() {
            command.arg("--").arg(filter);
        }
        if suite.function.is_some() {
            command.arg("--exact");
        }
        let label = suite.command_line();
        let ran = match run_bounded(command, &label, env.suite_timeout, env.progress, tests_done) {
            Ok(ran) => ran,
            Err(message) => {
                findings.push(Finding::new(label, 0, message));
                continue;
            }
        };
        total_seconds += ran.elapsed.as_secs();
        let (passed, failed, failures) = test_counts(&ran.stdout);
        total_passed += passed;
        match ran.status {
            None => findings.push(Finding::new(
                label,
                0,
                format!(
                    "did not finish within {} s (killed); raise --suite-timeout on a loaded machine",
                    env.suite_timeout.as_secs()
                ),
            )),
            Some(status) if !status.success() && failed == 0 => {
                let tail: Vec<&str> = ran.stderr.lines().rev().take(6).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                findings.push(Finding::new(
                    label,
                    0,
                    format!("failed before its tests ran ({status}): {}", tail.join(" | ")),
                ));
            }
            Some(_) if failed > 0 => {
                for failure in failures {
                    findings.push(Finding::new(
                        suite.file(),
                        0,
                        format!("test `{failure}` failed (run `{label}`)"),
                    ));
                }
                if findings.is_empty() {
                    findings.push(Finding::new(label, 0, format!("{failed} test(s) failed")));
                }
            }
            Some(_) if passed == 0 => findings.push(Finding::new(
                label,
                0,
                "no test ran: the filter matches nothing",
            )),
            Some(_) => {}
        }
    }
    let summary = if findings.is_empty() {
        format!(
            "{what}: {} suite(s), {total_passed} test(s) passed in {total_seconds} s",
            suites.len()
        )
    } else {
        format!("{what}: {} suite(s) run and pass", suites.len())
    };
    Outcome::from_findings(summary, findings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::test_tree::fixture;

    #[test]
    fn libtest_output_is_counted() {
        let output = "running 3 tests\ntest a::one ... ok\ntest a::two ... FAILED\ntest a::three ... ok\n\ntest result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 10 filtered out; finished in 0.01s\n";
        let (passed, failed, failures) = test_counts(output);
        assert_eq!((passed, failed), (2, 1));
        assert_eq!(failures, vec!["a::two".to_owned()]);
        assert_eq!(tests_done(output), ", 3 test(s) done");
    }

    #[test]
    fn a_missing_suite_fails_without_running_anything() {
        let (_directory, env) = fixture(&[(
            "site/tests/it/recovery.rs",
            "#[test]\nfn restarts() {}\nfn helper() {}\n",
        )]);
        let present = Suite {
            package: "site",
            module: "recovery",
            function: Some("restarts"),
        };
        assert!(present.missing(&env.tree).is_none());
        let helper = Suite {
            function: Some("helper"),
            ..present
        };
        assert!(helper.missing(&env.tree).is_some());
        let gone = Suite {
            module: "gone",
            function: None,
            ..present
        };
        let outcome = run_suites(&env, "recovery", &[gone]);
        assert!(!outcome.passed());
        assert_eq!(outcome.findings[0].path, "site/tests/it/gone.rs");
    }

    /// A real crate whose suite fails, run with cargo: the check names the
    /// failing test. (A real build of a tiny crate: a few seconds.)
    #[test]
    fn a_failing_suite_is_named_and_a_passing_one_passes() {
        let manifest = "[package]\nname = \"site\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[[test]]\nname = \"it\"\npath = \"tests/it/main.rs\"\n";
        let suite = |function| Suite {
            package: "site",
            module: "recovery",
            function: Some(function),
        };
        let nested = crate::tidy::test_tree::tree(&[
            (
                "Cargo.toml",
                "[workspace]\nmembers = [\"site\"]\nresolver = \"2\"\n",
            ),
            ("site/Cargo.toml", manifest),
            ("site/src/lib.rs", "//! Site.\n"),
            ("site/tests/it/main.rs", "mod recovery;\n"),
            (
                "site/tests/it/recovery.rs",
                "#[test]\nfn restarts() {}\n#[test]\nfn loses_data() { assert_eq!(1 + 1, 3, \"lost\"); }\n",
            ),
        ]);
        let nested_env = crate::readiness::test_tree::env_at(nested.path());
        let outcome = run_suites(&nested_env, "recovery", &[suite("loses_data")]);
        assert_eq!(outcome.findings.len(), 1, "{:#?}", outcome.findings);
        assert!(
            outcome.findings[0].message.contains("recovery::loses_data"),
            "{:#?}",
            outcome.findings
        );
        let outcome = run_suites(&nested_env, "recovery", &[suite("restarts")]);
        assert!(outcome.passed(), "{:#?}", outcome.findings);
        assert!(
            outcome.summary.contains("1 test(s) passed"),
            "{}",
            outcome.summary
        );
    }
}
