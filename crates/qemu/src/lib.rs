//! Shared plumbing for the stages that touch QEMU.
//!
//! - [`paths`]: where the guest kernel and the stress initrd live.
//! - [`binary`]: finding the QEMU binary, its version and accelerators.
//! - [`kernel`]: finding the guest kernel.
//! - [`qmp`]: the one QMP client: qapi's typed commands and replies over its synchronous client,
//!   replies and events also kept as QEMU sent them, waits that never hang.
//! - [`process`]: supervising a child so it never outlives us; exit status as code or
//!   128+signal; stderr tails for error messages.
//! - [`bind`]: CPU and NUMA memory binding through numactl or natively.
//! - [`runtime`]: private (0700) runtime directories for sockets, removed on drop.
//! - [`ssh`]: remote hosts over OpenSSH: quoting, one multiplexed connection, socket
//!   forwarding, clock offset.

pub mod affinity;
pub mod binary;
pub mod bind;
pub mod kernel;
pub mod paths;
pub mod process;
pub mod pvh;
pub mod qmp;
pub mod runtime;
pub mod ssh;
pub mod transport;
