//! The QEMU binary: where it is, which version it is, and what it can do.
//!
//! The version comes from `qemu --version` before any VM starts (so errors can name it), and
//! from the QMP greeting or `query-version` of a running VM ([`QemuVersion::from_qmp`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossbeam_channel::unbounded;

use crate::bind::find_on_path;
use crate::process::{self, Hooks, Spec};

/// The default binary, looked up on `$PATH`.
pub const DEFAULT_BINARY: &str = "qemu-system-x86_64";

/// A QEMU version: `10.0.2`, with the distribution's package string when it gives one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct QemuVersion {
    pub major: u32,
    pub minor: u32,
    pub micro: u32,
    /// e.g. `Debian 1:10.0.2+ds-2+deb13u1~bpo12+1`; empty when not given.
    pub package: String,
}

impl QemuVersion {
    /// Parses the first line of `qemu-system-x86_64 --version`:
    /// `QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)`.
    pub fn parse_version_output(text: &str) -> Option<QemuVersion> {
        let line = text.lines().find(|l| l.contains("version"))?;
        let rest = line.split_once("version ")?.1.trim();
        let (number, package) = match rest.split_once(' ') {
            Some((n, p)) => (
                n,
                p.trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .to_string(),
            ),
            None => (rest, String::new()),
        };
        let mut parts = number.split('.').map(|p| {
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        let major = parts.next()??;
        let minor = parts.next().flatten().unwrap_or(0);
        let micro = parts.next().flatten().unwrap_or(0);
        Some(QemuVersion {
            major,
            minor,
            micro,
            package,
        })
    }

    /// From a QMP `VersionInfo` (greeting or `query-version`).
    pub fn from_qmp(v: &qapi::qmp::VersionInfo) -> QemuVersion {
        let n = |x: i64| x.clamp(0, u32::MAX as i64) as u32;
        QemuVersion {
            major: n(v.qemu.major),
            minor: n(v.qemu.minor),
            micro: n(v.qemu.micro),
            package: v.package.trim().to_string(),
        }
    }

    /// `10.0.2`
    pub fn number(&self) -> String {
        format!("{}.{}.{}", self.major, self.minor, self.micro)
    }

    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for QemuVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.package.is_empty() {
            write!(f, "{}", self.number())
        } else {
            write!(f, "{} ({})", self.number(), self.package)
        }
    }
}

/// A QEMU binary that answered `--version`.
#[derive(Debug, Clone)]
pub struct QemuBinary {
    /// The resolved path.
    pub path: PathBuf,
    pub version: QemuVersion,
    /// Accelerators compiled in (`-accel help`): `kvm`, `tcg`, ...
    pub accels: Vec<String>,
}

/// The binary cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("QEMU binary {name:?} not found on PATH: install QEMU (scripts/setup-host.sh) or pass --binary with its path")]
    NotOnPath { name: String },
    #[error("QEMU binary {path} does not exist or is not executable: pass --binary with a QEMU system emulator")]
    NotExecutable { path: PathBuf },
    #[error(
        "{path} --version failed ({detail}); is it a QEMU system emulator? pass --binary with one"
    )]
    NoVersion { path: PathBuf, detail: String },
}

impl QemuBinary {
    /// Resolves `name` (a path, or a name on `$PATH`) and asks it for its version and
    /// accelerators. Each query is bounded in time.
    pub fn detect(name: &str) -> Result<QemuBinary, BinaryError> {
        let path = match find_on_path(name) {
            Some(p) => p,
            None if name.contains('/') => {
                return Err(BinaryError::NotExecutable {
                    path: PathBuf::from(name),
                })
            }
            None => {
                return Err(BinaryError::NotOnPath {
                    name: name.to_string(),
                })
            }
        };
        let out =
            run_capture(&path, &["--version"], Duration::from_secs(20)).map_err(|detail| {
                BinaryError::NoVersion {
                    path: path.clone(),
                    detail,
                }
            })?;
        let version =
            QemuVersion::parse_version_output(&out).ok_or_else(|| BinaryError::NoVersion {
                path: path.clone(),
                detail: format!("unexpected output {:?}", out.lines().next().unwrap_or("")),
            })?;
        let accels = run_capture(&path, &["-accel", "help"], Duration::from_secs(20))
            .map(|text| parse_accel_help(&text))
            .unwrap_or_default();
        Ok(QemuBinary {
            path,
            version,
            accels,
        })
    }

    pub fn has_accel(&self, name: &str) -> bool {
        self.accels.iter().any(|a| a == name)
    }

    /// The trace events this binary has (`-trace help`), or why it did not say. Whether they
    /// print anything depends on its trace backend (`log` prints them on stderr).
    pub fn trace_events(&self) -> Result<Vec<String>, String> {
        let text = run_capture(&self.path, &["-trace", "help"], Duration::from_secs(20))?;
        Ok(parse_trace_help(&text))
    }

    /// Whether the binary was built with RDMA migration (it links librdmacm).
    pub fn supports_rdma(&self) -> bool {
        std::fs::read(&self.path)
            .map(|bytes| bytes.windows(9).any(|w| w == b"librdmacm"))
            .unwrap_or(false)
    }
}

/// `-accel help` lists one accelerator per line after a heading.
fn parse_accel_help(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains(' ') && !l.ends_with(':'))
        .map(str::to_string)
        .collect()
}

/// `-trace help` lists one event name per line.
fn parse_trace_help(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
        .map(str::to_string)
        .collect()
}

/// Runs `program args`, returns stdout; bounded by `timeout` (then killed).
fn run_capture(program: &Path, args: &[&str], timeout: Duration) -> Result<String, String> {
    let mut spec = Spec::new("qemu-query", program.as_os_str());
    spec.args(args.iter().copied());
    let (tx, rx) = unbounded();
    let hooks = Hooks {
        on_stdout_line: Box::new(move |l| {
            let _ = tx.send(l.text);
        }),
        on_stderr_line: None,
        on_exit: None,
    };
    let child = process::spawn(&spec, hooks).map_err(|e| gp_stage::error_chain(&e))?;
    let Some(exit) = child.wait_until(Instant::now() + timeout) else {
        child.kill_and_reap();
        return Err(format!("no answer within {} s", timeout.as_secs()));
    };
    let out: Vec<String> = rx.try_iter().collect();
    if !exit.success() {
        let tail = child.stderr_tail();
        return Err(format!(
            "{exit}: {}",
            tail.last().map(String::as_str).unwrap_or("")
        ));
    }
    Ok(out.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lines() {
        let v = QemuVersion::parse_version_output(
            "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\nCopyright (c) 2003-2025",
        )
        .unwrap();
        assert_eq!(v.number(), "10.0.2");
        assert_eq!(v.package, "Debian 1:10.0.2+ds-2+deb13u1~bpo12+1");
        assert!(v.at_least(9, 1) && !v.at_least(10, 1));
        let v = QemuVersion::parse_version_output("QEMU emulator version 7.2.50").unwrap();
        assert_eq!(v.to_string(), "7.2.50");
        let v = QemuVersion::parse_version_output("QEMU emulator version 9.2.0-rc1").unwrap();
        assert_eq!(v.number(), "9.2.0");
        assert!(QemuVersion::parse_version_output("hello").is_none());
    }

    #[test]
    fn accel_help() {
        let text = "Accelerators supported in QEMU binary:\ntcg\nkvm\n";
        assert_eq!(parse_accel_help(text), ["tcg", "kvm"]);
    }

    #[test]
    fn trace_help() {
        let text = "vmstate_downtime_save\nvmstate_downtime_load\n\nbreakpoint_insert\n";
        assert_eq!(parse_trace_help(text).len(), 3);
        assert!(parse_trace_help("Usage: something else\n").is_empty());
    }

    #[test]
    fn missing_binaries() {
        let e = QemuBinary::detect("qemu-system-does-not-exist")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not found on PATH") && e.contains("--binary"),
            "{e}"
        );
        let e = QemuBinary::detect("/nonexistent/qemu")
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
        let e = QemuBinary::detect("/bin/false").unwrap_err().to_string();
        assert!(e.contains("--version failed"), "{e}");
    }

    #[test]
    fn installed_qemu_is_detected() {
        let b = QemuBinary::detect(DEFAULT_BINARY)
            .unwrap_or_else(|e| panic!("{e}: run scripts/setup-host.sh to install QEMU"));
        assert!(b.version.major >= 7, "{}", b.version);
        assert!(b.has_accel("tcg"), "{:?}", b.accels);
        let events = b.trace_events().unwrap();
        assert!(events.len() > 100, "{events:?}");
    }
}
