//! Every public enum is `#[non_exhaustive]`, so adding a variant breaks no
//! user, unless ARCHITECTURE.md lists it as closed ("Closed public
//! enums"), with the reason it will never grow.
//!
//! Public means declared `pub` (the workspace lint `unreachable_pub` keeps
//! `pub` for what is reachable). Test code is exempt.

use super::Violation;
use crate::allowlist::AllowList;
use crate::source::{self, Context, Rule, SourceFile};

pub(crate) const RULE: &str = "non-exhaustive";

struct Enums<'a> {
    path: &'a str,
    allow: &'a AllowList,
    found: Vec<Violation>,
}

impl Rule for Enums<'_> {
    fn item_enum(&mut self, item: &syn::ItemEnum, context: Context) {
        if context.in_test || !matches!(item.vis, syn::Visibility::Public(_)) {
            return;
        }
        let non_exhaustive = item.attrs.iter().any(|attribute| {
            attribute.path().is_ident("non_exhaustive")
                || (attribute.path().is_ident("cfg_attr")
                    && source::mentions_ident(attribute, "non_exhaustive"))
        });
        let name = item.ident.to_string();
        if non_exhaustive || self.allow.allows_exhaustive(self.path, &name) {
            return;
        }
        self.found.push(Violation {
            path: self.path.to_owned(),
            line: source::line(item.ident.span()),
            rule: RULE,
            message: format!(
                "public enum `{name}` is exhaustive: add #[non_exhaustive], or list it under \"Closed public enums\" in ARCHITECTURE.md with the reason it cannot grow"
            ),
        });
    }
}

pub(crate) fn check(file: &SourceFile, allow: &AllowList) -> Vec<Violation> {
    if file.is_test_file() {
        return Vec::new();
    }
    let mut rule = Enums {
        path: &file.path,
        allow,
        found: Vec::new(),
    };
    source::walk(file, &mut rule);
    rule.found
}

#[cfg(test)]
mod tests {
    use crate::tidy::test_tree::{places, violations_of};

    #[test]
    fn exhaustive_public_enums_are_named_unless_listed() {
        let bad = "//! Enums.\npub enum Grows {\n    A,\n}\n\npub enum Side { Left, Right }\n\n#[non_exhaustive]\npub enum Fine { A }\n\npub(crate) enum Internal { A }\n\nenum Private { A }\n";
        let violations = violations_of(super::RULE, &[("site/src/lib.rs", bad)]);
        assert_eq!(places(&violations), vec![("site/src/lib.rs".to_owned(), 2)]);
        assert!(violations[0].message.contains("`Grows`"));

        // The closed list names a file too: the same name elsewhere fails.
        let elsewhere = violations_of(super::RULE, &[("site/src/other.rs", bad)]);
        assert_eq!(
            places(&elsewhere),
            vec![
                ("site/src/other.rs".to_owned(), 2),
                ("site/src/other.rs".to_owned(), 6)
            ]
        );
    }

    #[test]
    fn test_code_is_exempt() {
        let tests = "//! Tests.\npub enum Op { A, B }\n";
        assert_eq!(
            violations_of(super::RULE, &[("site/tests/it.rs", tests)]),
            vec![]
        );
        let cfg_test = "//! Lib.\n#[cfg(test)]\nmod tests {\n    pub enum Op { A }\n}\n";
        assert_eq!(
            violations_of(super::RULE, &[("site/src/lib.rs", cfg_test)]),
            vec![]
        );
    }
}
