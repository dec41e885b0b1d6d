//! Scoped error context: operation id, correlation id and breadcrumbs that
//! errors created inside a scope pick up.
//!
//! The scope is a tokio task-local, not a global: it belongs to the future
//! passed to [`scope`] and to nothing else. A task spawned inside a scope does
//! not inherit it (task-locals do not cross spawns); capture it with
//! [`current`] and enter it again in the new task, as
//! [`isolate`](crate::isolate()) does.

use std::cell::RefCell;
use std::future::Future;

tokio::task_local! {
    static CURRENT: RefCell<ErrorContext>;
}

/// The most breadcrumbs a scope keeps; older ones are dropped first.
pub const MAX_BREADCRUMBS: usize = 32;

/// What a scope attaches to the errors created inside it.
///
/// ```
/// use foundation_error::{scope, Error, ErrorContext};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let context = ErrorContext::new()
///     .with_operation_id("import-7")
///     .with_correlation_id("req-42");
/// let error = scope(context, async {
///     foundation_error::breadcrumb("reading file");
///     Error::validation("bad row")
/// })
/// .await;
/// assert_eq!(error.operation_id(), Some("import-7"));
/// assert_eq!(error.correlation_id(), Some("req-42"));
/// assert_eq!(error.breadcrumbs(), ["reading file"]);
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorContext {
    pub(crate) operation_id: Option<String>,
    pub(crate) correlation_id: Option<String>,
    pub(crate) breadcrumbs: Vec<String>,
}

impl ErrorContext {
    /// An empty context.
    pub fn new() -> ErrorContext {
        ErrorContext::default()
    }

    /// Sets the operation id.
    #[must_use]
    pub fn with_operation_id(mut self, id: impl Into<String>) -> ErrorContext {
        self.operation_id = Some(id.into());
        self
    }

    /// Sets the correlation id.
    #[must_use]
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> ErrorContext {
        self.correlation_id = Some(id.into());
        self
    }

    /// Adds a breadcrumb.
    #[must_use]
    pub fn with_breadcrumb(mut self, text: impl Into<String>) -> ErrorContext {
        self.push_breadcrumb(text.into());
        self
    }

    /// The operation id.
    pub fn operation_id(&self) -> Option<&str> {
        self.operation_id.as_deref()
    }

    /// The correlation id.
    pub fn correlation_id(&self) -> Option<&str> {
        self.correlation_id.as_deref()
    }

    /// The breadcrumbs, oldest first.
    pub fn breadcrumbs(&self) -> &[String] {
        &self.breadcrumbs
    }

    fn push_breadcrumb(&mut self, text: String) {
        if self.breadcrumbs.len() == MAX_BREADCRUMBS {
            self.breadcrumbs.remove(0);
        }
        self.breadcrumbs.push(text);
    }

    /// This context nested inside `outer`: ids not set here are inherited,
    /// breadcrumbs are the outer ones followed by these.
    fn nested_in(self, outer: &ErrorContext) -> ErrorContext {
        let mut merged = ErrorContext {
            operation_id: self.operation_id.or_else(|| outer.operation_id.clone()),
            correlation_id: self.correlation_id.or_else(|| outer.correlation_id.clone()),
            breadcrumbs: outer.breadcrumbs.clone(),
        };
        for crumb in self.breadcrumbs {
            merged.push_breadcrumb(crumb);
        }
        merged
    }
}

/// Runs `future` inside `context`: errors created or normalised while it
/// runs carry the context's operation id, correlation id and breadcrumbs.
///
/// Scopes nest: an inner scope inherits the ids it does not set and appends
/// its breadcrumbs to the outer ones.
///
/// # Cancel safety
///
/// Dropping the future drops `future`; the scope ends with it.
pub async fn scope<F: Future>(context: ErrorContext, future: F) -> F::Output {
    let context = match current() {
        Some(outer) => context.nested_in(&outer),
        None => context,
    };
    CURRENT.scope(RefCell::new(context), future).await
}

/// Adds a breadcrumb to the current scope. Returns `false`, and does
/// nothing, outside any scope.
pub fn breadcrumb(text: impl Into<String>) -> bool {
    CURRENT
        .try_with(|context| context.borrow_mut().push_breadcrumb(text.into()))
        .is_ok()
}

/// A copy of the current scope's context, if there is one.
pub fn current() -> Option<ErrorContext> {
    CURRENT.try_with(|context| context.borrow().clone()).ok()
}

/// Calls `apply` with the current context, if any.
pub(crate) fn with_current(apply: impl FnOnce(&ErrorContext)) {
    // `try_with` fails only outside a scope; that is the common case and
    // needs nothing done.
    let _outside_scope = CURRENT.try_with(|context| apply(&context.borrow()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breadcrumbs_are_bounded() {
        let mut context = ErrorContext::new();
        for index in 0..(MAX_BREADCRUMBS + 5) {
            context = context.with_breadcrumb(index.to_string());
        }
        assert_eq!(context.breadcrumbs().len(), MAX_BREADCRUMBS);
        assert_eq!(context.breadcrumbs()[0], "5");
    }

    #[test]
    fn outside_a_scope_nothing_is_recorded() {
        assert!(!breadcrumb("lost"));
        assert_eq!(current(), None);
    }
}
