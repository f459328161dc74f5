//! Shared by the end-to-end tests: where the binaries are, and what a real run needs.

#![allow(dead_code)]

pub mod stand_ins;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The directory holding `guestperf`, `gp-batch` and (built by `cargo build --workspace`) the
/// stage binaries.
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_guestperf"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Fails the test, saying what to do, unless everything a real run needs is here: the stage
/// binaries next to ours, QEMU, a guest kernel and the stress initrd.
pub fn require_real_run() {
    let dir = bin_dir();
    for stage in [
        "gp-launch",
        "gp-sample",
        "gp-migrate",
        "gp-collect",
        "gp-plot",
    ] {
        assert!(
            dir.join(stage).is_file(),
            "{stage} is not built in {}: run `cargo build --workspace` (or .ci/run) first",
            dir.display()
        );
    }
    assert!(
        gp_qemu::bind::find_on_path("qemu-system-x86_64").is_some(),
        "qemu-system-x86_64 is not installed: run scripts/setup-host.sh"
    );
    if let Err(e) = gp_qemu::kernel::find_kernel(None) {
        panic!("no guest kernel: {e}");
    }
    let initrd = gp_qemu::paths::default_initrd();
    assert!(
        initrd.is_file(),
        "the stress initrd {} is missing: run initrd/build.sh",
        initrd.display()
    );
}

/// Small, quick settings for TCG on a 2-core machine: migrate after `--sleep` alone (`--cold`;
/// gp-migrate's own tests cover the wait for a warm, steady guest).
pub const SMALL: &[&str] = &[
    "--accel",
    "tcg",
    "--mem",
    "256M",
    "--sleep",
    "1",
    "--cold",
    "--max-time",
    "120",
];

/// Runs `cmd`, printing everything about it, so a failing assertion shows what happened.
pub fn run(cmd: &mut Command) -> Output {
    gp_testkit::bins::run_logged(cmd, None)
}

/// PIDs of the processes whose parent is `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            // Field 4 (ppid) follows the parenthesised command name.
            if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                let ppid: Option<u32> = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok());
                if ppid == Some(pid) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// Every descendant of `pid`.
pub fn descendants_of(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in children_of(p) {
            all.push(c);
            todo.push(c);
        }
    }
    all
}

pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}
