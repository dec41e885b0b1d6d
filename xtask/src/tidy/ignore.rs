//! No `#[ignore]`d test: a test that does not run proves nothing. Also
//! caught inside `cfg_attr(..., ignore)`.

use super::Violation;
use crate::allowlist::AllowList;
use crate::source::{self, Context, Rule, SourceFile};

pub(crate) const RULE: &str = "ignore";

struct Ignores<'a> {
    path: &'a str,
    found: Vec<Violation>,
}

impl Rule for Ignores<'_> {
    fn attribute(&mut self, attribute: &syn::Attribute, _context: Context) {
        let ignored = attribute.path().is_ident("ignore")
            || (attribute.path().is_ident("cfg_attr")
                && source::mentions_ident(attribute, "ignore"));
        if ignored {
            self.found.push(Violation {
                path: self.path.to_owned(),
                line: source::line(attribute.pound_token.span),
                rule: RULE,
                message: "`#[ignore]`: make the test deterministic and fast, or delete it"
                    .to_owned(),
            });
        }
    }
}

pub(crate) fn check(file: &SourceFile, _allow: &AllowList) -> Vec<Violation> {
    let mut rule = Ignores {
        path: &file.path,
        found: Vec::new(),
    };
    source::walk(file, &mut rule);
    rule.found
}

#[cfg(test)]
mod tests {
    use crate::tidy::test_tree::{places, violations_of};

    #[test]
    fn ignored_tests_are_named() {
        let bad = "//! Tests.\n#[test]\n#[ignore]\nfn slow() {}\n\n#[test]\n#[ignore = \"flaky\"]\nfn flaky() {}\n\n#[test]\n#[cfg_attr(miri, ignore)]\nfn no_miri() {}\n";
        let violations = violations_of(super::RULE, &[("site/tests/it.rs", bad)]);
        assert_eq!(
            places(&violations),
            vec![
                ("site/tests/it.rs".to_owned(), 3),
                ("site/tests/it.rs".to_owned(), 7),
                ("site/tests/it.rs".to_owned(), 11)
            ]
        );
    }

    #[test]
    fn tests_that_run_pass() {
        let good =
            "//! Tests.\n/// Not #[ignore]d.\n#[test]\nfn fast() { let _ = \"#[ignore]\"; }\n";
        assert_eq!(
            violations_of(super::RULE, &[("site/tests/it.rs", good)]),
            vec![]
        );
    }
}
