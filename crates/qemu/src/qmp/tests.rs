//! The client against scripted QMP peers: the error paths a real QEMU rarely takes on demand.
//! The real paths are exercised by every VM test.

use super::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex};
use std::thread;

use serde_json::{json, Map};

const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": "Debian"}, "capabilities": ["oob"]}}"#;
const TS: &str = r#""timestamp": {"seconds": 1700000000, "microseconds": 250000}"#;

/// What the peer does with one command (after `qmp_capabilities`, which it always accepts).
enum Answer {
    /// These lines, in order.
    Lines(Vec<String>),
    /// Nothing, ever.
    Silent,
    /// Close the connection.
    HangUp,
}

/// How the peer starts.
#[derive(Clone, Copy, PartialEq)]
enum Start {
    Greet,
    /// Say nothing for a while, then hang up.
    Mute,
    /// Hang up at once.
    HangUp,
}

struct Peer {
    _dir: crate::runtime::RuntimeDir,
    path: PathBuf,
    /// The commands it received, as sent.
    got: Arc<Mutex<Vec<Value>>>,
}

fn peer(start: Start, script: impl Fn(&str, &Value) -> Answer + Send + 'static) -> Peer {
    let dir = crate::runtime::RuntimeDir::new("gp-qmp-test").unwrap();
    let path = dir.path().join("qmp.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&got);
    thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut out = stream.try_clone().unwrap();
        match start {
            Start::HangUp => return,
            Start::Mute => {
                thread::sleep(Duration::from_millis(1500));
                return;
            }
            Start::Greet => writeln!(out, "{GREETING}").unwrap(),
        }
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            let v: Value = serde_json::from_str(&line).unwrap();
            let name = v["execute"].as_str().unwrap().to_string();
            log.lock().unwrap().push(v.clone());
            let answer = if name == "qmp_capabilities" {
                Answer::Lines(vec![r#"{"return": {}}"#.into()])
            } else {
                script(&name, &v["arguments"])
            };
            match answer {
                Answer::Lines(lines) => {
                    for l in lines {
                        if writeln!(out, "{l}").is_err() {
                            return;
                        }
                    }
                }
                Answer::Silent => {}
                Answer::HangUp => return,
            }
        }
    });
    Peer {
        _dir: dir,
        path,
        got,
    }
}

fn lines(items: &[&str]) -> Answer {
    Answer::Lines(items.iter().map(|s| s.to_string()).collect())
}

fn connect(p: &Peer, timeout: Duration) -> Result<Qmp, QmpError> {
    Qmp::connect(&p.path, Instant::now() + Duration::from_secs(5), timeout)
}

#[test]
fn replies_come_typed_and_as_sent_with_every_event_in_between() {
    let migration = format!(r#"{{"event": "MIGRATION", "data": {{"status": "active"}}, {TS}}}"#);
    let future = format!(r#"{{"event": "SOMETHING_FROM_QEMU_99", "data": {{"x": 1}}, {TS}}}"#);
    let bad_data =
        format!(r#"{{"event": "MIGRATION", "data": {{"status": "from-qemu-99"}}, {TS}}}"#);
    let p = peer(Start::Greet, move |name, _| {
        match name {
        "query-migrate" => Answer::Lines(vec![
            migration.clone(),
            future.clone(),
            bad_data.clone(),
            r#"{"return": {"status": "postcopy-from-qemu-99", "total-time": 12, "new-member": [1]}}"#.into(),
        ]),
        _ => lines(&[r#"{"return": {}}"#]),
    }
    });
    let mut q = connect(&p, Duration::from_secs(5)).unwrap();
    assert_eq!(q.greeting().version.qemu.major, 10);
    assert_eq!(q.version().number(), "10.0.2");
    let before = gp_records::now_s();
    let reply = q.call(&qmp::query_migrate {}).unwrap();
    // Records get what QEMU said, decisions what qapi's schema can read of it.
    assert_eq!(reply.raw["status"], "postcopy-from-qemu-99");
    assert_eq!(reply.raw["new-member"], json!([1]));
    assert_eq!(reply.typed.status, None);
    assert_eq!(reply.typed.total_time, Some(12));
    assert_eq!(reply.undecoded, ["status"]);
    let events = q.take_events();
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["MIGRATION", "SOMETHING_FROM_QEMU_99", "MIGRATION"]);
    assert_eq!(events[1].data["x"], 1);
    assert_eq!(events[2].data["status"], "from-qemu-99");
    assert!(events[0].typed().is_ok() && events[2].typed().is_err());
    assert!((events[0].qemu_time_s - 1_700_000_000.25).abs() < 1e-6);
    assert!(events.iter().all(|e| e.time_s >= before));
    assert!(q.take_events().is_empty());
    assert_eq!(q.unreadable_lines(), 0);
}

#[test]
fn a_reply_that_does_not_fit_is_a_decode_error_holding_it_and_the_connection_goes_on() {
    let p = peer(Start::Greet, |name, _| match name {
        "query-kvm" => lines(&[r#"{"return": {"enabled": "perhaps"}}"#]),
        _ => lines(&[r#"{"return": {"status": "running", "running": true}}"#]),
    });
    let mut q = connect(&p, Duration::from_secs(5)).unwrap();
    let e = q.execute(&qmp::query_kvm {}).unwrap_err();
    match &e {
        QmpError::Decode { command, reply, .. } => {
            assert_eq!(*command, "query-kvm");
            assert_eq!(reply["enabled"], "perhaps");
        }
        other => panic!("{other}"),
    }
    assert!(!e.is_connection_lost());
    assert!(q.query_status().unwrap().running);
}

#[test]
fn refusals_keep_the_connection_even_with_an_error_class_qapi_does_not_know() {
    let p = peer(Start::Greet, |name, _| match name {
        "query-version" => {
            lines(&[r#"{"error": {"class": "GenericError", "desc": "no such thing"}}"#])
        }
        "cont" => lines(&[r#"{"error": {"class": "FromQemu99", "desc": "not now"}}"#]),
        _ => lines(&[r#"{"return": {"status": "running", "running": true}}"#]),
    });
    let mut q = connect(&p, Duration::from_secs(5)).unwrap();
    let e = q.query_version().unwrap_err();
    assert_eq!(e.to_string(), "query-version: QEMU said: no such thing");
    let started = Instant::now();
    match q.execute(&qmp::cont {}).unwrap_err() {
        QmpError::Command { class, desc, .. } => {
            assert_eq!((class.as_str(), desc.as_str()), ("FromQemu99", "not now"))
        }
        other => panic!("{other}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "taken for a timeout"
    );
    assert!(q.query_status().unwrap().running);
}

#[test]
fn unreadable_lines_are_counted_and_skipped() {
    let p = peer(Start::Greet, |_, _| {
        lines(&[
            "this is not json",
            r#"{"return": {"status": "running", "running": true}}"#,
        ])
    });
    let mut q = connect(&p, Duration::from_secs(5)).unwrap();
    assert!(q.query_status().unwrap().running);
    assert_eq!(q.unreadable_lines(), 1);
}

#[test]
fn a_silent_peer_times_out_and_the_connection_is_given_up() {
    let p = peer(Start::Greet, |name, _| match name {
        "query-status" => Answer::Silent,
        _ => lines(&[r#"{"return": {}}"#]),
    });
    let mut q = connect(&p, Duration::from_millis(300)).unwrap();
    let started = Instant::now();
    let e = q.query_status().unwrap_err();
    assert!(
        matches!(
            e,
            QmpError::Timeout {
                command: "query-status",
                ..
            }
        ),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let again = q.execute(&qmp::stop {}).unwrap_err();
    assert!(matches!(again, QmpError::Broken { .. }), "{again}");
    assert!(
        again
            .to_string()
            .contains("no reply from QEMU within 0.3 s"),
        "{again}"
    );
    assert_eq!(
        p.got.lock().unwrap().len(),
        2,
        "nothing is sent on a broken connection"
    );
}

#[test]
fn a_per_call_timeout_applies_to_that_call_only() {
    let p = peer(Start::Greet, |name, _| match name {
        "quit" => Answer::Silent,
        _ => lines(&[r#"{"return": {}}"#]),
    });
    let mut q = connect(&p, Duration::from_secs(30)).unwrap();
    let started = Instant::now();
    let e = q
        .execute_within(Duration::from_millis(200), &qmp::quit {})
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "{e}");
    assert!(e.to_string().ends_with("within 0.2 s"), "{e}");
}

#[test]
fn hanging_up_is_closed_at_every_stage_never_a_panic() {
    let p = peer(Start::Greet, |_, _| Answer::HangUp);
    let mut q = connect(&p, Duration::from_secs(5)).unwrap();
    let e = q.query_status().unwrap_err();
    assert!(e.is_closed() && e.is_connection_lost(), "{e}");
    // `quit` answered by hanging up is a success.
    let p = peer(Start::Greet, |_, _| Answer::HangUp);
    assert!(connect(&p, Duration::from_secs(5)).unwrap().quit().is_ok());

    let p = peer(Start::HangUp, |_, _| Answer::HangUp);
    let e = connect(&p, Duration::from_secs(5)).unwrap_err();
    assert!(e.is_closed(), "{e}");
    assert!(
        gp_stage::error_chain(&e).contains("closed the connection before its greeting"),
        "{e}"
    );
}

#[test]
fn no_greeting_is_given_up_before_the_deadline() {
    let p = peer(Start::Mute, |_, _| Answer::HangUp);
    let started = Instant::now();
    let e = Qmp::connect(
        &p.path,
        Instant::now() + Duration::from_millis(500),
        Duration::from_millis(500),
    )
    .unwrap_err();
    assert!(matches!(e, QmpError::NoGreeting { .. }), "{e}");
    assert!(
        e.to_string().contains("qmp.sock: no greeting within 0.5 s"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_missing_socket_is_given_up_at_the_deadline_or_when_the_caller_says() {
    let path = Path::new("/nonexistent/gp-qmp.sock");
    let e = Qmp::connect(
        path,
        Instant::now() + Duration::from_millis(100),
        Duration::from_secs(1),
    )
    .unwrap_err();
    assert!(matches!(e, QmpError::Connect { .. }), "{e}");
    assert!(e.to_string().contains("gp-qmp.sock"), "{e}");
    let e = Qmp::connector(path)
        .deadline(Instant::now() + Duration::from_secs(60))
        .keep_trying(|| Err("QEMU exited".into()))
        .connect()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "gave up connecting to QMP socket /nonexistent/gp-qmp.sock: QEMU exited"
    );
}

#[test]
fn a_pending_signal_ends_the_wait_for_a_connection() {
    let (signal, signals) = crossbeam_channel::unbounded();
    signal.send(2).unwrap();
    let started = Instant::now();
    let e = Qmp::connector(Path::new("/nonexistent/gp-qmp.sock"))
        .deadline(Instant::now() + Duration::from_secs(60))
        .interrupt(signals.clone())
        .connect()
        .unwrap_err();
    assert!(e.is_interrupted(), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(signals.len(), 1, "the signal is left for the caller");
}

#[test]
fn a_pending_signal_ends_the_wait_for_the_greeting() {
    let p = peer(Start::Mute, |_, _| Answer::HangUp);
    let (signal, signals) = crossbeam_channel::unbounded();
    signal.send(15).unwrap();
    let started = Instant::now();
    let e = Qmp::connector(&p.path)
        .deadline(Instant::now() + Duration::from_secs(60))
        .timeout(Duration::from_secs(60))
        .interrupt(signals)
        .connect()
        .unwrap_err();
    assert!(
        matches!(
            e,
            QmpError::Interrupted {
                command: "greeting"
            }
        ),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_pending_signal_gives_a_reply_a_short_grace_then_ends_the_wait() {
    let p = peer(Start::Greet, |name, _| match name {
        "query-migrate" => Answer::Silent,
        _ => lines(&[r#"{"return": {"status": "running", "running": true}}"#]),
    });
    let (signal, signals) = crossbeam_channel::unbounded();
    let mut q = Qmp::connector(&p.path)
        .timeout(Duration::from_secs(60))
        .interrupt(signals.clone())
        .connect()
        .unwrap();
    signal.send(2).unwrap();
    // A QEMU that answers still gets through: the signal's cleanup needs the connection.
    assert!(q.query_status().unwrap().running);
    let started = Instant::now();
    let e = q.call(&qmp::query_migrate {}).unwrap_err();
    assert!(
        matches!(
            e,
            QmpError::Interrupted {
                command: "query-migrate"
            }
        ),
        "{e}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= wire::SIGNAL_GRACE && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(signals.len(), 1, "the signal is left for the caller");
    assert!(q.broken().is_some());
}

#[test]
fn capabilities_are_read_by_name_and_set_typed_when_the_schema_has_them() {
    let p = peer(Start::Greet, |name, _| match name {
        // QEMU 8.2 lists `compress`, which qapi's 9.1 schema does not have.
        "query-migrate-capabilities" => lines(&[
            r#"{"return": [{"capability": "xbzrle", "state": false}, {"capability": "compress", "state": true}]}"#,
        ]),
        _ => lines(&[r#"{"return": {}}"#]),
    });
    let mut q = connect(&p, Duration::from_secs(5)).unwrap();
    // qapi's own type cannot read this reply at all.
    assert!(matches!(
        q.execute(&qmp::query_migrate_capabilities {}),
        Err(QmpError::Decode { .. })
    ));
    let caps = q.migration_capabilities().unwrap();
    assert_eq!(
        caps,
        [
            CapabilityState {
                capability: "xbzrle".into(),
                state: false
            },
            CapabilityState {
                capability: "compress".into(),
                state: true
            },
        ]
    );
    let on = |n: &str| CapabilityState {
        capability: n.into(),
        state: true,
    };
    q.set_migration_capabilities(&[on("events"), on("postcopy-ram")])
        .unwrap();
    q.set_migration_capabilities(&[on("events"), on("compress")])
        .unwrap();
    let mut params = Map::new();
    params.insert("compress-threads".into(), json!(4));
    q.set_untyped_migration_parameters(params).unwrap();
    let got = p.got.lock().unwrap();
    let sets: Vec<&Value> = got
        .iter()
        .filter(|c| c["execute"] != "query-migrate-capabilities")
        .collect();
    assert_eq!(sets[1]["execute"], "migrate-set-capabilities");
    assert_eq!(
        sets[1]["arguments"]["capabilities"],
        json!([{"capability": "events", "state": true}, {"capability": "postcopy-ram", "state": true}])
    );
    assert_eq!(
        sets[2]["arguments"]["capabilities"][1]["capability"],
        "compress"
    );
    assert_eq!(sets[3]["execute"], "migrate-set-parameters");
    assert_eq!(sets[3]["arguments"], json!({"compress-threads": 4}));
}

#[test]
fn typed_commands_send_only_what_is_set() {
    let p = peer(Start::Greet, |_, _| lines(&[r#"{"return": {}}"#]));
    let mut q = connect(&p, Duration::from_secs(5)).unwrap();
    q.execute(&qmp::migrate_set_parameters(qmp::MigrateSetParameters {
        max_bandwidth: Some(1 << 20),
        downtime_limit: Some(300),
        ..Default::default()
    }))
    .unwrap();
    q.execute(&qmp::migrate {
        uri: Some("unix:/x".into()),
        channels: None,
        detach: None,
        resume: None,
    })
    .unwrap();
    let got = p.got.lock().unwrap();
    assert_eq!(
        got[1]["arguments"],
        json!({"max-bandwidth": 1048576, "downtime-limit": 300})
    );
    assert_eq!(got[2]["arguments"], json!({"uri": "unix:/x"}));
}

#[test]
fn the_last_events_are_read_after_qemu_exits() {
    let p = peer(Start::Greet, |_, _| {
        Answer::Lines(vec![
            r#"{"return": {}}"#.into(),
            format!(
                r#"{{"event": "SHUTDOWN", "data": {{"guest": false, "reason": "host-qmp-quit"}}, {TS}}}"#
            ),
        ])
    });
    let mut q = connect(&p, Duration::from_secs(5)).unwrap();
    q.quit().unwrap();
    q.drain_after_exit();
    let events = q.take_events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e.typed(), Ok(qmp::Event::SHUTDOWN { .. }))),
        "{events:?}"
    );
    assert!(q.broken().is_some());
}

#[test]
fn what_gp_migrate_will_ask_next_is_one_line_each() {
    // Replies as QEMU 10.0 gives them.
    let p = peer(Start::Greet, |name, _| match name {
        "query-migrate" => lines(&[
            r#"{"return": {"status": "completed", "postcopy-blocktime": 42, "postcopy-vcpu-blocktime": [40, 2]}}"#,
        ]),
        "query-dirty-rate" => lines(&[
            r#"{"return": {"status": "measured", "sample-pages": 512, "dirty-rate": 7, "mode": "page-sampling", "calc-time-unit": "second", "start-time": 1796411031, "calc-time": 1}}"#,
        ]),
        _ => lines(&[r#"{"return": {}}"#]),
    });
    let mut dst = connect(&p, Duration::from_secs(5)).unwrap();
    // The destination's figures after a post-copy migration.
    let done = dst.call(&qmp::query_migrate {}).unwrap().typed;
    assert_eq!(done.postcopy_blocktime, Some(42));
    assert_eq!(done.postcopy_vcpu_blocktime, Some(vec![40, 2]));
    // A dirty-rate measurement before migrating.
    dst.execute(&qmp::calc_dirty_rate {
        calc_time: 1,
        calc_time_unit: None,
        sample_pages: None,
        mode: None,
    })
    .unwrap();
    let rate = dst
        .execute(&qmp::query_dirty_rate {
            calc_time_unit: None,
        })
        .unwrap();
    assert_eq!(rate.status, qmp::DirtyRateStatus::measured);
    assert_eq!(rate.dirty_rate, Some(7));
    let got = p.got.lock().unwrap();
    assert_eq!(got[2]["execute"], "calc-dirty-rate");
    assert_eq!(got[2]["arguments"], json!({"calc-time": 1}));
}
