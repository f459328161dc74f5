//! The one QMP client of guestperf-rs: qapi's synchronous client on a unix socket, with typed
//! commands and replies from qapi's schema, and nothing that can hang.
//!
//! - Connecting never blocks (a QEMU that does not accept fills its backlog; a blocking
//!   connect would then wait forever): attempts are retried until a deadline, and a caller's
//!   condition ("QEMU exited") or a pending signal stops them at once.
//! - Every wait for QEMU (greeting, each reply) has a timeout, per connection
//!   ([`Qmp::set_timeout`]) or per call ([`Qmp::execute_within`]). Given the signal channel
//!   ([`Connector::interrupt`]), a wait notices a pending signal within 100 ms, gives the reply one
//!   more second, then ends with [`QmpError::Interrupted`], leaving the signal for the caller.
//!   A timeout or an interruption can cut a line short, so the connection is then marked broken
//!   and every later call fails at once; reconnect to use the monitor again. A monitor socket
//!   serves one client at a time, which is why gp-launch gives each VM two of them.
//! - Every line QEMU sends is kept as sent: replies ([`Qmp::call`] gives the reply as sent and
//!   qapi's typed view of it, [`Reply`]) and events ([`Qmp::take_events`], with the host time
//!   they were read and QEMU's timestamp). qapi's schema is QEMU 9.1's, users run 7.2 to 10.x:
//!   a reply member it cannot decode is left out of the typed view, not the reply
//!   ([`decode_lenient`]); an event it cannot decode is still an [`Event`]; a reply that does
//!   not fit at all is a [`QmpError::Decode`] holding the reply, and the connection stays usable.
//! - The escape hatch, for what the schema lacks: [`Untyped`] sends a command of qapi's schema
//!   with JSON arguments (a capability or parameter older or newer than the schema), and
//!   [`CapabilityState`] reads capabilities by name.
//!
//! Future calls are one line each: a destination's `query-migrate` is
//! `dst.call(&qmp::query_migrate {})?` (`.raw` for a record, `.typed.postcopy_blocktime` for the
//! figures), a dirty-rate measurement `q.execute(&qmp::calc_dirty_rate { .. })?` then
//! `q.execute(&qmp::query_dirty_rate { calc_time_unit: None })?`.

mod decode;
mod error;
mod event;
mod migration;
mod wire;

#[cfg(test)]
mod tests;

use std::io::{self, BufRead};
use std::marker::PhantomData;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use qapi::{qmp, Command, ExecuteError, Stream};
use serde::Serialize;
use serde_json::Value;

pub use decode::{decode_each, decode_lenient, Reply};
pub use error::QmpError;
pub use event::Event;
pub use migration::{CapabilityState, Untyped};
pub use wire::connect_unix;

use wire::{is_signal_pending, is_timeout, SliceReader, Tap};

/// Most lines skipped while waiting for one reply before giving up on it.
const MAX_SKIPPED_LINES: u32 = 1000;

type Client = qapi::Qmp<Stream<Tap, UnixStream>>;

/// How to connect: see [`Qmp::connector`].
pub struct Connector<'a> {
    path: PathBuf,
    deadline: Instant,
    timeout: Duration,
    interrupt: Option<Receiver<i32>>,
    keep_trying: Box<dyn FnMut() -> Result<(), String> + 'a>,
}

impl<'a> Connector<'a> {
    /// Until when to retry connecting (default: 10 s from now). The greeting must come before
    /// it too, but is given at least a second.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = deadline;
        self
    }

    /// How long each reply may take (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Every wait ends soon after a signal is pending on `signals` (not taken from it).
    pub fn interrupt(mut self, signals: Receiver<i32>) -> Self {
        self.interrupt = Some(signals);
        self
    }

    /// Called between attempts to connect; an `Err(why)` stops them at once.
    pub fn keep_trying(mut self, check: impl FnMut() -> Result<(), String> + 'a) -> Self {
        self.keep_trying = Box::new(check);
        self
    }

    /// Connects, reads the greeting and negotiates capabilities.
    pub fn connect(mut self) -> Result<Qmp, QmpError> {
        let path = self.path.clone();
        let started = Instant::now();
        let pending = |i: &Option<Receiver<i32>>| i.as_ref().is_some_and(|r| !r.is_empty());
        let mut pause = Duration::from_millis(2);
        let stream = loop {
            match connect_unix(&path) {
                Ok(s) => break s,
                Err(e) => {
                    if pending(&self.interrupt) {
                        return Err(QmpError::Interrupted { command: "connect" });
                    }
                    if let Err(why) = (self.keep_trying)() {
                        return Err(QmpError::ConnectAborted { path, why });
                    }
                    let now = Instant::now();
                    if now >= self.deadline {
                        return Err(QmpError::Connect {
                            path,
                            waited_s: (now - started).as_secs_f64(),
                            source: e,
                        });
                    }
                    // A socket that does not exist yet has no event to wait on.
                    std::thread::sleep(pause.min(self.deadline - now));
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
            }
        };
        let greeting_timeout = self
            .deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1))
            .min(self.timeout);
        Qmp::negotiate(
            stream,
            path,
            greeting_timeout,
            self.timeout,
            self.interrupt.take(),
        )
    }
}

/// A connected, negotiated QMP monitor.
pub struct Qmp {
    client: Client,
    path: PathBuf,
    greeting: qmp::QMP,
    timeout: Duration,
    events: Vec<Event>,
    /// Lines that were neither a reply nor an event.
    unreadable: u64,
    /// Set once the connection is unusable: why.
    broken: Option<String>,
}

impl std::fmt::Debug for Qmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qmp")
            .field("path", &self.path)
            .field("broken", &self.broken)
            .finish()
    }
}

/// `C`'s reply read as JSON, as QEMU sent it: qapi decodes a reply as the `Ok` type of the
/// command type it is given.
#[derive(Serialize)]
struct AsSent<C>(PhantomData<C>);

impl<C: Command> Command for AsSent<C> {
    type Ok = Value;
    const NAME: &'static str = C::NAME;
    const ALLOW_OOB: bool = C::ALLOW_OOB;
}

impl Qmp {
    /// Connects to `path`, retrying until `deadline`; each reply may take `timeout`.
    pub fn connect(path: &Path, deadline: Instant, timeout: Duration) -> Result<Qmp, QmpError> {
        Qmp::connector(path)
            .deadline(deadline)
            .timeout(timeout)
            .connect()
    }

    /// A connection with options: `Qmp::connector(path).deadline(..).interrupt(..).connect()`.
    pub fn connector<'a>(path: &Path) -> Connector<'a> {
        Connector {
            path: path.to_path_buf(),
            deadline: Instant::now() + Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            interrupt: None,
            keep_trying: Box::new(|| Ok(())),
        }
    }

    fn negotiate(
        stream: UnixStream,
        path: PathBuf,
        greeting_timeout: Duration,
        timeout: Duration,
        interrupt: Option<Receiver<i32>>,
    ) -> Result<Qmp, QmpError> {
        let greeting_error = |e: io::Error| {
            if is_signal_pending(&e) {
                QmpError::Interrupted {
                    command: "greeting",
                }
            } else if is_timeout(&e) {
                QmpError::NoGreeting {
                    path: path.clone(),
                    timeout_s: greeting_timeout.as_secs_f64(),
                }
            } else {
                QmpError::Greeting {
                    path: path.clone(),
                    source: e,
                }
            }
        };
        stream
            .set_write_timeout(Some(timeout))
            .map_err(greeting_error)?;
        let reader = SliceReader {
            stream: stream.try_clone().map_err(greeting_error)?,
            timeout: greeting_timeout,
            interrupt,
        };
        let mut client: Client = qapi::Qmp::new(Stream::new(Tap::new(reader), stream));
        // qapi's greeting reader panics at the end of input: make sure there is a line to read.
        match client.inner_mut().fill_buf() {
            Ok([]) => {
                return Err(greeting_error(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "QEMU closed the connection before its greeting",
                )))
            }
            Ok(_) => {}
            Err(e) => return Err(greeting_error(e)),
        }
        let greeting = client.read_capabilities().map_err(greeting_error)?;
        client.inner_mut().get_mut_read().reader_mut().timeout = timeout;
        let mut q = Qmp {
            client,
            path: path.clone(),
            greeting,
            timeout,
            events: Vec::new(),
            unreadable: 0,
            broken: None,
        };
        // The greeting line is neither a reply nor an event.
        q.client.inner_mut().get_mut_read().take_lines();
        match q.execute(&qmp::qmp_capabilities { enable: None }) {
            Ok(_) => Ok(q),
            Err(e) if e.is_interrupted() => Err(e),
            Err(e) => Err(QmpError::Negotiation {
                path,
                source: Box::new(e),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The greeting QEMU sent: its version and capabilities.
    pub fn greeting(&self) -> &qmp::QMP {
        &self.greeting
    }

    /// QEMU's version, from its greeting.
    pub fn version(&self) -> crate::binary::QemuVersion {
        crate::binary::QemuVersion::from_qmp(&self.greeting.version)
    }

    /// Changes how long each reply may take from now on.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
        self.reader().timeout = timeout;
    }

    /// Why the connection is unusable, if it is.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Lines QEMU sent that were neither a reply nor an event (counted, not fatal).
    pub fn unreadable_lines(&self) -> u64 {
        self.unreadable
    }

    fn reader(&mut self) -> &mut SliceReader {
        self.client.inner_mut().get_mut_read().reader_mut()
    }

    /// Runs one command: its reply as sent and qapi's typed view of it.
    pub fn call<C: Command>(&mut self, command: &C) -> Result<Reply<C::Ok>, QmpError> {
        let raw = self.execute_raw(command)?;
        match decode_lenient::<C::Ok>(&raw) {
            Ok((typed, undecoded)) => Ok(Reply {
                raw,
                typed,
                undecoded,
            }),
            Err(source) => Err(QmpError::Decode {
                command: C::NAME,
                reply: raw,
                source,
            }),
        }
    }

    /// Runs one command and returns qapi's typed view of its reply.
    pub fn execute<C: Command>(&mut self, command: &C) -> Result<C::Ok, QmpError> {
        self.call(command).map(|r| r.typed)
    }

    /// [`Qmp::execute`] with its own timeout for this one reply.
    pub fn execute_within<C: Command>(
        &mut self,
        timeout: Duration,
        command: &C,
    ) -> Result<C::Ok, QmpError> {
        let usual = self.timeout;
        self.reader().timeout = timeout;
        self.timeout = timeout;
        let result = self.execute(command);
        self.set_timeout(usual);
        result
    }

    /// Runs one command and returns its reply as QEMU sent it.
    pub fn execute_raw<C: Command>(&mut self, command: &C) -> Result<Value, QmpError> {
        if let Some(earlier) = &self.broken {
            return Err(QmpError::Broken {
                command: C::NAME,
                earlier: earlier.clone(),
            });
        }
        let result = self.exchange(command);
        self.collect_lines();
        if let Err(e) = &result {
            if e.is_connection_lost() {
                self.broken = Some(gp_stage::error_chain(e));
            }
        }
        result
    }

    fn exchange<C: Command>(&mut self, command: &C) -> Result<Value, QmpError> {
        let name = C::NAME;
        self.client
            .write_command(command)
            .map_err(|e| self.io_error(name, e))?;
        let mut skipped = 0;
        loop {
            match self.client.read_response::<AsSent<C>>() {
                Ok(reply) => return Ok(reply),
                Err(ExecuteError::Qapi(e)) => {
                    return Err(QmpError::Command {
                        command: name,
                        class: format!("{:?}", e.class),
                        desc: e.desc,
                    })
                }
                // A whole line qapi could not decode (an event newer than its schema): the tap
                // kept it. It may be the reply itself (an error class qapi does not know).
                Err(ExecuteError::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                    ) && !self.client.inner_mut().get_mut_read().eof
                        && skipped < MAX_SKIPPED_LINES =>
                {
                    skipped += 1;
                    if let Some(reply) = self.collect_lines() {
                        return reply.into_result(name);
                    }
                }
                Err(ExecuteError::Io(e)) => return Err(self.io_error(name, e)),
            }
        }
    }

    /// Sorts the lines read so far: events are queued, unreadable lines counted. Returns the
    /// last reply among them that qapi could not decode, if any.
    fn collect_lines(&mut self) -> Option<OddReply> {
        let mut odd = None;
        for line in self.client.inner_mut().get_mut_read().take_lines() {
            if let Some(event) = Event::from_line(&line.text, line.time_s) {
                self.events.push(event);
            } else if let Ok(reply) = serde_json::from_slice::<OddReply>(&line.text) {
                odd = Some(reply);
            } else {
                self.unreadable += 1;
            }
        }
        // qapi queues the events it could decode too; the tap has them all, as sent.
        self.client.events().for_each(drop);
        odd
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

    /// Events read so far, oldest first; the queue is emptied.
    pub fn take_events(&mut self) -> Vec<Event> {
        self.collect_lines();
        std::mem::take(&mut self.events)
    }

    /// After QEMU has exited or while it closes: reads what is left on the socket (for at most
    /// a second) so the events QEMU sent last (`SHUTDOWN`, ...) land in [`Qmp::take_events`].
    /// The connection is unusable afterwards.
    pub fn drain_after_exit(&mut self) {
        self.reader().timeout = Duration::from_secs(1);
        for _ in 0..10_000 {
            // Stops at the end of input, an error or a reply; queues every event it meets.
            match self.client.read_response::<AsSent<qmp::query_status>>() {
                Err(ExecuteError::Io(e)) if e.kind() == io::ErrorKind::InvalidData => continue,
                _ => break,
            }
        }
        self.collect_lines();
        self.broken
            .get_or_insert_with(|| "drained after QEMU exited".into());
    }

    /// `query-status`: the VM's run state.
    pub fn query_status(&mut self) -> Result<qmp::StatusInfo, QmpError> {
        self.execute(&qmp::query_status {})
    }

    /// `query-version`.
    pub fn query_version(&mut self) -> Result<qmp::VersionInfo, QmpError> {
        self.execute(&qmp::query_version {})
    }

    /// `query-cpus-fast`: host thread ids of the vCPUs, in vCPU index order.
    pub fn vcpu_thread_ids(&mut self) -> Result<Vec<u32>, QmpError> {
        let cpus = self.execute(&qmp::query_cpus_fast {})?;
        let mut ids: Vec<(i64, u32)> = cpus
            .iter()
            .map(|c| {
                let base = cpu_base(c);
                (
                    base.cpu_index,
                    base.thread_id.clamp(0, u32::MAX as i64) as u32,
                )
            })
            .collect();
        ids.sort_unstable();
        Ok(ids.into_iter().map(|(_, tid)| tid).collect())
    }

    /// `quit`. QEMU may hang up before or after answering; both count as success.
    pub fn quit(&mut self) -> Result<(), QmpError> {
        match self.execute(&qmp::quit {}) {
            Ok(_) | Err(QmpError::Closed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A reply qapi could not decode, read without its schema.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum OddReply {
    Return {
        #[serde(rename = "return")]
        value: Value,
    },
    Error {
        error: OddError,
    },
}

#[derive(serde::Deserialize)]
struct OddError {
    #[serde(default)]
    class: String,
    #[serde(default)]
    desc: String,
}

impl OddReply {
    fn into_result(self, command: &'static str) -> Result<Value, QmpError> {
        match self {
            OddReply::Return { value } => Ok(value),
            OddReply::Error { error } => Err(QmpError::Command {
                command,
                class: error.class,
                desc: error.desc,
            }),
        }
    }
}

fn cpu_base(c: &qmp::CpuInfoFast) -> &qmp::CpuInfoFastBase {
    use qmp::CpuInfoFast as C;
    match c {
        C::s390x { base, .. } => base,
        C::aarch64(b)
        | C::alpha(b)
        | C::arm(b)
        | C::avr(b)
        | C::cris(b)
        | C::hppa(b)
        | C::i386(b)
        | C::loongarch64(b)
        | C::m68k(b)
        | C::microblaze(b)
        | C::microblazeel(b)
        | C::mips(b)
        | C::mips64(b)
        | C::mips64el(b)
        | C::mipsel(b)
        | C::or1k(b)
        | C::ppc(b)
        | C::ppc64(b)
        | C::riscv32(b)
        | C::riscv64(b)
        | C::rx(b)
        | C::sh4(b)
        | C::sh4eb(b)
        | C::sparc(b)
        | C::sparc64(b)
        | C::tricore(b)
        | C::x86_64(b)
        | C::xtensa(b)
        | C::xtensaeb(b) => b,
    }
}
