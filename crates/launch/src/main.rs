use std::process::ExitCode;

use clap::Parser;
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
    let mut out = Writer::new(std::io::stdout().lock());
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = e.exit_code();
            let _ = e.print();
            if e.use_stderr() {
                let msg = e
                    .kind()
                    .as_str()
                    .unwrap_or("invalid command line")
                    .to_string();
                let detail = e.render().to_string();
                let line = detail
                    .lines()
                    .next()
                    .unwrap_or(&msg)
                    .trim_start_matches("error: ");
                let _ = out.write(&Record::StageError(StageError::new(STAGE, line)));
            }
            return ExitCode::from(code.clamp(0, 255) as u8);
        }
    };
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
