//! From a scenario and what the two QEMUs support to the exact capabilities and parameters to
//! set on each side, or a refusal naming the missing feature and the QEMU version.
//!
//! Capabilities are by name (QEMU 7.2 to 10.x report different lists; see
//! `gp_qemu::qmp::CapabilityState`). The scenario's parameters are qapi's typed
//! `MigrateSetParameters`; what qapi's schema lacks (`compress-threads`, which QEMU 9.1 removed)
//! and `--parameter` values, typed per the running QEMU's own schema, are set after them as
//! JSON, the escape hatch.

use std::collections::BTreeMap;

use gp_qemu::qmp::CapabilityState;
use gp_records::migrate::Scenario;
use gp_records::Role;
use qapi::qmp::{KvmInfo, MigrateSetParameters, MultiFDCompression, SchemaInfo, VersionInfo};
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
    /// `query-migrate-parameters` as QEMU sent it: the names it has, and their values.
    pub parameters: Map<String, Value>,
    pub schema: Option<MigrationSchema>,
    /// `query-kvm`'s `enabled`, when known.
    pub kvm_enabled: Option<bool>,
    /// The modes of `calc-dirty-rate` ([`crate::schema::dirty_rate_modes`]); `None` without
    /// the command or without a schema to tell.
    pub dirty_rate_modes: Option<Vec<String>>,
}

impl Facts {
    /// From the replies of `query-version`, `query-migrate-capabilities`,
    /// `query-migrate-parameters`, `query-qmp-schema` and `query-kvm` (the last two may fail on
    /// an old or restricted QEMU).
    pub fn new(
        version: &VersionInfo,
        capabilities: &[CapabilityState],
        parameters: Map<String, Value>,
        schema: Option<&[SchemaInfo]>,
        kvm: Option<&KvmInfo>,
    ) -> Facts {
        Facts {
            version: gp_qemu::binary::QemuVersion::from_qmp(version).number(),
            capabilities: capabilities
                .iter()
                .map(|c| (c.capability.clone(), c.state))
                .collect(),
            parameters,
            schema: schema.and_then(MigrationSchema::from_introspection),
            kvm_enabled: kvm.map(|k| k.enabled),
            dirty_rate_modes: schema.and_then(crate::schema::dirty_rate_modes),
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

    /// The parameter names this QEMU knows, for a refusal.
    fn parameter_names(&self) -> Vec<&str> {
        match &self.schema {
            Some(s) => s.parameters.keys().map(String::as_str).collect(),
            None => self.parameters.keys().map(String::as_str).collect(),
        }
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

/// What to set on one VM.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Capabilities by name, in the order the plan chose them.
    pub capabilities: Vec<CapabilityState>,
    /// The scenario's parameters, typed.
    pub parameters: MigrateSetParameters,
    /// Parameters qapi's schema lacks, and `--parameter` values: set as JSON after
    /// `parameters`.
    pub untyped_parameters: Map<String, Value>,
}

impl Settings {
    fn cap(&mut self, name: &str, on: bool) {
        match self.capabilities.iter_mut().find(|c| c.capability == name) {
            Some(c) => c.state = on,
            None => self.capabilities.push(CapabilityState {
                capability: name.to_string(),
                state: on,
            }),
        }
    }

    /// The typed parameters as QEMU names them.
    pub fn typed_parameter_values(&self) -> Map<String, Value> {
        match serde_json::to_value(&self.parameters) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    /// Every parameter this plan sets, as QEMU names them, for messages and to compare with
    /// what QEMU reports afterwards.
    pub fn parameter_values(&self) -> Map<String, Value> {
        let mut all = self.typed_parameter_values();
        all.extend(self.untyped_parameters.clone());
        all
    }

    /// Sets `name` as JSON; a typed value of the same name gives way to it.
    fn untyped(&mut self, name: &str, value: Value) {
        let mut typed = self.typed_parameter_values();
        if typed.remove(name).is_some() {
            if let Ok(p) = serde_json::from_value(Value::Object(typed)) {
                self.parameters = p;
            }
        }
        self.untyped_parameters.insert(name.to_string(), value);
    }
}

/// What to set, on which side.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub src: Settings,
    pub dst: Settings,
    /// Typed `--parameter` values, for the scenario record.
    pub extra_parameters: Map<String, Value>,
    /// Adjustments worth telling the user (e.g. a cache size rounded to a power of two).
    pub notes: Vec<String>,
}

impl Plan {
    pub fn side(&self, role: Role) -> &Settings {
        match role {
            Role::Src => &self.src,
            Role::Dst => &self.dst,
        }
    }

    fn sides(&mut self, side: Side) -> impl Iterator<Item = &mut Settings> {
        let dst = (side == Side::Both).then_some(&mut self.dst);
        std::iter::once(&mut self.src).chain(dst)
    }

    fn cap(&mut self, side: Side, name: &str, on: bool) {
        self.sides(side).for_each(|s| s.cap(name, on));
    }

    fn params(&mut self, side: Side, set: impl Fn(&mut MigrateSetParameters)) {
        self.sides(side).for_each(|s| set(&mut s.parameters));
    }

    fn untyped(&mut self, side: Side, name: &str, value: &Value) {
        self.sides(side)
            .for_each(|s| s.untyped(name, value.clone()));
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

/// A scenario value QEMU takes as a byte (`cpu-throttle-increment`, `multifd-channels`).
fn small(option: &str, value: u64) -> Result<u8, PlanError> {
    u8::try_from(value)
        .map_err(|_| PlanError::Invalid(format!("{option} {value}: at most 255 (QEMU's limit)")))
}

/// Both QEMUs, to check features against.
struct Qemus<'a> {
    src: &'a Facts,
    dst: &'a Facts,
}

impl Qemus<'_> {
    fn each(&self, side: Side) -> impl Iterator<Item = (Role, &Facts)> {
        [(Role::Src, self.src), (Role::Dst, self.dst)]
            .into_iter()
            .filter(move |(role, _)| side.includes(*role))
    }

    fn unsupported(feature: &str, facts: &Facts, detail: String) -> PlanError {
        PlanError::Unsupported {
            feature: feature.to_string(),
            version: facts.version.clone(),
            detail,
        }
    }

    /// Fails naming the first side (of `side`) whose QEMU lacks what `has` checks.
    fn need(
        &self,
        feature: &str,
        side: Side,
        has: impl Fn(&Facts) -> bool,
        lacks: impl Fn(Role, &Facts) -> String,
    ) -> Result<(), PlanError> {
        match self.each(side).find(|(_, f)| !has(f)) {
            Some((role, facts)) => Err(Self::unsupported(feature, facts, lacks(role, facts))),
            None => Ok(()),
        }
    }

    fn need_cap(&self, feature: &str, cap: &str, side: Side, hint: &str) -> Result<(), PlanError> {
        self.need(
            feature,
            side,
            |f| f.has_capability(cap),
            |role, _| format!("the {role} QEMU has no '{cap}' migration capability{hint}"),
        )
    }

    fn need_param(&self, feature: &str, param: &str, side: Side) -> Result<(), PlanError> {
        self.need(
            feature,
            side,
            |f| f.has_parameter(param),
            |role, _| format!("the {role} QEMU has no '{param}' migration parameter"),
        )
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
    let q = Qemus { src, dst };
    let mut plan = Plan::default();
    events_and_limits(&mut plan, scenario, &q);
    if scenario.auto_converge {
        auto_converge(&mut plan, scenario, &q)?;
    }
    if scenario.post_copy {
        q.need_cap("post-copy (--post-copy)", "postcopy-ram", Side::Both, "")?;
        plan.cap(Side::Both, "postcopy-ram", true);
        blocktime(&mut plan, &q);
    }
    if scenario.compression_mt {
        compression_mt(&mut plan, scenario, &q)?;
    }
    if scenario.compression_xbzrle {
        xbzrle(&mut plan, scenario, hw, &q)?;
    }
    if scenario.multifd {
        multifd(&mut plan, scenario, &q)?;
    }
    if scenario.dirty_limit {
        dirty_limit(&mut plan, scenario, hw, &q)?;
    }
    extra_capabilities(&mut plan, extras, &q)?;
    extra_parameters(&mut plan, extras, &q)?;
    Ok(plan)
}

/// Events (status changes and passes known to the millisecond), bandwidth and downtime.
fn events_and_limits(plan: &mut Plan, s: &Scenario, q: &Qemus) {
    if q.src.has_capability("events") && q.dst.has_capability("events") {
        plan.cap(Side::Both, "events", true);
    } else {
        plan.notes.push(
            "this QEMU has no 'events' migration capability: progress is known only to the poll \
             interval"
                .into(),
        );
    }
    let bandwidth = s.bandwidth.saturating_mul(1 << 20);
    plan.params(Side::Src, |p| {
        p.max_bandwidth = Some(bandwidth);
        p.downtime_limit = Some(s.downtime);
    });
}

/// What post-copy cost the guest, measured by the destination (`postcopy-blocktime`, in its
/// `query-migrate` once completed), where both QEMUs have the capability.
fn blocktime(plan: &mut Plan, q: &Qemus) {
    const CAP: &str = "postcopy-blocktime";
    match q.each(Side::Both).find(|(_, f)| !f.has_capability(CAP)) {
        None => plan.cap(Side::Both, CAP, true),
        Some((role, facts)) => plan.notes.push(format!(
            "the {role} QEMU ({}) has no '{CAP}' migration capability: the destination's \
             post-copy blocktime is not measured",
            facts.version
        )),
    }
}

fn auto_converge(plan: &mut Plan, s: &Scenario, q: &Qemus) -> Result<(), PlanError> {
    q.need_cap(
        "auto-converge (--auto-converge)",
        "auto-converge",
        Side::Src,
        "",
    )?;
    q.need_param(
        "auto-converge (--auto-converge-step)",
        "cpu-throttle-increment",
        Side::Src,
    )?;
    let step = small("--auto-converge-step", s.auto_converge_step)?;
    plan.cap(Side::Src, "auto-converge", true);
    plan.params(Side::Src, |p| p.cpu_throttle_increment = Some(step));
    Ok(())
}

/// Multi-thread compression: QEMU < 9.1 only, so its parameters are not in qapi's schema.
fn compression_mt(plan: &mut Plan, s: &Scenario, q: &Qemus) -> Result<(), PlanError> {
    q.need_cap(
        "multi-thread compression (--compression-mt)",
        "compress",
        Side::Both,
        " (QEMU removed multi-thread compression in 9.1; use --multifd --multifd-compression \
         zlib or zstd instead)",
    )?;
    let threads = Value::from(s.compression_mt_threads);
    plan.cap(Side::Both, "compress", true);
    plan.untyped(Side::Src, "compress-threads", &threads);
    if q.dst.has_parameter("decompress-threads") {
        plan.dst.untyped("decompress-threads", threads);
    }
    Ok(())
}

fn xbzrle(plan: &mut Plan, s: &Scenario, hw: &Hardware, q: &Qemus) -> Result<(), PlanError> {
    q.need_cap(
        "xbzrle compression (--compression-xbzrle)",
        "xbzrle",
        Side::Both,
        "",
    )?;
    q.need_param(
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
    let wanted = mem / 100 * s.compression_xbzrle_cache;
    // QEMU wants a power of two no smaller than a page.
    let size = pow2_floor(wanted).max(4096);
    if size != wanted {
        plan.notes.push(format!(
            "xbzrle cache: {}% of {} MiB is {} bytes; QEMU needs a power of two, using {} bytes",
            s.compression_xbzrle_cache,
            mem >> 20,
            wanted,
            size
        ));
    }
    plan.cap(Side::Both, "xbzrle", true);
    plan.params(Side::Src, |p| p.xbzrle_cache_size = Some(size));
    Ok(())
}

fn multifd(plan: &mut Plan, s: &Scenario, q: &Qemus) -> Result<(), PlanError> {
    q.need_cap("multifd (--multifd)", "multifd", Side::Both, "")?;
    q.need_param(
        "multifd (--multifd-channels)",
        "multifd-channels",
        Side::Both,
    )?;
    let channels = small("--multifd-channels", s.multifd_channels)?;
    plan.cap(Side::Both, "multifd", true);
    plan.params(Side::Both, |p| p.multifd_channels = Some(channels));
    let method = s.multifd_compression.as_str();
    if method.is_empty() {
        return Ok(());
    }
    if !MULTIFD_COMPRESSION_METHODS.contains(&method) {
        return Err(PlanError::Invalid(format!(
            "--multifd-compression {method}: not a multifd compression method (one of: {})",
            MULTIFD_COMPRESSION_METHODS.join(", ")
        )));
    }
    q.need_param(
        "multifd compression (--multifd-compression)",
        "multifd-compression",
        Side::Both,
    )?;
    for (role, facts) in q.each(Side::Both) {
        let Some(methods) = facts
            .schema
            .as_ref()
            .and_then(|s| s.multifd_compression_methods())
        else {
            continue;
        };
        if !methods.iter().any(|m| m == method) {
            return Err(Qemus::unsupported(
                &format!("multifd compression '{method}' (--multifd-compression)"),
                facts,
                format!(
                    "it is not compiled into the {role} QEMU, which has: {}",
                    methods.join(", ")
                ),
            ));
        }
    }
    match <MultiFDCompression as qapi::Enum>::from_name(method) {
        Some(m) => plan.params(Side::Both, |p| p.multifd_compression = Some(m)),
        None => plan.untyped(Side::Both, "multifd-compression", &Value::from(method)),
    }
    Ok(())
}

fn dirty_limit(plan: &mut Plan, s: &Scenario, hw: &Hardware, q: &Qemus) -> Result<(), PlanError> {
    let feature = "dirty-limit (--dirty-limit)";
    q.need_cap(feature, "dirty-limit", Side::Src, "")?;
    q.need_param(
        "dirty-limit (--vcpu-dirty-limit)",
        "vcpu-dirty-limit",
        Side::Src,
    )?;
    let kvm = q
        .src
        .kvm_enabled
        .unwrap_or(hw.accel.as_deref() == Some("kvm"));
    if !kvm {
        return Err(Qemus::unsupported(
            feature,
            q.src,
            format!(
                "it needs KVM with a dirty ring, but the source runs under {}",
                hw.accel.as_deref().unwrap_or("TCG")
            ),
        ));
    }
    if hw.dirty_ring_size == Some(0) {
        return Err(Qemus::unsupported(
            feature,
            q.src,
            "it needs the KVM dirty ring, but the VMs were launched without one (give \
             gp-launch --dirty-ring-size)"
                .into(),
        ));
    }
    plan.cap(Side::Src, "dirty-limit", true);
    plan.params(Side::Src, |p| {
        p.x_vcpu_dirty_limit_period = Some(s.x_vcpu_dirty_limit_period);
        p.vcpu_dirty_limit = Some(s.vcpu_dirty_limit);
    });
    Ok(())
}

/// `--capability NAME[=on|off]`: any capability both QEMUs have.
fn extra_capabilities(plan: &mut Plan, extras: &Extras, q: &Qemus) -> Result<(), PlanError> {
    for (name, on) in &extras.capabilities {
        let side = capability_side(name);
        q.need(
            &format!("migration capability '{name}' (--capability)"),
            side,
            |f| f.has_capability(name),
            |role, facts| {
                let known: Vec<&str> = facts.capabilities.keys().map(String::as_str).collect();
                format!("the {role} QEMU has: {}", known.join(", "))
            },
        )?;
        plan.cap(side, name, *on);
    }
    Ok(())
}

/// `--parameter NAME=VALUE`: any parameter both QEMUs have, typed per their schema; it
/// overrides the scenario's value of the same name.
fn extra_parameters(plan: &mut Plan, extras: &Extras, q: &Qemus) -> Result<(), PlanError> {
    for (name, text) in &extras.parameters {
        let side = parameter_side(name);
        let mut typed = None;
        for (role, facts) in q.each(side) {
            let Some(ty) = facts.param_type(name) else {
                return Err(Qemus::unsupported(
                    &format!("migration parameter '{name}' (--parameter)"),
                    facts,
                    format!(
                        "the {role} QEMU has: {}",
                        facts.parameter_names().join(", ")
                    ),
                ));
            };
            let value = ty.parse(name, text).map_err(PlanError::Invalid)?;
            typed.get_or_insert(value);
        }
        let value = typed.unwrap_or(Value::Null);
        plan.extra_parameters.insert(name.clone(), value.clone());
        plan.untyped(side, name, &value);
    }
    Ok(())
}

/// The parameters `settings` set that QEMU now reports with another value: name, wanted, got.
pub fn changed<'a>(
    settings: &Settings,
    reported: &'a Map<String, Value>,
) -> Vec<(String, Value, &'a Value)> {
    settings
        .parameter_values()
        .into_iter()
        .filter_map(|(name, wanted)| {
            let got = reported.get(&name)?;
            (*got != wanted).then_some((name, wanted, got))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const QEMU10_CAPS: &[&str] = &[
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
    ];

    fn facts(version: (i64, i64, i64), caps: &[&str], params: Value, schema: Value) -> Facts {
        let version: VersionInfo = serde_json::from_value(json!({
            "qemu": {"major": version.0, "minor": version.1, "micro": version.2}, "package": ""
        }))
        .unwrap();
        let caps: Vec<CapabilityState> = caps
            .iter()
            .map(|c| CapabilityState {
                capability: c.to_string(),
                state: false,
            })
            .collect();
        let (schema, skipped) = gp_qemu::qmp::decode_each::<SchemaInfo>(&schema).unwrap();
        assert_eq!(skipped, 0);
        let kvm = KvmInfo {
            enabled: false,
            present: true,
        };
        let params = params.as_object().unwrap().clone();
        Facts::new(&version, &caps, params, Some(&schema), Some(&kvm))
    }

    fn qemu10() -> Facts {
        let params = json!({"downtime-limit": 300, "max-bandwidth": 134217728,
            "multifd-channels": 2, "multifd-compression": "none", "xbzrle-cache-size": 67108864,
            "cpu-throttle-increment": 10, "cpu-throttle-tailslow": false,
            "x-vcpu-dirty-limit-period": 1000, "vcpu-dirty-limit": 1, "announce-max": 550});
        let schema = json!([
            {"name": "migrate-set-parameters", "meta-type": "command", "arg-type": "1", "ret-type": "0"},
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
            {"name": "0", "meta-type": "object", "members": []},
            {"name": "int", "meta-type": "builtin", "json-type": "int"},
            {"name": "bool", "meta-type": "builtin", "json-type": "boolean"},
            {"name": "2", "meta-type": "enum", "members": [{"name": "none"}, {"name": "zlib"}, {"name": "zstd"}],
                "values": ["none", "zlib", "zstd"]}
        ]);
        facts((10, 0, 2), QEMU10_CAPS, params, schema)
    }

    /// A QEMU 8.2: multi-thread compression is still there, and its parameters are not in
    /// qapi's schema.
    fn qemu82() -> Facts {
        let mut caps = QEMU10_CAPS.to_vec();
        caps.extend(["compress", "block"]);
        let params = json!({"downtime-limit": 300, "max-bandwidth": 134217728,
            "compress-threads": 8, "decompress-threads": 2, "compress-level": 1});
        facts((8, 2, 0), &caps, params, json!([]))
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

    fn names(caps: &[CapabilityState]) -> Vec<&str> {
        caps.iter().map(|c| c.capability.as_str()).collect()
    }

    #[test]
    fn default_scenario_sets_events_bandwidth_and_downtime() {
        let p = plan(&Scenario::default(), &Extras::default()).unwrap();
        assert_eq!(names(&p.src.capabilities), ["events"]);
        assert_eq!(names(&p.dst.capabilities), ["events"]);
        assert_eq!(p.src.parameters.max_bandwidth, Some(125_000u64 << 20));
        assert_eq!(p.src.parameters.downtime_limit, Some(500));
        assert_eq!(
            p.src.parameter_values(),
            *json!({"max-bandwidth": 125_000u64 << 20, "downtime-limit": 500})
                .as_object()
                .unwrap()
        );
        assert!(p.src.untyped_parameters.is_empty());
        assert!(p.dst.parameter_values().is_empty());
    }

    #[test]
    fn post_copy_and_pause_plans() {
        let post = Scenario {
            post_copy: true,
            ..Scenario::default()
        };
        let p = plan(&post, &Extras::default()).unwrap();
        let with_blocktime = ["events", "postcopy-ram", "postcopy-blocktime"];
        assert_eq!(names(&p.src.capabilities), with_blocktime);
        assert_eq!(names(&p.dst.capabilities), with_blocktime);
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        // A QEMU without blocktime measurement still runs post-copy, and says what is missing.
        let mut old = qemu10();
        old.capabilities.remove("postcopy-blocktime");
        let p = build(&post, &Extras::default(), &hw(), &qemu10(), &old).unwrap();
        assert_eq!(names(&p.dst.capabilities), ["events", "postcopy-ram"]);
        assert_eq!(
            p.notes,
            [
                "the dst QEMU (10.0.2) has no 'postcopy-blocktime' migration capability: the \
              destination's post-copy blocktime is not measured"
            ]
        );
        // Pausing is `stop` during the migration: nothing to configure.
        let pause = Scenario {
            pause: true,
            ..Scenario::default()
        };
        let p = plan(&pause, &Extras::default()).unwrap();
        assert_eq!(names(&p.src.capabilities), ["events"]);
        let mut no_post = qemu10();
        no_post.capabilities.remove("postcopy-ram");
        let e = build(&post, &Extras::default(), &hw(), &qemu10(), &no_post).unwrap_err();
        assert_eq!(
            e.to_string(),
            "post-copy (--post-copy) is not supported by QEMU 10.0.2: the dst QEMU has no \
             'postcopy-ram' migration capability"
        );
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
        assert_eq!(
            names(&p.src.capabilities),
            [
                "events",
                "auto-converge",
                "postcopy-ram",
                "postcopy-blocktime",
                "xbzrle",
                "multifd"
            ]
        );
        assert_eq!(
            names(&p.dst.capabilities),
            [
                "events",
                "postcopy-ram",
                "postcopy-blocktime",
                "xbzrle",
                "multifd"
            ]
        );
        assert_eq!(p.src.parameters.cpu_throttle_increment, Some(20));
        // 10% of 256 MiB is 25.6 MiB: rounded down to 16 MiB.
        assert_eq!(p.src.parameters.xbzrle_cache_size, Some(16u64 << 20));
        assert!(p.notes.iter().any(|n| n.contains("power of two")));
        assert_eq!(p.dst.parameters.multifd_channels, Some(4));
        assert_eq!(
            p.dst.parameters.multifd_compression,
            Some(MultiFDCompression::zstd)
        );
        assert_eq!(p.dst.parameters.xbzrle_cache_size, None);
        assert_eq!(p.dst.parameters.max_bandwidth, None);
    }

    #[test]
    fn multi_thread_compression_is_refused_on_qemu_10_and_set_untyped_on_8_2() {
        let s = Scenario {
            compression_mt: true,
            compression_mt_threads: 4,
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
        let p = build(&s, &Extras::default(), &hw(), &qemu82(), &qemu82()).unwrap();
        assert!(p
            .src
            .capabilities
            .iter()
            .any(|c| c.capability == "compress"));
        assert!(p
            .src
            .capabilities
            .iter()
            .all(|c| c.capability != "compress" || c.state));
        assert_eq!(p.src.untyped_parameters["compress-threads"], json!(4));
        assert_eq!(p.dst.untyped_parameters["decompress-threads"], json!(4));
        assert!(!p.dst.untyped_parameters.contains_key("compress-threads"));
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
        let s = Scenario {
            multifd: true,
            multifd_channels: 300,
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
        assert!(names(&p.src.capabilities).contains(&"dirty-limit"));
        assert!(!names(&p.dst.capabilities).contains(&"dirty-limit"));
        assert_eq!(p.src.parameters.x_vcpu_dirty_limit_period, Some(500));
        assert_eq!(p.src.parameters.vcpu_dirty_limit, Some(1));
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
        assert!(names(&p.src.capabilities).contains(&"return-path"));
        assert!(names(&p.dst.capabilities).contains(&"return-path"));
        assert!(!names(&p.dst.capabilities).contains(&"pause-before-switchover"));
        assert_eq!(p.dst.untyped_parameters["announce-max"], json!(600));
        assert_eq!(
            p.src.untyped_parameters["cpu-throttle-tailslow"],
            json!(true)
        );
        // --parameter overrides the scenario's value: set once, as given.
        assert_eq!(p.src.parameters.downtime_limit, None);
        assert_eq!(p.src.parameters.max_bandwidth, Some(125_000u64 << 20));
        assert_eq!(p.src.parameter_values()["downtime-limit"], json!(750));
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
        assert!(
            msg.contains("has: announce-max, cpu-throttle-increment"),
            "{msg}"
        );
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
    fn facts_come_from_typed_replies() {
        let f = qemu82();
        assert_eq!(f.version, "8.2.0");
        assert_eq!(f.capabilities.get("compress"), Some(&false));
        assert_eq!(f.kvm_enabled, Some(false));
        // An empty schema has no migrate-set-parameters: values type the parameters.
        assert!(f.schema.is_none());
        assert_eq!(f.param_type("compress-threads"), Some(ParamType::Int));
        assert_eq!(f.param_type("warp-factor"), None);
    }

    #[test]
    fn values_qemu_changed_are_found() {
        let p = plan(&Scenario::default(), &Extras::default()).unwrap();
        let reported = json!({"max-bandwidth": 125_000u64 << 20, "downtime-limit": 400,
            "announce-max": 1});
        let changed = changed(&p.src, reported.as_object().unwrap());
        assert_eq!(
            changed,
            [("downtime-limit".to_string(), json!(500), &json!(400))]
        );
    }

    #[test]
    fn pow2_floor_rounds_down() {
        assert_eq!(pow2_floor(0), 0);
        assert_eq!(pow2_floor(1), 1);
        assert_eq!(pow2_floor(4096), 4096);
        assert_eq!(pow2_floor(26_843_545), 16 << 20);
    }
}
