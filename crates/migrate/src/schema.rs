//! What this QEMU's QMP schema says about migration parameters (`query-qmp-schema`, read
//! through qapi's types), so a `--parameter NAME=VALUE` given as text reaches QEMU as the JSON
//! type it expects, and a multifd compression method that is not compiled in is refused before
//! anything starts. The schema is the running QEMU's own, so it knows parameters newer than
//! qapi's: this is what types the escape hatch.

use std::collections::BTreeMap;

use qapi::qmp::{JSONType, SchemaInfo, SchemaInfoBase};
use serde_json::Value;

/// The JSON shape QEMU expects for one migration parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamType {
    Int,
    Number,
    Bool,
    Str,
    /// One of these strings.
    Enum(Vec<String>),
    /// A string or null (`tls-creds` and friends).
    StrOrNull,
    /// An array or object: the value is given as JSON text.
    Json,
}

impl ParamType {
    /// Converts a command-line value to the JSON QEMU expects.
    pub fn parse(&self, name: &str, text: &str) -> Result<Value, String> {
        let bad = |what: &str| format!("--parameter {name}={text}: {name} takes {what}");
        match self {
            ParamType::Int => {
                if let Ok(n) = text.parse::<u64>() {
                    Ok(Value::from(n))
                } else if let Ok(n) = text.parse::<i64>() {
                    Ok(Value::from(n))
                } else {
                    Err(bad("an integer"))
                }
            }
            ParamType::Number => text
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .map(Value::from)
                .ok_or_else(|| bad("a number")),
            ParamType::Bool => parse_bool(text)
                .map(Value::Bool)
                .ok_or_else(|| bad("on or off")),
            ParamType::Str => Ok(Value::String(text.to_string())),
            ParamType::StrOrNull => Ok(if text == "null" {
                Value::Null
            } else {
                Value::String(text.to_string())
            }),
            ParamType::Enum(values) => {
                if values.iter().any(|v| v == text) {
                    Ok(Value::String(text.to_string()))
                } else {
                    Err(bad(&format!("one of: {}", values.join(", "))))
                }
            }
            ParamType::Json => serde_json::from_str(text).map_err(|e| bad(&format!("JSON ({e})"))),
        }
    }
}

/// `on`/`off` and the usual synonyms.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Some(true),
        "off" | "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// The migration parameters this QEMU accepts, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MigrationSchema {
    pub parameters: BTreeMap<String, ParamType>,
}

impl MigrationSchema {
    /// Reads `query-qmp-schema` (qapi's typed entries). `None` if it has no
    /// `migrate-set-parameters`.
    pub fn from_introspection(entries: &[SchemaInfo]) -> Option<MigrationSchema> {
        let by_name: BTreeMap<&str, &SchemaInfo> =
            entries.iter().map(|e| (base(e).name.as_str(), e)).collect();
        let SchemaInfo::command { command, .. } = by_name.get("migrate-set-parameters")? else {
            return None;
        };
        let SchemaInfo::object { object, .. } = by_name.get(command.arg_type.as_str())? else {
            return None;
        };
        let parameters = object
            .members
            .iter()
            .map(|m| (m.name.clone(), resolve(&by_name, &m.type_)))
            .collect();
        Some(MigrationSchema { parameters })
    }

    /// The values `multifd-compression` accepts (the methods compiled into this QEMU).
    pub fn multifd_compression_methods(&self) -> Option<&[String]> {
        match self.parameters.get("multifd-compression")? {
            ParamType::Enum(values) => Some(values),
            _ => None,
        }
    }
}

/// The measurement modes this QEMU's `calc-dirty-rate` takes (its `mode` argument's enum:
/// `page-sampling`, `dirty-ring`, `dirty-bitmap`): `None` without the command, empty when it
/// takes no mode (before QEMU 6.2: page sampling only).
pub fn dirty_rate_modes(entries: &[SchemaInfo]) -> Option<Vec<String>> {
    let by_name: BTreeMap<&str, &SchemaInfo> =
        entries.iter().map(|e| (base(e).name.as_str(), e)).collect();
    let SchemaInfo::command { command, .. } = by_name.get("calc-dirty-rate")? else {
        return None;
    };
    let Some(SchemaInfo::object { object, .. }) = by_name.get(command.arg_type.as_str()) else {
        return Some(Vec::new());
    };
    let modes = object.members.iter().find(|m| m.name == "mode").map(|m| {
        match resolve(&by_name, &m.type_) {
            ParamType::Enum(values) => values,
            _ => Vec::new(),
        }
    });
    Some(modes.unwrap_or_default())
}

fn base(e: &SchemaInfo) -> &SchemaInfoBase {
    match e {
        SchemaInfo::alternate { base, .. }
        | SchemaInfo::array { base, .. }
        | SchemaInfo::builtin { base, .. }
        | SchemaInfo::command { base, .. }
        | SchemaInfo::enum_ { base, .. }
        | SchemaInfo::event { base, .. }
        | SchemaInfo::object { base, .. } => base,
    }
}

fn resolve(by_name: &BTreeMap<&str, &SchemaInfo>, ty: &str) -> ParamType {
    match by_name.get(ty) {
        Some(SchemaInfo::builtin { builtin, .. }) => match builtin.json_type {
            JSONType::int => ParamType::Int,
            JSONType::number => ParamType::Number,
            JSONType::boolean => ParamType::Bool,
            JSONType::string => ParamType::Str,
            _ => ParamType::Json,
        },
        Some(SchemaInfo::enum_ { enum_, .. }) => {
            ParamType::Enum(enum_.members.iter().map(|m| m.name.clone()).collect())
        }
        Some(SchemaInfo::alternate { alternate, .. }) => {
            let kinds: Vec<ParamType> = alternate
                .members
                .iter()
                .map(|m| match by_name.get(m.type_.as_str()) {
                    Some(SchemaInfo::builtin { builtin, .. })
                        if builtin.json_type == JSONType::null =>
                    {
                        ParamType::StrOrNull
                    }
                    _ => resolve(by_name, &m.type_),
                })
                .collect();
            if kinds.contains(&ParamType::Str) && kinds.contains(&ParamType::StrOrNull) {
                ParamType::StrOrNull
            } else if kinds.len() == 1 {
                kinds.into_iter().next().unwrap_or(ParamType::Json)
            } else {
                ParamType::Json
            }
        }
        _ => ParamType::Json,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A trimmed `query-qmp-schema` reply as QEMU 10.0 gives it (type names are numbers).
    fn schema() -> Value {
        json!([
            {"name": "migrate-set-parameters", "meta-type": "command", "arg-type": "123", "ret-type": "0"},
            {"name": "123", "meta-type": "object", "members": [
                {"name": "downtime-limit", "type": "int", "default": null},
                {"name": "cpu-throttle-tailslow", "type": "bool", "default": null},
                {"name": "tls-creds", "type": "456", "default": null},
                {"name": "multifd-compression", "type": "789", "default": null},
                {"name": "block-bitmap-mapping", "type": "[321]", "default": null},
                {"name": "some-ratio", "type": "number", "default": null}
            ]},
            {"name": "int", "meta-type": "builtin", "json-type": "int"},
            {"name": "bool", "meta-type": "builtin", "json-type": "boolean"},
            {"name": "str", "meta-type": "builtin", "json-type": "string"},
            {"name": "null", "meta-type": "builtin", "json-type": "null"},
            {"name": "number", "meta-type": "builtin", "json-type": "number"},
            {"name": "456", "meta-type": "alternate", "members": [{"type": "str"}, {"type": "null"}]},
            {"name": "789", "meta-type": "enum", "members": [{"name": "none"}, {"name": "zlib"}, {"name": "zstd"}], "values": ["none", "zlib", "zstd"]},
            {"name": "[321]", "meta-type": "array", "element-type": "321"}
        ])
    }

    fn typed(raw: &Value) -> Vec<SchemaInfo> {
        let (entries, skipped) = gp_qemu::qmp::decode_each(raw).unwrap();
        assert_eq!(skipped, 0);
        entries
    }

    #[test]
    fn dirty_rate_modes_come_from_calc_dirty_rate_s_mode() {
        let mut raw = schema();
        assert_eq!(dirty_rate_modes(&typed(&raw)), None);
        let more = json!([
            {"name": "calc-dirty-rate", "meta-type": "command", "arg-type": "55", "ret-type": "0"},
            {"name": "55", "meta-type": "object", "members": [
                {"name": "calc-time", "type": "int"},
                {"name": "sample-pages", "type": "int", "default": null},
                {"name": "mode", "type": "66", "default": null}
            ]},
            {"name": "66", "meta-type": "enum", "members": [{"name": "page-sampling"},
                {"name": "dirty-ring"}, {"name": "dirty-bitmap"}],
                "values": ["page-sampling", "dirty-ring", "dirty-bitmap"]}
        ]);
        raw.as_array_mut()
            .unwrap()
            .extend(more.as_array().unwrap().iter().cloned());
        assert_eq!(
            dirty_rate_modes(&typed(&raw)).unwrap(),
            ["page-sampling", "dirty-ring", "dirty-bitmap"]
        );
    }

    #[test]
    fn parameters_are_typed_from_the_schema() {
        let s = MigrationSchema::from_introspection(&typed(&schema())).unwrap();
        assert_eq!(s.parameters["downtime-limit"], ParamType::Int);
        assert_eq!(s.parameters["cpu-throttle-tailslow"], ParamType::Bool);
        assert_eq!(s.parameters["tls-creds"], ParamType::StrOrNull);
        assert_eq!(s.parameters["block-bitmap-mapping"], ParamType::Json);
        assert_eq!(s.parameters["some-ratio"], ParamType::Number);
        assert_eq!(
            s.multifd_compression_methods().unwrap(),
            ["none", "zlib", "zstd"]
        );
    }

    #[test]
    fn values_are_converted_or_refused_with_the_expected_type() {
        let s = MigrationSchema::from_introspection(&typed(&schema())).unwrap();
        let p = |name: &str, text: &str| s.parameters[name].parse(name, text);
        assert_eq!(p("downtime-limit", "300").unwrap(), json!(300));
        assert_eq!(p("cpu-throttle-tailslow", "on").unwrap(), json!(true));
        assert_eq!(p("cpu-throttle-tailslow", "false").unwrap(), json!(false));
        assert_eq!(p("tls-creds", "tls0").unwrap(), json!("tls0"));
        assert_eq!(p("tls-creds", "null").unwrap(), Value::Null);
        assert_eq!(p("multifd-compression", "zstd").unwrap(), json!("zstd"));
        assert_eq!(p("some-ratio", "0.5").unwrap(), json!(0.5));
        assert_eq!(p("block-bitmap-mapping", "[]").unwrap(), json!([]));
        let e = p("downtime-limit", "fast").unwrap_err();
        assert_eq!(
            e,
            "--parameter downtime-limit=fast: downtime-limit takes an integer"
        );
        let e = p("multifd-compression", "qpl").unwrap_err();
        assert!(e.ends_with("one of: none, zlib, zstd"), "{e}");
        assert!(p("cpu-throttle-tailslow", "maybe").is_err());
    }

    #[test]
    fn a_schema_without_the_command_is_none() {
        assert!(MigrationSchema::from_introspection(&[]).is_none());
        let no_args = typed(&json!([
            {"name": "migrate-set-parameters", "meta-type": "command", "arg-type": "0", "ret-type": "0"},
            {"name": "0", "meta-type": "builtin", "json-type": "int"}
        ]));
        assert!(MigrationSchema::from_introspection(&no_args).is_none());
    }
}
