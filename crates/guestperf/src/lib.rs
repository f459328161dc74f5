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
//! The stage options are the stages' own ([`options`]): gp-launch's and gp-migrate's option
//! structs are flattened into both command lines (the original guestperf's names, the stages'
//! help, defaults and checks), and each parsed struct is written back as its stage's argv.

pub mod batch;
pub mod oneshot;
pub mod options;
pub mod pipeline;
pub mod stages;

pub use gp_stage::error_chain;
