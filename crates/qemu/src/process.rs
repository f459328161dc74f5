//! Child process supervision: QEMU must never outlive the tool that started it.
//!
//! [`spawn`] starts a child from a dedicated, long-lived thread that stays alive until the child
//! has exited. The child asks the kernel for `SIGKILL` when that thread dies
//! (`PR_SET_PDEATHSIG` fires when the *spawning thread* exits, not the process), so a tool that
//! is killed outright takes its QEMUs with it. The child runs in its own process group, so a
//! Ctrl-C at the terminal reaches only the tool, which then shuts the child down in order.
//!
//! The child's stdout is read line by line on a thread and handed to a callback, stamped with
//! the host arrival time; its stderr is read on another thread and its tail kept for error
//! messages, so neither pipe ever fills and blocks the child. [`Child::stop`] asks politely,
//! waits against a deadline, then kills and reaps.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;

use crate::bind::NativeBinding;

/// How many stderr lines [`Child::stderr_tail`] keeps.
pub const STDERR_TAIL_LINES: usize = 40;

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
}

impl Spec {
    pub fn new(name: impl Into<String>, program: impl Into<OsString>) -> Self {
        Spec {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            native_binding: None,
            keep_stdin: false,
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
    /// Host wall-clock arrival time, seconds since the epoch.
    pub time_s: f64,
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
    NotFound { program: String },
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
}

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .finish()
    }
}

/// Starts `spec` on a new supervision thread. Returns once the child exists (or failed to).
pub fn spawn(spec: &Spec, hooks: Hooks) -> Result<Child, SpawnError> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        cond: Condvar::new(),
        stderr: Mutex::new(VecDeque::new()),
    });
    let (pid_tx, pid_rx) = bounded::<Result<(u32, Option<ChildStdin>), io::Error>>(1);
    let thread_shared = Arc::clone(&shared);
    let thread_spec = spec.clone();
    let program = spec.program.to_string_lossy().into_owned();
    thread::Builder::new()
        .name(spec.name.clone())
        .spawn(move || supervise(thread_spec, hooks, thread_shared, pid_tx))
        .map_err(|source| SpawnError::Io {
            program: program.clone(),
            source,
        })?;
    match pid_rx.recv() {
        Ok(Ok((pid, stdin))) => Ok(Child {
            pid,
            name: spec.name.clone(),
            shared,
            stdin: Mutex::new(stdin),
        }),
        Ok(Err(source)) if source.kind() == io::ErrorKind::NotFound => {
            Err(SpawnError::NotFound { program })
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
    hooks: Hooks,
    shared: Arc<Shared>,
    pid_tx: crossbeam_channel::Sender<Result<(u32, Option<ChildStdin>), io::Error>>,
) {
    let Hooks {
        on_stdout_line,
        on_stderr_line,
        on_exit,
    } = hooks;
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .stdin(if spec.keep_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: getpid is async-signal-safe; the value is read before fork.
    let parent = unsafe { libc::getpid() };
    let binding = spec.native_binding.clone().map(|b| b.prepare());
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe system
    // calls (prctl, getppid, sched_setaffinity, set_mempolicy) on data prepared before fork;
    // it does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect: then nobody would kill us.
            if libc::getppid() != parent {
                return Err(io::Error::other("parent exited during spawn"));
            }
            if let Some(b) = &binding {
                b.apply()?;
            }
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = pid_tx.send(Err(e));
            return;
        }
    };
    let pid = child.id();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();

    let (out_done_tx, out_done_rx) = bounded::<()>(1);
    let out_thread = stdout.and_then(|out| {
        thread::Builder::new()
            .name(format!("{}-out", spec.name))
            .spawn(move || {
                read_lines(out, on_stdout_line);
                drop(out_done_tx);
            })
            .ok()
    });
    let err_shared = Arc::clone(&shared);
    let (err_done_tx, err_done_rx) = bounded::<()>(1);
    let err_thread = stderr.and_then(|err| {
        thread::Builder::new()
            .name(format!("{}-err", spec.name))
            .spawn(move || {
                let mut on_line = on_stderr_line;
                read_lines(
                    err,
                    Box::new(move |line: OutputLine| {
                        if let Some(cb) = on_line.as_mut() {
                            cb(&line.text);
                        }
                        let mut tail = err_shared.stderr.lock().unwrap_or_else(|e| e.into_inner());
                        if tail.len() == STDERR_TAIL_LINES {
                            tail.pop_front();
                        }
                        tail.push_back(line.text);
                    }),
                );
                drop(err_done_tx);
            })
            .ok()
    });
    let _ = pid_tx.send(Ok((pid, stdin)));

    wait_exited_unreaped(pid);
    {
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.exited = true;
    }
    let status = loop {
        match child.wait() {
            Ok(s) => break Some(s),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break None,
        }
    };
    let exit = status.map(Exit::from_status).unwrap_or(Exit {
        status: -1,
        signal: None,
        time_s: gp_records::now_s(),
    });
    // Deliver every line before the exit. The readers end at EOF, which comes with the exit
    // unless a grandchild holds the pipes open; that must not stall us, hence the bound.
    let grace = Duration::from_secs(2);
    for (done, reader) in [(out_done_rx, out_thread), (err_done_rx, err_thread)] {
        // The reader drops its sender when done: Disconnected at once, or Timeout after grace.
        let _ = done.recv_timeout(grace);
        if let Some(t) = reader.filter(|t| t.is_finished()) {
            let _ = t.join();
        }
    }
    {
        let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.exit = Some(exit);
        shared.cond.notify_all();
    }
    if let Some(cb) = on_exit {
        cb(exit);
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

fn read_lines(stream: impl Read, mut on_line: Box<dyn FnMut(OutputLine) + Send + '_>) {
    let mut reader = BufReader::with_capacity(16 * 1024, stream);
    let mut buf = Vec::with_capacity(256);
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
        let time_s = gp_records::now_s();
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        on_line(OutputLine {
            text: String::from_utf8_lossy(&buf).into_owned(),
            time_s,
        });
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
        let script = "trap 'exit 7' TERM; echo ready; while :; do sleep 0.05; done";
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
    fn dropping_kills_the_child() {
        let child = spawn(&sh("exec sleep 1000"), Hooks::discard()).unwrap();
        let pid = child.pid();
        drop(child);
        // Reaped by the drop: the pid is no longer our child.
        // SAFETY: kill with signal 0 only checks existence.
        let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
        assert!(!alive || !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists());
    }

    #[test]
    fn child_leads_its_own_process_group() {
        let child = spawn(&sh("exec sleep 1000"), Hooks::discard()).unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.pid())).unwrap();
        let after_comm = stat.rsplit_once(')').unwrap().1;
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        // Fields after the command: state ppid pgrp ...
        assert_eq!(
            fields[2],
            child.pid().to_string(),
            "child must lead its own process group"
        );
        child.kill_and_reap();
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
