//! Tests that boot real VMs.
//!
//! The machines this project is tested on have two cores, so tests that run QEMU take a
//! machine-wide lock, whichever test binary or thread they are in: at most two VM tests run at
//! once ([`vm_test_lock`]), and a test whose outcome depends on the guest's speed (a dirty rate,
//! a convergence, a statistical verdict) runs alone ([`vm_test_lock_alone`]).
//! `GUESTPERF_VM_TESTS_AT_ONCE=1` runs every VM test alone.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Held while a VM test runs; released on drop.
#[derive(Debug)]
pub struct VmTestLock {
    _slots: Vec<File>,
}

/// How many VM tests may run at once: two, or what `GUESTPERF_VM_TESTS_AT_ONCE` says (1 or 2).
fn slots() -> usize {
    match std::env::var("GUESTPERF_VM_TESTS_AT_ONCE").as_deref() {
        Ok("1") => 1,
        Ok("2") | Err(_) => 2,
        Ok(other) => panic!("GUESTPERF_VM_TESTS_AT_ONCE={other:?}: say 1 or 2"),
    }
}

/// Blocks until one of the VM test slots is free, and holds it: at most two VM tests (in any
/// process) run at once. For a test whose outcome does not depend on how fast the guest runs.
pub fn vm_test_lock() -> VmTestLock {
    if slots() == 1 {
        return vm_test_lock_alone();
    }
    let slots: Vec<File> = (0..2).map(open_slot).collect();
    // Slots are only ever held one at a time here, so this cannot deadlock with a test that
    // holds one slot and waits for the other (`vm_test_lock_alone`). Polled: flock cannot wait
    // for whichever of two locks frees first.
    loop {
        for (i, file) in slots.iter().enumerate() {
            if flock(file, libc::LOCK_EX | libc::LOCK_NB, i) {
                let held = slots.into_iter().nth(i).unwrap();
                return VmTestLock { _slots: vec![held] };
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Blocks until no other VM test (in any process) runs, and keeps every slot: for a test whose
/// outcome depends on the guest's speed, which another VM test on the same cores would change.
pub fn vm_test_lock_alone() -> VmTestLock {
    let slots: Vec<File> = (0..2).map(open_slot).collect();
    for (i, file) in slots.iter().enumerate() {
        flock(file, libc::LOCK_EX, i); // blocks until it holds
    }
    VmTestLock { _slots: slots }
}

fn open_slot(i: usize) -> File {
    let path = slot_path(i);
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open VM test lock {}: {e}", path.display()))
}

/// Takes the lock; false if `LOCK_NB` was given and another holds it.
fn flock(file: &File, how: libc::c_int, slot: usize) -> bool {
    // SAFETY: flock on a valid, owned file descriptor.
    if unsafe { libc::flock(file.as_raw_fd(), how) } == 0 {
        return true;
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return false;
    }
    panic!("flock {}: {err}", slot_path(slot).display())
}

/// One lock per slot for the whole machine, wherever the target dir is.
fn slot_path(i: usize) -> PathBuf {
    let dir = gp_qemu::paths::cache_dir();
    let _ = std::fs::create_dir_all(&dir);
    match i {
        0 => dir.join("vm-tests.lock"),
        i => dir.join(format!("vm-tests.{i}.lock")),
    }
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

/// gp-launch's options for the guest a VM test boots unless it needs another: 256 MiB, one vCPU,
/// under TCG.
pub const SMALL_TCG_GUEST: &[&str] = &["--accel", "tcg", "--mem", "256M", "--cpus", "1"];

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
