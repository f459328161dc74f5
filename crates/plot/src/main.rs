use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = gp_plot::cli::Args::parse();
    match gp_plot::run(&args.into_options()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gp-plot: {err}");
            ExitCode::FAILURE
        }
    }
}
