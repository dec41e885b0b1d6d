//! Flag values: Off, On, or a rollout percentage, and what they mean for an id.
//!
//! A [`Percentage`] can only hold 0..=100, so an out-of-range percentage is
//! an error where it is made (parsing, deserialising, [`FlagValue::percentage`])
//! and can never reach a flag. This module is not for storing values or
//! bucketing ids; see `registry.rs` and `bucket.rs`.

use std::fmt;
use std::str::FromStr;

use foundation_error::{Error, ErrorCode, Result};
use serde::{Deserialize, Serialize};

/// A rollout percentage from 0 to 100.
///
/// ```
/// use foundation_flags::Percentage;
/// use foundation_error::ErrorCode;
///
/// assert_eq!(Percentage::new(25).unwrap().get(), 25);
/// assert_eq!(Percentage::new(101).unwrap_err().code(), ErrorCode::RANGE_ERROR);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Percentage(u8);

impl fmt::Debug for Percentage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Percentage {
    /// 0%: no id is enabled.
    pub const ZERO: Percentage = Percentage(0);
    /// 100%: every id is enabled.
    pub const HUNDRED: Percentage = Percentage(100);

    /// A percentage, or a [`ErrorCode::RANGE_ERROR`] above 100.
    pub fn new(value: u32) -> Result<Percentage> {
        match u8::try_from(value) {
            Ok(value) if value <= 100 => Ok(Percentage(value)),
            _ => Err(Error::new(
                ErrorCode::RANGE_ERROR,
                format!("percentage {value} is out of range 0..=100"),
            )
            .with_context("percentage", value)),
        }
    }

    /// The number, 0..=100.
    pub const fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Percentage {
    type Error = Error;

    fn try_from(value: u8) -> Result<Percentage> {
        Percentage::new(u32::from(value))
    }
}

impl From<Percentage> for u8 {
    fn from(percentage: Percentage) -> u8 {
        percentage.0
    }
}

impl fmt::Display for Percentage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// The value of a flag.
///
/// - `Off`: disabled for everyone.
/// - `On`: enabled for everyone.
/// - `Percentage(p)`: enabled for the ids whose
///   [bucket](crate::normalized_bucket) is `<= p`. Without an id, only
///   `Percentage(100)` counts as enabled.
///
/// Values parse from `on`, `off` (also `true`, `false`) and `0`..=`100`
/// (optionally followed by `%`), case-insensitively.
///
/// ```
/// use foundation_flags::FlagValue;
///
/// let value: FlagValue = "25".parse().unwrap();
/// assert_eq!(value, FlagValue::percentage(25).unwrap());
/// assert_eq!(value.rollout_percentage(), 25);
/// assert!(!value.is_enabled());
/// assert!("ON".parse::<FlagValue>().unwrap().is_enabled());
/// assert!("120".parse::<FlagValue>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagValue {
    /// Disabled for everyone.
    Off,
    /// Enabled for everyone.
    On,
    /// Enabled for the ids whose bucket is at most this percentage.
    Percentage(Percentage),
}

/// The atomic encodings of `Off` and `On`; percentages encode as themselves.
const ENCODED_OFF: u8 = 101;
const ENCODED_ON: u8 = 102;

impl FlagValue {
    /// `Percentage(value)`, or a [`ErrorCode::RANGE_ERROR`] above 100.
    pub fn percentage(value: u32) -> Result<FlagValue> {
        Percentage::new(value).map(FlagValue::Percentage)
    }

    /// The share of ids enabled: Off is 0, On is 100.
    pub const fn rollout_percentage(self) -> u8 {
        match self {
            FlagValue::Off => 0,
            FlagValue::On => 100,
            FlagValue::Percentage(percentage) => percentage.get(),
        }
    }

    /// Whether the flag is enabled without an id: `On` and `Percentage(100)`.
    pub const fn is_enabled(self) -> bool {
        match self {
            FlagValue::On => true,
            FlagValue::Off => false,
            FlagValue::Percentage(percentage) => percentage.get() == 100,
        }
    }

    /// Whether an id in `bucket` (1..=100) is enabled.
    pub const fn is_enabled_in_bucket(self, bucket: u32) -> bool {
        match self {
            FlagValue::On => true,
            FlagValue::Off => false,
            FlagValue::Percentage(percentage) => bucket <= percentage.get() as u32,
        }
    }

    pub(crate) const fn encode(self) -> u8 {
        match self {
            FlagValue::Off => ENCODED_OFF,
            FlagValue::On => ENCODED_ON,
            FlagValue::Percentage(percentage) => percentage.get(),
        }
    }

    /// The inverse of [`encode`](Self::encode); cells only ever hold encoded values.
    pub(crate) const fn decode(encoded: u8) -> FlagValue {
        match encoded {
            ENCODED_ON => FlagValue::On,
            0..=100 => FlagValue::Percentage(Percentage(encoded)),
            _ => FlagValue::Off,
        }
    }
}

/// Whether an encoded value is enabled without an id.
#[inline]
pub(crate) const fn encoded_is_enabled(encoded: u8) -> bool {
    encoded == ENCODED_ON || encoded == 100
}

/// Whether an encoded value needs no bucket to decide for an id: the answer
/// if so.
#[inline]
pub(crate) const fn encoded_without_bucket(encoded: u8) -> Option<bool> {
    match encoded {
        ENCODED_ON | 100 => Some(true),
        ENCODED_OFF | 0 => Some(false),
        _ => None,
    }
}

impl fmt::Display for FlagValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlagValue::Off => f.write_str("off"),
            FlagValue::On => f.write_str("on"),
            FlagValue::Percentage(percentage) => percentage.fmt(f),
        }
    }
}

impl FromStr for FlagValue {
    type Err = Error;

    fn from_str(text: &str) -> Result<FlagValue> {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("on") || trimmed.eq_ignore_ascii_case("true") {
            return Ok(FlagValue::On);
        }
        if trimmed.eq_ignore_ascii_case("off") || trimmed.eq_ignore_ascii_case("false") {
            return Ok(FlagValue::Off);
        }
        let digits = trimmed.strip_suffix('%').unwrap_or(trimmed);
        if !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()) {
            // Saturate huge numbers so they report as out of range, not as garbage.
            let number = digits.parse::<u32>().unwrap_or(u32::MAX);
            return FlagValue::percentage(number);
        }
        Err(Error::new(
            ErrorCode::FORMAT_ERROR,
            format!("`{text}` is not a flag value: expected on, off or a percentage 0..=100"),
        )
        .with_context("value", text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips() {
        let mut values = vec![FlagValue::Off, FlagValue::On];
        values.extend((0..=100).map(|p| FlagValue::Percentage(Percentage(p))));
        for value in values {
            assert_eq!(FlagValue::decode(value.encode()), value);
            assert_eq!(encoded_is_enabled(value.encode()), value.is_enabled());
            if let Some(answer) = encoded_without_bucket(value.encode()) {
                for bucket in 1..=100 {
                    assert_eq!(value.is_enabled_in_bucket(bucket), answer);
                }
            }
        }
    }

    #[test]
    fn parsing() {
        assert_eq!("off".parse::<FlagValue>().unwrap(), FlagValue::Off);
        assert_eq!(" False ".parse::<FlagValue>().unwrap(), FlagValue::Off);
        assert_eq!(
            "100%".parse::<FlagValue>().unwrap(),
            FlagValue::Percentage(Percentage::HUNDRED)
        );
        assert_eq!(
            "101".parse::<FlagValue>().unwrap_err().code(),
            ErrorCode::RANGE_ERROR
        );
        assert_eq!(
            "99999999999999".parse::<FlagValue>().unwrap_err().code(),
            ErrorCode::RANGE_ERROR
        );
        for garbage in ["", "-1", "half", "5.5", "%"] {
            assert_eq!(
                garbage.parse::<FlagValue>().unwrap_err().code(),
                ErrorCode::FORMAT_ERROR,
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn display_parses_back() {
        for value in [
            FlagValue::Off,
            FlagValue::On,
            FlagValue::Percentage(Percentage(42)),
        ] {
            assert_eq!(value.to_string().parse::<FlagValue>().unwrap(), value);
        }
    }
}
