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
