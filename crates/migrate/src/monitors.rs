//! gp-migrate's QMP connections, one per VM: gp-qemu's client, given the signal channel so
//! every wait ends soon after a signal, and replaced when a timeout or an interrupted wait left
//! it broken (a live QEMU may still be behind it).

use std::path::Path;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use gp_qemu::qmp::{Event, Qmp, QmpError};
use gp_records::Role;

/// How long a reconnection may try.
const RECONNECT_DEADLINE: Duration = Duration::from_secs(3);
/// How long replies may take on a reconnected monitor (it is used to clean up).
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn index(role: Role) -> usize {
    match role {
        Role::Src => 0,
        Role::Dst => 1,
    }
}

/// Both VMs' monitors.
pub struct Monitors {
    conns: [Option<Qmp>; 2],
    signals: Receiver<i32>,
    timeout: Duration,
}

impl Monitors {
    /// Monitors whose replies may take `timeout` and whose waits end on a signal on `signals`.
    pub fn new(signals: Receiver<i32>, timeout: Duration) -> Monitors {
        Monitors {
            conns: [None, None],
            signals,
            timeout,
        }
    }

    /// Connects to `role`'s QMP socket, retrying until `deadline`.
    pub fn connect(&mut self, role: Role, path: &Path, deadline: Instant) -> Result<(), QmpError> {
        let q = Qmp::connector(path)
            .deadline(deadline)
            .timeout(self.timeout)
            .interrupt(self.signals.clone())
            .connect()?;
        self.conns[index(role)] = Some(q);
        Ok(())
    }

    /// `role`'s connection, once one was made (it may be broken).
    pub fn get(&mut self, role: Role) -> Option<&mut Qmp> {
        self.conns[index(role)].as_mut()
    }

    /// Whether `role` has a connection that is not broken.
    pub fn usable(&self, role: Role) -> bool {
        self.conns[index(role)]
            .as_ref()
            .is_some_and(|q| q.broken().is_none())
    }

    /// Replaces `role`'s broken connection with a new one to `path`, trying for a few seconds.
    /// Whether `role` has a usable connection afterwards.
    pub fn reconnect_if_broken(&mut self, role: Role, path: &Path) -> bool {
        if self.usable(role) {
            return true;
        }
        let fresh = Qmp::connector(path)
            .deadline(Instant::now() + RECONNECT_DEADLINE)
            .timeout(RECONNECT_TIMEOUT)
            .interrupt(self.signals.clone())
            .connect();
        match fresh {
            // The broken connection's events were taken after the call that broke it.
            Ok(q) => {
                self.conns[index(role)] = Some(q);
                true
            }
            Err(_) => false,
        }
    }

    /// Events read on `role`'s connection so far.
    pub fn take_events(&mut self, role: Role) -> Vec<Event> {
        self.conns[index(role)]
            .as_mut()
            .map(Qmp::take_events)
            .unwrap_or_default()
    }

    /// Closes both connections.
    pub fn close_all(&mut self) {
        self.conns = [None, None];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A QMP peer that serves connection after connection; on the first one it never answers
    /// `query-status` (so that connection breaks), on later ones it does.
    fn peer(dir: &Path) -> (std::path::PathBuf, Arc<AtomicUsize>) {
        let path = dir.join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let n = count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut out = stream.try_clone().unwrap();
                    writeln!(out, r#"{{"QMP": {{"version": {{"qemu": {{"micro": 0, "minor": 2, "major": 7}}, "package": ""}}, "capabilities": []}}}}"#).unwrap();
                    for line in BufReader::new(stream).lines() {
                        let Ok(line) = line else { return };
                        let reply = if line.contains("query-status") {
                            if n == 0 {
                                continue;
                            }
                            r#"{"return": {"status": "running", "running": true}}"#
                        } else {
                            r#"{"return": {}}"#
                        };
                        if writeln!(out, "{reply}").is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (path, accepted)
    }

    #[test]
    fn a_broken_connection_is_replaced_and_a_missing_one_is_not_made_up() {
        let dir = tempfile::tempdir().unwrap();
        let (path, accepted) = peer(dir.path());
        let (_tx, signals) = crossbeam_channel::unbounded();
        let mut m = Monitors::new(signals, Duration::from_millis(300));
        assert!(m.get(Role::Src).is_none());
        assert!(!m.usable(Role::Src));
        m.connect(Role::Src, &path, Instant::now() + Duration::from_secs(5))
            .unwrap();
        assert!(m.usable(Role::Src));
        let e = m.get(Role::Src).unwrap().query_status().unwrap_err();
        assert!(matches!(e, QmpError::Timeout { .. }), "{e}");
        assert!(!m.usable(Role::Src));
        assert!(m.reconnect_if_broken(Role::Src, &path));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert!(m.get(Role::Src).unwrap().query_status().unwrap().running);
        // A usable connection is kept as it is.
        assert!(m.reconnect_if_broken(Role::Src, &path));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert!(!m.reconnect_if_broken(Role::Dst, &dir.path().join("none.sock")));
        m.close_all();
        assert!(m.get(Role::Src).is_none());
    }

    #[test]
    fn a_pending_signal_ends_a_connect_at_once() {
        let (tx, signals) = crossbeam_channel::unbounded();
        tx.send(15).unwrap();
        let mut m = Monitors::new(signals, Duration::from_secs(30));
        let started = Instant::now();
        let e = m
            .connect(
                Role::Dst,
                Path::new("/nonexistent/qmp.sock"),
                Instant::now() + Duration::from_secs(30),
            )
            .unwrap_err();
        assert!(e.is_interrupted(), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
