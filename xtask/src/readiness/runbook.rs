//! The static check of the runbook's commands: each must be a command of
//! this system (its text is read by `runbook_text.rs`, the parser the
//! runbook test shares, so the document cannot drift).
//!
//! `cargo xtask readiness` commands must parse with readiness's own
//! argument parser; `jido-system SUBCOMMAND [SUBCOMMAND]` (directly or
//! through `cargo run -p jido-system --`) must name subcommands that
//! jido-system's clap definitions declare (read from its source: the
//! variants of its `#[derive(Subcommand)]` enums, kebab-cased) and give
//! each long option to a subcommand that takes it (its `#[arg(long)]`
//! fields, flattened `Args` structs followed); `curl` may only read
//! `$JIDO_URL/health` or `$JIDO_URL/metrics`; `export NAME=VALUE` sets the
//! runbook's variables, and every `$NAME` a command uses must have been
//! exported above it. Anything else is not a command of this system.
//! Running the commands against the real server is jido-system's
//! integration test `runbook` (every `curl` and `jido-system` command,
//! each exit status checked).
//!
//! This module is not for the runbook's prose.

use std::collections::HashMap;

#[cfg(test)]
use super::runbook_text::split_words;
pub(crate) use super::runbook_text::{Command, commands, expand};
use super::{Finding, Tree};

/// Where the runbook lives.
pub(crate) const RUNBOOK: &str = "docs/runbook.md";

/// jido-system's command line, read from its clap definitions: each
/// `#[derive(Subcommand)]` enum's variants (kebab-cased) with the long
/// options each takes (its `#[arg(long)]` fields, the fields of the
/// `Args` structs it wraps or flattens) and the subcommand enum it leads
/// to, if any.
#[derive(Debug, Default)]
pub(crate) struct Subcommands {
    /// enum name -> its variants.
    enums: HashMap<String, Vec<Variant>>,
}

/// One subcommand.
#[derive(Debug, Clone, Default)]
struct Variant {
    name: String,
    /// Its long options, without `--`.
    options: Vec<String>,
    /// Those of its options that take no value (`bool` fields).
    flags: Vec<String>,
    /// The subcommand enum it leads to.
    inner: Option<String>,
}

fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (index, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if index > 0 {
                out.push('-');
            }
            out.extend(c.to_lowercase());
        } else if c == '_' {
            out.push('-');
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether an attribute list holds `#[NAME(... WORD ...)]`.
fn has(attributes: &[syn::Attribute], name: &str, word: &str) -> bool {
    attributes.iter().any(|attribute| {
        attribute.path().is_ident(name) && crate::source::mentions_ident(attribute, word)
    })
}

fn type_name(ty: &syn::Type) -> Option<String> {
    match ty {
        syn::Type::Path(path) => path.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

/// The long options of `fields` into `out`, following flattened and
/// wrapped `Args` structs (bounded depth); a field of a subcommand enum's
/// type is where the next level starts.
fn read_options(
    fields: &syn::Fields,
    structs: &HashMap<String, &syn::Fields>,
    enum_names: &[String],
    depth: usize,
    out: &mut Variant,
) {
    for field in fields {
        let ty = type_name(&field.ty);
        let subcommand = has(&field.attrs, "command", "subcommand")
            || ty.as_ref().is_some_and(|ty| enum_names.contains(ty));
        if subcommand {
            out.inner = ty;
            continue;
        }
        let flatten = has(&field.attrs, "command", "flatten") || field.ident.is_none();
        if flatten {
            if let Some(inner) = ty.as_ref().and_then(|ty| structs.get(ty))
                && depth < 4
            {
                read_options(inner, structs, enum_names, depth + 1, out);
            }
            continue;
        }
        if has(&field.attrs, "arg", "long")
            && let Some(ident) = &field.ident
        {
            let option = kebab(&ident.to_string());
            if ty.as_deref() == Some("bool") {
                out.flags.push(option.clone());
            }
            out.options.push(option);
        }
    }
}

impl Subcommands {
    pub(crate) fn read(tree: &Tree, crate_folder: &str) -> Subcommands {
        let files: Vec<&crate::source::SourceFile> = tree
            .files
            .iter()
            .filter(|file| file.crate_folder() == crate_folder && !file.is_test_file())
            .collect();
        let mut structs: HashMap<String, &syn::Fields> = HashMap::new();
        let mut enums: Vec<&syn::ItemEnum> = Vec::new();
        for file in &files {
            for item in &file.syntax.items {
                match item {
                    syn::Item::Struct(declaration) => {
                        structs.insert(declaration.ident.to_string(), &declaration.fields);
                    }
                    syn::Item::Enum(declaration)
                        if has(&declaration.attrs, "derive", "Subcommand") =>
                    {
                        enums.push(declaration);
                    }
                    _ => {}
                }
            }
        }
        let enum_names: Vec<String> = enums.iter().map(|e| e.ident.to_string()).collect();
        let mut subcommands = Subcommands::default();
        for declaration in enums {
            let variants = declaration
                .variants
                .iter()
                .map(|variant| {
                    let mut read = Variant {
                        name: kebab(&variant.ident.to_string()),
                        ..Variant::default()
                    };
                    read_options(&variant.fields, &structs, &enum_names, 0, &mut read);
                    read
                })
                .collect();
            subcommands
                .enums
                .insert(declaration.ident.to_string(), variants);
        }
        subcommands
    }

    /// Checks `words` (after the program name): the subcommands exist and
    /// every long option is one the subcommand it follows takes. `Err`
    /// says what is wrong.
    pub(crate) fn check(&self, words: &[String]) -> Result<(), String> {
        if self.enums.is_empty() {
            return Err(
                "jido-system declares no subcommands in the tree (is the crate there?)".to_owned(),
            );
        }
        // The top level: an enum no variant leads to.
        let inner: Vec<&String> = self
            .enums
            .values()
            .flatten()
            .filter_map(|variant| variant.inner.as_ref())
            .collect();
        let Some(top) = self.enums.keys().find(|name| !inner.contains(name)) else {
            return Err("jido-system's subcommands have no top level".to_owned());
        };
        let mut level: Option<&String> = Some(top);
        let mut current: Option<&Variant> = None;
        let mut index = 0;
        while index < words.len() {
            let word = &words[index];
            index += 1;
            if let Some(option) = word.strip_prefix("--") {
                let (name, inline_value) = match option.split_once('=') {
                    Some((name, _)) => (name, true),
                    None => (option, false),
                };
                if matches!(name, "help" | "version") {
                    continue;
                }
                let Some(variant) = current else {
                    return Err(format!("`--{name}` before any subcommand"));
                };
                if !variant.options.iter().any(|known| known == name) {
                    return Err(format!(
                        "`{}` takes no option `--{name}` (it takes: {})",
                        variant.name,
                        variant
                            .options
                            .iter()
                            .map(|option| format!("--{option}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                // An option takes the next word as its value, unless it is
                // a flag or the value was written with `=`.
                if !inline_value
                    && !variant.flags.iter().any(|flag| flag == name)
                    && words.get(index).is_some_and(|next| !next.starts_with('-'))
                {
                    index += 1;
                }
                continue;
            }
            if word.starts_with('-') {
                continue;
            }
            // A positional word: the next subcommand, or an argument of
            // the current one.
            if let Some(enum_name) = level {
                let Some(variant) = self.enums[enum_name]
                    .iter()
                    .find(|variant| variant.name == *word)
                else {
                    return Err(format!("`{word}` is not a jido-system subcommand"));
                };
                current = Some(variant);
                level = variant
                    .inner
                    .as_ref()
                    .filter(|inner| self.enums.contains_key(*inner));
            }
        }
        match (current, level) {
            (None, _) => Err("no subcommand".to_owned()),
            (Some(variant), Some(_)) => Err(format!("`{}` needs a subcommand", variant.name)),
            (Some(_), None) => Ok(()),
        }
    }
}

/// Checks one command; `Err` says why it is not a command of this system.
pub(crate) fn check_command(command: &Command, subcommands: &Subcommands) -> Result<(), String> {
    let words = &command.words;
    let word = |index: usize| words.get(index).map(String::as_str);
    match (word(0), word(1), word(2)) {
        (Some("cargo"), Some("xtask"), Some("readiness")) => {
            super::parse_args(words[3..].iter().cloned()).map(|_| ())
        }
        (Some("cargo"), Some("xtask"), Some("tidy" | "layering")) if words.len() == 3 => Ok(()),
        (Some("cargo"), Some("run"), _) => {
            let runs_system = words
                .windows(2)
                .any(|pair| pair[0] == "-p" && pair[1] == "jido-system");
            let separator = words.iter().position(|word| word == "--");
            match separator {
                Some(separator) if runs_system => subcommands.check(&words[separator + 1..]),
                _ => Err("`cargo run` must run `-p jido-system -- SUBCOMMAND`".to_owned()),
            }
        }
        (Some("jido-system"), _, _) => subcommands.check(&words[1..]),
        (Some("export"), Some(assignment), None) if assignment.contains('=') => Ok(()),
        (Some("curl"), _, _) => {
            let url = words.iter().skip(1).find(|word| !word.starts_with('-'));
            match url.map(String::as_str) {
                Some("$JIDO_URL/health" | "$JIDO_URL/metrics") => Ok(()),
                other => Err(format!(
                    "curl may only read $JIDO_URL/health or $JIDO_URL/metrics, not {other:?}"
                )),
            }
        }
        _ => Err(
            "not a command of this system (cargo xtask, jido-system, or curl of /health, /metrics)"
                .to_owned(),
        ),
    }
}

/// The runbook check on `tree`: (commands read, findings).
pub(crate) fn findings(tree: &Tree) -> (usize, Vec<Finding>) {
    let text = match std::fs::read_to_string(tree.root.join(RUNBOOK)) {
        Ok(text) => text,
        Err(error) => {
            return (
                0,
                vec![Finding::new(RUNBOOK, 0, format!("cannot read: {error}"))],
            );
        }
    };
    let commands = match commands(&text) {
        Ok(commands) => commands,
        Err(error) => return (0, vec![Finding::new(RUNBOOK, error.line, error.message)]),
    };
    if commands.is_empty() {
        return (
            0,
            vec![Finding::new(RUNBOOK, 0, "no command in a ```sh block")],
        );
    }
    let subcommands = Subcommands::read(tree, "jido-system");
    let mut findings: Vec<Finding> = Vec::new();
    let mut unchecked = 0;
    if subcommands.enums.is_empty() {
        // One finding for the missing crate, not one per command.
        unchecked = commands
            .iter()
            .filter(|command| runs_system(command))
            .count();
        if unchecked > 0 {
            findings.push(Finding::new(
                RUNBOOK,
                0,
                format!(
                    "jido-system declares no subcommands in the tree (is the crate there?): its {unchecked} commands here cannot be checked"
                ),
            ));
        }
    }
    findings.extend(
        commands
            .iter()
            .filter(|command| unchecked == 0 || !runs_system(command))
            .filter_map(|command| {
                check_command(command, &subcommands).err().map(|message| {
                    Finding::new(
                        RUNBOOK,
                        command.line,
                        format!("`{}`: {message}", command.words.join(" ")),
                    )
                })
            }),
    );
    findings.extend(unset_variables(&commands));
    (commands.len(), findings)
}

/// The uses of a variable that no `export` above sets (a shell would
/// expand them to nothing).
fn unset_variables(commands: &[Command]) -> Vec<Finding> {
    let mut variables: HashMap<String, String> = HashMap::new();
    let mut findings = Vec::new();
    for command in commands {
        if command.words[0] == "export" {
            if let Some((name, value)) = command.words.get(1).and_then(|word| word.split_once('='))
            {
                match expand(value, &variables) {
                    Ok(value) => {
                        variables.insert(name.to_owned(), value);
                    }
                    Err(message) => findings.push(Finding::new(RUNBOOK, command.line, message)),
                }
            }
            continue;
        }
        findings.extend(command.words.iter().filter_map(|word| {
            expand(word, &variables)
                .err()
                .map(|message| Finding::new(RUNBOOK, command.line, message))
        }));
    }
    findings
}

/// Whether a command runs jido-system (directly or through `cargo run`).
fn runs_system(command: &Command) -> bool {
    command
        .words
        .first()
        .is_some_and(|word| word == "jido-system")
        || (command.words.first().is_some_and(|word| word == "cargo")
            && command
                .words
                .windows(2)
                .any(|pair| pair[0] == "-p" && pair[1] == "jido-system"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::test_tree::{env_at, fixture};

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(
            split_words(r#"jido-system rollout rollback --reason "error rate \"high\"" 'a b'"#)
                .expect("valid"),
            vec![
                "jido-system",
                "rollout",
                "rollback",
                "--reason",
                "error rate \"high\"",
                "a b"
            ]
        );
        assert!(split_words("echo \"open").is_err());
    }

    const RUNBOOK_TEXT: &str = "# Runbook\n\n## Readiness\n\n```sh\n# a comment\ncargo xtask readiness --url \"$JIDO_URL\" \\\n    --format json\n```\n\n## Phase 1\n\n```sh\njido-system rollout advance --reason \"phase 1\"\ncurl -fsS $JIDO_URL/metrics\n```\n\n```text\nnot a command\n```\n";

    #[test]
    fn commands_are_read_with_their_line_and_section() {
        let commands = commands(RUNBOOK_TEXT).expect("valid");
        assert_eq!(commands.len(), 3);
        assert_eq!(commands[0].line, 7);
        assert_eq!(commands[0].section, "Readiness");
        assert_eq!(
            commands[0].words,
            vec![
                "cargo",
                "xtask",
                "readiness",
                "--url",
                "$JIDO_URL",
                "--format",
                "json"
            ]
        );
        assert_eq!(commands[1].section, "Phase 1");
        assert!(super::commands("```sh\necho \\\n```\n").is_err());
        assert!(super::commands("```sh\necho\n").is_err());
    }

    const CLI: &str = r#"//! The CLI.
#[derive(Parser)]
struct Cli { #[command(subcommand)] command: Command }
#[derive(Args)]
struct ServeArgs { #[arg(long)] data_dir: PathBuf, #[arg(long)] allow_remote: bool }
#[derive(Args)]
struct ClientArgs { #[arg(long, env = "JIDO_URL")] url: String, #[arg(long)] verbose: bool }
#[derive(Subcommand)]
enum Command {
    Serve(ServeArgs),
    Rollout { #[command(flatten)] client: ClientArgs, #[command(subcommand)] command: RolloutCommand },
    Backup { path: PathBuf, #[arg(long)] data_dir: PathBuf },
}
#[derive(Subcommand)]
enum RolloutCommand { Status, Advance { #[arg(long)] reason: String, #[arg(long)] force: bool }, EmergencyRollback { #[arg(long)] reason: String } }
"#;

    #[test]
    fn commands_are_held_to_the_cli_and_the_xtask_arguments() {
        let (_d, env) = fixture(&[("jido-system/src/cli.rs", CLI)]);
        let subcommands = Subcommands::read(&env.tree, "jido-system");
        let check = |line: &str| {
            let command = Command {
                line: 1,
                section: String::new(),
                words: split_words(line).expect("words"),
            };
            check_command(&command, &subcommands)
        };
        assert_eq!(
            check("jido-system rollout emergency-rollback --reason x"),
            Ok(())
        );
        assert_eq!(check("jido-system rollout --url $JIDO_URL status"), Ok(()));
        assert_eq!(
            check("jido-system rollout advance --force --reason \"go on\""),
            Ok(())
        );
        assert_eq!(
            check("cargo run --release -p jido-system -- serve --data-dir d --allow-remote"),
            Ok(())
        );
        assert_eq!(check("jido-system backup /tmp/b --data-dir d"), Ok(()));
        assert_eq!(check("cargo xtask readiness --static"), Ok(()));
        // A flag takes no value: `status` after `--verbose` is the subcommand.
        assert_eq!(check("jido-system rollout --verbose status"), Ok(()));
        // --url belongs to `rollout`, not to `status`.
        let misplaced = check("jido-system rollout status --url $JIDO_URL").expect_err("misplaced");
        assert!(
            misplaced.contains("`status` takes no option `--url`"),
            "{misplaced}"
        );
        assert!(
            check("jido-system rollout")
                .expect_err("incomplete")
                .contains("needs a subcommand")
        );
        assert!(check("jido-system rollout explode").is_err());
        assert!(check("jido-system remote_console").is_err());
        assert!(check("cargo xtask readiness --fast").is_err());
        assert!(check("systemctl restart foundation").is_err());
        assert_eq!(check("export JIDO_URL=http://127.0.0.1:4000"), Ok(()));
        assert!(check("curl -X POST $JIDO_URL/api/v1/rollout/rollback").is_err());
        let (_d, empty) = fixture(&[("other/src/lib.rs", "//! x\n")]);
        assert!(
            Subcommands::read(&empty.tree, "jido-system")
                .check(&["status".to_owned()])
                .is_err()
        );
    }

    #[test]
    fn variables_expand_and_unknown_ones_are_errors() {
        let variables: HashMap<String, String> =
            [("JIDO_URL".to_owned(), "http://h:1".to_owned())].into();
        assert_eq!(
            expand("$JIDO_URL/metrics", &variables),
            Ok("http://h:1/metrics".to_owned())
        );
        assert_eq!(
            expand("${JIDO_URL}x", &variables),
            Ok("http://h:1x".to_owned())
        );
        assert!(expand("$NOPE", &variables).is_err());
    }

    /// A variable used before any `export` sets it is a finding, named
    /// with its line; the real runbook sets every one it uses.
    #[test]
    fn every_variable_a_command_uses_is_exported_above_it() {
        let text = "```sh\nexport A=http://h\nexport B=$A/x\ncurl $B\njido-system status --url \"$C\"\n```\n";
        let findings = unset_variables(&commands(text).expect("parses"));
        assert_eq!(findings.len(), 1, "{findings:#?}");
        assert_eq!(findings[0].line, 5);
        assert!(findings[0].message.contains("`C`"), "{findings:#?}");
        let env = env_at(crate::workspace_root());
        let text = std::fs::read_to_string(env.tree.root.join(RUNBOOK)).expect("the runbook");
        assert_eq!(unset_variables(&commands(&text).expect("parses")), vec![]);
    }

    /// The real runbook: every section the issue names has commands, and
    /// its `cargo xtask` commands parse. (The whole check on the real tree
    /// runs in `readiness --static`; running the commands against the real
    /// server is jido-system's integration test `runbook`.)
    #[test]
    fn the_runbook_covers_every_step_and_its_xtask_commands_parse() {
        let env = env_at(crate::workspace_root());
        let text = std::fs::read_to_string(env.tree.root.join(RUNBOOK)).expect("the runbook");
        let commands = commands(&text).expect("parses");
        for section in [
            "Readiness",
            "Backup",
            "Phase 1",
            "Phase 2",
            "Phase 3",
            "Phase 4",
            "Phase 5",
            "Automatic rollback",
            "Manual rollback",
            "Emergency rollback",
            "Restore",
        ] {
            assert!(
                commands
                    .iter()
                    .any(|command| command.section.starts_with(section)),
                "no command under a heading starting with {section:?}"
            );
        }
        let subcommands = Subcommands::default();
        for command in &commands {
            if command.words.get(1).map(String::as_str) == Some("xtask") {
                assert_eq!(check_command(command, &subcommands), Ok(()), "{command:?}");
            }
        }
    }
}
