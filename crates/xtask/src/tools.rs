//! Every binary of the toolkit: its installed name, the cargo package that builds it, and its clap
//! command (for man pages and completions).

use clap::{Command, CommandFactory};

/// One binary with a clap command line.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// The installed name, which is also cargo's binary name.
    pub name: &'static str,
    /// The cargo package that builds it.
    pub package: &'static str,
    command: fn() -> Command,
}

impl Tool {
    /// The clap command, named as installed.
    pub fn command(&self) -> Command {
        (self.command)().name(self.name).bin_name(self.name)
    }
}

/// The binaries with clap definitions, in the order of the README's table.
pub const TOOLS: [Tool; 9] = [
    Tool {
        name: "gp-initrd",
        package: "gp-initrd",
        command: gp_initrd::Cli::command,
    },
    Tool {
        name: "gp-launch",
        package: "gp-launch",
        command: gp_launch::cli::Cli::command,
    },
    Tool {
        name: "gp-migrate",
        package: "gp-migrate",
        command: gp_migrate::Args::command,
    },
    Tool {
        name: "gp-sample",
        package: "gp-sample",
        command: gp_sample::cli::Cli::command,
    },
    Tool {
        name: "gp-collect",
        package: "gp-collect",
        command: gp_collect::cli::Cli::command,
    },
    Tool {
        name: "gp-plot",
        package: "gp-plot",
        command: gp_plot::cli::Args::command,
    },
    Tool {
        name: "guestperf",
        package: "guestperf",
        command: guestperf::oneshot::Cli::command,
    },
    Tool {
        name: "gp-batch",
        package: "guestperf",
        command: guestperf::batch::Cli::command,
    },
    Tool {
        name: "gp-compare",
        package: "gp-compare",
        command: gp_compare::cli::Args::command,
    },
];

/// The guest workload, installed under this name (a plain `stress` would clash with Debian's
/// stress package). It has no clap; its man page is written by hand (see [`crate::generate`]).
pub const STRESS: &str = "gp-stress";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_valid_and_named_as_installed() {
        for tool in TOOLS {
            let cmd = tool.command();
            cmd.clone().debug_assert();
            assert_eq!(cmd.get_name(), tool.name);
            assert!(
                cmd.get_about().is_some() || cmd.get_long_about().is_some(),
                "{} has no about text for its man page's NAME line",
                tool.name
            );
        }
    }
}
