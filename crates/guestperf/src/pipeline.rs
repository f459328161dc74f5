//! Run stage binaries as a Unix pipeline: spawn, connect, forward signals, reap.
//!
//! `gp-launch | gp-sample | gp-migrate | gp-collect` is run here exactly as a shell would run it,
//! with three additions a shell does not give:
//!
//! - each stage's stderr is read line by line, passed on to a [`StderrSink`] (normally our own
//!   stderr) and its tail kept, so a failure can be reported with the stage's own message;
//! - each child lives in a process group of its own, so a terminal's Ctrl-C reaches only us and
//!   we forward it exactly once (SIGINT, SIGTERM, SIGHUP), and each child gets SIGTERM if we die
//!   (`PR_SET_PDEATHSIG`);
//! - a stage that fails does not hang the others: after it exits non-zero the rest get a grace
//!   period to finish on their own (a closed pipe or end of input normally ends them), then
//!   SIGTERM, then SIGKILL.
//!
//! The children are [`gp_qemu::process`] children, the supervisor QEMU runs under too: spawn,
//! stdin and stdout connected stage to stage, stderr lines and tail, exit status as code or
//! 128 + signal, signals that never reach a reaped pid, kill and reap. This module adds only the
//! pipeline's policy: which stage failed first, and when the others get which signal. Every
//! child is reaped on every path, including spawn failures half-way through.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{after, never, select, unbounded, Receiver, Sender};
use gp_qemu::process::{self, Child, Exit, Hooks, Io, SpawnError, StdoutTo};

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
}

impl Default for Grace {
    fn default() -> Self {
        Grace {
            terminate_after: Duration::from_secs(30),
            kill_after: Duration::from_secs(30),
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
    /// The end of what the stage wrote on stderr (its last
    /// [`gp_qemu::process::STDERR_TAIL_LINES`] lines).
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
    let (exit_tx, exit_rx) = unbounded::<StageExitReport>();
    let children = spawn_stages(stages, output, &sink, &exit_tx)?;
    drop(exit_tx);

    let Waited {
        exits,
        exit_order,
        interrupted,
    } = wait_for_stages(&children, &exit_rx, signals, grace);

    let stage_exits = stages
        .iter()
        .enumerate()
        .map(|(index, stage)| {
            let (exit, at) = exits[index].unwrap_or_else(|| {
                // Every supervision thread reports its child's exit; this is a fallback only.
                (children[index].kill_and_reap(), Instant::now())
            });
            let mut stderr_tail = children[index].stderr_tail().join("\n");
            stderr_tail.push('\n');
            StageExit {
                name: stage.name.clone(),
                index,
                code: exit.status,
                signal: exit.signal,
                elapsed: at.saturating_duration_since(start),
                stderr_tail,
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

/// What a stage's supervision thread reports when the stage has exited: its index, its exit and
/// when it was seen.
type StageExitReport = (usize, Exit, Instant);

/// Spawns every stage, each reading the previous one's stdout and the last writing to `output`.
/// When a spawn fails, the stages already started are ended and reaped before the error returns.
fn spawn_stages(
    stages: &[StageCommand],
    output: Output,
    sink: &Arc<dyn StderrSink>,
    exit_tx: &Sender<StageExitReport>,
) -> Result<Vec<Child>, PipelineError> {
    let mut children: Vec<Child> = Vec::with_capacity(stages.len());
    let mut output = Some(output);
    let mut upstream: Option<std::process::ChildStdout> = None;
    for (index, stage) in stages.iter().enumerate() {
        let spec = stage_spec(stage);
        let stdout = if index + 1 == stages.len() {
            match output.take() {
                Some(Output::File(f)) => StdoutTo::Stdio(Stdio::from(f)),
                _ => StdoutTo::Stdio(Stdio::inherit()),
            }
        } else {
            StdoutTo::Pipe
        };
        let io = Io {
            stdin: Some(upstream.take().map_or_else(Stdio::null, Stdio::from)),
            stdout,
        };
        let hooks = stage_hooks(index, &stage.name, sink, exit_tx);
        match process::spawn_io(&spec, io, hooks) {
            Ok(child) => {
                upstream = child.take_stdout();
                children.push(child);
            }
            Err(e) => {
                abandon(&children);
                let source = match e {
                    SpawnError::NotFound { source, .. } | SpawnError::Io { source, .. } => source,
                };
                return Err(PipelineError::Spawn {
                    stage: stage.name.clone(),
                    program: stage.program.display().to_string(),
                    source,
                });
            }
        }
    }
    Ok(children)
}

/// The process spec of one stage: its command, and SIGTERM when we die.
fn stage_spec(stage: &StageCommand) -> process::Spec {
    let mut spec = process::Spec::new(stage.name.clone(), stage.program.as_os_str());
    spec.args(&stage.args);
    // A stage cleans up on SIGTERM (gp-launch stops its QEMUs, gp-collect writes the report).
    spec.death_signal = libc::SIGTERM;
    spec
}

/// The hooks of stage `index`: its stderr lines go to `sink` under `name`, its exit to
/// `exit_tx`; its stdout is not read here.
fn stage_hooks(
    index: usize,
    name: &str,
    sink: &Arc<dyn StderrSink>,
    exit_tx: &Sender<StageExitReport>,
) -> Hooks {
    let name = name.to_string();
    let sink = Arc::clone(sink);
    let exit_tx = exit_tx.clone();
    Hooks {
        on_stdout_line: Box::new(|_| {}),
        on_stderr_line: Some(Box::new(move |line: &str| {
            sink.line(&name, format!("{line}\n").as_bytes())
        })),
        on_exit: Some(Box::new(move |exit| {
            let _ = exit_tx.send((index, exit, Instant::now()));
        })),
    }
}

/// What [`wait_for_stages`] saw.
struct Waited {
    /// Each stage's exit and when it was seen, by position (`None` if never reported).
    exits: Vec<Option<(Exit, Instant)>>,
    /// Indices of the stages in the order they exited.
    exit_order: Vec<usize>,
    /// The first signal forwarded to the stages, if any.
    interrupted: Option<i32>,
}

/// Waits until every stage has exited, forwarding our signals to them and, after a failure or
/// a signal, escalating to SIGTERM and then SIGKILL for the ones still running.
fn wait_for_stages(
    children: &[Child],
    exit_rx: &Receiver<StageExitReport>,
    signals: &SignalWatch,
    grace: Grace,
) -> Waited {
    let mut exits: Vec<Option<(Exit, Instant)>> = vec![None; children.len()];
    let mut exit_order = Vec::with_capacity(children.len());
    let mut interrupted: Option<i32> = None;
    // Escalation: when set, the deadline at which the next step (SIGTERM, then SIGKILL) happens.
    let mut escalation: Option<(Instant, i32)> = None;
    // Child::signal skips a child that has exited: no signal reaches a reaped pid.
    let signal_all = |sig: i32| {
        for child in children {
            child.signal(sig);
        }
    };
    while exit_order.len() < children.len() {
        let timeout = match escalation {
            Some((deadline, _)) => after(deadline.saturating_duration_since(Instant::now())),
            None => never(),
        };
        select! {
            recv(exit_rx) -> msg => {
                let Ok((index, exit, at)) = msg else { break };
                exits[index] = Some((exit, at));
                exit_order.push(index);
                if !exit.success() && escalation.is_none() {
                    escalation = Some((Instant::now() + grace.terminate_after, libc::SIGTERM));
                }
            }
            recv(signals.receiver()) -> sig => {
                let Ok(sig) = sig else { continue };
                interrupted.get_or_insert(sig);
                signal_all(sig);
                // The stages clean up on the signal; if they do not, escalate.
                if escalation.map_or(true, |(_, s)| s == libc::SIGTERM) {
                    escalation = Some((Instant::now() + grace.kill_after, libc::SIGKILL));
                }
            }
            recv(timeout) -> _ => {
                match escalation {
                    Some((_, libc::SIGKILL)) => {
                        for child in children {
                            if !child.has_exited() {
                                child.kill_and_reap();
                            }
                        }
                        escalation = None;
                    }
                    Some((_, sig)) => {
                        signal_all(sig);
                        escalation = Some((Instant::now() + grace.kill_after, libc::SIGKILL));
                    }
                    None => {}
                }
            }
        }
    }
    Waited {
        exits,
        exit_order,
        interrupted,
    }
}

/// Ends and reaps the stages spawned before a later spawn failed: SIGTERM, 10 s, SIGKILL.
fn abandon(children: &[Child]) {
    for child in children {
        child.signal(libc::SIGTERM);
    }
    for child in children {
        child.stop(|| {}, Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::thread;

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
        // Each stage records the signal it got, after saying (NAME.ready) its traps are set; it
        // waits in the `wait` builtin, which returns at once for a trapped signal. The trap
        // works even when this test runs in the background with SIGINT ignored, because the
        // supervisor restores SIGINT's default in every child (gp_qemu::process).
        let stage = |name: &str| {
            let mark = dir.path().join(name);
            let script = format!(
                "trap 'echo TERM > {mark}; kill $pid; exit 143' TERM; \
                 trap 'echo INT > {mark}; kill $pid; exit 130' INT; \
                 sleep 600 & pid=$!; : > {mark}.ready; wait $pid",
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
    fn a_stage_runs_its_command_and_gets_sigterm_when_we_die() {
        let spec = stage_spec(&StageCommand::new("gp-collect", "/x/gp-collect").arg("--grace"));
        assert_eq!(spec.name, "gp-collect");
        assert_eq!(spec.argv(), ["/x/gp-collect", "--grace"]);
        assert_eq!(spec.death_signal, libc::SIGTERM);
    }

    #[test]
    fn stage_hooks_name_the_stage_end_each_line_and_report_the_index() {
        let capture = Arc::new(Capture::default());
        let sink: Arc<dyn StderrSink> = capture.clone();
        let (tx, rx) = unbounded();
        let hooks = stage_hooks(2, "gp-migrate", &sink, &tx);
        (hooks.on_stderr_line.unwrap())("gp-migrate: no QMP");
        let exit = Exit {
            status: 3,
            signal: None,
            time_s: 0.0,
        };
        (hooks.on_exit.unwrap())(exit);
        assert_eq!(
            *capture.0.lock().unwrap(),
            [("gp-migrate".to_string(), "gp-migrate: no QMP\n".to_string())]
        );
        let (index, got, _) = rx.try_recv().unwrap();
        assert_eq!((index, got), (2, exit));
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
