//! From a scenario and what the two QEMUs support to the exact capabilities and parameters to
//! set on each side, or a refusal naming the missing feature and the QEMU version.

use std::collections::BTreeMap;

use gp_records::migrate::Scenario;
use gp_records::Role;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::schema::{MigrationSchema, ParamType};

/// What one QEMU reported before anything was configured.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// `10.0.2`.
    pub version: String,
    /// Capability name to its current state (`query-migrate-capabilities`).
    pub capabilities: BTreeMap<String, bool>,
    /// `query-migrate-parameters`, verbatim.
    pub parameters: Map<String, Value>,
    pub schema: Option<MigrationSchema>,
    /// `query-kvm`'s `enabled`, when known.
    pub kvm_enabled: Option<bool>,
}

impl Facts {
    /// Reads the replies of `query-version`, `query-migrate-capabilities`,
    /// `query-migrate-parameters`, `query-qmp-schema` and `query-kvm`.
    pub fn from_replies(
        version: &Value,
        capabilities: &Value,
        parameters: &Value,
        schema: Option<&Value>,
        kvm: Option<&Value>,
    ) -> Facts {
        let q = &version["qemu"];
        let version = format!(
            "{}.{}.{}",
            q["major"].as_u64().unwrap_or(0),
            q["minor"].as_u64().unwrap_or(0),
            q["micro"].as_u64().unwrap_or(0)
        );
        let capabilities = capabilities
            .as_array()
            .map(|caps| {
                caps.iter()
                    .filter_map(|c| {
                        Some((c["capability"].as_str()?.to_string(), c["state"].as_bool()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Facts {
            version,
            capabilities,
            parameters: parameters.as_object().cloned().unwrap_or_default(),
            schema: schema.and_then(MigrationSchema::from_introspection),
            kvm_enabled: kvm.and_then(|k| k["enabled"].as_bool()),
        }
    }

    fn has_capability(&self, name: &str) -> bool {
        self.capabilities.contains_key(name)
    }

    fn has_parameter(&self, name: &str) -> bool {
        self.parameters.contains_key(name)
            || self
                .schema
                .as_ref()
                .is_some_and(|s| s.parameters.contains_key(name))
    }

    fn param_type(&self, name: &str) -> Option<ParamType> {
        if let Some(t) = self.schema.as_ref().and_then(|s| s.parameters.get(name)) {
            return Some(t.clone());
        }
        // Without the schema, guess from the current value's JSON type.
        Some(match self.parameters.get(name)? {
            Value::Bool(_) => ParamType::Bool,
            Value::Number(n) if n.is_f64() => ParamType::Number,
            Value::Number(_) => ParamType::Int,
            Value::String(_) => ParamType::Str,
            _ => ParamType::Json,
        })
    }
}

/// Facts from gp-launch's header.
#[derive(Debug, Clone, Default)]
pub struct Hardware {
    pub mem_bytes: Option<u64>,
    pub dirty_ring_size: Option<u32>,
    pub accel: Option<String>,
}

/// `--capability` and `--parameter` as given.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    pub capabilities: Vec<(String, bool)>,
    pub parameters: Vec<(String, String)>,
}

/// The scenario asks for something this QEMU (or this run) cannot do.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum PlanError {
    #[error("{feature} is not supported by QEMU {version}: {detail}")]
    Unsupported {
        feature: String,
        version: String,
        detail: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// What to set, on which side, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub src_capabilities: Vec<(String, bool)>,
    pub dst_capabilities: Vec<(String, bool)>,
    pub src_parameters: Vec<(String, Value)>,
    pub dst_parameters: Vec<(String, Value)>,
    /// Typed `--parameter` values, for the scenario record.
    pub extra_parameters: Map<String, Value>,
    /// Adjustments worth telling the user (e.g. a cache size rounded to a power of two).
    pub notes: Vec<String>,
}

impl Plan {
    fn cap(&mut self, side: Side, name: &str, on: bool) {
        for (role, list) in [
            (Role::Src, &mut self.src_capabilities),
            (Role::Dst, &mut self.dst_capabilities),
        ] {
            if side.includes(role) {
                match list.iter_mut().find(|(n, _)| n == name) {
                    Some(entry) => entry.1 = on,
                    None => list.push((name.to_string(), on)),
                }
            }
        }
    }

    fn param(&mut self, side: Side, name: &str, value: Value) {
        for (role, list) in [
            (Role::Src, &mut self.src_parameters),
            (Role::Dst, &mut self.dst_parameters),
        ] {
            if side.includes(role) {
                match list.iter_mut().find(|(n, _)| n == name) {
                    Some(entry) => entry.1 = value.clone(),
                    None => list.push((name.to_string(), value.clone())),
                }
            }
        }
    }
}

/// Which VM(s) a capability or parameter is set on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Src,
    Both,
}

impl Side {
    fn includes(self, role: Role) -> bool {
        self == Side::Both || role == Role::Src
    }
}

/// Capabilities that only the sending side acts on (setting some of them on an incoming QEMU is
/// refused, e.g. dirty-limit without KVM). Everything else is set on both sides.
const SRC_ONLY_CAPABILITIES: &[&str] = &[
    "auto-converge",
    "dirty-limit",
    "background-snapshot",
    "zero-copy-send",
    "pause-before-switchover",
    "release-ram",
    "compress",
];

/// Parameters that only the sending side uses. Everything else (multifd channels and
/// compression, TLS, mode, direct-io, announce-*, ...) is set on both sides.
const SRC_ONLY_PARAMETERS: &[&str] = &[
    "max-bandwidth",
    "downtime-limit",
    "avail-switchover-bandwidth",
    "max-postcopy-bandwidth",
    "cpu-throttle-initial",
    "cpu-throttle-increment",
    "cpu-throttle-tailslow",
    "max-cpu-throttle",
    "throttle-trigger-threshold",
    "x-vcpu-dirty-limit-period",
    "vcpu-dirty-limit",
    "xbzrle-cache-size",
    "compress-threads",
    "compress-level",
    "compress-wait-thread",
    "multifd-zlib-level",
    "multifd-zstd-level",
    "multifd-qatzip-level",
    "zero-page-detection",
    "x-checkpoint-delay",
];

/// Where a capability is set.
pub fn capability_side(name: &str) -> Side {
    if SRC_ONLY_CAPABILITIES.contains(&name) {
        Side::Src
    } else {
        Side::Both
    }
}

/// Where a parameter is set.
pub fn parameter_side(name: &str) -> Side {
    if SRC_ONLY_PARAMETERS.contains(&name) {
        Side::Src
    } else {
        Side::Both
    }
}

/// The multifd compression methods the original guestperf knows (besides `none`).
pub const MULTIFD_COMPRESSION_METHODS: &[&str] = &["none", "zlib", "zstd", "qpl", "uadk"];

/// Largest power of two not above `n` (0 for 0).
fn pow2_floor(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        1 << (63 - n.leading_zeros())
    }
}

/// Builds the plan, checking every feature against both QEMUs.
pub fn build(
    scenario: &Scenario,
    extras: &Extras,
    hw: &Hardware,
    src: &Facts,
    dst: &Facts,
) -> Result<Plan, PlanError> {
    let mut plan = Plan::default();
    let unsupported = |feature: &str, facts: &Facts, detail: String| PlanError::Unsupported {
        feature: feature.to_string(),
        version: facts.version.clone(),
        detail,
    };
    let need_cap = |feature: &str, cap: &str, side: Side, extra: &str| -> Result<(), PlanError> {
        for (role, facts) in [(Role::Src, src), (Role::Dst, dst)] {
            if side.includes(role) && !facts.has_capability(cap) {
                return Err(unsupported(
                    feature,
                    facts,
                    format!("the {role} QEMU has no '{cap}' migration capability{extra}"),
                ));
            }
        }
        Ok(())
    };
    let need_param = |feature: &str, param: &str, side: Side| -> Result<(), PlanError> {
        for (role, facts) in [(Role::Src, src), (Role::Dst, dst)] {
            if side.includes(role) && !facts.has_parameter(param) {
                return Err(unsupported(
                    feature,
                    facts,
                    format!("the {role} QEMU has no '{param}' migration parameter"),
                ));
            }
        }
        Ok(())
    };

    // Events make status changes and passes over RAM visible to the millisecond.
    if src.has_capability("events") && dst.has_capability("events") {
        plan.cap(Side::Both, "events", true);
    } else {
        plan.notes.push("this QEMU has no 'events' migration capability: progress is known only to the poll interval".into());
    }

    plan.param(
        Side::Src,
        "max-bandwidth",
        Value::from(scenario.bandwidth.saturating_mul(1 << 20)),
    );
    plan.param(Side::Src, "downtime-limit", Value::from(scenario.downtime));

    if scenario.auto_converge {
        need_cap(
            "auto-converge (--auto-converge)",
            "auto-converge",
            Side::Src,
            "",
        )?;
        need_param(
            "auto-converge (--auto-converge-step)",
            "cpu-throttle-increment",
            Side::Src,
        )?;
        plan.cap(Side::Src, "auto-converge", true);
        plan.param(
            Side::Src,
            "cpu-throttle-increment",
            Value::from(scenario.auto_converge_step),
        );
    }

    if scenario.post_copy {
        need_cap("post-copy (--post-copy)", "postcopy-ram", Side::Both, "")?;
        plan.cap(Side::Both, "postcopy-ram", true);
    }

    if scenario.compression_mt {
        need_cap(
            "multi-thread compression (--compression-mt)",
            "compress",
            Side::Both,
            " (QEMU removed multi-thread compression in 9.1; use --multifd --multifd-compression \
             zlib or zstd instead)",
        )?;
        plan.cap(Side::Both, "compress", true);
        plan.param(
            Side::Src,
            "compress-threads",
            Value::from(scenario.compression_mt_threads),
        );
        if dst.has_parameter("decompress-threads") {
            plan.dst_parameters.push((
                "decompress-threads".into(),
                Value::from(scenario.compression_mt_threads),
            ));
        }
    }

    if scenario.compression_xbzrle {
        need_cap(
            "xbzrle compression (--compression-xbzrle)",
            "xbzrle",
            Side::Both,
            "",
        )?;
        need_param(
            "xbzrle compression (--compression-xbzrle-cache)",
            "xbzrle-cache-size",
            Side::Src,
        )?;
        let mem = hw.mem_bytes.ok_or_else(|| {
            PlanError::Invalid(
                "--compression-xbzrle-cache is a percentage of guest RAM, but the input has no \
                 launch header with hardware.mem_bytes: put gp-launch upstream"
                    .into(),
            )
        })?;
        let wanted = mem / 100 * scenario.compression_xbzrle_cache;
        // QEMU wants a power of two no smaller than a page.
        let size = pow2_floor(wanted).max(4096);
        if size != wanted {
            plan.notes.push(format!(
                "xbzrle cache: {}% of {} MiB is {} bytes; QEMU needs a power of two, using {} \
                 bytes",
                scenario.compression_xbzrle_cache,
                mem >> 20,
                wanted,
                size
            ));
        }
        plan.cap(Side::Both, "xbzrle", true);
        plan.param(Side::Src, "xbzrle-cache-size", Value::from(size));
    }

    if scenario.multifd {
        need_cap("multifd (--multifd)", "multifd", Side::Both, "")?;
        need_param(
            "multifd (--multifd-channels)",
            "multifd-channels",
            Side::Both,
        )?;
        plan.cap(Side::Both, "multifd", true);
        plan.param(
            Side::Both,
            "multifd-channels",
            Value::from(scenario.multifd_channels),
        );
        let method = scenario.multifd_compression.as_str();
        if !method.is_empty() {
            if !MULTIFD_COMPRESSION_METHODS.contains(&method) {
                return Err(PlanError::Invalid(format!(
                    "--multifd-compression {method}: not a multifd compression method (one of: {})",
                    MULTIFD_COMPRESSION_METHODS.join(", ")
                )));
            }
            need_param(
                "multifd compression (--multifd-compression)",
                "multifd-compression",
                Side::Both,
            )?;
            for (role, facts) in [(Role::Src, src), (Role::Dst, dst)] {
                if let Some(methods) = facts
                    .schema
                    .as_ref()
                    .and_then(|s| s.multifd_compression_methods())
                {
                    if !methods.iter().any(|m| m == method) {
                        return Err(unsupported(
                            &format!("multifd compression '{method}' (--multifd-compression)"),
                            facts,
                            format!(
                                "it is not compiled into the {role} QEMU, which has: {}",
                                methods.join(", ")
                            ),
                        ));
                    }
                }
            }
            plan.param(Side::Both, "multifd-compression", Value::from(method));
        }
    }

    if scenario.dirty_limit {
        need_cap("dirty-limit (--dirty-limit)", "dirty-limit", Side::Src, "")?;
        need_param(
            "dirty-limit (--vcpu-dirty-limit)",
            "vcpu-dirty-limit",
            Side::Src,
        )?;
        let kvm = src
            .kvm_enabled
            .unwrap_or(hw.accel.as_deref() == Some("kvm"));
        if !kvm {
            return Err(unsupported(
                "dirty-limit (--dirty-limit)",
                src,
                format!(
                    "it needs KVM with a dirty ring, but the source runs under {}",
                    hw.accel.as_deref().unwrap_or("TCG")
                ),
            ));
        }
        if hw.dirty_ring_size == Some(0) {
            return Err(unsupported(
                "dirty-limit (--dirty-limit)",
                src,
                "it needs the KVM dirty ring, but the VMs were launched without one (give \
                 gp-launch --dirty-ring-size)"
                    .into(),
            ));
        }
        plan.cap(Side::Src, "dirty-limit", true);
        plan.param(
            Side::Src,
            "x-vcpu-dirty-limit-period",
            Value::from(scenario.x_vcpu_dirty_limit_period),
        );
        plan.param(
            Side::Src,
            "vcpu-dirty-limit",
            Value::from(scenario.vcpu_dirty_limit),
        );
    }

    for (name, on) in &extras.capabilities {
        let side = capability_side(name);
        for (role, facts) in [(Role::Src, src), (Role::Dst, dst)] {
            if side.includes(role) && !facts.has_capability(name) {
                let known: Vec<&str> = facts.capabilities.keys().map(String::as_str).collect();
                return Err(unsupported(
                    &format!("migration capability '{name}' (--capability)"),
                    facts,
                    format!("the {role} QEMU has: {}", known.join(", ")),
                ));
            }
        }
        plan.cap(side, name, *on);
    }

    for (name, text) in &extras.parameters {
        let side = parameter_side(name);
        let mut typed = None;
        for (role, facts) in [(Role::Src, src), (Role::Dst, dst)] {
            if !side.includes(role) {
                continue;
            }
            let Some(ty) = facts.param_type(name) else {
                let mut known: Vec<&str> = facts.parameters.keys().map(String::as_str).collect();
                if let Some(s) = &facts.schema {
                    known = s.parameters.keys().map(String::as_str).collect();
                }
                return Err(unsupported(
                    &format!("migration parameter '{name}' (--parameter)"),
                    facts,
                    format!("the {role} QEMU has: {}", known.join(", ")),
                ));
            };
            let value = ty.parse(name, text).map_err(PlanError::Invalid)?;
            typed.get_or_insert(value);
        }
        let value = typed.unwrap_or(Value::Null);
        plan.extra_parameters.insert(name.clone(), value.clone());
        plan.param(side, name, value);
    }

    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn qemu10() -> Facts {
        let caps: Vec<Value> = [
            "xbzrle",
            "rdma-pin-all",
            "auto-converge",
            "zero-blocks",
            "events",
            "postcopy-ram",
            "x-colo",
            "release-ram",
            "return-path",
            "pause-before-switchover",
            "multifd",
            "dirty-bitmaps",
            "postcopy-blocktime",
            "late-block-activate",
            "x-ignore-shared",
            "validate-uuid",
            "background-snapshot",
            "zero-copy-send",
            "postcopy-preempt",
            "switchover-ack",
            "dirty-limit",
            "mapped-ram",
        ]
        .iter()
        .map(|c| json!({"capability": c, "state": false}))
        .collect();
        let params = json!({"downtime-limit": 300, "max-bandwidth": 134217728,
            "multifd-channels": 2, "multifd-compression": "none", "xbzrle-cache-size": 67108864,
            "cpu-throttle-increment": 10, "cpu-throttle-tailslow": false,
            "x-vcpu-dirty-limit-period": 1000, "vcpu-dirty-limit": 1, "announce-max": 550});
        let schema = json!([
            {"name": "migrate-set-parameters", "meta-type": "command", "arg-type": "1"},
            {"name": "1", "meta-type": "object", "members": [
                {"name": "downtime-limit", "type": "int"},
                {"name": "max-bandwidth", "type": "int"},
                {"name": "multifd-channels", "type": "int"},
                {"name": "multifd-compression", "type": "2"},
                {"name": "xbzrle-cache-size", "type": "int"},
                {"name": "cpu-throttle-increment", "type": "int"},
                {"name": "cpu-throttle-tailslow", "type": "bool"},
                {"name": "x-vcpu-dirty-limit-period", "type": "int"},
                {"name": "vcpu-dirty-limit", "type": "int"},
                {"name": "announce-max", "type": "int"}
            ]},
            {"name": "int", "meta-type": "builtin", "json-type": "int"},
            {"name": "bool", "meta-type": "builtin", "json-type": "boolean"},
            {"name": "2", "meta-type": "enum", "values": ["none", "zlib", "zstd"]}
        ]);
        Facts::from_replies(
            &json!({"qemu": {"major": 10, "minor": 0, "micro": 2}, "package": ""}),
            &Value::Array(caps),
            &params,
            Some(&schema),
            Some(&json!({"enabled": false, "present": true})),
        )
    }

    fn hw() -> Hardware {
        Hardware {
            mem_bytes: Some(256 << 20),
            dirty_ring_size: Some(0),
            accel: Some("tcg".into()),
        }
    }

    fn plan(s: &Scenario, extras: &Extras) -> Result<Plan, PlanError> {
        build(s, extras, &hw(), &qemu10(), &qemu10())
    }

    #[test]
    fn default_scenario_sets_events_bandwidth_and_downtime() {
        let p = plan(&Scenario::default(), &Extras::default()).unwrap();
        assert_eq!(p.src_capabilities, [("events".to_string(), true)]);
        assert_eq!(p.dst_capabilities, [("events".to_string(), true)]);
        assert_eq!(
            p.src_parameters,
            [
                ("max-bandwidth".to_string(), json!(125_000u64 << 20)),
                ("downtime-limit".to_string(), json!(500)),
            ]
        );
        assert!(p.dst_parameters.is_empty());
    }

    #[test]
    fn every_strategy_lands_on_the_right_side() {
        let s = Scenario {
            post_copy: true,
            auto_converge: true,
            auto_converge_step: 20,
            compression_xbzrle: true,
            multifd: true,
            multifd_channels: 4,
            multifd_compression: "zstd".into(),
            ..Scenario::default()
        };
        let p = plan(&s, &Extras::default()).unwrap();
        let caps = |l: &[(String, bool)]| l.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(
            caps(&p.src_capabilities),
            [
                "events",
                "auto-converge",
                "postcopy-ram",
                "xbzrle",
                "multifd"
            ]
        );
        assert_eq!(
            caps(&p.dst_capabilities),
            ["events", "postcopy-ram", "xbzrle", "multifd"]
        );
        let get =
            |l: &[(String, Value)], n: &str| l.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(
            get(&p.src_parameters, "cpu-throttle-increment"),
            Some(json!(20))
        );
        // 10% of 256 MiB is 25.6 MiB: rounded down to 16 MiB.
        assert_eq!(
            get(&p.src_parameters, "xbzrle-cache-size"),
            Some(json!(16u64 << 20))
        );
        assert!(p.notes.iter().any(|n| n.contains("power of two")));
        assert_eq!(get(&p.dst_parameters, "multifd-channels"), Some(json!(4)));
        assert_eq!(
            get(&p.dst_parameters, "multifd-compression"),
            Some(json!("zstd"))
        );
        assert_eq!(get(&p.dst_parameters, "xbzrle-cache-size"), None);
    }

    #[test]
    fn multi_thread_compression_is_refused_on_qemu_10() {
        let s = Scenario {
            compression_mt: true,
            ..Scenario::default()
        };
        let e = plan(&s, &Extras::default()).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, PlanError::Unsupported { .. }));
        assert!(
            msg.starts_with(
                "multi-thread compression (--compression-mt) is not supported by QEMU 10.0.2"
            ),
            "{msg}"
        );
        assert!(
            msg.contains("removed multi-thread compression in 9.1"),
            "{msg}"
        );
    }

    #[test]
    fn a_multifd_method_not_compiled_in_is_refused() {
        let s = Scenario {
            multifd: true,
            multifd_compression: "qpl".into(),
            ..Scenario::default()
        };
        let msg = plan(&s, &Extras::default()).unwrap_err().to_string();
        assert!(msg.contains("multifd compression 'qpl'"), "{msg}");
        assert!(msg.contains("QEMU 10.0.2"), "{msg}");
        assert!(msg.contains("has: none, zlib, zstd"), "{msg}");
        let s = Scenario {
            multifd: true,
            multifd_compression: "lz4".into(),
            ..Scenario::default()
        };
        assert!(matches!(
            plan(&s, &Extras::default()),
            Err(PlanError::Invalid(_))
        ));
    }

    #[test]
    fn dirty_limit_needs_kvm_and_a_dirty_ring() {
        let s = Scenario {
            dirty_limit: true,
            ..Scenario::default()
        };
        let msg = plan(&s, &Extras::default()).unwrap_err().to_string();
        assert!(
            msg.starts_with("dirty-limit (--dirty-limit) is not supported by QEMU 10.0.2"),
            "{msg}"
        );
        assert!(msg.contains("KVM"), "{msg}");
        let mut kvm = qemu10();
        kvm.kvm_enabled = Some(true);
        let no_ring = Hardware {
            accel: Some("kvm".into()),
            ..hw()
        };
        let msg = build(&s, &Extras::default(), &no_ring, &kvm, &kvm)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("dirty-ring-size"), "{msg}");
        let ring = Hardware {
            dirty_ring_size: Some(4096),
            ..no_ring
        };
        let p = build(&s, &Extras::default(), &ring, &kvm, &kvm).unwrap();
        assert!(p.src_capabilities.contains(&("dirty-limit".into(), true)));
        assert!(!p.dst_capabilities.iter().any(|(n, _)| n == "dirty-limit"));
        assert!(p
            .src_parameters
            .contains(&("x-vcpu-dirty-limit-period".into(), json!(500))));
    }

    #[test]
    fn generic_capabilities_and_parameters_are_checked_typed_and_sided() {
        let extras = Extras {
            capabilities: vec![
                ("return-path".into(), true),
                ("pause-before-switchover".into(), true),
            ],
            parameters: vec![
                ("announce-max".into(), "600".into()),
                ("cpu-throttle-tailslow".into(), "on".into()),
                ("downtime-limit".into(), "750".into()),
            ],
        };
        let p = plan(&Scenario::default(), &extras).unwrap();
        assert!(p.src_capabilities.contains(&("return-path".into(), true)));
        assert!(p.dst_capabilities.contains(&("return-path".into(), true)));
        assert!(!p
            .dst_capabilities
            .iter()
            .any(|(n, _)| n == "pause-before-switchover"));
        assert!(p
            .dst_parameters
            .contains(&("announce-max".into(), json!(600))));
        assert!(p
            .src_parameters
            .contains(&("cpu-throttle-tailslow".into(), json!(true))));
        // --parameter overrides the scenario's value in place.
        assert!(p
            .src_parameters
            .contains(&("downtime-limit".into(), json!(750))));
        assert_eq!(
            p.src_parameters
                .iter()
                .filter(|(n, _)| n == "downtime-limit")
                .count(),
            1
        );
        assert_eq!(p.extra_parameters["announce-max"], json!(600));

        let bad = Extras {
            capabilities: vec![("compress".into(), true)],
            ..Extras::default()
        };
        let msg = plan(&Scenario::default(), &bad).unwrap_err().to_string();
        assert!(
            msg.starts_with(
                "migration capability 'compress' (--capability) is not supported by QEMU 10.0.2"
            ),
            "{msg}"
        );
        let bad = Extras {
            parameters: vec![("warp-factor".into(), "9".into())],
            ..Extras::default()
        };
        let msg = plan(&Scenario::default(), &bad).unwrap_err().to_string();
        assert!(msg.contains("'warp-factor'"), "{msg}");
        let bad = Extras {
            parameters: vec![("announce-max".into(), "lots".into())],
            ..Extras::default()
        };
        assert!(matches!(
            plan(&Scenario::default(), &bad),
            Err(PlanError::Invalid(_))
        ));
    }

    #[test]
    fn pow2_floor_rounds_down() {
        assert_eq!(pow2_floor(0), 0);
        assert_eq!(pow2_floor(1), 1);
        assert_eq!(pow2_floor(4096), 4096);
        assert_eq!(pow2_floor(26_843_545), 16 << 20);
    }
}
