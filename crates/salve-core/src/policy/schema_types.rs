//! JSON Schema stand-ins for field types whose Rust type is not their YAML spelling.

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use std::borrow::Cow;

/// A humantime duration string.
pub struct DurationSchema;

impl JsonSchema for DurationSchema {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration such as 250ms, 10s, 5m or 1h 30m.",
            "pattern": "^([0-9]+ *[a-zµ]+ *)+$|^0$"
        })
    }
}

/// `maxUnhealthy`: a count, or a percentage as text; Kubernetes' own int-or-string.
pub struct MaxUnhealthySchema;

impl JsonSchema for MaxUnhealthySchema {
    fn schema_name() -> Cow<'static, str> {
        "MaxUnhealthy".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A count such as 3, or a percentage of the selected objects such as 30%.",
            "x-kubernetes-int-or-string": true,
            "anyOf": [
                { "type": "integer", "minimum": 1, "maximum": 1000000 },
                { "type": "string", "pattern": "^[0-9]+%$" }
            ]
        })
    }
}

/// A load balancer's weight: absolute, or a percentage as text.
pub struct FleetSlotsSchema;

impl JsonSchema for FleetSlotsSchema {
    fn schema_name() -> Cow<'static, str> {
        "FleetSlots".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "How many members of the group may be drained at once: 1 to 1000, or a percentage of the servers behind the load balancer such as 25% (rounded down, at least one).",
            "x-kubernetes-int-or-string": true,
            "anyOf": [
                { "type": "integer", "minimum": 1, "maximum": 1000 },
                { "type": "string", "pattern": "^(100|[1-9][0-9]?)%$" }
            ]
        })
    }
}

pub struct LbWeightSchema;

impl JsonSchema for LbWeightSchema {
    fn schema_name() -> Cow<'static, str> {
        "LbWeight".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A weight from 0 to 256, or a percentage of the server's configured weight such as 50%.",
            "x-kubernetes-int-or-string": true,
            "anyOf": [
                { "type": "integer", "minimum": 0, "maximum": 256 },
                { "type": "string", "pattern": "^(100|[1-9]?[0-9])%$" }
            ]
        })
    }
}

/// A regular expression in Rust `regex` syntax.
pub struct RegexSchema;

impl JsonSchema for RegexSchema {
    fn schema_name() -> Cow<'static, str> {
        "Regex".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "format": "regex",
            "description": "A regular expression (Rust regex syntax)."
        })
    }
}

/// An action that takes no options: `restart: {}` or `restart:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NoArgs;

impl JsonSchema for NoArgs {
    fn schema_name() -> Cow<'static, str> {
        "NoArgs".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["object", "null"],
            "additionalProperties": false
        })
    }
}

impl serde::Serialize for NoArgs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        s.serialize_map(Some(0))?.end()
    }
}

/// Reads `{}` or nothing (`restart:` in YAML, `null` in JSON); any key is an error.
impl<'de> serde::Deserialize<'de> for NoArgs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Empty;
        impl<'de> serde::de::Visitor<'de> for Empty {
            type Value = NoArgs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an empty mapping: this action takes no options")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<NoArgs, E> {
                Ok(NoArgs)
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<NoArgs, E> {
                Ok(NoArgs)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<NoArgs, A::Error> {
                match map.next_key::<String>()? {
                    None => Ok(NoArgs),
                    Some(key) => Err(serde::de::Error::custom(format!(
                        "unknown field `{key}`: this action takes no options"
                    ))),
                }
            }
        }
        d.deserialize_any(Empty)
    }
}
