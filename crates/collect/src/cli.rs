//! gp-collect's command line (here, not in main.rs, so man pages and completions can be generated
//! from it).

use std::path::PathBuf;

use clap::Parser;

/// Read a guestperf-rs record stream (stdin) and write one JSON report of the run.
///
/// The report keeps the original guestperf result layout (so its tools read it) and adds a
/// "summary" and every record under "guestperf_rs"; see docs/report.md.
#[derive(Debug, Parser)]
#[command(name = "gp-collect", version)]
pub struct Cli {
    /// Write the report to FILE (atomically: a crash leaves the old file or the new one, never
    /// half of one) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Indent the JSON for reading.
    #[arg(long)]
    pub pretty: bool,
    /// After SIGINT, SIGTERM or SIGHUP, wait this many seconds for the input to end (so upstream
    /// stages' last records arrive) before writing the report. A second signal writes at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = grace_seconds)]
    pub grace_s: f64,
}

fn grace_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=3600.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of seconds between 0 and 3600"
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    #[test]
    fn grace_is_10_s_by_default() {
        use clap::Parser;
        assert_eq!(super::Cli::parse_from(["gp-collect"]).grace_s, 10.0);
    }
}
