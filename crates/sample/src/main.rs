use std::time::Duration;

use clap::Parser;
use gp_sample::{parse_interval, run, Ended, Error, Options, STAGE};
use gp_stage::signals::Forwarder;
use gp_stage::ExitCode;

/// Sample host CPU time of each QEMU in the stream (stdin to stdout, every line passed through).
///
/// For each `vm` record, writes a `cpu_sample` record every INTERVAL with the user and system
/// time of the QEMU process and of each thread (vCPU, migration, other), until the VM's
/// `vm_exit` record or the process is gone. Ends when stdin ends.
#[derive(Debug, Parser)]
#[command(name = "gp-sample", version)]
struct Cli {
    /// Sampling interval, with a unit: 100ms, 0.5s.
    #[arg(long, default_value = "100ms", value_parser = parse_interval)]
    interval: Duration,
    /// After SIGINT, SIGTERM or SIGHUP, keep passing input through for this long (so upstream
    /// stages' last records get through), then end. A second signal ends at once.
    #[arg(long, default_value = "10s", value_parser = parse_interval)]
    grace: Duration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    gp_stage::main(STAGE, || {
        let signals = Forwarder::start().map_err(Error::Signals)?;
        let grace = gp_stage::signals::grace_after_signal(cli.grace);
        let stdin = std::io::stdin();
        let opts = Options {
            interval: cli.interval,
            grace,
        };
        let input = std::io::BufReader::with_capacity(1 << 16, stdin);
        let ended = run(
            &opts,
            input,
            std::io::stdout().lock(),
            signals.receiver().clone(),
        )?;
        Ok::<_, Error>(match ended {
            Ended::EndOfInput | Ended::OutputClosed => ExitCode::SUCCESS,
            Ended::Signal(sig) => ExitCode::from(gp_stage::signal_exit_code(sig)),
        })
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
