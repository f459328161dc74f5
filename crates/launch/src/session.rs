//! Running the two VMs: spawn, announce, stream their consoles, and own their lifetime.
//!
//! One thread (the caller's) writes every record; the supervision threads of [`gp_qemu::process`]
//! feed console lines and exits into one channel, and the signal thread feeds another. The loop
//! ends when both VMs have exited. SIGINT/SIGTERM/SIGHUP, a closed stdout and fatal errors all
//! go through [`Session::teardown`]: `quit` over the private QMP monitor, a deadline, `SIGKILL`,
//! reap. The runtime directory (sockets) is removed after the VMs are gone.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossbeam_channel::{select, unbounded, Receiver, Sender};
use gp_qemu::process::{self, format_tail, Child, Exit, Hooks, OutputLine, Spec};
use gp_qemu::qmp::Qmp;
use gp_qemu::runtime::RuntimeDir;
use gp_records::ndjson::{WriteError, Writer};
use gp_records::{Record, Role, StageError, Vm, VmExit};
use gp_stage::signals::Forwarder;
use qapi::qmp::RunState;

use crate::console::ConsoleParser;
use crate::qemu_args::{qemu_args, Machine, Side};
use crate::Error;

/// How long QEMU may take to answer on its QMP socket after being spawned (prealloc of a large
/// guest happens before the monitor answers, hence generous).
const QMP_CONNECT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a QMP command may take.
const QMP_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long VMs get to exit after `quit` before they are killed.
pub const QUIT_GRACE: Duration = Duration::from_secs(15);
/// How long a status poll or a `quit` may wait for the private monitor to answer. A monitor
/// that does not answer within this has a stuck main loop (a destination waiting for post-copy
/// pages can be): waiting longer would only keep gp-launch from hearing signals, and SIGTERM
/// would wait on the same loop, so such a QEMU is killed at teardown.
const MONITOR_ANSWER: Duration = Duration::from_secs(2);

/// How long the console reader waits after a read that ends mid-line before reading again:
/// QEMU's 8250 model writes the guest's console a byte at a time, and reading each byte as it
/// comes woke gp-launch some 24 times per progress line (docs/performance.md). A record still
/// carries the arrival time of its line's first byte (see `gp_qemu::process`), exact unless the
/// line starts during such a wait, and then at most this late.
pub const CONSOLE_BATCH: Duration = Duration::from_millis(2);

/// What the supervision threads report.
enum Event {
    Console { role: Role, line: OutputLine },
    Trace(gp_records::QemuTrace),
    Exited { role: Role, exit: Exit },
}

/// How a session ended.
#[derive(Debug)]
pub enum End {
    /// Both VMs exited on their own (or were quit by a later stage).
    Exited,
    /// A signal asked us to stop.
    Signal(i32),
    /// The next stage closed our stdout.
    OutputClosed,
}

/// Why the main loop stopped early.
enum Stop {
    Signal(i32),
    OutputClosed,
    Fatal(Error),
}

impl From<WriteError> for Stop {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Closed => Stop::OutputClosed,
            e => Stop::Fatal(Error::Write(e)),
        }
    }
}

/// One VM's QEMU and what we know of it.
struct VmProc {
    role: Role,
    child: Child,
    /// The private monitor (gp-launch's own).
    qmp: Option<Qmp>,
    private_sock: PathBuf,
    public_sock: PathBuf,
    migrate_uri: Option<String>,
    argv: Vec<String>,
    spawned_s: f64,
    spawned_at: Instant,
    announced: bool,
    exit: Option<Exit>,
    /// Set when gp-launch itself ends the VM.
    stop_reason: Option<String>,
    /// From QEMU's last `SHUTDOWN` event.
    shutdown_cause: Option<String>,
    /// Set when QEMU runs on another host (`child` is then the ssh session).
    remote: Option<crate::remote::RemoteVm>,
}

impl VmProc {
    fn alive(&self) -> bool {
        self.exit.is_none()
    }

    /// Reconnects the private monitor if needed (bounded), returning it.
    /// Reconnects the private monitor if needed (bounded), returning it; its answers are
    /// awaited for at most [`MONITOR_ANSWER`].
    fn monitor(&mut self, timeout: Duration) -> Option<&mut Qmp> {
        if self.qmp.is_none() && self.alive() && !self.child.has_exited() {
            self.qmp =
                Qmp::connect(&self.private_sock, Instant::now() + timeout, MONITOR_ANSWER).ok();
        }
        let q = self.qmp.as_mut()?;
        q.set_timeout(MONITOR_ANSWER);
        Some(q)
    }

    fn note_events(&mut self) {
        if let Some(q) = self.qmp.as_mut() {
            for ev in q.take_events() {
                if let Ok(qapi::qmp::Event::SHUTDOWN { data, .. }) = ev.typed() {
                    self.shutdown_cause = Some(qapi::Enum::name(&data.reason).to_string());
                }
            }
        }
    }

    /// Current run state, or None when the monitor does not answer.
    fn status(&mut self) -> Option<RunState> {
        let q = self.monitor(Duration::from_millis(500))?;
        let result = q.query_status();
        self.note_events();
        match result {
            Ok(s) => Some(s.status),
            Err(_) => {
                // QEMU may be closing (a quit from the next stage): keep its last events.
                if let Some(q) = self.qmp.as_mut() {
                    q.drain_after_exit();
                }
                self.note_events();
                self.qmp = None;
                None
            }
        }
    }

    /// Asks QEMU to quit: over the private monitor, else with SIGTERM (QEMU shuts down cleanly
    /// on it too). Returns true when the monitor took the command but did not answer: QEMU's
    /// main loop is stuck, and it will not act on `quit` or SIGTERM either.
    fn request_quit(&mut self) -> bool {
        if !self.alive() {
            return false;
        }
        let answer = self.monitor(Duration::from_secs(1)).map(|q| q.quit());
        match answer {
            Some(Ok(())) => false,
            Some(Err(gp_qemu::qmp::QmpError::Timeout { .. })) => true,
            // Its monitor answered before and no longer takes a connection: stuck as well.
            None if self.announced && !self.child.has_exited() => true,
            _ => {
                self.child.signal(libc::SIGTERM);
                false
            }
        }
    }

    /// `reason` for the vm_exit record.
    fn exit_reason(&self, exit: &Exit) -> String {
        if let Some(r) = &self.stop_reason {
            // QEMU can crash on its way out (a source quit in post-copy dies of SIGSEGV in
            // QEMU 10.0): say so rather than only that it was asked to quit.
            return match exit.signal {
                Some(sig) if sig != libc::SIGKILL => {
                    format!(
                        "{r}; QEMU then died of signal {sig} ({})",
                        process::signal_name(sig)
                    )
                }
                _ => r.clone(),
            };
        }
        let cause = match self.shutdown_cause.as_deref() {
            Some("host-qmp-quit") => Some("quit over QMP"),
            Some("guest-shutdown") => Some("guest poweroff"),
            Some("guest-reset") => {
                Some("guest reset (kernel panic or reboot; QEMU runs with -no-reboot)")
            }
            Some("guest-panic") => Some("guest panic"),
            Some("host-signal") => Some("QEMU got a termination signal"),
            Some("host-error") => Some("host error"),
            _ => None,
        };
        let mut reason = match (cause, self.shutdown_cause.as_deref()) {
            (Some(c), _) => c.to_string(),
            (None, Some(other)) => format!("shutdown: {other}"),
            (None, None) if exit.signal.is_some() => exit.to_string(),
            (None, None) => format!("exited with status {}", exit.status),
        };
        if !exit.success() && exit.signal.is_none() {
            if let Some(last) = self
                .child
                .stderr_tail()
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
            {
                reason = format!("{reason}: {last}");
            }
        }
        reason
    }
}

/// The two VMs and everything they share.
pub struct Session<'w, W: Write> {
    out: &'w mut Writer<W>,
    out_closed: bool,
    // Field order matters: the VMs are dropped (killed if still running) before the directory
    // holding their sockets is removed.
    vms: Vec<VmProc>,
    dir: RuntimeDir,
    events_tx: Sender<Event>,
    events: Receiver<Event>,
    signals: &'w Forwarder,
    console: ConsoleParser,
    debug: bool,
    verbose: bool,
    boot_timeout: Duration,
    /// How often the run state of each VM is polled (to catch a KVM internal error, which
    /// pauses the VM forever instead of ending QEMU).
    status_poll: Duration,
    /// The descriptor `out` writes to, watched for a reader that went away.
    output_fd: Option<std::os::fd::RawFd>,
}

/// What to start.
pub struct Start<'a> {
    pub binary: &'a Path,
    pub machine: &'a Machine,
    pub src_extra: &'a [String],
    pub dst_extra: &'a [String],
    pub src_bind: &'a gp_qemu::bind::Binding,
    pub dst_bind: &'a gp_qemu::bind::Binding,
    pub bind_method: &'a gp_qemu::bind::Method,
    pub migrate_uri: String,
    /// `--dst-host`: the destination runs there.
    pub remote: Option<&'a crate::remote::Remote>,
}

impl<'w, W: Write> Session<'w, W> {
    pub fn new(
        out: &'w mut Writer<W>,
        dir: RuntimeDir,
        signals: &'w Forwarder,
        debug: bool,
        verbose: bool,
        boot_timeout: Duration,
    ) -> Self {
        let (events_tx, events) = unbounded();
        Session {
            out,
            out_closed: false,
            vms: Vec::new(),
            dir,
            events_tx,
            events,
            signals,
            console: ConsoleParser::new(),
            debug,
            verbose,
            boot_timeout,
            status_poll: Duration::from_secs(1),
            output_fd: None,
        }
    }

    /// Watches `fd` (what the output writer writes to) for the next stage going away. A closed
    /// pipe is otherwise only noticed at the next write, and VMs that print nothing (a QEMU
    /// stopped, or stuck waiting for post-copy pages) make no records: gp-launch would wait for
    /// them forever.
    pub fn watch_output(&mut self, fd: std::os::fd::RawFd) {
        self.output_fd = Some(fd);
    }

    /// Whether the reader of the output went away: the write end of a pipe whose read end is
    /// closed polls as POLLERR.
    fn output_gone(&self) -> bool {
        let Some(fd) = self.output_fd else {
            return false;
        };
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: poll(2) on one valid pollfd, without waiting.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        n == 1 && p.revents & libc::POLLERR != 0
    }

    pub fn set_status_poll(&mut self, every: Duration) {
        self.status_poll = every;
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a record unless the output is already closed.
    fn emit(&mut self, record: &Record) -> Result<(), Stop> {
        if self.out_closed {
            return Err(Stop::OutputClosed);
        }
        self.out.write(record).map_err(|e| {
            if matches!(e, WriteError::Closed) {
                self.out_closed = true;
            }
            Stop::from(e)
        })
    }

    /// Writes the header.
    pub fn write_header(&mut self, header: gp_records::Launch) -> Result<(), Error> {
        self.write_record(&Record::Launch(header))
    }

    /// Writes a record before the VMs start (the header, a `clock_offset`).
    pub fn write_record(&mut self, record: &Record) -> Result<(), Error> {
        match self.emit(record) {
            Ok(()) => Ok(()),
            Err(Stop::OutputClosed) => Err(Error::OutputClosed),
            Err(Stop::Fatal(e)) => Err(e),
            Err(Stop::Signal(_)) => unreachable!("emit never reports a signal"),
        }
    }

    /// Starts both VMs, announces them, and streams until both have exited or we are stopped.
    /// Always leaves no QEMU behind.
    pub fn run(&mut self, start: &Start<'_>) -> Result<End, Error> {
        let result = self.start_vms(start).and_then(|()| self.stream());
        match result {
            Ok(()) => Ok(End::Exited),
            Err(Stop::Signal(sig)) => {
                let why = process::signal_name(sig);
                say!("gp-launch: {why}: stopping both VMs");
                // Said in the stream first, so that the report can tell a run interrupted here
                // from a migration that failed by itself when the VMs go.
                let _ = self.emit(&Record::StageError(StageError::signalled(
                    crate::STAGE,
                    sig,
                    format!("interrupted by {why}: stopping both VMs"),
                )));
                self.teardown(&why);
                Ok(End::Signal(sig))
            }
            Err(Stop::OutputClosed) => {
                self.teardown("output closed by the next stage");
                Ok(End::OutputClosed)
            }
            Err(Stop::Fatal(e)) => {
                self.teardown("error");
                Err(e)
            }
        }
    }

    fn spawn_vm(&mut self, start: &Start<'_>, role: Role) -> Result<(), Stop> {
        let sock = |name: &str| {
            self.dir
                .socket_path(&format!("{role}-{name}.sock"))
                .map_err(|e| Stop::Fatal(e.into()))
        };
        let private_sock = sock("private")?;
        let public_sock = sock("qmp")?;
        let (extra, bind) = match role {
            Role::Src => (start.src_extra, start.src_bind),
            Role::Dst => (start.dst_extra, start.dst_bind),
        };
        let remote = start.remote.filter(|_| role == Role::Dst);
        let (qmp_private, qmp_public) = match remote {
            Some(_) => (
                crate::remote::Remote::socket_arg(role, "private"),
                crate::remote::Remote::socket_arg(role, "qmp"),
            ),
            None => (private_sock.clone(), public_sock.clone()),
        };
        let side = Side {
            role,
            qmp_private: &qmp_private,
            qmp_public: &qmp_public,
            incoming: role == Role::Dst,
            extra,
        };
        let mut spec = Spec::new(format!("qemu-{role}"), start.binary.as_os_str());
        spec.args(qemu_args(start.machine, &side));
        if let Some(r) = remote {
            spec = r.dst_spec(role, &spec.argv()[1..], bind);
        } else {
            start.bind_method.apply(bind, &mut spec);
        }
        spec.line_batch = Some(CONSOLE_BATCH);
        let tracing = !start.machine.trace_events.is_empty();
        if tracing {
            spec.stderr_tail_skip = Some(crate::trace::is_trace_line);
        }
        let mut argv = spec.argv();
        if self.verbose {
            say!("gp-launch: {role}: {}", shell_words(&argv));
        }

        let tx_line = self.events_tx.clone();
        let tx_exit = self.events_tx.clone();
        let debug = self.debug;
        let on_stdout_line: Box<dyn FnMut(OutputLine) + Send> = Box::new(move |line| {
            let _ = tx_line.send(Event::Console { role, line });
        });
        let (on_stdout_line, link) = match remote {
            Some(_) => {
                let (hook, link) = crate::remote::Remote::split_stdout(on_stdout_line);
                (hook, Some(link))
            }
            None => (on_stdout_line, None),
        };
        let tx_trace = self.events_tx.clone();
        let tell = debug || self.verbose;
        let hooks = Hooks {
            on_stdout_line,
            on_stderr_line: (tell || tracing).then(|| {
                Box::new(move |line: &str| {
                    if tracing {
                        if let Some(r) = crate::trace::record(line, role, gp_records::now_s()) {
                            if debug {
                                say!("qemu-{role}: {line}");
                            }
                            let _ = tx_trace.send(Event::Trace(r));
                            return;
                        }
                    }
                    if tell {
                        say!("qemu-{role}: {line}");
                    }
                }) as process::StderrHook
            }),
            on_exit: Some(Box::new(move |exit| {
                let _ = tx_exit.send(Event::Exited { role, exit });
            })),
        };
        let mut spawned_s = gp_records::now_s();
        let spawned_at = Instant::now();
        let child = process::spawn(&spec, hooks).map_err(|e| {
            Stop::Fatal(Error::Start {
                role,
                message: format!(
                    "{} (pass --binary with a QEMU system emulator)",
                    gp_stage::error_chain(&e)
                ),
            })
        })?;
        let remote = match (remote, link) {
            (Some(r), Some(link)) => {
                use crate::remote::AwaitError;
                let vm = r
                    .await_dst(&child, link, &private_sock, &public_sock, self.signals)
                    .map_err(|e| match e {
                        AwaitError::Interrupted(sig) => Stop::Signal(sig),
                        AwaitError::Failed(message) => Stop::Fatal(Error::Start { role, message }),
                    })?;
                argv = vm.argv.clone();
                spawned_s = vm.spawned_s;
                Some(vm)
            }
            _ => None,
        };
        self.vms.push(VmProc {
            role,
            child,
            qmp: None,
            private_sock,
            public_sock,
            migrate_uri: (role == Role::Dst).then(|| start.migrate_uri.clone()),
            argv,
            spawned_s,
            spawned_at,
            announced: false,
            exit: None,
            stop_reason: None,
            shutdown_cause: None,
            remote,
        });
        Ok(())
    }

    fn start_vms(&mut self, start: &Start<'_>) -> Result<(), Stop> {
        if let Some(sig) = self.signals.received() {
            return Err(Stop::Signal(sig));
        }
        self.spawn_vm(start, Role::Src)?;
        self.spawn_vm(start, Role::Dst)?;
        for i in 0..self.vms.len() {
            self.connect_and_announce(i)?;
        }
        Ok(())
    }

    /// Connects the private monitor, learns the vCPU threads, writes the `vm` record.
    fn connect_and_announce(&mut self, i: usize) -> Result<(), Stop> {
        let signals = self.signals;
        let vm = &mut self.vms[i];
        let role = vm.role;
        let child = &vm.child;
        let connected = Qmp::connector(&vm.private_sock)
            .deadline(Instant::now() + QMP_CONNECT_TIMEOUT)
            .timeout(QMP_CONNECT_TIMEOUT)
            .keep_trying(|| {
                if child.has_exited() {
                    Err("QEMU exited".into())
                } else if signals.received().is_some() {
                    Err("interrupted".into())
                } else {
                    Ok(())
                }
            })
            .connect();
        let mut qmp = match connected {
            Ok(q) => q,
            Err(e) => {
                if let Some(sig) = self.signals.received() {
                    return Err(Stop::Signal(sig));
                }
                let why = gp_stage::error_chain(&e);
                return Err(Stop::Fatal(self.start_failure(i, &why)));
            }
        };
        qmp.set_timeout(QMP_READ_TIMEOUT);
        let tids = match qmp.vcpu_thread_ids() {
            Ok(t) => t,
            Err(e) => {
                let why = gp_stage::error_chain(&e);
                return Err(Stop::Fatal(self.start_failure(i, &why)));
            }
        };
        let vm = &mut self.vms[i];
        vm.qmp = Some(qmp);
        vm.announced = true;
        let record = Record::Vm(Vm {
            time_s: gp_records::now_s(),
            role,
            pid: vm.remote.as_ref().map_or(vm.child.pid(), |r| r.pid),
            host: vm.remote.as_ref().map(|r| r.host.clone()),
            qmp_socket: vm.public_sock.to_string_lossy().into_owned(),
            vcpu_tids: tids,
            migrate_uri: vm.migrate_uri.clone(),
            spawned_s: vm.spawned_s,
            argv: vm.argv.clone(),
        });
        self.emit(&record)
    }

    /// The error for a VM that did not come up, with the tail of QEMU's stderr.
    fn start_failure(&self, i: usize, what: &str) -> Error {
        let vm = &self.vms[i];
        let tail = if vm.child.has_exited() {
            let exit = vm.child.wait_until(Instant::now() + Duration::from_secs(5));
            let exit = exit
                .map(|e| e.to_string())
                .unwrap_or_else(|| "exited".into());
            format!(
                "QEMU {exit}; its stderr ends with:\n{}",
                format_tail(&vm.child.stderr_tail_after_exit())
            )
        } else {
            format!(
                "its stderr ends with:\n{}",
                format_tail(&vm.child.stderr_tail())
            )
        };
        Error::Start {
            role: vm.role,
            message: format!("{what}\n  {tail}"),
        }
    }

    fn index(&self, role: Role) -> Option<usize> {
        self.vms.iter().position(|v| v.role == role)
    }

    /// The main loop.
    fn stream(&mut self) -> Result<(), Stop> {
        let boot_deadline = self.vms[0].spawned_at + self.boot_timeout;
        let mut next_poll = Instant::now() + self.status_poll;
        let signals = self.signals.receiver().clone();
        let events = self.events.clone();
        loop {
            if self.vms.iter().all(|v| !v.alive()) {
                return Ok(());
            }
            select! {
                recv(events) -> ev => {
                    if let Ok(ev) = ev {
                        self.handle(ev)?;
                    }
                },
                recv(signals) -> sig => {
                    if let Ok(sig) = sig {
                        return Err(Stop::Signal(sig));
                    }
                },
                default(Duration::from_millis(250)) => {},
            }
            if self.output_gone() {
                self.out_closed = true;
                return Err(Stop::OutputClosed);
            }
            let now = Instant::now();
            if now >= next_poll {
                next_poll = now + self.status_poll;
                self.poll_status()?;
            }
            if now >= boot_deadline && !self.console.started(Role::Src) && self.vms[0].alive() {
                return Err(Stop::Fatal(Error::BootTimeout {
                    timeout_s: self.boot_timeout.as_secs_f64(),
                    diagnostics: self.diagnostics(Role::Src),
                }));
            }
        }
    }

    /// Last console lines and stderr of a VM, for error messages.
    fn diagnostics(&self, role: Role) -> String {
        let console = self.console.tail(role);
        let stderr = self
            .index(role)
            .map(|i| self.vms[i].child.stderr_tail())
            .unwrap_or_default();
        format!(
            "  last console lines:\n{}\n  QEMU stderr:\n{}",
            format_tail(&console).replace("(it printed nothing on stderr)", "(none)"),
            format_tail(&stderr)
        )
    }

    fn poll_status(&mut self) -> Result<(), Stop> {
        for i in 0..self.vms.len() {
            if !self.vms[i].alive() || self.vms[i].child.has_exited() {
                continue;
            }
            let status = self.vms[i].status();
            if status == Some(RunState::internal_error) {
                let role = self.vms[i].role;
                return Err(Stop::Fatal(Error::InternalError {
                    role,
                    diagnostics: self.diagnostics(role),
                }));
            }
        }
        Ok(())
    }

    fn handle(&mut self, ev: Event) -> Result<(), Stop> {
        match ev {
            Event::Console { role, line } => self.on_console(role, line),
            Event::Trace(r) => self.emit(&Record::QemuTrace(r)),
            Event::Exited { role, exit } => self.on_exit(role, exit),
        }
    }

    fn on_console(&mut self, role: Role, line: OutputLine) -> Result<(), Stop> {
        if self.debug {
            say!("{role}| {}", line.text);
        }
        let Some(i) = self.index(role) else {
            return Ok(());
        };
        let spawned_s = self.vms[i].spawned_s;
        let Some(t) = self
            .console
            .translate(role, &line.text, line.time_s, spawned_s)
        else {
            return Ok(());
        };
        if t.fatal {
            say!("gp-launch: {role} workload failed: {}", line.text);
        }
        if t.first_workload && self.verbose {
            say!(
                "gp-launch: {role} workload started {:.2} s after QEMU was spawned",
                line.time_s - spawned_s
            );
        }
        self.emit(&t.record)
    }

    fn on_exit(&mut self, role: Role, exit: Exit) -> Result<(), Stop> {
        let Some(i) = self.index(role) else {
            return Ok(());
        };
        let vm = &mut self.vms[i];
        if vm.exit.is_some() {
            return Ok(());
        }
        // A remote QEMU's exit comes from the helper; without it the connection was lost.
        let (exit, lost) = match vm.remote.as_ref().map(|r| r.exit(exit)) {
            None => (exit, None),
            Some(Ok(e)) => (e, None),
            Some(Err((e, why))) => (e, Some(why)),
        };
        let lost = lost.filter(|_| vm.stop_reason.is_none());
        vm.exit = Some(exit);
        if let Some(q) = vm.qmp.as_mut() {
            q.drain_after_exit();
        }
        vm.note_events();
        vm.qmp = None;
        let reason = lost.clone().unwrap_or_else(|| vm.exit_reason(&exit));
        let pid = vm.remote.as_ref().map_or(vm.child.pid(), |r| r.pid);
        let announced = vm.announced;
        let ours = vm.stop_reason.is_some();
        // A quit over QMP before the workload started is a downstream stage ending the run
        // (gp-migrate refusing a scenario, or its output closed), not a failed boot.
        let quit_over_qmp = vm.shutdown_cause.as_deref() == Some("host-qmp-quit");
        if self.verbose || (!ours && !exit.success()) {
            say!("gp-launch: {role} QEMU {exit}: {reason}");
        }
        if announced {
            self.emit(&Record::VmExit(VmExit {
                time_s: exit.time_s,
                role,
                pid,
                status: exit.status,
                signal: exit.signal,
                reason: Some(reason.clone()),
            }))?;
        }
        if ours {
            return Ok(());
        }
        if let Some(why) = lost {
            // The run cannot go on: end the source too (nothing may be left on either host).
            return Err(Stop::Fatal(Error::ConnectionLost(why)));
        }
        if role == Role::Src && !self.console.started(Role::Src) && !quit_over_qmp {
            return Err(Stop::Fatal(Error::EndedBeforeWorkload {
                reason,
                diagnostics: self.diagnostics(Role::Src),
            }));
        }
        if role == Role::Src {
            // A destination still waiting for its incoming migration would wait forever.
            if let Some(d) = self.index(Role::Dst) {
                let dst = &mut self.vms[d];
                if dst.alive()
                    && matches!(
                        dst.status(),
                        Some(RunState::inmigrate | RunState::prelaunch)
                    )
                {
                    if self.verbose {
                        say!(
                            "gp-launch: source gone before any migration: quitting the destination"
                        );
                    }
                    dst.stop_reason =
                        Some("source exited before migrating; quit by gp-launch".into());
                    let _ = dst.request_quit();
                    let deadline = Instant::now() + QUIT_GRACE;
                    if dst.child.wait_until(deadline).is_none() {
                        dst.stop_reason =
                            Some("source exited before migrating; killed by gp-launch".into());
                        dst.child.kill_and_reap();
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends every VM still running: `quit`, a shared deadline, `SIGKILL`, reap; keeps writing
    /// their console lines and exits while the output is open. A second signal skips the wait.
    fn teardown(&mut self, why: &str) {
        for vm in self.vms.iter_mut().filter(|v| v.alive()) {
            vm.stop_reason = Some(format!("quit by gp-launch ({why})"));
            if vm.request_quit() {
                vm.stop_reason = Some(format!(
                    "killed by gp-launch: its monitor did not answer quit within {} s ({why})",
                    MONITOR_ANSWER.as_secs()
                ));
                vm.child.kill_and_reap();
            }
        }
        let deadline = Instant::now() + QUIT_GRACE;
        let signals = self.signals.receiver().clone();
        let events = self.events.clone();
        let mut hurry = false;
        while self.vms.iter().any(|v| v.alive()) && !hurry {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            select! {
                recv(events) -> ev => if let Ok(ev) = ev { self.handle_quietly(ev) },
                recv(signals) -> _ => hurry = true,
                default(deadline - now) => {},
            }
        }
        for vm in self.vms.iter_mut().filter(|v| v.alive()) {
            let wait = if hurry {
                "a second signal"
            } else {
                "the deadline"
            };
            vm.stop_reason = Some(format!("killed by gp-launch after {wait} ({why})"));
            vm.child.kill_and_reap();
        }
        // Every exit is now queued (the supervision threads report after the reap).
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.vms.iter().any(|v| v.alive()) && Instant::now() < deadline {
            match events.recv_timeout(Duration::from_millis(200)) {
                Ok(ev) => self.handle_quietly(ev),
                Err(_) => {
                    for vm in self.vms.iter_mut().filter(|v| v.alive()) {
                        if let Some(exit) = vm.child.try_exit() {
                            vm.exit = Some(exit);
                        }
                    }
                }
            }
        }
        while let Ok(ev) = events.try_recv() {
            self.handle_quietly(ev);
        }
    }

    /// Handles an event during teardown: records are still written, failures ignored.
    fn handle_quietly(&mut self, ev: Event) {
        let _ = self.handle(ev);
    }

    /// Removes the runtime directory (after every VM is gone).
    pub fn finish(self) -> std::io::Result<()> {
        let Session { vms, dir, .. } = self;
        drop(vms);
        dir.remove()
    }
}

/// Quotes an argv for display so it can be pasted into a shell.
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_=./:,@+%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
