//! `stress`, the guest workload of guestperf-rs.
//!
//! One thread per CPU, each owning its share of the RAM size, xors every byte of its share with a
//! 4 KiB block of random bytes once (its first pass, ending in a `warm` line), then keeps xoring
//! its pattern (sequential, random pages, or nothing) over its working set at its part of the
//! dirty rate (unlimited by default: the original's loop), and prints short `@gp` lines
//! ([`gp_records::stress::StressLine`]) saying how long each GB of work took and, at a finer
//! grain, how much it got done. Booted as `/init` of the initrd (PID 1) it mounts what it needs,
//! takes its settings from the kernel command line and powers the guest off on any fatal error;
//! on a host it is an ordinary benchmark process. See docs/stress.md.
//!
//! Modules: [`settings`] (what to run), [`work`] (what each thread writes when), [`pace`] (the
//! dirty rate), [`xor`] (the writing), [`meter`] (timing arithmetic), [`console`] (one write per
//! line), [`system`] (OS and PID-1 duties), [`run`] (the threads).

pub mod console;
pub mod meter;
pub mod pace;
pub mod run;
pub mod settings;
pub mod system;
pub mod work;
pub mod xor;
