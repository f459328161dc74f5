//! Typed views of replies from any QEMU from 7.2 on, with types generated from one QEMU's schema.
//!
//! qapi's types ignore members they do not know and take absent optional members as `None`, but
//! a value they do not know (an enum value added after their schema, like a new migration
//! status) fails the whole reply. Here such a member is left out of the typed view instead,
//! when the type allows it (every member of `MigrationInfo` and `MigrationParameters` is
//! optional), and named in [`Reply::undecoded`]; the reply as QEMU sent it stays in
//! [`Reply::raw`].

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

/// A reply as QEMU sent it, and qapi's typed view of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply<T> {
    /// The reply as QEMU sent it, for records: members newer than the schema are here.
    pub raw: Value,
    /// qapi's typed view, for decisions.
    pub typed: T,
    /// Top-level members of `raw` that do not fit the schema and are missing from `typed`.
    pub undecoded: Vec<String>,
}

/// Decodes `raw` as `T`, leaving out the top-level members that do not fit when `T` can do
/// without them. Returns the view and the names left out, or the error of the whole reply.
pub fn decode_lenient<T: DeserializeOwned>(
    raw: &Value,
) -> Result<(T, Vec<String>), serde_json::Error> {
    let whole = match T::deserialize(raw) {
        Ok(t) => return Ok((t, Vec::new())),
        Err(e) => e,
    };
    let Some(members) = raw.as_object() else {
        return Err(whole);
    };
    // A member that fails on its own is one this schema cannot read. (If `T` has required
    // members every single-member object fails, what is left is empty, and the whole error
    // stands.)
    let fits = |name: &String, value: &Value| {
        let mut one = Map::new();
        one.insert(name.clone(), value.clone());
        T::deserialize(&Value::Object(one)).is_ok()
    };
    let (kept, dropped): (Map<String, Value>, Map<String, Value>) = members
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .partition(|(k, v)| fits(k, v));
    if dropped.is_empty() {
        return Err(whole);
    }
    match T::deserialize(&Value::Object(kept)) {
        Ok(t) => Ok((t, dropped.keys().cloned().collect())),
        Err(_) => Err(whole),
    }
}

/// Decodes each element of a JSON array as `T`, skipping those that do not fit. Returns the
/// elements and how many were skipped.
pub fn decode_each<T: DeserializeOwned>(raw: &Value) -> Result<(Vec<T>, usize), serde_json::Error> {
    let items = <Vec<Value>>::deserialize(raw)?;
    let total = items.len();
    let decoded: Vec<T> = items
        .iter()
        .filter_map(|item| T::deserialize(item).ok())
        .collect();
    let skipped = total - decoded.len();
    Ok((decoded, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use qapi::qmp;
    use serde_json::json;

    #[test]
    fn extra_and_missing_members_are_fine_and_unknown_values_are_left_out() {
        // QEMU 7.2 sends members the 9.1 schema dropped (`skipped`, `compression`); extra
        // members are ignored and absent optional ones are None.
        let old = json!({"status": "active", "total-time": 5, "compression": {"pages": 0},
            "ram": {"transferred": 1, "remaining": 2, "total": 3, "duplicate": 0, "skipped": 0,
                "normal": 0, "normal-bytes": 0, "dirty-pages-rate": 0, "mbps": 1.5,
                "dirty-sync-count": 2, "postcopy-requests": 0, "page-size": 4096,
                "multifd-bytes": 0, "pages-per-second": 0, "precopy-bytes": 0,
                "downtime-bytes": 0, "postcopy-bytes": 0, "dirty-sync-missed-zero-copy": 0}});
        let (info, dropped): (qmp::MigrationInfo, _) = decode_lenient(&old).unwrap();
        assert!(dropped.is_empty());
        assert_eq!(info.status, Some(qmp::MigrationStatus::active));
        assert_eq!(info.ram.unwrap().dirty_sync_count, 2);
        assert_eq!(info.downtime, None);

        // A status newer than the schema fails qapi's decoding of the whole reply...
        let new = json!({"status": "from-qemu-99", "total-time": 7, "postcopy-blocktime": 3});
        assert!(serde_json::from_value::<qmp::MigrationInfo>(new.clone()).is_err());
        // ...and here only that member.
        let (info, dropped): (qmp::MigrationInfo, _) = decode_lenient(&new).unwrap();
        assert_eq!(dropped, ["status"]);
        assert_eq!(info.status, None);
        assert_eq!(info.total_time, Some(7));
        assert_eq!(info.postcopy_blocktime, Some(3));
    }

    #[test]
    fn a_type_with_required_members_is_not_guessed() {
        let e = decode_lenient::<qmp::KvmInfo>(&json!({"enabled": "maybe", "present": true}));
        assert!(e.is_err());
        assert!(decode_lenient::<qmp::KvmInfo>(&json!([1])).is_err());
        let (kvm, dropped) =
            decode_lenient::<qmp::KvmInfo>(&json!({"enabled": true, "present": true, "new": 1}))
                .unwrap();
        assert!(kvm.enabled && dropped.is_empty());
    }

    #[test]
    fn arrays_skip_the_elements_that_do_not_fit() {
        let raw = json!([
            {"name": "int", "meta-type": "builtin", "json-type": "int"},
            {"name": "x", "meta-type": "from-qemu-99"}
        ]);
        let (entries, skipped) = decode_each::<qmp::SchemaInfo>(&raw).unwrap();
        assert_eq!((entries.len(), skipped), (1, 1));
        assert!(decode_each::<qmp::SchemaInfo>(&json!({})).is_err());
    }
}
