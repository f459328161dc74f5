//! QMP connections that never hang: qapi's synchronous client on a unix socket with a read
//! timeout, connected with retries until a deadline.
//!
//! qapi queues the QMP events that arrive while it waits for a command's answer; they are
//! available from [`Qmp::take_events`]. A read that times out leaves the connection in an
//! unknown state (half a line may have been read), so the connection is then marked broken and
//! every later call fails at once; reconnect if you need the monitor again. A monitor socket
//! serves one client at a time, which is why gp-launch gives each VM two of them.

use std::io::{self, BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qapi::qmp;

/// The stream type qapi's client runs on.
pub type QmpStream = qapi::Stream<BufReader<UnixStream>, UnixStream>;

/// Default time a command may take to answer.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A QMP call failed.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("QMP socket {path}: no connection within {waited_s:.1} s ({last})")]
    ConnectTimeout {
        path: PathBuf,
        waited_s: f64,
        last: String,
    },
    #[error("QMP socket {path}: gave up connecting: {why}")]
    ConnectAborted { path: PathBuf, why: String },
    #[error("QMP socket {path}: QEMU closed the connection")]
    Closed { path: PathBuf },
    #[error("QMP socket {path}: no answer to {command} within {timeout_s:.1} s")]
    Timeout {
        path: PathBuf,
        command: String,
        timeout_s: f64,
    },
    #[error("QMP socket {path}: {command}: {source}")]
    Io {
        path: PathBuf,
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("QMP {command} failed: {desc}")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
    #[error("QMP socket {path}: connection unusable after an earlier timeout or error")]
    Broken { path: PathBuf },
}

impl QmpError {
    /// True when QEMU hung up (typically because it is exiting).
    pub fn is_closed(&self) -> bool {
        matches!(self, QmpError::Closed { .. })
    }
}

/// Connects to a unix socket without ever blocking. A listener that does not accept (a stopped
/// or hung QEMU) fills its backlog, and a blocking connect(2) then waits forever; here that is
/// an error (`WouldBlock`) to retry against a deadline like any other.
pub fn connect_unix(path: &Path) -> io::Result<UnixStream> {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a usable unix socket path", path.display()),
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new socket that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: connect(2) with a fully initialized sockaddr_un and its size.
    let rc = unsafe {
        libc::connect(
            fd,
            (&addr as *const libc::sockaddr_un).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let stream = UnixStream::from(owned);
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// A connected, negotiated QMP monitor.
pub struct Qmp {
    client: qapi::Qmp<QmpStream>,
    path: PathBuf,
    greeting: qmp::QMP,
    read_timeout: Duration,
    broken: bool,
}

impl std::fmt::Debug for Qmp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qmp")
            .field("path", &self.path)
            .field("broken", &self.broken)
            .finish()
    }
}

impl Qmp {
    /// Connects to `path`, retrying while the socket does not exist yet or refuses, until
    /// `deadline`. Then reads the greeting and negotiates capabilities, each bounded by
    /// `read_timeout`.
    pub fn connect(
        path: &Path,
        deadline: Instant,
        read_timeout: Duration,
    ) -> Result<Qmp, QmpError> {
        Qmp::connect_while(path, deadline, read_timeout, || Ok(()))
    }

    /// Like [`Qmp::connect`], but calls `keep_trying` between attempts; an `Err(why)` from it
    /// stops at once (e.g. "QEMU exited", "interrupted").
    pub fn connect_while(
        path: &Path,
        deadline: Instant,
        read_timeout: Duration,
        mut keep_trying: impl FnMut() -> Result<(), String>,
    ) -> Result<Qmp, QmpError> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(2);
        let stream = loop {
            match connect_unix(path) {
                Ok(s) => break s,
                Err(e) => {
                    if let Err(why) = keep_trying() {
                        return Err(QmpError::ConnectAborted {
                            path: path.to_path_buf(),
                            why,
                        });
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(QmpError::ConnectTimeout {
                            path: path.to_path_buf(),
                            waited_s: (now - start).as_secs_f64(),
                            last: e.to_string(),
                        });
                    }
                    // Polling a socket that does not exist yet: there is no event to wait on.
                    std::thread::sleep(pause.min(deadline - now));
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
            }
        };
        Qmp::from_stream(stream, path, read_timeout)
    }

    /// Negotiates on an already connected stream.
    pub fn from_stream(
        stream: UnixStream,
        path: &Path,
        read_timeout: Duration,
    ) -> Result<Qmp, QmpError> {
        let io = |command: &str, source: io::Error| map_io(path, command, read_timeout, source);
        stream
            .set_read_timeout(Some(read_timeout))
            .map_err(|e| io("connect", e))?;
        stream
            .set_write_timeout(Some(read_timeout))
            .map_err(|e| io("connect", e))?;
        let reader = stream.try_clone().map_err(|e| io("connect", e))?;
        let mut client = qapi::Qmp::new(qapi::Stream::new(BufReader::new(reader), stream));
        // qapi's greeting reader panics on EOF: make sure there is something to read first.
        // A signal that lands meanwhile (Ctrl-C while a VM boots) interrupts the read: retry, so
        // the caller sees the signal, not an error (BufReader::fill_buf does not retry).
        let empty = loop {
            match client.inner_mut().fill_buf() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other.map(<[u8]>::is_empty),
            }
        };
        match empty {
            Ok(true) => {
                return Err(QmpError::Closed {
                    path: path.to_path_buf(),
                })
            }
            Ok(false) => {}
            Err(e) => return Err(io("greeting", e)),
        }
        let greeting = client
            .handshake()
            .map_err(|e| exec_error(path, "qmp_capabilities", read_timeout, e))?;
        Ok(Qmp {
            client,
            path: path.to_path_buf(),
            greeting,
            read_timeout,
            broken: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The greeting QEMU sent: its version and capabilities.
    pub fn greeting(&self) -> &qmp::QMP {
        &self.greeting
    }

    /// Changes how long a command may take to answer.
    pub fn set_read_timeout(&mut self, timeout: Duration) -> Result<(), QmpError> {
        self.client
            .inner()
            .get_ref_write()
            .set_read_timeout(Some(timeout))
            .map_err(|e| map_io(&self.path, "set_read_timeout", timeout, e))?;
        self.read_timeout = timeout;
        Ok(())
    }

    /// Runs one command and returns its answer.
    pub fn execute<C: qapi::Command>(&mut self, command: &C) -> Result<C::Ok, QmpError> {
        if self.broken {
            return Err(QmpError::Broken {
                path: self.path.clone(),
            });
        }
        let mut result = self.client.execute(command);
        // A line qapi cannot decode (an event newer than its schema) has been consumed whole,
        // so the stream is still in step: keep reading for the answer. Bounded by the read
        // timeout, and by a count in case the answer itself is what cannot be decoded.
        let mut skipped = 0;
        while let Err(qapi::ExecuteError::Io(e)) = &result {
            if e.kind() != io::ErrorKind::InvalidData || skipped == 64 {
                break;
            }
            skipped += 1;
            result = self.client.read_response::<C>();
        }
        result.map_err(|e| {
            let err = exec_error(&self.path, C::NAME, self.read_timeout, e);
            if !matches!(err, QmpError::Command { .. }) {
                self.broken = true;
            }
            err
        })
    }

    /// Events received so far (queued by qapi while waiting for answers).
    pub fn take_events(&mut self) -> Vec<qmp::Event> {
        self.client.events().collect()
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
            Ok(_) => Ok(()),
            Err(QmpError::Closed { .. }) => Ok(()),
            Err(QmpError::Io { source, .. })
                if matches!(
                    source.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// After QEMU has exited: reads what is left on the socket (bounded by the read timeout)
    /// so the events QEMU sent last (`SHUTDOWN`, ...) land in [`Qmp::take_events`].
    pub fn drain_after_exit(&mut self) {
        // Bounded: QEMU has exited or is closing, so EOF comes at once; a short timeout covers
        // the rest. Works on a connection marked broken too: only events are wanted here.
        let _ = self
            .client
            .inner()
            .get_ref_write()
            .set_read_timeout(Some(Duration::from_secs(1)));
        for _ in 0..10_000 {
            // read_response queues every event it meets and stops at EOF, an error or a response.
            match self.client.read_response::<qmp::query_status>() {
                Err(qapi::ExecuteError::Io(e)) if e.kind() == io::ErrorKind::InvalidData => {
                    continue
                }
                _ => break,
            }
        }
        self.broken = true;
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

fn map_io(path: &Path, command: &str, timeout: Duration, source: io::Error) -> QmpError {
    match source.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => QmpError::Timeout {
            path: path.to_path_buf(),
            command: command.to_string(),
            timeout_s: timeout.as_secs_f64(),
        },
        io::ErrorKind::UnexpectedEof => QmpError::Closed {
            path: path.to_path_buf(),
        },
        _ => QmpError::Io {
            path: path.to_path_buf(),
            command: command.to_string(),
            source,
        },
    }
}

fn exec_error(path: &Path, command: &str, timeout: Duration, e: qapi::ExecuteError) -> QmpError {
    match e {
        qapi::ExecuteError::Qapi(err) => QmpError::Command {
            command: command.to_string(),
            class: format!("{:?}", err.class),
            desc: err.desc,
        },
        qapi::ExecuteError::Io(source) => map_io(path, command, timeout, source),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn connecting_to_a_listener_that_never_accepts_never_blocks() {
        use std::os::fd::AsRawFd;
        let dir = crate::runtime::RuntimeDir::new("gp-qmp-test").unwrap();
        let path = dir.path().join("full.sock");
        // A listener with a backlog of 1 that never accepts, like a stopped QEMU's monitor.
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // SAFETY: listen(2) on the listener's own descriptor.
        assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 1) }, 0);
        let _keep = listener;
        let started = std::time::Instant::now();
        let mut held: Vec<UnixStream> = Vec::new();
        let mut refused = 0;
        // Past the backlog a blocking connect would hang.
        for _ in 0..20 {
            match connect_unix(&path) {
                Ok(s) => held.push(s),
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
                    refused += 1;
                }
            }
        }
        assert!(refused > 0, "the backlog never filled");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(connect_unix(&dir.path().join("none.sock")).is_err());
    }

    use super::*;
    use std::io::{BufRead, Write};
    use std::os::unix::net::UnixListener;

    /// A scripted QMP peer for error paths: answers each line it reads with the next reply.
    fn fake_peer(
        greeting: Option<&'static str>,
        replies: Vec<&'static str>,
    ) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut w = stream.try_clone().unwrap();
            let mut r = std::io::BufReader::new(stream);
            if let Some(g) = greeting {
                writeln!(w, "{g}").unwrap();
            } else {
                return; // hang up at once
            }
            for reply in replies {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if reply == "SILENT" {
                    // Never answer; keep the connection open until the client gives up.
                    let _ = r.read_line(&mut line);
                    return;
                }
                writeln!(w, "{reply}").unwrap();
            }
        });
        (dir, path)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let d = crate::runtime::RuntimeDir::new("gp-qmp-test").unwrap();
                Dir(d.into_path_kept())
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": "Debian"}, "capabilities": ["oob"]}}"#;

    #[test]
    fn negotiates_and_reads_vcpu_threads_and_events() {
        let (_d, path) = fake_peer(
            Some(GREETING),
            vec![
                r#"{"return": {}}"#,
                concat!(
                    r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}"#,
                    "\n",
                    r#"{"return": [{"cpu-index": 1, "qom-path": "/m/c1", "thread-id": 502, "target": "x86_64"}, {"cpu-index": 0, "qom-path": "/m/c0", "thread-id": 501, "target": "x86_64"}]}"#
                ),
            ],
        );
        let mut q = Qmp::connect(
            &path,
            Instant::now() + Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(q.greeting().version.qemu.major, 10);
        assert_eq!(q.vcpu_thread_ids().unwrap(), [501, 502]);
        let events = q.take_events();
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn undecodable_events_are_skipped() {
        let (_d, path) = fake_peer(
            Some(GREETING),
            vec![
                r#"{"return": {}}"#,
                concat!(
                    r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "FROM_QEMU_99"}"#,
                    "\n",
                    r#"{"return": {"status": "running", "running": true}}"#
                ),
            ],
        );
        let mut q = Qmp::connect(
            &path,
            Instant::now() + Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(q.query_status().unwrap().running);
    }

    #[test]
    fn command_error_keeps_the_connection() {
        let (_d, path) = fake_peer(
            Some(GREETING),
            vec![
                r#"{"return": {}}"#,
                r#"{"error": {"class": "GenericError", "desc": "no such thing"}}"#,
                r#"{"return": {"status": "running", "running": true}}"#,
            ],
        );
        let mut q = Qmp::connect(
            &path,
            Instant::now() + Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .unwrap();
        let e = q.query_version().unwrap_err();
        assert!(e.to_string().contains("no such thing"), "{e}");
        assert!(q.query_status().unwrap().running);
    }

    #[test]
    fn silent_peer_times_out_and_breaks() {
        let (_d, path) = fake_peer(Some(GREETING), vec![r#"{"return": {}}"#, "SILENT"]);
        let mut q = Qmp::connect(
            &path,
            Instant::now() + Duration::from_secs(5),
            Duration::from_millis(200),
        )
        .unwrap();
        let e = q.query_status().unwrap_err();
        assert!(matches!(e, QmpError::Timeout { .. }), "{e}");
        assert!(matches!(
            q.query_status().unwrap_err(),
            QmpError::Broken { .. }
        ));
    }

    #[test]
    fn peer_hanging_up_is_closed_not_a_panic() {
        let (_d, path) = fake_peer(None, vec![]);
        let e = Qmp::connect(
            &path,
            Instant::now() + Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(e.is_closed(), "{e}");
    }

    #[test]
    fn missing_socket_times_out_or_aborts() {
        let path = Path::new("/nonexistent/gp-qmp.sock");
        let e = Qmp::connect(
            path,
            Instant::now() + Duration::from_millis(100),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(e, QmpError::ConnectTimeout { .. }), "{e}");
        let e = Qmp::connect_while(
            path,
            Instant::now() + Duration::from_secs(60),
            Duration::from_secs(1),
            || Err("QEMU exited".into()),
        )
        .unwrap_err();
        assert!(e.to_string().contains("QEMU exited"), "{e}");
    }
}
