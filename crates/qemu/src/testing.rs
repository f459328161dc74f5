//! Support for tests that boot real VMs.
//!
//! The machines this project is tested on have two cores, so tests that run QEMU take a global
//! lock and run one at a time, whichever test binary or thread they are in.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

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
    let dir = crate::paths::cache_dir();
    let _ = std::fs::create_dir_all(&dir);
    dir.join("vm-tests.lock")
}

/// Panics with the set-up hint unless QEMU and a guest kernel are installed. VM tests call this
/// instead of quietly skipping.
pub fn require_qemu() -> crate::binary::QemuBinary {
    let binary = crate::binary::QemuBinary::detect(crate::binary::DEFAULT_BINARY)
        .unwrap_or_else(|e| panic!("{e}\nVM tests need QEMU: run scripts/setup-host.sh"));
    crate::kernel::find_kernel(None)
        .unwrap_or_else(|e| panic!("{e}\nVM tests need a guest kernel: run scripts/setup-host.sh"));
    binary
}

/// Whether a process with this pid exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    crate::process::is_running(pid)
}

/// Waits until `cond` holds or `timeout` passes, checking every few milliseconds. Returns
/// whether it held. For conditions with no event to wait on (a process disappearing).
pub fn wait_until(timeout: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
