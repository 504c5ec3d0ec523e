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
