//! `guestperf`: one live-migration test as one command (see docs/guestperf.md).

use clap::Parser;
use gp_stage::ExitCode;
use guestperf::oneshot::{run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    gp_stage::main("guestperf", || run(&cli).map(|()| ExitCode::SUCCESS))
}
