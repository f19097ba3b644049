//! Durations written the way runbooks write them: `250ms`, `10s`, `5m`, `2h`, `1h30m`.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::borrow::Cow;
use std::fmt;

/// A span of time, written as one or more `<integer><unit>` parts (units `ms`, `s`, `m`, `h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

const PATTERN: &str = "^([0-9]+(ms|s|m|h))+$";
const EXPECTED: &str = "a duration such as 250ms, 10s, 5m, 2h or 1h30m";

impl Duration {
    /// Parses `1h30m`; `None` when the text is not a duration.
    pub fn parse(text: &str) -> Option<Duration> {
        let bytes = text.as_bytes();
        if bytes.is_empty() {
            return None;
        }
        let mut total = std::time::Duration::ZERO;
        let mut i = 0;
        while i < bytes.len() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return None;
            }
            let number: u64 = text[start..i].parse().ok()?;
            let unit_start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            let part = match &text[unit_start..i] {
                "ms" => std::time::Duration::from_millis(number),
                "s" => std::time::Duration::from_secs(number),
                "m" => std::time::Duration::from_secs(number.checked_mul(60)?),
                "h" => std::time::Duration::from_secs(number.checked_mul(3600)?),
                _ => return None,
            };
            total = total.checked_add(part)?;
        }
        Some(Duration(total))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        if millis == 0 {
            return f.write_str("0s");
        }
        let (h, rest) = (millis / 3_600_000, millis % 3_600_000);
        let (m, rest) = (rest / 60_000, rest % 60_000);
        let (s, ms) = (rest / 1000, rest % 1000);
        for (value, unit) in [(h, "h"), (m, "m"), (s, "s"), (ms, "ms")] {
            if value > 0 {
                write!(f, "{value}{unit}")?;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
                Duration::parse(text).ok_or_else(|| {
                    E::custom(format_args!(
                        "invalid duration `{text}`: expected {EXPECTED}"
                    ))
                })
            }
        }
        deserializer.deserialize_str(DurationVisitor)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": PATTERN,
            "description": "A duration: one or more <integer><unit> parts, units ms, s, m, h (250ms, 10s, 5m, 1h30m).",
        })
    }
}

/// When the run must be over: a duration from the start, or an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq)]
pub enum Deadline {
    After(Duration),
    At(jiff::Timestamp),
}

impl<'de> Deserialize<'de> for Deadline {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DeadlineVisitor;
        impl Visitor<'_> for DeadlineVisitor {
            type Value = Deadline;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 90m, or an RFC 3339 timestamp")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Deadline, E> {
                if let Some(duration) = Duration::parse(text) {
                    return Ok(Deadline::After(duration));
                }
                text.parse::<jiff::Timestamp>().map(Deadline::At).map_err(|_| {
                    E::custom(format_args!(
                        "invalid deadline `{text}`: expected a duration such as 90m, or an RFC 3339 timestamp such as 2026-11-21T03:00:00Z"
                    ))
                })
            }
        }
        deserializer.deserialize_str(DeadlineVisitor)
    }
}

impl JsonSchema for Deadline {
    fn schema_name() -> Cow<'static, str> {
        "Deadline".into()
    }
    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "anyOf": [
                { "pattern": PATTERN },
                { "format": "date-time" }
            ],
            "description": "A duration from the start of the run (90m) or an RFC 3339 timestamp.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compound_durations() {
        assert_eq!(
            Duration::parse("1h30m").unwrap().0,
            std::time::Duration::from_secs(5400)
        );
        assert_eq!(
            Duration::parse("250ms").unwrap().0,
            std::time::Duration::from_millis(250)
        );
        assert_eq!(Duration::parse("1h30m").unwrap().to_string(), "1h30m");
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for text in [
            "",
            "5",
            "m",
            "5 m",
            "5min",
            "-5s",
            "5s3",
            "99999999999999999999h",
        ] {
            assert!(Duration::parse(text).is_none(), "{text:?} parsed");
        }
    }
}
