//! gp-collect's command line (here, not in main.rs, so man pages and completions can be generated
//! from it).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Read a guestperf-rs record stream (stdin) and write one JSON report of the run.
///
/// The report keeps the original guestperf result layout (so its tools read it) and adds a
/// "summary" and every record under "guestperf_rs"; see docs/report.md.
#[derive(Debug, Parser)]
#[command(name = "gp-collect", version, allow_negative_numbers = true)]
pub struct Cli {
    /// Write the report to FILE (atomically: a crash leaves the old file or the new one, never
    /// half of one) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Indent the JSON for reading.
    #[arg(long)]
    pub pretty: bool,
    #[command(flatten)]
    pub grace: gp_stage::signals::GraceArgs,
    /// `--grace` in seconds, without a unit: its spelling before gp-sample's and gp-collect's
    /// were one. Kept for scripts, hidden from help.
    #[arg(
        long,
        value_name = "SECONDS",
        hide = true,
        conflicts_with = "grace",
        value_parser = grace_seconds
    )]
    pub grace_s: Option<Duration>,
}

impl Cli {
    /// The grace to keep after a signal: `--grace`, or the older `--grace-s`, or none when
    /// stdin is a terminal.
    pub fn grace_after_signal(&self) -> Duration {
        gp_stage::signals::grace_after_signal(self.grace_s.unwrap_or(self.grace.grace))
    }
}

/// `--grace-s`: seconds without a unit, read by the same parser as `--grace`.
fn grace_seconds(s: &str) -> Result<Duration, String> {
    gp_stage::duration::parse(&format!("{}s", s.trim()), Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    #[test]
    fn the_older_grace_spelling_still_works_alone() {
        // --grace itself (default, units, range) is tested with gp_stage::signals::GraceArgs.
        use clap::Parser;
        use std::time::Duration;
        let cli = super::Cli::parse_from(["gp-collect"]);
        assert_eq!(cli.grace_s, None);
        let cli = super::Cli::parse_from(["gp-collect", "--grace-s", "2.5"]);
        assert_eq!(cli.grace_s, Some(Duration::from_millis(2500)));
        assert!(
            super::Cli::try_parse_from(["gp-collect", "--grace", "1s", "--grace-s", "1"]).is_err()
        );
    }
}
