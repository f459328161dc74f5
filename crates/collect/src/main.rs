use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use gp_collect::{run, Error, Options, STAGE};
use gp_stage::signals::Forwarder;
use gp_stage::ExitCode;

/// Read a guestperf-rs record stream (stdin) and write one JSON report of the run.
///
/// The report keeps the original guestperf result layout (so its tools read it) and adds a
/// "summary" and every record under "guestperf_rs"; see docs/report.md.
#[derive(Debug, Parser)]
#[command(name = "gp-collect", version)]
struct Cli {
    /// Write the report to FILE (atomically: a crash leaves the old file or the new one, never
    /// half of one) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Indent the JSON for reading.
    #[arg(long)]
    pretty: bool,
    /// After SIGINT, SIGTERM or SIGHUP, wait this many seconds for the input to end (so upstream
    /// stages' last records arrive) before writing the report. A second signal writes at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = grace_seconds)]
    grace_s: f64,
}

fn grace_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds between 0 and 3600"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    gp_stage::main(STAGE, || {
        let signals = Forwarder::start().map_err(Error::Signals)?;
        let grace = gp_stage::signals::grace_after_signal(Duration::from_secs_f64(cli.grace_s));
        let stdin = std::io::stdin();
        let opts = Options {
            output: cli.output,
            pretty: cli.pretty,
            grace,
        };
        let input = std::io::BufReader::with_capacity(1 << 16, stdin);
        run(&opts, input, std::io::stdout().lock(), signals.receiver())?;
        Ok::<_, Error>(ExitCode::SUCCESS)
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
