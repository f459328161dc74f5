//! Asking QEMU, before anything runs, which scenarios it can do.
//!
//! One QEMU is started with no machine (`-machine none`, no guest, ~0.1 s) under the accelerator
//! the VMs will use, and asked over QMP, for each scenario: does it have the migration
//! capabilities the scenario needs, does it accept them switched on, and does it accept the
//! scenario's guest-independent parameters (multifd channels and compression method, dirty-limit
//! period and rate, throttle step). A refusal is QEMU's own words, which become the skip reason:
//! for example `Parameter 'capability' does not accept value 'compress'` on QEMU 10, or
//! `dirty-limit requires KVM with accelerator property 'dirty-ring-size' set` under TCG.
//!
//! gp-migrate checks the same things against the real VMs and exits with status 6 when it
//! refuses a scenario; the batch treats that as a skip too, so a probe that says yes wrongly
//! costs one VM boot, never a wrong result.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crossbeam_channel::bounded;
use qapi::{ExecuteError, Qmp, Stream};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::options::{Accel, Requirements};

/// Which accelerator to probe under, as gp-launch will run the VMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeAccel {
    pub accel: Accel,
    /// KVM dirty ring entries (0: none).
    pub dirty_ring_size: u32,
}

impl ProbeAccel {
    /// QEMU's `-accel` options. `auto` lists KVM first and TCG second: QEMU takes the first that
    /// initializes.
    pub fn qemu_args(&self) -> Vec<String> {
        let kvm = if self.dirty_ring_size > 0 {
            format!("kvm,dirty-ring-size={}", self.dirty_ring_size)
        } else {
            "kvm".to_string()
        };
        match self.accel {
            Accel::Tcg => vec!["-accel".into(), "tcg".into()],
            Accel::Kvm => vec!["-accel".into(), kvm],
            Accel::Auto => vec!["-accel".into(), kvm, "-accel".into(), "tcg".into()],
        }
    }
}

/// What the probe found.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReport {
    /// `10.0.2`.
    pub qemu_version: String,
    /// The accelerator QEMU ended up with: `kvm` or `tcg`.
    pub accel: String,
    /// Every migration capability the QEMU has.
    pub capabilities: Vec<String>,
    /// Per requirement set given, in order: `None` when QEMU accepts it, else why not.
    pub refusals: Vec<Option<String>>,
}

/// The probe itself failed (QEMU did not start or did not answer).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot start {binary} for the capability probe")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    #[error("capability probe: QEMU ({binary}) failed: {stderr}")]
    Qemu {
        binary: String,
        stderr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("capability probe: QEMU did not answer within {0:?}; it was killed")]
    Timeout(Duration),
}

#[derive(Debug, Serialize)]
struct QueryMigrateCapabilities {}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CapabilityStatus {
    capability: String,
    state: bool,
}

impl qapi::Command for QueryMigrateCapabilities {
    type Ok = Vec<CapabilityStatus>;
    const NAME: &'static str = "query-migrate-capabilities";
    const ALLOW_OOB: bool = false;
}

#[derive(Debug, Serialize)]
struct MigrateSetCapabilities {
    capabilities: Vec<CapabilityStatus>,
}

impl qapi::Command for MigrateSetCapabilities {
    type Ok = qapi::Empty;
    const NAME: &'static str = "migrate-set-capabilities";
    const ALLOW_OOB: bool = false;
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
struct MigrateSetParameters(Map<String, Value>);

impl qapi::Command for MigrateSetParameters {
    type Ok = qapi::Empty;
    const NAME: &'static str = "migrate-set-parameters";
    const ALLOW_OOB: bool = false;
}

#[derive(Debug, Serialize)]
struct QueryKvm {}

#[derive(Debug, Deserialize)]
struct KvmInfo {
    enabled: bool,
}

impl qapi::Command for QueryKvm {
    type Ok = KvmInfo;
    const NAME: &'static str = "query-kvm";
    const ALLOW_OOB: bool = false;
}

#[derive(Debug, Serialize)]
struct Quit {}

impl qapi::Command for Quit {
    type Ok = qapi::Empty;
    const NAME: &'static str = "quit";
    const ALLOW_OOB: bool = false;
}

type Conn = Qmp<Stream<BufReader<ChildStdout>, ChildStdin>>;

/// Starts `binary` with no machine, checks each of `requirements`, and stops it again.
pub fn probe(
    binary: &Path,
    accel: ProbeAccel,
    requirements: &[Requirements],
    timeout: Duration,
) -> Result<ProbeReport, ProbeError> {
    let mut cmd = Command::new(binary);
    cmd.args([
        "-machine",
        "none",
        "-nodefaults",
        "-display",
        "none",
        "-qmp",
        "stdio",
    ])
    .args(accel.qemu_args())
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| ProbeError::Spawn {
        binary: binary.display().to_string(),
        source,
    })?;

    // QEMU's stderr, read as it comes so it can never block QEMU.
    let stderr_text = Arc::new(Mutex::new(String::new()));
    let mut stderr = child.stderr.take().expect("piped");
    let stderr_sink = Arc::clone(&stderr_text);
    let stderr_thread = thread::spawn(move || {
        let mut buf = String::new();
        let _ = stderr.read_to_string(&mut buf);
        stderr_sink.lock().unwrap().push_str(&buf);
    });

    // Watchdog: kill QEMU if the conversation takes too long (reads have no timeout).
    let (done_tx, done_rx) = bounded::<()>(1);
    let pid = child.id() as libc::pid_t;
    let timed_out = Arc::new(Mutex::new(false));
    let timed_out_flag = Arc::clone(&timed_out);
    let watchdog = thread::spawn(move || {
        if done_rx.recv_timeout(timeout).is_err() {
            *timed_out_flag.lock().unwrap() = true;
            // SAFETY: kill(2) on our child, which is not reaped before this thread is joined.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    });

    let stdin = child.stdin.take().expect("piped");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    // The greeting is read here: qapi's own greeting reader panics at end of input.
    let result = read_greeting(&mut stdout).and_then(|greeting| {
        let mut qmp: Conn = Qmp::new(Stream::new(stdout, stdin));
        let result = converse(&mut qmp, &greeting, requirements);
        if result.is_ok() {
            let _ = qmp.execute(&Quit {});
        }
        result
    });
    let _ = done_tx.send(());
    let _ = watchdog.join();
    // Quit was sent (or the conversation failed): make sure it is gone, then reap it.
    if !matches!(child.try_wait(), Ok(Some(_))) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
    }
    let _ = child.wait();
    let _ = stderr_thread.join();

    if *timed_out.lock().unwrap() {
        return Err(ProbeError::Timeout(timeout));
    }
    result.map_err(|source| ProbeError::Qemu {
        binary: binary.display().to_string(),
        stderr: {
            let text = stderr_text.lock().unwrap();
            let text = text.trim();
            if text.is_empty() {
                "(nothing on stderr)".to_string()
            } else {
                text.to_string()
            }
        },
        source,
    })
}

/// QEMU's QMP greeting, the first line it prints.
fn read_greeting(stdout: &mut BufReader<ChildStdout>) -> std::io::Result<qapi::qmp::QMP> {
    let mut line = String::new();
    if stdout.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "QEMU exited before its QMP greeting",
        ));
    }
    let greeting: qapi::qmp::QapiCapabilities = serde_json::from_str(&line).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a QMP greeting: {e}"),
        )
    })?;
    Ok(greeting.QMP)
}

/// Capabilities negotiation, then every check. I/O errors end the probe; QEMU's refusals are
/// results.
fn converse(
    qmp: &mut Conn,
    greeting: &qapi::qmp::QMP,
    requirements: &[Requirements],
) -> std::io::Result<ProbeReport> {
    qmp.execute(&qapi::qmp::qmp_capabilities { enable: None })
        .map_err(std::io::Error::from)?;
    let v = &greeting.version.qemu;
    let qemu_version = format!("{}.{}.{}", v.major, v.minor, v.micro);
    let accel = match qmp.execute(&QueryKvm {}) {
        Ok(info) if info.enabled => "kvm",
        _ => "tcg",
    }
    .to_string();
    let capabilities: Vec<String> = qmp
        .execute(&QueryMigrateCapabilities {})
        .map_err(std::io::Error::from)?
        .into_iter()
        .map(|c| c.capability)
        .collect();
    let who = format!("QEMU {qemu_version} ({accel})");
    let mut refusals = Vec::with_capacity(requirements.len());
    for req in requirements {
        refusals.push(check(qmp, req, &capabilities, &who)?);
    }
    Ok(ProbeReport {
        qemu_version,
        accel,
        capabilities,
        refusals,
    })
}

fn check(
    qmp: &mut Conn,
    req: &Requirements,
    available: &[String],
    who: &str,
) -> std::io::Result<Option<String>> {
    for cap in &req.capabilities {
        if !available.contains(cap) {
            let hint = match cap.as_str() {
                "compress" => " (QEMU removed multi-thread compression in 9.1)",
                _ => "",
            };
            return Ok(Some(format!(
                "{who} has no '{cap}' migration capability{hint}"
            )));
        }
    }
    let set = |on: bool| MigrateSetCapabilities {
        capabilities: req
            .capabilities
            .iter()
            .map(|c| CapabilityStatus {
                capability: c.clone(),
                state: on,
            })
            .collect(),
    };
    let mut refusal = None;
    if !req.capabilities.is_empty() {
        if let Some(desc) = refused(qmp.execute(&set(true)))? {
            refusal = Some(format!(
                "{who} refuses migration capability {}: {desc}",
                req.capabilities.join(", ")
            ));
        }
    }
    if refusal.is_none() {
        for (name, value) in &req.parameters {
            let mut args = Map::new();
            args.insert(name.clone(), value.clone());
            if let Some(desc) = refused(qmp.execute(&MigrateSetParameters(args)))? {
                refusal = Some(format!(
                    "{who} refuses migration parameter {name}={value}: {desc}"
                ));
                break;
            }
        }
    }
    if !req.capabilities.is_empty() {
        // Leave the probe QEMU clean for the next scenario.
        refused(qmp.execute(&set(false)))?;
    }
    Ok(refusal)
}

/// `Ok(None)` when QEMU accepted, `Ok(Some(desc))` when it refused, `Err` on I/O failure.
fn refused<T>(result: Result<T, ExecuteError>) -> std::io::Result<Option<String>> {
    match result {
        Ok(_) => Ok(None),
        Err(ExecuteError::Qapi(e)) => Ok(Some(e.desc)),
        Err(ExecuteError::Io(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accel_arguments() {
        let auto = ProbeAccel {
            accel: Accel::Auto,
            dirty_ring_size: 0,
        };
        assert_eq!(auto.qemu_args(), ["-accel", "kvm", "-accel", "tcg"]);
        let ring = ProbeAccel {
            accel: Accel::Kvm,
            dirty_ring_size: 4096,
        };
        assert_eq!(ring.qemu_args(), ["-accel", "kvm,dirty-ring-size=4096"]);
        let tcg = ProbeAccel {
            accel: Accel::Tcg,
            dirty_ring_size: 4096,
        };
        assert_eq!(tcg.qemu_args(), ["-accel", "tcg"]);
    }

    #[test]
    fn a_missing_binary_is_a_spawn_error() {
        let err = probe(
            Path::new("/nonexistent/qemu"),
            ProbeAccel {
                accel: Accel::Tcg,
                dirty_ring_size: 0,
            },
            &[],
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot start /nonexistent/qemu"),
            "{err}"
        );
    }

    #[test]
    fn a_binary_that_is_not_qemu_fails_with_its_stderr() {
        let err = probe(
            Path::new("/bin/false"),
            ProbeAccel {
                accel: Accel::Tcg,
                dirty_ring_size: 0,
            },
            &[],
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(err, ProbeError::Qemu { .. }), "{err}");
    }
}
