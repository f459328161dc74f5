//! gp-migrate: drives a QEMU live migration between the two VMs `gp-launch` started, and
//! records all of it.
//!
//! It is a filter stage: every input line passes through unchanged, and it adds a `scenario`
//! record (with what both QEMUs report after configuration), a `progress` record for every
//! `query-migrate` snapshot, `qmp_event` records with QEMU's timestamps, an `action` record for
//! everything it does to the VMs, and a final `result`. It ends the run by quitting both VMs.
//!
//! QMP goes through gp-qemu's one client (`gp_qemu::qmp`): typed qapi commands, replies both as
//! sent (for the records) and typed (for the decisions).
//!
//! - [`schema`]: migration parameter types from `query-qmp-schema`.
//! - [`dirty_rate`]: QEMU's dirty-rate measurement: modes, arguments, records.
//! - [`settle`]: when the source's workload is warm and steady, from its records.
//! - [`plan`]: scenario + QEMU facts → capabilities and parameters per side, or a refusal.
//! - [`decide`]: the migration loop's decisions as a pure function of one snapshot.
//! - [`watch`]: the loop's state across snapshots and losses, and the result.
//! - [`monitors`]: the QMP connections to both VMs.
//! - [`engine`]: the run itself: the I/O around all of the above.

pub mod cli;
pub mod decide;
pub mod dirty_rate;
pub mod engine;
pub mod monitors;
pub mod plan;
pub mod schema;
pub mod settle;
pub mod watch;

use std::io::BufRead;
use std::io::Write;

pub use cli::Args;
pub use engine::STAGE;

/// How gp-migrate exits. See `docs/gp-migrate.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: the migration completed and the destination ran the workload.
    Completed,
    /// 1: an error outside the migration (bad input, QMP trouble before migrating, ...).
    Error,
    /// 3: the migration failed (QEMU said so, or a VM or its QMP connection was lost).
    Failed,
    /// 4: gp-migrate cancelled it after --max-iters or --max-time.
    Cancelled,
    /// 5: interrupted: the output was closed by the next stage.
    Interrupted,
    /// 6: the scenario needs something this QEMU does not have.
    Unsupported,
    /// 128 + N: ended by signal N (SIGHUP: 129, SIGINT: 130, SIGTERM: 143).
    Signal(i32),
}

impl ExitStatus {
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Completed => 0,
            ExitStatus::Error => 1,
            ExitStatus::Failed => 3,
            ExitStatus::Cancelled => 4,
            ExitStatus::Interrupted => 5,
            ExitStatus::Unsupported => 6,
            ExitStatus::Signal(sig) => 128 + sig,
        }
    }
}

/// Runs gp-migrate on stdin/stdout-like streams, with SIGINT, SIGTERM and SIGHUP forwarded
/// from gp-qemu's signal thread.
pub fn run<R, W>(args: Args, input: R, output: W) -> Result<ExitStatus, std::io::Error>
where
    R: BufRead + Send + 'static,
    W: Write + Send + 'static,
{
    let signals = gp_stage::signals::Forwarder::start()?;
    Ok(engine::run(args, input, output, signals.receiver().clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_and_documented() {
        let all = [
            ExitStatus::Completed,
            ExitStatus::Error,
            ExitStatus::Failed,
            ExitStatus::Cancelled,
            ExitStatus::Interrupted,
            ExitStatus::Unsupported,
            ExitStatus::Signal(1),
            ExitStatus::Signal(2),
            ExitStatus::Signal(15),
        ];
        let codes: Vec<i32> = all.iter().map(|s| s.code()).collect();
        assert_eq!(codes, [0, 1, 3, 4, 5, 6, 129, 130, 143]);
        let doc = include_str!("../../../docs/gp-migrate.md");
        for code in codes {
            assert!(
                doc.contains(&format!("| {code} ")),
                "docs/gp-migrate.md lacks exit code {code}"
            );
        }
    }
}
