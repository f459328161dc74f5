//! `--dst-host`: the destination QEMU on another host, reached through OpenSSH.
//!
//! [`Remote::connect`] opens one multiplexed ssh connection (batch mode, the user's ssh config),
//! its control socket `ssh.ctl` in gp-launch's private runtime directory, and runs the remote
//! helper's `check` ([`crate::remote_helper`]) through it: the stage binaries, QEMU, the kernel
//! and the initrd must be on the host, and gp-launch there must be this version. Then it measures
//! the clock offset over the same channel (12 probes, the shortest round trip wins).
//!
//! The destination QEMU runs under the helper's `qemu` mode in a session of that connection
//! ([`Remote::dst_spec`]). Its QMP sockets are forwarded into the local runtime directory under
//! the names a local destination's would have, so the rest of the pipeline connects to them as
//! usual. Its console comes back on the session's stdout. QEMU dies with the session: the helper
//! ends it when its stdin (the ssh channel) closes.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver};
use gp_qemu::bind::Binding;
use gp_qemu::process::{self, format_tail, Child, Exit, Hooks, OutputLine, Spec};
use gp_qemu::runtime::RuntimeDir;
use gp_qemu::ssh::{self, ClockEstimate, Master, SshError};
use gp_records::{ClockOffset, Role};
use gp_stage::signals::Forwarder;

use crate::cli::{AccelArg, Transport};
use crate::plan::Plan;
use crate::qemu_args::Accel;
use crate::remote_helper::{
    CheckReport, ExitReport, ReadyReport, DIR_TOKEN, EXIT, MISSING, REPORT,
};
use crate::{Error, STAGE};

/// Name of the ssh control socket in gp-launch's runtime directory. gp-sample looks for it
/// beside a remote VM's forwarded QMP socket to run its remote sampler over the same connection.
pub const CONTROL_SOCKET: &str = "ssh.ctl";

/// Clock probes per measurement.
const CLOCK_PROBES: usize = 12;
/// How long the remote check may take (it runs `qemu --version` there).
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the remote helper may take to report QEMU up.
const READY_TIMEOUT: Duration = Duration::from_secs(150);

/// Why the destination host cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(transparent)]
    Ssh(#[from] SshError),
    #[error("cannot start an ssh session")]
    Session(#[source] process::SpawnError),
    #[error("the ssh session has no stdin")]
    NoStdin,
    #[error(
        "{dest} lacks the stage binaries: {} (looked on PATH and in ~/.cargo/bin there). Install \
         guestperf there: the package (cargo xtask deb, then apt install ./guestperf_*.deb on \
         it) or cargo xtask install --prefix on it; see docs/remote.md",
        missing.join(", ")
    )]
    MissingStages { dest: String, missing: Vec<String> },
    #[error(
        "{dest}: the remote gp-launch answered something this version cannot read: install the \
         same version there"
    )]
    BadAnswer {
        dest: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{dest}: the remote check failed ({how}); its stderr:\n{stderr}")]
    CheckFailed {
        dest: String,
        how: String,
        stderr: String,
    },
    #[error("{dest}: {why}")]
    Clock { dest: String, why: String },
    #[error(
        "{dest}: gp-launch there is version {there}, here {here}: install the same version there \
         (see docs/remote.md)"
    )]
    Version {
        dest: String,
        there: String,
        here: &'static str,
    },
    #[error("{dest} ({hostname}) cannot run the destination:\n  - {}", problems.join("\n  - "))]
    Unfit {
        dest: String,
        hostname: String,
        problems: Vec<String>,
    },
}

/// The connection to the destination host and what it has.
#[derive(Debug)]
pub struct Remote {
    /// `[user@]host` as given.
    pub dest: String,
    master: Master,
    pub check: CheckReport,
    pub clock: ClockEstimate,
    /// When the clock was measured (this host's clock).
    pub clock_time_s: f64,
    /// `--binary` as given: looked up on the remote `PATH` when it is a name.
    binary: String,
}

/// The outcome of [`Remote::connect`].
#[derive(Debug)]
pub enum Connected {
    Up(Box<Remote>),
    /// A signal arrived while connecting.
    Interrupted(i32),
}

fn setup(dest: &str, e: SshError) -> Error {
    match e {
        SshError::Usage(m) => Error::usage("--dst-host", format!("{dest}: {m}")),
        other => RemoteError::Ssh(other).into(),
    }
}

impl Remote {
    /// [`Remote::connect`] when `--dst-host` was given. `Ok(Err(signal))` when interrupted.
    pub fn connect_if_asked(
        plan: &Plan,
        dir: &RuntimeDir,
        signals: &Forwarder,
    ) -> Result<Result<Option<Box<Remote>>, i32>, Error> {
        if plan.dst_host.is_none() {
            return Ok(Ok(None));
        }
        Ok(match Remote::connect(plan, dir, signals)? {
            Connected::Up(r) => Ok(Some(r)),
            Connected::Interrupted(sig) => Err(sig),
        })
    }

    /// Connects to `plan.dst_host`, checks it, and measures its clock.
    pub fn connect(plan: &Plan, dir: &RuntimeDir, signals: &Forwarder) -> Result<Connected, Error> {
        let dest = plan
            .dst_host
            .clone()
            .ok_or_else(|| Error::usage("--dst-host", "not given"))?;
        let control = dir.socket_path(CONTROL_SOCKET)?;
        if plan.verbose {
            say!("{STAGE}: connecting to {dest} over ssh");
        }
        let started = Instant::now();
        let master = match Master::connect(&dest, &plan.ssh, &control, || {
            signals
                .received()
                .map_or(Ok(()), |_| Err("interrupted".into()))
        }) {
            Ok(m) => m,
            Err(SshError::Interrupted) => {
                return Ok(Connected::Interrupted(
                    signals.received().unwrap_or(libc::SIGINT),
                ))
            }
            Err(e) => return Err(setup(&dest, e)),
        };
        let mut words: Vec<OsString> = vec![
            "gp-launch".into(),
            crate::remote_helper::FLAG.into(),
            "check".into(),
            "--binary".into(),
            plan.binary_arg.clone().into(),
            "--kernel".into(),
            plan.kernel.clone().into(),
            "--initrd".into(),
            plan.initrd.clone().into(),
        ];
        if plan.transport == Transport::Rdma {
            words.push("--rdma".into());
        }
        let (check, clock, clock_time_s) = run_check(&master, &dest, &words)?;
        let remote = Remote {
            dest,
            master,
            check,
            clock,
            clock_time_s,
            binary: plan.binary_arg.clone(),
        };
        remote.judge(plan)?;
        if plan.verbose {
            say!(
                "{STAGE}: {} ({}) ready in {:.2} s: QEMU {}, clock offset {:+.3} ms ± {:.3} ms",
                remote.dest,
                remote.check.hostname,
                started.elapsed().as_secs_f64(),
                remote.check.qemu_version.as_deref().unwrap_or("?"),
                remote.clock.offset_s * 1e3,
                remote.clock.rtt_s * 1e3 / 2.0
            );
        }
        Ok(Connected::Up(Box::new(remote)))
    }

    /// Refuses a host that lacks something, naming all of it.
    fn judge(&self, plan: &Plan) -> Result<(), Error> {
        let c = &self.check;
        if c.version != env!("CARGO_PKG_VERSION") {
            return Err(RemoteError::Version {
                dest: self.dest.clone(),
                there: c.version.clone(),
                here: env!("CARGO_PKG_VERSION"),
            }
            .into());
        }
        if !c.problems.is_empty() {
            return Err(RemoteError::Unfit {
                dest: self.dest.clone(),
                hostname: c.hostname.clone(),
                problems: c.problems.clone(),
            }
            .into());
        }
        let local = plan.binary.version.number();
        if let Some(v) = c.qemu_version.as_deref().filter(|v| *v != local) {
            say!(
                "{STAGE}: warning: QEMU {v} on {} but {local} here: the machine type `q35` may \
                 mean different versions on the two sides, and the migration may fail",
                self.dest
            );
        }
        Ok(())
    }

    /// The URI the destination listens on: the address the ssh connection arrived at (what
    /// this host reaches it by) and a port that was free there.
    pub fn migrate_uri(&self, transport: Transport) -> String {
        let addr = self.check.addr.clone().unwrap_or_default();
        let port = self.check.port.unwrap_or(0);
        let host = if addr.contains(':') {
            format!("[{addr}]")
        } else {
            addr
        };
        let scheme = match transport {
            Transport::Rdma => "rdma",
            _ => "tcp",
        };
        format!("{scheme}:{host}:{port}")
    }

    /// The `clock_offset` record.
    pub fn clock_offset(&self) -> ClockOffset {
        ClockOffset {
            time_s: self.clock_time_s,
            host: self.dest.clone(),
            offset_s: self.clock.offset_s,
            rtt_s: self.clock.rtt_s,
        }
    }

    /// Why KVM cannot run the destination, if it cannot.
    pub fn kvm_unusable(&self) -> Option<String> {
        if !self.check.accels.is_empty() && !self.check.accels.iter().any(|a| a == "kvm") {
            return Some(format!("QEMU on {} was built without KVM", self.dest));
        }
        self.check
            .kvm_unusable
            .as_ref()
            .map(|w| format!("on {}: {w}", self.dest))
    }

    /// Paths QEMU on the host gets for its QMP sockets (resolved there by the helper).
    pub fn socket_arg(role: Role, name: &str) -> PathBuf {
        PathBuf::from(format!("{DIR_TOKEN}/{role}-{name}.sock"))
    }

    /// The ssh session that runs `qemu_args` under the helper on the host. `qemu_args` holds the
    /// sockets from [`Remote::socket_arg`].
    pub fn dst_spec(&self, role: Role, qemu_args: &[String], bind: &Binding) -> Spec {
        let mut words: Vec<OsString> = vec![
            "gp-launch".into(),
            crate::remote_helper::FLAG.into(),
            "qemu".into(),
        ];
        for name in ["private", "qmp"] {
            words.push("--wait-socket".into());
            words.push(format!("{role}-{name}.sock").into());
        }
        if !bind.cpus.is_empty() {
            words.push("--cpu-bind".into());
            words.push(gp_qemu::bind::format_list(&bind.cpus).into());
        }
        if !bind.nodes.is_empty() {
            words.push("--mem-bind".into());
            words.push(gp_qemu::bind::format_list(&bind.nodes).into());
        }
        words.push("--".into());
        words.push(self.binary.clone().into());
        words.extend(qemu_args.iter().map(OsString::from));
        self.master
            .session(&format!("qemu-{role}"), &ssh::stage_command(words))
    }

    /// Wraps a VM's console hook: the helper's report lines are taken out of the console.
    pub fn split_stdout(
        mut console: Box<dyn FnMut(OutputLine) + Send>,
    ) -> (Box<dyn FnMut(OutputLine) + Send>, DstLink) {
        let (ready_tx, ready_rx) = bounded::<ReadyReport>(1);
        let exit = Arc::new(Mutex::new(None::<ExitReport>));
        let exit_slot = Arc::clone(&exit);
        let mut ready_tx = Some(ready_tx);
        let hook = Box::new(move |line: OutputLine| {
            if let Some(json) = line.text.strip_prefix(REPORT) {
                if let (Some(tx), Ok(r)) = (ready_tx.take(), serde_json::from_str(json)) {
                    let _ = tx.send(r);
                    return;
                }
            }
            if let Some(json) = line.text.strip_prefix(EXIT) {
                if let Ok(r) = serde_json::from_str(json) {
                    *exit_slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                    return;
                }
            }
            console(line);
        });
        (
            hook,
            DstLink {
                ready: ready_rx,
                exit,
            },
        )
    }

    /// Waits for the helper to report QEMU up, then forwards its QMP sockets to `private` and
    /// `public` here. Errors say why, with the session's stderr.
    pub fn await_dst(
        &self,
        child: &Child,
        link: DstLink,
        private: &Path,
        public: &Path,
        signals: &Forwarder,
    ) -> Result<RemoteVm, AwaitError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let ready = loop {
            match link.ready.recv_timeout(Duration::from_millis(50)) {
                Ok(r) => break r,
                Err(_) if signals.received().is_some() => {
                    return Err(AwaitError::Interrupted(signals.received().unwrap_or(0)))
                }
                Err(_) if child.has_exited() || Instant::now() >= deadline => {
                    let _ = child.wait_until(Instant::now() + Duration::from_secs(2));
                    return Err(AwaitError::Failed(self.session_failure(child)));
                }
                Err(_) => {}
            }
        };
        for (local, name) in [(private, "private"), (public, "qmp")] {
            let remote = ready.dir.join(format!("{}-{name}.sock", Role::Dst));
            self.master
                .forward(local, &remote)
                .map_err(|e| AwaitError::Failed(e.to_string()))?;
        }
        Ok(RemoteVm {
            host: self.dest.clone(),
            pid: ready.pid,
            dir: ready.dir,
            argv: ready.argv,
            spawned_s: ready.spawned_s - self.clock.offset_s,
            offset_s: self.clock.offset_s,
            exit: link.exit,
        })
    }

    /// Why the destination session ended before QEMU was up.
    fn session_failure(&self, child: &Child) -> String {
        let stderr = child.stderr_tail_after_exit();
        if !self.master.alive() {
            return format!(
                "the ssh connection to {} ended: {}",
                self.dest,
                self.master.failure().unwrap_or_default()
            );
        }
        match child.try_exit() {
            Some(exit) => format!(
                "QEMU on {} did not come up (the remote helper ended: {exit}); its stderr ends \
                 with:\n{}",
                self.dest,
                format_tail(&stderr)
            ),
            None => format!(
                "QEMU on {} was not up within {} s; its stderr ends with:\n{}",
                self.dest,
                READY_TIMEOUT.as_secs(),
                format_tail(&stderr)
            ),
        }
    }

    /// The ssh connection's pid (tests kill it to cut the connection).
    pub fn master_pid(&self) -> u32 {
        self.master.pid()
    }

    /// Closes the connection; every session on it ends.
    pub fn close(self) {
        self.master.close();
    }
}

/// The accelerator both hosts can use: KVM chosen here falls back to TCG (or fails with
/// `--accel kvm`) when the destination host cannot run KVM.
pub fn reconcile_accel(
    remote: Option<&Remote>,
    plan: &Plan,
    accel: Accel,
    note: Option<String>,
) -> Result<(Accel, Option<String>), Error> {
    let Some(r) = remote else {
        return Ok((accel, note));
    };
    match (accel, r.kvm_unusable()) {
        (Accel::Kvm, Some(why)) if plan.accel == AccelArg::Kvm => {
            Err(Error::KvmBroken(crate::accel::KvmUnusable(why)))
        }
        (Accel::Kvm, Some(why)) => {
            say!("{STAGE}: warning: KVM does not work {why}; using TCG on both hosts");
            Ok((Accel::Tcg, Some(format!("KVM unusable {why}; using TCG"))))
        }
        _ => Ok((accel, note)),
    }
}

/// What [`Remote::split_stdout`] hands to [`Remote::await_dst`].
#[derive(Debug)]
pub struct DstLink {
    ready: Receiver<ReadyReport>,
    exit: Arc<Mutex<Option<ExitReport>>>,
}

/// Why the destination did not come up.
#[derive(Debug)]
pub enum AwaitError {
    Failed(String),
    Interrupted(i32),
}

/// The destination QEMU on the other host.
#[derive(Debug)]
pub struct RemoteVm {
    pub host: String,
    /// QEMU's pid there.
    pub pid: u32,
    /// The helper's runtime directory there (QMP sockets).
    pub dir: PathBuf,
    /// QEMU's command line there.
    pub argv: Vec<String>,
    /// When QEMU was spawned, on this host's clock.
    pub spawned_s: f64,
    offset_s: f64,
    exit: Arc<Mutex<Option<ExitReport>>>,
}

impl RemoteVm {
    /// QEMU's exit from the ssh session's: the helper's report when it made one (its time
    /// moved to this host's clock), else `Err` with why the connection was lost.
    pub fn exit(&self, session: Exit) -> Result<Exit, (Exit, String)> {
        let reported = *self.exit.lock().unwrap_or_else(|e| e.into_inner());
        match reported {
            Some(r) => Ok(Exit {
                status: r.status,
                signal: r.signal,
                time_s: r.time_s - self.offset_s,
            }),
            None => Err((
                session,
                format!(
                    "the ssh connection to {} was lost ({session}); the destination QEMU there \
                     (pid {}) ends with it",
                    self.host, self.pid
                ),
            )),
        }
    }
}

/// Runs the helper's `check` through `master`, then the clock probes on the same session.
fn run_check(
    master: &Master,
    dest: &str,
    words: &[OsString],
) -> Result<(CheckReport, ClockEstimate, f64), Error> {
    // The remote shell says which stage binary is missing before trying to run one.
    let mut script = OsString::from(
        "PATH=\"$PATH:$HOME/.cargo/bin\"; export PATH; m=; for b in gp-launch gp-sample; do \
         command -v \"$b\" >/dev/null 2>&1 || m=\"$m $b\"; done; if [ -n \"$m\" ]; then echo \"",
    );
    script.push(MISSING);
    script.push("$m\"; exit 127; fi; exec ");
    script.push(ssh::command_line(words));
    let spec = master.session("ssh-check", &script);
    let (tx, rx) = unbounded::<OutputLine>();
    let hooks = Hooks {
        on_stdout_line: Box::new(move |l| {
            let _ = tx.send(l);
        }),
        on_stderr_line: None,
        on_exit: None,
    };
    let child = process::spawn(&spec, hooks).map_err(RemoteError::Session)?;
    let deadline = Instant::now() + CHECK_TIMEOUT;
    let check = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(l) => {
                if let Some(rest) = l.text.strip_prefix(MISSING) {
                    return Err(RemoteError::MissingStages {
                        dest: dest.to_string(),
                        missing: rest.split_whitespace().map(String::from).collect(),
                    }
                    .into());
                }
                if let Some(json) = l.text.strip_prefix(REPORT) {
                    break serde_json::from_str::<CheckReport>(json).map_err(|source| {
                        RemoteError::BadAnswer {
                            dest: dest.to_string(),
                            source,
                        }
                    })?;
                }
            }
            Err(_) if child.has_exited() || Instant::now() >= deadline => {
                let stderr = child.stderr_tail_after_exit();
                return Err(RemoteError::CheckFailed {
                    dest: dest.to_string(),
                    how: child
                        .try_exit()
                        .map_or("no answer".to_string(), |e| e.to_string()),
                    stderr: format_tail(&stderr),
                }
                .into());
            }
            Err(_) => {}
        }
    };
    let mut stdin = child.take_stdin().ok_or(RemoteError::NoStdin)?;
    let clock_time_s = gp_records::now_s();
    let clock = ssh::measure_clock(&mut stdin, &rx, CLOCK_PROBES, Duration::from_secs(10))
        .map_err(|why| RemoteError::Clock {
            dest: dest.to_string(),
            why,
        })?;
    drop(stdin);
    if child
        .wait_until(Instant::now() + Duration::from_secs(10))
        .is_none()
    {
        child.kill_and_reap();
    }
    Ok((check, clock, clock_time_s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_leave_the_console() {
        let (tx, rx) = unbounded::<String>();
        let (mut hook, link) = Remote::split_stdout(Box::new(move |l| {
            let _ = tx.send(l.text);
        }));
        let line = |t: &str| OutputLine {
            text: t.into(),
            time_s: 1.0,
        };
        hook(line(
            r#"@gp-remote {"pid":7,"dir":"/run/x","spawned_s":5.0,"argv":["q"]}"#,
        ));
        hook(line("[    0.1] kernel"));
        hook(line(
            r#"@gp-remote-exit {"status":0,"signal":null,"time_s":9.5}"#,
        ));
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["[    0.1] kernel"]);
        let ready = link.ready.try_recv().unwrap();
        assert_eq!(ready.pid, 7);
        let vm = RemoteVm {
            host: "h".into(),
            pid: 7,
            dir: ready.dir,
            argv: ready.argv,
            spawned_s: 0.0,
            offset_s: 2.0,
            exit: link.exit,
        };
        let session = Exit {
            status: 0,
            signal: None,
            time_s: 20.0,
        };
        let e = vm.exit(session).unwrap();
        assert_eq!(e.time_s, 7.5, "moved to this host's clock");
    }

    #[test]
    fn a_session_without_an_exit_report_lost_its_connection() {
        let (hook, link) = Remote::split_stdout(Box::new(|_| {}));
        drop(hook);
        let vm = RemoteVm {
            host: "far".into(),
            pid: 9,
            dir: "/x".into(),
            argv: vec![],
            spawned_s: 0.0,
            offset_s: 0.0,
            exit: link.exit,
        };
        let session = Exit {
            status: 255,
            signal: None,
            time_s: 1.0,
        };
        let (_, why) = vm.exit(session).unwrap_err();
        assert!(why.contains("ssh connection to far was lost"), "{why}");
    }
}
