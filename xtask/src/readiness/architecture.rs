//! Architecture: no task or thread outside the allowed sites, monitors that
//! cannot leak, no fire-and-forget send on the critical paths, and the
//! application tree's `rest_for_one` order.
//!
//! - Spawn sites: tidy's `spawn` rule, over the same allow-list.
//! - Monitors, statically: the exit-hook registration is crate-private, and
//!   every public `monitor` function returns either a guard (a type whose
//!   `Drop` removes its hook, `#[must_use]` so that a discarded one is a
//!   warning) or a key into a table whose owner's `Drop` removes every
//!   hook (`Context`'s monitors end with the instance). Then, built:
//!   foundation-core's 1,000-death leak test runs.
//! - Critical paths: the functions listed in [`CRITICAL`], each required to
//!   make its durable write (propagated with `?`) before what depends on it,
//!   and never to drop a send's result.
//! - The application tree: the ARCHITECTURE.md block "Application tree"
//!   against the `Supervisor::builder("...")` chain that builds it.
//!
//! This module is not for the rules themselves where tidy has them.

use std::collections::HashMap;

use syn::spanned::Spanned;
use syn::visit::{self, Visit};

use super::run::{self, Suite};
use super::{Category, CheckDef, Env, Finding, Kind, Outcome, Tree};
use crate::allowlist;
use crate::source::{self, SourceFile};

pub(crate) fn checks() -> Vec<CheckDef> {
    let check = |name, kind, run| CheckDef {
        category: Category::Architecture,
        name,
        kind,
        run,
    };
    vec![
        check("Every source file parses", Kind::Static, sources_parse),
        check(
            "No unsupervised tasks or threads",
            Kind::Static,
            spawn_sites,
        ),
        check("Monitors cannot leak (types)", Kind::Static, monitor_types),
        check(
            "Monitors cannot leak (1,000-death leak test)",
            Kind::Build,
            monitor_leak_test,
        ),
        check(
            "No fire-and-forget send on critical paths",
            Kind::Static,
            critical_paths,
        ),
        check(
            "Supervision strategy correct (application tree)",
            Kind::Static,
            application_tree,
        ),
    ]
}

fn sources_parse(env: &Env) -> Outcome {
    let findings = env
        .tree
        .load_errors
        .iter()
        .map(|error| Finding::new(error.path.clone(), error.line, error.message.clone()))
        .collect();
    Outcome::from_findings(
        format!("{} source files read", env.tree.files.len()),
        findings,
    )
}

/// Turns tidy violations into findings.
fn from_violations(violations: Vec<crate::tidy::Violation>) -> Vec<Finding> {
    violations
        .into_iter()
        .map(|violation| Finding::new(violation.path, violation.line, violation.message))
        .collect()
}

fn spawn_sites(env: &Env) -> Outcome {
    let allow = match &env.tree.allow {
        Ok(allow) => allow,
        Err(finding) => return Outcome::fail("the allow-list is unreadable", finding.clone()),
    };
    let findings: Vec<Finding> = env
        .tree
        .files
        .iter()
        .flat_map(|file| from_violations(crate::tidy::spawn::check(file, allow)))
        .collect();
    Outcome::from_findings(
        format!(
            "tasks and threads start only at the {} allowed sites",
            allow.spawn_sites.len()
        ),
        findings,
    )
}

// ---------------------------------------------------------------- monitors

/// The type a signature returns, unwrapped from `Result`/`Option`: its last
/// path segment's name.
fn returned_type_name(output: &syn::ReturnType) -> Option<String> {
    let syn::ReturnType::Type(_, ty) = output else {
        return None;
    };
    let mut ty: &syn::Type = ty;
    loop {
        let syn::Type::Path(path) = ty else {
            return None;
        };
        let last = path.path.segments.last()?;
        let name = last.ident.to_string();
        if name == "Result" || name == "Option" {
            if let syn::PathArguments::AngleBracketed(arguments) = &last.arguments
                && let Some(syn::GenericArgument::Type(inner)) = arguments.args.first()
            {
                ty = inner;
                continue;
            }
            return None;
        }
        return Some(name);
    }
}

/// The last identifier of a type (`Context<A>` -> `Context`).
fn type_name(ty: &syn::Type) -> Option<String> {
    match ty {
        syn::Type::Path(path) => path.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

/// Whether a block calls a function or method named `name`.
fn calls(block: &syn::Block, name: &str) -> bool {
    struct Finder<'a> {
        name: &'a str,
        found: bool,
    }
    impl<'ast> Visit<'ast> for Finder<'_> {
        fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
            self.found |= call.method == self.name;
            visit::visit_expr_method_call(self, call);
        }
        fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
            if let syn::Expr::Path(path) = &*call.func {
                self.found |= path
                    .path
                    .segments
                    .last()
                    .is_some_and(|segment| segment.ident == self.name);
            }
            visit::visit_expr_call(self, call);
        }
    }
    let mut finder = Finder { name, found: false };
    finder.visit_block(block);
    finder.found
}

/// Every non-test item of the product files, with its file.
fn product_items(tree: &Tree) -> Vec<(&SourceFile, &syn::Item)> {
    fn gather<'a>(
        file: &'a SourceFile,
        items: &'a [syn::Item],
        out: &mut Vec<(&'a SourceFile, &'a syn::Item)>,
    ) {
        for item in items {
            if let syn::Item::Mod(module) = item {
                if source::is_cfg_test(&module.attrs) {
                    continue;
                }
                if let Some((_, inner)) = &module.content {
                    gather(file, inner, out);
                }
            }
            out.push((file, item));
        }
    }
    let mut out = Vec::new();
    for file in tree.product_files() {
        gather(file, &file.syntax.items, &mut out);
    }
    out
}

/// Whether some `impl Drop for NAME` releases exit hooks.
fn drop_releases_hooks(items: &[(&SourceFile, &syn::Item)], name: &str) -> bool {
    items.iter().any(|(_, item)| match item {
        syn::Item::Impl(item) => {
            let is_drop = item
                .trait_
                .as_ref()
                .and_then(|(_, path, _)| path.segments.last())
                .is_some_and(|segment| segment.ident == "Drop");
            is_drop
                && type_name(&item.self_ty).as_deref() == Some(name)
                && item.items.iter().any(|member| match member {
                    syn::ImplItem::Fn(function) => calls(&function.block, "remove_exit_hook"),
                    _ => false,
                })
        }
        _ => false,
    })
}

/// Where the struct `name` is declared, and whether it is `#[must_use]`.
fn struct_declaration<'a>(
    items: &[(&'a SourceFile, &'a syn::Item)],
    name: &str,
) -> Option<(&'a SourceFile, &'a syn::ItemStruct)> {
    items.iter().find_map(|(file, item)| match item {
        syn::Item::Struct(item) if item.ident == name => Some((*file, item)),
        _ => None,
    })
}

/// The static half of "monitors cannot leak", on `tree`.
pub(crate) fn monitor_findings(tree: &Tree) -> (usize, Vec<Finding>) {
    let items = product_items(tree);
    let mut findings = Vec::new();
    // 1. Only the kernel can register an exit hook.
    for (file, item) in &items {
        if let syn::Item::Trait(declaration) = item {
            let registers = declaration.items.iter().any(|member| {
                matches!(member, syn::TraitItem::Fn(function) if function.sig.ident == "add_exit_hook")
            });
            if registers && matches!(declaration.vis, syn::Visibility::Public(_)) {
                findings.push(Finding::new(
                    file.path.clone(),
                    source::line(declaration.ident.span()),
                    format!(
                        "trait `{}` with `add_exit_hook` is public: a caller could register an exit hook and forget its key",
                        declaration.ident
                    ),
                ));
            }
        }
    }
    // 2. Every public `monitor` function returns a guard or an owned key.
    let mut handles = 0;
    // Guards found without #[must_use]: (type) -> (declaration, functions).
    let mut unmarked: Vec<(String, Finding, Vec<String>)> = Vec::new();
    for (file, item) in &items {
        let functions: Vec<(Option<String>, &syn::Signature, &syn::Visibility)> = match item {
            syn::Item::Fn(function) => vec![(None, &function.sig, &function.vis)],
            syn::Item::Impl(block) if block.trait_.is_none() => block
                .items
                .iter()
                .filter_map(|member| match member {
                    syn::ImplItem::Fn(function) => {
                        Some((type_name(&block.self_ty), &function.sig, &function.vis))
                    }
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        for (owner, signature, visibility) in functions {
            if signature.ident != "monitor" || !matches!(visibility, syn::Visibility::Public(_)) {
                continue;
            }
            let Some(handle) = returned_type_name(&signature.output) else {
                continue;
            };
            handles += 1;
            let line = source::line(signature.ident.span());
            let owner_name = owner.clone().unwrap_or_default();
            let where_ = format!("`{owner_name}::monitor` returns `{handle}`");
            if drop_releases_hooks(&items, &handle) {
                match struct_declaration(&items, &handle) {
                    Some((declared_in, declaration)) => {
                        let must_use = declaration
                            .attrs
                            .iter()
                            .any(|attribute| attribute.path().is_ident("must_use"));
                        if !must_use {
                            let function =
                                format!("`{owner_name}::monitor` ({}:{line})", file.path);
                            match unmarked.iter_mut().find(|(name, _, _)| *name == handle) {
                                Some((_, _, functions)) => functions.push(function),
                                None => unmarked.push((
                                    handle.clone(),
                                    Finding::new(
                                        declared_in.path.clone(),
                                        source::line(declaration.ident.span()),
                                        String::new(),
                                    ),
                                    vec![function],
                                )),
                            }
                        }
                    }
                    None => findings.push(Finding::new(
                        file.path.clone(),
                        line,
                        format!("{where_}, whose declaration is not in the tree"),
                    )),
                }
            } else if owner
                .as_deref()
                .is_some_and(|owner| drop_releases_hooks(&items, owner))
            {
                // A key into the owner's table; the owner's Drop releases
                // every hook it holds.
            } else {
                findings.push(Finding::new(
                    file.path.clone(),
                    line,
                    format!(
                        "{where_}, which can leak: neither `{handle}` nor `{owner_name}` removes the exit hook when dropped"
                    ),
                ));
            }
        }
    }
    for (handle, mut finding, functions) in unmarked {
        finding.message = format!(
            "`{handle}` releases its monitor on drop but is not #[must_use]: `x.monitor();` compiles and monitors nothing (returned by {})",
            functions.join(", ")
        );
        findings.push(finding);
    }
    if handles == 0 {
        findings.push(Finding::new(
            "foundation-core/src",
            0,
            "no public `monitor` function found: nothing to prove (was the API renamed?)",
        ));
    }
    (handles, findings)
}

fn monitor_types(env: &Env) -> Outcome {
    let (handles, findings) = monitor_findings(&env.tree);
    Outcome::from_findings(
        format!(
            "{handles} public monitor function(s) return guards or instance-owned keys; hook registration is crate-private"
        ),
        findings,
    )
}

/// foundation-core's 1,000-death leak test.
pub(crate) const LEAK_TEST: Suite = Suite {
    package: "foundation-core",
    module: "monitor",
    function: Some("a_thousand_monitored_actors_die_and_no_monitor_is_left"),
};

fn monitor_leak_test(env: &Env) -> Outcome {
    run::run_suites(env, "leak test", &[LEAK_TEST])
}

// ----------------------------------------------------------- critical paths

/// A function on a path the plan calls critical.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Critical {
    pub(crate) path: &'static str,
    /// The type of the `impl` block holding the function.
    pub(crate) owner: &'static str,
    pub(crate) function: &'static str,
    /// Why it is critical.
    pub(crate) why: &'static str,
    /// Calls it must make, in this order; each name may list alternatives
    /// (`write|write_with`); `?` after a name: its result must be
    /// propagated with `?`.
    pub(crate) requires: &'static [&'static str],
}

/// The critical paths: workflow step results and rollback notifications.
pub(crate) const CRITICAL: &[Critical] = &[
    Critical {
        path: "jido-workflow/src/executor.rs",
        owner: "Report",
        function: "send",
        why: "carries a step's result from its task to its workflow process",
        requires: &["try_send_info|send_info|cast|ask"],
    },
    Critical {
        path: "jido-workflow/src/process.rs",
        owner: "WorkflowProcess",
        function: "outcome",
        why: "records a step's result as a journal event before the workflow acts on it",
        requires: &["write|write_with?"],
    },
    Critical {
        path: "jido-workflow/src/process.rs",
        owner: "WorkflowProcess",
        function: "flush",
        why: "journals staged events in one fenced, durable batch",
        requires: &["append_expecting?", "commit?"],
    },
    Critical {
        path: "deploy-monitor/src/monitor/transition.rs",
        owner: "DeployMonitor",
        function: "transition",
        why: "stores a rollback's intent before its flags change",
        requires: &["save?", "finish_pending?"],
    },
    Critical {
        path: "deploy-monitor/src/monitor/transition.rs",
        owner: "DeployMonitor",
        function: "finish_pending",
        why: "records a rollback in the history journal before it is announced",
        requires: &["apply?", "complete?", "emit"],
    },
];

/// Method names that send a message.
const SENDS: &[&str] = &[
    "send",
    "try_send",
    "send_info",
    "try_send_info",
    "cast",
    "try_cast",
    "route",
    "send_timeout",
];

/// A call in a function body: its name, line, and whether its result is
/// propagated (`?`) or dropped (`let _ =`, `.ok()`, `drop(...)`).
#[derive(Debug)]
struct CallSite {
    name: String,
    line: usize,
    propagated: bool,
    dropped: bool,
}

fn call_sites(block: &syn::Block) -> Vec<CallSite> {
    #[derive(Default)]
    struct Collector {
        sites: Vec<CallSite>,
        propagated: bool,
        dropped: bool,
    }
    impl Collector {
        fn record(&mut self, name: String, line: usize) {
            self.sites.push(CallSite {
                name,
                line,
                propagated: self.propagated,
                dropped: self.dropped,
            });
        }
        /// Visits `expr` with the flags of its position, cleared below the
        /// call itself.
        fn with(&mut self, propagated: bool, dropped: bool, expr: &syn::Expr) {
            let saved = (self.propagated, self.dropped);
            self.propagated = propagated;
            self.dropped = dropped;
            self.visit_expr(expr);
            (self.propagated, self.dropped) = saved;
        }
    }
    impl<'ast> Visit<'ast> for Collector {
        fn visit_local(&mut self, local: &'ast syn::Local) {
            if matches!(local.pat, syn::Pat::Wild(_))
                && let Some(init) = &local.init
            {
                self.with(false, true, &init.expr);
                return;
            }
            visit::visit_local(self, local);
        }
        fn visit_expr(&mut self, expr: &'ast syn::Expr) {
            match expr {
                syn::Expr::Try(inner) => self.with(true, self.dropped, &inner.expr),
                syn::Expr::Await(inner) => {
                    self.with(self.propagated, self.dropped, &inner.base);
                }
                syn::Expr::Paren(inner) => self.with(self.propagated, self.dropped, &inner.expr),
                syn::Expr::MethodCall(call) if call.method == "ok" && call.args.is_empty() => {
                    self.with(false, true, &call.receiver);
                }
                syn::Expr::MethodCall(call) => {
                    self.record(call.method.to_string(), source::line(call.method.span()));
                    let saved = (self.propagated, self.dropped);
                    self.propagated = false;
                    self.dropped = false;
                    visit::visit_expr_method_call(self, call);
                    (self.propagated, self.dropped) = saved;
                }
                syn::Expr::Call(call) => {
                    let name = match &*call.func {
                        syn::Expr::Path(path) => path
                            .path
                            .segments
                            .last()
                            .map(|segment| segment.ident.to_string()),
                        _ => None,
                    };
                    if name.as_deref() == Some("drop") && call.args.len() == 1 {
                        self.with(false, true, &call.args[0]);
                        return;
                    }
                    if let Some(name) = name {
                        self.record(name, source::line(call.func.span()));
                    }
                    let saved = (self.propagated, self.dropped);
                    self.propagated = false;
                    self.dropped = false;
                    visit::visit_expr_call(self, call);
                    (self.propagated, self.dropped) = saved;
                }
                _ => {
                    let saved = (self.propagated, self.dropped);
                    self.propagated = false;
                    self.dropped = false;
                    visit::visit_expr(self, expr);
                    (self.propagated, self.dropped) = saved;
                }
            }
        }
    }
    let mut collector = Collector::default();
    collector.visit_block(block);
    collector.sites
}

/// The function `owner::function` in `file`, if any.
fn find_method<'a>(
    file: &'a SourceFile,
    owner: &str,
    function: &str,
) -> Option<&'a syn::ImplItemFn> {
    fn search<'a>(
        items: &'a [syn::Item],
        owner: &str,
        function: &str,
    ) -> Option<&'a syn::ImplItemFn> {
        items.iter().find_map(|item| match item {
            syn::Item::Impl(block) if type_name(&block.self_ty).as_deref() == Some(owner) => {
                block.items.iter().find_map(|member| match member {
                    syn::ImplItem::Fn(method) if method.sig.ident == function => Some(method),
                    _ => None,
                })
            }
            syn::Item::Mod(module) => module
                .content
                .as_ref()
                .and_then(|(_, inner)| search(inner, owner, function)),
            _ => None,
        })
    }
    search(&file.syntax.items, owner, function)
}

/// The findings of one critical function.
pub(crate) fn critical_findings(tree: &Tree, critical: &Critical) -> Vec<Finding> {
    let place = format!("`{}::{}`", critical.owner, critical.function);
    let Some(file) = tree.file(critical.path) else {
        return vec![Finding::new(
            critical.path,
            0,
            format!(
                "{place} ({}) is not in the tree: its file is gone (update the critical list)",
                critical.why
            ),
        )];
    };
    let Some(method) = find_method(file, critical.owner, critical.function) else {
        return vec![Finding::new(
            critical.path,
            0,
            format!(
                "{place} ({}) is not in this file (renamed? update the critical list)",
                critical.why
            ),
        )];
    };
    let line = source::line(method.sig.ident.span());
    let sites = call_sites(&method.block);
    let mut findings = Vec::new();
    for site in &sites {
        if site.dropped && SENDS.contains(&site.name.as_str()) {
            findings.push(Finding::new(
                critical.path,
                site.line,
                format!(
                    "{place} {}: the result of `{}` is dropped (fire-and-forget); a failed send must be handled",
                    critical.why, site.name
                ),
            ));
        }
    }
    let mut after = 0;
    for requirement in critical.requires {
        let (names, must_propagate) = match requirement.strip_suffix('?') {
            Some(names) => (names, true),
            None => (*requirement, false),
        };
        let alternatives: Vec<&str> = names.split('|').collect();
        let found = sites
            .iter()
            .filter(|site| site.line >= after && alternatives.contains(&site.name.as_str()))
            .find(|site| !must_propagate || site.propagated);
        match found {
            Some(site) => after = site.line,
            None => findings.push(Finding::new(
                critical.path,
                line,
                format!(
                    "{place} {}: no call of `{names}`{}{} in it",
                    critical.why,
                    if must_propagate {
                        " propagated with `?`"
                    } else {
                        ""
                    },
                    if after > 0 {
                        format!(" after line {after}")
                    } else {
                        String::new()
                    },
                ),
            )),
        }
    }
    findings
}

fn critical_paths(env: &Env) -> Outcome {
    let findings: Vec<Finding> = CRITICAL
        .iter()
        .flat_map(|critical| critical_findings(&env.tree, critical))
        .collect();
    Outcome::from_findings(
        format!(
            "{} critical functions (step results, rollback records) write durably before acting and drop no send",
            CRITICAL.len()
        ),
        findings,
    )
}

// ------------------------------------------------------- application tree

/// The heading of the documented application tree.
pub(crate) const APPLICATION_TREE_HEADING: &str = "Application tree";

/// The documented tree: crate folder, supervisor name, child ids in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DocumentedTree {
    pub(crate) crate_folder: String,
    pub(crate) supervisor: String,
    pub(crate) children: Vec<String>,
}

pub(crate) fn documented_tree(markdown: &str) -> Result<DocumentedTree, Finding> {
    let to_finding = |error: allowlist::AllowListError| {
        Finding::new("ARCHITECTURE.md", error.line, error.message)
    };
    let entries = allowlist::block_after(markdown, APPLICATION_TREE_HEADING).map_err(to_finding)?;
    let mut entries = entries.into_iter();
    let Some((line, first)) = entries.next() else {
        return Err(Finding::new(
            "ARCHITECTURE.md",
            0,
            "the application tree block is empty",
        ));
    };
    let (crate_folder, rest) = allowlist::split_word(first);
    let (supervisor, reason) = allowlist::split_word(rest);
    allowlist::require_reason(line, reason).map_err(to_finding)?;
    let mut children = Vec::new();
    for (line, text) in entries {
        let (child, reason) = allowlist::split_word(text);
        allowlist::require_reason(line, reason).map_err(to_finding)?;
        children.push(child.to_owned());
    }
    Ok(DocumentedTree {
        crate_folder: crate_folder.to_owned(),
        supervisor: supervisor.to_owned(),
        children,
    })
}

/// A supervisor built in code: where, its strategy, its children's ids
/// (`None` for a child whose id could not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuiltTree {
    pub(crate) path: String,
    pub(crate) line: usize,
    pub(crate) strategy: Option<String>,
    pub(crate) children: Vec<Option<String>>,
}

/// The first string literal in `expr`, reading macros' tokens too.
fn first_literal(expr: &syn::Expr) -> Option<String> {
    struct Finder(Option<String>);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_lit_str(&mut self, literal: &'ast syn::LitStr) {
            if self.0.is_none() {
                self.0 = Some(literal.value());
            }
        }
    }
    let mut finder = Finder(None);
    finder.visit_expr(expr);
    finder.0
}

/// The identifiers a pattern binds.
fn bound_names(pattern: &syn::Pat) -> Vec<String> {
    struct Names(Vec<String>);
    impl<'ast> Visit<'ast> for Names {
        fn visit_pat_ident(&mut self, ident: &'ast syn::PatIdent) {
            self.0.push(ident.ident.to_string());
            visit::visit_pat_ident(self, ident);
        }
    }
    let mut names = Names(Vec::new());
    names.visit_pat(pattern);
    names.0
}

/// A child's id: the first string literal of its expression, following
/// local bindings and the file's string constants.
fn child_id(
    expr: &syn::Expr,
    locals: &HashMap<String, syn::Expr>,
    constants: &HashMap<String, String>,
    depth: usize,
) -> Option<String> {
    if let Some(literal) = first_literal(expr) {
        return Some(literal);
    }
    if depth > 8 {
        return None;
    }
    struct Paths(Vec<String>);
    impl<'ast> Visit<'ast> for Paths {
        fn visit_path(&mut self, path: &'ast syn::Path) {
            if let Some(segment) = path.segments.last() {
                self.0.push(segment.ident.to_string());
            }
            visit::visit_path(self, path);
        }
    }
    let mut paths = Paths(Vec::new());
    paths.visit_expr(expr);
    paths.0.iter().find_map(|name| {
        constants.get(name).cloned().or_else(|| {
            locals
                .get(name)
                .and_then(|init| child_id(init, locals, constants, depth + 1))
        })
    })
}

/// The string constants of `files` (`const HTTP: &str = "http";`).
fn string_constants(files: &[&SourceFile]) -> HashMap<String, String> {
    files
        .iter()
        .flat_map(|file| file.syntax.items.iter())
        .filter_map(|item| match item {
            syn::Item::Const(constant) => {
                first_literal(&constant.expr).map(|value| (constant.ident.to_string(), value))
            }
            _ => None,
        })
        .collect()
}

/// The non-test free functions of `files`, by name (in nested modules
/// too), with their file.
fn free_functions<'a>(files: &[&'a SourceFile]) -> HashMap<String, (&'a str, &'a syn::ItemFn)> {
    struct Functions<'a>(&'a str, HashMap<String, (&'a str, &'a syn::ItemFn)>);
    impl<'ast> Visit<'ast> for Functions<'ast> {
        fn visit_item_fn(&mut self, function: &'ast syn::ItemFn) {
            if !source::is_test_function(&function.attrs) && !source::is_cfg_test(&function.attrs) {
                self.1
                    .insert(function.sig.ident.to_string(), (self.0, function));
            }
        }
        fn visit_item_mod(&mut self, module: &'ast syn::ItemMod) {
            if !source::is_cfg_test(&module.attrs) {
                visit::visit_item_mod(self, module);
            }
        }
    }
    let mut found = HashMap::new();
    for file in files {
        let mut functions = Functions(&file.path, HashMap::new());
        functions.visit_file(&file.syntax);
        found.extend(functions.1);
    }
    found
}

/// Every `Supervisor::builder("NAME")` tree built in `files` (one crate),
/// following the builder into the crate's functions it is handed to
/// (`add_children(&mut tree, ...)`).
pub(crate) fn built_trees(files: &[&SourceFile], name: &str) -> Vec<BuiltTree> {
    let scan = Scan {
        name,
        constants: string_constants(files),
        functions: free_functions(files),
    };
    let mut trees = Vec::new();
    for file in files {
        struct Blocks<'a>(Vec<&'a syn::Block>);
        impl<'ast> Visit<'ast> for Blocks<'ast> {
            fn visit_item_fn(&mut self, function: &'ast syn::ItemFn) {
                if !source::is_test_function(&function.attrs)
                    && !source::is_cfg_test(&function.attrs)
                {
                    self.0.push(&function.block);
                }
            }
            fn visit_impl_item_fn(&mut self, function: &'ast syn::ImplItemFn) {
                self.0.push(&function.block);
            }
            fn visit_item_mod(&mut self, module: &'ast syn::ItemMod) {
                if !source::is_cfg_test(&module.attrs) {
                    visit::visit_item_mod(self, module);
                }
            }
        }
        let mut blocks = Blocks(Vec::new());
        blocks.visit_file(&file.syntax);
        for block in blocks.0 {
            let mut tree = None;
            scan.block(&file.path, block, Vec::new(), &mut tree, 0);
            trees.extend(tree);
        }
    }
    trees
}

/// Reads supervisor builder chains.
struct Scan<'a> {
    name: &'a str,
    constants: HashMap<String, String>,
    functions: HashMap<String, (&'a str, &'a syn::ItemFn)>,
}

/// A call met in a block, in source order.
enum Met<'a> {
    Method(&'a syn::ExprMethodCall),
    Function(&'a syn::ExprCall),
}

impl Scan<'_> {
    /// Whether `expr` is `Supervisor::builder("NAME")`.
    fn is_builder(&self, expr: &syn::Expr) -> bool {
        let syn::Expr::Call(call) = expr else {
            return false;
        };
        let syn::Expr::Path(path) = &*call.func else {
            return false;
        };
        let segments: Vec<String> = path
            .path
            .segments
            .iter()
            .map(|segment| segment.ident.to_string())
            .collect();
        segments.ends_with(&["Supervisor".to_owned(), "builder".to_owned()])
            && call
                .args
                .first()
                .and_then(|argument| child_id(argument, &HashMap::new(), &self.constants, 0))
                .is_some_and(|found| found == self.name)
    }

    /// Reads `block`, where `builders` name the builder (a parameter it
    /// was handed to, or none at the top), into `tree`.
    fn block(
        &self,
        path: &str,
        block: &syn::Block,
        mut builders: Vec<String>,
        tree: &mut Option<BuiltTree>,
        depth: usize,
    ) {
        // Local bindings, for a child's id and the builder variable.
        let mut locals: HashMap<String, syn::Expr> = HashMap::new();
        struct Locals<'a>(&'a mut HashMap<String, syn::Expr>);
        impl<'ast> Visit<'ast> for Locals<'_> {
            fn visit_local(&mut self, local: &'ast syn::Local) {
                if let Some(init) = &local.init {
                    for name in bound_names(&local.pat) {
                        self.0.insert(name, (*init.expr).clone());
                    }
                }
                visit::visit_local(self, local);
            }
        }
        Locals(&mut locals).visit_block(block);
        builders.extend(
            locals
                .iter()
                .filter(|(_, init)| self.is_builder(init))
                .map(|(variable, _)| variable.clone()),
        );
        // Calls in source order (post-order: a chain's inner calls first).
        struct Calls<'a>(Vec<Met<'a>>);
        impl<'ast> Visit<'ast> for Calls<'ast> {
            fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
                visit::visit_expr_method_call(self, call);
                self.0.push(Met::Method(call));
            }
            fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
                visit::visit_expr_call(self, call);
                self.0.push(Met::Function(call));
            }
        }
        let mut calls = Calls(Vec::new());
        calls.visit_block(block);
        let is_builder_variable = |expr: &syn::Expr| {
            let mut expr = expr;
            while let syn::Expr::Reference(reference) = expr {
                expr = &reference.expr;
            }
            matches!(expr, syn::Expr::Path(path) if path.path.get_ident().is_some_and(|ident| builders.contains(&ident.to_string())))
        };
        for met in calls.0 {
            match met {
                Met::Function(call) => {
                    // The builder handed to a function of this crate.
                    let Some(position) = call.args.iter().position(&is_builder_variable) else {
                        continue;
                    };
                    let syn::Expr::Path(callee) = &*call.func else {
                        continue;
                    };
                    let Some((function_path, function)) = callee
                        .path
                        .segments
                        .last()
                        .and_then(|segment| self.functions.get(&segment.ident.to_string()))
                    else {
                        continue;
                    };
                    let parameter =
                        function
                            .sig
                            .inputs
                            .iter()
                            .nth(position)
                            .and_then(|input| match input {
                                syn::FnArg::Typed(typed) => {
                                    bound_names(&typed.pat).into_iter().next()
                                }
                                syn::FnArg::Receiver(_) => None,
                            });
                    if let Some(parameter) = parameter
                        && depth < 4
                    {
                        self.block(
                            function_path,
                            &function.block,
                            vec![parameter],
                            tree,
                            depth + 1,
                        );
                    }
                }
                Met::Method(call) => {
                    let mut root: &syn::Expr = &call.receiver;
                    while let syn::Expr::MethodCall(inner) = root {
                        root = &inner.receiver;
                    }
                    if !self.is_builder(root) && !is_builder_variable(root) {
                        continue;
                    }
                    let tree = tree.get_or_insert_with(|| BuiltTree {
                        path: path.to_owned(),
                        line: source::line(call.method.span()),
                        strategy: None,
                        children: Vec::new(),
                    });
                    match call.method.to_string().as_str() {
                        "strategy" => {
                            tree.strategy = call.args.first().and_then(|argument| match argument {
                                syn::Expr::Path(path) => path
                                    .path
                                    .segments
                                    .last()
                                    .map(|segment| segment.ident.to_string()),
                                _ => None,
                            });
                        }
                        "child" => {
                            let id = call.args.first().and_then(|argument| {
                                child_id(argument, &locals, &self.constants, 0)
                            });
                            tree.children.push(id);
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// The application tree's findings on `tree`.
pub(crate) fn application_tree_findings(tree: &Tree) -> Result<String, Vec<Finding>> {
    let documented = documented_tree(&tree.architecture).map_err(|finding| vec![finding])?;
    let files: Vec<&SourceFile> = tree
        .files
        .iter()
        .filter(|file| file.crate_folder() == documented.crate_folder && !file.is_test_file())
        .collect();
    if files.is_empty() {
        return Err(vec![Finding::new(
            documented.crate_folder.clone(),
            0,
            format!(
                "crate `{}` is not in the tree: the application tree cannot be read",
                documented.crate_folder
            ),
        )]);
    }
    let built = built_trees(&files, &documented.supervisor);
    let [built] = built.as_slice() else {
        return Err(vec![Finding::new(
            documented.crate_folder.clone(),
            0,
            format!(
                "expected one `Supervisor::builder(\"{}\")` in {}, found {}",
                documented.supervisor,
                documented.crate_folder,
                built.len()
            ),
        )]);
    };
    let mut findings = Vec::new();
    if built.strategy.as_deref() != Some("RestForOne") {
        findings.push(Finding::new(
            built.path.clone(),
            built.line,
            format!(
                "the application tree `{}` uses {} instead of Strategy::RestForOne",
                documented.supervisor,
                built
                    .strategy
                    .as_deref()
                    .map_or("the default strategy".to_owned(), |strategy| format!(
                        "Strategy::{strategy}"
                    ))
            ),
        ));
    }
    let ids: Vec<String> = built
        .children
        .iter()
        .map(|id| id.clone().unwrap_or_else(|| "?".to_owned()))
        .collect();
    if ids != documented.children {
        findings.push(Finding::new(
            built.path.clone(),
            built.line,
            format!(
                "children in code [{}] differ from ARCHITECTURE.md's \"Application tree\" [{}]",
                ids.join(", "),
                documented.children.join(", ")
            ),
        ));
    }
    if findings.is_empty() {
        Ok(format!(
            "`{}` is rest_for_one with its {} children in the documented order ({}:{})",
            documented.supervisor,
            ids.len(),
            built.path,
            built.line
        ))
    } else {
        Err(findings)
    }
}

fn application_tree(env: &Env) -> Outcome {
    match application_tree_findings(&env.tree) {
        Ok(summary) => Outcome::pass(summary),
        Err(findings) => Outcome::from_findings(
            "the application tree is rest_for_one with its children in the documented order",
            findings,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::test_tree::{env_at, fixture, places};

    #[test]
    fn spawns_outside_the_sites_fail_and_sites_pass() {
        let (_d, bad) = fixture(&[(
            "site/src/lib.rs",
            "//! x\npub fn f() { tokio::spawn(async {}); }\n",
        )]);
        let outcome = spawn_sites(&bad);
        assert_eq!(places(&outcome), vec![("site/src/lib.rs".to_owned(), 2)]);
        let (_d, good) = fixture(&[(
            "site/src/runtime.rs",
            "//! x\npub fn f() { tokio::spawn(async {}); }\n",
        )]);
        assert!(spawn_sites(&good).passed());
    }

    const KERNEL: &str = r#"//! A kernel.
pub(crate) trait Control { fn add_exit_hook(&self) -> u64; fn remove_exit_hook(&self, key: u64); }
#[must_use]
pub struct Monitor { key: u64 }
impl Drop for Monitor { fn drop(&mut self) { self.target.remove_exit_hook(self.key); } }
pub struct MonitorRef(u64);
pub struct Context { monitors: Vec<u64> }
impl Drop for Context { fn drop(&mut self) { for key in self.monitors.drain(..) { target.remove_exit_hook(key); } } }
impl Handle { pub fn monitor(&self) -> Monitor { todo() } }
impl Context { pub fn monitor(&mut self) -> MonitorRef { todo() } }
"#;

    #[test]
    fn guards_and_owned_keys_pass() {
        let (_d, good) = fixture(&[("site/src/lib.rs", KERNEL)]);
        assert_eq!(monitor_findings(&good.tree), (2, vec![]));
    }

    #[test]
    fn a_leaky_handle_a_public_hook_and_a_missing_must_use_fail() {
        let leaky = KERNEL
            .replace("pub(crate) trait Control", "pub trait Control")
            .replace("#[must_use]\n", "")
            .replace("impl Drop for Context", "impl Other for Context");
        let (_d, bad) = fixture(&[("site/src/lib.rs", &leaky)]);
        let (_, findings) = monitor_findings(&bad.tree);
        let messages: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(findings.len(), 3, "{messages:#?}");
        assert!(messages[0].contains("is public"));
        assert!(messages[1].contains("can leak"));
        assert!(messages[2].contains("not #[must_use]"));
        assert_eq!(findings[1].line, 9);
        let (_d, none) = fixture(&[("site/src/lib.rs", "//! Nothing.\n")]);
        assert_eq!(monitor_findings(&none.tree).1.len(), 1);
    }

    const STEPS: &str = r#"//! Steps.
impl Report {
    fn send(&mut self) {
        let _ = self.process.try_send_info(1);
    }
}
impl Process {
    async fn record(&mut self) -> Result<(), Error> {
        self.journal.append(1).await?;
        self.announce();
        Ok(())
    }
    async fn careless(&mut self) -> Result<(), Error> {
        self.announce();
        self.journal.append(1).await.ok();
        self.process.cast(2).ok();
        drop(self.process.send(3));
        Ok(())
    }
}
"#;

    fn critical(
        owner: &'static str,
        function: &'static str,
        requires: &'static [&'static str],
    ) -> Critical {
        Critical {
            path: "site/src/lib.rs",
            owner,
            function,
            why: "matters",
            requires,
        }
    }

    #[test]
    fn dropped_sends_and_missing_or_late_writes_fail() {
        let (_d, env) = fixture(&[("site/src/lib.rs", STEPS)]);
        let tree = &env.tree;
        let report = critical_findings(tree, &critical("Report", "send", &["try_send_info"]));
        assert_eq!(report.len(), 1);
        assert_eq!(report[0].line, 4);
        assert!(report[0].message.contains("fire-and-forget"));
        assert_eq!(
            critical_findings(
                tree,
                &critical("Process", "record", &["append?", "announce"])
            ),
            vec![]
        );
        let careless = critical_findings(
            tree,
            &critical("Process", "careless", &["append?", "announce"]),
        );
        let lines: Vec<usize> = careless.iter().map(|finding| finding.line).collect();
        // cast(..).ok() and drop(send(..)) dropped; append not propagated.
        assert_eq!(lines, vec![16, 17, 13], "{careless:#?}");
        let gone = critical_findings(tree, &critical("Process", "vanished", &[]));
        assert!(gone[0].message.contains("renamed"));
    }

    #[test]
    fn the_real_critical_paths_are_found_in_the_workspace() {
        let env = env_at(crate::workspace_root());
        for critical in CRITICAL {
            let findings = critical_findings(&env.tree, critical);
            assert!(
                findings
                    .iter()
                    .all(|finding| !finding.message.contains("renamed")
                        && !finding.message.contains("is gone")),
                "{findings:#?}"
            );
        }
    }

    const DOCUMENT: &str = "# A\n\n### Application tree\n\n```text\napp  top   the tree\nstore   the store\nworkers   the workers\nhttp   the server\n```\n";

    const APP: &str = r#"//! The app.
const HTTP: &str = "http";
pub async fn start() -> Result<(), Error> {
    let (workers_spec, workers) = workers.into_child_spec("workers")?;
    let mut top = Supervisor::builder("top");
    top.strategy(Strategy::RestForOne)
        .child(ChildSpec::<Store>::new("store", ()))
        .child(workers_spec);
    top.child(ChildSpec::<Http>::from_fn(HTTP, || ()));
    top.start().await
}
"#;

    fn app_tree(files: &[(&str, &str)]) -> Result<String, Vec<Finding>> {
        let (directory, _) = fixture(files);
        std::fs::write(directory.path().join("ARCHITECTURE.md"), DOCUMENT).expect("write");
        application_tree_findings(&env_at(directory.path()).tree)
    }

    #[test]
    fn the_documented_rest_for_one_order_passes() {
        let summary = app_tree(&[("app/src/lib.rs", APP)]).expect("passes");
        assert!(summary.contains("3 children"), "{summary}");
    }

    /// jido-system's shape: the builder made in one file, its children
    /// added by a function of another that is handed the builder.
    #[test]
    fn children_added_by_a_helper_function_are_read() {
        let app = r#"//! The app.
pub async fn start() -> Result<(), Error> {
    let mut tree = Supervisor::builder("top");
    tree.strategy(Strategy::RestForOne).intensity(3, 5);
    parts::add_children(&mut tree, &shared);
    tree.start().await
}
"#;
        let parts = r#"//! The parts.
pub(crate) fn add_children(tree: &mut SupervisorBuilder, shared: &Shared) {
    let part = |id: &'static str, kind: Kind| ChildSpec::<Part>::from_fn(id, move || kind);
    tree.child(part("store", Kind::Store))
        .child(shared.workers.child_spec("workers"))
        .child(part("http", Kind::Http));
}
"#;
        let summary =
            app_tree(&[("app/src/lib.rs", app), ("app/src/parts.rs", parts)]).expect("passes");
        assert!(summary.contains("3 children"), "{summary}");
    }

    #[test]
    fn a_wrong_strategy_a_wrong_order_or_no_tree_fails() {
        let one_for_one = APP.replace("RestForOne", "OneForOne");
        let findings = app_tree(&[("app/src/lib.rs", &one_for_one)]).expect_err("fails");
        assert!(
            findings[0].message.contains("Strategy::OneForOne"),
            "{findings:#?}"
        );
        assert_eq!(findings[0].line, 6);
        let swapped = APP.replace("\"store\"", "\"x\"");
        let findings = app_tree(&[("app/src/lib.rs", &swapped)]).expect_err("fails");
        assert!(
            findings[0].message.contains("[x, workers, http]"),
            "{findings:#?}"
        );
        let findings = app_tree(&[("other/src/lib.rs", APP)]).expect_err("fails");
        assert!(
            findings[0].message.contains("not in the tree"),
            "{findings:#?}"
        );
    }

    #[test]
    fn the_workflow_engine_tree_is_read_from_the_real_code() {
        let env = env_at(crate::workspace_root());
        let file = env
            .tree
            .file("jido-workflow/src/engine.rs")
            .expect("the engine is in the tree");
        let trees = built_trees(&[file], "jido_workflow");
        assert_eq!(trees.len(), 1);
        assert_eq!(trees[0].strategy.as_deref(), Some("RestForOne"));
        let ids: Vec<Option<&str>> = trees[0].children.iter().map(|id| id.as_deref()).collect();
        // The heartbeat is a child only in multi-node mode; the reading
        // lists every child the code can add, in order.
        assert_eq!(
            ids,
            vec![
                Some("tasks"),
                Some("workflows"),
                Some("resumer"),
                Some("lease_heartbeat")
            ]
        );
    }
}
