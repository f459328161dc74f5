use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gp_sample::{parse_interval, run, Ended, Options, STAGE};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

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
    /// After SIGINT or SIGTERM, keep passing input through for this long (so upstream stages'
    /// last records get through), then end. A second signal ends at once.
    #[arg(long, default_value = "10s", value_parser = parse_interval)]
    grace: Duration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (sig_tx, sig_rx) = crossbeam_channel::unbounded();
    match Signals::new([SIGINT, SIGTERM]) {
        Ok(mut signals) => {
            let spawned = std::thread::Builder::new()
                .name("signals".into())
                .spawn(move || {
                    for sig in signals.forever() {
                        if sig_tx.send(sig).is_err() {
                            return;
                        }
                    }
                });
            if let Err(e) = spawned {
                eprintln!("{STAGE}: starting the signal thread: {e}");
                return ExitCode::FAILURE;
            }
        }
        Err(e) => {
            eprintln!("{STAGE}: installing signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    }
    let stdin = std::io::stdin();
    // A terminal never sends end-of-input on Ctrl-C: do not wait for it.
    let grace = if stdin.is_terminal() {
        Duration::ZERO
    } else {
        cli.grace
    };
    let opts = Options {
        interval: cli.interval,
        grace,
    };
    let input = std::io::BufReader::with_capacity(1 << 16, stdin);
    match run(&opts, input, std::io::stdout().lock(), sig_rx) {
        Ok(Ended::EndOfInput | Ended::OutputClosed) => ExitCode::SUCCESS,
        Ok(Ended::Signal(sig)) => ExitCode::from(128 + sig as u8),
        Err(e) => {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("{STAGE}: {msg}");
            ExitCode::FAILURE
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
