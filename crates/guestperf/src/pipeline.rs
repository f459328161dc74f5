//! Run stage binaries as a Unix pipeline: spawn, connect, forward signals, reap.
//!
//! `gp-launch | gp-sample | gp-migrate | gp-collect` is run here exactly as a shell would run it,
//! with three additions a shell does not give:
//!
//! - each stage's stderr is read line by line, passed on to a [`StderrSink`] (normally our own
//!   stderr) and its tail kept, so a failure can be reported with the stage's own message;
//! - the children live in a process group of their own, so a terminal's Ctrl-C reaches only us
//!   and we forward it exactly once (SIGINT, SIGTERM, SIGHUP), and each child gets SIGTERM if we
//!   die (`PR_SET_PDEATHSIG`);
//! - a stage that fails does not hang the others: after it exits non-zero the rest get a grace
//!   period to finish on their own (a closed pipe or end of input normally ends them), then
//!   SIGTERM, then SIGKILL.
//!
//! Every child is reaped on every path, including spawn failures half-way through.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{after, never, select, unbounded};

/// How much of each stage's stderr is kept for error messages.
const STDERR_TAIL_BYTES: usize = 16 * 1024;
/// Longest stderr line forwarded in one piece.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// One stage of a pipeline: a name for messages and the command to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageCommand {
    /// What the stage is called in messages (`gp-launch`).
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl StageCommand {
    pub fn new(name: impl Into<String>, program: impl Into<PathBuf>) -> Self {
        StageCommand {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The command as shell words (`gp-migrate --post-copy`): the program by its file name when
    /// that name on `PATH` is this program, else by its full path, so the line runs as shown.
    pub fn shell_words(&self) -> String {
        let name = self
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        let on_path = name.as_deref().and_then(gp_qemu::bind::find_on_path);
        let same = |a: &std::path::Path, b: &std::path::Path| {
            a.canonicalize()
                .ok()
                .zip(b.canonicalize().ok())
                .is_some_and(|(a, b)| a == b)
        };
        let program = match (name, on_path) {
            (Some(name), Some(found)) if same(&found, &self.program) => name,
            _ => self.program.display().to_string(),
        };
        let mut words = vec![shell_quote(&program)];
        words.extend(self.args.iter().map(|a| shell_quote(&a.to_string_lossy())));
        words.join(" ")
    }
}

/// Quote `word` for a POSIX shell when it needs it.
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The whole pipeline as one shell command line.
pub fn shell_pipeline(stages: &[StageCommand]) -> String {
    stages
        .iter()
        .map(StageCommand::shell_words)
        .collect::<Vec<_>>()
        .join(" \\\n  | ")
}

/// Where the stages' stderr goes. Called with one complete line at a time (newline included,
/// except for a last line without one).
pub trait StderrSink: Send + Sync {
    fn line(&self, stage: &str, line: &[u8]);
}

/// Passes every line to our own stderr unchanged.
#[derive(Debug, Default)]
pub struct PassThrough;

impl StderrSink for PassThrough {
    fn line(&self, _stage: &str, line: &[u8]) {
        use std::io::Write;
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line);
    }
}

/// Timing policy for stages that outlive a failure or a forwarded signal.
#[derive(Debug, Clone, Copy)]
pub struct Grace {
    /// After a stage fails (or a signal was forwarded), how long the others may run on before
    /// they get SIGTERM.
    pub terminate_after: Duration,
    /// After SIGTERM, how long before SIGKILL.
    pub kill_after: Duration,
    /// After every stage has exited, how long to wait for the rest of their stderr (a leaked
    /// grandchild may hold the pipe open).
    pub drain: Duration,
}

impl Default for Grace {
    fn default() -> Self {
        Grace {
            terminate_after: Duration::from_secs(30),
            kill_after: Duration::from_secs(30),
            drain: Duration::from_secs(2),
        }
    }
}

/// How one stage ended.
#[derive(Debug, Clone)]
pub struct StageExit {
    pub name: String,
    /// Position in the pipeline, 0-based.
    pub index: usize,
    /// Exit code, or 128 + signal number when the stage was killed by a signal.
    pub code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// Time from spawning the pipeline to this stage's exit.
    pub elapsed: Duration,
    /// The end of what the stage wrote on stderr.
    pub stderr_tail: String,
}

impl StageExit {
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// The stage's own error message, from the tail of its stderr: the last line that starts
    /// with `NAME:` (the `tool: error` convention) or, failing that, with `error:` (clap's usage
    /// errors), together with the indented lines under it; else the last non-empty line.
    pub fn message(&self) -> String {
        let lines: Vec<&str> = self
            .stderr_tail
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .collect();
        let prefix = format!("{}:", self.name);
        let start = lines
            .iter()
            .rposition(|l| l.starts_with(&prefix))
            .map(|i| (i, prefix.len()))
            .or_else(|| {
                lines
                    .iter()
                    .rposition(|l| l.starts_with("error:"))
                    .map(|i| (i, 0))
            });
        if let Some((start, skip)) = start {
            let mut msg = lines[start][skip..].trim_start().to_string();
            for more in lines[start + 1..]
                .iter()
                .take_while(|l| l.starts_with([' ', '\t']))
            {
                msg.push('\n');
                msg.push_str(more);
            }
            return msg;
        }
        match lines.last() {
            Some(last) => last.to_string(),
            None => "(nothing on stderr)".to_string(),
        }
    }

    fn describe_status(&self) -> String {
        match self.signal {
            Some(sig) => format!("was killed by {} (status {})", signal_name(sig), self.code),
            None => format!("exited with status {}", self.code),
        }
    }
}

/// How a whole pipeline ended.
#[derive(Debug, Clone)]
pub struct PipelineExit {
    /// Every stage, in pipeline order.
    pub stages: Vec<StageExit>,
    /// Indices of the stages in the order they exited.
    pub exit_order: Vec<usize>,
    /// The first signal we forwarded to the stages, if any.
    pub interrupted: Option<i32>,
    pub elapsed: Duration,
}

impl PipelineExit {
    /// The stage that failed first (in time), if any did.
    pub fn first_failure(&self) -> Option<&StageExit> {
        self.exit_order
            .iter()
            .map(|&i| &self.stages[i])
            .find(|s| !s.success())
    }

    /// Ok when every stage succeeded and no signal arrived; otherwise the error to report.
    pub fn into_result(self) -> Result<PipelineExit, PipelineError> {
        if let Some(signal) = self.interrupted {
            return Err(PipelineError::Interrupted { signal, exit: self });
        }
        match self.first_failure() {
            Some(stage) => Err(PipelineError::StageFailed {
                stage: stage.name.clone(),
                index: stage.index,
                count: self.stages.len(),
                code: stage.code,
                status: stage.describe_status(),
                message: stage.message(),
                exit: Box::new(self.clone()),
            }),
            None => Ok(self),
        }
    }
}

/// Why a pipeline did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot start {stage} ({program})")]
    Spawn {
        stage: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{stage} (stage {} of {count}) {status}: {message}", index + 1)]
    StageFailed {
        stage: String,
        index: usize,
        count: usize,
        /// Exit code, or 128 + signal.
        code: i32,
        status: String,
        message: String,
        exit: Box<PipelineExit>,
    },
    #[error("interrupted by {}", signal_name(*signal))]
    Interrupted { signal: i32, exit: PipelineExit },
}

impl PipelineError {
    /// The exit code a tool running this pipeline should exit with.
    pub fn exit_code(&self) -> i32 {
        match self {
            PipelineError::Spawn { .. } => 127,
            PipelineError::StageFailed { code, .. } => *code,
            PipelineError::Interrupted { signal, .. } => 128 + signal,
        }
    }

    /// The failing stage's name, when a stage failed.
    pub fn stage(&self) -> Option<&str> {
        match self {
            PipelineError::Spawn { stage, .. } | PipelineError::StageFailed { stage, .. } => {
                Some(stage)
            }
            PipelineError::Interrupted { .. } => None,
        }
    }
}

pub use gp_stage::signals::signal_name;

/// Watches SIGINT, SIGTERM and SIGHUP for as long as it lives (see [`gp_stage::signals`]).
pub type SignalWatch = gp_stage::signals::Forwarder;

/// Where the last stage's stdout goes.
#[derive(Debug)]
pub enum Output {
    /// Our own stdout.
    Inherit,
    /// A file (or anything else that converts to `Stdio`).
    File(std::fs::File),
}

/// Runs `stages` connected by pipes and waits for all of them.
///
/// The first stage reads /dev/null; the last writes to `output`. Returns how every stage ended;
/// use [`PipelineExit::into_result`] to turn failures into an error.
pub fn run(
    stages: &[StageCommand],
    output: Output,
    signals: &SignalWatch,
    sink: Arc<dyn StderrSink>,
    grace: Grace,
) -> Result<PipelineExit, PipelineError> {
    assert!(!stages.is_empty(), "a pipeline needs at least one stage");
    let start = Instant::now();
    let mut children: Vec<Child> = Vec::with_capacity(stages.len());
    let mut group: Option<i32> = None;
    let mut output = Some(output);
    let mut previous_stdout: Option<std::process::ChildStdout> = None;

    for (index, stage) in stages.iter().enumerate() {
        let mut cmd = Command::new(&stage.program);
        cmd.args(&stage.args);
        cmd.stdin(match previous_stdout.take() {
            Some(out) => Stdio::from(out),
            None => Stdio::null(),
        });
        if index + 1 == stages.len() {
            match output.take() {
                Some(Output::File(f)) => cmd.stdout(Stdio::from(f)),
                _ => cmd.stdout(Stdio::inherit()),
            };
        } else {
            cmd.stdout(Stdio::piped());
        }
        cmd.stderr(Stdio::piped());
        cmd.process_group(group.unwrap_or(0));
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
                if libc::getppid() != parent {
                    libc::_exit(128 + libc::SIGTERM);
                }
                Ok(())
            });
        }
        match cmd.spawn() {
            Ok(mut child) => {
                group.get_or_insert(child.id() as i32);
                previous_stdout = child.stdout.take();
                children.push(child);
            }
            Err(source) => {
                abandon(&mut children);
                return Err(PipelineError::Spawn {
                    stage: stage.name.clone(),
                    program: stage.program.display().to_string(),
                    source,
                });
            }
        }
    }

    // Stderr forwarders, one per stage.
    let tails: Vec<Arc<Mutex<Tail>>> = stages.iter().map(|_| Default::default()).collect();
    let (drained_tx, drained_rx) = unbounded::<usize>();
    for (index, child) in children.iter_mut().enumerate() {
        let stderr = child.stderr.take().expect("stderr is piped");
        let tail = Arc::clone(&tails[index]);
        let sink = Arc::clone(&sink);
        let name = stages[index].name.clone();
        let drained_tx = drained_tx.clone();
        thread::Builder::new()
            .name(format!("stderr {name}"))
            .spawn(move || {
                forward_stderr(stderr, &name, sink.as_ref(), &tail);
                let _ = drained_tx.send(index);
            })
            .expect("spawn stderr thread");
    }
    drop(drained_tx);

    // Reapers, one per stage: each owns its Child and reports the exit.
    let pids: Vec<u32> = children.iter().map(Child::id).collect();
    let (exit_tx, exit_rx) = unbounded::<(usize, std::io::Result<ExitStatus>, Instant)>();
    for (index, mut child) in children.into_iter().enumerate() {
        let exit_tx = exit_tx.clone();
        thread::Builder::new()
            .name(format!("reap {}", stages[index].name))
            .spawn(move || {
                let status = child.wait();
                let _ = exit_tx.send((index, status, Instant::now()));
            })
            .expect("spawn reaper thread");
    }
    drop(exit_tx);

    let mut statuses: Vec<Option<(ExitStatus, Instant)>> = vec![None; stages.len()];
    let mut exit_order = Vec::with_capacity(stages.len());
    let mut interrupted: Option<i32> = None;
    // Escalation: when set, the deadline at which the next step (SIGTERM, then SIGKILL) happens.
    let mut escalation: Option<(Instant, i32)> = None;
    let alive = |statuses: &[Option<(ExitStatus, Instant)>]| -> Vec<u32> {
        statuses
            .iter()
            .zip(&pids)
            .filter(|(s, _)| s.is_none())
            .map(|(_, &pid)| pid)
            .collect()
    };

    while exit_order.len() < stages.len() {
        let timeout = match escalation {
            Some((deadline, _)) => after(deadline.saturating_duration_since(Instant::now())),
            None => never(),
        };
        select! {
            recv(exit_rx) -> msg => {
                let Ok((index, status, at)) = msg else { break };
                // wait() only fails if the child was already reaped; treat as killed.
                let status = status.unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL));
                statuses[index] = Some((status, at));
                exit_order.push(index);
                if !status.success() && escalation.is_none() {
                    escalation = Some((Instant::now() + grace.terminate_after, libc::SIGTERM));
                }
            }
            recv(signals.receiver()) -> sig => {
                let Ok(sig) = sig else { continue };
                interrupted.get_or_insert(sig);
                for pid in alive(&statuses) {
                    send_signal(pid, sig);
                }
                // The stages clean up on the signal; if they do not, escalate.
                if escalation.map_or(true, |(_, s)| s == libc::SIGTERM) {
                    escalation = Some((Instant::now() + grace.kill_after, libc::SIGKILL));
                }
            }
            recv(timeout) -> _ => {
                if let Some((_, sig)) = escalation {
                    for pid in alive(&statuses) {
                        send_signal(pid, sig);
                    }
                    escalation = (sig == libc::SIGTERM)
                        .then(|| (Instant::now() + grace.kill_after, libc::SIGKILL));
                }
            }
        }
    }

    // Collect the rest of stderr; a leaked grandchild holding a pipe must not hang us.
    let drain_deadline = Instant::now() + grace.drain;
    let mut drained = 0;
    while drained < stages.len() {
        let left = drain_deadline.saturating_duration_since(Instant::now());
        match drained_rx.recv_timeout(left) {
            Ok(_) => drained += 1,
            Err(_) => break,
        }
    }

    let stage_exits = stages
        .iter()
        .enumerate()
        .map(|(index, stage)| {
            let (status, at) = statuses[index].expect("every stage was reaped");
            let signal = status.signal();
            let code = match (status.code(), signal) {
                (Some(code), _) => code,
                (None, Some(sig)) => 128 + sig,
                (None, None) => 128,
            };
            StageExit {
                name: stage.name.clone(),
                index,
                code,
                signal,
                elapsed: at.saturating_duration_since(start),
                stderr_tail: tails[index].lock().unwrap().text(),
            }
        })
        .collect();
    Ok(PipelineExit {
        stages: stage_exits,
        exit_order,
        interrupted,
        elapsed: start.elapsed(),
    })
}

/// Kills and reaps children spawned before a later spawn failed.
fn abandon(children: &mut Vec<Child>) {
    for child in children.iter() {
        send_signal(child.id(), libc::SIGTERM);
    }
    for mut child in children.drain(..) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

fn send_signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid of our own unreaped child.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// The last [`STDERR_TAIL_BYTES`] of a stage's stderr.
#[derive(Debug, Default)]
struct Tail {
    bytes: Vec<u8>,
}

impl Tail {
    fn push(&mut self, line: &[u8]) {
        self.bytes.extend_from_slice(line);
        if self.bytes.len() > STDERR_TAIL_BYTES {
            let cut = self.bytes.len() - STDERR_TAIL_BYTES;
            self.bytes.drain(..cut);
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

fn forward_stderr(stderr: impl Read, name: &str, sink: &dyn StderrSink, tail: &Mutex<Tail>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_LINE_BYTES as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                sink.line(name, &line);
                tail.lock().unwrap().push(&line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects stderr lines as (stage, text).
    #[derive(Default)]
    struct Capture(Mutex<Vec<(String, String)>>);

    impl StderrSink for Capture {
        fn line(&self, stage: &str, line: &[u8]) {
            self.0.lock().unwrap().push((
                stage.to_string(),
                String::from_utf8_lossy(line).into_owned(),
            ));
        }
    }

    fn sh(name: &str, script: &str) -> StageCommand {
        StageCommand::new(name, "/bin/sh").arg("-c").arg(script)
    }

    fn no_signals() -> SignalWatch {
        let (_tx, rx) = unbounded();
        SignalWatch::from_channel(rx)
    }

    fn quick() -> Grace {
        Grace {
            terminate_after: Duration::from_secs(5),
            kill_after: Duration::from_secs(5),
            drain: Duration::from_millis(500),
        }
    }

    fn run_to_file(
        stages: &[StageCommand],
        signals: &SignalWatch,
        sink: Arc<dyn StderrSink>,
    ) -> (Result<PipelineExit, PipelineError>, String) {
        let out = tempfile::NamedTempFile::new().unwrap();
        let file = out.reopen().unwrap();
        let result = run(stages, Output::File(file), signals, sink, quick());
        (result, std::fs::read_to_string(out.path()).unwrap())
    }

    #[test]
    fn data_flows_through_every_stage() {
        let stages = [
            sh("head", "printf 'a\\nb\\nc\\n'"),
            StageCommand::new("cat", "cat"),
            sh("upper", "tr a-z A-Z"),
        ];
        let (result, out) = run_to_file(&stages, &no_signals(), Arc::new(Capture::default()));
        let exit = result.unwrap().into_result().unwrap();
        assert_eq!(out, "A\nB\nC\n");
        assert_eq!(exit.stages.len(), 3);
        assert!(exit.stages.iter().all(StageExit::success));
        assert_eq!(exit.exit_order.len(), 3);
    }

    #[test]
    fn first_stage_reads_dev_null() {
        let (result, out) = run_to_file(
            &[StageCommand::new("cat", "cat"), sh("count", "wc -c")],
            &no_signals(),
            Arc::new(Capture::default()),
        );
        result.unwrap().into_result().unwrap();
        assert_eq!(out.trim(), "0");
    }

    #[test]
    fn stderr_is_forwarded_and_failure_names_stage_status_and_message() {
        let capture = Arc::new(Capture::default());
        let stages = [
            sh(
                "gp-launch",
                "echo 'gp-launch: --cpus 0: at least one vCPU is needed' >&2; exit 3",
            ),
            StageCommand::new("cat", "cat"),
            sh("tail", "cat >/dev/null; echo 'tail: saw end of input' >&2"),
        ];
        let (result, _) = run_to_file(&stages, &no_signals(), capture.clone());
        let err = result.unwrap().into_result().unwrap_err();
        assert_eq!(err.exit_code(), 3);
        assert_eq!(err.stage(), Some("gp-launch"));
        assert_eq!(
            err.to_string(),
            "gp-launch (stage 1 of 3) exited with status 3: --cpus 0: at least one vCPU is needed"
        );
        let lines = capture.0.lock().unwrap();
        assert!(lines.contains(&(
            "gp-launch".to_string(),
            "gp-launch: --cpus 0: at least one vCPU is needed\n".to_string()
        )));
        assert!(lines.contains(&("tail".to_string(), "tail: saw end of input\n".to_string())));
    }

    #[test]
    fn first_failure_is_the_first_in_time_not_in_position() {
        // The downstream stage fails at once; upstream fails later (as if from a closed pipe).
        let stages = [
            sh(
                "up",
                "while read x; do :; done; sleep 0.3; echo 'up: broken pipe' >&2; exit 1",
            ),
            sh("down", "echo 'down: bad --multifd-compression' >&2; exit 2"),
        ];
        let (result, _) = run_to_file(&stages, &no_signals(), Arc::new(Capture::default()));
        let err = result.unwrap().into_result().unwrap_err();
        assert_eq!(err.stage(), Some("down"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn message_keeps_cause_lines_after_the_tool_line() {
        let exit = StageExit {
            name: "gp-migrate".into(),
            index: 2,
            code: 1,
            signal: None,
            elapsed: Duration::ZERO,
            stderr_tail:
                "starting\ngp-migrate: cannot set capabilities\n  caused by: no compress\n\
                          later noise\n"
                    .into(),
        };
        assert_eq!(
            exit.message(),
            "cannot set capabilities\n  caused by: no compress"
        );
        let silent = StageExit {
            stderr_tail: String::new(),
            ..exit.clone()
        };
        assert_eq!(silent.message(), "(nothing on stderr)");
        let other = StageExit {
            stderr_tail: "Segmentation fault\n".into(),
            ..exit.clone()
        };
        assert_eq!(other.message(), "Segmentation fault");
        let clap = StageExit {
            stderr_tail: "error: invalid value 'bogus' for '--multifd-compression <METHOD>'\n  \
                          [possible values: none, zlib]\n\nFor more information, try '--help'.\n"
                .into(),
            ..exit
        };
        assert_eq!(
            clap.message(),
            "error: invalid value 'bogus' for '--multifd-compression <METHOD>'\n  [possible values: none, zlib]"
        );
    }

    #[test]
    fn a_killed_stage_reports_128_plus_signal() {
        let (result, _) = run_to_file(
            &[sh("victim", "kill -KILL $$")],
            &no_signals(),
            Arc::new(Capture::default()),
        );
        let exit = result.unwrap();
        assert_eq!(exit.stages[0].code, 128 + libc::SIGKILL);
        assert_eq!(exit.stages[0].signal, Some(libc::SIGKILL));
        let err = exit.into_result().unwrap_err();
        assert!(
            err.to_string()
                .contains("was killed by SIGKILL (status 137)"),
            "{err}"
        );
    }

    #[test]
    fn signals_are_forwarded_to_every_stage_and_reported() {
        let (tx, rx) = unbounded();
        let signals = SignalWatch::from_channel(rx);
        let dir = tempfile::tempdir().unwrap();
        // Each stage records the signal it got, after saying (ready-NAME) its traps are set.
        let stage = |name: &str| {
            let mark = dir.path().join(name);
            let script = format!(
                "trap 'echo TERM > {mark}; exit 143' TERM; trap 'echo INT > {mark}; exit 130' INT; \
                 touch {mark}.ready; while :; do sleep 0.05; done",
                mark = mark.display(),
            );
            sh(name, &script)
        };
        let stages = [stage("one"), stage("two")];
        let handle = thread::spawn(move || {
            run(
                &stages,
                Output::Inherit,
                &signals,
                Arc::new(Capture::default()),
                quick(),
            )
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        for name in ["one", "two"] {
            while !dir.path().join(format!("{name}.ready")).exists() {
                assert!(
                    Instant::now() < deadline,
                    "stage {name} never set its traps"
                );
                thread::sleep(Duration::from_millis(10));
            }
        }
        tx.send(libc::SIGINT).unwrap();
        let exit = handle.join().unwrap().unwrap();
        assert_eq!(exit.interrupted, Some(libc::SIGINT));
        for name in ["one", "two"] {
            let got = std::fs::read_to_string(dir.path().join(name)).unwrap();
            assert_eq!(got.trim(), "INT", "{name}");
        }
        let err = exit.into_result().unwrap_err();
        assert_eq!(err.exit_code(), 130);
        assert_eq!(err.to_string(), "interrupted by SIGINT");
    }

    #[test]
    fn stages_that_ignore_a_failure_are_terminated_after_the_grace_period() {
        let stages = [
            sh("stubborn", "trap '' INT; exec sleep 600"),
            sh("fails", "exit 4"),
        ];
        let grace = Grace {
            terminate_after: Duration::from_millis(200),
            kill_after: Duration::from_millis(200),
            drain: Duration::from_millis(200),
        };
        let start = Instant::now();
        let exit = run(
            &stages,
            Output::Inherit,
            &no_signals(),
            Arc::new(Capture::default()),
            grace,
        )
        .unwrap();
        assert!(start.elapsed() < Duration::from_secs(60));
        assert_eq!(exit.stages[0].signal, Some(libc::SIGTERM));
        assert_eq!(exit.first_failure().unwrap().name, "fails");
    }

    #[test]
    fn spawn_failure_reaps_earlier_stages_and_names_the_program() {
        let stages = [
            sh("first", "exec sleep 600"),
            StageCommand::new("gp-missing", "/nonexistent/gp-missing"),
        ];
        let start = Instant::now();
        let err = run(
            &stages,
            Output::Inherit,
            &no_signals(),
            Arc::new(Capture::default()),
            quick(),
        )
        .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(30));
        assert_eq!(err.stage(), Some("gp-missing"));
        assert_eq!(
            err.to_string(),
            "cannot start gp-missing (/nonexistent/gp-missing)"
        );
        assert_eq!(err.exit_code(), 127);
    }

    #[test]
    fn shell_words_quote_what_needs_it() {
        let cmd = StageCommand::new("gp-migrate", "/x/target/debug/gp-migrate").args([
            "--parameter",
            "max-bandwidth=1",
            "--name",
            "it's",
        ]);
        assert_eq!(
            cmd.shell_words(),
            "/x/target/debug/gp-migrate --parameter max-bandwidth=1 --name 'it'\\''s'"
        );
        // A program that PATH finds under its own name is shown by that name.
        let sh = gp_qemu::bind::find_on_path("sh").unwrap();
        assert_eq!(
            StageCommand::new("sh", &sh).arg("-c").shell_words(),
            "sh -c"
        );
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(
            shell_pipeline(&[StageCommand::new("a", "/a"), StageCommand::new("b", "/b")]),
            "/a \\\n  | /b"
        );
    }
}
