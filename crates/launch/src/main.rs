use std::process::ExitCode;

use gp_launch::cli::Cli;
use gp_launch::{error_chain, run, STAGE};
use gp_records::ndjson::Writer;
use gp_records::{Record, StageError};

fn main() -> ExitCode {
    if let Some(code) = gp_launch::remote_helper::main_if_helper() {
        return code;
    }
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let cli: Cli = match gp_stage::parse_records_stage(STAGE) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let mut out = Writer::new(std::io::stdout().lock());
    match run(&cli, argv, &mut out) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let msg = error_chain(&e);
            gp_stage::say!("{STAGE}: {msg}");
            let _ = out.write(&Record::StageError(StageError::new(STAGE, msg)));
            ExitCode::from(e.exit_code())
        }
    }
}
