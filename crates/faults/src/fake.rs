//! QMP peers that misbehave: a socket that accepts and never says a word, and one that greets
//! and then never answers a command. Each serves every connection until dropped.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How the fake peer behaves once a client connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// Accepts and never writes: not even QMP's greeting.
    NoGreeting,
    /// Sends QEMU 10's greeting, then reads commands and never answers one.
    NoReplies,
}

/// A fake QMP socket. Connections are held open (never closed by the peer) until it is dropped.
pub struct SilentQmp {
    path: PathBuf,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": ""}, "capabilities": ["oob"]}}"#;

impl SilentQmp {
    /// Listens on `dir/name`.
    pub fn start(dir: &Path, name: &str, how: Silence) -> SilentQmp {
        let path = dir.join(name);
        let listener =
            UnixListener::bind(&path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, halt) = (Arc::clone(&accepted), Arc::clone(&stop));
        std::thread::Builder::new()
            .name(format!("silent-{name}"))
            .spawn(move || {
                let mut held: Vec<UnixStream> = Vec::new();
                while !halt.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            count.fetch_add(1, Ordering::SeqCst);
                            let _ = stream.set_nonblocking(false);
                            if how == Silence::NoReplies {
                                let mut s = &stream;
                                let _ = writeln!(s, "{GREETING}");
                                // Read (and drop) commands so the client's writes never block.
                                if let Ok(reader) = stream.try_clone() {
                                    std::thread::spawn(move || {
                                        for line in BufReader::new(reader).lines() {
                                            if line.is_err() {
                                                return;
                                            }
                                        }
                                    });
                                }
                            }
                            held.push(stream);
                        }
                        // Nothing to accept: the listener is polled, so dropping stops it.
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
            .expect("spawn the fake QMP peer");
        SilentQmp {
            path,
            accepted,
            stop,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many connections it accepted.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for SilentQmp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::fs::remove_file(&self.path);
    }
}
