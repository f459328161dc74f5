//! Migration calls where qapi's schema (QEMU 9.1's) and the QEMU at hand (7.2 to 10.x) differ,
//! and the escape hatch for what the schema lacks.
//!
//! Capabilities are the case in point: qapi's `MigrationCapability` has 9.1's list, QEMU 7.2 to
//! 9.0 also report `compress` and `block`, later QEMUs add their own, and one name qapi does not
//! know fails the decoding of the whole `query-migrate-capabilities` reply. So capabilities are
//! read by name ([`CapabilityState`]) and set with qapi's typed command whenever every name is
//! in its schema, else with [`Untyped`]. Parameters are read by name too
//! ([`Qmp::migration_parameters`]): which ones a QEMU has is what a plan checks.

use std::marker::PhantomData;

use qapi::{qmp, Command};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{json, Map, Value};

use super::{decode_each, Qmp, QmpError};

/// The escape hatch: command `C` of qapi's schema sent with JSON arguments, its reply read as
/// JSON. Only for what the schema lacks (a capability or parameter older or newer than it, a
/// value of a type it does not have); everything else goes through `C` itself.
pub struct Untyped<C> {
    arguments: Map<String, Value>,
    command: PhantomData<C>,
}

impl<C> Untyped<C> {
    pub fn new(arguments: Map<String, Value>) -> Untyped<C> {
        Untyped {
            arguments,
            command: PhantomData,
        }
    }
}

impl<C> Serialize for Untyped<C> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.arguments.serialize(serializer)
    }
}

impl<C: Command> Command for Untyped<C> {
    type Ok = Value;
    const NAME: &'static str = C::NAME;
    const ALLOW_OOB: bool = C::ALLOW_OOB;
}

/// qapi's `MigrateSetParameters` holding exactly `parameters`, when its schema has every one
/// of them with a value of its type.
pub fn typed_parameter(parameters: &Map<String, Value>) -> Option<qmp::MigrateSetParameters> {
    let typed = qmp::MigrateSetParameters::deserialize(&Value::Object(parameters.clone())).ok()?;
    // Names the schema does not have are ignored when decoding: it must give them all back.
    let back = serde_json::to_value(&typed).ok()?;
    (back.as_object()?.len() == parameters.len()).then_some(typed)
}

/// One migration capability as `query-migrate-capabilities` lists it, by name (see the module
/// documentation for why not qapi's `MigrationCapabilityStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityState {
    pub capability: String,
    pub state: bool,
}

impl CapabilityState {
    /// qapi's name for it, when its schema has one.
    pub fn typed(&self) -> Option<qmp::MigrationCapabilityStatus> {
        Some(qmp::MigrationCapabilityStatus {
            capability: qapi::Enum::from_name(&self.capability)?,
            state: self.state,
        })
    }
}

impl Qmp {
    /// `query-migrate-capabilities`, by name.
    pub fn migration_capabilities(&mut self) -> Result<Vec<CapabilityState>, QmpError> {
        let raw = self.execute_raw(&qmp::query_migrate_capabilities {})?;
        Vec::<CapabilityState>::deserialize(&raw).map_err(|source| QmpError::Decode {
            command: qmp::query_migrate_capabilities::NAME,
            reply: raw,
            source,
        })
    }

    /// `query-migrate-parameters` by name, as QEMU sent it: the parameters differ across QEMU
    /// versions (qapi's typed view is `call(&qmp::query_migrate_parameters {})`).
    pub fn migration_parameters(&mut self) -> Result<Map<String, Value>, QmpError> {
        let raw = self.execute_raw(&qmp::query_migrate_parameters {})?;
        Map::<String, Value>::deserialize(&raw).map_err(|source| QmpError::Decode {
            command: qmp::query_migrate_parameters::NAME,
            reply: raw,
            source,
        })
    }

    /// `migrate-set-capabilities`: typed when qapi's schema has every name, else through
    /// [`Untyped`].
    pub fn set_migration_capabilities(&mut self, caps: &[CapabilityState]) -> Result<(), QmpError> {
        let typed: Option<Vec<qmp::MigrationCapabilityStatus>> =
            caps.iter().map(CapabilityState::typed).collect();
        match typed {
            Some(capabilities) => self
                .execute(&qmp::migrate_set_capabilities { capabilities })
                .map(drop),
            None => {
                let mut args = Map::new();
                args.insert("capabilities".into(), json!(caps));
                self.execute_raw(&Untyped::<qmp::migrate_set_capabilities>::new(args))
                    .map(drop)
            }
        }
    }

    /// `migrate-set-parameters` with parameters qapi's schema lacks, as JSON (the escape hatch;
    /// typed parameters go through `qmp::migrate_set_parameters`).
    pub fn set_untyped_migration_parameters(
        &mut self,
        parameters: Map<String, Value>,
    ) -> Result<(), QmpError> {
        self.execute_raw(&Untyped::<qmp::migrate_set_parameters>::new(parameters))
            .map(drop)
    }

    /// `migrate-set-parameters` for one parameter given by name: typed when qapi's schema has
    /// it and the value fits its type, else as JSON (the escape hatch).
    pub fn set_migration_parameter(&mut self, name: &str, value: &Value) -> Result<(), QmpError> {
        let mut one = Map::new();
        one.insert(name.to_string(), value.clone());
        match typed_parameter(&one) {
            Some(typed) => self.execute(&qmp::migrate_set_parameters(typed)).map(drop),
            None => self.set_untyped_migration_parameters(one),
        }
    }

    /// `query-qmp-schema`, typed; entries qapi's schema cannot describe (a meta-type newer than
    /// it) are skipped. Returns the entries and how many were skipped.
    pub fn qmp_schema(&mut self) -> Result<(Vec<qmp::SchemaInfo>, usize), QmpError> {
        let raw = self.execute_raw(&qmp::query_qmp_schema {})?;
        decode_each(&raw).map_err(|source| QmpError::Decode {
            command: qmp::query_qmp_schema::NAME,
            reply: raw,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parameter_is_typed_when_the_schema_has_it() {
        let one = |name: &str, value: Value| {
            let mut m = Map::new();
            m.insert(name.to_string(), value);
            typed_parameter(&m)
        };
        let t = one("multifd-compression", json!("zstd")).unwrap();
        assert_eq!(t.multifd_compression, Some(qmp::MultiFDCompression::zstd));
        assert_eq!(
            one("multifd-channels", json!(4)).unwrap().multifd_channels,
            Some(4)
        );
        // Removed in 9.1, so not in qapi's schema; or a value out of the schema's range.
        assert!(one("compress-threads", json!(4)).is_none());
        assert!(one("multifd-channels", json!(1000)).is_none());
        assert!(one("multifd-compression", json!("qatzip")).is_none());
    }
}
