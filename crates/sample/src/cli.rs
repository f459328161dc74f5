//! gp-sample's command line (here, not in main.rs, so man pages and completions can be generated
//! from it).

use std::time::Duration;

use clap::Parser;

use crate::parse_interval;

/// Sample host CPU time of each QEMU in the stream (stdin to stdout, every line passed through).
///
/// For each `vm` record, writes a `cpu_sample` record every INTERVAL with the user and system
/// time of the QEMU process and of each thread (vCPU, migration, other), until the VM's
/// `vm_exit` record or the process is gone. Ends when stdin ends.
#[derive(Debug, Parser)]
#[command(name = "gp-sample", version, allow_negative_numbers = true)]
pub struct Cli {
    /// Sampling interval, with a unit: 100ms, 0.5s.
    #[arg(long, default_value = "100ms", value_parser = parse_interval)]
    pub interval: Duration,
    #[command(flatten)]
    pub grace: gp_stage::signals::GraceArgs,
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
