//! A QMP socket that accepts and then never answers (a fake peer): gp-migrate must hit a
//! deadline, not hang, and the report must say which socket and what it waited for. The real
//! QEMU version of this fault (a QEMU stopped mid-migration) is in tests/kills.rs.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gp_faults::fake::{Silence, SilentQmp};
use gp_faults::log_whole_run;
use gp_records::report::Report;
use gp_records::{Outcome, Record, Role, Vm};
use gp_testkit::bins::bin;

fn vm_line(role: Role, sock: &std::path::Path) -> String {
    let vm = Vm {
        time_s: gp_records::now_s(),
        role,
        // No such process: nothing to wait for or sample.
        pid: 999_999_999,
        host: None,
        qmp_socket: sock.to_string_lossy().into_owned(),
        vcpu_tids: vec![],
        migrate_uri: (role == Role::Dst).then(|| "unix:/nonexistent/migrate.sock".to_string()),
        spawned_s: gp_records::now_s(),
        argv: vec![],
    };
    serde_json::to_string(&Record::Vm(vm)).unwrap()
}

/// `gp-migrate ARGS | gp-collect` over two vm records that point at silent peers; the input
/// stays open (as gp-launch's would). Returns the report, gp-migrate's exit code and how long
/// it took.
fn run(how: Silence, args: &[&str], bound: Duration) -> (Report, Option<i32>, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let src = SilentQmp::start(dir.path(), "src-qmp.sock", how);
    let dst = SilentQmp::start(dir.path(), "dst-qmp.sock", how);
    let report = dir.path().join("report.json");
    let mut migrate = Command::new(bin("gp-migrate"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let collect = Command::new(bin("gp-collect"))
        .arg("--output")
        .arg(&report)
        .stdin(migrate.stdout.take().unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = migrate.stdin.take().unwrap();
    writeln!(input, "{}", vm_line(Role::Src, src.path())).unwrap();
    writeln!(input, "{}", vm_line(Role::Dst, dst.path())).unwrap();
    // The input ends, as gp-launch's does once the VMs are gone: what is left to time is the
    // wait on the peers.
    drop(input);
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = migrate.id();
    std::thread::spawn(move || {
        let _ = tx.send(migrate.wait_with_output());
    });
    let out = match rx.recv_timeout(bound) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) on our child.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
            panic!("gp-migrate still waiting on a silent QMP peer after {bound:?}");
        }
    };
    let took = started.elapsed();
    let collect = collect.wait_with_output().unwrap();
    assert!(collect.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(src.accepted() >= 1, "gp-migrate never connected");
    let r: Report = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    (r, out.status.code(), took)
}

#[test]
fn a_peer_that_never_greets_is_given_up_at_the_qmp_timeout() {
    // The same deadline as every reply (20 s by default: gp-migrate's unit tests); 3 s here.
    let bound = Duration::from_secs(30);
    let (r, code, took) = run(Silence::NoGreeting, &["--qmp-timeout", "3"], bound);
    log_whole_run("QMP peer that never greets (--qmp-timeout 3)", took, bound);
    assert_eq!(code, Some(1));
    let ext = r.guestperf_rs.unwrap();
    let result = ext.result.unwrap();
    assert_eq!(result.outcome, Outcome::Failed);
    assert!(
        result.reason.contains("src-qmp.sock")
            && result.reason.contains("no greeting within 3.0 s"),
        "{}",
        result.reason
    );
    assert!(ext.stage_errors.iter().any(|e| e.stage == "gp-migrate"));
}

#[test]
fn a_peer_that_greets_and_never_replies_is_given_up_at_the_qmp_timeout() {
    let bound = Duration::from_secs(30);
    let (r, code, took) = run(Silence::NoReplies, &["--qmp-timeout", "2"], bound);
    log_whole_run(
        "QMP peer that greets, never replies (--qmp-timeout 2)",
        took,
        bound,
    );
    assert_eq!(code, Some(1));
    let result = r.guestperf_rs.unwrap().result.unwrap();
    assert_eq!(result.outcome, Outcome::Failed);
    assert!(
        result.reason.contains("src-qmp.sock") && result.reason.contains("within 2.0 s"),
        "{}",
        result.reason
    );
}
