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
//!
//! QEMU runs under gp-qemu's supervision (it dies with us, its stderr is kept) and is asked
//! through gp-qemu's QMP client on a socket in a private runtime directory, every reply bounded
//! by what is left of the probe's time.

use std::path::Path;
use std::time::{Duration, Instant};

use gp_qemu::process::{self, Hooks, SpawnError, Spec};
use gp_qemu::qmp::{CapabilityState, Qmp, QmpError};
use gp_qemu::runtime::RuntimeDir;
use qapi::qmp;

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
        source: SpawnError,
    },
    #[error("cannot make a runtime directory for the capability probe's QMP socket")]
    Socket(#[source] gp_qemu::runtime::RuntimeError),
    #[error("capability probe: QEMU ({binary}) failed (its stderr: {stderr})")]
    Qemu {
        binary: String,
        stderr: String,
        #[source]
        source: QmpError,
    },
    #[error("capability probe: QEMU did not answer within {0:?}; it was killed")]
    Timeout(Duration),
}

/// Starts `binary` with no machine, checks each of `requirements`, and stops it again.
pub fn probe(
    binary: &Path,
    accel: ProbeAccel,
    requirements: &[Requirements],
    timeout: Duration,
) -> Result<ProbeReport, ProbeError> {
    let deadline = Instant::now() + timeout;
    let dir = RuntimeDir::new("gp-probe").map_err(ProbeError::Socket)?;
    let socket = dir.socket_path("qmp.sock").map_err(ProbeError::Socket)?;
    let mut spec = Spec::new("qemu-probe", binary.as_os_str());
    spec.args([
        "-machine",
        "none",
        "-nodefaults",
        "-display",
        "none",
        "-qmp",
    ])
    .arg(format!("unix:{},server=on,wait=off", socket.display()))
    .args(accel.qemu_args());
    let child = process::spawn(&spec, Hooks::discard()).map_err(|source| ProbeError::Spawn {
        binary: binary.display().to_string(),
        source,
    })?;
    let result = Qmp::connector(&socket)
        .deadline(deadline)
        .timeout(timeout)
        .keep_trying(|| match child.has_exited() {
            true => Err("QEMU exited".into()),
            false => Ok(()),
        })
        .connect()
        .and_then(|mut q| {
            let report = converse(&mut q, requirements, deadline);
            if report.is_ok() {
                let _ = q.quit();
            }
            report
        });
    // Quit was sent (or the conversation failed): give QEMU a moment, then make sure.
    if child
        .wait_until(Instant::now() + Duration::from_secs(5))
        .is_none()
    {
        child.kill_and_reap();
    }
    result.map_err(|source| {
        if source.is_timeout() {
            return ProbeError::Timeout(timeout);
        }
        let tail = child.stderr_tail_after_exit();
        let text = tail.join("\n");
        ProbeError::Qemu {
            binary: binary.display().to_string(),
            stderr: match text.trim() {
                "" => "(nothing)".to_string(),
                t => t.to_string(),
            },
            source,
        }
    })
}

/// Every check, each reply bounded by what is left until `deadline`. QMP failures end the
/// probe; QEMU's refusals are results.
fn converse(
    q: &mut Qmp,
    requirements: &[Requirements],
    deadline: Instant,
) -> Result<ProbeReport, QmpError> {
    let qemu_version = q.version().number();
    let left = || deadline.saturating_duration_since(Instant::now());
    let accel = match q.execute_within(left(), &qmp::query_kvm {}) {
        Ok(info) if info.enabled => "kvm",
        _ => "tcg",
    }
    .to_string();
    q.set_timeout(left());
    let capabilities: Vec<String> = q
        .migration_capabilities()?
        .into_iter()
        .map(|c| c.capability)
        .collect();
    let who = format!("QEMU {qemu_version} ({accel})");
    let mut refusals = Vec::with_capacity(requirements.len());
    for req in requirements {
        q.set_timeout(left());
        refusals.push(check(q, req, &capabilities, &who)?);
    }
    Ok(ProbeReport {
        qemu_version,
        accel,
        capabilities,
        refusals,
    })
}

fn check(
    q: &mut Qmp,
    req: &Requirements,
    available: &[String],
    who: &str,
) -> Result<Option<String>, QmpError> {
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
    let set = |on: bool| -> Vec<CapabilityState> {
        req.capabilities
            .iter()
            .map(|c| CapabilityState {
                capability: c.clone(),
                state: on,
            })
            .collect()
    };
    let mut refusal = None;
    if !req.capabilities.is_empty() {
        if let Some(desc) = refused(q.set_migration_capabilities(&set(true)))? {
            refusal = Some(format!(
                "{who} refuses migration capability {}: {desc}",
                req.capabilities.join(", ")
            ));
        }
    }
    if refusal.is_none() {
        for (name, value) in &req.parameters {
            if let Some(desc) = refused(q.set_migration_parameter(name, value))? {
                refusal = Some(format!(
                    "{who} refuses migration parameter {name}={value}: {desc}"
                ));
                break;
            }
        }
    }
    if !req.capabilities.is_empty() {
        // Leave the probe QEMU clean for the next scenario.
        refused(q.set_migration_capabilities(&set(false)))?;
    }
    Ok(refusal)
}

/// `Ok(None)` when QEMU accepted, `Ok(Some(desc))` when it refused, `Err` when the QMP
/// connection failed.
fn refused(result: Result<(), QmpError>) -> Result<Option<String>, QmpError> {
    match result {
        Ok(()) => Ok(None),
        Err(QmpError::Command { desc, .. }) => Ok(Some(desc)),
        Err(e) => Err(e),
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

    /// Probes `binary` under TCG for nothing; it must fail.
    fn failing_probe(binary: &str) -> ProbeError {
        let tcg = ProbeAccel {
            accel: Accel::Tcg,
            dirty_ring_size: 0,
        };
        probe(Path::new(binary), tcg, &[], Duration::from_secs(5)).unwrap_err()
    }

    #[test]
    fn a_missing_binary_is_a_spawn_error() {
        let err = failing_probe("/nonexistent/qemu");
        assert!(matches!(err, ProbeError::Spawn { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("cannot start /nonexistent/qemu"),
            "{err}"
        );
    }

    #[test]
    fn a_binary_that_is_not_qemu_fails_at_once_saying_it_exited() {
        let started = std::time::Instant::now();
        let err = failing_probe("/bin/false");
        assert!(matches!(err, ProbeError::Qemu { .. }), "{err}");
        let chain = gp_stage::error_chain(&err);
        assert!(chain.ends_with(": QEMU exited"), "{chain}");
        assert!(started.elapsed() < Duration::from_secs(4), "not a timeout");
    }
}
