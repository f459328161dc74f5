//! `gp-batch`: the standard migration comparisons (see docs/gp-batch.md).

use clap::Parser;
use gp_stage::ExitCode;
use guestperf::batch::{run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    gp_stage::main("gp-batch", || run(&cli).map(|()| ExitCode::SUCCESS))
}
