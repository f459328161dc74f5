//! Nothing outlives a run: no QEMU process, no socket, no runtime directory.
//!
//! QEMUs are found three ways: by the pids in the `vm` records, and by scanning `/proc` for the
//! marker kernel argument every QEMU of the run carries (a QEMU that was spawned but never
//! announced has no record) and for gp-launch's runtime directory in a command line. Runtime
//! directories are found from the records (the parent of each `qmp_socket`, the `unix:`
//! migration socket) and by name: gp-launch names its directory `gp-launch-<its pid>-<random>`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gp_records::Vm;
use gp_testkit::procs::{processes_with, qemu_alive};

/// How long processes get to disappear after the pipeline ended (a QEMU whose gp-launch was
/// killed dies by `PR_SET_PDEATHSIG`, asynchronously).
pub const GONE_WAIT: Duration = Duration::from_secs(15);

/// The runtime directories gp-launch `launch_pid` created, by name, that still exist.
pub fn runtime_dirs_of(launch_pid: u32) -> Vec<PathBuf> {
    let base = gp_qemu::runtime::base_dir();
    let prefix = format!("gp-launch-{launch_pid}-");
    std::fs::read_dir(&base)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// The directory holding `vm`'s QMP socket, and its `unix:` migration socket, if any.
pub fn paths_of(vm: &Vm) -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from(&vm.qmp_socket)];
    if let Some(dir) = Path::new(&vm.qmp_socket).parent() {
        paths.push(dir.to_path_buf());
    }
    if let Some(sock) = vm
        .migrate_uri
        .as_deref()
        .and_then(|u| u.strip_prefix("unix:"))
    {
        paths.push(PathBuf::from(sock));
    }
    paths
}

/// Checks that nothing of a run remains, waiting up to [`GONE_WAIT`] for processes to go.
/// `Err` says what remains.
pub fn check(launch_pid: u32, marker: &str, vms: &[Vm]) -> Result<(), String> {
    let mut problems = Vec::new();
    for vm in vms.iter().filter(|vm| vm.host.is_none()) {
        if !gp_testkit::wait_until(GONE_WAIT, || !qemu_alive(vm.pid)) {
            problems.push(format!(
                "the {} QEMU (pid {}) is still running",
                vm.role, vm.pid
            ));
        }
    }
    let mut stray = Vec::new();
    let gone = gp_testkit::wait_until(GONE_WAIT, || {
        stray = processes_with(marker);
        stray.is_empty()
    });
    if !gone {
        problems.push(format!(
            "processes with this run's marker are still running: {stray:?}"
        ));
    }
    for vm in vms {
        for p in paths_of(vm) {
            if p.exists() || p.symlink_metadata().is_ok() {
                problems.push(format!("{} still exists", p.display()));
            }
        }
    }
    for dir in runtime_dirs_of(launch_pid) {
        problems.push(format!(
            "gp-launch's runtime directory {} still exists",
            dir.display()
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}
