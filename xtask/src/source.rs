//! The workspace's Rust sources, read as code: every `.rs` file parsed with
//! `syn`, and a walk over each file that tells rules where they are (test
//! code or not, which `use` imports name what).
//!
//! Shared by `cargo xtask tidy` and, later, `cargo xtask readiness`, so
//! both agree on what a file, a line and test code are. This module is not
//! for rules themselves; each lives in its own module under `tidy/`.

use std::fmt;
use std::path::{Path, PathBuf};

use proc_macro2::Span;
use syn::visit::{self, Visit};

/// Directories never read: build output, version control, editor state.
const SKIPPED_DIRECTORIES: &[&str] = &["target", ".git"];

/// Directory names whose files are test code wherever they sit.
const TEST_DIRECTORIES: &[&str] = &["tests", "benches", "examples"];

/// One parsed source file.
pub(crate) struct SourceFile {
    /// The path relative to the workspace root, with `/` separators.
    pub(crate) path: String,
    /// The parsed file.
    pub(crate) syntax: syn::File,
}

impl SourceFile {
    /// Whether the whole file is test code (under `tests/`, `benches/` or
    /// `examples/`).
    pub(crate) fn is_test_file(&self) -> bool {
        is_test_path(&self.path)
    }

    /// The first path component: the crate's folder at the top level.
    pub(crate) fn crate_folder(&self) -> &str {
        self.path.split('/').next().unwrap_or("")
    }
}

/// Whether `path` (relative, `/`-separated) lies in a test directory.
pub(crate) fn is_test_path(path: &str) -> bool {
    let components: Vec<&str> = path.split('/').collect();
    // The last component is the file name.
    components[..components.len().saturating_sub(1)]
        .iter()
        .any(|component| TEST_DIRECTORIES.contains(component))
}

/// A file that could not be read or parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoadError {
    pub(crate) path: String,
    pub(crate) line: usize,
    pub(crate) message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path, self.line, self.message)
    }
}

/// Reads and parses every `.rs` file under `root`, sorted by path. Files
/// that cannot be read or parsed are returned as errors beside the others.
pub(crate) fn load(root: &Path) -> (Vec<SourceFile>, Vec<LoadError>) {
    let mut paths = Vec::new();
    let mut errors = Vec::new();
    collect(root, root, &mut paths, &mut errors);
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let relative = relative_path(root, &path);
        match std::fs::read_to_string(&path) {
            Ok(text) => match syn::parse_file(&text) {
                Ok(syntax) => files.push(SourceFile {
                    path: relative,
                    syntax,
                }),
                Err(error) => errors.push(LoadError {
                    path: relative,
                    line: error.span().start().line,
                    message: format!("cannot parse: {error}"),
                }),
            },
            Err(error) => errors.push(LoadError {
                path: relative,
                line: 0,
                message: format!("cannot read: {error}"),
            }),
        }
    }
    (files, errors)
}

fn collect(root: &Path, directory: &Path, paths: &mut Vec<PathBuf>, errors: &mut Vec<LoadError>) {
    let entries = match std::fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(error) => {
            errors.push(LoadError {
                path: relative_path(root, directory),
                line: 0,
                message: format!("cannot list: {error}"),
            });
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !name.starts_with('.') && !SKIPPED_DIRECTORIES.contains(&name.as_ref()) {
                collect(root, &path, paths, errors);
            }
        } else if kind.is_file() && name.ends_with(".rs") {
            paths.push(path);
        }
    }
}

fn relative_path(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative
        .components()
        .map(|component| component.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// The line a span starts on (1-based).
pub(crate) fn line(span: Span) -> usize {
    span.start().line
}

/// Where a rule is looking, as the walk descends.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Context {
    /// Inside test code: a test file, a `#[cfg(test)]` item or a test
    /// function.
    pub(crate) in_test: bool,
    /// Inside a test function run on paused tokio time
    /// (`#[tokio::test(start_paused = true)]`).
    pub(crate) in_paused_test: bool,
    /// Inside a synchronous test function (`#[test] fn`): no runtime, so
    /// nothing in it waits on tokio time.
    pub(crate) in_sync_test: bool,
}

/// What a rule sees. Every method has an empty default, so a rule
/// implements only what it checks.
pub(crate) trait Rule {
    /// A call of a function named by a path (`tokio::spawn(...)`), the
    /// path resolved through the file's imports.
    fn call(&mut self, _resolved: &[String], _span: Span, _context: Context) {}
    /// A method call (`handle.spawn(...)`).
    fn method_call(&mut self, _call: &syn::ExprMethodCall, _context: Context) {}
    /// Any path written in code (expressions, types, patterns, macros),
    /// resolved through the file's imports.
    fn path(&mut self, _resolved: &[String], _span: Span, _context: Context) {}
    /// A `use` tree's full paths, one per imported name.
    fn use_path(&mut self, _path: &[String], _span: Span, _context: Context) {}
    /// An attribute, on anything.
    fn attribute(&mut self, _attribute: &syn::Attribute, _context: Context) {}
    /// An enum declaration.
    fn item_enum(&mut self, _item: &syn::ItemEnum, _context: Context) {}
}

/// Walks `file`, calling `rule` on what it meets.
pub(crate) fn walk(file: &SourceFile, rule: &mut dyn Rule) {
    let imports = Imports::of(&file.syntax);
    let mut walker = Walker {
        rule,
        imports,
        context: Context {
            in_test: file.is_test_file(),
            in_paused_test: false,
            in_sync_test: false,
        },
    };
    walker.visit_file(&file.syntax);
}

/// The names a file's `use` items bring into scope, each with its full
/// path (`sleep` -> `tokio::time::sleep`). Imports of nested modules are
/// merged: tidy reads syntax, and a name imported differently in two
/// modules of one file is rare enough to read by hand.
#[derive(Debug, Default)]
pub(crate) struct Imports {
    names: Vec<(String, Vec<String>)>,
}

impl Imports {
    pub(crate) fn of(file: &syn::File) -> Imports {
        struct Collector(Vec<(String, Vec<String>)>);
        impl<'ast> Visit<'ast> for Collector {
            fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
                for (name, path) in use_paths(&item.tree) {
                    if let Some(name) = name {
                        self.0.push((name, path));
                    }
                }
            }
        }
        let mut collector = Collector(Vec::new());
        collector.visit_file(file);
        Imports { names: collector.0 }
    }

    /// `path` with its first segment replaced by what the file imported
    /// under that name, if anything.
    pub(crate) fn resolve(&self, path: &syn::Path) -> Vec<String> {
        let segments: Vec<String> = path
            .segments
            .iter()
            .map(|segment| segment.ident.to_string())
            .collect();
        if path.leading_colon.is_some() {
            return segments;
        }
        let Some(first) = segments.first() else {
            return segments;
        };
        match self.names.iter().find(|(name, _)| name == first) {
            Some((_, full)) => full
                .iter()
                .cloned()
                .chain(segments.iter().skip(1).cloned())
                .collect(),
            None => segments,
        }
    }
}

/// Every (name in scope, full path) a use tree brings in; globs give no
/// name. `use a::b::{self, c as d}` gives (b, a::b) and (d, a::b::c).
pub(crate) fn use_paths(tree: &syn::UseTree) -> Vec<(Option<String>, Vec<String>)> {
    fn go(
        tree: &syn::UseTree,
        prefix: &mut Vec<String>,
        out: &mut Vec<(Option<String>, Vec<String>)>,
    ) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                go(&path.tree, prefix, out);
                prefix.pop();
            }
            syn::UseTree::Name(name) => {
                let ident = name.ident.to_string();
                if ident == "self" {
                    out.push((prefix.last().cloned(), prefix.clone()));
                } else {
                    let mut full = prefix.clone();
                    full.push(ident.clone());
                    out.push((Some(ident), full));
                }
            }
            syn::UseTree::Rename(rename) => {
                let mut full = prefix.clone();
                let ident = rename.ident.to_string();
                if ident != "self" {
                    full.push(ident);
                }
                out.push((Some(rename.rename.to_string()), full));
            }
            syn::UseTree::Glob(_) => out.push((None, prefix.clone())),
            syn::UseTree::Group(group) => {
                for item in &group.items {
                    go(item, prefix, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    go(tree, &mut Vec::new(), &mut out);
    out
}

/// Whether `attributes` hold `#[cfg(test)]` (or a `cfg` whose predicate
/// mentions `test`, such as `cfg(all(test, unix))`).
pub(crate) fn is_cfg_test(attributes: &[syn::Attribute]) -> bool {
    attributes
        .iter()
        .any(|attribute| attribute.path().is_ident("cfg") && mentions_ident(attribute, "test"))
}

/// Whether `attributes` mark a test function: `#[test]`, or an attribute
/// whose last path segment is `test` (`#[tokio::test]`, `#[rstest::test]`).
pub(crate) fn is_test_function(attributes: &[syn::Attribute]) -> bool {
    attributes.iter().any(|attribute| {
        attribute
            .path()
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "test")
    })
}

/// Whether a test attribute sets `start_paused = true`.
pub(crate) fn is_paused_test(attributes: &[syn::Attribute]) -> bool {
    attributes.iter().any(|attribute| {
        let is_test = attribute
            .path()
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "test");
        if !is_test {
            return false;
        }
        let Ok(list) = attribute.meta.require_list() else {
            return false;
        };
        let Ok(arguments) = list.parse_args_with(
            syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated,
        ) else {
            return false;
        };
        arguments.iter().any(|argument| match argument {
            syn::Meta::NameValue(pair) => {
                pair.path.is_ident("start_paused")
                    && matches!(
                        &pair.value,
                        syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Bool(value), .. }) if value.value
                    )
            }
            _ => false,
        })
    })
}

/// Whether the attribute's arguments contain the identifier `ident`
/// anywhere (so `cfg_attr(miri, ignore)` mentions `ignore`).
pub(crate) fn mentions_ident(attribute: &syn::Attribute, ident: &str) -> bool {
    fn search(tokens: proc_macro2::TokenStream, ident: &str) -> bool {
        tokens.into_iter().any(|token| match token {
            proc_macro2::TokenTree::Ident(found) => found == ident,
            proc_macro2::TokenTree::Group(group) => search(group.stream(), ident),
            _ => false,
        })
    }
    match &attribute.meta {
        syn::Meta::List(list) => search(list.tokens.clone(), ident),
        _ => false,
    }
}

struct Walker<'rule> {
    rule: &'rule mut dyn Rule,
    imports: Imports,
    context: Context,
}

impl Walker<'_> {
    /// Runs `inner` with the context an item's attributes give.
    fn with_attributes(&mut self, attributes: &[syn::Attribute], inner: impl FnOnce(&mut Self)) {
        let saved = self.context;
        if is_cfg_test(attributes) || is_test_function(attributes) {
            self.context.in_test = true;
        }
        if is_paused_test(attributes) {
            self.context.in_paused_test = true;
        }
        inner(self);
        self.context = saved;
    }

    /// Runs `inner` inside a function: a synchronous test function sets
    /// `in_sync_test`, any other function clears it.
    fn in_function(
        &mut self,
        attributes: &[syn::Attribute],
        signature: &syn::Signature,
        inner: impl FnOnce(&mut Self),
    ) {
        let saved = self.context.in_sync_test;
        self.context.in_sync_test = is_test_function(attributes) && signature.asyncness.is_none();
        self.with_attributes(attributes, inner);
        self.context.in_sync_test = saved;
    }
}

impl<'ast> Visit<'ast> for Walker<'_> {
    fn visit_attribute(&mut self, attribute: &'ast syn::Attribute) {
        self.rule.attribute(attribute, self.context);
        visit::visit_attribute(self, attribute);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        self.with_attributes(&item.attrs, |walker| visit::visit_item_mod(walker, item));
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        self.in_function(&item.attrs, &item.sig, |walker| {
            visit::visit_item_fn(walker, item)
        });
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        self.in_function(&item.attrs, &item.sig, |walker| {
            visit::visit_impl_item_fn(walker, item)
        });
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        self.with_attributes(&item.attrs, |walker| visit::visit_item_impl(walker, item));
    }

    fn visit_item_enum(&mut self, item: &'ast syn::ItemEnum) {
        self.with_attributes(&item.attrs, |walker| {
            walker.rule.item_enum(item, walker.context);
            visit::visit_item_enum(walker, item);
        });
    }

    fn visit_item_struct(&mut self, item: &'ast syn::ItemStruct) {
        self.with_attributes(&item.attrs, |walker| visit::visit_item_struct(walker, item));
    }

    fn visit_item_const(&mut self, item: &'ast syn::ItemConst) {
        self.with_attributes(&item.attrs, |walker| visit::visit_item_const(walker, item));
    }

    fn visit_item_static(&mut self, item: &'ast syn::ItemStatic) {
        self.with_attributes(&item.attrs, |walker| visit::visit_item_static(walker, item));
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.with_attributes(&item.attrs, |walker| {
            let span = syn::spanned::Spanned::span(&item.tree);
            for (_, path) in use_paths(&item.tree) {
                walker.rule.use_path(&path, span, walker.context);
            }
            visit::visit_item_use(walker, item);
        });
    }

    fn visit_stmt(&mut self, statement: &'ast syn::Stmt) {
        let attributes: &[syn::Attribute] = match statement {
            syn::Stmt::Local(local) => &local.attrs,
            syn::Stmt::Macro(mac) => &mac.attrs,
            _ => &[],
        };
        self.with_attributes(attributes, |walker| visit::visit_stmt(walker, statement));
    }

    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        if let syn::Expr::Path(path) = &*call.func {
            let resolved = self.imports.resolve(&path.path);
            self.rule.call(
                &resolved,
                syn::spanned::Spanned::span(&path.path),
                self.context,
            );
        }
        visit::visit_expr_call(self, call);
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        self.rule.method_call(call, self.context);
        visit::visit_expr_method_call(self, call);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let resolved = self.imports.resolve(path);
        self.rule
            .path(&resolved, syn::spanned::Spanned::span(path), self.context);
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        // Macro bodies are tokens, not syntax; read the common ones that
        // hold expressions (assert!, format!, vec!, select! arms are not).
        visit::visit_macro(self, mac);
        if let Ok(expressions) = mac.parse_body_with(
            syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated,
        ) {
            for expression in &expressions {
                self.visit_expr(expression);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imports(code: &str) -> Imports {
        Imports::of(&syn::parse_file(code).expect("valid test code"))
    }

    fn resolve(imports: &Imports, path: &str) -> String {
        imports
            .resolve(&syn::parse_str::<syn::Path>(path).expect("a path"))
            .join("::")
    }

    #[test]
    fn imports_resolve_the_first_segment() {
        let imports = imports(
            "use tokio::time::{self, sleep as nap}; use std::thread; use tokio::task::spawn;",
        );
        assert_eq!(resolve(&imports, "nap"), "tokio::time::sleep");
        assert_eq!(resolve(&imports, "time::sleep"), "tokio::time::sleep");
        assert_eq!(resolve(&imports, "thread::spawn"), "std::thread::spawn");
        assert_eq!(resolve(&imports, "spawn"), "tokio::task::spawn");
        assert_eq!(resolve(&imports, "other::spawn"), "other::spawn");
    }

    #[test]
    fn test_paths_and_attributes_are_recognised() {
        assert!(is_test_path("foundation-core/tests/it/main.rs"));
        assert!(is_test_path("benches/benches/actors.rs"));
        assert!(is_test_path("foundation-flags/examples/flags_tour.rs"));
        assert!(!is_test_path("foundation-core/src/task.rs"));
        assert!(!is_test_path("tests.rs"));

        let item: syn::ItemFn =
            syn::parse_str("#[tokio::test(start_paused = true)] async fn t() {}").expect("fn");
        assert!(is_test_function(&item.attrs));
        assert!(is_paused_test(&item.attrs));
        let item: syn::ItemFn =
            syn::parse_str("#[tokio::test(flavor = \"multi_thread\")] async fn t() {}")
                .expect("fn");
        assert!(is_test_function(&item.attrs));
        assert!(!is_paused_test(&item.attrs));
        let item: syn::ItemMod = syn::parse_str("#[cfg(all(test, unix))] mod m {}").expect("mod");
        assert!(is_cfg_test(&item.attrs));
    }
}
