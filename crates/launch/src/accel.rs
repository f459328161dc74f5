//! Choosing the accelerator: KVM where it works, TCG otherwise.
//!
//! `/dev/kvm` opening is not enough: on some hosts (nested virtualization) KVM guests die with
//! "KVM internal error ... emulation failure" (QEMU then pauses the VM and does not exit), hang
//! silently, or QEMU aborts on an MSR it cannot set. So KVM is probed by booting the real guest
//! kernel, with the real CPU model, to the end of its initialisation (it then panics for want of
//! a root filesystem, and `-no-reboot` ends QEMU). The probe watches QEMU's exit, its run state
//! over QMP and the console, against a deadline; it never hangs.
//!
//! The verdict is kept ([`VerdictCache`]) per host boot (`/proc/sys/kernel/random/boot_id`),
//! QEMU binary and kernel (path, size, modification time), in the tools' cache directory: on a
//! host where KVM opens but guests hang, only the first run of a boot waits for the probe's
//! deadline. `GUESTPERF_REPROBE_KVM=1` probes again (and keeps the new verdict).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossbeam_channel::{select, unbounded, Receiver};
use gp_qemu::process::{self, Child, Exit, Hooks, Spec};
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

/// Set (to anything but empty or `0`) to probe KVM again instead of using this boot's verdict.
pub const REPROBE_ENV: &str = "GUESTPERF_REPROBE_KVM";

/// Whether [`REPROBE_ENV`] asks for a new probe.
pub fn reprobe_asked() -> bool {
    std::env::var_os(REPROBE_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// What a cached verdict is valid for: this boot, this QEMU binary, this kernel.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VerdictKey {
    pub boot_id: String,
    pub binary: FileId,
    pub kernel: FileId,
}

/// A file as it is now: a rebuilt QEMU or a new kernel at the same path is another file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct FileId {
    pub path: PathBuf,
    pub bytes: u64,
    pub modified_ns: i128,
}

impl FileId {
    fn of(path: &Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileId {
            path: std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
            bytes: m.len(),
            modified_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        })
    }
}

impl VerdictKey {
    /// The key for `binary` and `kernel` in this boot; `None` when the boot id or a file cannot
    /// be read (nothing is cached then).
    pub fn new(binary: &Path, kernel: &Path) -> Option<VerdictKey> {
        Some(VerdictKey {
            boot_id: procfs::sys::kernel::random::boot_id()
                .ok()?
                .trim()
                .to_string(),
            binary: FileId::of(binary)?,
            kernel: FileId::of(kernel)?,
        })
    }

    /// The cache file's name: the boot id, then a hash of the rest (a hash collision only
    /// costs a probe: the file's key is compared in full).
    fn file_name(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.binary.hash(&mut h);
        self.kernel.hash(&mut h);
        format!("{}-{:016x}.json", self.boot_id, h.finish())
    }
}

/// A probe's outcome as kept in the cache.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Verdict {
    pub key: VerdictKey,
    /// `None`: KVM works; else why it does not.
    pub unusable: Option<String>,
    /// When the probe ran (seconds since the epoch) and how long it took.
    pub probed_s: f64,
    pub probe_took_s: f64,
}

impl Verdict {
    /// "at HH:MM:SS UTC" of the probe, for messages.
    pub fn when(&self) -> String {
        let secs = self.probed_s.max(0.0) as u64 % 86_400;
        format!(
            "{:02}:{:02}:{:02} UTC",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

/// KVM verdicts kept on disk, one file per key, in [`gp_qemu::paths::kvm_probe_cache_dir`].
#[derive(Debug, Clone)]
pub struct VerdictCache {
    dir: PathBuf,
}

impl VerdictCache {
    pub fn new(dir: PathBuf) -> VerdictCache {
        VerdictCache { dir }
    }

    /// The cache in the tools' cache directory.
    pub fn default_location() -> VerdictCache {
        VerdictCache::new(gp_qemu::paths::kvm_probe_cache_dir())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The verdict kept for `key`, if one is.
    pub fn load(&self, key: &VerdictKey) -> Option<Verdict> {
        let text = std::fs::read_to_string(self.dir.join(key.file_name())).ok()?;
        serde_json::from_str::<Verdict>(&text)
            .ok()
            .filter(|v| &v.key == key)
    }

    /// Keeps `verdict` (atomically: a temporary file renamed into place) and removes the
    /// verdicts of earlier boots.
    pub fn store(&self, verdict: &Verdict) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let name = verdict.key.file_name();
        let tmp = self.dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(verdict).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, self.dir.join(&name)))
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&tmp);
            })?;
        let this_boot = format!("{}-", verdict.key.boot_id);
        for entry in std::fs::read_dir(&self.dir)?.flatten() {
            let n = entry.file_name().to_string_lossy().into_owned();
            if n.ends_with(".json") && !n.starts_with(&this_boot) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
}

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
    let spec = probe_spec(binary, kernel, cpus, &qmp_path);
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
    let probe = Probe {
        child: &child,
        qmp_path: &qmp_path,
        lines: &line_rx,
        exits: &exit_rx,
    };
    let end = probe.watch(signals, start + probe_deadline, probe_deadline);
    // The probe's job is done either way: end it now.
    child.kill_and_reap();
    let _ = std::fs::remove_file(&qmp_path);
    match end {
        ProbeEnd::Works => Ok(start.elapsed()),
        ProbeEnd::Fails(why) => Err(Ok(KvmUnusable(with_qemu_words(why, &child.stderr_tail())))),
        ProbeEnd::Interrupted(sig) => Err(Err(sig)),
    }
}

/// The probe's QEMU: `kernel` booted under KVM with the real CPU model, `cpus` vCPUs, no
/// initrd and no root, its console on stdout and its QMP monitor at `qmp_path`.
fn probe_spec(binary: &Path, kernel: &Path, cpus: u32, qmp_path: &Path) -> Spec {
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
    spec
}

/// A running probe: its QEMU, QMP socket, console lines and exit.
struct Probe<'a> {
    child: &'a Child,
    qmp_path: &'a Path,
    lines: &'a Receiver<String>,
    exits: &'a Receiver<Exit>,
}

impl Probe<'_> {
    /// Watches the probe until the kernel finishes initialising, KVM fails (QEMU exits, the
    /// guest stops in `internal-error`, or `deadline` passes) or a signal comes.
    fn watch(
        &self,
        signals: &Receiver<i32>,
        deadline: Instant,
        probe_deadline: Duration,
    ) -> ProbeEnd {
        let mut qmp: Option<Qmp> = None;
        let mut last_line = String::new();
        loop {
            if self.stopped_in_internal_error(&mut qmp) {
                return ProbeEnd::Fails(
                    "KVM internal error: the probe guest stopped in state internal-error".into(),
                );
            }
            let now = Instant::now();
            if now >= deadline {
                return ProbeEnd::Fails(format!(
                    "a probe guest made no progress under KVM within {:.0} s (last console line: {:?})",
                    probe_deadline.as_secs_f64(),
                    last_line
                ));
            }
            let tick = (deadline - now).min(Duration::from_millis(100));
            select! {
                recv(self.lines) -> line => if let Ok(line) = line {
                    if kernel_initialised(&line) {
                        return ProbeEnd::Works;
                    }
                    if !line.trim().is_empty() {
                        last_line = line;
                    }
                },
                recv(self.exits) -> exit => if let Ok(exit) = exit {
                    // The lines came before the exit: a panic line means it worked.
                    if self.lines.try_iter().any(|l| kernel_initialised(&l)) {
                        return ProbeEnd::Works;
                    }
                    let why = exit_reason(&self.child.stderr_tail());
                    return ProbeEnd::Fails(format!("QEMU under KVM exited ({exit}) during a probe boot: {why}"));
                },
                recv(signals) -> sig => if let Ok(sig) = sig {
                    return ProbeEnd::Interrupted(sig);
                },
                default(tick) => {},
            }
        }
    }

    /// Whether the probe guest is paused in `internal-error`, asked over QMP (connected once
    /// QEMU listens, dropped when a query fails, to connect again).
    fn stopped_in_internal_error(&self, qmp: &mut Option<Qmp>) -> bool {
        // Poll the run state: an emulation failure pauses the VM in `internal-error` without
        // any console output or exit.
        if qmp.is_none() && !self.child.has_exited() {
            *qmp = Qmp::connect(
                self.qmp_path,
                Instant::now() + Duration::from_millis(200),
                Duration::from_secs(5),
            )
            .ok();
        }
        if let Some(q) = qmp.as_mut() {
            match q.query_status() {
                Ok(s) if s.status == qapi::qmp::RunState::internal_error => return true,
                Ok(_) => {}
                Err(_) => *qmp = None,
            }
        }
        false
    }
}

/// Whether a console line shows the kernel finished initialising (see [`PROBE_DONE`]).
fn kernel_initialised(line: &str) -> bool {
    PROBE_DONE.iter().any(|m| line.contains(m))
}

/// What QEMU said when it exited during the probe: the last line of its stderr `tail` that
/// names an error, else its last line.
fn exit_reason(tail: &[String]) -> String {
    tail.iter()
        .rev()
        .find(|l| {
            l.contains("KVM internal error") || l.contains("error") || l.contains("Assertion")
        })
        .or(tail.last())
        .cloned()
        .unwrap_or_default()
}

/// `why` the probe failed, with QEMU's first KVM internal error or emulation failure line
/// from its stderr `tail` when `why` does not already say it.
fn with_qemu_words(why: String, tail: &[String]) -> String {
    let said = tail
        .iter()
        .find(|l| l.contains("KVM internal error") || l.contains("emulation failure"));
    match said {
        Some(l) if !why.contains(l.as_str()) => format!("{why}; QEMU said: {l}"),
        _ => why,
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
    fn the_probe_boots_the_kernel_under_kvm_with_its_qmp_socket() {
        let spec = probe_spec(
            Path::new("/usr/bin/qemu-system-x86_64"),
            Path::new("/boot/vmlinuz"),
            3,
            Path::new("/run/gp/kvm-probe-qmp.sock"),
        );
        let argv = spec.argv();
        assert_eq!(argv[0], "/usr/bin/qemu-system-x86_64");
        let after = |flag: &str| {
            let i = argv.iter().position(|a| a == flag).unwrap();
            argv[i + 1].as_str()
        };
        assert_eq!(after("-accel"), "kvm");
        assert_eq!(after("-cpu"), Accel::Kvm.cpu_model());
        assert_eq!(after("-smp"), "3");
        assert_eq!(after("-kernel"), "/boot/vmlinuz");
        assert_eq!(
            after("-qmp"),
            "unix:/run/gp/kvm-probe-qmp.sock,server=on,wait=off"
        );
        assert!(after("-append").contains("panic=-1"));
        assert!(argv.iter().any(|a| a == "-no-reboot"), "{argv:?}");
        assert!(!argv.iter().any(|a| a == "-initrd"), "{argv:?}");
    }

    #[test]
    fn the_end_of_kernel_initialisation_is_seen_on_the_console() {
        assert!(kernel_initialised(
            "[    0.9] Kernel panic - not syncing: VFS: Unable to mount root fs"
        ));
        assert!(kernel_initialised("[    0.8] Run /init as init process"));
        assert!(!kernel_initialised("[    0.1] Linux version 6.1"));
        assert!(!kernel_initialised(""));
    }

    #[test]
    fn an_exit_is_explained_by_qemus_last_error_line() {
        let tail = |lines: &[&str]| lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        assert_eq!(
            exit_reason(&tail(&["qemu: error: first", "qemu: error: second", "bye"])),
            "qemu: error: second"
        );
        assert_eq!(
            exit_reason(&tail(&["Assertion `x' failed.", "Aborted"])),
            "Assertion `x' failed."
        );
        assert_eq!(exit_reason(&tail(&["just this"])), "just this");
        assert_eq!(exit_reason(&[]), "");
    }

    #[test]
    fn a_failure_gets_qemus_kvm_words_once() {
        let tail = vec![
            "something else".to_string(),
            "KVM internal error. Suberror: 1".to_string(),
            "emulation failure".to_string(),
        ];
        assert_eq!(
            with_qemu_words("no progress".into(), &tail),
            "no progress; QEMU said: KVM internal error. Suberror: 1"
        );
        let said = "QEMU exited: KVM internal error. Suberror: 1".to_string();
        assert_eq!(with_qemu_words(said.clone(), &tail), said);
        assert_eq!(
            with_qemu_words("no progress".into(), &tail[..1]),
            "no progress"
        );
    }

    fn key(dir: &Path, boot: &str) -> VerdictKey {
        let binary = dir.join("qemu");
        let kernel = dir.join("vmlinuz");
        for f in [&binary, &kernel] {
            if !f.exists() {
                std::fs::write(f, b"x").unwrap();
            }
        }
        VerdictKey {
            boot_id: boot.into(),
            ..VerdictKey::new(&binary, &kernel).unwrap()
        }
    }

    #[test]
    fn verdicts_are_kept_per_boot_binary_and_kernel() {
        let dir = RuntimeDir::new("gp-verdict-test").unwrap();
        let cache = VerdictCache::new(dir.path().join("cache"));
        let k = key(dir.path(), "boot-a");
        assert_eq!(cache.load(&k), None);
        let v = Verdict {
            key: k.clone(),
            unusable: Some("a probe guest made no progress under KVM within 15 s".into()),
            probed_s: 3600.0 * 13.0 + 62.0,
            probe_took_s: 15.0,
        };
        cache.store(&v).unwrap();
        assert_eq!(cache.load(&k), Some(v.clone()));
        assert_eq!(v.when(), "13:01:02 UTC");
        // Another boot, or a kernel rewritten at the same path, is not this verdict.
        assert_eq!(cache.load(&key(dir.path(), "boot-b")), None);
        std::fs::write(dir.path().join("vmlinuz"), b"a new kernel").unwrap();
        assert_eq!(cache.load(&key(dir.path(), "boot-a")), None);
        // Storing a verdict of a new boot removes the old boot's.
        let newer = Verdict {
            key: key(dir.path(), "boot-b"),
            unusable: None,
            ..v
        };
        cache.store(&newer).unwrap();
        let files: Vec<String> = std::fs::read_dir(cache.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].starts_with("boot-b-"), "{files:?}");
        assert_eq!(cache.load(&newer.key), Some(newer));
    }

    #[test]
    fn the_key_knows_this_boot() {
        let dir = RuntimeDir::new("gp-verdict-test").unwrap();
        let k = key(dir.path(), "x");
        let here = VerdictKey::new(&k.binary.path, &k.kernel.path).unwrap();
        assert_eq!(here.boot_id.len(), 36, "{here:?}");
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
