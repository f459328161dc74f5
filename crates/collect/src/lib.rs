//! gp-collect: the sink of a guestperf-rs pipeline. Reads the whole record stream and writes one
//! JSON report (the model is [`gp_records::report`], documented in `docs/report.md`).
//!
//! Nothing that arrives is dropped: every record lands in the report, unknown types under
//! `guestperf_rs.unrecognized`, malformed lines as errors (with their line numbers) under
//! `guestperf_rs.input.errors`. A stream that ends early still yields a valid report whose result
//! says how it ended. `--output FILE` is written atomically (temp file, fsync, rename); a report
//! that cannot be written there is saved elsewhere, and the error says where.

// `say!`: a line for people on stderr; a closed stderr is ignored rather than a panic.
#[macro_use]
extern crate gp_stage;

pub mod breakdown;
pub mod checks;
pub mod cli;
pub mod collector;
pub mod context;
pub mod mode;
pub mod output;
pub mod summary;

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{after, never, select, Receiver};
use gp_records::ndjson::{ReadError, Reader};
use gp_records::report::Report;
use gp_stage::signals::signal_name;
use thiserror::Error;

pub use collector::Collector;

impl gp_stage::Failure for Error {
    fn exit_code(&self) -> u8 {
        match self {
            Error::Interrupted(sig) => gp_stage::signal_exit_code(*sig),
            _ => 1,
        }
    }
}

/// Stage name in messages.
pub const STAGE: &str = "gp-collect";

/// `guestperf_rs.input.ended` of a stream read to its end.
pub const END_OF_INPUT: &str = "end of input";

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Write the report here (atomically) instead of stdout.
    pub output: Option<PathBuf>,
    /// Indent the JSON.
    pub pretty: bool,
    /// After SIGINT/SIGTERM, how long to wait for the input to end (upstream stages write their
    /// last records while they shut down) before writing what arrived. A second signal writes
    /// at once.
    pub grace: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            output: None,
            pretty: false,
            grace: Duration::from_secs(10),
        }
    }
}

/// The report was written, but something was wrong.
#[derive(Debug, Error)]
pub enum Error {
    #[error(
        "{count} malformed input line(s) (first: line {line}: {message}); the report was written \
         with them listed under guestperf_rs.input.errors"
    )]
    MalformedInput {
        count: usize,
        line: u64,
        message: String,
    },
    #[error("the report was written with what arrived before the input failed")]
    Read(#[source] ReadError),
    #[error("interrupted by {}; the report was written with what arrived", signal_name(*.0))]
    Interrupted(i32),
    #[error(transparent)]
    Output(#[from] output::OutputError),
    #[error("starting the input thread")]
    Spawn(#[source] std::io::Error),
    #[error("setting up signal handling")]
    Signals(#[source] std::io::Error),
}

/// Reads the stream to its end (or a signal) and returns the report, the signal that ended
/// the reading, if one did, and the read error that ended it, if one did.
///
/// The input thread reads, parses and keeps each record itself (one uncontended lock per line),
/// so the main thread only waits for the end, a signal or the grace deadline; whatever arrived
/// by then is in the report.
pub fn collect<R>(
    opts: &Options,
    input: R,
    signals: &Receiver<i32>,
) -> Result<(Report, Option<i32>, Option<ReadError>), Error>
where
    R: BufRead + Send + 'static,
{
    let shared = Arc::new(Mutex::new(Shared {
        collector: Collector::new(),
        closed: false,
    }));
    let (done_tx, done) = crossbeam_channel::bounded::<Option<ReadError>>(1);
    let state = shared.clone();
    std::thread::Builder::new()
        .name("input".into())
        .spawn(move || {
            let mut reader = Reader::new(input);
            let read_error = loop {
                let Some(item) = reader.next_line() else {
                    break None;
                };
                let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                if s.closed {
                    return;
                }
                match item {
                    Ok(line) => s.collector.push(line),
                    Err(ReadError::Malformed { line, message }) => {
                        say!("{STAGE}: input line {line}: {message}");
                        s.collector.push_error(line, message);
                    }
                    Err(e @ ReadError::Io { .. }) => break Some(e),
                }
            };
            let _ = done_tx.send(read_error);
        })
        .map_err(Error::Spawn)?;

    let mut signalled: Option<i32> = None;
    let mut deadline = never();
    let mut read_error = None;
    let ended = loop {
        select! {
            recv(done) -> r => {
                read_error = r.ok().flatten();
                // A signal that came with the end of input still means the run was interrupted.
                if signalled.is_none() {
                    signalled = signals.try_recv().ok();
                }
                break match (&read_error, signalled) {
                    (Some(e), _) => format!("read error: {}", gp_stage::error_chain(e)),
                    (None, Some(sig)) => format!("{}, then {END_OF_INPUT}", signal_name(sig)),
                    (None, None) => END_OF_INPUT.to_string(),
                };
            }
            recv(signals) -> sig => {
                let Ok(sig) = sig else { continue };
                let again = signalled.is_some();
                signalled = Some(sig);
                if again || opts.grace.is_zero() {
                    break format!("{}; report written without waiting for the input to end",
                                  signal_name(sig));
                }
                deadline = after(opts.grace);
            }
            recv(deadline) -> _ => {
                let sig = signalled.map_or_else(|| "a signal".to_string(), signal_name);
                break format!("{sig}; input still open {:.0?} later", opts.grace);
            }
        }
    };
    let collector = {
        let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
        s.closed = true;
        std::mem::take(&mut s.collector)
    };
    let report = collector.finish(&ended, env!("CARGO_PKG_VERSION"));
    Ok((report, signalled, read_error))
}

struct Shared {
    collector: Collector,
    /// Set when the report is being written: the input thread stops keeping lines.
    closed: bool,
}

/// Collects, writes the report, and says what went wrong, if anything, after writing it.
pub fn run<R, W>(opts: &Options, input: R, stdout: W, signals: &Receiver<i32>) -> Result<(), Error>
where
    R: BufRead + Send + 'static,
    W: Write,
{
    let (report, signalled, read_error) = collect(opts, input, signals)?;
    output::deliver(
        &report,
        opts.output.as_deref(),
        opts.pretty,
        stdout,
        &output::fallback_dir(),
    )?;
    let errors = &report
        .guestperf_rs
        .as_ref()
        .map(|e| e.input.errors.clone())
        .unwrap_or_default();
    if let Some(first) = errors.first() {
        return Err(Error::MalformedInput {
            count: errors.len(),
            line: first.line,
            message: first.message.clone(),
        });
    }
    if let Some(e) = read_error {
        return Err(Error::Read(e));
    }
    if let Some(sig) = signalled {
        return Err(Error::Interrupted(sig));
    }
    Ok(())
}
