//! Sampling a QEMU on another host (a `vm` record with `host` set, from `gp-launch --dst-host`).
//!
//! The same gp-sample runs there, through ssh: it is handed the `vm` record (as a local one) on
//! its stdin and writes `cpu_sample` records on its stdout, which come back here. Each is tagged
//! with the host and its `time_s` moved onto this host's clock by subtracting the `clock_offset`
//! gp-launch measured for that host (the record precedes the `vm` record in the stream), so that
//! every `time_s` in the stream is on one time base. At the VM's `vm_exit` the remote sampler is
//! handed that record too and its stdin is closed: it writes its last samples and ends, and they
//! are all written before the `vm_exit` line, as for a local VM.
//!
//! The ssh session goes through gp-launch's connection to the host when its control socket
//! (`ssh.ctl`, beside the VM's forwarded QMP socket) is there, so it needs no login of its own
//! and ends with that connection; otherwise ssh connects on its own, in batch mode, with the
//! user's ssh config.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::ChildStdin;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use gp_qemu::process::{self, Child, Exit, Hooks, OutputLine};
use gp_qemu::ssh::{self, SshConfig};
use gp_records::{ClockOffset, Record, Role, Vm, VmExit};

use super::{Out, STAGE};

/// How long a remote sampler may take to end once its input is closed.
const END_GRACE: Duration = Duration::from_secs(15);

/// The control socket gp-launch keeps beside a remote VM's forwarded QMP socket.
const CONTROL_SOCKET: &str = "ssh.ctl";

/// One gp-sample running on another host.
struct Sampler {
    role: Role,
    pid: u32,
    host: String,
    child: Child,
    stdin: Option<ChildStdin>,
    /// Disconnected once the child has exited and every line it wrote has been handled.
    done: Receiver<Exit>,
}

/// The remote samplers of a run.
pub(crate) struct Remotes {
    out: Sender<Out>,
    interval: Duration,
    /// `offset_s` of each host's latest `clock_offset` record.
    offsets: HashMap<String, f64>,
    samplers: Vec<Sampler>,
}

impl Remotes {
    pub(crate) fn new(out: Sender<Out>, interval: Duration) -> Remotes {
        Remotes {
            out,
            interval,
            offsets: HashMap::new(),
            samplers: Vec::new(),
        }
    }

    /// Notes a host's clock offset (applies to the samplers started after it).
    pub(crate) fn note_offset(&mut self, c: &ClockOffset) {
        self.offsets.insert(c.host.clone(), c.offset_s);
    }

    /// Starts sampling a VM on another host. Failures are reported on stderr; the stream goes on.
    pub(crate) fn start(&mut self, vm: &Vm) {
        let Some(host) = vm.host.clone() else {
            return;
        };
        self.samplers
            .retain(|s| !(s.host == host && s.pid == vm.pid && s.role == vm.role));
        let offset_s = match self.offsets.get(&host) {
            Some(o) => *o,
            None => {
                say!(
                    "{STAGE}: no clock_offset record for {host} before its vm record: the {} \
                     VM's samples keep that host's clock",
                    vm.role
                );
                0.0
            }
        };
        match self.spawn(vm, &host, offset_s) {
            Ok(s) => self.samplers.push(s),
            Err(e) => say!(
                "{STAGE}: cannot sample the {} VM (pid {}) on {host}: {e}",
                vm.role,
                vm.pid
            ),
        }
    }

    fn spawn(&self, vm: &Vm, host: &str, offset_s: f64) -> Result<Sampler, String> {
        let control = Path::new(&vm.qmp_socket)
            .parent()
            .map(|d| d.join(CONTROL_SOCKET))
            .filter(|p| p.exists());
        let interval = format!("{}ms", self.interval.as_secs_f64() * 1e3);
        let command = ssh::stage_command(["gp-sample", "--interval", &interval]);
        let spec = ssh::session_spec(
            &format!("gp-sample@{host}"),
            host,
            &SshConfig::default(),
            control.as_deref(),
            &command,
        );
        let out = self.out.clone();
        let tag = host.to_string();
        let err_host = host.to_string();
        let (done_tx, done) = bounded::<Exit>(1);
        let hooks = Hooks {
            on_stdout_line: Box::new(move |line: OutputLine| {
                // The remote sampler passes its input back too: keep only what it adds.
                match gp_records::ndjson::parse_line(&line.text) {
                    Ok(Some(Record::CpuSample(mut s))) => {
                        s.time_s -= offset_s;
                        s.host = Some(tag.clone());
                        let _ = out.send(Out::Sample(s));
                    }
                    Ok(Some(Record::StageError(e))) => {
                        say!("{STAGE}@{tag}: {}", e.message)
                    }
                    _ => {}
                }
            }),
            on_stderr_line: Some(Box::new(move |l: &str| say!("{STAGE}@{err_host}: {l}"))),
            on_exit: Some(Box::new(move |exit| {
                let _ = done_tx.send(exit);
            })),
        };
        let child = process::spawn(&spec, hooks).map_err(|e| gp_stage::error_chain(&e))?;
        let mut stdin = child.take_stdin();
        let local = Record::Vm(Vm {
            host: None,
            ..vm.clone()
        });
        let line = serde_json::to_string(&local).map_err(|e| e.to_string())?;
        if let Some(w) = stdin.as_mut() {
            // A failure shows as the session ending, reported then.
            let _ = writeln!(w, "{line}").and_then(|()| w.flush());
        }
        Ok(Sampler {
            role: vm.role,
            pid: vm.pid,
            host: host.to_string(),
            child,
            stdin,
            done,
        })
    }

    /// Ends the remote sampler of the VM `exit` is about, after its last samples. Returns
    /// whether there was one; then an `Out::Removed(pid)` follows every sample of it.
    pub(crate) fn stop(&mut self, exit: &VmExit) -> bool {
        let Some(i) = self
            .samplers
            .iter()
            .position(|s| s.pid == exit.pid && s.role == exit.role)
        else {
            return false;
        };
        let mut s = self.samplers.swap_remove(i);
        if let Some(mut w) = s.stdin.take() {
            if let Ok(line) = serde_json::to_string(&Record::VmExit(exit.clone())) {
                let _ = writeln!(w, "{line}").and_then(|()| w.flush());
            }
        }
        finish(&s);
        let _ = self.out.send(Out::Removed(s.pid));
        true
    }

    /// Ends every remote sampler (the input ended): their last samples are queued on return.
    pub(crate) fn stop_all(&mut self) {
        for s in &mut self.samplers {
            s.stdin.take();
        }
        for s in self.samplers.drain(..) {
            finish(&s);
        }
    }
}

/// Closes a sampler's input and waits (bounded) until it has ended and its lines are handled.
fn finish(s: &Sampler) {
    let deadline = Instant::now() + END_GRACE;
    match s.done.recv_deadline(deadline) {
        Ok(exit) if !exit.success() => say!(
            "{STAGE}: the sampler of the {} VM on {} ended with {exit} (its ssh session or \
             connection was lost?)",
            s.role,
            s.host
        ),
        Ok(_) => {}
        Err(_) => {
            say!(
                "{STAGE}: the sampler of the {} VM on {} did not end within {} s: killed",
                s.role,
                s.host,
                END_GRACE.as_secs()
            );
            s.child.kill_and_reap();
            let _ = s.done.recv_timeout(Duration::from_secs(5));
        }
    }
}
