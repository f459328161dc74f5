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

/// `err` and its causes on one line, `top: cause: cause`, as tools print them.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their cause in their own message; do not print it twice.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn error_chain_joins_causes() {
        let err = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&err), "outer: inner");
    }
}
