use std::io::IsTerminal;
use std::time::Duration;

use clap::Parser;
use gp_collect::cli::Cli;
use gp_collect::{run, Error, Options, STAGE};
use gp_stage::signals::Forwarder;
use gp_stage::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    gp_stage::main(STAGE, || {
        let signals = Forwarder::start().map_err(Error::Signals)?;
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
        run(&opts, input, std::io::stdout().lock(), signals.receiver())?;
        Ok::<_, Error>(ExitCode::SUCCESS)
    })
}
