//! nginx sizes and times, parsed and printed the way nginx writes them, so a raised
//! `fastcgi_buffers 8 16k` reads like one an operator would type.

use std::fmt;
use std::str::FromStr;

/// An nginx size in bytes: "4096", "4k", "8M", "1g" (`ngx_parse_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(pub u64);

/// An nginx time in milliseconds: "60" (seconds), "500ms", "1m30s" (`ngx_parse_time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("`{text}` is not an nginx size (like 4k, 16k, 1m)")]
    NotASize { text: String },
    #[error("`{text}` is not an nginx time (like 60s, 500ms, 1m30s)")]
    NotATime { text: String },
}

const KIB: u64 = 1024;
const SIZE_UNITS: [(char, u64); 3] = [('g', KIB * KIB * KIB), ('m', KIB * KIB), ('k', KIB)];

impl FromStr for Size {
    type Err = QuantityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || QuantityError::NotASize {
            text: text.to_string(),
        };
        let (digits, scale) = match text.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => {
                let lower = c.to_ascii_lowercase();
                let (_, scale) = SIZE_UNITS
                    .iter()
                    .find(|(u, _)| *u == lower)
                    .ok_or_else(err)?;
                (&text[..i], *scale)
            }
            _ => (text, 1),
        };
        parse_digits(digits)
            .and_then(|n| n.checked_mul(scale))
            .map(Size)
            .ok_or_else(err)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, scale) in SIZE_UNITS {
            if self.0 != 0 && self.0.is_multiple_of(scale) {
                return write!(f, "{}{unit}", self.0 / scale);
            }
        }
        write!(f, "{}", self.0)
    }
}

const SECOND: u64 = 1000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// Largest first, the order nginx requires components in ("1h30m", not "30m1h").
/// `M` is a 30-day month and `y` a 365-day year, as in nginx.
const TIME_UNITS: [(&str, u64); 8] = [
    ("y", 365 * DAY),
    ("M", 30 * DAY),
    ("w", 7 * DAY),
    ("d", DAY),
    ("h", HOUR),
    ("m", MINUTE),
    ("s", SECOND),
    ("ms", 1),
];

impl FromStr for Time {
    type Err = QuantityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_time(text)
            .map(Time)
            .ok_or_else(|| QuantityError::NotATime {
                text: text.to_string(),
            })
    }
}

fn parse_time(text: &str) -> Option<u64> {
    let mut rest = text;
    let mut total: u64 = 0;
    // Index into TIME_UNITS the next component must come after.
    let mut next_unit = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let value = parse_digits(&rest[..digits_len])?;
        rest = &rest[digits_len..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        // A bare trailing number counts as seconds, as in nginx ("60" is a minute).
        let unit = if unit.is_empty() { "s" } else { unit };
        let offset = TIME_UNITS[next_unit..]
            .iter()
            .position(|(u, _)| *u == unit)?;
        let index = next_unit + offset;
        total = total.checked_add(value.checked_mul(TIME_UNITS[index].1)?)?;
        next_unit = index + 1;
    }
    Some(total)
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        // Months, years and weeks read oddly in timeouts; days are the largest unit
        // an operator expects to see.
        for (unit, scale) in &TIME_UNITS[3..] {
            if self.0.is_multiple_of(*scale) {
                return write!(f, "{}{unit}", self.0 / scale);
            }
        }
        write!(f, "{}ms", self.0)
    }
}

fn parse_digits(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(text: &str) -> Option<u64> {
        text.parse::<Size>().ok().map(|s| s.0)
    }

    fn time(text: &str) -> Option<u64> {
        text.parse::<Time>().ok().map(|t| t.0)
    }

    #[test]
    fn sizes_parse_with_either_case_of_unit() {
        assert_eq!(size("4096"), Some(4096));
        assert_eq!(size("4k"), Some(4096));
        assert_eq!(size("4K"), Some(4096));
        assert_eq!(size("8m"), Some(8 << 20));
        assert_eq!(size("1g"), Some(1 << 30));
        assert_eq!(size("0"), Some(0));
    }

    #[test]
    fn sizes_print_in_the_largest_exact_unit() {
        assert_eq!(Size(8192).to_string(), "8k");
        assert_eq!(Size(1 << 20).to_string(), "1m");
        assert_eq!(Size(1536).to_string(), "1536");
        assert_eq!(Size(3 << 30).to_string(), "3g");
        assert_eq!(Size(0).to_string(), "0");
    }

    #[test]
    fn sizes_round_trip_through_text() {
        for text in ["4k", "16k", "1m", "1536", "2g", "0", "7"] {
            assert_eq!(
                size(text).map(|n| Size(n).to_string()).as_deref(),
                Some(text)
            );
        }
    }

    #[test]
    fn bad_sizes_are_errors_with_an_example() {
        for text in [
            "4x",
            "",
            "k",
            "-4k",
            "4 k",
            "4kk",
            "99999999999999999999",
            "18014398509481984k",
        ] {
            assert!(size(text).is_none(), "{text}");
        }
        let err = "4x".parse::<Size>().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("`4x` is not an nginx size (like 4k, 16k, 1m)")
        );
    }

    #[test]
    fn times_parse_units_and_compounds() {
        assert_eq!(time("60"), Some(60_000));
        assert_eq!(time("60s"), Some(60_000));
        assert_eq!(time("500ms"), Some(500));
        assert_eq!(time("1m"), Some(60_000));
        assert_eq!(time("2h"), Some(7_200_000));
        assert_eq!(time("1d"), Some(86_400_000));
        assert_eq!(time("1m30s"), Some(90_000));
        assert_eq!(time("1m30"), Some(90_000));
        assert_eq!(time("1s500ms"), Some(1_500));
        assert_eq!(time("1w"), Some(7 * 86_400_000));
    }

    #[test]
    fn times_print_in_the_largest_exact_unit() {
        assert_eq!(Time(90_000).to_string(), "90s");
        assert_eq!(Time(120_000).to_string(), "2m");
        assert_eq!(Time(500).to_string(), "500ms");
        assert_eq!(Time(1_500).to_string(), "1500ms");
        assert_eq!(Time(2 * 86_400_000).to_string(), "2d");
        assert_eq!(Time(0).to_string(), "0s");
    }

    #[test]
    fn times_round_trip_through_text() {
        for text in ["90s", "2m", "500ms", "3h", "1d", "0s"] {
            assert_eq!(
                time(text).map(|n| Time(n).to_string()).as_deref(),
                Some(text)
            );
        }
    }

    #[test]
    fn bad_times_are_errors_with_an_example() {
        for text in ["4x", "", "s", "30s1m", "1m1m", "1.5s", "-1s", "1 m"] {
            assert!(time(text).is_none(), "{text}");
        }
        let err = "".parse::<Time>().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("`` is not an nginx time (like 60s, 500ms, 1m30s)")
        );
    }
}
