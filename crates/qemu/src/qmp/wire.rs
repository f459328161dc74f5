//! The byte level under qapi's client: a connect that never blocks, reads that wait in slices
//! (so a pending signal is noticed within one), and a tap that keeps every line QEMU sent with
//! the host time it was read.
//!
//! qapi decodes each line into the types of the schema it was generated from and drops a line it
//! cannot decode; the tap is how an event or a reply newer than that schema still reaches the
//! caller as QEMU sent it.

use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

/// How long one wait for data lasts before a pending signal is looked for.
pub(crate) const READ_SLICE: Duration = Duration::from_millis(100);
/// Once a signal is pending, how much longer a reply is waited for.
pub(crate) const SIGNAL_GRACE: Duration = Duration::from_secs(1);

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

/// The error a [`SliceReader`] returns when it gave up because a signal is pending.
#[derive(Debug, thiserror::Error)]
#[error("interrupted by a signal")]
pub(crate) struct SignalPending;

pub(crate) fn is_signal_pending(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<SignalPending>())
}

pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The read side of a connection: each read waits up to `timeout` for data, in slices of
/// [`READ_SLICE`], and at most [`SIGNAL_GRACE`] more once a signal is pending on `interrupt`
/// (the signal is left there for the caller). A read that returns nothing consumes nothing, so
/// only a timeout or an interruption can cut a line short.
pub(crate) struct SliceReader {
    pub(crate) stream: UnixStream,
    pub(crate) timeout: Duration,
    pub(crate) interrupt: Option<Receiver<i32>>,
}

impl SliceReader {
    pub(crate) fn signal_pending(&self) -> bool {
        self.interrupt.as_ref().is_some_and(|r| !r.is_empty())
    }
}

impl Read for SliceReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut deadline = Instant::now() + self.timeout;
        let mut hurried = false;
        loop {
            // A signal gives the reply a little longer, not the whole timeout: a QEMU that is
            // working answers at once, and its connection stays usable (the cleanup after the
            // signal needs it); one that is stuck is given up.
            if !hurried && self.signal_pending() {
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

/// One line as QEMU sent it (without its newline) and the host time it was read.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub(crate) time_s: f64,
    pub(crate) text: Vec<u8>,
}

/// A buffered reader that records every complete line its user consumes.
pub(crate) struct Tap {
    inner: BufReader<SliceReader>,
    partial: Vec<u8>,
    lines: Vec<Line>,
    /// The peer closed its end.
    pub(crate) eof: bool,
}

impl Tap {
    pub(crate) fn new(reader: SliceReader) -> Tap {
        Tap {
            inner: BufReader::new(reader),
            partial: Vec::new(),
            lines: Vec::new(),
            eof: false,
        }
    }

    pub(crate) fn reader_mut(&mut self) -> &mut SliceReader {
        self.inner.get_mut()
    }

    /// The complete lines consumed since the last call, oldest first.
    pub(crate) fn take_lines(&mut self) -> Vec<Line> {
        std::mem::take(&mut self.lines)
    }
}

impl Read for Tap {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Tap {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.inner.fill_buf()?.is_empty() {
            self.eof = true;
            return Ok(&[]);
        }
        Ok(self.inner.buffer())
    }

    fn consume(&mut self, amt: usize) {
        let taken = &self.inner.buffer()[..amt.min(self.inner.buffer().len())];
        for piece in taken.split_inclusive(|b| *b == b'\n') {
            match piece.strip_suffix(b"\n") {
                Some(end) => {
                    self.partial.extend_from_slice(end);
                    self.lines.push(Line {
                        time_s: gp_records::now_s(),
                        text: std::mem::take(&mut self.partial),
                    });
                }
                None => self.partial.extend_from_slice(piece),
            }
        }
        self.inner.consume(amt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_tap_keeps_every_consumed_line_whole() {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"{\"one\": 1}\n{\"two\":").unwrap();
        let mut tap = Tap::new(SliceReader {
            stream: b,
            timeout: Duration::from_secs(5),
            interrupt: None,
        });
        let mut line = Vec::new();
        tap.read_until(b'\n', &mut line).unwrap();
        a.write_all(b" 2}\n").unwrap();
        drop(a);
        line.clear();
        tap.read_until(b'\n', &mut line).unwrap();
        let lines: Vec<String> = tap
            .take_lines()
            .into_iter()
            .map(|l| String::from_utf8(l.text).unwrap())
            .collect();
        assert_eq!(lines, ["{\"one\": 1}", "{\"two\": 2}"]);
        assert!(!tap.eof);
        line.clear();
        assert_eq!(tap.read_until(b'\n', &mut line).unwrap(), 0);
        assert!(tap.eof);
    }

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
        assert!(connect_unix(&dir.path().join("none.sock")).is_err());
    }
}
