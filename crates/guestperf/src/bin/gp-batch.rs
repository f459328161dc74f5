//! `gp-batch`: the standard migration comparisons (see docs/gp-batch.md).

use std::process::ExitCode;

use clap::Parser;
use guestperf::batch::{run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gp-batch: {}", guestperf::error_chain(&err));
            ExitCode::from(err.exit_code().clamp(1, 255) as u8)
        }
    }
}
