//! Metadata values and their total order, for indexes and range queries.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

/// A metadata value.
///
/// Numbers compare numerically across `Int` and `Float` (so `Int(1)` equals
/// `Float(1.0)`); otherwise values order by kind: booleans, numbers, text,
/// lists.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number (NaN sorts after every other number).
    Float(f64),
    /// Text.
    Text(String),
    /// A list; conditions hold for a list when they hold for any element.
    List(Vec<Value>),
}

/// An entry's metadata: attribute name to value.
pub type Metadata = BTreeMap<String, Value>;

impl Value {
    fn rank(&self) -> u8 {
        match self {
            Value::Bool(_) => 0,
            Value::Int(_) | Value::Float(_) => 1,
            Value::Text(_) => 2,
            Value::List(_) => 3,
        }
    }

    fn as_number(&self) -> Option<f64> {
        match self {
            Value::Int(value) => Some(*value as f64),
            Value::Float(value) => Some(*value),
            _ => None,
        }
    }

    /// Whether a range comparison between the two is meaningful.
    pub(crate) fn comparable(&self, other: &Value) -> bool {
        self.rank() == other.rank()
    }

    /// The values a condition is judged against: the elements of a list,
    /// or the value itself.
    pub(crate) fn elements(&self) -> &[Value] {
        match self {
            Value::List(items) => items,
            other => std::slice::from_ref(other),
        }
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Text(a), Value::Text(b)) => a.cmp(b),
            (Value::List(a), Value::List(b)) => a.cmp(b),
            (a, b) => match (a.as_number(), b.as_number()) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                _ => a.rank().cmp(&b.rank()),
            },
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(value) => write!(f, "{value}"),
            Value::Int(value) => write!(f, "{value}"),
            Value::Float(value) => write!(f, "{value}"),
            Value::Text(value) => f.write_str(value),
            Value::List(items) => {
                f.write_str("[")?;
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

macro_rules! from_integer {
    ($($kind:ty),*) => {$(
        impl From<$kind> for Value {
            fn from(value: $kind) -> Value {
                Value::Int(i64::from(value))
            }
        }
    )*};
}

from_integer!(i8, i16, i32, i64, u8, u16, u32);

impl From<f64> for Value {
    fn from(value: f64) -> Value {
        Value::Float(value)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Value {
        Value::Bool(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Value {
        Value::Text(value.to_owned())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Value {
        Value::Text(value)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(values: Vec<T>) -> Value {
        Value::List(values.into_iter().map(Into::into).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_across_kinds() {
        assert_eq!(Value::Int(1), Value::Float(1.0));
        assert!(Value::Int(2) > Value::Float(1.5));
        assert!(Value::Float(f64::NAN) > Value::Int(i64::MAX));
    }

    #[test]
    fn kinds_order_bool_number_text_list() {
        let mut values = vec![
            Value::from(vec!["a"]),
            Value::from("text"),
            Value::from(3),
            Value::from(true),
        ];
        values.sort();
        assert_eq!(
            values,
            vec![
                Value::from(true),
                Value::from(3),
                Value::from("text"),
                Value::from(vec!["a"])
            ]
        );
    }
}
