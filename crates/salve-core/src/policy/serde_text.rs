//! serde for the values a policy writes as text: durations, validated names.
//!
//! The positioned decoder (`parse/`) and serde read the same spelling through the same
//! functions here, so a custom resource arriving as JSON and a host file mean the same.

use super::names::{HttpUrl, PolicyName, SignalName, UnitName};
use serde::{de, Deserializer, Serializer};
use std::fmt;
use std::time::Duration;

/// The longest duration any field accepts. Every duration ends up added to a clock
/// reading (a timeout's deadline, a cooldown's retry time, a window's end); bounding it
/// here keeps those sums far from overflow, and no guard, probe or timeout has a use
/// for more than a year.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// A humantime duration such as `250ms`, `10s` or `1h 30m`; `0` alone means zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    match humantime::parse_duration(text) {
        Ok(d) if d > MAX_DURATION => Err(format!(
            "duration \"{text}\" is too long: at most {} (366d)",
            humantime::format_duration(MAX_DURATION)
        )),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "invalid duration \"{text}\": {e} (write e.g. 250ms, 10s, 5m, 1h)"
        )),
    }
}

/// `#[serde(with = "duration_text")]`: a duration as its humantime text. The number 0 is
/// read as zero too, because YAML and JSON both spell `for: 0` as a number.
pub mod duration_text {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct Text;
        impl de::Visitor<'_> for Text {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 10s or 5m")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                parse_duration(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                zero(v == 0, &v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                zero(v == 0, &v)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
                zero(v == 0.0, &v)
            }
        }
        fn zero<E: de::Error>(is_zero: bool, v: &dyn fmt::Display) -> Result<Duration, E> {
            if is_zero {
                Ok(Duration::ZERO)
            } else {
                Err(E::custom(format!(
                    "invalid duration \"{v}\": a number needs a unit (write e.g. 250ms, 10s, 5m, 1h)"
                )))
            }
        }
        d.deserialize_any(Text)
    }
}

/// serde for a name validated by its `parse`: read as a string, written as written.
macro_rules! text_serde {
    ($name:ty, $text:expr) => {
        impl serde::Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let text: fn(&$name) -> &str = $text;
                s.serialize_str(text(self))
            }
        }
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(d)?;
                <$name>::parse(&text).map_err(de::Error::custom)
            }
        }
    };
}

text_serde!(PolicyName, |n| n.as_str());
text_serde!(UnitName, |n| n.as_str());
text_serde!(HttpUrl, |n| n.as_str());
text_serde!(SignalName, |n| n.name());

/// `deserialize_with` for an optional field: absent is `None` (with `default`), but a
/// written `null` is an error, as it is to the positioned decoder; serde alone would
/// read it as absent.
pub fn present<'de, D: Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A quantity such as `64k` or `300`: a string, or a whole number read as its digits.
pub fn text_or_integer<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Quantity;
    impl de::Visitor<'_> for Quantity {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size or time such as 64k or 300s")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(Quantity)
}

/// `deserialize_with` for a struct-typed field: a mapping only. serde's derive also
/// reads a struct from a list of its fields in order (`guard: []`, `target:
/// ["nginx.service"]`), which no policy means and the positioned decoder refuses.
pub fn mapping<'de, D: Deserializer<'de>, T: serde::Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    <Mapping<T> as serde::Deserialize>::deserialize(d).map(|m| m.0)
}

/// [`present`] and [`mapping`] together.
pub fn present_mapping<'de, D: Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    mapping(d).map(Some)
}

/// A list of mappings.
pub fn mapping_list<'de, D: Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(<Vec<Mapping<T>> as serde::Deserialize>::deserialize(d)?
        .into_iter()
        .map(|m| m.0)
        .collect())
}

/// A `T` read only from a mapping.
pub struct Mapping<T>(pub T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Mapping<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct OnlyMap<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> de::Visitor<'de> for OnlyMap<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(OnlyMap(std::marker::PhantomData))
            .map(Mapping)
    }
}
