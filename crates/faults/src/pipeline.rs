//! A hand-built pipeline: `gp-launch | gp-sample | gp-migrate | (tap) | sink`, every stage in
//! one process group as a shell starts them, every pid known, every stderr in a file.
//!
//! The tap is a thread of the test between the last filter and the sink. It passes each line on
//! unchanged, keeps a copy (parsed), and wakes whoever waits for a record. When the sink closes
//! its input the tap closes its own, so the stage before it sees the closed pipe as it would
//! without the tap. Like `tee -i`, the tap is not in the process group: a Ctrl-C does not reach it.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gp_records::report::Report;
use gp_records::{Record, Vm};

use crate::cleanup;
use gp_testkit::bin;

/// How long a test waits for a record that should come (TCG on two busy cores is slow).
pub const RECORD_WAIT: Duration = Duration::from_secs(180);

/// A stage of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Launch,
    Sample,
    Migrate,
    Collect,
    /// `head -n N` as the sink: a consumer that closes its input early.
    Head,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Launch => "gp-launch",
            Stage::Sample => "gp-sample",
            Stage::Migrate => "gp-migrate",
            Stage::Collect => "gp-collect",
            Stage::Head => "head",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The last stage.
#[derive(Debug, Clone)]
pub enum Sink {
    /// `gp-collect --output DIR/report.json` plus these arguments.
    Collect(Vec<OsString>),
    /// `head -n N`.
    Head(usize),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// gp-launch's arguments; `--initrd` (the default stress initrd) and a marker kernel argument
    /// are added.
    pub launch: Vec<OsString>,
    /// gp-sample's arguments, or `None` for no gp-sample.
    pub sample: Option<Vec<OsString>>,
    /// gp-migrate's arguments, or `None` for no gp-migrate.
    pub migrate: Option<Vec<OsString>>,
    pub sink: Sink,
    /// Extra environment for every stage.
    pub env: Vec<(OsString, OsString)>,
    /// Where gp-collect writes the report (default: `report.json` in the run's directory).
    pub report: Option<PathBuf>,
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

impl Spec {
    /// A 256 MiB, 1-vCPU TCG guest; gp-sample; gp-migrate with `migrate`; gp-collect.
    pub fn new(migrate: &[&str]) -> Spec {
        Spec {
            launch: os(gp_testkit::SMALL_TCG_GUEST),
            sample: Some(Vec::new()),
            // --cold: the suite tests faults, not the settle; a wait for a steady rate would
            // cost each of its runs 2-3 s under TCG (docs/gp-migrate.md).
            migrate: Some(os(&[&["--cold"], migrate].concat())),
            sink: Sink::Collect(Vec::new()),
            env: Vec::new(),
            report: None,
        }
    }

    pub fn sink(mut self, sink: Sink) -> Spec {
        self.sink = sink;
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Spec {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn collect_args(mut self, args: &[&str]) -> Spec {
        self.sink = Sink::Collect(os(args));
        self
    }

    pub fn sample_args(mut self, args: &[&str]) -> Spec {
        self.sample = Some(os(args));
        self
    }
}

/// One line that went through the tap.
#[derive(Debug)]
pub struct TapLine {
    pub raw: String,
    /// The record, when the line is one this version knows.
    pub record: Option<Record>,
    pub at: Instant,
}

#[derive(Default)]
struct TapState {
    lines: Vec<Arc<TapLine>>,
    /// The stage before the tap ended its output (or the tap stopped).
    ended: bool,
    /// The sink closed its input.
    sink_closed: bool,
}

#[derive(Default)]
struct Tap {
    state: Mutex<TapState>,
    changed: Condvar,
}

impl Tap {
    fn lock(&self) -> std::sync::MutexGuard<'_, TapState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(&self, input: ChildStdout, output: ChildStdin, mut copy: File) {
        let mut input = BufReader::new(input);
        let mut output = Some(output);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match input.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let _ = copy.write_all(&buf);
            let closed = match output.as_mut() {
                Some(out) => out.write_all(&buf).and_then(|()| out.flush()).is_err(),
                None => true,
            };
            let text = String::from_utf8_lossy(&buf);
            let raw = text.trim_end_matches(['\n', '\r']).to_string();
            let record = gp_records::ndjson::parse_line(&raw).ok().flatten();
            let mut s = self.lock();
            s.lines.push(Arc::new(TapLine {
                raw,
                record,
                at: Instant::now(),
            }));
            if closed {
                // Close our input as the sink closed its: the stage before sees EPIPE.
                s.sink_closed = true;
                break;
            }
            drop(s);
            self.changed.notify_all();
        }
        drop(output);
        drop(input);
        self.lock().ended = true;
        self.changed.notify_all();
    }
}

/// A stage's exit.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    pub stage: Stage,
    pub status: ExitStatus,
    pub at: Instant,
}

/// How a pipeline ended.
#[derive(Debug, Clone)]
pub struct Ended {
    pub exits: Vec<Exit>,
    /// From starting the pipeline to the last stage's exit.
    pub total: Duration,
    /// From the fault to the last stage's exit, if a fault was injected.
    pub after_fault: Option<Duration>,
    /// When the fault was injected (else the start).
    pub origin: Instant,
}

impl Ended {
    pub fn status(&self, stage: Stage) -> ExitStatus {
        self.exits
            .iter()
            .find(|e| e.stage == stage)
            .map(|e| e.status)
            .unwrap_or_else(|| panic!("{stage} was not in the pipeline"))
    }

    /// The exit code, or 128 + the signal that killed it.
    pub fn code(&self, stage: Stage) -> i32 {
        let s = self.status(stage);
        s.code()
            .or_else(|| s.signal().map(|sig| 128 + sig))
            .unwrap_or(-1)
    }

    /// Each stage's exit and when, after the fault (or the start), for failure messages.
    pub fn describe(&self) -> String {
        self.exits
            .iter()
            .map(|e| {
                format!(
                    "{}: {} at +{:.1} s",
                    e.stage,
                    e.status,
                    e.at.saturating_duration_since(self.origin).as_secs_f64()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

struct Running {
    stage: Stage,
    pid: u32,
}

/// A running pipeline. Dropping it kills whatever is still running (stages and QEMUs).
pub struct Pipeline {
    stages: Vec<Running>,
    pgid: i32,
    exits_rx: Receiver<Exit>,
    exits: Vec<Exit>,
    tap: Arc<Tap>,
    tap_thread: Option<JoinHandle<()>>,
    dir: tempfile::TempDir,
    started: Instant,
    fault: Option<(Instant, String)>,
    report: Option<PathBuf>,
    /// The kernel argument that marks this run's QEMUs.
    pub marker: String,
}

impl Pipeline {
    /// Starts the pipeline. Needs QEMU, the guest kernel and the stress initrd.
    pub fn start(spec: &Spec) -> Pipeline {
        gp_testkit::require_qemu();
        let initrd = gp_qemu::paths::default_initrd();
        assert!(
            initrd.exists(),
            "{} is missing: the fault suite needs the stress initrd (run initrd/build.sh or \
             scripts/setup-host.sh)",
            initrd.display()
        );
        let mut launch = spec.launch.clone();
        launch.push("--initrd".into());
        launch.push(initrd.into_os_string());
        Pipeline::start_with(spec, launch)
    }

    /// Starts the pipeline with gp-launch's arguments exactly as given (plus the marker).
    pub fn start_with(spec: &Spec, mut launch: Vec<OsString>) -> Pipeline {
        let dir = tempfile::Builder::new()
            .prefix("gp-faults-")
            .tempdir()
            .expect("a temporary directory");
        let marker = gp_testkit::marker();
        launch.push(format!("--kernel-arg={marker}").into());

        let (exits_tx, exits_rx) = mpsc::channel();
        let mut p = Pipeline {
            stages: Vec::new(),
            pgid: 0,
            exits_rx,
            exits: Vec::new(),
            tap: Arc::new(Tap::default()),
            tap_thread: None,
            dir,
            started: Instant::now(),
            fault: None,
            report: spec.report.clone(),
            marker,
        };

        let mut commands: Vec<(Stage, Command)> = Vec::new();
        let mut cmd = Command::new(bin("gp-launch"));
        cmd.args(&launch);
        commands.push((Stage::Launch, cmd));
        if let Some(args) = &spec.sample {
            let mut cmd = Command::new(bin("gp-sample"));
            cmd.args(args);
            commands.push((Stage::Sample, cmd));
        }
        if let Some(args) = &spec.migrate {
            let mut cmd = Command::new(bin("gp-migrate"));
            cmd.args(args);
            commands.push((Stage::Migrate, cmd));
        }

        let mut upstream: Option<ChildStdout> = None;
        for (stage, mut cmd) in commands {
            cmd.stdin(match upstream.take() {
                Some(out) => Stdio::from(out),
                None => Stdio::null(),
            })
            .stdout(Stdio::piped());
            let mut child = p.spawn(stage, &mut cmd, &spec.env);
            upstream = child.stdout.take();
            p.watch(stage, child, &exits_tx);
        }

        let (sink_stage, mut cmd) = match &spec.sink {
            Sink::Collect(args) => {
                let mut cmd = Command::new(bin("gp-collect"));
                cmd.arg("--output").arg(p.report_path()).args(args);
                (Stage::Collect, cmd)
            }
            Sink::Head(n) => {
                let mut cmd = Command::new("head");
                cmd.arg("-n").arg(n.to_string());
                (Stage::Head, cmd)
            }
        };
        cmd.stdin(Stdio::piped()).stdout(
            File::create(p.dir.path().join("sink.stdout"))
                .map(Stdio::from)
                .expect("sink stdout file"),
        );
        let mut sink = p.spawn(sink_stage, &mut cmd, &spec.env);
        let sink_in = sink.stdin.take().expect("sink stdin");
        p.watch(sink_stage, sink, &exits_tx);

        let tap = Arc::clone(&p.tap);
        let from = upstream.expect("the last filter's stdout");
        let copy = File::create(p.stream_path()).expect("stream copy");
        p.tap_thread = Some(
            std::thread::Builder::new()
                .name("tap".into())
                .spawn(move || tap.run(from, sink_in, copy))
                .expect("spawn the tap"),
        );
        p
    }

    fn spawn(&mut self, stage: Stage, cmd: &mut Command, env: &[(OsString, OsString)]) -> Child {
        let err = File::create(self.stderr_path(stage)).expect("stderr file");
        cmd.stderr(err).process_group(self.pgid);
        gp_testkit::end_with_test(cmd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {stage}: {e}"));
        if self.pgid == 0 {
            self.pgid = child.id() as i32;
        }
        self.stages.push(Running {
            stage,
            pid: child.id(),
        });
        child
    }

    /// A thread per stage reaps it and reports the exit with its time.
    fn watch(&mut self, stage: Stage, mut child: Child, exits: &mpsc::Sender<Exit>) {
        let tx = exits.clone();
        std::thread::Builder::new()
            .name(format!("wait-{stage}"))
            .spawn(move || {
                if let Ok(status) = child.wait() {
                    let _ = tx.send(Exit {
                        stage,
                        status,
                        at: Instant::now(),
                    });
                }
            })
            .expect("spawn a waiter thread");
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn report_path(&self) -> PathBuf {
        self.report
            .clone()
            .unwrap_or_else(|| self.dir.path().join("report.json"))
    }

    /// The copy of the stream the tap saw.
    pub fn stream_path(&self) -> PathBuf {
        self.dir.path().join("stream.ndjson")
    }

    fn stderr_path(&self, stage: Stage) -> PathBuf {
        self.dir.path().join(format!("{}.stderr", stage.name()))
    }

    pub fn stderr(&self, stage: Stage) -> String {
        std::fs::read_to_string(self.stderr_path(stage)).unwrap_or_default()
    }

    /// Every stage's stderr and the stream's tail, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for r in &self.stages {
            s.push_str(&format!(
                "--- {} (pid {}) stderr ---\n{}",
                r.stage,
                r.pid,
                self.stderr(r.stage)
            ));
        }
        let lines = self.tap.lock().lines.clone();
        s.push_str(&format!("--- last records of {} ---\n", lines.len()));
        for l in lines.iter().rev().take(12).rev() {
            let mut raw = l.raw.clone();
            if raw.len() > 300 {
                let mut end = 300;
                while !raw.is_char_boundary(end) {
                    end -= 1;
                }
                raw.truncate(end);
                raw.push_str("...");
            }
            s.push_str(&raw);
            s.push('\n');
        }
        s
    }

    pub fn pid(&self, stage: Stage) -> u32 {
        self.stages
            .iter()
            .find(|r| r.stage == stage)
            .map(|r| r.pid)
            .unwrap_or_else(|| panic!("{stage} is not in this pipeline"))
    }

    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Every record the tap has seen so far.
    pub fn records(&self) -> Vec<Record> {
        self.tap
            .lock()
            .lines
            .iter()
            .filter_map(|l| l.record.clone())
            .collect()
    }

    /// Every line the tap has seen so far.
    pub fn lines(&self) -> Vec<Arc<TapLine>> {
        self.tap.lock().lines.clone()
    }

    /// The `vm` records seen so far.
    pub fn vms(&self) -> Vec<Vm> {
        self.records()
            .into_iter()
            .filter_map(|r| match r {
                Record::Vm(vm) => Some(vm),
                _ => None,
            })
            .collect()
    }

    /// The VM of `role`, waiting for its record.
    pub fn vm(&self, role: gp_records::Role) -> Vm {
        match self.wait_for(
            &format!("the {role} vm record"),
            |r| matches!(r, Record::Vm(vm) if vm.role == role),
        ) {
            Record::Vm(vm) => vm,
            _ => unreachable!(),
        }
    }

    /// Waits for the first record that satisfies `pred` (seen before or after the call), up to
    /// [`RECORD_WAIT`]. Panics, with the logs, when the stream ends or the wait times out.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Record) -> bool) -> Record {
        match self.try_wait_for(RECORD_WAIT, pred) {
            Ok(r) => r,
            Err(why) => panic!("waiting for {what}: {why}\n{}", self.logs()),
        }
    }

    /// Like [`Pipeline::wait_for`], with an error instead of a panic.
    pub fn try_wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&Record) -> bool,
    ) -> Result<Record, String> {
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        let mut s = self.tap.lock();
        loop {
            for l in &s.lines[seen..] {
                if let Some(r) = &l.record {
                    if pred(r) {
                        return Ok(r.clone());
                    }
                }
            }
            seen = s.lines.len();
            if s.ended {
                return Err("the stream ended first".into());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(format!("nothing within {timeout:?}"));
            }
            s = self
                .tap
                .changed
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn note_fault(&mut self, what: String) {
        eprintln!("fault: {what}");
        self.fault = Some((Instant::now(), what));
    }

    /// Sends `sig` to the whole process group, as Ctrl-C in a shell does.
    pub fn signal_group(&mut self, sig: i32) {
        // SAFETY: kill(2) with a negative pid signals the process group; no memory involved.
        let rc = unsafe { libc::kill(-self.pgid, sig) };
        assert_eq!(rc, 0, "kill -{sig} -{}", self.pgid);
        self.note_fault(format!("signal {sig} to the process group {}", self.pgid));
    }

    /// Sends `sig` to one stage.
    pub fn signal(&mut self, stage: Stage, sig: i32) {
        let pid = self.pid(stage);
        // SAFETY: kill(2) on a child we have not reaped yet (its waiter thread reaps it).
        let rc = unsafe { libc::kill(pid as i32, sig) };
        assert_eq!(rc, 0, "kill -{sig} {pid} ({stage})");
        self.note_fault(format!("signal {sig} to {stage} (pid {pid})"));
    }

    /// Sends `sig` to a process that is not a stage (a QEMU).
    pub fn signal_pid(&mut self, pid: u32, what: &str, sig: i32) {
        // SAFETY: kill(2); the pid is a QEMU of this run, alive (checked by the caller's record).
        let rc = unsafe { libc::kill(pid as i32, sig) };
        assert_eq!(rc, 0, "kill -{sig} {pid} ({what})");
        self.note_fault(format!("signal {sig} to {what} (pid {pid})"));
    }

    /// Waits for every stage to exit. Fails the test (after killing everything) if the
    /// pipeline is still running `bound` after the fault (or after the start, without one).
    pub fn finish(&mut self, bound: Duration) -> Ended {
        let from = self.fault.as_ref().map_or(self.started, |(at, _)| *at);
        let deadline = from + bound;
        while self.exits.len() < self.stages.len() {
            let now = Instant::now();
            let left = deadline.saturating_duration_since(now);
            match self.exits_rx.recv_timeout(left) {
                Ok(exit) => self.exits.push(exit),
                Err(_) => {
                    let running: Vec<&str> = self
                        .stages
                        .iter()
                        .filter(|r| !self.exits.iter().any(|e| e.stage == r.stage))
                        .map(|r| r.stage.name())
                        .collect();
                    let mut logs = self.logs();
                    for r in self
                        .stages
                        .iter()
                        .filter(|r| running.contains(&r.stage.name()))
                    {
                        logs.push_str(&stacks(r.pid, r.stage.name()));
                    }
                    self.kill_everything();
                    panic!(
                        "still running {bound:?} after {}: {}\n{logs}",
                        self.fault
                            .as_ref()
                            .map_or("the start".to_string(), |(_, w)| w.clone()),
                        running.join(", ")
                    );
                }
            }
        }
        if let Some(t) = self.tap_thread.take() {
            let _ = t.join();
        }
        let last = self
            .exits
            .iter()
            .map(|e| e.at)
            .max()
            .unwrap_or_else(Instant::now);
        Ended {
            exits: self.exits.clone(),
            total: last - self.started,
            after_fault: self
                .fault
                .as_ref()
                .map(|(at, _)| last.saturating_duration_since(*at)),
            origin: from,
        }
    }

    /// The report gp-collect wrote. Panics with the logs when there is none.
    pub fn report(&self) -> Report {
        let path = self.report_path();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("no report at {}: {e}\n{}", path.display(), self.logs()));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not a report: {e}\n{}", path.display(), self.logs()))
    }

    /// Nothing of the run remains: see [`cleanup::assert_clean`].
    pub fn assert_clean(&self) {
        if let Err(e) = cleanup::check(self.pid(Stage::Launch), &self.marker, &self.vms()) {
            panic!("{e}\n{}", self.logs());
        }
    }

    fn kill_everything(&mut self) {
        // SAFETY: kill(2) on our own process group and on this run's QEMUs.
        unsafe {
            libc::kill(-self.pgid, libc::SIGKILL);
        }
        for pid in gp_testkit::processes_with(&self.marker) {
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
        }
        // gp-launch cannot remove its runtime directory after SIGKILL: the test does, once its
        // QEMUs are gone, so a failed case leaves nothing behind either.
        let gone = gp_testkit::wait_until(cleanup::GONE_WAIT, || {
            gp_testkit::processes_with(&self.marker).is_empty()
        });
        if gone {
            for dir in cleanup::runtime_dirs_of(self.pgid as u32) {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if self.exits.len() < self.stages.len()
            || !gp_testkit::processes_with(&self.marker).is_empty()
        {
            self.kill_everything();
        }
    }
}

/// The threads' stacks of a stuck process, from gdb when it is installed (for failure messages).
fn stacks(pid: u32, name: &str) -> String {
    let out = Command::new("gdb")
        .args([
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "thread apply all bt 12",
        ])
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            let frames: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with('#') || l.starts_with("Thread"))
                .collect();
            format!("--- {name} (pid {pid}) stacks ---\n{}\n", frames.join("\n"))
        }
        Err(_) => format!("--- {name} (pid {pid}): no gdb for its stacks ---\n"),
    }
}
