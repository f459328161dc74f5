//! The stages' options as `guestperf` and `gp-batch` take them, and what a scenario needs QEMU to
//! accept.
//!
//! The wrappers declare none of gp-launch's or gp-migrate's options again: they flatten the
//! stages' own structs ([`Launch`] is `gp_launch::cli::Cli`, [`Migrate`] is `gp_migrate::Args`),
//! so the option names (the original guestperf's), help, defaults and value parsers are the
//! stages' own, and a bad value is refused before anything starts, `--dry-run` included. Each
//! struct writes itself back as its stage's argv (`to_args`, only what differs from the stage's
//! default), which is how the wrappers run the stages.

use std::ffi::OsString;

use clap::Args;
use gp_stage::argv::option_arg;

pub use gp_launch::cli::{AccelArg as Accel, Cli as Launch};
pub use gp_migrate::Args as Migrate;
pub use gp_qemu::transport::Transport;

/// Help heading of gp-launch's options.
pub const LAUNCH_HEADING: &str = "Hardware and workload (passed to gp-launch)";
/// Help heading of gp-migrate's options.
pub const MIGRATE_HEADING: &str = "Migration scenario (passed to gp-migrate)";

/// gp-sample's option, as the wrappers take it.
#[derive(Debug, Clone, Default, PartialEq, Args)]
#[group(skip)]
pub struct Sampling {
    // The help names gp-sample's default from gp-sample itself.
    #[arg(long, value_name = "DURATION", value_parser = sample_interval, help = sample_interval_help())]
    pub sample_interval: Option<String>,
}

fn sample_interval_help() -> String {
    format!(
        "Host CPU sampling interval with a unit, e.g. 250ms or 1s (gp-sample --interval) \
         [default: {}ms]",
        gp_sample::DEFAULT_INTERVAL.as_millis()
    )
}

/// gp-sample's own parser; the text is kept to be passed on as given.
fn sample_interval(s: &str) -> Result<String, String> {
    gp_sample::parse_interval(s).map(|_| s.to_string())
}

impl Sampling {
    /// gp-sample's arguments.
    pub fn to_args(&self) -> Vec<OsString> {
        match &self.sample_interval {
            Some(i) => option_arg("--interval", i.into()),
            None => Vec::new(),
        }
    }
}

/// What a scenario needs QEMU to accept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Requirements {
    pub capabilities: Vec<String>,
    pub parameters: Vec<(String, serde_json::Value)>,
}

/// The migration capabilities QEMU must accept for `scenario` (QEMU's names), with the migration
/// parameters it must accept that do not depend on the guest: what the batch's probe asks QEMU
/// before running the scenario.
pub fn qemu_requirements(scenario: &Migrate) -> Requirements {
    let mut req = Requirements::default();
    let mut param = |name: &str, value: serde_json::Value| {
        req.parameters.push((name.to_string(), value));
    };
    let mut caps = Vec::new();
    if scenario.post_copy {
        caps.push("postcopy-ram");
    }
    if scenario.auto_converge {
        caps.push("auto-converge");
        param("cpu-throttle-increment", scenario.auto_converge_step.into());
    }
    if scenario.compression_mt {
        caps.push("compress");
    }
    if scenario.compression_xbzrle {
        caps.push("xbzrle");
    }
    if scenario.multifd {
        caps.push("multifd");
        param("multifd-channels", scenario.multifd_channels.into());
        param(
            "multifd-compression",
            scenario.multifd_compression.clone().into(),
        );
    }
    if scenario.dirty_limit {
        caps.push("dirty-limit");
        param(
            "x-vcpu-dirty-limit-period",
            scenario.x_vcpu_dirty_limit_period.into(),
        );
        param("vcpu-dirty-limit", scenario.vcpu_dirty_limit.into());
    }
    req.capabilities = caps.into_iter().map(String::from).collect();
    req
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Debug, Parser)]
    struct Both {
        #[command(flatten)]
        launch: Launch,
        #[command(flatten)]
        migrate: Migrate,
        #[command(flatten)]
        sampling: Sampling,
    }

    #[test]
    fn the_stages_options_flatten_into_one_command_line() {
        use clap::CommandFactory;
        Both::command().debug_assert();
        let both = Both::parse_from(["x", "--mem", "4", "--post-copy", "--sample-interval", "1s"]);
        assert_eq!(both.launch.mem, 4 << 30);
        assert!(both.migrate.post_copy);
        assert_eq!(both.sampling.to_args(), ["--interval", "1s"]);
        assert!(Sampling::default().to_args().is_empty());
    }

    #[test]
    fn the_sample_interval_is_checked_by_gp_sample_s_parser() {
        for bad in ["0", "100", "1ms", "2h", "-1s", ""] {
            let e = Both::try_parse_from(["x", &format!("--sample-interval={bad}")]).unwrap_err();
            assert!(e.to_string().contains("--sample-interval"), "{bad}: {e}");
        }
        assert!(sample_interval_help().ends_with("[default: 100ms]"));
    }

    #[test]
    fn requirements_name_qemu_capabilities_and_parameters() {
        let multifd =
            Migrate::try_parse_from(["gp-migrate", "--multifd", "--multifd-compression", "qpl"])
                .unwrap();
        let req = qemu_requirements(&multifd);
        assert_eq!(req.capabilities, ["multifd"]);
        assert_eq!(
            req.parameters,
            [
                ("multifd-channels".to_string(), json!(2)),
                ("multifd-compression".to_string(), json!("qpl"))
            ]
        );
        let mt = Migrate::try_parse_from(["gp-migrate", "--compression-mt"]).unwrap();
        assert_eq!(qemu_requirements(&mt).capabilities, ["compress"]);
        let dl = Migrate::try_parse_from(["gp-migrate", "--dirty-limit", "--post-copy"]).unwrap();
        let req = qemu_requirements(&dl);
        assert_eq!(req.capabilities, ["postcopy-ram", "dirty-limit"]);
        assert_eq!(
            req.parameters,
            [
                ("x-vcpu-dirty-limit-period".to_string(), json!(500)),
                ("vcpu-dirty-limit".to_string(), json!(1))
            ]
        );
        assert_eq!(
            qemu_requirements(&Migrate::defaults()),
            Requirements::default()
        );
    }
}
