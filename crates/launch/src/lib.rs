//! gp-launch: the head of every guestperf-rs pipeline.
//!
//! It boots a source VM running the stress workload from an initrd and a destination VM waiting
//! for an incoming migration (`-incoming defer`), and writes NDJSON records on stdout: a
//! `launch` header, a `vm` record per VM once its QMP monitor answers, the workload's records
//! parsed from each serial console (`guest_start`, `guest_progress`, `guest_gb`, `console`), and
//! a `vm_exit` per VM. It exits when both VMs have exited, and on SIGINT, SIGTERM or a closed
//! stdout it shuts both down first. No QEMU, socket or directory outlives it.
//!
//! Modules: [`cli`] (options), [`plan`] (validation against the host), [`accel`] (KVM probe),
//! [`qemu_args`] (QEMU and kernel command lines), [`console`] (console lines to records),
//! [`session`] (running the VMs), [`host`] (host facts and checks), [`remote`] (`--dst-host`: the
//! destination on another host over ssh) and [`remote_helper`] (its far end).

// `say!`: a line for people on stderr; a closed stderr is ignored rather than a panic.
#[macro_use]
extern crate gp_stage;

pub mod accel;
pub mod cli;
pub mod console;
pub mod host;
pub mod pin;
pub mod plan;
pub mod qemu_args;
pub mod remote;
pub mod remote_helper;
pub mod session;
pub mod trace;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gp_qemu::runtime::RuntimeDir;
use gp_records::launch::{Hardware, HostInfo};
use gp_records::ndjson::{WriteError, Writer};
use gp_records::{Launch, Record, Role, StageError};
use gp_stage::signals::Forwarder;

use crate::cli::{AccelArg, Cli, Transport};
use crate::plan::Plan;
use crate::qemu_args::{Accel, Machine};
use crate::session::{End, Session, Start};

/// The stage name in `stage_error` records and messages.
pub const STAGE: &str = "gp-launch";

/// Why gp-launch failed. Each message names the problem and, where there is one, the fix; causes
/// are `source()`, printed once by `gp_stage::error_chain`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad option value or combination (exit 2).
    #[error("{option}: {problem}")]
    Usage {
        option: &'static str,
        problem: String,
    },
    /// The host lacks what the options ask for (huge pages, locked memory, RDMA).
    #[error(transparent)]
    Host(#[from] host::HostError),
    #[error(transparent)]
    Kernel(#[from] gp_qemu::kernel::KernelError),
    #[error(transparent)]
    Binary(#[from] gp_qemu::binary::BinaryError),
    #[error(transparent)]
    Bind(#[from] gp_qemu::bind::BindError),
    #[error(transparent)]
    Runtime(#[from] gp_qemu::runtime::RuntimeError),
    /// `--dst-host`: the destination host cannot be used.
    #[error(transparent)]
    Remote(#[from] remote::RemoteError),
    /// `--dst-host`: the kernel or initrd path cannot be made absolute.
    #[error("cannot make {} absolute for the destination host", path.display())]
    RemotePath {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
    #[error("cannot read the host CPU topology")]
    Topology(#[source] std::io::Error),
    #[error("cannot link {} (not UTF-8) into {}", path.display(), dir.display())]
    Link {
        path: std::path::PathBuf,
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot find a free TCP port on {addr}")]
    FreePort {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("KVM does not work on this host (run with --accel tcg)")]
    KvmBroken(#[source] accel::KvmUnusable),
    #[error("the {role} QEMU failed to start: {message}")]
    Start { role: Role, message: String },
    #[error(
        "the source guest did not start its workload within {timeout_s:.0} s of QEMU starting \
         (raise --boot-timeout-s, or check the kernel and initrd; --verbose shows the boot \
         log)\n{diagnostics}"
    )]
    BootTimeout { timeout_s: f64, diagnostics: String },
    #[error("the source VM ended before its workload started ({reason})\n{diagnostics}")]
    EndedBeforeWorkload { reason: String, diagnostics: String },
    #[error(
        "the {role} VM stopped with an internal error (KVM could not run the guest); run with \
         --accel tcg\n{diagnostics}"
    )]
    InternalError { role: Role, diagnostics: String },
    /// The ssh connection to a remote destination was lost (the message says which and how).
    #[error("{0}")]
    ConnectionLost(String),
    #[error(transparent)]
    Write(WriteError),
    #[error("output closed by the next stage")]
    OutputClosed,
}

impl Error {
    /// Exit code: 2 for bad usage, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage { .. } | Error::Bind(_) => 2,
            _ => 1,
        }
    }

    /// A usage error about `option`.
    pub fn usage(option: &'static str, problem: impl Into<String>) -> Error {
        Error::Usage {
            option,
            problem: problem.into(),
        }
    }
}

impl gp_stage::Failure for Error {
    fn exit_code(&self) -> u8 {
        Error::exit_code(self)
    }
}

pub use gp_stage::error_chain;

/// Runs gp-launch: validates, probes, starts both VMs and streams records into `out` until
/// both have exited. Returns the process exit code on a normal end (0; 128+signal when
/// interrupted). Errors are for the caller to print and record as `stage_error`.
pub fn run<W: Write>(cli: &Cli, argv: Vec<String>, out: &mut Writer<W>) -> Result<u8, Error> {
    let plan = plan::build(cli)?;
    let signals = Forwarder::start().map_err(Error::Signals)?;
    let dir = RuntimeDir::new(STAGE)?;

    let remote = match remote::Remote::connect_if_asked(&plan, &dir, &signals)? {
        Ok(r) => r,
        Err(sig) => {
            return Ok(interrupted_early(
                out,
                sig,
                "connecting to the destination host",
            ))
        }
    };
    // QEMU takes file names as text: a kernel or initrd path that is not UTF-8 reaches the
    // local QEMUs through a symlink in the private directory.
    let kernel = utf8_path(&plan.kernel, &dir, "kernel")?;
    // The uncompressed kernel through its PVH entry, where it can be had (not for a remote
    // destination, whose host has the bzImage only).
    let boot_kernel = boot_kernel(&kernel, !cli.no_pvh && remote.is_none(), plan.verbose);
    let initrd = utf8_path(&plan.initrd, &dir, "initrd")?;
    let (accel, accel_note) = match choose_accel(&plan, &kernel, &dir, &signals)? {
        Ok(chosen) => chosen,
        Err(sig) => return Ok(interrupted_early(out, sig, "probing KVM")),
    };
    let (accel, accel_note) = remote::reconcile_accel(remote.as_deref(), &plan, accel, accel_note)?;
    check_dirty_ring_accel(plan.dirty_ring_size, accel, accel_note.as_deref())?;

    let migrate_uri = match &remote {
        Some(r) => r.migrate_uri(plan.transport),
        None => migrate_uri(&plan, &dir)?,
    };
    // qboot where this QEMU ships it; not for a remote destination, whose host may not.
    let firmware = if cli.no_qboot || remote.is_some() {
        None
    } else {
        qemu_args::qboot_for(&plan.binary.path)
    };
    let machine = machine(&plan, accel, boot_kernel, initrd, firmware);
    let header = launch_header(
        &plan,
        cli,
        &machine,
        argv,
        accel_note,
        gp_records::now_s(),
        host::host_info(),
    );

    let boot_timeout = Duration::from_secs_f64(plan.boot_timeout_s);
    let mut session = Session::new(out, dir, &signals, plan.debug, plan.verbose, boot_timeout);
    // The binary's writer is stdout: notice the next stage going away even while nothing is
    // written.
    session.watch_output(libc::STDOUT_FILENO);
    // A KVM internal error pauses the VM instead of ending QEMU: poll often under KVM. Under TCG
    // the poll only keeps the private monitor's event queue short.
    session.set_status_poll(if accel == Accel::Kvm {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    });
    if !write_opening(&mut session, header, remote.as_deref())? {
        // Nobody is listening: starting VMs would be pointless.
        return Ok(0);
    }
    let start = Start {
        binary: &plan.binary.path,
        machine: &machine,
        src_extra: &plan.src_extra,
        dst_extra: &plan.dst_extra,
        src_bind: &plan.src_bind,
        dst_bind: &plan.dst_bind,
        bind_method: &plan.bind_method,
        migrate_uri,
        remote: remote.as_deref(),
    };
    let end = session.run(&start);
    clean_up(session, remote);
    match end? {
        End::Exited | End::OutputClosed => Ok(0),
        End::Signal(sig) => Ok(gp_stage::signal_exit_code(sig)),
    }
}

/// The kernel QEMU boots: the uncompressed kernel through its PVH entry when `pvh` and it can
/// be had, else `kernel` as given.
fn boot_kernel(kernel: &Path, pvh: bool, verbose: bool) -> PathBuf {
    if !pvh {
        return kernel.to_path_buf();
    }
    let cache = gp_qemu::paths::kernel_cache_dir().join("pvh");
    pvh_or_as_given(kernel, gp_qemu::pvh::extract(kernel, &cache), verbose)
}

/// The extracted PVH kernel when there is one whose path QEMU can take as text, else `kernel`
/// (with `verbose`, saying why the extraction failed).
fn pvh_or_as_given(
    kernel: &Path,
    extracted: Result<PathBuf, gp_qemu::pvh::PvhError>,
    verbose: bool,
) -> PathBuf {
    match extracted {
        Ok(vmlinux) if vmlinux.to_str().is_some() => vmlinux,
        Ok(_) => kernel.to_path_buf(),
        Err(e) => {
            if verbose {
                say!("{STAGE}: booting the bzImage as given: {}", error_chain(&e));
            }
            kernel.to_path_buf()
        }
    }
}

/// Refuses `--dirty-ring-size` when the run ended up under TCG; `accel_note` says why it did.
fn check_dirty_ring_accel(
    dirty_ring_size: u32,
    accel: Accel,
    accel_note: Option<&str>,
) -> Result<(), Error> {
    if dirty_ring_size != 0 && accel != Accel::Kvm {
        return Err(Error::usage(
            "--dirty-ring-size",
            format!(
                "needs KVM, but this run would use TCG ({}); drop --dirty-ring-size",
                accel_note.unwrap_or("TCG was asked for")
            ),
        ));
    }
    Ok(())
}

/// What both VMs share, from the plan and what was chosen for this run: the accelerator, the
/// kernel and initrd paths QEMU is given, and the firmware.
fn machine(
    plan: &Plan,
    accel: Accel,
    kernel: PathBuf,
    initrd: PathBuf,
    firmware: Option<PathBuf>,
) -> Machine {
    Machine {
        accel,
        cpus: plan.cpus,
        mem_bytes: plan.mem_bytes,
        memory: plan.memory.clone(),
        locked_pages: plan.locked_pages,
        dirty_ring_size: plan.dirty_ring_size,
        kernel,
        initrd,
        cmdline: plan.cmdline.render(),
        trace_events: plan.trace.events.clone(),
        firmware,
    }
}

/// The `launch` header record: what runs (`machine`), as the user asked for it (`cli`, `argv`)
/// and as the plan resolved it. Its kernel and initrd are the paths as given.
fn launch_header(
    plan: &Plan,
    cli: &Cli,
    machine: &Machine,
    argv: Vec<String>,
    accel_note: Option<String>,
    time_s: f64,
    host: HostInfo,
) -> Launch {
    Launch {
        time_s,
        tool: STAGE.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        argv,
        qemu_binary: plan.binary.path.to_string_lossy().into_owned(),
        qemu_version: plan.binary.version.number(),
        accel: machine.accel.as_str().to_string(),
        accel_note,
        kernel: plan.kernel.to_string_lossy().into_owned(),
        initrd: plan.initrd.to_string_lossy().into_owned(),
        kernel_cmdline: machine.cmdline.clone(),
        transport: plan.transport.as_str().to_string(),
        dst_host: plan.dst_host.clone(),
        hardware: Hardware {
            cpus: plan.cpus,
            mem_bytes: plan.mem_bytes,
            src_cpu_bind: plan.src_bind.cpus.clone(),
            src_mem_bind: plan.src_bind.nodes.clone(),
            dst_cpu_bind: plan.dst_bind.cpus.clone(),
            dst_mem_bind: plan.dst_bind.nodes.clone(),
            prealloc_pages: cli.prealloc_pages,
            huge_pages: cli.huge_pages,
            locked_pages: cli.locked_pages,
            dirty_ring_size: plan.dirty_ring_size,
            workload: plan.cmdline.request(),
        },
        host,
        trace_events: plan.trace.events.clone(),
        trace_note: plan.trace.note.clone(),
        bind_note: plan.bind_note.clone(),
    }
}

/// Writes the `launch` header and, for a remote destination, the clock offset to its host.
/// `Ok(false)` when the next stage has gone.
fn write_opening<W: Write>(
    session: &mut Session<'_, W>,
    header: Launch,
    remote: Option<&remote::Remote>,
) -> Result<bool, Error> {
    let written = session.write_header(header).and_then(|()| match remote {
        Some(r) => session.write_record(&Record::ClockOffset(r.clock_offset())),
        None => Ok(()),
    });
    match written {
        Ok(()) => Ok(true),
        Err(Error::OutputClosed) => Ok(false),
        Err(e) => Err(e),
    }
}

/// After the session: ends the connection to a remote destination, then removes the private
/// directory (failing to is only a warning).
fn clean_up<W: Write>(session: Session<'_, W>, remote: Option<Box<remote::Remote>>) {
    if let Some(r) = remote {
        // Every VM is gone: end the connection before its sockets' directory goes.
        r.close();
    }
    let dir_path = session.dir().to_path_buf();
    if let Err(e) = session.finish() {
        say!(
            "{STAGE}: warning: could not remove {}: {e}",
            dir_path.display()
        );
    }
}

/// A signal before any VM started: said on stderr and in the stream (a `stage_error` with the
/// signal, so the report says the run was interrupted and by what). Returns the exit code.
fn interrupted_early<W: Write>(out: &mut Writer<W>, sig: i32, while_: &str) -> u8 {
    let message = format!(
        "interrupted by {} while {while_}, before any VM started",
        gp_stage::signals::signal_name(sig)
    );
    say!("{STAGE}: {message}");
    let _ = out.write(&Record::StageError(StageError::signalled(
        STAGE, sig, message,
    )));
    gp_stage::signal_exit_code(sig)
}

/// `path` itself when it is UTF-8, else a symlink to it named `name` in `dir`.
fn utf8_path(
    path: &std::path::Path,
    dir: &RuntimeDir,
    name: &str,
) -> Result<std::path::PathBuf, Error> {
    if path.to_str().is_some() {
        return Ok(path.to_path_buf());
    }
    let link = dir.path().join(name);
    std::path::absolute(path)
        .and_then(|absolute| std::os::unix::fs::symlink(absolute, &link))
        .map_err(|source| Error::Link {
            path: path.to_path_buf(),
            dir: dir.path().to_path_buf(),
            source,
        })?;
    Ok(link)
}

/// Resolves --accel, probing KVM when it is asked for or may be used, unless this boot's verdict
/// for this QEMU and kernel is cached (see [`accel::VerdictCache`]). `Ok(Err(sig))` when a signal
/// interrupted the probe.
fn choose_accel(
    plan: &Plan,
    kernel: &std::path::Path,
    dir: &RuntimeDir,
    signals: &Forwarder,
) -> Result<Result<(Accel, Option<String>), i32>, Error> {
    if plan.accel == AccelArg::Tcg {
        return Ok(Ok((Accel::Tcg, None)));
    }
    // Where the verdict came from, for the messages: a cached one names its probe.
    let mut cached: Option<accel::Verdict> = None;
    let unusable = if !plan.binary.has_accel("kvm") {
        Some(accel::KvmUnusable(format!(
            "{} was built without KVM",
            plan.binary.path.display()
        )))
    } else if let Err(e) = accel::kvm_device_usable() {
        Some(e)
    } else {
        let cache = accel::VerdictCache::default_location();
        let key = accel::VerdictKey::new(&plan.binary.path, &plan.kernel);
        cached = key
            .as_ref()
            .filter(|_| !(plan.reprobe_kvm || accel::reprobe_asked()))
            .and_then(|k| cache.load(k));
        match &cached {
            Some(v) => v.unusable.clone().map(accel::KvmUnusable),
            None => match probe_and_keep(plan, kernel, dir, signals, &cache, key) {
                Ok(unusable) => unusable,
                Err(sig) => return Ok(Err(sig)),
            },
        }
    };
    let from_cache = cached.as_ref().map(|v| {
        format!(
            "verdict of this boot's probe at {}, kept in {}; --reprobe-kvm (or {}=1) probes again",
            v.when(),
            accel::VerdictCache::default_location().dir().display(),
            accel::REPROBE_ENV
        )
    });
    decide_accel(unusable, from_cache, plan.accel, plan.verbose).map(Ok)
}

/// Probes KVM with a boot of `kernel` and keeps the verdict in `cache` under `key` (a failure
/// to keep it is a warning). Why KVM is unusable, `None` when it works, or the signal that
/// interrupted the probe.
fn probe_and_keep(
    plan: &Plan,
    kernel: &std::path::Path,
    dir: &RuntimeDir,
    signals: &Forwarder,
    cache: &accel::VerdictCache,
    key: Option<accel::VerdictKey>,
) -> Result<Option<accel::KvmUnusable>, i32> {
    let probed_s = gp_records::now_s();
    let outcome = accel::probe_kvm(
        &plan.binary.path,
        kernel,
        plan.cpus,
        dir.path(),
        signals.receiver(),
        accel::PROBE_DEADLINE,
        plan.verbose,
    );
    let unusable = match outcome {
        Ok(took) => {
            if plan.verbose {
                say!(
                    "{STAGE}: KVM works (probe boot took {:.2} s)",
                    took.as_secs_f64()
                );
            }
            None
        }
        Err(Ok(why)) => Some(why),
        Err(Err(sig)) => return Err(sig),
    };
    if let Some(key) = key {
        let verdict = accel::Verdict {
            key,
            unusable: unusable.as_ref().map(|u| u.0.clone()),
            probed_s,
            probe_took_s: gp_records::now_s() - probed_s,
        };
        if let Err(e) = cache.store(&verdict) {
            say!(
                "{STAGE}: warning: cannot keep the KVM verdict in {}: {e}; the next run probes \
                 again",
                cache.dir().display()
            );
        }
    }
    Ok(unusable)
}

/// The accelerator and its note, from why KVM is unusable (`None`: it works) and, for a cached
/// verdict, where it came from: KVM; an error when `--accel kvm` was asked for; else TCG with
/// a warning.
fn decide_accel(
    unusable: Option<accel::KvmUnusable>,
    from_cache: Option<String>,
    asked: AccelArg,
    verbose: bool,
) -> Result<(Accel, Option<String>), Error> {
    match (unusable, asked) {
        (None, _) => {
            if let Some(c) = &from_cache {
                if verbose {
                    say!("{STAGE}: KVM works ({c})");
                }
            }
            Ok((Accel::Kvm, from_cache.map(|c| format!("KVM works ({c})"))))
        }
        (Some(why), AccelArg::Kvm) => Err(Error::KvmBroken(match &from_cache {
            Some(c) => accel::KvmUnusable(format!("{why} ({c})")),
            None => why,
        })),
        (Some(why), _) => {
            let why = match &from_cache {
                Some(c) => format!("{why}; {c}"),
                None => why.to_string(),
            };
            say!("{STAGE}: warning: KVM does not work here ({why}); using TCG (pass --accel tcg to skip the check)");
            Ok((Accel::Tcg, Some(format!("KVM unusable: {why}; using TCG"))))
        }
    }
}

/// The destination's migration URI: a socket in the private directory, or a free local port.
fn migrate_uri(plan: &Plan, dir: &RuntimeDir) -> Result<String, Error> {
    let free_port = || {
        std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|source| Error::FreePort {
                addr: "127.0.0.1".into(),
                source,
            })
    };
    Ok(match plan.transport {
        Transport::Unix => {
            let path = dir.socket_path("migrate.sock")?;
            format!("unix:{}", path.display())
        }
        Transport::Tcp => format!("tcp:127.0.0.1:{}", free_port()?),
        Transport::Rdma => {
            let addr = plan.rdma_addr.clone().unwrap_or_else(|| "127.0.0.1".into());
            let port = std::net::TcpListener::bind((addr.as_str(), 0))
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .or_else(|_| free_port())?;
            format!("rdma:{addr}:{port}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use gp_qemu::bind::{Binding, Method};
    use gp_qemu::pvh::PvhError;
    use qemu_args::{Cmdline, Memory};

    fn plan() -> Plan {
        Plan {
            binary: plan::tests::binary(&["kvm", "tcg"]),
            kernel: "/boot/vmlinuz-6.1".into(),
            initrd: "/tmp/gp-initrd.img".into(),
            cpus: 2,
            mem_bytes: 1 << 30,
            memory: Memory::Prealloc,
            locked_pages: true,
            dirty_ring_size: 4096,
            src_bind: Binding {
                cpus: vec![0, 1],
                nodes: vec![0],
            },
            dst_bind: Binding {
                cpus: vec![2, 3],
                nodes: vec![1],
            },
            bind_method: Method::Native,
            transport: Transport::Tcp,
            rdma_addr: None,
            accel: AccelArg::Auto,
            cmdline: Cmdline {
                stress_ram_bytes: 512 << 20,
                stress_threads: 2,
                ..Cmdline::default()
            },
            src_extra: Vec::new(),
            dst_extra: Vec::new(),
            boot_timeout_s: 120.0,
            debug: false,
            verbose: false,
            reprobe_kvm: false,
            bind_note: Some("pinned by gp-launch".into()),
            trace: trace::Choice {
                events: vec!["vmstate_downtime_save".into()],
                note: Some("partial".into()),
            },
            dst_host: Some("bench2".into()),
            ssh: Default::default(),
            binary_arg: "qemu-system-x86_64".into(),
        }
    }

    #[test]
    fn the_pvh_kernel_is_booted_only_when_qemu_can_name_it() {
        use std::os::unix::ffi::OsStrExt;
        let given = Path::new("/boot/vmlinuz");
        let extracted = PathBuf::from("/cache/pvh-vmlinuz");
        assert_eq!(
            pvh_or_as_given(given, Ok(extracted.clone()), false),
            extracted
        );
        let not_utf8 = PathBuf::from(std::ffi::OsStr::from_bytes(b"/cache/pvh-\xff"));
        assert_eq!(pvh_or_as_given(given, Ok(not_utf8), false), given);
        let failed = Err(PvhError::NotBzImage(given.to_path_buf()));
        assert_eq!(pvh_or_as_given(given, failed, false), given);
        assert_eq!(boot_kernel(given, false, false), given, "--no-pvh");
    }

    #[test]
    fn a_dirty_ring_under_tcg_is_refused_with_the_reason_for_tcg() {
        assert!(check_dirty_ring_accel(4096, Accel::Kvm, None).is_ok());
        assert!(check_dirty_ring_accel(0, Accel::Tcg, None).is_ok());
        let e = check_dirty_ring_accel(4096, Accel::Tcg, Some("KVM unusable: x; using TCG"))
            .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            "--dirty-ring-size: needs KVM, but this run would use TCG (KVM unusable: x; using \
             TCG); drop --dirty-ring-size"
        );
        let e = check_dirty_ring_accel(1024, Accel::Tcg, None).unwrap_err();
        assert!(e.to_string().contains("(TCG was asked for)"), "{e}");
    }

    #[test]
    fn kvm_is_used_refused_or_replaced_by_tcg_as_asked() {
        let why = || Some(accel::KvmUnusable("emulation failure".into()));
        let cached = || Some("verdict of this boot's probe at 10:00".to_string());
        assert_eq!(
            decide_accel(None, None, AccelArg::Auto, false).unwrap(),
            (Accel::Kvm, None)
        );
        assert_eq!(
            decide_accel(None, cached(), AccelArg::Kvm, false).unwrap(),
            (
                Accel::Kvm,
                Some("KVM works (verdict of this boot's probe at 10:00)".into())
            )
        );
        let e = decide_accel(why(), cached(), AccelArg::Kvm, false).unwrap_err();
        assert_eq!(
            error_chain(&e),
            "KVM does not work on this host (run with --accel tcg): emulation failure (verdict \
             of this boot's probe at 10:00)"
        );
        assert_eq!(
            decide_accel(why(), None, AccelArg::Auto, false).unwrap(),
            (
                Accel::Tcg,
                Some("KVM unusable: emulation failure; using TCG".into())
            )
        );
        assert_eq!(
            decide_accel(why(), cached(), AccelArg::Auto, false)
                .unwrap()
                .1,
            Some(
                "KVM unusable: emulation failure; verdict of this boot's probe at 10:00; using \
                 TCG"
                .into()
            )
        );
    }

    #[test]
    fn the_machine_boots_the_kernel_chosen_for_it() {
        let p = plan();
        let m = machine(
            &p,
            Accel::Kvm,
            "/cache/pvh-vmlinuz".into(),
            "/run/initrd".into(),
            Some("/opt/qemu/share/qemu/qboot.rom".into()),
        );
        assert_eq!(m.kernel, Path::new("/cache/pvh-vmlinuz"));
        assert_eq!(m.initrd, Path::new("/run/initrd"));
        assert_eq!(m.cmdline, p.cmdline.render());
        assert!(m.cmdline.contains("ramsize="), "{}", m.cmdline);
        assert_eq!(m.trace_events, ["vmstate_downtime_save"]);
        assert_eq!((m.cpus, m.mem_bytes, m.dirty_ring_size), (2, 1 << 30, 4096));
        assert_eq!(m.memory, Memory::Prealloc);
        assert!(m.locked_pages && m.firmware.is_some());
    }

    #[test]
    fn the_header_names_what_was_asked_for_and_what_runs() {
        let p = plan();
        let cli = Cli::try_parse_from(["gp-launch", "--prealloc-pages"]).unwrap();
        let m = machine(&p, Accel::Tcg, "/cache/pvh".into(), "/run/i".into(), None);
        let host = HostInfo {
            hostname: "bench1".into(),
            cpus: 8,
            ..HostInfo::default()
        };
        let argv = vec!["gp-launch".to_string(), "--prealloc-pages".to_string()];
        let h = launch_header(&p, &cli, &m, argv.clone(), Some("why".into()), 12.5, host);
        assert_eq!((h.tool.as_str(), h.time_s), (STAGE, 12.5));
        assert_eq!(h.argv, argv);
        assert_eq!(h.qemu_binary, "/usr/bin/qemu-system-x86_64");
        assert_eq!(h.qemu_version, "10.0.2");
        assert_eq!(
            (h.accel.as_str(), h.accel_note.as_deref()),
            ("tcg", Some("why"))
        );
        // The paths as given, not the PVH kernel or a symlink QEMU is given.
        assert_eq!(h.kernel, "/boot/vmlinuz-6.1");
        assert_eq!(h.initrd, "/tmp/gp-initrd.img");
        assert_eq!(h.kernel_cmdline, m.cmdline);
        assert_eq!(h.transport, "tcp");
        assert_eq!(h.dst_host.as_deref(), Some("bench2"));
        assert_eq!(h.host.hostname, "bench1");
        let hw = &h.hardware;
        assert_eq!(
            (hw.src_cpu_bind.as_slice(), hw.dst_mem_bind.as_slice()),
            (&[0, 1][..], &[1][..])
        );
        // The memory options as given on the command line.
        assert!(hw.prealloc_pages && !hw.huge_pages && !hw.locked_pages);
        assert_eq!(hw.dirty_ring_size, 4096);
        assert_eq!(hw.workload, p.cmdline.request());
        assert_eq!(h.trace_events, ["vmstate_downtime_save"]);
        assert_eq!(h.trace_note.as_deref(), Some("partial"));
        assert_eq!(h.bind_note.as_deref(), Some("pinned by gp-launch"));
    }
}
