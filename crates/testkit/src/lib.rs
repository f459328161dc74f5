//! gp-testkit: what the workspace's tests share, in one place and out of the tools' libraries.
//!
//! - [`vm`]: the machine-wide VM test lock, QEMU and kernel required (never skipped), the
//!   stress initrd, and waiting on a condition that has no event.
//! - [`bins`]: the workspace's binaries, built once per test binary, found by path.
//! - [`procs`]: the marker every test QEMU carries, finding live processes by command line, so a
//!   test can prove nothing outlived a run, and starting tools so that they end with the test.
//! - [`synth`]: a complete synthetic report shaped like a real one (gp-plot's tests and
//!   `bench/plot.sh`); [`ab`]: arms of such reports with a chosen spread and shift (gp-compare's
//!   trials and benchmark).
//! - [`ssh_host`]: a test host reached over real ssh (its own sshd, in a network namespace).
//! - [`stages`]: a pipeline of tools started as a shell would, each stage's stderr in a file.
//! - [`io`]: a writer a test reads back while the code under test owns it.
//!
//! Every crate names this as a dev-dependency only.

pub mod ab;
pub mod bins;
pub mod io;
pub mod procs;
pub mod ssh_host;
pub mod stages;
pub mod synth;
pub mod vm;

pub use bins::bin;
pub use io::SharedBuf;
pub use procs::{
    bash_ending_with_test, descendants, end_with_test, marker, pid_alive, processes_with,
};
pub use ssh_host::{SshHost, SshHostOptions, HOST};
pub use stages::Stages;
pub use vm::{
    initrd, require_qemu, vm_test_lock, vm_test_lock_alone, wait_until, VmTestLock, SMALL_TCG_GUEST,
};
