use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gp_collect::{run, Error, Options, STAGE};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

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
    /// After SIGINT or SIGTERM, wait this many seconds for the input to end (so upstream stages'
    /// last records arrive) before writing the report. A second signal writes at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    grace_s: f64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !(cli.grace_s.is_finite() && (0.0..=3600.0).contains(&cli.grace_s)) {
        eprintln!("{STAGE}: --grace-s must be between 0 and 3600 seconds");
        return ExitCode::from(2);
    }
    let (sig_tx, sig_rx) = crossbeam_channel::unbounded();
    let signals = Signals::new([SIGINT, SIGTERM]).map(|mut signals| {
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if sig_tx.send(sig).is_err() {
                        return;
                    }
                }
            })
    });
    if let Err(e) | Ok(Err(e)) = signals {
        eprintln!("{STAGE}: setting up signal handling: {e}");
        return ExitCode::FAILURE;
    }
    let stdin = std::io::stdin();
    // A terminal never ends its input on Ctrl-C: write the report at once.
    let grace = if stdin.is_terminal() {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(cli.grace_s)
    };
    let opts = Options {
        output: cli.output,
        pretty: cli.pretty,
        grace,
    };
    let input = std::io::BufReader::with_capacity(1 << 16, stdin);
    match run(&opts, input, std::io::stdout().lock(), &sig_rx) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("{STAGE}: {msg}");
            match e {
                Error::Interrupted("SIGINT") => ExitCode::from(130),
                Error::Interrupted("SIGTERM") => ExitCode::from(143),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
