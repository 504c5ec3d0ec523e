//! Engine time: a point on a clock the caller owns. The agent maps it to a monotonic
//! clock, `salve simulate` to a virtual one; the engine never reads a clock itself.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::ops::Add;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(Duration);

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp(Duration::ZERO);

    pub fn from_duration(since_origin: Duration) -> Self {
        Timestamp(since_origin)
    }

    pub fn from_millis(ms: u64) -> Self {
        Timestamp(Duration::from_millis(ms))
    }

    pub fn since_origin(self) -> Duration {
        self.0
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(d))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            f.write_str("0s")
        } else {
            write!(f, "{}", humantime::format_duration(self.0))
        }
    }
}

/// Parses `250ms`, `1m 30s`, `1.5s`, `0` or a bare number of seconds.
pub fn parse_offset(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let seconds = text.strip_suffix('s').unwrap_or(text);
    if let Ok(secs) = seconds.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|e| format!("invalid time \"{text}\": {e}"));
    }
    humantime::parse_duration(text).map_err(|e| format!("invalid time \"{text}\": {e}"))
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(f64),
            Text(String),
        }
        let offset = match Raw::deserialize(d)? {
            Raw::Seconds(s) => Duration::try_from_secs_f64(s).map_err(serde::de::Error::custom)?,
            Raw::Text(t) => parse_offset(&t).map_err(serde::de::Error::custom)?,
        };
        Ok(Timestamp(offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_in_every_documented_spelling() {
        assert_eq!(parse_offset("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_offset("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_offset("1m 30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_offset("0").unwrap(), Duration::ZERO);
        assert!(parse_offset("soon").is_err());
    }

    #[test]
    fn timestamps_print_as_durations_that_parse_back() {
        let t = Timestamp::from_millis(61_500);
        assert_eq!(t.to_string(), "1m 1s 500ms");
        assert_eq!(parse_offset(&t.to_string()).unwrap(), t.since_origin());
        assert_eq!(Timestamp::ZERO.to_string(), "0s");
    }

    #[test]
    fn timestamps_read_from_seconds_or_text_and_write_as_text() {
        let read = |json: &str| serde_json::from_str::<Timestamp>(json);
        assert_eq!(read("2.5").unwrap(), Timestamp::from_millis(2_500));
        assert_eq!(read("\"1m 30s\"").unwrap(), Timestamp::from_millis(90_000));
        assert!(read("-1").is_err());
        assert!(read("\"soon\"").is_err());
        let written = serde_json::to_string(&Timestamp::from_millis(61_500)).unwrap();
        assert_eq!(written, "\"1m 1s 500ms\"");
        assert_eq!(read(&written).unwrap(), Timestamp::from_millis(61_500));
    }
}
