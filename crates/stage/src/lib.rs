//! What every guestperf-rs binary shares at its edges, written once.
//!
//! - [`argv`]: parsed options written back as the command line that parses to them (how
//!   `guestperf` forwards gp-launch's and gp-migrate's options), with the test that keeps the two
//!   in step.
//! - [`signals`]: SIGINT, SIGTERM and SIGHUP forwarded into a channel by a named thread,
//!   signal names (from signal-hook, not tabled by hand), and the `--grace` a filter stage keeps
//!   after one.
//! - [`duration`]: durations on the command line, with their unit (`100ms`, `2s`).
//! - [`error`]: an error and its causes printed once each, `stage: error: cause: cause`.
//! - [`exit`]: the `main()` of a binary in one call ([`main`]): run, print the error chain naming
//!   the stage once, map the outcome to the documented exit code; and the command line of a
//!   stage whose stdout is records, a bad one said in the stream too ([`parse_records_stage`]).
//! - [`passthrough`]: a filter stage's input thread, which passes the lines the stage only
//!   forwards on itself and hands the main thread the rest, in order.
//! - [`status`]: the one live status line on a terminal (gp-migrate's progress, gp-batch's).
//! - [`say!`]: a line on stderr that never panics when stderr is gone.
//!
//! Library errors describe their own layer only (no stage name, no cause repeated in their own
//! message); the stage name is added here, once, at the edge.

/// Prints a line for people on stderr, like `eprintln!`, except that a stderr that is gone (a
/// closed terminal after SIGHUP, `2>&1 | head`) is ignored instead of panicking: a stage must
/// still finish its work, and write its report, when nobody can read its messages any more.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod argv;
pub mod duration;
pub mod error;
pub mod exit;
pub mod passthrough;
pub mod signals;
pub mod status;

pub use error::error_chain;
pub use exit::{main, parse_records_stage, signal_exit_code, ExitCode, Failure};
