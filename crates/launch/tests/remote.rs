//! `--dst-host` end to end, with real ssh: each test starts its own sshd (generated host and
//! client keys, its own config) in a network namespace joined to this one by a veth pair
//! ([`gp_testkit::SshHost`]), so the migration crosses a real link; where namespaces are not
//! permitted, on loopback (said on stderr). The sshd gives its sessions a clock skewed by [`SKEW_S`] seconds
//! (`GUESTPERF_TEST_CLOCK_SKEW_S`, read only by stage binaries built with the `test-clock-skew`
//! feature, which [`build_stages`] builds), so the "remote" host has a clock of its own and the
//! offset measurement and correction are tested for real.
//!
//! Needs root (sshd, `ip netns`), OpenSSH (scripts/setup-host.sh), QEMU, the guest kernel and the
//! stress initrd. VM tests take the machine-wide VM test lock.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{marker, processes_with};
use gp_qemu::runtime::RuntimeDir;
use gp_records::report::Report;
use gp_records::{Outcome, Record, Role};
use gp_testkit::{
    initrd, pid_alive, require_qemu, vm_test_lock, wait_until, Stages, SMALL_TCG_GUEST,
};
use gp_testkit::{SshHost, SshHostOptions, HOST};

/// The remote host's clock runs this far ahead of ours.
const SKEW_S: f64 = 1000.0;
/// Longest a whole pipeline may run.
const DEADLINE: Duration = Duration::from_secs(400);

fn bin(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gp-launch")).with_file_name(name)
}

/// Builds the stages (same target directory) once per test binary: gp-launch and gp-sample
/// with the `test-clock-skew` feature, so that the remote side's clock can be skewed (this
/// replaces the `gp-launch` that `cargo test` built, at the same path, with one that differs
/// only in that).
fn build_stages() {
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "-p",
                "gp-launch",
                "-p",
                "gp-sample",
                "-p",
                "gp-migrate",
                "-p",
                "gp-collect",
                "--features",
                "gp-launch/test-clock-skew,gp-sample/test-clock-skew",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build of the other stages failed");
    });
}

/// The test host: the stages of this build first on its PATH, its clock skewed by [`SKEW_S`].
fn start_host() -> SshHost {
    let stage_dir = bin("gp-launch").parent().unwrap().to_path_buf();
    SshHost::start(&SshHostOptions {
        alias: HOST.to_string(),
        path: vec![stage_dir],
        env: vec![("GUESTPERF_TEST_CLOCK_SKEW_S".into(), format!("{SKEW_S}"))],
    })
}

/// The test host for a VM test: QEMU required, this build's stages built with the skewed clock.
fn vm_host() -> SshHost {
    require_qemu();
    build_stages();
    start_host()
}

/// Fails the test unless every ssh client to `host` ends within 10 s.
fn assert_no_ssh_clients_left(host: &SshHost) {
    assert!(
        wait_until(Duration::from_secs(10), || host.ssh_clients().is_empty()),
        "ssh clients left running: {:?}",
        host.ssh_clients()
    );
}

/// `gp-launch --dst-host | gp-sample | gp-migrate | tee | gp-collect`, one process group.
struct Pipeline {
    stages: Stages,
    _dir: RuntimeDir,
    stream: PathBuf,
    report: PathBuf,
}

impl Pipeline {
    fn start(launch_args: &[String], migrate_args: &[&str]) -> Pipeline {
        let dir = RuntimeDir::new("gp-remote-run").unwrap();
        let stream = dir.path().join("stream.ndjson");
        let report = dir.path().join("report.json");
        let mut stages = Stages::new(dir.path(), DEADLINE);
        stages
            .pipe(
                "gp-launch",
                Command::new(bin("gp-launch")).args(launch_args),
            )
            .pipe("gp-sample", &mut Command::new(bin("gp-sample")))
            .pipe(
                "gp-migrate",
                Command::new(bin("gp-migrate")).args(migrate_args),
            )
            .pipe("tee", Command::new("tee").arg(&stream))
            .last(
                "gp-collect",
                Command::new(bin("gp-collect")).arg("--output").arg(&report),
            );
        Pipeline {
            stages,
            _dir: dir,
            stream,
            report,
        }
    }

    /// The records written so far.
    fn records(&self) -> Vec<Record> {
        let text = std::fs::read_to_string(&self.stream).unwrap_or_default();
        text.lines()
            .filter(|l| l.ends_with('}'))
            .filter_map(|l| gp_records::ndjson::parse_line(l).ok().flatten())
            .collect()
    }

    /// Waits until a record satisfies `f`, failing after the deadline.
    fn await_record(&self, what: &str, f: impl Fn(&Record) -> bool) -> Record {
        let mut found = None;
        wait_until(DEADLINE.saturating_sub(self.stages.elapsed()), || {
            found = self.records().into_iter().find(&f);
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no {what} within {DEADLINE:?}\n{}", self.stages.stderr()))
    }

    fn report(&self) -> Report {
        let text = std::fs::read_to_string(&self.report)
            .unwrap_or_else(|e| panic!("no report: {e}\n{}", self.stages.stderr()));
        serde_json::from_str(&text).unwrap()
    }
}

/// A copy of the guest kernel at a path no shell would take unquoted.
fn awkward_kernel(dir: &Path) -> PathBuf {
    let kernel = gp_qemu::kernel::find_kernel(None).unwrap();
    let sub = dir.join("it's a \"kernel\" $(touch gp-injected) dir");
    std::fs::create_dir(&sub).unwrap();
    let path = sub.join("vmlinuz; echo pwned");
    std::fs::copy(&kernel, &path).unwrap();
    path
}

fn launch_args(host: &SshHost, alias: &str, kernel: &Path, marker: &str) -> Vec<String> {
    ["--dst-host", alias, "--ssh-config", host.config()]
        .iter()
        .chain(&["--transport", "tcp"])
        .chain(SMALL_TCG_GUEST)
        .map(|s| s.to_string())
        .chain([
            "--kernel".to_string(),
            kernel.display().to_string(),
            "--initrd".to_string(),
            initrd().display().to_string(),
            format!("--kernel-arg={marker}"),
        ])
        .collect()
}

/// The dst QEMU's runtime directory on the remote host, from its command line.
fn remote_dir(argv: &[String]) -> PathBuf {
    let sock = argv
        .iter()
        .find_map(|a| {
            a.strip_prefix("unix:")
                .filter(|s| s.contains("dst-qmp.sock"))
        })
        .expect("a -qmp unix: socket in the dst argv");
    let sock = sock.split(",server").next().unwrap();
    Path::new(sock).parent().unwrap().to_path_buf()
}

/// gp-launch to `HOST` alone, its records on a pipe, its stderr discarded.
fn spawn_launch(host: &SshHost, kernel: &Path, marker: &str) -> std::process::Child {
    gp_testkit::end_with_test(&mut Command::new(bin("gp-launch")))
        .args(launch_args(host, HOST, kernel, marker))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The `vm_exit` record of the `role` VM, if any.
fn vm_exit_of(records: &[Record], role: Role) -> Option<gp_records::VmExit> {
    records.iter().find_map(|r| match r {
        Record::VmExit(e) if e.role == role => Some(e.clone()),
        _ => None,
    })
}

fn vm_of(records: &[Record], role: Role) -> gp_records::Vm {
    records
        .iter()
        .find_map(|r| match r {
            Record::Vm(v) if v.role == role => Some(v.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {role} vm record"))
}

#[test]
fn postcopy_to_a_remote_destination() {
    let _lock = vm_test_lock();
    let host = vm_host();
    assert_eq!(
        host.ssh(HOST, "command -v gp-launch").trim(),
        bin("gp-launch").display().to_string(),
        "the test host must run this build's stages"
    );
    let kernel = awkward_kernel(host.dir.path());
    let marker = marker();
    let mut p = Pipeline::start(
        &launch_args(&host, HOST, &kernel, &marker),
        &["--post-copy", "--post-copy-iters", "1", "--sleep", "1"],
    );
    // While the destination runs: it is in the other network namespace.
    let Record::Vm(dst) = p.await_record(
        "dst vm record",
        |r| matches!(r, Record::Vm(v) if v.role == Role::Dst),
    ) else {
        unreachable!()
    };
    if let Some(ns) = &host.netns {
        let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
        let theirs = std::fs::read_link(format!("/proc/{}/ns/net", dst.pid));
        if let Ok(theirs) = theirs {
            assert_ne!(ours, theirs, "the dst QEMU must run in {}", ns.name);
        }
    }
    let log = p.stages.wait_success();
    let records = p.records();
    let src = vm_of(&records, Role::Src);
    let dst = vm_of(&records, Role::Dst);

    // The connection, the address and the clock.
    let offsets: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            Record::ClockOffset(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(offsets.len(), 1, "{offsets:?}");
    let off = &offsets[0];
    assert_eq!(off.host, HOST);
    assert!(off.rtt_s > 0.0 && off.rtt_s < 0.5, "{off:?}");
    assert!(
        (off.offset_s - SKEW_S).abs() < 0.05 + off.rtt_s,
        "the measured offset must be the host's skew: {off:?}"
    );
    eprintln!(
        "clock offset {:.6} s (skew {SKEW_S} s), rtt {:.3} ms",
        off.offset_s,
        off.rtt_s * 1e3
    );
    assert_eq!(dst.host.as_deref(), Some(HOST));
    assert_eq!(src.host, None);
    let uri = dst.migrate_uri.clone().unwrap();
    assert!(
        uri.starts_with(&format!("tcp:{}:", host.addr)),
        "{uri} must be the address ssh reached"
    );
    // The awkward kernel path reached QEMU there as one argument, and nothing ran.
    assert!(
        dst.argv.iter().any(|a| a == &kernel.display().to_string()),
        "{:?}",
        dst.argv
    );
    assert!(!host.dir.path().join("gp-injected").exists());
    assert!(!Path::new("gp-injected").exists());

    // The migration.
    let result = records
        .iter()
        .find_map(|r| match r {
            Record::Result(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no result\n{log}"));
    assert_eq!(result.outcome, Outcome::Completed, "{result:?}\n{log}");
    eprintln!(
        "post-copy to {} over {uri}: {} ms total, {} ms downtime",
        host.addr,
        result.total_time_ms.unwrap_or(0),
        result.downtime_ms.unwrap_or(0)
    );

    // QEMU's downtime tracepoints on both sides; the destination's come through ssh and the
    // remote helper, whole and in order. (The test's clock skew reaches the stage binaries
    // only: QEMU there stamps its lines with the real clock, which is this host's.)
    let traces: Vec<&gp_records::QemuTrace> = records
        .iter()
        .filter_map(|r| match r {
            Record::QemuTrace(t) => Some(t),
            _ => None,
        })
        .collect();
    let launch = records
        .iter()
        .find_map(|r| match r {
            Record::Launch(h) => Some(h.clone()),
            _ => None,
        })
        .unwrap();
    assert!(
        launch
            .trace_events
            .iter()
            .any(|e| e == "vmstate_downtime_checkpoint"),
        "{launch:?}"
    );
    for role in [Role::Src, Role::Dst] {
        assert!(
            traces.iter().any(|t| t.role == role),
            "no {role} qemu_trace\n{log}"
        );
    }
    // The switchover's steps on both sides (whether post-copy or, when pre-copy converged
    // first, pre-copy's).
    for role in [Role::Src, Role::Dst] {
        assert!(
            traces
                .iter()
                .any(|t| t.role == role && t.event == "vmstate_downtime_checkpoint"),
            "no {role} checkpoint: {traces:?}"
        );
    }
    for t in traces.iter().filter(|t| t.role == Role::Dst) {
        assert!(
            (t.qemu_time_s - t.time_s).abs() < 1.0,
            "a dst trace stamped {} arrived at {}: {t:?}",
            t.qemu_time_s,
            t.time_s
        );
    }

    // Destination samples: tagged, on this host's clock, all before the dst vm_exit.
    let dst_exit_at = records
        .iter()
        .position(|r| matches!(r, Record::VmExit(e) if e.role == Role::Dst))
        .unwrap_or_else(|| panic!("no dst vm_exit\n{log}"));
    let Record::VmExit(dst_exit) = &records[dst_exit_at] else {
        unreachable!()
    };
    assert_eq!(dst_exit.pid, dst.pid);
    assert_eq!(dst_exit.status, 0, "{dst_exit:?}");
    assert!(
        dst_exit.time_s > dst.time_s && dst_exit.time_s < dst.time_s + DEADLINE.as_secs_f64(),
        "the dst exit time must be on this host's clock: {dst_exit:?}"
    );
    let samples: Vec<(usize, &gp_records::CpuSample)> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Record::CpuSample(s) if s.role == Role::Dst => Some((i, s)),
            _ => None,
        })
        .collect();
    assert!(samples.len() >= 5, "too few dst samples\n{log}");
    for (i, s) in &samples {
        assert_eq!(s.host.as_deref(), Some(HOST));
        assert_eq!(s.pid, dst.pid);
        assert!(*i < dst_exit_at, "a dst sample after the dst vm_exit");
        assert!(
            s.time_s >= dst.spawned_s - 1.0 && s.time_s <= dst_exit.time_s + 1.0,
            "a dst sample at {} is outside the dst VM's life ({} to {}) on this host's clock",
            s.time_s,
            dst.spawned_s,
            dst_exit.time_s
        );
    }
    // The destination's vCPU ran the workload after the switch, and the samples show it.
    let vcpu_ms = |s: &gp_records::CpuSample| {
        s.threads
            .iter()
            .filter(|t| t.class == gp_records::sample::ThreadClass::Vcpu)
            .map(|t| t.cpu.user_ms + t.cpu.system_ms)
            .sum::<f64>()
    };
    let (first, last) = (samples[0].1, samples[samples.len() - 1].1);
    assert!(
        vcpu_ms(last) > vcpu_ms(first) + 100.0,
        "the dst vCPU ran {} ms over the samples\n{log}",
        vcpu_ms(last) - vcpu_ms(first)
    );

    // The report counts the destination's CPU during the migration: only on one time base.
    let report = p.report();
    assert_eq!(report.dst_host, HOST);
    let cpu = report.summary.unwrap().host_cpu;
    let dst_cpu = cpu.vms.iter().find(|v| v.role == Role::Dst).unwrap();
    assert_eq!(dst_cpu.host.as_deref(), Some(HOST));
    assert!(
        dst_cpu.during_migration_s.unwrap_or(0.0) > 0.0,
        "{dst_cpu:?}"
    );

    // Nothing left: QEMUs on both sides, runtime directories, ssh clients.
    assert!(wait_until(Duration::from_secs(30), || !pid_alive(src.pid)
        && !pid_alive(dst.pid)));
    assert!(
        processes_with(&marker).is_empty(),
        "a QEMU was left running"
    );
    let local_dir = Path::new(&dst.qmp_socket).parent().unwrap();
    assert!(!local_dir.exists(), "{} left behind", local_dir.display());
    let remote_dir = remote_dir(&dst.argv);
    assert!(
        wait_until(Duration::from_secs(10), || !remote_dir.exists()),
        "{} left behind",
        remote_dir.display()
    );
    assert_no_ssh_clients_left(&host);
}

#[test]
fn killing_the_connection_mid_migration_leaves_nothing() {
    let _lock = vm_test_lock();
    let host = vm_host();
    let kernel = gp_qemu::kernel::find_kernel(None).unwrap();
    let marker = marker();
    // Post-copy held at 4 MB/s: the destination is mid-migration for a minute.
    let mut p = Pipeline::start(
        &launch_args(&host, HOST, &kernel, &marker),
        &[
            "--post-copy",
            "--post-copy-iters",
            "1",
            "--parameter",
            "max-postcopy-bandwidth=4000000",
            "--sleep",
            "1",
        ],
    );
    p.await_record(
        "post-copy switch",
        |r| matches!(r, Record::Action(a) if a.action == "postcopy"),
    );
    let records = p.records();
    let (src, dst) = (vm_of(&records, Role::Src), vm_of(&records, Role::Dst));
    let remote_dir = remote_dir(&dst.argv);
    assert!(remote_dir.exists(), "{}", remote_dir.display());
    assert!(pid_alive(dst.pid));
    // The connection: the ssh master (-M) gp-launch holds to the host.
    let master: Vec<u32> = host
        .ssh_clients()
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == b"-M"))
        })
        .collect();
    assert_eq!(master.len(), 1, "one ssh master: {master:?}");
    let cut = Instant::now();
    // SAFETY: SIGKILL to the ssh client gp-launch started for this test.
    unsafe { libc::kill(master[0] as i32, libc::SIGKILL) };

    let statuses = p.stages.wait();
    let log = p.stages.stderr();
    eprintln!(
        "after the cut, the pipeline ended in {:.2} s",
        cut.elapsed().as_secs_f64()
    );
    let launch_status = statuses.iter().find(|(n, _)| *n == "gp-launch").unwrap().1;
    assert_eq!(launch_status.code(), Some(1), "{log}");
    let records = p.records();
    let lost = records
        .iter()
        .find_map(|r| match r {
            Record::StageError(e) if e.stage == "gp-launch" => Some(e.message.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no gp-launch stage_error\n{log}"));
    assert!(
        lost.contains(&format!("ssh connection to {HOST} was lost")),
        "{lost}"
    );
    let dst_exit =
        vm_exit_of(&records, Role::Dst).unwrap_or_else(|| panic!("no dst vm_exit\n{log}"));
    assert!(
        dst_exit.reason.as_deref().unwrap_or("").contains("lost"),
        "{dst_exit:?}"
    );
    assert!(
        records.iter().any(|r| matches!(r, Record::Result(_))),
        "gp-migrate says how the migration ended\n{log}"
    );

    // Nothing on either side.
    assert!(
        wait_until(Duration::from_secs(30), || !pid_alive(dst.pid)),
        "the remote QEMU outlived the connection"
    );
    assert!(!pid_alive(src.pid), "the source QEMU outlived gp-launch");
    // The remote helper (its command line carries QEMU's, marker included) ends once its QEMU
    // has: give it the time the other checks get.
    assert!(
        wait_until(Duration::from_secs(10), || processes_with(&marker)
            .is_empty()),
        "left running: {:?}",
        processes_with(&marker)
            .iter()
            .map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default())
            .collect::<Vec<_>>()
    );
    assert!(
        wait_until(Duration::from_secs(10), || !remote_dir.exists()),
        "{} left behind",
        remote_dir.display()
    );
    let local_dir = Path::new(&dst.qmp_socket).parent().unwrap();
    assert!(!local_dir.exists(), "{} left behind", local_dir.display());
    assert_no_ssh_clients_left(&host);
}

/// Runs gp-launch expecting it to fail before any VM starts; returns (stderr, seconds taken).
fn refused(args: &[String]) -> (String, f64) {
    let started = Instant::now();
    let out = gp_testkit::end_with_test(&mut Command::new(bin("gp-launch")))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let took = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let last = stdout.lines().last().unwrap_or("");
    let last = gp_records::ndjson::parse_line(last).ok().flatten();
    assert!(
        matches!(last, Some(Record::StageError(_))),
        "a stage_error record ends the output:\n{stdout}"
    );
    assert!(
        !stdout.contains("\"type\":\"vm\""),
        "no VM may start:\n{stdout}"
    );
    (stderr, took)
}

#[test]
fn unreachable_hosts_and_refused_logins_fail_fast_and_clearly() {
    let host = start_host();
    let kernel = gp_qemu::kernel::find_kernel(None).unwrap();
    let marker = marker();
    for (alias, expect) in [
        ("gp-stranger", "authentication refused"),
        ("gp-closed", "connection refused"),
        ("gp-test.invalid", "cannot resolve the host name"),
        ("gp-nobin", "lacks the stage binaries: gp-launch, gp-sample"),
    ] {
        let (stderr, took) = refused(&launch_args(&host, alias, &kernel, &marker));
        assert!(stderr.contains(expect), "{alias}: {stderr}");
        assert!(took < 20.0, "{alias}: took {took:.1} s");
        eprintln!("{alias}: refused in {took:.2} s: {}", stderr.trim());
    }
    assert!(processes_with(&marker).is_empty(), "a QEMU was started");
    assert_no_ssh_clients_left(&host);
}

#[test]
fn gp_launch_killed_outright_takes_the_remote_qemu_with_it() {
    let _lock = vm_test_lock();
    let host = vm_host();
    let kernel = gp_qemu::kernel::find_kernel(None).unwrap();
    let marker = marker();
    let mut launch = spawn_launch(&host, &kernel, &marker);
    let stdout = BufReader::new(launch.stdout.take().unwrap());
    let mut dst = None;
    for line in stdout.lines().map_while(Result::ok) {
        if let Ok(Some(Record::Vm(v))) = gp_records::ndjson::parse_line(&line) {
            if v.role == Role::Dst {
                dst = Some(v);
                break;
            }
        }
    }
    let dst = dst.expect("a dst vm record");
    assert!(pid_alive(dst.pid));
    let remote_dir = remote_dir(&dst.argv);
    launch.kill().unwrap(); // SIGKILL: no cleanup code of gp-launch runs
    launch.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || !pid_alive(dst.pid)),
        "the remote QEMU outlived gp-launch"
    );
    assert!(
        wait_until(Duration::from_secs(30), || processes_with(&marker)
            .is_empty()),
        "a QEMU was left running"
    );
    assert!(
        wait_until(Duration::from_secs(10), || !remote_dir.exists()),
        "{} left behind on the remote host",
        remote_dir.display()
    );
    assert_no_ssh_clients_left(&host);
    // gp-launch could not remove its own directory; only the forwarded sockets are in it.
    if let Some(dir) = Path::new(&dst.qmp_socket).parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn sigint_quits_the_remote_qemu_and_closes_everything() {
    let _lock = vm_test_lock();
    let host = vm_host();
    let kernel = gp_qemu::kernel::find_kernel(None).unwrap();
    let marker = marker();
    let mut launch = spawn_launch(&host, &kernel, &marker);
    let mut stdout = BufReader::new(launch.stdout.take().unwrap()).lines();
    let dst = loop {
        let line = stdout.next().expect("gp-launch ended early").unwrap();
        if let Ok(Some(Record::Vm(v))) = gp_records::ndjson::parse_line(&line) {
            if v.role == Role::Dst {
                break v;
            }
        }
    };
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(launch.id() as i32, libc::SIGINT) };
    let rest: Vec<Record> = stdout
        .map_while(Result::ok)
        .filter_map(|l| gp_records::ndjson::parse_line(&l).ok().flatten())
        .collect();
    let status = launch.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGINT), "{rest:?}");
    let dst_exit =
        vm_exit_of(&rest, Role::Dst).unwrap_or_else(|| panic!("no dst vm_exit: {rest:?}"));
    assert_eq!(dst_exit.pid, dst.pid);
    assert!(
        dst_exit
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("quit by gp-launch"),
        "{dst_exit:?}"
    );
    assert!(!pid_alive(dst.pid), "the remote QEMU outlived gp-launch");
    assert!(
        processes_with(&marker).is_empty(),
        "a QEMU was left running"
    );
    assert!(!remote_dir(&dst.argv).exists(), "remote directory left");
    let local_dir = Path::new(&dst.qmp_socket).parent().unwrap();
    assert!(!local_dir.exists(), "{} left behind", local_dir.display());
    assert_no_ssh_clients_left(&host);
}
