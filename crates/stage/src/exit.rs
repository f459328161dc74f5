//! The `main()` of every binary: run, and on failure print `stage: error: cause` once to
//! stderr and exit with the documented status.
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     gp_stage::main("gp-example", || -> Result<gp_stage::ExitCode, std::io::Error> {
//!         Ok(gp_stage::ExitCode::SUCCESS)
//!     })
//! }
//! ```

use std::io::Write;

use gp_records::ndjson::Writer;
use gp_records::{Record, StageError};

pub use std::process::ExitCode;

/// An error that knows the exit status it stands for. The default is 1, the status for "an
/// error"; stages document the others (2 usage, 128+N a signal, ...).
pub trait Failure: std::error::Error {
    fn exit_code(&self) -> u8 {
        1
    }
}

impl Failure for std::io::Error {}

/// Runs `run` and turns its outcome into the process exit status. An error is printed as
/// `stage: error: cause: cause` (see [`crate::error_chain`]), the stage named once.
pub fn main<E: Failure>(stage: &str, run: impl FnOnce() -> Result<ExitCode, E>) -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            crate::say!("{stage}: {}", crate::error_chain(&err));
            ExitCode::from(err.exit_code())
        }
    }
}

/// Parses the command line of a stage whose stdout carries records (gp-launch, gp-sample,
/// gp-migrate). A bad command line is printed as clap prints it and also said in the stream, as
/// a `stage_error` naming the stage, so the report downstream says why the run never started;
/// `--help` and `--version` print and end with status 0. `Err` is the status to exit with.
pub fn parse_records_stage<T: clap::Parser>(stage: &str) -> Result<T, ExitCode> {
    T::try_parse().map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            let mut out = Writer::new(std::io::stdout().lock());
            let _ = say_usage_error(stage, &e, &mut out);
        }
        ExitCode::from(e.exit_code().clamp(0, 255) as u8)
    })
}

/// Writes the `stage_error` for a bad command line: clap's first line, without its `error: `.
fn say_usage_error<W: Write>(
    stage: &str,
    e: &clap::Error,
    out: &mut Writer<W>,
) -> Result<(), gp_records::ndjson::WriteError> {
    let rendered = e.render().to_string();
    let line = rendered
        .lines()
        .next()
        .map(|l| l.trim_start_matches("error: ").to_string())
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| {
            e.kind()
                .as_str()
                .unwrap_or("invalid command line")
                .to_string()
        });
    out.write(&Record::StageError(StageError::new(stage, line)))
}

/// The exit status of a process ended by signal `sig`, as a shell reports it: 128 + `sig`.
pub fn signal_exit_code(sig: i32) -> u8 {
    (128 + sig.clamp(1, 127)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("unsupported")]
    struct Unsupported;

    impl Failure for Unsupported {
        fn exit_code(&self) -> u8 {
            6
        }
    }

    #[test]
    fn errors_map_to_their_exit_code() {
        assert_eq!(
            main("t", || Err::<ExitCode, _>(Unsupported)),
            ExitCode::from(6)
        );
        assert_eq!(
            main("t", || Ok::<_, Unsupported>(ExitCode::from(3))),
            ExitCode::from(3)
        );
        assert_eq!(
            main("t", || Err::<ExitCode, _>(std::io::Error::other("x"))),
            ExitCode::FAILURE
        );
    }

    #[test]
    fn a_bad_command_line_is_one_stage_error_in_the_stream() {
        #[derive(clap::Parser, Debug)]
        struct Cli {
            #[arg(long)]
            cpus: u32,
        }
        use clap::Parser;
        let e = Cli::try_parse_from(["gp-test", "--cpus", "many"]).unwrap_err();
        let mut buf = Vec::new();
        say_usage_error("gp-test", &e, &mut Writer::new(&mut buf)).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let line = gp_records::ndjson::Reader::new(text.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let Some(Record::StageError(r)) = line.record else {
            panic!("not a stage_error: {text}")
        };
        assert_eq!(r.stage, "gp-test");
        assert!(
            r.message
                .starts_with("invalid value 'many' for '--cpus <CPUS>'"),
            "{}",
            r.message
        );
    }

    #[test]
    fn signals_exit_as_a_shell_reports_them() {
        assert_eq!(signal_exit_code(libc::SIGHUP), 129);
        assert_eq!(signal_exit_code(libc::SIGINT), 130);
        assert_eq!(signal_exit_code(libc::SIGTERM), 143);
    }
}
