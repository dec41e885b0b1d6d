//! `cargo xtask tidy`: the architecture invariants that are about code,
//! checked on the code as parsed by `syn` (so comments, strings and doc
//! examples are never mistaken for code).
//!
//! Each rule is a module; each reports violations with the file and line.
//! Macro bodies are read when they are comma-separated expressions
//! (`assert!`, `format!`, `vec![a, b]`); others (`tokio::select!`,
//! `macro_rules!`) are tokens to `syn` and are not checked.
//! The allow-lists come from ARCHITECTURE.md (see `allowlist.rs`). This
//! module is not for the layer rule, which reads `cargo metadata`
//! (`layering.rs`).

mod enums;
pub(crate) mod ignore;
mod redb_names;
pub(crate) mod sleep;
pub(crate) mod spawn;

use std::fmt;
use std::path::Path;
use std::process::ExitCode;

use crate::allowlist::{self, AllowList};
use crate::source::{self, SourceFile};

/// One broken rule, at a place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// The file, relative to the workspace root.
    pub(crate) path: String,
    /// The line (1-based; 0 when the whole file is meant).
    pub(crate) line: usize,
    /// The rule's short name.
    pub(crate) rule: &'static str,
    pub(crate) message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: [{}] {}",
            self.path, self.line, self.rule, self.message
        )
    }
}

/// A rule: what it checks in one file.
pub(crate) type Check = fn(&SourceFile, &AllowList) -> Vec<Violation>;

/// Every rule, by name.
pub(crate) const RULES: &[(&str, Check)] = &[
    (spawn::RULE, spawn::check),
    (redb_names::RULE, redb_names::check),
    (sleep::RULE, sleep::check),
    (ignore::RULE, ignore::check),
    (enums::RULE, enums::check),
];

/// Runs every rule over the workspace at `root`.
pub(crate) fn check_tree(root: &Path) -> Vec<Violation> {
    let allow = match allowlist::load(root) {
        Ok(allow) => allow,
        Err(error) => {
            return vec![Violation {
                path: "ARCHITECTURE.md".to_owned(),
                line: error.line,
                rule: "allow-list",
                message: error.message,
            }];
        }
    };
    let (files, errors) = source::load(root);
    let mut violations: Vec<Violation> = errors
        .into_iter()
        .map(|error| Violation {
            path: error.path,
            line: error.line,
            rule: "parse",
            message: error.message,
        })
        .collect();
    for file in &files {
        for (_, check) in RULES {
            violations.extend(check(file, &allow));
        }
    }
    violations.sort_by(|a, b| (&a.path, a.line, a.rule).cmp(&(&b.path, b.line, b.rule)));
    violations
}

pub(crate) fn run() -> ExitCode {
    let violations = check_tree(crate::workspace_root());
    if violations.is_empty() {
        eprintln!(
            "tidy: no violations ({})",
            RULES
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", ")
        );
        ExitCode::SUCCESS
    } else {
        for violation in &violations {
            eprintln!("{violation}");
        }
        eprintln!("tidy: {} violation(s)", violations.len());
        ExitCode::FAILURE
    }
}

#[cfg(test)]
pub(crate) mod test_tree {
    //! Temporary workspaces, each a tiny crate, to test a rule on a bad
    //! tree and a good one.

    use std::path::Path;

    use tempfile::TempDir;

    use super::{Violation, check_tree};

    /// The ARCHITECTURE.md of test trees: one spawn site, one catch_unwind
    /// site, one closed enum.
    pub(crate) const ARCHITECTURE: &str = "# Architecture\n\n## Allowed spawn sites\n\n```text\nsite/src/runtime.rs   the runtime's own tasks\n```\n\n## Allowed catch_unwind sites\n\n```text\nsite/src/boundary.rs   the one panic boundary\n```\n\n## Closed public enums\n\n```text\nsite/src/lib.rs Side   two sides, forever\n```\n";

    /// A tree holding `files` (path, text) and the test ARCHITECTURE.md.
    pub(crate) fn tree(files: &[(&str, &str)]) -> TempDir {
        let directory = tempfile::tempdir().expect("a temporary directory");
        write(directory.path(), "ARCHITECTURE.md", ARCHITECTURE);
        for (path, text) in files {
            write(directory.path(), path, text);
        }
        directory
    }

    fn write(root: &Path, path: &str, text: &str) {
        let full = root.join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("create the test folders");
        }
        std::fs::write(full, text).expect("write a test file");
    }

    /// The violations of one rule in a tree of `files`.
    pub(crate) fn violations_of(rule: &str, files: &[(&str, &str)]) -> Vec<Violation> {
        let directory = tree(files);
        check_tree(directory.path())
            .into_iter()
            .filter(|violation| violation.rule == rule)
            .collect()
    }

    /// (path, line) of each violation.
    pub(crate) fn places(violations: &[Violation]) -> Vec<(String, usize)> {
        violations
            .iter()
            .map(|violation| (violation.path.clone(), violation.line))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_tree::tree;
    use super::*;

    #[test]
    fn a_clean_tree_passes_every_rule() {
        let directory = tree(&[(
            "site/src/lib.rs",
            "//! A crate.\n#[non_exhaustive]\npub enum Grows { A }\npub enum Side { Left, Right }\npub fn f() -> u8 { 1 }\n",
        )]);
        assert_eq!(check_tree(directory.path()), vec![]);
    }

    #[test]
    fn an_unparsable_file_and_a_missing_list_are_violations() {
        let directory = tree(&[("site/src/lib.rs", "fn broken( {")]);
        let violations = check_tree(directory.path());
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].rule, "parse");
        assert_eq!(violations[0].path, "site/src/lib.rs");

        std::fs::write(directory.path().join("ARCHITECTURE.md"), "# Nothing\n").expect("overwrite");
        let violations = check_tree(directory.path());
        assert_eq!(violations[0].rule, "allow-list");
    }
}
