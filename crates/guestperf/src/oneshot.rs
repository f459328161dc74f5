//! `guestperf`: one complete migration test, as one command.
//!
//! Runs `gp-launch | gp-sample | gp-migrate | gp-collect` with each option forwarded to the stage
//! that owns it; `--dry-run` prints that pipeline instead of running it.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;

use crate::options::{HardwareArgs, ScenarioArgs};
use crate::pipeline::{self, Grace, Output, PassThrough, PipelineError, SignalWatch, StageCommand};
use crate::stages::{self, NotFound, Stage};

/// Run one live-migration test of a busy guest and write its report (JSON) to stdout.
///
/// This is the pipeline `gp-launch | gp-sample | gp-migrate | gp-collect`: every option goes to
/// the stage that owns it (see --dry-run), and a stage's errors appear on stderr as it prints them.
#[derive(Debug, Clone, Parser)]
#[command(name = "guestperf", version, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub hardware: HardwareArgs,

    #[command(flatten)]
    pub scenario: ScenarioArgs,

    /// Scenario name, carried into the report and chart legends (gp-migrate --name)
    /// [default: default]
    #[arg(
        long,
        value_name = "NAME",
        help_heading = "Migration scenario (passed to gp-migrate)"
    )]
    pub name: Option<String>,

    /// Write the report to FILE instead of stdout (gp-collect --output)
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    pub output: Option<PathBuf>,

    /// Host CPU sampling interval with a unit, e.g. 100ms or 1s (gp-sample --interval)
    /// [default: 100ms]
    #[arg(long, value_name = "DURATION", help_heading = "Output")]
    pub sample_interval: Option<String>,

    /// Print the equivalent shell pipeline on stdout and exit without running it
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
    /// Which arguments each stage gets.
    pub fn stage_args(&self) -> StageArgs {
        let mut sample = Vec::new();
        if let Some(interval) = &self.sample_interval {
            sample.extend(crate::options::option_arg("--interval", interval.into()));
        }
        let mut collect = Vec::new();
        if let Some(out) = &self.output {
            collect.push("--output".into());
            collect.push(out.as_os_str().to_owned());
        }
        let mut migrate = Vec::new();
        if let Some(name) = &self.name {
            migrate.push("--name".into());
            migrate.push(name.into());
        }
        migrate.extend(self.scenario.migrate_args());
        StageArgs {
            launch: self.hardware.launch_args(),
            sample,
            migrate,
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
    if cli.hardware.verbose || cli.hardware.debug {
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
            "1",
            "--post-copy",
            "--sample-interval",
            "250ms",
            "--output",
            "r.json",
            "--name",
            "try 1",
        ]);
        let args = cli.stage_args();
        assert_eq!(args.launch, ["--mem", "1"]);
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
}
