//! gp-migrate's error paths against fake QEMUs: scripted QMP peers on unix sockets. The real
//! paths are covered by tests/vm.rs; these cover what a real QEMU rarely does on demand (a reply
//! that never comes, a dropped connection, a QEMU that lacks a feature).

use std::io::{BufRead, BufReader, Cursor, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use gp_migrate::{engine, Args, ExitStatus};
use serde_json::{json, Value};

/// What a fake QEMU does with one command.
enum Reply {
    Return(Value),
    /// An event line as given, then the return value.
    EventThen(&'static str, Value),
    Error(&'static str),
    /// Never answer (keep reading).
    Silent,
    /// Hang up.
    Drop,
}

type Script = fn(&str, &Value) -> Reply;

/// The replies of a QEMU 10 with default settings.
fn qemu10(command: &str, _args: &Value) -> Reply {
    Reply::Return(match command {
        "query-version" => json!({"qemu": {"major": 10, "minor": 0, "micro": 2}, "package": ""}),
        "query-migrate-capabilities" => json!([
            {"capability": "xbzrle", "state": false},
            {"capability": "events", "state": false},
            {"capability": "postcopy-ram", "state": false},
            {"capability": "multifd", "state": false}
        ]),
        "query-migrate-parameters" => json!({"downtime-limit": 300, "max-bandwidth": 134217728}),
        "query-kvm" => json!({"enabled": false, "present": true}),
        "query-migrate" => json!({"status": "setup"}),
        "query-qmp-schema" => return Reply::Error("not in this fake"),
        _ => json!({}),
    })
}

/// A fake QEMU: serves one client, answers per `script`, records the commands it got.
struct FakeQemu {
    path: PathBuf,
    commands: Arc<CommandLog>,
}

fn occurrences(names: &[String], command: &str) -> usize {
    names.iter().filter(|c| *c == command).count()
}

/// The commands a fake QEMU got, in order; a waiter wakes on each new one.
#[derive(Default)]
struct CommandLog {
    names: Mutex<Vec<String>>,
    added: Condvar,
}

impl CommandLog {
    fn push(&self, name: String) {
        self.names.lock().unwrap().push(name);
        self.added.notify_all();
    }

    /// How many times `command` came so far.
    fn count(&self, command: &str) -> usize {
        occurrences(&self.names.lock().unwrap(), command)
    }

    /// Blocks until `command` has come `times` times.
    fn wait_for(&self, command: &str, times: usize) {
        let names = self.names.lock().unwrap();
        let _names = self
            .added
            .wait_while(names, |names| occurrences(names, command) < times)
            .unwrap();
    }
}

impl FakeQemu {
    fn start(dir: &Path, name: &str, script: Script) -> FakeQemu {
        let path = dir.join(name);
        let listener = UnixListener::bind(&path).unwrap();
        let commands = Arc::new(CommandLog::default());
        let log = Arc::clone(&commands);
        std::thread::spawn(move || {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut out = stream.try_clone().unwrap();
            let greeting = r#"{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": ""}, "capabilities": []}}"#;
            writeln!(out, "{greeting}").unwrap();
            let mut silent = false;
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                let v: Value = serde_json::from_str(&line).unwrap();
                let name = v["execute"].as_str().unwrap().to_string();
                log.push(name.clone());
                if silent {
                    continue;
                }
                let reply = if name == "qmp_capabilities" {
                    Reply::Return(json!({}))
                } else {
                    script(&name, &v["arguments"])
                };
                let text = match reply {
                    Reply::Return(v) => json!({ "return": v }).to_string(),
                    Reply::EventThen(event, v) => format!("{event}\n{}", json!({ "return": v })),
                    Reply::Error(desc) => {
                        json!({"error": {"class": "GenericError", "desc": desc}}).to_string()
                    }
                    Reply::Silent => {
                        silent = true;
                        continue;
                    }
                    Reply::Drop => return,
                };
                if writeln!(out, "{text}").is_err() {
                    return;
                }
                if name == "quit" {
                    return;
                }
            }
        });
        FakeQemu { path, commands }
    }

    fn got(&self, command: &str) -> bool {
        self.commands.count(command) > 0
    }
}

fn input(src: &FakeQemu, dst: &FakeQemu) -> String {
    let launch = json!({"type": "launch", "time_s": 1.0, "tool": "test", "version": "0", "argv": [],
        "qemu_binary": "qemu", "qemu_version": "10.0.2", "accel": "tcg", "kernel": "k", "initrd": "i",
        "kernel_cmdline": "", "transport": "unix", "dst_host": null,
        "hardware": {"cpus": 1, "mem_bytes": 268435456u64, "src_cpu_bind": [], "src_mem_bind": [],
            "dst_cpu_bind": [], "dst_mem_bind": [], "prealloc_pages": false, "huge_pages": false,
            "locked_pages": false, "dirty_ring_size": 0},
        "host": {"hostname": "h", "cpu_model": "c", "kernel_release": "r", "cpus": 2}});
    // No such pid: "is it still running" checks find nothing to wait for.
    let vm = |role: &str, path: &Path| {
        let mut v = json!({"type": "vm", "time_s": 1.0, "role": role, "pid": 999_999_999u32, "host": null,
            "qmp_socket": path, "vcpu_tids": [], "spawned_s": 1.0, "argv": []});
        if role == "dst" {
            v["migrate_uri"] = json!("unix:/nonexistent/migrate.sock");
        }
        v
    };
    format!(
        "{launch}\n{}\n{}\n{{\"type\":\"from_the_future\",\"x\":1}}\n",
        vm("src", &src.path),
        vm("dst", &dst.path)
    )
}

struct Outcome {
    status: ExitStatus,
    records: Vec<Value>,
    lines: Vec<String>,
    elapsed: Duration,
}

impl Outcome {
    fn of_type(&self, ty: &str) -> Vec<&Value> {
        self.records.iter().filter(|r| r["type"] == ty).collect()
    }
}

/// A signal for gp-migrate once the source has got `command` `times` times.
struct SignalAfter {
    command: &'static str,
    times: usize,
    signal: i32,
}

/// The two fake QEMUs of a run, with these scripts, their sockets in `dir`.
fn fakes(dir: &Path, src: Script, dst: Script) -> (FakeQemu, FakeQemu) {
    (
        FakeQemu::start(dir, "src.sock", src),
        FakeQemu::start(dir, "dst.sock", dst),
    )
}

/// gp-migrate's engine with `argv` on `src` and `dst`, signalled per `signal` (else never):
/// its status, its output and how long it ran.
fn run_engine(
    argv: &[&str],
    src: &FakeQemu,
    dst: &FakeQemu,
    signal: Option<SignalAfter>,
) -> (ExitStatus, String, Duration) {
    let args = Args::try_parse_from(argv).unwrap();
    let (tx, signals) = crossbeam_channel::unbounded();
    // Unsignalled, the sender stays open for the run, as the signal handler's does.
    let _tx = match signal {
        None => Some(tx),
        Some(SignalAfter {
            command,
            times,
            signal,
        }) => {
            let seen = Arc::clone(&src.commands);
            std::thread::spawn(move || {
                seen.wait_for(command, times);
                tx.send(signal).unwrap();
            });
            None
        }
    };
    let out = gp_testkit::SharedBuf::default();
    let started = Instant::now();
    let status = engine::run(
        args,
        Cursor::new(input(src, dst).into_bytes()),
        out.clone(),
        signals,
    );
    let elapsed = started.elapsed();
    (status, out.text(), elapsed)
}

fn run(args: &[&str], src: Script, dst: Script) -> (Outcome, FakeQemu, FakeQemu) {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = fakes(dir.path(), src, dst);
    let mut argv = vec![
        "gp-migrate",
        "--no-wait-workload",
        "--sleep",
        "0",
        "--qmp-timeout",
        "1",
    ];
    argv.extend_from_slice(args);
    let (status, text, elapsed) = run_engine(&argv, &src, &dst, None);
    let lines: Vec<String> = text.lines().map(String::from).collect();
    let records = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        Outcome {
            status,
            records,
            lines,
            elapsed,
        },
        src,
        dst,
    )
}

#[test]
fn every_input_line_passes_through_verbatim() {
    let (o, _, _) = run(&["--compression-mt"], qemu10, qemu10);
    let input_lines = o
        .lines
        .iter()
        .filter(|l| l.starts_with("{\"type\": \""))
        .count();
    assert!(
        o.lines
            .iter()
            .any(|l| l == "{\"type\":\"from_the_future\",\"x\":1}"),
        "{:#?}",
        o.lines
    );
    assert_eq!(
        input_lines, 0,
        "our own records are compact JSON; input is passed as it was"
    );
    assert_eq!(o.of_type("launch").len(), 1);
    assert_eq!(o.of_type("vm").len(), 2);
}

#[test]
fn a_missing_feature_is_refused_before_anything_is_configured() {
    let (o, src, dst) = run(&["--compression-mt"], qemu10, qemu10);
    assert_eq!(o.status, ExitStatus::Unsupported);
    let result = o.of_type("result");
    assert_eq!(result.len(), 1);
    assert_eq!(result[0]["outcome"], "failed");
    let reason = result[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("is not supported by QEMU 10.0.2"),
        "{reason}"
    );
    assert_eq!(o.of_type("stage_error").len(), 1);
    assert!(!src.got("migrate-set-capabilities") && !dst.got("migrate-set-capabilities"));
    assert!(src.got("quit") && dst.got("quit"), "both VMs are quit");
}

#[test]
fn a_destination_that_hangs_up_during_set_up_fails_the_run_and_quits_the_source() {
    fn dst(command: &str, args: &Value) -> Reply {
        match command {
            "query-migrate-capabilities" => Reply::Drop,
            _ => qemu10(command, args),
        }
    }
    let (o, src, _) = run(&[], qemu10, dst);
    assert_eq!(o.status, ExitStatus::Error);
    let result = o.of_type("result");
    assert_eq!(result.len(), 1, "{:#?}", o.lines);
    let reason = result[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("dst") && reason.contains("QMP connection closed"),
        "{reason}"
    );
    assert!(src.got("quit"));
}

#[test]
fn a_reply_that_never_comes_is_a_failure_within_the_qmp_timeout() {
    fn src(command: &str, args: &Value) -> Reply {
        match command {
            "migrate" => Reply::Silent,
            _ => qemu10(command, args),
        }
    }
    let (o, src_qemu, dst_qemu) = run(&[], src, qemu10);
    assert_eq!(o.status, ExitStatus::Failed, "{:#?}", o.lines);
    let result = o.of_type("result");
    assert_eq!(result.len(), 1, "{:#?}", o.lines);
    let reason = result[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("migrate") && reason.contains("no reply from QEMU within 1.0 s"),
        "{reason}"
    );
    // 1 s for the reply, up to 3 s trying to reconnect to quit the source: never a hang.
    assert!(o.elapsed < Duration::from_secs(10), "{:?}", o.elapsed);
    assert!(dst_qemu.got("quit"));
    assert!(src_qemu.got("migrate"));
}

#[test]
fn qemu_reporting_failed_is_a_failed_result_with_its_error_text() {
    fn src(command: &str, args: &Value) -> Reply {
        match command {
            "query-migrate" => Reply::Return(
                json!({"status": "failed", "error-desc": "Unable to write to socket: Broken pipe", "total-time": 12}),
            ),
            _ => qemu10(command, args),
        }
    }
    let (o, _, _) = run(&[], src, qemu10);
    assert_eq!(o.status, ExitStatus::Failed);
    let result = o.of_type("result")[0];
    assert_eq!(result["outcome"], "failed");
    assert_eq!(result["reason"], "Unable to write to socket: Broken pipe");
    let actions: Vec<&str> = o
        .of_type("action")
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["migrate", "shutdown", "shutdown"]);
}

#[test]
fn input_that_ends_before_the_vms_is_an_error_naming_gp_launch() {
    let args = Args::try_parse_from(["gp-migrate", "--sleep", "0"]).unwrap();
    let (_tx, signals) = crossbeam_channel::unbounded();
    let out = gp_testkit::SharedBuf::default();
    let status = engine::run(
        args,
        Cursor::new(b"{\"type\":\"mystery\"}\n".to_vec()),
        out.clone(),
        signals,
    );
    assert_eq!(status, ExitStatus::Error);
    let text = out.text();
    assert!(text.starts_with("{\"type\":\"mystery\"}\n"), "{text}");
    assert!(text.contains("\"type\":\"stage_error\""), "{text}");
    assert!(text.contains("is gp-launch upstream"), "{text}");
}

#[test]
fn a_signal_before_migrating_ends_the_run_with_an_interrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = fakes(dir.path(), qemu10, qemu10);
    // Signal once gp-migrate has configured the source and is settling.
    let configured = SignalAfter {
        command: "migrate-set-parameters",
        times: 1,
        signal: signal_hook::consts::SIGTERM,
    };
    let (status, text, elapsed) = run_engine(
        &["gp-migrate", "--no-wait-workload", "--sleep", "30"],
        &src,
        &dst,
        Some(configured),
    );
    assert_eq!(status, ExitStatus::Signal(15));
    assert!(
        elapsed < Duration::from_secs(10),
        "the 30 s sleep was not interrupted"
    );
    assert!(text.contains("\"outcome\":\"interrupted\""), "{text}");
    assert!(src.got("quit") && dst.got("quit"));
    // The scenario record still says what the run was and how far the wait got, before the
    // result.
    let scenario = text
        .find("\"type\":\"scenario\"")
        .expect("a scenario record");
    assert!(
        scenario < text.find("\"type\":\"result\"").unwrap(),
        "{text}"
    );
    assert!(text.contains("\"criterion\":\"none\""), "{text}");
}

#[test]
fn replies_and_events_newer_than_the_schema_reach_the_records_as_sent() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static POLLS: AtomicUsize = AtomicUsize::new(0);
    fn src(command: &str, args: &Value) -> Reply {
        match command {
            "migrate" => Reply::EventThen(
                r#"{"event": "FROM_QEMU_99", "data": {"x": 1}, "timestamp": {"seconds": 1700000000, "microseconds": 5}}"#,
                json!({}),
            ),
            // A status and a member qapi's schema does not have, then completion.
            "query-migrate" => Reply::Return(match POLLS.fetch_add(1, Ordering::SeqCst) {
                0 => json!({"status": "from-qemu-99", "member-from-qemu-99": {"y": 2}}),
                _ => json!({"status": "completed", "total-time": 12}),
            }),
            _ => qemu10(command, args),
        }
    }
    let (o, _, _) = run(&[], src, qemu10);
    assert_eq!(o.status, ExitStatus::Completed, "{:#?}", o.lines);
    let progress = o.of_type("progress");
    let first = progress
        .iter()
        .find(|p| p["role"] == "src")
        .expect("a source snapshot");
    assert_eq!(first["status"], "from-qemu-99");
    assert_eq!(first["info"]["member-from-qemu-99"], json!({"y": 2}));
    let event = o
        .of_type("qmp_event")
        .into_iter()
        .find(|e| e["event"] == "FROM_QEMU_99")
        .unwrap_or_else(|| panic!("the event is lost: {:#?}", o.lines));
    assert_eq!(event["role"], "src");
    assert_eq!(event["data"], json!({"x": 1}));
    assert!((event["qemu_time_s"].as_f64().unwrap() - 1_700_000_000.000005).abs() < 1e-6);
    assert_eq!(o.of_type("result")[0]["total_time_ms"], 12);
}

#[test]
fn a_signal_in_post_copy_says_the_guest_is_lost_and_the_phase() {
    fn src(command: &str, args: &Value) -> Reply {
        match command {
            "query-migrate" => {
                Reply::Return(json!({"status": "postcopy-active", "total-time": 900,
                "ram": {"transferred": 1, "remaining": 1, "total": 2, "duplicate": 0, "normal": 0,
                "normal-bytes": 0, "dirty-pages-rate": 0, "mbps": 1.0, "dirty-sync-count": 2,
                "postcopy-requests": 0, "page-size": 4096, "multifd-bytes": 0,
                "pages-per-second": 0, "precopy-bytes": 0, "downtime-bytes": 0,
                "postcopy-bytes": 0, "dirty-sync-missed-zero-copy": 0}}))
            }
            _ => qemu10(command, args),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = fakes(dir.path(), src, qemu10);
    // Signal once the source has been polled in post-copy a few times.
    let polled = SignalAfter {
        command: "query-migrate",
        times: 3,
        signal: signal_hook::consts::SIGINT,
    };
    let (status, text, _) = run_engine(
        &["gp-migrate", "--no-wait-workload", "--sleep", "0"],
        &src,
        &dst,
        Some(polled),
    );
    assert_eq!(status, ExitStatus::Signal(2));
    let result: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["type"] == "result")
        .expect("a result record");
    assert_eq!(result["outcome"], "interrupted", "{result}");
    let reason = result["reason"].as_str().unwrap();
    assert!(reason.contains("the guest is lost"), "{reason}");
    assert!(reason.contains("phase postcopy-active"), "{reason}");
    // Post-copy cannot be cancelled: gp-migrate did not try.
    assert!(!src.got("migrate_cancel"), "{text}");
}
