//! The command line: the original guestperf's hardware and engine options, plus ours.
//!
//! [`Cli`] is a `clap::Args` struct so that `guestperf` and `gp-batch` flatten it into their own
//! command lines: one definition of every option, its help, default and value parser.
//! [`Cli::to_args`] writes a parsed `Cli` back as gp-launch's argv (how the wrappers run this
//! stage); a test checks that every option survives the trip.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use clap::builder::ArgPredicate;
use clap::{Args, Command, CommandFactory, Parser, ValueEnum};
use gp_stage::argv::{display, enum_value, os, Argv};

// gp-launch's options. Parse with `Parser` (`Cli::parse`, `Cli::try_parse_from`), or flatten into
// another command line with `#[command(flatten)]`. No doc comment or `#[command]` attribute on the
// struct: clap would apply it to the command it is flattened into (a doc comment becomes its
// about). gp-launch's own about and example are in `command()` below.
#[derive(Debug, Clone, PartialEq, Args)]
#[group(skip)]
pub struct Cli {
    /// QEMU system emulator: a path, or a name looked up on PATH.
    #[arg(long, value_name = "PATH", default_value = gp_qemu::binary::DEFAULT_BINARY,
          value_parser = utf8_binary())]
    pub binary: String,

    /// Guest kernel [default: /boot/vmlinuz-$(uname -r), else the newest /boot/vmlinuz-*, else
    /// the newest kernel in ~/.cache/guestperf/kernel].
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,

    /// Initrd with the stress workload as /init [default: ~/.cache/guestperf/initrd-stress.img].
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<PathBuf>,

    /// Number of guest vCPUs (the workload runs one thread per vCPU).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=255))]
    pub cpus: u32,

    /// Guest RAM: a number of GiB as in the original (1, 1.5), or a size (256M, 1536MiB, 2G).
    /// The workload touches all of it but a headroom left to the guest kernel.
    #[arg(long, value_name = "SIZE", default_value = "1", value_parser = parse_guest_mem)]
    pub mem: u64,

    /// RAM the workload touches (the kernel's ramsize=) [default: --mem less a headroom of
    /// 96 MiB plus 1/16 of --mem]. Whole GiB are passed as an integer, so an
    /// initrd built from the original C stress works.
    #[arg(long, value_name = "SIZE", value_parser = parse_mem)]
    pub stress_ram: Option<u64>,

    /// Host CPUs for the source QEMU (0,1 or 0-3).
    #[arg(long, value_name = "LIST", value_parser = parse_ids)]
    pub src_cpu_bind: Option<IdList>,

    /// Host NUMA nodes for the source QEMU's memory.
    #[arg(long, value_name = "LIST", value_parser = parse_ids)]
    pub src_mem_bind: Option<IdList>,

    /// Host CPUs for the destination QEMU.
    #[arg(long, value_name = "LIST", value_parser = parse_ids)]
    pub dst_cpu_bind: Option<IdList>,

    /// Host NUMA nodes for the destination QEMU's memory.
    #[arg(long, value_name = "LIST", value_parser = parse_ids)]
    pub dst_mem_bind: Option<IdList>,

    /// Do not pin the two QEMUs to disjoint host CPUs. By default gp-launch pins them when
    /// neither --src-cpu-bind nor --dst-cpu-bind is given, both run here, and the CPUs it may
    /// use hold a host CPU per vCPU for each (2 x --cpus).
    #[arg(long)]
    pub no_pin: bool,

    /// How bindings are applied: numactl when installed (auto), or sched_setaffinity and
    /// set_mempolicy in the child (native).
    #[arg(long, value_enum, default_value_t = BindMethodArg::Auto)]
    pub bind_method: BindMethodArg,

    /// Allocate all guest RAM up front (memory backend prealloc=on).
    #[arg(long)]
    pub prealloc_pages: bool,

    /// Back guest RAM with huge pages from a mounted hugetlbfs.
    #[arg(long)]
    pub huge_pages: bool,

    /// Lock guest RAM in host memory (-overcommit mem-lock=on).
    #[arg(long)]
    pub locked_pages: bool,

    /// KVM dirty ring size in entries (a power of two, 1024 to 65536); 0 uses the dirty
    /// bitmap. KVM only.
    #[arg(long, value_name = "ENTRIES", default_value_t = 0, value_parser = parse_dirty_ring_size)]
    pub dirty_ring_size: u32,

    /// Migration transport the destination listens on [default: unix, or tcp with --dst-host].
    #[arg(long, value_enum, default_value_t = Transport::Unix, hide_default_value = true,
          default_value_if("dst_host", ArgPredicate::IsPresent, "tcp"))]
    pub transport: Transport,

    /// Run the destination on another host, through ssh (batch mode, your ssh config). HOST
    /// needs gp-launch, gp-sample, QEMU, and the kernel and initrd at the same paths; the
    /// transport is then tcp unless --transport rdma. See docs/remote.md.
    #[arg(long, value_name = "[USER@]HOST")]
    pub dst_host: Option<String>,

    /// ssh configuration file for --dst-host (ssh -F) [default: ~/.ssh/config].
    #[arg(long, value_name = "FILE", requires = "dst_host")]
    pub ssh_config: Option<PathBuf>,

    /// ssh option for --dst-host, as in ssh -o (Port=2222, IdentityFile=~/.ssh/k); repeat for
    /// more.
    #[arg(long = "ssh-option", value_name = "KEY=VALUE", requires = "dst_host")]
    pub ssh_options: Vec<String>,

    /// Accelerator: kvm where it works (auto), or force one.
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    pub accel: AccelArg,

    /// Probe KVM again instead of using the verdict kept for this host boot, QEMU binary and
    /// kernel (as GUESTPERF_REPROBE_KVM=1 does); the new verdict is kept.
    #[arg(long)]
    pub reprobe_kvm: bool,

    /// Extra argument for both QEMUs, appended as is (repeat for more).
    #[arg(long = "qemu-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub qemu_args: Vec<String>,

    /// Extra argument for the source QEMU (repeat for more).
    #[arg(long = "src-qemu-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub src_qemu_args: Vec<String>,

    /// Extra argument for the destination QEMU (repeat for more).
    #[arg(long = "dst-qemu-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub dst_qemu_args: Vec<String>,

    /// Extra guest kernel argument, appended to the command line (repeat for more).
    #[arg(long = "kernel-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub kernel_args: Vec<String>,

    /// Workload threads (stress.threads) [default: --cpus].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub stress_threads: Option<u32>,

    /// Workload progress granularity in ms (stress.grain_ms; 0 turns progress records off)
    /// [default: the workload's].
    #[arg(long, value_name = "MS", value_parser = parse_non_negative)]
    pub stress_grain_ms: Option<f64>,

    /// Stop the workload and power the guest off after this many seconds (stress.duration_s)
    /// [default: run until stopped].
    #[arg(long, value_name = "S", value_parser = parse_positive)]
    pub stress_duration_s: Option<f64>,

    /// What the workload writes once it has written all its RAM once (stress.pattern): seq
    /// (its working set page after page), random (random 4 KiB pages of it) or once (nothing:
    /// the idle baseline) [default: seq].
    #[arg(long, value_name = "PATTERN", value_parser = str::parse::<Pattern>)]
    pub stress_pattern: Option<Pattern>,

    /// The workload's working set (stress.wss): the part of its RAM it keeps writing after its
    /// first pass, a size (256M) or a share (25%) [default: all of it].
    #[arg(long, value_name = "SIZE|PCT%", value_parser = str::parse::<Wss>)]
    pub stress_wss: Option<Wss>,

    /// The workload's dirty rate after its first pass, all threads together
    /// (stress.dirty_rate): 64M is 64 MiB/s [default: unlimited].
    #[arg(long, value_name = "RATE", value_parser = parse_dirty_rate)]
    pub stress_dirty_rate: Option<u64>,

    /// Give up if the source's workload has not started this many seconds after QEMU started
    /// [default: 120 s plus 15 s per GiB of workload RAM, which stress touches before starting].
    #[arg(long, value_name = "S", value_parser = parse_positive)]
    pub boot_timeout_s: Option<f64>,

    /// Boot the kernel as given (a bzImage, decompressed by itself in the guest) instead of its
    /// uncompressed vmlinux through the PVH entry, which gp-launch extracts once into
    /// ~/.cache/guestperf/kernel/pvh and which boots faster under TCG.
    #[arg(long)]
    pub no_pvh: bool,

    /// Boot with QEMU's default firmware (SeaBIOS) instead of qboot, which gp-launch uses
    /// when the QEMU binary ships it (<prefix>/share/qemu/qboot.rom) and boots faster under TCG.
    #[arg(long)]
    pub no_qboot: bool,

    /// Do not turn on QEMU's downtime tracepoints (vmstate_downtime_* and the switchover
    /// events, written as qemu_trace records; on by default where the QEMU binary has them).
    #[arg(long)]
    pub no_trace: bool,

    /// Also copy every guest console line and QEMU's stderr to stderr.
    #[arg(long)]
    pub debug: bool,

    /// Let the guest kernel print its boot log (no `quiet`), and explain each decision
    /// (accelerator probe, QEMU command lines) on stderr.
    #[arg(long)]
    pub verbose: bool,
}

/// gp-launch's own command: its name, about and example, then the options.
fn command() -> Command {
    Command::new("gp-launch")
        .version(env!("CARGO_PKG_VERSION"))
        // `--cpus -1` is a bad value of --cpus, not an unknown option `-1`.
        .allow_negative_numbers(true)
        .max_term_width(100)
        .about(
            "Boot a source VM running the stress workload and a destination VM waiting for an \
             incoming migration, and stream NDJSON records on stdout until both have exited",
        )
        .after_help(
            "Example:\n  gp-launch --accel tcg --mem 256M --cpus 2 | gp-migrate | gp-collect > run.json",
        )
}

gp_stage::stage_parser!(Cli, command());

impl Cli {
    /// gp-launch's defaults: the command line with no options.
    pub fn defaults() -> Cli {
        Cli::try_parse_from(["gp-launch"]).expect("every gp-launch option has a default")
    }

    /// The gp-launch arguments that parse to `self`: every option that differs from its default
    /// (`--transport` also whenever `--dst-host` is given, whose default transport differs).
    pub fn to_args(&self) -> Vec<OsString> {
        let d = Cli::defaults();
        let mut w = Argv::new(Cli::command());
        let size = |b: &u64| OsString::from(format_size(*b));
        w.changed("binary", &self.binary, &d.binary, display)
            .some("kernel", self.kernel.as_ref(), os)
            .some("initrd", self.initrd.as_ref(), os)
            .changed("cpus", &self.cpus, &d.cpus, display)
            .changed("mem", &self.mem, &d.mem, size)
            .some("stress_ram", self.stress_ram.as_ref(), size)
            .some("src_cpu_bind", self.src_cpu_bind.as_ref(), display)
            .some("src_mem_bind", self.src_mem_bind.as_ref(), display)
            .some("dst_cpu_bind", self.dst_cpu_bind.as_ref(), display)
            .some("dst_mem_bind", self.dst_mem_bind.as_ref(), display)
            .flag("no_pin", self.no_pin)
            .flag("reprobe_kvm", self.reprobe_kvm)
            .changed("bind_method", &self.bind_method, &d.bind_method, enum_value)
            .flag("prealloc_pages", self.prealloc_pages)
            .flag("huge_pages", self.huge_pages)
            .flag("locked_pages", self.locked_pages)
            .changed(
                "dirty_ring_size",
                &self.dirty_ring_size,
                &d.dirty_ring_size,
                display,
            );
        if self.transport != d.transport || self.dst_host.is_some() {
            w.value("transport", enum_value(&self.transport));
        }
        w.some("dst_host", self.dst_host.as_ref(), display)
            .some("ssh_config", self.ssh_config.as_ref(), os)
            .each("ssh_options", &self.ssh_options, display)
            .changed("accel", &self.accel, &d.accel, enum_value)
            .each("qemu_args", &self.qemu_args, display)
            .each("src_qemu_args", &self.src_qemu_args, display)
            .each("dst_qemu_args", &self.dst_qemu_args, display)
            .each("kernel_args", &self.kernel_args, display)
            .some("stress_threads", self.stress_threads.as_ref(), display)
            .some("stress_grain_ms", self.stress_grain_ms.as_ref(), display)
            .some(
                "stress_duration_s",
                self.stress_duration_s.as_ref(),
                display,
            )
            .some("stress_pattern", self.stress_pattern.as_ref(), display)
            .some("stress_wss", self.stress_wss.as_ref(), display)
            .some("stress_dirty_rate", self.stress_dirty_rate.as_ref(), size)
            .some("boot_timeout_s", self.boot_timeout_s.as_ref(), display)
            .flag("no_pvh", self.no_pvh)
            .flag("no_qboot", self.no_qboot)
            .flag("no_trace", self.no_trace)
            .flag("debug", self.debug)
            .flag("verbose", self.verbose);
        w.finish()
    }
}

/// `--binary` must be UTF-8 (it goes into the records and, for --dst-host, an ssh command
/// line): say so, where clap alone would only say "invalid UTF-8 was detected".
fn utf8_binary() -> impl clap::builder::TypedValueParser<Value = String> {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new().try_map(|s| {
        s.into_string().map_err(|s| {
            format!(
                "{} is not UTF-8: give the QEMU binary a UTF-8 path (a symlink will do)",
                std::path::Path::new(&s).display()
            )
        })
    })
}

/// A list of CPU or node ids (`0,1`, `0-3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdList(pub Vec<u32>);

/// `0,1,2`: what [`parse_ids`] reads back.
impl fmt::Display for IdList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&ids.join(","))
    }
}

fn parse_ids(s: &str) -> Result<IdList, String> {
    gp_qemu::bind::parse_list(s)
        .map(IdList)
        .map_err(|e| e.to_string())
}

pub use gp_qemu::transport::Transport;

/// Accelerator for both VMs (the one definition: `guestperf` and gp-batch's probe use it too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccelArg {
    /// KVM when it works, else TCG (gp-launch probes KVM first).
    Auto,
    Kvm,
    Tcg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BindMethodArg {
    Auto,
    Numactl,
    Native,
}

use gp_records::size::{parse_size, GIB, MIB};
use gp_records::stress::{parse_dirty_rate, Pattern, Wss};

/// Parses guest RAM. A bare number is GiB, as in the original guestperf (`1`, `1.5`); otherwise
/// the shared size syntax (`256M`, `2G`; see [`gp_records::size`]). The result must be a whole
/// number of MiB and more than zero.
pub fn parse_mem(s: &str) -> Result<u64, String> {
    let bytes = parse_size(s, GIB).map_err(|e| e.to_string())?;
    if bytes == 0 {
        return Err(format!("{s:?}: the size must be more than 0"));
    }
    if bytes % MIB != 0 {
        return Err(format!("{s:?} is not a whole number of MiB"));
    }
    Ok(bytes)
}

/// Smallest guest the stress initrd boots in with room for a workload.
pub const MIN_MEM_BYTES: u64 = 128 << 20;

/// Parses `--mem`: a size as [`parse_mem`] reads it, and enough for the guest kernel besides
/// the workload.
pub fn parse_guest_mem(s: &str) -> Result<u64, String> {
    let bytes = parse_mem(s)?;
    check_guest_mem(bytes, &format!("{s:?}"))?;
    Ok(bytes)
}

/// Refuses a guest smaller than [`MIN_MEM_BYTES`]; `as_given` is how the message names the size.
pub fn check_guest_mem(bytes: u64, as_given: &str) -> Result<(), String> {
    if bytes < MIN_MEM_BYTES {
        return Err(format!(
            "{as_given} is too small: the guest kernel needs room besides the workload; use at \
             least {}",
            format_size(MIN_MEM_BYTES)
        ));
    }
    Ok(())
}

/// Parses `--dirty-ring-size`: 0 (the dirty bitmap), or a power of two from 1024 to 65536.
fn parse_dirty_ring_size(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n == 0 || n.is_power_of_two() && (1024..=65536).contains(&n) => Ok(n),
        _ => Err(format!(
            "{s:?} is not a power of two from 1024 to 65536 (or 0 for the dirty bitmap)"
        )),
    }
}

fn parse_non_negative(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a number of 0 or more")),
    }
}

fn parse_positive(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

pub use gp_records::size::format_size;

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
        assert_eq!(Cli::command().get_name(), "gp-launch");
    }

    /// A value other than the default for every option that takes a free value.
    pub(crate) const SAMPLES: &[(&str, &[&str])] = &[
        ("binary", &["--binary", "/opt/qemu/bin/qemu-system-x86_64"]),
        ("kernel", &["--kernel", "/k/vmlinuz"]),
        ("initrd", &["--initrd", "/i/initrd.img"]),
        ("cpus", &["--cpus", "3"]),
        ("mem", &["--mem", "1.5G"]),
        ("stress_ram", &["--stress-ram", "200M"]),
        ("src_cpu_bind", &["--src-cpu-bind", "0-2,5"]),
        ("src_mem_bind", &["--src-mem-bind", "0"]),
        ("dst_cpu_bind", &["--dst-cpu-bind", "3"]),
        ("dst_mem_bind", &["--dst-mem-bind", "1"]),
        ("dirty_ring_size", &["--dirty-ring-size", "4096"]),
        ("dst_host", &["--dst-host", "user@bench2"]),
        (
            "ssh_config",
            &["--ssh-config", "/c/ssh config", "--dst-host", "h"],
        ),
        (
            "ssh_options",
            &[
                "--ssh-option",
                "Port=2222",
                "--ssh-option",
                "User=u",
                "--dst-host",
                "h",
            ],
        ),
        (
            "qemu_args",
            &["--qemu-arg", "-d", "--qemu-arg", "guest_errors"],
        ),
        ("src_qemu_args", &["--src-qemu-arg", "-S"]),
        ("dst_qemu_args", &["--dst-qemu-arg", "-no-shutdown"]),
        ("kernel_args", &["--kernel-arg", "mitigations=off"]),
        ("stress_threads", &["--stress-threads", "7"]),
        ("stress_grain_ms", &["--stress-grain-ms", "0.25"]),
        ("stress_duration_s", &["--stress-duration-s", "1e-3"]),
        ("stress_pattern", &["--stress-pattern", "random"]),
        ("stress_wss", &["--stress-wss", "25%"]),
        ("stress_dirty_rate", &["--stress-dirty-rate", "64M"]),
        ("boot_timeout_s", &["--boot-timeout-s", "600"]),
    ];

    #[test]
    fn every_option_is_written_back_as_it_was_parsed() {
        gp_stage::argv::assert_round_trip::<Cli>(SAMPLES, Cli::to_args);
    }

    #[test]
    fn what_is_written_back() {
        let cli = Cli::try_parse_from([
            "gp-launch",
            "--mem",
            "4",
            "--cpus",
            "2",
            "--src-cpu-bind",
            "0,1",
            "--qemu-arg",
            "-d",
        ])
        .unwrap();
        assert_eq!(
            cli.to_args(),
            [
                "--cpus",
                "2",
                "--mem",
                "4G",
                "--src-cpu-bind",
                "0,1",
                "--qemu-arg=-d"
            ]
        );
        assert!(Cli::defaults().to_args().is_empty());
    }

    #[test]
    fn a_remote_destination_defaults_to_tcp() {
        let cli = Cli::try_parse_from(["gp-launch", "--dst-host", "bench2"]).unwrap();
        assert_eq!(cli.transport, Transport::Tcp);
        assert_eq!(
            cli.to_args(),
            ["--transport", "tcp", "--dst-host", "bench2"]
        );
        let rdma =
            Cli::try_parse_from(["gp-launch", "--dst-host", "b", "--transport", "rdma"]).unwrap();
        assert_eq!(rdma.transport, Transport::Rdma);
        // Given explicitly, unix stays unix (and gp-launch refuses it, naming the fix).
        let unix =
            Cli::try_parse_from(["gp-launch", "--dst-host", "b", "--transport", "unix"]).unwrap();
        assert_eq!(unix.transport, Transport::Unix);
        assert_eq!(unix.to_args(), ["--transport", "unix", "--dst-host", "b"]);
    }

    #[test]
    fn mem_sizes() {
        assert_eq!(parse_mem("1").unwrap(), GIB);
        assert_eq!(parse_mem("1.5").unwrap(), 3 * GIB / 2);
        assert_eq!(parse_mem("256M").unwrap(), 256 * MIB);
        assert_eq!(parse_mem("256MiB").unwrap(), 256 * MIB);
        assert_eq!(parse_mem("1.5G").unwrap(), 1536 * MIB);
        assert_eq!(parse_mem("2g").unwrap(), 2 * GIB);
        assert_eq!(parse_mem("524288k").unwrap(), 512 * MIB);
        for bad in ["0", "0M", "", "abc", "1.0000001", "12Q", "-1", "1e3"] {
            assert!(parse_mem(bad).is_err(), "{bad} should be refused");
        }
        assert!(parse_mem("0").unwrap_err().contains("more than 0"));
        assert_eq!(format_size(256 * MIB), "256M");
        assert_eq!(format_size(2 * GIB), "2G");
    }

    #[test]
    fn guest_ram_and_dirty_ring_limits_are_the_parser_s() {
        assert_eq!(parse_guest_mem("128M").unwrap(), 128 * MIB);
        let e = parse_guest_mem("64M").unwrap_err();
        assert!(e.contains("too small") && e.contains("128M"), "{e}");
        for ok in ["0", "1024", "4096", "65536"] {
            assert!(parse_dirty_ring_size(ok).is_ok(), "{ok}");
        }
        for bad in ["1000", "100", "512", "131072", "-1", "x", ""] {
            let e = parse_dirty_ring_size(bad).unwrap_err();
            assert!(e.contains("power of two"), "{bad}: {e}");
        }
    }

    #[test]
    fn workload_options() {
        let cli = Cli::try_parse_from([
            "gp-launch",
            "--stress-pattern",
            "random",
            "--stress-wss",
            "50%",
            "--stress-dirty-rate",
            "32M",
        ])
        .unwrap();
        assert_eq!(cli.stress_pattern, Some(Pattern::Random));
        assert_eq!(cli.stress_wss, Some(Wss::Pct(50.0)));
        assert_eq!(cli.stress_dirty_rate, Some(32 * MIB));
        for (args, needle) in [
            (["--stress-pattern", "zigzag"], "seq, random or once"),
            (["--stress-wss", "50"], "no unit"),
            (["--stress-dirty-rate", "0"], "more than 0"),
        ] {
            let e = Cli::try_parse_from(["gp-launch", args[0], args[1]]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{e}");
            assert!(e.to_string().contains(needle), "{e}");
        }
    }

    #[test]
    fn defaults_match_the_original() {
        let cli = Cli::try_parse_from(["gp-launch"]).unwrap();
        assert_eq!(cli.cpus, 1);
        assert_eq!(cli.mem, GIB);
        assert_eq!(cli.transport, Transport::Unix);
        assert_eq!(cli.accel, AccelArg::Auto);
        assert_eq!(cli.binary, "qemu-system-x86_64");
    }

    #[test]
    fn bad_values_are_errors_not_defaults() {
        for args in [
            &["gp-launch", "--cpus", "0"][..],
            &["gp-launch", "--mem", "0"],
            &["gp-launch", "--src-cpu-bind", "1-0"],
            &["gp-launch", "--transport", "carrier-pigeon"],
            &["gp-launch", "--accel", "hvf"],
        ] {
            let e = Cli::try_parse_from(args).unwrap_err();
            assert!(
                matches!(
                    e.kind(),
                    clap::error::ErrorKind::ValueValidation | clap::error::ErrorKind::InvalidValue
                ),
                "{args:?}: {e}"
            );
        }
        let cli = Cli::try_parse_from([
            "gp-launch",
            "--src-qemu-arg",
            "-d",
            "--src-qemu-arg",
            "guest_errors",
            "--src-cpu-bind",
            "0-1",
        ])
        .unwrap();
        assert_eq!(cli.src_qemu_args, ["-d", "guest_errors"]);
        assert_eq!(cli.src_cpu_bind, Some(IdList(vec![0, 1])));
    }
}
