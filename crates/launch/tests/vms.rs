//! End-to-end: gp-launch boots real VMs under TCG. Each test takes the machine-wide VM test
//! lock, waits on records (never fixed sleeps), and checks that no QEMU, socket or runtime
//! directory is left behind.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{qmp, Launch, BOOT_WAIT, EXIT_WAIT};
use gp_records::{Record, Role};
use qapi::qmp as q;

/// Small guests keep TCG tests quick.
const BASE: &[&str] = &["--accel", "tcg", "--mem", "256M"];

fn args(extra: &[&'static str]) -> Vec<&'static str> {
    BASE.iter().copied().chain(extra.iter().copied()).collect()
}

fn setup() -> gp_testkit::VmTestLock {
    let lock = gp_testkit::vm_test_lock();
    gp_testkit::require_qemu();
    assert!(
        gp_qemu::paths::default_initrd().is_file(),
        "VM tests need the stress initrd at {}: run initrd/build.sh",
        gp_qemu::paths::default_initrd().display()
    );
    lock
}

fn is_vm(role: Role) -> impl FnMut(&Record) -> bool {
    move |r| matches!(r, Record::Vm(v) if v.role == role)
}

/// Waits for the header and both `vm` records.
fn wait_up(l: &mut Launch) -> (gp_records::Vm, gp_records::Vm) {
    let first = l.wait_for(BOOT_WAIT, "launch header", |_| true);
    assert!(
        matches!(first, Record::Launch(_)),
        "the header comes first: {first:?}\n{}",
        l.report()
    );
    l.wait_for(BOOT_WAIT, "src vm record", is_vm(Role::Src));
    l.wait_for(BOOT_WAIT, "dst vm record", is_vm(Role::Dst));
    let vms = l.vm_records();
    (vms[0].clone(), vms[1].clone())
}

/// SIGTERM ends the run; nothing of it is left.
fn terminate(l: &mut Launch) {
    l.signal(libc::SIGTERM);
    l.wait_exit(EXIT_WAIT);
    l.assert_clean();
}

/// Ends the run as gp-migrate does, quitting both VMs over QMP: gp-launch exits 0 and nothing of
/// the run is left.
fn quit_both(l: &mut Launch, mut s: gp_qemu::qmp::Qmp, mut d: gp_qemu::qmp::Qmp) {
    s.quit().unwrap();
    d.quit().unwrap();
    assert!(l.wait_exit(EXIT_WAIT).success(), "{}", l.report());
    l.assert_clean();
}

/// The destination listens for the migration at `uri`.
fn migrate_incoming(d: &mut gp_qemu::qmp::Qmp, uri: &str) {
    d.execute(&q::migrate_incoming {
        uri: Some(uri.to_string()),
        channels: None,
        exit_on_error: None,
    })
    .unwrap();
}

/// The source starts migrating to `uri`.
fn migrate(s: &mut gp_qemu::qmp::Qmp, uri: &str) {
    s.execute(&q::migrate {
        uri: Some(uri.to_string()),
        channels: None,
        detach: None,
        resume: None,
    })
    .unwrap();
}

/// Starts gp-launch with [`BASE`] and `extra`, which must exit 1 within `wait`: its stderr.
fn failing(extra: &[&'static str], wait: Duration) -> (Launch, String) {
    let mut l = Launch::start(&args(extra));
    let status = l.wait_exit(wait);
    assert_eq!(status.code(), Some(1), "{}", l.report());
    let err = l.stderr();
    (l, err)
}

fn exits(l: &Launch) -> Vec<gp_records::VmExit> {
    l.records()
        .into_iter()
        .filter_map(|r| match r {
            Record::VmExit(e) => Some(e),
            _ => None,
        })
        .collect()
}

/// Both VMs boot; source records arrive from every vCPU's thread within a bound; the
/// destination waits for its migration; a later stage's `quit` over the public sockets ends
/// the run, and gp-launch exits with both `vm_exit` records.
#[test]
fn boots_both_vms_streams_every_vcpu_and_ends_on_quit() {
    let _lock = setup();
    let mut l = Launch::start(&args(&["--cpus", "2"]));
    let (src, dst) = wait_up(&mut l);
    assert_eq!(src.vcpu_tids.len(), 2, "{}", l.report());
    assert_eq!(dst.vcpu_tids.len(), 2);
    assert!(src.migrate_uri.is_none());
    let uri = dst.migrate_uri.clone().expect("dst has a migrate_uri");
    assert!(uri.starts_with("unix:"), "{uri}");
    let dir = std::path::Path::new(&src.qmp_socket)
        .parent()
        .unwrap()
        .to_path_buf();
    assert_eq!(
        std::path::Path::new(&uri["unix:".len()..])
            .parent()
            .unwrap(),
        dir
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "runtime dir must be private");
    }
    for v in [&src, &dst] {
        for tid in &v.vcpu_tids {
            let comm = std::fs::read_to_string(format!("/proc/{}/task/{tid}/comm", v.pid)).unwrap();
            assert!(
                comm.starts_with("CPU "),
                "tid {tid} is a vCPU thread: {comm}"
            );
        }
    }

    let start = l.wait_for(BOOT_WAIT, "guest_start", |r| {
        matches!(r, Record::GuestStart(_))
    });
    let Record::GuestStart(start) = start else {
        unreachable!()
    };
    assert_eq!(start.role, Role::Src);
    assert_eq!(start.threads, 2);
    let boot_ms = start.boot_ms.expect("boot_ms on the first guest_start");
    assert!(
        boot_ms > 0.0 && boot_ms < BOOT_WAIT.as_millis() as f64,
        "{boot_ms}"
    );
    eprintln!("boot to workload: {boot_ms:.0} ms");

    let mut threads = BTreeSet::new();
    l.wait_for(
        Duration::from_secs(60),
        "guest_progress from both workload threads",
        |r| {
            if let Record::GuestProgress(p) = r {
                assert_eq!(
                    p.role,
                    Role::Src,
                    "the destination must not run before a migration"
                );
                assert!(p.time_s > 0.0 && p.bytes > 0);
                threads.insert(p.thread);
            }
            threads.len() == 2
        },
    );

    // The destination waits for its migration.
    let mut d = qmp(&dst.qmp_socket);
    assert_eq!(d.query_status().unwrap().status, q::RunState::inmigrate);
    let mut s = qmp(&src.qmp_socket);
    assert!(s.query_status().unwrap().running);

    // End the run as gp-migrate does.
    s.quit().unwrap();
    d.quit().unwrap();
    let status = l.wait_exit(EXIT_WAIT);
    assert!(status.success(), "{}", l.report());
    let ex = exits(&l);
    assert_eq!(ex.len(), 2, "{}", l.report());
    for e in &ex {
        assert_eq!(e.status, 0);
        assert_eq!(e.reason.as_deref(), Some("quit over QMP"), "{}", l.report());
    }
    assert!(
        matches!(l.records().last(), Some(Record::VmExit(_))),
        "vm_exit records come last"
    );
    l.assert_clean();
}

/// The header and `vm` records have exactly the fields docs/records.md shows (optional ones
/// may be absent), and parse as their documented types. SIGTERM during boot ends the run.
#[test]
fn header_and_vm_records_validate_against_docs_and_sigterm_during_boot_cleans_up() {
    let _lock = setup();
    let mut l = Launch::start(&args(&["--cpus", "1", "--transport", "tcp"]));
    let (_, dst) = wait_up(&mut l);
    l.signal(libc::SIGTERM);
    let status = l.wait_exit(EXIT_WAIT);
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{}", l.report());

    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/records.md"
    ))
    .unwrap();
    let example = |ty: &str| -> serde_json::Value {
        let needle = format!("{{\"type\":\"{ty}\"");
        let line = docs
            .lines()
            .find(|l| l.starts_with(&needle))
            .unwrap_or_else(|| panic!("no {ty} example"));
        serde_json::from_str(line).unwrap()
    };
    let optional = ["accel_note", "migrate_uri", "trace_note", "bind_note"];
    for (ty, idx) in [("launch", 0), ("vm", 1), ("vm", 2)] {
        let ours: serde_json::Value = serde_json::from_str(&l.lines[idx]).unwrap();
        let doc = example(ty);
        for (a, b) in [(&ours, &doc), (&doc, &ours)] {
            for key in a.as_object().unwrap().keys() {
                assert!(
                    b.get(key).is_some() || optional.contains(&key.as_str()),
                    "{ty}: field {key} is in one of ours/docs but not the other\nours: {ours}\ndocs: {doc}"
                );
            }
        }
        if ty == "launch" {
            for nested in ["hardware", "host"] {
                let ok: BTreeSet<_> = ours[nested].as_object().unwrap().keys().collect();
                let dk: BTreeSet<_> = doc[nested].as_object().unwrap().keys().collect();
                assert_eq!(ok, dk, "{nested} fields differ from docs/records.md");
            }
        }
    }
    let Record::Launch(h) = l.records()[0].clone() else {
        panic!()
    };
    assert_eq!(h.tool, "gp-launch");
    assert_eq!(h.accel, "tcg");
    assert_eq!(h.transport, "tcp");
    assert!(h.qemu_version.split('.').count() == 3, "{}", h.qemu_version);
    assert!(
        h.kernel_cmdline.contains("console=ttyS0") && h.kernel_cmdline.contains("ramsize=144M")
    );
    assert_eq!(h.hardware.mem_bytes, 256 << 20);
    assert!(!h.host.cpu_model.is_empty() && h.host.cpus >= 1);
    assert!(h.argv.iter().any(|a| a == "--transport"));
    let uri = dst.migrate_uri.unwrap();
    let port: u16 = uri
        .strip_prefix("tcp:127.0.0.1:")
        .expect(&uri)
        .parse()
        .unwrap();
    assert_ne!(port, 9000, "never a fixed port");

    let ex = exits(&l);
    assert_eq!(ex.len(), 2, "{}", l.report());
    assert!(
        ex.iter()
            .all(|e| e.reason.as_deref().unwrap_or("").contains("SIGTERM")),
        "{}",
        l.report()
    );
    l.assert_clean();
}

#[test]
fn sigint_during_boot_leaves_nothing() {
    let _lock = setup();
    let mut l = Launch::start(&args(&[]));
    l.wait_for(BOOT_WAIT, "src vm record", is_vm(Role::Src));
    l.signal(libc::SIGINT);
    let status = l.wait_exit(EXIT_WAIT);
    assert_eq!(status.code(), Some(130), "{}", l.report());
    // An interrupt is not a failure: the one stage_error says gp-launch was interrupted, and by
    // what, so that the report can say the run was interrupted rather than failed.
    let errors: Vec<_> = l
        .records()
        .into_iter()
        .filter_map(|r| match r {
            Record::StageError(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 1, "{}", l.report());
    assert_eq!(errors[0].signal, Some(libc::SIGINT), "{}", l.report());
    assert!(
        errors[0].message.starts_with("interrupted by SIGINT"),
        "{}",
        l.report()
    );
    l.assert_clean();
}

#[test]
fn sigint_in_steady_state_leaves_nothing() {
    let _lock = setup();
    let mut l = Launch::start(&args(&["--cpus", "2"]));
    wait_up(&mut l);
    let mut n = 0;
    l.wait_for(BOOT_WAIT, "several guest_progress records", |r| {
        n += matches!(r, Record::GuestProgress(_)) as u32;
        n >= 10
    });
    l.signal(libc::SIGINT);
    let status = l.wait_exit(EXIT_WAIT);
    assert_eq!(status.code(), Some(130), "{}", l.report());
    let ex = exits(&l);
    assert_eq!(ex.len(), 2, "{}", l.report());
    assert!(
        ex.iter().all(|e| e.status == 0),
        "polite quit worked: {ex:?}"
    );
    l.assert_clean();
}

/// `gp-launch | head -n 5`: the closed pipe tears both VMs down.
#[test]
fn downstream_head_leaves_nothing() {
    let _lock = setup();
    let marker = common::marker();
    let script = format!(
        "'{}' --accel tcg --mem 256M --kernel-arg={marker} | head -n 5; echo \"status=${{PIPESTATUS[0]}}\" >&2",
        common::BIN
    );
    let start = Instant::now();
    let out = gp_testkit::bash_ending_with_test()
        .args(["-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = format!("script: {script}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(stdout.lines().count(), 5, "{report}");
    assert!(
        stderr.contains("status=0"),
        "a closed pipe is a clean exit\n{report}"
    );
    assert!(!stderr.contains("panicked"), "{report}");
    let vms: Vec<gp_records::Vm> = stdout
        .lines()
        .filter_map(|l| match gp_records::ndjson::parse_line(l).unwrap() {
            Some(Record::Vm(v)) => Some(v),
            _ => None,
        })
        .collect();
    assert_eq!(vms.len(), 2, "{report}");
    assert!(start.elapsed() < Duration::from_secs(300));
    for v in &vms {
        assert!(
            !gp_testkit::pid_alive(v.pid),
            "QEMU {} outlived the pipeline\n{report}",
            v.pid
        );
        let dir = std::path::Path::new(&v.qmp_socket).parent().unwrap();
        assert!(!dir.exists(), "runtime dir left\n{report}");
    }
    assert!(common::processes_with(&marker).is_empty(), "{report}");
}

/// gp-launch killed outright (SIGKILL: no cleanup possible) still takes its QEMUs with it,
/// through the parent-death signal.
#[test]
fn sigkill_of_gp_launch_kills_its_qemus() {
    let _lock = setup();
    let mut l = Launch::start(&args(&[]));
    let (src, dst) = wait_up(&mut l);
    l.signal(libc::SIGKILL);
    l.wait_exit(EXIT_WAIT);
    let gone = gp_testkit::wait_until(Duration::from_secs(30), || {
        !gp_testkit::pid_alive(src.pid) && !gp_testkit::pid_alive(dst.pid)
    });
    assert!(gone, "QEMU survived its parent's SIGKILL\n{}", l.report());
    // Only the runtime directory can remain after SIGKILL; Launch's drop removes it.
}

/// A QEMU that refuses its arguments: a clear error with QEMU's own words, non-zero exit, and
/// the other VM, already started, is cleaned up too.
#[test]
fn qemu_failing_to_start_is_reported_with_its_stderr() {
    let _lock = setup();
    let (l, err) = failing(&["--dst-qemu-arg", "-no-such-option"], EXIT_WAIT);
    assert!(err.contains("dst QEMU failed to start"), "{}", l.report());
    assert!(
        err.contains("-no-such-option"),
        "QEMU's stderr is quoted\n{}",
        l.report()
    );
    assert!(
        matches!(l.records().last(), Some(Record::StageError(_))),
        "{}",
        l.report()
    );
    l.assert_clean();
}

/// A guest that cannot start its workload (no /init): the kernel panics, QEMU ends at once
/// (panic=-1, -no-reboot), and the error shows the console.
#[test]
fn a_guest_that_cannot_boot_is_an_error_not_a_hang() {
    let _lock = setup();
    let (l, err) = failing(&["--kernel-arg", "rdinit=/no-such-init"], BOOT_WAIT);
    assert!(
        err.contains("ended before its workload started"),
        "{}",
        l.report()
    );
    assert!(
        err.contains("Kernel panic") || err.contains("no-such-init"),
        "console shown\n{}",
        l.report()
    );
    l.assert_clean();
}

/// The workload ends by itself (stress.duration_s): the source powers off, gp-launch quits the
/// destination that never got a migration, and exits 0.
#[test]
fn source_poweroff_ends_the_run() {
    let _lock = setup();
    let mut l = Launch::start(&args(&["--stress-duration-s", "1"]));
    let status = l.wait_exit(BOOT_WAIT);
    assert!(status.success(), "{}", l.report());
    let ex = exits(&l);
    let src = ex
        .iter()
        .find(|e| e.role == Role::Src)
        .expect("src vm_exit");
    assert_eq!(
        src.reason.as_deref(),
        Some("guest poweroff"),
        "{}",
        l.report()
    );
    let dst = ex
        .iter()
        .find(|e| e.role == Role::Dst)
        .expect("dst vm_exit");
    assert!(
        dst.reason
            .as_deref()
            .unwrap()
            .contains("source exited before migrating"),
        "{}",
        l.report()
    );
    l.assert_clean();
}

/// --accel auto uses KVM where it works and TCG otherwise, with a warning and the reason in
/// the header; it never hangs.
#[test]
fn accel_auto_picks_what_works() {
    let _lock = setup();
    let mut l = Launch::start(&["--accel", "auto", "--mem", "256M"]);
    let header = l.wait_for(BOOT_WAIT, "launch header", |_| true);
    let Record::Launch(h) = header else {
        panic!("{}", l.report())
    };
    match h.accel.as_str() {
        // A note only when the verdict came from this boot's cache.
        "kvm" => assert!(h
            .accel_note
            .as_deref()
            .map_or(true, |n| n.contains("GUESTPERF_REPROBE_KVM"))),
        "tcg" => {
            let note = h.accel_note.clone().expect("accel_note says why not KVM");
            assert!(note.contains("KVM"), "{note}");
            // stderr is read on its own thread: the header can be here before the warning.
            assert!(
                gp_testkit::wait_until(Duration::from_secs(10), || l
                    .stderr()
                    .contains("warning: KVM does not work here")),
                "{}",
                l.report()
            );
        }
        other => panic!("accel {other}"),
    }
    l.wait_for(BOOT_WAIT, "src vm record", is_vm(Role::Src));
    l.wait_for(BOOT_WAIT, "dst vm record", is_vm(Role::Dst));
    let src = l.vm_records()[0].clone();
    let cpu = src
        .argv
        .windows(2)
        .find(|w| w[0] == "-cpu")
        .map(|w| w[1].clone())
        .unwrap();
    assert_eq!(
        cpu == "host",
        h.accel == "kvm",
        "-cpu host goes with KVM only"
    );
    eprintln!("accel auto chose {} ({:?})", h.accel, h.accel_note);
    terminate(&mut l);
}

/// `--accel auto` keeps its verdict for this boot, QEMU and kernel: the second run does not probe
/// (with `--verbose` a probe says `probing KVM`), says where the verdict came from on stderr and
/// in the header's `accel_note`, and `GUESTPERF_REPROBE_KVM=1` probes again. Needs a `/dev/kvm`
/// that opens (here KVM opens but its guests fail, so the probe runs and fails).
#[test]
fn accel_auto_keeps_this_boots_verdict() {
    let _lock = setup();
    assert!(
        gp_launch::accel::kvm_device_usable().is_ok(),
        "this test needs a /dev/kvm that opens (the probe must run)"
    );
    let cache = gp_qemu::runtime::RuntimeDir::new("gp-verdict-cache").unwrap();
    // A private cache: the kernel and initrd are named, not looked up there.
    let kernel = gp_qemu::kernel::find_kernel(None).unwrap();
    let initrd = gp_qemu::paths::default_initrd();
    let (kernel, initrd) = (kernel.to_str().unwrap(), initrd.to_str().unwrap());
    // How a run asks for a new probe: not at all, by the environment, or by the flag.
    #[derive(PartialEq)]
    enum Reprobe {
        No,
        Env,
        Flag,
    }
    let run = |reprobe: Reprobe| {
        let mut env: Vec<(&str, &std::ffi::OsStr)> =
            vec![("GUESTPERF_CACHE", cache.path().as_os_str())];
        if reprobe == Reprobe::Env {
            env.push(("GUESTPERF_REPROBE_KVM", std::ffi::OsStr::new("1")));
        }
        let mut args = vec![
            "--accel",
            "auto",
            "--mem",
            "256M",
            "--verbose",
            "--kernel",
            kernel,
            "--initrd",
            initrd,
        ];
        if reprobe == Reprobe::Flag {
            args.push("--reprobe-kvm");
        }
        let mut l = Launch::start_with_env(&args, &env);
        let header = l.wait_for(BOOT_WAIT, "launch header", |_| true);
        let Record::Launch(h) = header else {
            panic!("{}", l.report())
        };
        // The probe's lines come before the header; the verdict's line may trail it.
        gp_testkit::wait_until(Duration::from_secs(10), || {
            l.stderr().contains("KVM works") || l.stderr().contains("KVM does not work")
        });
        let stderr = l.stderr();
        terminate(&mut l);
        (h, stderr)
    };
    let (first, stderr) = run(Reprobe::No);
    assert!(
        stderr.contains("probing KVM"),
        "the first run probes\n{stderr}"
    );
    let kept = std::fs::read_dir(cache.path().join("kvm-probe"))
        .unwrap()
        .count();
    assert_eq!(kept, 1, "one verdict kept");

    let (second, stderr) = run(Reprobe::No);
    assert!(
        !stderr.contains("probing KVM"),
        "the second run does not probe\n{stderr}"
    );
    assert_eq!(second.accel, first.accel);
    let note = second.accel_note.clone().unwrap_or_default();
    assert!(
        note.contains("verdict of this boot's probe") && note.contains("GUESTPERF_REPROBE_KVM=1"),
        "{note}"
    );
    assert!(stderr.contains("GUESTPERF_REPROBE_KVM=1"), "{stderr}");

    for (reprobe, how) in [
        (Reprobe::Env, "GUESTPERF_REPROBE_KVM=1"),
        (Reprobe::Flag, "--reprobe-kvm"),
    ] {
        let (again, stderr) = run(reprobe);
        assert!(stderr.contains("probing KVM"), "{how} probes\n{stderr}");
        assert!(!again
            .accel_note
            .unwrap_or_default()
            .contains("verdict of this boot's probe"));
    }
}

/// --accel kvm where KVM is broken: an error naming --accel tcg (or, where KVM works, a VM).
#[test]
fn accel_kvm_on_a_broken_kvm_names_tcg() {
    let _lock = setup();
    let mut l = Launch::start(&["--accel", "kvm", "--mem", "256M"]);
    let first = l.wait_for(BOOT_WAIT, "first record", |_| true);
    match first {
        Record::StageError(e) => {
            assert!(e.message.contains("--accel tcg"), "{}", e.message);
            assert_ne!(l.wait_exit(EXIT_WAIT).code(), Some(0));
        }
        Record::Launch(h) => {
            assert_eq!(h.accel, "kvm");
            l.wait_for(BOOT_WAIT, "dst vm record", is_vm(Role::Dst));
            l.signal(libc::SIGTERM);
            l.wait_exit(EXIT_WAIT);
        }
        other => panic!("{other:?}\n{}", l.report()),
    }
    l.assert_clean();
}

fn allowed_cpus(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string()
}

fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let v = status.lines().find_map(|l| l.strip_prefix(field)).unwrap();
    v.trim().trim_end_matches("kB").trim().parse().unwrap()
}

/// Binding through numactl, preallocated and locked memory: each really applied to QEMU.
#[test]
fn numactl_binding_prealloc_and_locked_pages_apply() {
    let _lock = setup();
    let mut l = Launch::start(&args(&[
        "--bind-method",
        "numactl",
        "--src-cpu-bind",
        "0",
        "--src-mem-bind",
        "0",
        "--dst-cpu-bind",
        "1",
        "--prealloc-pages",
        "--locked-pages",
    ]));
    let (src, dst) = wait_up(&mut l);
    assert_eq!(src.argv[0], "/usr/bin/numactl", "{:?}", src.argv);
    assert_eq!(allowed_cpus(src.pid), "0");
    assert_eq!(allowed_cpus(dst.pid), "1");
    let mem_kb = 256 * 1024;
    assert!(
        status_kb(src.pid, "VmLck:") >= mem_kb,
        "locked: {} kB",
        status_kb(src.pid, "VmLck:")
    );
    assert!(
        status_kb(src.pid, "VmRSS:") >= mem_kb,
        "preallocated: {} kB",
        status_kb(src.pid, "VmRSS:")
    );
    assert!(
        status_kb(dst.pid, "VmRSS:") >= mem_kb,
        "dst preallocated too"
    );
    terminate(&mut l);
}

#[test]
fn native_binding_applies() {
    let _lock = setup();
    let mut l = Launch::start(&args(&[
        "--bind-method",
        "native",
        "--src-cpu-bind",
        "1",
        "--src-mem-bind",
        "0",
        "--dst-cpu-bind",
        "0-1",
    ]));
    let (src, dst) = wait_up(&mut l);
    assert!(
        src.argv[0].ends_with("qemu-system-x86_64"),
        "{:?}",
        src.argv
    );
    assert_eq!(allowed_cpus(src.pid), "1");
    assert_eq!(allowed_cpus(dst.pid), "0-1");
    let mems = std::fs::read_to_string(format!("/proc/{}/status", src.pid)).unwrap();
    assert!(mems
        .lines()
        .any(|l| l.starts_with("Mems_allowed_list:") && l.trim_end().ends_with('0')));
    terminate(&mut l);
}

/// The contract with gp-migrate: the destination's URI and public QMP socket work for a real
/// migration, after which the destination's console is streamed as `dst` records.
fn migrate_over(transport: &'static str) {
    let _lock = setup();
    let mut l = Launch::start(&args(&["--cpus", "2", "--transport", transport]));
    let (src, dst) = wait_up(&mut l);
    l.wait_for(BOOT_WAIT, "guest_start", |r| {
        matches!(r, Record::GuestStart(_))
    });
    let uri = dst.migrate_uri.clone().unwrap();
    let mut s = qmp(&src.qmp_socket);
    let mut d = qmp(&dst.qmp_socket);
    // Stop-and-copy converges whatever the dirty rate; live convergence is gp-migrate's job.
    s.execute(&q::stop {}).unwrap();
    migrate_incoming(&mut d, &uri);
    migrate(&mut s, &uri);
    let moved = gp_testkit::wait_until(Duration::from_secs(120), || {
        d.query_status()
            .map(|st| st.status == q::RunState::paused)
            .unwrap_or(false)
    });
    assert!(moved, "the migration did not complete\n{}", l.report());
    d.execute(&q::cont {}).unwrap();
    l.wait_for(
        Duration::from_secs(60),
        "guest_progress from the destination",
        |r| matches!(r, Record::GuestProgress(p) if p.role == Role::Dst),
    );
    quit_both(&mut l, s, d);
}

#[test]
fn migration_over_the_unix_uri_moves_the_workload() {
    migrate_over("unix");
}

#[test]
fn migration_over_the_tcp_uri_moves_the_workload() {
    migrate_over("tcp");
}

fn header_of(l: &Launch) -> gp_records::Launch {
    match l.records().into_iter().next() {
        Some(Record::Launch(h)) => h,
        other => panic!("header first: {other:?}"),
    }
}

fn checkpoints(l: &Launch, role: Role) -> Vec<(String, f64)> {
    l.records()
        .into_iter()
        .filter_map(|r| match r {
            Record::QemuTrace(t) if t.role == role && t.event == "vmstate_downtime_checkpoint" => {
                Some((t.args.clone(), t.qemu_time_s))
            }
            _ => None,
        })
        .collect()
}

/// A real live pre-copy migration on the installed QEMU (10.x has the tracepoints): both QEMUs'
/// downtime tracepoints come out as `qemu_trace` records, the source's switchover steps before
/// the destination's, all inside the migration, and the RAM's last pass among the saves.
#[test]
fn precopy_migration_yields_downtime_trace_records_from_both_sides() {
    let _lock = setup();
    // Each page written once, then idle: pre-copy converges at once.
    let mut l = Launch::start(&args(&["--stress-pattern", "once"]));
    let (src, dst) = wait_up(&mut l);
    let header = header_of(&l);
    assert!(
        header
            .trace_events
            .iter()
            .any(|e| e == "vmstate_downtime_checkpoint"),
        "{header:?}"
    );
    assert_eq!(header.trace_note, None);
    // The default boot: the bzImage's vmlinux through its PVH entry, with qboot where the
    // installed QEMU ships it, on both sides, and it migrates.
    for vm in [&src, &dst] {
        assert!(
            vm.argv.iter().any(|a| a.contains("/pvh/pvh-")),
            "{:?}",
            vm.argv
        );
        let qboot = gp_launch::qemu_args::qboot_for(std::path::Path::new(&header.qemu_binary));
        assert_eq!(
            vm.argv.iter().any(|a| a.ends_with("qboot.rom")),
            qboot.is_some(),
            "{:?}",
            vm.argv
        );
    }
    l.wait_for(BOOT_WAIT, "guest_warm", |r| {
        matches!(r, Record::GuestWarm(_))
    });
    let uri = dst.migrate_uri.clone().unwrap();
    let mut s = qmp(&src.qmp_socket);
    let mut d = qmp(&dst.qmp_socket);
    migrate_incoming(&mut d, &uri);
    let started = gp_records::now_s();
    migrate(&mut s, &uri);
    // The last checkpoint: the destination's VM runs.
    l.wait_for(Duration::from_secs(120), "dst-precopy-bh-vm-started", |r| {
        matches!(r, Record::QemuTrace(t) if t.role == Role::Dst && t.args == "dst-precopy-bh-vm-started")
    });
    let running = gp_records::now_s();
    let src_steps = checkpoints(&l, Role::Src);
    let dst_steps = checkpoints(&l, Role::Dst);
    let names = |v: &[(String, f64)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    for step in [
        "src-downtime-start",
        "src-vm-stopped",
        "src-non-iterable-saved",
    ] {
        assert!(
            names(&src_steps).iter().any(|n| n == step),
            "{step}: {src_steps:?}"
        );
    }
    assert!(
        names(&dst_steps)
            .iter()
            .any(|n| n == "dst-precopy-loadvm-completed"),
        "{dst_steps:?}"
    );
    let first = src_steps[0].1;
    let last = dst_steps.last().unwrap().1;
    assert!(
        started <= first && first <= last && last <= running,
        "steps outside the migration: {started} {src_steps:?} {dst_steps:?} {running}"
    );
    let traces: Vec<_> = l
        .records()
        .into_iter()
        .filter_map(|r| match r {
            Record::QemuTrace(t) => Some(t),
            _ => None,
        })
        .collect();
    assert!(
        traces.iter().any(|t| t.role == Role::Src
            && t.event == "vmstate_downtime_save"
            && t.fields.get("idstr").and_then(|v| v.as_str()) == Some("ram")
            && t.fields.get("downtime").is_some_and(|v| v.is_u64())),
        "{traces:?}"
    );
    assert!(
        traces
            .iter()
            .any(|t| t.role == Role::Dst && t.event == "vmstate_downtime_load"),
        "{traces:?}"
    );
    // Trace lines are records, not noise in gp-launch's stderr.
    assert!(!l.stderr().contains("vmstate_downtime"), "{}", l.report());
    quit_both(&mut l, s, d);
}

/// QEMU 7.2 has no downtime tracepoints: the header says so, and nothing is turned on; with
/// --no-trace the header says that instead.
#[test]
fn trace_note_says_why_tracing_is_off() {
    let _lock = setup();
    let old = gp_qemu::paths::cache_dir().join("qemu-7.2/bin/qemu-system-x86_64");
    let mut cases = vec![(vec!["--no-trace".to_string()], "--no-trace")];
    if old.is_file() {
        cases.push((
            vec!["--binary".to_string(), old.to_string_lossy().into_owned()],
            "8.2",
        ));
    } else {
        eprintln!("skipping the QEMU 7.2 case: no {}", old.display());
    }
    for (extra, needle) in cases {
        let mut all: Vec<&str> = BASE.to_vec();
        all.extend(extra.iter().map(String::as_str));
        let mut l = Launch::start(&all);
        let (src, _) = wait_up(&mut l);
        let header = header_of(&l);
        assert!(header.trace_events.is_empty(), "{header:?}");
        let note = header.trace_note.clone().unwrap_or_default();
        assert!(note.contains(needle), "{note}");
        assert!(!src.argv.iter().any(|a| a == "-trace"), "{:?}", src.argv);
        terminate(&mut l);
    }
}

/// The default placement: with a host CPU per vCPU and one more for each VM among the CPUs
/// gp-launch may use, the source and the destination QEMU run on disjoint CPUs, which the header
/// records and explains; `--no-pin` and a guest too large for disjoint sets (on a 2-CPU host,
/// the default 1-vCPU guest too) leave both unpinned, saying why.
#[test]
fn qemus_are_pinned_to_disjoint_cpus_by_default_where_they_fit() {
    let _lock = setup();
    let allowed = gp_qemu::bind::allowed_cpus().unwrap();
    let list = |v: &[u32]| gp_qemu::bind::format_list(v);
    // 1 vCPU each: two host CPUs per VM (its vCPU, QEMU's own threads).
    let fits = allowed.len() >= 4;
    let too_many = (allowed.len() as u32 / 2).to_string();
    type Case<'a> = (Vec<&'a str>, Option<(Vec<u32>, Vec<u32>)>, &'a str);
    let mut cases: Vec<Case> = vec![
        (vec!["--no-pin"], None, "not pinned: --no-pin"),
        (
            vec!["--cpus", &too_many],
            None,
            "host CPUs for disjoint sets",
        ),
    ];
    cases.push(if fits {
        (
            vec![],
            Some((allowed[..2].to_vec(), allowed[2..4].to_vec())),
            "pinned by gp-launch",
        )
    } else {
        (vec![], None, "host CPUs for disjoint sets")
    });
    for (extra, expect, note) in cases {
        let mut all: Vec<&str> = BASE.to_vec();
        all.extend(extra.iter().copied());
        let mut l = Launch::start(&all);
        let (src, dst) = wait_up(&mut l);
        let h = header_of(&l);
        let got_note = h.bind_note.clone().unwrap_or_default();
        assert!(got_note.contains(note), "{extra:?}: {got_note}");
        match &expect {
            Some((s, d)) => {
                assert_eq!((&h.hardware.src_cpu_bind, &h.hardware.dst_cpu_bind), (s, d));
                assert_eq!(allowed_cpus(src.pid), list(s));
                assert_eq!(allowed_cpus(dst.pid), list(d));
            }
            None => {
                assert!(h.hardware.src_cpu_bind.is_empty() && h.hardware.dst_cpu_bind.is_empty());
                assert_eq!(allowed_cpus(src.pid), list(&allowed));
                assert_eq!(allowed_cpus(dst.pid), list(&allowed));
            }
        }
        terminate(&mut l);
    }
    // The user's binding stands as given, and no note claims otherwise.
    let mut l = Launch::start(&args(&["--src-cpu-bind", "0"]));
    let (src, dst) = wait_up(&mut l);
    let h = header_of(&l);
    assert_eq!(h.bind_note, None);
    assert_eq!(allowed_cpus(src.pid), "0");
    assert_eq!(allowed_cpus(dst.pid), list(&allowed));
    terminate(&mut l);
}
