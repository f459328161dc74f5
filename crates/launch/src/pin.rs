//! The default placement: the source and destination QEMUs on disjoint host CPUs.
//!
//! Two QEMUs left to the scheduler trade CPUs back and forth during a migration (the source's
//! vCPUs and migration thread, the destination's loading), and every run is placed differently.
//! So gp-launch pins them by default, when it may and when there is room:
//!
//! - never when the user bound either QEMU's CPUs (`--src-cpu-bind`/`--dst-cpu-bind`: theirs
//!   stand as given), when the destination runs on another host, or with `--no-pin`;
//! - only when the CPUs gp-launch may run on (its affinity: `taskset`, cpusets) hold, for each
//!   VM, a host CPU per vCPU **and one more** for QEMU's own threads (the migration thread, the
//!   main loop): `2 x (--cpus + 1)`. Measured on a 2-core machine (docs/performance.md): with
//!   one host CPU per 1-vCPU VM, the source's migration thread fights its own vCPU, and
//!   migrations took 1.8 times as long with 1.9 times the downtime, for a spread only a little
//!   narrower. Pinning must not change what is measured.
//!
//! The source gets the first `--cpus + 1` allowed CPUs in ascending order, the destination the
//! next `--cpus + 1`; any left over stay free for the tools (gp-launch, gp-sample, gp-migrate),
//! which are not pinned. Memory is not bound (`--src-mem-bind`/`--dst-mem-bind` do that).

/// The outcome: the CPUs for each side (empty: unpinned), and a line saying what was chosen
/// and why, for the `launch` record; `None` when the user's bindings stand.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pinning {
    pub src: Vec<u32>,
    pub dst: Vec<u32>,
    pub note: Option<String>,
}

/// What the choice depends on.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// CPUs gp-launch may run on, ascending.
    pub allowed: &'a [u32],
    /// vCPUs per VM.
    pub vcpus: u32,
    /// The user bound the source's or the destination's CPUs.
    pub user_bound: bool,
    /// The destination runs on another host.
    pub remote: bool,
    /// `--no-pin`.
    pub off: bool,
}

pub fn choose(ask: Ask<'_>) -> Pinning {
    let unpinned = |why: String| Pinning {
        note: Some(format!("not pinned: {why}")),
        ..Pinning::default()
    };
    if ask.user_bound {
        return Pinning::default();
    }
    if ask.off {
        return unpinned("--no-pin".into());
    }
    if ask.remote {
        return unpinned("the destination runs on another host".into());
    }
    // A host CPU per vCPU, and one for QEMU's own threads.
    let n = ask.vcpus as usize + 1;
    if ask.allowed.len() < 2 * n {
        return unpinned(format!(
            "{} vCPUs per VM need {} host CPUs for disjoint sets (a CPU per vCPU and one for \
             QEMU's own threads, each), gp-launch may use {} ({})",
            ask.vcpus,
            2 * n,
            ask.allowed.len(),
            gp_qemu::bind::format_list(ask.allowed)
        ));
    }
    let src = ask.allowed[..n].to_vec();
    let dst = ask.allowed[n..2 * n].to_vec();
    let note = format!(
        "pinned by gp-launch: source on CPU {}, destination on CPU {} (a host CPU per vCPU and \
         one for QEMU's threads, {} allowed; --no-pin turns it off)",
        gp_qemu::bind::format_list(&src),
        gp_qemu::bind::format_list(&dst),
        ask.allowed.len()
    );
    Pinning {
        src,
        dst,
        note: Some(note),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(allowed: &[u32], vcpus: u32) -> Ask<'_> {
        Ask {
            allowed,
            vcpus,
            user_bound: false,
            remote: false,
            off: false,
        }
    }

    #[test]
    fn disjoint_sets_when_they_fit() {
        let p = choose(ask(&[0, 1, 2, 3], 1));
        assert_eq!((p.src, p.dst), (vec![0, 1], vec![2, 3]));
        assert!(p
            .note
            .unwrap()
            .contains("source on CPU 0-1, destination on CPU 2-3"));
        // Allowed CPUs as taskset left them; leftovers stay free.
        let p = choose(ask(&[2, 3, 5, 7, 8, 9, 10], 2));
        assert_eq!((p.src, p.dst), (vec![2, 3, 5], vec![7, 8, 9]));
    }

    #[test]
    fn too_few_cpus_or_asked_not_to() {
        // A 2-core host: a 1-vCPU guest per core would starve each QEMU's own threads.
        let p = choose(ask(&[0, 1], 1));
        assert!(p.src.is_empty() && p.dst.is_empty());
        let note = p.note.unwrap();
        assert!(
            note.contains("need 4 host CPUs") && note.contains("may use 2 (0-1)"),
            "{note}"
        );
        assert!(choose(ask(&[0, 1, 2, 3, 4], 2)).src.is_empty());
        let p = choose(Ask {
            off: true,
            ..ask(&[0, 1, 2, 3], 1)
        });
        assert!(p.src.is_empty() && p.note.unwrap().contains("--no-pin"));
        let p = choose(Ask {
            remote: true,
            ..ask(&[0, 1, 2, 3], 1)
        });
        assert!(p.dst.is_empty() && p.note.unwrap().contains("another host"));
        // The user's bindings stand: nothing chosen, nothing to say.
        let p = choose(Ask {
            user_bound: true,
            ..ask(&[0, 1, 2, 3], 1)
        });
        assert_eq!(p, Pinning::default());
    }
}
