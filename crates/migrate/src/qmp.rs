//! A QMP session for driving a migration, on top of the `qapi` crate's synchronous client.
//!
//! `qapi` does the framing, the greeting and `qmp_capabilities`. The commands gp-migrate needs
//! verbatim (`query-migrate`, the capability and parameter setters, ...) are issued through small
//! command types whose arguments and replies are [`serde_json::Value`], so fields, enum values and
//! capabilities newer than the schema `qapi` was generated from pass through untouched.
//!
//! Every read has a timeout, so no call waits forever; events that arrive while a reply is
//! awaited are collected with their QEMU timestamps and handed out by [`Session::take_events`].
//! An event `qapi` cannot decode (one newer than its schema) is counted and skipped instead of
//! failing the command. A session given the signal channel ([`Session::connect_interruptible`])
//! waits in short slices and gives up as soon as a signal is pending, so a QEMU that stops
//! answering never makes gp-migrate deaf to Ctrl-C for the whole timeout.

use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qapi::{Command, ExecuteError, Qmp, Stream};
use serde::Serialize;
use serde_json::{json, Value};
use thiserror::Error;

/// Most undecodable lines skipped while waiting for one reply before giving up.
const MAX_SKIPPED_LINES: u32 = 1000;

/// A QMP call went wrong.
#[derive(Debug, Error)]
pub enum QmpError {
    #[error("cannot connect to QMP socket {path} within {waited_s:.1} s: {source}")]
    Connect {
        path: PathBuf,
        waited_s: f64,
        #[source]
        source: io::Error,
    },
    #[error("QMP handshake on {path} failed: {message}")]
    Handshake { path: PathBuf, message: String },
    /// QEMU answered the command with an error.
    #[error("{command}: QEMU said: {desc}")]
    Command { command: &'static str, desc: String },
    #[error("{command}: no reply from QEMU within {timeout_s:.1} s")]
    Timeout {
        command: &'static str,
        timeout_s: f64,
    },
    #[error("{command}: QMP connection closed (QEMU exited?)")]
    Closed { command: &'static str },
    #[error("{command}: QMP I/O error: {source}")]
    Io {
        command: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{command}: not sent: the QMP connection was lost earlier ({earlier})")]
    Broken {
        command: &'static str,
        earlier: String,
    },
    /// A signal arrived while the reply was awaited; the session is given up.
    #[error("{command}: interrupted by a signal while waiting for QEMU's reply")]
    Interrupted { command: &'static str },
}

impl QmpError {
    /// Whether the connection is unusable after this error (as opposed to QEMU refusing one
    /// command).
    pub fn is_connection_lost(&self) -> bool {
        !matches!(self, QmpError::Command { .. })
    }
}

/// A QMP event as QEMU sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Host time it was read, seconds since the epoch.
    pub time_s: f64,
    pub name: String,
    /// QEMU's timestamp, seconds since the epoch.
    pub qemu_time_s: f64,
    pub data: Value,
}

/// A command whose arguments and reply are untyped JSON.
pub trait RawCommand {
    const NAME: &'static str;
}

macro_rules! raw_commands {
    ($($(#[$doc:meta])* $ty:ident = $name:literal;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Serialize)]
            #[serde(transparent)]
            pub struct $ty(pub Value);

            impl Command for $ty {
                type Ok = Value;
                const NAME: &'static str = $name;
                const ALLOW_OOB: bool = false;
            }
        )*
    };
}

/// QMP commands gp-migrate issues, each taking its arguments as a JSON object.
pub mod cmd {
    use super::*;

    raw_commands! {
        QueryVersion = "query-version";
        QueryStatus = "query-status";
        QueryKvm = "query-kvm";
        QueryQmpSchema = "query-qmp-schema";
        QueryMigrate = "query-migrate";
        QueryMigrateCapabilities = "query-migrate-capabilities";
        QueryMigrateParameters = "query-migrate-parameters";
        MigrateSetCapabilities = "migrate-set-capabilities";
        MigrateSetParameters = "migrate-set-parameters";
        MigrateIncoming = "migrate-incoming";
        Migrate = "migrate";
        MigrateStartPostcopy = "migrate-start-postcopy";
        MigrateCancel = "migrate_cancel";
        Stop = "stop";
        Cont = "cont";
        Quit = "quit";
    }

    /// An empty argument object.
    pub fn no_args() -> Value {
        json!({})
    }
}

type Transport = Qmp<Stream<BufReader<SliceReader>, UnixStream>>;

/// How long one wait for data lasts before a pending signal is looked for.
const READ_SLICE: Duration = Duration::from_millis(100);
/// Once a signal is pending, how much longer a reply is waited for.
const SIGNAL_GRACE: Duration = Duration::from_secs(1);

/// The read side of a connection: each read waits up to `timeout` for data, in slices of
/// [`READ_SLICE`], and at most [`SIGNAL_GRACE`] more once a signal is pending on `interrupt`.
/// A read that returns nothing consumes nothing, so only a timeout or an interruption (after
/// which the session is given up) can cut a line short.
struct SliceReader {
    stream: UnixStream,
    timeout: Duration,
    interrupt: Option<crossbeam_channel::Receiver<i32>>,
}

/// The error a [`SliceReader`] returns when a signal is pending.
#[derive(Debug, Error)]
#[error("interrupted by a signal")]
struct SignalPending;

impl Read for SliceReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut deadline = Instant::now() + self.timeout;
        let mut hurried = false;
        loop {
            // A signal gives the reply a little longer, not the whole timeout: a QEMU that is
            // working answers at once, and its session stays usable (the cleanup after the
            // signal needs it); one that is stuck is given up.
            if !hurried && self.interrupt.as_ref().is_some_and(|r| !r.is_empty()) {
                hurried = true;
                deadline = deadline.min(Instant::now() + SIGNAL_GRACE);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(if hurried {
                    io::Error::other(SignalPending)
                } else {
                    io::Error::from(io::ErrorKind::TimedOut)
                });
            }
            self.stream.set_read_timeout(Some(left.min(READ_SLICE)))?;
            match self.stream.read(buf) {
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

fn is_signal_pending(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<SignalPending>())
}

/// One QMP connection.
pub struct Session {
    path: PathBuf,
    qmp: Transport,
    timeout: Duration,
    events: Vec<Event>,
    /// Lines that were neither a reply nor an event `qapi` could decode.
    skipped_lines: u64,
    /// Set once the connection is unusable; later calls fail at once.
    broken: Option<String>,
    /// What QEMU said in its greeting.
    greeting_version: Value,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("path", &self.path)
            .field("broken", &self.broken)
            .finish()
    }
}

impl Session {
    /// Connects to a QMP unix socket, retrying until `connect_deadline` (the socket may not be
    /// listening yet, or another client may still hold it), then does the handshake. Every read
    /// afterwards times out after `timeout`.
    pub fn connect(
        path: &Path,
        connect_deadline: Instant,
        timeout: Duration,
    ) -> Result<Session, QmpError> {
        Session::connect_interruptible(path, connect_deadline, timeout, None)
    }

    /// Like [`Session::connect`]; every wait for QEMU (the connection, the greeting, each reply)
    /// also ends as soon as a signal is pending on `interrupt` (without taking it), with
    /// [`QmpError::Interrupted`], after which the session is unusable.
    pub fn connect_interruptible(
        path: &Path,
        connect_deadline: Instant,
        timeout: Duration,
        interrupt: Option<crossbeam_channel::Receiver<i32>>,
    ) -> Result<Session, QmpError> {
        let started = Instant::now();
        let pending = || interrupt.as_ref().is_some_and(|r| !r.is_empty());
        let stream = loop {
            // Never a blocking connect: a QEMU that does not accept would hold it forever.
            match gp_qemu::qmp::connect_unix(path) {
                Ok(s) => break s,
                Err(_) if pending() => return Err(QmpError::Interrupted { command: "connect" }),
                Err(e) if Instant::now() >= connect_deadline => {
                    return Err(QmpError::Connect {
                        path: path.to_path_buf(),
                        waited_s: started.elapsed().as_secs_f64(),
                        source: e,
                    })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let handshake_err = |message: String| QmpError::Handshake {
            path: path.to_path_buf(),
            message,
        };
        // The greeting must come before the deadline too; QEMU sends it only to the first client.
        let greeting_timeout = connect_deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1))
            .min(timeout);
        stream
            .set_write_timeout(Some(timeout))
            .map_err(|e| handshake_err(e.to_string()))?;
        let reader = SliceReader {
            stream: stream
                .try_clone()
                .map_err(|e| handshake_err(e.to_string()))?,
            timeout: greeting_timeout,
            interrupt,
        };
        let mut qmp = Qmp::new(Stream::new(BufReader::new(reader), stream));
        // qapi's greeting reader panics at end of input: make sure there is a line to read.
        match qmp.inner_mut().fill_buf() {
            Ok([]) => {
                return Err(handshake_err(
                    "QEMU closed the connection before its greeting".into(),
                ))
            }
            Ok(_) => {}
            Err(e) if is_signal_pending(&e) => {
                return Err(QmpError::Interrupted {
                    command: "greeting",
                })
            }
            Err(e) if is_timeout(&e) => {
                return Err(handshake_err(format!(
                    "no greeting within {:.1} s (is another client connected?)",
                    greeting_timeout.as_secs_f64()
                )))
            }
            Err(e) => return Err(handshake_err(format!("reading the greeting: {e}"))),
        }
        let greeting = match qmp.read_capabilities() {
            Ok(g) => g,
            Err(e) if is_signal_pending(&e) => {
                return Err(QmpError::Interrupted {
                    command: "greeting",
                })
            }
            Err(e) if is_timeout(&e) => {
                return Err(handshake_err(format!(
                    "no greeting within {:.1} s (is another client connected?)",
                    greeting_timeout.as_secs_f64()
                )))
            }
            Err(e) => return Err(handshake_err(format!("reading the greeting: {e}"))),
        };
        let greeting_version = serde_json::to_value(&greeting.version).unwrap_or(Value::Null);
        qmp.inner_mut().get_mut_read().get_mut().timeout = timeout;
        let mut session = Session {
            path: path.to_path_buf(),
            qmp,
            timeout,
            events: Vec::new(),
            skipped_lines: 0,
            broken: None,
            greeting_version,
        };
        match session.call(&qapi::qmp::qmp_capabilities { enable: None }) {
            Ok(_) => Ok(session),
            Err(e @ QmpError::Interrupted { .. }) => Err(e),
            Err(e) => Err(handshake_err(e.to_string())),
        }
    }

    /// Changes how long each reply may take from now on.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
        self.qmp.inner_mut().get_mut_read().get_mut().timeout = timeout;
    }

    /// The socket this session is connected to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// QEMU's version as its greeting gave it (`{"qemu": {"major": 10, ...}, "package": ...}`).
    pub fn greeting_version(&self) -> &Value {
        &self.greeting_version
    }

    /// Why the connection is unusable, if it is.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Lines skipped because `qapi` could not decode them (events newer than its schema).
    pub fn skipped_lines(&self) -> u64 {
        self.skipped_lines
    }

    /// Runs a command and returns its reply. Events that arrive meanwhile are kept for
    /// [`Session::take_events`].
    pub fn call<C: Command>(&mut self, command: &C) -> Result<C::Ok, QmpError> {
        if let Some(earlier) = &self.broken {
            return Err(QmpError::Broken {
                command: C::NAME,
                earlier: earlier.clone(),
            });
        }
        let result = self.exchange(command);
        self.collect_events();
        if let Err(e) = &result {
            if e.is_connection_lost() {
                self.broken = Some(e.to_string());
            }
        }
        result
    }

    fn exchange<C: Command>(&mut self, command: &C) -> Result<C::Ok, QmpError> {
        let name = C::NAME;
        self.qmp
            .write_command(command)
            .map_err(|e| self.io_error(name, e))?;
        let mut skipped = 0;
        loop {
            match self.qmp.read_response::<&C>() {
                Ok(reply) => return Ok(reply),
                Err(ExecuteError::Qapi(e)) => {
                    return Err(QmpError::Command {
                        command: name,
                        desc: e.desc,
                    })
                }
                // A line qapi could not decode: an event or an enum value newer than its schema.
                // The line is consumed; keep waiting for the reply.
                Err(ExecuteError::Io(e))
                    if e.kind() == io::ErrorKind::InvalidData && skipped < MAX_SKIPPED_LINES =>
                {
                    skipped += 1;
                    self.skipped_lines += 1;
                    self.collect_events();
                }
                Err(ExecuteError::Io(e)) => return Err(self.io_error(name, e)),
            }
        }
    }

    fn io_error(&self, command: &'static str, e: io::Error) -> QmpError {
        if is_signal_pending(&e) {
            QmpError::Interrupted { command }
        } else if is_timeout(&e) {
            QmpError::Timeout {
                command,
                timeout_s: self.timeout.as_secs_f64(),
            }
        } else if matches!(
            e.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
        ) {
            QmpError::Closed { command }
        } else {
            QmpError::Io { command, source: e }
        }
    }

    fn collect_events(&mut self) {
        let now = gp_records::now_s();
        for event in self.qmp.events() {
            if let Some(e) = event_from_qapi(&event, now) {
                self.events.push(e);
            }
        }
    }

    /// Events read so far, oldest first; the queue is emptied.
    pub fn take_events(&mut self) -> Vec<Event> {
        self.collect_events();
        std::mem::take(&mut self.events)
    }

    /// Runs a command with a JSON argument object (`{}` for none).
    pub fn run<C: Command<Ok = Value>>(
        &mut self,
        make: fn(Value) -> C,
        args: Value,
    ) -> Result<Value, QmpError> {
        self.call(&make(args))
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Turns a decoded `qapi` event back into its wire form (`event`, `data`, `timestamp`).
fn event_from_qapi(event: &qapi::qmp::Event, now: f64) -> Option<Event> {
    let v = serde_json::to_value(event).ok()?;
    let name = v.get("event")?.as_str()?.to_string();
    let ts = v.get("timestamp");
    let secs = ts
        .and_then(|t| t.get("seconds"))
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let micros = ts
        .and_then(|t| t.get("microseconds"))
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let data = match v.get("data") {
        Some(Value::Null) | None => json!({}),
        Some(d) => d.clone(),
    };
    Some(Event {
        time_s: now,
        name,
        qemu_time_s: secs + micros / 1e6,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, Write};
    use std::os::unix::net::UnixListener;
    use std::thread;

    /// What the fake QEMU does after the greeting and `qmp_capabilities`.
    #[derive(Clone, Copy)]
    enum Script {
        /// Replies to each command with `{"return": {"echo": NAME}}`, sending a MIGRATION event,
        /// an event unknown to qapi's schema, and a MIGRATION_PASS before each reply.
        Echo,
        /// Reads commands and never answers.
        Silent,
        /// Closes the connection on the first command.
        Drop,
        /// Answers every command with a QMP error.
        Refuse,
    }

    fn fake_qemu(
        script: Script,
        greet: bool,
    ) -> (tempfile::TempDir, PathBuf, thread::JoinHandle<()>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let handle = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut out = stream.try_clone().unwrap();
            let mut lines = io::BufReader::new(stream).lines();
            if !greet {
                // Say nothing for a while, then hang up.
                thread::sleep(Duration::from_millis(1500));
                return;
            }
            writeln!(out, r#"{{"QMP": {{"version": {{"qemu": {{"micro": 2, "minor": 0, "major": 10}}, "package": ""}}, "capabilities": ["oob"]}}}}"#).unwrap();
            let first = lines.next().unwrap().unwrap();
            assert!(first.contains("qmp_capabilities"), "{first}");
            writeln!(out, r#"{{"return": {{}}}}"#).unwrap();
            while let Some(Ok(line)) = lines.next() {
                let v: Value = serde_json::from_str(&line).unwrap();
                let name = v["execute"].as_str().unwrap().to_string();
                match script {
                    Script::Echo => {
                        let ts = r#""timestamp": {"seconds": 1700000000, "microseconds": 250000}"#;
                        writeln!(
                            out,
                            r#"{{"event": "MIGRATION", "data": {{"status": "active"}}, {ts}}}"#
                        )
                        .unwrap();
                        writeln!(
                            out,
                            r#"{{"event": "SOMETHING_FROM_QEMU_99", "data": {{}}, {ts}}}"#
                        )
                        .unwrap();
                        writeln!(
                            out,
                            r#"{{"event": "MIGRATION_PASS", "data": {{"pass": 2}}, {ts}}}"#
                        )
                        .unwrap();
                        writeln!(
                            out,
                            r#"{{"return": {{"echo": "{name}", "args": {}}}}}"#,
                            v["arguments"]
                        )
                        .unwrap();
                    }
                    Script::Silent => {}
                    Script::Drop => return,
                    Script::Refuse => {
                        writeln!(out, r#"{{"error": {{"class": "GenericError", "desc": "no {name} for you"}}}}"#).unwrap();
                    }
                }
            }
        });
        (dir, path, handle)
    }

    fn connect(path: &Path, timeout_ms: u64) -> Result<Session, QmpError> {
        Session::connect(
            path,
            Instant::now() + Duration::from_secs(2),
            Duration::from_millis(timeout_ms),
        )
    }

    #[test]
    fn replies_and_events_pass_through_verbatim() {
        let (_dir, path, handle) = fake_qemu(Script::Echo, true);
        let mut s = connect(&path, 2000).unwrap();
        assert_eq!(s.greeting_version()["qemu"]["major"], 10);
        let reply = s
            .run(cmd::MigrateSetParameters, json!({"some-new-knob": 7}))
            .unwrap();
        assert_eq!(reply["echo"], "migrate-set-parameters");
        assert_eq!(reply["args"]["some-new-knob"], 7);
        let events = s.take_events();
        let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["MIGRATION", "MIGRATION_PASS"]);
        assert_eq!(events[0].data["status"], "active");
        assert_eq!(events[1].data["pass"], 2);
        assert!((events[0].qemu_time_s - 1_700_000_000.25).abs() < 1e-6);
        assert_eq!(
            s.skipped_lines(),
            1,
            "the unknown event is skipped, not fatal"
        );
        assert!(s.take_events().is_empty());
        drop(s);
        handle.join().unwrap();
    }

    #[test]
    fn a_reply_that_never_comes_is_a_timeout_and_breaks_the_session() {
        let (_dir, path, _handle) = fake_qemu(Script::Silent, true);
        let mut s = connect(&path, 300).unwrap();
        let started = Instant::now();
        let err = s.run(cmd::QueryMigrate, cmd::no_args()).unwrap_err();
        assert!(
            matches!(
                err,
                QmpError::Timeout {
                    command: "query-migrate",
                    ..
                }
            ),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        let again = s.run(cmd::QueryMigrate, cmd::no_args()).unwrap_err();
        assert!(matches!(again, QmpError::Broken { .. }), "{again}");
        assert!(
            again
                .to_string()
                .contains("no reply from QEMU within 0.3 s"),
            "{again}"
        );
    }

    #[test]
    fn a_dropped_connection_is_reported_as_closed() {
        let (_dir, path, handle) = fake_qemu(Script::Drop, true);
        let mut s = connect(&path, 2000).unwrap();
        let err = s.run(cmd::QueryMigrate, cmd::no_args()).unwrap_err();
        assert!(matches!(err, QmpError::Closed { .. }), "{err}");
        assert!(err.is_connection_lost());
        handle.join().unwrap();
    }

    #[test]
    fn qemu_errors_keep_the_session_usable() {
        let (_dir, path, _handle) = fake_qemu(Script::Refuse, true);
        let mut s = connect(&path, 2000).unwrap();
        let err = s
            .run(cmd::Migrate, json!({"uri": "unix:/nowhere"}))
            .unwrap_err();
        assert_eq!(err.to_string(), "migrate: QEMU said: no migrate for you");
        assert!(!err.is_connection_lost());
        let err = s.run(cmd::Cont, cmd::no_args()).unwrap_err();
        assert!(matches!(
            err,
            QmpError::Command {
                command: "cont",
                ..
            }
        ));
    }

    #[test]
    fn a_pending_signal_ends_a_wait_for_a_reply_long_before_the_timeout() {
        let (_dir, path, _handle) = fake_qemu(Script::Silent, true);
        let (signal, signals) = crossbeam_channel::unbounded();
        let mut s = Session::connect_interruptible(
            &path,
            Instant::now() + Duration::from_secs(5),
            Duration::from_secs(60),
            Some(signals.clone()),
        )
        .unwrap();
        signal.send(2).unwrap();
        let started = Instant::now();
        let err = s.run(cmd::QueryMigrate, cmd::no_args()).unwrap_err();
        assert!(
            matches!(
                err,
                QmpError::Interrupted {
                    command: "query-migrate"
                }
            ),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        // The signal is left for the caller, and the session is given up.
        assert_eq!(signals.len(), 1);
        assert!(s.broken().is_some());
    }

    #[test]
    fn a_pending_signal_ends_a_wait_for_the_greeting() {
        let (_dir, path, _handle) = fake_qemu(Script::Echo, false);
        let (signal, signals) = crossbeam_channel::unbounded();
        signal.send(15).unwrap();
        let started = Instant::now();
        let err = Session::connect_interruptible(
            &path,
            Instant::now() + Duration::from_secs(60),
            Duration::from_secs(60),
            Some(signals),
        )
        .unwrap_err();
        assert!(matches!(err, QmpError::Interrupted { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn no_greeting_is_a_handshake_error_before_the_deadline() {
        let (_dir, path, _handle) = fake_qemu(Script::Echo, false);
        let started = Instant::now();
        let err = Session::connect(
            &path,
            Instant::now() + Duration::from_millis(500),
            Duration::from_millis(500),
        )
        .unwrap_err();
        assert!(matches!(err, QmpError::Handshake { .. }), "{err}");
        assert!(err.to_string().contains("no greeting"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn hanging_up_before_the_greeting_is_an_error_not_a_panic() {
        let (_dir, path, handle) = fake_qemu(Script::Echo, false);
        let err = Session::connect(
            &path,
            Instant::now() + Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("closed the connection before its greeting"),
            "{err}"
        );
        handle.join().unwrap();
    }

    #[test]
    fn connecting_to_nothing_gives_up_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.sock");
        let err = Session::connect(
            &path,
            Instant::now() + Duration::from_millis(200),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(err.to_string().contains("absent.sock"), "{err}");
        assert!(matches!(err, QmpError::Connect { .. }));
    }
}
