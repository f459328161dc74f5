//! Command-line options: every scenario knob of the original guestperf, plus generic
//! capabilities and parameters and the run's timing.
//!
//! [`Args`] is a `clap::Args` struct so that `guestperf` and `gp-batch` flatten it into their own
//! command lines: one definition of every option, its help, default and value parser.
//! [`Args::to_args`] writes a parsed `Args` back as gp-migrate's argv (how the wrappers run this
//! stage); a test checks that every option survives the trip.

use std::ffi::OsString;
use std::time::Duration;

use clap::{Command, CommandFactory, Parser};
use gp_records::migrate::Scenario;
use gp_stage::argv::{display, Argv};

use crate::plan::Extras;
use crate::schema::parse_bool;

// gp-migrate's options. Parse with `Parser` (`Args::parse`, `Args::try_parse_from`), or flatten
// into another command line with `#[command(flatten)]`. No doc comment or `#[command]` attribute
// on the struct: clap would apply it to the command it is flattened into. gp-migrate's own about
// is in `command()` below.
#[derive(Debug, Clone, PartialEq, clap::Args)]
#[group(skip)]
pub struct Args {
    /// Scenario name, carried into the records.
    #[arg(long, default_value = "default")]
    pub name: String,

    /// Seconds to let the workload settle before migrating, and to run on the destination after.
    /// Before migrating it is a minimum, counted from the workload's first record: gp-migrate
    /// also waits for every workload thread to be warm and its rate steady (unless --cold).
    #[arg(long, value_name = "SECS", default_value_t = 15.0, value_parser = non_negative_secs)]
    pub sleep: f64,
    /// Migrate a cold guest on purpose: wait only --sleep, not for every workload thread to have
    /// touched its memory (warm) nor for its rate to be steady.
    #[arg(long)]
    pub cold: bool,
    /// Longest wait for a steady workload rate once every thread is warm, seconds; the
    /// migration then starts anyway and the scenario record says the rate was not steady.
    #[arg(long, value_name = "SECS", default_value_t = 60.0, value_parser = non_negative_secs)]
    pub steady_max: f64,

    /// Cancel the migration once it has made more than N passes over RAM.
    #[arg(long, value_name = "N", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_iters: u64,
    /// Cancel the migration if it has not completed after SECS seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_time: u64,
    /// Maximum migration bandwidth, MiB/s.
    #[arg(long, value_name = "MIB_S", default_value_t = 125_000)]
    pub bandwidth: u64,
    /// Maximum tolerated downtime, ms.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub downtime: u64,

    /// Stop the source VM once --pause-iters passes over RAM have started.
    #[arg(long)]
    pub pause: bool,
    /// Passes over RAM started before --pause stops the source.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub pause_iters: u64,

    /// Switch to post-copy once --post-copy-iters passes over RAM have started.
    #[arg(long)]
    pub post_copy: bool,
    /// Passes over RAM started before --post-copy switches over.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub post_copy_iters: u64,

    /// Throttle the guest's vCPUs while migrating (auto-converge).
    #[arg(long)]
    pub auto_converge: bool,
    /// Throttle increment, percent of CPU time.
    #[arg(long, value_name = "PCT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=100))]
    pub auto_converge_step: u64,

    /// Multi-thread compression (QEMU < 9.1 only; refused on newer QEMU).
    #[arg(long)]
    pub compression_mt: bool,
    /// Compression threads for --compression-mt.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=255))]
    pub compression_mt_threads: u64,

    /// XBZRLE delta compression of re-sent pages.
    #[arg(long)]
    pub compression_xbzrle: bool,
    /// XBZRLE cache size, percent of guest RAM (rounded down to a power of two).
    #[arg(long, value_name = "PCT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=100))]
    pub compression_xbzrle_cache: u64,

    /// Send RAM over several channels (multifd).
    #[arg(long)]
    pub multifd: bool,
    /// Channels for --multifd.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=255))]
    pub multifd_channels: u64,
    /// Multifd compression method; checked against what this QEMU has compiled in.
    #[arg(long, value_name = "METHOD", default_value = "none",
          value_parser = ["none", "zlib", "zstd", "qpl", "uadk"])]
    pub multifd_compression: String,

    /// Limit each vCPU's dirty rate (needs KVM with a dirty ring).
    #[arg(long)]
    pub dirty_limit: bool,
    /// Dirty-limit period, ms.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub x_vcpu_dirty_limit_period: u64,
    /// Dirty-limit rate per vCPU, MB/s.
    #[arg(long, value_name = "MB_S", default_value_t = 1)]
    pub vcpu_dirty_limit: u64,

    /// Set any migration capability (repeatable): NAME or NAME=on|off.
    #[arg(long = "capability", value_name = "NAME[=on|off]", value_parser = parse_capability)]
    pub capabilities: Vec<(String, bool)>,
    /// Set any migration parameter (repeatable), typed per this QEMU's schema.
    #[arg(long = "parameter", value_name = "NAME=VALUE", value_parser = parse_parameter)]
    pub parameters: Vec<(String, String)>,

    /// Before migrating, have QEMU measure the guest's dirty rate for SECS seconds
    /// (calc-dirty-rate) in each mode this QEMU and accelerator support (`dirty_rate` records).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=60))]
    pub calc_dirty_rate: Option<u64>,

    /// query-migrate poll interval, ms.
    #[arg(long, value_name = "MS", default_value_t = 50.0, value_parser = poll_ms)]
    pub poll_ms: f64,
    /// Longest wait for any QMP reply, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 20.0, value_parser = positive_secs)]
    pub qmp_timeout: f64,
    /// Longest wait for gp-launch's VMs and for the workload to run (before and after), seconds.
    #[arg(long, value_name = "SECS", default_value_t = 180.0, value_parser = positive_secs)]
    pub workload_timeout: f64,
    /// Do not wait for the guest workload's records (for guests that do not run `stress`).
    #[arg(long)]
    pub no_wait_workload: bool,
    /// After quitting the VMs, longest wait for the input to end, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60.0, value_parser = positive_secs)]
    pub drain_timeout: f64,
}

/// gp-migrate's own command: its name and about, then the options.
fn command() -> Command {
    Command::new("gp-migrate")
        .version(env!("CARGO_PKG_VERSION"))
        // `--bandwidth -1` is a bad value of --bandwidth, not an unknown option `-1`.
        .allow_negative_numbers(true)
        .about(
            "Drive a QEMU live migration between the VMs gp-launch started, and record all of it",
        )
        .long_about(
            "Drive a QEMU live migration between the VMs gp-launch started, and record all of it.

Reads gp-launch's records on stdin and passes every line through to stdout, adding its own: \
`scenario`, `progress` (every query-migrate snapshot), `qmp_event`, `action` and `result`. It \
waits for the workload to run and settle, configures and starts the migration, applies the \
scenario's strategies, and ends the run by quitting both VMs.

Exit status: 0 completed, 3 failed, 4 cancelled (--max-iters/--max-time), 5 interrupted (closed \
output, input ended), 6 unsupported by this QEMU, 1 other errors, 2 usage, 128+N killed by \
signal N (SIGHUP 129, SIGINT 130, SIGTERM 143).",
        )
}

gp_stage::stage_parser!(Args, command());

fn non_negative_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if (0.0..1e9).contains(&v) {
        Ok(v)
    } else {
        Err(format!("'{s}' must be 0 or more seconds"))
    }
}

fn positive_secs(s: &str) -> Result<f64, String> {
    let v = non_negative_secs(s)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("'{s}' must be more than 0 seconds"))
    }
}

fn poll_ms(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of ms"))?;
    if (1.0..=10_000.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("'{s}' must be between 1 and 10000 ms"))
    }
}

fn parse_capability(s: &str) -> Result<(String, bool), String> {
    let (name, state) = match s.split_once('=') {
        Some((n, v)) => (
            n,
            parse_bool(v).ok_or_else(|| format!("'{v}' is not on or off (in '{s}')"))?,
        ),
        None => (s, true),
    };
    check_name(name)?;
    Ok((name.to_string(), state))
}

fn parse_parameter(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=VALUE"))?;
    check_name(name)?;
    Ok((name.to_string(), value.to_string()))
}

fn check_name(name: &str) -> Result<(), String> {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(())
    } else {
        Err(format!(
            "'{name}' is not a QEMU migration capability or parameter name"
        ))
    }
}

impl Args {
    /// gp-migrate's defaults: the command line with no options.
    pub fn defaults() -> Args {
        Args::try_parse_from(["gp-migrate"]).expect("every gp-migrate option has a default")
    }

    /// The gp-migrate arguments that parse to `self`: every option that differs from its
    /// default.
    pub fn to_args(&self) -> Vec<OsString> {
        let d = Args::defaults();
        let mut w = Argv::new(Args::command());
        w.changed("name", &self.name, &d.name, display)
            .changed("sleep", &self.sleep, &d.sleep, display)
            .flag("cold", self.cold)
            .changed("steady_max", &self.steady_max, &d.steady_max, display)
            .changed("max_iters", &self.max_iters, &d.max_iters, display)
            .changed("max_time", &self.max_time, &d.max_time, display)
            .changed("bandwidth", &self.bandwidth, &d.bandwidth, display)
            .changed("downtime", &self.downtime, &d.downtime, display)
            .flag("pause", self.pause)
            .changed("pause_iters", &self.pause_iters, &d.pause_iters, display)
            .flag("post_copy", self.post_copy)
            .changed(
                "post_copy_iters",
                &self.post_copy_iters,
                &d.post_copy_iters,
                display,
            )
            .flag("auto_converge", self.auto_converge)
            .changed(
                "auto_converge_step",
                &self.auto_converge_step,
                &d.auto_converge_step,
                display,
            )
            .flag("compression_mt", self.compression_mt)
            .changed(
                "compression_mt_threads",
                &self.compression_mt_threads,
                &d.compression_mt_threads,
                display,
            )
            .flag("compression_xbzrle", self.compression_xbzrle)
            .changed(
                "compression_xbzrle_cache",
                &self.compression_xbzrle_cache,
                &d.compression_xbzrle_cache,
                display,
            )
            .flag("multifd", self.multifd)
            .changed(
                "multifd_channels",
                &self.multifd_channels,
                &d.multifd_channels,
                display,
            )
            .changed(
                "multifd_compression",
                &self.multifd_compression,
                &d.multifd_compression,
                display,
            )
            .flag("dirty_limit", self.dirty_limit)
            .changed(
                "x_vcpu_dirty_limit_period",
                &self.x_vcpu_dirty_limit_period,
                &d.x_vcpu_dirty_limit_period,
                display,
            )
            .changed(
                "vcpu_dirty_limit",
                &self.vcpu_dirty_limit,
                &d.vcpu_dirty_limit,
                display,
            )
            .each("capabilities", &self.capabilities, |(name, on)| {
                format!("{name}={}", if *on { "on" } else { "off" }).into()
            })
            .each("parameters", &self.parameters, |(name, value)| {
                format!("{name}={value}").into()
            })
            .changed(
                "calc_dirty_rate",
                &self.calc_dirty_rate,
                &d.calc_dirty_rate,
                |v| display(v.as_ref().expect("differs from the default None")),
            )
            .changed("poll_ms", &self.poll_ms, &d.poll_ms, display)
            .changed("qmp_timeout", &self.qmp_timeout, &d.qmp_timeout, display)
            .changed(
                "workload_timeout",
                &self.workload_timeout,
                &d.workload_timeout,
                display,
            )
            .flag("no_wait_workload", self.no_wait_workload)
            .changed(
                "drain_timeout",
                &self.drain_timeout,
                &d.drain_timeout,
                display,
            );
        w.finish()
    }

    /// The scenario these options describe.
    pub fn scenario(&self) -> Scenario {
        Scenario {
            name: self.name.clone(),
            downtime: self.downtime,
            bandwidth: self.bandwidth,
            max_iters: self.max_iters,
            max_time: self.max_time,
            pause: self.pause,
            pause_iters: self.pause_iters,
            post_copy: self.post_copy,
            post_copy_iters: self.post_copy_iters,
            auto_converge: self.auto_converge,
            auto_converge_step: self.auto_converge_step,
            compression_mt: self.compression_mt,
            compression_mt_threads: self.compression_mt_threads,
            compression_xbzrle: self.compression_xbzrle,
            compression_xbzrle_cache: self.compression_xbzrle_cache,
            multifd: self.multifd,
            multifd_channels: self.multifd_channels,
            multifd_compression: self.multifd_compression.clone(),
            dirty_limit: self.dirty_limit,
            x_vcpu_dirty_limit_period: self.x_vcpu_dirty_limit_period,
            vcpu_dirty_limit: self.vcpu_dirty_limit,
        }
    }

    pub fn extras(&self) -> Extras {
        Extras {
            capabilities: self.capabilities.clone(),
            parameters: self.parameters.clone(),
        }
    }

    pub fn poll(&self) -> Duration {
        Duration::from_secs_f64(self.poll_ms / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Args::command().debug_assert();
        assert_eq!(Args::command().get_name(), "gp-migrate");
    }

    /// A value other than the default for every option that takes a free value.
    const SAMPLES: &[(&str, &[&str])] = &[
        ("name", &["--name", "try 1"]),
        ("sleep", &["--sleep", "0.5"]),
        ("steady_max", &["--steady-max", "7.5"]),
        ("max_iters", &["--max-iters", "3"]),
        ("max_time", &["--max-time", "40"]),
        ("bandwidth", &["--bandwidth", "0"]),
        ("downtime", &["--downtime", "20"]),
        ("pause_iters", &["--pause-iters", "0"]),
        ("post_copy_iters", &["--post-copy-iters", "1"]),
        ("auto_converge_step", &["--auto-converge-step", "100"]),
        ("compression_mt_threads", &["--compression-mt-threads", "4"]),
        (
            "compression_xbzrle_cache",
            &["--compression-xbzrle-cache", "50"],
        ),
        ("multifd_channels", &["--multifd-channels", "64"]),
        (
            "x_vcpu_dirty_limit_period",
            &["--x-vcpu-dirty-limit-period", "800"],
        ),
        ("vcpu_dirty_limit", &["--vcpu-dirty-limit", "20"]),
        (
            "capabilities",
            &["--capability", "events", "--capability", "zero-blocks=off"],
        ),
        (
            "parameters",
            &[
                "--parameter",
                "announce-max=600",
                "--parameter",
                "tls-creds=",
            ],
        ),
        ("calc_dirty_rate", &["--calc-dirty-rate", "2"]),
        ("poll_ms", &["--poll-ms", "1000"]),
        ("qmp_timeout", &["--qmp-timeout", "1.25"]),
        ("workload_timeout", &["--workload-timeout", "30"]),
        ("drain_timeout", &["--drain-timeout", "5"]),
    ];

    #[test]
    fn every_option_is_written_back_as_it_was_parsed() {
        gp_stage::argv::assert_round_trip::<Args>(SAMPLES, Args::to_args);
        let args =
            Args::try_parse_from(["gp-migrate", "--post-copy", "--post-copy-iters", "5"]).unwrap();
        // 5 is the default: written only when it differs.
        assert_eq!(args.to_args(), ["--post-copy"]);
        assert!(Args::defaults().to_args().is_empty());
    }

    #[test]
    fn defaults_are_the_original_guestperf_scenario() {
        let args = Args::try_parse_from(["gp-migrate"]).unwrap();
        assert_eq!(args.scenario(), Scenario::default());
        assert_eq!(args.sleep, 15.0);
        assert_eq!(args.poll_ms, 50.0);
        assert_eq!(args.qmp_timeout, 20.0);
    }

    #[test]
    fn generic_capabilities_and_parameters_parse() {
        let args = Args::try_parse_from([
            "gp-migrate",
            "--capability",
            "return-path",
            "--capability",
            "zero-blocks=off",
            "--parameter",
            "announce-max=600",
            "--parameter",
            "tls-creds=",
        ])
        .unwrap();
        assert_eq!(
            args.capabilities,
            [
                ("return-path".to_string(), true),
                ("zero-blocks".to_string(), false)
            ]
        );
        assert_eq!(
            args.parameters,
            [
                ("announce-max".to_string(), "600".to_string()),
                ("tls-creds".into(), "".into())
            ]
        );
    }

    #[test]
    fn bad_values_are_errors_not_defaults() {
        for bad in [
            &["gp-migrate", "--capability", "events=maybe"][..],
            &["gp-migrate", "--parameter", "downtime-limit"],
            &["gp-migrate", "--parameter", "a b=1"],
            &["gp-migrate", "--multifd-compression", "lz4"],
            &["gp-migrate", "--poll-ms", "0"],
            &["gp-migrate", "--sleep", "-1"],
            &["gp-migrate", "--max-iters", "many"],
        ] {
            assert!(
                Args::try_parse_from(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }
}
