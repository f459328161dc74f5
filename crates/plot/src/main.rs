use clap::Parser;
use gp_stage::ExitCode;

fn main() -> ExitCode {
    let args = gp_plot::cli::Args::parse();
    gp_stage::main("gp-plot", || {
        gp_plot::run(&args.into_options())?;
        Ok::<_, gp_plot::PlotError>(ExitCode::SUCCESS)
    })
}
