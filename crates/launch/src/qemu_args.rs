//! The QEMU command lines and the guest kernel command line.
//!
//! Both VMs get the same machine (so the migration stream fits), differing only in the
//! destination's `-incoming defer` and in per-side extra arguments. The serial console is QEMU's
//! stdout; each VM has two QMP monitors, a private one for gp-launch and a public one for the
//! next stage.

use std::path::{Path, PathBuf};

use gp_records::size::format_size;
use gp_records::stress::{Pattern, Wss};
use gp_records::{Role, WorkloadRequest};

/// The accelerator a VM runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// `-cpu host` only with KVM; under TCG `max` (every feature TCG emulates, identical on both
    /// sides since both run the same binary).
    pub fn cpu_model(self) -> &'static str {
        match self {
            Accel::Kvm => "host",
            Accel::Tcg => "max",
        }
    }
}

/// The machine type. q35 boots the guest kernel to the workload fastest here (see
/// docs/gp-launch.md) and migrates with every feature gp-migrate uses.
pub const MACHINE: &str = "q35";

/// How guest RAM is backed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Memory {
    /// Plain anonymous memory (`-m`), allocated as the guest touches it.
    Plain,
    /// `memory-backend-ram` with `prealloc=on`.
    Prealloc,
    /// `memory-backend-file` on a hugetlbfs mount.
    HugePages { mount: PathBuf, prealloc: bool },
}

/// Everything both VMs share.
#[derive(Debug, Clone)]
pub struct Machine {
    pub accel: Accel,
    pub cpus: u32,
    pub mem_bytes: u64,
    pub memory: Memory,
    pub locked_pages: bool,
    /// KVM dirty ring entries; 0 for the dirty bitmap.
    pub dirty_ring_size: u32,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    /// QEMU trace events to turn on (see [`crate::trace`]).
    pub trace_events: Vec<String>,
    /// Firmware instead of QEMU's default SeaBIOS (`-bios`): qboot, see [`qboot_for`].
    pub firmware: Option<PathBuf>,
}

/// One VM's sockets and extra arguments.
#[derive(Debug, Clone)]
pub struct Side<'a> {
    pub role: Role,
    pub qmp_private: &'a Path,
    pub qmp_public: &'a Path,
    /// `-incoming defer` for the destination.
    pub incoming: bool,
    pub extra: &'a [String],
}

/// QEMU's arguments (without the binary) for one side.
pub fn qemu_args(m: &Machine, side: &Side<'_>) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    // Thread names ("CPU 0/TCG", "live_migration") let gp-sample tell threads apart.
    push(&[
        "-name",
        &format!("guestperf-{},debug-threads=on", side.role),
    ]);
    push(&[
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ]);
    let mem_mib = m.mem_bytes >> 20;
    let backend = match &m.memory {
        Memory::Plain => None,
        Memory::Prealloc => Some(format!(
            "memory-backend-ram,id=ram0,size={mem_mib}M,prealloc=on"
        )),
        Memory::HugePages { mount, prealloc } => Some(format!(
            "memory-backend-file,id=ram0,size={mem_mib}M,mem-path={},prealloc={}",
            escape_opt(&mount.to_string_lossy()),
            if *prealloc { "on" } else { "off" }
        )),
    };
    match &backend {
        Some(obj) => {
            push(&["-machine", &format!("{MACHINE},memory-backend=ram0")]);
            push(&["-object", obj]);
        }
        None => push(&["-machine", MACHINE]),
    }
    let accel = match (m.accel, m.dirty_ring_size) {
        (Accel::Kvm, 0) => "kvm".to_string(),
        (Accel::Kvm, n) => format!("kvm,dirty-ring-size={n}"),
        (Accel::Tcg, _) => "tcg".to_string(),
    };
    push(&["-accel", &accel]);
    push(&["-cpu", m.accel.cpu_model()]);
    push(&["-smp", &m.cpus.to_string()]);
    push(&["-m", &format!("{mem_mib}M")]);
    if m.locked_pages {
        push(&["-overcommit", "mem-lock=on"]);
    }
    if let Some(fw) = &m.firmware {
        push(&["-bios", &fw.to_string_lossy()]);
    }
    push(&["-kernel", &m.kernel.to_string_lossy()]);
    push(&["-initrd", &m.initrd.to_string_lossy()]);
    push(&["-append", &m.cmdline]);
    // The console is QEMU's stdout; signal=off so a terminal's Ctrl-C is ours to handle.
    push(&[
        "-chardev",
        "stdio,id=console,signal=off",
        "-serial",
        "chardev:console",
    ]);
    for sock in [side.qmp_private, side.qmp_public] {
        push(&[
            "-qmp",
            &format!(
                "unix:{},server=on,wait=off",
                escape_opt(&sock.to_string_lossy())
            ),
        ]);
    }
    if side.incoming {
        push(&["-incoming", "defer"]);
    }
    a.extend(crate::trace::qemu_args(&m.trace_events));
    a.extend(side.extra.iter().cloned());
    a
}

/// QEMU's qboot firmware for `binary`, when it ships one: `<prefix>/share/qemu/qboot.rom` next
/// to `<prefix>/bin/qemu-system-x86_64` (Debian's `qemu-system-data`). qboot only loads the
/// kernel and jumps to it, which under TCG is faster than SeaBIOS's POST (docs/performance.md).
pub fn qboot_for(binary: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(binary).unwrap_or_else(|_| binary.to_path_buf());
    let rom = real.parent()?.parent()?.join("share/qemu/qboot.rom");
    (rom.is_file() && rom.to_str().is_some()).then_some(rom)
}

/// QEMU option values double a comma to mean a literal comma.
fn escape_opt(s: &str) -> String {
    s.replace(',', ",,")
}

/// Guest kernel command line settings.
#[derive(Debug, Clone, Default)]
pub struct Cmdline {
    /// RAM the workload touches, bytes.
    pub stress_ram_bytes: u64,
    pub stress_threads: u32,
    pub grain_ms: Option<f64>,
    pub duration_s: Option<f64>,
    pub pattern: Option<Pattern>,
    pub wss: Option<Wss>,
    /// Bytes per second, all workload threads together.
    pub dirty_rate: Option<u64>,
    /// Keep the kernel's boot log (no `quiet`).
    pub verbose: bool,
    pub extra: Vec<String>,
}

/// Arguments that make the kernel boot fast and talk on the first serial port. The original
/// guestperf's set (`edd=off printk.time=1 noreplace-smp cgroup_disable=memory pci=noearly
/// console=ttyS0`) plus: no crypto self-tests, no TSC and timer checks (TCG's clocks fail
/// them slowly), a single 8250 port, and `panic=-1` so that with QEMU's `-no-reboot` a guest
/// panic ends QEMU at once instead of hanging the run.
pub const FAST_BOOT_ARGS: &[&str] = &[
    "console=ttyS0",
    "edd=off",
    "printk.time=1",
    "noreplace-smp",
    "cgroup_disable=memory",
    "pci=noearly",
    "cryptomgr.notests",
    "tsc=reliable",
    "no_timer_check",
    "8250.nr_uarts=1",
    "panic=-1",
];

impl Cmdline {
    pub fn render(&self) -> String {
        let mut args: Vec<String> = FAST_BOOT_ARGS.iter().map(|s| s.to_string()).collect();
        args.push(if self.verbose { "loglevel=7" } else { "quiet" }.to_string());
        args.push(format!("ramsize={}", ramsize(self.stress_ram_bytes)));
        args.push(format!("stress.threads={}", self.stress_threads));
        if let Some(g) = self.grain_ms {
            args.push(format!("stress.grain_ms={g}"));
        }
        if let Some(d) = self.duration_s {
            args.push(format!("stress.duration_s={d}"));
        }
        if let Some(p) = self.pattern {
            args.push(format!("stress.pattern={p}"));
        }
        if let Some(w) = self.wss {
            args.push(format!("stress.wss={w}"));
        }
        if let Some(r) = self.dirty_rate {
            args.push(format!("stress.dirty_rate={}", format_size(r)));
        }
        args.extend(self.extra.iter().cloned());
        args.join(" ")
    }
}

impl Cmdline {
    /// The workload settings this command line asks for, for the `launch` record.
    pub fn request(&self) -> WorkloadRequest {
        let mut r = WorkloadRequest {
            ram_bytes: self.stress_ram_bytes,
            threads: self.stress_threads,
            grain_ms: self.grain_ms,
            duration_s: self.duration_s,
            pattern: self.pattern,
            dirty_rate_bytes_per_s: self.dirty_rate,
            ..WorkloadRequest::default()
        };
        r.set_wss(self.wss);
        r
    }
}

/// `ramsize=` value: an integer number of GiB when whole (what the original C stress parses),
/// else MiB with an `M` suffix.
pub fn ramsize(bytes: u64) -> String {
    if bytes % (1 << 30) == 0 {
        (bytes >> 30).to_string()
    } else {
        format!("{}M", bytes >> 20)
    }
}

/// The default workload RAM: guest RAM less a headroom of 96 MiB plus 1/16 of it.
///
/// Measured under the Debian cloud kernel: the kernel, the unpacked initrd and the page
/// structures leave 191 MiB free of 256 MiB, 936 of 1 GiB and 1942 of 2 GiB; the DMA zone
/// (16 MiB) is off limits to the workload, the allocator's watermarks and page tables grow with
/// RAM, and stress keeps 16 MiB for the kernel. A workload that leaves less deadlocks the guest
/// on memory (it is PID 1, which the OOM killer cannot kill): 896 MiB of 1 GiB did.
pub fn default_stress_ram(mem_bytes: u64) -> u64 {
    let headroom = (96 << 20) + mem_bytes / 16;
    let ram = mem_bytes.saturating_sub(headroom);
    ram & !((1 << 20) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            accel: Accel::Tcg,
            cpus: 2,
            mem_bytes: 256 << 20,
            memory: Memory::Plain,
            locked_pages: false,
            dirty_ring_size: 0,
            kernel: "/k/vmlinuz".into(),
            initrd: "/i/initrd.img".into(),
            cmdline: "console=ttyS0".into(),
            trace_events: Vec::new(),
            firmware: None,
        }
    }

    fn args_of(m: &Machine, incoming: bool, extra: &[String]) -> Vec<String> {
        let side = Side {
            role: if incoming { Role::Dst } else { Role::Src },
            qmp_private: Path::new("/run/x/src-private.sock"),
            qmp_public: Path::new("/run/x/src-qmp.sock"),
            incoming,
            extra,
        };
        qemu_args(m, &side)
    }

    fn has(args: &[String], pair: [&str; 2]) -> bool {
        args.windows(2).any(|w| w[0] == pair[0] && w[1] == pair[1])
    }

    #[test]
    fn tcg_source() {
        let a = args_of(&machine(), false, &[]);
        assert!(has(&a, ["-accel", "tcg"]));
        assert!(has(&a, ["-cpu", "max"]), "-cpu host goes with KVM only");
        assert!(has(&a, ["-m", "256M"]));
        assert!(has(&a, ["-smp", "2"]));
        assert!(has(
            &a,
            ["-qmp", "unix:/run/x/src-private.sock,server=on,wait=off"]
        ));
        assert!(has(
            &a,
            ["-qmp", "unix:/run/x/src-qmp.sock,server=on,wait=off"]
        ));
        assert!(!a.contains(&"-incoming".to_string()));
        assert!(!a.contains(&"-overcommit".to_string()));
        assert!(!a.contains(&"-trace".to_string()));
        let mut m = machine();
        m.trace_events = vec!["vmstate_downtime_save".into()];
        let a = args_of(&m, false, &[]);
        assert!(has(&a, ["-trace", "enable=vmstate_downtime_save"]));
        assert!(has(&a, ["-msg", "timestamp=on"]));
        assert!(!a.contains(&"-bios".to_string()));
        m.firmware = Some("/usr/share/qemu/qboot.rom".into());
        let a = args_of(&m, false, &[]);
        assert!(has(&a, ["-bios", "/usr/share/qemu/qboot.rom"]));
    }

    #[test]
    fn qboot_next_to_the_binary() {
        let dir = std::env::temp_dir().join(format!("gp-qboot-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("share/qemu")).unwrap();
        let bin = dir.join("bin/qemu-system-x86_64");
        std::fs::write(&bin, "").unwrap();
        assert_eq!(qboot_for(&bin), None);
        std::fs::write(dir.join("share/qemu/qboot.rom"), "").unwrap();
        assert_eq!(
            qboot_for(&bin),
            Some(
                std::fs::canonicalize(&dir)
                    .unwrap()
                    .join("share/qemu/qboot.rom")
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn kvm_destination_with_everything() {
        let mut m = machine();
        m.accel = Accel::Kvm;
        m.dirty_ring_size = 4096;
        m.locked_pages = true;
        m.memory = Memory::HugePages {
            mount: "/dev/hugepages".into(),
            prealloc: true,
        };
        let extra = vec!["-d".to_string(), "guest_errors".to_string()];
        let a = args_of(&m, true, &extra);
        assert!(has(&a, ["-accel", "kvm,dirty-ring-size=4096"]));
        assert!(has(&a, ["-cpu", "host"]));
        assert!(has(&a, ["-incoming", "defer"]));
        assert!(has(&a, ["-overcommit", "mem-lock=on"]));
        assert!(has(&a, ["-machine", "q35,memory-backend=ram0"]));
        assert!(has(
            &a,
            [
                "-object",
                "memory-backend-file,id=ram0,size=256M,mem-path=/dev/hugepages,prealloc=on"
            ]
        ));
        assert_eq!(&a[a.len() - 2..], &extra[..], "extra arguments come last");
    }

    #[test]
    fn prealloc_uses_a_ram_backend() {
        let mut m = machine();
        m.memory = Memory::Prealloc;
        let a = args_of(&m, false, &[]);
        assert!(has(
            &a,
            [
                "-object",
                "memory-backend-ram,id=ram0,size=256M,prealloc=on"
            ]
        ));
    }

    #[test]
    fn cmdline_and_ram() {
        let c = Cmdline {
            stress_ram_bytes: default_stress_ram(256 << 20),
            stress_threads: 2,
            grain_ms: Some(20.0),
            duration_s: None,
            verbose: false,
            extra: vec!["foo=bar".into()],
            ..Cmdline::default()
        };
        let s = c.render();
        assert!(s.starts_with("console=ttyS0 "), "{s}");
        assert!(s.contains(" quiet "));
        assert!(
            s.contains(" ramsize=144M stress.threads=2 stress.grain_ms=20 "),
            "{s}"
        );
        assert!(s.ends_with(" foo=bar"));
        assert_eq!(default_stress_ram(128 << 20), 24 << 20);
        assert_eq!(default_stress_ram(256 << 20), 144 << 20);
        assert_eq!(default_stress_ram(1 << 30), 864 << 20);
        assert_eq!(default_stress_ram(2 << 30), 1824 << 20);
        assert_eq!(ramsize(1 << 30), "1");
        assert_eq!(ramsize(896 << 20), "896M");
        // No workload setting, no workload argument: a default run's command line is as ever.
        assert!(
            !s.contains("stress.pattern") && !s.contains("stress.wss"),
            "{s}"
        );
        assert!(!s.contains("stress.dirty_rate"), "{s}");
    }

    #[test]
    fn workload_settings_become_kernel_arguments_and_the_request() {
        let mut c = Cmdline {
            stress_ram_bytes: 144 << 20,
            stress_threads: 2,
            pattern: Some(Pattern::Random),
            wss: Some(Wss::Pct(50.0)),
            dirty_rate: Some(32 << 20),
            ..Cmdline::default()
        };
        let s = c.render();
        assert!(
            s.contains(" stress.pattern=random stress.wss=50% stress.dirty_rate=32M"),
            "{s}"
        );
        let r = c.request();
        assert_eq!((r.ram_bytes, r.threads), (144 << 20, 2));
        assert_eq!((r.wss_pct, r.wss_bytes), (Some(50.0), None));
        assert_eq!(r.dirty_rate_bytes_per_s, Some(32 << 20));
        assert_eq!(r.pattern, Some(Pattern::Random));
        c.wss = Some(Wss::Bytes(64 << 20));
        c.dirty_rate = Some(1000);
        let s = c.render();
        assert!(s.contains(" stress.wss=64M stress.dirty_rate=1000B"), "{s}");
        assert_eq!(c.request().wss_bytes, Some(64 << 20));
    }
}
