//! The runbook's text as commands: every line of a ```` ```sh ```` block
//! of `docs/runbook.md` is a command (a trailing `\` continues it; `#`
//! starts a comment), split into words as a shell would (quotes, no
//! expansion), and `$NAME` expanded from the runbook's own `export`s.
//!
//! This file is self-contained (std only) because two crates use it: xtask
//! (`readiness`'s static "Runbook commands are real" check, through
//! `runbook.rs`) and jido-system's integration test that runs the runbook
//! against the real binary (`jido-system/tests/it/runbook.rs`, which
//! includes this file by path). One parser, so what is checked is what is
//! run. It is not for checking or running the commands.

use std::collections::HashMap;

/// Why the runbook's text cannot be read as commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    /// The line (1-based; 0 for the end of the document).
    pub(crate) line: usize,
    pub(crate) message: String,
}

/// One command of the runbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    /// The line it starts on (1-based).
    pub(crate) line: usize,
    /// The heading it is under.
    pub(crate) section: String,
    pub(crate) words: Vec<String>,
}

/// Splits a command line into words: whitespace separates, single quotes
/// keep everything, double quotes keep all but `\"` and `\\`.
pub(crate) fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("an unterminated ' quote".to_owned()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("an unterminated \" quote".to_owned()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("an unterminated \" quote".to_owned()),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// The commands of the ```` ```sh ```` blocks of `markdown`.
pub(crate) fn commands(markdown: &str) -> Result<Vec<Command>, ParseError> {
    let mut commands = Vec::new();
    let mut section = String::new();
    let mut in_block = false;
    let mut pending: Option<(usize, String)> = None;
    for (index, text) in markdown.lines().enumerate() {
        let line = index + 1;
        let trimmed = text.trim();
        if !in_block {
            if let Some(heading) = trimmed.strip_prefix('#') {
                section = heading.trim_start_matches('#').trim().to_owned();
            } else if trimmed == "```sh" {
                in_block = true;
            }
            continue;
        }
        if trimmed.starts_with("```") {
            if pending.is_some() {
                return Err(ParseError {
                    line,
                    message: "a command continued with `\\` past the end of its block".to_owned(),
                });
            }
            in_block = false;
            continue;
        }
        let (start, mut joined) = pending.take().unwrap_or((line, String::new()));
        let content = if trimmed.starts_with('#') {
            ""
        } else {
            trimmed
        };
        if let Some(continued) = content.strip_suffix('\\') {
            joined.push_str(continued);
            joined.push(' ');
            pending = Some((start, joined));
            continue;
        }
        joined.push_str(content);
        let words = split_words(&joined).map_err(|message| ParseError {
            line: start,
            message,
        })?;
        if !words.is_empty() {
            commands.push(Command {
                line: start,
                section: section.clone(),
                words,
            });
        }
    }
    if in_block {
        return Err(ParseError {
            line: 0,
            message: "a ```sh block is never closed".to_owned(),
        });
    }
    Ok(commands)
}

/// Replaces `$NAME` and `${NAME}` in `word` with the runbook's variables;
/// an unknown variable is an error (the runbook sets every one it uses).
pub(crate) fn expand(word: &str, variables: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = word;
    while let Some(index) = rest.find('$') {
        out.push_str(&rest[..index]);
        let after = &rest[index + 1..];
        let (name, remainder) = match after.strip_prefix('{') {
            Some(braced) => {
                let end = braced
                    .find('}')
                    .ok_or_else(|| format!("`{word}`: an unclosed ${{"))?;
                (&braced[..end], &braced[end + 1..])
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        let value = variables
            .get(name)
            .ok_or_else(|| format!("`{word}`: the variable `{name}` is not set"))?;
        out.push_str(value);
        rest = remainder;
    }
    out.push_str(rest);
    Ok(out)
}
