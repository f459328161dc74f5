use clap::Parser;
use gp_stage::ExitCode;

fn main() -> ExitCode {
    let args = gp_compare::cli::Args::parse();
    gp_stage::main("gp-compare", || {
        gp_compare::run(&args, &mut std::io::stdin().lock())
    })
}
