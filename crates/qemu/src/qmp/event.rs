//! QMP events as QEMU sent them, with the time they were read and qapi's typed view.

use serde::Deserialize;
use serde_json::{json, Value};

/// One QMP event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Host time it was read, seconds since the epoch. Events are read while a command waits
    /// for its reply, so this is as exact as the caller's polling; `qemu_time_s` is exact.
    pub time_s: f64,
    pub name: String,
    /// QEMU's timestamp, seconds since the epoch.
    pub qemu_time_s: f64,
    /// As sent; `{}` for an event without data.
    pub data: Value,
    seconds: i64,
    microseconds: i64,
}

/// The wire form of an event, without interpreting its data.
#[derive(Deserialize)]
struct Wire {
    event: String,
    #[serde(default)]
    data: Option<Value>,
    timestamp: WireTime,
}

#[derive(Deserialize)]
struct WireTime {
    seconds: i64,
    microseconds: i64,
}

impl Event {
    /// Reads one line; `None` if it is not an event.
    pub(crate) fn from_line(text: &[u8], time_s: f64) -> Option<Event> {
        let wire: Wire = serde_json::from_slice(text).ok()?;
        Some(Event {
            time_s,
            qemu_time_s: wire.timestamp.seconds as f64 + wire.timestamp.microseconds as f64 / 1e6,
            name: wire.event,
            data: match wire.data {
                None | Some(Value::Null) => json!({}),
                Some(d) => d,
            },
            seconds: wire.timestamp.seconds,
            microseconds: wire.timestamp.microseconds,
        })
    }

    /// qapi's typed view (`qmp::Event::SHUTDOWN { data, .. }`). An event newer than qapi's
    /// schema, or with a member it does not know, is an error here and nothing less elsewhere.
    pub fn typed(&self) -> Result<qapi::qmp::Event, serde_json::Error> {
        qapi::qmp::Event::deserialize(&json!({
            "event": self.name,
            "data": self.data,
            "timestamp": {"seconds": self.seconds, "microseconds": self.microseconds},
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_keep_what_qemu_sent_and_decode_when_the_schema_has_them() {
        let e = Event::from_line(
            br#"{"timestamp": {"seconds": 1700000000, "microseconds": 250000}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}"#,
            5.0,
        )
        .unwrap();
        assert_eq!(e.name, "SHUTDOWN");
        assert_eq!(e.time_s, 5.0);
        assert!((e.qemu_time_s - 1_700_000_000.25).abs() < 1e-6);
        match e.typed().unwrap() {
            qapi::qmp::Event::SHUTDOWN { data, .. } => {
                assert_eq!(qapi::Enum::name(&data.reason), "host-qmp-quit")
            }
            other => panic!("{other:?}"),
        }
        let stop = Event::from_line(
            br#"{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}}"#,
            0.0,
        )
        .unwrap();
        assert_eq!(stop.data, json!({}));
        assert!(stop.typed().is_ok());

        let future = Event::from_line(
            br#"{"event": "MIGRATION", "data": {"status": "from-qemu-99"}, "timestamp": {"seconds": 1, "microseconds": 0}}"#,
            0.0,
        )
        .unwrap();
        assert_eq!(future.data["status"], "from-qemu-99");
        assert!(future.typed().is_err());
        assert!(Event::from_line(br#"{"return": {}}"#, 0.0).is_none());
        assert!(Event::from_line(b"garbage", 0.0).is_none());
    }
}
