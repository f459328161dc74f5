use gp_sample::cli::Cli;
use gp_sample::{run, Ended, Error, Options, STAGE};
use gp_stage::signals::Forwarder;
use gp_stage::ExitCode;

fn main() -> ExitCode {
    let cli: Cli = match gp_stage::parse_records_stage(STAGE) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    gp_stage::main(STAGE, || {
        let signals = Forwarder::start().map_err(Error::Signals)?;
        let grace = cli.grace.after_signal();
        let stdin = std::io::stdin();
        let opts = Options {
            interval: cli.interval,
            grace,
        };
        let input = std::io::BufReader::with_capacity(1 << 16, stdin);
        let ended = run(&opts, input, std::io::stdout(), signals.receiver().clone())?;
        Ok::<_, Error>(match ended {
            Ended::EndOfInput | Ended::OutputClosed => ExitCode::SUCCESS,
            Ended::Signal(sig) => ExitCode::from(gp_stage::signal_exit_code(sig)),
        })
    })
}
