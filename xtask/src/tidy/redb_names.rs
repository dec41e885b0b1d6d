//! Only foundation-persist (and a future `foundation-persist-*` crate)
//! knows redb: no path through `redb` (`use redb`, `redb::Database`,
//! `::redb::...`) in any other crate, test code included. The one other
//! folder allowed is `benches`, which stands outside the layers (nothing
//! depends on it) and measures the store against raw redb in the same run.

use proc_macro2::Span;

use super::Violation;
use crate::allowlist::AllowList;
use crate::source::{self, Context, Rule, SourceFile};

pub(crate) const RULE: &str = "redb";

struct RedbNames<'a> {
    path: &'a str,
    found: Vec<Violation>,
}

impl RedbNames<'_> {
    fn report(&mut self, span: Span, path: &[String]) {
        let line = source::line(span);
        // One report per line: a `use` is seen as a use and as a path.
        if self.found.last().is_some_and(|last| last.line == line) {
            return;
        }
        self.found.push(Violation {
            path: self.path.to_owned(),
            line,
            rule: RULE,
            message: format!(
                "`{}` names redb outside foundation-persist; only foundation-persist knows redb",
                path.join("::")
            ),
        });
    }
}

impl Rule for RedbNames<'_> {
    fn path(&mut self, resolved: &[String], span: Span, _context: Context) {
        if resolved.first().is_some_and(|first| first == "redb") {
            self.report(span, resolved);
        }
    }

    fn use_path(&mut self, path: &[String], span: Span, _context: Context) {
        if path.first().is_some_and(|first| first == "redb") {
            self.report(span, path);
        }
    }
}

/// Whether files of this crate folder may name redb.
fn knows_redb(crate_folder: &str) -> bool {
    crate_folder == "foundation-persist"
        || crate_folder.starts_with("foundation-persist-")
        || crate_folder == "benches"
}

pub(crate) fn check(file: &SourceFile, _allow: &AllowList) -> Vec<Violation> {
    if knows_redb(file.crate_folder()) {
        return Vec::new();
    }
    let mut rule = RedbNames {
        path: &file.path,
        found: Vec::new(),
    };
    source::walk(file, &mut rule);
    // `extern crate redb;`
    for item in &file.syntax.items {
        if let syn::Item::ExternCrate(item) = item
            && item.ident == "redb"
        {
            rule.report(item.ident.span(), &["redb".to_owned()]);
        }
    }
    rule.found
}

#[cfg(test)]
mod tests {
    use crate::tidy::test_tree::{places, violations_of};

    const BAD: &str = "//! Knows redb.\nuse redb::Database;\n\npub fn open() {\n    let _ = ::redb::Builder::new();\n}\n\n#[cfg(test)]\nmod tests {\n    fn t(_: redb::ReadTransaction) {}\n}\n";

    #[test]
    fn redb_outside_persist_is_named() {
        let violations = violations_of(super::RULE, &[("site/src/lib.rs", BAD)]);
        assert_eq!(
            places(&violations),
            vec![
                ("site/src/lib.rs".to_owned(), 2),
                ("site/src/lib.rs".to_owned(), 5),
                ("site/src/lib.rs".to_owned(), 10)
            ]
        );
    }

    #[test]
    fn persist_crates_may_name_redb() {
        let good = "//! Fine.\npub fn f() { let _text = \"redb::Database\"; }\n";
        assert_eq!(
            violations_of(
                super::RULE,
                &[
                    ("foundation-persist/src/lib.rs", BAD),
                    ("foundation-persist-redb/src/lib.rs", BAD),
                    ("benches/benches/persist.rs", BAD),
                    ("site/src/lib.rs", good),
                ]
            ),
            vec![]
        );
    }
}
