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
    fn signals_exit_as_a_shell_reports_them() {
        assert_eq!(signal_exit_code(libc::SIGHUP), 129);
        assert_eq!(signal_exit_code(libc::SIGINT), 130);
        assert_eq!(signal_exit_code(libc::SIGTERM), 143);
    }
}
