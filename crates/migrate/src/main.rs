use std::io::BufReader;

use gp_stage::ExitCode;

fn main() -> ExitCode {
    let args: gp_migrate::Args = match gp_stage::parse_records_stage(gp_migrate::STAGE) {
        Ok(args) => args,
        Err(code) => return code,
    };
    gp_stage::main(gp_migrate::STAGE, || {
        let stdin = BufReader::new(std::io::stdin());
        let status = gp_migrate::run(args, stdin, std::io::stdout())?;
        Ok::<_, std::io::Error>(ExitCode::from(status.code().clamp(0, 255) as u8))
    })
}
