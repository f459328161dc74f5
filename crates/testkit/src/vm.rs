//! Tests that boot real VMs.
//!
//! The machines this project is tested on have two cores, so tests that run QEMU take a global
//! lock and run one at a time, whichever test binary or thread they are in.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Held while a VM test runs; released on drop.
#[derive(Debug)]
pub struct VmTestLock {
    _file: File,
}

/// Blocks until no other VM test (in any process) holds the lock.
pub fn vm_test_lock() -> VmTestLock {
    let path = lock_path();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open VM test lock {}: {e}", path.display()));
    // SAFETY: flock on a valid, owned file descriptor.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(
        rc,
        0,
        "flock {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    VmTestLock { _file: file }
}

/// One lock for the whole machine, wherever the target dir is.
fn lock_path() -> PathBuf {
    let dir = gp_qemu::paths::cache_dir();
    let _ = std::fs::create_dir_all(&dir);
    dir.join("vm-tests.lock")
}

/// Panics with the set-up hint unless QEMU and a guest kernel are installed. VM tests call this
/// instead of quietly skipping.
pub fn require_qemu() -> gp_qemu::binary::QemuBinary {
    let binary = gp_qemu::binary::QemuBinary::detect(gp_qemu::binary::DEFAULT_BINARY)
        .unwrap_or_else(|e| panic!("{e}\nVM tests need QEMU: run scripts/setup-host.sh"));
    gp_qemu::kernel::find_kernel(None)
        .unwrap_or_else(|e| panic!("{e}\nVM tests need a guest kernel: run scripts/setup-host.sh"));
    binary
}

/// The stress initrd the tools use by default; panics with the set-up hint when it is missing.
pub fn initrd() -> PathBuf {
    let path = gp_qemu::paths::default_initrd();
    assert!(
        path.exists(),
        "{} is missing: VM tests need the stress initrd (run initrd/build.sh or \
         scripts/setup-host.sh)",
        path.display()
    );
    path
}

/// Waits until `cond` holds or `timeout` passes, checking every few milliseconds. Returns
/// whether it held. For conditions with no event to wait on (a process disappearing).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
