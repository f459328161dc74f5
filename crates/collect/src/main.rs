use clap::Parser;
use gp_collect::cli::Cli;
use gp_collect::{run, Error, Options, STAGE};
use gp_stage::signals::Forwarder;
use gp_stage::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    gp_stage::main(STAGE, || {
        let signals = Forwarder::start().map_err(Error::Signals)?;
        let grace = cli.grace_after_signal();
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
