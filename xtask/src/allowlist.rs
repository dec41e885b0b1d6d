//! The allow-lists that ARCHITECTURE.md shows and the checks read, so the
//! document cannot drift from what is enforced.
//!
//! Three fenced ```` ```text ```` blocks, each the first fenced block after
//! its heading:
//!
//! - under "Allowed spawn sites": one site per line, a path relative to
//!   the workspace root (a file, or a folder ending in `/`), then the
//!   reason;
//! - under "Allowed catch_unwind sites": the same form, for the places
//!   that may catch a panic (`cargo xtask readiness`);
//! - under "Closed public enums": one enum per line, its file, its name,
//!   then the reason it will never grow.
//!
//! Blank lines and lines starting with `#` are comments. An entry without
//! a reason is an error. This module is not for applying the lists; the
//! rules do that.

use std::fmt;
use std::path::Path;

/// The heading of the spawn-site block.
pub(crate) const SPAWN_SITES_HEADING: &str = "Allowed spawn sites";
/// The heading of the catch_unwind-site block.
pub(crate) const CATCH_UNWIND_SITES_HEADING: &str = "Allowed catch_unwind sites";
/// The heading of the closed-enum block.
pub(crate) const CLOSED_ENUMS_HEADING: &str = "Closed public enums";

/// A place where something otherwise forbidden may be written: tasks and
/// threads started, panics caught.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Site {
    /// A file, or a folder ending in `/`.
    pub(crate) path: String,
    pub(crate) reason: String,
}

impl Site {
    /// Whether the file at `path` lies in this site.
    pub(crate) fn covers(&self, path: &str) -> bool {
        if self.path.ends_with('/') {
            path.starts_with(&self.path)
        } else {
            path == self.path
        }
    }
}

/// A public enum that may stay exhaustive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClosedEnum {
    pub(crate) path: String,
    pub(crate) name: String,
    pub(crate) reason: String,
}

/// Both lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AllowList {
    pub(crate) spawn_sites: Vec<Site>,
    pub(crate) catch_unwind_sites: Vec<Site>,
    pub(crate) closed_enums: Vec<ClosedEnum>,
}

impl AllowList {
    /// Whether starting a task or thread in the file at `path` is allowed.
    pub(crate) fn allows_spawn_in(&self, path: &str) -> bool {
        self.spawn_sites.iter().any(|site| site.covers(path))
    }

    /// Whether catching a panic in the file at `path` is allowed.
    pub(crate) fn allows_catch_unwind_in(&self, path: &str) -> bool {
        self.catch_unwind_sites.iter().any(|site| site.covers(path))
    }

    /// Whether the public enum `name` in `path` may stay exhaustive.
    pub(crate) fn allows_exhaustive(&self, path: &str, name: &str) -> bool {
        self.closed_enums
            .iter()
            .any(|entry| entry.path == path && entry.name == name)
    }
}

/// A malformed or missing list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AllowListError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

impl fmt::Display for AllowListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ARCHITECTURE.md:{}: {}", self.line, self.message)
    }
}

/// Reads both lists from the workspace's ARCHITECTURE.md.
pub(crate) fn load(root: &Path) -> Result<AllowList, AllowListError> {
    let path = root.join("ARCHITECTURE.md");
    let text = std::fs::read_to_string(&path).map_err(|error| AllowListError {
        line: 0,
        message: format!("cannot read {}: {error}", path.display()),
    })?;
    parse(&text)
}

/// Parses the lists from the text of ARCHITECTURE.md.
pub(crate) fn parse(markdown: &str) -> Result<AllowList, AllowListError> {
    let spawn_sites = sites(markdown, SPAWN_SITES_HEADING)?;
    let catch_unwind_sites = sites(markdown, CATCH_UNWIND_SITES_HEADING)?;
    let closed_enums = block_after(markdown, CLOSED_ENUMS_HEADING)?
        .into_iter()
        .map(|(line, text)| {
            let (path, rest) = split_word(text);
            let (name, reason) = split_word(rest);
            if name.is_empty() {
                return Err(AllowListError {
                    line,
                    message: "a closed enum needs a file, a name and a reason".to_owned(),
                });
            }
            require_reason(line, reason)?;
            Ok(ClosedEnum {
                path: path.to_owned(),
                name: name.to_owned(),
                reason: reason.to_owned(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AllowList {
        spawn_sites,
        catch_unwind_sites,
        closed_enums,
    })
}

/// The sites (path, reason) of the block under `heading`.
fn sites(markdown: &str, heading: &str) -> Result<Vec<Site>, AllowListError> {
    block_after(markdown, heading)?
        .into_iter()
        .map(|(line, text)| {
            let (path, reason) = split_word(text);
            require_reason(line, reason)?;
            Ok(Site {
                path: path.to_owned(),
                reason: reason.to_owned(),
            })
        })
        .collect()
}

/// The first word of `text` and the rest, trimmed.
pub(crate) fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim();
    match text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim()),
        None => (text, ""),
    }
}

pub(crate) fn require_reason(line: usize, reason: &str) -> Result<(), AllowListError> {
    if reason.is_empty() {
        return Err(AllowListError {
            line,
            message: "an allow-list entry needs a reason after its name".to_owned(),
        });
    }
    Ok(())
}

/// The entry lines (1-based line number, text) of the first ```` ```text ````
/// block after the heading whose text is `heading`.
pub(crate) fn block_after<'a>(
    markdown: &'a str,
    heading: &str,
) -> Result<Vec<(usize, &'a str)>, AllowListError> {
    let mut lines = markdown
        .lines()
        .enumerate()
        .map(|(index, text)| (index + 1, text));
    let found = lines.by_ref().any(|(_, text)| {
        let trimmed = text.trim_start();
        trimmed.starts_with('#') && trimmed.trim_start_matches('#').trim() == heading
    });
    if !found {
        return Err(AllowListError {
            line: 0,
            message: format!("no heading \"{heading}\""),
        });
    }
    let mut opened = None;
    for (line, text) in lines.by_ref() {
        let trimmed = text.trim();
        if trimmed.starts_with('#') && !trimmed.starts_with("#[") {
            break;
        }
        if trimmed.starts_with("```") {
            if trimmed != "```text" {
                return Err(AllowListError {
                    line,
                    message: format!("the block under \"{heading}\" must be a ```text block"),
                });
            }
            opened = Some(line);
            break;
        }
    }
    let Some(opened) = opened else {
        return Err(AllowListError {
            line: 0,
            message: format!("no ```text block under \"{heading}\""),
        });
    };
    let mut entries = Vec::new();
    for (line, text) in lines {
        let trimmed = text.trim();
        if trimmed.starts_with("```") {
            return Ok(entries);
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        entries.push((line, trimmed));
    }
    Err(AllowListError {
        line: opened,
        message: format!("the block under \"{heading}\" is never closed"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# Doc\n\n### Allowed spawn sites\n\nSome words.\n\n```text\n# comment\nfoundation-core/src/task.rs   supervised tasks\nfoundation-persist/           its threads\n```\n\n### Allowed catch_unwind sites\n\n```text\nfoundation-persist/src/contain.rs   redb panics on damaged files\n```\n\n### Closed public enums\n\n```text\nfoundation-core/src/x.rs State   the three states\n```\n";

    #[test]
    fn both_blocks_are_read() {
        let list = parse(GOOD).expect("valid");
        assert_eq!(list.spawn_sites.len(), 2);
        assert!(list.allows_spawn_in("foundation-core/src/task.rs"));
        assert!(list.allows_spawn_in("foundation-persist/src/writer.rs"));
        assert!(!list.allows_spawn_in("foundation-core/src/task.rs.bak"));
        assert!(!list.allows_spawn_in("foundation-core/src/actor/run.rs"));
        assert!(list.allows_catch_unwind_in("foundation-persist/src/contain.rs"));
        assert!(!list.allows_catch_unwind_in("foundation-persist/src/writer.rs"));
        assert!(list.allows_exhaustive("foundation-core/src/x.rs", "State"));
        assert!(!list.allows_exhaustive("foundation-core/src/x.rs", "Other"));
        assert_eq!(list.closed_enums[0].reason, "the three states");
    }

    #[test]
    fn a_missing_heading_or_reason_is_an_error() {
        let no_enums = GOOD.replace("Closed public enums", "Something else");
        assert!(parse(&no_enums).unwrap_err().message.contains("no heading"));
        let no_reason = GOOD.replace("   supervised tasks", "");
        let error = parse(&no_reason).unwrap_err();
        assert_eq!(error.line, 9);
        assert!(error.message.contains("reason"));
        let wrong_block = GOOD.replace("```text\n# comment", "```rust\n# comment");
        assert!(parse(&wrong_block).unwrap_err().message.contains("```text"));
    }
}
