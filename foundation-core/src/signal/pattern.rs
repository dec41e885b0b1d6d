//! Subscription patterns: an exact type, or a prefix ending in `*`.

use std::fmt;

use foundation_error::{Error, ErrorCode};

/// What a subscription matches: `agent.task.completed` (exactly that
/// type), `agent.task.*` (every type starting with `agent.task.`), or `*`
/// (everything).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Pattern {
    /// Exactly this type.
    Exact(String),
    /// Every type starting with this prefix.
    Prefix(String),
}

impl Pattern {
    /// Parses a pattern; `*` may only appear once, at the end.
    pub fn parse(pattern: &str) -> Result<Pattern, Error> {
        let invalid = |reason: &str| {
            Error::new(
                ErrorCode::INVALID_INPUT,
                format!("invalid signal pattern: {reason}"),
            )
            .with_context("pattern", pattern)
        };
        if pattern.is_empty() {
            return Err(invalid("it is empty"));
        }
        match pattern.strip_suffix('*') {
            Some(prefix) if prefix.contains('*') => Err(invalid("'*' may only end it")),
            Some(prefix) => Ok(Pattern::Prefix(prefix.to_owned())),
            None if pattern.contains('*') => Err(invalid("'*' may only end it")),
            None => Ok(Pattern::Exact(pattern.to_owned())),
        }
    }

    /// Whether `signal_type` matches.
    pub fn matches(&self, signal_type: &str) -> bool {
        match self {
            Pattern::Exact(exact) => exact == signal_type,
            Pattern::Prefix(prefix) => signal_type.starts_with(prefix.as_str()),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(exact) => f.write_str(exact),
            Pattern::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_and_match() {
        let exact = Pattern::parse("a.b").unwrap();
        assert!(exact.matches("a.b"));
        assert!(!exact.matches("a.b.c"));
        let prefix = Pattern::parse("a.b.*").unwrap();
        assert!(prefix.matches("a.b.c"));
        assert!(!prefix.matches("a.bc"));
        assert!(Pattern::parse("*").unwrap().matches("anything"));
        assert_eq!(prefix.to_string(), "a.b.*");
        for bad in ["", "a*b", "**", "a.*.c"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }
}
