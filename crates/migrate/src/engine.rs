//! The run: read gp-launch's records, connect to both VMs, configure, migrate, watch, act, end.
//!
//! One thread reads the input and passes it on (`gp_stage::passthrough`): the workload's records
//! it passes on and notes for the main thread, which reads the notes whenever it waits; the
//! `launch`, `vm` and `vm_exit` lines it hands to the main thread; an unreadable line it replaces
//! with a `stage_error` record and reports. One thread forwards SIGINT/SIGTERM/SIGHUP. The main
//! thread writes gp-migrate's own records and owns both QMP connections ([`Monitors`]), and every
//! wait is bounded. The decisions are elsewhere and pure: [`plan`] (what to configure), [`Watch`]
//! and [`decide`] (what each snapshot calls for); here is the I/O around them.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use gp_qemu::qmp::{Qmp, QmpError, Reply};
use gp_records::migrate::{Action, MigrationResult, Outcome, QmpEvent, ScenarioRecord, Settle};
use gp_records::ndjson::{Line, WriteError};
use gp_records::{now_s, Launch, Record, Role, StageError, Vm, VmExit};
use gp_stage::error_chain;
use gp_stage::passthrough::{self, Handoff, Input, Output, Route};
use qapi::qmp;
use serde_json::{Map, Value};

use crate::cli::Args;
use crate::decide::{self, Done, Step};
use crate::dirty_rate;
use crate::monitors::Monitors;
use crate::plan::{self, Facts, Hardware, Plan, PlanError, Settings};
use crate::settle::{self, Rule, Tracker};
use crate::watch::{self, End, Verdict, Watch};
use crate::ExitStatus;

/// Stage name in messages and `stage_error` records.
pub const STAGE: &str = "gp-migrate";
/// Longest wait for QMP sockets to accept us.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `quit` may take to answer at the end. A QEMU answers before it exits; one that does
/// not within this is stuck, and gp-launch kills it when the run ends.
const QUIT_ANSWER: Duration = Duration::from_secs(3);
/// After a VM could not be quit, how long to keep passing the input on (the VM may still exit
/// by itself) before ending so that gp-launch notices and stops it.
const UNQUIT_DRAIN: Duration = Duration::from_secs(5);
/// How much longer than its calc time a dirty-rate measurement may take to be reported.
const DIRTY_RATE_GRACE: Duration = Duration::from_secs(10);
/// After the source completed, longest wait for the destination's side to say so.
const DST_FINAL_WAIT: Duration = Duration::from_secs(5);

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
use gp_stage::status::StatusLine;

fn vm_index(role: Role) -> usize {
    match role {
        Role::Src => 0,
        Role::Dst => 1,
    }
}

struct Run<W: Write> {
    args: Args,
    out: Output<W>,
    out_closed: bool,
    /// The lines the input thread hands over (see [`route`]); disconnected at the input's end.
    input: Receiver<Input>,
    /// The workload's records, passed on already: read by [`Run::pump`] before it returns.
    workload: Receiver<Line>,
    input_ended: bool,
    signals: Receiver<i32>,
    launch: Option<Launch>,
    vms: [Option<Vm>; 2],
    exits: [Option<VmExit>; 2],
    /// Host time of the first workload record from each VM.
    workload_s: [Option<f64>; 2],
    /// Host time of the latest workload record from each VM.
    last_workload_s: [Option<f64>; 2],
    monitors: Monitors,
    /// VMs gp-migrate has sent `quit`.
    quit_sent: [bool; 2],
    /// The live progress line on a terminal.
    display: StatusLine,
    bad_lines: u64,
    /// `query-migrate` members qapi's schema could not read, already told (per role).
    undecoded_told: [Vec<String>; 2],
    /// The `result` record is out: a later interruption does not write another.
    result_written: bool,
    /// The source's workload as its records tell it: warmth, rate, touched share.
    tracker: Tracker,
    /// The `scenario` record, written once the wait before migrating is over (it says how the
    /// wait went), or when the run ends before that.
    pending_scenario: Option<ScenarioRecord>,
    /// What the wait before migrating waited for (`Settle::criterion`), once it began.
    settle_criterion: Option<&'static str>,
    /// When the wait before migrating began (for `waited_s` without workload records).
    settle_began: Option<f64>,
    /// The source QEMU's `calc-dirty-rate` modes (see [`dirty_rate::plans`]).
    dirty_rate_modes: Option<Vec<String>>,
}

/// Runs gp-migrate: reads records from `input`, writes them and its own to `output`.
/// `signals` delivers SIGINT/SIGTERM numbers.
pub fn run<R, W>(args: Args, input: R, output: W, signals: Receiver<i32>) -> ExitStatus
where
    R: BufRead + Send + 'static,
    W: Write + Send + 'static,
{
    let out = Output::new(output);
    let inputs = passthrough::spawn("gp-migrate-input", STAGE, input, out.clone(), route)
        .expect("spawn input thread");
    let monitors = Monitors::new(signals.clone(), Duration::from_secs_f64(args.qmp_timeout));
    let args_steady_max = args.steady_max;
    let mut run = Run {
        display: StatusLine::stderr(),
        args,
        out,
        out_closed: false,
        input: inputs.handed,
        workload: inputs.noted,
        input_ended: false,
        signals,
        launch: None,
        vms: [None, None],
        exits: [None, None],
        workload_s: [None, None],
        last_workload_s: [None, None],
        monitors,
        quit_sent: [false, false],
        bad_lines: 0,
        undecoded_told: [Vec::new(), Vec::new()],
        result_written: false,
        tracker: Tracker::new(Rule::with_cap(args_steady_max)),
        pending_scenario: None,
        settle_criterion: None,
        settle_began: None,
        dirty_rate_modes: None,
    };
    let status = run.main();
    run.out.stop_input();
    status
}

/// gp-migrate acts on the `launch`, `vm` and `vm_exit` lines, follows the workload, and passes
/// everything on.
fn route(line: &Line) -> Route {
    match line.record {
        Some(Record::Launch(_) | Record::Vm(_) | Record::VmExit(_)) => Route::Hand,
        Some(
            Record::GuestStart(_)
            | Record::GuestProgress(_)
            | Record::GuestWarm(_)
            | Record::GuestGb(_),
        ) => Route::PassAndNote,
        _ => Route::Pass,
    }
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
                "{STAGE}: warning: {} unreadable input line(s): a stage_error record stands in for each",
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
        let driven = self.drive_inner();
        // A run that ends before migrating still says what it was and how far the wait got.
        let _ = self.write_scenario();
        match driven {
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
        if let Some(e) = self.settle_before()? {
            return Ok(e);
        }

        if let Some(secs) = self.args.calc_dirty_rate {
            if let Some(e) = self.measure_dirty_rate(secs)? {
                return Ok(e);
            }
        }

        // 4. Migrate, watch, act.
        self.write_scenario()?;
        if let Some(e) = self.start_migration()? {
            return Ok(e);
        }
        let (result, done) = self.watch()?;
        if result.outcome == Outcome::Completed && self.alive(Role::Dst) {
            self.final_dst_snapshot()?;
        }
        self.emit(&Record::Result(result.clone()))?;
        if result.outcome != Outcome::Completed {
            if done.paused && result.outcome == Outcome::Cancelled && self.alive(Role::Src) {
                // The scenario stopped the source; it keeps running the workload until shutdown.
                self.action(
                    "resume",
                    "migration cancelled: restart the paused source",
                    Some(Role::Src),
                )?;
                if let Err(e) = self.qmp(Role::Src, |q| q.execute(&qmp::cont {})) {
                    self.say(&format!("cont on the source failed: {}", error_chain(&e)));
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
            if let Err(e) = self.qmp(Role::Dst, |q| q.execute(&qmp::cont {})) {
                self.stop_if_signalled()?;
                return Ok(self.error(&format!(
                    "cont on the destination after the migration: {}",
                    error_chain(&e)
                )));
            }
        }
        if !self.args.no_wait_workload {
            let deadline = Instant::now() + workload_timeout;
            if let Some(e) = self.wait_until(
                deadline,
                "the workload to run on the destination after the migration",
                // A record from before the source said completed (the destination resumes
                // first) does not show it running after the migration.
                |r| r.last_workload_s[1].is_some_and(|t| t > result.time_s),
            )? {
                return Ok(e);
            }
        }
        if let Some(e) = self.settle("on the destination after migrating")? {
            return Ok(e);
        }
        Ok(Ending::Result(result))
    }

    /// `migrate-incoming` on the destination, `migrate` on the source. How the run ends if
    /// either is refused.
    fn start_migration(&mut self) -> Result<Option<Ending>, Stop> {
        let Some(uri) = self.vms[1].as_ref().and_then(|vm| vm.migrate_uri.clone()) else {
            return Ok(Some(self.error(
                "the destination's vm record has no migrate_uri: gp-launch did not start it \
                 with -incoming defer",
            )));
        };
        self.action(
            "migrate",
            &format!("scenario '{}' to {uri}", self.args.name),
            Some(Role::Src),
        )?;
        let incoming = qmp::migrate_incoming {
            uri: Some(uri.clone()),
            channels: None,
            exit_on_error: None,
        };
        let migrate = qmp::migrate {
            uri: Some(uri),
            channels: None,
            detach: None,
            resume: None,
        };
        let refused = match self.qmp(Role::Dst, |q| q.execute(&incoming)) {
            Err(e) => Some(format!(
                "starting the incoming migration on the destination: {}",
                error_chain(&e)
            )),
            Ok(_) => match self.qmp(Role::Src, |q| q.execute(&migrate)) {
                Err(e) => Some(format!("migrate refused: {}", error_chain(&e))),
                Ok(_) => None,
            },
        };
        let Some(reason) = refused else {
            return Ok(None);
        };
        self.stop_if_signalled()?;
        let r = decide::result(Outcome::Failed, reason, None);
        self.emit(&Record::Result(r.clone()))?;
        Ok(Some(Ending::Result(r)))
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
        let mut lost = String::new();
        // The signal may have cut a call to the source short, which leaves its connection
        // unusable.
        if self.monitors.get(Role::Src).is_some()
            && self.alive(Role::Src)
            && self.reconnect_if_broken(Role::Src)
        {
            if let Ok(i) = self.qmp(Role::Src, |q| q.execute(&qmp::query_migrate {})) {
                match i.status {
                    Some(s) if decide::cancellable(s) => {
                        let _ = self.action("cancel", &why, Some(Role::Src));
                        let _ = self.qmp(Role::Src, |q| q.execute(&qmp::migrate_cancel {}));
                    }
                    Some(s) if decide::in_postcopy(s) => {
                        lost = format!(
                            "; the guest is lost: the migration was in post-copy (phase {}), \
                             which cannot be cancelled, and the guest's memory is split between \
                             both VMs when they quit",
                            decide::status_name(s)
                        );
                    }
                    _ => {}
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
        self.out.stop_input();
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

    /// Handles one line the input thread handed over: passes it on and notes what it tells.
    fn handle(&mut self, msg: Input) -> Result<(), Stop> {
        match msg {
            Input::WriteFailed(e) => return self.write_failed(e),
            Input::Line(handoff) => {
                // The input thread waits for `_done`'s drop: nothing passes this line.
                let Handoff { line, done: _done } = *handoff;
                if !self.out_closed {
                    let written = self.out.lock().write_raw(&line.raw);
                    if let Err(e) = written {
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
                    _ => {}
                }
            }
            Input::Unreadable(e) => {
                // A stage_error record stands in the line's place already.
                self.bad_lines += 1;
                self.say(&format!("warning: {}", gp_stage::error_chain(&e)));
            }
        }
        if self.out_closed {
            return Err(Stop::OutputClosed);
        }
        Ok(())
    }

    /// Follows the workload's records the input thread passed on since the last call: when each
    /// VM's workload was last heard from, and the source's progress for the settle.
    fn note_workload(&mut self) {
        while let Ok(line) = self.workload.try_recv() {
            let Some(record) = line.record else { continue };
            let role = match &record {
                Record::GuestStart(g) => g.role,
                Record::GuestProgress(g) => g.role,
                Record::GuestWarm(g) => g.role,
                Record::GuestGb(g) => g.role,
                _ => continue,
            };
            self.saw_workload(role, record.time_s());
            if role != Role::Src {
                continue;
            }
            match &record {
                Record::GuestStart(g) => self.tracker.start(g),
                Record::GuestProgress(g) => self.tracker.progress(g),
                Record::GuestWarm(g) => self.tracker.warm(g),
                other => self.tracker.other(other.time_s()),
            }
        }
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
        self.last_workload_s[vm_index(role)] = Some(time_s);
    }

    /// Handles input and signals until `until`, then follows the workload's records that came
    /// meanwhile. Returns early only to stop.
    fn pump(&mut self, until: Instant) -> Result<(), Stop> {
        let pumped = self.pump_handed(until);
        self.note_workload();
        pumped
    }

    fn pump_handed(&mut self, until: Instant) -> Result<(), Stop> {
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

    /// The wait before migrating: every workload thread warm, then its rate steady, then at
    /// least `--sleep` seconds from the workload's first record (`--cold`: only the last; a
    /// workload that reports no warmth, such as the original stress: the same, with a note).
    fn settle_before(&mut self) -> Result<Option<Ending>, Stop> {
        self.settle_began = Some(now_s());
        let Some(first_s) = self
            .tracker
            .first_s()
            .filter(|_| !self.args.no_wait_workload)
        else {
            self.settle_criterion = Some(settle::CRITERION_NONE);
            return self.settle("before migrating");
        };
        let first = Instant::now()
            .checked_sub(Duration::from_secs_f64((now_s() - first_s).max(0.0)))
            .unwrap_or_else(Instant::now);
        let slept = first + Duration::from_secs_f64(self.args.sleep);
        let when = "before migrating";
        if self.args.cold || !self.tracker.knows_warmth() {
            if !self.args.cold {
                self.say(
                    "note: the workload reports neither warmth nor progress (no start line): \
                     waiting --sleep only",
                );
            }
            self.settle_criterion = Some(settle::CRITERION_SLEEP);
            return Ok(self.pump_until(slept, when, |_| false)?.err());
        }
        self.settle_criterion = Some(settle::CRITERION_WARM_STEADY);
        self.say(&format!(
            "waiting for every workload thread to be warm (its first pass over its memory done), \
             then for a steady rate ({}), then --sleep {} s from its start (--cold skips all but \
             --sleep)",
            self.tracker.rule().describe(),
            self.args.sleep
        ));
        let workload_timeout = Duration::from_secs_f64(self.args.workload_timeout);
        match self.pump_until(first + workload_timeout, when, |r| r.tracker.all_warm())? {
            Err(e) => return Ok(Some(e)),
            Ok(true) => {}
            Ok(false) => {
                let share = self.tracker.touched_share().unwrap_or(0.0);
                return Ok(Some(self.error(&format!(
                    "the workload's threads were not all warm {:.0} s after it started (their \
                     first pass over their memory had touched {:.0}% of it; see \
                     --workload-timeout, or --cold to migrate without waiting)",
                    workload_timeout.as_secs_f64(),
                    share * 100.0
                ))));
            }
        }
        let warm = Instant::now();
        let steady_by = warm + Duration::from_secs_f64(self.args.steady_max);
        match self.pump_until(steady_by, when, |r| r.tracker.steady_at().is_some())? {
            Err(e) => return Ok(Some(e)),
            Ok(true) => {}
            Ok(false) => self.say(&format!(
                "note: the workload's rate was not steady {} s after every thread was warm \
                 ({}; last windows {}): migrating anyway (see --steady-max)",
                self.args.steady_max,
                self.tracker.rule().describe(),
                rates_text(self.tracker.rates())
            )),
        }
        if let Some(e) = self.pump_until(slept, when, |_| false)?.err() {
            return Ok(Some(e));
        }
        let s = self.tracker.record(settle::CRITERION_WARM_STEADY, now_s());
        self.say(&format!(
            "settled: every thread warm after {} s, rate {} after {} s, touched {:.0}% of the \
             workload's memory, {:.1} s after it started",
            s.warm_s.map_or("?".into(), |w| format!("{w:.1}")),
            if s.steady { "steady" } else { "not steady" },
            s.steady_s.map_or("?".into(), |w| format!("{w:.1}")),
            s.touched_share.unwrap_or(0.0) * 100.0,
            s.waited_s
        ));
        Ok(None)
    }

    /// Passes input through until `done` holds (`Ok(true)`) or `until` (`Ok(false)`); a VM that
    /// exits or input that ends first is how the run ends (the inner error).
    fn pump_until(
        &mut self,
        until: Instant,
        when: &str,
        done: impl Fn(&Self) -> bool,
    ) -> Result<Result<bool, Ending>, Stop> {
        loop {
            if done(self) {
                return Ok(Ok(true));
            }
            if let Some(ending) = self.lost_while_settling(when) {
                return Ok(Err(ending));
            }
            if Instant::now() >= until {
                return Ok(Ok(false));
            }
            self.pump((Instant::now() + Duration::from_millis(200)).min(until))?;
        }
    }

    /// QEMU's dirty-rate measurement of the source, `secs` seconds in each mode this QEMU and
    /// accelerator support: `calc-dirty-rate`, then `query-dirty-rate` every poll interval until
    /// measured (at most `secs` + [`DIRTY_RATE_GRACE`]). A `dirty_rate` record per mode, with
    /// the estimate or why there is none; a failure here does not stop the migration.
    fn measure_dirty_rate(&mut self, secs: u64) -> Result<Option<Ending>, Stop> {
        let kvm = self.launch.as_ref().is_some_and(|l| l.accel == "kvm");
        let ring = self.hardware().dirty_ring_size.unwrap_or(0);
        let modes = self.dirty_rate_modes.clone();
        let has_modes = modes.as_ref().is_some_and(|m| !m.is_empty());
        for plan in dirty_rate::plans(modes.as_deref(), kvm, ring) {
            let record = match plan.unsupported {
                Some(why) => dirty_rate::record(plan.mode, secs, None, Some(why)),
                None => self.measure_one(plan.mode, secs, has_modes)?,
            };
            match (&record.dirty_rate_mb_s, &record.error) {
                (Some(rate), _) => self.say(&format!(
                    "QEMU's dirty rate ({}, {secs} s): {rate} MiB/s",
                    record.mode
                )),
                (None, Some(e)) => self.say(&format!(
                    "QEMU's dirty rate ({}): not measured: {e}",
                    record.mode
                )),
                (None, None) => {}
            }
            let lost = !self.monitors.usable(Role::Src);
            let why = record.error.clone().unwrap_or_default();
            self.emit(&Record::DirtyRate(record))?;
            if lost {
                return Ok(Some(self.error(&format!(
                    "the source VM's QMP connection was lost while QEMU measured its dirty rate \
                     ({} mode: {why})",
                    plan.mode
                ))));
            }
        }
        Ok(None)
    }

    fn measure_one(
        &mut self,
        mode: &'static str,
        secs: u64,
        has_modes: bool,
    ) -> Result<gp_records::DirtyRate, Stop> {
        let args = dirty_rate::arguments(mode, secs, has_modes);
        if let Err(e) = self.qmp(Role::Src, |q| q.execute(&args)) {
            self.stop_if_signalled()?;
            let why = format!("calc-dirty-rate refused: {}", error_chain(&e));
            return Ok(dirty_rate::record(mode, secs, None, Some(why)));
        }
        let deadline = Instant::now() + Duration::from_secs(secs) + DIRTY_RATE_GRACE;
        let poll = self.args.poll().max(Duration::from_millis(100));
        loop {
            self.pump((Instant::now() + poll).min(deadline))?;
            if let Some(e) = self.lost_vm() {
                let why = format!("while measuring: {e}");
                return Ok(dirty_rate::record(mode, secs, None, Some(why)));
            }
            // As sent: QEMU before 8.2 has no calc-time-unit, which qapi's reply type requires.
            let query = qmp::query_dirty_rate {
                calc_time_unit: None,
            };
            let info = match self.qmp(Role::Src, |q| q.execute_raw(&query)) {
                Ok(info) => info,
                Err(e) => {
                    self.stop_if_signalled()?;
                    let why = format!("query-dirty-rate failed: {}", error_chain(&e));
                    return Ok(dirty_rate::record(mode, secs, None, Some(why)));
                }
            };
            if dirty_rate::status(&info) == Some("measured") {
                return Ok(dirty_rate::record(mode, secs, Some(info), None));
            }
            if Instant::now() >= deadline {
                let why = format!(
                    "not measured {} s after calc-dirty-rate (status {})",
                    (Duration::from_secs(secs) + DIRTY_RATE_GRACE).as_secs(),
                    dirty_rate::status(&info).unwrap_or("unknown")
                );
                return Ok(dirty_rate::record(mode, secs, Some(info), Some(why)));
            }
        }
    }

    /// The `settle` of the scenario record, as of now.
    fn settle_record(&self) -> Option<Settle> {
        let criterion = self.settle_criterion?;
        let mut s = self.tracker.record(criterion, now_s());
        if criterion == settle::CRITERION_NONE {
            s.waited_s = self.settle_began.map_or(0.0, |t| (now_s() - t).max(0.0));
        }
        Some(s)
    }

    /// Writes the scenario record, with how the wait before migrating went, if not yet written.
    fn write_scenario(&mut self) -> Result<(), Stop> {
        let Some(mut record) = self.pending_scenario.take() else {
            return Ok(());
        };
        record.time_s = now_s();
        record.settle = self.settle_record();
        self.emit(&Record::Scenario(record))
    }

    /// Sleeps `--sleep` seconds while passing input through; a VM that exits is an error.
    fn settle(&mut self, when: &str) -> Result<Option<Ending>, Stop> {
        let until = Instant::now() + Duration::from_secs_f64(self.args.sleep);
        while Instant::now() < until {
            self.pump((Instant::now() + Duration::from_millis(200)).min(until))?;
            if let Some(ending) = self.lost_while_settling(when) {
                return Ok(Some(ending));
            }
        }
        Ok(None)
    }

    /// The run's end when a VM exited or the input ended during the wait before migrating.
    fn lost_while_settling(&self, when: &str) -> Option<Ending> {
        if let Some(e) = self.lost_vm() {
            return Some(self.error(&format!("while settling {when}: {e}")));
        }
        self.input_ended.then(|| {
            self.error(&format!(
                "the input ended while settling {when}: an upstream stage stopped (gp-launch, \
                 or a filter before gp-migrate), so the VMs' records no longer arrive"
            ))
        })
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

    /// Runs `f` on `role`'s monitor, then writes the QMP events it read.
    fn qmp<T>(
        &mut self,
        role: Role,
        f: impl FnOnce(&mut Qmp) -> Result<T, QmpError>,
    ) -> Result<T, QmpError> {
        let result = match self.monitors.get(role) {
            Some(q) => f(q),
            None => Err(QmpError::Broken {
                command: "QMP",
                earlier: format!("never connected to the {role} VM"),
            }),
        };
        self.flush_events(role);
        result
    }

    /// Writes the QMP events read on `role`'s connection.
    fn flush_events(&mut self, role: Role) {
        for e in self.monitors.take_events(role) {
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

    fn qmp_socket(&self, role: Role) -> Option<PathBuf> {
        self.vms[vm_index(role)]
            .as_ref()
            .map(|vm| PathBuf::from(&vm.qmp_socket))
    }

    /// Replaces a broken connection (after a timeout or an interrupted call, a live QEMU may
    /// still be behind it). Whether one is usable.
    fn reconnect_if_broken(&mut self, role: Role) -> bool {
        match self.qmp_socket(role) {
            Some(path) => self.monitors.reconnect_if_broken(role, &path),
            None => false,
        }
    }

    /// Connects to `role`'s QMP socket. The inner error is why it could not.
    fn connect(&mut self, role: Role) -> Result<Result<(), String>, Stop> {
        let Some(path) = self.qmp_socket(role) else {
            return Ok(Err(format!("no vm record for the {role} VM")));
        };
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
        let connected = self.monitors.connect(role, &path, deadline);
        self.flush_events(role);
        match connected {
            Ok(()) => Ok(Ok(())),
            Err(e) => {
                self.stop_if_signalled()?;
                Ok(Err(format!("{what}: {}", error_chain(&e))))
            }
        }
    }

    /// What `role`'s QEMU has, before anything is changed.
    fn facts(&mut self, role: Role) -> Result<Facts, String> {
        let asking = |e: QmpError| format!("asking the {role} QEMU: {}", error_chain(&e));
        let version = self.qmp(role, Qmp::query_version).map_err(asking)?;
        let caps = self
            .qmp(role, Qmp::migration_capabilities)
            .map_err(asking)?;
        let params = self.qmp(role, Qmp::migration_parameters).map_err(asking)?;
        // Older QEMUs without introspection still work: parameters are typed from their values.
        let schema = self.qmp(role, Qmp::qmp_schema).ok().map(|(s, _)| s);
        let kvm = self.qmp(role, |q| q.execute(&qmp::query_kvm {})).ok();
        Ok(Facts::new(
            &version,
            &caps,
            params,
            schema.as_deref(),
            kvm.as_ref(),
        ))
    }

    fn hardware(&self) -> Hardware {
        Hardware {
            mem_bytes: self.launch.as_ref().map(|l| l.hardware.mem_bytes),
            dirty_ring_size: self.launch.as_ref().map(|l| l.hardware.dirty_ring_size),
            accel: self.launch.as_ref().map(|l| l.accel.clone()),
        }
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
        let scenario = self.args.scenario();
        let built = plan::build(
            &scenario,
            &self.args.extras(),
            &self.hardware(),
            &facts[0],
            &facts[1],
        );
        let plan = match built {
            Ok(p) => p,
            Err(e) => {
                let status = match e {
                    PlanError::Unsupported { .. } => ExitStatus::Unsupported,
                    PlanError::Invalid(_) => ExitStatus::Error,
                };
                return Ok(Err(self.setup_failed(e.to_string(), status)?));
            }
        };
        let mut readback = Vec::new();
        for role in [Role::Src, Role::Dst] {
            let version = &facts[vm_index(role)].version;
            let configured = self
                .configure(role, plan.side(role), version)
                .and_then(|()| self.read_back(role));
            match configured {
                Ok(now) => readback.push(now),
                Err((message, status)) => return Ok(Err(self.setup_failed(message, status)?)),
            }
        }
        for role in [Role::Src, Role::Dst] {
            let reported = &readback[vm_index(role)].1;
            for (name, wanted, got) in plan::changed(plan.side(role), reported) {
                self.say(&format!(
                    "warning: the {role} QEMU accepted {name}={wanted} but reports {got}"
                ));
            }
        }
        let [(caps, params), (dst_caps, dst_params)]: [(Value, Map<String, Value>); 2] = readback
            .try_into()
            .unwrap_or_else(|_| unreachable!("one per role"));
        let record = ScenarioRecord {
            time_s: now_s(),
            scenario,
            sleep_s: self.args.sleep,
            poll_ms: self.args.poll_ms,
            extra_capabilities: Value::Object(
                self.args
                    .capabilities
                    .iter()
                    .map(|(n, s)| (n.clone(), Value::Bool(*s)))
                    .collect(),
            ),
            extra_parameters: Value::Object(plan.extra_parameters.clone()),
            capabilities: caps,
            parameters: Value::Object(params),
            qemu_version: Some(facts[0].version.clone()),
            dst_qemu_version: Some(facts[1].version.clone()),
            dst_capabilities: dst_caps,
            dst_parameters: Value::Object(dst_params),
            settle: None,
        };
        self.pending_scenario = Some(record);
        self.dirty_rate_modes = facts[0].dirty_rate_modes.clone();
        Ok(Ok(plan))
    }

    /// Sets `settings` on `role`: capabilities, typed parameters, then the untyped ones. The
    /// error is the message and the exit status.
    fn configure(
        &mut self,
        role: Role,
        settings: &Settings,
        version: &str,
    ) -> Result<(), (String, ExitStatus)> {
        if !settings.capabilities.is_empty() {
            if let Err(e) = self.qmp(role, |q| {
                q.set_migration_capabilities(&settings.capabilities)
            }) {
                let names: Vec<String> = settings
                    .capabilities
                    .iter()
                    .map(|c| format!("{}={}", c.capability, on_off(c.state)))
                    .collect();
                // QEMU refusing a capability (post-copy without userfaultfd) is this QEMU not
                // supporting the scenario.
                let status = if e.is_connection_lost() {
                    ExitStatus::Error
                } else {
                    ExitStatus::Unsupported
                };
                let message = format!(
                    "setting migration capabilities {} on the {role} (QEMU {version}): {}",
                    names.join(", "),
                    error_chain(&e)
                );
                return Err((message, status));
            }
        }
        let parameters = [
            (settings.typed_parameter_values(), true),
            (settings.untyped_parameters.clone(), false),
        ];
        for (values, typed) in parameters {
            if values.is_empty() {
                continue;
            }
            let sent = if typed {
                let set = qmp::migrate_set_parameters(settings.parameters.clone());
                self.qmp(role, |q| q.execute(&set).map(drop))
            } else {
                self.qmp(role, |q| q.set_untyped_migration_parameters(values.clone()))
            };
            if let Err(e) = sent {
                let message = format!(
                    "setting migration parameters {} on the {role} (QEMU {version}): {}",
                    describe(&values),
                    error_chain(&e)
                );
                return Err((message, ExitStatus::Error));
            }
        }
        Ok(())
    }

    /// What `role`'s QEMU has after configuration: capabilities as an object
    /// (`{"xbzrle": false, ...}`) and parameters, as QEMU reports them.
    fn read_back(
        &mut self,
        role: Role,
    ) -> Result<(Value, Map<String, Value>), (String, ExitStatus)> {
        let failed = |e: QmpError| {
            let message = format!(
                "reading back the {role}'s configuration: {}",
                error_chain(&e)
            );
            (message, ExitStatus::Error)
        };
        let caps = self
            .qmp(role, Qmp::migration_capabilities)
            .map_err(failed)?;
        let params = self.qmp(role, Qmp::migration_parameters).map_err(failed)?;
        let caps = caps
            .into_iter()
            .map(|c| (c.capability, Value::Bool(c.state)))
            .collect();
        Ok((Value::Object(caps), params))
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
        let mut w = Watch::new(self.args.scenario());
        let poll = self.args.poll();
        let started = Instant::now();
        let mut dst_last: Option<Value> = None;
        let mut next = Instant::now();
        loop {
            self.pump(next)?;
            next += poll;
            if Instant::now() > next {
                next = Instant::now();
            }
            let end = match self.poll(&mut w, started, &mut dst_last)? {
                Verdict::End(end) => end,
                Verdict::Act(steps) => match self.act(&mut w, steps, started)? {
                    Some(end) => end,
                    None => continue,
                },
            };
            if end.cancel_first {
                let _ = self.qmp(Role::Src, |q| q.execute(&qmp::migrate_cancel {}));
            }
            self.flush_events(Role::Dst);
            return Ok((end.result, w.done().clone()));
        }
    }

    /// The destination's `query-migrate` once its side has completed too (a `progress` record,
    /// role `dst`, written even if unchanged): post-copy blocktime is in it only then. At most
    /// [`DST_FINAL_WAIT`] for the destination to say `completed`.
    fn final_dst_snapshot(&mut self) -> Result<(), Stop> {
        let deadline = Instant::now() + DST_FINAL_WAIT;
        loop {
            let reply = match self.qmp(Role::Dst, |q| q.call(&qmp::query_migrate {})) {
                Ok(r) => r,
                Err(e) => {
                    self.stop_if_signalled()?;
                    self.say(&format!(
                        "note: the destination's query-migrate after completion failed: {}",
                        error_chain(&e)
                    ));
                    return Ok(());
                }
            };
            let status = reply.raw.get("status").and_then(Value::as_str);
            let ended = !matches!(
                status,
                Some("setup" | "active" | "device" | "postcopy-active" | "postcopy-paused")
                    | Some("postcopy-recover" | "postcopy-recover-setup" | "pre-switchover")
                    | Some("wait-unplug" | "colo")
            );
            if ended || Instant::now() >= deadline {
                if !ended {
                    self.say(&format!(
                        "note: the destination still said '{}' {} s after the source completed",
                        status.unwrap_or("?"),
                        DST_FINAL_WAIT.as_secs()
                    ));
                }
                return self.emit(&Record::Progress(watch::progress(Role::Dst, &reply)));
            }
            self.pump((Instant::now() + self.args.poll()).min(deadline))?;
        }
    }

    /// One poll: the VMs' exits, both snapshots (recorded), and what they call for.
    fn poll(
        &mut self,
        w: &mut Watch,
        started: Instant,
        dst_last: &mut Option<Value>,
    ) -> Result<Verdict, Stop> {
        // A source that exits or stops answering ends the migration.
        if let Some(e) = &self.exits[0] {
            return Ok(finished(w.source_exited(e.pid, &exit_how(e))));
        }
        if !w.dst_lost() {
            if let Some(e) = &self.exits[1] {
                let what = format!(
                    "the destination VM (pid {}) exited during the migration: {}",
                    e.pid,
                    exit_how(e)
                );
                if w.destination_lost(started.elapsed(), what.clone()) {
                    self.say(&what);
                }
            }
        }
        let src = match self.qmp(Role::Src, |q| q.call(&qmp::query_migrate {})) {
            Ok(reply) => reply,
            Err(e) => {
                self.stop_if_signalled()?;
                return Ok(finished(w.source_unreachable(&error_chain(&e))));
            }
        };
        self.emit(&Record::Progress(watch::progress(Role::Src, &src)))?;
        self.tell_undecoded(Role::Src, &src);
        self.show(&src);
        if !w.dst_lost() {
            match self.qmp(Role::Dst, |q| q.call(&qmp::query_migrate {})) {
                Ok(dst) => {
                    if dst_last.as_ref() != Some(&dst.raw) {
                        self.emit(&Record::Progress(watch::progress(Role::Dst, &dst)))?;
                        self.tell_undecoded(Role::Dst, &dst);
                        *dst_last = Some(dst.raw);
                    }
                }
                Err(e) => {
                    self.stop_if_signalled()?;
                    let what = format!(
                        "lost the destination during the migration: {}",
                        error_chain(&e)
                    );
                    if w.destination_lost(started.elapsed(), what.clone()) {
                        self.say(&what);
                    }
                }
            }
        }
        Ok(w.snapshot(started.elapsed(), &src))
    }

    /// Takes `steps` on the source, recording each. Returns how the migration ends if one could
    /// not be taken.
    fn act(
        &mut self,
        w: &mut Watch,
        steps: Vec<Step>,
        started: Instant,
    ) -> Result<Option<End>, Stop> {
        for step in steps {
            let (action, why) = match &step {
                Step::Cancel(why) => ("cancel", why),
                Step::StartPostcopy(why) => ("postcopy", why),
                Step::Pause(why) => ("pause", why),
                Step::Finished(_) => continue,
            };
            self.action(action, why, Some(Role::Src))?;
            let sent = self.qmp(Role::Src, |q| match &step {
                Step::Cancel(_) => q.execute(&qmp::migrate_cancel {}).map(drop),
                Step::StartPostcopy(_) => q.execute(&qmp::migrate_start_postcopy {}).map(drop),
                _ => q.execute(&qmp::stop {}).map(drop),
            });
            match sent {
                Ok(()) => w.acted(&step, started.elapsed()),
                Err(e) => {
                    self.stop_if_signalled()?;
                    return Ok(Some(w.step_failed(&step, &error_chain(&e))));
                }
            }
        }
        Ok(None)
    }

    /// Says once per member that a snapshot has one qapi's schema cannot read: it is in the
    /// records as sent, but no decision can use it.
    fn tell_undecoded(&mut self, role: Role, reply: &Reply<qmp::MigrationInfo>) {
        let told = &mut self.undecoded_told[vm_index(role)];
        let new: Vec<String> = reply
            .undecoded
            .iter()
            .filter(|m| !told.contains(m))
            .cloned()
            .collect();
        if new.is_empty() {
            return;
        }
        told.extend(new.iter().cloned());
        self.say(&format!(
            "note: the {role} QEMU's query-migrate has {} in a form newer than the QMP schema \
             gp-migrate was built with: recorded as sent, not used for decisions",
            new.join(", ")
        ));
    }

    fn show(&mut self, reply: &Reply<qmp::MigrationInfo>) {
        // Snapshots without RAM figures (setup, the final cancelled one) say nothing new.
        let Some(ram) = reply.typed.ram.as_ref().filter(|_| self.display.is_live()) else {
            return;
        };
        let mib = |v: i64| v as f64 / (1 << 20) as f64;
        let text = format!(
            "{STAGE}: {} pass {} remaining {:.1} of {:.1} MiB, sent {:.1} MiB at {:.0} Mbps",
            watch::status_text(reply),
            ram.dirty_sync_count,
            mib(ram.remaining),
            mib(ram.total),
            mib(ram.transferred),
            ram.mbps,
        );
        self.display.show(&text);
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
            // A broken connection (timeout) may still have a live QEMU behind it: reconnect once.
            let usable = self.monitors.usable(role);
            let vm = self.vms[i].as_ref();
            let gone = |vm: &Vm| vm.host.is_none() && !gp_qemu::process::is_running(vm.pid);
            if !usable && vm.is_some_and(gone) {
                // It exited on its own (an incoming QEMU does when its migration fails).
                continue;
            }
            if !self.reconnect_if_broken(role) {
                self.say(&format!("cannot reach the {role} VM's QMP socket to quit it; gp-launch will stop it when its output closes"));
                unquit = true;
                continue;
            }
            let _ = self.action("shutdown", reason, Some(role));
            if let Err(e) = self.qmp(role, |q| {
                q.set_timeout(QUIT_ANSWER);
                q.quit()
            }) {
                self.say(&format!("quit on the {role} VM: {}", error_chain(&e)));
                unquit = true;
            }
            self.quit_sent[i] = true;
        }
        self.monitors.close_all();
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

/// How a VM exited, in words.
fn exit_how(e: &VmExit) -> String {
    e.reason
        .clone()
        .unwrap_or_else(|| format!("status {}", e.status))
}

/// A result from the watch as the end of the migration.
fn finished(result: MigrationResult) -> Verdict {
    Verdict::End(End {
        result,
        cancel_first: false,
    })
}

/// Window rates in MiB/s for a message: `[31.9, 32.0, 28.1]`.
fn rates_text(rates: &[f64]) -> String {
    let last: Vec<String> = rates
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(|r| format!("{:.1}", r / (1 << 20) as f64))
        .collect();
    format!("[{}] MiB/s", last.join(", "))
}

/// `name=value, ...` for a message.
fn describe(values: &Map<String, Value>) -> String {
    let parts: Vec<String> = values.iter().map(|(n, v)| format!("{n}={v}")).collect();
    parts.join(", ")
}
