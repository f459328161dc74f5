//! gp-sample: a filter stage that samples the host CPU time of each QEMU in the stream.
//!
//! Every input line goes to stdout unchanged, flushed as it arrives. For each `vm` record
//! (from gp-launch) whose QEMU runs on this host, a sampler thread reads `/proc/PID/stat` and
//! every `/proc/PID/task/TID/{stat,schedstat}` each `--interval` and writes a `cpu_sample`
//! record: the whole process, and each thread classified as a vCPU (by the launch record's thread
//! ids), a migration thread (by QEMU's thread name) or other. Sampling of a VM stops at its
//! `vm_exit` record (all its samples precede that record in the output) or when the process is
//! gone; the stage ends when its input ends.
//!
//! Threads: one reads the input and passes on the lines gp-sample only forwards (most of them:
//! see `gp_stage::passthrough`, which also writes a `stage_error` in place of a malformed one),
//! one samples, one forwards signals; the main thread handles the `vm`, `vm_exit` and
//! `clock_offset` lines, counts malformed ones, writes the samples, and selects over the three
//! channels.

// `say!`: a line for people on stderr; a closed stderr is ignored rather than a panic.
#[macro_use]
extern crate gp_stage;

pub mod classify;
pub mod cli;
pub mod procstat;
mod remote;

use std::io::{BufRead, Write};
use std::time::Duration;

use crossbeam_channel::{after, never, select, tick, unbounded, Receiver, Sender};
use gp_records::ndjson::{Line, ReadError, WriteError, Writer};
use gp_records::{CpuSample, Record, Role, StageError};
use gp_stage::passthrough::{self, Handoff, Input, Output, Route};
use thiserror::Error;

use procstat::Target;

/// Stage name in messages and `stage_error` records.
pub const STAGE: &str = "gp-sample";

/// Default sampling interval: fine enough that a 100-200 ms downtime shows as a dip.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub interval: Duration,
    /// After SIGINT/SIGTERM, how long to keep passing input through so the records upstream
    /// stages write while they shut down still reach the sink. A second signal ends at once.
    pub grace: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            interval: DEFAULT_INTERVAL,
            grace: Duration::from_secs(10),
        }
    }
}

/// How the stage ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Input ended.
    EndOfInput,
    /// The next stage closed its input; nothing more can be delivered.
    OutputClosed,
    /// Ended by this signal (after the input ended or the grace period ran out).
    Signal(i32),
}

/// A failure of the stage.
#[derive(Debug, Error)]
pub enum Error {
    /// Every line was passed on (a `stage_error` record stands in for each malformed one), but
    /// the input was not all records.
    #[error("{count} malformed input line(s); the first")]
    MalformedInput {
        count: usize,
        #[source]
        first: ReadError,
    },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("starting the {0} thread")]
    Spawn(&'static str, #[source] std::io::Error),
    #[error("setting up signal handling")]
    Signals(#[source] std::io::Error),
}

impl gp_stage::Failure for Error {}

enum Ctl {
    Add {
        role: Role,
        pid: u32,
        vcpu_tids: Vec<u32>,
    },
    Remove {
        pid: u32,
    },
}

enum Out {
    Sample(CpuSample),
    /// Acknowledges `Ctl::Remove`: no sample of `pid` follows.
    Removed(u32),
}

/// Runs the filter until the input ends, the output closes, or a signal arrives on `signals`.
pub fn run<R, W>(
    opts: &Options,
    input: R,
    output: W,
    signals: Receiver<i32>,
) -> Result<Ended, Error>
where
    R: BufRead + Send + 'static,
    W: Write + Send + 'static,
{
    let out = Output::new(output);
    let line_rx = passthrough::spawn("input", STAGE, input, out.clone(), route)
        .map_err(|e| Error::Spawn("input", e))?
        .handed;

    let (ctl_tx, ctl_rx) = unbounded::<Ctl>();
    let (out_tx, out_rx) = unbounded::<Out>();
    let interval = opts.interval;
    let mut remotes = remote::Remotes::new(out_tx.clone(), interval);
    let sampler = std::thread::Builder::new()
        .name("sampler".into())
        .spawn(move || sampler(interval, ctl_rx, out_tx))
        .map_err(|e| Error::Spawn("sampler", e))?;

    let mut malformed = Vec::new();
    let ended = main_loop(
        opts,
        &out,
        &line_rx,
        &ctl_tx,
        &out_rx,
        &signals,
        &mut malformed,
        &mut remotes,
    );
    // Nothing from the input after this point: it ended, or the stage is ending without it.
    out.stop_input();
    // Remote samplers' last samples are queued before the drain below.
    remotes.stop_all();

    // Stop the sampler, then write what it produced before it saw the stop.
    drop(ctl_tx);
    let _ = sampler.join();
    let ended = ended.and_then(|ended| {
        if ended != Ended::OutputClosed {
            let mut out = out.lock();
            for msg in out_rx.try_iter() {
                if let Out::Sample(s) = msg {
                    match out.write(&Record::CpuSample(s)) {
                        Err(WriteError::Closed) => return Ok(Ended::OutputClosed),
                        other => other?,
                    }
                }
            }
        }
        Ok(ended)
    });
    match ended {
        Err(Error::Write(WriteError::Closed)) => Ok(Ended::OutputClosed),
        Err(e) => Err(e),
        Ok(ended) if malformed.is_empty() || ended == Ended::OutputClosed => Ok(ended),
        Ok(_) => {
            let count = malformed.len();
            Err(Error::MalformedInput {
                count,
                first: malformed.swap_remove(0),
            })
        }
    }
}

/// gp-sample acts on `vm`, `vm_exit` and `clock_offset` lines; the input thread passes every
/// other one on itself.
fn route(line: &Line) -> Route {
    match line.record {
        Some(Record::Vm(_) | Record::VmExit(_) | Record::ClockOffset(_)) => Route::Hand,
        _ => Route::Pass,
    }
}

// The channels and the state the loop owns, each its own argument.
#[allow(clippy::too_many_arguments)]
fn main_loop<W: Write>(
    opts: &Options,
    out: &Output<W>,
    lines: &Receiver<Input>,
    ctl: &Sender<Ctl>,
    samples: &Receiver<Out>,
    signals: &Receiver<i32>,
    malformed: &mut Vec<ReadError>,
    remotes: &mut remote::Remotes,
) -> Result<Ended, Error> {
    let mut signalled: Option<i32> = None;
    let mut deadline = never();
    let ended = |signalled: Option<i32>| signalled.map_or(Ended::EndOfInput, Ended::Signal);
    loop {
        select! {
            recv(lines) -> item => match item {
                Err(_) => return Ok(ended(signalled)),
                Ok(Input::WriteFailed(e)) => return Err(e.into()),
                Ok(Input::Line(handoff)) => {
                    // The input thread waits for `_done`'s drop, after this line's records.
                    let Handoff { line, done: _done } = *handoff;
                    pass_line(&mut out.lock(), &line, ctl, samples, remotes)?;
                }
                Ok(Input::Unreadable(e)) => {
                    // A stage_error stands in the line's place already; the exit status says so.
                    say!("{STAGE}: {}", gp_stage::error_chain(&e));
                    malformed.push(e);
                }
            },
            recv(samples) -> msg => {
                if let Ok(Out::Sample(s)) = msg {
                    out.write(&Record::CpuSample(s))?;
                }
            }
            recv(signals) -> sig => {
                let Ok(sig) = sig else { continue };
                if signalled.is_some() || opts.grace.is_zero() {
                    cut_short(out, sig, "at once");
                    return Ok(Ended::Signal(sig));
                }
                signalled = Some(sig);
                deadline = after(opts.grace);
            }
            recv(deadline) -> _ => {
                say!(
                    "{STAGE}: input still open {:.0?} after the signal; ending",
                    opts.grace
                );
                if let Some(sig) = signalled {
                    cut_short(out, sig, &format!("{:.0?} later", opts.grace));
                }
                return Ok(ended(signalled));
            }
        }
    }
}

/// Says in the stream that a signal ended the stage before its input did, so the report tells
/// why the records stop there. Best effort: the output may be gone too.
fn cut_short<W: Write>(out: &Output<W>, sig: i32, when: &str) {
    let name = gp_stage::signals::signal_name(sig);
    let message = format!(
        "ended by {name} ({when}) with its input still open: records after this one did not \
         pass through gp-sample"
    );
    let mut out = out.lock();
    out.stop_input();
    let _ = out.write(&Record::StageError(StageError::signalled(
        STAGE, sig, message,
    )));
}

/// Passes one line through, starting or stopping sampling for `vm` / `vm_exit` records.
fn pass_line<W: Write>(
    out: &mut Writer<W>,
    line: &Line,
    ctl: &Sender<Ctl>,
    samples: &Receiver<Out>,
    remotes: &mut remote::Remotes,
) -> Result<(), Error> {
    match &line.record {
        Some(Record::ClockOffset(c)) => {
            remotes.note_offset(c);
            out.write_raw(&line.raw)?;
        }
        Some(Record::Vm(vm)) => {
            out.write_raw(&line.raw)?;
            if vm.host.is_some() {
                // Sampled there, by gp-sample through ssh (see remote.rs).
                remotes.start(vm);
            } else {
                let add = Ctl::Add {
                    role: vm.role,
                    pid: vm.pid,
                    vcpu_tids: vm.vcpu_tids.clone(),
                };
                let _ = ctl.send(add);
            }
        }
        Some(Record::VmExit(exit)) => {
            // Every sample of this VM goes out before its exit record.
            if remotes.stop(exit) || ctl.send(Ctl::Remove { pid: exit.pid }).is_ok() {
                for msg in samples.iter() {
                    match msg {
                        Out::Sample(s) => out.write(&Record::CpuSample(s))?,
                        Out::Removed(pid) if pid == exit.pid => break,
                        Out::Removed(_) => {}
                    }
                }
            }
            out.write_raw(&line.raw)?;
        }
        _ => out.write_raw(&line.raw)?,
    }
    Ok(())
}

/// The sampler thread: samples every target each tick until `ctl` disconnects.
fn sampler(interval: Duration, ctl: Receiver<Ctl>, out: Sender<Out>) {
    let ticker = tick(interval);
    let mut targets: Vec<Target> = Vec::new();
    let sample = |t: &mut Target| match t.sample() {
        Ok(mut s) => {
            // Samples taken for a peer over ssh are on the clock that peer measured (this
            // host's, except in the remote tests' build: see gp_qemu::ssh::remote_now_s).
            s.time_s = gp_qemu::ssh::reported_time_s(s.time_s);
            let _ = out.send(Out::Sample(s));
            true
        }
        Err(gone) => {
            say!(
                "{STAGE}: stopped sampling the {} VM (pid {}): {}",
                t.role,
                t.pid,
                gone.0
            );
            false
        }
    };
    loop {
        select! {
            recv(ctl) -> msg => match msg {
                Ok(Ctl::Add { role, pid, vcpu_tids }) => {
                    targets.retain(|t| t.pid != pid);
                    match Target::open(role, pid, vcpu_tids) {
                        Ok(mut t) => {
                            if sample(&mut t) {
                                targets.push(t);
                            }
                        }
                        Err(gone) => {
                            say!("{STAGE}: cannot sample the {role} VM (pid {pid}): {}", gone.0)
                        }
                    }
                }
                Ok(Ctl::Remove { pid }) => {
                    targets.retain(|t| t.pid != pid);
                    let _ = out.send(Out::Removed(pid));
                }
                Err(_) => return,
            },
            recv(ticker) -> _ => targets.retain_mut(|t| sample(t)),
        }
    }
}

/// Parses the sampling interval: `100ms`, `0.5s`, `2s` (a unit is required), 10 ms to an hour.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let interval = gp_stage::duration::parse(s, Duration::from_secs(3600))?;
    if interval < Duration::from_millis(10) {
        return Err(format!(
            "{} is out of range: the interval must be 10ms to 3600s",
            s.trim()
        ));
    }
    Ok(interval)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gp_testkit::SharedBuf;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_interval("0.5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_interval("100").unwrap_err().contains("needs a unit"));
        assert!(parse_interval("1ms").unwrap_err().contains("out of range"));
        assert!(parse_interval("fast s")
            .unwrap_err()
            .contains("not a duration"));
    }

    fn run_on(input: String) -> (Result<Ended, Error>, String) {
        let out = SharedBuf::default();
        let (_tx, rx) = unbounded();
        let opts = Options {
            interval: Duration::from_millis(20),
            grace: Duration::ZERO,
        };
        let r = run(
            &opts,
            std::io::Cursor::new(input.into_bytes()),
            out.clone(),
            rx,
        );
        (r, out.text())
    }

    #[test]
    fn passes_every_line_through_unchanged() {
        let input = "{\"type\":\"console\",\"time_s\":1,\"role\":\"src\",\"line\":\"x\"}\n\
                     {\"type\":\"from_the_future\",\"a\":[1, 2]}\n";
        let (r, out) = run_on(input.to_string());
        assert_eq!(r.unwrap(), Ended::EndOfInput);
        assert_eq!(out, input);
    }

    #[test]
    fn malformed_line_becomes_a_stage_error_and_the_rest_passes() {
        let input = "not json\n{\"type\":\"mystery\"}\n";
        let (r, out) = run_on(input.to_string());
        let err = gp_stage::error_chain(&r.unwrap_err());
        assert!(
            err.starts_with("1 malformed input line(s); the first: input line 1: not valid JSON"),
            "{err}"
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("\"stage_error\"") && lines[0].contains("input line 1"));
        assert_eq!(lines[1], "{\"type\":\"mystery\"}");
    }

    #[test]
    fn samples_a_vm_until_its_exit_record() {
        let pid = std::process::id();
        let vm = format!(
            "{{\"type\":\"vm\",\"time_s\":1,\"role\":\"src\",\"pid\":{pid},\"qmp_socket\":\"/x\",\
             \"vcpu_tids\":[],\"spawned_s\":1,\"argv\":[]}}"
        );
        let exit = format!(
            "{{\"type\":\"vm_exit\",\"time_s\":2,\"role\":\"src\",\"pid\":{pid},\"status\":0}}"
        );
        // The input ends right after vm_exit: the exit record must still follow every sample.
        let (r, out) = run_on(format!("{vm}\n{exit}\n"));
        assert_eq!(r.unwrap(), Ended::EndOfInput);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], vm);
        assert_eq!(*lines.last().unwrap(), exit);
        let samples = &lines[1..lines.len() - 1];
        assert!(
            !samples.is_empty(),
            "no sample between vm and vm_exit: {out}"
        );
        for s in samples {
            let rec: Record = serde_json::from_str(s).unwrap();
            let Record::CpuSample(s) = rec else {
                panic!("not a sample: {s}")
            };
            assert_eq!(s.pid, pid);
        }
    }

    #[test]
    fn a_signal_with_the_input_still_open_is_said_in_the_stream() {
        // The writer end stays open: the input never ends.
        let (input, _writer) = std::os::unix::net::UnixStream::pair().unwrap();
        let (tx, rx) = unbounded();
        tx.send(signal_hook::consts::SIGTERM).unwrap();
        let opts = Options {
            interval: Duration::from_millis(20),
            grace: Duration::from_millis(50),
        };
        let out = SharedBuf::default();
        let r = run(&opts, std::io::BufReader::new(input), out.clone(), rx);
        assert_eq!(r.unwrap(), Ended::Signal(signal_hook::consts::SIGTERM));
        let out = out.text();
        let last: Record = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        let Record::StageError(e) = last else {
            panic!("no stage_error: {out}")
        };
        assert!(
            e.message.contains("SIGTERM") && e.message.contains("input still open"),
            "{}",
            e.message
        );
    }

    #[test]
    fn an_unreachable_remote_host_is_a_note_not_an_error() {
        // Sampled through ssh, which cannot resolve the name: the stream passes unchanged.
        let vm =
            "{\"type\":\"vm\",\"time_s\":1,\"role\":\"dst\",\"pid\":1,\"host\":\"gp.invalid\",\
                  \"qmp_socket\":\"/x\",\"vcpu_tids\":[],\"spawned_s\":1,\"argv\":[]}";
        let (r, out) = run_on(format!("{vm}\n"));
        assert_eq!(r.unwrap(), Ended::EndOfInput);
        assert_eq!(out, format!("{vm}\n"));
    }
}
