//! Error handling: one error type in public APIs, no catch-all handler that
//! swallows errors, and the panic boundaries where they are documented.
//!
//! - Single error type: no public signature of our product crates (not
//!   xtask, not benches, not test code) returns `Result<_, String>`,
//!   `Result<_, &str>` or a `Box<dyn Error>`, and every error type in a
//!   public `Result` is `foundation_error::Error` or converts into it (an
//!   `impl From<X> for Error` in the tree), so errors crossing crate
//!   boundaries are the one type.
//! - No catch-all handlers: no `let _ =` on a call of a function of ours
//!   that returns a `Result` (by name: a name that only ever returns a
//!   `Result` in our crates, and is not one of the std/tokio names in
//!   [`FOREIGN`]) unless the line before it is a `//` comment saying why
//!   the error cannot matter; no `.ok()` whose value is dropped; no
//!   `catch_unwind` outside ARCHITECTURE.md's "Allowed catch_unwind
//!   sites".
//! - Error boundaries: every listed catch_unwind site exists and catches.
//!
//! This module reads syntax, not types: a name shared by a `Result` and a
//! non-`Result` function is not judged (said in the summary).

use std::collections::{BTreeSet, HashSet};

use syn::spanned::Spanned;
use syn::visit::{self, Visit};

use super::{Category, CheckDef, Env, Finding, Kind, Outcome, Tree};
use crate::source::{self, Imports, SourceFile};

pub(crate) fn checks() -> Vec<CheckDef> {
    let check = |name, run| CheckDef {
        category: Category::ErrorHandling,
        name,
        kind: Kind::Static,
        run,
    };
    vec![
        check("Single error type used", single_error_type),
        check("No catch-all handlers", no_catch_all),
        check("Error boundaries in place", error_boundaries),
    ]
}

/// Our crates' names as written in paths.
const OUR_ROOTS: &[&str] = &[
    "crate",
    "self",
    "super",
    "foundation_error",
    "foundation_core",
    "foundation_flags",
    "foundation_persist",
    "jido_agents",
    "deploy_monitor",
    "jido_workflow",
    "jido_system",
];

/// Names of std and tokio methods that return a `Result` and are dropped
/// on purpose in ordinary code (`OnceLock::set`, a channel's `send`, a
/// watch's `wait_for`): a name here is not judged, even when a function
/// of ours has it too, since syntax cannot tell the receivers apart.
pub(crate) const FOREIGN: &[&str] = &[
    "set",
    "send",
    "try_send",
    "recv",
    "try_recv",
    "wait_for",
    "changed",
    "join",
    "lock",
    "try_lock",
    "flush",
    "write",
    "write_all",
    "send_replace",
    "wait",
    "try_wait",
    "kill",
];

/// Visits the non-test items of a file (skipping `#[cfg(test)]` modules
/// and test functions), calling `on_signature` for each public signature:
/// `pub fn`s, `pub` methods of inherent impls, methods of `pub` traits.
struct PublicSignatures<'a> {
    on_signature: &'a mut dyn FnMut(&syn::Signature),
}

impl<'ast> Visit<'ast> for PublicSignatures<'_> {
    fn visit_item_mod(&mut self, module: &'ast syn::ItemMod) {
        // A private module's `pub` items are reachable through re-exports,
        // so they are read too.
        if !source::is_cfg_test(&module.attrs) {
            visit::visit_item_mod(self, module);
        }
    }
    fn visit_item_fn(&mut self, function: &'ast syn::ItemFn) {
        if matches!(function.vis, syn::Visibility::Public(_))
            && !source::is_test_function(&function.attrs)
            && !source::is_cfg_test(&function.attrs)
        {
            (self.on_signature)(&function.sig);
        }
    }
    fn visit_item_impl(&mut self, block: &'ast syn::ItemImpl) {
        if block.trait_.is_some() || source::is_cfg_test(&block.attrs) {
            return;
        }
        for member in &block.items {
            if let syn::ImplItem::Fn(function) = member
                && matches!(function.vis, syn::Visibility::Public(_))
            {
                (self.on_signature)(&function.sig);
            }
        }
    }
    fn visit_item_trait(&mut self, declaration: &'ast syn::ItemTrait) {
        if !matches!(declaration.vis, syn::Visibility::Public(_)) {
            return;
        }
        for member in &declaration.items {
            if let syn::TraitItem::Fn(function) = member {
                (self.on_signature)(&function.sig);
            }
        }
    }
}

/// The error types that convert into the one `Error`: `X` of every
/// `impl From<X> for Error`.
fn convertible_errors(tree: &Tree) -> HashSet<String> {
    let mut names = HashSet::new();
    for file in tree.product_files() {
        struct Froms<'a>(&'a mut HashSet<String>);
        impl<'ast> Visit<'ast> for Froms<'_> {
            fn visit_item_impl(&mut self, block: &'ast syn::ItemImpl) {
                let Some((_, path, _)) = &block.trait_ else {
                    return;
                };
                let Some(last) = path.segments.last() else {
                    return;
                };
                let for_error = matches!(&*block.self_ty, syn::Type::Path(ty) if ty.path.segments.last().is_some_and(|s| s.ident == "Error"));
                if last.ident != "From" || !for_error {
                    return;
                }
                if let syn::PathArguments::AngleBracketed(arguments) = &last.arguments
                    && let Some(syn::GenericArgument::Type(syn::Type::Path(from))) =
                        arguments.args.first()
                    && let Some(segment) = from.path.segments.last()
                {
                    self.0.insert(segment.ident.to_string());
                }
            }
        }
        Froms(&mut names).visit_file(&file.syntax);
    }
    names
}

/// What is wrong with the error types of one public signature.
fn signature_problems(
    signature: &syn::Signature,
    imports: &Imports,
    convertible: &HashSet<String>,
) -> Vec<String> {
    struct Types<'a> {
        imports: &'a Imports,
        convertible: &'a HashSet<String>,
        problems: Vec<String>,
    }
    impl<'ast> Visit<'ast> for Types<'_> {
        fn visit_type_path(&mut self, ty: &'ast syn::TypePath) {
            if let Some(last) = ty.path.segments.last() {
                if last.ident == "Box"
                    && let syn::PathArguments::AngleBracketed(arguments) = &last.arguments
                    && let Some(syn::GenericArgument::Type(syn::Type::TraitObject(object))) =
                        arguments.args.first()
                    && object.bounds.iter().any(|bound| {
                        matches!(bound, syn::TypeParamBound::Trait(t) if t.path.segments.last().is_some_and(|s| s.ident == "Error"))
                    })
                {
                    self.problems
                        .push("`Box<dyn Error>`: return foundation_error::Error".to_owned());
                }
                if last.ident == "Result"
                    && let syn::PathArguments::AngleBracketed(arguments) = &last.arguments
                    && arguments.args.len() == 2
                    && let Some(syn::GenericArgument::Type(error)) = arguments.args.last()
                {
                    self.judge(error);
                }
            }
            visit::visit_type_path(self, ty);
        }
    }
    impl Types<'_> {
        fn judge(&mut self, error: &syn::Type) {
            match error {
                syn::Type::Reference(reference) if matches!(&*reference.elem, syn::Type::Path(p) if p.path.is_ident("str")) =>
                {
                    self.problems
                        .push("`Result<_, &str>`: return foundation_error::Error".to_owned());
                }
                syn::Type::Path(path) => {
                    let Some(last) = path.path.segments.last() else {
                        return;
                    };
                    let name = last.ident.to_string();
                    if name == "String" {
                        self.problems
                            .push("`Result<_, String>`: return foundation_error::Error".to_owned());
                        return;
                    }
                    if name == "Box" {
                        // Judged by `visit_type_path` as `Box<dyn Error>`.
                        return;
                    }
                    let resolved = self.imports.resolve(&path.path);
                    let ours = resolved.len() == 1
                        || resolved
                            .first()
                            .is_some_and(|root| OUR_ROOTS.contains(&root.as_str()));
                    if name == "Error" && ours {
                        return;
                    }
                    if ours && self.convertible.contains(&name) {
                        return;
                    }
                    self.problems.push(format!(
                        "error type `{}` is not foundation_error::Error and has no `From` into it",
                        resolved.join("::")
                    ));
                }
                _ => {}
            }
        }
    }
    let mut types = Types {
        imports,
        convertible,
        problems: Vec::new(),
    };
    types.visit_return_type(&signature.output);
    types.problems
}

/// The findings of "single error type" on `tree`, and the number of public
/// signatures read.
pub(crate) fn error_type_findings(tree: &Tree) -> (usize, Vec<Finding>) {
    let convertible = convertible_errors(tree);
    let mut findings = Vec::new();
    let mut read = 0;
    for file in tree.product_files() {
        let imports = Imports::of(&file.syntax);
        let mut on_signature = |signature: &syn::Signature| {
            read += 1;
            for problem in signature_problems(signature, &imports, &convertible) {
                findings.push(Finding::new(
                    file.path.clone(),
                    source::line(signature.ident.span()),
                    format!("public `{}` returns {problem}", signature.ident),
                ));
            }
        };
        PublicSignatures {
            on_signature: &mut on_signature,
        }
        .visit_file(&file.syntax);
    }
    (read, findings)
}

fn single_error_type(env: &Env) -> Outcome {
    let (read, findings) = error_type_findings(&env.tree);
    Outcome::from_findings(
        format!(
            "{read} public signatures return only foundation_error::Error (or types that convert into it)"
        ),
        findings,
    )
}

/// Names of our functions that return a `Result`, and of those that do
/// not (both over every function, public or not, outside test code).
fn result_names(tree: &Tree) -> (HashSet<String>, HashSet<String>) {
    struct Names<'a> {
        results: &'a mut HashSet<String>,
        others: &'a mut HashSet<String>,
    }
    impl Names<'_> {
        fn note(&mut self, signature: &syn::Signature) {
            let returns_result = match &signature.output {
                syn::ReturnType::Type(_, ty) => match &**ty {
                    syn::Type::Path(path) => path
                        .path
                        .segments
                        .last()
                        .is_some_and(|segment| segment.ident.to_string().ends_with("Result")),
                    _ => false,
                },
                syn::ReturnType::Default => false,
            };
            let name = signature.ident.to_string();
            if returns_result {
                self.results.insert(name);
            } else {
                self.others.insert(name);
            }
        }
    }
    impl<'ast> Visit<'ast> for Names<'_> {
        fn visit_signature(&mut self, signature: &'ast syn::Signature) {
            self.note(signature);
        }
    }
    let mut results = HashSet::new();
    let mut others = HashSet::new();
    for file in tree.product_files() {
        Names {
            results: &mut results,
            others: &mut others,
        }
        .visit_file(&file.syntax);
    }
    (results, others)
}

/// The name of the call an expression ends in (through `.await`, `?` and
/// parentheses).
fn called_name(expr: &syn::Expr) -> Option<String> {
    match expr {
        syn::Expr::Await(inner) => called_name(&inner.base),
        syn::Expr::Paren(inner) => called_name(&inner.expr),
        syn::Expr::MethodCall(call) => Some(call.method.to_string()),
        syn::Expr::Call(call) => match &*call.func {
            syn::Expr::Path(path) => path.path.segments.last().map(|s| s.ident.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// The catch-all findings of one file (outside its test code).
fn catch_all_in(
    root: &std::path::Path,
    file: &SourceFile,
    results: &HashSet<String>,
    others: &HashSet<String>,
    catch_allowed: bool,
) -> Vec<Finding> {
    struct Catches<'a> {
        file: &'a SourceFile,
        lines: Vec<String>,
        results: &'a HashSet<String>,
        others: &'a HashSet<String>,
        imports: Imports,
        catch_allowed: bool,
        findings: Vec<Finding>,
    }
    impl Catches<'_> {
        fn report(&mut self, line: usize, message: String) {
            self.findings
                .push(Finding::new(self.file.path.clone(), line, message));
        }
        fn dropped_ok(&mut self, expr: &syn::Expr) {
            if let syn::Expr::MethodCall(call) = expr
                && call.method == "ok"
                && call.args.is_empty()
            {
                self.report(
                    source::line(call.method.span()),
                    "`.ok()` whose value is dropped swallows the error: handle it or propagate it with `?`".to_owned(),
                );
            }
        }
    }
    impl<'ast> Visit<'ast> for Catches<'_> {
        fn visit_item_mod(&mut self, module: &'ast syn::ItemMod) {
            if !source::is_cfg_test(&module.attrs) {
                visit::visit_item_mod(self, module);
            }
        }
        fn visit_item_fn(&mut self, function: &'ast syn::ItemFn) {
            if !source::is_cfg_test(&function.attrs) && !source::is_test_function(&function.attrs) {
                visit::visit_item_fn(self, function);
            }
        }
        fn visit_item_impl(&mut self, block: &'ast syn::ItemImpl) {
            if !source::is_cfg_test(&block.attrs) {
                visit::visit_item_impl(self, block);
            }
        }
        fn visit_local(&mut self, local: &'ast syn::Local) {
            if matches!(local.pat, syn::Pat::Wild(_))
                && let Some(init) = &local.init
            {
                self.dropped_ok(&init.expr);
                let line = source::line(local.let_token.span);
                let explained = line >= 2
                    && self
                        .lines
                        .get(line - 2)
                        .is_some_and(|above| above.trim_start().starts_with("//"));
                if let Some(name) = called_name(&init.expr)
                    && self.results.contains(&name)
                    && !self.others.contains(&name)
                    && !FOREIGN.contains(&name.as_str())
                    && !explained
                {
                    self.report(
                        line,
                        format!(
                            "`let _ =` drops the Result of `{name}` (a function of ours that returns a Result): handle it, propagate it, or say why it cannot matter in a `//` comment on the line before"
                        ),
                    );
                }
            }
            visit::visit_local(self, local);
        }
        fn visit_stmt(&mut self, statement: &'ast syn::Stmt) {
            if let syn::Stmt::Expr(expr, Some(_)) = statement {
                self.dropped_ok(expr);
            }
            visit::visit_stmt(self, statement);
        }
        fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
            if let syn::Expr::Path(path) = &*call.func
                && !self.catch_allowed
                && self
                    .imports
                    .resolve(&path.path)
                    .last()
                    .is_some_and(|name| name == "catch_unwind")
            {
                self.report(
                    source::line(path.span()),
                    "`catch_unwind` outside the allowed sites (ARCHITECTURE.md, \"Allowed catch_unwind sites\")".to_owned(),
                );
            }
            visit::visit_expr_call(self, call);
        }
        fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
            if call.method == "catch_unwind" && !self.catch_allowed {
                self.report(
                    source::line(call.method.span()),
                    "`.catch_unwind()` outside the allowed sites (ARCHITECTURE.md, \"Allowed catch_unwind sites\")".to_owned(),
                );
            }
            visit::visit_expr_method_call(self, call);
        }
    }
    let text = std::fs::read_to_string(root.join(&file.path)).unwrap_or_default();
    let mut catches = Catches {
        file,
        lines: text.lines().map(str::to_owned).collect(),
        results,
        others,
        imports: Imports::of(&file.syntax),
        catch_allowed,
        findings: Vec::new(),
    };
    catches.visit_file(&file.syntax);
    catches.findings
}

/// The findings of "no catch-all handlers" on `tree`.
pub(crate) fn catch_all_findings(tree: &Tree) -> Result<Vec<Finding>, Finding> {
    let allow = tree.allow.as_ref().map_err(Clone::clone)?;
    let (results, others) = result_names(tree);
    Ok(tree
        .product_files()
        .flat_map(|file| {
            catch_all_in(
                &tree.root,
                file,
                &results,
                &others,
                allow.allows_catch_unwind_in(&file.path),
            )
        })
        .collect())
}

fn no_catch_all(env: &Env) -> Outcome {
    match catch_all_findings(&env.tree) {
        Ok(findings) => Outcome::from_findings(
            "no `let _ =` on our Results, no dropped `.ok()`, catch_unwind only at the allowed sites",
            findings,
        ),
        Err(finding) => Outcome::fail("the allow-list is unreadable", finding),
    }
}

/// The findings of "error boundaries in place" on `tree`: each allowed
/// catch_unwind site is a file of the tree that catches.
pub(crate) fn boundary_findings(tree: &Tree) -> Result<(usize, Vec<Finding>), Finding> {
    let allow = tree.allow.as_ref().map_err(Clone::clone)?;
    let mut findings = Vec::new();
    for site in &allow.catch_unwind_sites {
        let files: Vec<&SourceFile> = tree
            .files
            .iter()
            .filter(|file| site.covers(&file.path))
            .collect();
        let catches = files.iter().any(|file| {
            struct Catch(bool);
            impl<'ast> Visit<'ast> for Catch {
                fn visit_ident(&mut self, ident: &'ast proc_macro2::Ident) {
                    self.0 |= ident == "catch_unwind";
                }
            }
            let mut catch = Catch(false);
            catch.visit_file(&file.syntax);
            catch.0
        });
        if files.is_empty() {
            findings.push(Finding::new(
                site.path.clone(),
                0,
                "listed as a catch_unwind site but not in the tree (stale entry)",
            ));
        } else if !catches {
            findings.push(Finding::new(
                site.path.clone(),
                0,
                "listed as a catch_unwind site but catches nothing (stale entry)",
            ));
        }
    }
    Ok((allow.catch_unwind_sites.len(), findings))
}

fn error_boundaries(env: &Env) -> Outcome {
    match boundary_findings(&env.tree) {
        Ok((sites, findings)) => {
            let names: BTreeSet<&str> = env
                .tree
                .allow
                .as_ref()
                .map(|allow| {
                    allow
                        .catch_unwind_sites
                        .iter()
                        .map(|site| site.path.as_str())
                        .collect()
                })
                .unwrap_or_default();
            Outcome::from_findings(
                format!(
                    "{sites} panic boundaries, each present and catching ({})",
                    names.into_iter().collect::<Vec<_>>().join(", ")
                ),
                findings,
            )
        }
        Err(finding) => Outcome::fail("the allow-list is unreadable", finding),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::test_tree::{fixture, places};

    const API: &str = r#"//! An API.
use std::io;
use foundation_error::Error;
pub struct SendError<T>(T);
impl<T> From<SendError<T>> for Error { fn from(e: SendError<T>) -> Error { todo() } }
pub fn good() -> Result<u8, Error> { Ok(1) }
pub fn alias() -> foundation_error::Result<u8> { Ok(1) }
pub fn send() -> Result<(), SendError<u8>> { Ok(()) }
pub fn text() -> Result<u8, String> { Ok(1) }
pub fn boxed() -> Result<u8, Box<dyn std::error::Error + Send>> { Ok(1) }
pub fn io() -> Result<u8, io::Error> { Ok(1) }
fn private() -> Result<u8, String> { Ok(1) }
pub trait Store { fn load(&self) -> Result<u8, &'static str>; }
impl std::fmt::Display for X { fn fmt(&self, f: &mut Formatter) -> Result<(), std::fmt::Error> { Ok(()) } }
#[cfg(test)]
mod tests { pub fn helper() -> Result<u8, String> { Ok(1) } }
"#;

    #[test]
    fn strings_boxes_and_foreign_errors_in_public_apis_fail() {
        let (_d, env) = fixture(&[("site/src/lib.rs", API)]);
        let (_, findings) = error_type_findings(&env.tree);
        let lines: Vec<usize> = findings.iter().map(|finding| finding.line).collect();
        assert_eq!(lines, vec![9, 10, 11, 13], "{findings:#?}");
        assert!(findings[0].message.contains("Result<_, String>"));
        assert!(findings[1].message.contains("Box<dyn Error>"));
        assert!(findings[2].message.contains("std::io::Error"));
        assert!(findings[3].message.contains("&str"));
        let (_d, env) = fixture(&[(
            "site/src/lib.rs",
            "//! Fine.\npub fn f() -> Result<(), foundation_error::Error> { Ok(()) }\n",
        )]);
        assert_eq!(error_type_findings(&env.tree).1, vec![]);
    }

    const SWALLOW: &str = r#"//! Swallows.
pub fn save() -> Result<(), Error> { Ok(()) }
pub fn len() -> usize { 0 }
pub fn get() -> Result<u8, Error> { Ok(1) }
impl X { fn get(&self) -> Option<u8> { None } }
pub async fn work(store: Store) {
    let _ = save();
    // Nothing to do when it fails: the next run saves again.
    let _ = save();
    let _ = once.set(1);
    let _ = store.save().await;
    let _ = len();
    let _ = store.get();
    store.save().ok();
    let _ = save().ok();
    let kept = save().ok();
    let _ = std::panic::catch_unwind(|| 1);
    let _ = future.catch_unwind().await;
}
#[cfg(test)]
mod tests { fn t() { let _ = save(); save().ok(); std::panic::catch_unwind(|| 1); } }
"#;

    #[test]
    fn dropped_results_and_stray_catch_unwind_fail() {
        let (_d, env) = fixture(&[("site/src/lib.rs", SWALLOW)]);
        let findings = catch_all_findings(&env.tree).expect("allow-list");
        let lines: Vec<usize> = findings.iter().map(|finding| finding.line).collect();
        // save() twice; get is ambiguous (a Result and an Option); len is
        // no Result; .ok() dropped twice; catch_unwind twice.
        // An explained drop and a foreign name pass.
        assert_eq!(lines, vec![7, 11, 14, 15, 17, 18], "{findings:#?}");
        let (_d, env) = fixture(&[("site/src/boundary.rs", SWALLOW)]);
        let findings = catch_all_findings(&env.tree).expect("allow-list");
        assert!(findings.iter().all(|f| !f.message.contains("catch_unwind")));
    }

    #[test]
    fn a_stale_boundary_fails_and_a_catching_one_passes() {
        let (_d, env) = fixture(&[(
            "site/src/boundary.rs",
            "//! Catches.\npub fn f() { let _ = std::panic::catch_unwind(|| 1); }\n",
        )]);
        assert_eq!(boundary_findings(&env.tree).expect("list"), (1, vec![]));
        let (_d, env) = fixture(&[(
            "site/src/boundary.rs",
            "//! Catches nothing.\npub fn f() {}\n",
        )]);
        let (_, findings) = boundary_findings(&env.tree).expect("list");
        assert_eq!(
            places(&Outcome::from_findings("", findings)),
            vec![("site/src/boundary.rs".to_owned(), 0)]
        );
        let (_d, env) = fixture(&[("site/src/lib.rs", "//! No boundary file.\n")]);
        assert!(
            boundary_findings(&env.tree).expect("list").1[0]
                .message
                .contains("not in the tree")
        );
    }
}
