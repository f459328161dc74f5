//! Shared plumbing for the stages that touch QEMU: where the guest kernel and initrd live, and
//! (added by the launch work) process supervision and QMP connections.

pub mod paths;
pub mod testing;
