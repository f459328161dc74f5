use std::io::BufReader;

use clap::Parser;

fn main() {
    let args = gp_migrate::Args::parse();
    let stdin = BufReader::new(std::io::stdin());
    match gp_migrate::run(args, stdin, std::io::stdout()) {
        Ok(status) => std::process::exit(status.code()),
        Err(e) => {
            eprintln!("gp-migrate: cannot set up signal handling: {e}");
            std::process::exit(1);
        }
    }
}
