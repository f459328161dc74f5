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
use std::time::Duration;

use gp_qemu::runtime::RuntimeDir;
use gp_records::launch::Hardware;
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
    let boot_kernel = if cli.no_pvh || remote.is_some() {
        kernel.clone()
    } else {
        let cache = gp_qemu::paths::kernel_cache_dir().join("pvh");
        match gp_qemu::pvh::extract(&kernel, &cache) {
            Ok(vmlinux) if vmlinux.to_str().is_some() => vmlinux,
            Ok(_) => kernel.clone(),
            Err(e) => {
                if plan.verbose {
                    say!("{STAGE}: booting the bzImage as given: {}", error_chain(&e));
                }
                kernel.clone()
            }
        }
    };
    let initrd = utf8_path(&plan.initrd, &dir, "initrd")?;
    let (accel, accel_note) = match choose_accel(&plan, &kernel, &dir, &signals)? {
        Ok(chosen) => chosen,
        Err(sig) => return Ok(interrupted_early(out, sig, "probing KVM")),
    };
    let (accel, accel_note) = remote::reconcile_accel(remote.as_deref(), &plan, accel, accel_note)?;
    if plan.dirty_ring_size != 0 && accel != Accel::Kvm {
        return Err(Error::usage(
            "--dirty-ring-size",
            format!(
                "needs KVM, but this run would use TCG ({}); drop --dirty-ring-size",
                accel_note.as_deref().unwrap_or("TCG was asked for")
            ),
        ));
    }

    let migrate_uri = match &remote {
        Some(r) => r.migrate_uri(plan.transport),
        None => migrate_uri(&plan, &dir)?,
    };
    let cmdline = plan.cmdline.render();
    let machine = Machine {
        accel,
        cpus: plan.cpus,
        mem_bytes: plan.mem_bytes,
        memory: plan.memory.clone(),
        locked_pages: plan.locked_pages,
        dirty_ring_size: plan.dirty_ring_size,
        kernel: boot_kernel,
        initrd,
        cmdline: cmdline.clone(),
        trace_events: plan.trace.events.clone(),
        // qboot where this QEMU ships it; not for a remote destination, whose host may not.
        firmware: if cli.no_qboot || remote.is_some() {
            None
        } else {
            qemu_args::qboot_for(&plan.binary.path)
        },
    };
    let header = Launch {
        time_s: gp_records::now_s(),
        tool: STAGE.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        argv,
        qemu_binary: plan.binary.path.to_string_lossy().into_owned(),
        qemu_version: plan.binary.version.number(),
        accel: accel.as_str().to_string(),
        accel_note,
        kernel: plan.kernel.to_string_lossy().into_owned(),
        initrd: plan.initrd.to_string_lossy().into_owned(),
        kernel_cmdline: cmdline,
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
        host: host::host_info(),
        trace_events: plan.trace.events.clone(),
        trace_note: plan.trace.note.clone(),
        bind_note: plan.bind_note.clone(),
    };

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
    match session.write_header(header) {
        Ok(()) => {}
        // Nobody is listening: starting VMs would be pointless.
        Err(Error::OutputClosed) => return Ok(0),
        Err(e) => return Err(e),
    }
    if let Some(r) = &remote {
        match session.write_record(&Record::ClockOffset(r.clock_offset())) {
            Ok(()) => {}
            Err(Error::OutputClosed) => return Ok(0),
            Err(e) => return Err(e),
        }
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
    match end? {
        End::Exited | End::OutputClosed => Ok(0),
        End::Signal(sig) => Ok(gp_stage::signal_exit_code(sig)),
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
            None => {
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
                    Err(Err(sig)) => return Ok(Err(sig)),
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
                            "{STAGE}: warning: cannot keep the KVM verdict in {}: {e}; the next \
                             run probes again",
                            cache.dir().display()
                        );
                    }
                }
                unusable
            }
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
    match (unusable, plan.accel) {
        (None, _) => {
            if let Some(c) = &from_cache {
                if plan.verbose {
                    say!("{STAGE}: KVM works ({c})");
                }
            }
            Ok(Ok((
                Accel::Kvm,
                from_cache.map(|c| format!("KVM works ({c})")),
            )))
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
            Ok(Ok((
                Accel::Tcg,
                Some(format!("KVM unusable: {why}; using TCG")),
            )))
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
