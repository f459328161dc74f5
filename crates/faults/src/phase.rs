//! The phases of a run, as the records show them.
//!
//! | phase | entered at | left at |
//! | --- | --- | --- |
//! | boot | the source's `vm` record (QEMU answers QMP, the guest kernel boots) | `guest_start` from the source |
//! | settling | `guest_start` from the source | gp-migrate's `migrate` action |
//! | pre-copy | a source `progress` with status `active` | a `postcopy` action or the `result` |
//! | post-copy | a source `progress` with status `postcopy-active` | the `result` |
//! | settling after | a `result` with outcome `completed` | gp-migrate's first `shutdown` action |
//! | shutdown | gp-migrate's first `shutdown` action | the second `vm_exit` |

use gp_records::{Outcome, Record, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Boot,
    Settling,
    PreCopy,
    PostCopy,
    SettlingAfter,
    Shutdown,
}

impl Phase {
    pub const ALL: [Phase; 6] = [
        Phase::Boot,
        Phase::Settling,
        Phase::PreCopy,
        Phase::PostCopy,
        Phase::SettlingAfter,
        Phase::Shutdown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Boot => "boot",
            Phase::Settling => "settling",
            Phase::PreCopy => "pre-copy",
            Phase::PostCopy => "post-copy",
            Phase::SettlingAfter => "settling after",
            Phase::Shutdown => "shutdown",
        }
    }

    /// Whether `r` shows the run has entered this phase.
    pub fn entered(self, r: &Record) -> bool {
        match (self, r) {
            (Phase::Boot, Record::Vm(vm)) => vm.role == Role::Src,
            (Phase::Settling, Record::GuestStart(g)) => g.role == Role::Src,
            (Phase::PreCopy, Record::Progress(p)) => p.role == Role::Src && p.status == "active",
            (Phase::PostCopy, Record::Progress(p)) => {
                p.role == Role::Src && p.status == "postcopy-active"
            }
            (Phase::SettlingAfter, Record::Result(r)) => r.outcome == Outcome::Completed,
            (Phase::Shutdown, Record::Action(a)) => a.action == "shutdown",
            _ => false,
        }
    }

    /// Whether the records so far show the run has already left this phase.
    pub fn left<'a>(self, records: impl IntoIterator<Item = &'a Record>) -> bool {
        let mut exits = 0;
        for r in records {
            let left = match (self, r) {
                (Phase::Boot, Record::GuestStart(g)) => g.role == Role::Src,
                (Phase::Settling, Record::Action(a)) => a.action == "migrate",
                (Phase::PreCopy, Record::Action(a)) => a.action == "postcopy",
                (Phase::PreCopy | Phase::PostCopy, Record::Result(_)) => true,
                (Phase::SettlingAfter, Record::Action(a)) => a.action == "shutdown",
                (Phase::Shutdown, Record::VmExit(_)) => {
                    exits += 1;
                    exits == 2
                }
                _ => false,
            };
            if left {
                return true;
            }
        }
        false
    }

    /// gp-migrate options that keep this phase long enough to hit on a 256 MiB TCG guest: a
    /// long settle, 8 MiB/s of pre-copy, post-copy held to 8 MiB/s.
    pub fn migrate_args(self) -> Vec<&'static str> {
        match self {
            Phase::Boot => vec!["--sleep", "3"],
            Phase::Settling => vec!["--sleep", "8"],
            Phase::PreCopy => vec!["--sleep", "1", "--bandwidth", "8"],
            Phase::PostCopy => vec![
                "--sleep",
                "1",
                // Precopy's first pass is slow too, so most of RAM is left for post-copy and
                // the post-copy phase lasts long enough to be hit on an idle machine.
                "--bandwidth",
                "8",
                "--post-copy",
                "--post-copy-iters",
                "1",
                "--parameter",
                "max-postcopy-bandwidth=8388608",
            ],
            Phase::SettlingAfter => vec!["--sleep", "5"],
            Phase::Shutdown => vec!["--sleep", "1"],
        }
    }

    /// Whether the migration had completed before the phase began.
    pub fn after_migration(self) -> bool {
        matches!(self, Phase::SettlingAfter | Phase::Shutdown)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
