//! `cargo xtask readiness`: plan 05's pre-integration check and production
//! readiness checklist, as one command that reads the code as code (`syn`,
//! through `source.rs`), runs the test suites it names and probes a running
//! server.
//!
//! The checks are grouped by the plan's categories (architecture, state
//! management, error handling, testing, operations). Each is one of three
//! kinds: *static* (reads the tree; `--static` runs only these, and CI runs
//! that), *build* (runs named test suites with `cargo test`, each bounded)
//! and *server* (probes the server given with `--url`). A check of a kind
//! not selected is listed as skipped and does not count. The exit status is
//! 0 only when no check that ran failed.
//!
//! This module holds the checklist, the selection and the report (text or
//! JSON); each category's checks live in their own module. It is not for
//! the tidy rules, which it reuses (`tidy::spawn`, `tidy::sleep`,
//! `tidy::ignore`) rather than repeats.

mod architecture;
mod errors;
mod http;
mod operations;
mod run;
mod runbook;
mod runbook_text;
mod state;
mod testing;

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::allowlist::{self, AllowList};
use crate::source::{self, LoadError, SourceFile};

/// The plan's five categories, in its order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    Architecture,
    StateManagement,
    ErrorHandling,
    Testing,
    Operations,
}

impl Category {
    const ALL: [Category; 5] = [
        Category::Architecture,
        Category::StateManagement,
        Category::ErrorHandling,
        Category::Testing,
        Category::Operations,
    ];

    /// The plan's name (`state_management`).
    pub(crate) fn key(self) -> &'static str {
        match self {
            Category::Architecture => "architecture",
            Category::StateManagement => "state_management",
            Category::ErrorHandling => "error_handling",
            Category::Testing => "testing",
            Category::Operations => "operations",
        }
    }
}

/// What a check needs in order to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Reads the tree only.
    Static,
    /// Builds and runs test suites.
    Build,
    /// Talks to a running server (`--url`).
    Server,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Static => "static",
            Kind::Build => "build",
            Kind::Server => "server",
        }
    }
}

/// One place a check found at fault (or, for a run, one failing test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// A file relative to the workspace root, a URL, or a command.
    pub(crate) path: String,
    /// 1-based; 0 when the whole file (or no line) is meant.
    pub(crate) line: usize,
    pub(crate) message: String,
}

impl Finding {
    pub(crate) fn new(path: impl Into<String>, line: usize, message: impl Into<String>) -> Finding {
        Finding {
            path: path.into(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path, self.message)
        } else {
            write!(f, "{}:{}: {}", self.path, self.line, self.message)
        }
    }
}

/// What a check concluded: it passed when it found nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// One line: what was checked and found.
    pub(crate) summary: String,
    pub(crate) findings: Vec<Finding>,
}

impl Outcome {
    /// A pass, saying what was checked.
    pub(crate) fn pass(summary: impl Into<String>) -> Outcome {
        Outcome {
            summary: summary.into(),
            findings: Vec::new(),
        }
    }

    /// A failure with one finding.
    pub(crate) fn fail(summary: impl Into<String>, finding: Finding) -> Outcome {
        Outcome {
            summary: summary.into(),
            findings: vec![finding],
        }
    }

    /// Passes when `findings` is empty; `summary` says what passing means,
    /// and a failure's summary counts the problems against it.
    pub(crate) fn from_findings(summary: impl Into<String>, findings: Vec<Finding>) -> Outcome {
        let summary = summary.into();
        let summary = if findings.is_empty() {
            summary
        } else {
            format!("{} problem(s); expected: {summary}", findings.len())
        };
        Outcome { summary, findings }
    }

    pub(crate) fn passed(&self) -> bool {
        self.findings.is_empty()
    }
}

/// The workspace as the static checks see it.
pub(crate) struct Tree {
    pub(crate) root: PathBuf,
    pub(crate) files: Vec<SourceFile>,
    pub(crate) load_errors: Vec<LoadError>,
    /// The lists of ARCHITECTURE.md, or why they could not be read.
    pub(crate) allow: Result<AllowList, Finding>,
    /// The text of ARCHITECTURE.md (empty when unreadable).
    pub(crate) architecture: String,
}

impl Tree {
    /// Reads every source file and ARCHITECTURE.md under `root`.
    pub(crate) fn load(root: &Path) -> Tree {
        let (files, load_errors) = source::load(root);
        let architecture =
            std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap_or_default();
        let allow = allowlist::load(root)
            .map_err(|error| Finding::new("ARCHITECTURE.md", error.line, error.message));
        Tree {
            root: root.to_path_buf(),
            files,
            load_errors,
            allow,
            architecture,
        }
    }

    /// The files of our product crates that are not test code (everything
    /// but `xtask` and `benches`, and not under `tests/`, `examples/`).
    pub(crate) fn product_files(&self) -> impl Iterator<Item = &SourceFile> {
        self.files.iter().filter(|file| {
            !file.is_test_file() && !matches!(file.crate_folder(), "xtask" | "benches")
        })
    }

    /// The file at `path`, if it was parsed.
    pub(crate) fn file(&self, path: &str) -> Option<&SourceFile> {
        self.files.iter().find(|file| file.path == path)
    }
}

/// Everything a check may use.
pub(crate) struct Env {
    pub(crate) tree: Tree,
    /// The server's base URL (`--url`).
    pub(crate) url: Option<String>,
    /// The API token for the rollback drill (`--token` or `JIDO_TOKEN`).
    pub(crate) token: Option<String>,
    /// The bound of each test-suite run.
    pub(crate) suite_timeout: Duration,
    pub(crate) progress: run::Progress,
}

/// A check: its category, its name (the plan's wording where it has one),
/// its kind, and the function that runs it.
pub(crate) struct CheckDef {
    pub(crate) category: Category,
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) run: fn(&Env) -> Outcome,
}

/// The checklist, in the plan's order.
pub(crate) fn checklist() -> Vec<CheckDef> {
    let mut checks = Vec::new();
    checks.extend(architecture::checks());
    checks.extend(state::checks());
    checks.extend(errors::checks());
    checks.extend(testing::checks());
    checks.extend(operations::checks());
    checks
}

/// A check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    Passed(Outcome),
    Failed(Outcome),
    Skipped(&'static str),
}

/// One line of the report.
#[derive(Debug)]
pub(crate) struct CheckResult {
    pub(crate) category: Category,
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) status: Status,
}

/// What to run and how to report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    /// The tree to check (`--root`); this workspace by default.
    pub(crate) root: Option<PathBuf>,
    pub(crate) static_only: bool,
    pub(crate) url: Option<String>,
    pub(crate) token: Option<String>,
    pub(crate) json: bool,
    pub(crate) suite_timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            root: None,
            static_only: false,
            url: None,
            token: None,
            json: false,
            suite_timeout: Duration::from_secs(1200),
        }
    }
}

/// The usage line, also the reference the runbook check holds commands to.
pub(crate) const USAGE: &str = "usage: cargo xtask readiness [--static] [--url URL] [--token TOKEN] [--format text|json] [--suite-timeout SECONDS] [--root DIR]";

/// Parses the arguments after `readiness`.
pub(crate) fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value; {USAGE}"))
        };
        match arg.as_str() {
            "--static" => options.static_only = true,
            "--url" => options.url = Some(value("--url")?),
            "--token" => options.token = Some(value("--token")?),
            "--root" => options.root = Some(PathBuf::from(value("--root")?)),
            "--format" => match value("--format")?.as_str() {
                "text" => options.json = false,
                "json" => options.json = true,
                other => return Err(format!("unknown format `{other}`; {USAGE}")),
            },
            "--suite-timeout" => {
                let text = value("--suite-timeout")?;
                let seconds: u64 = text
                    .parse()
                    .ok()
                    .filter(|seconds| *seconds > 0)
                    .ok_or_else(|| {
                        format!("--suite-timeout takes a positive number of seconds, not `{text}`")
                    })?;
                options.suite_timeout = Duration::from_secs(seconds);
            }
            other => return Err(format!("unknown argument `{other}`; {USAGE}")),
        }
    }
    Ok(options)
}

/// Runs the selected checks over the workspace at `root`.
pub(crate) fn evaluate(root: &Path, options: &Options) -> Vec<CheckResult> {
    let env = Env {
        tree: Tree::load(root),
        url: options.url.clone(),
        token: options
            .token
            .clone()
            .or_else(|| std::env::var("JIDO_TOKEN").ok()),
        suite_timeout: options.suite_timeout,
        progress: run::Progress::stderr(),
    };
    checklist()
        .into_iter()
        .map(|check| {
            let skipped = match check.kind {
                Kind::Static => None,
                Kind::Build if options.static_only => Some("needs a build (run without --static)"),
                Kind::Build => None,
                Kind::Server if options.url.is_none() => Some("needs a running server (--url URL)"),
                Kind::Server => None,
            };
            let status = match skipped {
                Some(reason) => Status::Skipped(reason),
                None => {
                    let outcome = (check.run)(&env);
                    if outcome.passed() {
                        Status::Passed(outcome)
                    } else {
                        Status::Failed(outcome)
                    }
                }
            };
            CheckResult {
                category: check.category,
                name: check.name,
                kind: check.kind,
                status,
            }
        })
        .collect()
}

/// Counts of (passed, failed, skipped).
fn counts<'a>(results: impl Iterator<Item = &'a CheckResult>) -> (usize, usize, usize) {
    results.fold((0, 0, 0), |(p, f, s), result| match result.status {
        Status::Passed(_) => (p + 1, f, s),
        Status::Failed(_) => (p, f + 1, s),
        Status::Skipped(_) => (p, f, s + 1),
    })
}

/// The report as text: categories, one line per check, findings under it,
/// a summary per category and overall.
pub(crate) fn render_text(results: &[CheckResult]) -> String {
    let mut out = String::from("PRODUCTION READINESS CHECKLIST\n");
    for category in Category::ALL {
        let in_category: Vec<&CheckResult> = results
            .iter()
            .filter(|result| result.category == category)
            .collect();
        out.push_str(&format!("\n{}\n", category.key().to_uppercase()));
        for result in &in_category {
            match &result.status {
                Status::Passed(outcome) => {
                    out.push_str(&format!("  ✅ {}: {}\n", result.name, outcome.summary));
                }
                Status::Failed(outcome) => {
                    out.push_str(&format!("  ❌ {}: {}\n", result.name, outcome.summary));
                    for finding in &outcome.findings {
                        out.push_str(&format!("       → {finding}\n"));
                    }
                }
                Status::Skipped(reason) => {
                    out.push_str(&format!("  ⏭  {}: skipped, {reason}\n", result.name));
                }
            }
        }
        let (passed, failed, skipped) = counts(in_category.iter().copied());
        out.push_str(&format!(
            "  Summary: {passed}/{} checks passed{}\n",
            passed + failed,
            skipped_note(skipped)
        ));
    }
    let (passed, failed, skipped) = counts(results.iter());
    out.push_str(&format!(
        "{}\nOVERALL: {passed}/{} checks passed{}\n",
        "═".repeat(50),
        passed + failed,
        skipped_note(skipped)
    ));
    if failed == 0 {
        out.push_str("✅ every check that ran passed\n");
    } else {
        out.push_str(&format!("❌ {failed} check(s) failed: not ready\n"));
    }
    out
}

fn skipped_note(skipped: usize) -> String {
    if skipped == 0 {
        String::new()
    } else {
        format!(", {skipped} skipped")
    }
}

/// The report as JSON, for machines.
pub(crate) fn render_json(results: &[CheckResult]) -> serde_json::Value {
    let categories: Vec<serde_json::Value> = Category::ALL
        .iter()
        .map(|category| {
            let in_category: Vec<&CheckResult> = results
                .iter()
                .filter(|result| result.category == *category)
                .collect();
            let (passed, failed, skipped) = counts(in_category.iter().copied());
            let checks: Vec<serde_json::Value> = in_category
                .iter()
                .map(|result| {
                    let (status, summary, findings) = match &result.status {
                        Status::Passed(outcome) => ("passed", outcome.summary.clone(), &[][..]),
                        Status::Failed(outcome) => {
                            ("failed", outcome.summary.clone(), &outcome.findings[..])
                        }
                        Status::Skipped(reason) => ("skipped", (*reason).to_owned(), &[][..]),
                    };
                    serde_json::json!({
                        "name": result.name,
                        "kind": result.kind.key(),
                        "status": status,
                        "summary": summary,
                        "findings": findings.iter().map(|finding| serde_json::json!({
                            "path": finding.path,
                            "line": finding.line,
                            "message": finding.message,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            serde_json::json!({
                "category": category.key(),
                "passed": passed,
                "failed": failed,
                "skipped": skipped,
                "checks": checks,
            })
        })
        .collect();
    let (passed, failed, skipped) = counts(results.iter());
    serde_json::json!({
        "ready": failed == 0,
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "categories": categories,
    })
}

/// `cargo xtask readiness ...`.
pub(crate) fn run<I: IntoIterator<Item = String>>(args: I) -> ExitCode {
    let options = match parse_args(args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("readiness: {message}");
            return ExitCode::from(2);
        }
    };
    let root = options
        .root
        .clone()
        .unwrap_or_else(|| crate::workspace_root().to_path_buf());
    let results = evaluate(&root, &options);
    let text = if options.json {
        format!("{:#}\n", render_json(&results))
    } else {
        render_text(&results)
    };
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        eprintln!("readiness: cannot write the report to stdout");
        return ExitCode::from(2);
    }
    let (_, failed, _) = counts(results.iter());
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
pub(crate) mod test_tree {
    //! Fixture trees for the readiness checks: tidy's test tree plus the
    //! files a check reads.

    use std::time::Duration;

    use tempfile::TempDir;

    use super::{Env, Outcome, Tree, run};

    /// An environment over a tree of `files` (with tidy's test
    /// ARCHITECTURE.md unless one is given).
    pub(crate) fn fixture(files: &[(&str, &str)]) -> (TempDir, Env) {
        let directory = crate::tidy::test_tree::tree(files);
        let env = env_at(directory.path());
        (directory, env)
    }

    /// An environment over the tree at `root`.
    pub(crate) fn env_at(root: &std::path::Path) -> Env {
        Env {
            tree: Tree::load(root),
            url: None,
            token: None,
            suite_timeout: Duration::from_secs(600),
            progress: run::Progress::silent(),
        }
    }

    /// The places (path, line) of an outcome's findings.
    pub(crate) fn places(outcome: &Outcome) -> Vec<(String, usize)> {
        outcome
            .findings
            .iter()
            .map(|finding| (finding.path.clone(), finding.line))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_parsed_and_refused_clearly() {
        let options = parse_args(
            [
                "--static",
                "--url",
                "http://127.0.0.1:4000",
                "--format",
                "json",
            ]
            .map(String::from),
        )
        .expect("valid");
        assert!(options.static_only && options.json);
        assert_eq!(options.url.as_deref(), Some("http://127.0.0.1:4000"));
        assert!(parse_args(["--format".to_owned(), "xml".to_owned()]).is_err());
        assert!(parse_args(["--url".to_owned()]).is_err());
        assert!(parse_args(["--suite-timeout".to_owned(), "0".to_owned()]).is_err());
        assert!(parse_args(["--fast".to_owned()]).is_err());
    }

    fn result(category: Category, name: &'static str, status: Status) -> CheckResult {
        CheckResult {
            category,
            name,
            kind: Kind::Static,
            status,
        }
    }

    #[test]
    fn the_report_groups_summarises_and_names_places() {
        let results = vec![
            result(
                Category::Architecture,
                "A",
                Status::Passed(Outcome::pass("fine")),
            ),
            result(
                Category::Architecture,
                "B",
                Status::Failed(Outcome::fail(
                    "one problem",
                    Finding::new("x/src/lib.rs", 3, "bad"),
                )),
            ),
            result(Category::Operations, "C", Status::Skipped("needs --url")),
        ];
        let text = render_text(&results);
        assert!(text.contains("ARCHITECTURE\n  ✅ A: fine\n  ❌ B: one problem\n       → x/src/lib.rs:3: bad\n  Summary: 1/2 checks passed\n"), "{text}");
        assert!(text.contains("OPERATIONS\n  ⏭  C: skipped, needs --url\n  Summary: 0/0 checks passed, 1 skipped\n"), "{text}");
        assert!(
            text.contains("OVERALL: 1/2 checks passed, 1 skipped"),
            "{text}"
        );
        assert!(text.contains("not ready"), "{text}");
        let json = render_json(&results);
        assert_eq!(json["ready"], false);
        assert_eq!(json["failed"], 1);
        assert_eq!(json["categories"][0]["checks"][1]["findings"][0]["line"], 3);
        assert_eq!(json["categories"][4]["checks"][0]["status"], "skipped");
    }

    /// `--static --url`: the server checks run (here against a good
    /// fixture server, and pass), the build checks are skipped, the static
    /// ones run.
    #[test]
    fn the_selection_follows_the_options() {
        let tree = Tree::load(crate::workspace_root());
        let gauges = operations::health_gauges(&tree).expect("gauges");
        let url =
            operations::test_server::start(1, gauges, operations::test_server::Faults::default());
        let options = Options {
            static_only: true,
            url: Some(url),
            token: Some("secret".to_owned()),
            ..Options::default()
        };
        let results = evaluate(crate::workspace_root(), &options);
        assert_eq!(results.len(), checklist().len());
        for result in &results {
            match result.kind {
                Kind::Build => assert!(matches!(result.status, Status::Skipped(_)), "{result:?}"),
                Kind::Server => assert!(matches!(result.status, Status::Passed(_)), "{result:?}"),
                Kind::Static => assert!(!matches!(result.status, Status::Skipped(_)), "{result:?}"),
            }
        }
        let without_url = evaluate(
            crate::workspace_root(),
            &Options {
                static_only: true,
                ..Options::default()
            },
        );
        assert!(
            without_url
                .iter()
                .filter(|result| result.kind == Kind::Server)
                .all(|result| matches!(result.status, Status::Skipped(_)))
        );
    }

    #[test]
    fn every_check_has_a_unique_name_and_every_category_has_checks() {
        let checks = checklist();
        let mut names: Vec<&str> = checks.iter().map(|check| check.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), checks.len());
        for category in Category::ALL {
            assert!(checks.iter().any(|check| check.category == category));
        }
    }
}
