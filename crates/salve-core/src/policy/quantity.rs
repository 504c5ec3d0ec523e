//! Kubernetes memory quantities (`512Mi`, `1.5Gi`, `2G`, `1073741824`) as bytes. Read by
//! hand: k8s-openapi carries a `Quantity` as its text only, and the policy crate stays
//! free of Kubernetes' types.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A memory size as a policy or the API server writes it, and its value in bytes.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[schemars(with = "String")]
pub struct MemoryQuantity {
    pub bytes: u64,
    pub text: String,
}

/// The largest size accepted: 1 EiB, far from overflow when multiplied by a factor.
const MAX_BYTES: u64 = 1 << 60;

/// Binary then decimal suffixes; `k` is lower case in Kubernetes, the rest upper.
const SUFFIXES: &[(&str, u64)] = &[
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("Pi", 1 << 50),
    ("Ei", 1 << 60),
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("P", 1_000_000_000_000_000),
    ("E", 1_000_000_000_000_000_000),
];

impl MemoryQuantity {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("invalid memory size \"{text}\": write e.g. 512Mi, 1.5Gi or 2G");
        let trimmed = text.trim();
        let (number, unit) = SUFFIXES
            .iter()
            .find_map(|&(suffix, unit)| trimmed.strip_suffix(suffix).map(|n| (n, unit)))
            .unwrap_or((trimmed, 1));
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 9 {
            return Err(bad());
        }
        let whole: u128 = whole.parse().map_err(|_| bad())?;
        let scale = 10u128.pow(fraction.len() as u32);
        let fraction: u128 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| bad())?
        };
        // Kubernetes rounds a fractional byte count up.
        let bytes = (whole * scale + fraction)
            .checked_mul(u128::from(unit))
            .map(|b| b.div_ceil(scale))
            .filter(|&b| b <= u128::from(MAX_BYTES))
            .ok_or_else(|| format!("memory size \"{text}\" is too large: at most 1Ei"))?;
        if bytes == 0 {
            return Err(format!("memory size \"{text}\" is zero"));
        }
        Ok(MemoryQuantity {
            bytes: bytes as u64,
            text: trimmed.to_string(),
        })
    }

    /// `bytes` as the API server would show it: whole MiB when it is one (`768Mi`),
    /// else bytes.
    pub fn of_bytes(bytes: u64) -> Self {
        let text = if bytes.is_multiple_of(1 << 20) {
            format!("{}Mi", bytes >> 20)
        } else {
            bytes.to_string()
        };
        MemoryQuantity { bytes, text }
    }

    /// One step up from `self` by `factor`, rounded up to a whole MiB, never past
    /// `max`; `None` when `self` is at `max` already.
    pub fn raised(&self, factor: f64, max: &MemoryQuantity) -> Option<MemoryQuantity> {
        if self.bytes >= max.bytes {
            return None;
        }
        let mib = 1u64 << 20;
        let stepped = (self.bytes as f64 * factor).ceil() as u64;
        let stepped = stepped
            .div_ceil(mib)
            .saturating_mul(mib)
            .max(self.bytes + 1);
        Some(if stepped >= max.bytes {
            max.clone()
        } else {
            MemoryQuantity::of_bytes(stepped)
        })
    }
}

impl std::fmt::Display for MemoryQuantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for MemoryQuantity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for MemoryQuantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = super::serde_text::text_or_integer(d)?;
        MemoryQuantity::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_kubernetes_reads_them() {
        for (text, bytes) in [
            ("512Mi", 512 << 20),
            ("1.5Gi", 3 << 29),
            ("2G", 2_000_000_000),
            ("64k", 64_000),
            ("1073741824", 1 << 30),
            ("0.5Ki", 512),
        ] {
            assert_eq!(MemoryQuantity::parse(text).unwrap().bytes, bytes, "{text}");
        }
        for bad in ["", "Mi", "1.2.3Gi", "-1Gi", "1 Gb", "0", "2Ei", "1e9"] {
            assert!(MemoryQuantity::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_raise_steps_by_the_factor_in_whole_mib_and_stops_at_the_cap() {
        let max = MemoryQuantity::parse("1Gi").unwrap();
        let at = |t: &str| MemoryQuantity::parse(t).unwrap();
        assert_eq!(at("256Mi").raised(1.5, &max).unwrap().text, "384Mi");
        assert_eq!(at("300M").raised(1.5, &max).unwrap().text, "430Mi");
        assert_eq!(at("800Mi").raised(1.5, &max).unwrap().text, "1Gi");
        assert_eq!(at("1Gi").raised(1.5, &max), None);
        assert_eq!(at("2Gi").raised(1.5, &max), None);
    }
}
