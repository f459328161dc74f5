//! `gp-initrd`: see the library docs and docs/gp-initrd.md.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = gp_initrd::Cli::parse();
    match gp_initrd::run(&cli) {
        Ok(built) => {
            let what = if built.written { "wrote" } else { "unchanged" };
            eprintln!(
                "gp-initrd: {what} {} ({} bytes, /init = {})",
                built.output.display(),
                built.bytes,
                built.stress.display()
            );
            println!("{}", built.output.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("gp-initrd: {err}");
            ExitCode::FAILURE
        }
    }
}
