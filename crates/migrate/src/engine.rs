//! The run: read gp-launch's records, connect to both VMs, configure, migrate, watch, act, end.
//!
//! One thread reads the input, one forwards SIGINT/SIGTERM; the main thread owns stdout and both
//! QMP sessions, so every record is written from one place and every wait is bounded.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use gp_records::migrate::{Action, MigrationResult, Outcome, Progress, QmpEvent, ScenarioRecord};
use gp_records::ndjson::{Line, ReadError, Reader, WriteError, Writer};
use gp_records::{now_s, Launch, Record, Role, StageError, Vm, VmExit};
use serde_json::{json, Map, Value};

use crate::cli::Args;
use crate::decide::{self, Done, Step};
use crate::plan::{self, Facts, Hardware, Plan, PlanError};
use crate::qmp::{cmd, Event, QmpError, Session};
use crate::ExitStatus;

const STAGE: &str = "gp-migrate";
/// Longest wait for QMP sockets to accept us.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// After a VM or its QMP connection is lost, how long the source has to report the failure.
const LOSS_GRACE: Duration = Duration::from_secs(30);
/// After `migrate_cancel`, how long QEMU has to reach `cancelled`.
const CANCEL_GRACE: Duration = Duration::from_secs(60);
/// How long `quit` may take to answer at the end. A QEMU answers before it exits; one that does
/// not within this is stuck, and gp-launch kills it when the run ends.
const QUIT_ANSWER: Duration = Duration::from_secs(3);
/// After a VM could not be quit, how long to keep passing the input on (the VM may still exit
/// by itself) before ending so that gp-launch notices and stops it.
const UNQUIT_DRAIN: Duration = Duration::from_secs(5);
/// A post-copy phase longer than --max-time plus this is given up as failed.
const POSTCOPY_GRACE: Duration = Duration::from_secs(120);

/// What came in on stdin.
enum Input {
    Line(Box<Line>),
    Bad(ReadError),
    End,
}

/// Why the run must stop now.
#[derive(Debug, Clone, PartialEq)]
enum Stop {
    Signal(i32),
    OutputClosed,
}

/// How the run ends.
#[derive(Debug)]
enum Ending {
    /// The migration ended (or was given up) with this result.
    Result(MigrationResult),
    /// Something went wrong before or outside the migration.
    Error {
        message: String,
        status: ExitStatus,
    },
    Stopped(Stop),
}

use gp_stage::signals::signal_name;

fn vm_index(role: Role) -> usize {
    match role {
        Role::Src => 0,
        Role::Dst => 1,
    }
}

/// The live one-line progress display on a terminal.
struct Display {
    enabled: bool,
    shown: bool,
}

impl Display {
    fn line(&mut self, text: &str) {
        if self.enabled {
            eprint!("\r\x1b[K{text}");
            self.shown = true;
        }
    }

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }
}

struct Run<W: Write> {
    args: Args,
    out: Writer<W>,
    out_closed: bool,
    input: Receiver<Input>,
    input_ended: bool,
    signals: Receiver<i32>,
    launch: Option<Launch>,
    vms: [Option<Vm>; 2],
    exits: [Option<VmExit>; 2],
    /// Host time of the first workload record from each VM.
    workload_s: [Option<f64>; 2],
    sessions: [Option<Session>; 2],
    /// VMs gp-migrate has sent `quit`.
    quit_sent: [bool; 2],
    display: Display,
    bad_lines: u64,
    /// The `result` record is out: a later interruption does not write another.
    result_written: bool,
}

/// Runs gp-migrate: reads records from `input`, writes them and its own to `output`.
/// `signals` delivers SIGINT/SIGTERM numbers.
pub fn run<R, W>(args: Args, input: R, output: W, signals: Receiver<i32>) -> ExitStatus
where
    R: BufRead + Send + 'static,
    W: Write,
{
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("gp-migrate-input".into())
        .spawn(move || {
            for item in Reader::new(input) {
                let msg = match item {
                    Ok(line) => Input::Line(Box::new(line)),
                    Err(e) => Input::Bad(e),
                };
                if tx.send(msg).is_err() {
                    return;
                }
            }
            let _ = tx.send(Input::End);
        })
        .expect("spawn input thread");
    let mut run = Run {
        display: Display {
            enabled: std::io::stderr().is_terminal(),
            shown: false,
        },
        args,
        out: Writer::new(output),
        out_closed: false,
        input: rx,
        input_ended: false,
        signals,
        launch: None,
        vms: [None, None],
        exits: [None, None],
        workload_s: [None, None],
        sessions: [None, None],
        quit_sent: [false, false],
        bad_lines: 0,
        result_written: false,
    };
    run.main()
}

impl<W: Write> Run<W> {
    fn main(&mut self) -> ExitStatus {
        let ending = self.drive();
        self.display.clear();
        let (status, shutdown_reason) = match &ending {
            Ending::Result(r) => {
                let status = match r.outcome {
                    Outcome::Completed => ExitStatus::Completed,
                    Outcome::Failed => ExitStatus::Failed,
                    Outcome::Cancelled => ExitStatus::Cancelled,
                    Outcome::Interrupted => ExitStatus::Interrupted,
                };
                (
                    status,
                    format!("run finished: migration {}", outcome_word(r.outcome)),
                )
            }
            Ending::Error { message, status } => {
                eprintln!("{STAGE}: {message}");
                if !self.result_written {
                    let r = decide::result(Outcome::Failed, message.clone(), None);
                    let _ = self.emit(&Record::Result(r));
                }
                let _ = self.emit(&Record::StageError(StageError::new(STAGE, message.clone())));
                (*status, format!("gp-migrate failed: {message}"))
            }
            Ending::Stopped(Stop::Signal(sig)) => {
                eprintln!("{STAGE}: {} received: ending the run", signal_name(*sig));
                (
                    ExitStatus::Signal(*sig),
                    format!("{} received", signal_name(*sig)),
                )
            }
            Ending::Stopped(Stop::OutputClosed) => {
                eprintln!("{STAGE}: output closed by the next stage: ending the run");
                (
                    ExitStatus::Interrupted,
                    "output closed by the next stage".to_string(),
                )
            }
        };
        if let Ending::Result(r) = &ending {
            eprintln!(
                "{STAGE}: migration {}: {}",
                outcome_word(r.outcome),
                r.reason
            );
        }
        let late_signal = self.shutdown(&shutdown_reason);
        if self.bad_lines > 0 {
            eprintln!(
                "{STAGE}: warning: {} unreadable input line(s) were dropped",
                self.bad_lines
            );
        }
        match (late_signal, status) {
            // Ended by a signal, after all: the shell's convention says so in the exit status.
            (Some(sig), s) if !matches!(s, ExitStatus::Signal(_)) => ExitStatus::Signal(sig),
            _ => status,
        }
    }

    /// Everything up to the end of the migration (and the destination's workload after it).
    fn drive(&mut self) -> Ending {
        match self.drive_inner() {
            Ok(ending) => ending,
            Err(stop) => self.interrupted(stop),
        }
    }

    fn drive_inner(&mut self) -> Result<Ending, Stop> {
        let workload_timeout = Duration::from_secs_f64(self.args.workload_timeout);

        // 1. gp-launch's header and both VMs.
        let deadline = Instant::now() + workload_timeout;
        if let Some(e) = self.wait_until(deadline, "gp-launch's vm records for both VMs", |r| {
            r.vms[0].is_some() && r.vms[1].is_some()
        })? {
            return Ok(e);
        }

        // 2. Connect, learn what both QEMUs support, plan, configure.
        let plan = match self.connect_and_configure()? {
            Ok(plan) => plan,
            Err(ending) => return Ok(ending),
        };
        for note in &plan.notes {
            self.say(&format!("note: {note}"));
        }

        // 3. The workload runs on the source, then settles.
        if !self.args.no_wait_workload {
            let deadline = Instant::now() + workload_timeout;
            if let Some(e) =
                self.wait_until(deadline, "the workload to start on the source", |r| {
                    r.workload_s[0].is_some()
                })?
            {
                return Ok(e);
            }
        }
        if let Some(e) = self.settle("before migrating")? {
            return Ok(e);
        }

        // 4. Migrate.
        let Some(uri) = self.vms[1].as_ref().and_then(|vm| vm.migrate_uri.clone()) else {
            return Ok(self.error(
                "the destination's vm record has no migrate_uri: gp-launch did not start it \
                 with -incoming defer",
            ));
        };
        self.action(
            "migrate",
            &format!("scenario '{}' to {uri}", self.args.name),
            Some(Role::Src),
        )?;
        if let Err(e) = self.call(Role::Dst, cmd::MigrateIncoming, json!({ "uri": uri })) {
            self.stop_if_signalled()?;
            let r = decide::result(
                Outcome::Failed,
                format!("starting the incoming migration on the destination: {e}"),
                None,
            );
            self.emit(&Record::Result(r.clone()))?;
            return Ok(Ending::Result(r));
        }
        if let Err(e) = self.call(Role::Src, cmd::Migrate, json!({ "uri": uri })) {
            self.stop_if_signalled()?;
            let r = decide::result(Outcome::Failed, format!("migrate refused: {e}"), None);
            self.emit(&Record::Result(r.clone()))?;
            return Ok(Ending::Result(r));
        }
        let (result, done) = self.watch()?;
        self.emit(&Record::Result(result.clone()))?;
        if result.outcome != Outcome::Completed {
            if done.paused && result.outcome == Outcome::Cancelled && self.alive(Role::Src) {
                // The scenario stopped the source; it keeps running the workload until shutdown.
                self.action(
                    "resume",
                    "migration cancelled: restart the paused source",
                    Some(Role::Src),
                )?;
                if let Err(e) = self.call(Role::Src, cmd::Cont, cmd::no_args()) {
                    self.say(&format!("cont on the source failed: {e}"));
                }
            }
            return Ok(Ending::Result(result));
        }

        // 5. After completion: the destination runs the workload, then settles.
        if done.paused {
            self.action(
                "resume",
                "migration completed with the source paused (--pause): start the destination",
                Some(Role::Dst),
            )?;
            if let Err(e) = self.call(Role::Dst, cmd::Cont, cmd::no_args()) {
                self.stop_if_signalled()?;
                return Ok(self.error(&format!("cont on the destination after the migration: {e}")));
            }
        }
        if !self.args.no_wait_workload {
            let deadline = Instant::now() + workload_timeout;
            if let Some(e) = self.wait_until(
                deadline,
                "the workload to run on the destination after the migration",
                |r| r.workload_s[1].is_some(),
            )? {
                return Ok(e);
            }
        }
        if let Some(e) = self.settle("on the destination after migrating")? {
            return Ok(e);
        }
        Ok(Ending::Result(result))
    }

    /// The run was stopped (signal or closed output): cancel a running migration, record it.
    fn interrupted(&mut self, stop: Stop) -> Ending {
        let why = match &stop {
            Stop::Signal(sig) => format!("{} received", signal_name(*sig)),
            Stop::OutputClosed => "output closed by the next stage".into(),
        };
        if self.result_written {
            // The migration had ended; the run was stopped while settling afterwards.
            return Ending::Stopped(stop);
        }
        let mut info = None;
        let mut lost = "";
        // The signal may have cut a call to the source short, which leaves its session unusable.
        if self.sessions[0].is_some()
            && self.alive(Role::Src)
            && self.reconnect_if_broken(Role::Src)
        {
            if let Ok(i) = self.call(Role::Src, cmd::QueryMigrate, cmd::no_args()) {
                let status = decide::status(&i);
                if matches!(
                    status,
                    "setup" | "active" | "pre-switchover" | "device" | "wait-unplug"
                ) {
                    let _ = self.action("cancel", &why, Some(Role::Src));
                    let _ = self.call(Role::Src, cmd::MigrateCancel, cmd::no_args());
                } else if status.starts_with("postcopy") {
                    lost = "; the migration was in post-copy, which cannot be cancelled: the \
                            guest's memory is split between both VMs and is lost when they quit";
                }
                info = Some(i);
            }
        }
        let r = decide::result(
            Outcome::Interrupted,
            format!("interrupted: {why}{lost}"),
            info.as_ref(),
        );
        let _ = self.emit(&Record::Result(r));
        Ending::Stopped(stop)
    }

    fn error(&self, message: &str) -> Ending {
        Ending::Error {
            message: message.to_string(),
            status: ExitStatus::Error,
        }
    }

    // ---- input, output and waiting -------------------------------------------------------

    fn emit(&mut self, record: &Record) -> Result<(), Stop> {
        if self.out_closed {
            return Err(Stop::OutputClosed);
        }
        match self.out.write(record) {
            Ok(()) => {
                if matches!(record, Record::Result(_)) {
                    self.result_written = true;
                }
                Ok(())
            }
            Err(e) => self.write_failed(e),
        }
    }

    fn write_failed(&mut self, e: WriteError) -> Result<(), Stop> {
        if !matches!(e, WriteError::Closed) {
            eprintln!("{STAGE}: {e}");
        }
        self.out_closed = true;
        Err(Stop::OutputClosed)
    }

    fn say(&mut self, text: &str) {
        self.display.clear();
        eprintln!("{STAGE}: {text}");
    }

    fn action(&mut self, action: &str, reason: &str, role: Option<Role>) -> Result<(), Stop> {
        self.say(&format!(
            "{action}{}: {reason}",
            role.map(|r| format!(" ({r})")).unwrap_or_default()
        ));
        self.emit(&Record::Action(Action {
            time_s: now_s(),
            action: action.to_string(),
            reason: reason.to_string(),
            role,
        }))
    }

    /// Handles one input line: passes it through and notes what it tells.
    fn handle(&mut self, msg: Input) -> Result<(), Stop> {
        match msg {
            Input::End => self.input_ended = true,
            Input::Bad(e) => {
                self.bad_lines += 1;
                self.say(&format!("warning: {}", gp_stage::error_chain(&e)));
            }
            Input::Line(line) => {
                if !self.out_closed {
                    if let Err(e) = self.out.write_raw(&line.raw) {
                        return self.write_failed(e);
                    }
                }
                match line.record {
                    Some(Record::Launch(l)) => self.launch = Some(l),
                    Some(Record::Vm(vm)) => {
                        let i = vm_index(vm.role);
                        self.vms[i] = Some(vm);
                    }
                    Some(Record::VmExit(e)) => {
                        let i = vm_index(e.role);
                        self.exits[i] = Some(e);
                    }
                    Some(Record::GuestStart(g)) => self.saw_workload(g.role, g.time_s),
                    Some(Record::GuestProgress(g)) => self.saw_workload(g.role, g.time_s),
                    Some(Record::GuestGb(g)) => self.saw_workload(g.role, g.time_s),
                    _ => {}
                }
            }
        }
        if self.out_closed {
            return Err(Stop::OutputClosed);
        }
        Ok(())
    }

    /// A signal that arrived during a QMP call (which it cut short) stops the run: the call's
    /// error is not what happened.
    fn stop_if_signalled(&mut self) -> Result<(), Stop> {
        match self.signals.try_recv() {
            Ok(sig) => Err(Stop::Signal(sig)),
            Err(_) => Ok(()),
        }
    }

    fn saw_workload(&mut self, role: Role, time_s: f64) {
        self.workload_s[vm_index(role)].get_or_insert(time_s);
    }

    /// Handles input and signals until `until`. Returns early only to stop.
    fn pump(&mut self, until: Instant) -> Result<(), Stop> {
        loop {
            if let Ok(sig) = self.signals.try_recv() {
                return Err(Stop::Signal(sig));
            }
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            if self.input_ended {
                match self.signals.recv_timeout(until - now) {
                    Ok(sig) => return Err(Stop::Signal(sig)),
                    Err(_) => return Ok(()),
                }
            }
            crossbeam_channel::select! {
                recv(self.input) -> msg => match msg {
                    Ok(msg) => self.handle(msg)?,
                    Err(_) => self.input_ended = true,
                },
                recv(self.signals) -> sig => {
                    if let Ok(sig) = sig {
                        return Err(Stop::Signal(sig));
                    }
                }
                default(until - now) => return Ok(()),
            }
        }
    }

    /// Handles input until `done` holds. A VM that exits, or input that ends, first is an error.
    fn wait_until(
        &mut self,
        deadline: Instant,
        what: &str,
        done: impl Fn(&Self) -> bool,
    ) -> Result<Option<Ending>, Stop> {
        let started = Instant::now();
        loop {
            if done(self) {
                return Ok(None);
            }
            if let Some(e) = self.lost_vm() {
                return Ok(Some(self.error(&format!("while waiting for {what}: {e}"))));
            }
            if self.input_ended {
                let hint = if self.launch.is_some() || self.vms.iter().any(Option::is_some) {
                    "an upstream stage stopped: gp-launch, or a filter before gp-migrate"
                } else {
                    "is gp-launch upstream, and did it start?"
                };
                return Ok(Some(self.error(&format!(
                    "the input ended while waiting for {what} ({hint})"
                ))));
            }
            if Instant::now() >= deadline {
                let mut message = format!(
                    "timed out after {:.0} s waiting for {what} (see --workload-timeout)",
                    started.elapsed().as_secs_f64()
                );
                if what.contains("workload") {
                    message.push_str(
                        "; does the initrd run stress? --no-wait-workload skips this wait",
                    );
                }
                return Ok(Some(self.error(&message)));
            }
            let tick = (Instant::now() + Duration::from_millis(200)).min(deadline);
            self.pump(tick)?;
        }
    }

    /// Sleeps `--sleep` seconds while passing input through; a VM that exits is an error.
    fn settle(&mut self, when: &str) -> Result<Option<Ending>, Stop> {
        let until = Instant::now() + Duration::from_secs_f64(self.args.sleep);
        while Instant::now() < until {
            self.pump((Instant::now() + Duration::from_millis(200)).min(until))?;
            if let Some(e) = self.lost_vm() {
                return Ok(Some(self.error(&format!("while settling {when}: {e}"))));
            }
            if self.input_ended {
                return Ok(Some(self.error(&format!(
                    "the input ended while settling {when}: an upstream stage stopped (gp-launch, \
                     or a filter before gp-migrate), so the VMs' records no longer arrive"
                ))));
            }
        }
        Ok(None)
    }

    fn alive(&self, role: Role) -> bool {
        self.exits[vm_index(role)].is_none()
    }

    /// A VM that exited, described.
    fn lost_vm(&self) -> Option<String> {
        for role in [Role::Src, Role::Dst] {
            if let Some(e) = &self.exits[vm_index(role)] {
                let how = e
                    .reason
                    .clone()
                    .unwrap_or_else(|| format!("status {}", e.status));
                return Some(format!("the {role} VM (pid {}) exited: {how}", e.pid));
            }
        }
        None
    }

    // ---- QMP ------------------------------------------------------------------------------

    fn call<C>(&mut self, role: Role, make: fn(Value) -> C, args: Value) -> Result<Value, QmpError>
    where
        C: qapi::Command<Ok = Value>,
    {
        let session = self.sessions[vm_index(role)]
            .as_mut()
            .ok_or(QmpError::Broken {
                command: C::NAME,
                earlier: "not connected".into(),
            })?;
        let reply = session.run(make, args);
        self.flush_events(role);
        reply
    }

    /// Writes the QMP events read on `role`'s connection.
    fn flush_events(&mut self, role: Role) {
        let Some(session) = self.sessions[vm_index(role)].as_mut() else {
            return;
        };
        let events: Vec<Event> = session.take_events();
        for e in events {
            let record = Record::QmpEvent(QmpEvent {
                time_s: e.time_s,
                role,
                event: e.name,
                qemu_time_s: e.qemu_time_s,
                data: e.data,
            });
            // A closed output is noticed by the next emit.
            let _ = self.emit(&record);
        }
    }

    /// Replaces a broken session (after a timeout or an interrupted call, a live QEMU may still
    /// be behind it) with a new connection, trying for a few seconds. Whether one is usable.
    fn reconnect_if_broken(&mut self, role: Role) -> bool {
        let i = vm_index(role);
        if self.sessions[i]
            .as_ref()
            .is_some_and(|s| s.broken().is_none())
        {
            return true;
        }
        self.sessions[i] = None;
        let Some(path) = self.vms[i].as_ref().map(|vm| vm.qmp_socket.clone()) else {
            return false;
        };
        match Session::connect_interruptible(
            std::path::Path::new(&path),
            Instant::now() + Duration::from_secs(3),
            Duration::from_secs(5),
            Some(self.signals.clone()),
        ) {
            Ok(s) => {
                self.sessions[i] = Some(s);
                true
            }
            Err(_) => false,
        }
    }

    /// Connects to `role`'s QMP socket. The inner error is why it could not.
    fn connect(&mut self, role: Role) -> Result<Result<(), String>, Stop> {
        let Some(vm) = self.vms[vm_index(role)].as_ref() else {
            return Ok(Err(format!("no vm record for the {role} VM")));
        };
        let path = std::path::PathBuf::from(&vm.qmp_socket);
        let timeout = Duration::from_secs_f64(self.args.qmp_timeout);
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let what = format!("connecting to the {role} VM's QMP socket");
        // The socket is there while gp-launch runs the VM. While it is not, watch the input: a
        // VM that exited (gp-launch stopping) is news, not something to wait 30 s for.
        while !path.exists() && Instant::now() < deadline {
            self.pump((Instant::now() + Duration::from_millis(100)).min(deadline))?;
            if let Some(e) = self.lost_vm() {
                return Ok(Err(format!("{what}: {e}")));
            }
            if self.input_ended {
                return Ok(Err(format!(
                    "{what} {}: it is gone and the input ended (gp-launch stopped)",
                    path.display()
                )));
            }
        }
        match Session::connect_interruptible(&path, deadline, timeout, Some(self.signals.clone())) {
            Ok(session) => {
                self.sessions[vm_index(role)] = Some(session);
                self.flush_events(role);
                Ok(Ok(()))
            }
            Err(e) => {
                self.stop_if_signalled()?;
                Ok(Err(format!("{what}: {e}")))
            }
        }
    }

    fn facts(&mut self, role: Role) -> Result<Facts, String> {
        let asking = |e: QmpError| format!("asking the {role} QEMU: {e}");
        let version = self
            .call(role, cmd::QueryVersion, cmd::no_args())
            .map_err(asking)?;
        let caps = self
            .call(role, cmd::QueryMigrateCapabilities, cmd::no_args())
            .map_err(asking)?;
        let params = self
            .call(role, cmd::QueryMigrateParameters, cmd::no_args())
            .map_err(asking)?;
        // Older QEMUs without introspection still work: parameters are typed from their values.
        let schema = self.call(role, cmd::QueryQmpSchema, cmd::no_args()).ok();
        let kvm = self.call(role, cmd::QueryKvm, cmd::no_args()).ok();
        Ok(Facts::from_replies(
            &version,
            &caps,
            &params,
            schema.as_ref(),
            kvm.as_ref(),
        ))
    }

    /// Connects to both VMs, checks the scenario against them, configures both, and writes the
    /// scenario record. The inner error is how the run ends.
    fn connect_and_configure(&mut self) -> Result<Result<Plan, Ending>, Stop> {
        for role in [Role::Src, Role::Dst] {
            if let Err(e) = self.connect(role)? {
                return Ok(Err(self.setup_failed(e, ExitStatus::Error)?));
            }
        }
        let mut facts = Vec::new();
        for role in [Role::Src, Role::Dst] {
            match self.facts(role) {
                Ok(f) => facts.push(f),
                Err(e) => return Ok(Err(self.setup_failed(e, ExitStatus::Error)?)),
            }
        }
        let hw = Hardware {
            mem_bytes: self.launch.as_ref().map(|l| l.hardware.mem_bytes),
            dirty_ring_size: self.launch.as_ref().map(|l| l.hardware.dirty_ring_size),
            accel: self.launch.as_ref().map(|l| l.accel.clone()),
        };
        let scenario = self.args.scenario();
        let plan = match plan::build(&scenario, &self.args.extras(), &hw, &facts[0], &facts[1]) {
            Ok(p) => p,
            Err(e @ PlanError::Unsupported { .. }) => {
                return Ok(Err(
                    self.setup_failed(e.to_string(), ExitStatus::Unsupported)?
                ))
            }
            Err(e @ PlanError::Invalid(_)) => {
                return Ok(Err(self.setup_failed(e.to_string(), ExitStatus::Error)?))
            }
        };
        for (role, caps, params) in [
            (Role::Src, &plan.src_capabilities, &plan.src_parameters),
            (Role::Dst, &plan.dst_capabilities, &plan.dst_parameters),
        ] {
            if !caps.is_empty() {
                let list: Vec<Value> = caps
                    .iter()
                    .map(|(n, s)| json!({"capability": n, "state": s}))
                    .collect();
                if let Err(e) = self.call(
                    role,
                    cmd::MigrateSetCapabilities,
                    json!({ "capabilities": list }),
                ) {
                    let names: Vec<String> = caps
                        .iter()
                        .map(|(n, s)| format!("{n}={}", on_off(*s)))
                        .collect();
                    let status = if e.is_connection_lost() {
                        ExitStatus::Error
                    } else {
                        ExitStatus::Unsupported
                    };
                    let message = format!(
                        "setting migration capabilities {} on the {role} (QEMU {}): {e}",
                        names.join(", "),
                        facts[vm_index(role)].version
                    );
                    return Ok(Err(self.setup_failed(message, status)?));
                }
            }
            for (name, value) in params {
                if let Err(e) = self.call(
                    role,
                    cmd::MigrateSetParameters,
                    json!({ name.as_str(): value }),
                ) {
                    let message = format!(
                        "setting migration parameter {name}={value} on the {role} (QEMU {}): {e}",
                        facts[vm_index(role)].version
                    );
                    return Ok(Err(self.setup_failed(message, ExitStatus::Error)?));
                }
            }
        }
        // Read back what QEMU now has, for the record and to catch silent changes.
        let mut readback = Vec::new();
        for role in [Role::Src, Role::Dst] {
            let caps = self.call(role, cmd::QueryMigrateCapabilities, cmd::no_args());
            let params = self.call(role, cmd::QueryMigrateParameters, cmd::no_args());
            match (caps, params) {
                (Ok(c), Ok(p)) => readback.push((caps_object(&c), p)),
                (Err(e), _) | (_, Err(e)) => {
                    let message = format!("reading back the {role}'s configuration: {e}");
                    return Ok(Err(self.setup_failed(message, ExitStatus::Error)?));
                }
            }
        }
        for (role, params) in [
            (Role::Src, &plan.src_parameters),
            (Role::Dst, &plan.dst_parameters),
        ] {
            let now = &readback[vm_index(role)].1;
            for (name, wanted) in params {
                if let Some(got) = now.get(name) {
                    if got != wanted {
                        self.say(&format!(
                            "warning: the {role} QEMU accepted {name}={wanted} but reports {got}"
                        ));
                    }
                }
            }
        }
        let extra_caps: Map<String, Value> = self
            .args
            .capabilities
            .iter()
            .map(|(n, s)| (n.clone(), Value::Bool(*s)))
            .collect();
        let record = ScenarioRecord {
            time_s: now_s(),
            scenario,
            sleep_s: self.args.sleep,
            poll_ms: self.args.poll_ms,
            extra_capabilities: Value::Object(extra_caps),
            extra_parameters: Value::Object(plan.extra_parameters.clone()),
            capabilities: readback[0].0.clone(),
            parameters: readback[0].1.clone(),
            qemu_version: Some(facts[0].version.clone()),
            dst_qemu_version: Some(facts[1].version.clone()),
            dst_capabilities: readback[1].0.clone(),
            dst_parameters: readback[1].1.clone(),
        };
        self.emit(&Record::Scenario(record))?;
        Ok(Ok(plan))
    }

    /// A failure before the migration started: a failed result saying why.
    fn setup_failed(&mut self, message: String, status: ExitStatus) -> Result<Ending, Stop> {
        self.stop_if_signalled()?;
        let r = decide::result(Outcome::Failed, message.clone(), None);
        self.emit(&Record::Result(r))?;
        Ok(Ending::Error { message, status })
    }

    // ---- the migration loop ---------------------------------------------------------------

    /// Polls the migration until it ends, applying the scenario. Returns its result.
    fn watch(&mut self) -> Result<(MigrationResult, Done), Stop> {
        let scenario = self.args.scenario();
        let poll = self.args.poll();
        let started = Instant::now();
        let mut done = Done::default();
        let mut cancel_at: Option<Instant> = None;
        let mut postcopy_at: Option<Instant> = None;
        let mut dst_lost: Option<(Instant, String)> = None;
        let mut src_info: Option<Value> = None;
        // The last snapshot with RAM figures (final `cancelled` snapshots have none).
        let mut stats: Option<Value> = None;
        let mut dst_last: Option<Value> = None;
        let mut next = Instant::now();
        loop {
            self.pump(next)?;
            next += poll;
            if Instant::now() > next {
                next = Instant::now();
            }

            // A source that exits or stops answering ends the migration.
            if let Some(e) = &self.exits[0] {
                let how = e
                    .reason
                    .clone()
                    .unwrap_or_else(|| format!("status {}", e.status));
                let reason = format!(
                    "the source VM (pid {}) exited during the migration: {how}{}",
                    e.pid,
                    guest_lost(&done, Role::Src)
                );
                return Ok((
                    decide::result(Outcome::Failed, reason, src_info.as_ref()),
                    done,
                ));
            }
            if dst_lost.is_none() {
                if let Some(e) = &self.exits[1] {
                    let how = e
                        .reason
                        .clone()
                        .unwrap_or_else(|| format!("status {}", e.status));
                    let what = format!(
                        "the destination VM (pid {}) exited during the migration: {how}",
                        e.pid
                    );
                    // After a cancel an incoming QEMU exits by itself: expected, not news.
                    if done.cancelled.is_none() {
                        self.say(&what);
                    }
                    dst_lost = Some((Instant::now(), what));
                }
            }

            let info = match self.call(Role::Src, cmd::QueryMigrate, cmd::no_args()) {
                Ok(info) => info,
                Err(e) => {
                    self.stop_if_signalled()?;
                    let reason = format!(
                        "lost the source during the migration: {e}{}",
                        guest_lost(&done, Role::Src)
                    );
                    return Ok((
                        decide::result(Outcome::Failed, reason, src_info.as_ref()),
                        done,
                    ));
                }
            };
            let status = decide::status(&info).to_string();
            self.emit(&Record::Progress(Progress {
                time_s: now_s(),
                role: Role::Src,
                status: status.clone(),
                iteration: decide::iteration(&info),
                info: info.clone(),
            }))?;
            self.show(&info);
            if info.get("ram").is_some() {
                stats = Some(info.clone());
            }
            src_info = Some(info.clone());

            if dst_lost.is_none() {
                match self.call(Role::Dst, cmd::QueryMigrate, cmd::no_args()) {
                    Ok(d) => {
                        if dst_last.as_ref() != Some(&d) {
                            self.emit(&Record::Progress(Progress {
                                time_s: now_s(),
                                role: Role::Dst,
                                status: decide::status(&d).to_string(),
                                iteration: decide::iteration(&d),
                                info: d.clone(),
                            }))?;
                            dst_last = Some(d);
                        }
                    }
                    Err(e) => {
                        self.stop_if_signalled()?;
                        let what = format!("lost the destination during the migration: {e}");
                        if done.cancelled.is_none() {
                            self.say(&what);
                        }
                        dst_lost = Some((Instant::now(), what));
                    }
                }
            }

            let mut steps = decide::decide(&scenario, &done, &info, started.elapsed());
            if let Some((since, what)) = &dst_lost {
                let finished = matches!(steps.first(), Some(Step::Finished(_)));
                if !finished && (status == "postcopy-paused" || since.elapsed() > LOSS_GRACE) {
                    let what = what.clone();
                    if status != "postcopy-paused" {
                        let _ = self.call(Role::Src, cmd::MigrateCancel, cmd::no_args());
                    }
                    let reason = format!(
                        "{what}; the source's migration status is {status}{}",
                        guest_lost(&done, Role::Dst)
                    );
                    return Ok((decide::result(Outcome::Failed, reason, Some(&info)), done));
                }
            }
            if let Some(at) = cancel_at {
                if at.elapsed() > CANCEL_GRACE {
                    let reason = format!(
                        "migrate_cancel did not take effect within {} s (status {status})",
                        CANCEL_GRACE.as_secs()
                    );
                    return Ok((decide::result(Outcome::Failed, reason, Some(&info)), done));
                }
            }
            if let Some(at) = postcopy_at {
                let limit = Duration::from_secs(scenario.max_time) + POSTCOPY_GRACE;
                if at.elapsed() > limit && !matches!(steps.first(), Some(Step::Finished(_))) {
                    let reason = format!(
                        "post-copy did not complete within {} s of switching (status {status})",
                        limit.as_secs()
                    );
                    return Ok((decide::result(Outcome::Failed, reason, Some(&info)), done));
                }
            }

            for step in steps.drain(..) {
                match step {
                    Step::Finished(outcome) => {
                        let reason = match outcome {
                            Outcome::Completed => decide::completed_reason(&info),
                            Outcome::Failed => {
                                let desc = info
                                    .get("error-desc")
                                    .and_then(Value::as_str)
                                    .unwrap_or("QEMU gave no error-desc");
                                match &dst_lost {
                                    Some((_, what)) => format!("{desc} ({what})"),
                                    None => desc.to_string(),
                                }
                            }
                            _ => done
                                .cancelled
                                .clone()
                                .unwrap_or_else(|| "cancelled outside gp-migrate".into()),
                        };
                        self.flush_events(Role::Dst);
                        let figures = if info.get("ram").is_some() {
                            Some(&info)
                        } else {
                            stats.as_ref()
                        };
                        return Ok((decide::result(outcome, reason, figures), done));
                    }
                    Step::Cancel(why) => {
                        self.action("cancel", &why, Some(Role::Src))?;
                        if let Err(e) = self.call(Role::Src, cmd::MigrateCancel, cmd::no_args()) {
                            self.stop_if_signalled()?;
                            let reason = format!("migrate_cancel failed: {e} (after: {why})");
                            return Ok((
                                decide::result(Outcome::Failed, reason, Some(&info)),
                                done,
                            ));
                        }
                        done.cancelled = Some(why);
                        cancel_at = Some(Instant::now());
                    }
                    Step::StartPostcopy(why) => {
                        self.action("postcopy", &why, Some(Role::Src))?;
                        if let Err(e) =
                            self.call(Role::Src, cmd::MigrateStartPostcopy, cmd::no_args())
                        {
                            self.stop_if_signalled()?;
                            let _ = self.call(Role::Src, cmd::MigrateCancel, cmd::no_args());
                            let reason = format!("migrate-start-postcopy failed: {e}");
                            return Ok((
                                decide::result(Outcome::Failed, reason, Some(&info)),
                                done,
                            ));
                        }
                        done.postcopy_started = true;
                        postcopy_at = Some(Instant::now());
                    }
                    Step::Pause(why) => {
                        self.action("pause", &why, Some(Role::Src))?;
                        if let Err(e) = self.call(Role::Src, cmd::Stop, cmd::no_args()) {
                            self.stop_if_signalled()?;
                            let _ = self.call(Role::Src, cmd::MigrateCancel, cmd::no_args());
                            let reason = format!("stopping the source failed: {e}");
                            return Ok((
                                decide::result(Outcome::Failed, reason, Some(&info)),
                                done,
                            ));
                        }
                        done.paused = true;
                    }
                }
            }
        }
    }

    fn show(&mut self, info: &Value) {
        // Snapshots without RAM figures (setup, the final cancelled one) say nothing new.
        if !self.display.enabled || info.get("ram").is_none() {
            return;
        }
        let ram = &info["ram"];
        let mib = |v: &Value| v.as_u64().unwrap_or(0) as f64 / (1 << 20) as f64;
        let text = format!(
            "{STAGE}: {} pass {} remaining {:.1} of {:.1} MiB, sent {:.1} MiB at {:.0} Mbps",
            decide::status(info),
            decide::iteration(info).unwrap_or(0),
            mib(&ram["remaining"]),
            mib(&ram["total"]),
            mib(&ram["transferred"]),
            ram["mbps"].as_f64().unwrap_or(0.0),
        );
        self.display.line(&text);
    }

    // ---- the end --------------------------------------------------------------------------

    /// Quits both VMs (gp-launch then exits) and passes the rest of the input through.
    /// Returns the signal that arrived while passing the last records on, if one did.
    fn shutdown(&mut self, reason: &str) -> Option<i32> {
        // A VM that cannot be quit keeps gp-launch (and so the input) going until gp-launch sees
        // its output close: waiting the whole --drain-timeout for the input to end would only
        // delay that.
        let mut unquit = false;
        for role in [Role::Src, Role::Dst] {
            let i = vm_index(role);
            if self.vms[i].is_none() || !self.alive(role) || self.quit_sent[i] {
                continue;
            }
            // A broken session (timeout) may still have a live QEMU behind it: reconnect once.
            let usable = self.sessions[i]
                .as_ref()
                .is_some_and(|s| s.broken().is_none());
            let vm = self.vms[i].as_ref();
            if !usable && vm.is_some_and(|vm| vm.host.is_none() && process_gone(vm.pid)) {
                // It exited on its own (an incoming QEMU does when its migration fails).
                continue;
            }
            if !self.reconnect_if_broken(role) {
                self.say(&format!("cannot reach the {role} VM's QMP socket to quit it; gp-launch will stop it when its output closes"));
                unquit = true;
                continue;
            }
            let _ = self.action("shutdown", reason, Some(role));
            if let Some(s) = self.sessions[i].as_mut() {
                s.set_timeout(QUIT_ANSWER);
            }
            match self.call(role, cmd::Quit, cmd::no_args()) {
                Ok(_) | Err(QmpError::Closed { .. }) => {}
                Err(e) => {
                    self.say(&format!("quit on the {role} VM: {e}"));
                    unquit = true;
                }
            }
            self.quit_sent[i] = true;
        }
        self.sessions = [None, None];
        // Pass through what gp-launch still says (vm_exit records) until it ends its output. A
        // signal now (Ctrl-C reaches gp-launch too, which then ends its output) does not cut
        // those records off; a second one does.
        let mut drain = Duration::from_secs_f64(self.args.drain_timeout);
        if unquit {
            drain = drain.min(UNQUIT_DRAIN);
        }
        let deadline = Instant::now() + drain;
        let mut signalled = None;
        while !self.input_ended && !self.out_closed && Instant::now() < deadline {
            if let Err(Stop::Signal(sig)) =
                self.pump((Instant::now() + Duration::from_millis(200)).min(deadline))
            {
                if signalled.is_some() {
                    self.say(&format!(
                        "{} received again while passing the last records on: exiting",
                        signal_name(sig)
                    ));
                    return Some(sig);
                }
                self.say(&format!(
                    "{} received: passing the last records on until the input ends (again to \
                     exit now)",
                    signal_name(sig)
                ));
                signalled = Some(sig);
            }
        }
        if !self.input_ended && !self.out_closed {
            if unquit {
                self.say(
                    "a VM that could not be quit is still running: ending, so that gp-launch \
                     sees its output close and stops it",
                );
            } else {
                self.say(&format!(
                    "the input did not end within {:.0} s of quitting the VMs (see \
                     --drain-timeout)",
                    self.args.drain_timeout
                ));
            }
        }
        signalled
    }
}

/// What losing a VM in post-copy means, said plainly for the result's reason: after the switch
/// the destination runs the guest and the source holds the pages not sent yet, so neither can
/// go on alone. Empty before post-copy.
fn guest_lost(done: &Done, lost: Role) -> &'static str {
    match (done.postcopy_started, lost) {
        (false, _) => "",
        (true, Role::Src) => {
            "; the migration was in post-copy, so the guest is lost: the pages the source had \
             not sent yet are gone with it"
        }
        (true, Role::Dst) => {
            "; the migration was in post-copy, so the guest is lost: it was running on the \
             destination"
        }
    }
}

/// Whether a local process has exited (gone, or a zombie waiting for gp-launch to reap it).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the command name in parentheses: `1234 (qemu-system-x86) Z ...`.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with(['Z', 'X'])),
    }
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Completed => "completed",
        Outcome::Failed => "failed",
        Outcome::Cancelled => "cancelled",
        Outcome::Interrupted => "interrupted",
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// `query-migrate-capabilities`' list as an object: `{"xbzrle": false, ...}`.
fn caps_object(list: &Value) -> Value {
    let map: Map<String, Value> = list
        .as_array()
        .map(|caps| {
            caps.iter()
                .filter_map(|c| Some((c["capability"].as_str()?.to_string(), c["state"].clone())))
                .collect()
        })
        .unwrap_or_default();
    Value::Object(map)
}
