//! What gp-compare compares: two arms of runs, each run a scenario on a host with an outcome
//! and its figures. A runner that has reports in memory builds [`Run`]s with
//! [`Run::from_report`] and calls [`crate::compare`]; the command line reads them from files
//! ([`crate::input`]).

use gp_records::migrate::Outcome;
use gp_records::report::Report;
use serde::Serialize;

use crate::figures::FIGURES;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Completed,
    Failed,
    Cancelled,
    Interrupted,
    /// A report without an outcome (an original guestperf result that says it did not succeed).
    Unknown,
    /// The pipeline failed before a report (gp-batch's `.error.json`).
    Error,
}

/// One run of one scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub scenario: String,
    /// The block the run belongs to: the source host's name, and the destination's when it ran
    /// elsewhere (`src->dst`); `unknown` for reports that do not say.
    pub host: String,
    pub outcome: RunOutcome,
    /// One value per row of [`FIGURES`], `None` where the report lacks it.
    pub figures: Vec<Option<f64>>,
    /// Where it came from (file, or `stdin:LINE`), for people.
    pub source: String,
    /// `QEMU 10.0.2 (tcg)`, when the report says.
    pub qemu: Option<String>,
}

impl Run {
    /// A run with no figures yet (tests, runners): set them with [`Run::with`].
    pub fn new(scenario: &str, host: &str, outcome: RunOutcome) -> Run {
        Run {
            scenario: scenario.into(),
            host: host.into(),
            outcome,
            figures: vec![None; FIGURES.len()],
            source: String::new(),
            qemu: None,
        }
    }

    /// Sets figure `id` (a row of [`FIGURES`]); panics on an unknown id (a programming error).
    pub fn with(mut self, id: &str, value: f64) -> Run {
        let i = FIGURES
            .iter()
            .position(|f| f.id == id)
            .unwrap_or_else(|| panic!("no figure {id}"));
        self.figures[i] = Some(value);
        self
    }

    /// The run a report describes.
    pub fn from_report(report: &Report, source: String) -> Run {
        let header = report.guestperf_rs.as_ref().and_then(|x| x.header.as_ref());
        let src = header
            .map(|h| h.host.hostname.clone())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown".into());
        let host = if report.dst_host.is_empty() || report.dst_host == "localhost" {
            src
        } else {
            format!("{src}->{}", report.dst_host)
        };
        let outcome = report.outcome().map_or(RunOutcome::Unknown, |o| match o {
            Outcome::Completed => RunOutcome::Completed,
            Outcome::Failed => RunOutcome::Failed,
            Outcome::Cancelled => RunOutcome::Cancelled,
            Outcome::Interrupted => RunOutcome::Interrupted,
        });
        Run {
            scenario: report.scenario.name.clone(),
            host,
            outcome,
            figures: FIGURES.iter().map(|f| (f.extract)(report)).collect(),
            source,
            qemu: header.map(|h| format!("QEMU {} ({})", h.qemu_version, h.accel)),
        }
    }
}

/// One side of the comparison.
#[derive(Debug, Clone, Default)]
pub struct Arm {
    /// `A`, `B`, or what `--label-a`/`--label-b` say.
    pub label: String,
    /// What was read (paths, `-`).
    pub sources: Vec<String>,
    pub runs: Vec<Run>,
    /// Scenarios gp-batch skipped on this side, with its reason.
    pub skipped: Vec<(String, String)>,
}

impl Arm {
    pub fn new(label: &str, runs: Vec<Run>) -> Arm {
        Arm {
            label: label.into(),
            runs,
            ..Arm::default()
        }
    }
}
