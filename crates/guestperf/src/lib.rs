//! `guestperf` and `gp-batch`: the whole migration test in one command, and the standard
//! comparisons.
//!
//! Neither tool measures anything itself. The one-shot ([`oneshot`]) is literally the pipeline
//! `gp-launch | gp-sample | gp-migrate | gp-collect`: it runs the stage binaries as child
//! processes connected by pipes ([`pipeline`]), forwards signals to them, reaps them, and exits
//! with the first failing stage's status. The batch ([`batch`]) runs that pipeline once per
//! scenario of the predefined comparisons, skips what the QEMU cannot do (asking QEMU itself,
//! [`batch::probe`]), resumes after an interruption, and summarises the results.
//!
//! The command-line option names are the original guestperf's ([`options`]); each is forwarded
//! to the stage that owns it.

pub mod batch;
pub mod oneshot;
pub mod options;
pub mod pipeline;
pub mod stages;

pub use gp_stage::error_chain;
