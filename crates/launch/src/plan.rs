//! Validating the command line against this host into a [`Plan`], before anything starts.
//!
//! Every refusal names the problem and the fix. Nothing here starts a VM (the KVM probe comes
//! later, in [`crate::accel`]).

use std::path::{Path, PathBuf};

use gp_qemu::binary::QemuBinary;
use gp_qemu::bind::{Binding, Method, Topology};

use crate::cli::{check_guest_mem, format_size, AccelArg, BindMethodArg, Cli, Transport};
use crate::host;
use crate::qemu_args::{default_stress_ram, Cmdline, Memory};
use crate::Error;

/// RAM the guest kernel needs at least besides the workload.
pub const MIN_HEADROOM_BYTES: u64 = 96 << 20;

/// What will run, fully resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    pub binary: QemuBinary,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cpus: u32,
    pub mem_bytes: u64,
    pub memory: Memory,
    pub locked_pages: bool,
    pub dirty_ring_size: u32,
    pub src_bind: Binding,
    pub dst_bind: Binding,
    pub bind_method: Method,
    pub transport: Transport,
    /// For rdma: the address the destination listens on.
    pub rdma_addr: Option<String>,
    pub accel: AccelArg,
    pub cmdline: Cmdline,
    pub src_extra: Vec<String>,
    pub dst_extra: Vec<String>,
    pub boot_timeout_s: f64,
    pub debug: bool,
    pub verbose: bool,
    /// Probe KVM even when a verdict for this boot, binary and kernel is kept.
    pub reprobe_kvm: bool,
    /// Why the QEMUs are pinned as they are, when gp-launch chose (see [`crate::pin`]).
    pub bind_note: Option<String>,
    /// QEMU's downtime tracepoints (see [`crate::trace`]): what was chosen and why not.
    pub trace: crate::trace::Choice,
    /// `--dst-host`: the destination runs there (see [`crate::remote`]).
    pub dst_host: Option<String>,
    pub ssh: gp_qemu::ssh::SshConfig,
    /// `--binary` as given, for the destination host (a name is looked up on its `PATH`).
    pub binary_arg: String,
}

/// Checks the options and the host, cheapest checks first.
pub fn build(cli: &Cli) -> Result<Plan, Error> {
    check_remote_options(cli)?;
    let stress_ram = stress_ram(cli)?;
    check_workload(cli, stress_ram)?;
    check_dirty_ring(cli)?;

    let initrd = check_initrd(cli.initrd.as_deref())?;
    let kernel = gp_qemu::kernel::find_kernel(cli.kernel.as_deref())?;
    let (kernel, initrd) = absolute_paths(cli, kernel, initrd)?;

    let topology = Topology::host().map_err(Error::Topology)?;
    let allowed = gp_qemu::bind::allowed_cpus().map_err(Error::Topology)?;
    let placement = place(cli, &topology, &allowed)?;
    let bind_method = match cli.bind_method {
        BindMethodArg::Auto => Method::auto(),
        BindMethodArg::Numactl => Method::numactl()?,
        BindMethodArg::Native => Method::Native,
    };

    let binary = QemuBinary::detect(&cli.binary)?;
    check_accel(cli.accel, &binary)?;
    let memory = memory(cli)?;
    if cli.locked_pages {
        host::check_locked_pages(cli.mem)?;
    }
    let rdma_addr = rdma_addr(cli, &binary)?;

    let mut src_extra = cli.qemu_args.clone();
    src_extra.extend(cli.src_qemu_args.iter().cloned());
    let mut dst_extra = cli.qemu_args.clone();
    dst_extra.extend(cli.dst_qemu_args.iter().cloned());

    let trace = if cli.no_trace {
        crate::trace::off_by_user()
    } else {
        let version = binary.version.number();
        match binary.trace_events() {
            Ok(events) => crate::trace::choose(Ok(&events), &version),
            Err(why) => crate::trace::choose(Err(&why), &version),
        }
    };
    Ok(Plan {
        binary,
        kernel,
        initrd,
        cpus: cli.cpus,
        mem_bytes: cli.mem,
        memory,
        locked_pages: cli.locked_pages,
        dirty_ring_size: cli.dirty_ring_size,
        src_bind: placement.src,
        dst_bind: placement.dst,
        bind_method,
        transport: cli.transport,
        rdma_addr,
        accel: cli.accel,
        cmdline: Cmdline {
            stress_ram_bytes: stress_ram,
            stress_threads: cli.stress_threads.unwrap_or(cli.cpus),
            grain_ms: cli.stress_grain_ms,
            duration_s: cli.stress_duration_s,
            pattern: cli.stress_pattern,
            wss: cli.stress_wss,
            dirty_rate: cli.stress_dirty_rate,
            verbose: cli.verbose,
            extra: cli.kernel_args.clone(),
        },
        src_extra,
        dst_extra,
        boot_timeout_s: cli
            .boot_timeout_s
            .unwrap_or(120.0 + 15.0 * stress_ram as f64 / (1u64 << 30) as f64),
        debug: cli.debug,
        verbose: cli.verbose,
        reprobe_kvm: cli.reprobe_kvm,
        bind_note: placement.note,
        trace,
        dst_host: cli.dst_host.clone(),
        ssh: gp_qemu::ssh::SshConfig {
            config_file: cli.ssh_config.clone(),
            options: cli.ssh_options.clone(),
        },
        binary_arg: cli.binary.clone(),
    })
}

/// The RAM the workload writes: `--stress-ram`, leaving the guest kernel its headroom of
/// `--mem`, else the default share of `--mem`.
fn stress_ram(cli: &Cli) -> Result<u64, Error> {
    // clap's parser refuses these already; this guards a `Cli` built by other means.
    check_guest_mem(cli.mem, &format_size(cli.mem)).map_err(|m| Error::usage("--mem", m))?;
    match cli.stress_ram {
        Some(r) if r + MIN_HEADROOM_BYTES > cli.mem => Err(Error::usage(
            "--stress-ram",
            format!(
                "{} MiB leaves the guest kernel less than {} MiB of the {} MiB of --mem: lower \
                 --stress-ram or raise --mem",
                r >> 20,
                MIN_HEADROOM_BYTES >> 20,
                cli.mem >> 20
            ),
        )),
        Some(r) => Ok(r),
        None => Ok(default_stress_ram(cli.mem)),
    }
}

/// `--dirty-ring-size`: 0 (the dirty bitmap), or a power of two from 1024 to 65536 under KVM.
fn check_dirty_ring(cli: &Cli) -> Result<(), Error> {
    let n = cli.dirty_ring_size;
    if n == 0 {
        return Ok(());
    }
    if !n.is_power_of_two() || !(1024..=65536).contains(&n) {
        return Err(Error::usage(
            "--dirty-ring-size",
            format!("{n} is not a power of two from 1024 to 65536 (or 0 for the dirty bitmap)"),
        ));
    }
    if cli.accel == AccelArg::Tcg {
        return Err(Error::usage(
            "--dirty-ring-size",
            "needs KVM, but --accel tcg was given (drop one of them)",
        ));
    }
    Ok(())
}

/// Where each QEMU runs: the user's bindings, or the disjoint CPU sets gp-launch chose.
struct Placement {
    src: Binding,
    dst: Binding,
    /// Why gp-launch pinned as it did, when it chose (see [`crate::pin`]).
    note: Option<String>,
}

/// Places both QEMUs on `topology` (this host's) within the CPUs this process may use
/// (`allowed`), checking that every id the user named exists. A remote destination's bindings
/// are checked on its own host.
fn place(cli: &Cli, topology: &Topology, allowed: &[u32]) -> Result<Placement, Error> {
    let list = |o: &Option<crate::cli::IdList>| o.as_ref().map(|l| l.0.clone()).unwrap_or_default();
    let mut src = Binding {
        cpus: list(&cli.src_cpu_bind),
        nodes: list(&cli.src_mem_bind),
    };
    let mut dst = Binding {
        cpus: list(&cli.dst_cpu_bind),
        nodes: list(&cli.dst_mem_bind),
    };
    let pinning = crate::pin::choose(crate::pin::Ask {
        allowed,
        vcpus: cli.cpus,
        user_bound: cli.src_cpu_bind.is_some() || cli.dst_cpu_bind.is_some(),
        remote: cli.dst_host.is_some(),
        off: cli.no_pin,
    });
    if !pinning.src.is_empty() {
        src.cpus = pinning.src;
        dst.cpus = pinning.dst;
    }
    topology.check_cpus("--src-cpu-bind", &src.cpus)?;
    topology.check_nodes("--src-mem-bind", &src.nodes)?;
    if cli.dst_host.is_none() {
        topology.check_cpus("--dst-cpu-bind", &dst.cpus)?;
        topology.check_nodes("--dst-mem-bind", &dst.nodes)?;
    }
    Ok(Placement {
        src,
        dst,
        note: pinning.note,
    })
}

/// The accelerator asked for must be built into the binary (`auto` takes what there is).
fn check_accel(accel: AccelArg, binary: &QemuBinary) -> Result<(), Error> {
    let (option, missing, other) = match accel {
        AccelArg::Kvm if !binary.has_accel("kvm") => ("--accel kvm", "KVM", "tcg"),
        AccelArg::Tcg if !binary.accels.is_empty() && !binary.has_accel("tcg") => {
            ("--accel tcg", "TCG", "kvm")
        }
        _ => return Ok(()),
    };
    Err(Error::usage(
        option,
        format!(
            "{} was built without {missing} (its accelerators: {}); use --accel {other}",
            binary.path.display(),
            binary.accels.join(", ")
        ),
    ))
}

/// Guest RAM backing: huge pages (checked against the host's pool), preallocated, or plain.
fn memory(cli: &Cli) -> Result<Memory, Error> {
    Ok(if cli.huge_pages {
        let pool = host::check_huge_pages(cli.mem, 2)?;
        Memory::HugePages {
            mount: pool.mount,
            prealloc: cli.prealloc_pages,
        }
    } else if cli.prealloc_pages {
        Memory::Prealloc
    } else {
        Memory::Plain
    })
}

/// For `--transport rdma`: the address the destination listens on, once the host has an RDMA
/// device and QEMU supports it.
fn rdma_addr(cli: &Cli, binary: &QemuBinary) -> Result<Option<String>, Error> {
    if cli.transport != Transport::Rdma {
        return Ok(None);
    }
    let devices = host::rdma_devices();
    if devices.is_empty() {
        return Err(host::HostError::NoRdmaDevice.into());
    }
    if !binary.supports_rdma() {
        return Err(host::HostError::NoRdmaInQemu {
            binary: binary.path.clone(),
        }
        .into());
    }
    Ok(Some(host::rdma_ipv4(&devices)?))
}

/// The workload settings that only make sense together, checked here so a bad combination is
/// refused before a guest boots (stress itself would end in `@gp fatal`).
fn check_workload(cli: &Cli, stress_ram: u64) -> Result<(), Error> {
    if cli.stress_pattern.is_some_and(|p| !p.rewrites()) {
        let given: Vec<&str> = [
            cli.stress_wss.map(|_| "--stress-wss"),
            cli.stress_dirty_rate.map(|_| "--stress-dirty-rate"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !given.is_empty() {
            return Err(Error::usage(
                "--stress-pattern",
                format!(
                    "once writes nothing after the first pass, so {} means nothing: drop it or \
                     use --stress-pattern seq or random",
                    given.join(" and ")
                ),
            ));
        }
    }
    if let Some(wss) = cli.stress_wss {
        let bytes = wss.bytes_of(stress_ram);
        if bytes > stress_ram {
            return Err(Error::usage(
                "--stress-wss",
                format!(
                    "{wss} is more than the {} MiB the workload writes (--stress-ram): lower \
                     --stress-wss or raise --stress-ram or --mem",
                    stress_ram >> 20
                ),
            ));
        }
    }
    Ok(())
}

/// The initrd: `--initrd`, else the first of [`gp_qemu::paths::initrd_search`] that exists (the
/// cache, the install prefix's `share/guestperf`, `/usr/share/guestperf`); must be a readable file.
pub fn check_initrd(explicit: Option<&Path>) -> Result<PathBuf, Error> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => gp_qemu::paths::find_initrd().map_err(|looked| {
            let looked: Vec<String> = looked.iter().map(|p| p.display().to_string()).collect();
            Error::usage(
                "--initrd",
                format!(
                    "no stress initrd found (looked at {}): build it with initrd/build.sh (or \
                     gp-initrd), install the toolkit (cargo xtask install, or the guestperf \
                     package), or pass --initrd",
                    looked.join(", ")
                ),
            )
        })?,
    };
    match std::fs::metadata(&path) {
        Ok(m) if m.is_dir() => Err(Error::usage(
            "--initrd",
            format!(
                "{} is a directory, not an initrd image (pass the .img file built by \
                 initrd/build.sh or gp-initrd)",
                path.display()
            ),
        )),
        Ok(_) => match std::fs::File::open(&path) {
            Ok(_) => Ok(path),
            Err(e) => Err(unreadable(&path, e)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::usage(
            "--initrd",
            format!(
                "{} does not exist (build one with initrd/build.sh or gp-initrd)",
                path.display()
            ),
        )),
        Err(e) => Err(unreadable(&path, e)),
    }
}

fn unreadable(path: &Path, e: std::io::Error) -> Error {
    Error::usage(
        "--initrd",
        format!("{} cannot be read ({e})", path.display()),
    )
}

/// Checks the `--dst-host` options before anything starts.
fn check_remote_options(cli: &Cli) -> Result<(), Error> {
    let Some(dest) = &cli.dst_host else {
        return Ok(());
    };
    gp_qemu::ssh::check_destination(dest).map_err(|e| Error::usage("--dst-host", e))?;
    if cli.transport == Transport::Unix {
        return Err(Error::usage(
            "--dst-host",
            format!(
                "{dest}: the unix transport cannot cross hosts (a unix socket exists on one host \
                 only): add --transport tcp (or rdma)"
            ),
        ));
    }
    if let Some(f) = &cli.ssh_config {
        if !f.is_file() {
            return Err(Error::usage(
                "--ssh-config",
                format!("{} is not a readable file", f.display()),
            ));
        }
    }
    Ok(())
}

/// With `--dst-host`, the kernel and initrd are used at the same paths on both hosts: made
/// absolute here, since the remote side starts elsewhere.
fn absolute_paths(
    cli: &Cli,
    kernel: PathBuf,
    initrd: PathBuf,
) -> Result<(PathBuf, PathBuf), Error> {
    if cli.dst_host.is_none() {
        return Ok((kernel, initrd));
    }
    let abs = |p: PathBuf| {
        std::path::absolute(&p).map_err(|source| Error::RemotePath { path: p, source })
    };
    Ok((abs(kernel)?, abs(initrd)?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::Parser;

    fn cli(args: &[&str]) -> Cli {
        let mut all = vec!["gp-launch"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap()
    }

    fn check(args: &[&str]) -> Result<(), String> {
        check_workload(&cli(args), 144 << 20).map_err(|e| e.to_string())
    }

    #[test]
    fn stress_ram_leaves_the_kernel_its_headroom() {
        let ram = |args: &[&str]| stress_ram(&cli(args)).map_err(|e| e.to_string());
        assert_eq!(ram(&["--mem", "1G", "--stress-ram", "900M"]), Ok(900 << 20));
        assert_eq!(
            ram(&["--mem", "1G"]),
            Ok(default_stress_ram(1 << 30)),
            "the default share"
        );
        let e = ram(&["--mem", "256M", "--stress-ram", "200M"]).unwrap_err();
        assert_eq!(
            e,
            "--stress-ram: 200 MiB leaves the guest kernel less than 96 MiB of the 256 MiB of \
             --mem: lower --stress-ram or raise --mem"
        );
        // A `Cli` not from clap: the parser's own message, naming the size given.
        let mut small = cli(&["--mem", "1G"]);
        small.mem = 64 << 20;
        assert_eq!(
            stress_ram(&small).unwrap_err().to_string(),
            "--mem: 64M is too small: the guest kernel needs room besides the workload; use at \
             least 128M"
        );
    }

    #[test]
    fn dirty_ring_needs_a_power_of_two_and_kvm() {
        let ring = |args: &[&str]| check_dirty_ring(&cli(args)).map_err(|e| e.to_string());
        assert_eq!(ring(&["--accel", "tcg"]), Ok(()), "0: the dirty bitmap");
        assert_eq!(
            ring(&["--accel", "kvm", "--dirty-ring-size", "4096"]),
            Ok(())
        );
        let e = ring(&["--accel", "tcg", "--dirty-ring-size", "4096"]).unwrap_err();
        assert!(e.contains("needs KVM, but --accel tcg was given"), "{e}");
    }

    /// A QEMU 10.0.2 at /usr/bin with these accelerators (shared by the crate's unit tests).
    pub(crate) fn binary(accels: &[&str]) -> QemuBinary {
        QemuBinary {
            path: "/usr/bin/qemu-system-x86_64".into(),
            version: gp_qemu::binary::QemuVersion {
                major: 10,
                minor: 0,
                micro: 2,
                package: String::new(),
            },
            accels: accels.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn the_accelerator_asked_for_must_be_built_in() {
        assert!(check_accel(AccelArg::Kvm, &binary(&["kvm", "tcg"])).is_ok());
        assert!(check_accel(AccelArg::Auto, &binary(&["tcg"])).is_ok());
        // A binary that did not list its accelerators is taken at its word for TCG.
        assert!(check_accel(AccelArg::Tcg, &binary(&[])).is_ok());
        let e = check_accel(AccelArg::Kvm, &binary(&["tcg"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--accel kvm: /usr/bin/qemu-system-x86_64 was built without KVM (its accelerators: \
             tcg); use --accel tcg"
        );
        let e = check_accel(AccelArg::Tcg, &binary(&["kvm"])).unwrap_err();
        assert!(e.to_string().starts_with("--accel tcg: "), "{e}");
        assert!(e
            .to_string()
            .ends_with("without TCG (its accelerators: kvm); use --accel kvm"));
    }

    #[test]
    fn placement_checks_each_option_on_this_host_and_pins_when_free() {
        let host = Topology {
            cpus: vec![0, 1, 2, 3],
            nodes: vec![0],
        };
        let all = [0, 1, 2, 3];
        let e = place(&cli(&["--dst-cpu-bind", "5"]), &host, &all)
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "--dst-cpu-bind: this host has no CPU 5 (online CPUs: 0-3)"
        );
        let e = place(&cli(&["--src-mem-bind", "1"]), &host, &all)
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("--src-mem-bind: "), "{e}");
        // A remote destination's ids are its host's to check.
        let remote = cli(&[
            "--dst-host",
            "h",
            "--transport",
            "tcp",
            "--dst-cpu-bind",
            "7",
        ]);
        assert_eq!(place(&remote, &host, &all).unwrap().dst.cpus, [7]);
        // The user's bindings stand.
        let bound = place(&cli(&["--src-cpu-bind", "1"]), &host, &all).unwrap();
        assert_eq!((bound.src.cpus, bound.dst.cpus), (vec![1], vec![]));
        assert!(bound.note.is_none());
        // Free to choose on 4 CPUs: disjoint sets, and a note saying so.
        let chosen = place(&cli(&[]), &host, &all).unwrap();
        assert!(!chosen.src.cpus.is_empty() && !chosen.dst.cpus.is_empty());
        assert!(chosen.src.cpus.iter().all(|c| !chosen.dst.cpus.contains(c)));
        assert!(chosen.note.is_some());
    }

    #[test]
    fn workload_combinations() {
        assert_eq!(check(&[]), Ok(()));
        assert_eq!(check(&["--stress-pattern", "once"]), Ok(()));
        assert_eq!(
            check(&["--stress-wss", "50%", "--stress-dirty-rate", "32M"]),
            Ok(())
        );
        assert_eq!(check(&["--stress-wss", "144M"]), Ok(()));
        let e = check(&["--stress-pattern", "once", "--stress-dirty-rate", "1M"]).unwrap_err();
        assert!(
            e.contains("so --stress-dirty-rate means nothing: drop it"),
            "{e}"
        );
        let e = check(&["--stress-pattern", "once", "--stress-wss", "1M"]).unwrap_err();
        assert!(e.contains("--stress-wss means nothing"), "{e}");
        let e = check(&["--stress-wss", "1G"]).unwrap_err();
        assert!(
            e.contains("--stress-wss: 1G is more than the 144 MiB the workload writes"),
            "{e}"
        );
    }
}
