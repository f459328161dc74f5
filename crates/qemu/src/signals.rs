//! Signal forwarding: a thread turns SIGINT/SIGTERM/SIGHUP into channel messages, so the main
//! loop can select on them. No I/O happens in a signal handler (signal-hook's handler only writes
//! to its self-pipe).

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use crossbeam_channel::{unbounded, Receiver};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

/// The signals that mean "stop and clean up".
pub const TERMINATING: &[i32] = &[SIGINT, SIGTERM, SIGHUP];

/// Receives forwarded signals. Dropping it restores nothing (signal-hook keeps its handlers)
/// but stops the forwarding thread.
#[derive(Debug)]
pub struct Forwarder {
    rx: Receiver<i32>,
    first: Arc<AtomicI32>,
    handle: Handle,
}

impl Forwarder {
    /// Starts forwarding `signals` on a thread named `signals`.
    pub fn start(signals: &[i32]) -> io::Result<Forwarder> {
        let mut iter = Signals::new(signals)?;
        let handle = iter.handle();
        let (tx, rx) = unbounded();
        let first = Arc::new(AtomicI32::new(0));
        let first_t = Arc::clone(&first);
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for sig in iter.forever() {
                    let _ = first_t.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
                    if tx.send(sig).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Forwarder { rx, first, handle })
    }

    /// The channel signals arrive on.
    pub fn receiver(&self) -> &Receiver<i32> {
        &self.rx
    }

    /// The first signal received, if any (without consuming it from the channel).
    pub fn received(&self) -> Option<i32> {
        match self.first.load(Ordering::SeqCst) {
            0 => None,
            sig => Some(sig),
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.handle.close();
    }
}
