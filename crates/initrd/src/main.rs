//! `gp-initrd`: see the library docs and docs/gp-initrd.md.

use clap::Parser;
use gp_stage::ExitCode;

fn main() -> ExitCode {
    let cli = gp_initrd::Cli::parse();
    gp_stage::main("gp-initrd", || {
        let built = gp_initrd::run(&cli)?;
        let what = if built.written { "wrote" } else { "unchanged" };
        eprintln!(
            "gp-initrd: {what} {} ({} bytes, /init = {})",
            built.output.display(),
            built.bytes,
            built.stress.display()
        );
        println!("{}", built.output.display());
        Ok::<_, gp_initrd::Error>(ExitCode::SUCCESS)
    })
}
