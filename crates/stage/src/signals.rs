//! Signal forwarding: a thread named `signals` turns SIGINT, SIGTERM and SIGHUP into channel
//! messages, so a stage's main loop selects on them like on any other input. No I/O happens in
//! a signal handler (signal-hook's handler only writes to its self-pipe).
//!
//! SIGHUP is handled like the other two everywhere: a closed terminal or a dropped ssh session
//! must end a run with its report written, not kill a stage mid-write.

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use crossbeam_channel::{unbounded, Receiver};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

/// The signals that mean "stop and clean up".
pub const TERMINATING: &[i32] = &[SIGINT, SIGTERM, SIGHUP];

/// The conventional name of a signal number (`SIGHUP`), or `signal N` for one without a name.
pub fn signal_name(sig: i32) -> String {
    match signal_hook::low_level::signal_name(sig) {
        Some(name) => name.to_string(),
        None => format!("signal {sig}"),
    }
}

/// `--grace`, the option of a filter stage (gp-sample, gp-collect) that keeps passing input
/// through after a signal: flattened into each, so both spell, default and check it alike.
#[derive(Debug, Clone, clap::Args)]
pub struct GraceArgs {
    /// After SIGINT, SIGTERM or SIGHUP, keep passing input through for this long, so upstream
    /// stages' last records arrive (0s: not at all), then end. A second signal ends at once.
    /// With a unit: 2s, 500ms.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_grace)]
    pub grace: std::time::Duration,
}

impl GraceArgs {
    /// The grace to keep after a signal here: `--grace`, or none when stdin is a terminal
    /// ([`grace_after_signal`]).
    pub fn after_signal(&self) -> std::time::Duration {
        grace_after_signal(self.grace)
    }
}

/// Parses `--grace`: 0s to an hour.
fn parse_grace(s: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse(s, std::time::Duration::from_secs(3600))
}

/// How long a filter stage keeps passing input through after a signal: `grace`, unless stdin is a
/// terminal, which never ends its input on Ctrl-C (so waiting would only delay the end).
pub fn grace_after_signal(grace: std::time::Duration) -> std::time::Duration {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        std::time::Duration::ZERO
    } else {
        grace
    }
}

/// Receives forwarded signals. Dropping it stops the forwarding thread; signal-hook keeps its
/// handlers, so a signal after that is ignored rather than fatal.
#[derive(Debug)]
pub struct Forwarder {
    rx: Receiver<i32>,
    first: Arc<AtomicI32>,
    handle: Option<Handle>,
}

impl Forwarder {
    /// Starts forwarding [`TERMINATING`] on a thread named `signals`.
    pub fn start() -> io::Result<Forwarder> {
        Forwarder::start_for(TERMINATING)
    }

    /// Starts forwarding `signals` on a thread named `signals`.
    pub fn start_for(signals: &[i32]) -> io::Result<Forwarder> {
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
        Ok(Forwarder {
            rx,
            first,
            handle: Some(handle),
        })
    }

    /// A forwarder fed by hand (tests), or never (when `rx` has no sender). No handler is
    /// installed.
    pub fn from_channel(rx: Receiver<i32>) -> Forwarder {
        Forwarder {
            rx,
            first: Arc::new(AtomicI32::new(0)),
            handle: None,
        }
    }

    /// The channel signals arrive on.
    pub fn receiver(&self) -> &Receiver<i32> {
        &self.rx
    }

    /// The first signal the thread received, if any (without consuming it from the channel).
    pub fn received(&self) -> Option<i32> {
        match self.first.load(Ordering::SeqCst) {
            0 => None,
            sig => Some(sig),
        }
    }

    /// A signal that arrived and has not been taken yet (takes it).
    pub fn pending(&self) -> Option<i32> {
        self.rx.try_recv().ok()
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_platform() {
        assert_eq!(signal_name(SIGHUP), "SIGHUP");
        assert_eq!(signal_name(SIGINT), "SIGINT");
        assert_eq!(signal_name(SIGTERM), "SIGTERM");
        assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
        assert_eq!(signal_name(1000), "signal 1000");
    }

    #[test]
    fn a_hand_fed_forwarder_hands_out_what_it_is_given() {
        let (tx, rx) = unbounded();
        let f = Forwarder::from_channel(rx);
        assert_eq!(f.pending(), None);
        tx.send(SIGHUP).unwrap();
        assert_eq!(f.pending(), Some(SIGHUP));
    }

    #[test]
    fn grace_is_10_s_by_default_with_a_unit_and_at_most_an_hour() {
        use clap::Parser;
        use std::time::Duration;
        #[derive(Parser)]
        struct Stage {
            #[command(flatten)]
            grace: GraceArgs,
        }
        let grace = |args: &[&str]| {
            Stage::try_parse_from(std::iter::once("stage").chain(args.iter().copied()))
                .map(|s| s.grace.grace)
                .map_err(|e| e.to_string())
        };
        assert_eq!(grace(&[]), Ok(Duration::from_secs(10)));
        assert_eq!(grace(&["--grace", "300ms"]), Ok(Duration::from_millis(300)));
        assert_eq!(grace(&["--grace", "0s"]), Ok(Duration::ZERO));
        assert!(grace(&["--grace", "2"])
            .unwrap_err()
            .contains("needs a unit"));
        assert!(grace(&["--grace", "2h"]).is_err());
        assert!(grace(&["--grace", "3601s"]).is_err());
    }
}
