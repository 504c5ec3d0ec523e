//! The policy's JSON Schema, generated from the model types.

use super::model::Policy;

/// The JSON Schema of a `RemediationPolicy` document, pretty-printed.
pub fn policy_schema() -> String {
    let schema = schemars::schema_for!(Policy);
    // Serializing a `serde_json::Value`-backed schema cannot fail.
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::super::parse::*;
    use super::*;
    use std::collections::BTreeSet;

    fn definition_fields(schema: &serde_json::Value, name: &str) -> BTreeSet<String> {
        let def = if name == "RemediationPolicy" {
            schema
        } else {
            &schema["$defs"][name]
        };
        def["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("schema has no properties for {name}: {def}"))
            .keys()
            .cloned()
            .collect()
    }

    fn set(fields: &[&str]) -> BTreeSet<String> {
        fields.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn schema_and_decoder_name_the_same_fields() {
        let schema: serde_json::Value = serde_json::from_str(&policy_schema()).unwrap();
        let pairs: &[(&str, &[&str])] = &[
            ("RemediationPolicy", POLICY_FIELDS),
            ("Metadata", METADATA_FIELDS),
            ("PolicySpec", SPEC_FIELDS),
            ("Selection", SELECTION_FIELDS),
            ("NodeSelection", NODE_SELECTION_FIELDS),
            ("UnitCondition", UNIT_CONDITION_FIELDS),
            ("HttpCondition", HTTP_CONDITION_FIELDS),
            ("LogCondition", LOG_CONDITION_FIELDS),
            ("PodCondition", POD_CONDITION_FIELDS),
            ("WorkloadCondition", WORKLOAD_CONDITION_FIELDS),
            ("NodeCondition", NODE_CONDITION_FIELDS),
            ("KillArgs", KILL_FIELDS),
            ("NotifyArgs", NOTIFY_FIELDS),
            ("ExecArgs", EXEC_FIELDS),
            ("Verify", VERIFY_FIELDS),
            ("HttpVerify", HTTP_VERIFY_FIELDS),
            ("UnitVerify", UNIT_VERIFY_FIELDS),
            ("Guard", GUARD_FIELDS),
            ("NginxEditArgs", NGINX_EDIT_FIELDS),
            ("RaiseDirective", RAISE_DIRECTIVE_FIELDS),
            ("SetDirective", SET_DIRECTIVE_FIELDS),
            ("PhpFpmEditArgs", PHP_FPM_EDIT_FIELDS),
            ("RaiseKey", RAISE_KEY_FIELDS),
            ("SetKey", SET_KEY_FIELDS),
            ("AlignFastcgiPassArgs", ALIGN_FASTCGI_PASS_FIELDS),
            ("ConfigMapEditArgs", CONFIG_MAP_EDIT_FIELDS),
            ("ScaleArgs", SCALE_FIELDS),
            ("RaiseMemoryLimitArgs", RAISE_MEMORY_FIELDS),
            ("LbServerArgs", LB_SERVER_FIELDS),
            ("DrainArgs", DRAIN_FIELDS),
            ("Ramp", RAMP_FIELDS),
            ("FleetGuard", FLEET_FIELDS),
            ("HaproxyServer", HAPROXY_SERVER_FIELDS),
            ("SetWeightArgs", SET_WEIGHT_FIELDS),
        ];
        for (name, fields) in pairs {
            assert_eq!(
                definition_fields(&schema, name),
                set(fields),
                "fields of {name}"
            );
        }
    }

    #[test]
    fn committed_schema_matches_the_generated_one() {
        let committed = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/schema/remediationpolicy.schema.json"
        ))
        .expect("deploy/schema/remediationpolicy.schema.json is committed");
        assert!(
            committed == policy_schema(),
            "deploy/schema/remediationpolicy.schema.json is stale: run `make schema`"
        );
    }
}
