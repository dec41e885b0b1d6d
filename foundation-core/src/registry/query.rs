//! Registry queries: conditions on metadata attributes, joined by "and".

use super::value::{Metadata, Value};

/// One condition on one attribute.
///
/// An entry without the attribute matches no condition (not even `Neq` or
/// `NotIn`). Range conditions only compare values of the same kind
/// (numbers with numbers, text with text): `gt("load", 3)` never matches a
/// text load. For a list attribute, `Eq`, `Gt`, `Lt`, `Gte`, `Lte` and `In`
/// hold when they hold for any element; `Neq` and `NotIn` when they hold
/// for every element.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Condition {
    /// Equal to.
    Eq(String, Value),
    /// Not equal to.
    Neq(String, Value),
    /// Greater than.
    Gt(String, Value),
    /// Less than.
    Lt(String, Value),
    /// Greater than or equal to.
    Gte(String, Value),
    /// Less than or equal to.
    Lte(String, Value),
    /// Equal to one of.
    In(String, Vec<Value>),
    /// Equal to none of.
    NotIn(String, Vec<Value>),
}

impl Condition {
    pub(crate) fn attribute(&self) -> &str {
        match self {
            Condition::Eq(attribute, _)
            | Condition::Neq(attribute, _)
            | Condition::Gt(attribute, _)
            | Condition::Lt(attribute, _)
            | Condition::Gte(attribute, _)
            | Condition::Lte(attribute, _)
            | Condition::In(attribute, _)
            | Condition::NotIn(attribute, _) => attribute,
        }
    }

    pub(crate) fn matches(&self, metadata: &Metadata) -> bool {
        let Some(value) = metadata.get(self.attribute()) else {
            return false;
        };
        let mut elements = value.elements().iter();
        match self {
            Condition::Eq(_, expected) => elements.any(|element| element == expected),
            Condition::Neq(_, expected) => elements.all(|element| element != expected),
            Condition::Gt(_, bound) => {
                elements.any(|element| element.comparable(bound) && element > bound)
            }
            Condition::Lt(_, bound) => {
                elements.any(|element| element.comparable(bound) && element < bound)
            }
            Condition::Gte(_, bound) => {
                elements.any(|element| element.comparable(bound) && element >= bound)
            }
            Condition::Lte(_, bound) => {
                elements.any(|element| element.comparable(bound) && element <= bound)
            }
            Condition::In(_, set) => elements.any(|element| set.contains(element)),
            Condition::NotIn(_, set) => elements.all(|element| !set.contains(element)),
        }
    }
}

/// Conditions that must all hold.
///
/// ```
/// use foundation_core::registry::Query;
///
/// let query = Query::new()
///     .eq("capability", "planning")
///     .neq("health", "critical")
///     .lt("load", 5);
/// assert_eq!(query.conditions().len(), 3);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    conditions: Vec<Condition>,
}

impl Query {
    /// A query that matches every entry.
    pub fn new() -> Query {
        Query::default()
    }

    /// Adds a condition.
    #[must_use]
    pub fn condition(mut self, condition: Condition) -> Query {
        self.conditions.push(condition);
        self
    }

    /// `attribute == value`.
    #[must_use]
    pub fn eq(self, attribute: impl Into<String>, value: impl Into<Value>) -> Query {
        self.condition(Condition::Eq(attribute.into(), value.into()))
    }

    /// `attribute != value`.
    #[must_use]
    pub fn neq(self, attribute: impl Into<String>, value: impl Into<Value>) -> Query {
        self.condition(Condition::Neq(attribute.into(), value.into()))
    }

    /// `attribute > value`.
    #[must_use]
    pub fn gt(self, attribute: impl Into<String>, value: impl Into<Value>) -> Query {
        self.condition(Condition::Gt(attribute.into(), value.into()))
    }

    /// `attribute < value`.
    #[must_use]
    pub fn lt(self, attribute: impl Into<String>, value: impl Into<Value>) -> Query {
        self.condition(Condition::Lt(attribute.into(), value.into()))
    }

    /// `attribute >= value`.
    #[must_use]
    pub fn gte(self, attribute: impl Into<String>, value: impl Into<Value>) -> Query {
        self.condition(Condition::Gte(attribute.into(), value.into()))
    }

    /// `attribute <= value`.
    #[must_use]
    pub fn lte(self, attribute: impl Into<String>, value: impl Into<Value>) -> Query {
        self.condition(Condition::Lte(attribute.into(), value.into()))
    }

    /// `attribute` is one of `values`.
    #[must_use]
    pub fn is_in<V: Into<Value>>(
        self,
        attribute: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Query {
        let values = values.into_iter().map(Into::into).collect();
        self.condition(Condition::In(attribute.into(), values))
    }

    /// `attribute` is none of `values`.
    #[must_use]
    pub fn not_in<V: Into<Value>>(
        self,
        attribute: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Query {
        let values = values.into_iter().map(Into::into).collect();
        self.condition(Condition::NotIn(attribute.into(), values))
    }

    /// The conditions.
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    pub(crate) fn matches(&self, metadata: &Metadata) -> bool {
        self.conditions
            .iter()
            .all(|condition| condition.matches(metadata))
    }
}
