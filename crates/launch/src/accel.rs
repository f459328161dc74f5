//! Choosing the accelerator: KVM where it works, TCG otherwise.
//!
//! `/dev/kvm` opening is not enough: on some hosts (nested virtualization) KVM guests die with
//! "KVM internal error ... emulation failure" (QEMU then pauses the VM and does not exit), hang
//! silently, or QEMU aborts on an MSR it cannot set. So KVM is probed by booting the real guest
//! kernel, with the real CPU model, to the end of its initialisation (it then panics for want of
//! a root filesystem, and `-no-reboot` ends QEMU). The probe watches QEMU's exit, its run state
//! over QMP and the console, against a deadline; it never hangs.

use std::path::Path;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, unbounded, Receiver};
use gp_qemu::process::{self, Hooks, Spec};
use gp_qemu::qmp::Qmp;

use crate::qemu_args::{Accel, MACHINE};

/// How long a working KVM may take to boot the kernel to its root-mount panic. A working KVM
/// needs well under a second; the bound only matters where KVM hangs silently.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(15);

/// Lines that show the kernel finished initialising (the probe has no initrd and no root).
const PROBE_DONE: &[&str] = &[
    "Kernel panic",
    "Unable to mount root",
    "No working init",
    "Run /init",
];

/// Why KVM cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KvmUnusable(pub String);

/// Checks that /dev/kvm can be opened read-write.
pub fn kvm_device_usable() -> Result<(), KvmUnusable> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| KvmUnusable(format!("/dev/kvm cannot be opened: {e}")))
}

/// Outcome of waiting on the probe.
enum ProbeEnd {
    Works,
    Fails(String),
    Interrupted(i32),
}

/// Boots `kernel` under KVM with `cpus` vCPUs and `-cpu host` until the kernel finishes
/// initialising. `Err(Ok(reason))` when KVM does not work, `Err(Err(signal))` when a signal
/// arrived meanwhile. `sock_dir` is a private directory for the probe's QMP socket.
pub fn probe_kvm(
    binary: &Path,
    kernel: &Path,
    cpus: u32,
    sock_dir: &Path,
    signals: &Receiver<i32>,
    probe_deadline: Duration,
    verbose: bool,
) -> Result<Duration, Result<KvmUnusable, i32>> {
    let start = Instant::now();
    let qmp_path = sock_dir.join("kvm-probe-qmp.sock");
    let mut spec = Spec::new("qemu-kvm-probe", binary.as_os_str());
    spec.args([
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-machine",
        MACHINE,
        "-accel",
        "kvm",
        "-cpu",
        Accel::Kvm.cpu_model(),
    ]);
    spec.args([
        "-smp".to_string(),
        cpus.to_string(),
        "-m".into(),
        "256M".into(),
    ]);
    spec.args(["-kernel".into(), kernel.as_os_str().to_owned()]);
    spec.args([
        "-append",
        "console=ttyS0 panic=-1 edd=off pci=noearly cryptomgr.notests 8250.nr_uarts=1 root=/dev/gp-probe-none",
        "-chardev",
        "stdio,id=console,signal=off",
        "-serial",
        "chardev:console",
    ]);
    spec.args([
        "-qmp".to_string(),
        format!("unix:{},server=on,wait=off", qmp_path.display()),
    ]);
    if verbose {
        say!("gp-launch: probing KVM: {}", spec.argv().join(" "));
    }

    let (line_tx, line_rx) = unbounded::<String>();
    let (exit_tx, exit_rx) = unbounded();
    let hooks = Hooks {
        on_stdout_line: Box::new(move |l| {
            let _ = line_tx.send(l.text);
        }),
        on_stderr_line: None,
        on_exit: Some(Box::new(move |e| {
            let _ = exit_tx.send(e);
        })),
    };
    let child = process::spawn(&spec, hooks).map_err(|e| {
        Ok(KvmUnusable(format!(
            "the KVM probe could not start QEMU: {}",
            gp_stage::error_chain(&e)
        )))
    })?;
    let deadline = start + probe_deadline;
    let mut qmp: Option<Qmp> = None;
    let mut last_line = String::new();
    let end = loop {
        // Poll the run state: an emulation failure pauses the VM in `internal-error` without
        // any console output or exit.
        if qmp.is_none() && !child.has_exited() {
            qmp = Qmp::connect_while(
                &qmp_path,
                Instant::now() + Duration::from_millis(200),
                Duration::from_secs(5),
                || Ok(()),
            )
            .ok();
        }
        if let Some(q) = qmp.as_mut() {
            match q.query_status() {
                Ok(s) if s.status == qapi::qmp::RunState::internal_error => {
                    break ProbeEnd::Fails(
                        "KVM internal error: the probe guest stopped in state internal-error"
                            .into(),
                    )
                }
                Ok(_) => {}
                Err(_) => qmp = None,
            }
        }
        let now = Instant::now();
        if now >= deadline {
            break ProbeEnd::Fails(format!(
                "a probe guest made no progress under KVM within {:.0} s (last console line: {:?})",
                probe_deadline.as_secs_f64(),
                last_line
            ));
        }
        let tick = (deadline - now).min(Duration::from_millis(100));
        select! {
            recv(line_rx) -> line => if let Ok(line) = line {
                if PROBE_DONE.iter().any(|m| line.contains(m)) {
                    break ProbeEnd::Works;
                }
                if !line.trim().is_empty() {
                    last_line = line;
                }
            },
            recv(exit_rx) -> exit => if let Ok(exit) = exit {
                // The lines came before the exit: a panic line means it worked.
                if line_rx.try_iter().any(|l| PROBE_DONE.iter().any(|m| l.contains(m))) {
                    break ProbeEnd::Works;
                }
                let tail = child.stderr_tail();
                let why = tail
                    .iter()
                    .rev()
                    .find(|l| l.contains("KVM internal error") || l.contains("error") || l.contains("Assertion"))
                    .or(tail.last())
                    .cloned()
                    .unwrap_or_default();
                break ProbeEnd::Fails(format!("QEMU under KVM exited ({exit}) during a probe boot: {why}"));
            },
            recv(signals) -> sig => if let Ok(sig) = sig {
                break ProbeEnd::Interrupted(sig);
            },
            default(tick) => {},
        }
    };
    // The probe's job is done either way: end it now.
    child.kill_and_reap();
    let _ = std::fs::remove_file(&qmp_path);
    match end {
        ProbeEnd::Works => Ok(start.elapsed()),
        ProbeEnd::Fails(why) => {
            let stderr: Vec<String> = child
                .stderr_tail()
                .into_iter()
                .filter(|l| l.contains("KVM internal error") || l.contains("emulation failure"))
                .collect();
            let why = match stderr.first() {
                Some(l) if !why.contains(l.as_str()) => format!("{why}; QEMU said: {l}"),
                _ => why,
            };
            Err(Ok(KvmUnusable(why)))
        }
        ProbeEnd::Interrupted(sig) => Err(Err(sig)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gp_qemu::runtime::RuntimeDir;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in for QEMU that ignores its arguments and runs `script`.
    fn fake_qemu(dir: &Path, script: &str) -> std::path::PathBuf {
        let path = dir.join("fake-qemu");
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn probe(script: &str, deadline: Duration) -> Result<Duration, Result<KvmUnusable, i32>> {
        let dir = RuntimeDir::new("gp-probe-test").unwrap();
        let bin = fake_qemu(dir.path(), script);
        let (_tx, rx) = unbounded();
        probe_kvm(&bin, Path::new("/k"), 1, dir.path(), &rx, deadline, false)
    }

    #[test]
    fn a_kernel_that_reaches_its_root_mount_means_kvm_works() {
        let r = probe("echo 'Linux version 6.1'; echo 'Kernel panic - not syncing: VFS: Unable to mount root fs'; exec sleep 100", Duration::from_secs(30));
        assert!(r.is_ok(), "{r:?}");
    }

    #[test]
    fn qemu_dying_is_reported_with_its_words() {
        let r = probe(
            "echo 'KVM internal error. Suberror: 1' >&2; echo 'emulation failure' >&2; exit 1",
            Duration::from_secs(30),
        );
        let why = r.unwrap_err().unwrap().0;
        assert!(
            why.contains("exit status 1") && why.contains("KVM internal error"),
            "{why}"
        );
    }

    #[test]
    fn a_silent_guest_fails_at_the_deadline_instead_of_hanging() {
        let start = Instant::now();
        let r = probe(
            "echo 'Probing EDD (edd=off to disable)... ok'; exec sleep 100",
            Duration::from_millis(500),
        );
        let why = r.unwrap_err().unwrap().0;
        assert!(
            why.contains("no progress") && why.contains("Probing EDD"),
            "{why}"
        );
        assert!(start.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn a_signal_interrupts_the_probe() {
        let dir = RuntimeDir::new("gp-probe-test").unwrap();
        let bin = fake_qemu(dir.path(), "exec sleep 100");
        let (tx, rx) = unbounded();
        tx.send(libc::SIGINT).unwrap();
        let r = probe_kvm(
            &bin,
            Path::new("/k"),
            1,
            dir.path(),
            &rx,
            Duration::from_secs(30),
            false,
        );
        assert_eq!(r.unwrap_err().unwrap_err(), libc::SIGINT);
    }
}
