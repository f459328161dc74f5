//! What the VM tests of this crate share: the initrd of this source tree, and where the
//! workspace's binaries are.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

/// The target directory the tests were built in (`target/debug/deps/<test>` is running).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .expect("the test binary lives in <target>/<profile>/deps")
        .to_path_buf()
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The stress initrd of this source tree, built by `initrd/build.sh` into the target directory
/// once per test binary (quick when nothing changed). The tests boot the `stress` they test,
/// not whatever ~/.cache/guestperf/initrd-stress.img was last built from, and never rewrite
/// that shared image.
pub fn initrd() -> PathBuf {
    static BUILD: Once = Once::new();
    let target = target_dir();
    let out = target.join("gp-test").join("initrd-stress.img");
    BUILD.call_once(|| {
        let status = Command::new("sh")
            .arg(repo().join("initrd/build.sh"))
            .arg("--output")
            .arg(&out)
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .expect("run initrd/build.sh");
        assert!(
            status.success(),
            "initrd/build.sh --output {} failed",
            out.display()
        );
    });
    assert!(
        out.is_file(),
        "{} missing after initrd/build.sh",
        out.display()
    );
    out
}

/// A binary of the workspace (debug build), built on demand with `cargo build -p PACKAGE`.
pub fn workspace_binary(package: &str, name: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", package, "--bin", name])
        .current_dir(repo())
        .env("CARGO_TARGET_DIR", target_dir())
        .status()
        .unwrap_or_else(|e| panic!("run cargo build -p {package}: {e}"));
    assert!(status.success(), "cargo build -p {package} failed");
    let path = target_dir().join("debug").join(name);
    assert!(
        path.is_file(),
        "{} missing after cargo build",
        path.display()
    );
    path
}
