//! The far end of a `--dst-host` run: `gp-launch --remote-helper MODE ...`, started by the local
//! gp-launch through ssh on the destination host. Not meant to be run by hand.
//!
//! - `check`: reports on one line what the host has (QEMU, kernel, initrd, gp-sample, KVM, the
//!   address the ssh connection arrived at, a free port there), then answers clock probes (one
//!   line in, `@gp-clock T` out) until its input ends.
//! - `qemu`: starts the destination QEMU in a private runtime directory of its own, waits for its
//!   QMP sockets, reports `@gp-remote {pid, dir, spawned_s, argv}`, then copies QEMU's console to
//!   its stdout and QEMU's stderr to its stderr. QEMU lives exactly as long as the ssh channel:
//!   when the helper's stdin reaches EOF (the connection dropped, or the local gp-launch is gone),
//!   or on SIGTERM/SIGHUP/SIGINT, it ends QEMU (SIGTERM, then SIGKILL); QEMU also gets SIGKILL
//!   if the helper itself dies. When QEMU exits the helper writes `@gp-remote-exit {status,
//!   signal, time_s}`, removes its directory and exits with QEMU's status.
//!
//! Times it reports are this host's clock (the local side corrects them with the measured
//! offset).

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use crossbeam_channel::{unbounded, Receiver, Sender};
use gp_qemu::bind::{Binding, Method, Topology};
use gp_qemu::process::{self, Exit, Hooks, Spec};
use gp_qemu::runtime::RuntimeDir;
use gp_qemu::ssh::remote_now_s;
use gp_stage::signals::Forwarder;
use serde::{Deserialize, Serialize};

/// The first argument that selects helper mode.
pub const FLAG: &str = "--remote-helper";
/// Prefix of the helper's report lines (`check` result, `qemu` ready).
pub const REPORT: &str = "@gp-remote ";
/// Prefix of the line saying how QEMU exited.
pub const EXIT: &str = "@gp-remote-exit ";
/// Written by the remote shell when a stage binary is missing, followed by their names.
pub const MISSING: &str = "@gp-remote-missing";
/// Stands for the helper's runtime directory in QEMU's arguments.
pub const DIR_TOKEN: &str = "@GP_REMOTE_DIR@";

/// How long QEMU may take to create its QMP sockets.
const SOCKET_DEADLINE: Duration = Duration::from_secs(120);
/// How long QEMU gets to exit after SIGTERM once the connection is gone.
const TERM_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Parser)]
#[command(name = "gp-launch --remote-helper", no_binary_name = true)]
struct HelperCli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Report what this host has, then answer clock probes.
    Check {
        #[arg(long)]
        binary: String,
        #[arg(long)]
        kernel: PathBuf,
        #[arg(long)]
        initrd: PathBuf,
        #[arg(long)]
        rdma: bool,
    },
    /// Run QEMU for as long as the input stays open.
    Qemu {
        /// Host CPUs to bind QEMU to.
        #[arg(long, value_parser = parse_ids)]
        cpu_bind: Option<IdList>,
        /// NUMA nodes for QEMU's memory.
        #[arg(long, value_parser = parse_ids)]
        mem_bind: Option<IdList>,
        /// A socket (in the runtime directory) QEMU must have created before it counts as up.
        #[arg(long = "wait-socket")]
        wait_sockets: Vec<String>,
        /// QEMU and its arguments; `@GP_REMOTE_DIR@` stands for the runtime directory.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<OsString>,
    },
}

/// A list of CPU or node ids (`0,1`, `0-3`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct IdList(Vec<u32>);

fn parse_ids(s: &str) -> Result<IdList, String> {
    gp_qemu::bind::parse_list(s)
        .map(IdList)
        .map_err(|e| e.to_string())
}

/// What `check` reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    /// gp-launch's version there (both ends must match).
    pub version: String,
    pub hostname: String,
    /// The address the ssh connection arrived at (from `SSH_CONNECTION`): what the source can
    /// reach this host at.
    pub addr: Option<String>,
    /// A port that was free on `addr`.
    pub port: Option<u16>,
    pub qemu_binary: Option<String>,
    pub qemu_version: Option<String>,
    pub accels: Vec<String>,
    /// Why KVM cannot be used there, when it cannot.
    pub kvm_unusable: Option<String>,
    pub gp_sample: Option<String>,
    pub cpus: u32,
    /// What is missing or wrong, each with its fix.
    pub problems: Vec<String>,
}

/// How QEMU ended, as the helper saw it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExitReport {
    pub status: i32,
    pub signal: Option<i32>,
    /// This host's clock.
    pub time_s: f64,
}

/// QEMU is up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadyReport {
    pub pid: u32,
    pub dir: PathBuf,
    /// This host's clock.
    pub spawned_s: f64,
    pub argv: Vec<String>,
}

/// Runs the helper when gp-launch was started as one (`argv[1] == --remote-helper`).
pub fn main_if_helper() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(FLAG.as_ref()) {
        return None;
    }
    let cli = match HelperCli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return Some(ExitCode::from(2));
        }
    };
    let code = match cli.mode {
        Mode::Check {
            binary,
            kernel,
            initrd,
            rdma,
        } => check(&binary, &kernel, &initrd, rdma),
        Mode::Qemu {
            cpu_bind,
            mem_bind,
            wait_sockets,
            command,
        } => {
            let binding = Binding {
                cpus: cpu_bind.map(|l| l.0).unwrap_or_default(),
                nodes: mem_bind.map(|l| l.0).unwrap_or_default(),
            };
            match run_qemu(&binding, &wait_sockets, command) {
                Ok(code) => code,
                Err(e) => {
                    say!("gp-launch (remote helper): {e}");
                    1
                }
            }
        }
    };
    Some(ExitCode::from(code))
}

fn check(binary: &str, kernel: &Path, initrd: &Path, rdma: bool) -> u8 {
    let report = check_report(binary, kernel, initrd, rdma);
    let line = serde_json::to_string(&report).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{REPORT}{line}")
        .and_then(|()| out.flush())
        .is_err()
    {
        return 1;
    }
    match gp_qemu::ssh::serve_clock(std::io::stdin().lock(), out) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// What this host has for a destination QEMU.
pub fn check_report(binary: &str, kernel: &Path, initrd: &Path, rdma: bool) -> CheckReport {
    let info = crate::host::host_info();
    let mut r = CheckReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        hostname: info.hostname,
        cpus: info.cpus,
        ..CheckReport::default()
    };
    match gp_qemu::binary::QemuBinary::detect(binary) {
        Ok(b) => {
            r.qemu_binary = Some(b.path.to_string_lossy().into_owned());
            r.qemu_version = Some(b.version.number());
            r.accels = b.accels.clone();
            if rdma && !b.supports_rdma() {
                r.problems.push(format!(
                    "{} was built without RDMA migration: use --transport tcp",
                    b.path.display()
                ));
            }
        }
        Err(e) => r.problems.push(format!(
            "QEMU: {e} (install QEMU there, or pass --binary with its path there)"
        )),
    }
    r.kvm_unusable = crate::accel::kvm_device_usable().err().map(|e| e.0);
    for (what, path) in [("kernel", kernel), ("initrd", initrd)] {
        if let Err(e) = std::fs::File::open(path) {
            r.problems.push(format!(
                "the {what} {} cannot be read there: {e} (copy it to the same path there, e.g. \
                 with scp)",
                path.display()
            ));
        }
    }
    r.gp_sample = gp_qemu::bind::find_on_path("gp-sample").map(|p| p.display().to_string());
    if r.gp_sample.is_none() {
        r.problems
            .push("gp-sample is not installed there (see docs/remote.md)".into());
    }
    if rdma && crate::host::rdma_devices().is_empty() {
        r.problems.push(
            "no RDMA device there (/sys/class/infiniband is empty): use --transport tcp".into(),
        );
    }
    // SSH_CONNECTION: "client_ip client_port server_ip server_port".
    r.addr = std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|v| v.split_whitespace().nth(2).map(str::to_string));
    match &r.addr {
        Some(addr) => {
            match std::net::TcpListener::bind((addr.as_str(), 0)).and_then(|l| l.local_addr()) {
                Ok(a) => r.port = Some(a.port()),
                Err(e) => r.problems.push(format!(
                    "cannot find a free TCP port on {addr} for the migration: {e}"
                )),
            }
        }
        None => r.problems.push(
            "SSH_CONNECTION is not set, so the address the source can reach this host at is \
             unknown (is this an OpenSSH session?)"
                .into(),
        ),
    }
    r
}

enum Ev {
    Line(String),
    Exited(Exit),
    InputClosed,
    Signal(i32),
}

/// How watching QEMU ended: its own exit, or why the helper ends it.
#[derive(Debug, PartialEq)]
enum Watched {
    /// QEMU exited by itself.
    Exited(Exit),
    /// The helper ends QEMU for this reason (said on stderr).
    Stop(String),
    /// A write failed or no event can come any more: the helper ends QEMU without a word.
    Gone,
}

/// The `qemu` mode (see the module docs): runs QEMU for as long as the input stays open.
/// Returns QEMU's exit status, or why QEMU could not be run or was not up.
fn run_qemu(
    binding: &Binding,
    wait_sockets: &[String],
    command: Vec<OsString>,
) -> Result<u8, String> {
    let signals = Forwarder::start().map_err(|e| format!("signal handlers: {e}"))?;
    let dir = RuntimeDir::new("gp-launch-remote")
        .map_err(|e| format!("cannot create a runtime directory: {e}"))?;
    let spec = qemu_spec(binding, command, dir.path())?;
    let argv = spec.argv();

    let (tx, rx) = unbounded::<Ev>();
    let spawned_s = remote_now_s();
    let child = process::spawn(&spec, event_hooks(&tx)).map_err(|e| gp_stage::error_chain(&e))?;
    forward_input_and_signals(tx, &signals)?;

    let mut out = std::io::stdout().lock();
    let up = wait_for_sockets(dir.path(), wait_sockets, &rx);
    let ready = up.is_ok();
    let watched = match up {
        Ok(pending) => {
            let report = ReadyReport {
                pid: child.pid(),
                dir: dir.path().to_path_buf(),
                spawned_s,
                argv,
            };
            if write_ready(&mut out, &report, &pending) {
                relay_console(&mut out, &rx)
            } else {
                Watched::Gone
            }
        }
        Err(ended) => ended,
    };
    let stopped = matches!(watched, Watched::Stop(_));
    let exit = match watched {
        Watched::Exited(e) => e,
        ended => {
            if let Watched::Stop(why) = &ended {
                say!("gp-launch (remote helper): {why}: ending QEMU");
            }
            child
                .stop(
                    || {
                        child.signal(libc::SIGTERM);
                    },
                    TERM_GRACE,
                )
                .0
        }
    };
    write_exit(&mut out, &rx, &exit);
    drop(child);
    let _ = dir.remove();
    if !ready && exit.signal.is_none() && !stopped {
        return Err(format!("QEMU {exit} before it was up"));
    }
    Ok(exit.status.clamp(0, 255) as u8)
}

/// The destination QEMU to run: `command` with [`DIR_TOKEN`] replaced by `dir`, bound to
/// `binding` once it is checked against this host's CPUs and nodes.
fn qemu_spec(binding: &Binding, command: Vec<OsString>, dir: &Path) -> Result<Spec, String> {
    let dir_text = dir.to_string_lossy().into_owned();
    let mut words = command.into_iter().map(|w| match w.to_str() {
        Some(s) if s.contains(DIR_TOKEN) => OsString::from(s.replace(DIR_TOKEN, &dir_text)),
        _ => w,
    });
    let program = words.next().ok_or("no QEMU command given")?;
    let mut spec = Spec::new("qemu-dst", program);
    spec.args(words);
    if !binding.is_empty() {
        let topology =
            Topology::host().map_err(|e| format!("cannot read the CPU topology: {e}"))?;
        topology
            .check("--dst-cpu-bind/--dst-mem-bind", binding)
            .map_err(|e| e.to_string())?;
        Method::auto().apply(binding, &mut spec);
    }
    Ok(spec)
}

/// QEMU's console lines and its exit as events on `tx`; its stderr lines go to ours.
fn event_hooks(tx: &Sender<Ev>) -> Hooks {
    let tx_line = tx.clone();
    let tx_exit = tx.clone();
    Hooks {
        on_stdout_line: Box::new(move |l| {
            let _ = tx_line.send(Ev::Line(l.text));
        }),
        on_stderr_line: Some(Box::new(|l: &str| say!("{l}"))),
        on_exit: Some(Box::new(move |e| {
            let _ = tx_exit.send(Ev::Exited(e));
        })),
    }
}

/// Starts the threads that send the end of the helper's input and each signal it gets as
/// events on `tx`.
fn forward_input_and_signals(tx: Sender<Ev>, signals: &Forwarder) -> Result<(), String> {
    let tx_in = tx.clone();
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let _ = tx_in.send(Ev::InputClosed);
        })
        .map_err(|e| format!("stdin thread: {e}"))?;
    let sig_rx = signals.receiver().clone();
    let tx_sig = tx;
    std::thread::Builder::new()
        .name("signals-fwd".into())
        .spawn(move || {
            for s in sig_rx.iter() {
                let _ = tx_sig.send(Ev::Signal(s));
            }
        })
        .map_err(|e| format!("signal thread: {e}"))?;
    Ok(())
}

/// Waits until every socket of `wait_sockets` exists in `dir`, keeping the console lines that
/// come meanwhile: `Ok(lines)` when QEMU is up, else how the wait ended.
fn wait_for_sockets(
    dir: &Path,
    wait_sockets: &[String],
    rx: &Receiver<Ev>,
) -> Result<Vec<String>, Watched> {
    let mut pending: Vec<String> = Vec::new();
    // Up once every socket exists: QEMU then answers QMP (the forwards connect to them).
    let deadline = Instant::now() + SOCKET_DEADLINE;
    loop {
        if wait_sockets.iter().all(|s| dir.join(s).exists()) {
            return Ok(pending);
        }
        if Instant::now() >= deadline {
            return Err(Watched::Stop(format!(
                "QEMU did not create its QMP sockets within {} s",
                SOCKET_DEADLINE.as_secs()
            )));
        }
        // No event for "socket created": poll, briefly.
        if let Ok(ev) = rx.recv_timeout(Duration::from_millis(10)) {
            match ev {
                Ev::Line(l) => pending.push(l),
                Ev::Exited(e) => return Err(Watched::Exited(e)),
                Ev::InputClosed => return Err(Watched::Stop("input closed".into())),
                Ev::Signal(s) => return Err(Watched::Stop(process::signal_name(s))),
            }
        }
    }
}

/// Writes the `@gp-remote` ready report, then the console lines that came before it, and
/// flushes. False when a write failed.
fn write_ready(out: &mut impl Write, report: &ReadyReport, pending: &[String]) -> bool {
    let line = serde_json::to_string(report).unwrap_or_default();
    writeln!(out, "{REPORT}{line}").is_ok()
        && pending.iter().all(|l| writeln!(out, "{l}").is_ok())
        && out.flush().is_ok()
}

/// Copies QEMU's console lines to `out`, each flushed, until QEMU exits, the ssh connection
/// closes, a signal comes or a write fails.
fn relay_console(out: &mut impl Write, rx: &Receiver<Ev>) -> Watched {
    loop {
        match rx.recv() {
            Ok(Ev::Line(l)) => {
                if writeln!(out, "{l}").and_then(|()| out.flush()).is_err() {
                    return Watched::Gone;
                }
            }
            Ok(Ev::Exited(e)) => return Watched::Exited(e),
            Ok(Ev::InputClosed) => return Watched::Stop("the ssh connection closed".into()),
            Ok(Ev::Signal(s)) => return Watched::Stop(process::signal_name(s)),
            Err(_) => return Watched::Gone,
        }
    }
}

/// Writes the console lines still queued, then the `@gp-remote-exit` report of `exit`, and
/// flushes; write errors are ignored (nobody may be reading any more).
fn write_exit(out: &mut impl Write, rx: &Receiver<Ev>, exit: &Exit) {
    // Every console line comes before the exit event.
    for ev in rx.try_iter() {
        if let Ev::Line(l) = ev {
            let _ = writeln!(out, "{l}");
        }
    }
    let report = ExitReport {
        status: exit.status,
        signal: exit.signal,
        time_s: gp_qemu::ssh::reported_time_s(exit.time_s),
    };
    let _ = writeln!(
        out,
        "{EXIT}{}",
        serde_json::to_string(&report).unwrap_or_default()
    );
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn helper_cli_is_well_formed() {
        HelperCli::command().debug_assert();
        let c = HelperCli::try_parse_from([
            "qemu",
            "--wait-socket",
            "dst-qmp.sock",
            "--cpu-bind",
            "0-1",
            "qemu-system-x86_64",
            "-qmp",
            "unix:@GP_REMOTE_DIR@/dst-qmp.sock,server=on,wait=off",
        ])
        .unwrap();
        let Mode::Qemu {
            cpu_bind, command, ..
        } = c.mode
        else {
            panic!()
        };
        assert_eq!(cpu_bind, Some(IdList(vec![0, 1])));
        assert_eq!(command.len(), 3);
    }

    #[test]
    fn check_names_what_is_missing() {
        let r = check_report(
            "/nonexistent/qemu",
            Path::new("/nonexistent/vmlinuz"),
            Path::new("/nonexistent/initrd"),
            false,
        );
        assert_eq!(r.version, env!("CARGO_PKG_VERSION"));
        let all = r.problems.join("\n");
        assert!(all.contains("QEMU"), "{all}");
        assert!(
            all.contains("/nonexistent/vmlinuz") && all.contains("scp"),
            "{all}"
        );
        assert!(all.contains("/nonexistent/initrd"), "{all}");
    }

    fn exit(status: i32) -> Exit {
        Exit {
            status,
            signal: None,
            time_s: 100.0,
        }
    }

    fn lines(out: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(out)
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn qemu_gets_the_runtime_directory_in_place_of_its_token() {
        use std::os::unix::ffi::OsStrExt;
        let not_utf8 = OsString::from(std::ffi::OsStr::from_bytes(b"@GP_REMOTE_DIR@\xff"));
        let command = vec![
            OsString::from("qemu-system-x86_64"),
            OsString::from("-qmp"),
            OsString::from("unix:@GP_REMOTE_DIR@/dst-qmp.sock,server=on,wait=off"),
            not_utf8.clone(),
        ];
        let spec = qemu_spec(&Binding::default(), command, Path::new("/run/gp-x")).unwrap();
        assert_eq!(spec.program, "qemu-system-x86_64");
        assert_eq!(
            spec.args[1],
            "unix:/run/gp-x/dst-qmp.sock,server=on,wait=off"
        );
        assert_eq!(
            spec.args[2], not_utf8,
            "a word that is not UTF-8 is left alone"
        );
        let e = qemu_spec(&Binding::default(), Vec::new(), Path::new("/run/gp-x")).unwrap_err();
        assert_eq!(e, "no QEMU command given");
    }

    #[test]
    fn the_wait_for_sockets_keeps_early_lines_and_ends_on_an_event() {
        let dir = RuntimeDir::new("gp-helper-test").unwrap();
        let sockets = ["dst-qmp.sock".to_string()];
        let (tx, rx) = unbounded();
        tx.send(Ev::Line("early".into())).unwrap();
        let path = dir.path().join("dst-qmp.sock");
        // The socket appears once the wait has taken the early line.
        let maker = std::thread::spawn(move || {
            while !tx.is_empty() {
                std::thread::yield_now();
            }
            std::fs::write(path, b"").unwrap();
        });
        assert_eq!(
            wait_for_sockets(dir.path(), &sockets, &rx),
            Ok(vec!["early".into()])
        );
        maker.join().unwrap();

        let (tx, rx) = unbounded();
        tx.send(Ev::Line("lost".into())).unwrap();
        tx.send(Ev::Exited(exit(1))).unwrap();
        let missing = ["other.sock".to_string()];
        assert_eq!(
            wait_for_sockets(dir.path(), &missing, &rx),
            Err(Watched::Exited(exit(1)))
        );
        tx.send(Ev::InputClosed).unwrap();
        assert_eq!(
            wait_for_sockets(dir.path(), &missing, &rx),
            Err(Watched::Stop("input closed".into()))
        );
    }

    #[test]
    fn the_ready_report_comes_before_the_early_lines() {
        let report = ReadyReport {
            pid: 42,
            dir: "/run/gp-x".into(),
            spawned_s: 1.5,
            argv: vec!["qemu-system-x86_64".into()],
        };
        let mut out = Vec::new();
        assert!(write_ready(&mut out, &report, &["a".into(), "b".into()]));
        let written = lines(&out);
        assert_eq!(written.len(), 3, "{written:?}");
        let json = written[0].strip_prefix(REPORT).unwrap();
        assert_eq!(serde_json::from_str::<ReadyReport>(json).unwrap(), report);
        assert_eq!(written[1..], ["a", "b"]);
        let mut full = [0u8; 8];
        assert!(
            !write_ready(&mut &mut full[..], &report, &[]),
            "a failed write"
        );
    }

    #[test]
    fn the_console_is_relayed_until_the_connection_closes_or_qemu_exits() {
        let (tx, rx) = unbounded();
        tx.send(Ev::Line("one".into())).unwrap();
        tx.send(Ev::Line("two".into())).unwrap();
        tx.send(Ev::InputClosed).unwrap();
        tx.send(Ev::Line("after".into())).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            relay_console(&mut out, &rx),
            Watched::Stop("the ssh connection closed".into())
        );
        assert_eq!(lines(&out), ["one", "two"]);
        tx.send(Ev::Signal(libc::SIGHUP)).unwrap();
        assert_eq!(
            relay_console(&mut out, &rx),
            Watched::Stop("SIGHUP".into()),
            "the line after the close was relayed first"
        );
        assert_eq!(lines(&out), ["one", "two", "after"]);
        tx.send(Ev::Exited(exit(3))).unwrap();
        assert_eq!(relay_console(&mut out, &rx), Watched::Exited(exit(3)));
        drop(tx);
        assert_eq!(relay_console(&mut out, &rx), Watched::Gone);
        let (tx, rx) = unbounded();
        tx.send(Ev::Line("does not fit".into())).unwrap();
        let mut full = [0u8; 4];
        assert_eq!(relay_console(&mut &mut full[..], &rx), Watched::Gone);
    }

    #[test]
    fn the_exit_report_comes_after_the_last_console_lines() {
        let (tx, rx) = unbounded();
        tx.send(Ev::Line("Kernel panic".into())).unwrap();
        tx.send(Ev::InputClosed).unwrap();
        tx.send(Ev::Line("last".into())).unwrap();
        let mut out = Vec::new();
        let e = Exit {
            status: 128 + libc::SIGTERM,
            signal: Some(libc::SIGTERM),
            time_s: 100.0,
        };
        write_exit(&mut out, &rx, &e);
        let written = lines(&out);
        assert_eq!(written[..2], ["Kernel panic", "last"]);
        let report: ExitReport =
            serde_json::from_str(written[2].strip_prefix(EXIT).unwrap()).unwrap();
        assert_eq!((report.status, report.signal), (143, Some(libc::SIGTERM)));
        assert_eq!(report.time_s, gp_qemu::ssh::reported_time_s(100.0));
    }
}
