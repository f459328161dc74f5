//! `guestperf`: one live-migration test as one command (see docs/guestperf.md).

use std::process::ExitCode;

use clap::Parser;
use guestperf::oneshot::{run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("guestperf: {}", guestperf::error_chain(&err));
            ExitCode::from(err.exit_code().clamp(1, 255) as u8)
        }
    }
}
