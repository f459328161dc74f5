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
    assert_eq!(rc, 0, "flock {}: {}", path.display(), std::io::Error::last_os_error());
    VmTestLock { _file: file }
}

/// One lock for the whole machine, wherever the target dir is.
fn lock_path() -> PathBuf {
    let dir = crate::paths::cache_dir();
    let _ = std::fs::create_dir_all(&dir);
    dir.join("vm-tests.lock")
}
