//! `guestperf`: one complete migration test, as one command.
//!
//! Runs `gp-launch | gp-sample | gp-migrate | gp-collect` with each option forwarded to the stage
//! that owns it; `--dry-run` prints that pipeline instead of running it.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;

use crate::options::{Launch, Migrate, Sampling, LAUNCH_HEADING, MIGRATE_HEADING};
use crate::pipeline::{self, Grace, Output, PassThrough, PipelineError, SignalWatch, StageCommand};
use crate::stages::{self, NotFound, Stage};

/// Run one live-migration test of a busy guest and write its report (JSON) to stdout.
///
/// This is the pipeline `gp-launch | gp-sample | gp-migrate | gp-collect`: every option goes to
/// the stage that owns it (see --dry-run), and a stage's errors appear on stderr as it prints them.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "guestperf",
    version,
    max_term_width = 100,
    allow_negative_numbers = true
)]
pub struct Cli {
    #[command(flatten, next_help_heading = LAUNCH_HEADING)]
    pub launch: Launch,

    #[command(flatten, next_help_heading = MIGRATE_HEADING)]
    pub migrate: Migrate,

    #[command(flatten, next_help_heading = "Output")]
    pub sampling: Sampling,

    /// Write the report to FILE instead of stdout (gp-collect --output)
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub output: Option<PathBuf>,

    /// Print the equivalent shell pipeline on stdout and exit without running it (every option
    /// is checked first, as the stages check it)
    #[arg(long, help_heading = "Output")]
    pub dry_run: bool,
}

/// Why the one-shot failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    NotFound(#[from] NotFound),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
    #[error("cannot write to stdout")]
    Stdout(#[source] std::io::Error),
}

impl Error {
    /// The exit code: the failing stage's status, 128 + signal when interrupted, 127 when a
    /// stage cannot be found or started.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NotFound(_) => 127,
            Error::Pipeline(e) => e.exit_code(),
            Error::Signals(_) | Error::Stdout(_) => 1,
        }
    }
}

impl gp_stage::Failure for Error {
    fn exit_code(&self) -> u8 {
        Error::exit_code(self).clamp(1, 255) as u8
    }
}

/// The argument lists of the four stages, before the binaries are located.
#[derive(Debug, Clone, PartialEq)]
pub struct StageArgs {
    pub launch: Vec<OsString>,
    pub sample: Vec<OsString>,
    pub migrate: Vec<OsString>,
    pub collect: Vec<OsString>,
}

impl Cli {
    /// Which arguments each stage gets: each stage's options that differ from its defaults.
    pub fn stage_args(&self) -> StageArgs {
        let mut collect = Vec::new();
        if let Some(out) = &self.output {
            collect.push("--output".into());
            collect.push(out.as_os_str().to_owned());
        }
        StageArgs {
            launch: self.launch.to_args(),
            sample: self.sampling.to_args(),
            migrate: self.migrate.to_args(),
            collect,
        }
    }

    /// The pipeline, with each stage binary located.
    pub fn pipeline(&self) -> Result<Vec<StageCommand>, NotFound> {
        let args = self.stage_args();
        Ok(vec![
            stage_command(Stage::Launch, args.launch)?,
            stage_command(Stage::Sample, args.sample)?,
            stage_command(Stage::Migrate, args.migrate)?,
            stage_command(Stage::Collect, args.collect)?,
        ])
    }
}

fn stage_command(stage: Stage, args: Vec<OsString>) -> Result<StageCommand, NotFound> {
    Ok(StageCommand::new(stage.binary(), stages::locate(stage)?).args(args))
}

/// Runs the one-shot.
pub fn run(cli: &Cli) -> Result<(), Error> {
    let stages = cli.pipeline()?;
    if cli.dry_run {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", pipeline::shell_pipeline(&stages)).map_err(Error::Stdout)?;
        return Ok(());
    }
    if cli.launch.verbose || cli.launch.debug {
        eprintln!(
            "guestperf: running\n  {}",
            pipeline::shell_pipeline(&stages)
        );
    }
    let signals = SignalWatch::start().map_err(Error::Signals)?;
    pipeline::run(
        &stages,
        Output::Inherit,
        &signals,
        Arc::new(PassThrough),
        Grace::default(),
    )?
    .into_result()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn options_go_to_the_stage_that_owns_them() {
        let cli = Cli::parse_from([
            "guestperf",
            "--mem",
            "1.5",
            "--post-copy",
            "--sample-interval",
            "250ms",
            "--output",
            "r.json",
            "--name",
            "try 1",
        ]);
        let args = cli.stage_args();
        assert_eq!(args.launch, ["--mem", "1536M"]);
        assert_eq!(args.migrate, ["--name", "try 1", "--post-copy"]);
        assert_eq!(args.sample, ["--interval", "250ms"]);
        assert_eq!(args.collect, ["--output", "r.json"]);
    }

    #[test]
    fn all_defaults_forward_nothing() {
        let args = Cli::parse_from(["guestperf"]).stage_args();
        assert!(args.launch.is_empty() && args.sample.is_empty());
        assert!(args.migrate.is_empty() && args.collect.is_empty());
    }

    #[test]
    fn the_seed_examples_map_to_the_stages() {
        let numa = Cli::parse_from(
            "guestperf --mem 4 --cpus 2 --src-mem-bind 0 --src-cpu-bind 0,1 --dst-mem-bind 1 \
             --dst-cpu-bind 2,3"
                .split_whitespace(),
        );
        let args = numa.stage_args();
        assert_eq!(
            args.launch.join(std::ffi::OsStr::new(" ")),
            "--cpus 2 --mem 4G --src-cpu-bind 0,1 --src-mem-bind 0 --dst-cpu-bind 2,3 \
             --dst-mem-bind 1"
        );
        assert!(args.migrate.is_empty());
        let remote = Cli::parse_from(["guestperf", "--dst-host", "somehostname"]);
        assert_eq!(
            remote.stage_args().launch,
            ["--transport", "tcp", "--dst-host", "somehostname"]
        );
        let pc = Cli::parse_from(["guestperf", "--post-copy", "--post-copy-iters", "4"]);
        assert_eq!(
            pc.stage_args().migrate,
            ["--post-copy", "--post-copy-iters", "4"]
        );
    }

    #[test]
    fn every_gp_launch_and_gp_migrate_option_is_reachable() {
        let ours = Cli::command();
        let longs = |c: &clap::Command| -> Vec<String> {
            c.get_arguments()
                .filter_map(|a| a.get_long().map(String::from))
                .filter(|l| l != "help" && l != "version")
                .collect()
        };
        let ours = longs(&ours);
        for stage in [Launch::command(), Migrate::command()] {
            for long in longs(&stage) {
                assert!(
                    ours.contains(&long),
                    "--{long} of {} is missing",
                    stage.get_name()
                );
            }
        }
    }

    #[test]
    fn bad_values_are_refused_by_the_stage_s_parser_naming_the_option() {
        for (args, option) in [
            (&["--mem", "0"][..], "--mem"),
            (&["--src-cpu-bind", "banana"], "--src-cpu-bind"),
            (&["--cpus", "0"], "--cpus"),
            (&["--multifd-compression", "bogus"], "--multifd-compression"),
            (&["--sleep=-1"], "--sleep"),
        ] {
            let argv = ["guestperf", "--dry-run"].iter().chain(args);
            let e = Cli::try_parse_from(argv).unwrap_err();
            assert!(e.to_string().contains(option), "{args:?}: {e}");
        }
    }
}
