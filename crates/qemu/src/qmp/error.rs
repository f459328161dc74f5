//! What can go wrong on a QMP connection.

use std::io;
use std::path::PathBuf;

use serde_json::Value;

/// A QMP connection or call failed. Each message describes this layer; an underlying cause is
/// in `source()`.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// Nothing accepted the connection before the deadline.
    #[error("no connection to QMP socket {path} within {waited_s:.1} s")]
    Connect {
        path: PathBuf,
        waited_s: f64,
        #[source]
        source: io::Error,
    },
    /// The caller's condition stopped the attempts (e.g. "QEMU exited").
    #[error("gave up connecting to QMP socket {path}: {why}")]
    ConnectAborted { path: PathBuf, why: String },
    /// Connected, but QEMU sent no greeting in time: it sends one only to the client it serves,
    /// so another client is connected, or QEMU is stuck.
    #[error(
        "QMP socket {path}: no greeting within {timeout_s:.1} s (is another client connected?)"
    )]
    NoGreeting { path: PathBuf, timeout_s: f64 },
    /// The connection closed, or was unreadable, before or during the greeting.
    #[error("QMP socket {path}: no usable greeting")]
    Greeting {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Capabilities negotiation (`qmp_capabilities`) failed.
    #[error("QMP socket {path}: negotiating capabilities")]
    Negotiation {
        path: PathBuf,
        #[source]
        source: Box<QmpError>,
    },
    /// QEMU answered the command with an error; the connection stays usable.
    #[error("{command}: QEMU said: {desc}")]
    Command {
        command: &'static str,
        class: String,
        desc: String,
    },
    /// QEMU's reply does not fit qapi's schema (not even leaving members out); the reply as sent
    /// is kept here and the connection stays usable.
    #[error("{command}: QEMU's reply does not fit the QMP schema qapi was generated from")]
    Decode {
        command: &'static str,
        reply: Value,
        #[source]
        source: serde_json::Error,
    },
    #[error("{command}: no reply from QEMU within {timeout_s:.1} s")]
    Timeout {
        command: &'static str,
        timeout_s: f64,
    },
    #[error("{command}: QMP connection closed (QEMU exited?)")]
    Closed { command: &'static str },
    #[error("{command}: QMP I/O error")]
    Io {
        command: &'static str,
        #[source]
        source: io::Error,
    },
    /// A signal arrived while QEMU was awaited; the connection is given up (the signal is left
    /// on the channel for the caller).
    #[error("{command}: interrupted by a signal while waiting for QEMU")]
    Interrupted { command: &'static str },
    /// An earlier error left the connection unusable; nothing was sent.
    #[error("{command}: not sent: the QMP connection was lost earlier ({earlier})")]
    Broken {
        command: &'static str,
        earlier: String,
    },
}

impl QmpError {
    /// Whether the connection is unusable after this error (as opposed to QEMU refusing one
    /// command, or one reply not fitting the schema).
    pub fn is_connection_lost(&self) -> bool {
        !matches!(self, QmpError::Command { .. } | QmpError::Decode { .. })
    }

    /// True when QEMU hung up (typically because it is exiting).
    pub fn is_closed(&self) -> bool {
        match self {
            QmpError::Closed { .. } => true,
            QmpError::Greeting { source, .. } => source.kind() == io::ErrorKind::UnexpectedEof,
            QmpError::Negotiation { source, .. } => source.is_closed(),
            _ => false,
        }
    }

    /// True when QEMU did not accept, greet or answer in time.
    pub fn is_timeout(&self) -> bool {
        match self {
            QmpError::Connect { .. } | QmpError::NoGreeting { .. } | QmpError::Timeout { .. } => {
                true
            }
            QmpError::Negotiation { source, .. } => source.is_timeout(),
            _ => false,
        }
    }

    /// True when a pending signal ended the wait.
    pub fn is_interrupted(&self) -> bool {
        match self {
            QmpError::Interrupted { .. } => true,
            QmpError::Negotiation { source, .. } => source.is_interrupted(),
            _ => false,
        }
    }
}
