//! The command-line options the one-shot and the batch share, and which stage each belongs to.
//!
//! Option names and meanings are the original guestperf's. The wrappers forward only what the
//! user set: each stage owns its defaults (documented in docs/guestperf.md), so the one-shot and
//! the equivalent hand-written pipeline behave the same.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

pub use gp_qemu::transport::Transport;

/// Accelerator for both VMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Accel {
    /// KVM when it works, else TCG (gp-launch probes KVM first).
    Auto,
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Auto => "auto",
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// Hardware and engine options: all go to gp-launch.
#[derive(Debug, Clone, Default, PartialEq, Args)]
#[command(next_help_heading = "Hardware (passed to gp-launch)")]
pub struct HardwareArgs {
    /// QEMU binary [default: qemu-system-x86_64 on PATH]
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// Guest kernel [default: the newest vmlinuz in ~/.cache/guestperf/kernel]
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Stress initrd [default: ~/.cache/guestperf/initrd-stress.img]
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<PathBuf>,
    /// Number of guest vCPUs [default: 1]
    #[arg(long, value_name = "N")]
    pub cpus: Option<u32>,
    /// Guest RAM: GiB as in the original (`4`), or with a unit (`512M`) [default: 1]
    #[arg(long, value_name = "SIZE")]
    pub mem: Option<String>,
    /// Host CPUs for the source QEMU, e.g. `0,1` [default: unbound]
    #[arg(long, value_name = "CPUS")]
    pub src_cpu_bind: Option<String>,
    /// Host NUMA nodes for the source QEMU's memory, e.g. `0` [default: unbound]
    #[arg(long, value_name = "NODES")]
    pub src_mem_bind: Option<String>,
    /// Host CPUs for the destination QEMU, e.g. `2,3` [default: unbound]
    #[arg(long, value_name = "CPUS")]
    pub dst_cpu_bind: Option<String>,
    /// Host NUMA nodes for the destination QEMU's memory, e.g. `1` [default: unbound]
    #[arg(long, value_name = "NODES")]
    pub dst_mem_bind: Option<String>,
    /// Preallocate guest RAM
    #[arg(long)]
    pub prealloc_pages: bool,
    /// Back guest RAM with huge pages
    #[arg(long)]
    pub huge_pages: bool,
    /// Lock guest RAM in host memory
    #[arg(long)]
    pub locked_pages: bool,
    /// KVM dirty ring size in entries; 0 uses the dirty bitmap [default: 0]
    #[arg(long, value_name = "N")]
    pub dirty_ring_size: Option<u32>,
    /// Migration transport [default: unix]
    #[arg(long, value_enum)]
    pub transport: Option<Transport>,
    /// Run the destination VM on this host, over ssh (the transport then defaults to tcp)
    /// [default: this host]
    #[arg(long, value_name = "HOST")]
    pub dst_host: Option<String>,
    /// ssh configuration file for --dst-host (ssh -F) [default: ~/.ssh/config]
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// ssh option for --dst-host (ssh -o KEY=VALUE); repeatable
    #[arg(long = "ssh-option", value_name = "KEY=VALUE")]
    pub ssh_options: Vec<String>,
    /// Accelerator: `auto` tries KVM and falls back to TCG when KVM is missing or broken
    /// [default: auto]
    #[arg(long, value_enum)]
    pub accel: Option<Accel>,
    /// Debug output from the stages (QEMU command lines, guest kernel messages)
    #[arg(long)]
    pub debug: bool,
    /// Say what each stage is doing
    #[arg(long)]
    pub verbose: bool,
}

impl HardwareArgs {
    /// gp-launch's arguments for these options.
    pub fn launch_args(&self) -> Vec<OsString> {
        let mut args = ArgList::default();
        args.opt(
            "--binary",
            self.binary.as_ref().map(|p| p.as_os_str().to_owned()),
        );
        args.opt(
            "--kernel",
            self.kernel.as_ref().map(|p| p.as_os_str().to_owned()),
        );
        args.opt(
            "--initrd",
            self.initrd.as_ref().map(|p| p.as_os_str().to_owned()),
        );
        args.opt("--cpus", self.cpus);
        args.opt("--mem", self.mem.clone());
        args.opt("--src-cpu-bind", self.src_cpu_bind.clone());
        args.opt("--src-mem-bind", self.src_mem_bind.clone());
        args.opt("--dst-cpu-bind", self.dst_cpu_bind.clone());
        args.opt("--dst-mem-bind", self.dst_mem_bind.clone());
        args.flag("--prealloc-pages", self.prealloc_pages);
        args.flag("--huge-pages", self.huge_pages);
        args.flag("--locked-pages", self.locked_pages);
        args.opt("--dirty-ring-size", self.dirty_ring_size);
        // A remote destination cannot use a unix socket: default to TCP there (gp-launch
        // refuses --dst-host with the unix transport).
        let transport = self
            .transport
            .or(self.dst_host.as_ref().map(|_| Transport::Tcp));
        args.opt("--transport", transport.map(Transport::as_str));
        args.opt("--dst-host", self.dst_host.clone());
        args.opt(
            "--ssh-config",
            self.ssh_config.as_ref().map(|p| p.as_os_str().to_owned()),
        );
        for o in &self.ssh_options {
            args.opt("--ssh-option", Some(o.clone()));
        }
        args.opt("--accel", self.accel.map(Accel::as_str));
        args.flag("--debug", self.debug);
        args.flag("--verbose", self.verbose);
        args.0
    }
}

/// The migration scenario: all go to gp-migrate.
#[derive(Debug, Clone, Default, PartialEq, Args)]
#[command(next_help_heading = "Migration scenario (passed to gp-migrate)")]
pub struct ScenarioArgs {
    /// Seconds to let the workload run before migrating, and after [default: 15]
    #[arg(long, value_name = "SECONDS")]
    pub sleep: Option<f64>,
    /// Cancel the migration after this many passes over RAM [default: 30]
    #[arg(long, value_name = "N")]
    pub max_iters: Option<u64>,
    /// Cancel the migration after this many seconds [default: 300]
    #[arg(long, value_name = "SECONDS")]
    pub max_time: Option<u64>,
    /// Maximum migration bandwidth, MiB/s [default: 125000]
    #[arg(long, value_name = "MIB_PER_S")]
    pub bandwidth: Option<u64>,
    /// Maximum downtime, ms [default: 500]
    #[arg(long, value_name = "MS")]
    pub downtime: Option<u64>,
    /// Pause the guest after --pause-iters passes
    #[arg(long)]
    pub pause: bool,
    /// Passes before pausing [default: 5]
    #[arg(long, value_name = "N")]
    pub pause_iters: Option<u64>,
    /// Switch to post-copy after --post-copy-iters passes
    #[arg(long)]
    pub post_copy: bool,
    /// Passes before switching to post-copy [default: 5]
    #[arg(long, value_name = "N")]
    pub post_copy_iters: Option<u64>,
    /// Throttle the guest's vCPUs to help convergence
    #[arg(long)]
    pub auto_converge: bool,
    /// Throttle increment, percent [default: 10]
    #[arg(long, value_name = "PCT")]
    pub auto_converge_step: Option<u64>,
    /// Multi-thread compression (removed in QEMU 9.1; refused by newer QEMUs)
    #[arg(long)]
    pub compression_mt: bool,
    /// Compression threads [default: 1]
    #[arg(long, value_name = "N")]
    pub compression_mt_threads: Option<u64>,
    /// XBZRLE delta compression
    #[arg(long)]
    pub compression_xbzrle: bool,
    /// XBZRLE cache size, percent of guest RAM [default: 10]
    #[arg(long, value_name = "PCT")]
    pub compression_xbzrle_cache: Option<u64>,
    /// Multiple migration channels
    #[arg(long)]
    pub multifd: bool,
    /// Number of multifd channels [default: 2]
    #[arg(long, value_name = "N")]
    pub multifd_channels: Option<u64>,
    /// Multifd compression: none, zlib, zstd, qpl, uadk (what QEMU was built with) [default: none]
    #[arg(long, value_name = "METHOD")]
    pub multifd_compression: Option<String>,
    /// Dirty-page rate limit (needs KVM with --dirty-ring-size)
    #[arg(long)]
    pub dirty_limit: bool,
    /// Dirty-limit throttle period, ms [default: 500]
    #[arg(long, value_name = "MS")]
    pub x_vcpu_dirty_limit_period: Option<u64>,
    /// Dirty-page rate limit per vCPU, MB/s [default: 1]
    #[arg(long, value_name = "MB_PER_S")]
    pub vcpu_dirty_limit: Option<u64>,
    /// Extra migration capability, NAME or NAME=on|off (repeatable)
    #[arg(long, value_name = "NAME[=on|off]")]
    pub capability: Vec<String>,
    /// Extra migration parameter, NAME=VALUE (repeatable)
    #[arg(long, value_name = "NAME=VALUE")]
    pub parameter: Vec<String>,
}

impl ScenarioArgs {
    /// gp-migrate's arguments for these options.
    pub fn migrate_args(&self) -> Vec<OsString> {
        let mut args = ArgList::default();
        args.opt("--sleep", self.sleep);
        args.opt("--max-iters", self.max_iters);
        args.opt("--max-time", self.max_time);
        args.opt("--bandwidth", self.bandwidth);
        args.opt("--downtime", self.downtime);
        args.flag("--pause", self.pause);
        args.opt("--pause-iters", self.pause_iters);
        args.flag("--post-copy", self.post_copy);
        args.opt("--post-copy-iters", self.post_copy_iters);
        args.flag("--auto-converge", self.auto_converge);
        args.opt("--auto-converge-step", self.auto_converge_step);
        args.flag("--compression-mt", self.compression_mt);
        args.opt("--compression-mt-threads", self.compression_mt_threads);
        args.flag("--compression-xbzrle", self.compression_xbzrle);
        args.opt("--compression-xbzrle-cache", self.compression_xbzrle_cache);
        args.flag("--multifd", self.multifd);
        args.opt("--multifd-channels", self.multifd_channels);
        args.opt("--multifd-compression", self.multifd_compression.clone());
        args.flag("--dirty-limit", self.dirty_limit);
        args.opt(
            "--x-vcpu-dirty-limit-period",
            self.x_vcpu_dirty_limit_period,
        );
        args.opt("--vcpu-dirty-limit", self.vcpu_dirty_limit);
        for cap in &self.capability {
            args.opt("--capability", Some(cap.clone()));
        }
        for param in &self.parameter {
            args.opt("--parameter", Some(param.clone()));
        }
        args.0
    }

    /// The migration capabilities QEMU must accept for this scenario (QEMU's names), with the
    /// migration parameters it must accept that do not depend on the guest: what a capability
    /// probe asks QEMU before running the scenario.
    pub fn qemu_requirements(&self) -> Requirements {
        let mut req = Requirements::default();
        if self.post_copy {
            req.capabilities.push("postcopy-ram".into());
        }
        if self.auto_converge {
            req.capabilities.push("auto-converge".into());
            if let Some(step) = self.auto_converge_step {
                req.parameters
                    .push(("cpu-throttle-increment".into(), step.into()));
            }
        }
        if self.compression_mt {
            req.capabilities.push("compress".into());
        }
        if self.compression_xbzrle {
            req.capabilities.push("xbzrle".into());
        }
        if self.multifd {
            req.capabilities.push("multifd".into());
            if let Some(n) = self.multifd_channels {
                req.parameters.push(("multifd-channels".into(), n.into()));
            }
            if let Some(method) = &self.multifd_compression {
                req.parameters
                    .push(("multifd-compression".into(), method.clone().into()));
            }
        }
        if self.dirty_limit {
            req.capabilities.push("dirty-limit".into());
            if let Some(ms) = self.x_vcpu_dirty_limit_period {
                req.parameters
                    .push(("x-vcpu-dirty-limit-period".into(), ms.into()));
            }
            if let Some(rate) = self.vcpu_dirty_limit {
                req.parameters
                    .push(("vcpu-dirty-limit".into(), rate.into()));
            }
        }
        req
    }
}

/// What a scenario needs QEMU to accept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Requirements {
    pub capabilities: Vec<String>,
    pub parameters: Vec<(String, serde_json::Value)>,
}

/// Builds an argument list, leaving out options the user did not set.
#[derive(Debug, Default)]
struct ArgList(Vec<OsString>);

impl ArgList {
    fn flag(&mut self, name: &str, on: bool) {
        if on {
            self.0.push(name.into());
        }
    }

    fn opt<T: Into<ArgValue>>(&mut self, name: &str, value: Option<T>) {
        if let Some(value) = value {
            self.0.extend(option_arg(name, value.into().0));
        }
    }
}

/// `name value` for a stage's command line, or `name=value` when the value starts with `-`:
/// `--mem -1G` would make the stage read `-1G` as an option of its own and say "unexpected
/// argument '-1'", where `--mem=-1G` gets its error about --mem.
pub fn option_arg(name: &str, value: OsString) -> Vec<OsString> {
    if value.as_encoded_bytes().starts_with(b"-") {
        let mut joined = OsString::from(format!("{name}="));
        joined.push(&value);
        vec![joined]
    } else {
        vec![name.into(), value]
    }
}

struct ArgValue(OsString);

macro_rules! arg_value_from_display {
    ($($t:ty),*) => {$(
        impl From<$t> for ArgValue {
            fn from(v: $t) -> Self {
                ArgValue(v.to_string().into())
            }
        }
    )*};
}
arg_value_from_display!(u32, u64, f64, String, &str);

impl From<OsString> for ArgValue {
    fn from(v: OsString) -> Self {
        ArgValue(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Both {
        #[command(flatten)]
        hw: HardwareArgs,
        #[command(flatten)]
        sc: ScenarioArgs,
    }

    fn strings(v: Vec<OsString>) -> Vec<String> {
        v.into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    #[test]
    fn unset_options_are_not_forwarded() {
        let both = Both::parse_from(["x"]);
        assert!(both.hw.launch_args().is_empty());
        assert!(both.sc.migrate_args().is_empty());
    }

    #[test]
    fn the_seed_numa_example_maps_to_gp_launch() {
        let both = Both::parse_from(
            "x --mem 4 --cpus 2 --src-mem-bind 0 --src-cpu-bind 0,1 --dst-mem-bind 1 --dst-cpu-bind 2,3"
                .split(' '),
        );
        assert_eq!(
            strings(both.hw.launch_args()),
            [
                "--cpus",
                "2",
                "--mem",
                "4",
                "--src-cpu-bind",
                "0,1",
                "--src-mem-bind",
                "0",
                "--dst-cpu-bind",
                "2,3",
                "--dst-mem-bind",
                "1"
            ]
        );
        assert!(both.sc.migrate_args().is_empty());
    }

    #[test]
    fn the_seed_post_copy_example_maps_to_gp_migrate() {
        let both = Both::parse_from(["x", "--post-copy", "--post-copy-iters", "5"]);
        assert_eq!(
            strings(both.sc.migrate_args()),
            ["--post-copy", "--post-copy-iters", "5"]
        );
        assert!(both.hw.launch_args().is_empty());
    }

    #[test]
    fn every_option_is_forwarded_under_its_own_name() {
        let argv = "x --binary /q --kernel /k --initrd /i --cpus 3 --mem 512M \
            --src-cpu-bind 0 --src-mem-bind 0 --dst-cpu-bind 1 --dst-mem-bind 0 \
            --prealloc-pages --huge-pages --locked-pages --dirty-ring-size 4096 \
            --transport tcp --dst-host h --ssh-config /c --ssh-option Port=2 \
            --ssh-option User=u --accel tcg --debug --verbose \
            --sleep 2 --max-iters 3 --max-time 4 --bandwidth 5 --downtime 6 --pause \
            --pause-iters 7 --post-copy --post-copy-iters 8 --auto-converge \
            --auto-converge-step 9 --compression-mt --compression-mt-threads 10 \
            --compression-xbzrle --compression-xbzrle-cache 11 --multifd --multifd-channels 12 \
            --multifd-compression zstd --dirty-limit --x-vcpu-dirty-limit-period 13 \
            --vcpu-dirty-limit 14 --capability events --capability x=off \
            --parameter a=1 --parameter b=2";
        let both = Both::parse_from(argv.split_whitespace());
        let launch = strings(both.hw.launch_args()).join(" ");
        let migrate = strings(both.sc.migrate_args()).join(" ");
        let (hw_part, sc_part) = argv[2..].split_at(argv.find("--sleep").unwrap() - 2);
        let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(launch, norm(hw_part));
        assert_eq!(migrate, norm(sc_part));
    }

    #[test]
    fn a_remote_destination_defaults_to_tcp() {
        let both = Both::parse_from(["x", "--dst-host", "bench2"]);
        assert_eq!(
            strings(both.hw.launch_args()),
            ["--transport", "tcp", "--dst-host", "bench2"]
        );
        let rdma = Both::parse_from(["x", "--dst-host", "bench2", "--transport", "rdma"]);
        assert_eq!(
            strings(rdma.hw.launch_args()),
            ["--transport", "rdma", "--dst-host", "bench2"]
        );
    }

    #[test]
    fn bad_values_are_refused_by_the_parser() {
        assert!(Both::try_parse_from(["x", "--cpus", "two"]).is_err());
        assert!(Both::try_parse_from(["x", "--transport", "carrier-pigeon"]).is_err());
        assert!(Both::try_parse_from(["x", "--accel", "hvf"]).is_err());
        assert!(Both::try_parse_from(["x", "--max-iters", "-1"]).is_err());
    }

    #[test]
    fn requirements_name_qemu_capabilities_and_parameters() {
        let sc = ScenarioArgs {
            multifd: true,
            multifd_channels: Some(2),
            multifd_compression: Some("qpl".into()),
            ..Default::default()
        };
        let req = sc.qemu_requirements();
        assert_eq!(req.capabilities, ["multifd"]);
        assert_eq!(
            req.parameters,
            [
                ("multifd-channels".to_string(), serde_json::json!(2)),
                ("multifd-compression".to_string(), serde_json::json!("qpl"))
            ]
        );
        let mt = ScenarioArgs {
            compression_mt: true,
            ..Default::default()
        };
        assert_eq!(mt.qemu_requirements().capabilities, ["compress"]);
        assert_eq!(
            ScenarioArgs::default().qemu_requirements(),
            Requirements::default()
        );
    }
}
