//! Child process supervision: QEMU must never outlive the tool that started it.
//!
//! [`spawn`] starts a child from a dedicated, long-lived thread that stays alive until the child
//! has exited. The child asks the kernel for `SIGKILL` when that thread dies
//! (`PR_SET_PDEATHSIG` fires when the *spawning thread* exits, not the process), so a tool that
//! is killed outright takes its QEMUs with it. The child runs in its own process group, so a
//! Ctrl-C at the terminal reaches only the tool, which then shuts the child down in order.
//!
//! The child's stdout is read line by line on a thread and handed to a callback, stamped with
//! the host arrival time of the line's first byte; its stderr is read on another thread and its
//! tail kept for error messages, so neither pipe ever fills and blocks the child. [`Child::stop`]
//! asks politely, waits against a deadline, then kills and reaps.
//!
//! [`spawn_io`] connects a child's stdin and stdout to other processes instead (guestperf's stage
//! pipeline): stdin from any [`Stdio`], stdout handed back as a pipe ([`Child::take_stdout`]) or
//! sent to a [`Stdio`]; the stderr tail, the exit status and the stop escalation stay the same.
//!
//! Console batching ([`Spec::line_batch`]): QEMU's 8250 UART model writes the guest's console
//! output a byte at a time, and a reader blocked on the pipe wakes for every byte (some 24
//! wake-ups per 45-byte line). After a read that ends mid-line the reader waits
//! `line_batch` before reading again, so a line costs one or two wake-ups. A line still carries
//! the arrival time of its first byte: the reader is waiting in `read` whenever a line starts
//! after the previous one was complete, so that time is exact; only a line that starts during
//! the wait is stamped up to `line_batch` late.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;

use crate::affinity::NativeBinding;

/// How many stderr lines [`Child::stderr_tail`] keeps.
pub const STDERR_TAIL_LINES: usize = 40;

/// Longest line handed to a callback in one piece; a longer one is cut into pieces of this
/// size, so a child that never writes a newline cannot grow the reader without bound.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Short name for threads and messages, e.g. `qemu-src`.
    pub name: String,
    pub program: OsString,
    pub args: Vec<OsString>,
    /// CPU and memory policy applied in the child before `exec` (when `numactl` is not used).
    pub native_binding: Option<NativeBinding>,
    /// Give the child a pipe as stdin, held open by [`Child`] (see [`Child::take_stdin`]),
    /// instead of `/dev/null`. An ssh session's remote end sees EOF when it closes.
    pub keep_stdin: bool,
    /// The signal the child gets when its supervision thread ends, i.e. when we die:
    /// `SIGKILL` (a QEMU must not outlive us), or `SIGTERM` for a child that should clean up.
    pub death_signal: i32,
    /// After a read of stdout that ends mid-line, wait this long before the next read, so that
    /// a child writing a line a byte at a time wakes the reader once or twice per line (see the
    /// module docs). `None`: read as data comes.
    pub line_batch: Option<Duration>,
    /// Stderr lines this returns true for are handed to [`Hooks::on_stderr_line`] but not kept
    /// in [`Child::stderr_tail`] (e.g. QEMU's trace output, which would push its error
    /// messages out of the tail).
    pub stderr_tail_skip: Option<fn(&str) -> bool>,
}

impl Spec {
    pub fn new(name: impl Into<String>, program: impl Into<OsString>) -> Self {
        Spec {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            native_binding: None,
            keep_stdin: false,
            death_signal: libc::SIGKILL,
            line_batch: None,
            stderr_tail_skip: None,
        }
    }

    pub fn arg(&mut self, arg: impl Into<OsString>) -> &mut Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The command line as text, for records and messages.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exit {
    /// Exit code, or 128 + signal number when a signal killed it (the shell's convention).
    pub status: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// Host wall-clock time the exit was noticed, seconds since the epoch.
    pub time_s: f64,
}

impl Exit {
    fn from_status(status: std::process::ExitStatus) -> Exit {
        let time_s = gp_records::now_s();
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit {
                status: code,
                signal: None,
                time_s,
            },
            (None, Some(sig)) => Exit {
                status: 128 + sig,
                signal: Some(sig),
                time_s,
            },
            // Neither code nor signal (stopped/continued are not reported by wait): be explicit.
            (None, None) => Exit {
                status: -1,
                signal: None,
                time_s,
            },
        }
    }

    pub fn success(&self) -> bool {
        self.status == 0
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.signal {
            Some(sig) => write!(f, "killed by signal {sig} ({})", signal_name(sig)),
            None => write!(f, "exit status {}", self.status),
        }
    }
}

pub use gp_stage::signals::signal_name;

/// How [`Child::stop`] ended the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopHow {
    /// It had already exited.
    AlreadyExited,
    /// It exited after the polite request.
    Polite,
    /// It was still running at the deadline and was killed.
    Killed,
}

/// One line the child printed on stdout.
#[derive(Debug, Clone)]
pub struct OutputLine {
    /// The line, lossily decoded, without `\n` or a trailing `\r`.
    pub text: String,
    /// Host wall-clock arrival time of the line's first byte, seconds since the epoch.
    pub time_s: f64,
}

/// Where a child's stdout goes ([`spawn_io`]).
#[derive(Debug, Default)]
pub enum StdoutTo {
    /// Read line by line into [`Hooks::on_stdout_line`].
    #[default]
    Lines,
    /// A pipe handed back by [`Child::take_stdout`] (to feed another process).
    Pipe,
    /// Anything else: a file, our own stdout.
    Stdio(Stdio),
}

/// A child's stdin and stdout when they are not the defaults of [`spawn`].
#[derive(Debug, Default)]
pub struct Io {
    /// Where stdin comes from; `None`: `/dev/null`, or a pipe kept by [`Child`] when
    /// [`Spec::keep_stdin`] asks for one.
    pub stdin: Option<Stdio>,
    pub stdout: StdoutTo,
}

/// Called with each stderr line.
pub type StderrHook = Box<dyn FnMut(&str) + Send>;

/// Callbacks the supervision threads call. All run on those threads, never on the caller's.
pub struct Hooks {
    /// Each stdout line, in order.
    pub on_stdout_line: Box<dyn FnMut(OutputLine) + Send>,
    /// Each stderr line, in order (the tail is kept regardless).
    pub on_stderr_line: Option<StderrHook>,
    /// Called once when the child has exited and been reaped, after every stdout line.
    pub on_exit: Option<Box<dyn FnOnce(Exit) + Send>>,
}

impl Hooks {
    /// Hooks that drop stdout and only keep the stderr tail.
    pub fn discard() -> Hooks {
        Hooks {
            on_stdout_line: Box::new(|_| {}),
            on_stderr_line: None,
            on_exit: None,
        }
    }
}

/// Starting the child failed.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot run {program}: not found (check the path or PATH)")]
    NotFound {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot run {program}")]
    Io {
        program: String,
        #[source]
        source: io::Error,
    },
}

#[derive(Default)]
struct State {
    /// Set (under the lock) once the child has exited but before it is reaped, so a signal sent
    /// while holding the lock can never reach a recycled pid.
    exited: bool,
    exit: Option<Exit>,
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
    stderr: Mutex<VecDeque<String>>,
}

/// A supervised child. Dropping it kills the child if it is still running, and reaps it.
pub struct Child {
    pid: u32,
    name: String,
    shared: Arc<Shared>,
    /// The write end of the child's stdin when [`Spec::keep_stdin`] asked for one.
    stdin: Mutex<Option<ChildStdin>>,
    /// The read end of the child's stdout when [`StdoutTo::Pipe`] asked for one.
    stdout: Mutex<Option<ChildStdout>>,
}

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .finish()
    }
}

/// What the supervision thread hands back once the child runs.
type Started = Result<(u32, Option<ChildStdin>, Option<ChildStdout>), io::Error>;

/// For a `pre_exec` closure, between fork and exec: asks the kernel to send this child `sig`
/// when the thread that forked it dies, and fails if `parent` (the forking process's pid, read
/// before the fork) is already gone, since then nobody would send it. Async-signal-safe.
pub fn request_death_signal(sig: i32, parent: libc::pid_t) -> io::Result<()> {
    // SAFETY: prctl and getppid are async-signal-safe and touch no memory.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::getppid() != parent {
            return Err(io::Error::other("parent exited during spawn"));
        }
    }
    Ok(())
}

/// Starts `spec` on a new supervision thread. Returns once the child exists (or failed to).
pub fn spawn(spec: &Spec, hooks: Hooks) -> Result<Child, SpawnError> {
    spawn_io(spec, Io::default(), hooks)
}

/// [`spawn`] with the child's stdin and stdout connected as `io` says.
pub fn spawn_io(spec: &Spec, io: Io, hooks: Hooks) -> Result<Child, SpawnError> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        cond: Condvar::new(),
        stderr: Mutex::new(VecDeque::new()),
    });
    let (pid_tx, pid_rx) = bounded::<Started>(1);
    let thread_shared = Arc::clone(&shared);
    let thread_spec = spec.clone();
    let program = spec.program.to_string_lossy().into_owned();
    thread::Builder::new()
        .name(spec.name.clone())
        .spawn(move || supervise(thread_spec, io, hooks, thread_shared, pid_tx))
        .map_err(|source| SpawnError::Io {
            program: program.clone(),
            source,
        })?;
    match pid_rx.recv() {
        Ok(Ok((pid, stdin, stdout))) => Ok(Child {
            pid,
            name: spec.name.clone(),
            shared,
            stdin: Mutex::new(stdin),
            stdout: Mutex::new(stdout),
        }),
        Ok(Err(source)) if source.kind() == io::ErrorKind::NotFound => {
            Err(SpawnError::NotFound { program, source })
        }
        Ok(Err(source)) => Err(SpawnError::Io { program, source }),
        Err(_) => Err(SpawnError::Io {
            program,
            source: io::Error::other("the supervision thread ended before starting the child"),
        }),
    }
}

/// The supervision thread: spawns, reads, waits, reaps. It outlives the child on purpose.
fn supervise(
    spec: Spec,
    io: Io,
    hooks: Hooks,
    shared: Arc<Shared>,
    pid_tx: crossbeam_channel::Sender<Started>,
) {
    let Hooks {
        on_stdout_line,
        on_stderr_line,
        on_exit,
    } = hooks;
    let Io { stdin, stdout } = io;
    let (stdout, hand_back) = match stdout {
        StdoutTo::Lines => (Stdio::piped(), false),
        StdoutTo::Pipe => (Stdio::piped(), true),
        StdoutTo::Stdio(s) => (s, false),
    };
    let mut cmd = command(&spec, stdin, stdout);
    let spawned = cmd.spawn();
    // The command holds the descriptors given for the child's stdin and stdout: ours must close
    // now, or a process writing into a pipe the child reads would not see it close when the
    // child exits.
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let _ = pid_tx.send(Err(e));
            return;
        }
    };
    let pid = child.id();
    let stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let handed_back = if hand_back { stdout.take() } else { None };
    let stderr = child.stderr.take();

    let (out_done_tx, out_done_rx) = bounded::<()>(1);
    let batch = spec.line_batch;
    let out_thread = stdout.and_then(|out| {
        let name = format!("{}-out", spec.name);
        spawn_reader(name, out, batch, on_stdout_line, out_done_tx)
    });
    let err_shared = Arc::clone(&shared);
    let tail_skip = spec.stderr_tail_skip;
    let (err_done_tx, err_done_rx) = bounded::<()>(1);
    let err_thread = stderr.and_then(|err| {
        let name = format!("{}-err", spec.name);
        let on_line = stderr_line_keeper(on_stderr_line, tail_skip, err_shared);
        spawn_reader(name, err, None, on_line, err_done_tx)
    });
    let _ = pid_tx.send(Ok((pid, stdin, handed_back)));

    wait_exited_unreaped(pid);
    {
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.exited = true;
    }
    let exit = reap(&mut child);
    // Deliver every line before the exit. The readers end at EOF, which comes with the exit
    // unless a grandchild holds the pipes open; that must not stall us, hence the bound.
    join_readers([(out_done_rx, out_thread), (err_done_rx, err_thread)]);
    {
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.exit = Some(exit);
        shared.cond.notify_all();
    }
    if let Some(cb) = on_exit {
        cb(exit);
    }
}

/// The command for `spec`: stdin and stdout as given (stdin a pipe or `/dev/null` when not
/// given), stderr a pipe, its own process group, and the death signal and CPU/NUMA binding
/// applied between fork and exec.
fn command(spec: &Spec, stdin: Option<Stdio>, stdout: Stdio) -> Command {
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .stdin(match stdin {
            Some(s) => s,
            None if spec.keep_stdin => Stdio::piped(),
            None => Stdio::null(),
        })
        .stdout(stdout)
        .stderr(Stdio::piped())
        .process_group(0);
    let death_signal = spec.death_signal;
    // SAFETY: getpid is async-signal-safe; the value is read before fork.
    let parent = unsafe { libc::getpid() };
    let binding = spec.native_binding.clone().map(|b| b.prepare());
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe system
    // calls (signal, prctl, getppid, sched_setaffinity, set_mempolicy) on data prepared before
    // fork; it does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            // A shell ignores SIGINT and SIGQUIT for what it starts in the background, and an
            // ignored signal stays ignored across exec, where a shell child may not even trap
            // it: a stage written as a script would never see the SIGINT we forward. Every
            // child starts with their default dispositions (handlers are reset by exec anyway).
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            request_death_signal(death_signal, parent)?;
            if let Some(b) = &binding {
                b.apply()?;
            }
            Ok(())
        });
    }
    cmd
}

/// Reads `stream` line by line into `on_line` on a new thread called `name`, and drops `done`
/// when the stream has ended. `None` if the thread could not be started.
fn spawn_reader(
    name: String,
    stream: impl Read + Send + 'static,
    batch: Option<Duration>,
    on_line: Box<dyn FnMut(OutputLine) + Send>,
    done: crossbeam_channel::Sender<()>,
) -> Option<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name(name)
        .spawn(move || {
            read_lines(stream, batch, on_line);
            drop(done);
        })
        .ok()
}

/// The stderr line handler: hands each line to `on_line`, then keeps it in the shared tail
/// unless `tail_skip` says to leave it out.
fn stderr_line_keeper(
    mut on_line: Option<StderrHook>,
    tail_skip: Option<fn(&str) -> bool>,
    shared: Arc<Shared>,
) -> Box<dyn FnMut(OutputLine) + Send> {
    Box::new(move |line: OutputLine| {
        if let Some(cb) = on_line.as_mut() {
            cb(&line.text);
        }
        if tail_skip.is_some_and(|skip| skip(&line.text)) {
            return;
        }
        let mut tail = shared.stderr.lock().unwrap_or_else(|e| e.into_inner());
        push_tail(&mut tail, line.text);
    })
}

/// Appends `line` to a stderr tail, dropping the oldest line once it holds
/// [`STDERR_TAIL_LINES`].
fn push_tail(tail: &mut VecDeque<String>, line: String) {
    if tail.len() == STDERR_TAIL_LINES {
        tail.pop_front();
    }
    tail.push_back(line);
}

/// Reaps the exited child and says how it ended; status -1 when `wait` itself fails.
fn reap(child: &mut std::process::Child) -> Exit {
    let status = loop {
        match child.wait() {
            Ok(s) => break Some(s),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break None,
        }
    };
    status.map(Exit::from_status).unwrap_or(Exit {
        status: -1,
        signal: None,
        time_s: gp_records::now_s(),
    })
}

/// Waits a bounded time for each reader thread to reach the end of its stream, in order, and
/// joins the ones that have finished.
fn join_readers(
    readers: [(
        crossbeam_channel::Receiver<()>,
        Option<thread::JoinHandle<()>>,
    ); 2],
) {
    let grace = Duration::from_secs(2);
    for (done, reader) in readers {
        // The reader drops its sender when done: Disconnected at once, or Timeout after grace.
        let _ = done.recv_timeout(grace);
        if let Some(t) = reader.filter(|t| t.is_finished()) {
            let _ = t.join();
        }
    }
}

/// Blocks until `pid` has exited, without reaping it (`WNOWAIT`).
fn wait_exited_unreaped(pid: u32) {
    loop {
        // SAFETY: siginfo_t is plain data; waitid writes into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer to a local; P_PID on our own child.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            return;
        }
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            // ECHILD and the like: nothing to wait for; the reap below reports what it can.
            return;
        }
    }
}

/// Reads `stream` to its end, handing each line to `on_line` with the arrival time of its first
/// byte. With `batch`, a read that ends mid-line is followed by a wait of that long (see the
/// module docs).
fn read_lines(
    mut stream: impl Read,
    batch: Option<Duration>,
    mut on_line: Box<dyn FnMut(OutputLine) + Send + '_>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut line: Vec<u8> = Vec::with_capacity(256);
    // Arrival time of the first byte of `line` (set whenever `line` is not empty).
    let mut started = 0.0;
    let mut emit = |line: &mut Vec<u8>, time_s: f64| {
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        on_line(OutputLine {
            text: String::from_utf8_lossy(line).into_owned(),
            time_s,
        });
        line.clear();
    };
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let now = gp_records::now_s();
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            if line.is_empty() {
                started = now;
            }
            let end = rest.iter().position(|&b| b == b'\n');
            let take = end.map_or(rest.len(), |i| i + 1);
            let room = MAX_LINE_BYTES - line.len();
            let (piece, more) = rest.split_at(take.min(room));
            line.extend_from_slice(piece);
            rest = more;
            if line.last() == Some(&b'\n') || line.len() == MAX_LINE_BYTES {
                emit(&mut line, started);
            }
        }
        if let (Some(wait), false) = (batch, line.is_empty()) {
            // Mid-line: let the rest of it arrive before waking again.
            thread::sleep(wait);
        }
    }
    if !line.is_empty() {
        emit(&mut line, started);
    }
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The exit, if the child has exited and been reaped.
    pub fn try_exit(&self) -> Option<Exit> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .exit
    }

    /// Whether the child has exited (possibly not yet reaped).
    pub fn has_exited(&self) -> bool {
        let state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.exited || state.exit.is_some()
    }

    /// Waits until the child has exited and been reaped, or `deadline` passes.
    pub fn wait_until(&self, deadline: Instant) -> Option<Exit> {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(exit) = state.exit {
                return Some(exit);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            state = self
                .shared
                .cond
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Sends `sig` unless the child has already exited. Returns whether it was sent.
    pub fn signal(&self, sig: i32) -> bool {
        let state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.exited || state.exit.is_some() {
            return false;
        }
        // SAFETY: the child has not exited, so it is not reaped and its pid is still ours; the
        // lock keeps the supervision thread from reaping it meanwhile.
        unsafe { libc::kill(self.pid as libc::pid_t, sig) == 0 }
    }

    /// Ends the child: `polite` (e.g. QMP `quit`), then up to `grace` for it to exit, then
    /// `SIGKILL`, then reap. Never blocks for more than `grace` plus a bounded reap.
    pub fn stop(&self, polite: impl FnOnce(), grace: Duration) -> (Exit, StopHow) {
        if let Some(exit) = self.try_exit() {
            return (exit, StopHow::AlreadyExited);
        }
        polite();
        if let Some(exit) = self.wait_until(Instant::now() + grace) {
            return (exit, StopHow::Polite);
        }
        (self.kill_and_reap(), StopHow::Killed)
    }

    /// `SIGKILL`, then wait for the reap. A killed child cannot refuse, so this returns quickly.
    pub fn kill_and_reap(&self) -> Exit {
        self.signal(libc::SIGKILL);
        // SIGKILL cannot be caught; the bound only guards against a wedged kernel.
        self.wait_until(Instant::now() + Duration::from_secs(30))
            .unwrap_or(Exit {
                status: 128 + libc::SIGKILL,
                signal: Some(libc::SIGKILL),
                time_s: gp_records::now_s(),
            })
    }

    /// The write end of the child's stdin ([`Spec::keep_stdin`]); dropping it sends EOF.
    pub fn take_stdin(&self) -> Option<ChildStdin> {
        self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// The read end of the child's stdout ([`StdoutTo::Pipe`]), to connect to another process.
    pub fn take_stdout(&self) -> Option<ChildStdout> {
        self.stdout.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// The last [`STDERR_TAIL_LINES`] lines of the child's stderr.
    pub fn stderr_tail(&self) -> Vec<String> {
        self.shared
            .stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Waits briefly for the stderr reader to catch up after an exit, then returns the tail.
    /// Useful right after a failed start, when the last words are the interesting ones.
    pub fn stderr_tail_after_exit(&self) -> Vec<String> {
        let _ = self.wait_until(Instant::now() + Duration::from_secs(2));
        self.stderr_tail()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            self.kill_and_reap();
        }
    }
}

/// Formats a stderr tail for an error message: indented lines, or a note when empty.
pub fn format_tail(lines: &[String]) -> String {
    let lines: Vec<&String> = lines.iter().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return "(it printed nothing on stderr)".to_string();
    }
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str("    ");
        out.push_str(l);
    }
    out
}

/// Whether a local process exists and has not exited: a zombie waiting to be reaped (by
/// whichever process started it) has exited. Read from `/proc/PID/stat` with procfs.
pub fn is_running(pid: u32) -> bool {
    use procfs::process::{ProcState, Process};
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    let state = Process::new(pid)
        .and_then(|p| p.stat())
        .and_then(|s| s.state());
    !matches!(state, Err(_) | Ok(ProcState::Zombie | ProcState::Dead))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::unbounded;

    fn sh(script: &str) -> Spec {
        let mut spec = Spec::new("test-sh", "/bin/sh");
        spec.args(["-c", script]);
        spec
    }

    #[test]
    fn lines_then_exit_in_order() {
        let (tx, rx) = unbounded();
        let tx2 = tx.clone();
        let hooks = Hooks {
            on_stdout_line: Box::new(move |l| tx.send(format!("out:{}", l.text)).unwrap()),
            on_stderr_line: None,
            on_exit: Some(Box::new(move |e| {
                tx2.send(format!("exit:{}", e.status)).unwrap()
            })),
        };
        let child = spawn(
            &sh("printf 'a\\r\\nb\\n'; echo oops >&2; printf tail; exit 3"),
            hooks,
        )
        .unwrap();
        let exit = child
            .wait_until(Instant::now() + Duration::from_secs(20))
            .unwrap();
        assert_eq!(exit.status, 3);
        assert_eq!(exit.signal, None);
        let got: Vec<String> = rx.iter().take(4).collect();
        assert_eq!(got, ["out:a", "out:b", "out:tail", "exit:3"]);
        assert_eq!(child.stderr_tail(), ["oops"]);
    }

    #[test]
    fn skipped_stderr_lines_reach_the_hook_but_not_the_tail() {
        let (tx, rx) = unbounded();
        let hooks = Hooks {
            on_stdout_line: Box::new(|_| {}),
            on_stderr_line: Some(Box::new(move |l: &str| tx.send(l.to_string()).unwrap())),
            on_exit: None,
        };
        let mut spec = sh("echo 1@2.3:trace_me >&2; echo real error >&2");
        spec.stderr_tail_skip = Some(|l| l.contains('@'));
        let child = spawn(&spec, hooks).unwrap();
        child
            .wait_until(Instant::now() + Duration::from_secs(20))
            .unwrap();
        assert_eq!(child.stderr_tail_after_exit(), ["real error"]);
        let got: Vec<String> = rx.iter().take(2).collect();
        assert_eq!(got, ["1@2.3:trace_me", "real error"]);
    }

    #[test]
    fn killed_child_reports_128_plus_signal() {
        let child = spawn(&sh("exec sleep 1000"), Hooks::discard()).unwrap();
        let (exit, how) = child.stop(|| {}, Duration::from_millis(50));
        assert_eq!(how, StopHow::Killed);
        assert_eq!(exit.status, 128 + libc::SIGKILL);
        assert_eq!(exit.signal, Some(libc::SIGKILL));
        assert!(
            !child.signal(libc::SIGTERM),
            "no signal may go to a reaped pid"
        );
        assert!(exit.to_string().contains("SIGKILL"));
    }

    #[test]
    fn polite_stop_is_used_when_it_works() {
        let (tx, rx) = unbounded();
        let hooks = Hooks {
            on_stdout_line: Box::new(move |l| tx.send(l.text).unwrap()),
            on_stderr_line: None,
            on_exit: None,
        };
        // Waits in the `wait` builtin, which returns at once for a trapped signal.
        let script = "trap 'kill $pid; exit 7' TERM; sleep 600 & pid=$!; echo ready; wait $pid";
        let child = spawn(&sh(script), hooks).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(20)).unwrap(), "ready");
        let (exit, how) = child.stop(
            || assert!(child.signal(libc::SIGTERM)),
            Duration::from_secs(20),
        );
        assert_eq!(how, StopHow::Polite);
        assert_eq!(exit.status, 7);
    }

    #[test]
    fn missing_program_is_not_found() {
        let err = spawn(&Spec::new("x", "/nonexistent/qemu"), Hooks::discard()).unwrap_err();
        assert!(matches!(err, SpawnError::NotFound { .. }), "{err}");
    }

    #[test]
    fn a_zombie_is_not_running() {
        assert!(is_running(std::process::id()));
        assert!(!is_running(999_999_999));
        let mut zombie = Command::new("true").spawn().unwrap();
        let pid = zombie.id();
        // Wait for it to exit without reaping it (WNOWAIT): it is a zombie from then on.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own child with a valid siginfo buffer.
        let rc =
            unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT) };
        assert_eq!(rc, 0, "waitid: {}", std::io::Error::last_os_error());
        assert!(
            !is_running(pid),
            "an exited, unreaped child counts as running"
        );
        zombie.wait().unwrap();
    }

    #[test]
    fn dropping_kills_the_child() {
        let child = spawn(&sh("exec sleep 1000"), Hooks::discard()).unwrap();
        let pid = child.pid();
        drop(child);
        // Reaped by the drop: the pid is no longer our child.
        assert!(!is_running(pid));
    }

    #[test]
    fn child_leads_its_own_process_group() {
        let child = spawn(&sh("exec sleep 1000"), Hooks::discard()).unwrap();
        let stat = procfs::process::Process::new(child.pid() as i32)
            .and_then(|p| p.stat())
            .unwrap();
        assert_eq!(
            stat.pgrp,
            child.pid() as i32,
            "child must lead its own process group"
        );
        child.kill_and_reap();
    }

    /// A stream that hands out the given chunks, one per read, after the given pause; records
    /// when each chunk was handed out.
    struct Chunks {
        chunks: VecDeque<(Duration, &'static [u8])>,
        handed: Arc<Mutex<Vec<f64>>>,
    }

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((pause, chunk)) = self.chunks.pop_front() else {
                return Ok(0);
            };
            thread::sleep(pause);
            self.handed.lock().unwrap().push(gp_records::now_s());
            let n = chunk.len().min(buf.len());
            buf[..n].copy_from_slice(&chunk[..n]);
            if n < chunk.len() {
                self.chunks.push_front((Duration::ZERO, &chunk[n..]));
            }
            Ok(n)
        }
    }

    fn lines_of(
        chunks: &[(u64, &'static [u8])],
        batch: Option<Duration>,
    ) -> (Vec<OutputLine>, Vec<f64>) {
        let handed = Arc::new(Mutex::new(Vec::new()));
        let stream = Chunks {
            chunks: chunks
                .iter()
                .map(|&(ms, c)| (Duration::from_millis(ms), c))
                .collect(),
            handed: Arc::clone(&handed),
        };
        let mut lines = Vec::new();
        read_lines(stream, batch, Box::new(|l| lines.push(l)));
        let handed = handed.lock().unwrap().clone();
        (lines, handed)
    }

    #[test]
    fn a_line_carries_the_arrival_time_of_its_first_byte() {
        // "ab" arrives, then 50 ms later the rest of the line and a second line's start.
        let (lines, handed) = lines_of(
            &[(0, b"ab"), (50, b"c\r\nde"), (50, b"f\n"), (0, b"tail")],
            Some(Duration::from_millis(2)),
        );
        let text: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(text, ["abc", "def", "tail"]);
        // Stamped when "ab" came, before the read that completed the line.
        assert!(
            lines[0].time_s >= handed[0] && lines[0].time_s < handed[1],
            "{lines:?} {handed:?}"
        );
        assert!(
            lines[1].time_s >= handed[1] && lines[1].time_s < handed[2],
            "{lines:?} {handed:?}"
        );
        assert!(lines[2].time_s >= handed[3]);
    }

    #[test]
    fn a_line_without_an_end_is_cut_at_the_limit() {
        static BIG: [u8; MAX_LINE_BYTES + 10] = [b'x'; MAX_LINE_BYTES + 10];
        let (lines, _) = lines_of(
            &[
                (0, &BIG[..MAX_LINE_BYTES / 2]),
                (0, &BIG[MAX_LINE_BYTES / 2..]),
            ],
            None,
        );
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].text.len(), MAX_LINE_BYTES);
        assert_eq!(lines[1].text.len(), 10);
    }

    #[test]
    fn a_console_written_a_byte_at_a_time_comes_out_whole() {
        // A writer like QEMU's UART: one write per byte, through a real pipe.
        let script =
            "for l in 1 2 3; do for c in g p ' ' p ' ' $l; do printf \"$c\"; done; echo; done";
        let mut spec = sh(script);
        spec.line_batch = Some(Duration::from_millis(2));
        let (tx, rx) = unbounded();
        let hooks = Hooks {
            on_stdout_line: Box::new(move |l| tx.send(l.text).unwrap()),
            on_stderr_line: None,
            on_exit: None,
        };
        let child = spawn(&spec, hooks).unwrap();
        child
            .wait_until(Instant::now() + Duration::from_secs(20))
            .unwrap();
        let got: Vec<String> = rx.try_iter().collect();
        assert_eq!(got, ["gp p 1", "gp p 2", "gp p 3"]);
    }

    #[test]
    fn stdout_can_feed_another_child_and_the_pipe_closes_with_it() {
        // `yes`-like writer | head -n 2: the writer ends by SIGPIPE once head is gone, which
        // only happens when nobody else (we) holds the pipe's read end.
        let writer = sh("while echo x; do :; done");
        let io = Io {
            stdin: None,
            stdout: StdoutTo::Pipe,
        };
        let writer = spawn_io(&writer, io, Hooks::discard()).unwrap();
        let pipe = writer.take_stdout().expect("a pipe");
        assert!(writer.take_stdout().is_none(), "handed out once");
        let (tx, rx) = unbounded();
        let hooks = Hooks {
            on_stdout_line: Box::new(move |l| tx.send(l.text).unwrap()),
            on_stderr_line: None,
            on_exit: None,
        };
        let io = Io {
            stdin: Some(Stdio::from(pipe)),
            stdout: StdoutTo::Lines,
        };
        let mut head = Spec::new("head", "head");
        head.args(["-n", "2"]);
        let head = spawn_io(&head, io, hooks).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        assert_eq!(head.wait_until(deadline).unwrap().status, 0);
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["x", "x"]);
        let exit = writer
            .wait_until(deadline)
            .expect("the writer saw the pipe close");
        assert_eq!(exit.signal, Some(libc::SIGPIPE), "{exit}");
    }

    #[test]
    fn the_tail_keeps_only_the_last_lines() {
        let mut tail = VecDeque::new();
        for i in 0..STDERR_TAIL_LINES + 2 {
            push_tail(&mut tail, i.to_string());
        }
        assert_eq!(tail.len(), STDERR_TAIL_LINES);
        assert_eq!(tail.front().map(String::as_str), Some("2"));
        assert_eq!(
            tail.back().cloned(),
            Some((STDERR_TAIL_LINES + 1).to_string())
        );
    }

    #[test]
    fn the_stderr_keeper_hands_on_every_line_and_keeps_the_unskipped() {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
            stderr: Mutex::new(VecDeque::new()),
        });
        let (tx, rx) = unbounded();
        let hook: StderrHook = Box::new(move |l: &str| tx.send(l.to_string()).unwrap());
        let mut keep = stderr_line_keeper(Some(hook), Some(|l| l.starts_with('#')), shared.clone());
        for text in ["# trace", "error"] {
            keep(OutputLine {
                text: text.into(),
                time_s: 0.0,
            });
        }
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["# trace", "error"]);
        assert_eq!(*shared.stderr.lock().unwrap(), ["error"]);
    }

    #[test]
    fn tail_formatting() {
        assert!(format_tail(&[]).contains("nothing"));
        assert_eq!(
            format_tail(&["a".into(), " ".into(), "b".into()]),
            "    a\n    b"
        );
    }
}
