//! The command line: the original guestperf's hardware and engine options, plus ours.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Boot a source VM running the stress workload and a destination VM waiting for an incoming
/// migration, and stream NDJSON records on stdout until both have exited.
#[derive(Debug, Clone, Parser)]
#[command(name = "gp-launch", version, max_term_width = 100)]
#[command(
    after_help = "Example:\n  gp-launch --accel tcg --mem 256M --cpus 2 | gp-migrate | gp-collect > run.json"
)]
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
    #[arg(long, value_name = "SIZE", default_value = "1", value_parser = parse_mem)]
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
    #[arg(long, value_name = "ENTRIES", default_value_t = 0)]
    pub dirty_ring_size: u32,

    /// Migration transport the destination listens on.
    #[arg(long, value_enum, default_value_t = Transport::Unix)]
    pub transport: Transport,

    /// Run the destination on another host, through ssh (batch mode, your ssh config). HOST
    /// needs gp-launch, gp-sample, QEMU, and the kernel and initrd at the same paths; use
    /// --transport tcp or rdma. See docs/remote.md.
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

    /// Also copy every guest console line and QEMU's stderr to stderr.
    #[arg(long)]
    pub debug: bool,

    /// Let the guest kernel print its boot log (no `quiet`), and explain each decision
    /// (accelerator probe, QEMU command lines) on stderr.
    #[arg(long)]
    pub verbose: bool,
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

fn parse_ids(s: &str) -> Result<IdList, String> {
    gp_qemu::bind::parse_list(s)
        .map(IdList)
        .map_err(|e| e.to_string())
}

pub use gp_qemu::transport::Transport;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccelArg {
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
