//! QEMU's downtime tracepoints: which ones to turn on, the QEMU arguments for them, and their
//! lines as `qemu_trace` records.
//!
//! Since QEMU 8.2, `vmstate_downtime_checkpoint` marks each step of the switchover
//! (`src-downtime-start`, `src-vm-stopped`, `src-iterable-saved`, `src-non-iterable-saved`,
//! `dst-precopy-loadvm-completed`, `dst-precopy-bh-vm-started`, ...) and `vmstate_downtime_save`
//! / `vmstate_downtime_load` give each device's save and load time. gp-launch asks the binary
//! (`-trace help`, never its version) which of [`WANTED`] it has, turns them on in both QEMUs
//! with QEMU's `log` trace backend (`-trace enable=NAME`) and `-msg timestamp=on`, which makes
//! each line carry the thread id and the host's wall-clock time in microseconds:
//!
//! ```text
//! 23059@1796406702.355799:vmstate_downtime_checkpoint src-downtime-start
//! ```
//!
//! The lines come on QEMU's stderr, which gp-launch reads all the time anyway (a pipe nobody
//! reads would block QEMU), so the trace costs one line per step and per device, a few hundred
//! per migration, written while the VM is stopped (docs/performance.md measures it).

use gp_records::{QemuTrace, Role};
use serde_json::{Map, Value};

/// The tracepoints gp-launch turns on where the binary has them: every `vmstate_downtime*`
/// event it lists, and these, which each fire once per migration at a switch.
pub const WANTED: &[&str] = &[
    // The source stops the VM to complete (its `ret`).
    "migration_completion_vm_stop",
    // Post-copy: the source tells the destination to run, the destination does.
    "savevm_send_postcopy_run",
    "loadvm_postcopy_handle_run",
    "migration_completion_postcopy_end",
    // switchover-ack: the destination approves the switchover.
    "loadvm_approve_switchover",
];

/// The prefix of the downtime family; a binary with none of them gets no tracing.
pub const DOWNTIME_PREFIX: &str = "vmstate_downtime";

/// What tracing a run gets: the events for both QEMUs and, when tracing is off or partial, why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Choice {
    pub events: Vec<String>,
    pub note: Option<String>,
}

/// Chooses the events from what the binary lists (`available`: `-trace help`, or why it could
/// not be asked). `version` names the binary in the note.
pub fn choose(available: Result<&[String], &str>, version: &str) -> Choice {
    let available = match available {
        Ok(a) => a,
        Err(why) => {
            return Choice {
                events: Vec::new(),
                note: Some(format!(
                    "QEMU {version} did not list its trace events ({why}): no downtime breakdown"
                )),
            }
        }
    };
    let mut events: Vec<String> = available
        .iter()
        .filter(|e| e.starts_with(DOWNTIME_PREFIX))
        .cloned()
        .collect();
    if events.is_empty() {
        return Choice {
            events,
            note: Some(format!(
                "QEMU {version} has no {DOWNTIME_PREFIX}* tracepoints (they came in 8.2): no \
                 downtime breakdown"
            )),
        };
    }
    events.sort();
    events.extend(
        WANTED
            .iter()
            .filter(|w| available.iter().any(|a| a == *w))
            .map(|w| w.to_string()),
    );
    Choice { events, note: None }
}

/// The choice when the user turned tracing off.
pub fn off_by_user() -> Choice {
    Choice {
        events: Vec::new(),
        note: Some("turned off with --no-trace".to_string()),
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
}

/// QEMU's arguments for `events` (none when there are none): timestamps on its messages, which
/// the log backend then puts on each trace line, and each event by name.
pub fn qemu_args(events: &[String]) -> Vec<String> {
    if events.is_empty() {
        return Vec::new();
    }
    let mut a = vec!["-msg".to_string(), "timestamp=on".to_string()];
    for e in events {
        a.push("-trace".to_string());
        a.push(format!("enable={e}"));
    }
    a
}

/// A trace line taken apart: QEMU's timestamp (seconds), the event, the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceLine<'a> {
    pub qemu_time_s: f64,
    pub event: &'a str,
    pub args: &'a str,
}

/// Parses `TID@SECONDS.MICROS:event args`; `None` for any other line (QEMU's own messages).
pub fn parse_line(line: &str) -> Option<TraceLine<'_>> {
    let (tid, rest) = line.split_once('@')?;
    if tid.is_empty() || !tid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (stamp, rest) = rest.split_once(':')?;
    let (secs, micros) = stamp.split_once('.')?;
    if secs.is_empty()
        || micros.is_empty()
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !micros.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let qemu_time_s: f64 = stamp.parse().ok()?;
    let (event, args) = match rest.split_once(' ') {
        Some((e, a)) => (e, a.trim_end()),
        None => (rest.trim_end(), ""),
    };
    if event.is_empty() || !event.bytes().all(is_name_byte) {
        return None;
    }
    Some(TraceLine {
        qemu_time_s,
        event,
        args,
    })
}

/// Whether a stderr line is trace output (kept out of the stderr tail in error messages).
pub fn is_trace_line(line: &str) -> bool {
    parse_line(line).is_some()
}

/// `key=value` pairs, numbers as numbers; a word without `=` under its position (`"0"`, ...).
pub fn fields(args: &str) -> Map<String, Value> {
    let mut m = Map::new();
    for (i, word) in args.split_whitespace().enumerate() {
        match word.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                m.insert(k.to_string(), value(v));
            }
            _ => {
                m.insert(i.to_string(), value(word));
            }
        }
    }
    m
}

fn value(v: &str) -> Value {
    if let Ok(n) = v.parse::<i64>() {
        return Value::from(n);
    }
    if let Ok(n) = v.parse::<u64>() {
        return Value::from(n);
    }
    match v.parse::<f64>() {
        // Only plain decimals: `inf`, `nan` and `1e3` stay as QEMU wrote them.
        Ok(f)
            if f.is_finite()
                && v.bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-') =>
        {
            Value::from(f)
        }
        _ => Value::String(v.to_string()),
    }
}

/// The record for a trace line read at host time `time_s`.
pub fn record(line: &str, role: Role, time_s: f64) -> Option<QemuTrace> {
    let t = parse_line(line)?;
    Some(QemuTrace {
        time_s,
        role,
        qemu_time_s: t.qemu_time_s,
        event: t.event.to_string(),
        args: t.args.to_string(),
        fields: fields(t.args),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn chooses_what_the_binary_has() {
        let help = names(&[
            "vmstate_downtime_save",
            "vmstate_downtime_load",
            "vmstate_downtime_checkpoint",
            "migration_completion_vm_stop",
            "savevm_send_postcopy_run",
            "ram_load_loop",
        ]);
        let c = choose(Ok(&help), "10.0.2");
        assert_eq!(
            c.events,
            [
                "vmstate_downtime_checkpoint",
                "vmstate_downtime_load",
                "vmstate_downtime_save",
                "migration_completion_vm_stop",
                "savevm_send_postcopy_run"
            ]
        );
        assert_eq!(c.note, None);
        // QEMU 7.2: switchover events but no downtime family: nothing, and why.
        let old = names(&["migration_completion_vm_stop", "savevm_send_postcopy_run"]);
        let c = choose(Ok(&old), "7.2.22");
        assert!(c.events.is_empty());
        let note = c.note.unwrap();
        assert!(note.contains("7.2.22") && note.contains("8.2"), "{note}");
        let c = choose(Err("exit status 1"), "9.0.0");
        assert!(c.events.is_empty() && c.note.unwrap().contains("exit status 1"));
        assert!(off_by_user().note.unwrap().contains("--no-trace"));
    }

    #[test]
    fn arguments() {
        assert!(qemu_args(&[]).is_empty());
        assert_eq!(
            qemu_args(&names(&["a_b", "c"])),
            [
                "-msg",
                "timestamp=on",
                "-trace",
                "enable=a_b",
                "-trace",
                "enable=c"
            ]
        );
    }

    #[test]
    fn lines_as_qemu_10_writes_them() {
        let r = record(
            "23059@1796406702.355799:vmstate_downtime_checkpoint src-downtime-start",
            Role::Src,
            1796406702.4,
        )
        .unwrap();
        assert_eq!(r.event, "vmstate_downtime_checkpoint");
        assert_eq!(r.qemu_time_s, 1796406702.355799);
        assert_eq!(r.args, "src-downtime-start");
        assert_eq!(r.fields["0"], "src-downtime-start");
        let r = record(
            "23059@1796406702.402500:vmstate_downtime_save type=iterable idstr=ram instance_id=0 downtime=40800",
            Role::Dst,
            0.0,
        )
        .unwrap();
        assert_eq!(r.fields["idstr"], "ram");
        assert_eq!(r.fields["instance_id"], 0);
        assert_eq!(r.fields["downtime"], 40800);
        assert_eq!(r.role, Role::Dst);
        let r = record(
            "1@2.000001:migration_completion_vm_stop ret -1",
            Role::Src,
            0.0,
        )
        .unwrap();
        assert_eq!(r.fields["1"], -1);
        let r = record("1@2.5:savevm_send_postcopy_run", Role::Src, 0.0).unwrap();
        assert_eq!((r.args.as_str(), r.fields.len()), ("", 0));
        assert_eq!(fields("x=1.5 y=0x10 z=")["x"], 1.5);
        assert_eq!(fields("x=1.5 y=0x10 z=")["y"], "0x10");
        assert_eq!(fields("x=1.5 y=0x10 z=")["z"], "");
    }

    /// What a trace line costs gp-launch (parse and record; printed with --nocapture): a
    /// migration writes some 80, so even a debug build's cost is far below a millisecond.
    #[test]
    fn parsing_is_cheap() {
        let line = "23059@1796406702.402500:vmstate_downtime_save type=non-iterable \
                    idstr=0000:00:1f.2/ich9_ahci instance_id=0 downtime=184";
        let n = 20_000;
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(record(std::hint::black_box(line), Role::Src, 0.0).unwrap());
        }
        let per_line = t.elapsed() / n;
        eprintln!("trace line to record: {per_line:?} per line");
        assert!(
            per_line < std::time::Duration::from_millis(1),
            "{per_line:?}"
        );
    }

    #[test]
    fn other_stderr_lines_are_not_trace() {
        for line in [
            "",
            "qemu-system-x86_64: terminating on signal 15 from pid 1",
            "2026-12-04T21:50:22.709045Z qemu-system-x86_64: warning: x",
            "user@host: something",
            "12@abc:event",
            "12@1.5:Event with capitals",
            "@1.5:event",
            "12@15:event",
        ] {
            assert!(!is_trace_line(line), "{line:?}");
        }
        assert!(is_trace_line("12@1.5:event"));
    }
}
